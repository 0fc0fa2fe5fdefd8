//! AnimateDiff motion modules (diffusers `AnimateDiffTransformer3D`, loaded from a
//! `MotionAdapter` folder) and the two ways their attentions can see a clip:
//!
//! - [`MotionAttention::Temporal`], AnimateDiff itself: tokens grouped `(batch·h·w, frames, c)`,
//!   each pixel attends to the same pixel in every frame;
//! - [`MotionAttention::Dense`], MVCustom's spatio-temporal attention with the same weights:
//!   tokens grouped `(batch, frames·h·w, c)`, every position of every frame attends to every
//!   position of every frame, optionally only within a spatial window.
//!
//! A module is GroupNorm(eps 1e-6, statistics over all frames) → Linear `proj_in` → transformer
//! blocks whose two attentions are both self-attentions preceded by the sinusoidal
//! frame-position table `pos_embed.pe` → Linear `proj_out` → residual.

use candle_core::{Device, Module, Result, Tensor};
use candle_nn::{GroupNorm, VarBuilder};

use super::attention::{Attention, AttentionSettings};
use super::hook::{self, FeatureHook, HookKind, HookPoint};
use super::ops::Linear;
use super::transformer::{BasicTransformerBlock, BlockDims, SequenceMixer, TokenMixer};

/// How the attentions of motion modules group tokens. The weights are the same in every mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MotionAttention {
    /// AnimateDiff's 1-D temporal attention: a pixel attends to itself in every frame.
    #[default]
    Temporal,
    /// Dense spatio-temporal attention over all `frames·h·w` tokens of a clip. With
    /// `window: Some(r)` a query at `(f, y, x)` only sees keys `(f', y', x')` with
    /// `|y − y'| ≤ r` and `|x − x'| ≤ r` (in every frame `f'`); `None` sees everything.
    /// `Some(0)` is exactly [`MotionAttention::Temporal`].
    Dense {
        /// Spatial window radius in feature-map pixels at each layer; `None` for no window.
        window: Option<usize>,
    },
}

/// Shape parameters of one motion module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MotionModuleDims {
    /// Channels of the UNet features it sits on (= its token width).
    pub channels: usize,
    /// Attention heads.
    pub heads: usize,
    /// Transformer blocks inside.
    pub layers: usize,
    /// GroupNorm groups.
    pub norm_groups: usize,
    /// Length of the frame-position table: the most frames it accepts.
    pub max_frames: usize,
}

/// One AnimateDiff motion module.
#[derive(Clone, Debug)]
pub struct MotionModule {
    norm: GroupNorm,
    proj_in: Linear,
    blocks: Vec<BasicTransformerBlock>,
    proj_out: Linear,
    name: String,
    max_frames: usize,
}

