//! Learn a subject from its reference images, with live progress: one of the demo subjects
//! of `assets/subjects/<name>/` (a `<name>.subject.ron` naming its reference images, masks and
//! cameras) is trained on the plugin's model in a task-pool task while the window stays
//! responsive. The control panel shows the training's progress bar and loss plot; once it is
//! done, Generate shows the trained subject from an orbit of four cameras.
//!
//! ```text
//! cargo run --example train_subject -- [NAME] [--model DIR] [--steps N] [--resolution PX]
//!                                      [--lr X] [--levels 0,1] [--headless]
//!                                      [--screenshot FILE]
//! ```
//!
//! NAME is a folder of `assets/subjects/` (default: the first). The model is the embedded
//! default unless `--model DIR` (or `$MVCUSTOM_MODEL`) names a diffusers-layout folder. The
//! weights are written beside the definition (`subject.safetensors`); a run resumes from the
//! checkpoint an interrupted one left there. `--headless` trains without a window, printing
//! each step's loss and a plot of the losses at the end, and exits (0 on success).
//! `--screenshot FILE` saves the window to FILE once training is done, then exits.

use std::path::PathBuf;
use std::time::Duration;

use bevy::app::ScheduleRunnerPlugin;
use bevy::log::LogPlugin;
use bevy::prelude::*;
use bevy::render::view::screenshot::{Screenshot, ScreenshotCaptured, save_to_disk};
use bevy::transform::TransformPlugin;
use bevy_egui::{EguiGlobalSettings, PrimaryEguiContext};
use bevy_mvcustom::model::pose::PoseConfig;
use bevy_mvcustom::mvcustom::train::TrainSettings;
use bevy_mvcustom::mvcustom::{default_model_dir, demo_subjects_dir};
use bevy_mvcustom::plugin::ui::{MvCustomUiPlugin, MvCustomUiState};
use bevy_mvcustom::plugin::{
    MvCustomSubject, TrainSubject, TrainingFailed, TrainingFinished, TrainingState, TrainingStatus,
    demo_subjects,
};
use bevy_mvcustom::prelude::*;

/// What the command line asked for.
#[derive(Resource, Clone, Debug)]
struct Options {
    /// The demo subject's name and definition asset path.
    subject: (String, String),
    /// A model folder; `None`: the embedded default.
    model: Option<PathBuf>,
    settings: TrainSettings,
    headless: bool,
    screenshot: Option<PathBuf>,
}

impl Options {
    fn parse() -> Result<Self, String> {
        let mut name = None;
        let mut model = std::env::var_os("MVCUSTOM_MODEL").map(PathBuf::from);
        let mut steps = None;
        let mut resolution = None;
        let mut lr = None;
        let mut levels = None;
        let mut headless = false;
        let mut screenshot = None;
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value = |flag: &str| args.next().ok_or_else(|| format!("{flag} needs a value"));
            match arg.as_str() {
                "--model" => model = Some(PathBuf::from(value("--model")?)),
                "--steps" => steps = Some(parse::<usize>("--steps", &value("--steps")?)?),
                "--resolution" => {
                    resolution = Some(parse::<u32>("--resolution", &value("--resolution")?)?)
                }
                "--lr" => lr = Some(parse::<f64>("--lr", &value("--lr")?)?),
                "--levels" => {
                    levels = Some(
                        value("--levels")?
                            .split(',')
                            .map(|level| parse::<usize>("--levels", level))
                            .collect::<Result<Vec<_>, _>>()?,
                    )
                }
                "--headless" => headless = true,
                "--screenshot" => screenshot = Some(PathBuf::from(value("--screenshot")?)),
                flag if flag.starts_with("--") => {
                    return Err(format!("unknown option `{flag}` (see the example's doc)"));
                }
                subject => name = Some(subject.to_owned()),
            }
        }
        let subjects = demo_subjects();
        let subject = match name {
            Some(name) => subjects.iter().find(|s| s.name == name),
            None => subjects.first(),
        }
        .ok_or_else(|| {
            format!(
                "no such demo subject in {} (there are: {})",
                demo_subjects_dir().display(),
                if subjects.is_empty() {
                    "none yet".to_owned()
                } else {
                    subjects
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            )
        })?;
        match &model {
            Some(folder) if !folder.is_dir() => {
                return Err(format!("no model folder at {}", folder.display()));
            }
            None if !default_model_dir().join("unet").is_dir() => {
                return Err(format!(
                    "the embedded default model is not at {}; pass a model folder with --model",
                    default_model_dir().display()
                ));
            }
            _ => {}
        }
        // The embedded default is a two-level UNet at 64² pixels: its pose blocks sit at
        // both levels. A folder gets the method's defaults (SD-1.5: levels 1 and 2, 512²).
        let embedded = model.is_none();
        let mut settings = TrainSettings {
            steps: 100,
            resolution: if embedded { 64 } else { 512 },
            checkpoint_every: 25,
            ..TrainSettings::default()
        };
        if embedded {
            settings.pose = PoseConfig {
                levels: vec![0, 1],
                ..PoseConfig::default()
            };
        }
        settings.steps = steps.unwrap_or(settings.steps);
        settings.resolution = resolution.unwrap_or(settings.resolution);
        settings.optimiser.lr = lr.unwrap_or(settings.optimiser.lr);
        if let Some(levels) = levels {
            settings.pose.levels = levels;
        }
        if settings.steps == 0 || settings.resolution == 0 {
            return Err("--steps and --resolution must be positive".into());
        }
        Ok(Options {
            subject: (subject.name.clone(), subject.asset_path.clone()),
            model,
            settings,
            headless,
            screenshot,
        })
    }

