//! The set of pose-conditioned blocks of a UNet: which spatial transformer blocks carry a
//! FeatureNeRF + fusion (a setting, by resolution level), their weights under stable names,
//! and the fresh initialisation a subject's training starts from.

use candle_core::{DType, Device, Result};
use candle_nn::{VarBuilder, VarMap};
use serde::{Deserialize, Serialize};

use super::field::{FeatureNerf, Fuse};
use super::geometry::SamplingConfig;
use crate::model::unet::UNet;

/// Prefix of every pose-block tensor: `pose_blocks.<transformer block name>.{field,fuse}.…`.
pub const POSE_PREFIX: &str = "pose_blocks";

/// Where pose blocks go and how their fields sample.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PoseConfig {
    /// Resolution levels whose spatial transformer blocks (down, mid and up paths) carry a
    /// pose block: level `k` is the latent grid downsampled `2^k` times. The default `[1, 2]`
    /// is method.md's "32² and 16² levels" for 64² latents, for any latent size.
    pub levels: Vec<usize>,
    /// The fields' sampling settings.
    pub sampling: SamplingConfig,
}

impl Default for PoseConfig {
    fn default() -> Self {
        Self {
            levels: vec![1, 2],
            sampling: SamplingConfig::default(),
        }
    }
}

/// One pose-conditioned transformer block: the field and the fusion it adds after the
/// carrying block's text cross-attention.
#[derive(Clone, Debug)]
pub struct PoseBlock {
    name: String,
    level: usize,
    channels: usize,
    field: FeatureNerf,
    fuse: Fuse,
}

impl PoseBlock {
    /// The carrying transformer block's output hook-point name; its fusion runs at
    /// `<name>.attn2`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The carrying block's resolution level.
    pub fn level(&self) -> usize {
        self.level
    }

    /// The carrying block's token width `C`.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// The feature field.
    pub fn field(&self) -> &FeatureNerf {
        &self.field
    }

    /// The fusion `Linear(2C → C)`.
    pub fn fuse(&self) -> &Fuse {
        &self.fuse
    }
}

/// Every pose block of a UNet, in the UNet's execution order.
#[derive(Clone, Debug)]
pub struct PoseBlocks {
    config: PoseConfig,
    blocks: Vec<PoseBlock>,
}

/// (name, level, width) of the blocks `config` selects in `unet`.
fn placement(unet: &UNet, config: &PoseConfig) -> Vec<(String, usize, usize)> {
    unet.spatial_blocks()
        .into_iter()
        .filter(|b| config.levels.contains(&b.level))
        .map(|b| (b.name.to_string(), b.level, b.block.dim()))
        .collect()
}

impl PoseBlocks {
    /// Builds the pose blocks `config` places in `unet` from `vb` (weights named
    /// `pose_blocks.<block>.field.…` and `pose_blocks.<block>.fuse.weight`). Fails when the
    /// configuration selects no block of this UNet.
    pub fn new(vb: VarBuilder, unet: &UNet, config: &PoseConfig) -> Result<Self> {
        let chosen = placement(unet, config);
        if chosen.is_empty() {
            let levels: Vec<usize> = unet.spatial_blocks().iter().map(|b| b.level).collect();
            candle_core::bail!(
                "pose-block levels {:?} select no spatial transformer block (the UNet's blocks are at levels {levels:?})",
                config.levels
            );
        }
        let vb = vb.pp(POSE_PREFIX);
        let blocks = chosen
            .into_iter()
            .map(|(name, level, channels)| {
                let block_vb = vb.pp(&name);
                Ok(PoseBlock {
                    field: FeatureNerf::new(block_vb.pp("field"), channels, config.sampling)?,
                    fuse: Fuse::new(block_vb.pp("fuse"), channels)?,
                    name,
                    level,
                    channels,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            config: config.clone(),
            blocks,
        })
    }

    /// The placement and sampling settings.
    pub fn config(&self) -> &PoseConfig {
        &self.config
    }

    /// The blocks, in execution order.
    pub fn blocks(&self) -> &[PoseBlock] {
        &self.blocks
    }

    /// The block carried by the transformer block named `name`.
    pub fn get(&self, name: &str) -> Option<&PoseBlock> {
        self.blocks.iter().find(|b| b.name == name)
    }
}

/// A fresh set of pose-block parameters for `unet` in a `VarMap` (what a subject's training
/// starts from): per-view MLPs and view-weight heads with PyTorch's default (Kaiming-uniform,
/// bound 1/√fan_in) initialisation, deterministic for `seed`; decoders zero; fusions `[I | 0]`,
/// so the UNet computes exactly what it computed without pose blocks.
pub fn fresh_parameters(
    unet: &UNet,
    config: &PoseConfig,
    seed: u64,
    dtype: DType,
    device: &Device,
) -> Result<VarMap> {
    let varmap = VarMap::new();
    let blocks = PoseBlocks::new(
        VarBuilder::from_varmap(&varmap, dtype, device),
        unet,
        config,
    )?;
    crate::train::initialise_for_training(&varmap, seed)?;
    let data = varmap
        .data()
        .lock()
        .map_err(|_| candle_core::Error::Msg("variable map lock poisoned".into()))?;
    for block in blocks.blocks() {
        let prefix = format!("{POSE_PREFIX}.{}", block.name);
        let decoder = data
            .get(&format!("{prefix}.field.decoder.weight"))
            .ok_or_else(|| candle_core::Error::CannotFindTensor {
                path: format!("{prefix}.field.decoder.weight"),
            })?;
        decoder.set(&decoder.as_tensor().zeros_like()?)?;
        let fuse = data.get(&format!("{prefix}.fuse.weight")).ok_or_else(|| {
            candle_core::Error::CannotFindTensor {
                path: format!("{prefix}.fuse.weight"),
            }
        })?;
        fuse.set(&Fuse::identity_weight(block.channels, dtype, device)?)?;
    }
    drop(data);
    Ok(varmap)
}

/// Names and shapes of every pose-block tensor `config` gives `unet`, sorted by name.
pub fn parameter_shapes(unet: &UNet, config: &PoseConfig) -> Result<Vec<(String, Vec<usize>)>> {
    let varmap = VarMap::new();
    PoseBlocks::new(
        VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
        unet,
        config,
    )?;
    let data = varmap
        .data()
        .lock()
        .map_err(|_| candle_core::Error::Msg("variable map lock poisoned".into()))?;
    let mut shapes: Vec<(String, Vec<usize>)> = data
        .iter()
        .map(|(name, var)| (name.clone(), var.dims().to_vec()))
        .collect();
    shapes.sort();
    Ok(shapes)
}
