//! Headless Bevy apps for the plugin's integration tests: the app itself (no window, no
//! renderer), the shot and model events it has seen, and updating it until something holds
//! or a time limit passes.

use std::time::{Duration, Instant};

use bevy::asset::AssetPlugin;
use bevy::image::ImagePlugin;
use bevy::prelude::*;
use bevy::transform::TransformPlugin;
use bevy_mvcustom::mvcustom::GeneratedViews;
use bevy_mvcustom::plugin::{GenerationWorkers, ModelLoadFailed};
use bevy_mvcustom::prelude::*;

/// How long a test waits for something (a generation, a load, a hot reload) before failing.
pub const TIME_LIMIT: Duration = Duration::from_secs(60);

/// How long to sleep between two updates while waiting, so worker threads get the cores.
const POLL_INTERVAL: Duration = Duration::from_millis(2);

/// The end-of-shot and model-load events the app has seen, recorded by the observers every
/// [`headless_app_with`] app has.
#[derive(Resource, Default)]
pub struct Reports {
    /// Shots that delivered their views.
    pub finished: Vec<ShotFinished>,
    /// Shots that failed, with the error.
    pub failed: Vec<(Entity, String)>,
    /// Shots that were cancelled.
    pub cancelled: Vec<Entity>,
    /// Errors of failed model loads.
    pub load_failed: Vec<String>,
}

impl Reports {
    /// Whether `shot` has finished.
    pub fn has_finished(&self, shot: Entity) -> bool {
        self.finished.iter().any(|f| f.shot == shot)
    }
}

/// The error `entity` failed with in `failures`; panics, listing them, if it has none.
pub fn failure(failures: &[(Entity, String)], entity: Entity) -> &str {
    failures
        .iter()
        .find(|(failed, _)| *failed == entity)
        .map(|(_, error)| error.as_str())
        .unwrap_or_else(|| panic!("no failure for {entity}: {failures:?}"))
}

/// Asserts that `error` contains `fragment`, showing the error when it does not.
pub fn assert_mentions(error: &str, fragment: &str) {
    assert!(error.contains(fragment), "{fragment:?} not in {error:?}");
}

/// `images` as a generation's result, without timings, depth or notices: what the tests'
/// stand-in generators answer.
pub fn views_only(images: Vec<image::RgbaImage>) -> GeneratedViews {
    GeneratedViews {
        images,
        timings: vec![],
        anchor_depth: None,
        notices: vec![],
    }
}

/// A headless app with default assets and `plugin`; see [`headless_app_with`].
pub fn headless_app(plugin: MvCustomPlugin) -> App {
    headless_app_with(AssetPlugin::default(), plugin, |_| {})
}

/// A headless app (`MinimalPlugins`, `assets`, images, transforms and `plugin`) recording
/// its shot and model events in [`Reports`]; `setup` adds the test's own resources, systems
/// and observers before the plugins finish.
pub fn headless_app_with(
    assets: AssetPlugin,
    plugin: MvCustomPlugin,
    setup: impl FnOnce(&mut App),
) -> App {
    let mut app = App::new();
    app.add_plugins((
        MinimalPlugins,
        assets,
        ImagePlugin::default(),
        TransformPlugin,
        plugin,
    ));
    app.init_resource::<Reports>()
        .add_observer(|e: On<ShotFinished>, mut r: ResMut<Reports>| {
            r.finished.push(e.event().clone())
        })
        .add_observer(|e: On<ShotFailed>, mut r: ResMut<Reports>| {
            r.failed.push((e.shot, e.error.clone()))
        })
        .add_observer(|e: On<ShotCancelled>, mut r: ResMut<Reports>| r.cancelled.push(e.shot))
        .add_observer(|e: On<ModelLoadFailed>, mut r: ResMut<Reports>| {
            r.load_failed.push(e.error.clone())
        });
    setup(&mut app);
    app.finish();
    app.cleanup();
    app
}

/// Updates the app until `done` holds, panicking after [`TIME_LIMIT`] with `what` it waited
/// for.
pub fn update_until(app: &mut App, what: &str, mut done: impl FnMut(&mut World) -> bool) {
    let start = Instant::now();
    loop {
        app.update();
        if done(app.world_mut()) {
            return;
        }
        assert!(start.elapsed() < TIME_LIMIT, "timed out waiting for {what}");
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Updates the app until no worker thread computes (generation or training).
pub fn update_until_idle(app: &mut App, what: &str) {
    update_until(app, what, |w| w.resource::<GenerationWorkers>().busy() == 0);
}

/// The generation state of `camera`'s status.
pub fn state(world: &World, camera: Entity) -> GenerationState {
    world
        .get::<MvCustomStatus>(camera)
        .expect("camera has a status")
        .state()
        .clone()
}
