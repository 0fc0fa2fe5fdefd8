//! The networks and scheduler of a diffusers-layout text-to-video model folder, loaded once
//! and shared by every generation: `tokenizer/`, `text_encoder/`, `unet/`, `motion_adapter/`
//! (optional: without it the UNet is image-only), `vae/` and `scheduler/`.

use std::path::{Path, PathBuf};

use candle_core::{DType, Tensor};

use super::error::{MvError, Result};
use crate::diffusion::{AnyScheduler, SchedulerConfig};
use crate::model::clip::{ClipTextModel, TokenOverride};
use crate::model::tokenizer::ClipTokenizer;
use crate::model::unet::UNet;
use crate::model::vae::AutoencoderKL;
use crate::model::{ComponentDir, ComputeSettings, WeightVariant};

/// Everything a sampling run needs from a model folder.
#[derive(Clone, Debug)]
pub struct DiffusionComponents {
    /// The CLIP BPE tokenizer.
    pub tokenizer: ClipTokenizer,
    /// The CLIP text encoder.
    pub text_encoder: ClipTextModel,
    /// The UNet, with the motion modules of `motion_adapter/` when the folder has one.
    pub unet: UNet,
    /// The autoencoder between images and latents.
    pub vae: AutoencoderKL,
    /// The scheduler configuration; each run builds its own scheduler from it.
    pub scheduler: SchedulerConfig,
    /// The folder the components came from.
    pub root: PathBuf,
    /// Device and dtype the networks run on.
    pub settings: ComputeSettings,
}

impl DiffusionComponents {
    /// Loads every component of the model folder `root`.
    pub fn load(root: &Path, variant: WeightVariant, settings: &ComputeSettings) -> Result<Self> {
        if !root.is_dir() {
            return Err(MvError::File {
                path: root.to_path_buf(),
                reason: "model folder not found".into(),
            });
        }
        let tokenizer = ClipTokenizer::load(&root.join("tokenizer"))?;
        let text_encoder = ClipTextModel::load(
            &ComponentDir::new(root.join("text_encoder")),
            variant,
            settings,
        )?;
        let adapter = root.join("motion_adapter");
        let unet = UNet::load(
            &root.join("unet"),
            adapter.is_dir().then_some(adapter.as_path()),
            variant,
            settings,
        )?;
        let vae = AutoencoderKL::load(&ComponentDir::new(root.join("vae")), variant, settings)?;
        let scheduler = SchedulerConfig::from_dir(&ComponentDir::new(root.join("scheduler")))?;
        Ok(Self {
            tokenizer,
            text_encoder,
            unet,
            vae,
            scheduler,
            root: root.to_path_buf(),
            settings: settings.clone(),
        })
    }

    /// A fresh scheduler for one run.
    pub fn new_scheduler(&self) -> AnyScheduler {
        AnyScheduler::new(self.scheduler.clone())
    }

    /// The text-encoder conditioning `[1, 77, D]` of `prompt` (its last hidden state, as SD
    /// pipelines use it).
    pub fn encode_prompt(&self, prompt: &str) -> Result<Tensor> {
        self.encode_ids(&self.prompt_ids(&self.tokenizer, prompt)?, &[])
    }

    /// The padded token ids `[1, 77]` of `prompt` under `tokenizer` (the components' own, or
    /// a clone with added tokens such as a subject's), on the components' device.
    pub fn prompt_ids(&self, tokenizer: &ClipTokenizer, prompt: &str) -> Result<Tensor> {
        let ids = tokenizer.encode_padded(prompt);
        Ok(Tensor::new(ids.as_slice(), &self.settings.device)?.unsqueeze(0)?)
    }

    /// The conditioning (last hidden state) of token `ids` `[B, S]`, the ids of `overrides`
    /// taking their given embedding rows (a subject's learned token).
    pub fn encode_ids(&self, ids: &Tensor, overrides: &[TokenOverride]) -> Result<Tensor> {
        let embeds = self.text_encoder.embed_tokens(ids, overrides)?;
        Ok(self
            .text_encoder
            .forward_embeds(&embeds, ids)?
            .last_hidden_state)
    }

    /// The latent grid `(h, w)` of a `width × height` image, checked against the VAE's and the
    /// UNet's downsampling so every level divides evenly.
    pub fn latent_size(&self, width: u32, height: u32) -> Result<(usize, usize)> {
        let vae = self.vae.downscale_factor();
        let unet = 1usize << self.unet.layout().down.len().saturating_sub(1);
        let multiple = vae * unet;
        for (field, value) in [("width", width), ("height", height)] {
            if value == 0 || !(value as usize).is_multiple_of(multiple) {
                return Err(MvError::request(
                    field,
                    format!("{value} must be a positive multiple of {multiple} for this model"),
                ));
            }
        }
        Ok((height as usize / vae, width as usize / vae))
    }

    /// Decodes diffusion-scale latents `[B, C, F, h, w]` into frames `[B, F, 3, H, W]` with
    /// values in [0, 1], one frame at a time (bounded memory).
    pub fn decode_frames(&self, latents: &Tensor) -> Result<Tensor> {
        let (batch, _, frames, _, _) = latents.dims5()?;
        let mut decoded = Vec::with_capacity(batch * frames);
        for b in 0..batch {
            for f in 0..frames {
                let frame = latents.narrow(0, b, 1)?.narrow(2, f, 1)?.squeeze(2)?;
                let frame = frame.to_dtype(self.settings.dtype)?;
                let image = self.vae.decode_scaled(&frame)?.to_dtype(DType::F32)?;
                decoded.push(((image / 2.0)? + 0.5)?.clamp(0.0f32, 1.0f32)?);
            }
        }
        let stacked = Tensor::cat(&decoded, 0)?;
        let (_, c, h, w) = stacked.dims4()?;
        Ok(stacked.reshape((batch, frames, c, h, w))?)
    }
}
