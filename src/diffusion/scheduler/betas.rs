//! The training noise schedule: β_t and the cumulative ᾱ_t = Π_{s≤t}(1 − β_s) every scheduler
//! reads. Values are computed the way diffusers computes them (PyTorch float32 on the CPU,
//! cumulative products accumulated in float64 and stored as float32), so the schedules agree
//! with the reference to the last bit.

use super::config::{BetaSchedule, CommonConfig};

/// ᾱ_t for every training step t = 0…T−1, as float32 like diffusers' `alphas_cumprod`.
#[derive(Clone, Debug, PartialEq)]
pub struct NoiseSchedule {
    alphas_cumprod: Vec<f32>,
}

impl NoiseSchedule {
    /// Builds the schedule described by `cfg` (β layout or explicit β, optional zero-SNR
    /// rescaling). The configuration has been validated (T ≥ 2, β in [0, 1)).
    pub fn new(cfg: &CommonConfig) -> Self {
        let mut betas = match &cfg.trained_betas {
            Some(betas) => betas.iter().map(|&b| b as f32).collect(),
            None => match cfg.beta_schedule {
                BetaSchedule::Linear => {
                    torch_linspace_f32(cfg.beta_start, cfg.beta_end, cfg.num_train_timesteps)
                }
                BetaSchedule::ScaledLinear => torch_linspace_f32(
                    cfg.beta_start.sqrt(),
                    cfg.beta_end.sqrt(),
                    cfg.num_train_timesteps,
                )
                .into_iter()
                .map(|b| b * b)
                .collect(),
                BetaSchedule::SquaredCosCapV2 => squaredcos_cap_v2(cfg.num_train_timesteps),
            },
        };
        if cfg.rescale_betas_zero_snr {
            betas = rescale_zero_terminal_snr(&betas);
        }
        let alphas: Vec<f32> = betas.iter().map(|b| 1.0 - b).collect();
        Self {
            alphas_cumprod: cumprod(&alphas),
        }
    }

    /// ᾱ_t indexed by training step.
    pub fn alphas_cumprod(&self) -> &[f32] {
        &self.alphas_cumprod
    }

    /// Replaces a terminal ᾱ of zero (zero-SNR rescaling) by 2⁻²⁴, as diffusers' σ-based
    /// schedulers do so that σ stays finite.
    pub(crate) fn floor_terminal_alpha(&mut self) {
        if let Some(last) = self.alphas_cumprod.last_mut() {
            *last = 2f32.powi(-24);
        }
    }

    /// σ_t = √((1 − ᾱ_t)/ᾱ_t) per training step, in float32 (ascending in t).
    pub(crate) fn sigmas(&self) -> Vec<f32> {
        self.alphas_cumprod
            .iter()
            .map(|&a| ((1.0 - a) / a).sqrt())
            .collect()
    }
}

/// `torch.linspace(start, end, steps, dtype=float32)` on the CPU: endpoints and step in f32,
/// the first half counted up from `start`, the second half down from `end`.
fn torch_linspace_f32(start: f64, end: f64, steps: usize) -> Vec<f32> {
    let (start, end) = (start as f32, end as f32);
    if steps < 2 {
        return vec![start; steps];
    }
    let step = (end - start) / (steps - 1) as f32;
    let halfway = steps / 2;
    (0..steps)
        .map(|i| {
            if i < halfway {
                start + step * i as f32
            } else {
                end - step * (steps - i - 1) as f32
            }
        })
        .collect()
}

/// The cosine schedule of improved DDPM: β_i = min(1 − ᾱ(t_{i+1})/ᾱ(t_i), 0.999) with
/// ᾱ(t) = cos²((t + 0.008)/1.008 · π/2), in f64 then stored as f32.
fn squaredcos_cap_v2(steps: usize) -> Vec<f32> {
    let alpha_bar = |t: f64| {
        ((t + 0.008) / 1.008 * std::f64::consts::PI / 2.0)
            .cos()
            .powi(2)
    };
    (0..steps)
        .map(|i| {
            let t1 = i as f64 / steps as f64;
            let t2 = (i + 1) as f64 / steps as f64;
            (1.0 - alpha_bar(t2) / alpha_bar(t1)).min(0.999) as f32
        })
        .collect()
}

