//! The plain AnimateDiff text-to-video run — prompt encoding, the guided sampling loop with the
//! UNet as denoiser, decoding — which MVCustom's generation extends through hooks. With no
//! hooks it computes what diffusers' `AnimateDiffPipeline` computes.

use candle_core::{DType, Tensor};

use super::components::DiffusionComponents;
use super::error::Result;
use crate::diffusion::{self, Denoiser, Sampler, SamplingRequest, StepInfo};
use crate::model::hook::FeatureHook;
use crate::model::unet::UNet;

/// A feature hook that also learns which sampling step each UNet call belongs to, so it can
/// act during part of the run only (depth-aware feature rendering: the first 70% of steps).
pub trait StepFeatureHook: FeatureHook {
    /// Called before the UNet runs for `step`.
    fn begin_step(&mut self, step: &StepInfo);
}

/// The UNet seen by the sampling loop: one forward per step, with an optional step-aware
/// feature hook.
pub struct UNetDenoiser<'a> {
    unet: &'a UNet,
    hook: Option<&'a mut dyn StepFeatureHook>,
}

impl<'a> UNetDenoiser<'a> {
    /// Denoises with `unet`, calling `hook` inside every forward when given.
    pub fn new(unet: &'a UNet, hook: Option<&'a mut dyn StepFeatureHook>) -> Self {
        Self { unet, hook }
    }
}

impl Denoiser for UNetDenoiser<'_> {
    fn predict(
        &mut self,
        latents: &Tensor,
        step: &StepInfo,
        conditioning: &Tensor,
    ) -> diffusion::Result<Tensor> {
        let timestep = Tensor::new(&[step.timestep as f32], latents.device())?;
        let hook = match self.hook.as_deref_mut() {
            Some(hook) => {
                hook.begin_step(step);
                Some(hook as &mut dyn FeatureHook)
            }
            None => None,
        };
        let out = self.unet.forward(latents, &timestep, conditioning, hook)?;
        Ok(out.to_dtype(DType::F32)?)
    }
}

/// One text-to-video run.
#[derive(Clone, Debug)]
pub struct VideoRequest {
    /// The prompt.
    pub prompt: String,
    /// The negative prompt ("" for none; encoded as the unconditional input under guidance).
    pub negative_prompt: String,
    /// Classifier-free guidance scale.
    pub guidance_scale: f64,
    /// Denoising steps.
    pub steps: usize,
    /// Unit-variance initial noise `[1, C, F, h, w]`.
    pub initial_noise: Tensor,
}

/// Runs the sampling loop for `request` with `unet` (the components' UNet, possibly with
/// another attention mode) and returns the final diffusion-scale latents `[1, C, F, h, w]`.
pub fn sample_latents<'a>(
    components: &DiffusionComponents,
    unet: &'a UNet,
    request: &VideoRequest,
    sampler: Sampler<'_>,
    hook: Option<&'a mut dyn StepFeatureHook>,
) -> Result<Tensor> {
    let prompt_embeds = components.encode_prompt(&request.prompt)?;
    let negative = if request.guidance_scale > 1.0 {
        Some(components.encode_prompt(&request.negative_prompt)?)
    } else {
        None
    };
    let sampling = SamplingRequest {
        prompt_embeds,
        negative_prompt_embeds: negative,
        guidance_scale: request.guidance_scale,
        num_inference_steps: request.steps,
        initial_noise: request.initial_noise.clone(),
    };
    let mut scheduler = components.new_scheduler();
    let mut denoiser = UNetDenoiser::new(unet, hook);
    let mut sampler = sampler;
    Ok(sampler.run(&mut scheduler, &mut denoiser, &sampling)?)
}
