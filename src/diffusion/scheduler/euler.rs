//! Euler's method on the probability-flow ODE in σ (Karras et al., 2022), diffusers'
//! `EulerDiscreteScheduler` without stochastic churn. Latents live in the variance-exploding
//! parametrisation x = x₀ + σ·ε, so the network input is x/√(σ² + 1).

use candle_core::Tensor;

use super::betas::NoiseSchedule;
use super::config::{
    EulerConfig, FinalSigmas, PredictionType, SchedulerKind, TimestepSpacing, TimestepType,
};
use super::ops::{self, check_same_shape, div, mix, mul};
use super::{Scheduler, StepOutput, check_num_steps, numpy, sigmas, spacing};
use crate::diffusion::error::{DiffusionError, Result};

const NAME: &str = "EulerDiscreteScheduler";

/// The Euler discrete scheduler over float32 timesteps.
#[derive(Clone, Debug)]
pub struct EulerDiscreteScheduler {
    config: EulerConfig,
    /// σ per training step (ascending in t), float32.
    train_sigmas: Vec<f32>,
    /// The σ of each timestep, then the final σ.
    sigmas: Vec<f32>,
    /// float32 values widened to f64.
    timesteps: Vec<f64>,
    step_index: Option<usize>,
}

impl EulerDiscreteScheduler {
    /// An Euler scheduler whose timesteps are all training steps until
    /// [`Scheduler::set_timesteps`] is called.
    pub fn new(config: EulerConfig) -> Self {
        let mut schedule = NoiseSchedule::new(&config.common);
        if config.common.rescale_betas_zero_snr {
            schedule.floor_terminal_alpha();
        }
        let train_sigmas = schedule.sigmas();
        let descending: Vec<f32> = train_sigmas.iter().rev().copied().collect();
        let train = config.common.num_train_timesteps;
        let timesteps = if continuous_v(&config) {
            log_sigma_timesteps(&descending)
        } else {
            numpy::linspace(0.0, (train - 1) as f64, train)
                .into_iter()
                .rev()
                .map(|t| f64::from(t as f32))
                .collect()
        };
        let sigmas = descending.into_iter().chain(std::iter::once(0.0)).collect();
        Self {
            config,
            train_sigmas,
            sigmas,
            timesteps,
            step_index: None,
        }
    }

    /// The configuration this scheduler was built from.
    pub fn config(&self) -> &EulerConfig {
        &self.config
    }

    /// The σ of every inference timestep followed by the final σ.
    pub fn sigmas(&self) -> &[f32] {
        &self.sigmas
    }

    /// The schedule position of `timestep` (compared in float32, as diffusers compares tensors).
    fn position(&self, timestep: f64) -> Result<usize> {
        sigmas::position(&self.timesteps, f64::from(timestep as f32)).ok_or_else(|| {
            DiffusionError::InvalidTimestep {
                scheduler: NAME,
                timestep,
                reason: "not one of the scheduler's timesteps".into(),
            }
        })
    }

    /// The current step's position: the counter once started, else the timestep's position.
    fn current_index(&self, timestep: f64) -> Result<usize> {
        self.step_index.map_or_else(|| self.position(timestep), Ok)
    }

    /// σ at a schedule position, or an error past the end of the schedule.
    fn sigma_at(&self, index: usize, timestep: f64) -> Result<f32> {
        self.sigmas
            .get(index)
            .copied()
            .ok_or_else(|| DiffusionError::InvalidTimestep {
                scheduler: NAME,
                timestep,
                reason: format!("step {index} is past the end of the schedule"),
            })
    }

    /// x̂₀ for `sample` at noise level σ (no churn, so σ̂ = σ).
    fn x0(&self, model_output: &Tensor, sample: &Tensor, sigma: f32) -> Result<Tensor> {
        match self.config.common.prediction_type {
            PredictionType::Epsilon => Ok((sample - mul(model_output, sigma)?)?),
            // The v-prediction of the VP process, moved to the VE parametrisation:
            // x̂₀ = −σ/√(σ²+1)·v + x/(σ²+1).
            PredictionType::VPrediction => {
                let var = sigma * sigma + 1.0;
                Ok((mul(model_output, -sigma / var.sqrt())? + div(sample, var)?)?)
            }
            PredictionType::Sample => Ok(model_output.clone()),
        }
    }
}

/// Whether timesteps are EDM's 0.25·ln σ (`continuous` with `v_prediction`).
fn continuous_v(config: &EulerConfig) -> bool {
    config.timestep_type == TimestepType::Continuous
        && config.common.prediction_type == PredictionType::VPrediction
}

/// 0.25·ln σ per σ, in float32.
fn log_sigma_timesteps(sigmas: &[f32]) -> Vec<f64> {
    sigmas.iter().map(|s| f64::from(0.25 * s.ln())).collect()
}

