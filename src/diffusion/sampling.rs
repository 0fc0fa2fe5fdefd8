//! The text-to-video sampling loop of diffusers' `AnimateDiffPipeline`, independent of concrete
//! networks: a [`Denoiser`] predicts noise for latents `[B, C, F, h, w]`, a [`Scheduler`] steps,
//! classifier-free guidance batches the unconditional and text halves into one call, and
//! [`SamplingHook`]s, progress events and a [`CancelToken`] attach around each step.
//!
//! ```
//! use bevy_mvcustom::diffusion::{
//!     AnyScheduler, DdimConfig, Denoiser, Sampler, SamplingRequest, Scheduler, StepInfo,
//! };
//! use candle_core::{DType, Device, Tensor};
//!
//! /// A stand-in network predicting zero noise.
//! struct Zero;
//! impl Denoiser for Zero {
//!     fn predict(
//!         &mut self,
//!         latents: &Tensor,
//!         _step: &StepInfo,
//!         _cond: &Tensor,
//!     ) -> bevy_mvcustom::diffusion::Result<Tensor> {
//!         Ok(latents.zeros_like()?)
//!     }
//! }
//!
//! let mut scheduler = AnyScheduler::Ddim(bevy_mvcustom::diffusion::DdimScheduler::new(DdimConfig::default()));
//! let request = SamplingRequest {
//!     prompt_embeds: Tensor::zeros((1, 77, 8), DType::F32, &Device::Cpu)?,
//!     negative_prompt_embeds: None,
//!     guidance_scale: 1.0,
//!     num_inference_steps: 4,
//!     initial_noise: Tensor::ones((1, 4, 2, 8, 8), DType::F32, &Device::Cpu)?,
//!     init: None,
//! };
//! let mut steps = 0;
//! let latents = Sampler::new()
//!     .with_progress(|_| steps += 1)
//!     .run(&mut scheduler, &mut Zero, &request)?;
//! assert_eq!(latents.dims(), &[1, 4, 2, 8, 8]);
//! assert_eq!(steps, 4);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use candle_core::Tensor;

use super::error::{DiffusionError, Result};
use super::guidance::ClassifierFreeGuidance;
use super::hooks::{CancelToken, HookContext, ProgressEvent, SamplingHook, StepInfo};
use super::scheduler::Scheduler;

/// The noise-predicting network seen by the loop (the UNet with motion modules, or a test
/// stand-in).
pub trait Denoiser {
    /// The prediction (ε, v or x₀, per the scheduler's prediction type) for `latents`, already
    /// scaled by [`Scheduler::scale_model_input`], shape `[N, C, F, h, w]`, at `step.timestep`,
    /// conditioned on `conditioning` (`[N, tokens, dim]`; with guidance the batch is
    /// `[uncond; text]`, N = 2B). Returns a tensor of the latents' shape. `step` also tells the
    /// network which step of the run it is in (for step-dependent feature hooks).
    fn predict(
        &mut self,
        latents: &Tensor,
        step: &StepInfo,
        conditioning: &Tensor,
    ) -> Result<Tensor>;
}

impl<F> Denoiser for F
where
    F: FnMut(&Tensor, &StepInfo, &Tensor) -> Result<Tensor>,
{
    fn predict(
        &mut self,
        latents: &Tensor,
        step: &StepInfo,
        conditioning: &Tensor,
    ) -> Result<Tensor> {
        self(latents, step, conditioning)
    }
}

