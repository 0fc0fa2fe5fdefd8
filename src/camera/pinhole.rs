//! The one camera type of the crate: intrinsics, world-to-camera extrinsics and image size,
//! with projection and unprojection of points, rays and depth maps.
//!
//! Canonical conventions, used by every other module (conversions live in
//! [`super::conventions`] and [`super::bevy`]):
//! - **Camera frame: OpenCV** — +X right, +Y down, +Z forward (the direction of view).
//! - **Pixel coordinates: continuous** — (0, 0) is the top-left *corner* of the image, +u
//!   right, +v down; the centre of pixel (column i, row j) is (i + 0.5, j + 0.5). COLMAP and
//!   Bevy's viewport coordinates use the same convention.
//! - **Depth: z-depth** — the distance along the optical axis (camera-frame Z), not along the
//!   ray.

use glam::{Mat3, Vec2, Vec3};
use serde::{Deserialize, Serialize};

use super::error::{CameraError, Result, finite, finite_vec3, positive};

/// How camera-frame points map onto the image plane.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ProjectionKind {
    /// Pinhole: `u = fx·x/z + cx` (focal lengths in pixels).
    #[default]
    Perspective,
    /// Parallel projection: `u = fx·x + cx` (fx, fy in pixels per world unit).
    Orthographic,
}

/// Intrinsic parameters in pixels (see the module docs for the conventions).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Intrinsics {
    /// Horizontal focal length (perspective: pixels; orthographic: pixels per world unit).
    pub fx: f32,
    /// Vertical focal length, in the same units as `fx`.
    pub fy: f32,
    /// Principal point, horizontal, in continuous pixel coordinates.
    pub cx: f32,
    /// Principal point, vertical, in continuous pixel coordinates.
    pub cy: f32,
    /// Perspective or orthographic.
    #[serde(default)]
    pub kind: ProjectionKind,
}

impl Intrinsics {
    /// A centred perspective camera with square pixels and the given vertical field of view
    /// (radians) for a `width × height` image.
    pub fn from_vertical_fov(fov_y: f32, width: u32, height: u32) -> Result<Self> {
        positive("fov_y", fov_y)?;
        if fov_y >= std::f32::consts::PI {
            return Err(CameraError::NotPositive {
                field: "pi - fov_y",
                value: (std::f32::consts::PI - fov_y) as f64,
            });
        }
        let size = ImageSize::new(width, height)?;
        let f = 0.5 * size.height as f32 / (0.5 * fov_y).tan();
        Ok(Self {
            fx: f,
            fy: f,
            cx: 0.5 * size.width as f32,
            cy: 0.5 * size.height as f32,
            kind: ProjectionKind::Perspective,
        })
    }

    /// Checks that focal lengths are positive and everything is finite.
    pub fn validate(&self) -> Result<()> {
        positive("fx", self.fx)?;
        positive("fy", self.fy)?;
        finite("cx", self.cx)?;
        finite("cy", self.cy)?;
        Ok(())
    }

    /// The intrinsics of the same camera for an image resampled by `sx` horizontally and `sy`
    /// vertically (e.g. 512 → 64 latents: 0.125).
    pub fn scaled(&self, sx: f32, sy: f32) -> Self {
        Self {
            fx: self.fx * sx,
            fy: self.fy * sy,
            cx: self.cx * sx,
            cy: self.cy * sy,
            kind: self.kind,
        }
    }

    /// The 3×3 matrix K in continuous pixel coordinates (columns-major glam matrix:
    /// `K * [x/z, y/z, 1]` gives `[u, v, 1]`).
    pub fn matrix(&self) -> Mat3 {
        Mat3::from_cols(
            Vec3::new(self.fx, 0.0, 0.0),
            Vec3::new(0.0, self.fy, 0.0),
            Vec3::new(self.cx, self.cy, 1.0),
        )
    }
}

/// Image size in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageSize {
    /// Columns.
    pub width: u32,
    /// Rows.
    pub height: u32,
}

impl ImageSize {
    /// A size with both sides non-zero.
    pub fn new(width: u32, height: u32) -> Result<Self> {
        if width == 0 {
            return Err(CameraError::NotPositive {
                field: "width",
                value: 0.0,
            });
        }
        if height == 0 {
            return Err(CameraError::NotPositive {
                field: "height",
                value: 0.0,
            });
        }
        Ok(Self { width, height })
    }

    /// Number of pixels.
    pub fn area(&self) -> usize {
        self.width as usize * self.height as usize
    }
}

/// World-to-camera rigid transform: `p_cam = rotation · p_world + translation` (camera frame
/// in the OpenCV convention).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Extrinsics {
    /// Rotation world → camera.
    pub rotation: Mat3,
    /// Translation world → camera (not the camera centre; see [`Extrinsics::center`]).
    pub translation: Vec3,
}

