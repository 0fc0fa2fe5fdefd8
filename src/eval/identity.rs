//! Subject identity: how much the subject region of generated views looks like the subject
//! of the reference images.
//!
//! Each region is summarised by its chromaticity histogram: every pixel's colour `(r, g, b)`
//! becomes `(r, g) / (r + g + b)`, quantised to [`BINS_PER_AXIS`]² bins, normalised to sum 1
//! (pixels darker than [`MIN_BRIGHTNESS`] are skipped: their chromaticity is noise). Dividing
//! out the brightness makes the measure indifferent to how strongly the subject is lit, so a
//! subject at night is still recognised against references rendered by day (a raw RGB
//! histogram is not: on the world's own renders it scores the right subject at night lower
//! than the wrong one by day). Two regions compare by histogram intersection
//! `Σ_b min(p_b, q_b)`: 1 for identical distributions, 0 for disjoint ones. The references'
//! subject pixels (their masks) are pooled into one histogram; a generated view is measured on
//! the pixels the ground-truth render of its camera marks as the subject. The demo subjects
//! differ by colour (a red robot with grey limbs, a teal vase with white stripes), which is
//! what such a histogram sees; shape is left to the other metrics. On ground-truth renders the
//! right subject scores about 0.6–0.9 in every environment and the other subject 0.1–0.4.

use image::{GrayImage, RgbImage};

use crate::mvcustom::{MvError, Result};

/// Quantisation levels per chromaticity axis.
pub const BINS_PER_AXIS: usize = 8;

/// Pixels whose `r + g + b` (8-bit channels) is below this are skipped.
pub const MIN_BRIGHTNESS: u32 = 30;

/// Fewest subject pixels a view needs to be measured (fewer: the subject is barely visible).
pub const MIN_SUBJECT_PIXELS: usize = 16;

/// Mask values at or above this mark the subject.
const MASK_ON: u8 = 128;

/// A chromaticity histogram of some pixels.
#[derive(Clone, Debug, PartialEq)]
pub struct ColourHistogram {
    counts: Vec<u64>,
    pixels: u64,
}

impl Default for ColourHistogram {
    fn default() -> Self {
        Self {
            counts: vec![0; BINS_PER_AXIS * BINS_PER_AXIS],
            pixels: 0,
        }
    }
}

impl ColourHistogram {
    /// The bin of an 8-bit colour; `None` when it is too dark.
    fn bin(rgb: [u8; 3]) -> Option<usize> {
        let [r, g, b] = rgb.map(u32::from);
        let sum = r + g + b;
        if sum < MIN_BRIGHTNESS {
            return None;
        }
        let axis = BINS_PER_AXIS as u32;
        // A chromaticity of 1 (a pure channel) falls into the last bin.
        let q = |v: u32| ((v * axis / sum).min(axis - 1)) as usize;
        Some(q(r) * BINS_PER_AXIS + q(g))
    }

    /// Adds the pixels of `image` whose `mask` value marks the subject (≥ 128) and that are
    /// bright enough.
    pub fn add_masked(&mut self, image: &RgbImage, mask: &GrayImage) -> Result<()> {
        if image.dimensions() != mask.dimensions() {
            return Err(MvError::request(
                "mask",
                format!(
                    "is {:?}, the image is {:?}",
                    mask.dimensions(),
                    image.dimensions()
                ),
            ));
        }
        for (pixel, m) in image.pixels().zip(mask.pixels()) {
            if m.0[0] >= MASK_ON
                && let Some(bin) = Self::bin(pixel.0)
            {
                self.counts[bin] += 1;
                self.pixels += 1;
            }
        }
        Ok(())
    }

    /// The histogram of the masked pixels of one image.
    pub fn of_region(image: &RgbImage, mask: &GrayImage) -> Result<Self> {
        let mut histogram = Self::default();
        histogram.add_masked(image, mask)?;
        Ok(histogram)
    }

    /// Pixels counted.
    pub fn pixels(&self) -> u64 {
        self.pixels
    }

    /// Histogram intersection of the two normalised histograms, in [0, 1]; `None` when
    /// either is empty.
    pub fn intersection(&self, other: &ColourHistogram) -> Option<f32> {
        if self.pixels == 0 || other.pixels == 0 {
            return None;
        }
        let (n, m) = (self.pixels as f64, other.pixels as f64);
        let sum: f64 = self
            .counts
            .iter()
            .zip(&other.counts)
            .map(|(&a, &b)| (a as f64 / n).min(b as f64 / m))
            .sum();
        Some(sum as f32)
    }
}

