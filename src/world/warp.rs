//! Multi-view consistency through ground-truth geometry: which pixels of one view a point of
//! another view lands on, whether it is visible there, and how much colours disagree.
//!
//! Backward warping: every target pixel with a surface is lifted to 3-D with the target's
//! depth and camera, projected into the source camera and kept when the source sees the same
//! point there — its z-depth in the source camera agrees with the source depth map (inverse
//! depth interpolated bilinearly between pixel centres, exact for planes, so slanted ground
//! is no harder than a wall). The evaluation uses the same functions on generated views with
//! the scene's true depth and poses.

use glam::Vec2;
use image::{GrayImage, RgbImage};
use serde::{Deserialize, Serialize};

use super::error::{Result, WorldError, check_positive};
use super::render::DepthImage;
use crate::camera::PinholeCamera;

/// How strictly two depths must agree to call a point co-visible.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct WarpSettings {
    /// Largest relative difference `|z − z_source| / z` of a co-visible point.
    pub relative_depth_tolerance: f32,
}

impl Default for WarpSettings {
    fn default() -> Self {
        Self {
            relative_depth_tolerance: 0.02,
        }
    }
}

/// One co-visible target pixel and where it lands in the source view.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Correspondence {
    /// Target pixel column.
    pub i: u32,
    /// Target pixel row.
    pub j: u32,
    /// Continuous coordinates in the source grid (pixel centres at `k + 0.5`).
    pub source: Vec2,
    /// Relative disagreement of the two depths, `(z − z_source) / z`.
    pub depth_residual: f32,
}

/// The co-visible pixels of a target view with respect to a source view.
#[derive(Clone, Debug, PartialEq)]
pub struct Correspondences {
    /// Target grid columns.
    pub width: u32,
    /// Target grid rows.
    pub height: u32,
    /// Target pixels that see a surface.
    pub surface_pixels: usize,
    /// The co-visible ones.
    pub pairs: Vec<Correspondence>,
}

impl Correspondences {
    /// Fraction of the target's surface pixels that the source also sees.
    pub fn overlap(&self) -> f32 {
        self.pairs.len() as f32 / self.surface_pixels.max(1) as f32
    }

    /// Mean absolute relative depth residual of the co-visible pixels.
    pub fn mean_depth_residual(&self) -> f32 {
        let sum: f32 = self.pairs.iter().map(|c| c.depth_residual.abs()).sum();
        sum / self.pairs.len().max(1) as f32
    }
}

/// Source inverse depth at continuous grid point `q`: bilinear between the four nearest pixel
/// centres when all see a surface, else the nearest pixel's; `None` for the background.
fn source_inverse_depth(depth: &DepthImage, q: Vec2) -> Option<f32> {
    let (w, h) = (depth.width() as i64, depth.height() as i64);
    let nearest = |x: f32, y: f32| depth.get(x.floor().max(0.0) as u32, y.floor().max(0.0) as u32);
    let p = q - Vec2::splat(0.5);
    let (x0, y0) = (p.x.floor() as i64, p.y.floor() as i64);
    let f = p - Vec2::new(x0 as f32, y0 as f32);
    let at = |x: i64, y: i64| depth.get(x.clamp(0, w - 1) as u32, y.clamp(0, h - 1) as u32);
    match (
        at(x0, y0),
        at(x0 + 1, y0),
        at(x0, y0 + 1),
        at(x0 + 1, y0 + 1),
    ) {
        (Some(a), Some(b), Some(c), Some(d)) => {
            let top = (1.0 - f.x) / a + f.x / b;
            let bottom = (1.0 - f.x) / c + f.x / d;
            Some((1.0 - f.y) * top + f.y * bottom)
        }
        _ => nearest(q.x, q.y).map(|d| 1.0 / d),
    }
}

