//! A diffusers `MotionAdapter` folder (AnimateDiff motion modules saved apart from the UNet):
//! its `config.json`, checked against the UNet it is inserted into the way
//! `UNetMotionModel.from_unet2d` does, and its modules
//! (`down_blocks.{i}.motion_modules.{j}`, `mid_block.motion_modules.0`,
//! `up_blocks.{i}.motion_modules.{j}`).

use std::path::Path;

use candle_core::Result as CandleResult;
use candle_nn::VarBuilder;
use serde::Deserialize;
use serde_json::Value;

use super::error::Result;
use super::load::unsupported;
use super::motion::{MotionModule, MotionModuleDims};
use super::unet::config::{AsJson, UNetLayout, per_block};

/// `config.json` of a `MotionAdapter`, with diffusers' defaults for missing fields.
///
/// `motion_norm_num_groups` is deliberately not read: `UNetMotionModel` normalises its motion
/// modules with the UNet's `norm_num_groups`, and this crate computes what it computes.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct MotionAdapterConfig {
    /// Channels per level; only its length is checked (the UNet's channels are used, and
    /// weights of other channels fail with a shape mismatch).
    pub block_out_channels: Vec<usize>,
    /// Number or per-block list; must equal the UNet's `layers_per_block`.
    pub motion_layers_per_block: Value,
    /// Transformer blocks per motion module (number or per-block list).
    pub motion_transformer_layers_per_block: Value,
    /// Motion modules in the mid block (the UNet's mid block has one transformer: must be 1).
    pub motion_mid_block_layers_per_block: usize,
    /// Transformer blocks of the mid motion module (number or one-element list).
    pub motion_transformer_layers_per_mid_block: Value,
    /// Attention heads of the motion modules (number or per-block list).
    pub motion_num_attention_heads: Value,
    /// Frames the position table covers: the most frames a clip may have.
    pub motion_max_seq_length: usize,
    /// The adapter has a motion module in the mid block.
    pub use_motion_mid_block: bool,
    /// PIA's extra input channels; must be null.
    pub conv_in_channels: Option<usize>,
}

impl Default for MotionAdapterConfig {
    fn default() -> Self {
        Self {
            block_out_channels: vec![320, 640, 1280, 1280],
            motion_layers_per_block: Value::from(2),
            motion_transformer_layers_per_block: Value::from(1),
            motion_mid_block_layers_per_block: 1,
            motion_transformer_layers_per_mid_block: Value::from(1),
            motion_num_attention_heads: Value::from(8),
            motion_max_seq_length: 32,
            use_motion_mid_block: true,
            conv_in_channels: None,
        }
    }
}

/// The shape of every motion module of an adapter inserted into a given UNet.
#[derive(Clone, Debug, PartialEq)]
pub struct MotionLayout {
    /// Per down block: (modules, shape of each).
    pub down: Vec<(usize, MotionModuleDims)>,
    /// The mid block's single module, if the adapter has one.
    pub mid: Option<MotionModuleDims>,
    /// Per up block: (modules, shape of each).
    pub up: Vec<(usize, MotionModuleDims)>,
}

impl MotionAdapterConfig {
    /// Validates the adapter configuration read from `path` against `unet` and resolves the
    /// shape of each module. Channels come from the UNet: an adapter trained for other
    /// channels fails later, on the first tensor whose shape disagrees.
    pub fn layout(&self, path: &Path, unet: &UNetLayout) -> Result<MotionLayout> {
        let n = unet.down.len();
        if self.block_out_channels.len() != n {
            return Err(unsupported(
                path,
                "block_out_channels",
                &self.block_out_channels,
            ));
        }
        if self.conv_in_channels.is_some_and(|c| c != 0) {
            return Err(unsupported(path, "conv_in_channels", self.conv_in_channels));
        }
        if self.motion_max_seq_length == 0 {
            return Err(unsupported(path, "motion_max_seq_length", 0));
        }
        let layers = per_block(
            &self.motion_layers_per_block,
            n,
            path,
            "motion_layers_per_block",
        )?;
        if layers.iter().zip(&unet.down).any(|(&l, d)| l != d.layers) {
            return Err(unsupported(
                path,
                "motion_layers_per_block",
                AsJson(&self.motion_layers_per_block),
            ));
        }
        let field = "motion_transformer_layers_per_block";
        let tlayers = per_block(&self.motion_transformer_layers_per_block, n, path, field)?;
        if tlayers.contains(&0) {
            return Err(unsupported(
                path,
                field,
                AsJson(&self.motion_transformer_layers_per_block),
            ));
        }
        let heads = per_block(
            &self.motion_num_attention_heads,
            n,
            path,
            "motion_num_attention_heads",
        )?;
        let dims = |block: usize, channels: usize, layers: usize| -> Result<MotionModuleDims> {
            if heads[block] == 0 || !channels.is_multiple_of(heads[block]) {
                return Err(unsupported(
                    path,
                    "motion_num_attention_heads",
                    AsJson(&self.motion_num_attention_heads),
                ));
            }
            Ok(MotionModuleDims {
                channels,
                heads: heads[block],
                layers,
                norm_groups: unet.norm_groups,
                max_frames: self.motion_max_seq_length,
            })
        };
        let down = unet
            .down
            .iter()
            .enumerate()
            .map(|(i, d)| Ok((d.layers, dims(i, d.out_channels, tlayers[i])?)))
            .collect::<Result<Vec<_>>>()?;
        let up = unet
            .up
            .iter()
            .enumerate()
            .map(|(i, u)| {
                let mirror = n - 1 - i;
                Ok((u.layers, dims(mirror, u.out_channels, tlayers[mirror])?))
            })
            .collect::<Result<Vec<_>>>()?;
        let mid = if self.use_motion_mid_block {
            if self.motion_mid_block_layers_per_block != 1 {
                return Err(unsupported(
                    path,
                    "motion_mid_block_layers_per_block",
                    self.motion_mid_block_layers_per_block,
                ));
            }
            let field = "motion_transformer_layers_per_mid_block";
            let mid_layers = per_block(
                &self.motion_transformer_layers_per_mid_block,
                1,
                path,
                field,
            )?;
            if mid_layers[0] == 0 {
                return Err(unsupported(path, field, 0));
            }
            let channels = unet.down[n - 1].out_channels;
            Some(dims(n - 1, channels, mid_layers[0])?)
        } else {
            None
        };
        Ok(MotionLayout { down, mid, up })
    }
}

