//! `mvcustom train`: customization of a subject. Reads the subject definition (RON), trains
//! its pose blocks and token row on a model ([`train_subject`]), and writes the weights file
//! the definition names (by default `<definition>.safetensors` beside it) atomically, with a
//! resumable checkpoint (`<weights>.checkpoint.safetensors`) along the way and a
//! `<weights>.train.json` report (settings, per-step losses, timings, peak memory).
//!
//! Stopping a run (Ctrl-C) loses at most the steps since the last checkpoint: running the same
//! command again resumes from it, with identical results to an uninterrupted run.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use serde::Serialize;

use super::args::{ComputeArgs, parse_fraction};
use super::atomic::write_json_atomic;
use super::error::{CliError, Result};
use super::memory::peak_rss_bytes;
use super::progress::Progress;
use super::report::ToolInfo;
use super::resolve_model;
use crate::diffusion::CancelToken;
use crate::model::pose::{PoseConfig, SamplingConfig};
use crate::mvcustom::customization::LossWeights;
use crate::mvcustom::train::{TrainEvent, TrainSettings, checkpoint_path, train_subject};
use crate::mvcustom::{MvError, MvPipeline, StageTiming, Subject};
use crate::train::AdamWConfig;

/// Arguments of `mvcustom train`.
#[derive(Clone, Debug, Args)]
pub struct TrainArgs {
    /// The subject definition (RON): its token, class word and reference images with their
    /// cameras (inline or from a COLMAP folder) and optional masks. The trained weights go to
    /// the file it names (default: beside it, `<name>.safetensors`).
    #[arg(value_name = "SUBJECT")]
    pub subject: PathBuf,
    /// The diffusers-layout model folder to customize (tokenizer/, text_encoder/, unet/,
    /// motion_adapter/, vae/, scheduler/). Generate with the same model.
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// Optimisation steps in total; a resumed run continues up to this count.
    #[arg(long, default_value_t = 1600, value_parser = clap::value_parser!(u32).range(1..))]
    pub steps: u32,
    /// AdamW learning rate.
    #[arg(long, value_name = "LR", default_value_t = 1e-4, value_parser = parse_learning_rate)]
    pub lr: f64,
    /// Side of the square the reference images are resized to (default: the model's native
    /// size). Generation encodes the references at this size too.
    #[arg(long, value_name = "PIXELS")]
    pub resolution: Option<u32>,
    /// Reference views per step besides the target view.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    pub references_per_step: u32,
    /// Probability of a regularisation step: the references replaced by the all-zero image
    /// and a class image (from --class-images) as the target.
    #[arg(long, value_name = "P", default_value = "0.25", value_parser = parse_fraction)]
    pub reference_dropout: f32,
    /// Probability of training a step with the empty prompt.
    #[arg(long, value_name = "P", default_value = "0.1", value_parser = parse_fraction)]
    pub prompt_dropout: f32,
    /// A folder of images of the subject's class (PNG or JPEG) for regularisation steps;
    /// without it reference drop-out is skipped.
    #[arg(long, value_name = "DIR")]
    pub class_images: Option<PathBuf>,
    /// The resolution levels whose transformer blocks carry pose blocks (level k: the latent
    /// grid downsampled 2^k times; 1,2 are the 32² and 16² levels at 64² latents).
    #[arg(long, value_name = "K,K…", default_value = "1,2", value_parser = parse_levels)]
    pub pose_levels: Levels,
    /// Samples per ray of the pose blocks' feature fields.
    #[arg(long, value_name = "N", default_value_t = 24, value_parser = clap::value_parser!(u32).range(1..))]
    pub ray_samples: u32,
    /// Seed of every random draw (views, drop-outs, timesteps, noise, initial weights).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Write a resumable checkpoint every this many steps (0: only at the end).
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub checkpoint_every: u32,
    /// Delete an existing checkpoint and start from fresh weights instead of resuming.
    #[arg(long)]
    pub restart: bool,
    /// No progress output on stderr.
    #[arg(long, short)]
    pub quiet: bool,
    /// Device and precision.
    #[command(flatten)]
    pub compute: ComputeArgs,
}

/// Resolution levels, as parsed from `--pose-levels`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Levels(pub Vec<usize>);

