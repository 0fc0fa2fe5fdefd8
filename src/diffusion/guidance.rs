//! Classifier-free guidance (Ho & Salimans, 2022) as diffusers pipelines apply it: the
//! unconditional and text-conditioned halves run as one batch `[uncond; text]`, and the guided
//! prediction is `uncond + g·(text − uncond)`. A scale of 1 or less disables it (one pass,
//! conditioned only), as `do_classifier_free_guidance = guidance_scale > 1` does in diffusers.

use candle_core::Tensor;

use super::error::{DiffusionError, Result};

/// The guidance scale g and the batching it implies.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClassifierFreeGuidance {
    scale: f64,
}

impl ClassifierFreeGuidance {
    /// Guidance with scale `scale` (finite).
    pub fn new(scale: f64) -> Result<Self> {
        if scale.is_finite() {
            Ok(Self { scale })
        } else {
            Err(DiffusionError::argument(
                "guidance_scale",
                format!("{scale} is not finite"),
            ))
        }
    }

    /// The scale g.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// Whether an unconditional pass runs (g > 1).
    pub fn is_active(&self) -> bool {
        self.scale > 1.0
    }

    /// The conditioning batch of one network call: `[uncond; text]` along dim 0 when active
    /// (then `uncond` is required and must match `text`'s shape), `text` otherwise.
    pub fn batch_conditioning(&self, text: &Tensor, uncond: Option<&Tensor>) -> Result<Tensor> {
        if !self.is_active() {
            return Ok(text.clone());
        }
        let uncond = uncond.ok_or_else(|| {
            DiffusionError::argument(
                "negative_prompt_embeds",
                format!("guidance scale {} > 1 needs unconditional embeddings (encode \"\" when there is no negative prompt)", self.scale),
            )
        })?;
        if uncond.dims() != text.dims() {
            return Err(DiffusionError::argument(
                "negative_prompt_embeds",
                format!(
                    "shape {:?} differs from `prompt_embeds` {:?}",
                    uncond.dims(),
                    text.dims()
                ),
            ));
        }
        Ok(Tensor::cat(&[uncond, text], 0)?)
    }

    /// The latent batch of one network call: the latents twice when active.
    pub fn batch_latents(&self, latents: &Tensor) -> Result<Tensor> {
        if self.is_active() {
            Ok(Tensor::cat(&[latents, latents], 0)?)
        } else {
            Ok(latents.clone())
        }
    }

    /// The guided prediction from a network output over the batch of
    /// [`ClassifierFreeGuidance::batch_latents`]: `uncond + g·(text − uncond)` when active,
    /// the output itself otherwise.
    pub fn combine(&self, output: &Tensor) -> Result<Tensor> {
        if !self.is_active() {
            return Ok(output.clone());
        }
        let batch = output.dim(0)?;
        if batch % 2 != 0 {
            return Err(DiffusionError::argument(
                "model_output",
                format!("batch {batch} is not [uncond; text] (odd size)"),
            ));
        }
        let uncond = output.narrow(0, 0, batch / 2)?;
        let text = output.narrow(0, batch / 2, batch / 2)?;
        Ok((&uncond + (&text - &uncond)?.affine(self.scale, 0.0)?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn guided_prediction_matches_hand_computation() {
        let g = ClassifierFreeGuidance::new(7.5).unwrap();
        // uncond = [1, -2], text = [3, 0.5] → uncond + 7.5·(text − uncond) = [16, 16.75].
        let out = Tensor::new(&[[1.0f32, -2.0], [3.0, 0.5]], &Device::Cpu).unwrap();
        let guided = g.combine(&out).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(guided, vec![vec![16.0, 16.75]]);
    }

    #[test]
    fn scale_one_is_a_single_conditioned_pass() {
        let g = ClassifierFreeGuidance::new(1.0).unwrap();
        assert!(!g.is_active());
        let text = Tensor::ones((1, 3), candle_core::DType::F32, &Device::Cpu).unwrap();
        assert_eq!(g.batch_conditioning(&text, None).unwrap().dims(), &[1, 3]);
        assert_eq!(g.batch_latents(&text).unwrap().dims(), &[1, 3]);
        let out = Tensor::new(&[[2.0f32, 4.0, 8.0]], &Device::Cpu).unwrap();
        assert_eq!(
            g.combine(&out).unwrap().to_vec2::<f32>().unwrap(),
            vec![vec![2.0, 4.0, 8.0]]
        );
    }

    #[test]
    fn active_guidance_orders_uncond_first_and_needs_it() {
        let g = ClassifierFreeGuidance::new(5.0).unwrap();
        let text = Tensor::ones((1, 2), candle_core::DType::F32, &Device::Cpu).unwrap();
        let uncond = Tensor::zeros((1, 2), candle_core::DType::F32, &Device::Cpu).unwrap();
        let batch = g.batch_conditioning(&text, Some(&uncond)).unwrap();
        assert_eq!(
            batch.to_vec2::<f32>().unwrap(),
            vec![vec![0.0, 0.0], vec![1.0, 1.0]]
        );
        assert!(matches!(
            g.batch_conditioning(&text, None),
            Err(DiffusionError::InvalidArgument { .. })
        ));
        assert!(ClassifierFreeGuidance::new(f64::NAN).is_err());
    }
}
