//! # bevy_mvcustom
//!
//! Multi-view customized diffusion (MVCustom) for Bevy. A user teaches the plugin a subject from
//! a few photographs; the plugin then generates that subject in a text-described or in-scene
//! environment from the poses of the app's cameras, consistent from view to view, and delivers
//! each view as an `Image` texture.
//!
//! The crate is layered; each layer depends only on the ones below it:
//! - [`grid`]: the row-major 2-D value grid under every per-pixel map (depth, inverse depth).
//! - [`ron_file`]: reading and parsing the RON files users write, with errors naming the file.
//! - [`camera`]: one camera model and every convention conversion (Bevy, OpenCV, OpenGL,
//!   PyTorch3D, COLMAP).
//! - [`model`]: the networks (UNet + motion modules, CLIP, VAE) in candle.
//! - [`diffusion`]: schedulers configured from diffusers' `scheduler_config.json`, classifier-free
//!   guidance and the text-to-video sampling loop with its hooks, independent of concrete models.
//! - [`mvcustom`]: the method: multi-view generation with target cameras as the frames of one
//!   clip, depth-aware feature rendering and latent completion.
//! - [`render`]: the anchor feature mesh and its rasterisers (wgpu shaders and a CPU reference).
//! - [`train`]: AdamW with resumable state, atomic checkpoints, from-scratch initialisation.
//! - [`plugin`]: the Bevy plugin: cameras drive the poses, generated views appear as `Image`
//!   textures, inference runs in task-pool tasks. [`prelude`] holds what an app uses.
//! - [`world`]: a procedural multi-view world (scenes, trajectories, CPU ray caster) with exact
//!   depth, masks and captions: training data and evaluation ground truth.
//! - [`eval`]: the held-out benchmark and ablation on the procedural world's ground truth.
//! - [`heap`]: allocator settings that keep CPU tensor work from re-faulting freed memory.
//! - [`cli`]: the `mvcustom` command-line tool (generate, inspect, bench), on the layers above
//!   and without Bevy.

pub mod camera;
pub mod cli;
pub mod diffusion;
pub mod eval;
pub mod grid;
pub mod heap;
pub mod model;
pub mod mvcustom;
pub mod plugin;
pub mod pretrain;
pub mod render;
pub mod ron_file;
pub mod train;
pub mod world;

/// What a Bevy app needs to use the plugin: `use bevy_mvcustom::prelude::*;`.
pub mod prelude {
    pub use crate::mvcustom::compose::CompositionSettings;
    pub use crate::mvcustom::train::TrainSettings;
    pub use crate::mvcustom::{ClcSettings, DfrSettings, Stage, Techniques};
    pub use crate::plugin::{
        CancelShot, CancelTraining, ComputeDevice, GenerateShot, GenerationState, ModelLoadFailed,
        MvCustom, MvCustomCommandsExt, MvCustomPlugin, MvCustomShot, MvCustomStatus,
        MvCustomSubject, MvCustomSystems, Precision, SUBJECT_PLACEHOLDER, ShotCancelled,
        ShotDefaults, ShotFailed, ShotFinished, ShotViews, SubjectAsset, TrainSubject,
        TrainingCancelled, TrainingFailed, TrainingFinished, TrainingState, TrainingStatus,
    };
}

/// The README's code samples, compiled as doc tests so they stay true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
