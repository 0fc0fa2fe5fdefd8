//! Environments: the ground (its procedural texture), the background (sky or indoor wall at
//! infinity) and the lighting of each time of day.

use glam::{Vec2, Vec3};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::error::{Result, check_non_negative3, check_positive, invalid};
use super::noise::{fbm, hash_u32, hash2, value_noise};

/// What the scene stands on; outdoor grounds have a sky, the wooden floor a room's wall.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Ground {
    /// A lawn: mottled greens.
    Grass,
    /// Snow: bluish white with soft drifts.
    Snow,
    /// Sand: beige with wind ripples.
    Sand,
    /// An indoor floor of wooden planks.
    WoodenFloor,
}

impl Ground {
    /// Every ground.
    pub const ALL: [Ground; 4] = [
        Ground::Grass,
        Ground::Snow,
        Ground::Sand,
        Ground::WoodenFloor,
    ];

    /// The caption phrase ("on snow").
    pub fn phrase(self) -> &'static str {
        match self {
            Ground::Grass => "on grass",
            Ground::Snow => "on snow",
            Ground::Sand => "on sand",
            Ground::WoodenFloor => "on a wooden floor",
        }
    }

    /// Whether the background is a room's wall rather than the sky.
    pub fn is_indoor(self) -> bool {
        self == Ground::WoodenFloor
    }
}

/// The lighting regime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TimeOfDay {
    /// A high sun and a blue sky.
    Day,
    /// A low orange sun and a warm sky.
    Sunset,
    /// Dim moonlight, a starry sky and a warm point light near the main object.
    Night,
}

impl TimeOfDay {
    /// Every time of day.
    pub const ALL: [TimeOfDay; 3] = [TimeOfDay::Day, TimeOfDay::Sunset, TimeOfDay::Night];

    /// The caption phrase ("at night"), empty for the day.
    pub fn phrase(self) -> Option<&'static str> {
        match self {
            TimeOfDay::Day => None,
            TimeOfDay::Sunset => Some("at sunset"),
            TimeOfDay::Night => Some("at night"),
        }
    }
}

/// A ground and a time of day: what a prompt names as the environment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Environment {
    /// The ground.
    pub ground: Ground,
    /// The time of day.
    pub time: TimeOfDay,
}

impl Environment {
    /// Every combination of ground and time of day.
    pub fn all() -> Vec<Environment> {
        Ground::ALL
            .iter()
            .flat_map(|&ground| {
                TimeOfDay::ALL
                    .iter()
                    .map(move |&time| Environment { ground, time })
            })
            .collect()
    }

    /// The caption phrase ("on snow at night").
    pub fn phrase(&self) -> String {
        match self.time.phrase() {
            Some(time) => format!("{} {time}", self.ground.phrase()),
            None => self.ground.phrase().to_owned(),
        }
    }
}

/// The environment of one scene, exactly: its kind plus the sampled variations.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EnvironmentSpec {
    /// Ground and time of day.
    pub kind: Environment,
    /// Per-channel multiplier of the ground's albedo (colour variation between scenes).
    pub ground_tint: Vec3,
    /// World units per cell of the ground's large-scale texture.
    pub texture_scale: f32,
    /// Seed of the ground and background textures.
    pub texture_seed: u32,
}

impl EnvironmentSpec {
    /// Draws the variations of an environment.
    pub fn sample(kind: Environment, rng: &mut impl Rng) -> Self {
        Self {
            kind,
            ground_tint: Vec3::new(
                rng.random_range(0.85..1.15),
                rng.random_range(0.85..1.15),
                rng.random_range(0.85..1.15),
            ),
            texture_scale: rng.random_range(0.8..1.6),
            texture_seed: rng.random(),
        }
    }

    /// Checks the tint and scale.
    pub fn validate(&self) -> Result<()> {
        check_non_negative3("environment.ground_tint", self.ground_tint)?;
        check_positive("environment.texture_scale", self.texture_scale)?;
        Ok(())
    }

