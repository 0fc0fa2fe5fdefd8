//! The anchor depth depth-aware feature rendering needs when the scene gives none: a
//! monocular estimate of relative inverse depth d (from a first-pass image of the anchor
//! view), aligned to the scene as a z-depth map.
//!
//! **Model.** The estimator's d relates to true z-depth by `1/z = scale·d + shift` with
//! unknown constants. [`InverseDepthFit::fit`] solves them by least squares from known
//! `(d, z)` pairs: with two or more distinct d both are determined; with one (or no spread)
//! only the scale is, and the shift is taken as 0.
//!
//! **The scene's reference.** Generated views come from cameras aimed at a common subject:
//! the point nearest to every optical axis ([`SceneNormalization::fit`]'s centre) lies at the
//! anchor's image centre, at the z-depth of that point in the anchor camera. The median d of
//! the central region of the estimate is paired with it — one pair, so the alignment fixes
//! the scale (the shift is not determinable and is 0). Surfaces whose aligned depth would be
//! beyond `max_depth_ratio` times the reference (the sky, with d ≈ 0) are clamped there.

use serde::{Deserialize, Serialize};

use super::error::{MvError, Result};
use crate::camera::{PinholeCamera, SceneNormalization};
use crate::model::depth::InverseDepth;
use crate::render::DepthMap;

/// How an estimated inverse depth is aligned to the scene.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DepthAlignment {
    /// Side of the central image region, as a fraction of the image's sides, whose median
    /// inverse depth is placed at the reference distance. In (0, 1].
    pub central_fraction: f32,
    /// Aligned depths are clamped to at most this multiple of the reference distance. > 1.
    pub max_depth_ratio: f32,
}

impl Default for DepthAlignment {
    fn default() -> Self {
        Self {
            central_fraction: 0.2,
            max_depth_ratio: 10.0,
        }
    }
}

impl DepthAlignment {
    /// Checks the fields.
    pub fn validate(&self) -> Result<()> {
        if !(self.central_fraction > 0.0 && self.central_fraction <= 1.0) {
            return Err(MvError::request(
                "techniques.dfr.depth_alignment.central_fraction",
                format!("must be in (0, 1], got {}", self.central_fraction),
            ));
        }
        if !(self.max_depth_ratio.is_finite() && self.max_depth_ratio > 1.0) {
            return Err(MvError::request(
                "techniques.dfr.depth_alignment.max_depth_ratio",
                format!("must be finite and > 1, got {}", self.max_depth_ratio),
            ));
        }
        Ok(())
    }

    /// The z-depth map of the anchor view `anchor` among `cameras` from its estimated inverse
    /// depth `estimate`.
    pub fn align(
        &self,
        estimate: &InverseDepth,
        cameras: &[PinholeCamera],
        anchor: usize,
    ) -> Result<DepthMap> {
        self.validate()?;
        let camera = cameras.get(anchor).ok_or_else(|| {
            MvError::request("techniques.dfr.anchor_view", format!("no view {anchor}"))
        })?;
        let reference = reference_depth(cameras, camera)?;
        let d = central_median(estimate, self.central_fraction);
        let fit = InverseDepthFit::fit(&[(d, reference)])?;
        fit.depth_map(estimate, self.max_depth_ratio * reference)
    }
}

/// The z-depth, in `anchor`'s frame, of the point nearest to every camera's optical axis.
pub fn reference_depth(cameras: &[PinholeCamera], anchor: &PinholeCamera) -> Result<f32> {
    let centre = SceneNormalization::fit(cameras)?.center;
    let z = anchor.extrinsics().world_to_camera(centre).z;
    if z.is_finite() && z > 0.0 {
        Ok(z)
    } else {
        Err(MvError::request(
            "cameras",
            format!(
                "the cameras' common look-at point {centre} is not in front of the anchor \
                 camera (z = {z}), so an estimated depth cannot be scaled to the scene"
            ),
        ))
    }
}

/// The median of `map` over its central region, `fraction` of each side (at least one cell).
pub fn central_median(map: &InverseDepth, fraction: f32) -> f32 {
    let window = |n: u32| {
        let n = n as usize;
        let len = ((n as f32 * fraction).round() as usize).clamp(1, n);
        ((n - len) / 2, len)
    };
    let (x0, w) = window(map.width());
    let (y0, h) = window(map.height());
    let width = map.width() as usize;
    let mut values: Vec<f32> = (y0..y0 + h)
        .flat_map(|y| {
            map.data()[y * width + x0..y * width + x0 + w]
                .iter()
                .copied()
        })
        .collect();
    values.sort_unstable_by(f32::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        0.5 * (values[mid - 1] + values[mid])
    }
}

