//! DDIM (Song et al., 2021), diffusers' `DDIMScheduler`: deterministic for η = 0, with optional
//! η > 0 stochasticity drawn from a seeded [`NoiseGenerator`].

use candle_core::Tensor;

use super::betas::NoiseSchedule;
use super::config::{DdimConfig, PredictionType, SchedulerKind, TimestepSpacing};
use super::ops::{self, check_same_shape, div, mix, mul, predict_x0};
use super::{Scheduler, StepOutput, check_num_steps, numpy, spacing};
use crate::diffusion::error::{DiffusionError, Result};
use crate::diffusion::noise::NoiseGenerator;

const NAME: &str = "DDIMScheduler";

/// DDIM over integer training timesteps.
#[derive(Clone, Debug)]
pub struct DdimScheduler {
    config: DdimConfig,
    schedule: NoiseSchedule,
    final_alpha_cumprod: f32,
    timesteps: Vec<f64>,
    num_inference_steps: Option<usize>,
    eta: f64,
    /// Boxed: the generator state is large and rarely used.
    generator: Option<Box<NoiseGenerator>>,
}

impl DdimScheduler {
    /// A DDIM scheduler with η = 0; its timesteps are all training steps until
    /// [`Scheduler::set_timesteps`] is called.
    pub fn new(config: DdimConfig) -> Self {
        let schedule = NoiseSchedule::new(&config.common);
        let final_alpha_cumprod = if config.set_alpha_to_one {
            1.0
        } else {
            schedule.alphas_cumprod()[0]
        };
        let timesteps = (0..config.common.num_train_timesteps)
            .rev()
            .map(|t| t as f64)
            .collect();
        Self {
            config,
            schedule,
            final_alpha_cumprod,
            timesteps,
            num_inference_steps: None,
            eta: 0.0,
            generator: None,
        }
    }

    /// The configuration this scheduler was built from.
    pub fn config(&self) -> &DdimConfig {
        &self.config
    }

    /// Sets the stochasticity η of every following step (0 = deterministic DDIM, 1 = DDPM-like
    /// variance). η > 0 draws fresh noise from `generator`, which is then required.
    pub fn set_eta(&mut self, eta: f64, generator: Option<NoiseGenerator>) -> Result<()> {
        if !(eta.is_finite() && eta >= 0.0) {
            return Err(DiffusionError::argument(
                "eta",
                format!("{eta} is not a finite number ≥ 0"),
            ));
        }
        if eta > 0.0 && generator.is_none() {
            return Err(DiffusionError::argument(
                "generator",
                format!("η = {eta} > 0 needs a noise generator"),
            ));
        }
        self.eta = eta;
        self.generator = generator.filter(|_| eta > 0.0).map(Box::new);
        Ok(())
    }

    /// The training step a timestep names: an integer in 0…T−1.
    fn train_step(&self, timestep: f64) -> Result<usize> {
        let steps = self.config.common.num_train_timesteps;
        if timestep.fract() == 0.0 && timestep >= 0.0 && timestep < steps as f64 {
            Ok(timestep as usize)
        } else {
            Err(DiffusionError::InvalidTimestep {
                scheduler: NAME,
                timestep,
                reason: format!("not an integer training step in 0..{steps}"),
            })
        }
    }

    /// ᾱ at training step `t`, the final ᾱ before step 0.
    fn alpha_prod(&self, t: i64) -> f32 {
        usize::try_from(t)
            .ok()
            .and_then(|t| self.schedule.alphas_cumprod().get(t).copied())
            .unwrap_or(self.final_alpha_cumprod)
    }

