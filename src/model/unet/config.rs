//! The UNet's `config.json` (diffusers `UNet2DConditionModel`) and its resolution into a
//! per-block [`UNetLayout`], rejecting every value this implementation does not compute.

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::model::blocks::DownsamplePadding;
use crate::model::error::Result;
use crate::model::load::unsupported;

/// `config.json` of a diffusers `UNet2DConditionModel`. Missing fields take diffusers'
/// defaults; fields this implementation has no use for are ignored when they cannot change the
/// result and rejected by [`UNetConfig::layout`] when they would.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct UNetConfig {
    /// Latent channels in (4 for SD).
    pub in_channels: usize,
    /// Channels predicted (4 for SD).
    pub out_channels: usize,
    /// Map the input from [0, 1] to [-1, 1] first.
    pub center_input_sample: bool,
    /// Cosines before sines in the timestep projection.
    pub flip_sin_to_cos: bool,
    /// `downscale_freq_shift` of the timestep projection.
    pub freq_shift: f64,
    /// `CrossAttnDownBlock2D` or `DownBlock2D` per level.
    pub down_block_types: Vec<String>,
    /// `UNetMidBlock2DCrossAttn`, or null for no mid block.
    pub mid_block_type: Option<String>,
    /// `UpBlock2D` or `CrossAttnUpBlock2D` per level, deepest first.
    pub up_block_types: Vec<String>,
    /// Bool or per-block list; must be false (self-attention in `attn1`).
    pub only_cross_attention: Value,
    /// Channels per level.
    pub block_out_channels: Vec<usize>,
    /// Resnets per down block (number or per-block list); up blocks have one more.
    pub layers_per_block: Value,
    /// Padding of the downsampling convolutions (1, or 0 for bottom-right padding).
    pub downsample_padding: usize,
    /// Divides the residual sums of the mid block's resnets.
    pub mid_block_scale_factor: f64,
    /// Activation of resnets and the time embedding (`silu`).
    pub act_fn: String,
    /// GroupNorm groups everywhere.
    pub norm_num_groups: Option<usize>,
    /// GroupNorm epsilon of resnets and `conv_norm_out`.
    pub norm_eps: f64,
    /// Width of the text embeddings (number or per-block list).
    pub cross_attention_dim: Value,
    /// Transformer blocks per spatial transformer (number or per-block list).
    pub transformer_layers_per_block: Value,
    /// Asymmetric up-path transformer counts; must be null.
    pub reverse_transformer_layers_per_block: Value,
    /// Projection of other text encoders' widths; must be null.
    pub encoder_hid_dim: Value,
    /// Kind of that projection; must be null.
    pub encoder_hid_dim_type: Value,
    /// Number or per-block list; for these UNets it is the number of heads (diffusers' naming
    /// quirk), used because `num_attention_heads` must be null.
    pub attention_head_dim: Value,
    /// Must be null: diffusers' `UNet2DConditionModel` rejects it too.
    pub num_attention_heads: Value,
    /// Must be false.
    pub dual_cross_attention: bool,
    /// Transformers project with linear layers (SD 2) instead of 1×1 convolutions (SD 1).
    pub use_linear_projection: bool,
    /// Class conditioning; must be null.
    pub class_embed_type: Value,
    /// Extra conditioning (SDXL); must be null.
    pub addition_embed_type: Value,
    /// Class count; must be null.
    pub num_class_embeds: Value,
    /// Attention scores in f32 under half precision (SD 2.1).
    pub upcast_attention: bool,
    /// How resnets inject the time embedding; must be `default` (added).
    pub resnet_time_scale_shift: String,
    /// Must be `positional` (sinusoidal).
    pub time_embedding_type: String,
    /// Width of the time embedding (default `4·block_out_channels[0]`).
    pub time_embedding_dim: Option<usize>,
    /// Activation on the time embedding before the blocks: null or `silu`.
    pub time_embedding_act_fn: Option<String>,
    /// Activation after `time_embedding.linear_2`: null or `silu`.
    pub timestep_post_act: Option<String>,
    /// Timestep-condition projection (LCM); must be null.
    pub time_cond_proj_dim: Value,
    /// `conv_in` kernel size (odd).
    pub conv_in_kernel: usize,
    /// `conv_out` kernel size (odd).
    pub conv_out_kernel: usize,
    /// Must be `default` (no GLIGEN).
    pub attention_type: String,
    /// Must be false.
    pub class_embeddings_concat: bool,
    /// Must be null.
    pub cross_attention_norm: Value,
}

