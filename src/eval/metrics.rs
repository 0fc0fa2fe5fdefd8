//! Every metric of one generated clip against its case's ground truth.
//!
//! Multi-view consistency uses the world's ground-truth geometry ([`multi_view_error`]): each
//! generated view is warped into every other with the true depths and poses, and colours are
//! compared on the pixels both cameras see (mean absolute error per channel in [0, 1], and
//! PSNR of the pooled root mean square error). A generator that ignores the cameras can be
//! consistent by repeating one blurry image, so the metric is read together with pose
//! accuracy and prompt alignment.

use image::RgbImage;
use serde::Serialize;

use super::alignment::{BackgroundStats, EnvironmentClassifier};
use super::cases::EvalCase;
use super::identity::{ColourHistogram, identity_score};
use super::pose::pose_accuracy;
use crate::mvcustom::Result;
use crate::world::warp::{ColourError, WarpSettings, multi_view_error};

/// Multi-view colour error over co-visible pixels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Consistency {
    /// Co-visible (pixel, pair) samples compared.
    pub pixels: usize,
    /// Mean absolute colour difference per channel, in [0, 1] (lower is better).
    pub mean_abs: f32,
    /// Root mean squared difference per channel.
    pub rmse: f32,
    /// Peak signal-to-noise ratio in dB (higher is better); `None` when infinite (identical).
    pub psnr: Option<f32>,
}

impl Consistency {
    /// Pools the measurements of several clips, weighting each by its pixel count.
    pub fn pool<'a>(items: impl IntoIterator<Item = &'a Consistency>) -> Consistency {
        items
            .into_iter()
            .map(|c| ColourError {
                pixels: c.pixels,
                mean_abs: c.mean_abs,
                rmse: c.rmse,
            })
            .fold(ColourError::default(), |total, c| total.combine(&c))
            .into()
    }
}

impl From<ColourError> for Consistency {
    fn from(error: ColourError) -> Self {
        let psnr = error.psnr();
        Self {
            pixels: error.pixels,
            mean_abs: error.mean_abs,
            rmse: error.rmse,
            psnr: psnr.is_finite().then_some(psnr),
        }
    }
}

/// The metrics of one clip.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClipMetrics {
    /// Fraction of views that retrieve their own ground-truth camera.
    pub pose_accuracy: f32,
    /// The ground-truth view each view retrieved.
    pub retrieved: Vec<usize>,
    /// Colour error between views warped with ground-truth geometry.
    pub consistency: Consistency,
    /// Mean histogram intersection of the subject region with the references' subject;
    /// `None` when no view shows the subject.
    pub identity: Option<f32>,
    /// The environment recognised from the background, as its caption phrase; `None` when
    /// the background matched no prototype.
    pub recognised_environment: Option<String>,
    /// Whether that is the prompted environment.
    pub environment_recognised: bool,
}

/// What the clip metrics compare against besides the case's own ground truth.
#[derive(Clone, Copy, Debug)]
pub struct MetricContext<'a> {
    /// The pooled histogram of the references' subject pixels.
    pub references: &'a ColourHistogram,
    /// The environment prototypes.
    pub environments: &'a EnvironmentClassifier,
    /// Side of the pose-retrieval descriptor grid.
    pub descriptor_side: u32,
}

