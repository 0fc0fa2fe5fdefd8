//! Monocular depth estimation for depth-aware feature rendering when the scene gives no depth:
//! a [`DepthEstimator`] turns an image into *relative inverse depth* (larger is nearer, known
//! only up to an unknown scale and shift); the method layer aligns it to the scene.
//!
//! [`DepthAnything`] is Depth-Anything-V2 (candle-transformers' `depth_anything_v2` on its
//! DINOv2 backbone) with weights from a user folder:
//!
//! ```text
//! depth/
//!   config.json   {"encoder": "vits", "weights": ["dinov2_vits14.safetensors",
//!                                                 "depth_anything_v2_vits.safetensors"]}
//! ```
//!
//! `weights` are safetensors files of the folder, read together: the DINOv2 backbone's tensors
//! at the top level, in candle's DINOv2 naming (`patch_embed.proj.weight`, `blocks.0.…`,
//! `pos_embed`, `cls_token`, `norm.*` and the classification `head.*` its constructor asks
//! for), and the depth head under `depth_head.` — the layout of candle's Depth-Anything-V2
//! example. `encoder` is a size preset (`vits`, `vitb`, `vitl`); an explicit `architecture`
//! object can replace it. `input_size` (default 518, a multiple of the 14-pixel patch) is the
//! square side the image is resized to.

use std::fmt;
use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Module, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::depth_anything_v2::{DepthAnythingV2, DepthAnythingV2Config};
use candle_transformers::models::dinov2::DinoVisionTransformer;
use serde::Deserialize;

use super::error::{ModelError, Result};
use super::load::{ComponentDir, ComputeSettings, unsupported};
use crate::grid::Grid;

/// DINOv2's patch side in pixels: the input side must be a multiple of it.
const PATCH: usize = 14;
/// ImageNet normalisation the backbone was trained with.
const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const STD: [f32; 3] = [0.229, 0.224, 0.225];

/// A relative inverse-depth map, row-major `[height, width]`, covering a whole image: larger
/// values are nearer; the true inverse depth is `scale · value + shift` for unknown constants.
/// Its shape and values are read through the [`Grid`] it dereferences to.
#[derive(Clone, Debug, PartialEq)]
pub struct InverseDepth(Grid<f32>);

impl InverseDepth {
    /// A map from its values; they must be finite and `width · height` in number.
    pub fn new(width: u32, height: u32, data: Vec<f32>) -> Result<Self> {
        let found = data.len();
        let grid = Grid::new(width, height, data).map_err(|_| ModelError::InvalidInput {
            name: "inverse depth".into(),
            reason: format!("{found} values for a {width}×{height} map"),
        })?;
        if let Some((index, value)) = grid.data().iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(ModelError::InvalidInput {
                name: "inverse depth".into(),
                reason: format!("value {index} is not finite: {value}"),
            });
        }
        Ok(Self(grid))
    }
}

impl Deref for InverseDepth {
    type Target = Grid<f32>;

    fn deref(&self) -> &Grid<f32> {
        &self.0
    }
}

/// Estimates relative inverse depth from one image.
pub trait DepthEstimator: Send + Sync + fmt::Debug {
    /// The relative inverse depth of `image`, `[3, H, W]` RGB with values in [0, 1] (any
    /// device or dtype). The map covers the whole image at a resolution of the estimator's
    /// choosing.
    fn estimate(&self, image: &Tensor) -> Result<InverseDepth>;
}

/// Depth-Anything-V2 size presets (the released checkpoints).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DepthEncoder {
    /// ViT-S/14 backbone.
    Vits,
    /// ViT-B/14 backbone.
    Vitb,
    /// ViT-L/14 backbone.
    Vitl,
}

/// The shape of a Depth-Anything-V2 network.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DepthAnythingArchitecture {
    /// Transformer blocks of the DINOv2 backbone.
    pub depth: usize,
    /// Backbone width.
    pub embed_dim: usize,
    /// Backbone attention heads.
    pub num_heads: usize,
    /// Channels of the head's four reassembled feature maps.
    pub out_channels: [usize; 4],
    /// Channels of the head's fusion blocks.
    pub features: usize,
    /// The four backbone blocks the head reads (0-based).
    pub layer_ids: [usize; 4],
}