impl Extrinsics {
    /// The identity: camera at the origin looking down world +Z with +Y down.
    pub const IDENTITY: Self = Self {
        rotation: Mat3::IDENTITY,
        translation: Vec3::ZERO,
    };

    /// From a camera-to-world pose (camera centre and camera axes in world coordinates).
    pub fn from_camera_to_world(rotation_c2w: Mat3, center: Vec3) -> Self {
        let rotation = rotation_c2w.transpose();
        Self {
            rotation,
            translation: -(rotation * center),
        }
    }

    /// Checks finiteness and that `rotation` is a proper rotation.
    pub fn validate(&self) -> Result<()> {
        for c in 0..3 {
            finite_vec3("rotation", self.rotation.col(c))?;
        }
        finite_vec3("translation", self.translation)?;
        let gram = self.rotation.transpose() * self.rotation;
        let mut error = (self.rotation.determinant() - 1.0).abs();
        for c in 0..3 {
            let diff = gram.col(c) - Mat3::IDENTITY.col(c);
            error = error.max(diff.abs().max_element());
        }
        if error > 1e-3 {
            return Err(CameraError::NotARotation {
                field: "rotation",
                error,
            });
        }
        Ok(())
    }

    /// The camera centre in world coordinates, `−Rᵀt`.
    pub fn center(&self) -> Vec3 {
        -(self.rotation.transpose() * self.translation)
    }

    /// Camera-to-world rotation, `Rᵀ`: its columns are the camera's +X (right), +Y (down) and
    /// +Z (forward) axes in world coordinates.
    pub fn camera_to_world_rotation(&self) -> Mat3 {
        self.rotation.transpose()
    }

    /// Maps a world point into the camera frame.
    pub fn world_to_camera(&self, p: Vec3) -> Vec3 {
        self.rotation * p + self.translation
    }

    /// Maps a camera-frame point into the world.
    pub fn camera_to_world(&self, p: Vec3) -> Vec3 {
        self.rotation.transpose() * (p - self.translation)
    }
}

/// A point seen by a camera.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Projected {
    /// Continuous pixel coordinates.
    pub pixel: Vec2,
    /// z-depth in the camera frame.
    pub depth: f32,
}

/// A ray in world coordinates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ray {
    /// Where the ray starts: the camera centre (perspective) or the point on the image plane
    /// z = 0 (orthographic).
    pub origin: Vec3,
    /// Unit direction.
    pub direction: Vec3,
}

/// A validated camera: intrinsics, world-to-camera extrinsics and image size.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "CameraFields", into = "CameraFields")]
pub struct PinholeCamera {
    intrinsics: Intrinsics,
    extrinsics: Extrinsics,
    size: ImageSize,
}

/// The serialised form of [`PinholeCamera`], validated on the way in.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct CameraFields {
    intrinsics: Intrinsics,
    extrinsics: Extrinsics,
    size: ImageSize,
}

impl TryFrom<CameraFields> for PinholeCamera {
    type Error = CameraError;
    fn try_from(f: CameraFields) -> Result<Self> {
        PinholeCamera::new(f.intrinsics, f.extrinsics, f.size)
    }
}

impl From<PinholeCamera> for CameraFields {
    fn from(c: PinholeCamera) -> Self {
        Self {
            intrinsics: c.intrinsics,
            extrinsics: c.extrinsics,
            size: c.size,
        }
    }
}

impl PinholeCamera {
    /// A camera from its parts, validated (positive focal lengths, finite values, a proper
    /// rotation, non-empty image).
    pub fn new(intrinsics: Intrinsics, extrinsics: Extrinsics, size: ImageSize) -> Result<Self> {
        intrinsics.validate()?;
        extrinsics.validate()?;
        ImageSize::new(size.width, size.height)?;
        Ok(Self {
            intrinsics,
            extrinsics,
            size,
        })
    }

    /// The intrinsics.
    pub fn intrinsics(&self) -> &Intrinsics {
        &self.intrinsics
    }

    /// The world-to-camera extrinsics.
    pub fn extrinsics(&self) -> &Extrinsics {
        &self.extrinsics
    }

    /// The image size.
    pub fn size(&self) -> ImageSize {
        self.size
    }

    /// Perspective or orthographic.
    pub fn kind(&self) -> ProjectionKind {
        self.intrinsics.kind
    }

    /// The camera centre in world coordinates (for orthographic cameras: the centre of the
    /// frame's origin plane).
    pub fn center(&self) -> Vec3 {
        self.extrinsics.center()
    }

    /// The viewing direction (+Z of the camera frame) in world coordinates.
    pub fn forward(&self) -> Vec3 {
        self.extrinsics.rotation.row(2)
    }

