//! The plugin's assets in headless apps: subject definitions loaded with their images and
//! weights, hot-reloaded when the file changes, bad files and untrained subjects failing
//! their shots while the app keeps running; subjects trained from the app with the tiny model
//! (status, loss history, weights written and reloaded), cancelled, failing; a model
//! configuration choosing the model and defaults, hot-reloaded, failing when broken.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bevy::asset::{AssetPlugin, AssetServer};
use bevy::camera::{Camera, PerspectiveProjection, Projection};
use bevy::prelude::*;
use bevy_mvcustom::camera::{ImageSize, Intrinsics, PinholeCamera, look_at};
use bevy_mvcustom::diffusion::CancelToken;
use bevy_mvcustom::model::pose::{PoseConfig, SamplingConfig};
use bevy_mvcustom::mvcustom::train::{StepLosses, TrainEvent, TrainSettings};
use bevy_mvcustom::mvcustom::{
    GeneratedViews, GenerationEvent, GenerationRequest, MvError, Subject,
};
use bevy_mvcustom::plugin::{
    ActiveModelConfig, CancelTraining, GenerationWorkers, ModelConfigState, MvCustomSubject,
    TrainSubject, TrainingCancelled, TrainingFailed, TrainingFinished, TrainingState,
    TrainingStatus, ViewGenerator,
};
use bevy_mvcustom::prelude::*;
use bevy_mvcustom::train::AdamWConfig;
use candle_core::{Device, Tensor};

mod common;

use common::bevy_app::{
    Reports, assert_mentions, failure, headless_app_with, state, update_until, update_until_idle,
    views_only,
};
use common::{Scratch, tiny_model};

/// A scratch folder with the subject's `robot/images` folder.
fn scratch(name: &str) -> Scratch {
    let dir = common::scratch(name);
    std::fs::create_dir_all(dir.join("robot/images")).unwrap();
    dir
}

fn reference_camera(angle: f32) -> PinholeCamera {
    let eye = bevy::math::Vec3::new(2.0 * angle.sin(), 0.5, 2.0 * angle.cos());
    look_at(
        eye,
        bevy::math::Vec3::ZERO,
        bevy::math::Vec3::Y,
        Intrinsics::from_vertical_fov(0.8, 16, 16).unwrap(),
        ImageSize::new(16, 16).unwrap(),
    )
    .unwrap()
}

/// The text of a definition with two references (inline cameras) and this token.
fn definition(token: &str, class_word: &str) -> String {
    let camera = |angle| ron::ser::to_string(&reference_camera(angle)).unwrap();
    format!(
        r#"(
    token: "{token}",
    class_word: "{class_word}",
    references: [
        (image: "images/a.png", mask: Some("images/a_mask.png"), camera: Some({})),
        (image: "images/b.png", camera: Some({})),
    ],
)"#,
        camera(0.0),
        camera(1.0)
    )
}

/// Writes the subject `robot/robot.subject.ron` with its images, and its weights file when
/// `weights` holds a token row.
fn write_subject(root: &Path, text: &str, weights: Option<&[f32]>) -> PathBuf {
    let dir = root.join("robot");
    image::RgbaImage::from_pixel(16, 16, image::Rgba([200, 10, 10, 255]))
        .save(dir.join("images/a.png"))
        .unwrap();
    image::RgbaImage::from_pixel(16, 16, image::Rgba([10, 200, 10, 255]))
        .save(dir.join("images/b.png"))
        .unwrap();
    image::GrayImage::from_fn(16, 16, |x, _| image::Luma([if x < 8 { 255 } else { 0 }]))
        .save(dir.join("images/a_mask.png"))
        .unwrap();
    let path = dir.join("robot.subject.ron");
    std::fs::write(&path, text).unwrap();
    let weights_path = dir.join("robot.subject.safetensors");
    match weights {
        Some(row) => {
            let tensors = HashMap::from([(
                "token_embedding".to_string(),
                Tensor::new(row, &Device::Cpu).unwrap(),
            )]);
            let metadata = HashMap::from([("trained".to_string(), "in a test".to_string())]);
            safetensors::serialize_to_file(
                tensors.iter().map(|(name, tensor)| (name.as_str(), tensor)),
                Some(metadata),
                &weights_path,
            )
            .unwrap();
        }
        None => {
            let _ = std::fs::remove_file(&weights_path);
        }
    }
    path
}

/// Records the subject and prompt each generation was given and answers with flat views.
#[derive(Default)]
struct Recorder {
    subjects: Mutex<Vec<Option<String>>>,
    prompts: Mutex<Vec<String>>,
}

