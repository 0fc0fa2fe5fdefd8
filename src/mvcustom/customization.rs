//! The customization objective of one training example (method.md, last paragraph of
//! "Pose-conditioned transformer block"): the masked ε-MSE of the UNet with its pose blocks
//! (subject mask dilated 7×7 at latent resolution), plus, per pose block, 10·opacity-MSE of
//! the rendered opacity against the mask, 10·|α| on background rays and 5·masked RGB-MSE of
//! the rendered colour against the downsampled target image. The field terms are averaged
//! over the pose blocks. Gradients reach every pose-block parameter and, through the
//! conditioning, the subject token's row.

use candle_core::{D, DType, Tensor};

use super::error::Result;
use crate::camera::PinholeCamera;
use crate::diffusion::PredictionType;
use crate::diffusion::scheduler::NoiseSchedule;
use crate::model::ModelError;
use crate::model::pose::{
    Jitter, PoseBlockHook, PoseBlocks, ReferenceFeatures, RenderRequest, render_features,
};
use crate::model::unet::UNet;
use crate::train::{DenoisingBatch, denoising_loss, masked_mse};

/// Side of the square dilation applied to the subject mask at latent resolution.
pub const MASK_DILATION: usize = 7;

/// Weights of the field terms (method.md's defaults: 10, 10, 5).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LossWeights {
    /// Rendered opacity vs the mask (MSE).
    pub opacity: f64,
    /// Mean |α| of background rays.
    pub background: f64,
    /// Rendered colour vs the target image inside the mask (MSE).
    pub rgb: f64,
}

impl Default for LossWeights {
    fn default() -> Self {
        Self {
            opacity: 10.0,
            background: 10.0,
            rgb: 5.0,
        }
    }
}

/// One prepared training example.
pub struct CustomizationExample<'a> {
    /// Clean latents of the target image, `[1, C, 1, h, w]` with motion modules, else
    /// `[1, C, h, w]`.
    pub latents: &'a Tensor,
    /// The target image `[3, H, W]` in [0, 1].
    pub image: &'a Tensor,
    /// The subject mask `[H, W]` (1 = subject).
    pub mask: &'a Tensor,
    /// The target camera (normalised scene).
    pub camera: PinholeCamera,
    /// Reference features (the subject's, or the all-zero image's under reference drop-out).
    pub references: &'a ReferenceFeatures,
    /// The reference cameras (normalised scene).
    pub reference_cameras: &'a [PinholeCamera],
    /// Text conditioning `[1, tokens, D]` (carrying the token row's graph).
    pub conditioning: &'a Tensor,
    /// Training timestep.
    pub timestep: usize,
    /// Noise shaped like `latents`.
    pub noise: &'a Tensor,
}

/// The loss and its terms (scalars; `total` carries the graph).
pub struct CustomizationLoss {
    /// Weighted sum of all terms.
    pub total: Tensor,
    /// Masked ε-MSE.
    pub denoising: Tensor,
    /// Opacity MSE (mean over blocks).
    pub opacity: Tensor,
    /// Background |α| (mean over blocks).
    pub background: Tensor,
    /// Masked colour MSE (mean over blocks).
    pub rgb: Tensor,
}

/// `mask` `[H, W]` resized (nearest) to `h × w`, as `[1, 1, h, w]` f32.
fn resize(mask: &Tensor, h: usize, w: usize) -> candle_core::Result<Tensor> {
    mask.to_dtype(DType::F32)?
        .unsqueeze(0)?
        .unsqueeze(0)?
        .upsample_nearest2d(h, w)
}

/// Square dilation of a `[1, 1, h, w]` mask by a `k × k` window (k odd).
fn dilate(mask: &Tensor, k: usize) -> candle_core::Result<Tensor> {
    let r = k / 2;
    mask.pad_with_zeros(2, r, r)?
        .pad_with_zeros(3, r, r)?
        .max_pool2d_with_stride(k, 1)
}

