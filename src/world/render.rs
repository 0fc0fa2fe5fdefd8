//! The world's CPU ray caster: for each camera, an sRGB image (Lambert + hemisphere ambient +
//! optional Blinn–Phong highlights and hard shadows), the exact z-depth and the instance mask.
//!
//! One ray per pixel centre (continuous coordinates `(i + 0.5, j + 0.5)`, the crate's
//! convention) gives depth and mask exactly; colour may average a regular grid of sub-pixel
//! rays (`supersampling`). Views render in parallel on scoped threads.

use std::ops::Deref;

use glam::{Vec2, Vec3};
use image::{GrayImage, RgbImage};
use serde::{Deserialize, Serialize};

use super::error::{Result, WorldError, invalid};
use super::scene::{Scene, Surface, SurfaceHit};
use crate::camera::PinholeCamera;
use crate::grid::Grid;

/// Mask id of pixels whose ray escapes to the sky or wall at infinity.
pub const MASK_BACKGROUND: u8 = 0;
/// Mask id of the ground plane.
pub const MASK_GROUND: u8 = 1;

/// Mask id of object `index` of the spec (`objects[0]`, the main object, is 2).
pub fn object_mask_id(index: usize) -> u8 {
    (index + 2).min(u8::MAX as usize) as u8
}

/// Offset along the normal for secondary rays, against self-intersection.
const SHADOW_BIAS: f32 = 1e-3;

/// Rendering options.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RenderSettings {
    /// Colour samples per pixel along each axis (1: one ray at the centre; n: an n×n grid).
    pub supersampling: u32,
    /// Trace shadow rays towards the sun and point lights.
    pub shadows: bool,
    /// Add view-dependent Blinn–Phong highlights (off: purely Lambertian, so a surface point
    /// has the same colour in every view).
    pub specular: bool,
    /// Worker threads for [`render_views`] (0: one per available core).
    pub threads: usize,
}

impl Default for RenderSettings {
    fn default() -> Self {
        Self {
            supersampling: 2,
            shadows: true,
            specular: true,
            threads: 0,
        }
    }
}

impl RenderSettings {
    /// Checks the sample count.
    pub fn validate(&self) -> Result<()> {
        if !(1..=8).contains(&self.supersampling) {
            return Err(invalid(
                "render.supersampling",
                self.supersampling,
                "must be 1 to 8",
            ));
        }
        Ok(())
    }
}

/// A row-major z-depth image (camera-frame Z of the surface seen at each pixel centre);
/// 0 where the ray escapes to the background. Its shape and values are read through the
/// [`Grid`] it dereferences to, except [`DepthImage::get`], which also hides the background.
#[derive(Clone, Debug, PartialEq)]
pub struct DepthImage(Grid<f32>);

impl DepthImage {
    /// A depth image from its values (finite, ≥ 0; 0 means no surface).
    pub fn new(width: u32, height: u32, data: Vec<f32>) -> Result<Self> {
        let found = data.len();
        let grid = Grid::new(width, height, data).map_err(|_| WorldError::SizeMismatch {
            field: "depth".into(),
            expected: width as usize * height as usize,
            found,
        })?;
        if let Some((index, value)) = grid
            .data()
            .iter()
            .enumerate()
            .find(|(_, d)| !d.is_finite() || **d < 0.0)
        {
            return Err(invalid(
                format!("depth[{index}]"),
                value,
                "must be finite and >= 0",
            ));
        }
        Ok(Self(grid))
    }

    /// The depth at pixel (column `i`, row `j`), `None` for background or outside the image.
    pub fn get(&self, i: u32, j: u32) -> Option<f32> {
        self.0.get(i, j).copied().filter(|&d| d > 0.0)
    }

    /// The values with background pixels set to `far` (for consumers that need a surface
    /// everywhere, such as a feature mesh).
    pub fn filled(&self, far: f32) -> Vec<f32> {
        self.data()
            .iter()
            .map(|&d| if d > 0.0 { d } else { far })
            .collect()
    }
}

