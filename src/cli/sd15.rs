//! The Stable Diffusion 1.5 + AnimateDiff (v1.5-2 motion adapter) configuration built in memory
//! with seeded random weights — for benchmarking the real network sizes without downloading
//! a checkpoint. The weights are meaningless; the shapes and the arithmetic are SD-1.5's.

use std::path::Path;

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::VarBuilder;
use candle_nn::var_builder::SimpleBackend;
use serde_json::json;

use super::error::Result;
use crate::diffusion::{NoiseGenerator, SchedulerConfig};
use crate::model::clip::{ClipTextConfig, ClipTextModel};
use crate::model::motion_adapter::{MotionAdapterConfig, MotionModules};
use crate::model::tokenizer::ClipTokenizer;
use crate::model::unet::UNet;
use crate::model::unet::config::UNetConfig;
use crate::model::vae::{AutoencoderKL, VaeConfig};
use crate::model::{ComputeSettings, ModelError};
use crate::mvcustom::DiffusionComponents;

/// Where the configurations claim to come from, in error messages.
const ROOT: &str = "<sd15 random>";

/// Standard normals behind every random tensor: 2^20 of them, drawn once from the seed.
const BLOCK: usize = 1 << 20;

/// Seeded random tensors for any requested name and shape: matrices and kernels
/// N(0, 1/fan_in) (LeCun normal, so activations keep their scale through the layers),
/// one-dimensional `…weight` tensors (norm scales) ones, everything else (biases) zeros.
///
/// Drawing a billion normals one by one would take minutes, so the values of a tensor are a
/// block of [`BLOCK`] seeded standard normals, rotated by a hash of the tensor's name and
/// tiled: they depend only on the seed and the name, with the statistics that matter for
/// timing. It reports holding no tensor, so optional and legacy names are never taken.
#[derive(Clone)]
struct RandomWeights {
    /// The block of normals, twice over, so any rotation is one contiguous slice.
    doubled: Tensor,
}

impl RandomWeights {
    fn new(seed: u64) -> candle_core::Result<Self> {
        let block = NoiseGenerator::from_seed(seed)
            .randn(&[BLOCK], &Device::Cpu)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        Ok(Self {
            doubled: Tensor::cat(&[&block, &block], 0)?,
        })
    }

    /// `count` standard normals for the tensor `name`.
    fn normals(&self, name: &str, count: usize) -> candle_core::Result<Tensor> {
        let offset = (name_hash(name) % BLOCK as u64) as usize;
        let rotated = self.doubled.narrow(0, offset, BLOCK)?;
        rotated
            .repeat(count.div_ceil(BLOCK).max(1))?
            .narrow(0, 0, count)
    }
}

/// FNV-1a: a stable hash of a tensor name, so values do not depend on the order of requests.
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl SimpleBackend for RandomWeights {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        _hint: candle_nn::Init,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        let dims = shape.dims();
        let tensor = if dims.len() >= 2 {
            let fan_in: usize = dims[1..].iter().product();
            self.normals(name, shape.elem_count())?
                .reshape(dims)?
                .affine(1.0 / (fan_in.max(1) as f64).sqrt(), 0.0)?
        } else if dims.len() == 1 && name.ends_with("weight") {
            Tensor::ones(dims, DType::F32, &Device::Cpu)?
        } else {
            Tensor::zeros(dims, DType::F32, &Device::Cpu)?
        };
        tensor.to_dtype(dtype)?.to_device(device)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        Err(candle_core::Error::Msg(format!(
            "random weights need a shape for `{name}`"
        )))
    }

    fn contains_tensor(&self, _name: &str) -> bool {
        false
    }
}

fn random_vb(weights: &RandomWeights, settings: &ComputeSettings) -> VarBuilder<'static> {
    VarBuilder::from_backend(
        Box::new(weights.clone()),
        settings.dtype,
        settings.device.clone(),
    )
}

fn config<T: serde::de::DeserializeOwned>(value: serde_json::Value, file: &str) -> Result<T> {
    serde_json::from_value(value).map_err(|source| {
        ModelError::ConfigParse {
            path: Path::new(ROOT).join(file),
            source,
        }
        .into()
    })
}

/// SD-1.5's `unet/config.json` (diffusers' defaults but for the 768-wide CLIP text).
pub fn unet_config() -> UNetConfig {
    UNetConfig {
        cross_attention_dim: json!(768),
        ..UNetConfig::default()
    }
}

