//! Conversions between [`PinholeCamera`] and the conventions of other tools:
//! OpenCV (integer pixel centres), OpenGL / NeRF camera-to-world matrices, and PyTorch3D's
//! NDC cameras used by CustomDiffusion360.

use glam::{Mat3, Mat4, Vec2, Vec3};

use super::error::Result;
use super::pinhole::{Extrinsics, ImageSize, Intrinsics, PinholeCamera, ProjectionKind};

/// Flips Y and Z: maps the OpenCV camera frame (+Y down, +Z forward) to the OpenGL one
/// (+Y up, −Z forward) and back (it is its own inverse).
const FLIP_YZ: Mat3 = Mat3::from_diagonal(Vec3::new(1.0, -1.0, -1.0));

/// Flips X and Y: maps the OpenCV camera frame to PyTorch3D's (+X left, +Y up, +Z forward)
/// and back.
const FLIP_XY: Mat3 = Mat3::from_diagonal(Vec3::new(-1.0, -1.0, 1.0));

/// The OpenCV camera matrix K, whose principal point uses OpenCV's *integer* pixel-centre
/// convention (the centre of the top-left pixel is (0, 0)): `cx_opencv = cx − 0.5`.
pub fn opencv_camera_matrix(intrinsics: &Intrinsics) -> Mat3 {
    let mut k = intrinsics.matrix();
    k.z_axis.x -= 0.5;
    k.z_axis.y -= 0.5;
    k
}

/// A perspective camera from an OpenCV K (integer pixel centres), world-to-camera `R`, `t`
/// and the image size.
pub fn from_opencv(
    k: Mat3,
    rotation: Mat3,
    translation: Vec3,
    size: ImageSize,
) -> Result<PinholeCamera> {
    let intrinsics = Intrinsics {
        fx: k.x_axis.x,
        fy: k.y_axis.y,
        cx: k.z_axis.x + 0.5,
        cy: k.z_axis.y + 0.5,
        kind: ProjectionKind::Perspective,
    };
    PinholeCamera::new(
        intrinsics,
        Extrinsics {
            rotation,
            translation,
        },
        size,
    )
}

/// The OpenGL / NeRF camera-to-world matrix: columns are the camera's +X (right), +Y (up),
/// +Z (backwards: the camera looks down −Z) and its centre, in world coordinates.
pub fn opengl_camera_to_world(camera: &PinholeCamera) -> Mat4 {
    let c2w = camera.extrinsics().camera_to_world_rotation() * FLIP_YZ;
    Mat4::from_cols(
        c2w.x_axis.extend(0.0),
        c2w.y_axis.extend(0.0),
        c2w.z_axis.extend(0.0),
        camera.center().extend(1.0),
    )
}

/// A camera from an OpenGL / NeRF camera-to-world matrix (see [`opengl_camera_to_world`]),
/// with intrinsics in this crate's convention.
pub fn from_opengl_camera_to_world(
    c2w: Mat4,
    intrinsics: Intrinsics,
    size: ImageSize,
) -> Result<PinholeCamera> {
    let rotation_gl = Mat3::from_mat4(c2w);
    let center = c2w.w_axis.truncate();
    super::error::finite("c2w[3][3]", c2w.w_axis.w)?;
    let extrinsics = Extrinsics::from_camera_to_world(rotation_gl * FLIP_YZ, center);
    PinholeCamera::new(intrinsics, extrinsics, size)
}

/// A camera in PyTorch3D's conventions (`PerspectiveCameras(in_ndc=True)`): row-vector
/// world-to-view transform `X_view = X_world · R + T`, view frame +X left, +Y up, +Z forward,
/// and NDC intrinsics where the shorter image side spans [−1, 1] with +X left and +Y up.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pytorch3dCamera {
    /// `R` as PyTorch3D stores it (row-vector convention).
    pub rotation: Mat3,
    /// `T` as PyTorch3D stores it.
    pub translation: Vec3,
    /// NDC focal lengths.
    pub focal_length: Vec2,
    /// NDC principal point.
    pub principal_point: Vec2,
}

/// Half the shorter image side: PyTorch3D's pixels-per-NDC-unit.
fn ndc_scale(size: ImageSize) -> f32 {
    0.5 * size.width.min(size.height) as f32
}

/// Expresses a perspective camera in PyTorch3D's conventions.
pub fn to_pytorch3d(camera: &PinholeCamera) -> Pytorch3dCamera {
    let k = camera.intrinsics();
    let size = camera.size();
    let s = ndc_scale(size);
    let ext = camera.extrinsics();
    // Column form: X_view = FLIP_XY·(R·X + t); PyTorch3D's R is the transpose of FLIP_XY·R.
    Pytorch3dCamera {
        rotation: (FLIP_XY * ext.rotation).transpose(),
        translation: FLIP_XY * ext.translation,
        focal_length: Vec2::new(k.fx / s, k.fy / s),
        principal_point: Vec2::new(
            (0.5 * size.width as f32 - k.cx) / s,
            (0.5 * size.height as f32 - k.cy) / s,
        ),
    }
}

/// A perspective camera from PyTorch3D's conventions for an image of `size`.
pub fn from_pytorch3d(camera: &Pytorch3dCamera, size: ImageSize) -> Result<PinholeCamera> {
    let size = ImageSize::new(size.width, size.height)?;
    let s = ndc_scale(size);
    let intrinsics = Intrinsics {
        fx: camera.focal_length.x * s,
        fy: camera.focal_length.y * s,
        cx: 0.5 * size.width as f32 - camera.principal_point.x * s,
        cy: 0.5 * size.height as f32 - camera.principal_point.y * s,
        kind: ProjectionKind::Perspective,
    };
    let extrinsics = Extrinsics {
        rotation: FLIP_XY * camera.rotation.transpose(),
        translation: FLIP_XY * camera.translation,
    };
    PinholeCamera::new(intrinsics, extrinsics, size)
}

/// Projects a world point with a PyTorch3D camera into its NDC (+X left, +Y up), exactly as
/// PyTorch3D's `transform_points` does for `in_ndc=True` cameras; `None` behind the camera.
pub fn pytorch3d_project_ndc(camera: &Pytorch3dCamera, world: Vec3) -> Option<Vec2> {
    // Row vector times matrix: component j is the dot product with column j.
    let r = camera.rotation;
    let view = Vec3::new(
        world.dot(r.x_axis),
        world.dot(r.y_axis),
        world.dot(r.z_axis),
    ) + camera.translation;
    if view.z <= f32::EPSILON {
        return None;
    }
    Some(camera.focal_length * Vec2::new(view.x, view.y) / view.z + camera.principal_point)
}
