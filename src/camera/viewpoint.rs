//! Zero-1-to-3 viewpoint parameters: a camera centre in spherical coordinates and the relative
//! viewpoint `[Δpolar, sin Δazimuth, cos Δazimuth, Δradius]` between two cameras.

use glam::Vec3;
use serde::{Deserialize, Serialize};

use super::pinhole::PinholeCamera;

/// Which world axis is "up" for spherical coordinates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum UpAxis {
    /// +Z up, as in Zero-1-to-3 and Objaverse renders: polar from +Z, azimuth from +X towards +Y.
    #[default]
    Z,
    /// +Y up, as in Bevy: polar from +Y, azimuth from +Z towards +X.
    Y,
}

impl UpAxis {
    /// Reorders a point so that the up axis becomes the third coordinate (a cyclic, hence
    /// handedness-preserving, permutation).
    fn to_z_up(self, p: Vec3) -> Vec3 {
        match self {
            UpAxis::Z => p,
            UpAxis::Y => Vec3::new(p.z, p.x, p.y),
        }
    }
}

/// A point in spherical coordinates about the origin.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spherical {
    /// Angle from the up axis, `atan2(√(x²+y²), z)` in the up-is-Z frame, radians.
    pub polar: f32,
    /// Angle around the up axis, `atan2(y, x)`, radians.
    pub azimuth: f32,
    /// Distance from the origin.
    pub radius: f32,
}

impl Spherical {
    /// The spherical coordinates of `p` for the given up axis.
    pub fn of_point(p: Vec3, up: UpAxis) -> Self {
        let q = up.to_z_up(p);
        Self {
            polar: q.truncate().length().atan2(q.z),
            azimuth: q.y.atan2(q.x),
            radius: q.length(),
        }
    }

    /// The spherical coordinates of a camera's centre.
    pub fn of_camera(camera: &PinholeCamera, up: UpAxis) -> Self {
        Self::of_point(camera.center(), up)
    }
}

/// The Zero-1-to-3 relative viewpoint from a conditioning camera to a target camera.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RelativeViewpoint {
    /// Target polar minus conditioning polar, radians.
    pub delta_polar: f32,
    /// sin(target azimuth − conditioning azimuth).
    pub sin_delta_azimuth: f32,
    /// cos(target azimuth − conditioning azimuth).
    pub cos_delta_azimuth: f32,
    /// Target radius minus conditioning radius.
    pub delta_radius: f32,
}

impl RelativeViewpoint {
    /// The relative viewpoint of `target` seen from `condition`.
    pub fn between(condition: &PinholeCamera, target: &PinholeCamera, up: UpAxis) -> Self {
        let a = Spherical::of_camera(condition, up);
        let b = Spherical::of_camera(target, up);
        let d_azimuth = b.azimuth - a.azimuth;
        Self {
            delta_polar: b.polar - a.polar,
            sin_delta_azimuth: d_azimuth.sin(),
            cos_delta_azimuth: d_azimuth.cos(),
            delta_radius: b.radius - a.radius,
        }
    }

    /// As the 4-vector the models take.
    pub fn to_array(&self) -> [f32; 4] {
        [
            self.delta_polar,
            self.sin_delta_azimuth,
            self.cos_delta_azimuth,
            self.delta_radius,
        ]
    }
}
