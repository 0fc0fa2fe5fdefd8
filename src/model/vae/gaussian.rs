//! The encoder's output distribution (diffusers' `DiagonalGaussianDistribution`).

use candle_core::Tensor;
use rand::Rng;
use rand_distr::StandardNormal;

use crate::model::error::Result;

/// A diagonal Gaussian over latents: `mean` and `logvar` `[B, latent, h, w]`, the log
/// variance clamped to [−30, 20] as diffusers does.
#[derive(Clone, Debug)]
pub struct DiagonalGaussian {
    /// Per-element mean.
    pub mean: Tensor,
    /// Per-element log variance.
    pub logvar: Tensor,
}

impl DiagonalGaussian {
    /// Splits the encoder's `[B, 2·latent, h, w]` moments into mean and clamped log variance.
    pub fn from_moments(moments: &Tensor) -> Result<Self> {
        let channels = moments.dim(1)? / 2;
        let mean = moments.narrow(1, 0, channels)?;
        let logvar = moments
            .narrow(1, channels, channels)?
            .clamp(-30f32, 20f32)?;
        Ok(Self { mean, logvar })
    }

    /// The most likely latents: the mean.
    pub fn mode(&self) -> &Tensor {
        &self.mean
    }

    /// Per-element standard deviation `exp(logvar / 2)`.
    pub fn std(&self) -> Result<Tensor> {
        Ok((&self.logvar * 0.5)?.exp()?)
    }

    /// `mean + std · ε` with ε standard normal, drawn from `rng` in row-major order (the same
    /// latents for the same seed on every device).
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Result<Tensor> {
        let noise: Vec<f32> = (0..self.mean.elem_count())
            .map(|_| rng.sample::<f32, _>(StandardNormal))
            .collect();
        let noise = Tensor::from_vec(noise, self.mean.shape(), self.mean.device())?
            .to_dtype(self.mean.dtype())?;
        Ok((&self.mean + (self.std()? * noise)?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use rand::SeedableRng;

    #[test]
    fn moments_split_clamp_and_sample() {
        let dev = Device::Cpu;
        // Channel 0 is the mean, channel 1 the log variance (one value beyond the clamp).
        let moments = Tensor::new(&[[[[1f32, -2.0]], [[0.0, 50.0]]]], &dev).unwrap();
        let g = DiagonalGaussian::from_moments(&moments).unwrap();
        assert_eq!(
            g.mode().flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            [1.0, -2.0]
        );
        assert_eq!(
            g.logvar.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            [0.0, 20.0]
        );
        let mut a = rand::rngs::StdRng::seed_from_u64(7);
        let mut b = rand::rngs::StdRng::seed_from_u64(7);
        let s1 = g
            .sample(&mut a)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let s2 = g
            .sample(&mut b)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(s1, s2);
        // With unit variance the first sample is mean + ε, ε from the same generator.
        let mut c = rand::rngs::StdRng::seed_from_u64(7);
        let eps: f32 = c.sample(StandardNormal);
        assert!((s1[0] - (1.0 + eps)).abs() < 1e-6);
    }
}
