//! The VAE (diffusers' `AutoencoderKL`) that maps images in [−1, 1] to SD's latent space and
//! back. [`AutoencoderKL::encode`] / [`AutoencoderKL::decode`] are the raw maps;
//! [`AutoencoderKL::encode_scaled`] / [`AutoencoderKL::decode_scaled`] add the
//! `scaling_factor` (and `shift_factor`) that puts latents at the diffusion model's scale.

mod coder;
mod config;
mod gaussian;
mod mid_block;

use candle_core::Tensor;
use candle_nn::{Conv2d, Module, VarBuilder};
use rand::Rng;

use self::coder::{Decoder, Encoder};
pub use self::config::VaeConfig;
pub use self::gaussian::DiagonalGaussian;
use crate::model::error::{ModelError, Result};
use crate::model::load::{ComponentDir, ComputeSettings, WeightVariant};

/// diffusers' `AutoencoderKL`: encoder, `quant_conv`, `post_quant_conv`, decoder.
#[derive(Clone, Debug)]
pub struct AutoencoderKL {
    encoder: Encoder,
    decoder: Decoder,
    quant_conv: Option<Conv2d>,
    post_quant_conv: Option<Conv2d>,
    config: VaeConfig,
}

/// A 1×1 convolution over `channels`.
fn conv1x1(vb: VarBuilder, channels: usize) -> candle_core::Result<Conv2d> {
    candle_nn::conv2d(channels, channels, 1, Default::default(), vb)
}

impl AutoencoderKL {
    /// Builds the autoencoder from a checkpoint's tensors. The config must have passed
    /// [`VaeConfig::validate`].
    pub fn new(vb: VarBuilder, cfg: &VaeConfig) -> candle_core::Result<Self> {
        let latent = cfg.latent_channels;
        Ok(Self {
            encoder: Encoder::new(vb.pp("encoder"), cfg)?,
            decoder: Decoder::new(vb.pp("decoder"), cfg)?,
            quant_conv: cfg
                .use_quant_conv
                .then(|| conv1x1(vb.pp("quant_conv"), 2 * latent))
                .transpose()?,
            post_quant_conv: cfg
                .use_post_quant_conv
                .then(|| conv1x1(vb.pp("post_quant_conv"), latent))
                .transpose()?,
            config: cfg.clone(),
        })
    }

    /// Reads `config.json` of `dir` (e.g. `vae/`), validates it and loads the weights for
    /// `variant` on `settings`' device and dtype.
    pub fn load(
        dir: &ComponentDir,
        variant: WeightVariant,
        settings: &ComputeSettings,
    ) -> Result<Self> {
        let (cfg, path): (VaeConfig, _) = dir.json("config.json")?;
        cfg.validate(&path)?;
        dir.weights(variant, settings)?
            .build(|vb| Self::new(vb, &cfg))
    }

    /// The configuration the autoencoder was built with.
    pub fn config(&self) -> &VaeConfig {
        &self.config
    }

    /// Spatial ratio between images and latents (`2^(levels − 1)`, 8 for SD).
    pub fn downscale_factor(&self) -> usize {
        1 << self.config.block_out_channels.len().saturating_sub(1)
    }

    /// The latent distribution of `image` `[B, in_channels, H, W]` with values in [−1, 1].
    pub fn encode(&self, image: &Tensor) -> Result<DiagonalGaussian> {
        check_input("image", image, self.config.in_channels)?;
        let h = self.encoder.forward(image)?;
        let moments = match &self.quant_conv {
            Some(conv) => conv.forward(&h)?,
            None => h,
        };
        DiagonalGaussian::from_moments(&moments)
    }

    /// The image `[B, out_channels, H, W]` (nominally in [−1, 1]) of raw, unscaled
    /// `latents` `[B, latent_channels, h, w]`.
    pub fn decode(&self, latents: &Tensor) -> Result<Tensor> {
        check_input("latents", latents, self.config.latent_channels)?;
        let z = match &self.post_quant_conv {
            Some(conv) => conv.forward(latents)?,
            None => latents.clone(),
        };
        Ok(self.decoder.forward(&z)?)
    }

    /// Latents at the diffusion model's scale, `(z − shift_factor) · scaling_factor`, with
    /// `z` sampled from the encoding of `image` using `rng`, or its mode when `rng` is `None`.
    pub fn encode_scaled<R: Rng + ?Sized>(
        &self,
        image: &Tensor,
        rng: Option<&mut R>,
    ) -> Result<Tensor> {
        let dist = self.encode(image)?;
        let z = match rng {
            Some(rng) => dist.sample(rng)?,
            None => dist.mode().clone(),
        };
        let shift = self.config.shift_factor.unwrap_or(0.0);
        Ok(z.affine(
            self.config.scaling_factor,
            -shift * self.config.scaling_factor,
        )?)
    }

    /// The image of diffusion-scale `latents`: [`Self::decode`] of
    /// `latents / scaling_factor + shift_factor`.
    pub fn decode_scaled(&self, latents: &Tensor) -> Result<Tensor> {
        let shift = self.config.shift_factor.unwrap_or(0.0);
        let z = latents.affine(1.0 / self.config.scaling_factor, shift)?;
        self.decode(&z)
    }
}

/// Checks that `x` is `[B, channels, H, W]` with non-empty batch and spatial sizes.
fn check_input(name: &str, x: &Tensor, channels: usize) -> Result<()> {
    match x.dims() {
        &[b, c, h, w] if c == channels && b > 0 && h > 0 && w > 0 => Ok(()),
        dims => Err(ModelError::InvalidInput {
            name: name.into(),
            reason: format!("shape {dims:?}, expected [batch, {channels}, height, width]"),
        }),
    }
}
