//! Held-out data: which scenes training may see and which are kept for evaluation.
//!
//! Three things are held out of the training split:
//! - **Seeds**: training scenes use seeds `0 .. EVAL_SEED_BASE`, evaluation scenes
//!   `EVAL_SEED_BASE ..` (see [`Split::seed`]), so no evaluation scene is a training scene.
//! - **Environments**: [`EVAL_ONLY_ENVIRONMENTS`] (sand at night, a wooden floor at sunset) never
//!   appear in training; prompts naming them test composition of known words.
//! - **Demo subjects**: the kinds of the [`DemoSubject`]s (toy robot, vase) never appear in
//!   training scenes, neither as main objects nor as distractors, so customization really
//!   teaches the model something new. Their reference and evaluation clips come from
//!   [`Split::subject_sampler`].

use glam::Vec2;
use serde::{Deserialize, Serialize};

use super::environment::{Environment, Ground, TimeOfDay};
use super::error::{Result, invalid};
use super::materials::{Colour, Finish, Pattern};
use super::objects::ObjectKind;
use super::spec::{ObjectSpec, SceneSampler};

/// First seed of the evaluation split.
pub const EVAL_SEED_BASE: u64 = 1 << 48;

/// Environments that only evaluation scenes use.
pub const EVAL_ONLY_ENVIRONMENTS: [Environment; 2] = [
    Environment {
        ground: Ground::Sand,
        time: TimeOfDay::Night,
    },
    Environment {
        ground: Ground::WoodenFloor,
        time: TimeOfDay::Sunset,
    },
];

/// Most distractors per scene in both splits.
const MAX_DISTRACTORS: usize = 2;

/// The procedural subjects customization is demonstrated and evaluated on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DemoSubject {
    /// A glossy red toy robot with grey limbs.
    ToyRobot,
    /// A glossy teal vase with white stripes.
    PatternedVase,
}

impl DemoSubject {
    /// Both demo subjects.
    pub const ALL: [DemoSubject; 2] = [DemoSubject::ToyRobot, DemoSubject::PatternedVase];

    /// A short file-system friendly name ("toy_robot").
    pub fn name(self) -> &'static str {
        match self {
            DemoSubject::ToyRobot => "toy_robot",
            DemoSubject::PatternedVase => "patterned_vase",
        }
    }

    /// The subject itself: one fixed object (kind, colours, pattern, proportions), standing
    /// at the origin.
    pub fn object(self) -> ObjectSpec {
        let (kind, colour, accent, pattern, shape_seed) = match self {
            DemoSubject::ToyRobot => (
                ObjectKind::ToyRobot,
                Colour::Red,
                Colour::Grey,
                Pattern::Solid,
                7,
            ),
            DemoSubject::PatternedVase => (
                ObjectKind::Vase,
                Colour::Teal,
                Colour::White,
                Pattern::Stripes { frequency: 5.0 },
                11,
            ),
        };
        ObjectSpec {
            kind,
            colour,
            accent,
            pattern,
            finish: Finish::Glossy,
            position: Vec2::ZERO,
            yaw: 0.0,
            scale: 1.0,
            shape_seed,
        }
    }
}

/// Kinds reserved for the demo subjects.
pub fn demo_kinds() -> Vec<ObjectKind> {
    DemoSubject::ALL.iter().map(|s| s.object().kind).collect()
}

/// Training or evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Split {
    /// Scenes the models are trained on.
    Train,
    /// Held-out scenes for evaluation.
    Eval,
}

impl Split {
    /// The seed of the `index`-th scene of the split.
    pub fn seed(self, index: u64) -> Result<u64> {
        if index >= EVAL_SEED_BASE {
            return Err(invalid("scene index", index, "must be below 2^48"));
        }
        Ok(match self {
            Split::Train => index,
            Split::Eval => EVAL_SEED_BASE + index,
        })
    }

    /// The split a seed belongs to.
    pub fn of_seed(seed: u64) -> Split {
        if seed < EVAL_SEED_BASE {
            Split::Train
        } else {
            Split::Eval
        }
    }

    /// Environments of the split.
    pub fn environments(self) -> Vec<Environment> {
        let all = Environment::all();
        match self {
            Split::Train => all
                .into_iter()
                .filter(|e| !EVAL_ONLY_ENVIRONMENTS.contains(e))
                .collect(),
            Split::Eval => all,
        }
    }

    /// The base scenes of the split (no demo subject anywhere).
    pub fn sampler(self) -> SceneSampler {
        let reserved = demo_kinds();
        let free = |kinds: &[ObjectKind]| {
            kinds
                .iter()
                .copied()
                .filter(|k| !reserved.contains(k))
                .collect()
        };
        SceneSampler {
            main_kinds: free(&ObjectKind::ALL),
            distractor_kinds: free(&ObjectKind::SMALL),
            environments: self.environments(),
            max_distractors: MAX_DISTRACTORS,
            subject: None,
        }
    }

    /// Scenes of a demo subject: its reference clips (training split: training environments)
    /// or its evaluation clips (evaluation split: every environment, held-out ones included).
    pub fn subject_sampler(self, subject: DemoSubject) -> SceneSampler {
        SceneSampler {
            subject: Some(subject.object()),
            ..self.sampler()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_of_the_splits_are_disjoint() {
        assert_eq!(Split::of_seed(Split::Train.seed(5).unwrap()), Split::Train);
        assert_eq!(Split::of_seed(Split::Eval.seed(5).unwrap()), Split::Eval);
        assert_eq!(
            Split::of_seed(Split::Train.seed(EVAL_SEED_BASE - 1).unwrap()),
            Split::Train
        );
        assert!(Split::Eval.seed(EVAL_SEED_BASE).is_err());
    }

    #[test]
    fn training_scenes_never_hold_demo_subjects_or_held_out_environments() {
        let sampler = Split::Train.sampler();
        let reserved = demo_kinds();
        for index in 0..300 {
            let spec = sampler.sample(Split::Train.seed(index).unwrap()).unwrap();
            assert!(
                spec.objects.iter().all(|o| !reserved.contains(&o.kind)),
                "scene {index}"
            );
            assert!(
                !EVAL_ONLY_ENVIRONMENTS.contains(&spec.environment.kind),
                "scene {index}"
            );
        }
    }

    #[test]
    fn evaluation_covers_held_out_environments() {
        let sampler = Split::Eval.sampler();
        let seen: Vec<_> = (0..200)
            .map(|i| {
                sampler
                    .sample(Split::Eval.seed(i).unwrap())
                    .unwrap()
                    .environment
                    .kind
            })
            .collect();
        for e in EVAL_ONLY_ENVIRONMENTS {
            assert!(seen.contains(&e), "{e:?}");
        }
    }

    #[test]
    fn subject_scenes_keep_the_subject_identical() {
        for subject in DemoSubject::ALL {
            let sampler = Split::Eval.subject_sampler(subject);
            let a = sampler.sample(Split::Eval.seed(1).unwrap()).unwrap();
            let b = sampler.sample(Split::Eval.seed(2).unwrap()).unwrap();
            assert_eq!(a.objects[0], subject.object());
            assert_eq!(b.objects[0], subject.object());
            assert!(a.caption().contains(subject.object().kind.noun()));
        }
        assert_eq!(
            DemoSubject::PatternedVase.object().noun_phrase(),
            "a teal striped vase"
        );
    }
}