impl ViewGenerator for Recorder {
    fn generate(
        &self,
        request: &GenerationRequest,
        subject: Option<&SubjectAsset>,
        _events: &mut dyn FnMut(GenerationEvent),
        _cancel: &CancelToken,
    ) -> bevy_mvcustom::mvcustom::Result<GeneratedViews> {
        self.subjects
            .lock()
            .unwrap()
            .push(subject.map(|s| s.subject().token.clone()));
        self.prompts.lock().unwrap().push(request.prompt.clone());
        let images = request
            .cameras
            .iter()
            .map(|_| image::RgbaImage::new(request.width, request.height))
            .collect();
        Ok(views_only(images))
    }
}

/// The subject asset and training events seen by the app (shot events are in [`Reports`]).
#[derive(Resource, Default)]
struct AssetReports {
    modified: Vec<AssetId<SubjectAsset>>,
    trained: Vec<TrainingFinished>,
    training_failed: Vec<(Entity, String)>,
    training_cancelled: Vec<Entity>,
}

fn record_asset_events(
    mut events: MessageReader<AssetEvent<SubjectAsset>>,
    mut reports: ResMut<AssetReports>,
) {
    for event in events.read() {
        if let AssetEvent::Modified { id } = event {
            reports.modified.push(*id);
        }
    }
}

/// A headless app whose assets live in `root`, watched for changes.
fn app(root: &Path, generator: Arc<dyn ViewGenerator>) -> App {
    app_with(root, MvCustomPlugin::from_generator(generator))
}

/// A headless app with `plugin`, whose assets live in `root`, watched for changes.
fn app_with(root: &Path, plugin: MvCustomPlugin) -> App {
    let assets = AssetPlugin {
        file_path: root.display().to_string(),
        watch_for_changes_override: Some(true),
        ..default()
    };
    headless_app_with(assets, plugin.with_size(16, 16), |app| {
        app.init_resource::<AssetReports>()
            .add_systems(Update, record_asset_events)
            .add_observer(|e: On<TrainingFinished>, mut r: ResMut<AssetReports>| {
                r.trained.push(e.event().clone())
            })
            .add_observer(|e: On<TrainingFailed>, mut r: ResMut<AssetReports>| {
                r.training_failed.push((e.entity, e.error.clone()))
            })
            .add_observer(|e: On<TrainingCancelled>, mut r: ResMut<AssetReports>| {
                r.training_cancelled.push(e.entity)
            });
    })
}

fn load(app: &mut App, path: &str) -> Handle<SubjectAsset> {
    app.world().resource::<AssetServer>().load(path.to_owned())
}

fn subject(world: &World, handle: &Handle<SubjectAsset>) -> Option<SubjectAsset> {
    world
        .resource::<Assets<SubjectAsset>>()
        .get(handle)
        .cloned()
}

/// A shot of `subject` with two cameras, generating.
fn spawn_shot(world: &mut World, subject: Handle<SubjectAsset>) -> (Entity, Vec<Entity>) {
    let shot = world
        .spawn(MvCustomShot::new("a photo of {subject}").with_subject(subject))
        .id();
    let cameras = (0..2)
        .map(|k| {
            world
                .spawn((
                    Camera::default(),
                    Projection::Perspective(PerspectiveProjection::default()),
                    Transform::from_xyz(k as f32, 0.0, 3.0).looking_at(Vec3::ZERO, Vec3::Y),
                    MvCustom::new(shot).with_order(k),
                ))
                .id()
        })
        .collect();
    world.trigger(GenerateShot { shot });
    (shot, cameras)
}

