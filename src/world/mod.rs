//! A procedural multi-view world with exact ground truth: the training data and the
//! evaluation benchmark of the embedded default model.
//!
//! A [`SceneSpec`] (drawn from a seed by a [`SceneSampler`], or written by hand in RON) places
//! objects built from primitives ([`ObjectKind`]) with colours and patterns in an environment
//! (a [`Ground`] and a [`TimeOfDay`]). A [`TrajectorySpec`] puts cameras around the main
//! object. The CPU ray caster ([`render_views`]) returns per camera the colour image, the exact
//! z-depth and the instance mask, in the crate's camera conventions (OpenCV frame, continuous
//! pixel coordinates with centres at `i + 0.5`, z-depth). [`Clip`] bundles it all with the
//! caption and writes it to a folder. [`split`] says what training may see; [`warp`] measures
//! multi-view consistency with ground-truth geometry.
//! [`ClipDataset`] serves a split as an endless, reproducible stream of training batches
//! (candle tensors), and [`caption_vocabulary`] lists every word captions can contain.
//!
//! ```
//! use bevy_mvcustom::world::{Clip, RenderSettings, Split, TrajectorySampler};
//! # fn main() -> bevy_mvcustom::world::Result<()> {
//! let trajectories = TrajectorySampler { width: 32, height: 32, views: 4, ..Default::default() };
//! let clip = Clip::sample(Split::Train.seed(0)?, &Split::Train.sampler(), &trajectories, &RenderSettings::default())?;
//! assert_eq!(clip.frames.len(), 4);
//! assert!(clip.caption.starts_with("a"));
//! # Ok(()) }
//! ```
//!
//! Nothing here depends on Bevy or on the models; the only crate dependency is [`crate::camera`].

mod clip;
mod dataset;
mod environment;
mod error;
mod files;
mod materials;
mod noise;
mod objects;
mod primitives;
mod render;
mod scene;
mod spec;
pub mod split;
mod trajectory;
mod vocabulary;
pub mod warp;

pub use clip::{Clip, ClipPlan};
pub use dataset::{ClipBatch, ClipDataset, ClipSource, DatasetConfig, ImageBatch};
pub use environment::{Environment, EnvironmentSpec, Ground, LightingSpec, PointLight, TimeOfDay};
pub use error::{Result, WorldError};
pub use files::{ClipManifest, FORMAT_VERSION, FrameFiles, MANIFEST_FILE};
pub use materials::{Colour, Finish, Material, Pattern};
pub use objects::{ObjectKind, Paint, Part};
pub use primitives::{Frame, LocalHit, Shape};
pub use render::{
    DepthImage, MASK_BACKGROUND, MASK_GROUND, RenderSettings, View, linear_to_srgb8,
    object_mask_id, render_view, render_views, srgb8_to_linear,
};
pub use scene::{Scene, Surface, SurfaceHit};
pub(crate) use spec::article;
pub use spec::{MAX_OBJECTS, ObjectSpec, SceneSampler, SceneSpec};
pub use split::{DemoSubject, Split};
pub use trajectory::{Jitter, Path, TrajectorySampler, TrajectorySpec};
pub use vocabulary::{caption_vocabulary, caption_words};
