//! Seeded Gaussian noise for initial latents and stochastic scheduler steps.
//!
//! The generator is `rand`'s `StdRng` (ChaCha12) seeded with [`NoiseGenerator::from_seed`] and
//! sampled with `rand_distr::StandardNormal` on the CPU, then moved to the target device. It is
//! reproducible for a seed with this crate's pinned `rand` version, on every device, but it is
//! **not** PyTorch's generator: a diffusers seed does not give the same noise here. To reproduce
//! a diffusers run exactly, pass its noise tensor instead (the sampling loop accepts
//! caller-supplied initial latents).

use candle_core::{Device, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

use super::error::Result;

/// A seeded source of standard-normal float32 tensors.
#[derive(Clone, Debug)]
pub struct NoiseGenerator {
    rng: StdRng,
}

impl NoiseGenerator {
    /// A generator whose sequence is fixed by `seed`.
    pub fn from_seed(seed: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// The next `shape`-sized block of N(0, 1) float32 samples, on `device`.
    pub fn randn(&mut self, shape: &[usize], device: &Device) -> Result<Tensor> {
        let count: usize = shape.iter().product();
        let values: Vec<f32> = (0..count)
            .map(|_| self.rng.sample::<f32, _>(StandardNormal))
            .collect();
        Ok(Tensor::from_vec(values, shape, &Device::Cpu)?.to_device(device)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_noise_other_seed_other_noise() {
        let a = NoiseGenerator::from_seed(7)
            .randn(&[2, 3], &Device::Cpu)
            .unwrap();
        let b = NoiseGenerator::from_seed(7)
            .randn(&[2, 3], &Device::Cpu)
            .unwrap();
        let c = NoiseGenerator::from_seed(8)
            .randn(&[2, 3], &Device::Cpu)
            .unwrap();
        let (a, b, c) = (
            a.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            b.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            c.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        );
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn samples_are_standard_normal() {
        let n = 20_000;
        let v = NoiseGenerator::from_seed(1)
            .randn(&[n], &Device::Cpu)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / n as f64;
        let var = v
            .iter()
            .map(|&x| (f64::from(x) - mean).powi(2))
            .sum::<f64>()
            / n as f64;
        assert!(mean.abs() < 0.03, "mean {mean}");
        assert!((var - 1.0).abs() < 0.05, "variance {var}");
    }
}