/// Parses `--pose-levels 1,2`: distinct whole numbers.
pub fn parse_levels(text: &str) -> std::result::Result<Levels, String> {
    let mut levels = Vec::new();
    for part in text.split(',').map(str::trim) {
        let level: usize = part.parse().map_err(|_| {
            format!(
                "expects resolution levels like 1,2, got {text:?} ({part:?} is not a whole number)"
            )
        })?;
        if levels.contains(&level) {
            return Err(format!(
                "expects distinct resolution levels, got {text:?} ({level} twice)"
            ));
        }
        levels.push(level);
    }
    Ok(Levels(levels))
}

/// Parses `--lr`: a positive finite number.
fn parse_learning_rate(text: &str) -> std::result::Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("expects a positive learning rate, got {text:?}")),
    }
}

/// One step of the run, as recorded in the report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StepRecord {
    /// Steps done after it.
    pub step: usize,
    /// Weighted total loss.
    pub total: f32,
    /// Masked ε-MSE.
    pub denoising: f32,
    /// Opacity MSE.
    pub opacity: f32,
    /// Background |α|.
    pub background: f32,
    /// Masked colour MSE.
    pub rgb: f32,
    /// Whether it was a regularisation step (references dropped).
    pub regularisation: bool,
}

/// The `<weights>.train.json` report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TrainReport {
    /// Which tool and version trained.
    pub tool: ToolInfo,
    /// The model folder.
    pub model: PathBuf,
    /// The subject definition.
    pub subject: PathBuf,
    /// The subject token.
    pub token: String,
    /// The weights file written.
    pub weights: PathBuf,
    /// The checkpoint file.
    pub checkpoint: PathBuf,
    /// Class images used for regularisation.
    pub class_images: usize,
    /// Every setting.
    pub settings: TrainSettings,
    /// Steps already done by an earlier run this one resumed (0 for a fresh run).
    pub resumed_at: usize,
    /// The steps this run made.
    pub steps: Vec<StepRecord>,
    /// Wall-clock seconds per stage.
    pub timings: Vec<StageTiming>,
    /// Wall-clock seconds of the whole run.
    pub total_seconds: f64,
    /// Peak resident memory of the process in bytes; null where unavailable.
    pub peak_memory_bytes: Option<u64>,
}

impl TrainArgs {
    /// The settings of a run at `resolution` pixels.
    pub fn settings(&self, resolution: u32) -> TrainSettings {
        TrainSettings {
            steps: self.steps as usize,
            optimiser: AdamWConfig {
                lr: self.lr,
                ..AdamWConfig::default()
            },
            references_per_step: self.references_per_step as usize,
            reference_dropout: f64::from(self.reference_dropout),
            prompt_dropout: f64::from(self.prompt_dropout),
            resolution,
            seed: self.seed,
            checkpoint_every: self.checkpoint_every as usize,
            pose: PoseConfig {
                levels: self.pose_levels.0.clone(),
                sampling: SamplingConfig {
                    samples: self.ray_samples as usize,
                    ..SamplingConfig::default()
                },
            },
            losses: LossWeights::default(),
        }
    }
}

/// Reads every PNG or JPEG image of `dir`, in file-name order.
pub fn read_class_images(dir: &Path) -> Result<Vec<image::RgbaImage>> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| CliError::argument("--class-images", format!("{}: {e}", dir.display())))?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
        })
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(CliError::argument(
            "--class-images",
            format!("{}: holds no PNG or JPEG image", dir.display()),
        ));
    }
    paths
        .iter()
        .map(|p| {
            image::open(p)
                .map(|i| i.to_rgba8())
                .map_err(|e| CliError::file(p, format!("cannot read class image: {e}")))
        })
        .collect()
}