#[test]
fn a_subject_loads_with_its_files_and_hot_reloads_when_edited() {
    let dir = scratch("reload");
    write_subject(
        &dir.0,
        &definition("<robot>", "toy robot"),
        Some(&[0.5, -1.0]),
    );
    let mut app = app(&dir.0, Arc::new(Recorder::default()));
    let handle = load(&mut app, "robot/robot.subject.ron");
    update_until(&mut app, "the subject to load", |world| {
        subject(world, &handle).is_some()
    });
    let loaded = subject(app.world(), &handle).unwrap();
    let s = loaded.subject();
    assert_eq!(
        (s.token.as_str(), s.class_word.as_str()),
        ("<robot>", "toy robot")
    );
    assert_eq!(s.references.len(), 2);
    assert_eq!(s.references[0].image.get_pixel(3, 3).0, [200, 10, 10, 255]);
    assert_eq!(s.references[1].image.get_pixel(3, 3).0, [10, 200, 10, 255]);
    assert_eq!(s.references[0].mask.get_pixel(2, 0).0, [255]);
    assert_eq!(s.references[0].mask.get_pixel(12, 0).0, [0]);
    assert_eq!(
        s.references[1].mask.get_pixel(12, 0).0,
        [255],
        "no mask: all subject"
    );
    assert_eq!(s.references[1].camera, reference_camera(1.0));
    assert_eq!(
        s.weights_path,
        Path::new("robot/robot.subject.safetensors"),
        "paths are relative to the asset root"
    );
    let weights = loaded.weights().expect("the weights file loads with it");
    let row = weights.tensors["token_embedding"].to_vec1::<f32>().unwrap();
    assert_eq!(row, [0.5, -1.0]);
    assert_eq!(weights.metadata["trained"], "in a test", "its metadata too");

    // Edit the definition on disk: the file watcher reloads it.
    std::fs::write(
        dir.0.join("robot/robot.subject.ron"),
        definition("<robot>", "tin robot"),
    )
    .unwrap();
    update_until(&mut app, "the edited subject to reload", |world| {
        world
            .resource::<AssetReports>()
            .modified
            .contains(&handle.id())
    });
    let reloaded = subject(app.world(), &handle).unwrap();
    assert_eq!(reloaded.subject().class_word, "tin robot");
    // Rewriting the weights file (as training does) reloads the subject too.
    app.world_mut()
        .resource_mut::<AssetReports>()
        .modified
        .clear();
    write_subject(
        &dir.0,
        &definition("<robot>", "tin robot"),
        Some(&[2.0, 3.0]),
    );
    update_until(&mut app, "the new weights to reload", |world| {
        subject(world, &handle).is_some_and(|s| {
            s.weights().unwrap().tensors["token_embedding"]
                .to_vec1::<f32>()
                .unwrap()
                == [2.0, 3.0]
        })
    });
}

#[test]
fn a_shot_waits_for_its_subject_and_generates_with_it() {
    let dir = scratch("shot");
    write_subject(&dir.0, &definition("<robot>", "toy robot"), Some(&[1.0]));
    let recorder = Arc::new(Recorder::default());
    let mut app = app(&dir.0, recorder.clone());
    let handle = load(&mut app, "robot/robot.subject.ron");
    let (shot, cameras) = spawn_shot(app.world_mut(), handle);
    // Queued while the subject loads (the trigger ran before the first update's load).
    assert_eq!(state(app.world(), cameras[0]), GenerationState::Queued);
    update_until(&mut app, "the shot to finish", |world| {
        world.resource::<Reports>().has_finished(shot)
    });
    assert_eq!(state(app.world(), cameras[1]), GenerationState::Done);
    assert_eq!(
        *recorder.subjects.lock().unwrap(),
        vec![Some("<robot>".to_string())]
    );
    // `{subject}` in the prompt stands for the subject's token.
    assert_eq!(*recorder.prompts.lock().unwrap(), ["a photo of <robot>"]);
    // Without a subject, it is an error.
    let world = app.world_mut();
    let orphan = world.spawn(MvCustomShot::new("a photo of {subject}")).id();
    world.spawn((
        Camera::default(),
        Projection::Perspective(PerspectiveProjection::default()),
        Transform::from_xyz(0.0, 0.0, 3.0),
        MvCustom::new(orphan),
    ));
    world.trigger(GenerateShot { shot: orphan });
    update_until(&mut app, "the orphan shot to fail", |world| {
        !world.resource::<Reports>().failed.is_empty()
    });
    let (failed, error) = &app.world().resource::<Reports>().failed[0];
    assert_eq!(*failed, orphan);
    assert!(
        error.contains("names `{subject}` but the shot has no subject"),
        "{error}"
    );
}

