//! Scene specifications: everything that defines a scene, serialisable to RON, drawn from a
//! seed by a [`SceneSampler`], and the source of the scene's caption.
//!
//! A [`SceneSpec`] is exact: rendering it needs nothing else (object proportions come from
//! each object's `shape_seed`), so a stored spec reproduces its images bit for bit. Drawing a
//! spec from a seed uses `rand`'s `StdRng`, reproducible for a given `rand` version.

use glam::{Vec2, Vec3};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::environment::{Environment, EnvironmentSpec, LightingSpec};
use super::error::{Result, WorldError, check_finite, check_positive, invalid};
use super::materials::{Colour, Finish, Pattern};
use super::objects::ObjectKind;

/// Most objects a scene may hold (mask ids are one byte; see [`super::object_mask_id`]).
pub const MAX_OBJECTS: usize = 200;

/// One object of a scene.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObjectSpec {
    /// What it is.
    pub kind: ObjectKind,
    /// Primary colour (the one captions name).
    pub colour: Colour,
    /// Accent colour (pattern, trims).
    pub accent: Colour,
    /// Pattern of the primary-coloured parts.
    pub pattern: Pattern,
    /// Specular finish.
    pub finish: Finish,
    /// Position on the ground plane: world `(x, z)`.
    pub position: Vec2,
    /// Rotation about world +Y, radians (0: the object's front faces +Z).
    pub yaw: f32,
    /// Uniform scale of the object's unit-sized model.
    pub scale: f32,
    /// Seed of the object's proportions.
    pub shape_seed: u64,
}

/// The articles captions use before a noun phrase.
pub(crate) const ARTICLES: [&str; 2] = ["a", "an"];

/// Joins the main object to the distractors in captions.
pub(crate) const NEXT_TO: &str = "next to";

/// Joins the distractors to each other in captions.
pub(crate) const AND: &str = "and";

/// Picks "a" or "an" for a phrase.
pub(crate) fn article(phrase: &str) -> &'static str {
    let [a, an] = ARTICLES;
    match phrase.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => an,
        _ => a,
    }
}

impl ObjectSpec {
    /// Draws the appearance of an object of `kind` at `position`.
    pub fn sample(kind: ObjectKind, position: Vec2, scale: f32, rng: &mut impl Rng) -> Self {
        let colour = *Colour::ALL.choose(rng).unwrap_or(&Colour::Red);
        let accent = loop {
            let c = *Colour::ALL.choose(rng).unwrap_or(&Colour::White);
            if c != colour {
                break c;
            }
        };
        let pattern = match rng.random_range(0..5) {
            0 => Pattern::Stripes {
                frequency: rng.random_range(3.0..6.0),
            },
            1 => Pattern::Checks {
                frequency: rng.random_range(4.0..7.0),
            },
            2 => Pattern::Dots {
                frequency: rng.random_range(5.0..8.0),
                radius: rng.random_range(0.2..0.32),
            },
            _ => Pattern::Solid,
        };
        let finish = *[Finish::Matte, Finish::Satin, Finish::Glossy]
            .choose(rng)
            .unwrap_or(&Finish::Matte);
        Self {
            kind,
            colour,
            accent,
            pattern,
            finish,
            position,
            yaw: rng.random_range(-std::f32::consts::PI..std::f32::consts::PI),
            scale,
            shape_seed: rng.random(),
        }
    }

    /// The object's description without article: "red striped toy robot".
    pub fn description(&self) -> String {
        match self.pattern.adjective() {
            Some(adjective) => format!("{} {adjective} {}", self.colour.name(), self.kind.noun()),
            None => format!("{} {}", self.colour.name(), self.kind.noun()),
        }
    }

    /// "a red striped toy robot", "an orange ball".
    pub fn noun_phrase(&self) -> String {
        let d = self.description();
        format!("{} {d}", article(&d))
    }

    /// Checks the placement, scale and pattern; `field` names the object in errors.
    pub fn validate(&self, field: &str) -> Result<()> {
        if !self.position.is_finite() {
            return Err(invalid(
                format!("{field}.position"),
                self.position,
                "must be finite",
            ));
        }
        check_finite(format!("{field}.yaw"), self.yaw)?;
        check_positive(format!("{field}.scale"), self.scale)?;
        self.pattern.validate(&format!("{field}.pattern"))
    }
}

