//! The text encoder's configuration, read from `text_encoder/config.json` (transformers'
//! `CLIPTextConfig`).

use std::path::Path;

use serde::Deserialize;

use crate::model::error::Result;
use crate::model::load::unsupported;

/// The activation of the encoder's MLP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HiddenAct {
    /// `x · σ(1.702 x)`, the original CLIP's (`quick_gelu`).
    QuickGelu,
    /// The exact, erf-based GELU (`gelu`).
    Gelu,
    /// The tanh approximation of GELU (`gelu_new`, `gelu_pytorch_tanh`).
    GeluTanh,
}

/// `CLIPTextConfig`: the fields the encoder's shape and numerics depend on, with
/// transformers' defaults for absent ones. `projection_dim` and the token ids other than
/// `eos_token_id` do not affect `CLIPTextModel` and are not read.
#[derive(Clone, Debug, Deserialize)]
pub struct ClipTextConfig {
    /// Rows of the token-embedding table.
    #[serde(default = "defaults::vocab_size")]
    pub vocab_size: usize,
    /// Width of the hidden states.
    #[serde(default = "defaults::hidden_size")]
    pub hidden_size: usize,
    /// Width of the MLP's inner layer.
    #[serde(default = "defaults::intermediate_size")]
    pub intermediate_size: usize,
    /// Attention heads per layer (must divide `hidden_size`).
    #[serde(default = "defaults::num_attention_heads")]
    pub num_attention_heads: usize,
    /// Number of encoder layers.
    #[serde(default = "defaults::num_hidden_layers")]
    pub num_hidden_layers: usize,
    /// Longest sequence (rows of the position-embedding table).
    #[serde(default = "defaults::max_position_embeddings")]
    pub max_position_embeddings: usize,
    /// MLP activation as written in the file; see [`ClipTextConfig::activation`].
    #[serde(default = "defaults::hidden_act")]
    pub hidden_act: String,
    /// Epsilon of every layer norm.
    #[serde(default = "defaults::layer_norm_eps")]
    pub layer_norm_eps: f64,
    /// Id marking the end of the prompt; `2` selects transformers' legacy pooling (the
    /// position of the largest id).
    #[serde(default = "defaults::eos_token_id")]
    pub eos_token_id: i64,
}

mod defaults {
    pub fn vocab_size() -> usize {
        49408
    }
    pub fn hidden_size() -> usize {
        512
    }
    pub fn intermediate_size() -> usize {
        2048
    }
    pub fn num_attention_heads() -> usize {
        8
    }
    pub fn num_hidden_layers() -> usize {
        12
    }
    pub fn max_position_embeddings() -> usize {
        77
    }
    pub fn hidden_act() -> String {
        "quick_gelu".into()
    }
    pub fn layer_norm_eps() -> f64 {
        1e-5
    }
    pub fn eos_token_id() -> i64 {
        49407
    }
}

impl ClipTextConfig {
    /// The MLP activation, or `None` for a name this implementation does not know.
    pub fn activation(&self) -> Option<HiddenAct> {
        match self.hidden_act.as_str() {
            "quick_gelu" => Some(HiddenAct::QuickGelu),
            "gelu" => Some(HiddenAct::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" => Some(HiddenAct::GeluTanh),
            _ => None,
        }
    }

    /// Checks every field the network cannot be built or run with, naming `path` and the
    /// field in the error.
    pub fn validate(&self, path: &Path) -> Result<()> {
        if self.activation().is_none() {
            return Err(unsupported(path, "hidden_act", &self.hidden_act));
        }
        let positive = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_attention_heads", self.num_attention_heads),
            ("num_hidden_layers", self.num_hidden_layers),
            ("max_position_embeddings", self.max_position_embeddings),
        ];
        if let Some((field, value)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(unsupported(path, field, value));
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(unsupported(
                path,
                "num_attention_heads",
                format!(
                    "{} (does not divide hidden_size {})",
                    self.num_attention_heads, self.hidden_size
                ),
            ));
        }
        if !(self.layer_norm_eps.is_finite() && self.layer_norm_eps > 0.0) {
            return Err(unsupported(path, "layer_norm_eps", self.layer_norm_eps));
        }
        Ok(())
    }
}