#[test]
fn bad_or_untrained_subjects_fail_their_shots_and_the_app_keeps_running() {
    let dir = scratch("bad");
    let recorder = Arc::new(Recorder::default());
    // A malformed file, an invalid field, an image that is not there, no weights yet.
    let cases = [
        (
            "syntax.subject.ron",
            "(token: \"<a>\", class_word: \"x\", references: [(image: 3)])".to_string(),
            "syntax.subject.ron:1:",
        ),
        (
            "token.subject.ron",
            definition("robot", "toy robot"),
            "`token` must look like `<name>`",
        ),
        (
            "image.subject.ron",
            definition("<robot>", "toy robot").replace("images/b.png", "images/missing.png"),
            "images/missing.png",
        ),
        (
            "untrained.subject.ron",
            definition("<robot>", "toy robot"),
            "is not trained yet (no weights file robot/untrained.subject.safetensors)",
        ),
    ];
    write_subject(&dir.0, &definition("<robot>", "toy robot"), Some(&[1.0]));
    for (name, text, _) in &cases {
        std::fs::write(dir.0.join("robot").join(name), text).unwrap();
    }
    let mut app = app(&dir.0, recorder.clone());
    let shots: Vec<(Entity, Vec<Entity>, &str)> = cases
        .iter()
        .map(|(name, _, expected)| {
            let handle = load(&mut app, &format!("robot/{name}"));
            let (shot, cameras) = spawn_shot(app.world_mut(), handle);
            (shot, cameras, *expected)
        })
        .collect();
    update_until(&mut app, "every bad shot to fail", |world| {
        world.resource::<Reports>().failed.len() == cases.len()
    });
    for (shot, cameras, expected) in &shots {
        let error = failure(&app.world().resource::<Reports>().failed, *shot);
        assert_mentions(error, expected);
        assert_eq!(
            state(app.world(), cameras[0]),
            GenerationState::Failed(error.to_owned())
        );
    }
    assert!(recorder.subjects.lock().unwrap().is_empty());

    // The app keeps running: a good subject still generates.
    let good = load(&mut app, "robot/robot.subject.ron");
    let (shot, _) = spawn_shot(app.world_mut(), good);
    update_until(&mut app, "the good shot to finish", |world| {
        world.resource::<Reports>().has_finished(shot)
    });
}

// ---------------------------------------------------------------------------------------
// Training.

/// A few quick steps at 16² on the tiny model (its pose blocks at levels 0 and 1).
fn quick_settings(steps: usize) -> TrainSettings {
    TrainSettings {
        steps,
        optimiser: AdamWConfig {
            lr: 1e-3,
            ..Default::default()
        },
        references_per_step: 1,
        resolution: 16,
        seed: 3,
        checkpoint_every: 0,
        pose: PoseConfig {
            levels: vec![0, 1],
            sampling: SamplingConfig {
                samples: 8,
                ..Default::default()
            },
        },
        ..Default::default()
    }
}

fn training(world: &World, entity: Entity) -> TrainingStatus {
    world.get::<TrainingStatus>(entity).unwrap().clone()
}

#[test]
fn training_a_subject_streams_its_losses_then_writes_and_reloads_its_weights() {
    let dir = scratch("train");
    write_subject(&dir.0, &definition("<robot>", "toy robot"), None);
    let mut app = app_with(&dir.0, MvCustomPlugin::from_folder(tiny_model()));
    let handle = load(&mut app, "robot/robot.subject.ron");
    let entity = app
        .world_mut()
        .spawn(MvCustomSubject::new(handle.clone()))
        .id();
    app.world_mut()
        .commands()
        .entity(entity)
        .train_subject(quick_settings(3));
    app.world_mut().flush();
    assert_eq!(
        training(app.world(), entity).state(),
        &TrainingState::Queued
    );

    let mut seen = Vec::new();
    update_until(&mut app, "the training to finish", |world| {
        let status = training(world, entity);
        if seen.last() != Some(status.state()) {
            seen.push(status.state().clone());
        }
        !status.state().is_busy()
    });
    let status = training(app.world(), entity);
    assert_eq!(status.state(), &TrainingState::Done, "{seen:?}");
    // Every step was seen, in order, with its loss.
    let steps: Vec<(usize, usize)> = seen
        .iter()
        .filter_map(|s| match s {
            TrainingState::Running { step, total, loss } => {
                assert!(loss.is_finite() && *loss > 0.0, "{loss}");
                Some((*step, *total))
            }
            _ => None,
        })
        .collect();
    assert_eq!(steps, [(1, 3), (2, 3), (3, 3)]);
    assert_eq!(status.losses().len(), 3);
    assert!(status.losses().iter().all(|l| l.is_finite()));
    let reports = app.world().resource::<AssetReports>();
    let weights = dir.0.join("robot/robot.subject.safetensors");
    assert_eq!(
        reports.trained,
        [TrainingFinished {
            entity,
            weights: weights.clone()
        }]
    );
    assert!(weights.is_file());

    // The subject reloads with its weights: a shot of it now generates (no longer untrained).
    update_until(&mut app, "the subject to reload with weights", |world| {
        subject(world, &handle).is_some_and(|s| s.weights().is_some())
    });
    let reloaded = subject(app.world(), &handle).unwrap();
    let tensors = &reloaded.weights().unwrap().tensors;
    assert!(tensors.contains_key("token_embedding"));
    assert!(tensors.keys().any(|k| k.starts_with("pose_blocks.")));
    // The real pipeline generates with it: learned token row and pose blocks.
    let (shot, cameras) = spawn_shot(app.world_mut(), handle);
    app.world_mut()
        .get_mut::<MvCustomShot>(shot)
        .unwrap()
        .techniques = Techniques {
        pose_blocks: true,
        ..Techniques::none()
    };
    update_until(&mut app, "the shot of the trained subject", |world| {
        !state(world, cameras[0]).is_busy()
    });
    assert_eq!(state(app.world(), cameras[0]), GenerationState::Done);
}

