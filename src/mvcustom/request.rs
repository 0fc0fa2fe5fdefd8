//! What a caller asks of a multi-view generation and what it gets back: the request (prompt,
//! target cameras, sampling settings, technique switches), progress events, and the views.

use serde::{Deserialize, Serialize};

use super::anchor_depth::DepthAlignment;
use super::compose::CompositionInput;
use super::error::{MvError, Result};
use super::view_latents::InitViews;
use crate::camera::PinholeCamera;
use crate::model::hook::{HookKind, LayerSelection, LevelSelection, UNetPath};
use crate::render::{AnchorMesh, DepthMap, ViewMaps};

/// Depth-aware feature rendering settings (method.md, DFR).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DfrSettings {
    /// The view whose features are rendered into the others; `None`: the middle view
    /// (`views / 2`). The paper does not say which view it anchors on.
    pub anchor_view: Option<usize>,
    /// Fraction of the steps, from the first, during which features are replaced (35 of 50).
    pub step_fraction: f32,
    /// Degrees between a mesh triangle's normal and the viewing ray above which it is dropped
    /// as a depth discontinuity (see [`AnchorMesh::build`](crate::render::AnchorMesh::build)).
    pub max_surface_angle_deg: f32,
    /// The UNet layers whose features are replaced. The paper does not state them; the
    /// default takes, on the up path's three coarsest levels, both the spatial transformer
    /// block outputs ([`HookKind::SpatialBlock`]) and the motion module outputs
    /// ([`HookKind::MotionModule`], where the dense attention has mixed the views): replaced
    /// only before the motion module, the anchor's features are averaged back with the other
    /// views' own. For SD-1.5 at 64² latents that is 8², 16² and 32², the finest level, where
    /// rendered features are least reliable, being left to the network; the default model has
    /// two levels and takes both. On the default model (`mvcustom eval --cases 2 --views 6
    /// --steps 15`) DFR with the spatial blocks alone raised the multi-view error slightly
    /// (0.083 → 0.090); with the motion modules too it lowers it to 0.061.
    pub layers: LayerSelection,
    /// How a monocular depth estimate is aligned to the scene when the request has no
    /// anchor depth (see [`MvPipeline::with_depth_estimator`](super::MvPipeline::with_depth_estimator)).
    pub depth_alignment: DepthAlignment,
}

impl Default for DfrSettings {
    fn default() -> Self {
        Self {
            anchor_view: None,
            step_fraction: 0.7,
            max_surface_angle_deg: 80.0,
            layers: LayerSelection {
                kinds: vec![HookKind::SpatialBlock, HookKind::MotionModule],
                paths: vec![UNetPath::Up],
                levels: LevelSelection::Coarsest(3),
            },
            depth_alignment: DepthAlignment::default(),
        }
    }
}

impl DfrSettings {
    /// Checks the settings for a generation of `views` views and returns the anchor view.
    pub fn validate(&self, views: usize) -> Result<usize> {
        check_fraction("techniques.dfr.step_fraction", self.step_fraction)?;
        if !AnchorMesh::is_valid_surface_angle(self.max_surface_angle_deg) {
            return Err(MvError::request(
                "techniques.dfr.max_surface_angle_deg",
                format!(
                    "must be an angle in (0, 90) degrees, got {}",
                    self.max_surface_angle_deg
                ),
            ));
        }
        if self.layers.kinds.is_empty() || self.layers.paths.is_empty() {
            return Err(MvError::request(
                "techniques.dfr.layers",
                "needs at least one hook kind and one UNet path",
            ));
        }
        self.depth_alignment.validate()?;
        match self.anchor_view {
            None => Ok(views / 2),
            Some(a) if a < views => Ok(a),
            Some(a) => Err(MvError::request(
                "techniques.dfr.anchor_view",
                format!("view {a} does not exist: the request has {views} cameras"),
            )),
        }
    }
}