impl MotionModule {
    /// Loads the module at `vb`; `name` is its module path in `UNetMotionModel` (the hook
    /// point name).
    pub fn new(vb: VarBuilder, dims: MotionModuleDims, name: String) -> Result<Self> {
        let c = dims.channels;
        let blocks = (0..dims.layers)
            .map(|i| {
                BasicTransformerBlock::new(
                    vb.pp("transformer_blocks").pp(i),
                    BlockDims {
                        dim: c,
                        heads: dims.heads,
                        context_dim: None,
                        positions: Some(dims.max_frames),
                        upcast: false,
                    },
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            norm: candle_nn::group_norm(dims.norm_groups, c, 1e-6, vb.pp("norm"))?,
            proj_in: Linear::new(c, c, true, vb.pp("proj_in"))?,
            blocks,
            proj_out: Linear::new(c, c, true, vb.pp("proj_out"))?,
            name,
            max_frames: dims.max_frames,
        })
    }

    /// The hook-point name of this module.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The most frames the module accepts (`motion_max_seq_length`).
    pub fn max_frames(&self) -> usize {
        self.max_frames
    }

    /// `xs` `[batch·frames, c, h, w]` (frame index fastest) → same shape, mixing information
    /// across the `frames` of each batch item as `mode` says.
    pub fn forward(
        &self,
        xs: &Tensor,
        frames: usize,
        mode: MotionAttention,
        settings: &AttentionSettings,
        hook: &mut dyn FeatureHook,
    ) -> crate::model::Result<Tensor> {
        let (bf, c, h, w) = xs.dims4()?;
        let b = bf / frames;
        let clip = xs.reshape((b, frames, c, h, w))?.permute((0, 2, 1, 3, 4))?;
        let normed = self.norm.forward(&clip)?;
        let (tokens, mixer): (Tensor, Box<dyn TokenMixer + '_>) = match mode {
            MotionAttention::Temporal => (
                normed
                    .permute((0, 3, 4, 2, 1))?
                    .reshape((b * h * w, frames, c))?,
                Box::new(SequenceMixer { settings }),
            ),
            MotionAttention::Dense { window } => (
                normed
                    .permute((0, 2, 3, 4, 1))?
                    .reshape((b, frames * h * w, c))?,
                Box::new(DenseMixer {
                    grid: Grid {
                        frames,
                        height: h,
                        width: w,
                    },
                    window,
                    settings,
                }),
            ),
        };
        let mut tokens = self.proj_in.forward(&tokens)?;
        for block in &self.blocks {
            tokens = block.feed_forward(&block.attentions(&tokens, None, mixer.as_ref())?)?;
        }
        let tokens = self.proj_out.forward(&tokens)?;
        let per_frame = match mode {
            MotionAttention::Temporal => tokens
                .reshape((b, h, w, frames, c))?
                .permute((0, 3, 4, 1, 2))?,
            MotionAttention::Dense { .. } => tokens
                .reshape((b, frames, h, w, c))?
                .permute((0, 1, 4, 2, 3))?,
        };
        let out = (per_frame.reshape((bf, c, h, w))? + xs)?;
        let point = HookPoint {
            name: &self.name,
            kind: HookKind::MotionModule,
            frames,
        };
        hook::apply(hook, &point, out, |t| Ok(t.clone()), |t| Ok(t.clone()))
    }
}

/// The frame and spatial extent of a clip's token grid.
#[derive(Clone, Copy, Debug)]
struct Grid {
    frames: usize,
    height: usize,
    width: usize,
}

/// Dense spatio-temporal attention over `[batch, frames·h·w, c]` tokens (frame-major).
struct DenseMixer<'a> {
    grid: Grid,
    window: Option<usize>,
    settings: &'a AttentionSettings,
}

impl TokenMixer for DenseMixer<'_> {
    fn attend(
        &self,
        attn: &Attention,
        normed: &Tensor,
        context: Option<&Tensor>,
    ) -> Result<Tensor> {
        let p = attn.project(normed, context)?;
        let q = attn.split_heads(&p.q)?;
        let k = attn.split_heads(&p.k)?;
        let v = attn.split_heads(&p.v)?;
        let Grid { height, width, .. } = self.grid;
        let out = match self.window {
            Some(r) if r + 1 < height.max(width) => {
                windowed_attention(attn, &q, &k, &v, self.grid, r, self.settings)?
            }
            _ => attn.attend(&q, &k, &v, None, self.settings)?,
        };
        attn.output(&attn.merge_heads(&out)?)
    }

    fn add_positions(&self, normed: &Tensor, pe: &Tensor) -> Result<Tensor> {
        let Grid {
            frames,
            height,
            width,
        } = self.grid;
        let (b, n, c) = normed.dims3()?;
        let pe = pe.narrow(0, 0, frames)?.reshape((frames, 1, c))?;
        normed
            .reshape((b, frames, height * width, c))?
            .broadcast_add(&pe)?
            .reshape((b, n, c))
    }
}

