//! diffusers' `BasicTransformerBlock` (LayerNorm → self-attention, LayerNorm → cross- or second
//! self-attention, LayerNorm → GEGLU feed-forward, each with a residual) and the spatial
//! `Transformer2DModel` that wraps blocks in GroupNorm and input/output projections.
//!
//! The block is shared by the spatial transformers and the AnimateDiff motion modules; how its
//! attentions group tokens is supplied by a [`TokenMixer`].

use candle_core::{Module, Result, Tensor};
use candle_nn::{Conv2dConfig, GroupNorm, VarBuilder};

use super::attention::{Attention, AttentionSettings};
use super::hook::{self, FeatureHook, HookKind, HookPoint};
use super::ops::{LayerNorm, Linear};

/// LayerNorm epsilon of diffusers' transformer blocks.
const BLOCK_NORM_EPS: f64 = 1e-5;

/// The GEGLU feed-forward `ff.net.0.proj` (dim → 2·4·dim, halves `h`, `g`: `h·gelu(g)`) →
/// `ff.net.2` (4·dim → dim).
#[derive(Clone, Debug)]
pub struct FeedForward {
    proj_in: Linear,
    proj_out: Linear,
}

impl FeedForward {
    /// Loads `net.0.proj` and `net.2` for width `dim` (inner width `4·dim`).
    pub fn new(vb: VarBuilder, dim: usize) -> Result<Self> {
        let inner = 4 * dim;
        Ok(Self {
            proj_in: Linear::new(dim, 2 * inner, true, vb.pp("net").pp(0).pp("proj"))?,
            proj_out: Linear::new(inner, dim, true, vb.pp("net").pp(2))?,
        })
    }
}

impl Module for FeedForward {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let projected = self.proj_in.forward(xs)?;
        let half = projected.dim(candle_core::D::Minus1)? / 2;
        let last = projected.rank() - 1;
        let hidden = projected.narrow(last, 0, half)?;
        let gate = projected.narrow(last, half, half)?;
        self.proj_out.forward(&(hidden * gate.gelu_erf()?)?)
    }
}

/// How a transformer block's attentions see the tokens it is given: which tokens attend to
/// which, and where the frame-position encoding of motion modules is added.
pub trait TokenMixer {
    /// Attention of `normed` tokens to `context` (to themselves when `None`), returning the
    /// projected output in the layout of `normed`.
    fn attend(&self, attn: &Attention, normed: &Tensor, context: Option<&Tensor>)
    -> Result<Tensor>;

    /// Adds the positional table `pe` `[max_len, dim]` to `normed` tokens.
    fn add_positions(&self, normed: &Tensor, pe: &Tensor) -> Result<Tensor>;
}

/// Plain attention over `[groups, tokens, dim]` sequences (spatial transformers).
pub struct SequenceMixer<'a> {
    /// Chunking settings.
    pub settings: &'a AttentionSettings,
}

impl TokenMixer for SequenceMixer<'_> {
    fn attend(
        &self,
        attn: &Attention,
        normed: &Tensor,
        context: Option<&Tensor>,
    ) -> Result<Tensor> {
        attn.forward(normed, context, self.settings)
    }

    fn add_positions(&self, normed: &Tensor, pe: &Tensor) -> Result<Tensor> {
        let len = normed.dim(1)?;
        normed.broadcast_add(&pe.narrow(0, 0, len)?)
    }
}

/// One `BasicTransformerBlock` (layer-norm variant, GEGLU feed-forward).
#[derive(Clone, Debug)]
pub struct BasicTransformerBlock {
    norm1: LayerNorm,
    attn1: Attention,
    norm2: LayerNorm,
    attn2: Attention,
    norm3: LayerNorm,
    ff: FeedForward,
    pos_embed: Option<Tensor>,
    cross_attention: bool,
}

/// Shape parameters of a [`BasicTransformerBlock`].
#[derive(Clone, Copy, Debug)]
pub struct BlockDims {
    /// Token width.
    pub dim: usize,
    /// Attention heads (head width `dim / heads`).
    pub heads: usize,
    /// Width of the cross-attention context; `None` makes `attn2` a second self-attention.
    pub context_dim: Option<usize>,
    /// Length of the sinusoidal position table added before each attention (`None`: no
    /// positional embedding).
    pub positions: Option<usize>,
    /// diffusers' `upcast_attention`.
    pub upcast: bool,
}

