//! diffusers' `ResnetBlock2D`: two GroupNorm → SiLU → 3×3 convolution stages with an optional
//! time-embedding injection between them and a residual connection.

use candle_core::{Result, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, GroupNorm, Linear, Module, VarBuilder};

/// Shape of one [`ResnetBlock2D`]; field names follow diffusers' constructor arguments.
///
/// Only diffusers' `time_embedding_norm = "default"` (the time embedding is added to the
/// features) is implemented; a model whose config asks for another mode must reject it
/// while reading that config.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ResnetConfig {
    /// Channels of the block's input.
    pub in_channels: usize,
    /// Channels of the block's output (a 1×1 `conv_shortcut` maps the input when they differ).
    pub out_channels: usize,
    /// Width of the time embedding projected by `time_emb_proj`; `None` for blocks without
    /// one (the VAE).
    pub temb_channels: Option<usize>,
    /// Groups of `norm1`.
    pub groups: usize,
    /// Groups of `norm2` (diffusers defaults it to `groups`).
    pub groups_out: usize,
    /// Epsilon of both group norms.
    pub eps: f64,
    /// The residual sum is divided by this (1.0 in SD and the VAE).
    pub output_scale_factor: f64,
}

impl ResnetConfig {
    /// A block from `in_channels` to `out_channels` with diffusers' defaults otherwise:
    /// 32 groups for both norms, eps 1e-6, output scale 1, and the given time-embedding width.
    pub fn new(in_channels: usize, out_channels: usize, temb_channels: Option<usize>) -> Self {
        Self {
            in_channels,
            out_channels,
            temb_channels,
            groups: 32,
            groups_out: 32,
            eps: 1e-6,
            output_scale_factor: 1.0,
        }
    }
}

/// The residual block of diffusers' UNet and VAE (`ResnetBlock2D`), weights `norm1`, `conv1`,
/// `time_emb_proj`, `norm2`, `conv2` and `conv_shortcut`.
#[derive(Clone, Debug)]
pub struct ResnetBlock2D {
    norm1: GroupNorm,
    conv1: Conv2d,
    time_emb_proj: Option<Linear>,
    norm2: GroupNorm,
    conv2: Conv2d,
    conv_shortcut: Option<Conv2d>,
    output_scale_factor: f64,
}

impl ResnetBlock2D {
    /// Builds the block from the tensors under `vb` (e.g. `down_blocks.0.resnets.1`).
    pub fn new(vb: VarBuilder, cfg: ResnetConfig) -> Result<Self> {
        let conv3 = Conv2dConfig {
            padding: 1,
            ..Default::default()
        };
        let norm1 = candle_nn::group_norm(cfg.groups, cfg.in_channels, cfg.eps, vb.pp("norm1"))?;
        let conv1 = candle_nn::conv2d(cfg.in_channels, cfg.out_channels, 3, conv3, vb.pp("conv1"))?;
        let time_emb_proj = cfg
            .temb_channels
            .map(|t| candle_nn::linear(t, cfg.out_channels, vb.pp("time_emb_proj")))
            .transpose()?;
        let norm2 =
            candle_nn::group_norm(cfg.groups_out, cfg.out_channels, cfg.eps, vb.pp("norm2"))?;
        let conv2 =
            candle_nn::conv2d(cfg.out_channels, cfg.out_channels, 3, conv3, vb.pp("conv2"))?;
        let conv_shortcut = (cfg.in_channels != cfg.out_channels)
            .then(|| {
                candle_nn::conv2d(
                    cfg.in_channels,
                    cfg.out_channels,
                    1,
                    Conv2dConfig::default(),
                    vb.pp("conv_shortcut"),
                )
            })
            .transpose()?;
        Ok(Self {
            norm1,
            conv1,
            time_emb_proj,
            norm2,
            conv2,
            conv_shortcut,
            output_scale_factor: cfg.output_scale_factor,
        })
    }

