//! [`MvPipeline`]: a loaded model and the generation of consistent views for a set of target
//! cameras — the entry point of the CLI and the Bevy plugin.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use candle_core::Tensor;

use super::components::DiffusionComponents;
use super::compose::CompositionHook;
use super::error::{MvError, Result};
use super::request::{GeneratedViews, GenerationEvent, GenerationRequest, Stage, StageTiming};
use super::techniques::{self, Plan, SharedRenderer, TechniqueHooks};
use super::text_to_video::{StepFeatureHook, VideoRequest, sample_latents};
use crate::diffusion::{CancelToken, HookContext, NoiseGenerator, Sampler, SamplingHook};
use crate::model::depth::DepthEstimator;
use crate::model::motion::MotionAttention;
use crate::model::unet::UNet;
use crate::model::{ComputeSettings, WeightVariant};
use crate::render::{DepthMap, FeatureRenderer};

/// A model loaded once and shared (it is `Send + Sync`) by every generation, with the feature
/// renderer of depth-aware feature rendering (created on first use, then reused) and,
/// optionally, a monocular depth estimator for requests without an anchor depth.
#[derive(Clone, Debug)]
pub struct MvPipeline {
    components: DiffusionComponents,
    renderer: SharedRenderer,
    depth_estimator: Option<Arc<dyn DepthEstimator>>,
}

/// Reports steps and, when asked, decoded x̂₀ previews through the caller's event sink.
struct EventHook<'a, 'e> {
    components: &'a DiffusionComponents,
    events: &'a mut (dyn FnMut(GenerationEvent) + 'e),
    preview_every: Option<usize>,
}

impl SamplingHook for EventHook<'_, '_> {
    fn after_step(
        &mut self,
        ctx: &HookContext<'_>,
        pred_original: &Tensor,
        _latents: &mut Tensor,
    ) -> crate::diffusion::Result<()> {
        let completed = ctx.step.index + 1;
        (self.events)(GenerationEvent::Step {
            completed,
            total: ctx.step.num_steps,
        });
        let due = self.preview_every.is_some_and(|every| {
            every > 0 && completed.is_multiple_of(every) && completed < ctx.step.num_steps
        });
        if due {
            let frames = self.components.decode_frames(pred_original).map_err(|e| {
                crate::diffusion::DiffusionError::argument("preview", e.to_string())
            })?;
            let images = frames_to_images(&frames).map_err(|e| {
                crate::diffusion::DiffusionError::argument("preview", e.to_string())
            })?;
            (self.events)(GenerationEvent::Preview { completed, images });
        }
        Ok(())
    }
}

/// Converts frames `[1, F, 3, H, W]` in [0, 1] into RGBA8 images.
pub(crate) fn frames_to_images(frames: &Tensor) -> Result<Vec<image::RgbaImage>> {
    let (_, count, _, height, width) = frames.dims5()?;
    let mut images = Vec::with_capacity(count);
    for f in 0..count {
        let pixels = frames
            .narrow(1, f, 1)?
            .squeeze(1)?
            .squeeze(0)?
            .permute((1, 2, 0))?
            .affine(255.0, 0.5)?
            .clamp(0.0f32, 255.0f32)?
            .to_dtype(candle_core::DType::U8)?
            .flatten_all()?
            .to_vec1::<u8>()?;
        let rgba: Vec<u8> = pixels
            .chunks_exact(3)
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect();
        let image = image::RgbaImage::from_raw(width as u32, height as u32, rgba)
            .ok_or_else(|| MvError::request("frames", "decoded frame has an unexpected size"))?;
        images.push(image);
    }
    Ok(images)
}

impl MvPipeline {
    /// Loads the diffusers-layout model folder `model_dir` on `settings`' device and dtype.
    pub fn load(model_dir: &Path, settings: &ComputeSettings) -> Result<Self> {
        Ok(Self::from_components(DiffusionComponents::load(
            model_dir,
            WeightVariant::Full,
            settings,
        )?))
    }

    /// Wraps already loaded components.
    pub fn from_components(components: DiffusionComponents) -> Self {
        Self {
            components,
            renderer: SharedRenderer::default(),
            depth_estimator: None,
        }
    }

