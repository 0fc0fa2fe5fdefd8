//! Camera-pose accuracy by retrieval.
//!
//! Every view of an evaluation clip shows the same scene; the ground-truth views differ only
//! by their cameras. So the ground-truth view a generated view resembles most says which
//! camera its content was laid out for: a view that follows its camera retrieves its own
//! ground truth, a view that ignores it (the same image for every camera, views in the wrong
//! order, a layout that drifts) retrieves another. Accuracy is the fraction of generated views
//! that retrieve their own camera; chance is `1 / views`.
//!
//! Resemblance is measured on a coarse structure descriptor that forgives what a small
//! generator gets wrong regardless of pose (exact colours, fine texture): each image is
//! downsampled to `side × side`, each channel's mean is subtracted (a global colour cast does
//! not matter) and the result is divided by its root mean square (nor does contrast). Two
//! descriptors are compared by squared Euclidean distance.

use image::RgbImage;
use image::imageops::FilterType;
use serde::Serialize;

use crate::mvcustom::{MvError, Result};

/// Default side of the structure descriptor's grid.
pub const DEFAULT_DESCRIPTOR_SIDE: u32 = 16;

/// Below this root mean square a descriptor is left unscaled (a flat image).
const FLAT: f32 = 1e-6;

/// The structure descriptor of `image`: `side × side × 3` values, zero mean per channel, unit
/// root mean square (or all zero for a flat image).
pub fn structure_descriptor(image: &RgbImage, side: u32) -> Vec<f32> {
    let small = image::imageops::resize(image, side, side, FilterType::Triangle);
    let mut values: Vec<f32> = small.as_raw().iter().map(|&v| v as f32 / 255.0).collect();
    for channel in 0..3 {
        let count = values.len() / 3;
        let mean = values.iter().skip(channel).step_by(3).sum::<f32>() / count.max(1) as f32;
        for v in values.iter_mut().skip(channel).step_by(3) {
            *v -= mean;
        }
    }
    let rms = (values.iter().map(|v| v * v).sum::<f32>() / values.len().max(1) as f32).sqrt();
    if rms > FLAT {
        for v in &mut values {
            *v /= rms;
        }
    }
    values
}

/// Squared Euclidean distance of two descriptors of the same length.
fn distance(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Which ground-truth camera each generated view retrieved, and the resulting accuracy.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PoseRetrieval {
    /// For each generated view, the index of the nearest ground-truth view.
    pub retrieved: Vec<usize>,
    /// Fraction of generated views that retrieved their own camera.
    pub accuracy: f32,
}

/// Retrieves, for each generated view, the nearest ground-truth view of the same clip (see
/// the module documentation); `generated[k]` was generated for the camera of `truth[k]`.
pub fn pose_accuracy(
    generated: &[RgbImage],
    truth: &[RgbImage],
    side: u32,
) -> Result<PoseRetrieval> {
    if generated.len() != truth.len() || truth.is_empty() {
        return Err(MvError::request(
            "views",
            format!(
                "pose accuracy needs one generated view per ground-truth view, got {} and {}",
                generated.len(),
                truth.len()
            ),
        ));
    }
    if side == 0 {
        return Err(MvError::request("descriptor_side", "must be at least 1"));
    }
    let truth: Vec<Vec<f32>> = truth
        .iter()
        .map(|t| structure_descriptor(t, side))
        .collect();
    let retrieved: Vec<usize> = generated
        .iter()
        .map(|g| {
            let d = structure_descriptor(g, side);
            let mut best = (0, f32::INFINITY);
            for (k, t) in truth.iter().enumerate() {
                let e = distance(&d, t);
                if e < best.1 {
                    best = (k, e);
                }
            }
            best.0
        })
        .collect();
    let hits = retrieved
        .iter()
        .enumerate()
        .filter(|(k, r)| k == *r)
        .count();
    Ok(PoseRetrieval {
        accuracy: hits as f32 / retrieved.len() as f32,
        retrieved,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::{Clip, DemoSubject, RenderSettings, Split, TrajectorySampler};

    fn clip(views: u32) -> Clip {
        let trajectories = TrajectorySampler {
            views,
            width: 32,
            height: 32,
            arcs: vec![std::f32::consts::PI],
            dolly_probability: 0.0,
            ..Default::default()
        };
        Clip::sample(
            Split::Eval.seed(1).unwrap(),
            &Split::Eval.subject_sampler(DemoSubject::ToyRobot),
            &trajectories,
            &RenderSettings::default(),
        )
        .unwrap()
    }

    #[test]
    fn descriptors_ignore_colour_casts_and_contrast() {
        let image = RgbImage::from_fn(32, 32, |x, y| {
            image::Rgb([(x * 7) as u8, (y * 5) as u8, 40])
        });
        let shifted = RgbImage::from_fn(32, 32, |x, y| {
            let p = image.get_pixel(x, y).0;
            image::Rgb([p[0] / 2 + 30, p[1] / 2 + 60, p[2] / 2 + 10])
        });
        let a = structure_descriptor(&image, 8);
        let b = structure_descriptor(&shifted, 8);
        assert_eq!(a.len(), 8 * 8 * 3);
        // Equal up to the rounding of the halved values.
        let per_value = distance(&a, &b) / a.len() as f32;
        assert!(per_value < 1e-3, "{per_value}");
        let rms = (a.iter().map(|v| v * v).sum::<f32>() / a.len() as f32).sqrt();
        assert!((rms - 1.0).abs() < 1e-4);
        let flat = structure_descriptor(&RgbImage::from_pixel(16, 16, image::Rgb([9, 9, 9])), 4);
        assert!(flat.iter().all(|v| *v == 0.0));
    }

    #[test]
    fn ground_truth_retrieves_itself_and_shuffled_views_do_not() {
        let clip = clip(6);
        let truth: Vec<RgbImage> = clip.frames.iter().map(|f| f.rgb.clone()).collect();
        let own = pose_accuracy(&truth, &truth, DEFAULT_DESCRIPTOR_SIDE).unwrap();
        assert_eq!(own.accuracy, 1.0);
        assert_eq!(own.retrieved, (0..6).collect::<Vec<_>>());
        // A cyclic shift: every view is another camera's ground truth.
        let mut shifted = truth.clone();
        shifted.rotate_left(1);
        let wrong = pose_accuracy(&shifted, &truth, DEFAULT_DESCRIPTOR_SIDE).unwrap();
        assert_eq!(wrong.accuracy, 0.0);
        assert_eq!(wrong.retrieved, vec![1, 2, 3, 4, 5, 0]);
        // The same image for every camera is right once at most.
        let same = vec![truth[2].clone(); 6];
        let once = pose_accuracy(&same, &truth, DEFAULT_DESCRIPTOR_SIDE).unwrap();
        assert!((once.accuracy - 1.0 / 6.0).abs() < 1e-6);
    }

    #[test]
    fn mismatched_inputs_are_errors() {
        let image = RgbImage::new(8, 8);
        let err = pose_accuracy(std::slice::from_ref(&image), &[], 4).unwrap_err();
        assert!(err.to_string().contains("views"), "{err}");
        let one = std::slice::from_ref(&image);
        let err = pose_accuracy(one, one, 0).unwrap_err();
        assert!(err.to_string().contains("descriptor_side"), "{err}");
    }
}
