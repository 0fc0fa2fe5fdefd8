//! The VAE's configuration, read from `vae/config.json` (diffusers' `AutoencoderKL`).

use std::path::Path;

use serde::Deserialize;

use crate::model::error::Result;
use crate::model::load::unsupported;

/// `AutoencoderKL`'s constructor arguments, with diffusers' defaults for absent ones.
/// `force_upcast`, `latents_mean` and `latents_std` are pipeline hints the autoencoder itself
/// never applies, and are not read.
#[derive(Clone, Debug, Deserialize)]
pub struct VaeConfig {
    /// Channels of the images (3 for RGB).
    #[serde(default = "defaults::three")]
    pub in_channels: usize,
    /// Channels of the decoded images.
    #[serde(default = "defaults::three")]
    pub out_channels: usize,
    /// One entry per encoder level; only `DownEncoderBlock2D` exists in `AutoencoderKL`.
    #[serde(default = "defaults::down_block_types")]
    pub down_block_types: Vec<String>,
    /// One entry per decoder level; only `UpDecoderBlock2D` exists in `AutoencoderKL`.
    #[serde(default = "defaults::up_block_types")]
    pub up_block_types: Vec<String>,
    /// Channels of each level, shallowest first.
    #[serde(default = "defaults::block_out_channels")]
    pub block_out_channels: Vec<usize>,
    /// Residual blocks per encoder level (the decoder has one more per level).
    #[serde(default = "defaults::one")]
    pub layers_per_block: usize,
    /// Activation between layers; only `silu`.
    #[serde(default = "defaults::act_fn")]
    pub act_fn: String,
    /// Channels of the latent space.
    #[serde(default = "defaults::four")]
    pub latent_channels: usize,
    /// Groups of every group norm.
    #[serde(default = "defaults::norm_num_groups")]
    pub norm_num_groups: usize,
    /// Training resolution (informative).
    #[serde(default = "defaults::sample_size")]
    pub sample_size: usize,
    /// Multiplies latents into the diffusion model's unit-variance space.
    #[serde(default = "defaults::scaling_factor")]
    pub scaling_factor: f64,
    /// Subtracted from latents before scaling, when present (SD3-style VAEs).
    #[serde(default)]
    pub shift_factor: Option<f64>,
    /// Whether the 1×1 `quant_conv` follows the encoder.
    #[serde(default = "defaults::yes")]
    pub use_quant_conv: bool,
    /// Whether the 1×1 `post_quant_conv` precedes the decoder.
    #[serde(default = "defaults::yes")]
    pub use_post_quant_conv: bool,
    /// Whether the mid blocks hold their self-attention layer.
    #[serde(default = "defaults::yes")]
    pub mid_block_add_attention: bool,
}

mod defaults {
    pub fn one() -> usize {
        1
    }
    pub fn three() -> usize {
        3
    }
    pub fn four() -> usize {
        4
    }
    pub fn yes() -> bool {
        true
    }
    pub fn down_block_types() -> Vec<String> {
        vec!["DownEncoderBlock2D".into()]
    }
    pub fn up_block_types() -> Vec<String> {
        vec!["UpDecoderBlock2D".into()]
    }
    pub fn block_out_channels() -> Vec<usize> {
        vec![64]
    }
    pub fn act_fn() -> String {
        "silu".into()
    }
    pub fn norm_num_groups() -> usize {
        32
    }
    pub fn sample_size() -> usize {
        32
    }
    pub fn scaling_factor() -> f64 {
        0.18215
    }
}

impl VaeConfig {
    /// Checks every field the network cannot be built with, naming `path`, the field and
    /// the value in the error.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let check_types = |field: &str, types: &[String], allowed: &str| match types
            .iter()
            .position(|t| t != allowed)
        {
            Some(i) => Err(unsupported(path, &format!("{field}[{i}]"), &types[i])),
            None if types.len() != self.block_out_channels.len() => Err(unsupported(
                path,
                field,
                format!(
                    "{} entries for {} block_out_channels",
                    types.len(),
                    self.block_out_channels.len()
                ),
            )),
            None => Ok(()),
        };
        check_types(
            "down_block_types",
            &self.down_block_types,
            "DownEncoderBlock2D",
        )?;
        check_types("up_block_types", &self.up_block_types, "UpDecoderBlock2D")?;
        if self.act_fn != "silu" {
            return Err(unsupported(path, "act_fn", &self.act_fn));
        }
        if self.block_out_channels.is_empty() {
            return Err(unsupported(
                path,
                "block_out_channels",
                &self.block_out_channels,
            ));
        }
        let positive = [
            ("in_channels", self.in_channels),
            ("out_channels", self.out_channels),
            ("latent_channels", self.latent_channels),
            ("norm_num_groups", self.norm_num_groups),
        ];
        if let Some((field, value)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(unsupported(path, field, value));
        }
        if let Some(c) = self
            .block_out_channels
            .iter()
            .find(|c| **c == 0 || !c.is_multiple_of(self.norm_num_groups))
        {
            return Err(unsupported(
                path,
                "norm_num_groups",
                format!(
                    "{} (does not divide block_out_channels entry {c})",
                    self.norm_num_groups
                ),
            ));
        }
        if !(self.scaling_factor.is_finite() && self.scaling_factor != 0.0) {
            return Err(unsupported(path, "scaling_factor", self.scaling_factor));
        }
        Ok(())
    }

    /// Channels of the deepest level (the mid blocks').
    pub(super) fn deepest_channels(&self) -> usize {
        self.block_out_channels.last().copied().unwrap_or(0)
    }
}