/// Cumulative product as PyTorch's CPU `cumprod` computes it for float32: a float64
/// accumulator, each partial product rounded to float32.
fn cumprod(values: &[f32]) -> Vec<f32> {
    let mut acc = 1.0f64;
    values
        .iter()
        .map(|&v| {
            acc *= f64::from(v);
            acc as f32
        })
        .collect()
}

/// Lin et al., "Common Diffusion Noise Schedules and Sample Steps are Flawed": shift and scale
/// √ᾱ so the last step has zero SNR while the first keeps its value, then recover β (all in f32
/// like diffusers).
fn rescale_zero_terminal_snr(betas: &[f32]) -> Vec<f32> {
    let alphas: Vec<f32> = betas.iter().map(|b| 1.0 - b).collect();
    let sqrt_bar: Vec<f32> = cumprod(&alphas).iter().map(|a| a.sqrt()).collect();
    let (first, last) = (sqrt_bar[0], sqrt_bar[sqrt_bar.len() - 1]);
    let scale = first / (first - last);
    let bar: Vec<f32> = sqrt_bar
        .iter()
        .map(|s| {
            let s = (s - last) * scale;
            s * s
        })
        .collect();
    std::iter::once(bar[0])
        .chain(bar.windows(2).map(|w| w[1] / w[0]))
        .map(|a| 1.0 - a)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diffusion::scheduler::config::{PredictionType, TimestepSpacing};

    fn config(schedule: BetaSchedule) -> CommonConfig {
        CommonConfig {
            num_train_timesteps: 1000,
            beta_start: 0.00085,
            beta_end: 0.012,
            beta_schedule: schedule,
            trained_betas: None,
            rescale_betas_zero_snr: false,
            prediction_type: PredictionType::Epsilon,
            timestep_spacing: TimestepSpacing::Leading,
            steps_offset: 1,
        }
    }

    #[test]
    fn linspace_hits_both_ends_and_is_even() {
        let v = torch_linspace_f32(0.0, 1.0, 5);
        assert_eq!(v, vec![0.0, 0.25, 0.5, 0.75, 1.0]);
    }

    #[test]
    fn scaled_linear_matches_stable_diffusion_endpoints() {
        let s = NoiseSchedule::new(&config(BetaSchedule::ScaledLinear));
        let ac = s.alphas_cumprod();
        assert_eq!(ac.len(), 1000);
        assert!((ac[0] - (1.0 - 0.00085)).abs() < 1e-7);
        // The value diffusers' torch float32 computation gives (σ_max = 14.614646911621094).
        assert_eq!(s.sigmas()[999], 14.614_647);
        assert!(ac.windows(2).all(|w| w[1] < w[0]));
    }

    #[test]
    fn zero_snr_rescaling_ends_at_zero_and_keeps_the_start() {
        let mut cfg = config(BetaSchedule::ScaledLinear);
        let plain = NoiseSchedule::new(&cfg);
        cfg.rescale_betas_zero_snr = true;
        let mut rescaled = NoiseSchedule::new(&cfg);
        assert!((rescaled.alphas_cumprod()[0] - plain.alphas_cumprod()[0]).abs() < 1e-6);
        assert_eq!(rescaled.alphas_cumprod()[999], 0.0);
        rescaled.floor_terminal_alpha();
        assert_eq!(rescaled.alphas_cumprod()[999], 2f32.powi(-24));
    }

    #[test]
    fn cosine_schedule_is_capped() {
        let s = NoiseSchedule::new(&config(BetaSchedule::SquaredCosCapV2));
        let ac = s.alphas_cumprod();
        // ᾱ(1)/ᾱ(0) → cos² of π/2 is 0: the last β hits the 0.999 cap.
        let last_beta = 1.0 - ac[999] / ac[998];
        assert!((last_beta - 0.999).abs() < 1e-3, "{last_beta}");
        let ab = |t: f64| {
            ((t + 0.008) / 1.008 * std::f64::consts::FRAC_PI_2)
                .cos()
                .powi(2)
        };
        let beta0 = 1.0 - ab(0.001) / ab(0.0);
        assert!((f64::from(ac[0]) - (1.0 - beta0)).abs() < 1e-7);
    }
}
