//! Rendering the pose blocks' fields for a set of target cameras and prompts, and the feature
//! hook that fuses the rendered features into the UNet at each carrying block
//! (`x = Fuse([x, r])` after the block's text cross-attention, before its feed-forward).
//!
//! Rendered features do not depend on the noisy latents or the timestep: inference renders
//! them once per (target cameras, prompt) and reuses them at every step; training renders
//! them every step (with jitter) so gradients reach the fields.
//!
//! **Classifier-free guidance.** The UNet batch under guidance is `[uncond; text]`. Render
//! with the same two conditioning rows (`[negative; prompt]`): each half's fields then attend
//! to that half's own text, while both halves see the subject's reference features, so the
//! guidance contrasts the prompts and never removes the subject's pose conditioning. Passing a
//! single conditioning row instead uses the same rendered features for every batch item.

use std::collections::BTreeMap;

use candle_core::Tensor;

use super::blocks::{PoseBlock, PoseBlocks};
use super::field::{FieldOutput, TextConditioning};
use super::geometry::{Jitter, ReferenceGrid, SamplingConfig, sample_geometry};
use super::prepared::PreparedGeometry;
use super::reference::ReferenceFeatures;
use crate::camera::PinholeCamera;
use crate::model::attention::AttentionSettings;
use crate::model::hook::{FeatureHook, HookKind, HookPoint};
use crate::model::transformer::BasicTransformerBlock;
use crate::model::unet::UNet;
use crate::model::{ModelError, Result};

/// A carrying block's own text cross-attention (`attn2(norm2 ·, text)`) with one prompt: the
/// [`TextConditioning`] of its field.
pub struct BlockText<'a> {
    block: &'a BasicTransformerBlock,
    context: Tensor,
    settings: AttentionSettings,
}

impl<'a> BlockText<'a> {
    /// The cross-attention of `block` to `context` `[1, tokens, D]`.
    pub fn new(
        block: &'a BasicTransformerBlock,
        context: Tensor,
        settings: AttentionSettings,
    ) -> Self {
        Self {
            block,
            context,
            settings,
        }
    }
}

impl TextConditioning for BlockText<'_> {
    fn attend(&self, tokens: &Tensor) -> candle_core::Result<Tensor> {
        self.block
            .cross_attention(tokens, &self.context, &self.settings)
    }
}

/// What to render: reference features with their cameras, target cameras, the latent size
/// and the prompt(s).
pub struct RenderRequest<'a> {
    /// Reference features per block, `[views, C, h, w]`.
    pub references: &'a ReferenceFeatures,
    /// The reference cameras, in the normalised scene.
    pub reference_cameras: &'a [PinholeCamera],
    /// The target cameras (the frames), in the normalised scene.
    pub targets: &'a [PinholeCamera],
    /// The latent grid `(height, width)` of the generated views.
    pub latent_size: (usize, usize),
    /// Text conditioning `[G, tokens, D]`: one row per batch item (`[uncond; text]` under
    /// guidance) or a single row for all.
    pub conditioning: &'a Tensor,
}

/// Per pose block, what its field rendered for every (conditioning row, target view), rows
/// ordered like the UNet batch (`row · views + view`).
#[derive(Clone, Debug, Default)]
pub struct RenderedFeatures {
    per_block: BTreeMap<String, RenderedBlock>,
}

/// One block's renders.
#[derive(Clone, Debug)]
pub struct RenderedBlock {
    /// Features `[G·F, C, h, w]`.
    pub features: Tensor,
    /// Accumulated opacity `[G·F, h, w]`.
    pub opacity: Tensor,
    /// Colour `[G·F, 3, h, w]`.
    pub rgb: Tensor,
}

impl RenderedFeatures {
    /// The renders of the block named `name`.
    pub fn get(&self, name: &str) -> Option<&RenderedBlock> {
        self.per_block.get(name)
    }

    /// Every block's renders, by block name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &RenderedBlock)> {
        self.per_block.iter().map(|(n, r)| (n.as_str(), r))
    }
}

