//! Consistency-aware latent completion (method.md, CLC): in the regions of each view that the
//! anchor view does not see (its disocclusion mask D_n = 1 − M_n, area-averaged to the latent
//! grid, 0 in the anchor view), the early steps re-noise the current estimate of the clean
//! latents so the network regenerates them around what the rendered features fixed:
//!
//! `x̂₀ = predict_original(ε̂, t, x_t)`, `x_t' = add_noise(x̂₀, ε', t)`,
//! `x_t ← (1 − D_n) ⊙ x_t + D_n ⊙ x_t'`,
//!
//! for the steps with `progress < step_fraction` (from T down to τ), after the network call
//! and before the scheduler step. [`Scheduler::add_noise`](crate::diffusion::Scheduler::add_noise)
//! re-noises in the scheduler's own latent parametrisation (√ᾱ·x̂₀ + √(1−ᾱ)·ε' for DDIM and
//! DPM-Solver, x̂₀ + σ·ε' for Euler). The fresh noise ε' comes from its own generator seeded
//! from the request seed, so a run is deterministic for its seed.
//!
//! CLC uses the visibility of depth-aware feature rendering's geometry (the same anchor depth,
//! camera and mesh), so it needs that geometry: the pipeline only runs it with DFR.

use std::time::{Duration, Instant};

use candle_core::{DType, Tensor};

use crate::diffusion::{self, DiffusionError, HookContext, NoiseGenerator, SamplingHook};

/// Mixed into the request seed to give latent completion its own noise stream, distinct from
/// the initial noise's (`"CLC"` in ASCII).
const NOISE_STREAM: u64 = 0x434C43;

/// The [`SamplingHook`] that applies consistency-aware latent completion.
#[derive(Debug)]
pub struct ClcHook {
    /// D `[1, 1, F, h, w]` float32 in [0, 1].
    disocclusion: Tensor,
    /// Where D > 0, as u8 (outside it the latents are left bit-identical).
    affected: Tensor,
    step_fraction: f64,
    noise: NoiseGenerator,
    elapsed: Duration,
}

impl ClcHook {
    /// Completes the latents where `disocclusion` (`[views, h, w]`, values in [0, 1], one map
    /// per frame) is positive, for the steps before `step_fraction` of the run, with fresh
    /// noise drawn from a generator seeded by `seed`.
    pub fn new(disocclusion: &Tensor, step_fraction: f64, seed: u64) -> diffusion::Result<Self> {
        let (views, h, w) = disocclusion.dims3().map_err(|_| {
            DiffusionError::argument(
                "disocclusion",
                format!("shape {:?}, expected [views, h, w]", disocclusion.dims()),
            )
        })?;
        let disocclusion = disocclusion
            .to_dtype(DType::F32)?
            .reshape((1, 1, views, h, w))?;
        let affected = disocclusion.gt(0f32)?;
        Ok(Self {
            disocclusion,
            affected,
            step_fraction,
            noise: NoiseGenerator::from_seed(seed ^ NOISE_STREAM),
            elapsed: Duration::ZERO,
        })
    }

    /// Wall-clock time spent completing latents so far.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// The disocclusion masks D `[1, 1, views, h, w]` (float32 in [0, 1]) the hook completes.
    pub fn disocclusion(&self) -> &Tensor {
        &self.disocclusion
    }

    /// `latents` `[B, C, F, h, w]` completed at this step.
    fn complete(
        &mut self,
        ctx: &HookContext<'_>,
        latents: &Tensor,
        model_output: &Tensor,
    ) -> diffusion::Result<Tensor> {
        let (_, _, frames, h, w) = latents.dims5()?;
        let expected = self.disocclusion.dims();
        if (frames, h, w) != (expected[2], expected[3], expected[4]) {
            return Err(DiffusionError::argument(
                "latents",
                format!(
                    "shape {:?} does not match the disocclusion masks' {:?} (frames, h, w)",
                    latents.dims(),
                    &expected[2..]
                ),
            ));
        }
        let t = ctx.step.timestep;
        let x0 = ctx.scheduler.predict_original(model_output, t, latents)?;
        let fresh = self.noise.randn(latents.dims(), latents.device())?;
        let renoised = ctx.scheduler.add_noise(&x0, &fresh, t)?;
        let device = latents.device();
        let d = self.disocclusion.to_device(device)?;
        let keep = d.affine(-1.0, 1.0)?;
        let mixed = (latents.broadcast_mul(&keep)? + renoised.broadcast_mul(&d)?)?;
        let affected = self
            .affected
            .to_device(device)?
            .broadcast_as(latents.dims())?;
        Ok(affected.where_cond(&mixed, latents)?)
    }
}