    /// Linear albedo of the ground at world point `(x, z)`.
    pub fn ground_albedo(&self, x: f32, z: f32) -> Vec3 {
        let seed = self.texture_seed;
        let p = Vec2::new(x, z) / self.texture_scale;
        let base = match self.kind.ground {
            Ground::Grass => {
                let patches = fbm(p, seed, 3);
                let blades = value_noise(Vec2::new(x, z) * 14.0, seed ^ 0x51ed);
                let dry = Vec3::new(0.20, 0.30, 0.06);
                let lush = Vec3::new(0.05, 0.26, 0.04);
                dry.lerp(lush, patches) * (0.8 + 0.4 * blades)
            }
            Ground::Snow => {
                let drifts = fbm(p * 0.7, seed, 3);
                Vec3::new(0.78, 0.82, 0.90) * (0.9 + 0.1 * drifts)
            }
            Ground::Sand => {
                let warp = fbm(p, seed, 2);
                let ripple = (x * 7.0 / self.texture_scale + 6.0 * warp).sin();
                Vec3::new(0.62, 0.47, 0.27)
                    * (0.88 + 0.07 * ripple + 0.1 * fbm(p * 3.0, seed ^ 0xa5, 2))
            }
            Ground::WoodenFloor => self.plank_albedo(x, z),
        };
        base * self.ground_tint
    }

    /// Planks 0.3 units wide running along X, 1.8 long, each with its own shade, grain and
    /// dark seams.
    fn plank_albedo(&self, x: f32, z: f32) -> Vec3 {
        let seed = self.texture_seed;
        let (width, length) = (0.3, 1.8);
        let row = (z / width).floor();
        let offset = hash2(row as i32, 0, seed) * length;
        let column = ((x + offset) / length).floor();
        let plank = hash2(row as i32, column as i32, seed ^ 0x77);
        let across = z / width - row;
        let along = (x + offset) / length - column;
        let grain = value_noise(Vec2::new(x * 1.5, z * 40.0), seed ^ 0x1234);
        let seam = across < 0.04 || along < 0.01;
        let wood = Vec3::new(0.36, 0.19, 0.08) * (0.75 + 0.45 * plank) * (0.85 + 0.25 * grain);
        if seam { wood * 0.35 } else { wood }
    }

    /// Radiance seen along direction `dir` when a ray hits nothing: the sky (with its sun or
    /// moon disc and, at night, stars) or, indoors, the room's wall at infinity.
    pub fn background(&self, lighting: &LightingSpec, dir: Vec3) -> Vec3 {
        let up = dir.y.clamp(-1.0, 1.0);
        let time = self.kind.time;
        if self.kind.ground.is_indoor() {
            // Wallpaper with vertical stripes by azimuth, a darker skirting band near the floor.
            let azimuth = dir.z.atan2(dir.x);
            let stripe = ((azimuth * 24.0).floor() as i64 & 1) as f32;
            let wall = Vec3::new(0.62, 0.55, 0.42)
                * (0.9 + 0.1 * stripe)
                * self.ground_tint.dot(Vec3::splat(1.0 / 3.0));
            let wall = if up < 0.05 { wall * 0.55 } else { wall };
            let light = match time {
                TimeOfDay::Day => 0.9,
                TimeOfDay::Sunset => 0.55,
                TimeOfDay::Night => 0.07,
            };
            return wall * light * lighting.sun_colour.normalize_or(Vec3::ONE) * 1.7;
        }
        let (horizon, zenith) = match time {
            TimeOfDay::Day => (Vec3::new(0.62, 0.74, 0.90), Vec3::new(0.12, 0.28, 0.75)),
            TimeOfDay::Sunset => (Vec3::new(0.95, 0.45, 0.18), Vec3::new(0.18, 0.14, 0.38)),
            TimeOfDay::Night => (Vec3::new(0.02, 0.03, 0.07), Vec3::new(0.003, 0.006, 0.02)),
        };
        let h = up.max(0.0).powf(0.6);
        let mut sky = horizon.lerp(zenith, h);
        let sun = lighting.sun_direction.normalize_or(Vec3::Y);
        let disc = match time {
            TimeOfDay::Night => 0.9990,
            _ => 0.9985,
        };
        if dir.dot(sun) > disc {
            sky = match time {
                TimeOfDay::Night => Vec3::new(0.8, 0.82, 0.9),
                _ => Vec3::new(1.5, 1.3, 1.0),
            };
        } else if time == TimeOfDay::Night && up > 0.05 && is_star(dir, self.texture_seed) {
            sky = Vec3::splat(0.7);
        }
        sky
    }
}

