//! A subject's learned weights: every pose-block parameter (`pose_blocks.<block>.…`) plus the
//! embedding row of its prompt token (`token_embedding`, `[D]`), in one small safetensors
//! file beside the subject definition, written atomically.
//!
//! The weights live in a `VarMap` (f32), so the same object is what customization trains
//! and what generation reads. The file's safetensors metadata records what they were trained
//! for ([`SubjectWeightsInfo`]: the pose-block placement and sampling, the reference
//! resolution), so a generation rebuilds exactly the blocks and reference features training
//! used.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use serde::{Deserialize, Serialize};

use super::error::Result;
use crate::model::pose::{PoseBlocks, PoseConfig, fresh_parameters, parameter_shapes};
use crate::model::unet::UNet;
use crate::model::{ModelError, Weights};
use crate::train::{
    load_metadata, load_tensors, named_vars, save_tensors_with_metadata, snapshot, take_tensor,
};

/// Name of the subject token's embedding row in the weights file.
pub const TOKEN_EMBEDDING: &str = "token_embedding";

/// Key of the [`SubjectWeightsInfo`] (JSON) in the weights file's safetensors metadata.
pub const INFO_METADATA_KEY: &str = "mvcustom.subject";

/// What a subject's weights were trained for, stored in the weights file's metadata: a
/// generation must place and sample the pose blocks the same way and encode the reference
/// images at the same resolution, or the learned fields would see other features.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SubjectWeightsInfo {
    /// Pose-block placement and sampling.
    pub pose: PoseConfig,
    /// Side in pixels of the square the reference images were resized to before encoding.
    pub reference_resolution: u32,
}

impl SubjectWeightsInfo {
    /// Reads the info from the metadata of the weights file `path`. A file without it (not
    /// written by [`SubjectWeights::save`]) is an error naming the file.
    pub fn read(path: &Path) -> Result<Self> {
        Self::from_metadata(&load_metadata(path)?, path)
    }

    /// Reads the info from the `metadata` of the weights file `path` (already read, e.g. by
    /// an asset loader); errors name `path`.
    pub fn from_metadata(metadata: &HashMap<String, String>, path: &Path) -> Result<Self> {
        let text = metadata
            .get(INFO_METADATA_KEY)
            .ok_or_else(|| ModelError::InvalidInput {
                name: path.display().to_string(),
                reason: format!(
                    "has no `{INFO_METADATA_KEY}` metadata (pose-block settings and reference \
                     resolution): it was not written by subject training"
                ),
            })?;
        let info: Self = serde_json::from_str(text).map_err(|e| ModelError::InvalidInput {
            name: format!("{} metadata `{INFO_METADATA_KEY}`", path.display()),
            reason: format!("is malformed: {e}"),
        })?;
        if info.reference_resolution == 0 {
            return Err(ModelError::InvalidInput {
                name: format!("{} metadata `{INFO_METADATA_KEY}`", path.display()),
                reason: "has a reference resolution of 0".into(),
            }
            .into());
        }
        Ok(info)
    }

    fn to_metadata(&self) -> Result<HashMap<String, String>> {
        let json = serde_json::to_string(self).map_err(|e| ModelError::InvalidInput {
            name: INFO_METADATA_KEY.into(),
            reason: format!("cannot be serialised: {e}"),
        })?;
        Ok(HashMap::from([(INFO_METADATA_KEY.to_string(), json)]))
    }
}

/// The trainable weights of one subject.
pub struct SubjectWeights {
    varmap: VarMap,
    info: SubjectWeightsInfo,
}

impl std::fmt::Debug for SubjectWeights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubjectWeights")
            .field("info", &self.info)
            .field("tensors", &self.varmap.all_vars().len())
            .finish()
    }
}

fn lock_error() -> candle_core::Error {
    candle_core::Error::Msg("variable map lock poisoned".into())
}

impl SubjectWeights {
    /// Fresh weights for `unet` and `info` (see [`fresh_parameters`]: per-view MLPs
    /// Kaiming-uniform, decoders zero, fusions `[I | 0]`, seeded) with the token row starting
    /// at `token_init` `[D]` (typically the embedding of the class word's token).
    pub fn fresh(
        unet: &UNet,
        info: &SubjectWeightsInfo,
        token_init: &Tensor,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        let varmap = fresh_parameters(unet, &info.pose, seed, DType::F32, device)?;
        let row = token_init
            .flatten_all()?
            .to_dtype(DType::F32)?
            .to_device(device)?;
        varmap
            .data()
            .lock()
            .map_err(|_| lock_error())?
            .insert(TOKEN_EMBEDDING.to_string(), Var::from_tensor(&row)?);
        Ok(Self {
            varmap,
            info: info.clone(),
        })
    }