    /// Estimates the anchor depth with `estimator` when a request using depth-aware feature
    /// rendering has none (e.g. [`DepthAnything`](crate::model::depth::DepthAnything)).
    pub fn with_depth_estimator(mut self, estimator: Arc<dyn DepthEstimator>) -> Self {
        self.depth_estimator = Some(estimator);
        self
    }

    /// Uses `renderer` for depth-aware feature rendering (e.g. one on the Bevy app's device)
    /// instead of creating one on first use.
    pub fn with_renderer(mut self, renderer: FeatureRenderer) -> Self {
        self.renderer = SharedRenderer::new(renderer);
        self
    }

    /// The loaded networks.
    pub fn components(&self) -> &DiffusionComponents {
        &self.components
    }

    /// The most views one generation can produce (the motion modules' frame limit).
    pub fn max_views(&self) -> Option<usize> {
        self.components.unet.max_frames()
    }

    /// Generates one view per camera of `request`, jointly as the frames of one clip, reporting
    /// progress through `events` and stopping with [`MvError::Cancelled`] once `cancel` is
    /// cancelled.
    pub fn generate(
        &self,
        request: &GenerationRequest,
        events: &mut dyn FnMut(GenerationEvent),
        cancel: &CancelToken,
    ) -> Result<GeneratedViews> {
        let views = request.cameras.len();
        if views == 0 {
            return Err(MvError::request("cameras", "at least one camera is needed"));
        }
        match self.max_views() {
            Some(max) if views > max => {
                return Err(MvError::request(
                    "cameras",
                    format!("{views} views exceed this model's {max} frames"),
                ));
            }
            None if views > 1 => {
                return Err(MvError::request(
                    "cameras",
                    "this model has no motion modules, so it generates one view at a time",
                ));
            }
            _ => {}
        }
        if request.steps == 0 {
            return Err(MvError::request("steps", "must be at least 1"));
        }
        if !request.guidance_scale.is_finite() {
            return Err(MvError::request("guidance_scale", "must be finite"));
        }
        let latent = self.components.latent_size(request.width, request.height)?;
        let mut timings = Vec::new();
        let mut unet = self.components.unet.clone();
        if request.techniques.dense_attention && unet.has_motion_modules() {
            unet.set_motion_attention(MotionAttention::Dense {
                window: request.techniques.attention_window,
            });
        }
        let mut notices = Vec::new();
        let (mut hooks, anchor_depth) = match techniques::plan(request)? {
            None => (TechniqueHooks::default(), None),
            Some(plan) => {
                let depth = match (&request.anchor_depth, &self.depth_estimator) {
                    (Some(depth), _) => Some(depth.clone()),
                    (None, Some(estimator)) => Some(self.estimate_anchor_depth(
                        estimator.as_ref(),
                        request,
                        &plan,
                        &unet,
                        latent,
                        events,
                        cancel,
                        &mut timings,
                    )?),
                    (None, None) => {
                        let notice = techniques::MISSING_DEPTH_NOTICE.to_string();
                        events(GenerationEvent::Notice(notice.clone()));
                        notices.push(notice);
                        None
                    }
                };
                match depth {
                    Some(depth) => {
                        let hooks = techniques::prepare(
                            &self.renderer,
                            request,
                            &plan,
                            &depth,
                            &unet,
                            latent,
                            &self.components.settings.device,
                            events,
                            &mut timings,
                        )?;
                        (hooks, Some(depth))
                    }
                    None => (TechniqueHooks::default(), None),
                }
            }
        };

        // The re-noising of kept backgrounds draws from its own stream, not the initial noise's.
        let mut composition = match &request.composition {
            Some(input) => Some(input.hook(
                &self.components,
                views,
                (request.width, request.height),
                latent,
                request.seed.wrapping_add(1),
            )?),
            None => None,
        };

        events(GenerationEvent::StageStarted(Stage::Denoising));
        let started = Instant::now();
        let latents = self.denoise(
            request,
            &unet,
            latent,
            &mut hooks,
            composition.as_mut(),
            request.preview_every,
            events,
            cancel,
        )?;
        timings.push(StageTiming {
            stage: "denoising".into(),
            seconds: started.elapsed().as_secs_f64(),
        });
        if let Some(dfr) = &hooks.dfr {
            timings.push(StageTiming {
                stage: "dfr_resolve".into(),
                seconds: dfr.resolve_time().as_secs_f64(),
            });
        }
        if let Some(clc) = &hooks.clc {
            timings.push(StageTiming {
                stage: "clc".into(),
                seconds: clc.elapsed().as_secs_f64(),
            });
        }

        cancel.check()?;
        events(GenerationEvent::StageStarted(Stage::Decoding));
        let started = Instant::now();
        let images = frames_to_images(&self.components.decode_frames(&latents)?)?;
        timings.push(StageTiming {
            stage: "decoding".into(),
            seconds: started.elapsed().as_secs_f64(),
        });
        Ok(GeneratedViews {
            images,
            timings,
            anchor_depth,
            notices,
        })
    }

