//! FeatureNeRF: a feature field over the normalised scene, built from reference feature maps
//! and rendered along target rays (method.md, "Pose-conditioned transformer block").

use candle_core::{D, DType, Device, Module, Result, Tensor};
use candle_nn::{Init, Linear, VarBuilder};

use super::encoding::{point_encoding_len, ray_encoding_len};
use super::geometry::{SampleGeometry, SamplingConfig};
use super::prepared::PreparedGeometry;

/// The block's own text cross-attention, applied to the field's samples so that the field
/// depends on the prompt. Implemented by the transformer block that carries the field.
pub trait TextConditioning {
    /// Cross-attention output (without the residual) for `tokens` `[1, n, C]`.
    fn attend(&self, tokens: &Tensor) -> Result<Tensor>;
}

/// What a field renders for a set of rays.
#[derive(Debug, Clone)]
pub struct FieldOutput {
    /// `[rays, C]` rendered features.
    pub features: Tensor,
    /// `[rays]` accumulated opacity Σ w.
    pub opacity: Tensor,
    /// `[rays, 3]` rendered colour.
    pub rgb: Tensor,
}

/// Bounds of the pre-activation density, so `exp` neither overflows nor passes unbounded
/// gradients (its gradient is zero outside the range).
const DENSITY_LOGIT_RANGE: (f32, f32) = (-10.0, 10.0);

/// FeatureNeRF's learned parts for one transformer block of width `C`: the per-view MLP
/// `Linear(C+G→C), SiLU, Linear(C→C)`, the view-weight head `Linear(C+G→1)` and the
/// zero-initialised RGB + density decoder `Linear(C→4, no bias)`.
#[derive(Debug, Clone)]
pub struct FeatureNerf {
    channels: usize,
    sampling: SamplingConfig,
    view_mlp_in: Linear,
    view_mlp_out: Linear,
    view_weight: Linear,
    decoder: Linear,
}

/// The columns `[start, start + len)` of a linear layer's weight, as `[out, len]`.
fn weight_columns(linear: &Linear, start: usize, len: usize) -> Result<Tensor> {
    linear.weight().narrow(1, start, len)
}

/// `x · Wᵀ` for `x` of any rank (the last dimension contracted).
fn apply_weight(x: &Tensor, weight: &Tensor) -> Result<Tensor> {
    x.broadcast_matmul(&weight.t()?)
}

impl FeatureNerf {
    /// Builds (or, from a fresh `VarMap`, initialises) the field's weights under `vb`:
    /// `view_mlp.0`, `view_mlp.2`, `view_weight`, `decoder` (zero-initialised).
    pub fn new(vb: VarBuilder, channels: usize, sampling: SamplingConfig) -> Result<Self> {
        let g = sampling.view_input_len();
        let gw = sampling.weight_input_len();
        let view_mlp_in = candle_nn::linear(channels + g, channels, vb.pp("view_mlp.0"))?;
        let view_mlp_out = candle_nn::linear(channels, channels, vb.pp("view_mlp.2"))?;
        let view_weight = candle_nn::linear(channels + gw, 1, vb.pp("view_weight"))?;
        let decoder_weight =
            vb.pp("decoder")
                .get_with_hints((4, channels), "weight", Init::Const(0.0))?;
        Ok(Self {
            channels,
            sampling,
            view_mlp_in,
            view_mlp_out,
            view_weight,
            decoder: Linear::new(decoder_weight, None),
        })
    }

    /// The sampling settings the field was built with.
    pub fn sampling(&self) -> &SamplingConfig {
        &self.sampling
    }

    /// Renders the rays of `geometry` from reference features `[views, h·w, C]` (the tokens
    /// of the reference images at this block, row-major over the reference grid).
    pub fn render(
        &self,
        reference: &Tensor,
        geometry: &SampleGeometry,
        text: &dyn TextConditioning,
    ) -> Result<FieldOutput> {
        let prepared = PreparedGeometry::new(
            geometry,
            &self.sampling,
            reference.device(),
            reference.dtype(),
        )?;
        let fused = self.fuse_views(reference, &prepared)?;
        self.render_fused(&fused, &prepared, text)
    }