    /// Loads the weights file `path` for `unet` and a text encoder of width `token_dim`,
    /// with the settings its metadata records ([`SubjectWeightsInfo::read`]). A missing
    /// tensor, a tensor of the wrong shape or one that does not belong to those settings is an
    /// error naming the file and the tensor.
    pub fn load(path: &Path, unet: &UNet, token_dim: usize, device: &Device) -> Result<Self> {
        let info = SubjectWeightsInfo::read(path)?;
        let tensors = load_tensors(path, device)?;
        Self::from_tensors(&tensors, path, unet, &info, token_dim)
    }

    /// The weights for `info` from tensors already read from `path` (a training checkpoint
    /// passes its weights here, without its optimiser state), checked as
    /// [`SubjectWeights::load`] checks them.
    pub fn from_tensors(
        tensors: &HashMap<String, Tensor>,
        path: &Path,
        unet: &UNet,
        info: &SubjectWeightsInfo,
        token_dim: usize,
    ) -> Result<Self> {
        let config = &info.pose;
        let mut expected = parameter_shapes(unet, config)?;
        expected.push((TOKEN_EMBEDDING.to_string(), vec![token_dim]));
        let known: HashSet<&str> = expected.iter().map(|(n, _)| n.as_str()).collect();
        let mut unexpected: Vec<&String> = tensors
            .keys()
            .filter(|n| !known.contains(n.as_str()))
            .collect();
        unexpected.sort();
        if let Some(name) = unexpected.first() {
            return Err(ModelError::InvalidInput {
                name: format!("{} tensor `{name}`", path.display()),
                reason: format!(
                    "is not a weight of pose blocks at levels {:?} (trained with another placement?)",
                    config.levels
                ),
            }
            .into());
        }
        let varmap = VarMap::new();
        {
            let mut data = varmap.data().lock().map_err(|_| lock_error())?;
            for (name, shape) in &expected {
                let tensor = take_tensor(tensors, name, shape, path)?.to_dtype(DType::F32)?;
                data.insert(name.clone(), Var::from_tensor(&tensor)?);
            }
        }
        Ok(Self {
            varmap,
            info: info.clone(),
        })
    }

