//! The denoising objective every diffusion training here shares — the base model's and a
//! subject's customization: noise clean latents to a sampled training timestep, ask the UNet
//! for its prediction, and take the (optionally masked) mean squared error against the target
//! the scheduler's prediction type defines.

use candle_core::{DType, Result, Tensor};
use rand::Rng;

use crate::diffusion::PredictionType;
use crate::diffusion::scheduler::NoiseSchedule;
use crate::model::hook::FeatureHook;
use crate::model::unet::UNet;

/// How training timesteps are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TimestepSampling {
    /// Uniform over 0…T−1 (base training).
    Uniform,
    /// Biased to high noise, `t = (1 − u³)·(T − 1)` (MVCustom's customization: learning a
    /// subject's layout happens at high noise).
    HighNoise,
}

impl TimestepSampling {
    /// One training timestep out of `train_steps`.
    pub fn sample(self, rng: &mut impl Rng, train_steps: usize) -> usize {
        let last = train_steps.saturating_sub(1) as f64;
        let t = match self {
            Self::Uniform => rng.random::<f64>() * (last + 1.0),
            Self::HighNoise => (1.0 - rng.random::<f64>().powi(3)) * last,
        };
        (t as usize).min(train_steps.saturating_sub(1))
    }
}

/// One training batch: clean latents `[B, C, F, h, w]` (diffusion scale), their
/// conditioning `[B, tokens, D]`, one timestep per item, and the noise to add.
pub struct DenoisingBatch<'a> {
    /// Clean latents x₀.
    pub latents: &'a Tensor,
    /// Text conditioning.
    pub conditioning: &'a Tensor,
    /// Training timestep of each batch item.
    pub timesteps: &'a [usize],
    /// Unit Gaussian noise ε shaped like `latents`.
    pub noise: &'a Tensor,
    /// Optional loss weights broadcastable to the latents (e.g. a subject mask at latent
    /// resolution, `[B, 1, F, h, w]`); the loss is the weighted mean.
    pub mask: Option<&'a Tensor>,
}

/// The noised latents x_t = √ᾱ_t x₀ + √(1 − ᾱ_t) ε and the network's target for them.
pub fn noised_and_target(
    schedule: &NoiseSchedule,
    prediction: PredictionType,
    latents: &Tensor,
    noise: &Tensor,
    timesteps: &[usize],
) -> Result<(Tensor, Tensor)> {
    let batch = latents.dim(0)?;
    if timesteps.len() != batch {
        candle_core::bail!("{} timesteps for a batch of {batch}", timesteps.len());
    }
    let alphas = schedule.alphas_cumprod();
    let mut rank_shape = vec![1usize; latents.rank()];
    rank_shape[0] = batch;
    let mut signal = Vec::with_capacity(batch);
    let mut noise_scale = Vec::with_capacity(batch);
    for &t in timesteps {
        let a = *alphas
            .get(t)
            .ok_or_else(|| candle_core::Error::Msg(format!("timestep {t} ≥ {}", alphas.len())))?;
        signal.push(a.sqrt());
        noise_scale.push((1.0 - a).sqrt());
    }
    let device = latents.device();
    let signal =
        Tensor::from_vec(signal, rank_shape.as_slice(), device)?.to_dtype(latents.dtype())?;
    let noise_scale =
        Tensor::from_vec(noise_scale, rank_shape.as_slice(), device)?.to_dtype(latents.dtype())?;
    let noisy = (latents.broadcast_mul(&signal)? + noise.broadcast_mul(&noise_scale)?)?;
    let target = match prediction {
        PredictionType::Epsilon => noise.clone(),
        PredictionType::VPrediction => {
            (noise.broadcast_mul(&signal)? - latents.broadcast_mul(&noise_scale)?)?
        }
        PredictionType::Sample => latents.clone(),
    };
    Ok((noisy, target))
}

/// Mean of `(prediction − target)²`, weighted by `mask` when given (weights broadcast to the
/// prediction's shape; the mean is over the weights' total).
pub fn masked_mse(prediction: &Tensor, target: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
    let squared = (prediction - target)?.sqr()?.to_dtype(DType::F32)?;
    match mask {
        None => squared.mean_all(),
        Some(mask) => {
            let weights = mask.to_dtype(DType::F32)?.broadcast_as(squared.shape())?;
            let total = weights.sum_all()?;
            (squared * &weights)?
                .sum_all()?
                .div(&total.clamp(1e-12f32, f32::INFINITY)?)
        }
    }
}