/// Measures `generated` (one image per camera of `case`, at the ground truth's size).
pub fn measure(
    case: &EvalCase,
    generated: &[RgbImage],
    context: &MetricContext<'_>,
) -> Result<ClipMetrics> {
    let truth = case.truth_rgb();
    let pose = pose_accuracy(generated, &truth, context.descriptor_side)?;
    let depths: Vec<_> = case.clip.frames.iter().map(|f| f.depth.clone()).collect();
    let consistency = multi_view_error(
        &case.clip.cameras,
        &depths,
        generated,
        &WarpSettings::default(),
    )?;
    let identity = identity_score(generated, &case.subject_masks(), context.references)?;
    let background = BackgroundStats::of_views(generated, &case.instance_masks())?;
    let recognised = context.environments.classify(&background);
    Ok(ClipMetrics {
        pose_accuracy: pose.accuracy,
        retrieved: pose.retrieved,
        consistency: consistency.into(),
        identity,
        environment_recognised: recognised
            .as_ref()
            .is_some_and(|c| c.environment == case.environment),
        recognised_environment: recognised.map(|c| c.environment.phrase()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::alignment::clip_background;
    use crate::eval::pose::DEFAULT_DESCRIPTOR_SIDE;
    use crate::mvcustom::demo_subject::subject_mask;
    use crate::world::{DemoSubject, RenderSettings, TrajectorySampler};

    fn trajectories() -> TrajectorySampler {
        TrajectorySampler {
            views: 4,
            width: 32,
            height: 32,
            arcs: vec![std::f32::consts::FRAC_PI_2],
            dolly_probability: 0.0,
            ..Default::default()
        }
    }

    /// Lambertian renders without shadows' view dependence: a surface point has one colour in
    /// every view, so ground truth is consistent up to resampling.
    fn lambertian() -> RenderSettings {
        RenderSettings {
            supersampling: 1,
            specular: false,
            ..Default::default()
        }
    }

    #[test]
    fn ground_truth_scores_its_ceiling_and_corruptions_score_worse() {
        let case =
            EvalCase::new(0, DemoSubject::ToyRobot, 40, &trajectories(), &lambertian()).unwrap();
        let mut references = ColourHistogram::default();
        for frame in &case.clip.frames {
            references
                .add_masked(&frame.rgb, &subject_mask(frame))
                .unwrap();
        }
        // Two prototypes: the case's own environment (exactly its statistics) and another
        // case's.
        let other =
            EvalCase::new(5, DemoSubject::ToyRobot, 40, &trajectories(), &lambertian()).unwrap();
        assert_ne!(other.environment, case.environment);
        let environments = EnvironmentClassifier::new(vec![
            (case.environment, clip_background(&case.clip).unwrap()),
            (other.environment, clip_background(&other.clip).unwrap()),
        ])
        .unwrap();
        let context = MetricContext {
            references: &references,
            environments: &environments,
            descriptor_side: DEFAULT_DESCRIPTOR_SIDE,
        };

        let truth = case.truth_rgb();
        let ceiling = measure(&case, &truth, &context).unwrap();
        assert_eq!(ceiling.pose_accuracy, 1.0);
        assert_eq!(ceiling.retrieved, vec![0, 1, 2, 3]);
        // Lambertian ground truth warped with its own geometry: equal up to resampling.
        assert!(ceiling.consistency.pixels > 100);
        assert!(
            ceiling.consistency.mean_abs < 0.02,
            "{:?}",
            ceiling.consistency
        );
        assert!(ceiling.identity.unwrap() > 0.8, "{:?}", ceiling.identity);
        assert!(ceiling.environment_recognised);
        assert_eq!(
            ceiling.recognised_environment.as_deref(),
            Some(case.environment.phrase().as_str())
        );

        // Views generated for the wrong cameras: retrieval fails, warps disagree.
        let mut shuffled = truth.clone();
        shuffled.rotate_left(1);
        let wrong = measure(&case, &shuffled, &context).unwrap();
        assert_eq!(wrong.pose_accuracy, 0.0);
        assert!(
            wrong.consistency.mean_abs > 2.0 * ceiling.consistency.mean_abs + 0.01,
            "{:?} vs {:?}",
            wrong.consistency,
            ceiling.consistency
        );
        assert!(wrong.consistency.psnr.unwrap() < ceiling.consistency.psnr.unwrap());

        // The other case's environment painted behind the subject is recognised as that one.
        let mut repainted = truth.clone();
        for (view, image) in repainted.iter_mut().enumerate() {
            let background = &other.clip.frames[view].rgb;
            let mask = &case.clip.frames[view].mask;
            for (x, y, pixel) in image.enumerate_pixels_mut() {
                if mask.get_pixel(x, y).0[0] < 2 {
                    *pixel = *background.get_pixel(x, y);
                }
            }
        }
        let moved = measure(&case, &repainted, &context).unwrap();
        assert!(!moved.environment_recognised);
        assert_eq!(
            moved.recognised_environment.as_deref(),
            Some(other.environment.phrase().as_str())
        );
        // A subject painted green no longer matches the (red and grey) references.
        let mut green = truth;
        for (view, image) in green.iter_mut().enumerate() {
            let mask = subject_mask(&case.clip.frames[view]);
            for (x, y, pixel) in image.enumerate_pixels_mut() {
                if mask.get_pixel(x, y).0[0] == 255 {
                    *pixel = image::Rgb([40, 200, 60]);
                }
            }
        }
        let faded = measure(&case, &green, &context).unwrap();
        assert!(faded.identity.unwrap() < 0.1, "{:?}", faded.identity);
    }

    #[test]
    fn pooling_weights_by_pixels() {
        let a = Consistency::from(ColourError {
            pixels: 10,
            mean_abs: 0.1,
            rmse: 0.2,
        });
        let b = Consistency::from(ColourError {
            pixels: 30,
            mean_abs: 0.3,
            rmse: 0.0,
        });
        let pooled = Consistency::pool([&a, &b]);
        assert_eq!(pooled.pixels, 40);
        assert!((pooled.mean_abs - 0.25).abs() < 1e-6);
        assert!((pooled.rmse - 0.1).abs() < 1e-6);
        assert_eq!(Consistency::pool([]), Consistency::default());
    }

    #[test]
    fn psnr_of_identical_views_is_reported_as_none() {
        let c = Consistency::from(ColourError {
            pixels: 5,
            mean_abs: 0.0,
            rmse: 0.0,
        });
        assert_eq!(c.psnr, None);
        let c = Consistency::from(ColourError {
            pixels: 5,
            mean_abs: 0.1,
            rmse: 0.1,
        });
        assert!((c.psnr.unwrap() - 20.0).abs() < 1e-4);
    }
}
