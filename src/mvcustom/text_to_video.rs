//! The plain AnimateDiff text-to-video run — prompt encoding, the guided sampling loop with the
//! UNet as denoiser, decoding — which MVCustom's generation extends through hooks. With no
//! hooks it computes what diffusers' `AnimateDiffPipeline` computes.

use candle_core::{DType, Tensor};

use super::components::DiffusionComponents;
use super::error::Result;
use crate::diffusion::{
    self, ClassifierFreeGuidance, Denoiser, InitLatents, Sampler, SamplingRequest, StepInfo,
};
use crate::model::hook::{FeatureHook, HookPoint};
use crate::model::pose::PoseBlockHook;
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

/// Several step-aware feature hooks run as one (pose blocks and depth-aware feature
/// rendering in the same UNet): at each point every hook that wants it sees the features as
/// the hooks before it left them, in the order given.
pub struct HookChain<'a> {
    hooks: Vec<&'a mut dyn StepFeatureHook>,
}

impl<'a> HookChain<'a> {
    /// Chains `hooks`, called in this order at every point.
    pub fn new(hooks: Vec<&'a mut dyn StepFeatureHook>) -> Self {
        Self { hooks }
    }

    /// Whether no hook is chained.
    pub fn is_empty(&self) -> bool {
        self.hooks.is_empty()
    }
}

impl FeatureHook for HookChain<'_> {
    fn wants(&self, point: &HookPoint<'_>) -> bool {
        self.hooks.iter().any(|h| h.wants(point))
    }

    fn on_features(
        &mut self,
        point: &HookPoint<'_>,
        features: &Tensor,
    ) -> crate::model::Result<Option<Tensor>> {
        let mut current: Option<Tensor> = None;
        for hook in self.hooks.iter_mut() {
            if !hook.wants(point) {
                continue;
            }
            let input = current.as_ref().unwrap_or(features);
            if let Some(replaced) = hook.on_features(point, input)? {
                current = Some(replaced);
            }
        }
        Ok(current)
    }
}

impl StepFeatureHook for HookChain<'_> {
    fn begin_step(&mut self, step: &StepInfo) {
        for hook in self.hooks.iter_mut() {
            hook.begin_step(step);
        }
    }
}

/// Pose-conditioned blocks act at every step: their rendered features do not depend on the
/// step.
impl StepFeatureHook for PoseBlockHook<'_> {
    fn begin_step(&mut self, _step: &StepInfo) {}
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

impl VideoRequest {
    /// The run with its prompts encoded by the components' text encoder.
    pub fn encode(&self, components: &DiffusionComponents) -> Result<EncodedVideoRequest> {
        Ok(EncodedVideoRequest {
            embeddings: PromptEmbeddings::encode(
                &self.prompt,
                &self.negative_prompt,
                self.guidance_scale,
                |text| components.encode_prompt(text),
            )?,
            guidance_scale: self.guidance_scale,
            steps: self.steps,
            initial_noise: self.initial_noise.clone(),
            init: None,
        })
    }
}

/// The encoded prompts of one run.
#[derive(Clone, Debug)]
pub struct PromptEmbeddings {
    /// The prompt's conditioning `[1, tokens, D]`.
    pub prompt: Tensor,
    /// The negative prompt's, present exactly when guidance is active (scale > 1).
    pub negative: Option<Tensor>,
}

impl PromptEmbeddings {
    /// Encodes `prompt` and, when `guidance_scale` makes guidance active, `negative_prompt`
    /// with `encode` (the components' text encoder, or one with a subject's token).
    pub fn encode(
        prompt: &str,
        negative_prompt: &str,
        guidance_scale: f64,
        encode: impl Fn(&str) -> Result<Tensor>,
    ) -> Result<Self> {
        let negative = if ClassifierFreeGuidance::new(guidance_scale)?.is_active() {
            Some(encode(negative_prompt)?)
        } else {
            None
        };
        Ok(Self {
            prompt: encode(prompt)?,
            negative,
        })
    }

    /// The conditioning of the UNet batch under `guidance_scale`: `[negative; prompt]` with
    /// guidance, `prompt` without.
    pub fn batch(&self, guidance_scale: f64) -> Result<Tensor> {
        Ok(ClassifierFreeGuidance::new(guidance_scale)?
            .batch_conditioning(&self.prompt, self.negative.as_ref())?)
    }
}

/// One text-to-video run whose prompts are already encoded (e.g. with a subject's learned
/// token).
#[derive(Clone, Debug)]
pub struct EncodedVideoRequest {
    /// The prompts' conditioning.
    pub embeddings: PromptEmbeddings,
    /// Classifier-free guidance scale.
    pub guidance_scale: f64,
    /// Denoising steps.
    pub steps: usize,
    /// Unit-variance initial noise `[1, C, F, h, w]`.
    pub initial_noise: Tensor,
    /// Clean latents to start from instead of pure noise (video-to-video).
    pub init: Option<InitLatents>,
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
    sample_encoded(
        components,
        unet,
        &request.encode(components)?,
        sampler,
        hook,
    )
}

/// [`sample_latents`] for a request whose prompts are already encoded.
pub fn sample_encoded<'a>(
    components: &DiffusionComponents,
    unet: &'a UNet,
    request: &EncodedVideoRequest,
    sampler: Sampler<'_>,
    hook: Option<&'a mut dyn StepFeatureHook>,
) -> Result<Tensor> {
    let sampling = SamplingRequest {
        prompt_embeds: request.embeddings.prompt.clone(),
        negative_prompt_embeds: request.embeddings.negative.clone(),
        guidance_scale: request.guidance_scale,
        num_inference_steps: request.steps,
        initial_noise: request.initial_noise.clone(),
        init: request.init.clone(),
    };
    let mut scheduler = components.new_scheduler();
    let mut denoiser = UNetDenoiser::new(unet, hook);
    let mut sampler = sampler;
    Ok(sampler.run(&mut scheduler, &mut denoiser, &sampling)?)
}