/// The inputs of one text-to-video sampling run.
#[derive(Clone, Debug)]
pub struct SamplingRequest {
    /// Text embeddings of the prompt, `[B, tokens, dim]`.
    pub prompt_embeds: Tensor,
    /// Embeddings of the negative prompt (or of "" when there is none), same shape; required
    /// when `guidance_scale > 1`.
    pub negative_prompt_embeds: Option<Tensor>,
    /// Classifier-free guidance scale g; ≤ 1 runs one conditioned pass per step.
    pub guidance_scale: f64,
    /// Number of scheduler steps.
    pub num_inference_steps: usize,
    /// Unit-variance noise `[B, C, F, h, w]`; the loop multiplies it by the scheduler's
    /// [`Scheduler::init_noise_sigma`]. Draw it with
    /// [`NoiseGenerator`](super::NoiseGenerator) from a seed, or pass a reference run's noise.
    pub initial_noise: Tensor,
    /// Start from these clean latents instead of pure noise; `None`: text-to-video.
    pub init: Option<InitLatents>,
}

/// Clean latents a run starts from (SDEdit; the `strength` of diffusers' image-to-image and
/// video-to-video pipelines): they are noised to the level of the first step that runs, so
/// the result keeps their layout and the prompt decides the rest.
#[derive(Clone, Debug)]
pub struct InitLatents {
    /// Clean latents, the shape of [`SamplingRequest::initial_noise`] (already multiplied by
    /// the VAE's scaling factor).
    pub latents: Tensor,
    /// Fraction of the schedule that runs, in (0, 1]: the last ⌊steps·strength⌋ steps run
    /// (at least one); 1 runs every step from the fully noised latents.
    pub strength: f64,
}

impl InitLatents {
    /// How many of `steps` scheduler steps run, as diffusers counts them.
    pub fn steps_run(&self, steps: usize) -> Result<usize> {
        if !(self.strength > 0.0 && self.strength <= 1.0) {
            return Err(DiffusionError::argument(
                "strength",
                format!("{} is outside (0, 1]", self.strength),
            ));
        }
        Ok(((steps as f64 * self.strength).floor() as usize)
            .max(1)
            .min(steps))
    }
}

/// The sampling loop with its attachments; build one per run.
#[derive(Default)]
pub struct Sampler<'a> {
    hooks: Vec<&'a mut dyn SamplingHook>,
    progress: Option<Box<dyn FnMut(ProgressEvent) + 'a>>,
    cancel: Option<CancelToken>,
}

impl<'a> Sampler<'a> {
    /// A loop with no hooks, no progress reporting and no cancellation.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a hook; hooks run in the order they were added.
    pub fn with_hook(mut self, hook: &'a mut dyn SamplingHook) -> Self {
        self.hooks.push(hook);
        self
    }

    /// Calls `report` after each completed step.
    pub fn with_progress(mut self, report: impl FnMut(ProgressEvent) + 'a) -> Self {
        self.progress = Some(Box::new(report));
        self
    }

    /// Stops the run with [`DiffusionError::Cancelled`](super::DiffusionError::Cancelled) once
    /// `token` is cancelled, checked before each step and after each network call.
    pub fn with_cancel(mut self, token: CancelToken) -> Self {
        self.cancel = Some(token);
        self
    }

    fn check_cancel(&self) -> Result<()> {
        self.cancel.as_ref().map_or(Ok(()), CancelToken::check)
    }