impl Default for UNetConfig {
    /// diffusers' constructor defaults (those of SD 1.x).
    fn default() -> Self {
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        Self {
            in_channels: 4,
            out_channels: 4,
            center_input_sample: false,
            flip_sin_to_cos: true,
            freq_shift: 0.0,
            down_block_types: strings(&[
                "CrossAttnDownBlock2D",
                "CrossAttnDownBlock2D",
                "CrossAttnDownBlock2D",
                "DownBlock2D",
            ]),
            mid_block_type: Some("UNetMidBlock2DCrossAttn".into()),
            up_block_types: strings(&[
                "UpBlock2D",
                "CrossAttnUpBlock2D",
                "CrossAttnUpBlock2D",
                "CrossAttnUpBlock2D",
            ]),
            only_cross_attention: Value::Bool(false),
            block_out_channels: vec![320, 640, 1280, 1280],
            layers_per_block: Value::from(2),
            downsample_padding: 1,
            mid_block_scale_factor: 1.0,
            act_fn: "silu".into(),
            norm_num_groups: Some(32),
            norm_eps: 1e-5,
            cross_attention_dim: Value::from(1280),
            transformer_layers_per_block: Value::from(1),
            reverse_transformer_layers_per_block: Value::Null,
            encoder_hid_dim: Value::Null,
            encoder_hid_dim_type: Value::Null,
            attention_head_dim: Value::from(8),
            num_attention_heads: Value::Null,
            dual_cross_attention: false,
            use_linear_projection: false,
            class_embed_type: Value::Null,
            addition_embed_type: Value::Null,
            num_class_embeds: Value::Null,
            upcast_attention: false,
            resnet_time_scale_shift: "default".into(),
            time_embedding_type: "positional".into(),
            time_embedding_dim: None,
            time_embedding_act_fn: None,
            timestep_post_act: None,
            time_cond_proj_dim: Value::Null,
            conv_in_kernel: 3,
            conv_out_kernel: 3,
            attention_type: "default".into(),
            class_embeddings_concat: false,
            cross_attention_norm: Value::Null,
        }
    }
}

/// The spatial transformers of one block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionLayout {
    /// Attention heads (head width = channels / heads).
    pub heads: usize,
    /// Transformer blocks per `Transformer2DModel`.
    pub transformer_layers: usize,
    /// Width of the text embeddings.
    pub cross_attention_dim: usize,
}

/// One down block.
#[derive(Clone, Debug, PartialEq)]
pub struct DownLayout {
    /// Channels in.
    pub in_channels: usize,
    /// Channels out.
    pub out_channels: usize,
    /// Resnets (each followed by a transformer when `attention` is set).
    pub layers: usize,
    /// `CrossAttnDownBlock2D` when set, `DownBlock2D` otherwise.
    pub attention: Option<AttentionLayout>,
    /// Ends with a `Downsample2D` (every block but the last).
    pub downsample: bool,
}

/// One up block.
#[derive(Clone, Debug, PartialEq)]
pub struct UpLayout {
    /// Channels of the previous up block's output (or of the mid block).
    pub prev_channels: usize,
    /// Channels of the deepest skip connection this block consumes last.
    pub in_channels: usize,
    /// Channels out.
    pub out_channels: usize,
    /// Resnets (= the mirrored down block's layers + 1).
    pub layers: usize,
    /// `CrossAttnUpBlock2D` when set, `UpBlock2D` otherwise.
    pub attention: Option<AttentionLayout>,
    /// Ends with an `Upsample2D` (every block but the last).
    pub upsample: bool,
}

