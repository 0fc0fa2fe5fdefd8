//! `report.json` of a generation: every setting, the subject, the cameras and the files they
//! produced (views, anchor depth, technique masks), per-stage timings and peak memory —
//! enough to reproduce and compare runs.

use std::path::PathBuf;

use serde::Serialize;

use super::args::{DTypeArg, DeviceArg};
use super::cameras::RigDescription;
use super::technique_outputs::{DepthOutput, MaskOutput};
use crate::camera::PinholeCamera;
use crate::mvcustom::{LoadedSubject, StageTiming, Techniques};

/// The tool that wrote a report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ToolInfo {
    /// Always `mvcustom`.
    pub name: &'static str,
    /// The crate version.
    pub version: &'static str,
    /// The subcommand (`generate`).
    pub command: &'static str,
}

impl ToolInfo {
    /// This build of the tool running `command`.
    pub fn new(command: &'static str) -> Self {
        Self {
            name: "mvcustom",
            version: env!("CARGO_PKG_VERSION"),
            command,
        }
    }
}

/// The supplied anchor depth map.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DepthInfo {
    /// The file.
    pub path: PathBuf,
    /// Its width in pixels.
    pub width: u32,
    /// Its height in pixels.
    pub height: u32,
    /// The divisor applied to 16-bit PNG values.
    pub png_scale: f32,
}

/// Every setting of a generation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GenerateSettings {
    /// The prompt.
    pub prompt: String,
    /// The negative prompt.
    pub negative_prompt: String,
    /// Denoising steps.
    pub steps: usize,
    /// Classifier-free guidance scale.
    pub guidance_scale: f64,
    /// Seed of the initial noise.
    pub seed: u64,
    /// View width in pixels.
    pub width: u32,
    /// View height in pixels.
    pub height: u32,
    /// Where the networks ran.
    pub device: DeviceArg,
    /// Their precision.
    pub dtype: DTypeArg,
    /// The technique switches.
    pub techniques: Techniques,
    /// The supplied anchor depth map, if any.
    pub anchor_depth: Option<DepthInfo>,
    /// The depth-estimator folder that estimated the anchor depth when no file gave it.
    pub depth_model: Option<PathBuf>,
    /// The folder of views the run started from (`--init-views`) and the strength.
    pub init_views: Option<(PathBuf, f64)>,
}

/// The trained subject of a generation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SubjectRecord {
    /// The definition file.
    pub definition: PathBuf,
    /// Its prompt token.
    pub token: String,
    /// Its class word.
    pub class_word: String,
    /// The weights file.
    pub weights: PathBuf,
    /// Number of reference views.
    pub references: usize,
    /// Side of the square the references were encoded at (the training resolution).
    pub reference_resolution: u32,
    /// The transformer blocks carrying pose blocks.
    pub pose_blocks: Vec<String>,
    /// Whether the pose blocks conditioned the views (off with --no-pose-blocks; the token
    /// keeps its learned embedding either way).
    pub pose_blocks_used: bool,
    /// Learned scalars (pose blocks and token row).
    pub parameters: usize,
}

impl SubjectRecord {
    /// The record of `subject`, whose pose blocks were used when `pose_blocks_used`.
    pub fn new(subject: &LoadedSubject, pose_blocks_used: bool) -> Self {
        let definition = subject.subject();
        Self {
            definition: definition.path.clone(),
            token: definition.token.clone(),
            class_word: definition.class_word.clone(),
            weights: definition.weights_path.clone(),
            references: definition.references.len(),
            reference_resolution: subject.info().reference_resolution,
            pose_blocks: subject
                .pose_blocks()
                .blocks()
                .iter()
                .map(|b| b.name().to_string())
                .collect(),
            pose_blocks_used,
            parameters: subject.parameters(),
        }
    }
}

/// One generated view.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ViewRecord {
    /// Its index in the request.
    pub index: usize,
    /// The PNG file, relative to the output folder.
    pub image: String,
    /// Its camera (OpenCV axes, world→camera), at the output size.
    pub camera: PinholeCamera,
}

/// The whole `report.json`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GenerateReport {
    /// Which tool and version wrote it.
    pub tool: ToolInfo,
    /// The model folder.
    pub model: PathBuf,
    /// Every setting.
    pub settings: GenerateSettings,
    /// How the cameras were obtained.
    pub rig: RigDescription,
    /// The trained subject, if one was given.
    pub subject: Option<SubjectRecord>,
    /// The views, in request order.
    pub views: Vec<ViewRecord>,
    /// The anchor depth depth-aware feature rendering used (supplied or estimated), as
    /// written; null when it did not run.
    pub anchor_depth: Option<DepthOutput>,
    /// The technique masks written (DFR visibility per grid, CLC disocclusion).
    pub masks: Vec<MaskOutput>,
    /// Wall-clock seconds per stage (model loading first).
    pub timings: Vec<StageTiming>,
    /// What the pipeline reported about the run (e.g. a technique it had to skip).
    pub notices: Vec<String>,
    /// Wall-clock seconds of the whole run.
    pub total_seconds: f64,
    /// Peak resident memory of the process in bytes (`VmHWM`); null where unavailable.
    pub peak_memory_bytes: Option<u64>,
}