/// `1/z = scale · d + shift`: relative inverse depth d to z-depth.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InverseDepthFit {
    /// Multiplies d.
    pub scale: f64,
    /// Added to the scaled d.
    pub shift: f64,
}

impl InverseDepthFit {
    /// The least-squares fit of `1/z = scale·d + shift` to `(d, z)` pairs (z > 0). With fewer
    /// than two distinct d the shift is not determinable and is 0. Fails when the scale is not
    /// positive (nearer must mean larger d) or no pair is usable.
    pub fn fit(samples: &[(f32, f32)]) -> Result<Self> {
        if let Some(&(d, z)) = samples
            .iter()
            .find(|(d, z)| !(d.is_finite() && z.is_finite() && *z > 0.0))
        {
            return Err(MvError::request(
                "anchor_depth",
                format!("cannot align depth to the pair (d = {d}, z = {z})"),
            ));
        }
        let n = samples.len() as f64;
        let pairs = samples
            .iter()
            .map(|&(d, z)| (f64::from(d), 1.0 / f64::from(z)));
        let (sd, sy, sdd, sdy) = pairs.fold((0.0, 0.0, 0.0, 0.0), |(sd, sy, sdd, sdy), (d, y)| {
            (sd + d, sy + y, sdd + d * d, sdy + d * y)
        });
        let spread = sdd - sd * sd / n.max(1.0);
        let (scale, shift) = if samples.len() >= 2 && spread > 1e-12 * sdd.max(f64::MIN_POSITIVE) {
            let scale = (sdy - sd * sy / n) / spread;
            (scale, (sy - scale * sd) / n)
        } else if sdd > 0.0 {
            (sdy / sdd, 0.0)
        } else {
            (0.0, 0.0)
        };
        if !(scale.is_finite() && scale > 0.0 && shift.is_finite()) {
            return Err(MvError::request(
                "anchor_depth",
                format!(
                    "the estimated inverse depth does not increase towards the camera \
                     (fitted scale {scale}, shift {shift}); it cannot be aligned to the scene"
                ),
            ));
        }
        Ok(Self { scale, shift })
    }

    /// The z-depth of inverse depth `d`, clamped to `max_depth` (also where `scale·d + shift`
    /// is not positive: beyond every finite depth).
    pub fn depth(&self, d: f32, max_depth: f32) -> f32 {
        let inverse = self.scale * f64::from(d) + self.shift;
        if inverse * f64::from(max_depth) <= 1.0 {
            max_depth
        } else {
            (1.0 / inverse) as f32
        }
    }

    /// The z-depth map of `estimate`, clamped to `max_depth`.
    pub fn depth_map(&self, estimate: &InverseDepth, max_depth: f32) -> Result<DepthMap> {
        let data = estimate
            .data()
            .iter()
            .map(|&d| self.depth(d, max_depth))
            .collect();
        Ok(DepthMap::new(estimate.width(), estimate.height(), data)?)
    }
}

#[cfg(test)]
mod tests {
    use glam::Vec3;

    use super::*;
    use crate::camera::{ImageSize, Intrinsics, look_at};

    #[test]
    fn two_or_more_pairs_recover_scale_and_shift() {
        // True inverse depth 1/z = 0.5·d + 0.1 at z = 1, 2, 4, 8.
        let samples: Vec<(f32, f32)> = [1.0f32, 2.0, 4.0, 8.0]
            .iter()
            .map(|&z| ((1.0 / z - 0.1) / 0.5, z))
            .collect();
        let fit = InverseDepthFit::fit(&samples).unwrap();
        assert!((fit.scale - 0.5).abs() < 1e-6, "{fit:?}");
        assert!((fit.shift - 0.1).abs() < 1e-6, "{fit:?}");
        for (d, z) in samples {
            assert!((fit.depth(d, 100.0) - z).abs() < 1e-4);
        }
    }

    #[test]
    fn one_pair_fixes_the_scale_only() {
        let fit = InverseDepthFit::fit(&[(0.25, 2.0)]).unwrap();
        assert!(
            (fit.scale - 2.0).abs() < 1e-12 && fit.shift == 0.0,
            "{fit:?}"
        );
        // Twice the inverse depth, half the depth.
        assert!((fit.depth(0.5, 100.0) - 1.0).abs() < 1e-6);
        // Zero or negative inverse depth: clamped to the far limit.
        assert_eq!(fit.depth(0.0, 20.0), 20.0);
        assert_eq!(fit.depth(-1.0, 20.0), 20.0);
        assert_eq!(fit.depth(0.01, 20.0), 20.0);
        // Repeated identical pairs are one pair.
        let same = InverseDepthFit::fit(&[(0.25, 2.0), (0.25, 2.0)]).unwrap();
        assert!((same.scale - 2.0).abs() < 1e-9 && same.shift.abs() < 1e-12);
    }

