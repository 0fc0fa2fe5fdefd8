//! A [`SampleGeometry`] as the tensors a field evaluates with: the bilinear taps as a dense
//! interpolation matrix per reference view (so one batched matmul samples every reference
//! map), the validity mask, the positional encodings and the bin lengths. Built once per
//! geometry and shared by every block that samples the same rays: the encodings and the
//! matrix cost more than one block's evaluation.

use candle_core::{DType, Device, Result, Tensor};

use super::encoding::{point_encoding, ray_encoding};
use super::geometry::{SampleGeometry, SamplingConfig};

/// The tensors of one [`SampleGeometry`] (see the module docs).
#[derive(Clone, Debug)]
pub struct PreparedGeometry {
    /// Reference views.
    pub views: usize,
    /// Rays.
    pub rays: usize,
    /// Samples per ray.
    pub samples: usize,
    /// Cells of each reference feature map.
    pub cells: usize,
    /// `[views, rays·samples, cells]`: each sample's bilinear weights over each reference
    /// map's cells (at most four non-zero; none for taps outside the map).
    pub interpolation: Tensor,
    /// `[views, rays·samples, 1]`: 1 where the reference view sees the sample.
    pub valid: Tensor,
    /// `[views, rays·samples, point_encoding_len]`: the samples in each reference frame.
    pub point_in_reference: Tensor,
    /// `[views, rays, 1, ray_encoding_len]`: the rays in each reference frame.
    pub ray_in_reference: Tensor,
    /// `[1, rays·samples, point_encoding_len]`: the samples in the target frame.
    pub point_in_target: Tensor,
    /// `[views, 1, point_encoding_len]`: the reference camera centres in the target frame.
    pub reference_center_in_target: Tensor,
    /// `[rays·samples, 1]`: bin lengths for volume rendering.
    pub deltas: Tensor,
}

impl PreparedGeometry {
    /// The tensors of `geometry`, encoded with `sampling`'s octaves, on `device` in `dtype`
    /// (the encodings are computed in f32 first).
    pub fn new(
        geometry: &SampleGeometry,
        sampling: &SamplingConfig,
        device: &Device,
        dtype: DType,
    ) -> Result<Self> {
        let (views, rays, samples, cells) = (
            geometry.views,
            geometry.rays,
            geometry.samples,
            geometry.cells,
        );
        let n = rays * samples;
        let taps = views * n;
        let index = Tensor::from_slice(&geometry.tap_index, (taps, 4), device)?;
        let weight = Tensor::from_slice(&geometry.tap_weight, (taps, 4), device)?;
        // Column `cells` collects the taps outside the map; it is cut off.
        let interpolation = Tensor::zeros((taps, cells + 1), DType::F32, device)?
            .scatter_add(&index, &weight, 1)?
            .narrow(1, 0, cells)?
            .reshape((views, n, cells))?
            .to_dtype(dtype)?;
        let points = |data: &[f32], shape: &[usize]| -> Result<Tensor> {
            point_encoding(
                &Tensor::from_slice(data, shape, device)?,
                sampling.point_frequencies,
            )?
            .to_dtype(dtype)
        };
        Ok(Self {
            views,
            rays,
            samples,
            cells,
            interpolation,
            valid: Tensor::from_slice(&geometry.valid, (views, n, 1), device)?.to_dtype(dtype)?,
            point_in_reference: points(&geometry.point_in_reference, &[views, n, 3])?,
            ray_in_reference: ray_encoding(
                &Tensor::from_slice(&geometry.ray_in_reference, (views, rays, 1, 6), device)?,
                sampling.ray_frequencies,
            )?
            .to_dtype(dtype)?,
            point_in_target: points(&geometry.point_in_target, &[1, n, 3])?,
            reference_center_in_target: points(
                &geometry.reference_center_in_target,
                &[views, 1, 3],
            )?,
            deltas: Tensor::from_slice(&geometry.deltas, (n, 1), device)?.to_dtype(dtype)?,
        })
    }
}
