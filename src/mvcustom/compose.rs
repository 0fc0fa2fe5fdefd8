//! Background by composition (CustomNet's control, training-free): each view keeps the
//! camera's own render outside the subject's region. At every step the background latents are
//! re-noised to the level the sampler is at and pasted over the kept region, so the model only
//! generates the subject's region and blends it into the scene through a soft band.

use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

use crate::diffusion::{HookContext, NoiseGenerator, Result, SamplingHook};

/// Where the subject sits in one view: its projected bounds in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SubjectBounds {
    /// Left edge, continuous pixel coordinates.
    pub min_x: f32,
    /// Top edge.
    pub min_y: f32,
    /// Right edge.
    pub max_x: f32,
    /// Bottom edge.
    pub max_y: f32,
}

/// How the generated region grows around the subject's bounds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CompositionSettings {
    /// Pixels added on every side of the bounds (fully generated).
    pub dilation: f32,
    /// Width in pixels of the band beyond that, where background and generation blend.
    pub blend_band: f32,
}

impl Default for CompositionSettings {
    fn default() -> Self {
        Self {
            dilation: 8.0,
            blend_band: 16.0,
        }
    }
}

/// The keep-background weight of every cell of a `grid_width × grid_height` grid over a
/// `width × height` image: 0 inside the dilated bounds, 1 beyond the blending band, linear in
/// between (by distance from the dilated box, measured at cell centres in image pixels).
pub fn keep_mask(
    bounds: &SubjectBounds,
    settings: &CompositionSettings,
    width: u32,
    height: u32,
    grid_width: u32,
    grid_height: u32,
) -> Vec<f32> {
    let (sx, sy) = (
        width as f32 / grid_width as f32,
        height as f32 / grid_height as f32,
    );
    let d = settings.dilation.max(0.0);
    let (x0, y0, x1, y1) = (
        bounds.min_x - d,
        bounds.min_y - d,
        bounds.max_x + d,
        bounds.max_y + d,
    );
    let band = settings.blend_band.max(0.0);
    let mut mask = Vec::with_capacity((grid_width * grid_height) as usize);
    for j in 0..grid_height {
        for i in 0..grid_width {
            let (x, y) = ((i as f32 + 0.5) * sx, (j as f32 + 0.5) * sy);
            let dx = (x0 - x).max(x - x1).max(0.0);
            let dy = (y0 - y).max(y - y1).max(0.0);
            let distance = (dx * dx + dy * dy).sqrt();
            mask.push(if band > 0.0 {
                (distance / band).min(1.0)
            } else if distance > 0.0 {
                1.0
            } else {
                0.0
            });
        }
    }
    mask
}

/// The sampling hook that pastes the re-noised background over the kept region after every
/// step; after the last step the clean background itself is pasted.
pub struct CompositionHook {
    background: Tensor,
    keep: Tensor,
    noise: NoiseGenerator,
}

impl CompositionHook {
    /// `background`: the views' clean latents `[1, C, F, h, w]` (diffusion scale);
    /// `keep`: weights `[1, 1, F, h, w]` in [0, 1] (1 keeps the background); `seed` seeds the
    /// re-noising.
    pub fn new(background: Tensor, keep: Tensor, seed: u64) -> Self {
        Self {
            background,
            keep,
            noise: NoiseGenerator::from_seed(seed),
        }
    }
}

impl SamplingHook for CompositionHook {
    fn after_step(
        &mut self,
        ctx: &HookContext<'_>,
        _pred_original: &Tensor,
        latents: &mut Tensor,
    ) -> Result<()> {
        let timesteps = ctx.scheduler.timesteps();
        let background = match timesteps.get(ctx.step.index + 1) {
            Some(&next) => {
                let noise = self
                    .noise
                    .randn(self.background.dims(), self.background.device())?;
                ctx.scheduler.add_noise(&self.background, &noise, next)?
            }
            None => self.background.clone(),
        };
        let keep = self
            .keep
            .to_dtype(DType::F32)?
            .broadcast_as(latents.shape())?;
        let background = background.to_dtype(latents.dtype())?;
        let keep = keep.to_dtype(latents.dtype())?;
        let generated = (latents.clone() * (1.0 - &keep)?)?;
        *latents = (generated + (background * keep)?)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diffusion::{
        AnyScheduler, DdimConfig, DdimScheduler, Sampler, SamplingRequest, StepInfo,
    };
    use candle_core::Device;

    #[test]
    fn keep_mask_is_zero_inside_one_outside_and_ramps_in_the_band() {
        let bounds = SubjectBounds {
            min_x: 16.0,
            min_y: 16.0,
            max_x: 32.0,
            max_y: 32.0,
        };
        let settings = CompositionSettings {
            dilation: 4.0,
            blend_band: 8.0,
        };
        let m = keep_mask(&bounds, &settings, 64, 64, 64, 64);
        let at = |x: usize, y: usize| m[y * 64 + x];
        assert_eq!(at(24, 24), 0.0); // inside
        assert_eq!(at(13, 24), 0.0); // inside the dilation (x = 13.5 ≥ 12)
        assert!((at(7, 24) - 0.5625).abs() < 1e-6); // x = 7.5: 4.5 px beyond → 4.5/8
        assert_eq!(at(1, 24), 1.0); // beyond the band
    }

    /// Predicts zero noise: the sampler drifts towards its own x̂₀.
    fn zero(latents: &Tensor, _step: &StepInfo, _cond: &Tensor) -> Result<Tensor> {
        Ok(latents.zeros_like()?)
    }

    fn run(keep: f32) -> (Tensor, Tensor, Tensor) {
        let device = Device::Cpu;
        let background = Tensor::randn(0f32, 1.0, (1, 4, 2, 4, 4), &device).unwrap();
        let keep_mask = Tensor::full(keep, (1, 1, 2, 4, 4), &device).unwrap();
        let mut hook = CompositionHook::new(background.clone(), keep_mask, 9);
        let request = SamplingRequest {
            prompt_embeds: Tensor::zeros((1, 3, 2), DType::F32, &device).unwrap(),
            negative_prompt_embeds: None,
            guidance_scale: 1.0,
            num_inference_steps: 5,
            initial_noise: Tensor::randn(0f32, 1.0, (1, 4, 2, 4, 4), &device).unwrap(),
        };
        let mut scheduler = AnyScheduler::Ddim(DdimScheduler::new(DdimConfig::default()));
        let with = Sampler::new()
            .with_hook(&mut hook)
            .run(&mut scheduler, &mut zero, &request)
            .unwrap();
        let without = Sampler::new()
            .run(&mut scheduler, &mut zero, &request)
            .unwrap();
        (background, with, without)
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    #[test]
    fn a_fully_kept_view_ends_as_its_background() {
        let (background, with, _) = run(1.0);
        assert!(max_diff(&background, &with) < 1e-6);
    }

    #[test]
    fn a_fully_generated_view_is_untouched() {
        let (_, with, without) = run(0.0);
        assert_eq!(max_diff(&with, &without), 0.0);
    }
}
