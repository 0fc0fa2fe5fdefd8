//! Reference features: the subject's reference latents passed once through the frozen UNet
//! (t = 0, with a prompt), recorded at the output of every pose-carrying transformer block.
//! The features of an all-zero image (the "no reference" condition of reference drop-out)
//! are recorded the same way. Both are cached and saved beside the subject.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{DType, Tensor};

use super::blocks::PoseBlocks;
use crate::model::hook::{FeatureHook, HookKind, HookPoint};
use crate::model::unet::UNet;
use crate::model::{ModelError, Result};

/// Per pose block, the reference views' features `[views, C, h, w]` at the carrying block's
/// output.
#[derive(Clone, Debug, Default)]
pub struct ReferenceFeatures {
    per_block: BTreeMap<String, Tensor>,
}

/// Records the outputs of the named transformer blocks, detached.
struct Recorder<'a> {
    blocks: &'a PoseBlocks,
    found: BTreeMap<String, Tensor>,
}

impl FeatureHook for Recorder<'_> {
    fn wants(&self, point: &HookPoint<'_>) -> bool {
        point.kind == HookKind::SpatialBlock && self.blocks.get(point.name).is_some()
    }

    fn on_features(&mut self, point: &HookPoint<'_>, features: &Tensor) -> Result<Option<Tensor>> {
        self.found
            .insert(point.name.to_string(), features.detach().copy()?);
        Ok(None)
    }
}

impl ReferenceFeatures {
    /// Runs `latents` `[views, C, h, w]` (diffusion-scale latents of the reference images, or
    /// of the all-zero image) through `unet` at t = 0 with `conditioning` `[1, tokens, D]`
    /// (or one row per view) and records the output of every block of `blocks`. With motion
    /// modules each view is its own one-frame clip, so views do not mix.
    pub fn compute(
        unet: &UNet,
        blocks: &PoseBlocks,
        latents: &Tensor,
        conditioning: &Tensor,
    ) -> Result<Self> {
        let (views, _, _, _) = latents.dims4().map_err(|_| ModelError::InvalidInput {
            name: "reference latents".into(),
            reason: format!("shape {:?}, expected [views, C, h, w]", latents.dims()),
        })?;
        let rows = conditioning.dim(0)?;
        let conditioning = if rows == views {
            conditioning.clone()
        } else if rows == 1 {
            conditioning.repeat((views, 1, 1))?
        } else {
            return Err(ModelError::InvalidInput {
                name: "reference conditioning".into(),
                reason: format!("{rows} rows for {views} reference views (expected 1 or {views})"),
            });
        };
        let sample = if unet.has_motion_modules() {
            latents.unsqueeze(2)?
        } else {
            latents.clone()
        };
        let timestep = Tensor::new(&[0f32], latents.device())?;
        let mut recorder = Recorder {
            blocks,
            found: BTreeMap::new(),
        };
        unet.forward(
            &sample.detach(),
            &timestep,
            &conditioning.detach(),
            Some(&mut recorder),
        )?;
        if let Some(missing) = blocks
            .blocks()
            .iter()
            .find(|b| !recorder.found.contains_key(b.name()))
        {
            return Err(ModelError::InvalidInput {
                name: "pose blocks".into(),
                reason: format!("block `{}` is not in this UNet", missing.name()),
            });
        }
        Ok(Self {
            per_block: recorder.found,
        })
    }

    /// The features of block `name`, `[views, C, h, w]`.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.per_block.get(name)
    }

    /// Number of views (0 when empty).
    pub fn views(&self) -> usize {
        self.per_block
            .values()
            .next()
            .and_then(|t| t.dim(0).ok())
            .unwrap_or(0)
    }

    /// The same features repeated to `views` views (the "no reference" condition, recorded
    /// for one all-zero image, stands in for every reference view).
    pub fn repeated(&self, views: usize) -> Result<Self> {
        let per_block = self
            .per_block
            .iter()
            .map(|(name, t)| {
                let rows = t.dim(0)?;
                let out = if rows == views {
                    t.clone()
                } else if rows == 1 {
                    t.repeat((views, 1, 1, 1))?
                } else {
                    return Err(ModelError::InvalidInput {
                        name: format!("reference features of `{name}`"),
                        reason: format!("{rows} views cannot be repeated to {views}"),
                    });
                };
                Ok((name.clone(), out))
            })
            .collect::<Result<_>>()?;
        Ok(Self { per_block })
    }

    /// The views `indices` of every block, in that order.
    pub fn select(&self, indices: &[usize]) -> Result<Self> {
        let per_block = self
            .per_block
            .iter()
            .map(|(name, t)| {
                let views = t.dim(0)?;
                if let Some(bad) = indices.iter().find(|&&i| i >= views) {
                    return Err(ModelError::InvalidInput {
                        name: "reference views".into(),
                        reason: format!("index {bad} of {views} views"),
                    });
                }
                let index: Vec<u32> = indices.iter().map(|&i| i as u32).collect();
                let index = Tensor::from_vec(index, indices.len(), t.device())?;
                Ok((name.clone(), t.index_select(&index, 0)?))
            })
            .collect::<Result<_>>()?;
        Ok(Self { per_block })
    }

    /// The features as named tensors `<prefix>.<block>` (for a cache file).
    pub fn to_tensors(&self, prefix: &str, out: &mut HashMap<String, Tensor>) -> Result<()> {
        for (name, t) in &self.per_block {
            out.insert(format!("{prefix}.{name}"), t.to_dtype(DType::F32)?);
        }
        Ok(())
    }

    /// Reads `<prefix>.<block>` for every block of `blocks` from loaded tensors of `file`,
    /// each `[views, C, h, w]` with the block's width.
    pub fn from_tensors(
        tensors: &HashMap<String, Tensor>,
        prefix: &str,
        blocks: &PoseBlocks,
        file: &Path,
    ) -> Result<Self> {
        let mut per_block = BTreeMap::new();
        for block in blocks.blocks() {
            let key = format!("{prefix}.{}", block.name());
            let tensor = tensors.get(&key).ok_or_else(|| ModelError::MissingTensor {
                tensor: key.clone(),
                files: vec![file.to_path_buf()],
            })?;
            match tensor.dims() {
                &[_, c, _, _] if c == block.channels() => {}
                dims => {
                    return Err(ModelError::ShapeMismatch {
                        tensor: key,
                        files: vec![file.to_path_buf()],
                        expected: vec![0, block.channels(), 0, 0],
                        found: dims.to_vec(),
                    });
                }
            }
            per_block.insert(block.name().to_string(), tensor.clone());
        }
        Ok(Self { per_block })
    }
}

