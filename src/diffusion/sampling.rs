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

use super::error::Result;
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
    fn predict(&mut self, latents: &Tensor, step: &StepInfo, conditioning: &Tensor) -> Result<Tensor>;
}

impl<F> Denoiser for F
where
    F: FnMut(&Tensor, &StepInfo, &Tensor) -> Result<Tensor>,
{
    fn predict(&mut self, latents: &Tensor, step: &StepInfo, conditioning: &Tensor) -> Result<Tensor> {
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

    /// Runs the loop: `set_timesteps`, initial latents = noise·σ_init, then for each timestep
    /// the hooks, the (guided) network call and the scheduler step. Returns the final latents
    /// (float32, not yet divided by the VAE scaling factor).
    pub fn run(
        &mut self,
        scheduler: &mut dyn Scheduler,
        denoiser: &mut dyn Denoiser,
        request: &SamplingRequest,
    ) -> Result<Tensor> {
        let guidance = ClassifierFreeGuidance::new(request.guidance_scale)?;
        let conditioning =
            guidance.batch_conditioning(&request.prompt_embeds, request.negative_prompt_embeds.as_ref())?;
        scheduler.set_timesteps(request.num_inference_steps)?;
        let timesteps = scheduler.timesteps().to_vec();
        let mut latents = request
            .initial_noise
            .to_dtype(candle_core::DType::F32)?
            .affine(scheduler.init_noise_sigma(), 0.0)?;
        for (index, &timestep) in timesteps.iter().enumerate() {
            self.check_cancel()?;
            let step = StepInfo {
                index,
                num_steps: timesteps.len(),
                timestep,
            };
            for hook in &mut self.hooks {
                hook.before_denoise(&HookContext { step, scheduler: &*scheduler }, &mut latents)?;
            }
            let model_input = scheduler.scale_model_input(&guidance.batch_latents(&latents)?, timestep)?;
            let output = denoiser.predict(&model_input, &step, &conditioning)?;
            self.check_cancel()?;
            let mut model_output = guidance.combine(&output)?;
            for hook in &mut self.hooks {
                let ctx = HookContext { step, scheduler: &*scheduler };
                hook.after_denoise(&ctx, &mut latents, &mut model_output)?;
            }
            let stepped = scheduler.step(&model_output, timestep, &latents)?;
            latents = stepped.prev_sample;
            for hook in &mut self.hooks {
                let ctx = HookContext { step, scheduler: &*scheduler };
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