/// One pose block's part of a [`render_features`] call: its reference tokens, its text
/// cross-attention per conditioning row, its feature grid and what it has rendered so far.
struct BlockJob<'a> {
    block: &'a PoseBlock,
    /// Reference features as tokens `[views, hr·wr, C]`.
    tokens: Tensor,
    /// Reference feature grid `(hr, wr)`.
    reference_grid: (usize, usize),
    /// The block's feature grid `(h, w)` at the request's latent size.
    grid: (usize, usize),
    /// One text conditioning per conditioning row.
    texts: Vec<BlockText<'a>>,
    /// Per target rendered so far, the field's output under each conditioning row.
    per_target: Vec<Vec<FieldOutput>>,
}

impl<'a> BlockJob<'a> {
    fn new(
        unet: &'a UNet,
        block: &'a PoseBlock,
        request: &RenderRequest<'_>,
        rows: usize,
    ) -> Result<Self> {
        let name = block.name();
        let invalid = |name: &str, reason: String| ModelError::InvalidInput {
            name: name.into(),
            reason,
        };
        let carrier = unet
            .transformer_block(name)
            .ok_or_else(|| invalid("pose blocks", format!("block `{name}` is not in this UNet")))?;
        let reference = request
            .references
            .get(name)
            .ok_or_else(|| invalid("reference features", format!("none for block `{name}`")))?;
        let grid = unet
            .hook_sites()
            .iter()
            .find(|site| site.name == name)
            .map(|site| site.grid(request.latent_size))
            .ok_or_else(|| {
                invalid(
                    "pose blocks",
                    format!("block `{name}` is not a hook point of this UNet"),
                )
            })?;
        let (views, c, hr, wr) = reference.dims4()?;
        if views != request.reference_cameras.len() || c != block.channels() {
            return Err(invalid(
                &format!("reference features of `{name}`"),
                format!(
                    "shape {:?} for {} cameras and width {}",
                    reference.dims(),
                    request.reference_cameras.len(),
                    block.channels()
                ),
            ));
        }
        let tokens = reference
            .permute((0, 2, 3, 1))?
            .reshape((views, hr * wr, c))?;
        let texts = (0..rows)
            .map(|row| {
                let context = request
                    .conditioning
                    .narrow(0, row, 1)?
                    .to_dtype(reference.dtype())?;
                Ok(BlockText::new(carrier, context, unet.attention_settings()))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            block,
            tokens,
            reference_grid: (hr, wr),
            grid,
            texts,
            per_target: Vec::with_capacity(request.targets.len()),
        })
    }

    /// What decides a block's ray geometry for a target: blocks that agree share it.
    fn geometry_key(&self) -> GeometryKey {
        GeometryKey {
            grid: self.grid,
            reference_grid: self.reference_grid,
            sampling: *self.block.field().sampling(),
        }
    }

    /// Renders this block for the next target under every conditioning row, from the
    /// target's `geometry`: the views are fused once, the prompts applied to the result.
    fn render_target(&mut self, geometry: &PreparedGeometry) -> Result<()> {
        let field = self.block.field();
        let fused = field.fuse_views(&self.tokens, geometry)?;
        let outputs = self
            .texts
            .iter()
            .map(|text| field.render_fused(&fused, geometry, text))
            .collect::<candle_core::Result<Vec<_>>>()?;
        self.per_target.push(outputs);
        Ok(())
    }

    /// Stacks the renders, ordered `row · targets + target` like the UNet batch.
    fn finish(self) -> Result<RenderedBlock> {
        let (h, w) = self.grid;
        let c = self.block.channels();
        let renders = self.texts.len() * self.per_target.len();
        let mut features = Vec::with_capacity(renders);
        let mut opacity = Vec::with_capacity(renders);
        let mut rgb = Vec::with_capacity(renders);
        for row in 0..self.texts.len() {
            for outputs in &self.per_target {
                let out = &outputs[row];
                features.push(out.features.reshape((h, w, c))?.permute((2, 0, 1))?);
                opacity.push(out.opacity.reshape((h, w))?);
                rgb.push(out.rgb.reshape((h, w, 3))?.permute((2, 0, 1))?);
            }
        }
        Ok(RenderedBlock {
            features: Tensor::stack(&features, 0)?.contiguous()?,
            opacity: Tensor::stack(&opacity, 0)?,
            rgb: Tensor::stack(&rgb, 0)?.contiguous()?,
        })
    }
}
/// What a target's ray geometry depends on besides the cameras.
#[derive(Clone, Copy, PartialEq)]
struct GeometryKey {
    grid: (usize, usize),
    reference_grid: (usize, usize),
    sampling: SamplingConfig,
}

