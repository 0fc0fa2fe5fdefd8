//! Prompt alignment proxy: is the environment the prompt names the one that was generated?
//!
//! Evaluation prompts name an environment ("on sand at night"); the world knows what each
//! environment looks like. A clip's background is summarised by the colour statistics of its
//! two background regions, as the ground-truth instance masks mark them: the sky or wall
//! ([`MASK_BACKGROUND`]) and the ground ([`MASK_GROUND`]); objects are left out. Each region
//! gives the mean and standard deviation of its sRGB channels (six numbers in [0, 1]).
//! Prototypes pool these statistics over ground-truth renders of every environment (scenes
//! that are not evaluation cases); a generated clip is classified as the environment of the
//! nearest prototype (mean squared difference over the regions both have), and prompt
//! alignment is the fraction of clips whose prompted environment is recovered. Chance is one
//! over the number of environments. Ground-truth renders of held-out scenes score close to 1,
//! which shows the proxy separates the environments at all.

use image::{GrayImage, RgbImage};
use serde::Serialize;

use crate::mvcustom::{MvError, Result};
use crate::world::{
    Clip, Environment, MASK_BACKGROUND, MASK_GROUND, RenderSettings, SceneSampler, Split,
    TrajectorySampler,
};

/// Fewest pixels a region needs for its statistics to count.
pub const MIN_REGION_PIXELS: u64 = 16;

/// Running colour moments of one region.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Moments {
    count: u64,
    sum: [f64; 3],
    sum_sq: [f64; 3],
}

impl Moments {
    fn add(&mut self, rgb: [u8; 3]) {
        self.count += 1;
        for (k, channel) in rgb.into_iter().enumerate() {
            let v = channel as f64 / 255.0;
            self.sum[k] += v;
            self.sum_sq[k] += v * v;
        }
    }

    fn merge(&mut self, other: &Moments) {
        self.count += other.count;
        for k in 0..3 {
            self.sum[k] += other.sum[k];
            self.sum_sq[k] += other.sum_sq[k];
        }
    }

    /// Mean and standard deviation per channel, when the region has enough pixels.
    fn features(&self) -> Option<[f32; 6]> {
        if self.count < MIN_REGION_PIXELS {
            return None;
        }
        let n = self.count as f64;
        let mut out = [0.0; 6];
        for k in 0..3 {
            let mean = self.sum[k] / n;
            out[k] = mean as f32;
            out[3 + k] = (self.sum_sq[k] / n - mean * mean).max(0.0).sqrt() as f32;
        }
        Some(out)
    }
}

/// Colour statistics of the background regions of some views.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BackgroundStats {
    sky: Moments,
    ground: Moments,
}

impl BackgroundStats {
    /// Adds one view: `image`'s pixels sorted by the ground-truth `instance_mask` of its
    /// camera (sky or wall, ground; objects skipped).
    pub fn add_view(&mut self, image: &RgbImage, instance_mask: &GrayImage) -> Result<()> {
        if image.dimensions() != instance_mask.dimensions() {
            return Err(MvError::request(
                "instance_mask",
                format!(
                    "is {:?}, the image is {:?}",
                    instance_mask.dimensions(),
                    image.dimensions()
                ),
            ));
        }
        for (pixel, id) in image.pixels().zip(instance_mask.pixels()) {
            match id.0[0] {
                MASK_BACKGROUND => self.sky.add(pixel.0),
                MASK_GROUND => self.ground.add(pixel.0),
                _ => {}
            }
        }
        Ok(())
    }

    /// The statistics of a set of views with their ground-truth instance masks.
    pub fn of_views(images: &[RgbImage], instance_masks: &[GrayImage]) -> Result<Self> {
        if images.len() != instance_masks.len() {
            return Err(MvError::request(
                "views",
                format!(
                    "background statistics need one instance mask per view, got {} and {}",
                    images.len(),
                    instance_masks.len()
                ),
            ));
        }
        let mut stats = Self::default();
        for (image, mask) in images.iter().zip(instance_masks) {
            stats.add_view(image, mask)?;
        }
        Ok(stats)
    }