    /// The plugin for the chosen model.
    fn plugin(&self) -> MvCustomPlugin {
        match &self.model {
            Some(folder) => MvCustomPlugin::from_folder(folder),
            None => MvCustomPlugin::embedded(),
        }
        .with_size(64, 64)
        .with_steps(20)
    }
}

/// A number of type `T` from an option's text.
fn parse<T: std::str::FromStr>(flag: &str, text: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    text.parse().map_err(|e| format!("{flag} `{text}`: {e}"))
}

fn main() -> AppExit {
    // CPU generation allocates and frees tensors at a high rate: keep freed memory for reuse.
    bevy_mvcustom::heap::retain_freed_memory();
    let options = match Options::parse() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("train_subject: {message}");
            return AppExit::from_code(1);
        }
    };
    println!(
        "train_subject: `{}` for {} steps at {}² px",
        options.subject.0, options.settings.steps, options.settings.resolution
    );
    let mut app = App::new();
    if options.headless {
        app.add_plugins((
            MinimalPlugins.set(ScheduleRunnerPlugin::run_loop(Duration::from_millis(10))),
            LogPlugin::default(),
            AssetPlugin::default(),
            TransformPlugin,
            options.plugin(),
        ))
        .add_systems(Update, print_steps);
    } else {
        app.add_plugins(DefaultPlugins.set(WindowPlugin {
            primary_window: Some(Window {
                title: "MVCustom: train a subject".into(),
                resolution: (1100, 800).into(),
                ..default()
            }),
            ..default()
        }))
        .add_plugins((options.plugin(), MvCustomUiPlugin))
        .insert_resource(ClearColor(Color::srgb(0.12, 0.13, 0.15)))
        .insert_resource(EguiGlobalSettings {
            auto_create_primary_context: false,
            ..default()
        })
        .add_systems(Startup, (spawn_camera, set_panel_settings));
    }
    app.insert_resource(options)
        .add_systems(Startup, spawn_subject_and_train)
        .add_observer(report_finished)
        .add_observer(report_failure);
    app.run()
}

