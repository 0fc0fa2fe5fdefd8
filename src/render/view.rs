//! Target views: each target camera at the output grid, as the linear camera → clip-space map
//! that both rasterisers use, so CPU and GPU agree by construction.
//!
//! Clip space is wgpu's: NDC x right, y up, z in [0, 1]; the viewport maps NDC x = −1 to pixel
//! coordinate 0 and y = +1 to the top row, so `(ndc + 1)/2 · W` is the continuous pixel
//! coordinate of the camera module. Depth is *reversed* (nearer = larger, depth test
//! "greater"): perspective views store `near / z` (exact, infinite far plane); orthographic
//! views store `(far − z) / (far − near)` with `far` just beyond the mesh.

use bytemuck::{Pod, Zeroable};
use glam::Vec3;

use super::error::{RenderError, Result};
use crate::camera::{PinholeCamera, ProjectionKind};

/// One target view's world → clip transform. With `p = R·x + t` the camera-frame point:
/// `w = w0 + w1·p.z`, `clip = (ax·p.x + bx·w, ay·p.y + by·w, z0 + z1·p.z, w)`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub(crate) struct ViewTransform {
    /// Rows of the world → camera rotation, padded to vec4 (WGSL layout).
    rows: [[f32; 4]; 3],
    /// World → camera translation, padded.
    translation: [f32; 4],
    /// (ax, bx, ay, by).
    xy: [f32; 4],
    /// (z0, z1, w0, w1).
    zw: [f32; 4],
    /// (near, unused, unused, unused): triangles with a vertex at `p.z <= near` are skipped.
    near: [f32; 4],
}

impl ViewTransform {
    /// The transform of `camera` rendered to a `width × height` grid (its intrinsics scaled to
    /// that grid), for a mesh with vertices `positions`. `view` names the camera in errors.
    pub(crate) fn new(
        view: usize,
        camera: &PinholeCamera,
        width: u32,
        height: u32,
        near: f32,
        positions: &[Vec3],
    ) -> Result<Self> {
        let cam = camera.resized(width, height)?;
        let k = cam.intrinsics();
        let e = cam.extrinsics();
        let (w, h) = (width as f32, height as f32);
        let r = e.rotation;
        let t = e.translation;
        let mut out = Self {
            rows: [0, 1, 2].map(|i| r.row(i).extend(0.0).to_array()),
            translation: t.extend(0.0).to_array(),
            xy: [
                2.0 * k.fx / w,
                2.0 * k.cx / w - 1.0,
                -2.0 * k.fy / h,
                1.0 - 2.0 * k.cy / h,
            ],
            zw: [near, 0.0, 0.0, 1.0],
            near: [near, 0.0, 0.0, 0.0],
        };
        if k.kind == ProjectionKind::Orthographic {
            let z_max = positions
                .iter()
                .map(|&p| out.camera_point(p).z)
                .fold(near, f32::max);
            let far = z_max + z_max.abs().max(1.0) * 1e-3;
            let inv = 1.0 / (far - near);
            out.zw = [far * inv, -inv, 1.0, 0.0];
        }
        if let Some(bad) = out.xy.iter().chain(&out.zw).find(|v| !v.is_finite()) {
            return Err(RenderError::DegenerateView {
                view,
                reason: format!("projection coefficient {bad} is not finite"),
            });
        }
        for (i, &p) in positions.iter().enumerate() {
            let clip = out.clip(p);
            if !clip.iter().all(|c| c.is_finite()) {
                return Err(RenderError::DegenerateView {
                    view,
                    reason: format!(
                        "mesh vertex {i} projects to non-finite clip coordinates {clip:?}"
                    ),
                });
            }
        }
        Ok(out)
    }

    /// The camera-frame point of a world point, `R·x + t`.
    pub(crate) fn camera_point(&self, p: Vec3) -> Vec3 {
        let [r0, r1, r2] = self.rows;
        let t = self.translation;
        Vec3::new(
            r0[0] * p.x + r0[1] * p.y + r0[2] * p.z + t[0],
            r1[0] * p.x + r1[1] * p.y + r1[2] * p.z + t[1],
            r2[0] * p.x + r2[1] * p.y + r2[2] * p.z + t[2],
        )
    }

    /// Clip coordinates of a world point.
    pub(crate) fn clip(&self, p: Vec3) -> [f32; 4] {
        let c = self.camera_point(p);
        let [ax, bx, ay, by] = self.xy;
        let [z0, z1, w0, w1] = self.zw;
        let w = w0 + w1 * c.z;
        [ax * c.x + bx * w, ay * c.y + by * w, z0 + z1 * c.z, w]
    }

    /// The near plane in camera z-depth.
    pub(crate) fn near(&self) -> f32 {
        self.near[0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::{Extrinsics, ImageSize, Intrinsics};
    use glam::{Mat3, Vec2};

    /// The clip map reproduces the camera module's projection at the output grid.
    #[test]
    fn clip_space_matches_camera_projection() {
        let cam = PinholeCamera::new(
            Intrinsics {
                fx: 300.0,
                fy: 280.0,
                cx: 250.0,
                cy: 270.0,
                kind: ProjectionKind::Perspective,
            },
            Extrinsics::from_camera_to_world(
                Mat3::from_rotation_y(0.3),
                Vec3::new(0.2, -0.1, -1.0),
            ),
            ImageSize::new(512, 512).unwrap(),
        )
        .unwrap();
        for kind in [ProjectionKind::Perspective, ProjectionKind::Orthographic] {
            let mut k = *cam.intrinsics();
            k.kind = kind;
            let cam = PinholeCamera::new(k, *cam.extrinsics(), cam.size()).unwrap();
            let p = Vec3::new(0.3, 0.4, 2.5);
            let v = ViewTransform::new(0, &cam, 64, 48, 1e-3, &[p]).unwrap();
            let clip = v.clip(p);
            let pixel = Vec2::new(
                (clip[0] / clip[3] + 1.0) * 0.5 * 64.0,
                (1.0 - clip[1] / clip[3]) * 0.5 * 48.0,
            );
            let expected = cam.project_to_grid(p, 64, 48).unwrap();
            assert!(
                (pixel - expected.pixel).length() < 1e-3,
                "{kind:?}: {pixel} vs {expected:?}"
            );
            let ndc_z = clip[2] / clip[3];
            assert!(ndc_z > 0.0 && ndc_z <= 1.0);
        }
    }
}