    /// Pools another set of views into these statistics.
    pub fn merge(&mut self, other: &BackgroundStats) {
        self.sky.merge(&other.sky);
        self.ground.merge(&other.ground);
    }

    /// Mean squared difference of the features of the regions both have; `None` when they
    /// share none.
    pub fn distance(&self, other: &BackgroundStats) -> Option<f32> {
        let mut total = 0.0;
        let mut regions = 0;
        for (a, b) in [(&self.sky, &other.sky), (&self.ground, &other.ground)] {
            if let (Some(a), Some(b)) = (a.features(), b.features()) {
                total += a
                    .iter()
                    .zip(&b)
                    .map(|(x, y)| (x - y) * (x - y))
                    .sum::<f32>();
                regions += 1;
            }
        }
        (regions > 0).then(|| total / (6 * regions) as f32)
    }
}

/// Where the prototypes' ground-truth scenes come from.
#[derive(Clone, Debug, PartialEq)]
pub struct PrototypeSettings {
    /// The environments to tell apart.
    pub environments: Vec<Environment>,
    /// Clips rendered per environment.
    pub clips: usize,
    /// Cameras of those clips.
    pub trajectories: TrajectorySampler,
    /// Renderer settings.
    pub render: RenderSettings,
    /// Scene index (in the evaluation split) of the first prototype clip; the evaluation
    /// cases use other indices.
    pub first_scene: u64,
}

/// The environment of a clip's best-matching prototype, and how well it matched.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Classification {
    /// The nearest prototype's environment.
    pub environment: Environment,
    /// Its distance.
    pub distance: f32,
}

/// Nearest-prototype classification of background statistics into environments.
#[derive(Clone, Debug, PartialEq)]
pub struct EnvironmentClassifier {
    prototypes: Vec<(Environment, BackgroundStats)>,
}

impl EnvironmentClassifier {
    /// A classifier from prototypes, one per environment (at least one).
    pub fn new(prototypes: Vec<(Environment, BackgroundStats)>) -> Result<Self> {
        if prototypes.is_empty() {
            return Err(MvError::request(
                "environments",
                "the classifier needs at least one prototype",
            ));
        }
        Ok(Self { prototypes })
    }

    /// Prototypes from ground-truth renders: `settings.clips` clips of base scenes (no demo
    /// subject, no distractors) per environment, from consecutive evaluation-split scene
    /// indices starting at `settings.first_scene`.
    pub fn from_world(settings: &PrototypeSettings) -> Result<Self> {
        if settings.clips == 0 {
            return Err(MvError::request("prototype_clips", "must be at least 1"));
        }
        let mut prototypes = Vec::with_capacity(settings.environments.len());
        for (e, &environment) in settings.environments.iter().enumerate() {
            let scenes = SceneSampler {
                environments: vec![environment],
                max_distractors: 0,
                ..Split::Eval.sampler()
            };
            let mut stats = BackgroundStats::default();
            for c in 0..settings.clips {
                let index = settings.first_scene + (e * settings.clips + c) as u64;
                let clip = Clip::sample(
                    Split::Eval.seed(index)?,
                    &scenes,
                    &settings.trajectories,
                    &settings.render,
                )?;
                stats.merge(&clip_background(&clip)?);
            }
            prototypes.push((environment, stats));
        }
        Self::new(prototypes)
    }

    /// The environments it tells apart.
    pub fn environments(&self) -> Vec<Environment> {
        self.prototypes.iter().map(|(e, _)| *e).collect()
    }

    /// The nearest prototype; `None` when no prototype shares a region with `stats`.
    pub fn classify(&self, stats: &BackgroundStats) -> Option<Classification> {
        self.prototypes
            .iter()
            .filter_map(|(environment, prototype)| {
                stats.distance(prototype).map(|distance| Classification {
                    environment: *environment,
                    distance,
                })
            })
            .min_by(|a, b| a.distance.total_cmp(&b.distance))
    }
}