/// The subject entity (training starts at once), and a shot of it with an orbit of four
/// cameras (they only provide poses: they render nothing) for Generate.
fn spawn_subject_and_train(
    mut commands: Commands,
    options: Res<Options>,
    asset_server: Res<AssetServer>,
) {
    let (name, path) = &options.subject;
    let subject: Handle<SubjectAsset> = asset_server.load(path.clone());
    let entity = commands
        .spawn((
            MvCustomSubject::new(subject.clone()),
            Name::new(name.clone()),
        ))
        .id();
    commands.trigger(TrainSubject::new(entity, options.settings.clone()));
    let shot = commands
        .spawn((
            MvCustomShot::new("a photo of {subject}").with_subject(subject),
            Name::new(format!("{name} views")),
        ))
        .id();
    for k in 0..4 {
        let azimuth = k as f32 * std::f32::consts::FRAC_PI_2;
        commands.spawn((
            Camera3d::default(),
            Camera {
                is_active: false,
                ..default()
            },
            Transform::from_xyz(2.5 * azimuth.sin(), 1.0, 2.5 * azimuth.cos())
                .looking_at(Vec3::ZERO, Vec3::Y),
            MvCustom::new(shot).with_order(k),
            Name::new(format!("view {k}")),
        ));
    }
}

/// The camera egui draws the panel on (not one of the shot's cameras, which render nothing).
fn spawn_camera(mut commands: Commands) {
    commands.spawn((Camera2d, PrimaryEguiContext));
}

/// The panel's Train button uses the same settings as the command line.
fn set_panel_settings(options: Res<Options>, mut panel: ResMut<MvCustomUiState>) {
    panel.train_settings = options.settings.clone();
}

/// `--headless`: prints every step's loss as it arrives.
fn print_steps(statuses: Query<&TrainingStatus, Changed<TrainingStatus>>) {
    for status in &statuses {
        if let TrainingState::Running { step, total, loss } = status.state() {
            println!("step {step:>5}/{total}: loss {loss:.5}");
        }
    }
}

/// Reports the weights written (with a plot of the losses); `--headless` exits,
/// `--screenshot` saves the window, then exits.
fn report_finished(
    finished: On<TrainingFinished>,
    options: Res<Options>,
    statuses: Query<&TrainingStatus>,
    mut commands: Commands,
    mut exit: MessageWriter<AppExit>,
) {
    println!(
        "train_subject: weights written to {}",
        finished.weights.display()
    );
    if let Ok(status) = statuses.get(finished.entity) {
        println!("{}", sparkline(status.losses()));
    }
    if options.headless {
        exit.write(AppExit::Success);
    } else if let Some(path) = options.screenshot.clone() {
        commands
            .spawn(Screenshot::primary_window())
            .observe(save_to_disk(path.clone()))
            .observe(
                move |_: On<ScreenshotCaptured>, mut exit: MessageWriter<AppExit>| {
                    println!("train_subject: saved {}", path.display());
                    exit.write(AppExit::Success);
                },
            );
    } else {
        println!("train_subject: press Generate in the panel to see the subject");
    }
}

/// Reports a failed training; `--headless` exits with a failure.
fn report_failure(
    failed: On<TrainingFailed>,
    options: Res<Options>,
    mut exit: MessageWriter<AppExit>,
) {
    eprintln!("train_subject: training failed: {}", failed.error);
    if options.headless {
        exit.write(AppExit::from_code(1));
    }
}

/// The losses as one line of block characters, one per bucket of steps (at most 60), low
/// to high, with their range.
fn sparkline(losses: &[f32]) -> String {
    const BLOCKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    if losses.is_empty() {
        return "no losses".into();
    }
    let buckets = losses.len().min(60);
    let means: Vec<f32> = (0..buckets)
        .map(|b| {
            let slice = &losses[b * losses.len() / buckets..(b + 1) * losses.len() / buckets];
            slice.iter().sum::<f32>() / slice.len().max(1) as f32
        })
        .collect();
    let (min, max) = means
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &m| {
            (lo.min(m), hi.max(m))
        });
    let line: String = means
        .iter()
        .map(|&m| {
            let t = if max > min {
                (m - min) / (max - min)
            } else {
                0.5
            };
            BLOCKS[((t * 7.0).round() as usize).min(7)]
        })
        .collect();
    format!(
        "loss {line} (from {:.4} to {:.4})",
        losses[0],
        losses[losses.len() - 1]
    )
}
