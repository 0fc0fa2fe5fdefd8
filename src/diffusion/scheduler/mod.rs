//! Noise schedulers configured from a diffusers `scheduler_config.json`, computing exactly what
//! diffusers' classes of the same names compute: [`DdimScheduler`], [`EulerDiscreteScheduler`]
//! and [`DpmSolverMultistepScheduler`], behind the [`Scheduler`] trait, or chosen by the file's
//! `_class_name` through [`AnyScheduler`].
//!
//! A scheduler is a small state machine, as in diffusers: [`Scheduler::set_timesteps`] lays out
//! the inference schedule (and resets multistep history); then for each timestep `t` the
//! sampling loop calls [`Scheduler::scale_model_input`], runs the network, and calls
//! [`Scheduler::step`] to move the latents one step down. [`Scheduler::add_noise`] is the forward
//! process at a timestep, in the latent parametrisation the scheduler works in.
//!
//! Latents are computed in float32 whatever the input dtype; scalar coefficients are computed
//! with the precision diffusers uses for each (float64 numpy for the schedule layout, float32
//! torch scalars for the step arithmetic), so results match the reference to float32 rounding.

mod betas;
mod config;
mod ddim;
mod dpm_solver;
mod euler;
mod fields;
mod numpy;
mod ops;
mod sigmas;
mod spacing;

use candle_core::Tensor;

pub use betas::NoiseSchedule;
pub use config::{
    BetaSchedule, CommonConfig, DdimConfig, DpmSolverConfig, EulerConfig, FinalSigmas,
    PredictionType, SCHEDULER_CONFIG_FILE, SchedulerConfig, SchedulerKind, SigmaRange, SolverType,
    TimestepSpacing, TimestepType,
};
pub use ddim::DdimScheduler;
pub use dpm_solver::DpmSolverMultistepScheduler;
pub use euler::EulerDiscreteScheduler;

use super::error::{DiffusionError, Result};
use crate::model::ComponentDir;

/// What one scheduler step produces.
#[derive(Clone, Debug)]
pub struct StepOutput {
    /// The latents at the next (less noisy) timestep.
    pub prev_sample: Tensor,
    /// The scheduler's estimate x̂₀ of the clean latents from this step's network output
    /// (consistency-aware latent completion re-noises it).
    pub pred_original_sample: Tensor,
}

/// A diffusion sampler's schedule and update rule, as diffusers' `SchedulerMixin` classes.
///
/// Timesteps are `f64`: integer training steps for DDIM and DPM-Solver, and float32 values
/// (possibly fractional) for Euler; pass back exactly the values [`Scheduler::timesteps`]
/// returns.
pub trait Scheduler: Send {
    /// Which diffusers class this is.
    fn kind(&self) -> SchedulerKind;

    /// What the network is expected to predict.
    fn prediction_type(&self) -> PredictionType;

    /// Lays out `num_inference_steps` timesteps (1 ≤ n ≤ `num_train_timesteps`) and resets the
    /// step counter and any multistep history.
    fn set_timesteps(&mut self, num_inference_steps: usize) -> Result<()>;

    /// The inference timesteps, noisiest first (all training steps before `set_timesteps`).
    fn timesteps(&self) -> &[f64];

    /// The standard deviation of the initial noise: unit noise is multiplied by it (1 for
    /// the variance-preserving DDIM and DPM-Solver++).
    fn init_noise_sigma(&self) -> f64 {
        1.0
    }

    /// The network input for `sample` at `timestep` (Euler divides by √(σ² + 1); DDIM and
    /// DPM-Solver++ return the sample, in f32). May start the scheduler's step counter, as in
    /// diffusers.
    fn scale_model_input(&mut self, sample: &Tensor, _timestep: f64) -> Result<Tensor> {
        ops::to_f32(sample)
    }

    /// One denoising step from `sample` at `timestep` given the network's (guided)
    /// `model_output`; advances the step counter and multistep history.
    fn step(&mut self, model_output: &Tensor, timestep: f64, sample: &Tensor)
    -> Result<StepOutput>;

    /// x̂₀ for `sample` at `timestep` given `model_output`, without advancing anything: the value
    /// [`Scheduler::step`] would report as `pred_original_sample` at this point of the loop.
    fn predict_original(
        &self,
        model_output: &Tensor,
        timestep: f64,
        sample: &Tensor,
    ) -> Result<Tensor>;