/// The motion modules of an adapter, grouped by the UNet block they go into.
#[derive(Clone, Debug)]
pub struct MotionModules {
    /// Per down block, one module per resnet.
    pub down: Vec<Vec<MotionModule>>,
    /// The mid block's modules (empty without a motion mid block).
    pub mid: Vec<MotionModule>,
    /// Per up block, one module per resnet.
    pub up: Vec<Vec<MotionModule>>,
}

impl MotionModules {
    /// Loads every module of `layout` from the adapter weights `vb`.
    pub fn new(vb: VarBuilder, layout: &MotionLayout) -> CandleResult<Self> {
        let group = |prefix: &str, blocks: &[(usize, MotionModuleDims)]| {
            blocks
                .iter()
                .enumerate()
                .map(|(i, &(count, dims))| {
                    (0..count)
                        .map(|j| {
                            let name = format!("{prefix}.{i}.motion_modules.{j}");
                            MotionModule::new(
                                vb.pp(prefix).pp(i).pp("motion_modules").pp(j),
                                dims,
                                name,
                            )
                        })
                        .collect::<CandleResult<Vec<_>>>()
                })
                .collect::<CandleResult<Vec<_>>>()
        };
        let mid = layout
            .mid
            .map(|dims| {
                MotionModule::new(
                    vb.pp("mid_block").pp("motion_modules").pp(0),
                    dims,
                    "mid_block.motion_modules.0".into(),
                )
            })
            .transpose()?;
        Ok(Self {
            down: group("down_blocks", &layout.down)?,
            mid: mid.into_iter().collect(),
            up: group("up_blocks", &layout.up)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelError;
    use crate::model::unet::config::UNetConfig;

    fn unet() -> UNetLayout {
        let cfg: UNetConfig = serde_json::from_str(
            r#"{"block_out_channels": [32, 64], "norm_num_groups": 8, "cross_attention_dim": 32,
                "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
                "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"]}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        cfg.layout(Path::new("unet/config.json"))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn adapter(json: &str) -> MotionAdapterConfig {
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn layout_follows_the_unet() -> Result<()> {
        let layout = adapter(
            r#"{"block_out_channels": [32, 64], "motion_num_attention_heads": [2, 4],
                "motion_transformer_layers_per_block": [1, 2], "motion_max_seq_length": 24}"#,
        )
        .layout(Path::new("a.json"), &unet())?;
        assert_eq!(layout.down.len(), 2);
        assert_eq!(
            (
                layout.down[1].0,
                layout.down[1].1.heads,
                layout.down[1].1.layers
            ),
            (2, 4, 2)
        );
        // Up block 0 mirrors down block 1: 3 modules of 64 channels.
        assert_eq!(
            (
                layout.up[0].0,
                layout.up[0].1.channels,
                layout.up[0].1.heads
            ),
            (3, 64, 4)
        );
        assert_eq!(layout.up[1].1.channels, 32);
        let mid = layout.mid.unwrap_or_else(|| panic!("mid expected"));
        assert_eq!(
            (mid.channels, mid.heads, mid.max_frames, mid.norm_groups),
            (64, 4, 24, 8)
        );
        Ok(())
    }

    #[test]
    fn incompatible_adapters_name_the_field() {
        for (json, field) in [
            (
                r#"{"block_out_channels": [32, 64, 64]}"#,
                "block_out_channels",
            ),
            (
                r#"{"block_out_channels": [32, 64], "motion_layers_per_block": 1}"#,
                "motion_layers_per_block",
            ),
            (
                r#"{"block_out_channels": [32, 64], "conv_in_channels": 9}"#,
                "conv_in_channels",
            ),
            (
                r#"{"block_out_channels": [32, 64], "motion_num_attention_heads": 5}"#,
                "motion_num_attention_heads",
            ),
            (
                r#"{"block_out_channels": [32, 64], "motion_mid_block_layers_per_block": 2}"#,
                "motion_mid_block_layers_per_block",
            ),
        ] {
            match adapter(json).layout(Path::new("motion_adapter/config.json"), &unet()) {
                Err(ModelError::UnsupportedConfig { field: f, path, .. }) => {
                    assert_eq!(f, field);
                    assert!(path.ends_with("motion_adapter/config.json"));
                }
                other => panic!("{json}: {other:?}"),
            }
        }
    }
}
