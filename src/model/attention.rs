//! Multi-head attention as diffusers' `Attention` computes it (`to_q`, `to_k`, `to_v` without
//! bias, `to_out.0` with bias, softmax scale `1/√head_dim`), with query chunking so that the
//! score matrix held at once stays under a budget whatever the number of tokens.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::ops::{Linear, softmax_last_dim};

/// How attention is evaluated: a memory budget for the score matrices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionSettings {
    /// The largest number of attention scores (query × key × head × batch) materialised at
    /// once; queries (and, if needed, heads) are processed in chunks to stay under it. The
    /// result does not depend on it.
    pub max_scores: usize,
}

impl Default for AttentionSettings {
    /// 2²⁵ scores (128 MiB in f32) per chunk.
    fn default() -> Self {
        Self {
            max_scores: 1 << 25,
        }
    }
}

/// The projections of one attention layer (`attn1` / `attn2` of a transformer block).
#[derive(Clone, Debug)]
pub struct Attention {
    to_q: Linear,
    to_k: Linear,
    to_v: Linear,
    to_out: Linear,
    heads: usize,
    head_dim: usize,
    upcast: bool,
}

/// Queries, keys and values split into heads: each `[groups·heads, tokens, head_dim]`.
pub struct HeadTensors {
    /// Queries.
    pub q: Tensor,
    /// Keys.
    pub k: Tensor,
    /// Values.
    pub v: Tensor,
}

impl Attention {
    /// `query_dim` → `heads·head_dim` projections; keys and values read `context_dim` features.
    /// `upcast` computes scores and softmax in f32 when activations are half precision
    /// (diffusers' `upcast_attention`; nothing changes in f32).
    pub fn new(
        vb: VarBuilder,
        query_dim: usize,
        context_dim: usize,
        heads: usize,
        head_dim: usize,
        upcast: bool,
    ) -> Result<Self> {
        let inner = heads * head_dim;
        Ok(Self {
            to_q: Linear::new(query_dim, inner, false, vb.pp("to_q"))?,
            to_k: Linear::new(context_dim, inner, false, vb.pp("to_k"))?,
            to_v: Linear::new(context_dim, inner, false, vb.pp("to_v"))?,
            to_out: Linear::new(inner, query_dim, true, vb.pp("to_out").pp(0))?,
            heads,
            head_dim,
            upcast,
        })
    }

    /// Number of heads.
    pub fn heads(&self) -> usize {
        self.heads
    }

    /// Softmax scale `1/√head_dim`.
    pub fn scale(&self) -> f64 {
        1.0 / (self.head_dim as f64).sqrt()
    }

    /// Projects `xs` `[..., query_dim]` to queries and `context` (or `xs` itself for
    /// self-attention) to keys and values, each `[..., heads·head_dim]`.
    pub fn project(&self, xs: &Tensor, context: Option<&Tensor>) -> Result<HeadTensors> {
        let ctx = context.unwrap_or(xs);
        Ok(HeadTensors {
            q: self.to_q.forward(xs)?,
            k: self.to_k.forward(ctx)?,
            v: self.to_v.forward(ctx)?,
        })
    }

    /// The output projection of `[..., heads·head_dim]` features.
    pub fn output(&self, xs: &Tensor) -> Result<Tensor> {
        self.to_out.forward(xs)
    }

    /// Standard attention over token sequences: `xs` `[groups, tokens, query_dim]` attends to
    /// `context` `[groups, ctx_tokens, context_dim]` (itself when `None`).
    pub fn forward(
        &self,
        xs: &Tensor,
        context: Option<&Tensor>,
        settings: &AttentionSettings,
    ) -> Result<Tensor> {
        let p = self.project(xs, context)?;
        let q = self.split_heads(&p.q)?;
        let k = self.split_heads(&p.k)?;
        let v = self.split_heads(&p.v)?;
        let out = self.attend(&q, &k, &v, None, settings)?;
        self.output(&self.merge_heads(&out)?)
    }

    /// `[groups, tokens, heads·head_dim]` → `[groups·heads, tokens, head_dim]`.
    pub fn split_heads(&self, xs: &Tensor) -> Result<Tensor> {
        let (g, n, _) = xs.dims3()?;
        xs.reshape((g, n, self.heads, self.head_dim))?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((g * self.heads, n, self.head_dim))
    }

    /// `[groups·heads, tokens, head_dim]` → `[groups, tokens, heads·head_dim]`.
    pub fn merge_heads(&self, xs: &Tensor) -> Result<Tensor> {
        let (gh, n, d) = xs.dims3()?;
        xs.reshape((gh / self.heads, self.heads, n, d))?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((gh / self.heads, n, self.heads * d))
    }

    /// Scaled dot-product attention of split heads with this layer's scale and upcasting;
    /// see [`scaled_dot_product`].
    pub fn attend(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        bias: Option<&Tensor>,
        settings: &AttentionSettings,
    ) -> Result<Tensor> {
        let dtype = q.dtype();
        if self.upcast && dtype != DType::F32 && dtype != DType::F64 {
            let bias = bias.map(|b| b.to_dtype(DType::F32)).transpose()?;
            scaled_dot_product(
                &q.to_dtype(DType::F32)?,
                &k.to_dtype(DType::F32)?,
                &v.to_dtype(DType::F32)?,
                self.scale(),
                bias.as_ref(),
                settings.max_scores,
            )?
            .to_dtype(dtype)
        } else {
            scaled_dot_product(q, k, v, self.scale(), bias, settings.max_scores)
        }
    }
}