    /// The prompt-independent part of [`FeatureNerf::render`]: every sample's feature fused
    /// across the reference views, `[rays·samples, C]`. Computed once, it serves every prompt
    /// through [`FeatureNerf::render_fused`].
    pub fn fuse_views(&self, reference: &Tensor, geometry: &PreparedGeometry) -> Result<Tensor> {
        let (views, cells, channels) = reference.dims3()?;
        if views != geometry.views || cells != geometry.cells || channels != self.channels {
            candle_core::bail!(
                "reference features {:?} do not match {} views of {} cells and {} channels",
                reference.dims(),
                geometry.views,
                geometry.cells,
                self.channels
            );
        }
        let (rays, k) = (geometry.rays, geometry.samples);
        let n = rays * k;

        // Bilinear taps into every reference map, as one batched matmul.
        let sampled = geometry.interpolation.matmul(reference)?; // [V, N, C]

        // Per-view MLP on [feature, point PE (reference frame), ray PE (reference frame)].
        let pe_point = point_encoding_len(self.sampling.point_frequencies);
        let pe_ray = ray_encoding_len(self.sampling.ray_frequencies);
        let w1 = self.view_mlp_in.weight();
        let ray_term = apply_weight(
            &geometry.ray_in_reference,
            &weight_columns(&self.view_mlp_in, channels + pe_point, pe_ray)?,
        )?
        .broadcast_as((views, rays, k, channels))?
        .reshape((views, n, channels))?;
        let mut hidden = (apply_weight(&sampled, &w1.narrow(1, 0, channels)?)?
            + apply_weight(
                &geometry.point_in_reference,
                &weight_columns(&self.view_mlp_in, channels, pe_point)?,
            )?)?
        .add(&ray_term)?;
        if let Some(bias) = self.view_mlp_in.bias() {
            hidden = hidden.broadcast_add(bias)?;
        }
        let per_view = self.view_mlp_out.forward(&candle_nn::ops::silu(&hidden)?)?; // [V, N, C]

        // View weights from [feature, point PE (target frame), reference centre PE (target frame)].
        let mut logits = apply_weight(&per_view, &weight_columns(&self.view_weight, 0, channels)?)?
            .broadcast_add(&apply_weight(
                &geometry.point_in_target,
                &weight_columns(&self.view_weight, channels, pe_point)?,
            )?)?
            .broadcast_add(&apply_weight(
                &geometry.reference_center_in_target,
                &weight_columns(&self.view_weight, channels + pe_point, pe_point)?,
            )?)?;
        if let Some(bias) = self.view_weight.bias() {
            logits = logits.broadcast_add(bias)?;
        }
        let valid = &geometry.valid;
        // Invalid views get −1e4 before the softmax and weight 0 after it, so a sample no
        // reference sees carries no feature.
        let masked = (logits + ((valid - 1.0)? * 1e4)?)?;
        let weights = candle_nn::ops::softmax(&masked, 0)?.mul(valid)?;
        per_view.broadcast_mul(&weights)?.sum(0) // [N, C]
    }

    /// The prompt-dependent rest of [`FeatureNerf::render`]: the block's text cross-attention
    /// on the fused samples `[rays·samples, C]`, then colour, density and volume rendering.
    pub fn render_fused(
        &self,
        fused: &Tensor,
        geometry: &PreparedGeometry,
        text: &dyn TextConditioning,
    ) -> Result<FieldOutput> {
        let (rays, k, channels) = (geometry.rays, geometry.samples, self.channels);
        let n = rays * k;
        if fused.dims() != [n, channels] {
            candle_core::bail!(
                "fused samples {:?} do not match {rays} rays of {k} samples and {channels} channels",
                fused.dims()
            );
        }
        // The block's text cross-attention, residual.
        let tokens = fused.unsqueeze(0)?;
        let conditioned = (&tokens + text.attend(&tokens)?)?.squeeze(0)?;

        // Decode colour and density, then volume-render along each ray.
        let decoded = self.decoder.forward(&conditioned)?; // [N, 4]
        let rgb = candle_nn::ops::sigmoid(&decoded.narrow(1, 0, 3)?)?;
        let density = decoded
            .narrow(1, 3, 1)?
            .clamp(DENSITY_LOGIT_RANGE.0, DENSITY_LOGIT_RANGE.1)?
            .exp()?;
        let weights = render_weights(&(density * &geometry.deltas)?.reshape((rays, k))?)?; // [R, K]
        let w = weights.unsqueeze(2)?;
        Ok(FieldOutput {
            features: conditioned
                .reshape((rays, k, channels))?
                .broadcast_mul(&w)?
                .sum(1)?,
            opacity: weights.sum(1)?,
            rgb: rgb.reshape((rays, k, 3))?.broadcast_mul(&w)?.sum(1)?,
        })
    }
}