/// Consistency-aware latent completion settings (method.md, CLC).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClcSettings {
    /// Fraction of the steps, from the first, during which disoccluded latents are re-noised
    /// from x̂₀ (down to τ). The paper does not give τ; default: the first 20% of steps.
    pub step_fraction: f32,
    /// The disocclusion mask is rasterised at this many cells per latent cell along each axis
    /// and area-averaged to the latent grid, so latent cells on a disocclusion edge get a
    /// fractional weight; 1 gives a binary mask. At least 1.
    pub mask_supersampling: u32,
}

impl Default for ClcSettings {
    fn default() -> Self {
        Self {
            step_fraction: 0.2,
            mask_supersampling: 2,
        }
    }
}

impl ClcSettings {
    /// Checks every field is in range.
    pub fn validate(&self) -> Result<()> {
        check_fraction("techniques.clc.step_fraction", self.step_fraction)?;
        if self.mask_supersampling == 0 {
            return Err(MvError::request(
                "techniques.clc.mask_supersampling",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

/// Fails unless `value` is a fraction in [0, 1].
fn check_fraction(field: &'static str, value: f32) -> Result<()> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(MvError::request(
            field,
            format!("must be a fraction in [0, 1], got {value}"),
        ))
    }
}

/// Which of MVCustom's techniques a generation uses; each can be switched off for ablation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Techniques {
    /// Dense spatio-temporal attention in the motion modules (off: AnimateDiff's 1-D temporal).
    pub dense_attention: bool,
    /// Spatial window radius of dense attention, in feature pixels; `None` for full.
    pub attention_window: Option<usize>,
    /// Pose-conditioned blocks of the subject (only with a subject).
    pub pose_blocks: bool,
    /// Depth-aware feature rendering; `None` switches it off.
    pub dfr: Option<DfrSettings>,
    /// Consistency-aware latent completion; `None` switches it off.
    pub clc: Option<ClcSettings>,
}

impl Default for Techniques {
    fn default() -> Self {
        Self {
            dense_attention: true,
            attention_window: None,
            pose_blocks: true,
            dfr: Some(DfrSettings::default()),
            clc: Some(ClcSettings::default()),
        }
    }
}

impl Techniques {
    /// Every technique off: the plain text-to-video backbone with 1-D temporal attention.
    pub fn none() -> Self {
        Self {
            dense_attention: false,
            attention_window: None,
            pose_blocks: false,
            dfr: None,
            clc: None,
        }
    }
}

/// One multi-view generation: the target cameras are the frames of one clip.
#[derive(Clone, Debug)]
pub struct GenerationRequest {
    /// The prompt, naming the subject by its token (e.g. `a photo of <teddy> on the beach`).
    pub prompt: String,
    /// What to steer away from ("" for none).
    pub negative_prompt: String,
    /// One camera per generated view, in the user's world.
    pub cameras: Vec<PinholeCamera>,
    /// Output width in pixels (a multiple of the VAE's downsampling factor).
    pub width: u32,
    /// Output height in pixels.
    pub height: u32,
    /// Denoising steps.
    pub steps: usize,
    /// Classifier-free guidance scale.
    pub guidance_scale: f64,
    /// Seed of the initial noise (deterministic on CPU for a given seed).
    pub seed: u64,
    /// Technique switches.
    pub techniques: Techniques,
    /// The anchor view's z-depth in world units (camera-frame Z, at any resolution covering
    /// the anchor camera's whole image), e.g. from a Bevy depth prepass. Depth-aware feature
    /// rendering (and so latent completion, which uses its geometry) needs it, or a pipeline
    /// with a depth estimator, which then estimates it from a first pass without them.
    pub anchor_depth: Option<DepthMap>,
    /// Decode and report intermediate x̂₀ previews every this many steps (`None`: never).
    pub preview_every: Option<usize>,
    /// Background by composition: keep each view's background outside its subject's
    /// region and generate only that region (`None`: generate whole views).
    pub composition: Option<CompositionInput>,
    /// Start from these views instead of pure noise (video-to-video; `None`: from noise).
    pub init_views: Option<InitViews>,
}

/// A stage of a generation, for progress reporting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Tokenising and encoding the prompts.
    EncodingPrompt,
    /// Computing the anchor view's depth (first pass and estimation when the scene gives none).
    AnchorDepth,
    /// Rendering features for the target views before sampling: a subject's pose-block
    /// fields, and the anchor feature mesh of depth-aware feature rendering.
    RenderingFeatures,
    /// Denoising the views together.
    Denoising,
    /// Decoding latents to images.
    Decoding,
}

