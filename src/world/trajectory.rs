//! Camera trajectories around a scene's main object, with exact poses: orbits (full turns or
//! arcs) at a chosen elevation, and sideways dollies; optional seeded jitter.
//!
//! Angles are radians. Azimuth follows [`crate::camera::Orbit`] with +Y up: 0 puts the
//! camera on the +Z side of the target (in front of an unrotated object), π/2 on the +X side.

use glam::Vec3;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::error::{Result, check_finite, check_positive, invalid};
use crate::camera::{Extrinsics, ImageSize, Intrinsics, LinearPath, Orbit, PinholeCamera, look_at};

/// The shape of a trajectory.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Path {
    /// Cameras on a horizontal circle around the target, all looking at it.
    Orbit {
        /// Elevation above the target's horizontal plane (positive: looking down).
        elevation: f32,
        /// Azimuth of the first view.
        start_azimuth: f32,
        /// Angle covered: a full turn (τ) spaces views evenly without repeating the first;
        /// a shorter arc puts the first and last views at its ends.
        arc: f32,
    },
    /// Cameras translated sideways with a fixed orientation: the middle of the path looks
    /// straight at the target.
    Dolly {
        /// Elevation of the middle camera.
        elevation: f32,
        /// Azimuth of the middle camera.
        azimuth: f32,
        /// Path length as a fraction of the camera distance.
        span: f32,
    },
}

/// Random perturbations of the cameras, drawn from the trajectory's `jitter_seed`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Jitter {
    /// Largest displacement of each camera centre, as a fraction of the camera distance.
    pub position: f32,
    /// Largest displacement of each look-at target, as a fraction of the focus radius
    /// (orbits only; dolly cameras keep their common orientation).
    pub target: f32,
}

/// A trajectory, exactly: with the scene's focus it determines every camera.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrajectorySpec {
    /// Orbit or dolly.
    pub path: Path,
    /// Number of views.
    pub views: u32,
    /// Image columns.
    pub width: u32,
    /// Image rows.
    pub height: u32,
    /// Vertical field of view.
    pub fov_y: f32,
    /// Camera distance relative to the tightest one that fits the focus sphere in the
    /// vertical field of view (1: touching; larger: more surroundings).
    pub framing: f32,
    /// Perturbations.
    pub jitter: Jitter,
    /// Seed of the perturbations.
    pub jitter_seed: u64,
}

/// A point uniformly distributed in the unit ball.
fn in_unit_ball(rng: &mut impl Rng) -> Vec3 {
    loop {
        let p = Vec3::new(
            rng.random_range(-1.0..1.0),
            rng.random_range(-1.0..1.0),
            rng.random_range(-1.0..1.0),
        );
        if p.length_squared() <= 1.0 {
            return p;
        }
    }
}