    /// Writes every weight to `path` (safetensors, f32, with the [`SubjectWeightsInfo`] in
    /// its metadata), atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        self.save_with(path, HashMap::new())
    }

    /// [`SubjectWeights::save`] with `extra` tensors in the same file (a training checkpoint
    /// adds its optimiser state).
    pub fn save_with(&self, path: &Path, extra: HashMap<String, Tensor>) -> Result<()> {
        let mut tensors = self.tensors()?;
        tensors.extend(extra);
        Ok(save_tensors_with_metadata(
            path,
            &tensors,
            Some(self.info.to_metadata()?),
        )?)
    }

    /// The weights as plain named tensors (f32 copies detached from training).
    pub fn tensors(&self) -> Result<HashMap<String, Tensor>> {
        Ok(snapshot(&self.varmap, DType::F32)?
            .into_iter()
            .map(|(n, t)| Ok((n, t.detach().copy()?)))
            .collect::<candle_core::Result<_>>()?)
    }

    /// The placement and sampling settings.
    pub fn config(&self) -> &PoseConfig {
        &self.info.pose
    }

    /// What the weights were trained for.
    pub fn info(&self) -> &SubjectWeightsInfo {
        &self.info
    }

    /// Pose blocks sharing these weights' variables (training: optimiser updates are seen).
    pub fn trainable_pose_blocks(&self, unet: &UNet) -> Result<PoseBlocks> {
        let device = self.device();
        let vb = VarBuilder::from_varmap(&self.varmap, DType::F32, &device);
        Ok(PoseBlocks::new(vb, unet, &self.info.pose)?)
    }

    /// Pose blocks over detached copies in `dtype` (inference: no gradient tracking).
    pub fn pose_blocks(&self, unet: &UNet, dtype: DType) -> Result<PoseBlocks> {
        let weights = Weights {
            vb: VarBuilder::from_tensors(self.tensors()?, dtype, &self.device()),
            files: Vec::new(),
        };
        Ok(weights.build(|vb| PoseBlocks::new(vb, unet, &self.info.pose))?)
    }

    /// The subject token's embedding row `[D]` (tracked: gradients reach it in training).
    pub fn token_embedding(&self) -> Result<Tensor> {
        let data = self.varmap.data().lock().map_err(|_| lock_error())?;
        let var = data
            .get(TOKEN_EMBEDDING)
            .ok_or_else(|| ModelError::MissingTensor {
                tensor: TOKEN_EMBEDDING.into(),
                files: Vec::new(),
            })?;
        Ok(var.as_tensor().clone())
    }

    /// Every trainable variable with its name, sorted (what the optimiser updates).
    pub fn trainable(&self) -> Result<Vec<(String, Var)>> {
        Ok(named_vars(&self.varmap)?)
    }

    fn device(&self) -> Device {
        self.varmap
            .all_vars()
            .first()
            .map(|v| v.device().clone())
            .unwrap_or(Device::Cpu)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ComputeSettings, WeightVariant};
    use std::path::PathBuf;

    fn motion_unet() -> UNet {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/fixtures/parity/motion_unet_tiny");
        UNet::load(
            &dir.join("unet"),
            Some(&dir.join("motion_adapter")),
            WeightVariant::Full,
            &ComputeSettings::default(),
        )
        .unwrap()
    }

    struct Scratch(PathBuf);
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn scratch() -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "mvcustom-subject-weights-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    #[test]
    fn weights_round_trip_and_bad_files_name_the_tensor() {
        let unet = motion_unet();
        let device = Device::Cpu;
        let info = SubjectWeightsInfo {
            pose: PoseConfig {
                levels: vec![0, 1],
                ..Default::default()
            },
            reference_resolution: 64,
        };
        let token = Tensor::arange(0f32, 32.0, &device).unwrap();
        let weights = SubjectWeights::fresh(&unet, &info, &token, 3, &device).unwrap();
        let dir = scratch();
        let path = dir.0.join("teddy.safetensors");
        weights.save(&path).unwrap();
        assert_eq!(SubjectWeightsInfo::read(&path).unwrap(), info);
        let metadata = load_metadata(&path).unwrap();
        let rewrite = |tensors: &HashMap<String, Tensor>, metadata: &HashMap<String, String>| {
            save_tensors_with_metadata(&path, tensors, Some(metadata.clone())).unwrap()
        };
        let saved = weights.tensors().unwrap();
        let mid = "pose_blocks.mid_block.attentions.0.transformer_blocks.0";
        // Fresh: decoder zero, fusion [I | 0], MLP weights within PyTorch's fan-in bound.
        let decoder = &saved[&format!("{mid}.field.decoder.weight")];
        assert_eq!(decoder.dims(), &[4, 64]);
        assert_eq!(
            decoder
                .abs()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap(),
            0.0
        );
        let fuse = saved[&format!("{mid}.fuse.weight")]
            .to_vec2::<f32>()
            .unwrap();
        assert_eq!((fuse[3][3], fuse[3][4], fuse[3][67]), (1.0, 0.0, 0.0));
        let mlp = &saved[&format!("{mid}.field.view_mlp.0.weight")];
        assert_eq!(mlp.dims(), &[64, 64 + 198]);
        let bound = 1.0 / ((64 + 198) as f32).sqrt();
        let max = mlp
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(max > 0.5 * bound && max <= bound + 1e-6, "{max} vs {bound}");

        let loaded = SubjectWeights::load(&path, &unet, 32, &device).unwrap();
        assert_eq!(loaded.info(), &info);
        let back = loaded.tensors().unwrap();
        assert_eq!(back.len(), saved.len());
        for (name, t) in &saved {
            let diff = (t - &back[name]).unwrap().abs().unwrap().max_all().unwrap();
            assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0, "{name}");
        }
        assert_eq!(
            loaded.token_embedding().unwrap().to_vec1::<f32>().unwrap(),
            token.to_vec1::<f32>().unwrap()
        );
        // Inference blocks build from the loaded weights.
        assert_eq!(
            loaded
                .pose_blocks(&unet, DType::F32)
                .unwrap()
                .blocks()
                .len(),
            6
        );

        // A missing tensor.
        let mut edited = saved.clone();
        edited.remove(&format!("{mid}.fuse.weight"));
        rewrite(&edited, &metadata);
        let err = SubjectWeights::load(&path, &unet, 32, &device).unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(&err, crate::mvcustom::MvError::Model(ModelError::MissingTensor { tensor, files })
                if tensor == &format!("{mid}.fuse.weight") && files == &vec![path.clone()]),
            "{text}"
        );
        // A wrong shape (the token row of another text encoder).
        let mut edited = saved.clone();
        edited.insert(
            TOKEN_EMBEDDING.into(),
            Tensor::zeros(16, DType::F32, &device).unwrap(),
        );
        rewrite(&edited, &metadata);
        let err = SubjectWeights::load(&path, &unet, 32, &device).unwrap_err();
        assert!(
            matches!(&err, crate::mvcustom::MvError::Model(ModelError::ShapeMismatch { tensor, expected, found, .. })
                if tensor == TOKEN_EMBEDDING && expected == &vec![32] && found == &vec![16]),
            "{err}"
        );
        // Weights of another placement: the default levels have only the mid block here.
        let other = SubjectWeightsInfo {
            pose: PoseConfig::default(),
            ..info.clone()
        };
        rewrite(&saved, &other.to_metadata().unwrap());
        let err = SubjectWeights::load(&path, &unet, 32, &device).unwrap_err();
        assert!(
            err.to_string().contains("down_blocks.0") && err.to_string().contains("teddy"),
            "{err}"
        );
        // Weights without their settings.
        crate::train::save_tensors_atomic(&path, &saved).unwrap();
        let err = SubjectWeights::load(&path, &unet, 32, &device).unwrap_err();
        assert!(err.to_string().contains(INFO_METADATA_KEY), "{err}");
        // Not a weights file at all.
        std::fs::write(&path, b"not safetensors").unwrap();
        assert!(SubjectWeights::load(&path, &unet, 32, &device).is_err());
    }
}