    /// Samples the latents `[1, C, views, h, w]` of `request` on the latent grid `latent`
    /// with `unet`, the technique `hooks` and the background `composition` (after latent
    /// completion, so kept regions stay the background), reporting steps (and previews every
    /// `preview_every` steps) through `events`.
    #[allow(clippy::too_many_arguments)]
    fn denoise(
        &self,
        request: &GenerationRequest,
        unet: &UNet,
        latent: (usize, usize),
        hooks: &mut TechniqueHooks,
        composition: Option<&mut CompositionHook>,
        preview_every: Option<usize>,
        events: &mut dyn FnMut(GenerationEvent),
        cancel: &CancelToken,
    ) -> Result<Tensor> {
        let channels = unet.layout().in_channels;
        let noise = NoiseGenerator::from_seed(request.seed).randn(
            &[1, channels, request.cameras.len(), latent.0, latent.1],
            &self.components.settings.device,
        )?;
        let video = VideoRequest {
            prompt: request.prompt.clone(),
            negative_prompt: request.negative_prompt.clone(),
            guidance_scale: request.guidance_scale,
            steps: request.steps,
            initial_noise: noise,
        };
        let mut hook = EventHook {
            components: &self.components,
            events,
            preview_every,
        };
        let mut sampler = Sampler::new().with_cancel(cancel.clone());
        if let Some(clc) = hooks.clc.as_mut() {
            sampler = sampler.with_hook(clc);
        }
        if let Some(composition) = composition {
            sampler = sampler.with_hook(composition);
        }
        let sampler = sampler.with_hook(&mut hook);
        let feature_hook = hooks.dfr.as_mut().map(|h| h as &mut dyn StepFeatureHook);
        sample_latents(&self.components, unet, &video, sampler, feature_hook)
    }

    /// The anchor depth estimated from a first pass of `request` without depth-aware feature
    /// rendering and latent completion (same seed, same other techniques): the anchor frame
    /// is decoded, its relative inverse depth estimated and aligned to the scene (see
    /// [`DepthAlignment`](super::anchor_depth::DepthAlignment)). Reports
    /// [`Stage::AnchorDepth`] (the first pass's steps follow it) and the `anchor_depth`
    /// timing.
    #[allow(clippy::too_many_arguments)]
    fn estimate_anchor_depth(
        &self,
        estimator: &dyn DepthEstimator,
        request: &GenerationRequest,
        plan: &Plan<'_>,
        unet: &UNet,
        latent: (usize, usize),
        events: &mut dyn FnMut(GenerationEvent),
        cancel: &CancelToken,
        timings: &mut Vec<StageTiming>,
    ) -> Result<DepthMap> {
        events(GenerationEvent::StageStarted(Stage::AnchorDepth));
        let started = Instant::now();
        let mut no_hooks = TechniqueHooks::default();
        let latents = self.denoise(
            request,
            unet,
            latent,
            &mut no_hooks,
            None,
            None,
            events,
            cancel,
        )?;
        cancel.check()?;
        let frame = latents.narrow(2, plan.anchor, 1)?;
        let image = self
            .components
            .decode_frames(&frame)?
            .squeeze(0)?
            .squeeze(0)?;
        let estimate = estimator.estimate(&image)?;
        let depth = plan
            .dfr
            .depth_alignment
            .align(&estimate, &request.cameras, plan.anchor)?;
        timings.push(StageTiming {
            stage: "anchor_depth".into(),
            seconds: started.elapsed().as_secs_f64(),
        });
        Ok(depth)
    }
}