    /// Runs the loop: `set_timesteps`, initial latents = noise·σ_init (or, from
    /// [`InitLatents`], the clean latents noised to the first step that runs), then for each
    /// timestep the hooks, the (guided) network call and the scheduler step. Hooks see the
    /// steps that run, numbered from 0. Returns the final latents (float32, not yet divided by
    /// the VAE scaling factor).
    pub fn run(
        &mut self,
        scheduler: &mut dyn Scheduler,
        denoiser: &mut dyn Denoiser,
        request: &SamplingRequest,
    ) -> Result<Tensor> {
        let guidance = ClassifierFreeGuidance::new(request.guidance_scale)?;
        let conditioning = guidance.batch_conditioning(
            &request.prompt_embeds,
            request.negative_prompt_embeds.as_ref(),
        )?;
        scheduler.set_timesteps(request.num_inference_steps)?;
        let mut timesteps = scheduler.timesteps().to_vec();
        let noise = request.initial_noise.to_dtype(candle_core::DType::F32)?;
        let mut latents = match &request.init {
            None => noise.affine(scheduler.init_noise_sigma(), 0.0)?,
            Some(init) => {
                if init.latents.dims() != noise.dims() {
                    return Err(DiffusionError::argument(
                        "init.latents",
                        format!(
                            "shape {:?} differs from the noise's {:?}",
                            init.latents.dims(),
                            noise.dims()
                        ),
                    ));
                }
                let run = init.steps_run(timesteps.len())?;
                timesteps.drain(..timesteps.len() - run);
                let clean = init.latents.to_dtype(candle_core::DType::F32)?;
                scheduler.add_noise(&clean, &noise, timesteps[0])?
            }
        };
        for (index, &timestep) in timesteps.iter().enumerate() {
            self.check_cancel()?;
            let step = StepInfo {
                index,
                num_steps: timesteps.len(),
                timestep,
            };
            for hook in &mut self.hooks {
                hook.before_denoise(
                    &HookContext {
                        step,
                        scheduler: &*scheduler,
                    },
                    &mut latents,
                )?;
            }
            let model_input =
                scheduler.scale_model_input(&guidance.batch_latents(&latents)?, timestep)?;
            let output = denoiser.predict(&model_input, &step, &conditioning)?;
            self.check_cancel()?;
            let mut model_output = guidance.combine(&output)?;
            for hook in &mut self.hooks {
                let ctx = HookContext {
                    step,
                    scheduler: &*scheduler,
                };
                hook.after_denoise(&ctx, &mut latents, &mut model_output)?;
            }
            let stepped = scheduler.step(&model_output, timestep, &latents)?;
            latents = stepped.prev_sample;
            for hook in &mut self.hooks {
                let ctx = HookContext {
                    step,
                    scheduler: &*scheduler,
                };
                hook.after_step(&ctx, &stepped.pred_original_sample, &mut latents)?;
            }
            if let Some(report) = self.progress.as_mut() {
                report(ProgressEvent {
                    completed: index + 1,
                    total: timesteps.len(),
                    timestep,
                });
            }
        }
        Ok(latents)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use candle_core::{DType, Device, Tensor};

    use super::*;
    use crate::diffusion::error::DiffusionError;
    use crate::diffusion::scheduler::{AnyScheduler, NoiseSchedule, SchedulerConfig};
    use crate::model::test_support::max_abs_diff;

    fn config(class: &str) -> SchedulerConfig {
        // set_alpha_to_one / final σ = 0: the last step lands exactly on x₀.
        let json = format!(
            r#"{{"_class_name": "{class}", "beta_schedule": "scaled_linear", "beta_start": 0.00085,
                "beta_end": 0.012, "steps_offset": 1, "clip_sample": false,
                "set_alpha_to_one": true, "timestep_spacing": "leading"}}"#
        );
        SchedulerConfig::from_json_str(&json, Path::new("test.json")).unwrap()
    }

    /// Predicts the exact ε of its input for a known clean sample x₀: with the input written as
    /// x = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε (the scaled input is in this form for every scheduler), ε is
    /// (x − √ᾱ_t·x₀)/√(1−ᾱ_t), ᾱ_t from the training table at the (integer) timestep.
    struct ExactEpsilon {
        x0: Tensor,
        alphas_cumprod: Vec<f32>,
        calls: usize,
    }

    impl Denoiser for ExactEpsilon {
        fn predict(&mut self, latents: &Tensor, step: &StepInfo, _cond: &Tensor) -> Result<Tensor> {
            self.calls += 1;
            let abar = f64::from(self.alphas_cumprod[step.timestep as usize]);
            let x0 = self.x0.broadcast_as(latents.dims())?;
            Ok(((latents - (x0 * abar.sqrt())?)? / (1.0 - abar).sqrt())?)
        }
    }

    fn request(guidance_scale: f64, steps: usize) -> SamplingRequest {
        let dev = Device::Cpu;
        SamplingRequest {
            prompt_embeds: Tensor::ones((1, 3, 2), DType::F32, &dev).unwrap(),
            negative_prompt_embeds: Some(Tensor::zeros((1, 3, 2), DType::F32, &dev).unwrap()),
            guidance_scale,
            num_inference_steps: steps,
            initial_noise: crate::diffusion::NoiseGenerator::from_seed(11)
                .randn(&[1, 4, 2, 3, 3], &dev)
                .unwrap(),
            init: None,
        }
    }

    fn exact(class: &str) -> (AnyScheduler, ExactEpsilon) {
        let cfg = config(class);
        let common = match &cfg {
            SchedulerConfig::Ddim(c) => c.common.clone(),
            SchedulerConfig::EulerDiscrete(c) => c.common.clone(),
            SchedulerConfig::DpmSolverMultistep(c) => c.common.clone(),
        };
        let x0 = Tensor::arange(0f32, 72.0, &Device::Cpu)
            .unwrap()
            .affine(1.0 / 36.0, -1.0)
            .unwrap()
            .reshape((1, 4, 2, 3, 3))
            .unwrap();
        let denoiser = ExactEpsilon {
            x0,
            alphas_cumprod: NoiseSchedule::new(&common).alphas_cumprod().to_vec(),
            calls: 0,
        };
        (AnyScheduler::new(cfg), denoiser)
    }

    #[test]
    fn exact_noise_prediction_recovers_the_clean_sample() {
        for class in [
            "DDIMScheduler",
            "EulerDiscreteScheduler",
            "DPMSolverMultistepScheduler",
        ] {
            let (mut scheduler, mut denoiser) = exact(class);
            let out = Sampler::new()
                .run(&mut scheduler, &mut denoiser, &request(1.0, 10))
                .unwrap();
            let err = max_abs_diff(&out, &denoiser.x0);
            assert!(err < 1e-3, "{class}: |x − x₀| = {err}");
            assert_eq!(denoiser.calls, 10);
        }
    }

    #[test]
    fn init_latents_run_the_last_steps_from_the_noised_clean_latents() {
        let (mut scheduler, mut denoiser) = exact("DDIMScheduler");
        let clean = denoiser.x0.affine(-0.5, 0.25).unwrap();
        let mut request = request(1.0, 10);
        request.init = Some(InitLatents {
            latents: clean.clone(),
            strength: 0.35,
        });
        let mut first_input = None;
        let mut timesteps = Vec::new();
        let mut spy = |latents: &Tensor, step: &StepInfo, cond: &Tensor| -> Result<Tensor> {
            first_input.get_or_insert_with(|| latents.clone());
            timesteps.push(step.timestep);
            denoiser.predict(latents, step, cond)
        };
        let out = Sampler::new()
            .run(&mut scheduler, &mut spy, &request)
            .unwrap();
        // ⌊10 · 0.35⌋ = 3 steps run: the last three of DDIM's leading schedule (step 100,
        // offset 1): 201, 101, 1.
        assert_eq!(timesteps, vec![201.0, 101.0, 1.0]);
        // The first input is the clean latents noised to t = 201: √ᾱ·x + √(1 − ᾱ)·ε.
        let abar = f64::from(denoiser.alphas_cumprod[201]);
        let expected = ((&clean * abar.sqrt()).unwrap()
            + (&request.initial_noise * (1.0 - abar).sqrt()).unwrap())
        .unwrap();
        assert!(max_abs_diff(first_input.as_ref().unwrap(), &expected) < 1e-5);
        // The exact network still lands on its clean sample.
        assert!(max_abs_diff(&out, &denoiser.x0) < 1e-3);
    }

    #[test]
    fn bad_init_latents_name_their_field() {
        let (mut scheduler, mut denoiser) = exact("DDIMScheduler");
        let mut bad = request(1.0, 4);
        let latents = bad.initial_noise.clone();
        for (strength, field) in [(0.0, "strength"), (1.5, "strength"), (f64::NAN, "strength")] {
            bad.init = Some(InitLatents {
                latents: latents.clone(),
                strength,
            });
            let error = Sampler::new()
                .run(&mut scheduler, &mut denoiser, &bad)
                .unwrap_err()
                .to_string();
            assert!(error.contains(field), "{error}");
        }
        bad.init = Some(InitLatents {
            latents: latents.narrow(2, 0, 1).unwrap(),
            strength: 0.5,
        });
        let error = Sampler::new()
            .run(&mut scheduler, &mut denoiser, &bad)
            .unwrap_err()
            .to_string();
        assert!(error.contains("init.latents"), "{error}");
        assert_eq!(denoiser.calls, 0);
    }

    /// Predicts, for each batch item, ε = the item's first conditioning value, and records the
    /// batch size and conditioning of every call.
    #[derive(Default)]
    struct ConditioningEcho {
        seen: Vec<(usize, Vec<f32>)>,
    }

    impl Denoiser for ConditioningEcho {
        fn predict(&mut self, latents: &Tensor, _: &StepInfo, cond: &Tensor) -> Result<Tensor> {
            self.seen
                .push((latents.dim(0)?, cond.flatten_all()?.to_vec1::<f32>()?));
            let per_item =
                cond.narrow(1, 0, 1)?
                    .narrow(2, 0, 1)?
                    .reshape((cond.dim(0)?, 1, 1, 1, 1))?;
            Ok(per_item.broadcast_as(latents.dims())?.contiguous()?)
        }
    }

    #[test]
    fn guidance_batches_uncond_first_and_combines() {
        let mut scheduler = AnyScheduler::new(config("DDIMScheduler"));
        let mut echo = ConditioningEcho::default();
        let mut hook = Recorder::default();
        Sampler::new()
            .with_hook(&mut hook)
            .run(&mut scheduler, &mut echo, &request(3.0, 1))
            .unwrap();
        // One call with the batch [uncond (zeros); text (ones)].
        assert_eq!(echo.seen.len(), 1);
        assert_eq!(echo.seen[0].0, 2);
        let expected: Vec<f32> = [0.0; 6].into_iter().chain([1.0; 6]).collect();
        assert_eq!(echo.seen[0].1, expected);
        // Guided ε = uncond 0 + 3·(text 1 − 0) = 3 everywhere.
        let guided = hook.outputs[0]
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(guided, vec![3.0; 72]);

        let mut scheduler = AnyScheduler::new(config("DDIMScheduler"));
        let mut echo = ConditioningEcho::default();
        Sampler::new()
            .run(&mut scheduler, &mut echo, &request(1.0, 2))
            .unwrap();
        assert_eq!(echo.seen.len(), 2);
        assert!(
            echo.seen
                .iter()
                .all(|(batch, cond)| *batch == 1 && cond == &vec![1.0; 6])
        );
    }

    /// Records every hook call and the guided outputs; zeroes the latents after step `zero_at`.
    #[derive(Default)]
    struct Recorder {
        calls: Vec<(&'static str, usize)>,
        outputs: Vec<Tensor>,
        zero_at: Option<usize>,
    }

    impl SamplingHook for Recorder {
        fn before_denoise(&mut self, ctx: &HookContext<'_>, _latents: &mut Tensor) -> Result<()> {
            self.calls.push(("before", ctx.step.index));
            Ok(())
        }

        fn after_denoise(
            &mut self,
            ctx: &HookContext<'_>,
            _x: &mut Tensor,
            output: &mut Tensor,
        ) -> Result<()> {
            self.calls.push(("denoised", ctx.step.index));
            self.outputs.push(output.clone());
            Ok(())
        }

        fn after_step(
            &mut self,
            ctx: &HookContext<'_>,
            _x0: &Tensor,
            latents: &mut Tensor,
        ) -> Result<()> {
            self.calls.push(("after", ctx.step.index));
            if self.zero_at == Some(ctx.step.index) {
                *latents = latents.zeros_like()?;
            }
            Ok(())
        }
    }

    #[test]
    fn hooks_run_in_order_and_can_replace_latents() {
        let (mut scheduler, mut denoiser) = exact("DDIMScheduler");
        let mut hook = Recorder {
            zero_at: Some(2),
            ..Recorder::default()
        };
        let mut inputs = Vec::new();
        let mut spy = |latents: &Tensor, step: &StepInfo, cond: &Tensor| -> Result<Tensor> {
            inputs.push(latents.clone());
            denoiser.predict(latents, step, cond)
        };
        Sampler::new()
            .with_hook(&mut hook)
            .run(&mut scheduler, &mut spy, &request(1.0, 4))
            .unwrap();
        let expected: Vec<(&str, usize)> = (0..4)
            .flat_map(|i| [("before", i), ("denoised", i), ("after", i)])
            .collect();
        assert_eq!(hook.calls, expected);
        // The hook zeroed the latents after step 2: step 3's network input is zero.
        assert_eq!(
            inputs[3]
                .abs()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap(),
            0.0
        );
    }

    #[test]
    fn progress_is_reported_in_order() {
        let (mut scheduler, mut denoiser) = exact("EulerDiscreteScheduler");
        let mut events = Vec::new();
        Sampler::new()
            .with_progress(|e| events.push(e))
            .run(&mut scheduler, &mut denoiser, &request(1.0, 5))
            .unwrap();
        let completed: Vec<usize> = events.iter().map(|e| e.completed).collect();
        assert_eq!(completed, vec![1, 2, 3, 4, 5]);
        assert!(events.iter().all(|e| e.total == 5));
        let timesteps: Vec<f64> = events.iter().map(|e| e.timestep).collect();
        assert_eq!(timesteps, scheduler.timesteps());
    }

    #[test]
    fn cancel_stops_before_the_next_step() {
        let (mut scheduler, mut denoiser) = exact("DPMSolverMultistepScheduler");
        let token = CancelToken::new();
        let remote = token.clone();
        let result = Sampler::new()
            .with_cancel(token)
            .with_progress(move |e| {
                if e.completed == 3 {
                    remote.cancel();
                }
            })
            .run(&mut scheduler, &mut denoiser, &request(1.0, 8));
        assert!(matches!(result, Err(DiffusionError::Cancelled)));
        assert_eq!(denoiser.calls, 3);
    }

    #[test]
    fn hook_errors_stop_the_run() {
        struct Fails;
        impl SamplingHook for Fails {
            fn before_denoise(&mut self, ctx: &HookContext<'_>, _: &mut Tensor) -> Result<()> {
                if ctx.step.index == 1 {
                    Err(DiffusionError::Cancelled)
                } else {
                    Ok(())
                }
            }
        }
        let (mut scheduler, mut denoiser) = exact("DDIMScheduler");
        let result = Sampler::new().with_hook(&mut Fails).run(
            &mut scheduler,
            &mut denoiser,
            &request(1.0, 4),
        );
        assert!(result.unwrap_err().is_cancelled());
        assert_eq!(denoiser.calls, 1);
    }

    #[test]
    fn missing_unconditional_embeddings_are_reported() {
        let (mut scheduler, mut denoiser) = exact("DDIMScheduler");
        let mut req = request(7.5, 2);
        req.negative_prompt_embeds = None;
        let err = Sampler::new()
            .run(&mut scheduler, &mut denoiser, &req)
            .unwrap_err();
        assert!(
            matches!(err, DiffusionError::InvalidArgument { ref name, .. } if name == "negative_prompt_embeds")
        );
        assert_eq!(denoiser.calls, 0);
    }
}