impl Scheduler for EulerDiscreteScheduler {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::EulerDiscrete
    }

    fn prediction_type(&self) -> PredictionType {
        self.config.common.prediction_type
    }

    fn set_timesteps(&mut self, num_inference_steps: usize) -> Result<()> {
        let common = &self.config.common;
        let (train, n) = (common.num_train_timesteps, num_inference_steps);
        check_num_steps(n, train)?;
        let mut timesteps: Vec<f64> = match common.timestep_spacing {
            TimestepSpacing::Linspace => numpy::linspace(0.0, (train - 1) as f64, n)
                .into_iter()
                .rev()
                .map(|t| f64::from(t as f32))
                .collect(),
            TimestepSpacing::Leading => spacing::leading(train / n, 0..n, common.steps_offset),
            TimestepSpacing::Trailing => spacing::trailing(train, train, n),
        };
        let mut sigmas: Vec<f64> = timesteps
            .iter()
            .map(|&t| numpy::interp_unit(t, &self.train_sigmas))
            .collect();
        if self.config.use_karras_sigmas {
            let (first, last) = (sigmas[0], sigmas[sigmas.len() - 1]);
            let range = self.config.sigma_range;
            sigmas = sigmas::karras(range.min.unwrap_or(last), range.max.unwrap_or(first), n);
            let log_sigmas: Vec<f32> = self.train_sigmas.iter().map(|s| s.ln()).collect();
            timesteps = sigmas
                .iter()
                .map(|&s| sigmas::sigma_to_t(s, &log_sigmas))
                .collect();
        }
        let sigma_last = match self.config.final_sigmas_type {
            FinalSigmas::Zero => 0.0,
            FinalSigmas::SigmaMin => self.train_sigmas[0],
        };
        self.sigmas = sigmas
            .into_iter()
            .map(|s| s as f32)
            .chain(std::iter::once(sigma_last))
            .collect();
        self.timesteps = if continuous_v(&self.config) {
            log_sigma_timesteps(&self.sigmas[..n])
        } else {
            timesteps.into_iter().map(|t| f64::from(t as f32)).collect()
        };
        self.step_index = None;
        Ok(())
    }

    fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }

    fn init_noise_sigma(&self) -> f64 {
        let max = self
            .sigmas
            .iter()
            .copied()
            .fold(f32::NEG_INFINITY, f32::max);
        match self.config.common.timestep_spacing {
            TimestepSpacing::Linspace | TimestepSpacing::Trailing => f64::from(max),
            TimestepSpacing::Leading => f64::from((max * max + 1.0).sqrt()),
        }
    }

    fn scale_model_input(&mut self, sample: &Tensor, timestep: f64) -> Result<Tensor> {
        let index = self.current_index(timestep)?;
        self.step_index = Some(index);
        let sigma = self.sigma_at(index, timestep)?;
        div(&ops::to_f32(sample)?, (sigma * sigma + 1.0).sqrt())
    }

    fn step(
        &mut self,
        model_output: &Tensor,
        timestep: f64,
        sample: &Tensor,
    ) -> Result<StepOutput> {
        check_same_shape("model_output", model_output, "sample", sample)?;
        let (model_output, sample) = (ops::to_f32(model_output)?, ops::to_f32(sample)?);
        let index = self.current_index(timestep)?;
        let sigma = self.sigma_at(index, timestep)?;
        let sigma_next = self.sigma_at(index + 1, timestep)?;
        let x0 = self.x0(&model_output, &sample, sigma)?;
        let derivative = div(&(&sample - &x0)?, sigma)?;
        let prev_sample = (&sample + mul(&derivative, sigma_next - sigma)?)?;
        self.step_index = Some(index + 1);
        Ok(StepOutput {
            prev_sample,
            pred_original_sample: x0,
        })
    }

    fn predict_original(
        &self,
        model_output: &Tensor,
        timestep: f64,
        sample: &Tensor,
    ) -> Result<Tensor> {
        check_same_shape("model_output", model_output, "sample", sample)?;
        let sigma = self.sigma_at(self.current_index(timestep)?, timestep)?;
        self.x0(&ops::to_f32(model_output)?, &ops::to_f32(sample)?, sigma)
    }

    fn add_noise(&self, original: &Tensor, noise: &Tensor, timestep: f64) -> Result<Tensor> {
        check_same_shape("noise", noise, "original", original)?;
        let sigma = self.sigma_at(self.position(timestep)?, timestep)?;
        mix(&ops::to_f32(original)?, 1.0, &ops::to_f32(noise)?, sigma)
    }

    fn alpha_bar(&self, timestep: f64) -> Result<f64> {
        let sigma = f64::from(self.sigma_at(self.position(timestep)?, timestep)?);
        Ok(1.0 / (1.0 + sigma * sigma))
    }
}
