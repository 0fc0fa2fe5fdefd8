//! DPM-Solver++ (Lu et al., 2022) in its multistep form, diffusers'
//! `DPMSolverMultistepScheduler` with `algorithm_type = "dpmsolver++"`: first order (equivalent
//! to DDIM) or second order reusing the previous step's x̂₀ (2M), with the lower-order final
//! steps diffusers uses for stability.

use candle_core::Tensor;

use super::betas::NoiseSchedule;
use super::config::{
    BetaSchedule, DpmSolverConfig, FinalSigmas, PredictionType, SchedulerKind, SolverType,
    TimestepSpacing,
};
use super::ops::{self, check_same_shape, mix, mul, predict_x0};
use super::sigmas::alpha_sigma;
use super::{Scheduler, StepOutput, check_num_steps, numpy, sigmas, spacing};
use crate::diffusion::error::{DiffusionError, Result};

const NAME: &str = "DPMSolverMultistepScheduler";

/// Schedules shorter than this use lower orders at their end when `lower_order_final` is set.
const SHORT_SCHEDULE: usize = 15;

/// The multistep DPM-Solver++ scheduler over integer timesteps.
#[derive(Clone, Debug)]
pub struct DpmSolverMultistepScheduler {
    config: DpmSolverConfig,
    /// σ per training step (ascending in t), float32.
    train_sigmas: Vec<f32>,
    /// One past the last training step the schedule may use (`lambda_min_clipped`).
    last_timestep: usize,
    /// The σ of each timestep, then the final σ (before `set_timesteps`: the training σ).
    sigmas: Vec<f32>,
    timesteps: Vec<f64>,
    /// x̂₀ of the previous steps, oldest first (`solver_order` slots).
    model_outputs: Vec<Option<Tensor>>,
    lower_order_nums: usize,
    step_index: Option<usize>,
    num_inference_steps: Option<usize>,
}

/// A noise level in the variance-preserving parametrisation, with its log-SNR λ = ln(α/σ).
#[derive(Clone, Copy)]
struct Level {
    alpha: f32,
    sigma: f32,
    lambda: f32,
}

impl Level {
    fn new(sigma: f32) -> Self {
        let (alpha, sigma) = alpha_sigma(sigma);
        Self {
            alpha,
            sigma,
            lambda: alpha.ln() - sigma.ln(),
        }
    }
}

impl DpmSolverMultistepScheduler {
    /// A DPM-Solver++ scheduler; [`Scheduler::set_timesteps`] must be called before stepping.
    pub fn new(config: DpmSolverConfig) -> Self {
        let mut schedule = NoiseSchedule::new(&config.common);
        if config.common.rescale_betas_zero_snr {
            schedule.floor_terminal_alpha();
        }
        let train = config.common.num_train_timesteps;
        // Training steps whose log-SNR falls below `lambda_min_clipped` are never used.
        let clipped = schedule
            .alphas_cumprod()
            .iter()
            .map(|&a| a.sqrt().ln() - (1.0 - a).sqrt().ln())
            .filter(|&lambda| f64::from(lambda) < config.lambda_min_clipped)
            .count();
        let train_sigmas = schedule.sigmas();
        Self {
            // As in diffusers, the table before `set_timesteps` pairs the descending training
            // timesteps with the ascending training σ.
            sigmas: train_sigmas.clone(),
            timesteps: (0..train).rev().map(|t| t as f64).collect(),
            model_outputs: vec![None; config.solver_order],
            last_timestep: train - clipped,
            config,
            train_sigmas,
            lower_order_nums: 0,
            step_index: None,
            num_inference_steps: None,
        }
    }

    /// The configuration this scheduler was built from.
    pub fn config(&self) -> &DpmSolverConfig {
        &self.config
    }

    /// The σ of every inference timestep followed by the final σ.
    pub fn sigmas(&self) -> &[f32] {
        &self.sigmas
    }