/// The cache of a subject's reference features: the references' and the all-zero image's.
#[derive(Clone, Debug)]
pub struct ReferenceCache {
    /// Features of the reference views.
    pub references: ReferenceFeatures,
    /// Features of one all-zero image (the "no reference" condition).
    pub empty: ReferenceFeatures,
}

impl ReferenceCache {
    /// Saves both sets to `path` (safetensors, written atomically).
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut tensors = HashMap::new();
        self.references.to_tensors("reference", &mut tensors)?;
        self.empty.to_tensors("empty", &mut tensors)?;
        crate::train::save_tensors_atomic(path, &tensors)
    }

    /// Loads a cache saved by [`ReferenceCache::save`] for `blocks` onto `device`.
    pub fn load(path: &Path, blocks: &PoseBlocks, device: &candle_core::Device) -> Result<Self> {
        let tensors = crate::train::load_tensors(path, device)?;
        Ok(Self {
            references: ReferenceFeatures::from_tensors(&tensors, "reference", blocks, path)?,
            empty: ReferenceFeatures::from_tensors(&tensors, "empty", blocks, path)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::pose::PoseConfig;
    use crate::model::test_support::{TempDir, max_abs_diff};
    use crate::model::{ComputeSettings, WeightVariant};
    use candle_core::Device;
    use candle_nn::VarBuilder;

    #[test]
    fn the_cache_round_trips_and_names_missing_tensors() {
        let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/fixtures/parity/motion_unet_tiny");
        let unet = UNet::load(
            &dir.join("unet"),
            Some(&dir.join("motion_adapter")),
            WeightVariant::Full,
            &ComputeSettings::default(),
        )
        .unwrap();
        let device = Device::Cpu;
        let blocks = PoseBlocks::new(
            VarBuilder::zeros(DType::F32, &device),
            &unet,
            &PoseConfig::default(),
        )
        .unwrap();
        let prompt = Tensor::randn(0f32, 1.0, (1, 5, 32), &device).unwrap();
        let latents = Tensor::randn(0f32, 1.0, (3, 4, 8, 8), &device).unwrap();
        let references = ReferenceFeatures::compute(&unet, &blocks, &latents, &prompt).unwrap();
        let zero = Tensor::zeros((1, 4, 8, 8), DType::F32, &device).unwrap();
        let empty = ReferenceFeatures::compute(&unet, &blocks, &zero, &prompt).unwrap();
        assert_eq!((references.views(), empty.views()), (3, 1));
        // Each view is computed on its own: the first view alone gives the same features.
        let alone =
            ReferenceFeatures::compute(&unet, &blocks, &latents.narrow(0, 0, 1).unwrap(), &prompt)
                .unwrap();
        let name = blocks.blocks()[0].name();
        let first = references.get(name).unwrap().narrow(0, 0, 1).unwrap();
        assert!(max_abs_diff(&first, alone.get(name).unwrap()) < 1e-5);
        assert_eq!(
            empty.repeated(3).unwrap().get(name).unwrap().dims(),
            &[3, 64, 4, 4]
        );

        let tmp = TempDir::new("reference-cache");
        let path = tmp.path().join("cache.safetensors");
        let cache = ReferenceCache { references, empty };
        cache.save(&path).unwrap();
        let back = ReferenceCache::load(&path, &blocks, &device).unwrap();
        assert_eq!(
            max_abs_diff(
                back.references.get(name).unwrap(),
                cache.references.get(name).unwrap()
            ),
            0.0
        );
        let mut tensors = crate::train::load_tensors(&path, &device).unwrap();
        tensors.remove(&format!("empty.{name}"));
        crate::train::save_tensors_atomic(&path, &tensors).unwrap();
        let err = ReferenceCache::load(&path, &blocks, &device).unwrap_err();
        assert!(
            matches!(&err, ModelError::MissingTensor { tensor, files }
                if tensor == &format!("empty.{name}") && files == &vec![path.clone()]),
            "{err}"
        );
    }
}
