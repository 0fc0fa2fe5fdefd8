//! Images of the target views as the diffusion's latents `[1, C, views, h, w]`: the
//! backgrounds of a composed generation and the views a video-to-video generation starts
//! from are both the scene as each camera sees it, encoded by the model's VAE.

use candle_core::{DType, Tensor};

use super::components::DiffusionComponents;
use super::error::{MvError, Result};

/// Encodes one image per view (in request order), resampled to `width × height` when it has
/// another size, into diffusion-scale latents (the VAE's latent mean times its scaling
/// factor) stacked along the frame axis.
pub(crate) fn encode_views(
    components: &DiffusionComponents,
    images: &[image::RgbaImage],
    (width, height): (u32, u32),
) -> Result<Tensor> {
    let device = &components.settings.device;
    let mut latents = Vec::with_capacity(images.len());
    for image in images {
        let resized;
        let image = if image.dimensions() == (width, height) {
            image
        } else {
            resized = image::imageops::resize(
                image,
                width,
                height,
                image::imageops::FilterType::Triangle,
            );
            &resized
        };
        let input = ((super::reference_views::pixels(image, device)? * 2.0)? - 1.0)?
            .unsqueeze(0)?
            .to_dtype(components.settings.dtype)?;
        let encoded = components
            .vae
            .encode_scaled::<rand::rngs::StdRng>(&input, None)?
            .to_dtype(DType::F32)?;
        latents.push(encoded.unsqueeze(2)?);
    }
    Ok(Tensor::cat(&latents, 2)?)
}

/// Views a generation starts from instead of pure noise (video-to-video, SDEdit): each is
/// noised part of the way and denoised under the prompt, so the result keeps their layout,
/// and with it their consistency from view to view, while the prompt restyles them.
#[derive(Clone, Debug, PartialEq)]
pub struct InitViews {
    /// One image per view, in request order (e.g. the scene rendered by each camera);
    /// resampled to the request's size when it has another.
    pub images: Vec<image::RgbaImage>,
    /// How much is regenerated, in (0, 1]: the fraction of the denoising steps that run
    /// (diffusers' `strength`); near 0 keeps the images, 1 keeps only what survives full noise.
    pub strength: f64,
}

impl InitViews {
    /// Checks the images and strength for a request of `views` views.
    pub(crate) fn check(&self, views: usize) -> Result<()> {
        if self.images.len() != views {
            return Err(MvError::request(
                "init_views.images",
                format!("has {} images for {views} views", self.images.len()),
            ));
        }
        if !(self.strength > 0.0 && self.strength <= 1.0) {
            return Err(MvError::request(
                "init_views.strength",
                format!("{} is outside (0, 1]", self.strength),
            ));
        }
        Ok(())
    }
}