/// Volume-rendering weights `w_k = α_k T_k` from optical thicknesses `σ_k δ_k` `[rays, K]`:
/// `α_k = 1 − exp(−σ_k δ_k)`, `T_k = exp(−Σ_{j<k} σ_j δ_j)`.
pub fn render_weights(thickness: &Tensor) -> Result<Tensor> {
    let alpha = (1.0 - thickness.neg()?.exp()?)?;
    let before = (thickness.cumsum(D::Minus1)? - thickness)?;
    alpha.mul(&before.neg()?.exp()?)
}

/// The identity-initialised fusion `Linear(2C → C, no bias)`: `[x | r] ↦ W_x x + W_r r`, with
/// `W = [I | 0]` at initialisation so a fresh pose block leaves the network unchanged.
#[derive(Debug, Clone)]
pub struct Fuse {
    weight: Tensor,
    channels: usize,
}

impl Fuse {
    /// Reads the fusion weight `weight` `[C, 2C]` under `vb`. A fresh block must start from
    /// [`Fuse::identity_weight`] (the trainer inserts it before building).
    pub fn new(vb: VarBuilder, channels: usize) -> Result<Self> {
        let weight = vb.get((channels, 2 * channels), "weight")?;
        Ok(Self { weight, channels })
    }

    /// The `[I | 0]` weight a fresh fusion starts from.
    pub fn identity_weight(channels: usize, dtype: DType, device: &Device) -> Result<Tensor> {
        Tensor::cat(
            &[
                Tensor::eye(channels, dtype, device)?,
                Tensor::zeros((channels, channels), dtype, device)?,
            ],
            1,
        )
    }

