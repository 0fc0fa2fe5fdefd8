//! The timestep conditioning of the UNet: diffusers' sinusoidal `Timesteps` projection and the
//! `TimestepEmbedding` MLP (`time_embedding.linear_1`, SiLU, `time_embedding.linear_2`).

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::model::ops::Linear;

/// The sinusoidal projection of timesteps, `[n]` → `[n, dim]` in f32:
/// `freq_i = exp(−ln(10000)·i / (dim/2 − freq_shift))`, features `[sin(t·freq), cos(t·freq)]`
/// (cosines first when `flip_sin_to_cos`), zero-padded to an odd `dim`.
#[derive(Clone, Debug)]
pub struct TimestepProjection {
    dim: usize,
    flip_sin_to_cos: bool,
    freq_shift: f64,
}

impl TimestepProjection {
    /// A projection to `dim` features.
    pub fn new(dim: usize, flip_sin_to_cos: bool, freq_shift: f64) -> Self {
        Self {
            dim,
            flip_sin_to_cos,
            freq_shift,
        }
    }

    /// Projects `timesteps` (any numeric dtype, one value per batch item).
    pub fn forward(&self, timesteps: &Tensor) -> Result<Tensor> {
        let half = self.dim / 2;
        let device = timesteps.device();
        // Frequencies are rounded once from f64, as exact as the peer's f32 `exp`.
        let freqs: Vec<f32> = (0..half)
            .map(|i| {
                let exponent = -(10000f64.ln()) * i as f64 / (half as f64 - self.freq_shift);
                exponent.exp() as f32
            })
            .collect();
        let freqs = Tensor::from_vec(freqs, (1, half), device)?;
        let t = timesteps.to_dtype(DType::F32)?.reshape(((), 1))?;
        let args = t.broadcast_mul(&freqs)?;
        let (sin, cos) = (args.sin()?, args.cos()?);
        let emb = if self.flip_sin_to_cos {
            Tensor::cat(&[cos, sin], 1)?
        } else {
            Tensor::cat(&[sin, cos], 1)?
        };
        if self.dim % 2 == 1 {
            emb.pad_with_zeros(1, 0, 1)
        } else {
            Ok(emb)
        }
    }
}

/// `linear_1` → SiLU → `linear_2` (→ SiLU when the config sets `timestep_post_act`).
#[derive(Clone, Debug)]
pub struct TimestepEmbedding {
    linear_1: Linear,
    linear_2: Linear,
    post_act: bool,
}

impl TimestepEmbedding {
    /// Loads `linear_1` (`in_dim` → `dim`) and `linear_2` (`dim` → `dim`).
    pub fn new(vb: VarBuilder, in_dim: usize, dim: usize, post_act: bool) -> Result<Self> {
        Ok(Self {
            linear_1: Linear::new(in_dim, dim, true, vb.pp("linear_1"))?,
            linear_2: Linear::new(dim, dim, true, vb.pp("linear_2"))?,
            post_act,
        })
    }
}

impl Module for TimestepEmbedding {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let h = self.linear_2.forward(&self.linear_1.forward(xs)?.silu()?)?;
        if self.post_act { h.silu() } else { Ok(h) }
    }
}

/// A timestep given as a scalar, `[1]` or `[batch]` tensor, expanded to `[batch]` on `device`.
pub fn expand_timesteps(timestep: &Tensor, batch: usize, device: &Device) -> Result<Tensor> {
    let t = timestep.flatten_all()?.to_device(device)?;
    match t.dim(0)? {
        1 => t.broadcast_as(batch)?.contiguous(),
        n if n == batch => Ok(t),
        n => candle_core::bail!("timestep has {n} values for a batch of {batch}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projection_matches_the_formula() -> Result<()> {
        let t = Tensor::new(&[0f32, 10.0, 999.0], &Device::Cpu)?;
        for (flip, shift) in [(true, 0.0), (false, 1.0)] {
            let emb = TimestepProjection::new(8, flip, shift)
                .forward(&t)?
                .to_vec2::<f32>()?;
            for (row, &tv) in emb.iter().zip(&[0f64, 10.0, 999.0]) {
                for i in 0..4 {
                    let freq = (-(10000f64.ln()) * i as f64 / (4.0 - shift)).exp();
                    let (s, c) = ((tv * freq).sin(), (tv * freq).cos());
                    let (first, second) = if flip { (c, s) } else { (s, c) };
                    assert!((row[i] as f64 - first).abs() < 1e-4, "{row:?}");
                    assert!((row[4 + i] as f64 - second).abs() < 1e-4, "{row:?}");
                }
            }
        }
        let odd = TimestepProjection::new(5, true, 0.0).forward(&t)?;
        assert_eq!(odd.dims(), &[3, 5]);
        assert_eq!(odd.get(2)?.get(4)?.to_scalar::<f32>()?, 0.0);
        Ok(())
    }
}
