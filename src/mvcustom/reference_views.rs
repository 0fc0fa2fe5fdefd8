//! A subject's images as the networks see them, shared by customization training and
//! generation so both compute the same reference features: images resized to the square
//! reference resolution and VAE-encoded (with their masks), cameras resized to match, and the
//! reference features of the views and of the all-zero image under the class prompt
//! (`a photo of a <class word>`, which does not contain the learned token, so the features do
//! not move while the token row trains).

use candle_core::{DType, Device, Tensor};
use image::imageops::FilterType;
use rand::rngs::StdRng;

use super::components::DiffusionComponents;
use super::error::Result;
use super::subject::Subject;
use crate::camera::PinholeCamera;
use crate::model::pose::{PoseBlocks, ReferenceCache, ReferenceFeatures};

/// One image at a square resolution, ready for the networks.
pub(crate) struct PreparedView {
    /// Diffusion-scale latents `[1, C, 1, h, w]` with motion modules, else `[1, C, h, w]`.
    pub latents: Tensor,
    /// `[3, H, W]` in [0, 1].
    pub image: Tensor,
    /// `[H, W]`, 1 = subject.
    pub mask: Tensor,
}

impl PreparedView {
    /// The latents as one image `[1, C, h, w]`.
    fn image_latents(&self) -> Result<Tensor> {
        Ok(if self.latents.rank() == 5 {
            self.latents.squeeze(2)?
        } else {
            self.latents.clone()
        })
    }
}

/// The prompt reference features are computed with.
pub(crate) fn class_prompt(class_word: &str) -> String {
    format!("a photo of a {class_word}")
}

/// `image` as `[3, H, W]` floats in [0, 1].
pub(crate) fn pixels(image: &image::RgbaImage, device: &Device) -> Result<Tensor> {
    let (w, h) = image.dimensions();
    let rgb: Vec<f32> = image
        .pixels()
        .flat_map(|p| [p.0[0], p.0[1], p.0[2]])
        .map(|v| v as f32 / 255.0)
        .collect();
    Ok(Tensor::from_vec(rgb, (h as usize, w as usize, 3), device)?.permute((2, 0, 1))?)
}

/// Resizes `image` (and `mask`, white = subject; none: all subject) to `size × size` and
/// encodes it with the components' VAE (its latent mean, no sampling).
pub(crate) fn prepare_view(
    components: &DiffusionComponents,
    image: &image::RgbaImage,
    mask: Option<&image::GrayImage>,
    size: u32,
) -> Result<PreparedView> {
    let device = &components.settings.device;
    let resized = image::imageops::resize(image, size, size, FilterType::Triangle);
    let image = pixels(&resized, device)?;
    let mask = match mask {
        Some(mask) => {
            let m = image::imageops::resize(mask, size, size, FilterType::Nearest);
            let values: Vec<f32> = m.pixels().map(|p| f32::from(p.0[0] >= 128)).collect();
            Tensor::from_vec(values, (size as usize, size as usize), device)?
        }
        None => Tensor::ones((size as usize, size as usize), DType::F32, device)?,
    };
    let input = ((&image * 2.0)? - 1.0)?
        .unsqueeze(0)?
        .to_dtype(components.settings.dtype)?;
    let mut latents = components
        .vae
        .encode_scaled::<StdRng>(&input, None)?
        .to_dtype(DType::F32)?;
    if components.unet.has_motion_modules() {
        latents = latents.unsqueeze(2)?;
    }
    Ok(PreparedView {
        latents,
        image,
        mask,
    })
}

/// The subject's reference images and masks at `size × size`.
pub(crate) fn prepare_references(
    components: &DiffusionComponents,
    subject: &Subject,
    size: u32,
) -> Result<Vec<PreparedView>> {
    subject
        .references
        .iter()
        .map(|r| prepare_view(components, &r.image, Some(&r.mask), size))
        .collect()
}

/// The subject's reference cameras, each describing its image resized to `size × size`.
pub(crate) fn reference_cameras(subject: &Subject, size: u32) -> Result<Vec<PinholeCamera>> {
    Ok(subject
        .references
        .iter()
        .map(|r| r.camera.resized(size, size))
        .collect::<std::result::Result<Vec<_>, _>>()?)
}

/// The features of `views` (prepared at `size × size`) and of one all-zero (black) image of
/// that size at every block of `blocks`, with the class prompt of `class_word`.
pub(crate) fn reference_cache(
    components: &DiffusionComponents,
    blocks: &PoseBlocks,
    views: &[PreparedView],
    size: u32,
    class_word: &str,
) -> Result<ReferenceCache> {
    let unet = &components.unet;
    let prompt = components.encode_prompt(&class_prompt(class_word))?;
    let latents = views
        .iter()
        .map(PreparedView::image_latents)
        .collect::<Result<Vec<_>>>()?;
    let latents = Tensor::cat(&latents, 0)?.to_dtype(components.settings.dtype)?;
    let zero_image = image::RgbaImage::from_pixel(size, size, image::Rgba([0, 0, 0, 255]));
    let zero = prepare_view(components, &zero_image, None, size)?
        .image_latents()?
        .to_dtype(components.settings.dtype)?;
    Ok(ReferenceCache {
        references: ReferenceFeatures::compute(unet, blocks, &latents, &prompt)?,
        empty: ReferenceFeatures::compute(unet, blocks, &zero, &prompt)?,
    })
}