/// The denoising loss of `unet` on `batch` (a scalar, graph attached for back-propagation).
pub fn denoising_loss(
    unet: &UNet,
    schedule: &NoiseSchedule,
    prediction: PredictionType,
    batch: &DenoisingBatch<'_>,
    hook: Option<&mut dyn FeatureHook>,
) -> crate::model::Result<Tensor> {
    let (noisy, target) = noised_and_target(
        schedule,
        prediction,
        batch.latents,
        batch.noise,
        batch.timesteps,
    )?;
    let timesteps: Vec<f32> = batch.timesteps.iter().map(|&t| t as f32).collect();
    let timesteps = Tensor::new(timesteps.as_slice(), batch.latents.device())?;
    let predicted = unet.forward(&noisy, &timesteps, batch.conditioning, hook)?;
    Ok(masked_mse(
        &predicted,
        &target.to_dtype(predicted.dtype())?,
        batch.mask,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diffusion::SchedulerConfig;
    use candle_core::Device;
    use rand::SeedableRng;

    fn schedule() -> NoiseSchedule {
        let text = r#"{"_class_name": "DDIMScheduler", "beta_schedule": "scaled_linear",
                       "beta_start": 0.00085, "beta_end": 0.012, "num_train_timesteps": 1000}"#;
        let config =
            SchedulerConfig::from_json_str(text, std::path::Path::new("test.json")).unwrap();
        NoiseSchedule::new(config.common())
    }

    #[test]
    fn high_noise_sampling_is_biased_to_large_timesteps() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let draws: Vec<usize> = (0..4000)
            .map(|_| TimestepSampling::HighNoise.sample(&mut rng, 1000))
            .collect();
        let mean = draws.iter().sum::<usize>() as f64 / draws.len() as f64;
        // E[(1 − u³)]·999 = 0.75·999.
        assert!((mean - 749.25).abs() < 15.0, "{mean}");
        assert!(draws.iter().all(|&t| t < 1000));
        let uniform: Vec<usize> = (0..4000)
            .map(|_| TimestepSampling::Uniform.sample(&mut rng, 1000))
            .collect();
        let mean = uniform.iter().sum::<usize>() as f64 / uniform.len() as f64;
        assert!((mean - 499.5).abs() < 20.0, "{mean}");
    }

    #[test]
    fn noising_follows_the_closed_form() -> Result<()> {
        let s = schedule();
        let x0 = Tensor::new(&[[1.0f32, -2.0]], &Device::Cpu)?;
        let eps = Tensor::new(&[[0.5f32, 0.25]], &Device::Cpu)?;
        let t = 500;
        let a = s.alphas_cumprod()[t];
        let (noisy, target) = noised_and_target(&s, PredictionType::VPrediction, &x0, &eps, &[t])?;
        let noisy = noisy.to_vec2::<f32>()?;
        let target = target.to_vec2::<f32>()?;
        assert!((noisy[0][1] - (a.sqrt() * -2.0 + (1.0 - a).sqrt() * 0.25)).abs() < 1e-6);
        assert!((target[0][0] - (a.sqrt() * 0.5 - (1.0 - a).sqrt() * 1.0)).abs() < 1e-6);
        Ok(())
    }

    #[test]
    fn masked_mse_weights_elements() -> Result<()> {
        let p = Tensor::new(&[1.0f32, 2.0, 3.0, 4.0], &Device::Cpu)?;
        let t = Tensor::zeros(4, DType::F32, &Device::Cpu)?;
        let m = Tensor::new(&[1.0f32, 0.0, 0.0, 1.0], &Device::Cpu)?;
        assert_eq!(masked_mse(&p, &t, None)?.to_scalar::<f32>()?, 7.5);
        assert_eq!(masked_mse(&p, &t, Some(&m))?.to_scalar::<f32>()?, 8.5);
        Ok(())
    }
}