/// The target pixels co-visible in the source view, and where they land there. Depth maps
/// may have any resolution (a grid over each camera's whole image).
pub fn correspondences(
    source: &PinholeCamera,
    source_depth: &DepthImage,
    target: &PinholeCamera,
    target_depth: &DepthImage,
    settings: &WarpSettings,
) -> Result<Correspondences> {
    let tolerance = check_positive(
        "warp.relative_depth_tolerance",
        settings.relative_depth_tolerance,
    )?;
    let (tw, th) = (target_depth.width(), target_depth.height());
    let (sw, sh) = (source_depth.width(), source_depth.height());
    let mut surface_pixels = 0;
    let mut pairs = Vec::new();
    for j in 0..th {
        for i in 0..tw {
            let Some(d) = target_depth.get(i, j) else {
                continue;
            };
            surface_pixels += 1;
            let point = target.unproject(target.grid_cell_center(i, j, tw, th), d);
            let Some(q) = source.project_to_grid(point, sw, sh) else {
                continue;
            };
            if !(q.pixel.x >= 0.0
                && q.pixel.y >= 0.0
                && q.pixel.x < sw as f32
                && q.pixel.y < sh as f32)
            {
                continue;
            }
            let Some(inverse) = source_inverse_depth(source_depth, q.pixel) else {
                continue;
            };
            let residual = 1.0 - q.depth * inverse;
            if residual.abs() <= tolerance {
                pairs.push(Correspondence {
                    i,
                    j,
                    source: q.pixel,
                    depth_residual: residual,
                });
            }
        }
    }
    Ok(Correspondences {
        width: tw,
        height: th,
        surface_pixels,
        pairs,
    })
}

/// Bilinear sample of an image at continuous coordinates (edges clamped), channels in `[0, 1]`.
pub fn sample_rgb(image: &RgbImage, q: Vec2) -> [f32; 3] {
    let (w, h) = (image.width() as i64, image.height() as i64);
    let p = q - Vec2::splat(0.5);
    let (x0, y0) = (p.x.floor() as i64, p.y.floor() as i64);
    let f = p - Vec2::new(x0 as f32, y0 as f32);
    let px = |x: i64, y: i64| {
        image
            .get_pixel(x.clamp(0, w - 1) as u32, y.clamp(0, h - 1) as u32)
            .0
    };
    let (a, b, c, d) = (
        px(x0, y0),
        px(x0 + 1, y0),
        px(x0, y0 + 1),
        px(x0 + 1, y0 + 1),
    );
    std::array::from_fn(|k| {
        let top = (1.0 - f.x) * a[k] as f32 + f.x * b[k] as f32;
        let bottom = (1.0 - f.x) * c[k] as f32 + f.x * d[k] as f32;
        ((1.0 - f.y) * top + f.y * bottom) / 255.0
    })
}

fn check_dims(field: &str, image: &RgbImage, width: u32, height: u32) -> Result<()> {
    if image.dimensions() != (width, height) {
        return Err(WorldError::SizeMismatch {
            field: format!(
                "{field} ({}×{} image, depth grid {width}×{height})",
                image.width(),
                image.height()
            ),
            expected: (width * height) as usize,
            found: (image.width() * image.height()) as usize,
        });
    }
    Ok(())
}

/// The source image resampled into the target view: co-visible pixels get the source colour,
/// the others black; the mask is 255 where the warp is defined.
pub fn warp_rgb(source_rgb: &RgbImage, correspondences: &Correspondences) -> (RgbImage, GrayImage) {
    let (w, h) = (correspondences.width, correspondences.height);
    let mut out = RgbImage::new(w, h);
    let mut mask = GrayImage::new(w, h);
    for c in &correspondences.pairs {
        let rgb =
            sample_rgb(source_rgb, c.source).map(|v| (v * 255.0).round().clamp(0.0, 255.0) as u8);
        out.put_pixel(c.i, c.j, image::Rgb(rgb));
        mask.put_pixel(c.i, c.j, image::Luma([255]));
    }
    (out, mask)
}

/// Colour disagreement over co-visible pixels, channels in `[0, 1]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ColourError {
    /// Co-visible pixels compared.
    pub pixels: usize,
    /// Mean absolute difference per channel.
    pub mean_abs: f32,
    /// Root mean squared difference per channel.
    pub rmse: f32,
}

impl ColourError {
    /// Peak signal-to-noise ratio in dB (infinite for identical colours).
    pub fn psnr(&self) -> f32 {
        -20.0 * self.rmse.log10()
    }

    /// Pools two measurements, weighting by pixel counts.
    pub fn combine(&self, other: &ColourError) -> ColourError {
        let n = self.pixels + other.pixels;
        if n == 0 {
            return ColourError::default();
        }
        let (a, b) = (
            self.pixels as f32 / n as f32,
            other.pixels as f32 / n as f32,
        );
        ColourError {
            pixels: n,
            mean_abs: a * self.mean_abs + b * other.mean_abs,
            rmse: (a * self.rmse.powi(2) + b * other.rmse.powi(2)).sqrt(),
        }
    }
}