impl TrajectorySpec {
    /// Checks every field.
    pub fn validate(&self) -> Result<()> {
        if self.views == 0 {
            return Err(invalid("trajectory.views", 0, "must be >= 1"));
        }
        check_positive("trajectory.fov_y", self.fov_y)?;
        if self.fov_y >= std::f32::consts::PI {
            return Err(invalid("trajectory.fov_y", self.fov_y, "must be < π"));
        }
        check_positive("trajectory.framing", self.framing)?;
        for (field, v) in [
            ("trajectory.jitter.position", self.jitter.position),
            ("trajectory.jitter.target", self.jitter.target),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(invalid(field, v, "must be finite and >= 0"));
            }
        }
        match self.path {
            Path::Orbit {
                elevation,
                start_azimuth,
                arc,
            } => {
                check_finite("trajectory.path.elevation", elevation)?;
                check_finite("trajectory.path.start_azimuth", start_azimuth)?;
                check_positive("trajectory.path.arc", arc)?;
                if arc > std::f32::consts::TAU + 1e-4 {
                    return Err(invalid(
                        "trajectory.path.arc",
                        arc,
                        "must be at most a full turn (τ)",
                    ));
                }
            }
            Path::Dolly {
                elevation,
                azimuth,
                span,
            } => {
                check_finite("trajectory.path.elevation", elevation)?;
                check_finite("trajectory.path.azimuth", azimuth)?;
                if !(span.is_finite() && span >= 0.0) {
                    return Err(invalid(
                        "trajectory.path.span",
                        span,
                        "must be finite and >= 0",
                    ));
                }
            }
        }
        Ok(())
    }

    /// Distance from the focus centre to the cameras for a focus sphere of `radius`.
    pub fn distance(&self, radius: f32) -> f32 {
        self.framing * radius / (0.5 * self.fov_y).sin()
    }

    /// The centre of a camera at `azimuth` and `elevation`, `distance` from `target`.
    fn eye(target: Vec3, distance: f32, elevation: f32, azimuth: f32) -> Result<Vec3> {
        let orbit = Orbit {
            views: 1,
            elevation,
            radius: distance,
            start_azimuth: azimuth,
            target,
            up: Vec3::Y,
        };
        Ok(orbit.eyes()?[0])
    }

    /// The cameras looking at a focus sphere (centre, radius), usually
    /// [`super::scene::Scene::focus`].
    pub fn cameras(&self, focus: (Vec3, f32)) -> Result<Vec<PinholeCamera>> {
        self.validate()?;
        let (target, radius) = focus;
        check_positive("focus radius", radius)?;
        let intrinsics = Intrinsics::from_vertical_fov(self.fov_y, self.width, self.height)?;
        let size = ImageSize::new(self.width, self.height)?;
        let distance = self.distance(radius);
        let mut rng = StdRng::seed_from_u64(self.jitter_seed);
        let cameras = match self.path {
            Path::Orbit {
                elevation,
                start_azimuth,
                arc,
            } => {
                let full = arc >= std::f32::consts::TAU - 1e-4;
                (0..self.views)
                    .map(|k| {
                        let step = match (full, self.views) {
                            (_, 1) => 0.0,
                            (true, n) => arc / n as f32,
                            (false, n) => arc / (n - 1) as f32,
                        };
                        let eye = Self::eye(
                            target,
                            distance,
                            elevation,
                            start_azimuth + step * k as f32,
                        )?;
                        let eye = eye + in_unit_ball(&mut rng) * self.jitter.position * distance;
                        let aim = target + in_unit_ball(&mut rng) * self.jitter.target * radius;
                        Ok(look_at(eye, aim, Vec3::Y, intrinsics, size)?)
                    })
                    .collect::<Result<Vec<_>>>()?
            }
            Path::Dolly {
                elevation,
                azimuth,
                span,
            } => {
                let middle = Self::eye(target, distance, elevation, azimuth)?;
                let forward = (target - middle).normalize();
                let right = forward.cross(Vec3::Y).normalize_or(Vec3::X);
                let half = 0.5 * span * distance * right;
                let path = LinearPath {
                    views: self.views,
                    start: middle - half,
                    end: middle + half,
                    forward,
                    up: Vec3::Y,
                };
                path.cameras(intrinsics, size)?
                    .into_iter()
                    .map(|camera| {
                        let offset = in_unit_ball(&mut rng) * self.jitter.position * distance;
                        let c2w = camera.extrinsics().camera_to_world_rotation();
                        let pose = Extrinsics::from_camera_to_world(c2w, camera.center() + offset);
                        Ok(camera.with_extrinsics(pose)?)
                    })
                    .collect::<Result<Vec<_>>>()?
            }
        };
        if let Some((k, camera)) = cameras
            .iter()
            .enumerate()
            .find(|(_, c)| c.center().y <= 0.0)
        {
            return Err(invalid(
                format!("trajectory camera {k} height"),
                camera.center().y,
                "cameras must stay above the ground (raise the elevation)",
            ));
        }
        Ok(cameras)
    }
}

/// Draws trajectories for training and evaluation clips.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrajectorySampler {
    /// Views per clip.
    pub views: u32,
    /// Image columns.
    pub width: u32,
    /// Image rows.
    pub height: u32,
    /// Vertical field of view.
    pub fov_y: f32,
    /// Elevations drawn from (radians).
    pub elevations: Vec<f32>,
    /// Orbit arcs drawn from (radians; τ is a full turn).
    pub arcs: Vec<f32>,
    /// Probability of a dolly instead of an orbit.
    pub dolly_probability: f64,
    /// Dolly spans drawn uniformly from this range (fractions of the distance).
    pub dolly_span: (f32, f32),
    /// Framing drawn uniformly from this range.
    pub framing: (f32, f32),
    /// Jitter applied to every trajectory.
    pub jitter: Jitter,
}