/// Runs `train`.
pub fn run(args: &TrainArgs) -> Result<()> {
    let started = Instant::now();
    // Arguments and small files fail before the model loads.
    let model = resolve_model(args.model.as_deref())?;
    if args.pose_levels.0.is_empty() {
        return Err(CliError::argument(
            "--pose-levels",
            "needs at least one level",
        ));
    }
    let subject = Subject::load(&args.subject).map_err(MvError::from)?;
    let class_images = args
        .class_images
        .as_deref()
        .map(read_class_images)
        .transpose()?
        .unwrap_or_default();
    let checkpoint = checkpoint_path(&subject.weights_path);
    if args.restart && checkpoint.exists() {
        std::fs::remove_file(&checkpoint)
            .map_err(|e| CliError::file(&checkpoint, format!("cannot delete: {e}")))?;
    }
    let settings = args.compute.settings()?;

    let mut progress = Progress::new(args.quiet);
    progress.note(&format!("loading {}…", model.display()));
    let loading = Instant::now();
    let pipeline = MvPipeline::load(&model, &settings)?;
    let mut timings = vec![StageTiming {
        stage: "loading".into(),
        seconds: loading.elapsed().as_secs_f64(),
    }];
    let resolution = args
        .resolution
        .unwrap_or(pipeline.components().vae.config().sample_size as u32);
    let train_settings = args.settings(resolution);

    progress.stage(&format!(
        "training {} ({} references) for {} steps",
        subject.token,
        subject.references.len(),
        train_settings.steps
    ));
    let training = Instant::now();
    let mut steps = Vec::new();
    let mut resumed_at = None;
    let result = train_subject(
        pipeline.components(),
        &subject,
        &class_images,
        &train_settings,
        &mut |event| match event {
            TrainEvent::Step {
                completed,
                total,
                losses,
            } => {
                resumed_at.get_or_insert(completed - 1);
                progress.step(completed, total, Some(losses.total));
                steps.push(StepRecord {
                    step: completed,
                    total: losses.total,
                    denoising: losses.denoising,
                    opacity: losses.opacity,
                    background: losses.background,
                    rgb: losses.rgb,
                    regularisation: losses.regularisation,
                });
            }
            TrainEvent::Checkpoint { step, path } => {
                progress.note(&format!("checkpoint at step {step}: {}", path.display()));
            }
        },
        &CancelToken::new(),
    );
    progress.finish();
    result.map_err(|e| match e {
        MvError::InvalidRequest { field, reason } if field == "width" || field == "height" => {
            CliError::Rejected {
                flag: "--resolution",
                reason,
            }
        }
        other => other.into(),
    })?;
    timings.push(StageTiming {
        stage: "training".into(),
        seconds: training.elapsed().as_secs_f64(),
    });

    let report = TrainReport {
        tool: ToolInfo::new("train"),
        model,
        subject: args.subject.clone(),
        token: subject.token.clone(),
        weights: subject.weights_path.clone(),
        checkpoint,
        class_images: class_images.len(),
        settings: train_settings.clone(),
        resumed_at: resumed_at.unwrap_or(train_settings.steps),
        steps,
        timings,
        total_seconds: started.elapsed().as_secs_f64(),
        peak_memory_bytes: peak_rss_bytes(),
    };
    let report_path = report_path(&subject.weights_path);
    write_json_atomic(&report_path, &report)?;
    let last = report
        .steps
        .last()
        .map(|s| format!(", last loss {:.4}", s.total))
        .unwrap_or_default();
    progress.note(&format!(
        "wrote {} and {}{last}",
        subject.weights_path.display(),
        report_path.display()
    ));
    Ok(())
}

/// The training report of the weights file `weights`: `<weights stem>.train.json`.
pub fn report_path(weights: &Path) -> PathBuf {
    weights.with_extension("train.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_and_bad_ones_name_the_value() {
        assert_eq!(parse_levels("1, 2").unwrap(), Levels(vec![1, 2]));
        assert_eq!(parse_levels("0").unwrap(), Levels(vec![0]));
        let err = parse_levels("1,x").unwrap_err();
        assert!(err.contains("\"x\"") && err.contains("1,x"), "{err}");
        assert!(parse_levels("1,1").unwrap_err().contains("twice"));
        assert!(parse_learning_rate("0").is_err() && parse_learning_rate("nan").is_err());
        assert_eq!(parse_learning_rate("3e-4").unwrap(), 3e-4);
    }

    #[test]
    fn report_and_checkpoint_sit_beside_the_weights() {
        let weights = Path::new("subjects/teddy.safetensors");
        assert_eq!(report_path(weights), Path::new("subjects/teddy.train.json"));
        assert_eq!(
            checkpoint_path(weights),
            Path::new("subjects/teddy.checkpoint.safetensors")
        );
    }
}