impl Deref for DepthImage {
    type Target = Grid<f32>;

    fn deref(&self) -> &Grid<f32> {
        &self.0
    }
}

/// What one camera sees.
#[derive(Clone, Debug, PartialEq)]
pub struct View {
    /// sRGB colour.
    pub rgb: RgbImage,
    /// Exact z-depth.
    pub depth: DepthImage,
    /// Instance ids: [`MASK_BACKGROUND`], [`MASK_GROUND`] or [`object_mask_id`].
    pub mask: GrayImage,
}

/// Linear light in `[0, 1]` → 8-bit sRGB.
pub fn linear_to_srgb8(x: f32) -> u8 {
    let x = x.clamp(0.0, 1.0);
    let s = if x <= 0.003_130_8 {
        12.92 * x
    } else {
        1.055 * x.powf(1.0 / 2.4) - 0.055
    };
    (s * 255.0 + 0.5) as u8
}

/// 8-bit sRGB → linear light in `[0, 1]`.
pub fn srgb8_to_linear(v: u8) -> f32 {
    let s = v as f32 / 255.0;
    if s <= 0.040_45 {
        s / 12.92
    } else {
        ((s + 0.055) / 1.055).powf(2.4)
    }
}

/// Linear radiance leaving `hit` towards the viewer along `dir`.
fn shade(scene: &Scene, settings: &RenderSettings, dir: Vec3, hit: &SurfaceHit) -> Vec3 {
    let lighting = scene.lighting();
    let n = if hit.normal.dot(dir) > 0.0 {
        -hit.normal
    } else {
        hit.normal
    };
    let p = hit.position + n * SHADOW_BIAS;
    let up = 0.5 + 0.5 * n.y;
    let mut diffuse = lighting.ground_ambient.lerp(lighting.sky_ambient, up);
    let mut specular = Vec3::ZERO;
    let (strength, exponent) = hit.finish.specular();
    let mut light = |l: Vec3, radiance: Vec3, distance: f32| {
        let cos = n.dot(l);
        if cos <= 0.0 || radiance.max_element() <= 0.0 {
            return;
        }
        if settings.shadows && scene.occluded(p, l, 0.0, distance) {
            return;
        }
        diffuse += radiance * cos;
        if settings.specular && strength > 0.0 {
            let h = (l - dir).normalize_or_zero();
            specular += radiance * strength * n.dot(h).max(0.0).powf(exponent);
        }
    };
    light(scene.sun_direction(), lighting.sun_colour, f32::INFINITY);
    for point in &lighting.point_lights {
        let to_light = point.position - p;
        let d2 = to_light.length_squared().max(1e-6);
        let d = d2.sqrt();
        light(to_light / d, point.intensity / d2, d);
    }
    hit.albedo * diffuse + specular
}

/// Linear radiance along a ray.
fn radiance(scene: &Scene, settings: &RenderSettings, origin: Vec3, dir: Vec3) -> Vec3 {
    match scene.trace(origin, dir, 0.0) {
        Some(hit) => shade(scene, settings, dir, &hit),
        None => scene.environment().background(scene.lighting(), dir),
    }
}