impl Default for TrajectorySampler {
    /// Eight 64×64 views, 40° field of view, elevations 10°–45°, arcs of a quarter, half and
    /// full turn, one dolly in five, slight jitter.
    fn default() -> Self {
        Self {
            views: 8,
            width: 64,
            height: 64,
            fov_y: 40f32.to_radians(),
            elevations: [10f32, 20.0, 30.0, 45.0].map(f32::to_radians).to_vec(),
            arcs: vec![
                std::f32::consts::FRAC_PI_2,
                std::f32::consts::PI,
                std::f32::consts::TAU,
            ],
            dolly_probability: 0.2,
            dolly_span: (0.3, 0.6),
            framing: (1.3, 1.8),
            jitter: Jitter {
                position: 0.02,
                target: 0.05,
            },
        }
    }
}

impl TrajectorySampler {
    /// Draws one trajectory.
    pub fn sample(&self, rng: &mut impl Rng) -> Result<TrajectorySpec> {
        let elevation = *self.elevations.choose(rng).ok_or_else(|| {
            invalid(
                "trajectories.elevations",
                "[]",
                "needs at least one elevation",
            )
        })?;
        let dolly = rng.random_bool(self.dolly_probability.clamp(0.0, 1.0));
        let azimuth = rng.random_range(0.0..std::f32::consts::TAU);
        let path = if dolly {
            let (lo, hi) = self.dolly_span;
            Path::Dolly {
                elevation,
                azimuth,
                span: if hi > lo {
                    rng.random_range(lo..hi)
                } else {
                    lo
                },
            }
        } else {
            let arc = *self
                .arcs
                .choose(rng)
                .ok_or_else(|| invalid("trajectories.arcs", "[]", "needs at least one arc"))?;
            Path::Orbit {
                elevation,
                start_azimuth: azimuth,
                arc,
            }
        };
        let (lo, hi) = self.framing;
        let spec = TrajectorySpec {
            path,
            views: self.views,
            width: self.width,
            height: self.height,
            fov_y: self.fov_y,
            framing: if hi > lo {
                rng.random_range(lo..hi)
            } else {
                lo
            },
            jitter: self.jitter,
            jitter_seed: rng.random(),
        };
        spec.validate()?;
        Ok(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn orbit(arc: f32, jitter: Jitter) -> TrajectorySpec {
        TrajectorySpec {
            path: Path::Orbit {
                elevation: 0.4,
                start_azimuth: 0.3,
                arc,
            },
            views: 6,
            width: 64,
            height: 48,
            fov_y: 0.7,
            framing: 1.5,
            jitter,
            jitter_seed: 9,
        }
    }

    #[test]
    fn orbit_cameras_look_at_the_focus_from_the_right_distance() {
        let focus = (Vec3::new(0.5, 0.6, -0.2), 0.8);
        let spec = orbit(std::f32::consts::TAU, Jitter::default());
        let cameras = spec.cameras(focus).unwrap();
        assert_eq!(cameras.len(), 6);
        let distance = 1.5 * 0.8 / 0.35f32.sin();
        for c in &cameras {
            let p = c.project(focus.0).unwrap();
            assert!(
                (p.pixel - glam::Vec2::new(32.0, 24.0)).length() < 1e-3,
                "{:?}",
                p.pixel
            );
            assert!((p.depth - distance).abs() < 1e-3);
            assert!(((c.center().y - focus.0.y) / distance - 0.4f32.sin()).abs() < 1e-4);
        }
        // A full turn: consecutive centres are equally spaced, the last not repeating the first.
        let gap = |a: &PinholeCamera, b: &PinholeCamera| a.center().distance(b.center());
        let chord = 2.0 * distance * 0.4f32.cos() * (std::f32::consts::PI / 6.0).sin();
        for k in 0..6 {
            assert!((gap(&cameras[k], &cameras[(k + 1) % 6]) - chord).abs() < 1e-3);
        }
    }

    #[test]
    fn arcs_include_both_ends_and_agree_with_the_camera_orbit() {
        let focus = (Vec3::new(0.0, 0.5, 0.0), 0.6);
        let spec = orbit(std::f32::consts::PI, Jitter::default());
        let cameras = spec.cameras(focus).unwrap();
        let first = cameras[0].center() - focus.0;
        let last = cameras[5].center() - focus.0;
        // Half a turn: horizontally opposite.
        assert!((first.x + last.x).abs() < 1e-3 && (first.z + last.z).abs() < 1e-3);
        let reference = Orbit {
            views: 1,
            elevation: 0.4,
            radius: spec.distance(0.6),
            start_azimuth: 0.3,
            target: focus.0,
            up: Vec3::Y,
        };
        assert!((reference.eyes().unwrap()[0] - cameras[0].center()).length() < 1e-5);
    }

    #[test]
    fn dolly_translates_sideways_with_one_orientation() {
        let focus = (Vec3::new(0.0, 0.5, 0.0), 0.6);
        let spec = TrajectorySpec {
            path: Path::Dolly {
                elevation: 0.3,
                azimuth: 1.0,
                span: 0.6,
            },
            ..orbit(1.0, Jitter::default())
        };
        let cameras = spec.cameras(focus).unwrap();
        let d = spec.distance(0.6);
        let step = cameras[1].center() - cameras[0].center();
        assert!((step.length() - 0.6 * d / 5.0).abs() < 1e-4);
        for c in &cameras {
            assert_eq!(c.extrinsics().rotation, cameras[0].extrinsics().rotation);
            assert!(step.dot(c.forward()).abs() < 1e-5, "moves sideways");
            let p = c.project(focus.0).unwrap().pixel;
            assert!(
                p.x > 0.0 && p.x < 64.0 && p.y > 0.0 && p.y < 48.0,
                "focus in view: {p:?}"
            );
        }
        let middle = cameras[0].center().lerp(cameras[5].center(), 0.5);
        assert!((middle.distance(focus.0) - d).abs() < 1e-3);
    }

    #[test]
    fn jitter_is_seeded_and_bounded() {
        let focus = (Vec3::new(0.0, 0.5, 0.0), 0.6);
        let jitter = Jitter {
            position: 0.05,
            target: 0.1,
        };
        let a = orbit(std::f32::consts::TAU, jitter).cameras(focus).unwrap();
        assert_eq!(
            a,
            orbit(std::f32::consts::TAU, jitter).cameras(focus).unwrap()
        );
        let plain = orbit(std::f32::consts::TAU, Jitter::default())
            .cameras(focus)
            .unwrap();
        let d = orbit(1.0, jitter).distance(0.6);
        let mut moved = false;
        for (j, p) in a.iter().zip(&plain) {
            let offset = j.center().distance(p.center());
            assert!(offset <= 0.05 * d + 1e-4);
            moved |= offset > 1e-4;
            // Still aimed near the focus.
            let pixel = j.project(focus.0).unwrap().pixel;
            assert!((pixel - glam::Vec2::new(32.0, 24.0)).length() < 8.0);
        }
        assert!(moved);
    }

    #[test]
    fn bad_trajectories_name_the_field() {
        let focus = (Vec3::new(0.0, 0.5, 0.0), 0.6);
        let mut spec = orbit(7.0, Jitter::default());
        assert!(spec.cameras(focus).unwrap_err().to_string().contains("arc"));
        spec.path = Path::Orbit {
            elevation: -1.2,
            start_azimuth: 0.0,
            arc: 1.0,
        };
        assert!(
            spec.cameras(focus)
                .unwrap_err()
                .to_string()
                .contains("above the ground")
        );
        spec.views = 0;
        assert!(
            spec.cameras(focus)
                .unwrap_err()
                .to_string()
                .contains("views")
        );
    }

    #[test]
    fn sampler_draws_valid_varied_trajectories() {
        let sampler = TrajectorySampler::default();
        let mut rng = StdRng::seed_from_u64(1);
        let specs: Vec<_> = (0..40).map(|_| sampler.sample(&mut rng).unwrap()).collect();
        assert!(specs.iter().any(|s| matches!(s.path, Path::Dolly { .. })));
        assert!(specs.iter().any(|s| matches!(s.path, Path::Orbit { .. })));
        for s in specs {
            s.cameras((Vec3::new(0.0, 0.5, 0.0), 0.7)).unwrap();
        }
    }
}
