//! The one place the camera layer meets Bevy: a Bevy camera's `GlobalTransform`, `Projection`
//! and render-target size become a [`PinholeCamera`], and a pose becomes a `Transform`.
//!
//! Bevy cameras look down −Z with +Y up; intrinsics are read off the projection's own
//! clip-from-view matrix (after updating it for the target size), so any perspective or
//! orthographic projection — off-centre ones included — converts exactly.

use bevy::camera::Projection;
use bevy::math::{Mat3, Mat4, UVec2, Vec3};
use bevy::transform::components::{GlobalTransform, Transform};

use super::error::{CameraError, Result, finite_vec3, positive};
use super::pinhole::{Extrinsics, ImageSize, Intrinsics, PinholeCamera, ProjectionKind};

/// Axes of the Bevy (OpenGL) camera frame expressed in the OpenCV frame, and back: flips Y
/// and Z.
const FLIP_YZ: Mat3 = Mat3::from_diagonal(Vec3::new(1.0, -1.0, -1.0));

/// Largest deviation from 1 tolerated in a camera transform's scale.
const SCALE_TOLERANCE: f32 = 1e-4;

/// The camera Bevy renders with `transform` and `projection` into a target of `target_size`
/// physical pixels.
pub fn from_bevy(
    transform: &GlobalTransform,
    projection: &Projection,
    target_size: UVec2,
) -> Result<PinholeCamera> {
    let size = ImageSize::new(target_size.x, target_size.y)?;
    match projection {
        Projection::Perspective(p) => {
            positive("fov", p.fov)?;
            positive("aspect_ratio", p.aspect_ratio)?;
            positive("near", p.near)?;
        }
        Projection::Orthographic(o) => {
            positive("scale", o.scale)?;
        }
        Projection::Custom(_) => {}
    }
    let mut projection = projection.clone();
    projection.update(size.width as f32, size.height as f32);
    let intrinsics = intrinsics_from_clip(&projection.get_clip_from_view(), size)?;
    let extrinsics = extrinsics_from_transform(transform)?;
    PinholeCamera::new(intrinsics, extrinsics, size)
}

/// Intrinsics of a clip-from-view matrix (Bevy / wgpu NDC: x right, y up) for an image of
/// `size`. Accepts matrices whose last row is `(0, 0, −1, 0)` (perspective) or
/// `(0, 0, 0, 1)` (orthographic), without skew.
pub fn intrinsics_from_clip(clip_from_view: &Mat4, size: ImageSize) -> Result<Intrinsics> {
    let m = clip_from_view;
    let w_row = m.row(3);
    let (half_w, half_h) = (0.5 * size.width as f32, 0.5 * size.height as f32);
    let close = |a: f32, b: f32| (a - b).abs() <= 1e-6 * (1.0 + b.abs());
    if !m.is_finite() {
        return Err(CameraError::UnsupportedProjection {
            reason: format!("matrix is not finite: {m:?}"),
        });
    }
    if !close(m.row(0).y, 0.0) || !close(m.row(1).x, 0.0) {
        return Err(CameraError::UnsupportedProjection {
            reason: "skewed projection".into(),
        });
    }
    let (p00, p11) = (m.row(0).x, m.row(1).y);
    // A view-space point (x, y, z) has OpenCV coordinates (x, −y, −z).
    if close(w_row.x, 0.0) && close(w_row.y, 0.0) && close(w_row.z, -1.0) && close(w_row.w, 0.0) {
        // ndc_x = (p00·x + p02·z)/(−z) = p00·x_cv/z_cv − p02;  u = (ndc_x + 1)·W/2.
        let (p02, p12) = (m.row(0).z, m.row(1).z);
        Ok(Intrinsics {
            fx: p00 * half_w,
            fy: p11 * half_h,
            cx: half_w * (1.0 - p02),
            cy: half_h * (1.0 + p12),
            kind: ProjectionKind::Perspective,
        })
    } else if close(w_row.x, 0.0)
        && close(w_row.y, 0.0)
        && close(w_row.z, 0.0)
        && close(w_row.w, 1.0)
    {
        // ndc_x = p00·x + p03;  v = (1 − ndc_y)·H/2 with ndc_y = −p11·y_cv + p13.
        let (p03, p13) = (m.row(0).w, m.row(1).w);
        Ok(Intrinsics {
            fx: p00 * half_w,
            fy: p11 * half_h,
            cx: half_w * (1.0 + p03),
            cy: half_h * (1.0 - p13),
            kind: ProjectionKind::Orthographic,
        })
    } else {
        Err(CameraError::UnsupportedProjection {
            reason: format!("last row {w_row:?} is neither perspective nor orthographic"),
        })
    }
}

/// World-to-camera extrinsics (OpenCV frame) of a Bevy camera transform. The transform must
/// be finite and unscaled.
pub fn extrinsics_from_transform(transform: &GlobalTransform) -> Result<Extrinsics> {
    let affine = transform.affine();
    for c in 0..3 {
        finite_vec3("transform", Vec3::from(affine.matrix3.col(c)))?;
    }
    finite_vec3("transform.translation", Vec3::from(affine.translation))?;
    let (scale, rotation, translation) = transform.to_scale_rotation_translation();
    if (scale - Vec3::ONE).abs().max_element() > SCALE_TOLERANCE || !rotation.is_finite() {
        return Err(CameraError::ScaledTransform {
            scale: scale.to_array(),
        });
    }
    let camera_to_world_gl = Mat3::from_quat(rotation.normalize());
    Ok(Extrinsics::from_camera_to_world(
        camera_to_world_gl * FLIP_YZ,
        translation,
    ))
}

/// The Bevy `Transform` that places a camera entity at this camera's pose.
pub fn to_transform(camera: &PinholeCamera) -> Transform {
    let camera_to_world_gl = camera.extrinsics().camera_to_world_rotation() * FLIP_YZ;
    Transform {
        translation: camera.center(),
        rotation: bevy::math::Quat::from_mat3(&camera_to_world_gl),
        scale: Vec3::ONE,
    }
}
