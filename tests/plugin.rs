//! The Bevy plugin in headless apps (`MinimalPlugins`, assets, transforms; no window, no
//! renderer): poses read from Bevy cameras, statuses and images through a real generation
//! with the tiny diffusers model, cancellation, failures that leave the app running, and
//! independent shots. Generators written here stand in for the model where a test needs to
//! control timing (slow, gated) or misbehave (panic).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use approx::assert_relative_eq;
use bevy::camera::{
    Camera, OrthographicProjection, PerspectiveProjection, Projection, ScalingMode, Viewport,
};
use bevy::math::{UVec2, Vec3, Vec4};
use bevy::prelude::*;
use bevy_mvcustom::camera::PinholeCamera;
use bevy_mvcustom::camera::bevy::from_bevy;
use bevy_mvcustom::diffusion::CancelToken;
use bevy_mvcustom::model::ComputeSettings;
use bevy_mvcustom::mvcustom::{
    GeneratedViews, GenerationEvent, GenerationRequest, MvError, MvPipeline, Stage, StageTiming,
};
use bevy_mvcustom::plugin::{
    GenerationTask, GenerationWorkers, MvCustomModel, ViewGenerator, to_rgba_image,
};
use bevy_mvcustom::prelude::*;

mod common;

use common::bevy_app::{
    Reports, assert_mentions, failure, headless_app, state, update_until, update_until_idle,
    views_only,
};
use common::tiny_model;

fn is_running(world: &World, shot: Entity) -> bool {
    world.get::<GenerationTask>(shot).is_some()
}

fn perspective(fov: f32) -> Projection {
    Projection::Perspective(PerspectiveProjection { fov, ..default() })
}

/// Spawns a shot and `count` cameras on a circle looking at the origin.
fn spawn_shot(world: &mut World, shot: MvCustomShot, count: usize) -> (Entity, Vec<Entity>) {
    let shot = world.spawn(shot).id();
    let cameras = (0..count)
        .map(|i| {
            let angle = i as f32 * 0.5;
            let eye = Vec3::new(3.0 * angle.sin(), 1.0, 3.0 * angle.cos());
            world
                .spawn((
                    Camera::default(),
                    perspective(0.8),
                    Transform::from_translation(eye).looking_at(Vec3::ZERO, Vec3::Y),
                    MvCustom::new(shot).with_order(i as i32),
                ))
                .id()
        })
        .collect();
    (shot, cameras)
}

// ---------------------------------------------------------------------------------------
// Generators standing in for the model.

/// Records each request and answers with views of a flat colour per view index.
#[derive(Default)]
struct Recorder {
    requests: Mutex<Vec<GenerationRequest>>,
}

fn flat_views(request: &GenerationRequest, shade: u8) -> Vec<image::RgbaImage> {
    (0..request.cameras.len())
        .map(|i| {
            image::RgbaImage::from_pixel(
                request.width,
                request.height,
                image::Rgba([shade, i as u8, 7, 255]),
            )
        })
        .collect()
}

impl ViewGenerator for Recorder {
    fn generate(
        &self,
        request: &GenerationRequest,
        _subject: Option<&SubjectAsset>,
        events: &mut dyn FnMut(GenerationEvent),
        _cancel: &CancelToken,
    ) -> bevy_mvcustom::mvcustom::Result<GeneratedViews> {
        self.requests.lock().unwrap().push(request.clone());
        events(GenerationEvent::StageStarted(Stage::Denoising));
        Ok(views_only(flat_views(request, 200)))
    }
}

/// Takes a step every few milliseconds until cancelled (or 10 000 steps).
struct Slow;

