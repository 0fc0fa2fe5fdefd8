//! The UNet's down, mid and up blocks: diffusers' `CrossAttnDownBlock2D` / `DownBlock2D`,
//! `UNetMidBlock2DCrossAttn`, `CrossAttnUpBlock2D` / `UpBlock2D`, each optionally carrying the
//! AnimateDiff motion modules that `UNetMotionModel` places after every resnet / transformer
//! pair (its `*Motion` block variants).

use candle_core::{Result as CandleResult, Tensor};
use candle_nn::VarBuilder;

use super::config::{AttentionLayout, DownLayout, MidLayout, UNetLayout, UpLayout};
use crate::model::attention::AttentionSettings;
use crate::model::blocks::{Downsample2D, ResnetBlock2D, ResnetConfig, Upsample2D};
use crate::model::error::Result;
use crate::model::hook::{FeatureHook, HookKind};
use crate::model::motion::{MotionAttention, MotionModule};
use crate::model::transformer::{Transformer2DDims, Transformer2DModel};

/// What every block reads during one forward pass.
pub(crate) struct Pass<'a> {
    /// Time embedding per image, `[batch·frames, time_embed_dim]`.
    pub temb: &'a Tensor,
    /// Text embeddings per image, `[batch·frames, tokens, dim]`.
    pub context: &'a Tensor,
    /// Frames per batch item.
    pub frames: usize,
    /// How motion modules attend.
    pub motion: MotionAttention,
    /// Attention chunking.
    pub settings: &'a AttentionSettings,
}

/// The resnet / transformer / motion-module triples shared by all block kinds.
#[derive(Clone, Debug)]
struct Layers {
    resnets: Vec<ResnetBlock2D>,
    attentions: Vec<Transformer2DModel>,
    motion: Vec<MotionModule>,
}

impl Layers {
    /// Transformer `j` then motion module `j`, where present.
    fn mix(
        &self,
        j: usize,
        xs: Tensor,
        pass: &Pass<'_>,
        hook: &mut dyn FeatureHook,
    ) -> Result<Tensor> {
        let xs = match self.attentions.get(j) {
            Some(attn) => attn.forward(&xs, pass.context, pass.frames, pass.settings, hook)?,
            None => xs,
        };
        match self.motion.get(j) {
            Some(m) => m.forward(&xs, pass.frames, pass.motion, pass.settings, hook),
            None => Ok(xs),
        }
    }

    /// The spatial transformers, in execution order.
    fn transformers(&self) -> &[Transformer2DModel] {
        &self.attentions
    }

    fn hook_points(&self) -> Vec<(String, HookKind)> {
        let n = self.attentions.len().max(self.motion.len());
        (0..n)
            .flat_map(|j| {
                let spatial = self
                    .attentions
                    .get(j)
                    .into_iter()
                    .flat_map(|a| a.hook_names());
                let motion = self
                    .motion
                    .get(j)
                    .map(|m| (m.name().to_string(), HookKind::MotionModule));
                spatial.chain(motion).collect::<Vec<_>>()
            })
            .collect()
    }
}

fn resnet(
    vb: VarBuilder,
    unet: &UNetLayout,
    in_channels: usize,
    out_channels: usize,
    output_scale_factor: f64,
) -> CandleResult<ResnetBlock2D> {
    ResnetBlock2D::new(
        vb,
        ResnetConfig {
            groups: unet.norm_groups,
            groups_out: unet.norm_groups,
            eps: unet.norm_eps,
            output_scale_factor,
            ..ResnetConfig::new(in_channels, out_channels, Some(unet.time_embed_dim))
        },
    )
}

fn transformer(
    vb: VarBuilder,
    unet: &UNetLayout,
    channels: usize,
    attention: &AttentionLayout,
    name: &str,
) -> CandleResult<Transformer2DModel> {
    Transformer2DModel::new(
        vb,
        Transformer2DDims {
            channels,
            heads: attention.heads,
            layers: attention.transformer_layers,
            cross_attention_dim: attention.cross_attention_dim,
            norm_groups: unet.norm_groups,
            linear_projection: unet.linear_projection,
            upcast: unet.upcast_attention,
        },
        name,
    )
}