impl BasicTransformerBlock {
    /// Loads `norm1`, `attn1`, `norm2`, `attn2`, `norm3`, `ff` (and `pos_embed.pe` when
    /// `dims.positions` is set and the checkpoint stores it; otherwise the table is computed).
    pub fn new(vb: VarBuilder, dims: BlockDims) -> Result<Self> {
        let BlockDims {
            dim,
            heads,
            context_dim,
            positions,
            upcast,
        } = dims;
        if heads == 0 || !dim.is_multiple_of(heads) {
            candle_core::bail!(
                "{}: width {dim} is not divisible by {heads} heads",
                vb.prefix()
            );
        }
        let head_dim = dim / heads;
        let pos_embed = match positions {
            None => None,
            Some(len) => {
                let pvb = vb.pp("pos_embed");
                let pe = if pvb.contains_tensor("pe") {
                    pvb.get((1, len, dim), "pe")?.squeeze(0)?
                } else {
                    sinusoidal_positions(len, dim, vb.device())?.to_dtype(vb.dtype())?
                };
                Some(pe)
            }
        };
        Ok(Self {
            norm1: LayerNorm::new(dim, BLOCK_NORM_EPS, vb.pp("norm1"))?,
            attn1: Attention::new(vb.pp("attn1"), dim, dim, heads, head_dim, upcast)?,
            norm2: LayerNorm::new(dim, BLOCK_NORM_EPS, vb.pp("norm2"))?,
            attn2: Attention::new(
                vb.pp("attn2"),
                dim,
                context_dim.unwrap_or(dim),
                heads,
                head_dim,
                upcast,
            )?,
            norm3: LayerNorm::new(dim, BLOCK_NORM_EPS, vb.pp("norm3"))?,
            ff: FeedForward::new(vb.pp("ff"), dim)?,
            pos_embed,
            cross_attention: context_dim.is_some(),
        })
    }

    /// The length of the position table, if the block has one.
    pub fn max_positions(&self) -> Option<usize> {
        self.pos_embed.as_ref().and_then(|pe| pe.dim(0).ok())
    }

    /// `x + attn1(norm1 x)` then `x + attn2(norm2 x, context)`: the block up to its
    /// feed-forward. `context` is used only when `attn2` is a cross-attention.
    pub fn attentions(
        &self,
        xs: &Tensor,
        context: Option<&Tensor>,
        mixer: &dyn TokenMixer,
    ) -> Result<Tensor> {
        let normed = self.with_positions(&self.norm1.forward(xs)?, mixer)?;
        let xs = (mixer.attend(&self.attn1, &normed, None)? + xs)?;
        let normed = self.with_positions(&self.norm2.forward(&xs)?, mixer)?;
        let context = if self.cross_attention { context } else { None };
        mixer.attend(&self.attn2, &normed, context)? + xs
    }

    /// `x + ff(norm3 x)`: the rest of the block.
    pub fn feed_forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.ff.forward(&self.norm3.forward(xs)?)? + xs
    }

    fn with_positions(&self, normed: &Tensor, mixer: &dyn TokenMixer) -> Result<Tensor> {
        match &self.pos_embed {
            Some(pe) => mixer.add_positions(normed, pe),
            None => Ok(normed.clone()),
        }
    }
}

/// The sinusoidal table diffusers' `SinusoidalPositionalEmbedding` registers:
/// `pe[p, 2i] = sin(p·10000^(−2i/dim))`, `pe[p, 2i+1] = cos(p·10000^(−2i/dim))`.
pub fn sinusoidal_positions(
    len: usize,
    dim: usize,
    device: &candle_core::Device,
) -> Result<Tensor> {
    let mut pe = vec![0f32; len * dim];
    for p in 0..len {
        for i in (0..dim).step_by(2) {
            let freq = (i as f32 * (-(10000f32.ln()) / dim as f32)).exp();
            let angle = p as f32 * freq;
            pe[p * dim + i] = angle.sin();
            if i + 1 < dim {
                pe[p * dim + i + 1] = angle.cos();
            }
        }
    }
    Tensor::from_vec(pe, (len, dim), device)
}

/// Shape parameters of a [`Transformer2DModel`].
#[derive(Clone, Copy, Debug)]
pub struct Transformer2DDims {
    /// Input / output channels (= inner width: heads × head width).
    pub channels: usize,
    /// Attention heads.
    pub heads: usize,
    /// Number of transformer blocks.
    pub layers: usize,
    /// Width of the text embeddings.
    pub cross_attention_dim: usize,
    /// GroupNorm groups.
    pub norm_groups: usize,
    /// `proj_in` / `proj_out` are linear layers rather than 1×1 convolutions.
    pub linear_projection: bool,
    /// diffusers' `upcast_attention`.
    pub upcast: bool,
}

