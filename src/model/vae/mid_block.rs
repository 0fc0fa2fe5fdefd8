//! The VAE's mid block (diffusers' `UNetMidBlock2D` without time embedding): resnet,
//! optional single-head spatial self-attention, resnet.

use candle_core::{D, DType, Result, Tensor};
use candle_nn::{GroupNorm, Linear, Module, VarBuilder};

use crate::model::blocks::{ResnetBlock2D, ResnetConfig};

/// Epsilon of every norm in diffusers' VAE.
pub(super) const VAE_EPS: f64 = 1e-6;

/// A [`ResnetConfig`] for the VAE: no time embedding, `groups` for both norms, eps 1e-6.
pub(super) fn vae_resnet(in_channels: usize, out_channels: usize, groups: usize) -> ResnetConfig {
    ResnetConfig {
        groups,
        groups_out: groups,
        eps: VAE_EPS,
        ..ResnetConfig::new(in_channels, out_channels, None)
    }
}

/// Self-attention over the pixels of a feature map (diffusers' `Attention` as the VAE
/// configures it: group norm first, one head of all channels, residual, output scale 1).
#[derive(Clone, Debug)]
struct SpatialAttention {
    group_norm: GroupNorm,
    to_q: Linear,
    to_k: Linear,
    to_v: Linear,
    to_out: Linear,
    heads: usize,
}

/// A `channels → channels` projection stored either as a Linear weight `[C, C]` or, in
/// checkpoints converted from the original code, as a 1×1 convolution `[C, C, 1, 1]`.
fn projection(vb: VarBuilder, channels: usize) -> Result<Linear> {
    let weight = match vb.get((channels, channels), "weight") {
        Ok(w) => w,
        Err(as_linear) => vb
            .get((channels, channels, 1, 1), "weight")
            .and_then(|w| w.reshape((channels, channels)))
            .map_err(|_| as_linear)?,
    };
    Ok(Linear::new(weight, Some(vb.get(channels, "bias")?)))
}

impl SpatialAttention {
    /// Weights `group_norm`, `to_q`, `to_k`, `to_v`, `to_out.0` (or the deprecated `query`,
    /// `key`, `value`, `proj_attn` of older checkpoints).
    fn new(vb: VarBuilder, channels: usize, groups: usize) -> Result<Self> {
        let names = if vb.contains_tensor("query.weight") && !vb.contains_tensor("to_q.weight") {
            ["query", "key", "value", "proj_attn"]
        } else {
            ["to_q", "to_k", "to_v", "to_out.0"]
        };
        Ok(Self {
            group_norm: candle_nn::group_norm(groups, channels, VAE_EPS, vb.pp("group_norm"))?,
            to_q: projection(vb.pp(names[0]), channels)?,
            to_k: projection(vb.pp(names[1]), channels)?,
            to_v: projection(vb.pp(names[2]), channels)?,
            to_out: projection(vb.pp(names[3]), channels)?,
            // diffusers: heads = channels / attention_head_dim with attention_head_dim = channels.
            heads: 1,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let head_dim = c / self.heads;
        let tokens = self
            .group_norm
            .forward(x)?
            .reshape((b, c, h * w))?
            .transpose(1, 2)?
            .contiguous()?;
        let split = |t: Tensor| -> Result<Tensor> {
            t.reshape((b, h * w, self.heads, head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = split(self.to_q.forward(&tokens)?)?;
        let k = split(self.to_k.forward(&tokens)?)?;
        let v = split(self.to_v.forward(&tokens)?)?;
        let scale = (head_dim as f64).powf(-0.5);
        let scores = (q.matmul(&k.t()?)? * scale)?;
        // diffusers upcasts the VAE's softmax to f32.
        let dtype = scores.dtype();
        let probs =
            candle_nn::ops::softmax_last_dim(&scores.to_dtype(DType::F32)?)?.to_dtype(dtype)?;
        let out = probs.matmul(&v)?.transpose(1, 2)?.reshape((b, h * w, c))?;
        let out = self.to_out.forward(&out)?;
        let out = out.transpose(D::Minus1, D::Minus2)?.reshape((b, c, h, w))?;
        out + x
    }
}

/// resnet → (attention) → resnet at the deepest level, weights `resnets.{0,1}` and
/// `attentions.0`.
#[derive(Clone, Debug)]
pub(super) struct MidBlock {
    first: ResnetBlock2D,
    attention: Option<SpatialAttention>,
    second: ResnetBlock2D,
}

impl MidBlock {
    pub fn new(
        vb: VarBuilder,
        channels: usize,
        groups: usize,
        add_attention: bool,
    ) -> Result<Self> {
        let cfg = vae_resnet(channels, channels, groups);
        let resnets = vb.pp("resnets");
        Ok(Self {
            first: ResnetBlock2D::new(resnets.pp(0), cfg)?,
            attention: add_attention
                .then(|| SpatialAttention::new(vb.pp("attentions").pp(0), channels, groups))
                .transpose()?,
            second: ResnetBlock2D::new(resnets.pp(1), cfg)?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = self.first.forward(x, None)?;
        if let Some(attention) = &self.attention {
            h = attention.forward(&h)?;
        }
        self.second.forward(&h, None)
    }
}
