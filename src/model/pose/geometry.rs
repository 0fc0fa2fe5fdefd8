//! The fixed geometry of one FeatureNeRF evaluation: rays through the target feature pixels,
//! stratified samples along them, where each sample lands in every reference feature map
//! (bilinear taps), and the coordinates the networks' positional encodings take. All of it
//! depends only on cameras, so it is computed once per (target pose, reference set) on the
//! CPU; the encodings themselves are computed on tensors by the field.

use glam::Vec3;
use rand::Rng;

use super::encoding::{point_encoding_len, ray_encoding_len};
use crate::camera::{PinholeCamera, Ray};

/// Sampling settings of the field (defaults from method.md).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SamplingConfig {
    /// Samples per ray.
    pub samples: usize,
    /// Distance of the first sample bin's start along each ray (normalised scene units).
    pub near: f32,
    /// Distance of the last sample bin's end.
    pub far: f32,
    /// Octaves of the point encodings.
    pub point_frequencies: usize,
    /// Octaves of the ray (Plücker) encoding.
    pub ray_frequencies: usize,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        Self {
            samples: 24,
            near: 0.0,
            far: 2.0,
            point_frequencies: 16,
            ray_frequencies: 8,
        }
    }
}

impl SamplingConfig {
    /// Width of the per-view MLP's geometric input: point PE in the reference frame plus the
    /// ray encoding in that frame (198 with the defaults).
    pub fn view_input_len(&self) -> usize {
        point_encoding_len(self.point_frequencies) + ray_encoding_len(self.ray_frequencies)
    }

    /// Width of the view-weight head's geometric input: point PE in the target frame plus the
    /// reference camera centre's PE in the target frame (198 with the defaults).
    pub fn weight_input_len(&self) -> usize {
        2 * point_encoding_len(self.point_frequencies)
    }
}

/// Randomness of a training evaluation: ray origins jittered inside their pixel and sample
/// depths inside their bin. Inference uses pixel centres and bin midpoints.
pub enum Jitter<'a> {
    /// Pixel centres and bin midpoints.
    None,
    /// Uniform jitter from this generator.
    Random(&'a mut dyn rand::RngCore),
}

/// Geometry of a contiguous range of target rays, flattened as `ray · samples + sample`.
#[derive(Clone, Debug)]
pub struct SampleGeometry {
    /// Reference views.
    pub views: usize,
    /// Rays in this range.
    pub rays: usize,
    /// Samples per ray.
    pub samples: usize,
    /// Cells `h·w` of each reference feature map.
    pub cells: usize,
    /// `[views, rays·samples, 4]` the reference map cell of each bilinear tap, row-major;
    /// `cells` for a tap outside the map.
    pub tap_index: Vec<u32>,
    /// `[views, rays·samples, 4]` bilinear weights of the taps.
    pub tap_weight: Vec<f32>,
    /// `[views, rays·samples]`: 1 where the sample projects inside the reference image and in
    /// front of its camera.
    pub valid: Vec<f32>,
    /// `[views, rays·samples, 3]`: the sample in each reference camera's frame.
    pub point_in_reference: Vec<f32>,
    /// `[views, rays, 6]`: the target ray's Plücker coordinates in each reference frame.
    pub ray_in_reference: Vec<f32>,
    /// `[rays·samples, 3]`: the sample in the target camera's frame.
    pub point_in_target: Vec<f32>,
    /// `[views, 3]`: each reference camera centre in the target frame.
    pub reference_center_in_target: Vec<f32>,
    /// `[rays·samples]`: the length of each sample's bin, for volume rendering.
    pub deltas: Vec<f32>,
}

/// Reference feature maps' cameras and resolution.
pub struct ReferenceGrid<'a> {
    /// Reference cameras in the normalised scene.
    pub cameras: &'a [PinholeCamera],
    /// Feature map columns.
    pub width: u32,
    /// Feature map rows.
    pub height: u32,
}