/// `softmax(q·kᵀ·scale + bias)·v` for `q` `[groups, queries, d]`, `k`, `v` `[groups, keys, d]`,
/// optional additive `bias` `[queries, keys]` shared by all groups (−∞ masks a key out; every
/// query must keep at least one key). Queries, then groups, are chunked so that at most
/// `max_scores` scores exist at once.
pub fn scaled_dot_product(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: f64,
    bias: Option<&Tensor>,
    max_scores: usize,
) -> Result<Tensor> {
    let (groups, queries, _) = q.dims3()?;
    let keys = k.dim(1)?;
    let max_scores = max_scores.max(1);
    if groups * queries * keys <= max_scores {
        return attend_block(q, k, v, scale, bias);
    }
    if groups * keys > max_scores && groups > 1 {
        let step = (max_scores / keys).clamp(1, groups);
        let parts = (0..groups)
            .step_by(step)
            .map(|g0| {
                let n = step.min(groups - g0);
                scaled_dot_product(
                    &q.narrow(0, g0, n)?,
                    &k.narrow(0, g0, n)?,
                    &v.narrow(0, g0, n)?,
                    scale,
                    bias,
                    max_scores,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        return Tensor::cat(&parts, 0);
    }
    let step = (max_scores / (groups * keys)).clamp(1, queries);
    let parts = (0..queries)
        .step_by(step)
        .map(|q0| {
            let n = step.min(queries - q0);
            let bias = bias.map(|b| b.narrow(0, q0, n)).transpose()?;
            attend_block(&q.narrow(1, q0, n)?, k, v, scale, bias.as_ref())
        })
        .collect::<Result<Vec<_>>>()?;
    Tensor::cat(&parts, 1)
}

/// One unchunked attention evaluation.
fn attend_block(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: f64,
    bias: Option<&Tensor>,
) -> Result<Tensor> {
    // Scaling the queries rather than the scores touches far fewer elements.
    let scores = (q * scale)?.matmul(&k.t()?)?;
    let scores = match bias {
        Some(b) => scores.broadcast_add(b)?,
        None => scores,
    };
    softmax_last_dim(&scores)?.matmul(&v.contiguous()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Attention written out element by element.
    fn naive(q: &[Vec<f32>], k: &[Vec<f32>], v: &[Vec<f32>], scale: f32) -> Vec<Vec<f32>> {
        q.iter()
            .map(|qi| {
                let s: Vec<f32> = k
                    .iter()
                    .map(|kj| qi.iter().zip(kj).map(|(a, b)| a * b).sum::<f32>() * scale)
                    .collect();
                let m = s.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                let e: Vec<f32> = s.iter().map(|x| (x - m).exp()).collect();
                let z: f32 = e.iter().sum();
                (0..v[0].len())
                    .map(|c| e.iter().zip(v).map(|(w, vj)| w * vj[c]).sum::<f32>() / z)
                    .collect()
            })
            .collect()
    }

    #[test]
    fn chunking_does_not_change_the_result() -> Result<()> {
        let dev = Device::Cpu;
        let q = Tensor::randn(0f32, 1.0, (3, 17, 4), &dev)?;
        let k = Tensor::randn(0f32, 1.0, (3, 11, 4), &dev)?;
        let v = Tensor::randn(0f32, 1.0, (3, 11, 4), &dev)?;
        let full = scaled_dot_product(&q, &k, &v, 0.5, None, usize::MAX)?;
        for budget in [1, 11, 40, 100, 300] {
            let chunked = scaled_dot_product(&q, &k, &v, 0.5, None, budget)?;
            let diff = (&full - chunked)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(diff < 1e-6, "budget {budget}: {diff}");
        }
        // Against the element-wise definition.
        for g in 0..3 {
            let rows = |t: &Tensor| t.get(g).and_then(|t| t.to_vec2::<f32>());
            let expect = naive(&rows(&q)?, &rows(&k)?, &rows(&v)?, 0.5);
            let got = rows(&full)?;
            for (a, b) in expect.iter().flatten().zip(got.iter().flatten()) {
                assert!((a - b).abs() < 1e-5);
            }
        }
        Ok(())
    }

    #[test]
    fn bias_masks_keys_in_every_chunk() -> Result<()> {
        let dev = Device::Cpu;
        let q = Tensor::randn(0f32, 1.0, (2, 5, 3), &dev)?;
        let k = Tensor::randn(0f32, 1.0, (2, 5, 3), &dev)?;
        let v = Tensor::randn(0f32, 1.0, (2, 5, 3), &dev)?;
        // Query i may only see key i: the output is v itself.
        let mask: Vec<f32> = (0..25)
            .map(|i| {
                if i / 5 == i % 5 {
                    0.0
                } else {
                    f32::NEG_INFINITY
                }
            })
            .collect();
        let bias = Tensor::from_vec(mask, (5, 5), &dev)?;
        for budget in [usize::MAX, 7] {
            let out = scaled_dot_product(&q, &k, &v, 1.0, Some(&bias), budget)?;
            let diff = (out - &v)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(diff < 1e-6);
        }
        Ok(())
    }
}