    /// The forward process: `original` noised with `noise` to the level of `timestep`, in this
    /// scheduler's latent parametrisation (√ᾱ·x₀ + √(1−ᾱ)·ε for DDIM and DPM-Solver, x₀ + σ·ε
    /// for Euler). The timestep is looked up as diffusers does: σ-based schedulers find it in
    /// their current timesteps (before `set_timesteps`, in their training-time tables).
    fn add_noise(&self, original: &Tensor, noise: &Tensor, timestep: f64) -> Result<Tensor>;

    /// The cumulative ᾱ of the noise level [`Scheduler::add_noise`] uses at `timestep`; the
    /// level's σ is √((1 − ᾱ)/ᾱ).
    fn alpha_bar(&self, timestep: f64) -> Result<f64>;
}

/// Fails unless 1 ≤ `n` ≤ `num_train_timesteps`.
fn check_num_steps(n: usize, num_train_timesteps: usize) -> Result<()> {
    if (1..=num_train_timesteps).contains(&n) {
        Ok(())
    } else {
        Err(DiffusionError::argument(
            "num_inference_steps",
            format!("{n} is outside 1..={num_train_timesteps} (the training steps)"),
        ))
    }
}

/// One of the supported schedulers, chosen by a configuration's `_class_name`.
#[derive(Clone, Debug)]
pub enum AnyScheduler {
    /// `DDIMScheduler`.
    Ddim(DdimScheduler),
    /// `EulerDiscreteScheduler`.
    EulerDiscrete(EulerDiscreteScheduler),
    /// `DPMSolverMultistepScheduler`.
    DpmSolverMultistep(DpmSolverMultistepScheduler),
}

impl AnyScheduler {
    /// The scheduler a configuration describes.
    pub fn new(config: SchedulerConfig) -> Self {
        match config {
            SchedulerConfig::Ddim(c) => Self::Ddim(DdimScheduler::new(c)),
            SchedulerConfig::EulerDiscrete(c) => {
                Self::EulerDiscrete(EulerDiscreteScheduler::new(c))
            }
            SchedulerConfig::DpmSolverMultistep(c) => {
                Self::DpmSolverMultistep(DpmSolverMultistepScheduler::new(c))
            }
        }
    }

    /// The scheduler of a component folder's `scheduler_config.json`.
    pub fn from_dir(dir: &ComponentDir) -> Result<Self> {
        SchedulerConfig::from_dir(dir).map(Self::new)
    }

    fn inner(&self) -> &dyn Scheduler {
        match self {
            Self::Ddim(s) => s,
            Self::EulerDiscrete(s) => s,
            Self::DpmSolverMultistep(s) => s,
        }
    }

    fn inner_mut(&mut self) -> &mut dyn Scheduler {
        match self {
            Self::Ddim(s) => s,
            Self::EulerDiscrete(s) => s,
            Self::DpmSolverMultistep(s) => s,
        }
    }
}

impl Scheduler for AnyScheduler {
    fn kind(&self) -> SchedulerKind {
        self.inner().kind()
    }

    fn prediction_type(&self) -> PredictionType {
        self.inner().prediction_type()
    }

    fn set_timesteps(&mut self, num_inference_steps: usize) -> Result<()> {
        self.inner_mut().set_timesteps(num_inference_steps)
    }

    fn timesteps(&self) -> &[f64] {
        self.inner().timesteps()
    }

    fn init_noise_sigma(&self) -> f64 {
        self.inner().init_noise_sigma()
    }

    fn scale_model_input(&mut self, sample: &Tensor, timestep: f64) -> Result<Tensor> {
        self.inner_mut().scale_model_input(sample, timestep)
    }

    fn step(
        &mut self,
        model_output: &Tensor,
        timestep: f64,
        sample: &Tensor,
    ) -> Result<StepOutput> {
        self.inner_mut().step(model_output, timestep, sample)
    }

    fn predict_original(
        &self,
        model_output: &Tensor,
        timestep: f64,
        sample: &Tensor,
    ) -> Result<Tensor> {
        self.inner()
            .predict_original(model_output, timestep, sample)
    }

    fn add_noise(&self, original: &Tensor, noise: &Tensor, timestep: f64) -> Result<Tensor> {
        self.inner().add_noise(original, noise, timestep)
    }

    fn alpha_bar(&self, timestep: f64) -> Result<f64> {
        self.inner().alpha_bar(timestep)
    }
}

#[cfg(test)]
mod tests;