/// Whether a direction falls on one of the night sky's stars: sparse cells of a fine grid of
/// longitude and latitude.
fn is_star(dir: Vec3, seed: u32) -> bool {
    let lon = dir.z.atan2(dir.x);
    let lat = dir.y.clamp(-1.0, 1.0).asin();
    let cells = 400.0 / std::f32::consts::TAU;
    let i = (lon * cells).floor() as i32;
    let j = (lat * cells).floor() as i32;
    hash2(i, j, hash_u32(seed ^ 0x5ba5)) < 0.004
}

/// A point light with inverse-square falloff.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PointLight {
    /// World position.
    pub position: Vec3,
    /// Linear RGB intensity: the irradiance at unit distance, facing the light.
    pub intensity: Vec3,
}

/// The lighting of a scene, exactly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LightingSpec {
    /// Direction towards the sun (or moon), world frame; normalised when rendering.
    pub sun_direction: Vec3,
    /// Linear RGB irradiance of the sun on a surface facing it.
    pub sun_colour: Vec3,
    /// Ambient light from above (surfaces facing up).
    pub sky_ambient: Vec3,
    /// Ambient light from below (surfaces facing down).
    pub ground_ambient: Vec3,
    /// Extra point lights (the lamp-light of night scenes).
    pub point_lights: Vec<PointLight>,
}

impl LightingSpec {
    /// Draws the lighting of a time of day; night scenes get a warm point light near `focus`.
    pub fn sample(kind: Environment, focus: Vec3, rng: &mut impl Rng) -> Self {
        let indoor = kind.ground.is_indoor();
        let (elevation, sun_colour, sky_ambient, ground_ambient) = match kind.time {
            TimeOfDay::Day => (
                rng.random_range(30f32..70.0),
                Vec3::new(1.0, 0.95, 0.86) * rng.random_range(0.95..1.2),
                Vec3::new(0.30, 0.34, 0.42),
                Vec3::new(0.14, 0.13, 0.11),
            ),
            TimeOfDay::Sunset => (
                rng.random_range(6f32..16.0),
                Vec3::new(1.0, 0.52, 0.24) * rng.random_range(1.0..1.25),
                Vec3::new(0.26, 0.2, 0.3),
                Vec3::new(0.12, 0.08, 0.07),
            ),
            TimeOfDay::Night => (
                rng.random_range(30f32..60.0),
                Vec3::new(0.10, 0.12, 0.20),
                Vec3::new(0.025, 0.03, 0.06),
                Vec3::new(0.01, 0.01, 0.015),
            ),
        };
        let boost = if indoor { 1.3 } else { 1.0 };
        let azimuth = rng.random_range(0.0..std::f32::consts::TAU);
        let (e, a) = (elevation.to_radians(), azimuth);
        let sun_direction = Vec3::new(e.cos() * a.sin(), e.sin(), e.cos() * a.cos());
        let mut point_lights = Vec::new();
        if kind.time == TimeOfDay::Night {
            let a = rng.random_range(0.0..std::f32::consts::TAU);
            let r = rng.random_range(1.2..2.0);
            let position = Vec3::new(
                focus.x + r * a.sin(),
                rng.random_range(1.6..2.4),
                focus.z + r * a.cos(),
            );
            let warm = Vec3::new(1.0, 0.72, 0.42) * rng.random_range(3.5..5.5);
            point_lights.push(PointLight {
                position,
                intensity: warm,
            });
        }
        Self {
            sun_direction,
            sun_colour,
            sky_ambient: sky_ambient * boost,
            ground_ambient: ground_ambient * boost,
            point_lights,
        }
    }

