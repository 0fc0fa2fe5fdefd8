//! Reading one component folder of a diffusers-layout checkpoint (`unet/`, `vae/`,
//! `text_encoder/`, `motion_adapter/`…): its JSON configuration and its memory-mapped
//! safetensors weights, on the device and in the dtype the user chose.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use serde::de::DeserializeOwned;

use super::error::{ModelError, Result};

/// Where networks run and in which precision. CPU f32 is the default and the reference;
/// CUDA / Metal devices come with the crate features of the same names.
#[derive(Clone, Debug)]
pub struct ComputeSettings {
    /// The candle device tensors live on.
    pub device: Device,
    /// The dtype weights are converted to on load and activations are computed in.
    pub dtype: DType,
}

impl Default for ComputeSettings {
    fn default() -> Self {
        Self {
            device: Device::Cpu,
            dtype: DType::F32,
        }
    }
}

/// Which weight files to prefer when a folder holds several precisions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WeightVariant {
    /// `diffusion_pytorch_model.safetensors` / `model.safetensors`.
    #[default]
    Full,
    /// `*.fp16.safetensors`, falling back to the full-precision files when absent.
    Fp16,
}

/// One component folder of a diffusers-layout model.
#[derive(Clone, Debug)]
pub struct ComponentDir {
    path: PathBuf,
}

/// A component's weights, ready for a network constructor, plus the files they came from so
/// that errors can name them.
pub struct Weights {
    /// The builder over the memory-mapped tensors.
    pub vb: VarBuilder<'static>,
    /// The safetensors files behind `vb`.
    pub files: Vec<PathBuf>,
}

impl Weights {
    /// Runs a network constructor over these weights, turning a missing tensor or a shape
    /// mismatch into an error naming the tensor and the files.
    pub fn build<T>(
        &self,
        constructor: impl FnOnce(VarBuilder<'static>) -> candle_core::Result<T>,
    ) -> Result<T> {
        constructor(self.vb.clone()).map_err(|e| ModelError::from_weights(e, &self.files))
    }

    /// Memory-maps `files`, converting to `settings`' dtype and device as tensors are fetched.
    fn mmap(files: Vec<PathBuf>, settings: &ComputeSettings) -> Result<Self> {
        // SAFETY: the files are memory-mapped read-only; candle copies each tensor out of the
        // map when it is fetched. Modifying a checkpoint while it is being loaded is the
        // caller's responsibility, as with every mmap-based loader.
        let vb = unsafe {
            VarBuilder::from_mmaped_safetensors(&files, settings.dtype, &settings.device)
        }
        .map_err(|e| ModelError::from_weights(e, &files))?;
        Ok(Weights { vb, files })
    }
}

impl ComponentDir {
    /// A component folder at `path` (not checked until something is read from it).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The folder itself.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of `file_name` inside the folder, or [`ModelError::MissingFile`].
    pub fn file(&self, file_name: &str) -> Result<PathBuf> {
        let path = self.path.join(file_name);
        if path.is_file() {
            Ok(path)
        } else {
            Err(ModelError::MissingFile { path })
        }
    }

    /// Reads and deserialises a JSON file of the folder (`config.json`,
    /// `scheduler_config.json`…), returning it with its path for later error messages.
    pub fn json<T: DeserializeOwned>(&self, file_name: &str) -> Result<(T, PathBuf)> {
        let path = self.file(file_name)?;
        let text = std::fs::read_to_string(&path).map_err(|source| ModelError::Io {
            path: path.clone(),
            source,
        })?;
        let value = serde_json::from_str(&text).map_err(|source| ModelError::ConfigParse {
            path: path.clone(),
            source,
        })?;
        Ok((value, path))
    }

    /// Reads and validates the folder's `config.json`, then builds a network from its weights
    /// for `variant` on `settings`' device and dtype: the loading every single-config
    /// component (text encoder, VAE) shares.
    pub fn load_with_config<C: DeserializeOwned, M>(
        &self,
        variant: WeightVariant,
        settings: &ComputeSettings,
        validate: impl FnOnce(&C, &Path) -> Result<()>,
        build: impl FnOnce(VarBuilder<'static>, &C) -> candle_core::Result<M>,
    ) -> Result<M> {
        let (config, path): (C, _) = self.json("config.json")?;
        validate(&config, &path)?;
        self.weights(variant, settings)?
            .build(|vb| build(vb, &config))
    }

    /// The safetensors files of the folder for `variant`: a single
    /// `diffusion_pytorch_model*.safetensors` / `model*.safetensors`, or the shards listed by
    /// a `*.safetensors.index.json`.
    pub fn weight_files(&self, variant: WeightVariant) -> Result<Vec<PathBuf>> {
        let stems = ["diffusion_pytorch_model", "model"];
        let suffixes: &[&str] = match variant {
            WeightVariant::Fp16 => &[".fp16.safetensors", ".safetensors"],
            WeightVariant::Full => &[".safetensors"],
        };
        for suffix in suffixes {
            for stem in stems {
                let single = self.path.join(format!("{stem}{suffix}"));
                if single.is_file() {
                    return Ok(vec![single]);
                }
                let index = self.path.join(format!("{stem}{suffix}.index.json"));
                if index.is_file() {
                    return self.shards(&index);
                }
            }
        }
        Err(ModelError::MissingFile {
            path: self.path.join(format!("{}{}", stems[0], suffixes[0])),
        })
    }

    fn shards(&self, index: &Path) -> Result<Vec<PathBuf>> {
        #[derive(serde::Deserialize)]
        struct Index {
            weight_map: std::collections::BTreeMap<String, String>,
        }
        let text = std::fs::read_to_string(index).map_err(|source| ModelError::Io {
            path: index.to_path_buf(),
            source,
        })?;
        let parsed: Index =
            serde_json::from_str(&text).map_err(|source| ModelError::ConfigParse {
                path: index.to_path_buf(),
                source,
            })?;
        let mut files: Vec<PathBuf> = parsed
            .weight_map
            .into_values()
            .map(|name| self.path.join(name))
            .collect();
        files.sort();
        files.dedup();
        if let Some(missing) = files.iter().find(|f| !f.is_file()) {
            return Err(ModelError::MissingFile {
                path: missing.clone(),
            });
        }
        Ok(files)
    }

    /// Memory-maps the folder's weights for `variant`, converting to `settings`' dtype and
    /// device as tensors are fetched.
    pub fn weights(&self, variant: WeightVariant, settings: &ComputeSettings) -> Result<Weights> {
        Weights::mmap(self.weight_files(variant)?, settings)
    }

    /// Memory-maps the named safetensors files of the folder together (their tensor names
    /// must not collide), for components whose weights are not in the diffusers file names,
    /// e.g. a depth estimator's backbone and head.
    pub fn named_weights(&self, names: &[String], settings: &ComputeSettings) -> Result<Weights> {
        let files = names
            .iter()
            .map(|name| self.file(name))
            .collect::<Result<Vec<_>>>()?;
        Weights::mmap(files, settings)
    }
}

/// Converts a configuration check into an [`ModelError::UnsupportedConfig`] naming the file,
/// field and value.
pub fn unsupported(path: &Path, field: &str, value: impl std::fmt::Debug) -> ModelError {
    ModelError::UnsupportedConfig {
        path: path.to_path_buf(),
        field: field.to_string(),
        value: format!("{value:?}"),
    }
}