/// Renders what `camera` sees of `scene`.
pub fn render_view(
    scene: &Scene,
    camera: &PinholeCamera,
    settings: &RenderSettings,
) -> Result<View> {
    settings.validate()?;
    let size = camera.size();
    let (w, h) = (size.width, size.height);
    let mut rgb = RgbImage::new(w, h);
    let mut mask = GrayImage::new(w, h);
    let mut depth = vec![0.0f32; size.area()];
    let n = settings.supersampling;
    let extrinsics = *camera.extrinsics();
    for j in 0..h {
        for i in 0..w {
            let centre = Vec2::new(i as f32 + 0.5, j as f32 + 0.5);
            let ray = camera.ray(centre);
            let hit = scene.trace(ray.origin, ray.direction, 0.0);
            let id = match &hit {
                Some(hit) => {
                    depth[(j * w + i) as usize] =
                        extrinsics.world_to_camera(hit.position).z.max(0.0);
                    match hit.surface {
                        Surface::Ground => MASK_GROUND,
                        Surface::Object(index) => object_mask_id(index),
                    }
                }
                None => MASK_BACKGROUND,
            };
            let colour = if n == 1 {
                match &hit {
                    Some(hit) => shade(scene, settings, ray.direction, hit),
                    None => scene
                        .environment()
                        .background(scene.lighting(), ray.direction),
                }
            } else {
                let mut sum = Vec3::ZERO;
                for sy in 0..n {
                    for sx in 0..n {
                        let offset = Vec2::new(sx as f32 + 0.5, sy as f32 + 0.5) / n as f32;
                        let r = camera.ray(Vec2::new(i as f32, j as f32) + offset);
                        sum += radiance(scene, settings, r.origin, r.direction);
                    }
                }
                sum / (n * n) as f32
            };
            mask.put_pixel(i, j, image::Luma([id]));
            rgb.put_pixel(i, j, image::Rgb(colour.to_array().map(linear_to_srgb8)));
        }
    }
    Ok(View {
        rgb,
        depth: DepthImage::new(w, h, depth)?,
        mask,
    })
}

/// Worker threads for `threads` (0: one per available core), at most one per job and at
/// least one.
pub(crate) fn worker_count(threads: usize, jobs: usize) -> usize {
    match threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        t => t,
    }
    .clamp(1, jobs.max(1))
}

/// Applies `f` to every item on up to `threads` scoped threads (0: one per core), each taking
/// a contiguous chunk; the results keep the items' order, so they equal a sequential map.
pub(crate) fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    let threads = worker_count(threads, items.len());
    if threads == 1 {
        return items.iter().map(&f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let f = &f;
    let results: Vec<Result<Vec<R>>> = std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|group| s.spawn(move || group.iter().map(f).collect::<Result<Vec<R>>>()))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(WorldError::InvalidValue {
                        field: "render thread".into(),
                        value: "panicked".into(),
                        reason: "a render worker panicked",
                    })
                })
            })
            .collect()
    });
    let mut all = Vec::with_capacity(items.len());
    for group in results {
        all.extend(group?);
    }
    Ok(all)
}

/// Renders every camera's view, in parallel over views on `settings.threads` scoped threads;
/// the result is the same as rendering them one by one.
pub fn render_views(
    scene: &Scene,
    cameras: &[PinholeCamera],
    settings: &RenderSettings,
) -> Result<Vec<View>> {
    settings.validate()?;
    parallel_map(cameras, settings.threads, |c| {
        render_view(scene, c, settings)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn srgb_encoding_round_trips_every_byte() {
        for v in 0..=255u8 {
            assert_eq!(linear_to_srgb8(srgb8_to_linear(v)), v);
        }
        assert_eq!(linear_to_srgb8(0.5), 188);
        assert_eq!(linear_to_srgb8(-1.0), 0);
        assert_eq!(linear_to_srgb8(7.0), 255);
    }

    #[test]
    fn depth_images_reject_bad_values_by_index() {
        assert!(DepthImage::new(2, 2, vec![1.0; 3]).is_err());
        let err = DepthImage::new(2, 1, vec![1.0, f32::NAN])
            .unwrap_err()
            .to_string();
        assert!(err.contains("depth[1]"), "{err}");
        let depth = DepthImage::new(2, 1, vec![0.0, 3.0]).unwrap();
        assert_eq!(depth.get(0, 0), None);
        assert_eq!(depth.get(1, 0), Some(3.0));
        assert_eq!(depth.get(2, 0), None);
        assert_eq!(depth.filled(9.0), vec![9.0, 3.0]);
    }

    #[test]
    fn settings_are_checked() {
        let bad = RenderSettings {
            supersampling: 0,
            ..RenderSettings::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("supersampling")
        );
        RenderSettings::default().validate().unwrap();
    }
}
