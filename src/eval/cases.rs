//! Evaluation cases: a demo subject in an environment, seen along a trajectory, with the
//! ground truth of every view (colour, depth, instance mask) and the prompts that ask for it.
//!
//! Cases come from the evaluation split only: scene seeds the models never trained on, every
//! environment including the held-out ones, and trajectories drawn like training ones (orbits
//! over several elevations and arcs, dollies). The subject stands alone (no distractors), so
//! its prompt names exactly the subject and the environment. The environments are cycled
//! through with the held-out ones first, so even a short run includes them.

use image::{GrayImage, RgbImage};

use crate::mvcustom::demo_subject::subject_mask;
use crate::mvcustom::{MvError, Result};
use crate::render::DepthMap;
use crate::world::split::EVAL_ONLY_ENVIRONMENTS;
use crate::world::{
    Clip, DemoSubject, Environment, RenderSettings, SceneSampler, Split, TrajectorySampler, article,
};

/// The environments cases cycle through: the held-out ones first, then the rest.
pub fn case_environments() -> Vec<Environment> {
    let mut environments = EVAL_ONLY_ENVIRONMENTS.to_vec();
    environments.extend(
        Split::Eval
            .environments()
            .into_iter()
            .filter(|e| !EVAL_ONLY_ENVIRONMENTS.contains(e)),
    );
    environments
}

/// One evaluation case, with its ground truth.
#[derive(Clone, Debug)]
pub struct EvalCase {
    /// Position of the case in the run (0-based), which also picks its scene and environment.
    pub index: usize,
    /// The subject.
    pub subject: DemoSubject,
    /// The environment the prompts name.
    pub environment: Environment,
    /// The evaluation-split scene seed.
    pub seed: u64,
    /// The ground truth: scene, trajectory, cameras, renders and caption.
    pub clip: Clip,
}

impl EvalCase {
    /// Renders case `index`: `subject` in the `index`-th environment of
    /// [`case_environments`] (cycling), in evaluation scene `first_scene + index`, along a
    /// trajectory drawn by `trajectories`.
    pub fn new(
        index: usize,
        subject: DemoSubject,
        first_scene: u64,
        trajectories: &TrajectorySampler,
        render: &RenderSettings,
    ) -> Result<Self> {
        let environments = case_environments();
        let environment = environments[index % environments.len()];
        let scenes = SceneSampler {
            environments: vec![environment],
            max_distractors: 0,
            ..Split::Eval.subject_sampler(subject)
        };
        let seed = Split::Eval.seed(first_scene + index as u64)?;
        let clip = Clip::sample(seed, &scenes, trajectories, render)?;
        Ok(Self {
            index,
            subject,
            environment,
            seed,
            clip,
        })
    }

    /// A prompt for the case naming the subject as `subject_words` (e.g. "<toy_robot> toy
    /// robot" or just the class word), in the case's environment, in the captions' style:
    /// "a <toy_robot> toy robot on sand at night".
    pub fn prompt(&self, subject_words: &str) -> String {
        format!(
            "{} {subject_words} {}",
            article(subject_words),
            self.environment.phrase()
        )
    }

    /// The ground-truth colour of every view.
    pub fn truth_rgb(&self) -> Vec<RgbImage> {
        self.clip.frames.iter().map(|f| f.rgb.clone()).collect()
    }

    /// The ground-truth instance mask of every view.
    pub fn instance_masks(&self) -> Vec<GrayImage> {
        self.clip.frames.iter().map(|f| f.mask.clone()).collect()
    }

    /// The subject's binary mask (255 = subject) of every view.
    pub fn subject_masks(&self) -> Vec<GrayImage> {
        self.clip.frames.iter().map(subject_mask).collect()
    }

    /// The exact z-depth of view `view` for depth-aware feature rendering: background pixels
    /// (no surface) are set to twice the farthest surface, far behind everything.
    pub fn anchor_depth(&self, view: usize) -> Result<DepthMap> {
        let frame = self.clip.frames.get(view).ok_or_else(|| {
            MvError::request(
                "anchor_view",
                format!(
                    "view {view} does not exist: the case has {} views",
                    self.clip.frames.len()
                ),
            )
        })?;
        let depth = &frame.depth;
        let far = depth.data().iter().copied().fold(0.0f32, f32::max);
        if far <= 0.0 {
            return Err(MvError::request(
                "anchor_view",
                format!("view {view} of case {} sees no surface", self.index),
            ));
        }
        Ok(DepthMap::new(
            depth.width(),
            depth.height(),
            depth.filled(2.0 * far),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trajectories() -> TrajectorySampler {
        TrajectorySampler {
            views: 3,
            width: 16,
            height: 16,
            ..Default::default()
        }
    }

    #[test]
    fn cases_start_with_the_held_out_environments_and_are_reproducible() {
        let environments = case_environments();
        assert_eq!(environments.len(), 12);
        assert_eq!(&environments[..2], &EVAL_ONLY_ENVIRONMENTS);
        let render = RenderSettings {
            supersampling: 1,
            ..Default::default()
        };
        let case =
            EvalCase::new(1, DemoSubject::PatternedVase, 10, &trajectories(), &render).unwrap();
        assert_eq!(case.environment, EVAL_ONLY_ENVIRONMENTS[1]);
        assert_eq!(Split::of_seed(case.seed), Split::Eval);
        assert_eq!(
            case.clip.spec.objects,
            vec![DemoSubject::PatternedVase.object()]
        );
        assert_eq!(
            case.clip.caption,
            format!(
                "{} on a wooden floor at sunset",
                DemoSubject::PatternedVase.object().noun_phrase()
            )
        );
        assert_eq!(
            case.prompt("<patterned_vase> vase"),
            "a <patterned_vase> vase on a wooden floor at sunset"
        );
        let again =
            EvalCase::new(1, DemoSubject::PatternedVase, 10, &trajectories(), &render).unwrap();
        assert_eq!(again.clip, case.clip);
        assert_eq!(case.subject_masks().len(), 3);
        assert!(case.subject_masks()[0].pixels().any(|p| p.0[0] == 255));
    }

    #[test]
    fn anchor_depth_is_exact_on_surfaces_and_far_on_the_background() {
        let render = RenderSettings {
            supersampling: 1,
            ..Default::default()
        };
        let case = EvalCase::new(3, DemoSubject::ToyRobot, 0, &trajectories(), &render).unwrap();
        let depth = case.anchor_depth(1).unwrap();
        let truth = &case.clip.frames[1].depth;
        let far = truth.data().iter().copied().fold(0.0f32, f32::max);
        for (d, t) in depth.data().iter().zip(truth.data()) {
            assert_eq!(*d, if *t > 0.0 { *t } else { 2.0 * far });
        }
        assert!(
            case.anchor_depth(3)
                .unwrap_err()
                .to_string()
                .contains("anchor_view")
        );
    }
}