/// Builds SD-1.5 + AnimateDiff v1.5-2 with random weights (seeded by `seed`) and `tokenizer`.
pub fn components(
    tokenizer: ClipTokenizer,
    settings: &ComputeSettings,
    seed: u64,
) -> Result<DiffusionComponents> {
    let root = Path::new(ROOT);
    let unet_path = root.join("unet/config.json");
    let unet_cfg = unet_config();
    let layout = unet_cfg
        .layout(&unet_path)?
        .for_motion(&unet_path, &unet_cfg)?;
    let adapter_path = root.join("motion_adapter/config.json");
    let motion_layout = MotionAdapterConfig::default().layout(&adapter_path, &layout)?;
    let weights = RandomWeights::new(seed)?;
    let motion = MotionModules::new(random_vb(&weights, settings), &motion_layout)?;
    let unet = UNet::new(random_vb(&weights, settings), &layout, Some(motion))?;

    let clip_cfg: ClipTextConfig = config(
        json!({"hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12,
               "num_hidden_layers": 12, "max_position_embeddings": 77,
               "hidden_act": "quick_gelu", "vocab_size": 49408}),
        "text_encoder/config.json",
    )?;
    clip_cfg.validate(&root.join("text_encoder/config.json"))?;
    let text_encoder = ClipTextModel::new(random_vb(&weights, settings), &clip_cfg)?;

    let vae_cfg: VaeConfig = config(
        json!({"block_out_channels": [128, 256, 512, 512], "layers_per_block": 2,
               "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D",
                                    "DownEncoderBlock2D", "DownEncoderBlock2D"],
               "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D",
                                  "UpDecoderBlock2D", "UpDecoderBlock2D"],
               "latent_channels": 4, "norm_num_groups": 32, "sample_size": 512,
               "scaling_factor": 0.18215}),
        "vae/config.json",
    )?;
    vae_cfg.validate(&root.join("vae/config.json"))?;
    let vae = AutoencoderKL::new(random_vb(&weights, settings), &vae_cfg)?;

    let scheduler = SchedulerConfig::from_json_str(
        r#"{"_class_name": "DDIMScheduler", "beta_schedule": "scaled_linear",
            "beta_start": 0.00085, "beta_end": 0.012, "clip_sample": false,
            "set_alpha_to_one": false, "steps_offset": 1, "timestep_spacing": "leading",
            "num_train_timesteps": 1000, "prediction_type": "epsilon"}"#,
        &root.join("scheduler/scheduler_config.json"),
    )?;
    Ok(DiffusionComponents {
        tokenizer,
        text_encoder,
        unet,
        vae,
        scheduler,
        root: root.to_path_buf(),
        settings: settings.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_weights_follow_the_stated_initialisation_and_are_seeded_by_name() {
        let settings = ComputeSettings::default();
        let weights = RandomWeights::new(5).unwrap();
        let vb = random_vb(&weights, &settings);
        let values = |vb: &VarBuilder, name: &str, shape: (usize, usize)| {
            vb.get(shape, name)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        let w = values(&vb, "layer.weight", (64, 256));
        let again = random_vb(&RandomWeights::new(5).unwrap(), &settings);
        assert_eq!(w, values(&again, "layer.weight", (64, 256)));
        assert_ne!(w, values(&vb, "other.weight", (64, 256)));
        let reseeded = random_vb(&RandomWeights::new(6).unwrap(), &settings);
        assert_ne!(w, values(&reseeded, "layer.weight", (64, 256)));
        let var = w.iter().map(|v| v * v).sum::<f32>() / w.len() as f32;
        assert!(
            (var * 256.0 - 1.0).abs() < 0.05,
            "variance × fan_in = {}",
            var * 256.0
        );
        // Larger than the block: tiled, every element filled.
        let big = values(&vb, "big.weight", (3, BLOCK));
        assert_eq!(big.len(), 3 * BLOCK);
        assert_eq!(big[..BLOCK], big[BLOCK..2 * BLOCK]);
        let scale = vb.get(8, "norm.weight").unwrap().to_vec1::<f32>().unwrap();
        let bias = vb.get(8, "norm.bias").unwrap().to_vec1::<f32>().unwrap();
        assert_eq!((scale, bias), (vec![1.0; 8], vec![0.0; 8]));
        assert!(!vb.contains_tensor("layer.weight"));
    }

    #[test]
    fn the_sd15_unet_configuration_has_sd15_shapes() {
        let cfg = unet_config();
        let layout = cfg.layout(Path::new("unet/config.json")).unwrap();
        let channels: Vec<usize> = layout.down.iter().map(|d| d.out_channels).collect();
        assert_eq!(channels, vec![320, 640, 1280, 1280]);
        let attention = layout.down[0].attention.unwrap();
        assert_eq!((attention.heads, attention.cross_attention_dim), (8, 768));
        assert!(layout.down[3].attention.is_none());
    }
}