    /// (x̂₀, ε̂) for the sample at training step `t`, x̂₀ clipped when configured.
    fn predictions(
        &self,
        model_output: &Tensor,
        t: usize,
        sample: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let alpha_prod = self.schedule.alphas_cumprod()[t];
        let (alpha, sigma) = (alpha_prod.sqrt(), (1.0 - alpha_prod).sqrt());
        let prediction = self.config.common.prediction_type;
        let mut x0 = predict_x0(prediction, model_output, sample, alpha, sigma)?;
        let eps = match prediction {
            PredictionType::Epsilon => model_output.clone(),
            PredictionType::Sample => div(&(sample - mul(&x0, alpha)?)?, sigma)?,
            PredictionType::VPrediction => (mul(model_output, alpha)? + mul(sample, sigma)?)?,
        };
        if self.config.clip_sample {
            let range = self.config.clip_sample_range as f32;
            x0 = x0.clamp(-range, range)?;
        }
        Ok((x0, eps))
    }
}

impl Scheduler for DdimScheduler {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Ddim
    }

    fn prediction_type(&self) -> PredictionType {
        self.config.common.prediction_type
    }

    fn set_timesteps(&mut self, num_inference_steps: usize) -> Result<()> {
        let common = &self.config.common;
        let (train, n) = (common.num_train_timesteps, num_inference_steps);
        check_num_steps(n, train)?;
        self.timesteps = match common.timestep_spacing {
            TimestepSpacing::Linspace => numpy::round(&numpy::linspace(0.0, (train - 1) as f64, n))
                .into_iter()
                .rev()
                .collect(),
            TimestepSpacing::Leading => spacing::leading(train / n, 0..n, common.steps_offset),
            TimestepSpacing::Trailing => spacing::trailing(train, train, n),
        };
        self.num_inference_steps = Some(n);
        Ok(())
    }

    fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }

    fn step(
        &mut self,
        model_output: &Tensor,
        timestep: f64,
        sample: &Tensor,
    ) -> Result<StepOutput> {
        let n = self
            .num_inference_steps
            .ok_or(DiffusionError::TimestepsNotSet { scheduler: NAME })?;
        check_same_shape("model_output", model_output, "sample", sample)?;
        let (model_output, sample) = (ops::to_f32(model_output)?, ops::to_f32(sample)?);
        let t = self.train_step(timestep)?;
        let prev_t = t as i64 - (self.config.common.num_train_timesteps / n) as i64;
        let alpha_prod = self.schedule.alphas_cumprod()[t];
        let alpha_prod_prev = self.alpha_prod(prev_t);
        let (x0, eps) = self.predictions(&model_output, t, &sample)?;

        let beta_prod = 1.0 - alpha_prod;
        let variance = ((1.0 - alpha_prod_prev) / beta_prod) * (1.0 - alpha_prod / alpha_prod_prev);
        let std_dev = self.eta as f32 * variance.sqrt();
        let direction = (1.0 - alpha_prod_prev - std_dev * std_dev).sqrt();
        let mut prev_sample = mix(&x0, alpha_prod_prev.sqrt(), &eps, direction)?;
        if let Some(generator) = self.generator.as_mut().filter(|_| self.eta > 0.0) {
            let noise = generator.randn(model_output.dims(), model_output.device())?;
            prev_sample = (prev_sample + mul(&noise, std_dev)?)?;
        }
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
        let t = self.train_step(timestep)?;
        let (x0, _) = self.predictions(&ops::to_f32(model_output)?, t, &ops::to_f32(sample)?)?;
        Ok(x0)
    }

    fn add_noise(&self, original: &Tensor, noise: &Tensor, timestep: f64) -> Result<Tensor> {
        check_same_shape("noise", noise, "original", original)?;
        let alpha_prod = self.schedule.alphas_cumprod()[self.train_step(timestep)?];
        mix(
            &ops::to_f32(original)?,
            alpha_prod.sqrt(),
            &ops::to_f32(noise)?,
            (1.0 - alpha_prod).sqrt(),
        )
    }

    fn alpha_bar(&self, timestep: f64) -> Result<f64> {
        Ok(f64::from(
            self.schedule.alphas_cumprod()[self.train_step(timestep)?],
        ))
    }
}