impl ViewGenerator for Slow {
    fn generate(
        &self,
        request: &GenerationRequest,
        _subject: Option<&SubjectAsset>,
        events: &mut dyn FnMut(GenerationEvent),
        cancel: &CancelToken,
    ) -> bevy_mvcustom::mvcustom::Result<GeneratedViews> {
        events(GenerationEvent::StageStarted(Stage::Denoising));
        for step in 0..10_000 {
            if cancel.is_cancelled() {
                return Err(MvError::Cancelled);
            }
            std::thread::sleep(Duration::from_millis(3));
            events(GenerationEvent::Step {
                completed: step + 1,
                total: 10_000,
            });
        }
        Ok(views_only(flat_views(request, 1)))
    }
}

/// Sends a preview, then, for prompts starting with "gated", waits for the test to open the
/// gate (or for cancellation), then returns the final views.
#[derive(Default)]
struct Gated {
    open: AtomicBool,
}

impl ViewGenerator for Gated {
    fn generate(
        &self,
        request: &GenerationRequest,
        _subject: Option<&SubjectAsset>,
        events: &mut dyn FnMut(GenerationEvent),
        cancel: &CancelToken,
    ) -> bevy_mvcustom::mvcustom::Result<GeneratedViews> {
        events(GenerationEvent::Preview {
            completed: 1,
            images: flat_views(request, 50),
        });
        while request.prompt.starts_with("gated") && !self.open.load(Ordering::Acquire) {
            if cancel.is_cancelled() {
                return Err(MvError::Cancelled);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(GeneratedViews {
            timings: vec![StageTiming {
                stage: "denoising".into(),
                seconds: 0.0,
            }],
            ..views_only(flat_views(request, 250))
        })
    }
}

struct Panics;

impl ViewGenerator for Panics {
    fn generate(
        &self,
        _request: &GenerationRequest,
        _subject: Option<&SubjectAsset>,
        _events: &mut dyn FnMut(GenerationEvent),
        _cancel: &CancelToken,
    ) -> bevy_mvcustom::mvcustom::Result<GeneratedViews> {
        let views: Vec<u32> = Vec::new();
        panic!("index {} out of range", views.len() + 3)
    }
}

fn pixel(world: &World, camera: Entity) -> [u8; 4] {
    let handle = world
        .get::<MvCustomStatus>(camera)
        .and_then(|s| s.image().cloned())
        .expect("the camera has an image");
    let image = world
        .resource::<Assets<Image>>()
        .get(&handle)
        .expect("the image asset exists");
    to_rgba_image(image).unwrap().get_pixel(0, 0).0
}

// ---------------------------------------------------------------------------------------
// Poses.

/// Where Bevy's own matrices put a world point, in pixels of a `size` image (y down).
fn bevy_pixel(
    transform: &GlobalTransform,
    projection: &Projection,
    size: UVec2,
    point: Vec3,
) -> bevy::math::Vec2 {
    let mut projection = projection.clone();
    projection.update(size.x as f32, size.y as f32);
    let clip = projection.get_clip_from_view()
        * transform.to_matrix().inverse()
        * Vec4::new(point.x, point.y, point.z, 1.0);
    let ndc = clip.truncate() / clip.w;
    bevy::math::Vec2::new(
        (ndc.x + 1.0) * 0.5 * size.x as f32,
        (1.0 - ndc.y) * 0.5 * size.y as f32,
    )
}

fn assert_same_camera(ours: &PinholeCamera, expected: &PinholeCamera) {
    assert_eq!(ours.size(), expected.size());
    assert_eq!(ours.kind(), expected.kind());
    let (a, b) = (ours.intrinsics(), expected.intrinsics());
    for (x, y) in [(a.fx, b.fx), (a.fy, b.fy), (a.cx, b.cx), (a.cy, b.cy)] {
        assert_relative_eq!(x, y, max_relative = 1e-5);
    }
    assert!(
        ours.extrinsics()
            .rotation
            .abs_diff_eq(expected.extrinsics().rotation, 1e-5)
    );
    assert!(
        ours.extrinsics()
            .translation
            .abs_diff_eq(expected.extrinsics().translation, 1e-4)
    );
}

#[test]
fn poses_come_from_the_cameras_global_transforms_and_projections() {
    let recorder = Arc::new(Recorder::default());
    let mut app = headless_app(MvCustomPlugin::from_generator(recorder.clone()));
    let size = UVec2::new(64, 48);
    let world = app.world_mut();
    let shot = world
        .spawn(MvCustomShot::new("a chair").with_size(size.x, size.y))
        .id();
    let rig = world
        .spawn(Transform::from_xyz(0.5, -1.0, 2.0).with_rotation(Quat::from_rotation_y(0.7)))
        .id();
    let ortho = Projection::Orthographic(OrthographicProjection {
        scaling_mode: ScalingMode::FixedVertical {
            viewport_height: 3.0,
        },
        ..OrthographicProjection::default_3d()
    });
    let off_centre = Projection::Perspective(PerspectiveProjection {
        fov: 1.1,
        near_clip_plane: Vec4::new(0.0, 0.0, -1.0, -0.5),
        ..default()
    });
    // (local transform, projection, parent, viewport, order)
    let specs = [
        (
            Transform::from_xyz(4.0, 2.0, 4.0).looking_at(Vec3::ZERO, Vec3::Y),
            perspective(0.6),
            None,
            None,
            2,
        ),
        (
            Transform::from_xyz(0.0, 0.0, 5.0),
            ortho,
            Some(rig),
            None,
            0,
        ),
        (
            Transform::from_xyz(-3.0, 1.0, 0.5).looking_at(Vec3::new(0.0, 0.5, 0.0), Vec3::Y),
            off_centre,
            None,
            None,
            1,
        ),
        (
            Transform::from_xyz(1.0, 5.0, -2.0).looking_at(Vec3::ZERO, Vec3::Z),
            perspective(1.2),
            None,
            Some(UVec2::new(160, 90)),
            3,
        ),
    ];
    let cameras: Vec<Entity> = specs
        .iter()
        .map(|(transform, projection, parent, viewport, order)| {
            let camera = Camera {
                viewport: viewport.map(|physical_size| Viewport {
                    physical_size,
                    ..default()
                }),
                ..default()
            };
            let mut entity = world.spawn((
                camera,
                projection.clone(),
                *transform,
                MvCustom::new(shot).with_order(*order),
            ));
            if let Some(parent) = parent {
                entity.insert(ChildOf(*parent));
            }
            entity.id()
        })
        .collect();
    world.entity_mut(shot).insert(MvCustomShot {
        anchor: Some(cameras[2]),
        ..MvCustomShot::new("a chair").with_size(size.x, size.y)
    });
    // Spawned this frame: the poses must be read after transform propagation.
    world.trigger(GenerateShot { shot });
    update_until(&mut app, "the recorded shot", |w| {
        w.resource::<Reports>().finished.len() == 1
    });

    let requests = recorder.requests.lock().unwrap();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!((request.width, request.height), (size.x, size.y));
    // Views in the shot's order: order 0 (child of the rig), 1, 2, 3.
    let expected_order = [cameras[1], cameras[2], cameras[0], cameras[3]];
    assert_eq!(
        app.world().resource::<Reports>().finished[0].views,
        expected_order
    );
    assert_eq!(
        request.techniques.dfr.as_ref().and_then(|d| d.anchor_view),
        Some(1),
        "the anchor is the second view in order"
    );
    let rig_transform = GlobalTransform::from(
        Transform::from_xyz(0.5, -1.0, 2.0).with_rotation(Quat::from_rotation_y(0.7)),
    );
    let spec_order = [1usize, 2, 0, 3];
    for (view, &spec) in spec_order.iter().enumerate() {
        let (local, projection, parent, viewport, _) = &specs[spec];
        let global = match parent {
            Some(_) => rig_transform.mul_transform(*local),
            None => GlobalTransform::from(*local),
        };
        let over = viewport.unwrap_or(size);
        let expected = from_bevy(&global, projection, over)
            .unwrap()
            .resized(size.x, size.y)
            .unwrap();
        assert_same_camera(&request.cameras[view], &expected);
        // And independently of the camera model: the origin lands where Bevy's matrices put it.
        let target = Vec3::new(0.1, 0.2, -0.1);
        let ours = request.cameras[view].project(target).unwrap().pixel;
        let theirs = bevy_pixel(&global, projection, over, target)
            * bevy::math::Vec2::new(size.x as f32 / over.x as f32, size.y as f32 / over.y as f32);
        assert!(
            ours.abs_diff_eq(theirs, 1e-3 * size.x as f32),
            "view {view}: {ours} vs {theirs}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// The real tiny model.

#[test]
fn a_real_generation_goes_queued_running_done_and_delivers_the_pipelines_images() {
    let model = tiny_model();
    let mut app = headless_app(MvCustomPlugin::from_folder(&model));
    let shot_settings = MvCustomShot::new("a teddy bear")
        .with_negative_prompt("blurry")
        .with_seed(7)
        .with_steps(2)
        .with_size(32, 32)
        .with_techniques(Techniques::none());
    let (shot, cameras) = spawn_shot(app.world_mut(), shot_settings, 3);
    assert_eq!(state(app.world(), cameras[0]), GenerationState::Idle);
    app.world_mut().trigger(GenerateShot { shot });
    assert_eq!(state(app.world(), cameras[0]), GenerationState::Queued);
    let mut seen = vec![GenerationState::Queued];
    update_until(&mut app, "the real generation", |w| {
        let now = state(w, cameras[0]);
        if seen.last() != Some(&now) {
            seen.push(now);
        }
        !state(w, cameras[0]).is_busy()
    });
    assert_eq!(
        seen.last(),
        Some(&GenerationState::Done),
        "states: {seen:?}"
    );
    let running: Vec<_> = seen
        .iter()
        .filter(|s| matches!(s, GenerationState::Running { .. }))
        .collect();
    assert!(!running.is_empty(), "no running state seen: {seen:?}");
    assert!(
        running
            .iter()
            .all(|s| matches!(s, GenerationState::Running { total: 2, step, .. } if *step <= 2)),
        "{running:?}"
    );
    assert!(!is_running(app.world(), shot));
    assert_eq!(app.world().resource::<GenerationWorkers>().busy(), 0);
    assert!(app.world().resource::<MvCustomModel>().is_loaded());

    // The images are the pipeline's own answer for the same request.
    let pipeline = MvPipeline::load(&model, &ComputeSettings::default()).unwrap();
    let request = GenerationRequest {
        prompt: "a teddy bear".into(),
        negative_prompt: "blurry".into(),
        cameras: vec![
            PinholeCamera::new(
                bevy_mvcustom::camera::Intrinsics::from_vertical_fov(0.8, 32, 32).unwrap(),
                bevy_mvcustom::camera::Extrinsics::from_camera_to_world(
                    bevy::math::Mat3::IDENTITY,
                    Vec3::ZERO
                ),
                bevy_mvcustom::camera::ImageSize::new(32, 32).unwrap()
            )
            .unwrap();
            3
        ],
        width: 32,
        height: 32,
        steps: 2,
        guidance_scale: 7.5,
        seed: 7,
        techniques: Techniques::none(),
        anchor_depth: None,
        preview_every: None,
        composition: None,
        init_views: None,
    };
    let expected = pipeline
        .generate(&request, &mut |_| {}, &CancelToken::new())
        .unwrap();
    let reports = app.world().resource::<Reports>();
    assert_eq!(reports.finished.len(), 1);
    assert_eq!(reports.finished[0].views, cameras);
    let images = app.world().resource::<Assets<Image>>();
    for (i, &camera) in cameras.iter().enumerate() {
        let status = app.world().get::<MvCustomStatus>(camera).unwrap();
        let handle = status.image().unwrap();
        assert_eq!(&reports.finished[0].images[i], handle);
        let image = images.get(handle).unwrap();
        assert_eq!(image.size(), UVec2::new(32, 32));
        assert_eq!(
            image.texture_descriptor.format,
            bevy::render::render_resource::TextureFormat::Rgba8UnormSrgb
        );
        assert_eq!(
            to_rgba_image(image).unwrap(),
            expected.images[i],
            "view {i}"
        );
    }
}

#[test]
fn cancelling_a_real_generation_stops_and_frees_its_worker() {
    let mut app = headless_app(MvCustomPlugin::from_folder(tiny_model()));
    let shot_settings = MvCustomShot::new("a teddy bear")
        .with_steps(900)
        .with_size(32, 32)
        .with_techniques(Techniques::none());
    let (shot, cameras) = spawn_shot(app.world_mut(), shot_settings, 2);
    app.world_mut().trigger(GenerateShot { shot });
    let step_now = |app: &mut App, at_least: usize| {
        update_until(app, "a step", |w| match state(w, cameras[0]) {
            GenerationState::Running { step, .. } => step >= at_least,
            GenerationState::Queued => false,
            other => panic!("unexpected state {other:?}"),
        });
        match state(app.world(), cameras[0]) {
            GenerationState::Running { step, .. } => (step, Instant::now()),
            other => panic!("unexpected state {other:?}"),
        }
    };
    // The worker's pace, to know how long the rest of the run would take.
    let (first_step, first_at) = step_now(&mut app, 1);
    let (last_step, last_at) = step_now(&mut app, first_step + 4);
    let per_step = (last_at - first_at) / (last_step - first_step) as u32;
    let rest = per_step * (900 - last_step) as u32;
    assert_eq!(app.world().resource::<GenerationWorkers>().busy(), 1);
    let cancelled_at = Instant::now();
    app.world_mut().commands().entity(shot).cancel_generation();
    app.update();
    assert!(
        !is_running(app.world(), shot),
        "the task is dropped at once"
    );
    for &camera in &cameras {
        assert_eq!(state(app.world(), camera), GenerationState::Cancelled);
    }
    assert_eq!(app.world().resource::<Reports>().cancelled, vec![shot]);
    update_until_idle(&mut app, "the worker to stop");
    // The worker stopped at its next step, long before the rest of the run.
    assert!(
        cancelled_at.elapsed() < rest / 4,
        "stopped after {:?}; the rest would take {rest:?}",
        cancelled_at.elapsed()
    );
    // Nothing arrives for the cancelled generation afterwards.
    for _ in 0..5 {
        app.update();
    }
    assert_eq!(state(app.world(), cameras[0]), GenerationState::Cancelled);
    assert!(app.world().resource::<Reports>().finished.is_empty());
}

// ---------------------------------------------------------------------------------------
// Cancellation by despawning, with a generator that runs until cancelled.

fn slow_app_with_running_shot() -> (App, Entity, Vec<Entity>) {
    let mut app = headless_app(MvCustomPlugin::from_generator(Arc::new(Slow)));
    let (shot, cameras) = spawn_shot(app.world_mut(), MvCustomShot::new("x").with_size(8, 8), 3);
    app.world_mut().trigger(GenerateShot { shot });
    update_until(&mut app, "the slow generation to run", |w| {
        matches!(state(w, cameras[0]), GenerationState::Running { .. })
    });
    (app, shot, cameras)
}

/// Asserts that the slow `shot` was cancelled (`cameras` read cancelled, one cancellation
/// reported) and waits for its worker to stop.
fn assert_cancelled(app: &mut App, shot: Entity, cameras: &[Entity]) {
    for &camera in cameras {
        assert_eq!(state(app.world(), camera), GenerationState::Cancelled);
    }
    assert_eq!(app.world().resource::<Reports>().cancelled, vec![shot]);
    update_until_idle(app, "the worker to stop");
}

#[test]
fn despawning_a_camera_cancels_its_shot() {
    let (mut app, shot, cameras) = slow_app_with_running_shot();
    app.world_mut().despawn(cameras[1]);
    app.update();
    assert!(!is_running(app.world(), shot));
    assert_cancelled(&mut app, shot, &[cameras[0], cameras[2]]);
}

#[test]
fn despawning_the_shot_cancels_it_and_keeps_the_cameras() {
    let (mut app, shot, cameras) = slow_app_with_running_shot();
    app.world_mut().despawn(shot);
    app.update();
    for &camera in &cameras {
        assert!(app.world().get::<MvCustom>(camera).is_none());
    }
    assert_cancelled(&mut app, shot, &cameras);
}

#[test]
fn a_new_request_replaces_the_running_generation() {
    let (mut app, shot, cameras) = slow_app_with_running_shot();
    app.world_mut().trigger(GenerateShot { shot });
    assert_eq!(state(app.world(), cameras[0]), GenerationState::Queued);
    update_until(&mut app, "the replacement to run", |w| {
        matches!(state(w, cameras[0]), GenerationState::Running { .. })
    });
    // The first worker stopped; only the replacement computes.
    update_until(&mut app, "one worker", |w| {
        w.resource::<GenerationWorkers>().busy() == 1
    });
    assert!(app.world().resource::<Reports>().cancelled.is_empty());
    app.world_mut().trigger(CancelShot { shot });
    update_until_idle(&mut app, "no worker");
}

// ---------------------------------------------------------------------------------------
// Failures keep the app running.

#[test]
fn a_missing_model_folder_fails_the_shot_and_the_app_keeps_running() {
    let missing = std::env::temp_dir().join("mvcustom-no-such-model");
    let mut app = headless_app(MvCustomPlugin::from_folder(&missing));
    let (shot, cameras) = spawn_shot(app.world_mut(), MvCustomShot::new("x").with_size(32, 32), 2);
    app.world_mut().trigger(GenerateShot { shot });
    update_until(&mut app, "the failure", |w| !state(w, cameras[0]).is_busy());
    let GenerationState::Failed(error) = state(app.world(), cameras[1]) else {
        panic!("{:?}", state(app.world(), cameras[1]));
    };
    assert!(error.contains("mvcustom-no-such-model"), "{error}");
    let failed = &app.world().resource::<Reports>().failed;
    assert_eq!(failed, &vec![(shot, error)]);
    assert!(!app.world().resource::<MvCustomModel>().is_loaded());
    for _ in 0..10 {
        app.update();
    }
    assert!(!is_running(app.world(), shot));
}

#[test]
fn a_failed_startup_load_reports_an_event() {
    let missing = std::env::temp_dir().join("mvcustom-no-such-model-either");
    let mut app = headless_app(MvCustomPlugin::from_folder(&missing).load_on_startup(true));
    update_until(&mut app, "the start-up load", |w| {
        !w.resource::<Reports>().load_failed.is_empty()
    });
    let error = &app.world().resource::<Reports>().load_failed[0];
    assert!(error.contains("mvcustom-no-such-model-either"), "{error}");
}

#[test]
fn a_panicking_generator_becomes_a_failed_status() {
    let mut app = headless_app(MvCustomPlugin::from_generator(Arc::new(Panics)));
    let (shot, cameras) = spawn_shot(app.world_mut(), MvCustomShot::new("x").with_size(8, 8), 1);
    app.world_mut().trigger(GenerateShot { shot });
    update_until(&mut app, "the failure", |w| !state(w, cameras[0]).is_busy());
    assert_eq!(
        state(app.world(), cameras[0]),
        GenerationState::Failed("generation panicked: index 3 out of range".into())
    );
    assert_eq!(app.world().resource::<Reports>().failed.len(), 1);
    assert_eq!(app.world().resource::<GenerationWorkers>().busy(), 0);
    // The app goes on, and the shot can be generated again.
    app.world_mut().trigger(GenerateShot { shot });
    update_until(&mut app, "the second failure", |w| {
        w.resource::<Reports>().failed.len() == 2
    });
}

#[test]
fn bad_shots_fail_with_an_event() {
    let mut app = headless_app(MvCustomPlugin::from_generator(
        Arc::new(Recorder::default()),
    ));
    let world = app.world_mut();
    let not_a_shot = world.spawn_empty().id();
    let empty_shot = world.spawn(MvCustomShot::new("nobody")).id();
    let (anchored, cameras) = spawn_shot(world, MvCustomShot::new("x").with_size(8, 8), 1);
    let outsider = world.spawn(Camera::default()).id();
    world.entity_mut(anchored).insert(MvCustomShot {
        anchor: Some(outsider),
        ..MvCustomShot::new("x").with_size(8, 8)
    });
    let (no_projection, views) = spawn_shot(world, MvCustomShot::new("y").with_size(8, 8), 1);
    world.entity_mut(views[0]).remove::<Projection>();
    for shot in [not_a_shot, empty_shot, anchored, no_projection] {
        world.trigger(GenerateShot { shot });
    }
    app.update();
    let failed = &app.world().resource::<Reports>().failed;
    assert_mentions(failure(failed, not_a_shot), "no `MvCustomShot`");
    assert_mentions(failure(failed, empty_shot), "has no cameras");
    assert_mentions(
        failure(failed, anchored),
        &format!("anchor {outsider} is not one of its cameras"),
    );
    assert_mentions(failure(failed, no_projection), "has no `Projection`");
    assert!(matches!(
        state(app.world(), cameras[0]),
        GenerationState::Failed(_)
    ));
    assert!(matches!(
        state(app.world(), views[0]),
        GenerationState::Failed(_)
    ));
}

// ---------------------------------------------------------------------------------------
// Previews and independent shots.

#[test]
fn previews_update_the_image_before_the_result() {
    let gated = Arc::new(Gated::default());
    let mut app = headless_app(MvCustomPlugin::from_generator(gated.clone()));
    let (shot, cameras) = spawn_shot(
        app.world_mut(),
        MvCustomShot::new("gated").with_size(4, 4),
        2,
    );
    app.world_mut().trigger(GenerateShot { shot });
    update_until(&mut app, "the preview", |w| pixel(w, cameras[1])[0] == 50);
    assert_eq!(pixel(app.world(), cameras[1]), [50, 1, 7, 255]);
    assert!(state(app.world(), cameras[1]).is_busy());
    let handle = app
        .world()
        .get::<MvCustomStatus>(cameras[1])
        .unwrap()
        .image()
        .cloned();
    gated.open.store(true, Ordering::Release);
    update_until(&mut app, "the result", |w| {
        state(w, cameras[1]) == GenerationState::Done
    });
    assert_eq!(pixel(app.world(), cameras[1]), [250, 1, 7, 255]);
    assert_eq!(
        app.world()
            .get::<MvCustomStatus>(cameras[1])
            .unwrap()
            .image()
            .cloned(),
        handle,
        "the same handle carries preview and result"
    );
}

#[test]
fn two_real_shots_run_independently() {
    let mut app = headless_app(MvCustomPlugin::from_folder(tiny_model()).with_size(32, 32));
    let settings = |seed| {
        MvCustomShot::new("a teddy bear")
            .with_seed(seed)
            .with_steps(2)
            .with_techniques(Techniques::none())
    };
    let (first, first_cameras) = spawn_shot(app.world_mut(), settings(1), 2);
    let (second, second_cameras) = spawn_shot(app.world_mut(), settings(2), 3);
    app.world_mut().trigger(GenerateShot { shot: first });
    app.world_mut().trigger(GenerateShot { shot: second });
    update_until(&mut app, "both shots", |w| {
        w.resource::<Reports>().finished.len() == 2
    });
    for &camera in first_cameras.iter().chain(&second_cameras) {
        assert_eq!(state(app.world(), camera), GenerationState::Done);
    }
    let finished = &app.world().resource::<Reports>().finished;
    let of = |shot| finished.iter().find(|f| f.shot == shot).unwrap();
    assert_eq!(of(first).views, first_cameras);
    assert_eq!(of(second).views, second_cameras);
    let images = app.world().resource::<Assets<Image>>();
    let pixels = |handle: &Handle<Image>| to_rgba_image(images.get(handle).unwrap()).unwrap();
    assert_ne!(
        pixels(&of(first).images[0]),
        pixels(&of(second).images[0]),
        "different seeds give different views"
    );
}

#[test]
fn cancelling_one_shot_leaves_the_other_running() {
    let mut app = headless_app(MvCustomPlugin::from_generator(Arc::new(Gated::default())));
    let (first, first_cameras) = spawn_shot(
        app.world_mut(),
        MvCustomShot::new("gated").with_size(4, 4),
        1,
    );
    let (second, second_cameras) = spawn_shot(
        app.world_mut(),
        MvCustomShot::new("free").with_size(4, 4),
        1,
    );
    app.world_mut().trigger(GenerateShot { shot: first });
    app.world_mut().trigger(GenerateShot { shot: second });
    // The first shot blocks its worker until cancelled; the second never waits on it (with
    // one worker thread it may run before or after it, never together).
    update_until(&mut app, "the first preview", |w| {
        pixel(w, first_cameras[0])[0] == 50
    });
    app.world_mut().trigger(CancelShot { shot: first });
    update_until(&mut app, "the second shot", |w| {
        state(w, second_cameras[0]) == GenerationState::Done
    });
    assert_eq!(
        state(app.world(), first_cameras[0]),
        GenerationState::Cancelled
    );
    let reports = app.world().resource::<Reports>();
    assert_eq!(reports.cancelled, vec![first]);
    assert_eq!(reports.finished.len(), 1);
    assert_eq!(reports.finished[0].shot, second);
}

#[test]
fn composing_without_a_box_or_a_renderer_and_restyling_without_a_renderer_fail_the_shot() {
    let recorder = Arc::new(Recorder::default());
    let mut app = headless_app(MvCustomPlugin::from_generator(recorder.clone()).with_size(32, 32));
    let world = app.world_mut();
    // A placeholder without a bounding box, then one with a box (on its child), in an app
    // that does not render.
    let bare = world.spawn(Transform::default()).id();
    let boxed = world
        .spawn(Transform::default())
        .with_child((
            Transform::from_xyz(0.0, 0.5, 0.0),
            bevy::camera::primitives::Aabb::from_min_max(Vec3::splat(-0.5), Vec3::splat(0.5)),
        ))
        .id();
    let (no_box, _) = spawn_shot(world, MvCustomShot::new("a").composed_around(bare), 2);
    let (no_renderer, cameras) =
        spawn_shot(world, MvCustomShot::new("b").composed_around(boxed), 2);
    let (restyled, _) = spawn_shot(world, MvCustomShot::new("c").restyled(0.5), 2);
    for shot in [no_box, no_renderer, restyled] {
        world.trigger(GenerateShot { shot });
    }
    update_until(&mut app, "the three shots to fail", |world| {
        world.resource::<Reports>().failed.len() == 3
    });
    let failed = &app.world().resource::<Reports>().failed;
    assert_mentions(failure(failed, no_box), "has no bounding box");
    assert_mentions(failure(failed, no_renderer), "this app does not render");
    assert_mentions(failure(failed, restyled), "this app does not render");
    assert!(matches!(
        state(app.world(), cameras[0]),
        GenerationState::Failed(_)
    ));
    assert!(recorder.requests.lock().unwrap().is_empty());
}
