//! Generation without a window: an orbit rig of Bevy cameras around the origin, one shot,
//! one PNG file per view.
//!
//! ```text
//! cargo run --example headless -- [--model DIR] [--out DIR] [--prompt TEXT]
//!                                 [--views N] [--size PX] [--steps N] [--seed N]
//! ```
//!
//! The model folder is `--model`, else `$MVCUSTOM_MODEL`, else the embedded default model
//! (`assets/default_model`). The views go to
//! `--out` (default `target/headless`) as `view_0.png`, `view_1.png`, … Exits non-zero with a
//! message when anything fails.

use std::path::PathBuf;
use std::time::Duration;

use bevy::app::ScheduleRunnerPlugin;
use bevy::log::LogPlugin;
use bevy::prelude::*;
use bevy::transform::TransformPlugin;
use bevy_mvcustom::plugin::save_png;
use bevy_mvcustom::prelude::*;

/// What the command line asked for.
#[derive(Resource, Clone, Debug)]
struct Options {
    model: PathBuf,
    out: PathBuf,
    prompt: String,
    views: u32,
    size: u32,
    steps: u32,
    seed: u64,
}

impl Options {
    fn parse() -> Result<Self, String> {
        let mut options = Options {
            model: std::env::var_os("MVCUSTOM_MODEL")
                .map(PathBuf::from)
                .unwrap_or_else(bevy_mvcustom::mvcustom::default_model_dir),
            out: PathBuf::from("target/headless"),
            prompt: "a red cube on snow".into(),
            views: 6,
            size: 64,
            steps: 20,
            seed: 0,
        };
        let mut args = std::env::args().skip(1);
        while let Some(flag) = args.next() {
            let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
            let number = |what: &str| {
                value
                    .parse::<u64>()
                    .map_err(|e| format!("{what} `{value}`: {e}"))
            };
            match flag.as_str() {
                "--model" => options.model = PathBuf::from(&value),
                "--out" => options.out = PathBuf::from(&value),
                "--prompt" => options.prompt = value.clone(),
                "--views" => {
                    options.views = u32::try_from(number("--views")?).map_err(|e| e.to_string())?
                }
                "--size" => {
                    options.size = u32::try_from(number("--size")?).map_err(|e| e.to_string())?
                }
                "--steps" => {
                    options.steps = u32::try_from(number("--steps")?).map_err(|e| e.to_string())?
                }
                "--seed" => options.seed = number("--seed")?,
                other => {
                    return Err(format!(
                        "unknown argument `{other}` (see the example's doc)"
                    ));
                }
            }
        }
        if options.views == 0 {
            return Err("--views must be at least 1".into());
        }
        Ok(options)
    }
}

fn main() -> AppExit {
    // CPU generation allocates and frees tensors at a high rate: keep freed memory for reuse.
    bevy_mvcustom::heap::retain_freed_memory();
    let options = match Options::parse() {
        Ok(options) => options,
        Err(message) => return fail(&message),
    };
    if let Err(e) = std::fs::create_dir_all(&options.out) {
        return fail(&format!("cannot create {}: {e}", options.out.display()));
    }
    println!(
        "generating {} views of \"{}\" with the model at {}",
        options.views,
        options.prompt,
        options.model.display()
    );
    App::new()
        .add_plugins((
            // Sleep between frames rather than spin: the frames only poll the generation.
            MinimalPlugins.set(ScheduleRunnerPlugin::run_loop(Duration::from_millis(10))),
            LogPlugin::default(),
            AssetPlugin::default(),
            ImagePlugin::default(),
            TransformPlugin,
            MvCustomPlugin::from_folder(&options.model)
                .with_size(options.size, options.size)
                .with_steps(options.steps),
        ))
        .insert_resource(options)
        .add_systems(Startup, spawn_rig)
        .add_observer(write_views)
        .add_observer(report_failure)
        .run()
}

/// Prints `message` and gives the failing exit code.
fn fail(message: &str) -> AppExit {
    eprintln!("headless: {message}");
    AppExit::from_code(1)
}

/// A shot and an orbit of cameras around the origin, then the generation request.
fn spawn_rig(mut commands: Commands, options: Res<Options>) {
    let shot = commands
        .spawn(
            MvCustomShot::new(options.prompt.clone())
                .with_negative_prompt("blurry, low quality")
                .with_seed(options.seed)
                // This scene has no geometry to give the anchor view's depth, so depth-aware
                // feature rendering and the latent completion built on it are off.
                .with_techniques(Techniques {
                    dfr: None,
                    clc: None,
                    ..Techniques::default()
                }),
        )
        .id();
    let (radius, height) = (3.0, 1.2);
    for i in 0..options.views {
        let azimuth = i as f32 / options.views as f32 * std::f32::consts::TAU;
        let eye = Vec3::new(radius * azimuth.sin(), height, radius * azimuth.cos());
        commands.spawn((
            Camera3d::default(),
            Projection::Perspective(PerspectiveProjection {
                fov: 0.8,
                ..default()
            }),
            Transform::from_translation(eye).looking_at(Vec3::ZERO, Vec3::Y),
            MvCustom::new(shot).with_order(i as i32),
        ));
    }
    commands.entity(shot).generate_views();
}

/// Writes every view as a PNG (atomically) and exits.
fn write_views(
    finished: On<ShotFinished>,
    images: Res<Assets<Image>>,
    options: Res<Options>,
    mut exit: MessageWriter<AppExit>,
) {
    let mut written = Vec::with_capacity(finished.images.len());
    for (i, handle) in finished.images.iter().enumerate() {
        let path = options.out.join(format!("view_{i}.png"));
        let saved = images
            .get(handle)
            .ok_or_else(|| format!("view {i}: its image asset is gone"))
            .and_then(|image| save_png(image, &path).map_err(|e| e.to_string()));
        if let Err(message) = saved {
            exit.write(fail(&message));
            return;
        }
        written.push(path);
    }
    let folder = std::fs::canonicalize(&options.out).unwrap_or_else(|_| options.out.clone());
    println!("wrote {} views to {}:", written.len(), folder.display());
    for path in &written {
        println!("  {}", path.display());
    }
    for timing in &finished.timings {
        println!("  {}: {:.2} s", timing.stage, timing.seconds);
    }
    exit.write(AppExit::Success);
}

/// Reports a failed generation and exits non-zero.
fn report_failure(failed: On<ShotFailed>, mut exit: MessageWriter<AppExit>) {
    exit.write(fail(&format!("generation failed: {}", failed.error)));
}
