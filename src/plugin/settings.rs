//! The plugin's settings: where the model comes from, where and in which precision it runs,
//! and the generation defaults a shot falls back to.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use bevy::math::UVec2;
use bevy::prelude::{ReflectResource, Resource};
use bevy::reflect::Reflect;
use candle_core::{DType, Device};
use serde::{Deserialize, Serialize};

use super::model::ViewGenerator;
use crate::model::ComputeSettings;
use crate::mvcustom::Result;

/// Where the plugin's model comes from.
#[derive(Clone)]
pub enum ModelSource {
    /// A model configuration asset (`*.model.ron`, see
    /// [`ModelConfigAsset`](super::assets::ModelConfigAsset)) at this asset path: the plugin
    /// loads it at start-up and uses the folder, compute settings and defaults it names,
    /// again whenever the file changes. Generations wait, queued, until it has loaded.
    Config(String),
    /// A diffusers-layout model folder (`unet/`, `vae/`, `text_encoder/`, `tokenizer/`,
    /// `scheduler/`, optionally `motion_adapter/`), loaded with
    /// [`MvPipeline::load`](crate::mvcustom::MvPipeline::load) the first time a generation
    /// needs it.
    Folder(PathBuf),
    /// A generator the app built itself, already loaded: a pipeline shared with other code, a
    /// remote service, a test double.
    Generator(Arc<dyn ViewGenerator>),
}

impl fmt::Debug for ModelSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelSource::Config(path) => f.debug_tuple("Config").field(path).finish(),
            ModelSource::Folder(path) => f.debug_tuple("Folder").field(path).finish(),
            ModelSource::Generator(_) => f.write_str("Generator(..)"),
        }
    }
}

/// The device the networks run on. Anything but the CPU needs the crate feature of the same
/// name (`cuda`, `metal`); without it, loading fails with candle's error naming the backend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Reflect, Serialize, Deserialize)]
pub enum ComputeDevice {
    /// The CPU: always available, the reference.
    #[default]
    Cpu,
    /// The CUDA GPU of this ordinal.
    Cuda(usize),
    /// The Metal GPU of this ordinal.
    Metal(usize),
}

/// The precision weights are loaded in and activations computed in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Reflect, Serialize, Deserialize)]
pub enum Precision {
    /// 32-bit floats: the reference, the only sensible choice on the CPU.
    #[default]
    F32,
    /// 16-bit floats (GPUs).
    F16,
    /// bfloat16 (GPUs with bf16 support).
    Bf16,
}

/// Device and precision of the plugin's model, as plain reflectable values; turned into the
/// model layer's [`ComputeSettings`] when the model loads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Reflect, Serialize, Deserialize)]
#[serde(default)]
pub struct Compute {
    /// Where the networks run.
    pub device: ComputeDevice,
    /// In which precision.
    pub precision: Precision,
}

impl Compute {
    /// The model layer's settings: opens the device (which fails for a GPU backend this
    /// build lacks or a GPU that is not there).
    pub fn compute_settings(&self) -> Result<ComputeSettings> {
        let device = match self.device {
            ComputeDevice::Cpu => Device::Cpu,
            ComputeDevice::Cuda(ordinal) => Device::new_cuda(ordinal)?,
            ComputeDevice::Metal(ordinal) => Device::new_metal(ordinal)?,
        };
        let dtype = match self.precision {
            Precision::F32 => DType::F32,
            Precision::F16 => DType::F16,
            Precision::Bf16 => DType::BF16,
        };
        Ok(ComputeSettings { device, dtype })
    }
}

/// What a shot uses for each setting it leaves unset (`None`). Change it at run time like any
/// resource; generations already running keep the values they started with.
#[derive(Resource, Clone, Debug, PartialEq, Reflect, Serialize, Deserialize)]
#[serde(default)]
#[reflect(Resource)]
pub struct ShotDefaults {
    /// Denoising steps.
    pub steps: u32,
    /// Classifier-free guidance scale.
    pub guidance: f32,
    /// Size of the generated views in pixels (multiples of the VAE's downsampling factor, 8).
    pub size: UVec2,
    /// Update the views' images with a decoded preview every this many steps (`None`: only
    /// the final images). Each preview costs a VAE decode.
    pub preview_every: Option<u32>,
}

impl Default for ShotDefaults {
    fn default() -> Self {
        Self {
            steps: 25,
            guidance: 7.5,
            size: UVec2::splat(512),
            preview_every: None,
        }
    }
}
