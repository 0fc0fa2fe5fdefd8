//! The denoising UNet of the SD-1.x / SD-2.x family (diffusers `UNet2DConditionModel`), built
//! from any `config.json` of that family, optionally with the AnimateDiff motion modules of a
//! `MotionAdapter` inserted (then it computes diffusers' `UNetMotionModel.from_unet2d`).
//!
//! ```no_run
//! # fn main() -> bevy_mvcustom::model::Result<()> {
//! use bevy_mvcustom::model::{ComputeSettings, WeightVariant};
//! use bevy_mvcustom::model::unet::UNet;
//! use candle_core::Tensor;
//! let settings = ComputeSettings::default();
//! let unet = UNet::load(
//!     "sd15/unet".as_ref(),
//!     Some("animatediff/motion_adapter".as_ref()),
//!     WeightVariant::Full,
//!     &settings,
//! )?;
//! let sample = Tensor::zeros((1, 4, 16, 64, 64), settings.dtype, &settings.device)?; // [B, C, F, H, W]
//! let text = Tensor::zeros((16, 77, 768), settings.dtype, &settings.device)?; // [B·F, 77, D]
//! let t = Tensor::new(999f32, &settings.device)?;
//! let eps = unet.forward(&sample, &t, &text, None)?;
//! # Ok(()) }
//! ```

mod blocks;
pub mod config;
mod embeddings;

use std::path::Path;

use candle_core::{DType, Device, Module, Result as CandleResult, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, GroupNorm, VarBuilder};

use self::blocks::{DownBlock, MidBlock, Pass, UpBlock};
use self::config::{UNetConfig, UNetLayout};
use self::embeddings::{TimestepEmbedding, TimestepProjection, expand_timesteps};
use super::attention::AttentionSettings;
use super::error::{ModelError, Result};
use super::hook::{FeatureHook, HookKind, HookSite, NoHook, UNetPath};
use super::load::{ComponentDir, ComputeSettings, WeightVariant};
use super::motion::MotionAttention;
use super::motion_adapter::{MotionAdapterConfig, MotionModules};

/// The UNet, with or without motion modules.
#[derive(Clone, Debug)]
pub struct UNet {
    layout: UNetLayout,
    time_proj: TimestepProjection,
    time_embedding: TimestepEmbedding,
    conv_in: Conv2d,
    down: Vec<DownBlock>,
    mid: Option<MidBlock>,
    up: Vec<UpBlock>,
    conv_norm_out: GroupNorm,
    conv_out: Conv2d,
    /// Frames the motion modules accept; `None` for a plain 2-D UNet.
    max_frames: Option<usize>,
    motion_attention: MotionAttention,
    attention: AttentionSettings,
    dtype: DType,
    device: Device,
}

impl UNet {
    /// Loads the UNet of the diffusers folder `unet_dir` (`config.json` + weights) and, when
    /// given, inserts the motion modules of the `MotionAdapter` folder `motion_adapter_dir`.
    /// Errors name the file and field, tensor or value at fault.
    pub fn load(
        unet_dir: &Path,
        motion_adapter_dir: Option<&Path>,
        variant: WeightVariant,
        settings: &ComputeSettings,
    ) -> Result<Self> {
        let dir = ComponentDir::new(unet_dir);
        let (config, config_path) = dir.json::<UNetConfig>("config.json")?;
        let mut layout = config.layout(&config_path)?;
        let motion = match motion_adapter_dir {
            None => None,
            Some(adapter_dir) => {
                layout = layout.for_motion(&config_path, &config)?;
                let adapter = ComponentDir::new(adapter_dir);
                let (adapter_config, adapter_path) =
                    adapter.json::<MotionAdapterConfig>("config.json")?;
                let motion_layout = adapter_config.layout(&adapter_path, &layout)?;
                let weights = adapter.weights(variant, settings)?;
                Some(weights.build(|vb| MotionModules::new(vb, &motion_layout))?)
            }
        };
        dir.weights(variant, settings)?
            .build(|vb| Self::new(vb, &layout, motion))
    }