/// The mean identity score of generated views against the references' histogram: each view
/// with at least [`MIN_SUBJECT_PIXELS`] subject pixels in its ground-truth `masks` entry scores
/// its region's histogram intersection; `None` when no view shows the subject.
pub fn identity_score(
    generated: &[RgbImage],
    masks: &[GrayImage],
    references: &ColourHistogram,
) -> Result<Option<f32>> {
    if generated.len() != masks.len() {
        return Err(MvError::request(
            "views",
            format!(
                "identity needs one subject mask per view, got {} views and {} masks",
                generated.len(),
                masks.len()
            ),
        ));
    }
    let mut scores = Vec::with_capacity(generated.len());
    for (image, mask) in generated.iter().zip(masks) {
        let region = ColourHistogram::of_region(image, mask)?;
        if region.pixels() as usize >= MIN_SUBJECT_PIXELS
            && let Some(score) = region.intersection(references)
        {
            scores.push(score);
        }
    }
    Ok((!scores.is_empty()).then(|| scores.iter().sum::<f32>() / scores.len() as f32))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mvcustom::demo_subject::subject_mask;
    use crate::world::{Clip, DemoSubject, RenderSettings, Split, TrajectorySampler};

    fn clip(subject: DemoSubject, seed: u64) -> Clip {
        let trajectories = TrajectorySampler {
            views: 3,
            width: 32,
            height: 32,
            ..Default::default()
        };
        Clip::sample(
            Split::Eval.seed(seed).unwrap(),
            &Split::Eval.subject_sampler(subject),
            &trajectories,
            &RenderSettings::default(),
        )
        .unwrap()
    }

    fn histogram(clip: &Clip) -> ColourHistogram {
        let mut h = ColourHistogram::default();
        for frame in &clip.frames {
            h.add_masked(&frame.rgb, &subject_mask(frame)).unwrap();
        }
        h
    }

    #[test]
    fn intersection_is_one_for_equal_distributions_and_zero_for_disjoint_ones() {
        let red = RgbImage::from_pixel(4, 4, image::Rgb([250, 0, 0]));
        let blue = RgbImage::from_pixel(4, 4, image::Rgb([0, 0, 250]));
        let all = GrayImage::from_pixel(4, 4, image::Luma([255]));
        let half = GrayImage::from_fn(4, 4, |x, _| image::Luma([if x < 2 { 255 } else { 0 }]));
        let r = ColourHistogram::of_region(&red, &all).unwrap();
        let r_half = ColourHistogram::of_region(&red, &half).unwrap();
        let b = ColourHistogram::of_region(&blue, &all).unwrap();
        assert_eq!(r_half.pixels(), 8);
        // Normalised: the pixel count does not matter.
        assert_eq!(r.intersection(&r_half), Some(1.0));
        assert_eq!(r.intersection(&b), Some(0.0));
        // Half red, half blue against all red: half the mass is shared.
        let mixed = RgbImage::from_fn(4, 4, |x, _| {
            if x < 2 {
                *red.get_pixel(0, 0)
            } else {
                *blue.get_pixel(0, 0)
            }
        });
        let m = ColourHistogram::of_region(&mixed, &all).unwrap();
        assert!((m.intersection(&r).unwrap() - 0.5).abs() < 1e-6);
        // Brightness does not matter; pixels too dark to have a colour are skipped.
        let dim = RgbImage::from_pixel(4, 4, image::Rgb([100, 20, 10]));
        let bright = RgbImage::from_pixel(4, 4, image::Rgb([250, 50, 25]));
        let dim = ColourHistogram::of_region(&dim, &all).unwrap();
        assert_eq!(
            dim.intersection(&ColourHistogram::of_region(&bright, &all).unwrap()),
            Some(1.0)
        );
        let dark = RgbImage::from_pixel(4, 4, image::Rgb([20, 5, 4]));
        assert_eq!(ColourHistogram::of_region(&dark, &all).unwrap().pixels(), 0);
        let none = GrayImage::new(4, 4);
        assert_eq!(
            ColourHistogram::of_region(&red, &none)
                .unwrap()
                .intersection(&r),
            None
        );
        assert!(ColourHistogram::of_region(&red, &GrayImage::new(3, 4)).is_err());
    }

    #[test]
    fn the_references_score_maximally_and_the_other_subject_lower() {
        let robot = clip(DemoSubject::ToyRobot, 4);
        let refs = histogram(&robot);
        let images: Vec<RgbImage> = robot.frames.iter().map(|f| f.rgb.clone()).collect();
        let masks: Vec<GrayImage> = robot.frames.iter().map(subject_mask).collect();
        // A reference view measured against its own histogram: maximal.
        let single = ColourHistogram::of_region(&images[0], &masks[0]).unwrap();
        let own = identity_score(&images[..1], &masks[..1], &single).unwrap();
        assert_eq!(own, Some(1.0));
        // Each view against the three views pooled: most of the mass is shared (the views
        // differ by lighting and by which side of the robot they see).
        let pooled = identity_score(&images, &masks, &refs).unwrap().unwrap();
        assert!(pooled > 0.6 && pooled < 1.0, "{pooled}");
        // The robot in another scene beats the vase in that scene.
        let other_robot = clip(DemoSubject::ToyRobot, 9);
        let vase = clip(DemoSubject::PatternedVase, 9);
        let score = |c: &Clip| {
            let images: Vec<RgbImage> = c.frames.iter().map(|f| f.rgb.clone()).collect();
            let masks: Vec<GrayImage> = c.frames.iter().map(subject_mask).collect();
            identity_score(&images, &masks, &refs).unwrap().unwrap()
        };
        let (same, different) = (score(&other_robot), score(&vase));
        assert!(same > different + 0.2, "robot {same}, vase {different}");
        // No subject pixels anywhere: no score.
        let empty: Vec<GrayImage> = masks
            .iter()
            .map(|m| GrayImage::new(m.width(), m.height()))
            .collect();
        assert_eq!(identity_score(&images, &empty, &refs).unwrap(), None);
    }
}
