//! `mvcustom pretrain vae|denoiser`: trains the components of a model folder from scratch on
//! the procedural world (how the embedded default model in `assets/default_model` is made).
//! Progress goes to stderr, every step's loss to `<work>/<stage>.losses.csv`; checkpoints are
//! written atomically, so a run may be killed at any time and resumed by running the same
//! command again (it continues from the last checkpoint up to `--steps`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Args, Subcommand, ValueEnum};

use super::error::{CliError, Result};
use super::progress::step_line;
use crate::diffusion::CancelToken;
use crate::pretrain::{
    DenoiserSettings, PretrainError, PretrainEvent, RunSettings, VaeSettings, train_denoiser,
    train_vae,
};
use crate::train::TimestepSampling;

/// `mvcustom pretrain`'s stages.
#[derive(Clone, Debug, Subcommand)]
pub enum PretrainCommand {
    /// Train the autoencoder (`vae/`) on single views; writes its weights and measured
    /// latent scaling factor.
    Vae(VaeArgs),
    /// Train the text encoder, UNet and motion modules jointly on multi-view clips with dense
    /// attention (needs a trained `vae/`).
    Denoiser(DenoiserArgs),
}

/// Arguments of `mvcustom pretrain`.
#[derive(Clone, Debug, Args)]
#[command(
    after_help = "Examples (the embedded default model):\n  mvcustom pretrain vae --steps 3000 --batch 16\n  mvcustom pretrain denoiser --steps 4000 --batch 4 --views 8\nRe-running a command resumes from its checkpoint in --work."
)]
pub struct PretrainArgs {
    /// The stage to train.
    #[command(subcommand)]
    pub stage: PretrainCommand,
}

/// Arguments every stage has.
#[derive(Clone, Debug, Args)]
pub struct RunArgs {
    /// Model folder holding the component configurations; the weights are written into it.
    #[arg(long, default_value_os_t = crate::mvcustom::default_model_dir())]
    pub model: PathBuf,
    /// Folder for checkpoints and loss logs.
    #[arg(long, default_value = "target/pretrain")]
    pub work: PathBuf,
    /// Total optimisation steps (a resumed run continues up to this count).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub steps: u64,
    /// Examples per step (images for `vae`, clips for `denoiser`).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch: u64,
    /// Peak learning rate.
    #[arg(long, default_value_t = 5e-4)]
    pub lr: f64,
    /// Linear warm-up steps.
    #[arg(long, default_value_t = 100)]
    pub warmup: u64,
    /// Seed of initialisation, data order and noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Write a checkpoint and the weights every this many steps.
    #[arg(long, default_value_t = 100)]
    pub save_every: u64,
    /// Side of the square training views, pixels.
    #[arg(long, default_value_t = 64)]
    pub size: u32,
    /// No progress output.
    #[arg(long)]
    pub quiet: bool,
    /// Keep a moving average of the weights with this decay (e.g. 0.999) and write it into
    /// the model folder instead of the last step's weights (diffusion samples are better from
    /// it).
    #[arg(long)]
    pub ema_decay: Option<f64>,
}

/// Arguments of `mvcustom pretrain vae`.
#[derive(Clone, Debug, Args)]
pub struct VaeArgs {
    /// Settings every stage has.
    #[command(flatten)]
    pub run: RunArgs,
    /// Weight of the KL term.
    #[arg(long, default_value_t = 1e-4)]
    pub kl_weight: f64,
    /// Train on random square crops of this side (default: whole views).
    #[arg(long)]
    pub crop: Option<u32>,
}

/// `--timesteps`: how a denoiser run draws its training timesteps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TimestepArg {
    /// Uniform over all training timesteps.
    Uniform,
    /// Biased to high noise, `t = (1 − u³)·T`.
    HighNoise,
}

impl TimestepArg {
    /// The sampling it names.
    pub fn sampling(self) -> TimestepSampling {
        match self {
            Self::Uniform => TimestepSampling::Uniform,
            Self::HighNoise => TimestepSampling::HighNoise,
        }
    }
}

/// Arguments of `mvcustom pretrain denoiser`.
#[derive(Clone, Debug, Args)]
pub struct DenoiserArgs {
    /// Settings every stage has.
    #[command(flatten)]
    pub run: RunArgs,
    /// Views per clip.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    pub views: u32,
    /// Probability of the empty prompt (for classifier-free guidance).
    #[arg(long, default_value_t = 0.1)]
    pub caption_dropout: f64,
    /// Dense attention's spatial window radius (default: the whole clip).
    #[arg(long)]
    pub attention_window: Option<usize>,
    /// How training timesteps are drawn: uniformly, or biased to high noise
    /// (t = (1 − u³)·T), where a clip's layout, environment and prompt are decided.
    #[arg(long, value_enum, default_value_t = TimestepArg::Uniform)]
    pub timesteps: TimestepArg,
}

impl RunArgs {
    fn settings(&self) -> RunSettings {
        RunSettings {
            model_dir: self.model.clone(),
            work_dir: self.work.clone(),
            steps: self.steps as usize,
            batch_size: self.batch as usize,
            learning_rate: self.lr,
            warmup_steps: self.warmup as usize,
            seed: self.seed,
            save_every: self.save_every as usize,
            ema_decay: self.ema_decay,
        }
    }
}

