//! Training the text encoder, the UNet and its motion modules jointly from scratch on
//! multi-view clips of the procedural world, with the clip's frames attending to each other
//! densely (the attention MVCustom generates with). The trained autoencoder of the model
//! folder is frozen and turns frames into latents; captions are dropped now and then so
//! classifier-free guidance has an unconditional prediction to work with.

use candle_core::{DType, Device, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use super::data::Prefetcher;
use super::error::{PretrainError, Result};
use super::run::{PretrainEvent, RunSettings, TrainedComponent, Trainer};
use crate::diffusion::scheduler::NoiseSchedule;
use crate::diffusion::{CancelToken, SchedulerConfig};
use crate::model::clip::{ClipTextConfig, ClipTextModel};
use crate::model::motion::MotionAttention;
use crate::model::motion_adapter::{MotionAdapterConfig, MotionModules};
use crate::model::tokenizer::ClipTokenizer;
use crate::model::unet::UNet;
use crate::model::unet::config::UNetConfig;
use crate::model::vae::AutoencoderKL;
use crate::model::{ComponentDir, ComputeSettings, ModelError, WeightVariant};
use crate::train::{DenoisingBatch, TimestepSampling, denoising_loss};
use crate::world::{ClipBatch, ClipDataset, ClipSource, DatasetConfig, TrajectorySampler};

/// Batches ahead of the optimiser.
const PREFETCH: usize = 2;

/// Settings of a denoiser training run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DenoiserSettings {
    /// Steps, batch (clips per step), learning rate, folders.
    pub run: RunSettings,
    /// Views (frames) per clip.
    pub views: u32,
    /// Side of the square views in pixels (a multiple of the autoencoder's downscale).
    pub image_size: u32,
    /// Probability of training a clip on the empty prompt (for classifier-free guidance).
    pub caption_dropout: f64,
    /// Dense attention's spatial window radius (`None`: every token of the clip).
    pub attention_window: Option<usize>,
    /// How training timesteps are drawn (uniform, or biased to high noise, where a clip's
    /// layout and environment are decided).
    #[serde(default = "uniform_timesteps")]
    pub timesteps: TimestepSampling,
}

fn uniform_timesteps() -> TimestepSampling {
    TimestepSampling::Uniform
}

/// The networks of a denoiser run, built over fresh variables.
struct Networks {
    tokenizer: ClipTokenizer,
    vae: AutoencoderKL,
    text_encoder: ClipTextModel,
    unet: UNet,
    schedule: NoiseSchedule,
    prediction: crate::diffusion::PredictionType,
}

/// Trains `text_encoder/`, `unet/` and `motion_adapter/` of the model folder (resuming from
/// the checkpoint when there is one) and writes their weights.
pub fn train_denoiser(
    settings: &DenoiserSettings,
    events: &mut dyn FnMut(PretrainEvent),
    cancel: &CancelToken,
) -> Result<()> {
    let run = &settings.run;
    run.validate()?;
    if !(0.0..=1.0).contains(&settings.caption_dropout) {
        return Err(PretrainError::setting(
            "caption_dropout",
            format!("{} is not a probability", settings.caption_dropout),
        ));
    }
    let text = TrainedComponent::new("text_encoder", "model.safetensors");
    let unet = TrainedComponent::new("unet", "diffusion_pytorch_model.safetensors");
    let motion = TrainedComponent::new("motion_adapter", "diffusion_pytorch_model.safetensors");
    let networks = build(settings, &text, &unet, &motion)?;
    let latent_factor = networks.vae.downscale_factor() as u32;
    let unet_factor = 1u32 << networks.unet.layout().down.len().saturating_sub(1);
    if settings.image_size == 0
        || !settings
            .image_size
            .is_multiple_of(latent_factor * unet_factor)
    {
        return Err(PretrainError::setting(
            "image_size",
            format!(
                "{} is not a positive multiple of {}",
                settings.image_size,
                latent_factor * unet_factor
            ),
        ));
    }
    let mut trainer = Trainer::new("denoiser", vec![text, unet, motion], run)?;
    let data = dataset(settings)?;
    let mut batches = Prefetcher::start(trainer.step() as u64, PREFETCH, move |i| data.batch(i));
    trainer.run(run, events, cancel, |step| {
        let batch = batches.next_batch()?;
        let mut rng = StdRng::seed_from_u64(run.seed ^ (step as u64).rotate_left(23));
        clip_loss(&networks, &batch, settings, &mut rng)
    })
}

