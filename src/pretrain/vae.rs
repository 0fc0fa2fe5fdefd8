//! Training the autoencoder from scratch on single views of the procedural world: L1 + L2
//! reconstruction with a small KL term, then the latent scaling factor measured on fresh
//! views and written into `vae/config.json` so the diffusion model sees unit-variance latents.

use std::path::Path;

use candle_core::Tensor;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::data::Prefetcher;
use super::error::{PretrainError, Result};
use super::run::{PretrainEvent, RunSettings, TrainedComponent, Trainer};
use crate::diffusion::CancelToken;
use crate::model::ComponentDir;
use crate::model::vae::{AutoencoderKL, VaeConfig};
use crate::train::write_atomic;
use crate::world::{ClipDataset, ClipSource, DatasetConfig, ImageBatch, TrajectorySampler};

/// Batches ahead of the optimiser.
const PREFETCH: usize = 2;
/// Batches of fresh views the scaling factor is measured on.
const SCALE_BATCHES: u64 = 8;
/// Where the scaling factor's batches start in the stream (far past any training run).
const SCALE_STREAM_START: u64 = 1 << 40;

/// Settings of an autoencoder training run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VaeSettings {
    /// Steps, batch, learning rate, folders.
    pub run: RunSettings,
    /// Side of the square training views in pixels.
    pub image_size: u32,
    /// Side of the square window cropped at a random place from every batch (the networks
    /// are convolutional: training on crops costs a fraction and generalises to whole
    /// views); `None` trains on whole views.
    pub crop: Option<u32>,
    /// Weight of the KL term (per latent element) against the per-pixel reconstruction.
    pub kl_weight: f64,
}

/// What a finished autoencoder run measured.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct VaeSummary {
    /// Mean absolute reconstruction error on the scaling batches, in [−1, 1] pixel units.
    pub reconstruction_l1: f32,
    /// The latent scaling factor written into the configuration (1 / latent std).
    pub scaling_factor: f64,
}

/// Trains `vae/` of the model folder (resuming from the checkpoint when there is one), writes
/// its weights and scaling factor, and returns what it measured.
pub fn train_vae(
    settings: &VaeSettings,
    events: &mut dyn FnMut(PretrainEvent),
    cancel: &CancelToken,
) -> Result<VaeSummary> {
    let run = &settings.run;
    run.validate()?;
    let dir = ComponentDir::new(run.model_dir.join("vae"));
    let (config, config_path) = dir.json::<VaeConfig>("config.json")?;
    config.validate(&config_path)?;
    let factor = 1u32 << config.block_out_channels.len().saturating_sub(1);
    if settings.image_size == 0 || !settings.image_size.is_multiple_of(factor) {
        return Err(PretrainError::setting(
            "image_size",
            format!(
                "{} is not a positive multiple of {factor}",
                settings.image_size
            ),
        ));
    }
    if let Some(crop) = settings.crop
        && (crop == 0 || crop > settings.image_size || !crop.is_multiple_of(factor))
    {
        return Err(PretrainError::setting(
            "crop",
            format!(
                "{crop} must be a positive multiple of {factor} no larger than the image size {}",
                settings.image_size
            ),
        ));
    }
    let component = TrainedComponent::new("vae", "diffusion_pytorch_model.safetensors");
    let vae = AutoencoderKL::new(component.builder(), &config).map_err(|e| {
        crate::model::ModelError::from_weights(e, std::slice::from_ref(&config_path))
    })?;
    let mut trainer = Trainer::new("vae", vec![component], run)?;
    let data = dataset(settings)?;
    let stream = data.clone();
    let mut batches = Prefetcher::start(trainer.step() as u64, PREFETCH, move |i| {
        stream.image_batch(i)
    });
    trainer.run(run, events, cancel, |step| {
        let batch: ImageBatch = batches.next_batch()?;
        let mut rng = StdRng::seed_from_u64(run.seed ^ (step as u64).rotate_left(17));
        let images = match settings.crop {
            Some(crop) => random_crop(&batch.images, crop as usize, &mut rng)?,
            None => batch.images,
        };
        reconstruction_loss(&vae, &images, settings.kl_weight, &mut rng)
    })?;
    let summary = measure(&vae, &data)?;
    write_scaling_factor(&config_path, summary.scaling_factor)?;
    Ok(summary)
}