/// The projection in or out of a spatial transformer.
#[derive(Clone, Debug)]
enum Projection {
    Conv(candle_nn::Conv2d),
    Linear(Linear),
}

/// diffusers' `Transformer2DModel` for continuous inputs: GroupNorm(eps 1e-6) → `proj_in` →
/// blocks over the `h·w` tokens of each image → `proj_out` → residual.
#[derive(Clone, Debug)]
pub struct Transformer2DModel {
    norm: GroupNorm,
    proj_in: Projection,
    blocks: Vec<BasicTransformerBlock>,
    /// Hook-point names of each block: (after its attentions, after the block).
    block_names: Vec<(String, String)>,
    proj_out: Projection,
}

impl Transformer2DModel {
    /// Loads the transformer at `vb`; `name` is its module path (for hook points).
    pub fn new(vb: VarBuilder, dims: Transformer2DDims, name: &str) -> Result<Self> {
        let c = dims.channels;
        let projection = |vb: VarBuilder| -> Result<Projection> {
            if dims.linear_projection {
                Ok(Projection::Linear(Linear::new(c, c, true, vb)?))
            } else {
                Ok(Projection::Conv(candle_nn::conv2d(
                    c,
                    c,
                    1,
                    Conv2dConfig::default(),
                    vb,
                )?))
            }
        };
        let mut blocks = Vec::with_capacity(dims.layers);
        let mut block_names = Vec::with_capacity(dims.layers);
        for i in 0..dims.layers {
            blocks.push(BasicTransformerBlock::new(
                vb.pp("transformer_blocks").pp(i),
                BlockDims {
                    dim: c,
                    heads: dims.heads,
                    context_dim: Some(dims.cross_attention_dim),
                    positions: None,
                    upcast: dims.upcast,
                },
            )?);
            let block_name = format!("{name}.transformer_blocks.{i}");
            block_names.push((format!("{block_name}.attn2"), block_name));
        }
        Ok(Self {
            norm: candle_nn::group_norm(dims.norm_groups, c, 1e-6, vb.pp("norm"))?,
            proj_in: projection(vb.pp("proj_in"))?,
            blocks,
            block_names,
            proj_out: projection(vb.pp("proj_out"))?,
        })
    }

    /// The names of the hook points this transformer calls, in order.
    pub fn hook_names(&self) -> impl Iterator<Item = (String, HookKind)> + '_ {
        self.block_names.iter().flat_map(|(mid, end)| {
            [
                (mid.clone(), HookKind::SpatialCrossAttention),
                (end.clone(), HookKind::SpatialBlock),
            ]
        })
    }

    /// `xs` `[n, c, h, w]` with text `context` `[n, tokens, dim]`; `frames` is only reported to
    /// hooks.
    pub fn forward(
        &self,
        xs: &Tensor,
        context: &Tensor,
        frames: usize,
        settings: &AttentionSettings,
        hook: &mut dyn FeatureHook,
    ) -> crate::model::Result<Tensor> {
        let (n, c, h, w) = xs.dims4()?;
        let residual = xs;
        let normed = self.norm.forward(xs)?;
        let to_tokens =
            |t: &Tensor| -> Result<Tensor> { t.permute((0, 2, 3, 1))?.reshape((n, h * w, c)) };
        let mut tokens = match &self.proj_in {
            Projection::Conv(conv) => to_tokens(&conv.forward(&normed)?)?,
            Projection::Linear(lin) => lin.forward(&to_tokens(&normed)?)?,
        };
        let mixer = SequenceMixer { settings };
        let to_nchw = |t: &Tensor| -> Result<Tensor> {
            t.reshape((n, h, w, c))?.permute((0, 3, 1, 2))?.contiguous()
        };
        let from_nchw = |t: &Tensor| -> Result<Tensor> { to_tokens(t) };
        for (block, (mid_name, name)) in self.blocks.iter().zip(&self.block_names) {
            let mid = block.attentions(&tokens, Some(context), &mixer)?;
            let point = HookPoint {
                name: mid_name,
                kind: HookKind::SpatialCrossAttention,
                frames,
            };
            let mid = hook::apply(hook, &point, mid, to_nchw, from_nchw)?;
            let out = block.feed_forward(&mid)?;
            let point = HookPoint {
                name,
                kind: HookKind::SpatialBlock,
                frames,
            };
            tokens = hook::apply(hook, &point, out, to_nchw, from_nchw)?;
        }
        let out = match &self.proj_out {
            Projection::Conv(conv) => conv.forward(&to_nchw(&tokens)?)?,
            Projection::Linear(lin) => to_nchw(&lin.forward(&tokens)?)?,
        };
        Ok((out + residual)?)
    }
}