/// The customization loss of `example` for `unet` with pose blocks `blocks`.
pub fn customization_loss(
    unet: &UNet,
    blocks: &PoseBlocks,
    schedule: &NoiseSchedule,
    prediction: PredictionType,
    weights: &LossWeights,
    example: &CustomizationExample<'_>,
    jitter: &mut Jitter<'_>,
) -> Result<CustomizationLoss> {
    let dims = example.latents.dims();
    let (h, w) = match dims {
        [1, _, 1, h, w] | [1, _, h, w] => (*h, *w),
        _ => {
            return Err(ModelError::InvalidInput {
                name: "latents".into(),
                reason: format!("shape {dims:?}, expected one target [1, C, (1,) h, w]"),
            }
            .into());
        }
    };
    let rendered = render_features(
        unet,
        blocks,
        &RenderRequest {
            references: example.references,
            reference_cameras: example.reference_cameras,
            targets: std::slice::from_ref(&example.camera),
            latent_size: (h, w),
            conditioning: example.conditioning,
        },
        jitter,
    )?;

    let latent_mask = dilate(&resize(example.mask, h, w)?, MASK_DILATION)?;
    let latent_mask = if dims.len() == 5 {
        latent_mask.unsqueeze(2)?
    } else {
        latent_mask
    };
    let mut hook = PoseBlockHook::new(blocks, &rendered);
    let denoising = denoising_loss(
        unet,
        schedule,
        prediction,
        &DenoisingBatch {
            latents: example.latents,
            conditioning: example.conditioning,
            timesteps: &[example.timestep],
            noise: example.noise,
            mask: Some(&latent_mask),
        },
        Some(&mut hook),
    )?;

    let image = example.image.to_dtype(DType::F32)?.unsqueeze(0)?;
    let (mut opacity, mut background, mut rgb) = (Vec::new(), Vec::new(), Vec::new());
    for (_, block) in rendered.iter() {
        let (_, bh, bw) = block.opacity.dims3()?;
        let mask = resize(example.mask, bh, bw)?.squeeze(0)?; // [1, bh, bw]
        let alpha = block.opacity.to_dtype(DType::F32)?;
        opacity.push(masked_mse(&alpha, &mask, None)?);
        let outside = mask.affine(-1.0, 1.0)?;
        let outside_total = outside.sum_all()?.clamp(1e-12f32, f32::INFINITY)?;
        background.push((alpha.abs()? * &outside)?.sum_all()?.div(&outside_total)?);
        let target = resize_image(&image, bh, bw)?;
        rgb.push(masked_mse(
            &block.rgb.to_dtype(DType::F32)?,
            &target,
            Some(&mask.unsqueeze(1)?),
        )?);
    }
    let mean = |terms: Vec<Tensor>| -> candle_core::Result<Tensor> {
        let n = terms.len().max(1) as f64;
        Tensor::stack(&terms, 0)?.sum(D::Minus1)? / n
    };
    let (opacity, background, rgb) = (mean(opacity)?, mean(background)?, mean(rgb)?);
    let total = (denoising.to_dtype(DType::F32)?
        + (&opacity * weights.opacity)?
        + (&background * weights.background)?
        + (&rgb * weights.rgb)?)?;
    Ok(CustomizationLoss {
        total,
        denoising,
        opacity,
        background,
        rgb,
    })
}