/// The training views: one view of each clip of the training split.
fn dataset(settings: &VaeSettings) -> Result<ClipDataset> {
    let trajectories = TrajectorySampler {
        width: settings.image_size,
        height: settings.image_size,
        ..Default::default()
    };
    let config = DatasetConfig {
        seed: settings.run.seed,
        batch_size: settings.run.batch_size,
        trajectories,
        ..Default::default()
    };
    Ok(ClipDataset::new(config, ClipSource::Render)?)
}

/// A `crop × crop` window of every image of `images` `[B, C, H, W]`, at one random place.
fn random_crop(images: &Tensor, crop: usize, rng: &mut StdRng) -> Result<Tensor> {
    let (_, _, h, w) = images.dims4()?;
    let top = rng.random_range(0..=h.saturating_sub(crop));
    let left = rng.random_range(0..=w.saturating_sub(crop));
    Ok(images.narrow(2, top, crop)?.narrow(3, left, crop)?)
}

/// L1 + L2 reconstruction of `images` through a sampled latent, plus `kl_weight` times the
/// mean per-element KL divergence of the latent distribution from a unit Gaussian.
pub fn reconstruction_loss(
    vae: &AutoencoderKL,
    images: &Tensor,
    kl_weight: f64,
    rng: &mut StdRng,
) -> Result<Tensor> {
    let posterior = vae.encode(images)?;
    let latents = posterior.sample(rng)?;
    let reconstruction = vae.decode(&latents)?;
    let error = (reconstruction - images)?;
    let l1 = error.abs()?.mean_all()?;
    let l2 = error.sqr()?.mean_all()?;
    let variance = posterior.logvar.exp()?;
    let kl = ((posterior.mean.sqr()? + variance)? - 1.0)?
        .sub(&posterior.logvar)?
        .mean_all()?
        .affine(0.5, 0.0)?;
    Ok(((l1 + l2)? + kl.affine(kl_weight, 0.0)?)?)
}

/// Reconstruction error and latent scale on views no training step used.
fn measure(vae: &AutoencoderKL, data: &ClipDataset) -> Result<VaeSummary> {
    let mut l1 = 0.0f64;
    let (mut sum, mut sum_sq, mut count) = (0.0f64, 0.0f64, 0usize);
    for i in 0..SCALE_BATCHES {
        let batch = data.image_batch(SCALE_STREAM_START + i)?;
        let latents = vae.encode(&batch.images)?.mode().clone();
        let reconstruction = vae.decode(&latents)?;
        l1 += f64::from(
            (reconstruction - &batch.images)?
                .abs()?
                .mean_all()?
                .to_scalar::<f32>()?,
        );
        let values = latents.flatten_all()?.to_vec1::<f32>()?;
        count += values.len();
        for v in values {
            sum += f64::from(v);
            sum_sq += f64::from(v) * f64::from(v);
        }
    }
    let mean = sum / count.max(1) as f64;
    let std = (sum_sq / count.max(1) as f64 - mean * mean).max(0.0).sqrt();
    if !(std.is_finite() && std > 1e-6) {
        return Err(PretrainError::setting(
            "kl_weight",
            format!("the latents collapsed (std {std}); train longer or lower kl_weight"),
        ));
    }
    Ok(VaeSummary {
        reconstruction_l1: (l1 / SCALE_BATCHES as f64) as f32,
        scaling_factor: 1.0 / std,
    })
}

/// Rewrites `scaling_factor` in the configuration file, keeping every other field.
fn write_scaling_factor(path: &Path, scaling_factor: f64) -> Result<()> {
    let text = std::fs::read_to_string(path).map_err(|e| PretrainError::file(path, e))?;
    let mut value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| PretrainError::file(path, e))?;
    let object = value
        .as_object_mut()
        .ok_or_else(|| PretrainError::file(path, "the configuration is not a JSON object"))?;
    object.insert("scaling_factor".into(), serde_json::json!(scaling_factor));
    let mut bytes = serde_json::to_vec_pretty(&value).map_err(|e| PretrainError::file(path, e))?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)?;
    Ok(())
}