/// Computes the geometry of target rays `first_ray .. first_ray + rays` of a
/// `target_width × target_height` feature grid laid over `target`'s image.
#[allow(clippy::too_many_arguments)]
pub fn sample_geometry(
    config: &SamplingConfig,
    target: &PinholeCamera,
    target_width: u32,
    target_height: u32,
    first_ray: usize,
    rays: usize,
    references: &ReferenceGrid<'_>,
    jitter: &mut Jitter<'_>,
) -> SampleGeometry {
    let views = references.cameras.len();
    let k = config.samples;
    let samples_total = rays * k;
    let cells = (references.width * references.height) as usize;
    let outside = cells as u32;
    let bin = (config.far - config.near) / k as f32;

    // Sample positions along each target ray.
    let mut ray_list: Vec<Ray> = Vec::with_capacity(rays);
    let mut points: Vec<Vec3> = Vec::with_capacity(samples_total);
    let mut deltas = Vec::with_capacity(samples_total);
    for r in first_ray..first_ray + rays {
        let (i, j) = (
            (r % target_width as usize) as u32,
            (r / target_width as usize) as u32,
        );
        let mut pixel = target.grid_cell_center(i, j, target_width, target_height);
        let mut depths = Vec::with_capacity(k);
        match jitter {
            Jitter::None => depths.extend((0..k).map(|s| config.near + (s as f32 + 0.5) * bin)),
            Jitter::Random(rng) => {
                let size = target.size();
                pixel.x += (rng.random::<f32>() - 0.5) * size.width as f32 / target_width as f32;
                pixel.y += (rng.random::<f32>() - 0.5) * size.height as f32 / target_height as f32;
                depths.extend((0..k).map(|s| config.near + (s as f32 + rng.random::<f32>()) * bin));
            }
        }
        let ray = target.ray(pixel);
        for (s, t) in depths.iter().enumerate() {
            points.push(ray.origin + ray.direction * *t);
            let next = depths.get(s + 1).copied().unwrap_or(t + bin);
            deltas.push((next - t).max(0.0));
        }
        ray_list.push(ray);
    }

    let mut geometry = SampleGeometry {
        views,
        rays,
        samples: k,
        cells,
        tap_index: Vec::with_capacity(views * samples_total * 4),
        tap_weight: Vec::with_capacity(views * samples_total * 4),
        valid: Vec::with_capacity(views * samples_total),
        point_in_reference: Vec::with_capacity(views * samples_total * 3),
        ray_in_reference: Vec::with_capacity(views * rays * 6),
        point_in_target: Vec::with_capacity(samples_total * 3),
        reference_center_in_target: Vec::with_capacity(views * 3),
        deltas,
    };
    let (w, h) = (references.width, references.height);
    for camera in references.cameras {
        for p in &points {
            let local = camera.extrinsics().world_to_camera(*p);
            geometry.point_in_reference.extend(local.to_array());
            let projected = camera.project_to_grid(*p, w, h);
            let inside = projected.is_some_and(|q| {
                q.pixel.x >= 0.0 && q.pixel.y >= 0.0 && q.pixel.x < w as f32 && q.pixel.y < h as f32
            });
            geometry.valid.push(if inside { 1.0 } else { 0.0 });
            match projected.filter(|_| inside) {
                Some(q) => {
                    // Tap centres sit at integer + 0.5.
                    let (x, y) = (q.pixel.x - 0.5, q.pixel.y - 0.5);
                    let (x0, y0) = (x.floor(), y.floor());
                    let (fx, fy) = (x - x0, y - y0);
                    for (dx, dy, weight) in [
                        (0, 0, (1.0 - fx) * (1.0 - fy)),
                        (1, 0, fx * (1.0 - fy)),
                        (0, 1, (1.0 - fx) * fy),
                        (1, 1, fx * fy),
                    ] {
                        let (xi, yi) = (x0 as i64 + dx, y0 as i64 + dy);
                        let row = if xi >= 0 && yi >= 0 && xi < w as i64 && yi < h as i64 {
                            (yi as u32) * w + xi as u32
                        } else {
                            outside
                        };
                        geometry.tap_index.push(row);
                        geometry.tap_weight.push(weight);
                    }
                }
                None => {
                    geometry.tap_index.extend([outside; 4]);
                    geometry.tap_weight.extend([0.0; 4]);
                }
            }
        }
        for ray in &ray_list {
            geometry
                .ray_in_reference
                .extend(ray.in_camera_frame(camera.extrinsics()).plucker());
        }
        let centre = target.extrinsics().world_to_camera(camera.center());
        geometry
            .reference_center_in_target
            .extend(centre.to_array());
    }
    for p in &points {
        let local = target.extrinsics().world_to_camera(*p);
        geometry.point_in_target.extend(local.to_array());
    }
    geometry
}