impl DepthEncoder {
    /// The architecture of the preset.
    pub fn architecture(self) -> DepthAnythingArchitecture {
        let (depth, embed_dim, num_heads, out_channels, features, layer_ids) = match self {
            Self::Vits => (12, 384, 6, [48, 96, 192, 384], 64, [2, 5, 8, 11]),
            Self::Vitb => (12, 768, 12, [96, 192, 384, 768], 128, [2, 5, 8, 11]),
            Self::Vitl => (24, 1024, 16, [256, 512, 1024, 1024], 256, [4, 11, 17, 23]),
        };
        DepthAnythingArchitecture {
            depth,
            embed_dim,
            num_heads,
            out_channels,
            features,
            layer_ids,
        }
    }
}

fn default_input_size() -> usize {
    518
}

/// `config.json` of a depth-estimator folder (see the module docs).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DepthAnythingConfig {
    /// A size preset; exactly one of `encoder` and `architecture` is given.
    #[serde(default)]
    pub encoder: Option<DepthEncoder>,
    /// An explicit architecture.
    #[serde(default)]
    pub architecture: Option<DepthAnythingArchitecture>,
    /// The safetensors files of the folder holding the backbone and the head.
    pub weights: Vec<String>,
    /// Square side, in pixels, images are resized to (a multiple of 14).
    #[serde(default = "default_input_size")]
    pub input_size: usize,
}

impl DepthAnythingConfig {
    /// The checked architecture; `path` names the file in errors.
    pub fn resolve(&self, path: &Path) -> Result<DepthAnythingArchitecture> {
        let arch = match (&self.encoder, &self.architecture) {
            (Some(e), None) => e.architecture(),
            (None, Some(a)) => a.clone(),
            _ => {
                return Err(unsupported(
                    path,
                    "encoder / architecture",
                    "exactly one of the two must be given",
                ));
            }
        };
        check_architecture(&arch, self.input_size).map_err(|(field, value)| {
            ModelError::UnsupportedConfig {
                path: path.to_path_buf(),
                field: field.into(),
                value,
            }
        })?;
        if self.weights.is_empty() {
            return Err(unsupported(
                path,
                "weights",
                "[] (name the safetensors files)",
            ));
        }
        Ok(arch)
    }
}

/// The field and value of the first inconsistency of `arch` at `input_size`.
fn check_architecture(
    arch: &DepthAnythingArchitecture,
    input_size: usize,
) -> std::result::Result<(), (&'static str, String)> {
    if input_size == 0 || !input_size.is_multiple_of(PATCH) {
        return Err((
            "input_size",
            format!("{input_size} (a positive multiple of 14)"),
        ));
    }
    if arch.num_heads == 0 || !arch.embed_dim.is_multiple_of(arch.num_heads) {
        return Err((
            "num_heads",
            format!("{} for width {}", arch.num_heads, arch.embed_dim),
        ));
    }
    if let Some(id) = arch.layer_ids.iter().find(|&&id| id >= arch.depth) {
        return Err(("layer_ids", format!("{id} with {} blocks", arch.depth)));
    }
    Ok(())
}

/// Depth-Anything-V2: DINOv2 backbone + DPT head, predicting relative inverse depth.
///
/// candle-transformers' head keeps some layers as `Box<dyn Module>`, which is neither `Send`
/// nor `Sync`, while an estimator must be shareable with the plugin's task threads. So this
/// keeps the (memory-mapped or in-memory) weights and assembles the network for each
/// estimate — once per generation, cheap next to sampling. Construction checks that the
/// weights build.
pub struct DepthAnything {
    weights: VarBuilder<'static>,
    arch: DepthAnythingArchitecture,
    input_size: usize,
}

impl fmt::Debug for DepthAnything {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DepthAnything")
            .field("arch", &self.arch)
            .field("input_size", &self.input_size)
            .field("device", self.weights.device())
            .field("dtype", &self.weights.dtype())
            .finish_non_exhaustive()
    }
}