/// Renders every pose block for every conditioning row and target view of `request`.
///
/// Per target, the ray geometry is computed once for all blocks of the same feature grid
/// (in training they share its jitter too), and each block fuses the reference views once
/// for all conditioning rows.
pub fn render_features(
    unet: &UNet,
    blocks: &PoseBlocks,
    request: &RenderRequest<'_>,
    jitter: &mut Jitter<'_>,
) -> Result<RenderedFeatures> {
    let rows = request.conditioning.dim(0)?;
    let mut jobs = blocks
        .blocks()
        .iter()
        .map(|block| BlockJob::new(unet, block, request, rows))
        .collect::<Result<Vec<_>>>()?;
    for target in request.targets {
        let mut geometries: Vec<(GeometryKey, PreparedGeometry)> = Vec::new();
        for job in &mut jobs {
            let key = job.geometry_key();
            let index = match geometries.iter().position(|(k, _)| *k == key) {
                Some(index) => index,
                None => {
                    let (h, w) = key.grid;
                    let (hr, wr) = key.reference_grid;
                    let references = ReferenceGrid {
                        cameras: request.reference_cameras,
                        width: wr as u32,
                        height: hr as u32,
                    };
                    let geometry = sample_geometry(
                        &key.sampling,
                        target,
                        w as u32,
                        h as u32,
                        0,
                        h * w,
                        &references,
                        jitter,
                    );
                    let prepared = PreparedGeometry::new(
                        &geometry,
                        &key.sampling,
                        job.tokens.device(),
                        job.tokens.dtype(),
                    )?;
                    geometries.push((key, prepared));
                    geometries.len() - 1
                }
            };
            job.render_target(&geometries[index].1)?;
        }
    }
    let per_block = jobs
        .into_iter()
        .map(|job| Ok((job.block.name().to_string(), job.finish()?)))
        .collect::<Result<BTreeMap<_, _>>>()?;
    Ok(RenderedFeatures { per_block })
}

/// The feature hook that makes the UNet's carrying blocks pose-conditioned: at
/// `<block>.attn2` it replaces the tokens `x` with `Fuse([x, r])`, `r` the block's rendered
/// features.
pub struct PoseBlockHook<'a> {
    blocks: &'a PoseBlocks,
    rendered: &'a RenderedFeatures,
}

impl<'a> PoseBlockHook<'a> {
    /// Fuses `rendered` into the blocks of `blocks`.
    pub fn new(blocks: &'a PoseBlocks, rendered: &'a RenderedFeatures) -> Self {
        Self { blocks, rendered }
    }

    fn block_at(&self, point: &HookPoint<'_>) -> Option<(&'a PoseBlock, &'a RenderedBlock)> {
        if point.kind != HookKind::SpatialCrossAttention {
            return None;
        }
        let name = point.name.strip_suffix(".attn2")?;
        Some((self.blocks.get(name)?, self.rendered.get(name)?))
    }
}