/// `UNetMidBlock2DCrossAttn`.
#[derive(Clone, Debug, PartialEq)]
pub struct MidLayout {
    /// Channels (those of the deepest block).
    pub channels: usize,
    /// Its single transformer.
    pub attention: AttentionLayout,
    /// Divides each resnet's residual sum (`mid_block_scale_factor`).
    pub output_scale_factor: f64,
}

/// Everything a UNet needs to be built, resolved from a validated [`UNetConfig`].
#[derive(Clone, Debug, PartialEq)]
pub struct UNetLayout {
    /// Latent channels in.
    pub in_channels: usize,
    /// Channels predicted.
    pub out_channels: usize,
    /// Map the input from [0, 1] to [-1, 1] first.
    pub center_input_sample: bool,
    /// Put cosines before sines in the timestep projection.
    pub flip_sin_to_cos: bool,
    /// diffusers' `downscale_freq_shift` of the timestep projection.
    pub freq_shift: f64,
    /// Width of the time embedding.
    pub time_embed_dim: usize,
    /// SiLU after `time_embedding.linear_2` (`timestep_post_act`).
    pub timestep_post_act: bool,
    /// SiLU on the time embedding before the blocks (`time_embedding_act_fn`).
    pub time_embedding_act: bool,
    /// `conv_in` kernel size.
    pub conv_in_kernel: usize,
    /// `conv_out` kernel size.
    pub conv_out_kernel: usize,
    /// GroupNorm groups of resnets, transformers and `conv_norm_out`.
    pub norm_groups: usize,
    /// GroupNorm epsilon of resnets and `conv_norm_out`.
    pub norm_eps: f64,
    /// Padding of the downsamplers.
    pub downsample_padding: DownsamplePadding,
    /// Transformers project in and out with linear layers (SD 2) instead of 1×1 convolutions.
    pub linear_projection: bool,
    /// Scores and softmax in f32 under half precision.
    pub upcast_attention: bool,
    /// Down blocks, top to bottom.
    pub down: Vec<DownLayout>,
    /// The mid block, if any.
    pub mid: Option<MidLayout>,
    /// Up blocks, bottom to top.
    pub up: Vec<UpLayout>,
}

impl UNetLayout {
    /// Number of up blocks that upsample: inputs whose sides are not multiples of
    /// `2^upsamplers` get explicit upsample sizes.
    pub fn upsamplers(&self) -> usize {
        self.up.iter().filter(|u| u.upsample).count()
    }

    /// Adapts the layout to what diffusers' `UNetMotionModel.from_unet2d` builds from this
    /// UNet: a timestep projection with `flip_sin_to_cos = true` and `freq_shift = 0`, no input
    /// centring, no extra time-embedding activations, always a mid block, 3×3 `conv_in` /
    /// `conv_out` and a `4·block_out_channels[0]` time embedding (the last three are checked:
    /// diffusers cannot carry other values over either).
    pub fn for_motion(mut self, path: &Path, cfg: &UNetConfig) -> Result<Self> {
        if self.mid.is_none() {
            return Err(unsupported(path, "mid_block_type", &cfg.mid_block_type));
        }
        if cfg.conv_in_kernel != 3 {
            return Err(unsupported(path, "conv_in_kernel", cfg.conv_in_kernel));
        }
        if cfg.conv_out_kernel != 3 {
            return Err(unsupported(path, "conv_out_kernel", cfg.conv_out_kernel));
        }
        if let Some(dim) = cfg
            .time_embedding_dim
            .filter(|&d| d != 4 * cfg.block_out_channels[0])
        {
            return Err(unsupported(path, "time_embedding_dim", dim));
        }
        self.flip_sin_to_cos = true;
        self.freq_shift = 0.0;
        self.center_input_sample = false;
        self.timestep_post_act = false;
        self.time_embedding_act = false;
        Ok(self)
    }
}

