//! The VAE's two halves: the encoder (image → latent moments) and the decoder
//! (latents → image), with diffusers' weight names.

use candle_core::{Result, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, GroupNorm, Module, VarBuilder};

use super::config::VaeConfig;
use super::mid_block::{MidBlock, VAE_EPS, vae_resnet};
use crate::model::blocks::{Downsample2D, DownsamplePadding, ResnetBlock2D, Upsample2D};

/// A 3×3 same-size convolution.
fn conv3x3(vb: VarBuilder, cin: usize, cout: usize) -> Result<Conv2d> {
    let cfg = Conv2dConfig {
        padding: 1,
        ..Default::default()
    };
    candle_nn::conv2d(cin, cout, 3, cfg, vb)
}

/// Channels of the first level; an empty `block_out_channels` is refused by
/// [`VaeConfig::validate`] and reported here too for configs built by hand.
fn shallowest(cfg: &VaeConfig) -> Result<usize> {
    cfg.block_out_channels
        .first()
        .copied()
        .ok_or_else(|| candle_core::Error::Msg("VAE block_out_channels is empty".into()))
}

/// `conv_norm_out` → SiLU → `conv_out`, the head of both halves.
#[derive(Clone, Debug)]
struct OutputHead {
    norm: GroupNorm,
    conv: Conv2d,
}

impl OutputHead {
    fn new(vb: &VarBuilder, groups: usize, cin: usize, cout: usize) -> Result<Self> {
        Ok(Self {
            norm: candle_nn::group_norm(groups, cin, VAE_EPS, vb.pp("conv_norm_out"))?,
            conv: conv3x3(vb.pp("conv_out"), cin, cout)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.conv.forward(&self.norm.forward(x)?.silu()?)
    }
}

/// One level: residual blocks, then an optional resolution change.
#[derive(Clone, Debug)]
struct Level<S> {
    resnets: Vec<ResnetBlock2D>,
    sampler: Option<S>,
}

impl<S> Level<S> {
    /// `count` resnets under `vb.resnets`, the first from `cin`, all to `cout`.
    fn resnets(
        vb: &VarBuilder,
        count: usize,
        cin: usize,
        cout: usize,
        groups: usize,
    ) -> Result<Vec<ResnetBlock2D>> {
        (0..count)
            .map(|j| {
                let cfg = vae_resnet(if j == 0 { cin } else { cout }, cout, groups);
                ResnetBlock2D::new(vb.pp("resnets").pp(j), cfg)
            })
            .collect()
    }

    fn apply_resnets(&self, x: &Tensor) -> Result<Tensor> {
        self.resnets
            .iter()
            .try_fold(x.clone(), |h, r| r.forward(&h, None))
    }
}

/// diffusers' VAE `Encoder`: `conv_in`, `down_blocks` (`DownEncoderBlock2D`), `mid_block`,
/// output head to `2·latent_channels` moments.
#[derive(Clone, Debug)]
pub(super) struct Encoder {
    conv_in: Conv2d,
    levels: Vec<Level<Downsample2D>>,
    mid: MidBlock,
    head: OutputHead,
}

impl Encoder {
    pub fn new(vb: VarBuilder, cfg: &VaeConfig) -> Result<Self> {
        let channels = &cfg.block_out_channels;
        let groups = cfg.norm_num_groups;
        let first = shallowest(cfg)?;
        let conv_in = conv3x3(vb.pp("conv_in"), cfg.in_channels, first)?;
        let mut levels = Vec::with_capacity(channels.len());
        let mut cin = first;
        for (i, &cout) in channels.iter().enumerate() {
            let block = vb.pp("down_blocks").pp(i);
            let resnets =
                Level::<Downsample2D>::resnets(&block, cfg.layers_per_block, cin, cout, groups)?;
            let sampler = (i + 1 < channels.len())
                .then(|| {
                    let vb = block.pp("downsamplers").pp(0);
                    Downsample2D::new(vb, cout, cout, DownsamplePadding::BottomRight)
                })
                .transpose()?;
            levels.push(Level { resnets, sampler });
            cin = cout;
        }
        let deepest = cfg.deepest_channels();
        Ok(Self {
            conv_in,
            levels,
            mid: MidBlock::new(
                vb.pp("mid_block"),
                deepest,
                groups,
                cfg.mid_block_add_attention,
            )?,
            head: OutputHead::new(&vb, groups, deepest, 2 * cfg.latent_channels)?,
        })
    }

    /// `[B, in, H, W]` → `[B, 2·latent, H/2^(levels−1), W/2^(levels−1)]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = self.conv_in.forward(x)?;
        for level in &self.levels {
            h = level.apply_resnets(&h)?;
            if let Some(down) = &level.sampler {
                h = down.forward(&h)?;
            }
        }
        self.head.forward(&self.mid.forward(&h)?)
    }
}

/// diffusers' VAE `Decoder`: `conv_in`, `mid_block`, `up_blocks` (`UpDecoderBlock2D`, one
/// more resnet per level than the encoder), output head to `out_channels`.
#[derive(Clone, Debug)]
pub(super) struct Decoder {
    conv_in: Conv2d,
    mid: MidBlock,
    levels: Vec<Level<Upsample2D>>,
    head: OutputHead,
}

impl Decoder {
    pub fn new(vb: VarBuilder, cfg: &VaeConfig) -> Result<Self> {
        let groups = cfg.norm_num_groups;
        let deepest = cfg.deepest_channels();
        let conv_in = conv3x3(vb.pp("conv_in"), cfg.latent_channels, deepest)?;
        let mid = MidBlock::new(
            vb.pp("mid_block"),
            deepest,
            groups,
            cfg.mid_block_add_attention,
        )?;
        let reversed: Vec<usize> = cfg.block_out_channels.iter().rev().copied().collect();
        let mut levels = Vec::with_capacity(reversed.len());
        let mut cin = deepest;
        for (i, &cout) in reversed.iter().enumerate() {
            let block = vb.pp("up_blocks").pp(i);
            let count = cfg.layers_per_block + 1;
            let resnets = Level::<Upsample2D>::resnets(&block, count, cin, cout, groups)?;
            let sampler = (i + 1 < reversed.len())
                .then(|| Upsample2D::new(block.pp("upsamplers").pp(0), cout, cout))
                .transpose()?;
            levels.push(Level { resnets, sampler });
            cin = cout;
        }
        let head = OutputHead::new(&vb, groups, shallowest(cfg)?, cfg.out_channels)?;
        Ok(Self {
            conv_in,
            mid,
            levels,
            head,
        })
    }

    /// `[B, latent, h, w]` → `[B, out, h·2^(levels−1), w·2^(levels−1)]`.
    pub fn forward(&self, z: &Tensor) -> Result<Tensor> {
        let mut h = self.mid.forward(&self.conv_in.forward(z)?)?;
        for level in &self.levels {
            h = level.apply_resnets(&h)?;
            if let Some(up) = &level.sampler {
                h = up.forward(&h, None)?;
            }
        }
        self.head.forward(&h)
    }
}