    /// Checks that the sun direction is usable and every intensity non-negative.
    pub fn validate(&self) -> Result<()> {
        if !self.sun_direction.is_finite() || self.sun_direction.length() < 1e-6 {
            return Err(invalid(
                "lighting.sun_direction",
                self.sun_direction,
                "must be finite and non-zero",
            ));
        }
        check_non_negative3("lighting.sun_colour", self.sun_colour)?;
        check_non_negative3("lighting.sky_ambient", self.sky_ambient)?;
        check_non_negative3("lighting.ground_ambient", self.ground_ambient)?;
        for (i, light) in self.point_lights.iter().enumerate() {
            if !light.position.is_finite() {
                return Err(invalid(
                    format!("lighting.point_lights[{i}].position"),
                    light.position,
                    "must be finite",
                ));
            }
            check_non_negative3(
                format!("lighting.point_lights[{i}].intensity"),
                light.intensity,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn spec(ground: Ground, time: TimeOfDay) -> (EnvironmentSpec, LightingSpec) {
        let mut rng = StdRng::seed_from_u64(5);
        let kind = Environment { ground, time };
        (
            EnvironmentSpec::sample(kind, &mut rng),
            LightingSpec::sample(kind, Vec3::ZERO, &mut rng),
        )
    }

    /// Mean ground albedo over a patch.
    fn mean_ground(env: &EnvironmentSpec) -> Vec3 {
        let mut sum = Vec3::ZERO;
        for i in 0..40 {
            for j in 0..40 {
                sum += env.ground_albedo(i as f32 * 0.13 - 2.0, j as f32 * 0.11 - 2.0);
            }
        }
        sum / 1600.0
    }

    #[test]
    fn grounds_have_their_characteristic_colours() {
        let grass = mean_ground(&spec(Ground::Grass, TimeOfDay::Day).0);
        assert!(grass.y > grass.x && grass.y > grass.z, "grass {grass}");
        let snow = mean_ground(&spec(Ground::Snow, TimeOfDay::Day).0);
        assert!(snow.min_element() > 0.55, "snow {snow}");
        let sand = mean_ground(&spec(Ground::Sand, TimeOfDay::Day).0);
        assert!(
            sand.x > sand.y && sand.y > sand.z && sand.x > 0.35,
            "sand {sand}"
        );
        let wood = mean_ground(&spec(Ground::WoodenFloor, TimeOfDay::Day).0);
        assert!(
            wood.x > wood.y && wood.y > wood.z && wood.x < 0.5,
            "wood {wood}"
        );
    }

    #[test]
    fn night_is_dark_with_a_point_light() {
        let (env, light) = spec(Ground::Grass, TimeOfDay::Night);
        let (_, day) = spec(Ground::Grass, TimeOfDay::Day);
        assert_eq!(light.point_lights.len(), 1);
        assert!(day.point_lights.is_empty());
        assert!(light.sun_colour.max_element() < 0.3 * day.sun_colour.max_element());
        let zenith = env.background(&light, Vec3::new(0.1, 1.0, 0.0).normalize());
        assert!(
            zenith.max_element() < 0.05 || zenith == Vec3::splat(0.7),
            "{zenith}"
        );
        light.validate().unwrap();
    }

    #[test]
    fn environment_phrases_name_ground_and_time() {
        let e = Environment {
            ground: Ground::Snow,
            time: TimeOfDay::Night,
        };
        assert_eq!(e.phrase(), "on snow at night");
        let e = Environment {
            ground: Ground::WoodenFloor,
            time: TimeOfDay::Day,
        };
        assert_eq!(e.phrase(), "on a wooden floor");
        assert_eq!(Environment::all().len(), 12);
    }

    #[test]
    fn invalid_lighting_names_the_field() {
        let (_, mut light) = spec(Ground::Sand, TimeOfDay::Night);
        light.point_lights[0].intensity.y = -1.0;
        let err = light.validate().unwrap_err().to_string();
        assert!(err.contains("lighting.point_lights[0].intensity"), "{err}");
        light.point_lights.clear();
        light.sun_direction = Vec3::ZERO;
        assert!(
            light
                .validate()
                .unwrap_err()
                .to_string()
                .contains("sun_direction")
        );
    }
}