/// Runs `mvcustom pretrain`.
pub fn run(args: &PretrainArgs) -> Result<()> {
    let cancel = CancelToken::new();
    match &args.stage {
        PretrainCommand::Vae(vae) => {
            let settings = VaeSettings {
                run: vae.run.settings(),
                image_size: vae.run.size,
                crop: vae.crop,
                kl_weight: vae.kl_weight,
            };
            let mut log = LossLog::open(&vae.run.work, "vae", vae.run.quiet)?;
            let summary = train_vae(&settings, &mut |e| log.event(&e), &cancel)
                .map_err(|e| pretrain_error(e, "--model"))?;
            log.finish()?;
            println!(
                "vae: reconstruction L1 {:.4} on held-out views; scaling factor {:.5}",
                summary.reconstruction_l1, summary.scaling_factor
            );
        }
        PretrainCommand::Denoiser(denoiser) => {
            let settings = DenoiserSettings {
                run: denoiser.run.settings(),
                views: denoiser.views,
                image_size: denoiser.run.size,
                caption_dropout: denoiser.caption_dropout,
                attention_window: denoiser.attention_window,
                timesteps: denoiser.timesteps.sampling(),
            };
            let mut log = LossLog::open(&denoiser.run.work, "denoiser", denoiser.run.quiet)?;
            train_denoiser(&settings, &mut |e| log.event(&e), &cancel)
                .map_err(|e| pretrain_error(e, "--model"))?;
            log.finish()?;
        }
    }
    Ok(())
}

/// A training error as a CLI error: bad settings name their flag.
fn pretrain_error(error: PretrainError, model_flag: &'static str) -> CliError {
    match error {
        PretrainError::Setting { field, reason } => {
            let flag = match field {
                "batch_size" => "--batch",
                "learning_rate" => "--lr",
                "image_size" => "--size",
                "kl_weight" => "--kl-weight",
                "crop" => "--crop",
                "caption_dropout" => "--caption-dropout",
                "views" => "--views",
                "ema_decay" => "--ema-decay",
                _ => model_flag,
            };
            CliError::Rejected { flag, reason }
        }
        PretrainError::File { path, reason } => CliError::file(path, reason),
        PretrainError::Model(e) => CliError::Model(e),
        other => CliError::file(PathBuf::from("pretrain"), other),
    }
}

/// Progress on stderr and one `step,loss,seconds` line per step in the loss log.
struct LossLog {
    file: std::io::BufWriter<std::fs::File>,
    path: PathBuf,
    quiet: bool,
    started: Instant,
    first_step: usize,
    smoothed: Option<f32>,
}

impl LossLog {
    fn open(work: &Path, stage: &str, quiet: bool) -> Result<Self> {
        std::fs::create_dir_all(work).map_err(|e| CliError::file(work, e))?;
        let path = work.join(format!("{stage}.losses.csv"));
        let fresh = !path.exists();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| CliError::file(&path, e))?;
        let mut file = std::io::BufWriter::new(file);
        if fresh {
            writeln!(file, "step,loss,seconds").map_err(|e| CliError::file(&path, e))?;
        }
        Ok(Self {
            file,
            path,
            quiet,
            started: Instant::now(),
            first_step: 0,
            smoothed: None,
        })
    }

    fn event(&mut self, event: &PretrainEvent) {
        match *event {
            PretrainEvent::Started {
                parameters,
                first_step,
            } => {
                self.first_step = first_step;
                self.started = Instant::now();
                if let Err(e) = self.forget_after(first_step) {
                    eprintln!("warning: {}: {e}", self.path.display());
                }
                if !self.quiet {
                    eprintln!(
                        "training {parameters} parameters from step {first_step}; losses in {}",
                        self.path.display()
                    );
                }
            }
            PretrainEvent::Step {
                completed,
                total,
                loss,
                seconds,
            } => {
                // A failed log write must not stop training: the checkpoint is what matters.
                let _ = writeln!(self.file, "{completed},{loss},{seconds:.3}");
                let smoothed = self.smoothed.map_or(loss, |s| 0.98 * s + 0.02 * loss);
                self.smoothed = Some(smoothed);
                if !self.quiet && (completed % 10 == 0 || completed == total) {
                    let line = step_line(
                        completed,
                        total,
                        self.started.elapsed().as_secs_f64(),
                        completed - self.first_step,
                    );
                    eprintln!("{line}  step {completed}  loss {smoothed:.4} (smoothed)");
                }
            }
            PretrainEvent::Saved {
                step,
                ref checkpoint,
            } => {
                let _ = self.file.flush();
                if !self.quiet {
                    eprintln!("saved step {step} ({})", checkpoint.display());
                }
            }
        }
    }

    /// Drops the rows of steps after `step` (logged by a run that was stopped before its
    /// next checkpoint; this run repeats them).
    fn forget_after(&mut self, step: usize) -> std::io::Result<()> {
        self.file.flush()?;
        let text = std::fs::read_to_string(&self.path)?;
        let kept: Vec<&str> = text
            .lines()
            .filter(|line| {
                let first = line.split(',').next().unwrap_or_default();
                first.parse::<usize>().map_or(true, |s| s <= step)
            })
            .collect();
        if kept.len() != text.lines().count() {
            let mut bytes = kept.join("\n").into_bytes();
            bytes.push(b'\n');
            crate::train::write_atomic(&self.path, &bytes)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            let file = std::fs::OpenOptions::new().append(true).open(&self.path)?;
            self.file = std::io::BufWriter::new(file);
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        self.file.flush().map_err(|e| CliError::file(&self.path, e))
    }
}