/// Dense attention restricted to a spatial window of radius `r`: queries are taken in
/// rectangles of pixels (all frames), each against the keys of the rectangle grown by `r`
/// (all frames) with out-of-window pairs masked, the rectangles sized to the score budget.
/// `q`, `k`, `v`: `[groups, frames·h·w, d]` → `[groups, frames·h·w, d]`.
fn windowed_attention(
    attn: &Attention,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    grid: Grid,
    r: usize,
    settings: &AttentionSettings,
) -> Result<Tensor> {
    let Grid {
        frames,
        height,
        width,
    } = grid;
    let (groups, _, d) = q.dims3()?;
    let grid5 = |t: &Tensor| t.reshape((groups, frames, height, width, d));
    let (q5, k5, v5) = (grid5(q)?, grid5(k)?, grid5(v)?);
    let (rows, cols) = rectangle(grid, r, groups, settings.max_scores);
    let mut bands = Vec::with_capacity(height.div_ceil(rows));
    for y0 in (0..height).step_by(rows) {
        let qh = rows.min(height - y0);
        let (ky0, ky1) = (y0.saturating_sub(r), (y0 + qh + r).min(height));
        let mut pieces = Vec::with_capacity(width.div_ceil(cols));
        for x0 in (0..width).step_by(cols) {
            let qw = cols.min(width - x0);
            let (kx0, kx1) = (x0.saturating_sub(r), (x0 + qw + r).min(width));
            let take = |t: &Tensor, y: usize, hh: usize, x: usize, ww: usize| {
                t.narrow(2, y, hh)?
                    .narrow(3, x, ww)?
                    .reshape((groups, frames * hh * ww, d))
            };
            let qc = take(&q5, y0, qh, x0, qw)?;
            let kc = take(&k5, ky0, ky1 - ky0, kx0, kx1 - kx0)?;
            let vc = take(&v5, ky0, ky1 - ky0, kx0, kx1 - kx0)?;
            let bias = window_bias(
                frames,
                (y0, qh, x0, qw),
                (ky0, ky1 - ky0, kx0, kx1 - kx0),
                r,
                q.dtype(),
                q.device(),
            )?;
            let out = attn.attend(&qc, &kc, &vc, bias.as_ref(), settings)?;
            pieces.push(out.reshape((groups, frames, qh, qw, d))?);
        }
        bands.push(Tensor::cat(&pieces, 3)?);
    }
    Tensor::cat(&bands, 2)?.reshape((groups, frames * height * width, d))
}

/// Rows × columns of a query rectangle whose scores (all frames, keys grown by `r`) fit in
/// `max_scores`, halving rows first, then columns.
fn rectangle(grid: Grid, r: usize, groups: usize, max_scores: usize) -> (usize, usize) {
    let Grid {
        frames,
        height,
        width,
    } = grid;
    let cost = |rows: usize, cols: usize| {
        groups
            * frames
            * rows
            * cols
            * frames
            * (rows + 2 * r).min(height)
            * (cols + 2 * r).min(width)
    };
    let (mut rows, mut cols) = (height, width);
    while cost(rows, cols) > max_scores && (rows > 1 || cols > 1) {
        if rows > 1 {
            rows = rows.div_ceil(2);
        } else {
            cols = cols.div_ceil(2);
        }
    }
    (rows, cols)
}

/// A rectangle of pixels `(y0, height, x0, width)`, taken in every frame.
type Rect = (usize, usize, usize, usize);

