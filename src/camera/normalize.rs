//! Camera-set normalisation, as FeatureNeRF expects its scene: translate so that the point
//! nearest to all optical axes is the origin, then scale so the farthest camera is at
//! distance 1. Invertible, so results can be mapped back to the user's world.

use glam::{Mat3, Vec3};
use serde::{Deserialize, Serialize};

use super::error::{CameraError, Result};
use super::pinhole::{Extrinsics, PinholeCamera};

/// A similarity `p ↦ (p − center) · scale` taking the user's world to the normalised scene.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SceneNormalization {
    /// World point that becomes the origin.
    pub center: Vec3,
    /// Uniform scale applied after centring.
    pub scale: f32,
}

impl SceneNormalization {
    /// Fits the normalisation of a camera set: `center` is the least-squares point nearest to
    /// every optical axis; `scale` puts the farthest camera centre at distance 1. Fails when
    /// the axes do not pin down a point (fewer than two cameras, or all axes parallel).
    pub fn fit(cameras: &[PinholeCamera]) -> Result<Self> {
        if cameras.len() < 2 {
            return Err(CameraError::DegenerateCameraSet {
                reason: format!("{} camera(s); at least two are needed", cameras.len()),
            });
        }
        // Σ (I − d dᵀ) p = Σ (I − d dᵀ) o over the axes (o, d).
        let mut a = Mat3::ZERO;
        let mut b = Vec3::ZERO;
        for camera in cameras {
            let d = camera.forward();
            let projector = Mat3::IDENTITY - Mat3::from_cols(d * d.x, d * d.y, d * d.z);
            a += projector;
            b += projector * camera.center();
        }
        // The smallest eigenvalue of A is tiny exactly when the axes are (nearly) parallel.
        let det = a.determinant();
        let scale_ref = (cameras.len() as f32).powi(3);
        if det.abs() < 1e-6 * scale_ref {
            return Err(CameraError::DegenerateCameraSet {
                reason: "optical axes are (nearly) parallel".into(),
            });
        }
        let center = a.inverse() * b;
        let farthest = cameras
            .iter()
            .map(|c| (c.center() - center).length())
            .fold(0.0f32, f32::max);
        if farthest <= f32::EPSILON || !farthest.is_finite() {
            return Err(CameraError::DegenerateCameraSet {
                reason: "every camera sits at the common centre".into(),
            });
        }
        Ok(Self {
            center,
            scale: 1.0 / farthest,
        })
    }

    /// World point → normalised scene.
    pub fn apply_point(&self, p: Vec3) -> Vec3 {
        (p - self.center) * self.scale
    }

    /// Normalised scene → world point.
    pub fn invert_point(&self, p: Vec3) -> Vec3 {
        p / self.scale + self.center
    }

    /// World distance (or z-depth) → normalised distance.
    pub fn apply_distance(&self, d: f32) -> f32 {
        d * self.scale
    }

    /// Normalised distance → world distance.
    pub fn invert_distance(&self, d: f32) -> f32 {
        d / self.scale
    }

    /// The camera placed in the normalised scene (same orientation and intrinsics, except
    /// that an orthographic camera's pixels-per-unit grow with the scale).
    pub fn apply_camera(&self, camera: &PinholeCamera) -> Result<PinholeCamera> {
        self.move_camera(camera, self.apply_point(camera.center()), self.scale)
    }

    /// The camera placed back in the user's world.
    pub fn invert_camera(&self, camera: &PinholeCamera) -> Result<PinholeCamera> {
        self.move_camera(camera, self.invert_point(camera.center()), 1.0 / self.scale)
    }

    fn move_camera(
        &self,
        camera: &PinholeCamera,
        center: Vec3,
        scale: f32,
    ) -> Result<PinholeCamera> {
        let c2w = camera.extrinsics().camera_to_world_rotation();
        let mut intrinsics = *camera.intrinsics();
        if intrinsics.kind == super::ProjectionKind::Orthographic {
            intrinsics.fx /= scale;
            intrinsics.fy /= scale;
        }
        PinholeCamera::new(
            intrinsics,
            Extrinsics::from_camera_to_world(c2w, center),
            camera.size(),
        )
    }
}