fn transformers(
    vb: &VarBuilder,
    unet: &UNetLayout,
    channels: usize,
    attention: Option<&AttentionLayout>,
    count: usize,
    name: &str,
) -> CandleResult<Vec<Transformer2DModel>> {
    match attention {
        None => Ok(Vec::new()),
        Some(a) => (0..count)
            .map(|j| {
                transformer(
                    vb.pp("attentions").pp(j),
                    unet,
                    channels,
                    a,
                    &format!("{name}.attentions.{j}"),
                )
            })
            .collect(),
    }
}

/// `CrossAttnDownBlock2D` (with transformers) or `DownBlock2D`.
#[derive(Clone, Debug)]
pub struct DownBlock {
    layers: Layers,
    downsampler: Option<Downsample2D>,
}

impl DownBlock {
    /// Loads `down_blocks.{i}` from `vb`; `motion` are its motion modules (none, or one per
    /// resnet).
    pub(crate) fn new(
        vb: VarBuilder,
        unet: &UNetLayout,
        layout: &DownLayout,
        name: &str,
        motion: Vec<MotionModule>,
    ) -> CandleResult<Self> {
        let resnets = (0..layout.layers)
            .map(|j| {
                let cin = if j == 0 {
                    layout.in_channels
                } else {
                    layout.out_channels
                };
                resnet(vb.pp("resnets").pp(j), unet, cin, layout.out_channels, 1.0)
            })
            .collect::<CandleResult<Vec<_>>>()?;
        let attentions = transformers(
            &vb,
            unet,
            layout.out_channels,
            layout.attention.as_ref(),
            layout.layers,
            name,
        )?;
        let downsampler = layout
            .downsample
            .then(|| {
                Downsample2D::new(
                    vb.pp("downsamplers").pp(0),
                    layout.out_channels,
                    layout.out_channels,
                    unet.downsample_padding,
                )
            })
            .transpose()?;
        Ok(Self {
            layers: Layers {
                resnets,
                attentions,
                motion,
            },
            downsampler,
        })
    }

    /// Runs the block, appending each output kept for a skip connection to `skips`.
    pub(crate) fn forward(
        &self,
        xs: &Tensor,
        pass: &Pass<'_>,
        skips: &mut Vec<Tensor>,
        hook: &mut dyn FeatureHook,
    ) -> Result<Tensor> {
        let mut xs = xs.clone();
        for (j, resnet) in self.layers.resnets.iter().enumerate() {
            xs = resnet.forward(&xs, Some(pass.temb))?;
            xs = self.layers.mix(j, xs, pass, hook)?;
            skips.push(xs.clone());
        }
        if let Some(down) = &self.downsampler {
            xs = down.forward(&xs)?;
            skips.push(xs.clone());
        }
        Ok(xs)
    }

    /// Hook points in execution order.
    pub(crate) fn hook_points(&self) -> Vec<(String, HookKind)> {
        self.layers.hook_points()
    }

    /// The block's spatial transformers, in execution order.
    pub(crate) fn transformers(&self) -> &[Transformer2DModel] {
        self.layers.transformers()
    }
}

/// `UNetMidBlock2DCrossAttn`: resnet, then (transformer, motion module, resnet).
#[derive(Clone, Debug)]
pub struct MidBlock {
    layers: Layers,
}

impl MidBlock {
    /// Loads `mid_block` from `vb`.
    pub(crate) fn new(
        vb: VarBuilder,
        unet: &UNetLayout,
        layout: &MidLayout,
        motion: Vec<MotionModule>,
    ) -> CandleResult<Self> {
        let c = layout.channels;
        let resnets = (0..2)
            .map(|j| {
                resnet(
                    vb.pp("resnets").pp(j),
                    unet,
                    c,
                    c,
                    layout.output_scale_factor,
                )
            })
            .collect::<CandleResult<Vec<_>>>()?;
        let attentions = transformers(&vb, unet, c, Some(&layout.attention), 1, "mid_block")?;
        Ok(Self {
            layers: Layers {
                resnets,
                attentions,
                motion,
            },
        })
    }