/// A whole scene, exactly: environment, lighting and objects (the first is the main object,
/// the one trajectories look at and captions lead with).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SceneSpec {
    /// The seed the spec was drawn from (informational once drawn).
    pub seed: u64,
    /// Ground, time of day and texture variations.
    pub environment: EnvironmentSpec,
    /// Sun, ambient and point lights.
    pub lighting: LightingSpec,
    /// The objects; `objects[0]` is the main object.
    pub objects: Vec<ObjectSpec>,
}

impl SceneSpec {
    /// The main object.
    pub fn main_object(&self) -> Result<&ObjectSpec> {
        self.objects
            .first()
            .ok_or_else(|| invalid("objects", "[]", "a scene needs a main object"))
    }

    /// The caption: "a red toy robot next to a green tree on snow at night".
    pub fn caption(&self) -> String {
        let mut text = self
            .objects
            .first()
            .map(ObjectSpec::noun_phrase)
            .unwrap_or_default();
        let others: Vec<String> = self
            .objects
            .iter()
            .skip(1)
            .map(ObjectSpec::noun_phrase)
            .collect();
        if !others.is_empty() {
            text.push_str(&format!(" {NEXT_TO} "));
            text.push_str(&others.join(&format!(" {AND} ")));
        }
        text.push(' ');
        text.push_str(&self.environment.kind.phrase());
        text
    }

    /// Checks every field (for specs read from files).
    pub fn validate(&self) -> Result<()> {
        self.main_object()?;
        if self.objects.len() > MAX_OBJECTS {
            return Err(invalid(
                "objects.len()",
                self.objects.len(),
                "at most 200 objects (mask ids are bytes)",
            ));
        }
        self.environment.validate()?;
        self.lighting.validate()?;
        for (i, object) in self.objects.iter().enumerate() {
            object.validate(&format!("objects[{i}]"))?;
        }
        Ok(())
    }

    /// The spec as pretty RON.
    pub fn to_ron(&self) -> Result<String> {
        ron::ser::to_string_pretty(self, ron::ser::PrettyConfig::default()).map_err(|e| {
            WorldError::Manifest {
                path: "<scene spec>".into(),
                reason: e.to_string(),
            }
        })
    }

    /// Parses and validates a spec from RON.
    pub fn from_ron(text: &str) -> Result<Self> {
        let spec: Self = ron::from_str(text).map_err(|e| WorldError::Manifest {
            path: "<scene spec>".into(),
            reason: e.to_string(),
        })?;
        spec.validate()?;
        Ok(spec)
    }
}

/// What scenes a sampler draws: the kinds of main objects, distractors and environments
/// allowed (see [`super::split`] for the training and evaluation samplers).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SceneSampler {
    /// Kinds the main object is drawn from (ignored when `subject` is set).
    pub main_kinds: Vec<ObjectKind>,
    /// Kinds the distractors are drawn from.
    pub distractor_kinds: Vec<ObjectKind>,
    /// Environments drawn from.
    pub environments: Vec<Environment>,
    /// At most this many distractors per scene (uniformly 0..=max).
    pub max_distractors: usize,
    /// A fixed main object (a demo subject), placed at the origin with its own appearance.
    pub subject: Option<ObjectSpec>,
}

