//! Rig builders: cameras aimed with look-at, orbits around a target, and linear translation
//! paths — the trajectories users ask for when they don't place cameras by hand.

use glam::{Mat3, Vec3};
use serde::{Deserialize, Serialize};

use super::error::{CameraError, Result, finite, finite_vec3, positive};
use super::pinhole::{Extrinsics, ImageSize, Intrinsics, PinholeCamera};

/// A camera at `eye` looking at `target`, with `up` giving the image's upward direction
/// (image +Y points away from it).
pub fn look_at(
    eye: Vec3,
    target: Vec3,
    up: Vec3,
    intrinsics: Intrinsics,
    size: ImageSize,
) -> Result<PinholeCamera> {
    PinholeCamera::new(intrinsics, look_at_extrinsics(eye, target, up)?, size)
}

/// The extrinsics of a camera at `eye` looking at `target` with image-up along `up`.
pub fn look_at_extrinsics(eye: Vec3, target: Vec3, up: Vec3) -> Result<Extrinsics> {
    finite_vec3("eye", eye)?;
    finite_vec3("target", target)?;
    finite_vec3("up", up)?;
    let offset = target - eye;
    if offset.length() <= 1e-6 * (1.0 + eye.length()) {
        return Err(CameraError::DegenerateLookAt {
            reason: "eye and target coincide",
        });
    }
    let forward = offset.normalize();
    let right = forward.cross(up);
    if right.length() <= 1e-6 * up.length().max(f32::MIN_POSITIVE) || up.length() == 0.0 {
        return Err(CameraError::DegenerateLookAt {
            reason: "up is zero or parallel to the viewing direction",
        });
    }
    let right = right.normalize();
    let down = forward.cross(right);
    Ok(Extrinsics::from_camera_to_world(
        Mat3::from_cols(right, down, forward),
        eye,
    ))
}

/// Two unit vectors spanning the plane perpendicular to `up`, chosen deterministically: the
/// first is world +Z (or +X when `up` is along Z) with its `up` component removed.
fn horizontal_basis(up: Vec3) -> (Vec3, Vec3) {
    let reference = if up.cross(Vec3::Z).length() > 1e-3 {
        Vec3::Z
    } else {
        Vec3::X
    };
    let a = (reference - up * reference.dot(up)).normalize();
    (a, up.cross(a))
}

/// An orbit of cameras around a target, all looking at it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Orbit {
    /// Number of views, evenly spaced in azimuth over a full turn.
    pub views: u32,
    /// Elevation above the horizontal plane, radians (positive: looking down).
    pub elevation: f32,
    /// Distance from the target.
    pub radius: f32,
    /// Azimuth of the first view, radians (0: on the +Z side for a +Y up axis).
    pub start_azimuth: f32,
    /// The point looked at.
    pub target: Vec3,
    /// World up.
    pub up: Vec3,
}

impl Orbit {
    /// Camera centres of the orbit.
    pub fn eyes(&self) -> Result<Vec<Vec3>> {
        if self.views == 0 {
            return Err(CameraError::NotPositive {
                field: "views",
                value: 0.0,
            });
        }
        positive("radius", self.radius)?;
        finite("elevation", self.elevation)?;
        finite("start_azimuth", self.start_azimuth)?;
        finite_vec3("target", self.target)?;
        let up =
            finite_vec3("up", self.up)?
                .try_normalize()
                .ok_or(CameraError::DegenerateLookAt {
                    reason: "up is zero",
                })?;
        let (a, b) = horizontal_basis(up);
        Ok((0..self.views)
            .map(|k| {
                let azimuth =
                    self.start_azimuth + std::f32::consts::TAU * k as f32 / self.views as f32;
                let horizontal = a * azimuth.cos() + b * azimuth.sin();
                self.target
                    + self.radius * (horizontal * self.elevation.cos() + up * self.elevation.sin())
            })
            .collect())
    }

    /// The orbit's cameras.
    pub fn cameras(&self, intrinsics: Intrinsics, size: ImageSize) -> Result<Vec<PinholeCamera>> {
        self.eyes()?
            .into_iter()
            .map(|eye| look_at(eye, self.target, self.up, intrinsics, size))
            .collect()
    }
}

/// Cameras translated along a straight segment, all with the same orientation.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinearPath {
    /// Number of views (the first at `start`, the last at `end`).
    pub views: u32,
    /// First camera centre.
    pub start: Vec3,
    /// Last camera centre.
    pub end: Vec3,
    /// Viewing direction shared by every camera.
    pub forward: Vec3,
    /// World up.
    pub up: Vec3,
}

impl LinearPath {
    /// The path's cameras.
    pub fn cameras(&self, intrinsics: Intrinsics, size: ImageSize) -> Result<Vec<PinholeCamera>> {
        if self.views == 0 {
            return Err(CameraError::NotPositive {
                field: "views",
                value: 0.0,
            });
        }
        finite_vec3("start", self.start)?;
        finite_vec3("end", self.end)?;
        let orientation = look_at_extrinsics(Vec3::ZERO, self.forward, self.up)?;
        let c2w = orientation.camera_to_world_rotation();
        (0..self.views)
            .map(|k| {
                let s = if self.views == 1 {
                    0.0
                } else {
                    k as f32 / (self.views - 1) as f32
                };
                let eye = self.start.lerp(self.end, s);
                PinholeCamera::new(intrinsics, Extrinsics::from_camera_to_world(c2w, eye), size)
            })
            .collect()
    }
}
