//! [`MvPipeline`]: a loaded model and the generation of consistent views for a set of target
//! cameras — the entry point of the CLI and the Bevy plugin.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use candle_core::Tensor;

use super::components::DiffusionComponents;
use super::compose::CompositionHook;
use super::error::{MvError, Result};
use super::loaded_subject::{LoadedSubject, SubjectCache};
use super::request::{
    GeneratedViews, Generation, GenerationEvent, GenerationRequest, Stage, StageTiming, view_maps,
};
use super::subject::Subject;
use super::subject_weights::SubjectWeights;
use super::techniques::{self, Plan, SharedRenderer, TechniqueHooks};
use super::text_to_video::{
    EncodedVideoRequest, HookChain, PromptEmbeddings, StepFeatureHook, sample_encoded,
};
use super::view_latents::encode_views;
use crate::diffusion::{
    CancelToken, HookContext, InitLatents, NoiseGenerator, Sampler, SamplingHook,
};
use crate::model::depth::DepthEstimator;
use crate::model::motion::MotionAttention;
use crate::model::pose::{PoseBlockHook, PoseBlocks, RenderedFeatures};
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
    subjects: SubjectCache,
}

/// What the sampling passes of one generation share: the request, the UNet in the
/// request's attention mode, the latent grid, the encoded prompts and, with a subject, its
/// pose blocks and their rendered features.
struct Run<'a> {
    request: &'a GenerationRequest,
    unet: UNet,
    latent: (usize, usize),
    embeddings: PromptEmbeddings,
    pose: Option<(&'a PoseBlocks, RenderedFeatures)>,
    /// The encoded views a video-to-video run starts from.
    init: Option<InitLatents>,
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
            subjects: SubjectCache::default(),
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

    /// The trained subject of the definition file `path`, prepared for this pipeline (see
    /// [`LoadedSubject::load`]). Prepared subjects are cached by path and shared by clones of
    /// the pipeline: a later call returns the same one unless the definition or the weights
    /// file changed on disk.
    pub fn load_subject(&self, path: &Path) -> Result<Arc<LoadedSubject>> {
        self.subjects.get(&self.components, path)
    }

    /// Prepares an already loaded `subject` with its trained `weights` for this pipeline
    /// (not cached; see [`LoadedSubject::prepare`]).
    pub fn prepare_subject(
        &self,
        subject: Subject,
        weights: &SubjectWeights,
    ) -> Result<LoadedSubject> {
        LoadedSubject::prepare(&self.components, subject, weights)
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
        Ok(self.generate_with(request, None, events, cancel)?.views)
    }

    /// [`MvPipeline::generate`] with an optional trained `subject` (prepared by this
    /// pipeline), returning the views with the latents and technique masks behind them.
    ///
    /// With a subject, the prompts are encoded with its token's learned embedding row, and,
    /// unless `request.techniques.pose_blocks` is off, its pose-conditioned blocks condition
    /// the views: their fields are rendered once for the target cameras and the guidance
    /// batch's prompts (`[negative; prompt]`) before sampling (stage
    /// [`Stage::RenderingFeatures`], timing `rendered_features`) and fused into the UNet at
    /// every step, alongside depth-aware feature rendering. Without a subject (or with pose
    /// blocks off) the UNet runs as it is.
    pub fn generate_with(
        &self,
        request: &GenerationRequest,
        subject: Option<&LoadedSubject>,
        events: &mut dyn FnMut(GenerationEvent),
        cancel: &CancelToken,
    ) -> Result<Generation> {
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
        if let Some(init) = &request.init_views {
            init.check(views)?;
        }
        let latent = self.components.latent_size(request.width, request.height)?;
        let mut timings = Vec::new();
        let mut notices = Vec::new();
        let mut unet = self.components.unet.clone();
        if request.techniques.dense_attention && unet.has_motion_modules() {
            unet.set_motion_attention(MotionAttention::Dense {
                window: request.techniques.attention_window,
            });
        }
        let embeddings = match subject {
            Some(subject) => {
                if !subject.is_named_in(&request.prompt) {
                    let notice = format!(
                        "the prompt does not name the subject by its token {}: its learned \
                         appearance is only reached through the pose blocks",
                        subject.subject().token
                    );
                    events(GenerationEvent::Notice(notice.clone()));
                    notices.push(notice);
                }
                subject.encode_prompts(
                    &self.components,
                    &request.prompt,
                    &request.negative_prompt,
                    request.guidance_scale,
                )?
            }
            None => PromptEmbeddings::encode(
                &request.prompt,
                &request.negative_prompt,
                request.guidance_scale,
                |text| self.components.encode_prompt(text),
            )?,
        };
        let pose = match subject.filter(|_| request.techniques.pose_blocks) {
            Some(subject) => {
                cancel.check()?;
                events(GenerationEvent::StageStarted(Stage::RenderingFeatures));
                let started = Instant::now();
                let rendered = subject.render(
                    &unet,
                    &request.cameras,
                    latent,
                    &embeddings.batch(request.guidance_scale)?,
                )?;
                timings.push(StageTiming {
                    stage: "rendered_features".into(),
                    seconds: started.elapsed().as_secs_f64(),
                });
                Some((subject.pose_blocks(), rendered))
            }
            None => None,
        };
        let init = match &request.init_views {
            Some(init) => Some(InitLatents {
                latents: encode_views(
                    &self.components,
                    &init.images,
                    (request.width, request.height),
                )?,
                strength: init.strength,
            }),
            None => None,
        };
        let run = Run {
            request,
            unet,
            latent,
            embeddings,
            pose,
            init,
        };

        let (mut hooks, anchor_depth, anchor_view) = match techniques::plan(request)? {
            None => (TechniqueHooks::default(), None, None),
            Some(plan) => {
                let depth = match (&request.anchor_depth, &self.depth_estimator) {
                    (Some(depth), _) => Some(depth.clone()),
                    (None, Some(estimator)) => Some(self.estimate_anchor_depth(
                        estimator.as_ref(),
                        &run,
                        &plan,
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
                            &run.unet,
                            latent,
                            &self.components.settings.device,
                            events,
                            &mut timings,
                        )?;
                        (hooks, Some(depth), Some(plan.anchor))
                    }
                    None => (TechniqueHooks::default(), None, None),
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
            &run,
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
        let dfr_visibility = match &hooks.dfr {
            Some(dfr) => dfr.visibility_maps()?,
            None => Vec::new(),
        };
        let clc_disocclusion = hooks
            .clc
            .as_ref()
            .map(|clc| view_maps(clc.disocclusion()))
            .transpose()?;
        Ok(Generation {
            views: GeneratedViews {
                images,
                timings,
                anchor_depth,
                notices,
            },
            latents,
            anchor_view,
            dfr_visibility,
            clc_disocclusion,
            subject: run
                .pose
                .as_ref()
                .and(subject)
                .map(|s| s.subject().token.clone()),
        })
    }

    /// Samples the latents `[1, C, views, h, w]` of `run` with the technique `hooks` (and
    /// the run's pose blocks) and the background `composition` (after latent completion, so
    /// kept regions stay the background), reporting steps (and previews every
    /// `preview_every` steps) through `events`.
    fn denoise(
        &self,
        run: &Run<'_>,
        hooks: &mut TechniqueHooks,
        composition: Option<&mut CompositionHook>,
        preview_every: Option<usize>,
        events: &mut dyn FnMut(GenerationEvent),
        cancel: &CancelToken,
    ) -> Result<Tensor> {
        let request = run.request;
        let channels = run.unet.layout().in_channels;
        let noise = NoiseGenerator::from_seed(request.seed).randn(
            &[
                1,
                channels,
                request.cameras.len(),
                run.latent.0,
                run.latent.1,
            ],
            &self.components.settings.device,
        )?;
        let video = EncodedVideoRequest {
            embeddings: run.embeddings.clone(),
            guidance_scale: request.guidance_scale,
            steps: request.steps,
            initial_noise: noise,
            init: run.init.clone(),
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
        let mut pose_hook = run
            .pose
            .as_ref()
            .map(|(blocks, rendered)| PoseBlockHook::new(blocks, rendered));
        let mut chained: Vec<&mut dyn StepFeatureHook> = Vec::new();
        if let Some(pose) = pose_hook.as_mut() {
            chained.push(pose);
        }
        if let Some(dfr) = hooks.dfr.as_mut() {
            chained.push(dfr);
        }
        let mut chain = HookChain::new(chained);
        let feature_hook = (!chain.is_empty()).then_some(&mut chain as &mut dyn StepFeatureHook);
        sample_encoded(&self.components, &run.unet, &video, sampler, feature_hook)
    }

    /// The anchor depth estimated from a first pass of `run` without depth-aware feature
    /// rendering and latent completion (same seed, same other techniques, pose blocks
    /// included): the anchor frame
    /// is decoded, its relative inverse depth estimated and aligned to the scene (see
    /// [`DepthAlignment`](super::anchor_depth::DepthAlignment)). Reports
    /// [`Stage::AnchorDepth`] (the first pass's steps follow it) and the `anchor_depth`
    /// timing.
    fn estimate_anchor_depth(
        &self,
        estimator: &dyn DepthEstimator,
        run: &Run<'_>,
        plan: &Plan<'_>,
        events: &mut dyn FnMut(GenerationEvent),
        cancel: &CancelToken,
        timings: &mut Vec<StageTiming>,
    ) -> Result<DepthMap> {
        events(GenerationEvent::StageStarted(Stage::AnchorDepth));
        let started = Instant::now();
        let mut no_hooks = TechniqueHooks::default();
        let latents = self.denoise(run, &mut no_hooks, None, None, events, cancel)?;
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
            .align(&estimate, &run.request.cameras, plan.anchor)?;
        timings.push(StageTiming {
            stage: "anchor_depth".into(),
            seconds: started.elapsed().as_secs_f64(),
        });
        Ok(depth)
    }
}
