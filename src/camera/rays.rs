//! Plücker ray maps: per pixel the ray's moment `o × d` and unit direction `d`, the pose
//! encoding used by pose-conditioned diffusion models.

use glam::Vec3;

use super::error::Result;
use super::pinhole::{Extrinsics, ImageSize, PinholeCamera, Ray};

impl Ray {
    /// The six Plücker coordinates `(o × d, d)`; independent of where on the ray `o` lies.
    pub fn plucker(&self) -> [f32; 6] {
        let m = self.origin.cross(self.direction);
        let d = self.direction;
        [m.x, m.y, m.z, d.x, d.y, d.z]
    }

    /// The same ray expressed in a camera's frame (OpenCV axes) given that camera's
    /// world-to-camera extrinsics.
    pub fn in_camera_frame(&self, extrinsics: &Extrinsics) -> Ray {
        Ray {
            origin: extrinsics.world_to_camera(self.origin),
            direction: extrinsics.rotation * self.direction,
        }
    }
}

/// A `[6, height, width]` channel-first map of Plücker coordinates, row-major within each
/// channel: channels 0–2 the moment `o × d`, 3–5 the direction `d`.
#[derive(Clone, Debug, PartialEq)]
pub struct PluckerMap {
    /// Columns of the map.
    pub width: u32,
    /// Rows of the map.
    pub height: u32,
    /// `6 · height · width` values.
    pub data: Vec<f32>,
}

impl PluckerMap {
    /// The six coordinates at cell (column `i`, row `j`).
    pub fn at(&self, i: u32, j: u32) -> [f32; 6] {
        let plane = (self.width * self.height) as usize;
        let index = (j * self.width + i) as usize;
        std::array::from_fn(|c| self.data[c * plane + index])
    }
}

/// The Plücker ray map of `camera` at a `width × height` grid laid over its image (any
/// resolution: one ray through each cell centre), in world coordinates, or in the frame of
/// `frame` when given.
pub fn plucker_map(
    camera: &PinholeCamera,
    width: u32,
    height: u32,
    frame: Option<&Extrinsics>,
) -> Result<PluckerMap> {
    let grid = ImageSize::new(width, height)?;
    let plane = grid.area();
    let mut data = vec![0.0; 6 * plane];
    for j in 0..height {
        for i in 0..width {
            let ray = camera.ray(camera.grid_cell_center(i, j, width, height));
            let ray = frame.map_or(ray, |e| ray.in_camera_frame(e));
            let index = (j * width + i) as usize;
            for (c, value) in ray.plucker().into_iter().enumerate() {
                data[c * plane + index] = value;
            }
        }
    }
    Ok(PluckerMap {
        width,
        height,
        data,
    })
}

/// Distance from a point to the line of a ray, computed from Plücker coordinates alone:
/// `|p × d − m|` for unit `d` (useful for checking ray maps).
pub fn distance_to_plucker_line(plucker: &[f32; 6], point: Vec3) -> f32 {
    let m = Vec3::new(plucker[0], plucker[1], plucker[2]);
    let d = Vec3::new(plucker[3], plucker[4], plucker[5]);
    (point.cross(d) - m).length()
}