    /// Fuses block tokens `x` `[.., C]` with rendered features `r` `[.., C]`.
    pub fn forward(&self, x: &Tensor, rendered: &Tensor) -> Result<Tensor> {
        let c = self.channels;
        apply_weight(x, &self.weight.narrow(1, 0, c)?)?
            + apply_weight(rendered, &self.weight.narrow(1, c, c)?)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::{ImageSize, Intrinsics, PinholeCamera, look_at};
    use crate::model::pose::geometry::{Jitter, ReferenceGrid, sample_geometry};
    use crate::model::test_support::max_abs_diff;
    use candle_nn::VarMap;
    use glam::Vec3;

    /// Adds nothing: isolates the field from the prompt.
    struct NoText;
    impl TextConditioning for NoText {
        fn attend(&self, tokens: &Tensor) -> Result<Tensor> {
            tokens.zeros_like()
        }
    }

    fn camera(eye: Vec3) -> PinholeCamera {
        let k = Intrinsics::from_vertical_fov(0.8, 8, 8).unwrap();
        look_at(eye, Vec3::ZERO, Vec3::Y, k, ImageSize::new(8, 8).unwrap()).unwrap()
    }

    fn field(channels: usize) -> (VarMap, FeatureNerf) {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let field = FeatureNerf::new(vb, channels, SamplingConfig::default()).unwrap();
        (varmap, field)
    }

    #[test]
    fn render_weights_match_the_closed_form() {
        // Constant thickness τ on K samples: opacity 1 − exp(−Kτ); w_k = (1 − e^{−τ}) e^{−kτ}.
        let tau = 0.3f32;
        let thickness = Tensor::full(tau, (2, 5), &Device::Cpu).unwrap();
        let w = render_weights(&thickness)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        for (k, wk) in w[1].iter().enumerate() {
            let expected = (1.0 - (-tau).exp()) * (-(k as f32) * tau).exp();
            assert!((wk - expected).abs() < 1e-6);
        }
        let opacity: f32 = w[0].iter().sum();
        assert!((opacity - (1.0 - (-5.0 * tau).exp())).abs() < 1e-6);
    }

    #[test]
    fn a_view_seen_from_itself_taps_its_own_pixel() {
        let cam = camera(Vec3::new(0.0, 0.0, 1.0));
        let refs = [cam];
        let grid = ReferenceGrid {
            cameras: &refs,
            width: 4,
            height: 4,
        };
        let g = sample_geometry(
            &SamplingConfig::default(),
            &cam,
            4,
            4,
            0,
            16,
            &grid,
            &mut Jitter::None,
        );
        for r in 0..16 {
            for s in 0..g.samples {
                let at = (r * g.samples + s) * 4;
                // All bilinear weight lands on the ray's own pixel.
                let own: f32 = (at..at + 4)
                    .filter(|&t| g.tap_index[t] == r as u32)
                    .map(|t| g.tap_weight[t])
                    .sum();
                assert!((own - 1.0).abs() < 1e-3, "ray {r} sample {s}: {own}");
                assert_eq!(g.valid[r * g.samples + s], 1.0);
            }
        }
    }

    #[test]
    fn a_fresh_decoder_renders_the_analytic_opacity_and_colour() {
        // Zero decoder: σ = e⁰ = 1 and rgb = sigmoid(0) = ½ everywhere, so every ray has
        // opacity 1 − exp(−far) and colour ½·opacity.
        let (_vars, field) = field(8);
        let target = camera(Vec3::new(0.3, 0.2, 1.0));
        let refs = [
            camera(Vec3::new(0.0, 0.0, 1.0)),
            camera(Vec3::new(1.0, 0.0, 0.2)),
        ];
        let grid = ReferenceGrid {
            cameras: &refs,
            width: 4,
            height: 4,
        };
        let g = sample_geometry(
            field.sampling(),
            &target,
            4,
            4,
            0,
            16,
            &grid,
            &mut Jitter::None,
        );
        let reference = Tensor::randn(0f32, 1.0, (2, 16, 8), &Device::Cpu).unwrap();
        let out = field.render(&reference, &g, &NoText).unwrap();
        let expected = 1.0 - (-2.0f32).exp();
        for o in out.opacity.to_vec1::<f32>().unwrap() {
            assert!((o - expected).abs() < 1e-5, "{o}");
        }
        for rgb in out.rgb.to_vec2::<f32>().unwrap() {
            assert!(rgb.iter().all(|c| (c - 0.5 * expected).abs() < 1e-5));
        }
        assert_eq!(out.features.dims(), &[16, 8]);
    }

    #[test]
    fn samples_no_reference_sees_carry_no_feature() {
        let (_vars, field) = field(4);
        // The reference looks away from everything the target's rays cross.
        let target = camera(Vec3::new(0.0, 0.0, 1.0));
        let away = look_at(
            Vec3::new(0.0, 0.0, 1.5),
            Vec3::new(0.0, 0.0, 3.0),
            Vec3::Y,
            *target.intrinsics(),
            target.size(),
        )
        .unwrap();
        let refs = [away];
        let grid = ReferenceGrid {
            cameras: &refs,
            width: 4,
            height: 4,
        };
        let g = sample_geometry(
            field.sampling(),
            &target,
            2,
            2,
            0,
            4,
            &grid,
            &mut Jitter::None,
        );
        assert!(g.valid.iter().all(|v| *v == 0.0));
        let reference = Tensor::randn(0f32, 1.0, (1, 16, 4), &Device::Cpu).unwrap();
        let out = field.render(&reference, &g, &NoText).unwrap();
        let max = out
            .features
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert_eq!(max, 0.0);
    }

    #[test]
    fn identity_fusion_returns_the_block_tokens() {
        let varmap = VarMap::new();
        varmap.data().lock().unwrap().insert(
            "fuse.weight".into(),
            candle_core::Var::from_tensor(
                &Fuse::identity_weight(6, DType::F32, &Device::Cpu).unwrap(),
            )
            .unwrap(),
        );
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let fuse = Fuse::new(vb.pp("fuse"), 6).unwrap();
        let x = Tensor::randn(0f32, 1.0, (2, 5, 6), &Device::Cpu).unwrap();
        let r = Tensor::randn(0f32, 1.0, (2, 5, 6), &Device::Cpu).unwrap();
        let y = fuse.forward(&x, &r).unwrap();
        assert_eq!(max_abs_diff(&y, &x), 0.0);
    }
}