/// How much `target_rgb` disagrees with `source_rgb` warped into the target view.
pub fn colour_error(
    source_rgb: &RgbImage,
    target_rgb: &RgbImage,
    correspondences: &Correspondences,
) -> Result<ColourError> {
    check_dims(
        "target image",
        target_rgb,
        correspondences.width,
        correspondences.height,
    )?;
    let (mut abs, mut sq) = (0.0f64, 0.0f64);
    for c in &correspondences.pairs {
        let s = sample_rgb(source_rgb, c.source);
        let t = target_rgb.get_pixel(c.i, c.j).0;
        for k in 0..3 {
            let e = (s[k] - t[k] as f32 / 255.0) as f64;
            abs += e.abs();
            sq += e * e;
        }
    }
    let n = (3 * correspondences.pairs.len()).max(1) as f64;
    Ok(ColourError {
        pixels: correspondences.pairs.len(),
        mean_abs: (abs / n) as f32,
        rmse: (sq / n).sqrt() as f32,
    })
}

/// Colour consistency of a whole set of views: every ordered pair `(source, target)` of
/// distinct views compared over its co-visible pixels with the ground-truth `depths`, pooled.
pub fn multi_view_error(
    cameras: &[PinholeCamera],
    depths: &[DepthImage],
    images: &[RgbImage],
    settings: &WarpSettings,
) -> Result<ColourError> {
    if depths.len() != cameras.len() || images.len() != cameras.len() {
        return Err(WorldError::SizeMismatch {
            field: "views (cameras, depths, images)".into(),
            expected: cameras.len(),
            found: if depths.len() != cameras.len() {
                depths.len()
            } else {
                images.len()
            },
        });
    }
    for (k, (image, depth)) in images.iter().zip(depths).enumerate() {
        check_dims(&format!("image {k}"), image, depth.width(), depth.height())?;
    }
    let mut total = ColourError::default();
    for s in 0..cameras.len() {
        for t in 0..cameras.len() {
            if s != t {
                let c =
                    correspondences(&cameras[s], &depths[s], &cameras[t], &depths[t], settings)?;
                total = total.combine(&colour_error(&images[s], &images[t], &c)?);
            }
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_depth_interpolation_is_exact_for_planes() {
        // A plane's inverse depth is affine in pixel coordinates.
        let inverse = |p: Vec2| 0.2 + 0.01 * p.x + 0.004 * p.y;
        let (w, h) = (12u32, 9u32);
        let data = (0..h)
            .flat_map(|j| {
                (0..w).map(move |i| 1.0 / inverse(Vec2::new(i as f32 + 0.5, j as f32 + 0.5)))
            })
            .collect();
        let depth = DepthImage::new(w, h, data).unwrap();
        for q in [
            Vec2::new(3.2, 4.7),
            Vec2::new(0.9, 0.6),
            Vec2::new(10.4, 8.1),
        ] {
            let got = source_inverse_depth(&depth, q).unwrap();
            assert!(
                (got - inverse(q)).abs() < 1e-5,
                "{q:?}: {got} vs {}",
                inverse(q)
            );
        }
    }

    #[test]
    fn background_neighbours_fall_back_to_the_nearest_pixel() {
        let depth = DepthImage::new(2, 1, vec![2.0, 0.0]).unwrap();
        assert_eq!(source_inverse_depth(&depth, Vec2::new(0.9, 0.5)), Some(0.5));
        assert_eq!(source_inverse_depth(&depth, Vec2::new(1.1, 0.5)), None);
    }

    #[test]
    fn bilinear_sampling_interpolates_between_pixel_centres() {
        let image = RgbImage::from_raw(2, 1, vec![0, 0, 0, 255, 51, 102]).unwrap();
        let mid = sample_rgb(&image, Vec2::new(1.0, 0.5));
        assert!(
            (mid[0] - 0.5).abs() < 1e-6
                && (mid[1] - 0.1).abs() < 1e-6
                && (mid[2] - 0.2).abs() < 1e-6
        );
        assert_eq!(sample_rgb(&image, Vec2::new(0.2, 0.5)), [0.0; 3]);
    }

    #[test]
    fn identical_views_have_zero_error_and_pool_by_pixels() {
        let a = ColourError {
            pixels: 10,
            mean_abs: 0.1,
            rmse: 0.2,
        };
        let b = ColourError {
            pixels: 30,
            mean_abs: 0.3,
            rmse: 0.0,
        };
        let c = a.combine(&b);
        assert_eq!(c.pixels, 40);
        assert!((c.mean_abs - 0.25).abs() < 1e-6);
        assert!((c.rmse - (0.25f32 * 0.04).sqrt()).abs() < 1e-6);
        assert!((ColourError { rmse: 0.1, ..a }.psnr() - 20.0).abs() < 1e-4);
    }
}