    /// Builds the UNet of `layout` from the UNet weights `vb`, inserting `motion` (built from
    /// the adapter weights against the same layout) when given.
    pub fn new(
        vb: VarBuilder,
        layout: &UNetLayout,
        motion: Option<MotionModules>,
    ) -> CandleResult<Self> {
        if let Some(m) = &motion {
            check_motion_fits(m, layout)?;
        }
        let c0 = layout
            .down
            .first()
            .map(|d| d.out_channels)
            .unwrap_or_default();
        let (mut down_motion, mid_motion, mut up_motion, max_frames) = match motion {
            Some(m) => {
                let max_frames = m.down.iter().flatten().map(|mm| mm.max_frames()).min();
                (m.down, m.mid, m.up, max_frames)
            }
            None => (Vec::new(), Vec::new(), Vec::new(), None),
        };
        let take = |modules: &mut Vec<Vec<_>>, i: usize| {
            modules.get_mut(i).map(std::mem::take).unwrap_or_default()
        };
        let down = layout
            .down
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let name = format!("down_blocks.{i}");
                DownBlock::new(vb.pp(&name), layout, d, &name, take(&mut down_motion, i))
            })
            .collect::<CandleResult<Vec<_>>>()?;
        let mid = layout
            .mid
            .as_ref()
            .map(|m| MidBlock::new(vb.pp("mid_block"), layout, m, mid_motion))
            .transpose()?;
        let up = layout
            .up
            .iter()
            .enumerate()
            .map(|(i, u)| {
                let name = format!("up_blocks.{i}");
                UpBlock::new(vb.pp(&name), layout, u, &name, take(&mut up_motion, i))
            })
            .collect::<CandleResult<Vec<_>>>()?;
        let conv = |cin, cout, k: usize, vb| {
            let cfg = Conv2dConfig {
                padding: (k - 1) / 2,
                ..Default::default()
            };
            candle_nn::conv2d(cin, cout, k, cfg, vb)
        };
        Ok(Self {
            layout: layout.clone(),
            time_proj: TimestepProjection::new(c0, layout.flip_sin_to_cos, layout.freq_shift),
            time_embedding: TimestepEmbedding::new(
                vb.pp("time_embedding"),
                c0,
                layout.time_embed_dim,
                layout.timestep_post_act,
            )?,
            conv_in: conv(
                layout.in_channels,
                c0,
                layout.conv_in_kernel,
                vb.pp("conv_in"),
            )?,
            down,
            mid,
            up,
            conv_norm_out: candle_nn::group_norm(
                layout.norm_groups,
                c0,
                layout.norm_eps,
                vb.pp("conv_norm_out"),
            )?,
            conv_out: conv(
                c0,
                layout.out_channels,
                layout.conv_out_kernel,
                vb.pp("conv_out"),
            )?,
            max_frames,
            motion_attention: MotionAttention::default(),
            attention: AttentionSettings::default(),
            dtype: vb.dtype(),
            device: vb.device().clone(),
        })
    }

    /// The resolved per-block layout.
    pub fn layout(&self) -> &UNetLayout {
        &self.layout
    }

    /// Whether motion modules are inserted (then `forward` takes `[B, C, F, H, W]` samples).
    pub fn has_motion_modules(&self) -> bool {
        self.max_frames.is_some()
    }

    /// The most frames the motion modules accept (`motion_max_seq_length`).
    pub fn max_frames(&self) -> Option<usize> {
        self.max_frames
    }

    /// How motion modules attend (default: AnimateDiff's temporal attention).
    pub fn motion_attention(&self) -> MotionAttention {
        self.motion_attention
    }

    /// Switches the motion modules between temporal and dense (windowed) attention; the
    /// weights are the same.
    pub fn set_motion_attention(&mut self, mode: MotionAttention) {
        self.motion_attention = mode;
    }

    /// The attention memory budget.
    pub fn attention_settings(&self) -> AttentionSettings {
        self.attention
    }

    /// Sets the attention memory budget (results do not depend on it).
    pub fn set_attention_settings(&mut self, settings: AttentionSettings) {
        self.attention = settings;
    }

    /// The name and kind of every hook point, in the order `forward` calls them.
    pub fn hook_points(&self) -> Vec<(String, HookKind)> {
        let mut points: Vec<_> = self.down.iter().flat_map(|b| b.hook_points()).collect();
        points.extend(self.mid.iter().flat_map(|b| b.hook_points()));
        points.extend(self.up.iter().flat_map(|b| b.hook_points()));
        points
    }

    /// Every hook point with its path and resolution level, in the order `forward` calls
    /// them: down block `i` works at the level of the downsamplers before it, the mid block
    /// below the last one, and each up block one level above the previous upsampler.
    pub fn hook_sites(&self) -> Vec<HookSite> {
        let mut sites = Vec::new();
        let mut level = 0;
        let mut push = |points: Vec<(String, HookKind)>, path, level| {
            sites.extend(points.into_iter().map(|(name, kind)| HookSite {
                name,
                kind,
                path,
                level,
            }));
        };
        for (block, layout) in self.down.iter().zip(&self.layout.down) {
            push(block.hook_points(), UNetPath::Down, level);
            level += usize::from(layout.downsample);
        }
        if let Some(block) = &self.mid {
            push(block.hook_points(), UNetPath::Mid, level);
        }
        for (block, layout) in self.up.iter().zip(&self.layout.up) {
            push(block.hook_points(), UNetPath::Up, level);
            level = level.saturating_sub(usize::from(layout.upsample));
        }
        sites
    }

    /// Predicts the noise (or whatever the checkpoint was trained on) for `sample`.
    ///
    /// - `sample`: `[B, C, H, W]`, or `[B, C, F, H, W]` when motion modules are inserted;
    /// - `timestep`: a scalar, `[1]` or `[B]` tensor of any numeric dtype;
    /// - `encoder_hidden_states`: `[B, tokens, D]`, or with motion modules `[B·F, tokens, D]`
    ///   (frame index fastest; `[B, tokens, D]` is repeated for every frame);
    /// - `hook`: called at every [`hook point`](Self::hook_points).
    ///
    /// Returns a tensor shaped like `sample`, in the model's dtype.
    pub fn forward(
        &self,
        sample: &Tensor,
        timestep: &Tensor,
        encoder_hidden_states: &Tensor,
        hook: Option<&mut dyn FeatureHook>,
    ) -> Result<Tensor> {
        let mut no_hook = NoHook;
        let hook: &mut dyn FeatureHook = match hook {
            Some(h) => h,
            None => &mut no_hook,
        };
        let sample = sample.to_device(&self.device)?.to_dtype(self.dtype)?;
        let (batch, frames, images) = self.fold_frames(&sample)?;
        let context = self.context(encoder_hidden_states, batch, frames)?;
        let (_, _, height, width) = images.dims4()?;

        let images = if self.layout.center_input_sample {
            ((images * 2.0)? - 1.0)?
        } else {
            images
        };
        let timesteps = expand_timesteps(timestep, batch, &self.device)
            .map_err(|e| invalid("timestep", format!("{e} (shape {:?})", timestep.dims())))?;
        let t_emb = self.time_proj.forward(&timesteps)?.to_dtype(self.dtype)?;
        let mut temb = self.time_embedding.forward(&t_emb)?;
        if self.layout.time_embedding_act {
            temb = temb.silu()?;
        }
        let temb = repeat_per_frame(&temb, frames)?;
        let pass = Pass {
            temb: &temb,
            context: &context,
            frames,
            motion: self.motion_attention,
            settings: &self.attention,
        };

        let mut xs = self.conv_in.forward(&images)?;
        let mut skips = vec![xs.clone()];
        for block in &self.down {
            xs = block.forward(&xs, &pass, &mut skips, hook)?;
        }
        if let Some(mid) = &self.mid {
            xs = mid.forward(&xs, &pass, hook)?;
        }
        let factor = 1usize << self.layout.upsamplers();
        let explicit_sizes = !height.is_multiple_of(factor) || !width.is_multiple_of(factor);
        for (i, block) in self.up.iter().enumerate() {
            let remaining = skips.len().saturating_sub(block.skips_used());
            let upsample_size = match (explicit_sizes && i + 1 < self.up.len(), remaining) {
                (true, r) if r > 0 => {
                    let (_, _, h, w) = skips[r - 1].dims4()?;
                    Some((h, w))
                }
                _ => None,
            };
            xs = block.forward(&xs, &pass, &mut skips, upsample_size, hook)?;
        }
        let xs = self.conv_norm_out.forward(&xs)?.silu()?;
        let out = self.conv_out.forward(&xs)?;
        if self.has_motion_modules() {
            let (_, c, h, w) = out.dims4()?;
            Ok(out
                .reshape((batch, frames, c, h, w))?
                .permute((0, 2, 1, 3, 4))?
                .contiguous()?)
        } else {
            Ok(out)
        }
    }

    /// Checks `sample` and folds its frames into the batch: (batch, frames, `[B·F, C, H, W]`).
    fn fold_frames(&self, sample: &Tensor) -> Result<(usize, usize, Tensor)> {
        let c_in = self.layout.in_channels;
        match (self.max_frames, sample.dims()) {
            (None, &[b, c, _, _]) if c == c_in => Ok((b, 1, sample.clone())),
            (Some(max), &[b, c, f, h, w]) if c == c_in && f >= 1 => {
                if f > max {
                    return Err(invalid(
                        "sample",
                        format!("{f} frames, the motion modules accept at most {max}"),
                    ));
                }
                let folded = sample.permute((0, 2, 1, 3, 4))?.reshape((b * f, c, h, w))?;
                Ok((b, f, folded))
            }
            (max, dims) => Err(invalid(
                "sample",
                format!(
                    "shape {dims:?}, expected {} with {c_in} channels",
                    if max.is_some() {
                        "[B, C, F, H, W]"
                    } else {
                        "[B, C, H, W]"
                    }
                ),
            )),
        }
    }

    /// Checks the text embeddings and gives one row per image.
    fn context(&self, ehs: &Tensor, batch: usize, frames: usize) -> Result<Tensor> {
        let ehs = ehs.to_device(&self.device)?.to_dtype(self.dtype)?;
        let (n, _, dim) = ehs.dims3().map_err(|_| {
            invalid(
                "encoder_hidden_states",
                format!("shape {:?}, expected [N, tokens, D]", ehs.dims()),
            )
        })?;
        let expected: Vec<usize> = self
            .layout
            .down
            .iter()
            .filter_map(|d| d.attention.map(|a| a.cross_attention_dim))
            .chain(
                self.layout
                    .mid
                    .iter()
                    .map(|m| m.attention.cross_attention_dim),
            )
            .chain(
                self.layout
                    .up
                    .iter()
                    .filter_map(|u| u.attention.map(|a| a.cross_attention_dim)),
            )
            .collect();
        if let Some(&want) = expected.iter().find(|&&d| d != dim) {
            return Err(invalid(
                "encoder_hidden_states",
                format!("width {dim}, the cross-attentions expect {want}"),
            ));
        }
        if n == batch * frames {
            Ok(ehs)
        } else if n == batch {
            Ok(repeat_per_frame(&ehs, frames)?)
        } else {
            Err(invalid(
                "encoder_hidden_states",
                format!(
                    "{n} rows for {batch} samples of {frames} frames (expected {} or {batch})",
                    batch * frames
                ),
            ))
        }
    }
}