impl SamplingHook for ClcHook {
    fn after_denoise(
        &mut self,
        ctx: &HookContext<'_>,
        latents: &mut Tensor,
        model_output: &mut Tensor,
    ) -> diffusion::Result<()> {
        if ctx.step.progress() >= self.step_fraction {
            return Ok(());
        }
        let started = Instant::now();
        *latents = self.complete(ctx, latents, model_output)?;
        self.elapsed += started.elapsed();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use candle_core::Device;

    use super::*;
    use crate::diffusion::{AnyScheduler, Scheduler, SchedulerConfig, StepInfo};

    fn scheduler(class: &str) -> AnyScheduler {
        let json = format!(
            r#"{{"_class_name": "{class}", "beta_schedule": "scaled_linear",
                "beta_start": 0.00085, "beta_end": 0.012, "steps_offset": 1,
                "clip_sample": false, "timestep_spacing": "leading"}}"#
        );
        let mut s = AnyScheduler::new(
            SchedulerConfig::from_json_str(&json, Path::new("scheduler_config.json")).unwrap(),
        );
        s.set_timesteps(10).unwrap();
        s
    }

    fn random(shape: &[usize], seed: u64) -> Tensor {
        NoiseGenerator::from_seed(seed)
            .randn(shape, &Device::Cpu)
            .unwrap()
    }

    /// Disocclusion of 3 views on a 4×5 latent grid: none in view 0 (the anchor), the left two
    /// columns of view 1 fully and its third column half, all of view 2.
    fn masks() -> Tensor {
        let mut d = vec![0f32; 3 * 4 * 5];
        for y in 0..4 {
            d[20 + y * 5] = 1.0;
            d[20 + y * 5 + 1] = 1.0;
            d[20 + y * 5 + 2] = 0.5;
        }
        d[40..60].iter_mut().for_each(|v| *v = 1.0);
        Tensor::from_vec(d, (3, 4, 5), &Device::Cpu).unwrap()
    }

    fn ctx<'a>(scheduler: &'a AnyScheduler, index: usize) -> HookContext<'a> {
        let timesteps = scheduler.timesteps();
        HookContext {
            step: StepInfo {
                index,
                num_steps: timesteps.len(),
                timestep: timesteps[index],
            },
            scheduler,
        }
    }

    /// Runs the hook once at step `index` and returns (before, after).
    fn complete(hook: &mut ClcHook, scheduler: &AnyScheduler, index: usize) -> (Tensor, Tensor) {
        let before = random(&[1, 4, 3, 4, 5], 1);
        let mut latents = before.clone();
        let mut output = random(&[1, 4, 3, 4, 5], 2);
        hook.after_denoise(&ctx(scheduler, index), &mut latents, &mut output)
            .unwrap();
        (before, latents)
    }

    #[test]
    fn changes_latents_only_inside_the_disocclusion_mask() {
        for class in ["DDIMScheduler", "EulerDiscreteScheduler"] {
            let scheduler = scheduler(class);
            let mut hook = ClcHook::new(&masks(), 0.2, 9).unwrap();
            let (before, after) = complete(&mut hook, &scheduler, 0);
            let d = masks().reshape((1, 1, 3, 4, 5)).unwrap();
            let d = d
                .broadcast_as(before.dims())
                .unwrap()
                .flatten_all()
                .unwrap();
            let d: Vec<f32> = d.to_vec1().unwrap();
            let before: Vec<f32> = before.flatten_all().unwrap().to_vec1().unwrap();
            let after: Vec<f32> = after.flatten_all().unwrap().to_vec1().unwrap();
            let mut changed = 0;
            for ((&d, &b), &a) in d.iter().zip(&before).zip(&after) {
                if d == 0.0 {
                    assert_eq!(
                        a.to_bits(),
                        b.to_bits(),
                        "{class}: outside must be untouched"
                    );
                } else {
                    assert_ne!(a, b, "{class}: inside must be re-noised");
                    changed += 1;
                }
            }
            assert_eq!(changed, 4 * (4 * 3 + 20), "{class}");
            assert!(hook.elapsed() > Duration::ZERO);
        }
    }

    #[test]
    fn fully_disoccluded_latents_are_x0_renoised_at_the_step_level() {
        // DDIM with the exact noise of a known x₀: x̂₀ = x₀, so completed latents are
        // √ᾱ_t·x₀ + √(1 − ᾱ_t)·ε' with ε' the hook's own seeded noise.
        let scheduler = scheduler("DDIMScheduler");
        let c = ctx(&scheduler, 1);
        let abar = scheduler.alpha_bar(c.step.timestep).unwrap();
        let x0 = random(&[1, 2, 2, 3, 3], 4);
        let eps = random(&[1, 2, 2, 3, 3], 5);
        let xt = ((&x0 * abar.sqrt()).unwrap() + (&eps * (1.0 - abar).sqrt()).unwrap()).unwrap();
        let ones = Tensor::ones((2, 3, 3), DType::F32, &Device::Cpu).unwrap();
        let mut hook = ClcHook::new(&ones, 0.5, 21).unwrap();
        let mut latents = xt.clone();
        let mut output = eps.clone();
        hook.after_denoise(&c, &mut latents, &mut output).unwrap();
        let fresh = NoiseGenerator::from_seed(21 ^ NOISE_STREAM)
            .randn(&[1, 2, 2, 3, 3], &Device::Cpu)
            .unwrap();
        let expected =
            ((&x0 * abar.sqrt()).unwrap() + (&fresh * (1.0 - abar).sqrt()).unwrap()).unwrap();
        let err: f32 = (latents - expected)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!(err < 1e-5, "{err}");
    }

    #[test]
    fn acts_only_before_tau_and_is_deterministic_for_a_seed() {
        let scheduler = scheduler("DDIMScheduler");
        let mut hook = ClcHook::new(&masks(), 0.2, 9).unwrap();
        let (_, first) = complete(&mut hook, &scheduler, 0);
        let (_, second) = complete(&mut hook, &scheduler, 1);
        // Step 2 of 10 has progress 0.2: past τ.
        let (before, late) = complete(&mut hook, &scheduler, 2);
        assert_eq!(
            late.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            before.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
        let mut again = ClcHook::new(&masks(), 0.2, 9).unwrap();
        let (_, first_again) = complete(&mut again, &scheduler, 0);
        let (_, second_again) = complete(&mut again, &scheduler, 1);
        let same = |a: &Tensor, b: &Tensor| {
            a.flatten_all().unwrap().to_vec1::<f32>().unwrap()
                == b.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        };
        assert!(same(&first, &first_again) && same(&second, &second_again));
        // Fresh noise each step, and another seed gives other noise.
        assert!(!same(&first, &second));
        let mut other = ClcHook::new(&masks(), 0.2, 10).unwrap();
        let (_, first_other) = complete(&mut other, &scheduler, 0);
        assert!(!same(&first, &first_other));
    }

    #[test]
    fn mismatched_latents_are_an_error() {
        let scheduler = scheduler("DDIMScheduler");
        let mut hook = ClcHook::new(&masks(), 1.0, 0).unwrap();
        let mut latents = random(&[1, 4, 2, 4, 5], 1);
        let mut output = latents.clone();
        let err = hook
            .after_denoise(&ctx(&scheduler, 0), &mut latents, &mut output)
            .unwrap_err();
        assert!(err.to_string().contains("latents"), "{err}");
        assert!(
            ClcHook::new(&Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap(), 1.0, 0).is_err()
        );
    }
}