impl SceneSampler {
    /// Draws the scene of `seed`.
    pub fn sample(&self, seed: u64) -> Result<SceneSpec> {
        if self.subject.is_none() && self.main_kinds.is_empty() {
            return Err(invalid(
                "sampler.main_kinds",
                "[]",
                "needs at least one kind",
            ));
        }
        let environment = *self.environments.first().ok_or_else(|| {
            invalid(
                "sampler.environments",
                "[]",
                "needs at least one environment",
            )
        })?;
        let mut rng = StdRng::seed_from_u64(seed);
        let environment = *self.environments.choose(&mut rng).unwrap_or(&environment);
        let main = match self.subject {
            Some(subject) => subject,
            None => {
                let kind = *self
                    .main_kinds
                    .choose(&mut rng)
                    .unwrap_or(&ObjectKind::Ball);
                ObjectSpec::sample(kind, Vec2::ZERO, rng.random_range(0.85..1.2), &mut rng)
            }
        };
        main.validate("sampler.subject")?;
        let mut objects = vec![main];
        let count = if self.distractor_kinds.is_empty() {
            0
        } else {
            rng.random_range(0..=self.max_distractors)
        };
        for _ in 0..count {
            // Place each distractor on a ring around the main object, clear of the others
            // (give up after a few tries rather than overlap).
            let scale = rng.random_range(0.4..0.65);
            let kind = *self
                .distractor_kinds
                .choose(&mut rng)
                .unwrap_or(&ObjectKind::Ball);
            for _ in 0..8 {
                let a = rng.random_range(0.0..std::f32::consts::TAU);
                let r = main.scale * 0.9 + rng.random_range(0.6..1.5);
                let position = main.position + Vec2::new(r * a.sin(), r * a.cos());
                let clear = objects
                    .iter()
                    .all(|o| o.position.distance(position) > 0.9 * (o.scale + scale));
                if clear {
                    objects.push(ObjectSpec::sample(kind, position, scale, &mut rng));
                    break;
                }
            }
        }
        let environment_spec = EnvironmentSpec::sample(environment, &mut rng);
        let focus = Vec3::new(main.position.x, 0.5 * main.scale, main.position.y);
        let lighting = LightingSpec::sample(environment, focus, &mut rng);
        Ok(SceneSpec {
            seed,
            environment: environment_spec,
            lighting,
            objects,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::environment::{Ground, TimeOfDay};

    fn sampler() -> SceneSampler {
        SceneSampler {
            main_kinds: ObjectKind::ALL.to_vec(),
            distractor_kinds: ObjectKind::SMALL.to_vec(),
            environments: Environment::all(),
            max_distractors: 2,
            subject: None,
        }
    }

    #[test]
    fn same_seed_same_spec_different_seeds_differ() {
        let s = sampler();
        assert_eq!(s.sample(11).unwrap(), s.sample(11).unwrap());
        assert_ne!(s.sample(11).unwrap(), s.sample(12).unwrap());
    }

    #[test]
    fn spec_round_trips_through_ron() {
        let spec = sampler().sample(3).unwrap();
        let text = spec.to_ron().unwrap();
        assert_eq!(SceneSpec::from_ron(&text).unwrap(), spec);
    }

    #[test]
    fn caption_names_object_and_environment() {
        let mut spec = sampler().sample(4).unwrap();
        spec.objects.truncate(1);
        spec.objects[0].kind = ObjectKind::ToyRobot;
        spec.objects[0].colour = Colour::Red;
        spec.objects[0].pattern = Pattern::Solid;
        spec.environment.kind = Environment {
            ground: Ground::Snow,
            time: TimeOfDay::Night,
        };
        assert_eq!(spec.caption(), "a red toy robot on snow at night");
        spec.objects[0].colour = Colour::Orange;
        spec.objects[0].pattern = Pattern::Stripes { frequency: 4.0 };
        let mut ball = spec.objects[0];
        ball.kind = ObjectKind::Ball;
        ball.colour = Colour::Green;
        ball.pattern = Pattern::Solid;
        spec.objects.push(ball);
        spec.environment.kind.time = TimeOfDay::Day;
        assert_eq!(
            spec.caption(),
            "an orange striped toy robot next to a green ball on snow"
        );
    }

    #[test]
    fn distractors_do_not_overlap_the_main_object() {
        let s = sampler();
        for seed in 0..50 {
            let spec = s.sample(seed).unwrap();
            spec.validate().unwrap();
            let main = spec.objects[0];
            for o in &spec.objects[1..] {
                assert!(
                    o.position.distance(main.position) > 0.9 * (o.scale + main.scale),
                    "seed {seed}"
                );
            }
        }
    }

    #[test]
    fn invalid_specs_name_the_field() {
        let mut spec = sampler().sample(5).unwrap();
        spec.objects[0].scale = -1.0;
        let err = SceneSpec::from_ron(&spec.to_ron().unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("objects[0].scale"), "{err}");
        spec.objects.clear();
        assert!(spec.validate().unwrap_err().to_string().contains("objects"));
        assert!(SceneSpec::from_ron("(seed: 1)").is_err());
    }
}
