//! Frame time of a headless app while a generation runs versus idle: the frame loop must not
//! wait on inference. Each frame is one `App::update` of a small scene (a thousand spinning
//! entities, transform propagation, the plugin's systems); criterion times the frames, and
//! the median and 99th percentile of every frame it ran (warm-up included) are printed at
//! the end.
//!
//! `cargo bench --bench frame_time`; the model is `$MVCUSTOM_MODEL` or the tiny fixture model.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bevy::prelude::*;
use bevy::transform::TransformPlugin;
use bevy_mvcustom::prelude::*;
use criterion::Criterion;

/// Steps of the generation kept running during the busy measurement: enough to outlast it.
const BUSY_STEPS: u32 = 500;

fn model_dir() -> PathBuf {
    std::env::var_os("MVCUSTOM_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../shared/fixtures/parity/animatediff_pipeline_tiny")
        })
}

/// Something for every frame to do, like a game's own systems.
#[derive(Component)]
struct Spin(f32);

fn spin(mut query: Query<(&Spin, &mut Transform)>) {
    for (spin, mut transform) in &mut query {
        transform.rotate_y(spin.0);
    }
}

/// The app, its shot and one of the shot's cameras.
fn scene() -> (App, Entity, Entity) {
    let mut app = App::new();
    app.add_plugins((
        MinimalPlugins,
        AssetPlugin::default(),
        ImagePlugin::default(),
        TransformPlugin,
        MvCustomPlugin::from_folder(model_dir()),
    ))
    .add_systems(Update, spin);
    app.finish();
    app.cleanup();
    let world = app.world_mut();
    for i in 0..1_000 {
        let parent = world
            .spawn((Spin(0.01), Transform::from_xyz(i as f32, 0.0, 0.0)))
            .id();
        world.spawn((
            Spin(0.02),
            Transform::from_xyz(0.0, 1.0, 0.0),
            ChildOf(parent),
        ));
    }
    let shot = world
        .spawn(
            MvCustomShot::new("a teddy bear")
                .with_size(32, 32)
                .with_steps(BUSY_STEPS)
                .with_techniques(Techniques::none()),
        )
        .id();
    let cameras: Vec<Entity> = (0..4)
        .map(|i| {
            let angle = i as f32 * std::f32::consts::FRAC_PI_2;
            world
                .spawn((
                    Camera::default(),
                    Projection::Perspective(PerspectiveProjection::default()),
                    Transform::from_xyz(3.0 * angle.sin(), 1.0, 3.0 * angle.cos())
                        .looking_at(Vec3::ZERO, Vec3::Y),
                    MvCustom::new(shot).with_order(i),
                ))
                .id()
        })
        .collect();
    app.update();
    (app, shot, cameras[0])
}

fn state(app: &App, camera: Entity) -> GenerationState {
    app.world()
        .get::<MvCustomStatus>(camera)
        .map(|status| status.state().clone())
        .unwrap_or_default()
}

/// Keeps a generation of `shot` denoising: starts one when none is busy, and waits (with the
/// frame loop running) until it is past loading and into its steps.
fn keep_generating(app: &mut App, shot: Entity, camera: Entity) {
    if matches!(state(app, camera), GenerationState::Running { step, .. } if step >= 1) {
        return;
    }
    if !state(app, camera).is_busy() {
        app.world_mut().trigger(GenerateShot { shot });
    }
    let start = Instant::now();
    while !matches!(state(app, camera), GenerationState::Running { step, .. } if step >= 1) {
        if let GenerationState::Failed(error) = state(app, camera) {
            panic!("the generation failed: {error}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "the generation did not start"
        );
        app.update();
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Times frames with criterion, recording each one's duration into `frames`.
fn bench_frames(
    criterion: &mut Criterion,
    name: &str,
    app: &mut App,
    frames: &mut Vec<Duration>,
    mut before: impl FnMut(&mut App),
) {
    criterion.bench_function(name, |b| {
        b.iter_custom(|iters| {
            before(app);
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                app.update();
                let elapsed = start.elapsed();
                frames.push(elapsed);
                total += elapsed;
            }
            total
        })
    });
}

/// The `q`-quantile of `frames` (nearest rank).
fn quantile(frames: &mut [Duration], q: f64) -> Duration {
    frames.sort_unstable();
    if frames.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * frames.len() as f64).ceil() as usize).clamp(1, frames.len());
    frames[rank - 1]
}

fn main() {
    let mut criterion = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .configure_from_args();

    let (mut app, shot, camera) = scene();
    let mut idle = Vec::new();
    bench_frames(&mut criterion, "frame/idle", &mut app, &mut idle, |_| {});

    // Load the model and get into the steps before criterion starts timing.
    keep_generating(&mut app, shot, camera);
    let mut busy = Vec::new();
    bench_frames(
        &mut criterion,
        "frame/generating",
        &mut app,
        &mut busy,
        |app| keep_generating(app, shot, camera),
    );
    let still_running = state(&app, camera).is_busy();
    app.world_mut().trigger(CancelShot { shot });
    app.update();

    criterion.final_summary();
    println!("frames recorded while {:<10}   median        p99", "");
    for (name, frames) in [("idle", &mut idle), ("generating", &mut busy)] {
        let count = frames.len();
        let median = quantile(frames, 0.5);
        let p99 = quantile(frames, 0.99);
        println!("{name:<10} {count:>8} frames   {median:>10.3?}   {p99:>10.3?}");
    }
    if !still_running {
        println!("note: the generation ended during the measurement (frames after it were idle)");
    }
}
