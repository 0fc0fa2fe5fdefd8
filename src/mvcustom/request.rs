//! What a caller asks of a multi-view generation and what it gets back: the request (prompt,
//! target cameras, sampling settings, technique switches), progress events, and the views.

use serde::{Deserialize, Serialize};

use crate::camera::PinholeCamera;
use crate::render::DepthMap;

/// Depth-aware feature rendering settings (method.md, DFR).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DfrSettings {
    /// The view whose features are rendered into the others; `None`: the middle view.
    pub anchor_view: Option<usize>,
    /// Fraction of the steps, from the first, during which features are replaced (35 of 50).
    pub step_fraction: f32,
    /// Relative depth jump above which a mesh triangle is dropped as a discontinuity.
    pub discontinuity_threshold: f32,
}

impl Default for DfrSettings {
    fn default() -> Self {
        Self {
            anchor_view: None,
            step_fraction: 0.7,
            discontinuity_threshold: 0.1,
        }
    }
}

/// Consistency-aware latent completion settings (method.md, CLC).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClcSettings {
    /// Fraction of the steps, from the first, during which disoccluded latents are re-noised
    /// from x̂₀ (down to τ).
    pub step_fraction: f32,
}

impl Default for ClcSettings {
    fn default() -> Self {
        Self { step_fraction: 0.2 }
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
    /// The anchor view's z-depth in world units when the scene provides it (a Bevy depth
    /// prepass); otherwise DFR estimates it.
    pub anchor_depth: Option<DepthMap>,
    /// Decode and report intermediate x̂₀ previews every this many steps (`None`: never).
    pub preview_every: Option<usize>,
}

/// A stage of a generation, for progress reporting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Tokenising and encoding the prompts.
    EncodingPrompt,
    /// Computing the anchor view's depth (first pass and estimation when the scene gives none).
    AnchorDepth,
    /// Rasterising the anchor feature mesh into the target views.
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
}