    #[test]
    fn unusable_pairs_are_errors() {
        assert!(InverseDepthFit::fit(&[]).is_err());
        assert!(InverseDepthFit::fit(&[(0.0, 2.0)]).is_err());
        assert!(InverseDepthFit::fit(&[(1.0, -2.0)]).is_err());
        // Larger d farther away: not an inverse depth.
        assert!(InverseDepthFit::fit(&[(1.0, 1.0), (2.0, 2.0)]).is_err());
    }

    #[test]
    fn central_median_takes_the_middle_window() {
        // 5×5 map, value = column + 10·row; central 3×3 has columns 1–3, rows 1–3.
        let data: Vec<f32> = (0..25)
            .map(|i| (i % 5) as f32 + 10.0 * (i / 5) as f32)
            .collect();
        let map = InverseDepth::new(5, 5, data).unwrap();
        assert_eq!(central_median(&map, 0.6), 22.0);
        // A tiny fraction still takes the centre cell.
        assert_eq!(central_median(&map, 0.01), 22.0);
        let map = InverseDepth::new(2, 1, vec![1.0, 3.0]).unwrap();
        assert_eq!(central_median(&map, 1.0), 2.0);
    }

    fn orbit(views: usize, radius: f32) -> Vec<PinholeCamera> {
        let intrinsics = Intrinsics::from_vertical_fov(0.8, 32, 32).unwrap();
        let size = ImageSize::new(32, 32).unwrap();
        let target = Vec3::new(0.5, 0.2, -1.0);
        (0..views)
            .map(|k| {
                let a = (k as f32 - 1.0) * 0.3;
                let eye = target + radius * Vec3::new(a.sin(), 0.1, a.cos());
                look_at(eye, target, Vec3::Y, intrinsics, size).unwrap()
            })
            .collect()
    }

    #[test]
    fn alignment_puts_the_central_region_at_the_look_at_distance() {
        let cameras = orbit(3, 4.0);
        let anchor = 1;
        let reference = reference_depth(&cameras, &cameras[anchor]).unwrap();
        // The anchor looks straight at the common target from √(4² + 0.4²) away.
        let expected = (16.0f32 + 0.16).sqrt();
        assert!((reference - expected).abs() < 1e-3, "{reference}");
        // An estimate proportional to the true inverse depth of a scene whose centre is at
        // the reference: 1/z = d / 7 with the centre at d = 7/reference.
        let d_centre = 7.0 / reference;
        let mut data = vec![d_centre; 16 * 16];
        data[0] = 2.0 * d_centre; // a nearer corner, at half the reference depth
        data[1] = 0.0; // sky
        let estimate = InverseDepth::new(16, 16, data).unwrap();
        let depth = DepthAlignment::default()
            .align(&estimate, &cameras, anchor)
            .unwrap();
        assert_eq!((depth.width(), depth.height()), (16, 16));
        assert!((depth.data()[8 * 16 + 8] - reference).abs() < 1e-4);
        assert!((depth.data()[0] - 0.5 * reference).abs() < 1e-4);
        assert!((depth.data()[1] - 10.0 * reference).abs() < 1e-3);
    }

    #[test]
    fn alignment_needs_a_look_at_point_in_front_and_sane_settings() {
        let mut cameras = orbit(3, 4.0);
        // A camera looking away from the others' target.
        cameras[1] = look_at(
            cameras[1].center(),
            cameras[1].center() * 2.0,
            Vec3::Y,
            *cameras[1].intrinsics(),
            cameras[1].size(),
        )
        .unwrap();
        let estimate = InverseDepth::new(4, 4, vec![1.0; 16]).unwrap();
        assert!(matches!(
            DepthAlignment::default().align(&estimate, &cameras, 1),
            Err(MvError::InvalidRequest {
                field: "cameras",
                ..
            })
        ));
        let bad = DepthAlignment {
            central_fraction: 0.0,
            ..DepthAlignment::default()
        };
        assert!(bad.validate().is_err());
        let bad = DepthAlignment {
            max_depth_ratio: 1.0,
            ..DepthAlignment::default()
        };
        assert!(bad.validate().is_err());
    }
}