/// Loads the frozen autoencoder and tokenizer and builds the trained networks over the
/// components' variables.
fn build(
    settings: &DenoiserSettings,
    text: &TrainedComponent,
    unet: &TrainedComponent,
    motion: &TrainedComponent,
) -> Result<Networks> {
    let model_dir = &settings.run.model_dir;
    let cpu = ComputeSettings {
        device: Device::Cpu,
        dtype: DType::F32,
    };
    let tokenizer = ClipTokenizer::load(&model_dir.join("tokenizer"))?;
    let vae = AutoencoderKL::load(
        &ComponentDir::new(model_dir.join("vae")),
        WeightVariant::Full,
        &cpu,
    )?;
    let text_dir = ComponentDir::new(model_dir.join("text_encoder"));
    let (text_config, text_path) = text_dir.json::<ClipTextConfig>("config.json")?;
    text_config.validate(&text_path)?;
    let text_encoder = ClipTextModel::new(text.builder(), &text_config)
        .map_err(|e| ModelError::from_weights(e, std::slice::from_ref(&text_path)))?;

    let unet_dir = ComponentDir::new(model_dir.join("unet"));
    let (unet_config, unet_path) = unet_dir.json::<UNetConfig>("config.json")?;
    let layout = unet_config
        .layout(&unet_path)?
        .for_motion(&unet_path, &unet_config)?;
    let adapter_dir = ComponentDir::new(model_dir.join("motion_adapter"));
    let (adapter_config, adapter_path) = adapter_dir.json::<MotionAdapterConfig>("config.json")?;
    let motion_layout = adapter_config.layout(&adapter_path, &layout)?;
    let modules = MotionModules::new(motion.builder(), &motion_layout)
        .map_err(|e| ModelError::from_weights(e, std::slice::from_ref(&adapter_path)))?;
    let mut network = UNet::new(unet.builder(), &layout, Some(modules))
        .map_err(|e| ModelError::from_weights(e, std::slice::from_ref(&unet_path)))?;
    if network
        .max_frames()
        .is_some_and(|m| m < settings.views as usize)
    {
        return Err(PretrainError::setting(
            "views",
            format!(
                "{} views exceed the motion modules' {} frames ({})",
                settings.views,
                network.max_frames().unwrap_or_default(),
                adapter_path.display()
            ),
        ));
    }
    network.set_motion_attention(MotionAttention::Dense {
        window: settings.attention_window,
    });
    let scheduler = SchedulerConfig::from_dir(&ComponentDir::new(model_dir.join("scheduler")))?;
    let scheduler = scheduler.common();
    Ok(Networks {
        tokenizer,
        vae,
        text_encoder,
        unet: network,
        prediction: scheduler.prediction_type,
        schedule: NoiseSchedule::new(scheduler),
    })
}

/// Multi-view clips of the training split.
fn dataset(settings: &DenoiserSettings) -> Result<ClipDataset> {
    let trajectories = TrajectorySampler {
        views: settings.views,
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

/// The denoising loss (for the scheduler's prediction type) of one batch of clips: frames to
/// latents through the frozen autoencoder, captions (some dropped) through the text encoder,
/// one timestep per clip drawn as the settings say.
fn clip_loss(
    networks: &Networks,
    batch: &ClipBatch,
    settings: &DenoiserSettings,
    rng: &mut StdRng,
) -> Result<Tensor> {
    let latents = clip_latents(&networks.vae, &batch.frames)?;
    let mut ids = Vec::new();
    for caption in &batch.captions {
        let prompt = if rng.random::<f64>() < settings.caption_dropout {
            ""
        } else {
            caption.as_str()
        };
        ids.extend(networks.tokenizer.encode_padded(prompt));
    }
    let ids = Tensor::from_vec(
        ids,
        (batch.captions.len(), networks.tokenizer.max_length()),
        &Device::Cpu,
    )?;
    let conditioning = networks.text_encoder.forward(&ids)?.last_hidden_state;
    let train_steps = networks.schedule.alphas_cumprod().len();
    let timesteps: Vec<usize> = (0..batch.captions.len())
        .map(|_| settings.timesteps.sample(rng, train_steps))
        .collect();
    let noise: Vec<f32> = (0..latents.elem_count())
        .map(|_| StandardNormal.sample(rng))
        .collect();
    let noise = Tensor::from_vec(noise, latents.dims(), &Device::Cpu)?;
    let denoising = DenoisingBatch {
        latents: &latents,
        conditioning: &conditioning,
        timesteps: &timesteps,
        noise: &noise,
        mask: None,
    };
    Ok(denoising_loss(
        &networks.unet,
        &networks.schedule,
        networks.prediction,
        &denoising,
        None,
    )?)
}

/// Diffusion-scale latents `[B, C, F, h, w]` (the distribution's mode, no gradient) of
/// frames `[B, 3, F, H, W]`.
pub fn clip_latents(vae: &AutoencoderKL, frames: &Tensor) -> Result<Tensor> {
    let (b, c, f, h, w) = frames.dims5()?;
    let images = frames.permute((0, 2, 1, 3, 4))?.reshape((b * f, c, h, w))?;
    let latents = vae.encode_scaled::<StdRng>(&images, None)?.detach();
    let (_, lc, lh, lw) = latents.dims4()?;
    Ok(latents
        .reshape((b, f, lc, lh, lw))?
        .permute((0, 2, 1, 3, 4))?
        .contiguous()?)
}