    /// The same camera with another pose.
    pub fn with_extrinsics(&self, extrinsics: Extrinsics) -> Result<Self> {
        Self::new(self.intrinsics, extrinsics, self.size)
    }

    /// The same camera for an image resampled to `width × height` (intrinsics scaled, pose
    /// unchanged): e.g. the latent-resolution camera of a 512² view is `resized(64, 64)`.
    pub fn resized(&self, width: u32, height: u32) -> Result<Self> {
        let size = ImageSize::new(width, height)?;
        let sx = width as f32 / self.size.width as f32;
        let sy = height as f32 / self.size.height as f32;
        Self::new(self.intrinsics.scaled(sx, sy), self.extrinsics, size)
    }

    /// Projects a camera-frame point; `None` when it lies on or behind the image plane of a
    /// perspective camera.
    pub fn project_camera_point(&self, p: Vec3) -> Option<Projected> {
        let k = &self.intrinsics;
        let (x, y) = match k.kind {
            ProjectionKind::Perspective => {
                if p.z <= f32::EPSILON {
                    return None;
                }
                (p.x / p.z, p.y / p.z)
            }
            ProjectionKind::Orthographic => (p.x, p.y),
        };
        Some(Projected {
            pixel: Vec2::new(k.fx * x + k.cx, k.fy * y + k.cy),
            depth: p.z,
        })
    }

    /// Projects a world point; `None` when it lies on or behind a perspective camera.
    pub fn project(&self, p: Vec3) -> Option<Projected> {
        self.project_camera_point(self.extrinsics.world_to_camera(p))
    }

    /// The camera-frame point at continuous pixel `pixel` and z-depth `depth`.
    pub fn unproject_to_camera(&self, pixel: Vec2, depth: f32) -> Vec3 {
        let k = &self.intrinsics;
        let x = (pixel.x - k.cx) / k.fx;
        let y = (pixel.y - k.cy) / k.fy;
        match k.kind {
            ProjectionKind::Perspective => Vec3::new(x * depth, y * depth, depth),
            ProjectionKind::Orthographic => Vec3::new(x, y, depth),
        }
    }

    /// The world point at continuous pixel `pixel` and z-depth `depth`.
    pub fn unproject(&self, pixel: Vec2, depth: f32) -> Vec3 {
        self.extrinsics
            .camera_to_world(self.unproject_to_camera(pixel, depth))
    }

    /// The world-space ray through continuous pixel `pixel`.
    pub fn ray(&self, pixel: Vec2) -> Ray {
        match self.intrinsics.kind {
            ProjectionKind::Perspective => {
                let dir_cam = self.unproject_to_camera(pixel, 1.0);
                Ray {
                    origin: self.center(),
                    direction: (self.extrinsics.camera_to_world_rotation() * dir_cam).normalize(),
                }
            }
            ProjectionKind::Orthographic => Ray {
                origin: self.unproject(pixel, 0.0),
                direction: self.forward(),
            },
        }
    }

    /// The continuous image coordinates of the centre of cell (column `i`, row `j`) of a
    /// `grid_width × grid_height` grid laid over the image (a depth map, a latent, a feature
    /// map of any resolution).
    pub fn grid_cell_center(&self, i: u32, j: u32, grid_width: u32, grid_height: u32) -> Vec2 {
        Vec2::new(
            (i as f32 + 0.5) * self.size.width as f32 / grid_width as f32,
            (j as f32 + 0.5) * self.size.height as f32 / grid_height as f32,
        )
    }

    /// Unprojects a row-major z-depth map of `width × height` cells covering the whole image
    /// into world points, one per cell centre. Depths must be finite and positive.
    pub fn unproject_depth_map(&self, depth: &[f32], width: u32, height: u32) -> Result<Vec<Vec3>> {
        let grid = ImageSize::new(width, height)?;
        if depth.len() != grid.area() {
            return Err(CameraError::SizeMismatch {
                field: "depth",
                expected: grid.area(),
                found: depth.len(),
            });
        }
        let mut points = Vec::with_capacity(depth.len());
        for j in 0..height {
            for i in 0..width {
                let d = depth[(j * width + i) as usize];
                positive("depth", d)?;
                points.push(self.unproject(self.grid_cell_center(i, j, width, height), d));
            }
        }
        Ok(points)
    }

    /// Projects world points and returns, per point, the continuous pixel in a
    /// `grid_width × grid_height` grid over the image and the z-depth (`None` behind the
    /// camera) — the inverse of [`PinholeCamera::unproject_depth_map`].
    pub fn project_to_grid(&self, p: Vec3, grid_width: u32, grid_height: u32) -> Option<Projected> {
        self.project(p).map(|mut q| {
            q.pixel.x *= grid_width as f32 / self.size.width as f32;
            q.pixel.y *= grid_height as f32 / self.size.height as f32;
            q
        })
    }
}