impl DepthAnything {
    /// Loads the estimator of the folder `dir` (see the module docs) on `settings`' device
    /// and dtype; errors name the file, field or tensor at fault.
    pub fn load(dir: &Path, settings: &ComputeSettings) -> Result<Self> {
        let dir = ComponentDir::new(dir);
        let (config, path) = dir.json::<DepthAnythingConfig>("config.json")?;
        let arch = config.resolve(&path)?;
        dir.named_weights(&config.weights, settings)?
            .build(|vb| Self::new(vb, &arch, config.input_size))
    }

    /// The estimator over the weights `vb` (backbone at the top level, head under
    /// `depth_head`), checked by building the network once.
    pub fn new(
        vb: VarBuilder<'static>,
        arch: &DepthAnythingArchitecture,
        input_size: usize,
    ) -> candle_core::Result<Self> {
        if let Err((field, value)) = check_architecture(arch, input_size) {
            candle_core::bail!("depth estimator `{field}` = {value}");
        }
        let estimator = Self {
            weights: vb,
            arch: arch.clone(),
            input_size,
        };
        estimator.network()?;
        Ok(estimator)
    }

    /// Assembles the network from the weights.
    fn network(&self) -> candle_core::Result<DepthAnythingV2> {
        let arch = &self.arch;
        let backbone = DinoVisionTransformer::new(
            self.weights.clone(),
            arch.depth,
            arch.embed_dim,
            arch.num_heads,
        )?;
        let config = DepthAnythingV2Config::new(
            arch.out_channels,
            arch.embed_dim,
            arch.features,
            false,
            false,
            arch.layer_ids.to_vec(),
            self.input_size,
            self.input_size / PATCH,
        );
        DepthAnythingV2::new(Arc::new(backbone), config, self.weights.clone())
    }
}

impl DepthEstimator for DepthAnything {
    /// Resizes the image to `input_size²` (bilinear), normalises it with ImageNet's mean and
    /// standard deviation as the backbone expects and returns the network's `input_size²`
    /// inverse-depth map.
    fn estimate(&self, image: &Tensor) -> Result<InverseDepth> {
        let (c, h, w) = image.dims3().map_err(|_| ModelError::InvalidInput {
            name: "image".into(),
            reason: format!("shape {:?}, expected [3, H, W]", image.dims()),
        })?;
        if c != 3 || h == 0 || w == 0 {
            return Err(ModelError::InvalidInput {
                name: "image".into(),
                reason: format!("shape {:?}, expected [3, H, W]", image.dims()),
            });
        }
        let s = self.input_size;
        let device = self.weights.device();
        let mean = Tensor::new(&MEAN, device)?.reshape((1, 3, 1, 1))?;
        let std = Tensor::new(&STD, device)?.reshape((1, 3, 1, 1))?;
        let x = image
            .to_device(device)?
            .to_dtype(DType::F32)?
            .unsqueeze(0)?
            .upsample_bilinear2d(s, s, false)?
            .broadcast_sub(&mean)?
            .broadcast_div(&std)?
            .to_dtype(self.weights.dtype())?;
        let out = self
            .network()
            .map_err(|e| ModelError::from_weights(e, &[]))?
            .forward(&x)?;
        // candle-transformers' last 1×1 convolution pads by one pixel, so its map is
        // (s + 2)²; the ring is not part of the image: crop back to s².
        let (_, _, out_h, out_w) = out.dims4()?;
        if out_h < s || out_w < s || !(out_h - s).is_multiple_of(2) || out_h - s != out_w - s {
            return Err(ModelError::InvalidInput {
                name: "depth estimator output".into(),
                reason: format!("{out_h}×{out_w} for a {s}² input"),
            });
        }
        let border = (out_h - s) / 2;
        let out = out.narrow(2, border, s)?.narrow(3, border, s)?;
        let data = out.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        InverseDepth::new(s as u32, s as u32, data)
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Device;
    use candle_nn::VarMap;

    use super::*;

    fn tiny() -> DepthAnythingArchitecture {
        DepthAnythingArchitecture {
            depth: 4,
            embed_dim: 16,
            num_heads: 2,
            out_channels: [4, 8, 8, 16],
            features: 8,
            layer_ids: [0, 1, 2, 3],
        }
    }

    #[test]
    fn random_tiny_network_estimates_a_map_of_the_input_size() {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let net = DepthAnything::new(vb, &tiny(), 42).unwrap();
        let image = Tensor::rand(0f32, 1.0, (3, 20, 30), &Device::Cpu).unwrap();
        let depth = net.estimate(&image).unwrap();
        assert_eq!((depth.width(), depth.height()), (42, 42));
        // The head ends in a ReLU: inverse depth is never negative.
        assert!(depth.data().iter().all(|&v| v >= 0.0 && v.is_finite()));
        // Deterministic for fixed weights.
        assert_eq!(net.estimate(&image).unwrap(), depth);
        assert!(net.estimate(&image.narrow(0, 0, 2).unwrap()).is_err());
    }

    /// The plugin shares estimators with its task threads.
    #[test]
    fn the_estimator_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<DepthAnything>();
    }