/// Progress of a running generation.
#[derive(Clone, Debug)]
pub enum GenerationEvent {
    /// A stage began.
    StageStarted(Stage),
    /// A denoising step finished (`completed` of `total`).
    Step {
        /// Steps done.
        completed: usize,
        /// Steps of the run.
        total: usize,
    },
    /// Decoded previews of the views' current x̂₀, one per view.
    Preview {
        /// Steps done when the preview was taken.
        completed: usize,
        /// One RGBA image per view.
        images: Vec<image::RgbaImage>,
    },
    /// Something the caller should know about the run, e.g. a requested technique that could
    /// not run (also listed in [`GeneratedViews::notices`]).
    Notice(String),
}

/// How long a stage took.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StageTiming {
    /// The stage.
    pub stage: String,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// The result of a generation.
#[derive(Clone, Debug)]
pub struct GeneratedViews {
    /// One RGBA image per requested camera, in request order.
    pub images: Vec<image::RgbaImage>,
    /// Per-stage wall-clock times.
    pub timings: Vec<StageTiming>,
    /// The anchor depth depth-aware feature rendering used (the request's, or the estimated
    /// one); `None` when it did not run.
    pub anchor_depth: Option<DepthMap>,
    /// What the caller should know about the run (as reported by [`GenerationEvent::Notice`]).
    pub notices: Vec<String>,
}

/// Everything a generation produced and used: the views (what
/// [`MvPipeline::generate`](super::MvPipeline::generate) returns), the final latents and the
/// masks of the techniques, for callers that save or inspect them (the CLI writes them next
/// to the views).
#[derive(Clone, Debug)]
pub struct Generation {
    /// The views, timings, anchor depth and notices.
    pub views: GeneratedViews,
    /// The final latents `[1, C, views, h, w]` (diffusion scale, float32) the views were
    /// decoded from.
    pub latents: candle_core::Tensor,
    /// The anchor view of depth-aware feature rendering, when it ran.
    pub anchor_view: Option<usize>,
    /// Depth-aware feature rendering's visibility masks M, one set per feature grid of the
    /// replaced layers (finest first), one map per view: 1 where the view sees the anchor
    /// mesh, 0 elsewhere and in the anchor view. Empty when it did not run.
    pub dfr_visibility: Vec<ViewMaps>,
    /// Latent completion's disocclusion masks D at the latent grid, one map per view, in
    /// [0, 1] (fractional on disocclusion edges); `None` when it did not run.
    pub clc_disocclusion: Option<ViewMaps>,
    /// The subject whose pose blocks conditioned the views (its token), when one did.
    pub subject: Option<String>,
}

/// `[views, (1, …,) h, w]` float maps as [`ViewMaps`] (leading unit dimensions of the
/// technique masks dropped).
pub(crate) fn view_maps(maps: &candle_core::Tensor) -> Result<ViewMaps> {
    let dims = maps.dims();
    let (h, w) = match dims {
        [.., h, w] if dims.len() >= 3 => (*h, *w),
        _ => {
            return Err(MvError::request(
                "masks",
                format!("shape {dims:?}, expected [views, …, h, w]"),
            ));
        }
    };
    let views = maps.elem_count() / (h * w).max(1);
    let data = maps
        .to_dtype(candle_core::DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let side = |v: usize| {
        u32::try_from(v).map_err(|_| MvError::request("masks", format!("side {v} is too large")))
    };
    Ok(ViewMaps::new(views, side(h)?, side(w)?, data)?)
}
