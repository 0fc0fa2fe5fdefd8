//! Resolution changes between UNet / VAE levels: diffusers' `Downsample2D` (a strided 3×3
//! convolution) and `Upsample2D` (nearest-neighbour ×2 then a 3×3 convolution), each with
//! its convolution stored as `conv`.

use candle_core::{Result, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, Module, VarBuilder};

/// How [`Downsample2D`] pads before its stride-2 convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DownsamplePadding {
    /// One pixel of zeros on every side (the UNet, diffusers `padding=1`).
    Symmetric,
    /// One column of zeros on the right and one row at the bottom, none elsewhere (the VAE
    /// encoder, diffusers `padding=0`, which pads `(0, 1, 0, 1)` itself).
    BottomRight,
}

/// Halves the spatial size with a 3×3 stride-2 convolution named `conv`.
#[derive(Clone, Debug)]
pub struct Downsample2D {
    conv: Conv2d,
    padding: DownsamplePadding,
}

impl Downsample2D {
    /// Builds the block from `vb` (e.g. `down_blocks.0.downsamplers.0`), mapping `in_channels`
    /// to `out_channels`.
    pub fn new(
        vb: VarBuilder,
        in_channels: usize,
        out_channels: usize,
        padding: DownsamplePadding,
    ) -> Result<Self> {
        let cfg = Conv2dConfig {
            padding: match padding {
                DownsamplePadding::Symmetric => 1,
                DownsamplePadding::BottomRight => 0,
            },
            stride: 2,
            ..Default::default()
        };
        let conv = candle_nn::conv2d(in_channels, out_channels, 3, cfg, vb.pp("conv"))?;
        Ok(Self { conv, padding })
    }

    /// `[B, C, H, W]` → `[B, out, ⌈H/2⌉, ⌈W/2⌉]` (for even sizes, exactly half).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self.padding {
            DownsamplePadding::Symmetric => self.conv.forward(x),
            DownsamplePadding::BottomRight => {
                let x = x.pad_with_zeros(3, 0, 1)?.pad_with_zeros(2, 0, 1)?;
                self.conv.forward(&x)
            }
        }
    }
}

/// Doubles the spatial size (or resizes to an explicit size) by nearest-neighbour
/// interpolation, then applies a 3×3 convolution named `conv`.
#[derive(Clone, Debug)]
pub struct Upsample2D {
    conv: Conv2d,
}

impl Upsample2D {
    /// Builds the block from `vb` (e.g. `up_blocks.0.upsamplers.0`), mapping `in_channels`
    /// to `out_channels`.
    pub fn new(vb: VarBuilder, in_channels: usize, out_channels: usize) -> Result<Self> {
        let cfg = Conv2dConfig {
            padding: 1,
            ..Default::default()
        };
        let conv = candle_nn::conv2d(in_channels, out_channels, 3, cfg, vb.pp("conv"))?;
        Ok(Self { conv })
    }

    /// `[B, C, H, W]` → `[B, out, 2H, 2W]`, or `[B, out, h, w]` when `output_size = Some((h, w))`
    /// (the UNet passes the skip connection's size when an odd size was halved). Nearest
    /// neighbour picks source index `⌊dst · in / out⌋`, as PyTorch's `interpolate` does.
    pub fn forward(&self, x: &Tensor, output_size: Option<(usize, usize)>) -> Result<Tensor> {
        let (_, _, h, w) = x.dims4()?;
        let (out_h, out_w) = output_size.unwrap_or((2 * h, 2 * w));
        let x = x.upsample_nearest2d(out_h, out_w)?;
        self.conv.forward(&x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use std::collections::HashMap;

    /// A `conv` whose 3×3 kernel copies each channel's centre tap: the convolution is then a
    /// pure resampling, so the block's output can be predicted by hand.
    fn centre_tap_conv(channels: usize) -> VarBuilder<'static> {
        let mut w = vec![0f32; channels * channels * 9];
        for c in 0..channels {
            w[(c * channels + c) * 9 + 4] = 1.0;
        }
        let dev = Device::Cpu;
        let mut map = HashMap::new();
        map.insert(
            "conv.weight".to_string(),
            Tensor::from_vec(w, (channels, channels, 3, 3), &dev).unwrap(),
        );
        map.insert(
            "conv.bias".to_string(),
            Tensor::zeros(channels, DType::F32, &dev).unwrap(),
        );
        VarBuilder::from_tensors(map, DType::F32, &dev)
    }

    /// `[1, 2, h, w]` holding 0, 1, 2… so every pixel is distinguishable.
    fn ramp(h: usize, w: usize) -> Tensor {
        Tensor::arange(0f32, (2 * h * w) as f32, &Device::Cpu)
            .unwrap()
            .reshape((1, 2, h, w))
            .unwrap()
    }

    fn planes(t: &Tensor) -> Vec<Vec<Vec<f32>>> {
        t.squeeze(0).unwrap().to_vec3::<f32>().unwrap()
    }

    #[test]
    fn symmetric_downsample_samples_even_pixels() {
        let down =
            Downsample2D::new(centre_tap_conv(2), 2, 2, DownsamplePadding::Symmetric).unwrap();
        let x = ramp(4, 6);
        let y = down.forward(&x).unwrap();
        assert_eq!(y.dims(), &[1, 2, 2, 3]);
        let (x, y) = (planes(&x), planes(&y));
        for c in 0..2 {
            for i in 0..2 {
                for j in 0..3 {
                    assert_eq!(y[c][i][j], x[c][2 * i][2 * j]);
                }
            }
        }
    }

    #[test]
    fn bottom_right_downsample_samples_odd_pixels() {
        let down =
            Downsample2D::new(centre_tap_conv(2), 2, 2, DownsamplePadding::BottomRight).unwrap();
        let x = ramp(4, 6);
        let y = down.forward(&x).unwrap();
        assert_eq!(y.dims(), &[1, 2, 2, 3]);
        let (x, y) = (planes(&x), planes(&y));
        for c in 0..2 {
            for i in 0..2 {
                for j in 0..3 {
                    assert_eq!(y[c][i][j], x[c][2 * i + 1][2 * j + 1]);
                }
            }
        }
    }

    #[test]
    fn upsample_repeats_pixels_and_honours_output_size() {
        let up = Upsample2D::new(centre_tap_conv(2), 2, 2).unwrap();
        let x = ramp(2, 3);
        let y = up.forward(&x, None).unwrap();
        assert_eq!(y.dims(), &[1, 2, 4, 6]);
        let (xp, yp) = (planes(&x), planes(&y));
        for c in 0..2 {
            for i in 0..4 {
                for j in 0..6 {
                    assert_eq!(yp[c][i][j], xp[c][i / 2][j / 2]);
                }
            }
        }
        let odd = up.forward(&x, Some((3, 5))).unwrap();
        assert_eq!(odd.dims(), &[1, 2, 3, 5]);
    }
}