impl UNetConfig {
    /// Validates the configuration read from `path` and resolves it per block.
    pub fn layout(&self, path: &Path) -> Result<UNetLayout> {
        let bad = |field: &str, value: &dyn std::fmt::Debug| unsupported(path, field, value);
        let n = self.block_out_channels.len();
        if n == 0 || self.block_out_channels.contains(&0) {
            return Err(bad("block_out_channels", &self.block_out_channels));
        }
        if self.down_block_types.len() != n {
            return Err(bad("down_block_types", &self.down_block_types));
        }
        if self.up_block_types.len() != n {
            return Err(bad("up_block_types", &self.up_block_types));
        }
        self.check_fixed_values(path)?;
        let norm_groups = match self.norm_num_groups {
            Some(g) if g > 0 && self.block_out_channels.iter().all(|c| c % g == 0) => g,
            other => return Err(bad("norm_num_groups", &other)),
        };
        let layers = per_block(&self.layers_per_block, n, path, "layers_per_block")?;
        if layers.contains(&0) {
            return Err(bad("layers_per_block", &AsJson(&self.layers_per_block)));
        }
        let heads = per_block(&self.attention_head_dim, n, path, "attention_head_dim")?;
        let cross = per_block(&self.cross_attention_dim, n, path, "cross_attention_dim")?;
        let tlayers = per_block(
            &self.transformer_layers_per_block,
            n,
            path,
            "transformer_layers_per_block",
        )?;
        let attention = |i: usize| -> Result<AttentionLayout> {
            let c = self.block_out_channels[i];
            if heads[i] == 0 || !c.is_multiple_of(heads[i]) {
                return Err(unsupported(
                    path,
                    "attention_head_dim",
                    AsJson(&self.attention_head_dim),
                ));
            }
            if tlayers[i] == 0 {
                return Err(unsupported(
                    path,
                    "transformer_layers_per_block",
                    AsJson(&self.transformer_layers_per_block),
                ));
            }
            if cross[i] == 0 {
                return Err(unsupported(
                    path,
                    "cross_attention_dim",
                    AsJson(&self.cross_attention_dim),
                ));
            }
            Ok(AttentionLayout {
                heads: heads[i],
                transformer_layers: tlayers[i],
                cross_attention_dim: cross[i],
            })
        };

        let mut down = Vec::with_capacity(n);
        for (i, kind) in self.down_block_types.iter().enumerate() {
            let attention = match kind.as_str() {
                "CrossAttnDownBlock2D" => Some(attention(i)?),
                "DownBlock2D" => None,
                _ => return Err(bad("down_block_types", kind)),
            };
            down.push(DownLayout {
                in_channels: if i == 0 {
                    self.block_out_channels[0]
                } else {
                    self.block_out_channels[i - 1]
                },
                out_channels: self.block_out_channels[i],
                layers: layers[i],
                attention,
                downsample: i + 1 < n,
            });
        }

        let mid = match self.mid_block_type.as_deref() {
            None => None,
            Some("UNetMidBlock2DCrossAttn") => Some(MidLayout {
                channels: self.block_out_channels[n - 1],
                attention: attention(n - 1)?,
                output_scale_factor: self.mid_block_scale_factor,
            }),
            Some(other) => return Err(bad("mid_block_type", &other)),
        };

        let mut up = Vec::with_capacity(n);
        for (i, kind) in self.up_block_types.iter().enumerate() {
            let mirror = n - 1 - i;
            let attention = match kind.as_str() {
                "CrossAttnUpBlock2D" => Some(attention(mirror)?),
                "UpBlock2D" => None,
                _ => return Err(bad("up_block_types", kind)),
            };
            up.push(UpLayout {
                prev_channels: self.block_out_channels[(mirror + 1).min(n - 1)],
                in_channels: self.block_out_channels[mirror.saturating_sub(1)],
                out_channels: self.block_out_channels[mirror],
                layers: layers[mirror] + 1,
                attention,
                upsample: i + 1 < n,
            });
        }

        let silu = |field: &str, value: &Option<String>| -> Result<bool> {
            match value.as_deref() {
                None => Ok(false),
                Some("silu" | "swish") => Ok(true),
                Some(_) => Err(unsupported(path, field, value)),
            }
        };
        for (field, k) in [
            ("conv_in_kernel", self.conv_in_kernel),
            ("conv_out_kernel", self.conv_out_kernel),
        ] {
            if k % 2 == 0 {
                return Err(bad(field, &k));
            }
        }
        Ok(UNetLayout {
            in_channels: self.in_channels,
            out_channels: self.out_channels,
            center_input_sample: self.center_input_sample,
            flip_sin_to_cos: self.flip_sin_to_cos,
            freq_shift: self.freq_shift,
            time_embed_dim: self
                .time_embedding_dim
                .unwrap_or(4 * self.block_out_channels[0]),
            timestep_post_act: silu("timestep_post_act", &self.timestep_post_act)?,
            time_embedding_act: silu("time_embedding_act_fn", &self.time_embedding_act_fn)?,
            conv_in_kernel: self.conv_in_kernel,
            conv_out_kernel: self.conv_out_kernel,
            norm_groups,
            norm_eps: self.norm_eps,
            downsample_padding: match self.downsample_padding {
                1 => DownsamplePadding::Symmetric,
                0 => DownsamplePadding::BottomRight,
                other => return Err(bad("downsample_padding", &other)),
            },
            linear_projection: self.use_linear_projection,
            upcast_attention: self.upcast_attention,
            down,
            mid,
            up,
        })
    }