/// The background statistics of a ground-truth clip's own renders.
pub fn clip_background(clip: &Clip) -> Result<BackgroundStats> {
    let mut stats = BackgroundStats::default();
    for frame in &clip.frames {
        stats.add_view(&frame.rgb, &frame.mask)?;
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trajectories() -> TrajectorySampler {
        TrajectorySampler {
            views: 3,
            width: 24,
            height: 24,
            ..Default::default()
        }
    }

    fn settings(first_scene: u64, clips: usize) -> PrototypeSettings {
        PrototypeSettings {
            environments: Environment::all(),
            clips,
            trajectories: trajectories(),
            render: RenderSettings {
                supersampling: 1,
                ..Default::default()
            },
            first_scene,
        }
    }

    #[test]
    fn statistics_are_means_and_deviations_per_region() {
        let image = RgbImage::from_fn(8, 8, |_, y| {
            if y < 4 {
                image::Rgb([0, 0, 255])
            } else if y % 2 == 0 {
                image::Rgb([0, 255, 0])
            } else {
                image::Rgb([0, 51, 0])
            }
        });
        let mask = GrayImage::from_fn(8, 8, |x, y| {
            image::Luma([if y < 4 {
                MASK_BACKGROUND
            } else if x == 0 {
                7
            } else {
                MASK_GROUND
            }])
        });
        let stats = BackgroundStats::of_views(&[image], &[mask]).unwrap();
        assert_eq!(stats.sky.features(), Some([0.0, 0.0, 1.0, 0.0, 0.0, 0.0]));
        // 28 ground pixels (the object column skipped): green 1.0 and 0.2 in equal numbers.
        assert_eq!(stats.ground.count, 28);
        let ground = stats.ground.features().unwrap();
        assert!((ground[1] - 0.6).abs() < 1e-6 && (ground[4] - 0.4).abs() < 1e-6);
        assert_eq!(stats.distance(&stats), Some(0.0));
        // No shared region, no distance.
        assert_eq!(stats.distance(&BackgroundStats::default()), None);
    }

    #[test]
    fn prototypes_recover_their_own_clips_and_held_out_scenes_of_most_environments() {
        // One clip per environment: each prototype is exactly its clip's statistics.
        let classifier = EnvironmentClassifier::from_world(&settings(500, 1)).unwrap();
        let all = Environment::all();
        for (e, environment) in all.iter().enumerate() {
            let scenes = SceneSampler {
                environments: vec![*environment],
                max_distractors: 0,
                ..Split::Eval.sampler()
            };
            let render = settings(0, 1).render;
            let own = Clip::sample(
                Split::Eval.seed(500 + e as u64).unwrap(),
                &scenes,
                &trajectories(),
                &render,
            )
            .unwrap();
            let found = classifier
                .classify(&clip_background(&own).unwrap())
                .unwrap();
            assert_eq!(found.environment, *environment);
            assert_eq!(found.distance, 0.0);
        }
        // Other scenes (a subject instead of a base object, other textures and cameras).
        let classifier = EnvironmentClassifier::from_world(&settings(600, 2)).unwrap();
        let mut right = 0;
        for (e, environment) in all.iter().enumerate() {
            let scenes = SceneSampler {
                environments: vec![*environment],
                max_distractors: 0,
                ..Split::Eval.subject_sampler(crate::world::DemoSubject::PatternedVase)
            };
            let clip = Clip::sample(
                Split::Eval.seed(700 + e as u64).unwrap(),
                &scenes,
                &trajectories(),
                &settings(0, 1).render,
            )
            .unwrap();
            let found = classifier
                .classify(&clip_background(&clip).unwrap())
                .unwrap();
            right += usize::from(found.environment == *environment);
        }
        assert!(right >= 10, "{right} of 12 environments recovered");
    }

    #[test]
    fn classifiers_need_prototypes() {
        assert!(EnvironmentClassifier::new(Vec::new()).is_err());
        let err = EnvironmentClassifier::from_world(&settings(0, 0)).unwrap_err();
        assert!(err.to_string().contains("prototype_clips"), "{err}");
    }
}