    pub(crate) fn forward(
        &self,
        xs: &Tensor,
        pass: &Pass<'_>,
        hook: &mut dyn FeatureHook,
    ) -> Result<Tensor> {
        let mut xs = self.layers.resnets[0].forward(xs, Some(pass.temb))?;
        for (j, resnet) in self.layers.resnets.iter().enumerate().skip(1) {
            xs = self.layers.mix(j - 1, xs, pass, hook)?;
            xs = resnet.forward(&xs, Some(pass.temb))?;
        }
        Ok(xs)
    }

    /// Hook points in execution order.
    pub(crate) fn hook_points(&self) -> Vec<(String, HookKind)> {
        self.layers.hook_points()
    }

    /// The block's spatial transformers, in execution order.
    pub(crate) fn transformers(&self) -> &[Transformer2DModel] {
        self.layers.transformers()
    }
}

/// `CrossAttnUpBlock2D` (with transformers) or `UpBlock2D`.
#[derive(Clone, Debug)]
pub struct UpBlock {
    layers: Layers,
    upsampler: Option<Upsample2D>,
}

impl UpBlock {
    /// Loads `up_blocks.{i}` from `vb`.
    pub(crate) fn new(
        vb: VarBuilder,
        unet: &UNetLayout,
        layout: &UpLayout,
        name: &str,
        motion: Vec<MotionModule>,
    ) -> CandleResult<Self> {
        let out = layout.out_channels;
        let resnets = (0..layout.layers)
            .map(|j| {
                let skip = if j + 1 == layout.layers {
                    layout.in_channels
                } else {
                    out
                };
                let cin = if j == 0 { layout.prev_channels } else { out };
                resnet(vb.pp("resnets").pp(j), unet, cin + skip, out, 1.0)
            })
            .collect::<CandleResult<Vec<_>>>()?;
        let attentions = transformers(
            &vb,
            unet,
            out,
            layout.attention.as_ref(),
            layout.layers,
            name,
        )?;
        let upsampler = layout
            .upsample
            .then(|| Upsample2D::new(vb.pp("upsamplers").pp(0), out, out))
            .transpose()?;
        Ok(Self {
            layers: Layers {
                resnets,
                attentions,
                motion,
            },
            upsampler,
        })
    }

    /// Number of skip connections the block consumes.
    pub(crate) fn skips_used(&self) -> usize {
        self.layers.resnets.len()
    }

    /// Runs the block, popping its skip connections from the end of `skips`; the upsampler
    /// resizes to `upsample_size` when given, ×2 otherwise.
    pub(crate) fn forward(
        &self,
        xs: &Tensor,
        pass: &Pass<'_>,
        skips: &mut Vec<Tensor>,
        upsample_size: Option<(usize, usize)>,
        hook: &mut dyn FeatureHook,
    ) -> Result<Tensor> {
        let mut xs = xs.clone();
        for (j, resnet) in self.layers.resnets.iter().enumerate() {
            let skip = skips.pop().ok_or_else(|| {
                candle_core::Error::Msg("UNet: fewer skip connections than up-block resnets".into())
            })?;
            xs = resnet.forward(&Tensor::cat(&[&xs, &skip], 1)?, Some(pass.temb))?;
            xs = self.layers.mix(j, xs, pass, hook)?;
        }
        if let Some(up) = &self.upsampler {
            xs = up.forward(&xs, upsample_size)?;
        }
        Ok(xs)
    }

    /// Hook points in execution order.
    pub(crate) fn hook_points(&self) -> Vec<(String, HookKind)> {
        self.layers.hook_points()
    }

    /// The block's spatial transformers, in execution order.
    pub(crate) fn transformers(&self) -> &[Transformer2DModel] {
        self.layers.transformers()
    }
}