    /// Fields that must hold the one value this implementation computes.
    fn check_fixed_values(&self, path: &Path) -> Result<()> {
        let bad = |field: &str, value: &dyn std::fmt::Debug| Err(unsupported(path, field, value));
        if !matches!(self.act_fn.as_str(), "silu" | "swish") {
            return bad("act_fn", &self.act_fn);
        }
        if self.resnet_time_scale_shift != "default" {
            return bad("resnet_time_scale_shift", &self.resnet_time_scale_shift);
        }
        if self.time_embedding_type != "positional" {
            return bad("time_embedding_type", &self.time_embedding_type);
        }
        if self.attention_type != "default" {
            return bad("attention_type", &self.attention_type);
        }
        if self.dual_cross_attention {
            return bad("dual_cross_attention", &true);
        }
        if self.class_embeddings_concat {
            return bad("class_embeddings_concat", &true);
        }
        let only_cross_false = match &self.only_cross_attention {
            Value::Bool(b) => !b,
            Value::Array(items) => items.iter().all(|v| v == &Value::Bool(false)),
            _ => false,
        };
        if !only_cross_false {
            return bad("only_cross_attention", &AsJson(&self.only_cross_attention));
        }
        for (field, value) in [
            ("num_attention_heads", &self.num_attention_heads),
            ("class_embed_type", &self.class_embed_type),
            ("num_class_embeds", &self.num_class_embeds),
            ("addition_embed_type", &self.addition_embed_type),
            ("encoder_hid_dim", &self.encoder_hid_dim),
            ("encoder_hid_dim_type", &self.encoder_hid_dim_type),
            ("time_cond_proj_dim", &self.time_cond_proj_dim),
            ("cross_attention_norm", &self.cross_attention_norm),
            (
                "reverse_transformer_layers_per_block",
                &self.reverse_transformer_layers_per_block,
            ),
        ] {
            if !value.is_null() {
                return bad(field, &AsJson(value));
            }
        }
        Ok(())
    }
}

/// A field given as one number for every block or as a list with one number per block.
pub(crate) fn per_block(value: &Value, n: usize, path: &Path, field: &str) -> Result<Vec<usize>> {
    let number = |v: &Value| v.as_u64().and_then(|x| usize::try_from(x).ok());
    match value {
        Value::Array(items) if items.len() == n => items
            .iter()
            .map(number)
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| unsupported(path, field, AsJson(value))),
        Value::Array(_) => Err(unsupported(path, field, AsJson(value))),
        v => number(v)
            .map(|x| vec![x; n])
            .ok_or_else(|| unsupported(path, field, AsJson(value))),
    }
}

/// Shows a JSON value as it is written in the file (for error messages).
pub(crate) struct AsJson<'a>(pub &'a Value);