/// Motion modules must come one per resnet of every down and up block (and at most one for an
/// existing mid block), as a [`MotionLayout`](super::motion_adapter::MotionLayout) of the same
/// UNet layout gives them.
fn check_motion_fits(motion: &MotionModules, layout: &UNetLayout) -> CandleResult<()> {
    let fits = |modules: &[Vec<_>], layers: &mut dyn Iterator<Item = usize>| {
        let counts: Vec<usize> = layers.collect();
        modules.len() == counts.len() && modules.iter().zip(&counts).all(|(m, &c)| m.len() == c)
    };
    let mid_fits = motion.mid.is_empty() || (motion.mid.len() == 1 && layout.mid.is_some());
    if fits(&motion.down, &mut layout.down.iter().map(|d| d.layers))
        && fits(&motion.up, &mut layout.up.iter().map(|u| u.layers))
        && mid_fits
    {
        Ok(())
    } else {
        candle_core::bail!("the motion modules were built for another UNet layout")
    }
}

/// Repeats each row of `xs` `frames` times, consecutively (`repeat_interleave` on dim 0).
fn repeat_per_frame(xs: &Tensor, frames: usize) -> CandleResult<Tensor> {
    if frames == 1 {
        return Ok(xs.clone());
    }
    let mut dims = xs.dims().to_vec();
    let rest = dims[1..].to_vec();
    let mut expanded = vec![dims[0], frames];
    expanded.extend_from_slice(&rest);
    dims[0] *= frames;
    xs.unsqueeze(1)?
        .broadcast_as(expanded)?
        .contiguous()?
        .reshape(dims)
}

fn invalid(name: &str, reason: String) -> ModelError {
    ModelError::InvalidInput {
        name: name.to_string(),
        reason,
    }
}