    /// The schedule position of `timestep`; diffusers falls back to the last position.
    fn position(&self, timestep: f64) -> usize {
        sigmas::position(&self.timesteps, timestep)
            .unwrap_or(self.timesteps.len().saturating_sub(1))
    }

    fn current_index(&self, timestep: f64) -> usize {
        self.step_index.unwrap_or_else(|| self.position(timestep))
    }

    /// The noise level at a schedule position, or an error outside the schedule.
    fn level(&self, index: Option<usize>, timestep: f64) -> Result<Level> {
        index
            .and_then(|i| self.sigmas.get(i))
            .map(|&s| Level::new(s))
            .ok_or_else(|| DiffusionError::InvalidTimestep {
                scheduler: NAME,
                timestep,
                reason: "the schedule has no step there (too many steps?)".into(),
            })
    }

    /// x̂₀ (DPM-Solver++ works on the data prediction) for `sample` at schedule position `index`.
    fn x0(
        &self,
        model_output: &Tensor,
        sample: &Tensor,
        index: usize,
        timestep: f64,
    ) -> Result<Tensor> {
        let level = self.level(Some(index), timestep)?;
        predict_x0(
            self.config.common.prediction_type,
            model_output,
            sample,
            level.alpha,
            level.sigma,
        )
    }

    /// The first-order update (DDIM in λ) from position `index` to `index + 1`.
    fn first_order(
        &self,
        x0: &Tensor,
        sample: &Tensor,
        index: usize,
        timestep: f64,
    ) -> Result<Tensor> {
        let s = self.level(Some(index), timestep)?;
        let t = self.level(Some(index + 1), timestep)?;
        let h = t.lambda - s.lambda;
        Ok((mul(sample, t.sigma / s.sigma)? - mul(x0, t.alpha * ((-h).exp() - 1.0))?)?)
    }

    /// The second-order multistep update using the current and previous x̂₀.
    fn second_order(&self, sample: &Tensor, index: usize, timestep: f64) -> Result<Tensor> {
        let [Some(m1), Some(m0)] = &self.model_outputs[self.model_outputs.len() - 2..] else {
            return Err(DiffusionError::InvalidTimestep {
                scheduler: NAME,
                timestep,
                reason: "a second-order step needs the previous step's output".into(),
            });
        };
        let s1 = self.level(index.checked_sub(1), timestep)?;
        let s0 = self.level(Some(index), timestep)?;
        let t = self.level(Some(index + 1), timestep)?;
        let (h, h0) = (t.lambda - s0.lambda, s0.lambda - s1.lambda);
        let r0 = h0 / h;
        let d1 = mul(&(m0 - m1)?, 1.0 / r0)?;
        let first = (mul(sample, t.sigma / s0.sigma)? - mul(m0, t.alpha * ((-h).exp() - 1.0))?)?;
        Ok(match self.config.solver_type {
            SolverType::Midpoint => (first - mul(&d1, 0.5 * (t.alpha * ((-h).exp() - 1.0)))?)?,
            SolverType::Heun => (first + mul(&d1, t.alpha * (((-h).exp() - 1.0) / h + 1.0))?)?,
        })
    }
}

