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
        dir.load_with_config(variant, settings, VaeConfig::validate, Self::new)
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use candle_core::{DType, Device, Tensor};

    use super::*;
    use crate::model::test_support::{TempDir, max_abs_diff, random_weights, write_component};

    const CONFIG: &str = r#"{"in_channels": 3, "out_channels": 3, "latent_channels": 2,
        "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D"],
        "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D"],
        "block_out_channels": [8, 16], "layers_per_block": 1, "norm_num_groups": 4,
        "act_fn": "silu", "scaling_factor": 0.5, "shift_factor": 0.25}"#;
    const WEIGHTS: &str = "diffusion_pytorch_model.safetensors";

    fn weights(config: &str) -> HashMap<String, Tensor> {
        let cfg: VaeConfig = serde_json::from_str(config).unwrap();
        random_weights(|vb| AutoencoderKL::new(vb, &cfg))
    }

    fn load_folder(
        tag: &str,
        config: &str,
        tensors: &HashMap<String, Tensor>,
    ) -> Result<AutoencoderKL> {
        let tmp = TempDir::new(tag);
        write_component(tmp.path(), config, WEIGHTS, tensors);
        AutoencoderKL::load(
            &ComponentDir::new(tmp.path()),
            WeightVariant::Full,
            &ComputeSettings::default(),
        )
    }

    fn image(b: usize, h: usize, w: usize) -> Tensor {
        Tensor::randn(0f32, 0.5, (b, 3, h, w), &Device::Cpu).unwrap()
    }

    #[test]
    fn missing_files_are_named() {
        let tmp = TempDir::new("vae-empty");
        let dir = ComponentDir::new(tmp.path());
        let load = || AutoencoderKL::load(&dir, WeightVariant::Full, &ComputeSettings::default());
        assert!(matches!(
            load(),
            Err(ModelError::MissingFile { path }) if path.ends_with("config.json")
        ));
        std::fs::write(tmp.path().join("config.json"), CONFIG).unwrap();
        assert!(matches!(
            load(),
            Err(ModelError::MissingFile { path }) if path.ends_with(WEIGHTS)
        ));
    }

    #[test]
    fn missing_tensor_and_shape_mismatch_are_named() {
        // The decoder's levels have layers_per_block + 1 resnets: resnets.1 must exist.
        let mut w = weights(CONFIG);
        w.remove("decoder.up_blocks.1.resnets.1.conv2.bias")
            .unwrap();
        match load_folder("vae-missing", CONFIG, &w) {
            Err(ModelError::MissingTensor { tensor, files }) => {
                assert_eq!(tensor, "decoder.up_blocks.1.resnets.1.conv2.bias");
                assert!(files[0].ends_with(WEIGHTS));
            }
            other => panic!("expected MissingTensor, got {other:?}"),
        }
        let mut w = weights(CONFIG);
        w.insert(
            "encoder.conv_out.weight".into(),
            Tensor::zeros((6, 16, 3, 3), DType::F32, &Device::Cpu).unwrap(),
        );
        match load_folder("vae-shape", CONFIG, &w) {
            Err(ModelError::ShapeMismatch {
                tensor,
                expected,
                found,
                ..
            }) => {
                assert_eq!(tensor, "encoder.conv_out.weight");
                assert_eq!(expected, vec![4, 16, 3, 3]);
                assert_eq!(found, vec![6, 16, 3, 3]);
            }
            other => panic!("expected ShapeMismatch, got {other:?}"),
        }
    }

    #[test]
    fn unsupported_config_values_are_named() {
        let w = weights(CONFIG);
        let cases = [
            (
                CONFIG.replacen("\"DownEncoderBlock2D\"]", "\"Foo\"]", 1),
                "down_block_types[1]",
                "Foo",
            ),
            (
                CONFIG.replacen("\"UpDecoderBlock2D\",", "\"AttnUpDecoderBlock2D\",", 1),
                "up_block_types[0]",
                "AttnUpDecoderBlock2D",
            ),
            (CONFIG.replace("\"silu\"", "\"gelu\""), "act_fn", "gelu"),
            (
                CONFIG.replace("\"norm_num_groups\": 4", "\"norm_num_groups\": 3"),
                "norm_num_groups",
                "3",
            ),
            (
                CONFIG.replace("[8, 16]", "[8, 16, 16]"),
                "down_block_types",
                "2 entries",
            ),
        ];
        for (config, expected_field, expected_value) in cases {
            match load_folder("vae-unsupported", &config, &w) {
                Err(ModelError::UnsupportedConfig { path, field, value }) => {
                    assert!(path.ends_with("config.json"));
                    assert_eq!(field, expected_field);
                    assert!(value.contains(expected_value), "{value}");
                }
                other => panic!("expected UnsupportedConfig for {expected_field}, got {other:?}"),
            }
        }
    }

    #[test]
    fn shapes_follow_the_levels() {
        let vae = load_folder("vae-shapes", CONFIG, &weights(CONFIG)).unwrap();
        assert_eq!(vae.downscale_factor(), 2);
        let dist = vae.encode(&image(2, 16, 12)).unwrap();
        assert_eq!(dist.mean.dims(), &[2, 2, 8, 6]);
        assert_eq!(dist.logvar.dims(), &[2, 2, 8, 6]);
        let decoded = vae.decode(&dist.mean).unwrap();
        assert_eq!(decoded.dims(), &[2, 3, 16, 12]);
        assert!(matches!(
            vae.encode(&Tensor::zeros((1, 4, 8, 8), DType::F32, &Device::Cpu).unwrap()),
            Err(ModelError::InvalidInput { .. })
        ));
        assert!(matches!(
            vae.decode(&Tensor::zeros((2, 8, 8), DType::F32, &Device::Cpu).unwrap()),
            Err(ModelError::InvalidInput { .. })
        ));
    }

    #[test]
    fn scaled_helpers_apply_scaling_and_shift() {
        let vae = load_folder("vae-scaled", CONFIG, &weights(CONFIG)).unwrap();
        let img = image(1, 8, 8);
        let mean = vae.encode(&img).unwrap().mean;
        let scaled = vae.encode_scaled::<rand::rngs::StdRng>(&img, None).unwrap();
        let expected = ((mean - 0.25).unwrap() * 0.5).unwrap();
        assert!(max_abs_diff(&scaled, &expected) < 1e-6);
        let z = Tensor::randn(0f32, 1.0, (1, 2, 4, 4), &Device::Cpu).unwrap();
        let via_helper = vae.decode_scaled(&z).unwrap();
        let direct = vae.decode(&((&z / 0.5).unwrap() + 0.25).unwrap()).unwrap();
        assert!(max_abs_diff(&via_helper, &direct) < 1e-5);
    }

    #[test]
    fn optional_parts_need_no_weights() {
        let config = CONFIG.replace(
            "\"act_fn\"",
            "\"use_quant_conv\": false, \"use_post_quant_conv\": false, \
             \"mid_block_add_attention\": false, \"act_fn\"",
        );
        let w = weights(&config);
        assert!(!w.contains_key("quant_conv.weight"));
        assert!(!w.keys().any(|k| k.contains("attentions")));
        let vae = load_folder("vae-optional", &config, &w).unwrap();
        assert_eq!(
            vae.decode(&vae.encode(&image(1, 8, 8)).unwrap().mean)
                .unwrap()
                .dims(),
            &[1, 3, 8, 8]
        );
    }

    #[test]
    fn deprecated_attention_names_load_the_same_network() {
        let w = weights(CONFIG);
        let renames = [
            ("to_q", "query"),
            ("to_k", "key"),
            ("to_v", "value"),
            ("to_out.0", "proj_attn"),
        ];
        let legacy: HashMap<String, Tensor> = w
            .iter()
            .map(|(name, t)| {
                let mut name = name.clone();
                let mut t = t.clone();
                for (new, old) in renames {
                    if name.contains(&format!("attentions.0.{new}.")) {
                        name = name.replace(new, old);
                        // Older conversions store the projections as 1×1 convolutions.
                        if t.rank() == 2 {
                            t = t.unsqueeze(2).unwrap().unsqueeze(3).unwrap();
                        }
                    }
                }
                (name, t)
            })
            .collect();
        assert!(legacy.contains_key("decoder.mid_block.attentions.0.proj_attn.weight"));
        let a = load_folder("vae-new-names", CONFIG, &w).unwrap();
        let b = load_folder("vae-old-names", CONFIG, &legacy).unwrap();
        let img = image(1, 8, 8);
        let (da, db) = (a.encode(&img).unwrap(), b.encode(&img).unwrap());
        assert_eq!(max_abs_diff(&da.mean, &db.mean), 0.0);
        assert_eq!(
            max_abs_diff(&a.decode(&da.mean).unwrap(), &b.decode(&db.mean).unwrap()),
            0.0
        );
    }

    #[test]
    fn half_precision_tracks_f32() {
        let tmp = TempDir::new("vae-dtypes");
        write_component(tmp.path(), CONFIG, WEIGHTS, &weights(CONFIG));
        let dir = ComponentDir::new(tmp.path());
        let img = image(1, 8, 8);
        let run = |dtype: DType| {
            let settings = ComputeSettings {
                device: Device::Cpu,
                dtype,
            };
            let vae = AutoencoderKL::load(&dir, WeightVariant::Full, &settings).unwrap();
            let mean = vae.encode(&img.to_dtype(dtype).unwrap()).unwrap().mean;
            (mean.clone(), vae.decode(&mean).unwrap())
        };
        let (mean32, dec32) = run(DType::F32);
        // candle's CPU convolution has no bf16 kernel; bf16 is for GPU devices.
        let (mean, dec) = run(DType::F16);
        assert_eq!(dec.dtype(), DType::F16);
        assert!(max_abs_diff(&mean, &mean32) < 2e-2, "f16 mean");
        assert!(max_abs_diff(&dec, &dec32) < 4e-2, "f16 decoded");
    }
}