impl FeatureHook for PoseBlockHook<'_> {
    fn wants(&self, point: &HookPoint<'_>) -> bool {
        self.block_at(point).is_some()
    }

    fn on_features(&mut self, point: &HookPoint<'_>, features: &Tensor) -> Result<Option<Tensor>> {
        let Some((block, rendered)) = self.block_at(point) else {
            return Ok(None);
        };
        let n = features.dim(0)?;
        let r = &rendered.features;
        let m = r.dim(0)?;
        let r = if m == n {
            r.clone()
        } else if m > 0 && n % m == 0 {
            r.repeat((n / m, 1, 1, 1))?
        } else {
            return Err(ModelError::InvalidInput {
                name: format!("rendered features of `{}`", block.name()),
                reason: format!("{m} renders for a batch of {n} images"),
            });
        };
        if r.dims()[1..] != features.dims()[1..] {
            return Err(ModelError::InvalidInput {
                name: format!("rendered features of `{}`", block.name()),
                reason: format!(
                    "shape {:?}, the block's features are {:?}",
                    r.dims(),
                    features.dims()
                ),
            });
        }
        let r = r.to_dtype(features.dtype())?;
        let fused = block.fuse().forward(
            &features.permute((0, 2, 3, 1))?.contiguous()?,
            &r.permute((0, 2, 3, 1))?.contiguous()?,
        )?;
        Ok(Some(fused.permute((0, 3, 1, 2))?.contiguous()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::{ImageSize, Intrinsics, look_at};
    use crate::model::pose::{PoseConfig, fresh_parameters};
    use crate::model::test_support::max_abs_diff;
    use crate::model::{ComputeSettings, WeightVariant};
    use candle_core::{DType, Device};
    use candle_nn::{VarBuilder, VarMap};
    use glam::Vec3;
    use std::path::PathBuf;

    fn fixture(case: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/fixtures/parity")
            .join(case)
    }

    fn motion_unet() -> UNet {
        let dir = fixture("motion_unet_tiny");
        UNet::load(
            &dir.join("unet"),
            Some(&dir.join("motion_adapter")),
            WeightVariant::Full,
            &ComputeSettings::default(),
        )
        .unwrap()
    }

    /// A camera on the unit sphere looking at the origin (the normalised scene).
    fn camera(angle: f32) -> PinholeCamera {
        let k = Intrinsics::from_vertical_fov(0.8, 64, 64).unwrap();
        let eye = Vec3::new(angle.sin(), 0.2, angle.cos()).normalize();
        look_at(eye, Vec3::ZERO, Vec3::Y, k, ImageSize::new(64, 64).unwrap()).unwrap()
    }

    /// Fresh pose blocks of `config` on `unet` over trainable variables (seeded), with them.
    fn trainable_blocks(unet: &UNet, config: &PoseConfig, seed: u64) -> (VarMap, PoseBlocks) {
        let device = Device::Cpu;
        let varmap = fresh_parameters(unet, config, seed, DType::F32, &device).unwrap();
        let blocks = PoseBlocks::new(
            VarBuilder::from_varmap(&varmap, DType::F32, &device),
            unet,
            config,
        )
        .unwrap();
        (varmap, blocks)
    }

    /// The fuse weight of `block` in `varmap`.
    fn set_fuse(varmap: &VarMap, block: &PoseBlock, weight: &Tensor) {
        let data = varmap.data().lock().unwrap();
        let name = format!("pose_blocks.{}.fuse.weight", block.name());
        data[&name].set(weight).unwrap();
    }

    #[test]
    fn levels_follow_the_downsamplers() {
        let unet = motion_unet();
        let found: Vec<(String, usize)> = unet
            .spatial_blocks()
            .iter()
            .map(|b| (b.name.to_string(), b.level))
            .collect();
        let expect = |n: &str, l| (format!("{n}.transformer_blocks.0"), l);
        assert_eq!(
            found,
            vec![
                expect("down_blocks.0.attentions.0", 0),
                expect("down_blocks.0.attentions.1", 0),
                expect("mid_block.attentions.0", 1),
                expect("up_blocks.1.attentions.0", 0),
                expect("up_blocks.1.attentions.1", 0),
                expect("up_blocks.1.attentions.2", 0),
            ]
        );
        // The default placement (levels 1 and 2) selects the mid block only on this UNet.
        let vb = VarBuilder::zeros(DType::F32, &Device::Cpu);
        let blocks = PoseBlocks::new(vb.clone(), &unet, &PoseConfig::default()).unwrap();
        let names: Vec<&str> = blocks.blocks().iter().map(|b| b.name()).collect();
        assert_eq!(names, ["mid_block.attentions.0.transformer_blocks.0"]);
        assert_eq!(blocks.blocks()[0].channels(), 64);
        let none = PoseConfig {
            levels: vec![4],
            ..Default::default()
        };
        assert!(PoseBlocks::new(vb, &unet, &none).is_err());
    }

    #[test]
    fn fresh_pose_blocks_leave_the_unet_unchanged() {
        let unet = motion_unet();
        let device = Device::Cpu;
        let config = PoseConfig {
            levels: vec![0, 1],
            ..Default::default()
        };
        let varmap = fresh_parameters(&unet, &config, 5, DType::F32, &device).unwrap();
        // Inference builds from plain tensors (as loaded from a subject file): no gradient
        // tracking, so the UNet's layers take their inference paths.
        let weights = crate::train::snapshot(&varmap, DType::F32).unwrap();
        let blocks = PoseBlocks::new(
            VarBuilder::from_tensors(weights, DType::F32, &device),
            &unet,
            &config,
        )
        .unwrap();
        assert_eq!(blocks.blocks().len(), 6);

        let reference_latents = Tensor::randn(0f32, 1.0, (2, 4, 8, 8), &device).unwrap();
        let prompt = Tensor::randn(0f32, 1.0, (1, 7, 32), &device).unwrap();
        let references =
            ReferenceFeatures::compute(&unet, &blocks, &reference_latents, &prompt).unwrap();
        assert_eq!(references.views(), 2);
        assert_eq!(
            references
                .get("mid_block.attentions.0.transformer_blocks.0")
                .unwrap()
                .dims(),
            &[2, 64, 4, 4]
        );
        let reference_cameras = [camera(-0.6), camera(0.6)];
        let targets = [camera(-0.3), camera(0.0), camera(0.3)];
        // Guidance batch [uncond; text].
        let conditioning = Tensor::randn(0f32, 1.0, (2, 7, 32), &device).unwrap();
        let request = RenderRequest {
            references: &references,
            reference_cameras: &reference_cameras,
            targets: &targets,
            latent_size: (8, 8),
            conditioning: &conditioning,
        };
        let rendered = render_features(&unet, &blocks, &request, &mut Jitter::None).unwrap();
        let mid = rendered
            .get("mid_block.attentions.0.transformer_blocks.0")
            .unwrap();
        assert_eq!(mid.features.dims(), &[6, 64, 4, 4]);
        // The zero decoder renders non-zero features: the identity fuse is what hides them.
        assert!(
            mid.features
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
                > 0.0
        );

        let sample = Tensor::randn(0f32, 1.0, (2, 4, 3, 8, 8), &device).unwrap();
        let t = Tensor::new(&[500f32], &device).unwrap();
        let context = conditioning.repeat((1, 1, 1)).unwrap();
        let plain = unet.forward(&sample, &t, &context, None).unwrap();
        let mut hook = PoseBlockHook::new(&blocks, &rendered);
        let posed = unet
            .forward(&sample, &t, &context, Some(&mut hook))
            .unwrap();
        // Identical up to f32 rounding: two forwards of the same UNet already differ by ~1e-6
        // (threaded reductions), so allow 64 ulp of the output's magnitude; an open fuse
        // changes the output by more than 1e-3 (checked below).
        let scale = plain
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let diff = max_abs_diff(&plain, &posed);
        assert!(
            diff <= 64.0 * f32::EPSILON * scale.max(1.0),
            "{diff} at scale {scale}"
        );

        // A fuse that lets the rendered features in changes the output: the hook is live.
        let block = &blocks.blocks()[2];
        let c = block.channels();
        let open = Tensor::cat(
            &[
                Tensor::eye(c, DType::F32, &device).unwrap(),
                (Tensor::eye(c, DType::F32, &device).unwrap() * 0.5).unwrap(),
            ],
            1,
        )
        .unwrap();
        set_fuse(&varmap, block, &open);
        let trained = PoseBlocks::new(
            VarBuilder::from_varmap(&varmap, DType::F32, &device),
            &unet,
            &config,
        )
        .unwrap();
        let mut hook = PoseBlockHook::new(&trained, &rendered);
        let opened = unet
            .forward(&sample, &t, &context, Some(&mut hook))
            .unwrap();
        assert!(max_abs_diff(&plain, &opened) > 1e-3);
    }

    #[test]
    fn shared_geometry_and_fusion_match_rendering_each_view_and_prompt_alone() {
        let unet = motion_unet();
        let device = Device::Cpu;
        let config = PoseConfig {
            levels: vec![0, 1],
            ..Default::default()
        };
        let (_, blocks) = trainable_blocks(&unet, &config, 11);
        let latents = Tensor::randn(0f32, 1.0, (2, 4, 8, 8), &device).unwrap();
        let prompt = Tensor::randn(0f32, 1.0, (1, 7, 32), &device).unwrap();
        let references = ReferenceFeatures::compute(&unet, &blocks, &latents, &prompt).unwrap();
        let reference_cameras = [camera(-0.5), camera(0.4)];
        let targets = [camera(-0.2), camera(0.7)];
        let conditioning = Tensor::randn(0f32, 1.0, (2, 7, 32), &device).unwrap();
        let request = RenderRequest {
            references: &references,
            reference_cameras: &reference_cameras,
            targets: &targets,
            latent_size: (8, 8),
            conditioning: &conditioning,
        };
        let rendered = render_features(&unet, &blocks, &request, &mut Jitter::None).unwrap();

        // The reference: each (block, prompt row, target) rendered on its own, from its own
        // geometry, through the field's single-call path.
        for block in blocks.blocks() {
            let name = block.name();
            let reference = references.get(name).unwrap();
            let (views, c, hr, wr) = reference.dims4().unwrap();
            let tokens = reference
                .permute((0, 2, 3, 1))
                .unwrap()
                .reshape((views, hr * wr, c))
                .unwrap();
            let (h, w) = unet
                .hook_sites()
                .iter()
                .find(|site| site.name == name)
                .unwrap()
                .grid((8, 8));
            let carrier = unet.transformer_block(name).unwrap();
            let grid = ReferenceGrid {
                cameras: &reference_cameras,
                width: wr as u32,
                height: hr as u32,
            };
            let got = rendered.get(name).unwrap();
            for row in 0..2 {
                let text = BlockText::new(
                    carrier,
                    conditioning.narrow(0, row, 1).unwrap(),
                    unet.attention_settings(),
                );
                for (t, target) in targets.iter().enumerate() {
                    let geometry = sample_geometry(
                        block.field().sampling(),
                        target,
                        w as u32,
                        h as u32,
                        0,
                        h * w,
                        &grid,
                        &mut Jitter::None,
                    );
                    let alone = block.field().render(&tokens, &geometry, &text).unwrap();
                    let expected = alone
                        .features
                        .reshape((h, w, c))
                        .unwrap()
                        .permute((2, 0, 1))
                        .unwrap();
                    let actual = got.features.get(row * targets.len() + t).unwrap();
                    let scale = max_abs_diff(&expected, &expected.zeros_like().unwrap());
                    assert!(scale > 0.0, "{name}: nothing rendered");
                    let diff = max_abs_diff(&expected, &actual);
                    assert!(
                        diff <= 1e-5 * scale.max(1.0),
                        "{name} row {row} view {t}: {diff}"
                    );
                    let opacity = got.opacity.get(row * targets.len() + t).unwrap();
                    let expected_opacity = alone.opacity.reshape((h, w)).unwrap();
                    assert!(max_abs_diff(&expected_opacity, &opacity) <= 1e-5);
                }
            }
        }
    }

    #[test]
    fn mismatched_renders_are_rejected() {
        let unet = motion_unet();
        let device = Device::Cpu;
        let (_, blocks) = trainable_blocks(&unet, &PoseConfig::default(), 1);
        let latents = Tensor::randn(0f32, 1.0, (1, 4, 8, 8), &device).unwrap();
        let prompt = Tensor::randn(0f32, 1.0, (1, 7, 32), &device).unwrap();
        let references = ReferenceFeatures::compute(&unet, &blocks, &latents, &prompt).unwrap();
        let request = RenderRequest {
            references: &references,
            reference_cameras: &[camera(0.0)],
            targets: &[camera(0.1), camera(0.2)],
            latent_size: (8, 8),
            conditioning: &prompt,
        };
        let rendered = render_features(&unet, &blocks, &request, &mut Jitter::None).unwrap();
        // Rendered for 2 views, run with 3 frames.
        let sample = Tensor::randn(0f32, 1.0, (1, 4, 3, 8, 8), &device).unwrap();
        let t = Tensor::new(&[10f32], &device).unwrap();
        let mut hook = PoseBlockHook::new(&blocks, &rendered);
        let err = unet
            .forward(&sample, &t, &prompt, Some(&mut hook))
            .unwrap_err();
        assert!(matches!(err, ModelError::InvalidInput { .. }), "{err}");
        // Reference features from 1 view with 2 cameras.
        let two = [camera(0.0), camera(0.5)];
        let bad = RenderRequest {
            reference_cameras: &two,
            ..request
        };
        assert!(render_features(&unet, &blocks, &bad, &mut Jitter::None).is_err());
    }
}