    /// Applies the block to `x` `[B, in, H, W]`, adding the projected `temb` `[B, temb]`
    /// (after SiLU, as diffusers does) when both the block and the call have one.
    /// Returns `[B, out, H, W]`. Dropout is an identity at inference.
    pub fn forward(&self, x: &Tensor, temb: Option<&Tensor>) -> Result<Tensor> {
        let h = self.norm1.forward(x)?.silu()?;
        let mut h = self.conv1.forward(&h)?;
        if let (Some(proj), Some(temb)) = (&self.time_emb_proj, temb) {
            let t = proj.forward(&temb.silu()?)?.unsqueeze(2)?.unsqueeze(3)?;
            h = h.broadcast_add(&t)?;
        }
        let h = self.norm2.forward(&h)?.silu()?;
        let h = self.conv2.forward(&h)?;
        let residual = match &self.conv_shortcut {
            Some(conv) => conv.forward(x)?,
            None => x.clone(),
        };
        let out = (residual + h)?;
        if self.output_scale_factor == 1.0 {
            Ok(out)
        } else {
            out / self.output_scale_factor
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_support::max_abs_diff;
    use candle_core::{DType, Device};
    use std::collections::HashMap;

    /// Weights for a block whose second convolution is zero, so the block reduces to its
    /// shortcut: the output must be `shortcut(x) / output_scale_factor` whatever `temb` is.
    fn zero_branch_weights(cin: usize, cout: usize, temb: usize) -> VarBuilder<'static> {
        let dev = Device::Cpu;
        let mut map = HashMap::new();
        let randn = |shape: &[usize]| Tensor::randn(0f32, 1.0, shape, &dev).unwrap();
        map.insert("norm1.weight".into(), randn(&[cin]));
        map.insert("norm1.bias".into(), randn(&[cin]));
        map.insert("conv1.weight".into(), randn(&[cout, cin, 3, 3]));
        map.insert("conv1.bias".into(), randn(&[cout]));
        map.insert("time_emb_proj.weight".into(), randn(&[cout, temb]));
        map.insert("time_emb_proj.bias".into(), randn(&[cout]));
        map.insert("norm2.weight".into(), randn(&[cout]));
        map.insert("norm2.bias".into(), randn(&[cout]));
        map.insert(
            "conv2.weight".into(),
            Tensor::zeros((cout, cout, 3, 3), DType::F32, &dev).unwrap(),
        );
        map.insert(
            "conv2.bias".into(),
            Tensor::zeros(cout, DType::F32, &dev).unwrap(),
        );
        // 1×1 shortcut doubling every input channel into output channel c % cin.
        let mut sc = vec![0f32; cout * cin];
        for c in 0..cout {
            sc[c * cin + c % cin] = 2.0;
        }
        map.insert(
            "conv_shortcut.weight".into(),
            Tensor::from_vec(sc, (cout, cin, 1, 1), &dev).unwrap(),
        );
        map.insert(
            "conv_shortcut.bias".into(),
            Tensor::zeros(cout, DType::F32, &dev).unwrap(),
        );
        VarBuilder::from_tensors(map, DType::F32, &dev)
    }

    #[test]
    fn identity_shortcut_when_channels_match() {
        let cfg = ResnetConfig {
            groups: 2,
            groups_out: 2,
            ..ResnetConfig::new(4, 4, Some(3))
        };
        let block = ResnetBlock2D::new(zero_branch_weights(4, 4, 3), cfg).unwrap();
        let x = Tensor::randn(0f32, 1.0, (2, 4, 5, 6), &Device::Cpu).unwrap();
        let temb = Tensor::randn(0f32, 1.0, (2, 3), &Device::Cpu).unwrap();
        let y = block.forward(&x, Some(&temb)).unwrap();
        assert!(max_abs_diff(&x, &y) < 1e-6);
    }

    #[test]
    fn projected_shortcut_and_output_scale() {
        let cfg = ResnetConfig {
            groups: 2,
            groups_out: 4,
            output_scale_factor: 4.0,
            ..ResnetConfig::new(2, 8, None)
        };
        let block = ResnetBlock2D::new(zero_branch_weights(2, 8, 3), cfg).unwrap();
        let x = Tensor::randn(0f32, 1.0, (1, 2, 3, 3), &Device::Cpu).unwrap();
        let y = block.forward(&x, None).unwrap();
        assert_eq!(y.dims(), &[1, 8, 3, 3]);
        // Each output channel c is 2·x[c % 2] / 4.
        let expected = Tensor::cat(&[&x, &x, &x, &x], 1).unwrap() * 0.5;
        assert!(max_abs_diff(&expected.unwrap(), &y) < 1e-6);
    }

    #[test]
    fn time_embedding_changes_the_output() {
        // With a non-zero second convolution the time embedding must reach the output.
        let dev = Device::Cpu;
        let cfg = ResnetConfig {
            groups: 1,
            groups_out: 1,
            ..ResnetConfig::new(2, 2, Some(3))
        };
        let mut map = HashMap::new();
        let randn = |shape: &[usize]| Tensor::randn(0f32, 1.0, shape, &dev).unwrap();
        for (name, shape) in [
            ("norm1.weight", vec![2]),
            ("norm1.bias", vec![2]),
            ("conv1.weight", vec![2, 2, 3, 3]),
            ("conv1.bias", vec![2]),
            ("time_emb_proj.weight", vec![2, 3]),
            ("time_emb_proj.bias", vec![2]),
            ("norm2.weight", vec![2]),
            ("norm2.bias", vec![2]),
            ("conv2.weight", vec![2, 2, 3, 3]),
            ("conv2.bias", vec![2]),
        ] {
            map.insert(name.to_string(), randn(&shape));
        }
        let block =
            ResnetBlock2D::new(VarBuilder::from_tensors(map, DType::F32, &dev), cfg).unwrap();
        let x = randn(&[1, 2, 4, 4]);
        let with = block.forward(&x, Some(&randn(&[1, 3]))).unwrap();
        let without = block.forward(&x, None).unwrap();
        assert!(max_abs_diff(&with, &without) > 1e-4);
    }
}