/// `image` `[1, 3, H, W]` resized (nearest) to `h × w`.
fn resize_image(image: &Tensor, h: usize, w: usize) -> candle_core::Result<Tensor> {
    image.upsample_nearest2d(h, w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::{ImageSize, Intrinsics, look_at};
    use crate::model::ComputeSettings;
    use crate::model::WeightVariant;
    use crate::model::clip::TokenOverride;
    use crate::model::pose::PoseConfig;
    use crate::model::test_support::max_abs_diff;
    use crate::mvcustom::{DiffusionComponents, SubjectWeights, SubjectWeightsInfo};
    use crate::train::{AdamW, AdamWConfig};
    use candle_core::Device;
    use glam::Vec3;

    fn camera(angle: f32) -> PinholeCamera {
        let k = Intrinsics::from_vertical_fov(0.8, 64, 64).unwrap();
        let eye = Vec3::new(angle.sin(), 0.2, angle.cos()).normalize();
        look_at(eye, Vec3::ZERO, Vec3::Y, k, ImageSize::new(64, 64).unwrap()).unwrap()
    }

    #[test]
    fn a_few_steps_lower_the_loss_and_train_only_the_subject_weights() {
        let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/fixtures/parity/animatediff_pipeline_tiny");
        let device = Device::Cpu;
        let c = DiffusionComponents::load(&root, WeightVariant::Full, &ComputeSettings::default())
            .unwrap();
        let mut tokenizer = c.tokenizer.clone();
        let token = tokenizer.add_token("<teddy>").unwrap();
        let info = SubjectWeightsInfo {
            pose: PoseConfig {
                levels: vec![0, 1],
                ..Default::default()
            },
            reference_resolution: 64,
        };
        let init = c.text_encoder.token_embedding().get(320).unwrap();
        let weights = SubjectWeights::fresh(&c.unet, &info, &init, 2, &device).unwrap();
        let blocks = weights.trainable_pose_blocks(&c.unet).unwrap();
        let ids = tokenizer.encode_padded("a photo of <teddy> bear");
        let ids = Tensor::new(ids.as_slice(), &device)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let encode = || {
            let embeds = c
                .text_encoder
                .embed_tokens(
                    &ids,
                    &[TokenOverride {
                        id: token,
                        embedding: weights.token_embedding().unwrap(),
                    }],
                )
                .unwrap();
            c.text_encoder
                .forward_embeds(&embeds, &ids)
                .unwrap()
                .last_hidden_state
        };

        // Frozen parts, observed through fixed inputs before and after training.
        let probe = Tensor::randn(0f32, 1.0, (1, 4, 2, 8, 8), &device).unwrap();
        let plain_prompt = c.encode_prompt("a photo of a bear").unwrap();
        let t = Tensor::new(&[300f32], &device).unwrap();
        let unet_before = c.unet.forward(&probe, &t, &plain_prompt, None).unwrap();
        let trainable_before = weights.tensors().unwrap();

        let reference_latents = Tensor::randn(0f32, 1.0, (2, 4, 8, 8), &device).unwrap();
        let references =
            ReferenceFeatures::compute(&c.unet, &blocks, &reference_latents, &encode().detach())
                .unwrap();
        let reference_cameras = [camera(-0.5), camera(0.5)];
        let latents = Tensor::randn(0f32, 1.0, (1, 4, 1, 8, 8), &device).unwrap();
        let noise = Tensor::randn(0f32, 1.0, (1, 4, 1, 8, 8), &device).unwrap();
        let image = Tensor::rand(0f32, 1.0, (3, 64, 64), &device).unwrap();
        let mut mask = vec![0f32; 64 * 64];
        for y in 16..48 {
            for x in 20..44 {
                mask[y * 64 + x] = 1.0;
            }
        }
        let mask = Tensor::from_vec(mask, (64, 64), &device).unwrap();
        let schedule = NoiseSchedule::new(c.scheduler.common());
        let prediction = c.scheduler.common().prediction_type;
        let mut optimiser = AdamW::new(
            weights.trainable().unwrap(),
            AdamWConfig {
                lr: 1e-3,
                ..Default::default()
            },
        )
        .unwrap();
        let mut totals = Vec::new();
        for _ in 0..5 {
            let conditioning = encode();
            let example = CustomizationExample {
                latents: &latents,
                image: &image,
                mask: &mask,
                camera: camera(0.1),
                references: &references,
                reference_cameras: &reference_cameras,
                conditioning: &conditioning,
                timestep: 700,
                noise: &noise,
            };
            let loss = customization_loss(
                &c.unet,
                &blocks,
                &schedule,
                prediction,
                &LossWeights::default(),
                &example,
                &mut Jitter::None,
            )
            .unwrap();
            totals.push(loss.total.to_scalar::<f32>().unwrap());
            optimiser.backward_step(&loss.total).unwrap();
        }
        assert!(totals[4] < totals[0], "{totals:?}");

        // Every trainable tensor moved (the decoders and fusions from their fresh values, the
        // token row from its initial word); the frozen networks compute exactly as before.
        let trainable_after = weights.tensors().unwrap();
        for (name, before) in &trainable_before {
            let moved = max_abs_diff(before, &trainable_after[name]);
            assert!(moved > 0.0, "{name} did not change");
        }
        let unet_after = c.unet.forward(&probe, &t, &plain_prompt, None).unwrap();
        let diff = (unet_before - unet_after)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap();
        assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0);
        let prompt_after = c.encode_prompt("a photo of a bear").unwrap();
        let diff = (plain_prompt - prompt_after)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap();
        assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0);
    }
}