/// Trains forever, one step a millisecond, until cancelled; panics for a subject whose
/// class word is "panic".
#[derive(Default)]
struct EndlessTrainer {
    steps: AtomicUsize,
}

impl ViewGenerator for EndlessTrainer {
    fn generate(
        &self,
        _request: &GenerationRequest,
        _subject: Option<&SubjectAsset>,
        _events: &mut dyn FnMut(GenerationEvent),
        _cancel: &CancelToken,
    ) -> bevy_mvcustom::mvcustom::Result<GeneratedViews> {
        Err(MvError::request("generator", "trains only"))
    }

    fn train_subject(
        &self,
        subject: &Subject,
        settings: &TrainSettings,
        _regularisation: &[image::RgbaImage],
        events: &mut dyn FnMut(TrainEvent),
        cancel: &CancelToken,
    ) -> bevy_mvcustom::mvcustom::Result<()> {
        if subject.class_word == "panic" {
            panic!("the trainer blew up");
        }
        loop {
            if cancel.is_cancelled() {
                return Err(MvError::Cancelled);
            }
            let completed = self.steps.fetch_add(1, Ordering::AcqRel) + 1;
            let loss = 1.0 / completed as f32;
            events(TrainEvent::Step {
                completed,
                total: settings.steps,
                losses: StepLosses {
                    total: loss,
                    denoising: loss,
                    opacity: 0.0,
                    background: 0.0,
                    rgb: 0.0,
                    regularisation: false,
                },
            });
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

#[test]
fn trainings_cancel_on_request_or_despawn_and_failures_keep_the_app_running() {
    let dir = scratch("cancel");
    write_subject(&dir.0, &definition("<robot>", "toy robot"), None);
    std::fs::write(
        dir.0.join("robot/panic.subject.ron"),
        definition("<robot>", "panic"),
    )
    .unwrap();
    let mut app = app(&dir.0, Arc::new(EndlessTrainer::default()));
    let handle = load(&mut app, "robot/robot.subject.ron");
    let busy = |world: &World| world.resource::<GenerationWorkers>().busy();
    let running = |world: &mut World, entity| matches!(training(world, entity).state(), TrainingState::Running { step, .. } if *step > 2);

    // On request.
    let a = app
        .world_mut()
        .spawn(MvCustomSubject::new(handle.clone()))
        .id();
    app.world_mut()
        .trigger(TrainSubject::new(a, TrainSettings::default()));
    update_until(&mut app, "a to run", |world| running(world, a));
    assert_eq!(busy(app.world()), 1);
    let losses = training(app.world(), a).losses().to_vec();
    assert!(losses.windows(2).all(|w| w[1] < w[0]), "{losses:?}");
    app.world_mut().trigger(CancelTraining { entity: a });
    app.update();
    assert_eq!(training(app.world(), a).state(), &TrainingState::Cancelled);
    update_until_idle(&mut app, "a's worker to stop");

    // On despawn.
    let b = app
        .world_mut()
        .spawn(MvCustomSubject::new(handle.clone()))
        .id();
    app.world_mut()
        .commands()
        .entity(b)
        .train_subject(TrainSettings::default());
    update_until(&mut app, "b to run", |world| running(world, b));
    app.world_mut().despawn(b);
    update_until_idle(&mut app, "b's worker to stop");
    assert_eq!(
        app.world().resource::<AssetReports>().training_cancelled,
        [a, b]
    );

    // A panic, a bad subject and a non-subject fail; the app keeps running.
    let panics = load(&mut app, "robot/panic.subject.ron");
    let c = app.world_mut().spawn(MvCustomSubject::new(panics)).id();
    let missing = load(&mut app, "robot/missing.subject.ron");
    let d = app.world_mut().spawn(MvCustomSubject::new(missing)).id();
    let e = app.world_mut().spawn_empty().id();
    for entity in [c, d, e] {
        app.world_mut()
            .trigger(TrainSubject::new(entity, TrainSettings::default()));
    }
    update_until(&mut app, "the failures", |world| {
        world.resource::<AssetReports>().training_failed.len() == 3
    });
    let failed = &app.world().resource::<AssetReports>().training_failed;
    assert_mentions(failure(failed, c), "training panicked: the trainer blew up");
    assert_mentions(failure(failed, d), "robot/missing.subject.ron");
    assert_mentions(failure(failed, e), "has no `MvCustomSubject`");
    assert!(matches!(
        training(app.world(), c).state(),
        TrainingState::Failed(_)
    ));
    assert_eq!(busy(app.world()), 0);
}

// ---------------------------------------------------------------------------------------
// Model configuration.

fn write_model_config(root: &Path, text: &str) {
    std::fs::create_dir_all(root.join("models")).unwrap();
    std::fs::write(root.join("models/tiny.model.ron"), text).unwrap();
}

fn model_config_text(steps: u32, guidance: f32) -> String {
    format!(
        r#"(folder: "{}", compute: (device: Cpu, precision: F32),
            defaults: Some((steps: {steps}, guidance: {guidance}, size: (32, 32))))"#,
        tiny_model().display()
    )
}

fn config_state(world: &World) -> ModelConfigState {
    world.resource::<ActiveModelConfig>().state().clone()
}

#[test]
fn a_model_configuration_chooses_the_model_and_defaults_and_hot_reloads() {
    let dir = scratch("config");
    write_model_config(&dir.0, &model_config_text(2, 3.0));
    let mut app = app_with(&dir.0, MvCustomPlugin::from_config("models/tiny.model.ron"));
    // Asked for before the configuration has loaded: the shot waits for it.
    let world = app.world_mut();
    let shot = world
        .spawn(MvCustomShot::new("a red cube").with_techniques(Techniques::none()))
        .id();
    let camera = world
        .spawn((
            Camera::default(),
            Projection::Perspective(PerspectiveProjection::default()),
            Transform::from_xyz(0.0, 0.0, 3.0).looking_at(Vec3::ZERO, Vec3::Y),
            MvCustom::new(shot),
        ))
        .id();
    world.trigger(GenerateShot { shot });
    update_until(&mut app, "the configured generation", |world| {
        !state(world, camera).is_busy()
    });
    assert_eq!(state(app.world(), camera), GenerationState::Done);
    assert_eq!(config_state(app.world()), ModelConfigState::Applied);
    let defaults = app.world().resource::<ShotDefaults>().clone();
    assert_eq!((defaults.steps, defaults.guidance), (2, 3.0));
    assert_eq!(defaults.size, UVec2::new(32, 32));
    let image = app
        .world()
        .get::<MvCustomStatus>(camera)
        .and_then(|status| status.image().cloned())
        .unwrap();
    let size = app
        .world()
        .resource::<Assets<Image>>()
        .get(&image)
        .unwrap()
        .size();
    assert_eq!(size, UVec2::new(32, 32), "the configured size");

    // Editing the file switches the defaults.
    write_model_config(&dir.0, &model_config_text(3, 1.5));
    update_until(&mut app, "the edited configuration", |world| {
        world.resource::<ShotDefaults>().steps == 3
    });
    assert_eq!(app.world().resource::<ShotDefaults>().guidance, 1.5);

    // A broken file fails generations, naming the file and field, until it is fixed.
    write_model_config(&dir.0, r#"(folder: "")"#);
    update_until(&mut app, "the broken configuration", |world| {
        matches!(config_state(world), ModelConfigState::Failed(_))
    });
    app.world_mut().trigger(GenerateShot { shot });
    update_until(&mut app, "the shot to fail", |world| {
        !world.resource::<Reports>().failed.is_empty()
    });
    let (_, error) = &app.world().resource::<Reports>().failed[0];
    assert!(
        error.contains("models/tiny.model.ron") && error.contains("`folder` must name"),
        "{error}"
    );
    write_model_config(&dir.0, &model_config_text(2, 3.0));
    update_until(&mut app, "the fixed configuration", |world| {
        config_state(world) == ModelConfigState::Applied
    });
}