impl std::fmt::Debug for AsJson<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelError;

    fn parse(json: &str) -> UNetConfig {
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}"))
    }

    fn field_of(err: ModelError) -> String {
        match err {
            ModelError::UnsupportedConfig { field, .. } => field,
            other => panic!("expected UnsupportedConfig, got {other}"),
        }
    }

    #[test]
    fn sd15_defaults_resolve_to_the_sd15_layout() -> Result<()> {
        let layout = parse(r#"{"cross_attention_dim": 768}"#).layout(Path::new("c.json"))?;
        assert_eq!(layout.time_embed_dim, 1280);
        let outs: Vec<_> = layout.down.iter().map(|d| d.out_channels).collect();
        assert_eq!(outs, [320, 640, 1280, 1280]);
        assert_eq!(layout.down[0].attention.map(|a| a.heads), Some(8));
        assert!(layout.down[3].attention.is_none() && !layout.down[3].downsample);
        assert_eq!(layout.up[0].layers, 3);
        // Up block 1 (CrossAttnUpBlock2D at 1280): previous 1280, deepest skip 640.
        assert_eq!(
            (
                layout.up[1].prev_channels,
                layout.up[1].in_channels,
                layout.up[1].out_channels
            ),
            (1280, 640, 1280)
        );
        // Last up block: skips from conv_in (320), previous 640.
        assert_eq!(
            (layout.up[3].prev_channels, layout.up[3].in_channels),
            (640, 320)
        );
        assert_eq!(layout.upsamplers(), 3);
        Ok(())
    }

    #[test]
    fn per_block_lists_are_honoured() -> Result<()> {
        let layout = parse(
            r#"{"block_out_channels": [64, 128], "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
                "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D"], "layers_per_block": [1, 3],
                "attention_head_dim": [2, 4], "cross_attention_dim": [16, 24], "transformer_layers_per_block": [1, 2],
                "norm_num_groups": 16}"#,
        )
        .layout(Path::new("c.json"))?;
        assert_eq!(layout.down[1].layers, 3);
        assert_eq!(layout.up[0].layers, 4);
        assert_eq!(
            layout.up[0].attention,
            Some(AttentionLayout {
                heads: 4,
                transformer_layers: 2,
                cross_attention_dim: 24
            })
        );
        assert_eq!(layout.mid.map(|m| m.attention.heads), Some(4));
        Ok(())
    }

    #[test]
    fn unsupported_values_name_their_field() {
        let path = Path::new("unet/config.json");
        for (json, field) in [
            (r#"{"act_fn": "gelu"}"#, "act_fn"),
            (r#"{"num_attention_heads": 8}"#, "num_attention_heads"),
            (r#"{"class_embed_type": "timestep"}"#, "class_embed_type"),
            (
                r#"{"addition_embed_type": "text_time"}"#,
                "addition_embed_type",
            ),
            (
                r#"{"resnet_time_scale_shift": "scale_shift"}"#,
                "resnet_time_scale_shift",
            ),
            (r#"{"only_cross_attention": true}"#, "only_cross_attention"),
            (r#"{"layers_per_block": [2, 2]}"#, "layers_per_block"),
            (
                r#"{"transformer_layers_per_block": [[1, 2], [1, 2], [1, 2], [1, 2]]}"#,
                "transformer_layers_per_block",
            ),
            (
                r#"{"mid_block_type": "UNetMidBlock2DSimpleCrossAttn"}"#,
                "mid_block_type",
            ),
            (
                r#"{"down_block_types": ["AttnDownBlock2D", "DownBlock2D", "DownBlock2D", "DownBlock2D"]}"#,
                "down_block_types",
            ),
            (r#"{"norm_num_groups": 7}"#, "norm_num_groups"),
            (r#"{"attention_head_dim": 7}"#, "attention_head_dim"),
            (
                r#"{"time_embedding_type": "fourier"}"#,
                "time_embedding_type",
            ),
            (r#"{"downsample_padding": 2}"#, "downsample_padding"),
        ] {
            let err = parse(json)
                .layout(path)
                .err()
                .unwrap_or_else(|| panic!("{json} accepted"));
            let text = err.to_string();
            assert_eq!(field_of(err), field, "{json}");
            assert!(text.contains("unet/config.json"), "{text}");
        }
    }
}