/// The additive mask of a query rectangle against a key rectangle (absolute pixels, every
/// frame, tokens ordered frame, row, column): 0 inside the window, −∞ outside; `None` when
/// nothing is masked. Built from per-token coordinates with tensor ops, O(queries + keys)
/// scalar work.
fn window_bias(
    frames: usize,
    query: Rect,
    key: Rect,
    r: usize,
    dtype: candle_core::DType,
    device: &Device,
) -> Result<Option<Tensor>> {
    let (qy0, qh, qx0, qw) = query;
    let (ky0, kh, kx0, kw) = key;
    let farthest = |a0: usize, an: usize, b0: usize, bn: usize| {
        (a0 + an - 1).abs_diff(b0).max(a0.abs_diff(b0 + bn - 1))
    };
    if farthest(qy0, qh, ky0, kh) <= r && farthest(qx0, qw, kx0, kw) <= r {
        return Ok(None);
    }
    // Row and column of every token of a rectangle, repeated for each frame.
    let coords = |(y0, h, x0, w): Rect, shape: (usize, usize)| -> Result<(Tensor, Tensor)> {
        let n = frames * h * w;
        let ys: Vec<f32> = (0..n).map(|i| (y0 + (i / w) % h) as f32).collect();
        let xs: Vec<f32> = (0..n).map(|i| (x0 + i % w) as f32).collect();
        Ok((
            Tensor::from_vec(ys, shape, device)?,
            Tensor::from_vec(xs, shape, device)?,
        ))
    };
    let (nq, nk) = (frames * qh * qw, frames * kh * kw);
    let (qy, qx) = coords(query, (nq, 1))?;
    let (ky, kx) = coords(key, (1, nk))?;
    let dy = qy.broadcast_sub(&ky)?.abs()?;
    let dx = qx.broadcast_sub(&kx)?.abs()?;
    let outside = dy.maximum(&dx)?.gt(r as f64)?;
    let blocked = Tensor::full(f32::NEG_INFINITY, (nq, nk), device)?;
    let open = Tensor::zeros((nq, nk), candle_core::DType::F32, device)?;
    outside
        .where_cond(&blocked, &open)?
        .to_dtype(dtype)
        .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::hook::NoHook;
    use crate::model::test_support::max_abs_diff;
    use candle_core::DType;
    use candle_nn::VarMap;
    use std::collections::HashMap;

    /// Builds a layer over random plain tensors: once over a `VarMap` to learn which tensors
    /// it reads, then over random values of those shapes (plain tensors, not variables, so the
    /// inference kernels run and no autograd graph is recorded).
    fn random<T>(build: impl Fn(VarBuilder) -> Result<T>) -> Result<T> {
        let dev = Device::Cpu;
        let map = VarMap::new();
        build(VarBuilder::from_varmap(&map, DType::F32, &dev))?;
        let data = map
            .data()
            .lock()
            .map_err(|_| candle_core::Error::Msg("poisoned var map".into()))?;
        let tensors = data
            .iter()
            .map(|(name, var)| {
                let values = (Tensor::randn(0f32, 0.5, var.shape(), &dev)? + 0.1)?;
                Ok((name.clone(), values))
            })
            .collect::<Result<HashMap<_, _>>>()?;
        build(VarBuilder::from_tensors(tensors, DType::F32, &dev))
    }

    /// A motion module with random weights everywhere (norms and biases included).
    fn module(channels: usize, heads: usize, max_frames: usize) -> Result<MotionModule> {
        let dims = MotionModuleDims {
            channels,
            heads,
            layers: 2,
            norm_groups: 4,
            max_frames,
        };
        random(|vb| MotionModule::new(vb, dims, "test".into()))
    }

    /// Whether `a` and `b` agree up to f32 rounding of sums in another order: 64 ulp of the
    /// larger output magnitude (a wrong grouping or mask differs by orders of magnitude more).
    fn agree(a: &Tensor, b: &Tensor) -> bool {
        let scale = a
            .abs()
            .and_then(|t| t.max_all())
            .and_then(|t| t.to_scalar::<f32>())
            .unwrap_or(f32::INFINITY);
        max_abs_diff(a, b) <= 64.0 * f32::EPSILON * (1.0 + scale)
    }

    fn run(
        m: &MotionModule,
        x: &Tensor,
        frames: usize,
        mode: MotionAttention,
        budget: usize,
    ) -> Tensor {
        let settings = AttentionSettings { max_scores: budget };
        m.forward(x, frames, mode, &settings, &mut NoHook)
            .unwrap_or_else(|e| panic!("forward failed: {e}"))
    }

    #[test]
    fn window_zero_equals_temporal_attention() -> Result<()> {
        let m = module(8, 2, 6)?;
        let (b, f, h, w) = (2, 3, 5, 4);
        let x = Tensor::randn(0f32, 1.0, (b * f, 8, h, w), &Device::Cpu)?;
        let temporal = run(&m, &x, f, MotionAttention::Temporal, usize::MAX);
        let dense0 = run(
            &m,
            &x,
            f,
            MotionAttention::Dense { window: Some(0) },
            usize::MAX,
        );
        assert!(
            agree(&temporal, &dense0),
            "{}",
            max_abs_diff(&temporal, &dense0)
        );
        // The motion module does something: the output is not the input.
        assert!(max_abs_diff(&temporal, &x) > 1e-2);
        Ok(())
    }

    #[test]
    fn chunked_dense_equals_unchunked() -> Result<()> {
        let m = module(8, 2, 6)?;
        let (b, f, h, w) = (1, 3, 6, 5);
        // A fixed, non-trivial input (the weights are random).
        let x = Tensor::arange(0f32, (b * f * 8 * h * w) as f32, &Device::Cpu)?
            .affine(0.37, 0.0)?
            .sin()?
            .reshape((b * f, 8, h, w))?;
        for window in [None, Some(1), Some(2)] {
            let mode = MotionAttention::Dense { window };
            let whole = run(&m, &x, f, mode, usize::MAX);
            for budget in [1, 50, 700, 3000] {
                let chunked = run(&m, &x, f, mode, budget);
                let d = max_abs_diff(&whole, &chunked);
                // Chunking only reorders f32 sums.
                assert!(
                    agree(&whole, &chunked),
                    "window {window:?}, budget {budget}: {d}"
                );
            }
        }
        Ok(())
    }

    #[test]
    fn a_wide_window_is_full_dense_and_windows_differ() -> Result<()> {
        let m = module(8, 2, 6)?;
        let (f, h, w) = (2, 4, 4);
        let x = Tensor::randn(0f32, 1.0, (f, 8, h, w), &Device::Cpu)?;
        let full = run(
            &m,
            &x,
            f,
            MotionAttention::Dense { window: None },
            usize::MAX,
        );
        let wide = run(&m, &x, f, MotionAttention::Dense { window: Some(3) }, 64);
        assert!(agree(&full, &wide), "{}", max_abs_diff(&full, &wide));
        let narrow = run(
            &m,
            &x,
            f,
            MotionAttention::Dense { window: Some(1) },
            usize::MAX,
        );
        assert!(max_abs_diff(&full, &narrow) > 1e-4);
        Ok(())
    }

    /// Full dense attention of one head set, computed element by element from the same
    /// projections, compared with the mixer's output.
    #[test]
    fn dense_attention_matches_naive_reference() -> Result<()> {
        let dev = Device::Cpu;
        let (c, heads) = (6, 2);
        let attn = random(|vb| Attention::new(vb, c, c, heads, c / heads, false))?;
        let grid = Grid {
            frames: 2,
            height: 3,
            width: 2,
        };
        let n = 12;
        let tokens = Tensor::randn(0f32, 1.0, (1, n, c), &dev)?;
        for (window, budget) in [
            (None, usize::MAX),
            (None, 10),
            (Some(1), usize::MAX),
            (Some(1), 9),
        ] {
            let settings = AttentionSettings { max_scores: budget };
            let mixer = DenseMixer {
                grid,
                window,
                settings: &settings,
            };
            let ours = mixer.attend(&attn, &tokens, None)?;
            // Reference: explicit loops over the projected q, k, v.
            let p = attn.project(&tokens, None)?;
            let (q, k, v) = (
                p.q.get(0)?.to_vec2::<f32>()?,
                p.k.get(0)?.to_vec2::<f32>()?,
                p.v.get(0)?.to_vec2::<f32>()?,
            );
            let hd = c / heads;
            let pos = |i: usize| ((i / 2) % 3, i % 2); // (y, x) of token i in (f, y, x) order
            let mut merged = vec![vec![0f32; c]; n];
            for head in 0..heads {
                for i in 0..n {
                    let visible: Vec<usize> = (0..n)
                        .filter(|&j| match window {
                            None => true,
                            Some(r) => {
                                pos(i).0.abs_diff(pos(j).0) <= r && pos(i).1.abs_diff(pos(j).1) <= r
                            }
                        })
                        .collect();
                    let s: Vec<f32> = visible
                        .iter()
                        .map(|&j| {
                            (0..hd)
                                .map(|e| q[i][head * hd + e] * k[j][head * hd + e])
                                .sum::<f32>()
                                / (hd as f32).sqrt()
                        })
                        .collect();
                    let m = s.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                    let z: f32 = s.iter().map(|x| (x - m).exp()).sum();
                    for e in 0..hd {
                        merged[i][head * hd + e] = visible
                            .iter()
                            .zip(&s)
                            .map(|(&j, sj)| (sj - m).exp() / z * v[j][head * hd + e])
                            .sum();
                    }
                }
            }
            let flat: Vec<f32> = merged.into_iter().flatten().collect();
            let expect = attn.output(&Tensor::from_vec(flat, (1, n, c), &dev)?)?;
            let d = max_abs_diff(&ours, &expect);
            assert!(
                agree(&expect, &ours),
                "window {window:?} budget {budget}: {d}"
            );
        }
        Ok(())
    }

    #[test]
    fn rectangles_respect_the_budget() {
        let grid = Grid {
            frames: 16,
            height: 64,
            width: 64,
        };
        let (rows, cols) = rectangle(grid, 4, 16, 1 << 25);
        let keys = 16 * (rows + 8).min(64) * (cols + 8).min(64);
        assert!(16 * 16 * rows * cols * keys <= 1 << 25);
        assert!(rows >= 1 && cols >= 1);
    }
}