    #[test]
    fn configs_resolve_presets_and_reject_inconsistencies() {
        let parse = |json: &str| serde_json::from_str::<DepthAnythingConfig>(json).unwrap();
        let path = Path::new("depth/config.json");
        let preset = parse(r#"{"encoder": "vitl", "weights": ["a.safetensors"]}"#);
        assert_eq!(preset.input_size, 518);
        assert_eq!(preset.resolve(path).unwrap().layer_ids, [4, 11, 17, 23]);
        let field = |json: &str| match parse(json).resolve(path) {
            Err(ModelError::UnsupportedConfig { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(r#"{"weights": ["a"]}"#), "encoder / architecture");
        assert_eq!(
            field(r#"{"encoder": "vits", "weights": ["a"], "input_size": 500}"#),
            "input_size"
        );
        assert_eq!(field(r#"{"encoder": "vits", "weights": []}"#), "weights");
        let bad_layers = r#"{"architecture": {"depth": 2, "embed_dim": 16, "num_heads": 2,
            "out_channels": [4, 8, 8, 16], "features": 8, "layer_ids": [0, 1, 2, 3]},
            "weights": ["a"]}"#;
        assert_eq!(field(bad_layers), "layer_ids");
    }

    #[test]
    fn loading_names_the_missing_file_and_tensor() {
        let dir = crate::model::test_support::TempDir::new("depth");
        let config = r#"{"architecture": {"depth": 4, "embed_dim": 16, "num_heads": 2,
            "out_channels": [4, 8, 8, 16], "features": 8, "layer_ids": [0, 1, 2, 3]},
            "weights": ["backbone.safetensors", "head.safetensors"], "input_size": 28}"#;
        std::fs::write(dir.path().join("config.json"), config).unwrap();
        let settings = ComputeSettings::default();
        assert!(matches!(
            DepthAnything::load(dir.path(), &settings),
            Err(ModelError::MissingFile { path }) if path.ends_with("backbone.safetensors")
        ));
        let mut tensors = crate::model::test_support::random_weights(|vb| {
            DepthAnything::new(vb, &tiny(), 28).map(|_| ())
        });
        let head: std::collections::HashMap<String, Tensor> = tensors
            .iter()
            .filter(|(k, _)| k.starts_with("depth_head."))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        tensors.retain(|k, _| !k.starts_with("depth_head."));
        tensors.remove("blocks.3.mlp.fc2.weight");
        candle_core::safetensors::save(&tensors, dir.path().join("backbone.safetensors")).unwrap();
        candle_core::safetensors::save(&head, dir.path().join("head.safetensors")).unwrap();
        match DepthAnything::load(dir.path(), &settings) {
            Err(ModelError::MissingTensor { tensor, files }) => {
                assert_eq!(tensor, "blocks.3.mlp.fc2.weight");
                assert_eq!(files.len(), 2);
            }
            other => panic!("{other:?}"),
        }
    }
}