impl Scheduler for DpmSolverMultistepScheduler {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::DpmSolverMultistep
    }

    fn prediction_type(&self) -> PredictionType {
        self.config.common.prediction_type
    }

    fn set_timesteps(&mut self, num_inference_steps: usize) -> Result<()> {
        let common = &self.config.common;
        let (train, n, last) = (
            common.num_train_timesteps,
            num_inference_steps,
            self.last_timestep,
        );
        check_num_steps(n, train)?;
        if last == 0 {
            return Err(DiffusionError::argument(
                "lambda_min_clipped",
                format!(
                    "{} clips every training step",
                    self.config.lambda_min_clipped
                ),
            ));
        }
        let mut timesteps: Vec<f64> = match common.timestep_spacing {
            TimestepSpacing::Linspace => {
                let mut t = numpy::round(&numpy::linspace(0.0, (last - 1) as f64, n + 1));
                t.remove(0);
                t.into_iter().rev().collect()
            }
            TimestepSpacing::Leading => {
                spacing::leading(last / (n + 1), 1..n + 1, common.steps_offset)
            }
            TimestepSpacing::Trailing => spacing::trailing(last, train, n),
        };
        let sigmas: Vec<f64> = if self.config.use_karras_sigmas {
            let range = self.config.sigma_range;
            let sigma_min = range.min.unwrap_or(f64::from(self.train_sigmas[0]));
            let sigma_max = range.max.unwrap_or(f64::from(self.train_sigmas[train - 1]));
            let sigmas = sigmas::karras(sigma_min, sigma_max, n);
            let log_sigmas: Vec<f32> = self.train_sigmas.iter().map(|s| s.ln()).collect();
            timesteps = sigmas
                .iter()
                .map(|&s| sigmas::sigma_to_t(s, &log_sigmas))
                .collect();
            if common.beta_schedule != BetaSchedule::SquaredCosCapV2 {
                timesteps = numpy::round(&timesteps);
            }
            sigmas
        } else {
            timesteps
                .iter()
                .map(|&t| numpy::interp_unit(t, &self.train_sigmas))
                .collect()
        };
        let sigma_last = match self.config.final_sigmas_type {
            FinalSigmas::Zero => 0.0,
            FinalSigmas::SigmaMin => self.train_sigmas[0],
        };
        self.sigmas = sigmas
            .into_iter()
            .map(|s| s as f32)
            .chain(std::iter::once(sigma_last))
            .collect();
        // diffusers stores the timesteps as int64 (truncating any fraction).
        self.timesteps = timesteps.into_iter().map(f64::trunc).collect();
        self.num_inference_steps = Some(self.timesteps.len());
        self.model_outputs = vec![None; self.config.solver_order];
        self.lower_order_nums = 0;
        self.step_index = None;
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
        let len = self
            .num_inference_steps
            .ok_or(DiffusionError::TimestepsNotSet { scheduler: NAME })?;
        check_same_shape("model_output", model_output, "sample", sample)?;
        let (model_output, sample) = (ops::to_f32(model_output)?, ops::to_f32(sample)?);
        let index = self.current_index(timestep);
        let cfg = &self.config;
        let short_tail = cfg.lower_order_final && len < SHORT_SCHEDULE;
        let lower_order_final = index + 1 == len
            && (cfg.euler_at_final || short_tail || cfg.final_sigmas_type == FinalSigmas::Zero);

        let x0 = self.x0(&model_output, &sample, index, timestep)?;
        self.model_outputs.rotate_left(1);
        if let Some(slot) = self.model_outputs.last_mut() {
            *slot = Some(x0.clone());
        }
        // With solver_order ≤ 2 every other step is second order (diffusers' lowering of the
        // second-to-last step only concerns third-order solvers).
        let first = cfg.solver_order == 1 || self.lower_order_nums < 1 || lower_order_final;
        let prev_sample = if first {
            self.first_order(&x0, &sample, index, timestep)?
        } else {
            self.second_order(&sample, index, timestep)?
        };
        self.lower_order_nums = (self.lower_order_nums + 1).min(cfg.solver_order);
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
        let index = self.current_index(timestep);
        self.x0(
            &ops::to_f32(model_output)?,
            &ops::to_f32(sample)?,
            index,
            timestep,
        )
    }

    fn add_noise(&self, original: &Tensor, noise: &Tensor, timestep: f64) -> Result<Tensor> {
        check_same_shape("noise", noise, "original", original)?;
        let level = self.level(Some(self.position(timestep)), timestep)?;
        mix(
            &ops::to_f32(original)?,
            level.alpha,
            &ops::to_f32(noise)?,
            level.sigma,
        )
    }

    fn alpha_bar(&self, timestep: f64) -> Result<f64> {
        let level = self.level(Some(self.position(timestep)), timestep)?;
        Ok(f64::from(level.alpha) * f64::from(level.alpha))
    }
}
