//! The anchor feature mesh: the anchor view's depth map lifted into a world-space grid mesh,
//! one vertex per feature cell, carrying that cell's feature vector.

use glam::Vec3;

use super::error::{RenderError, Result};
use super::maps::DepthMap;
use crate::camera::{PinholeCamera, ProjectionKind};

/// A grid mesh at feature resolution: vertex `j·width + i` is feature cell (column i, row j)
/// unprojected at its centre with its depth; two triangles per 2×2 block of neighbouring cells,
/// minus those that straddle a depth discontinuity. A vertex's attribute is the feature map's
/// vector at its cell, so the feature map itself is the mesh's vertex-attribute buffer.
#[derive(Clone, Debug, PartialEq)]
pub struct AnchorMesh {
    width: u32,
    height: u32,
    positions: Vec<Vec3>,
    triangles: Vec<[u32; 3]>,
}

impl AnchorMesh {
    /// Whether `degrees` can limit the surface angle of [`AnchorMesh::build`]: in (0, 90).
    pub fn is_valid_surface_angle(degrees: f32) -> bool {
        degrees > 0.0 && degrees < 90.0
    }

    /// Lifts `depth` (z-depth at feature resolution, covering `camera`'s whole image) into a
    /// mesh. The quad of cells a=(i,j), b=(i+1,j), c=(i,j+1), d=(i+1,j+1) gives triangles
    /// [a, b, c] and [b, d, c]; a triangle is dropped as a depth discontinuity when the angle
    /// between its normal and the viewing ray through its centroid exceeds
    /// `max_surface_angle_deg`. Unlike a limit on the relative depth jump between neighbouring
    /// cells, which grows with the cell size for a slanted floor and would drop most of it on
    /// a coarse grid, the angle of a surface does not depend on the grid it is sampled on.
    pub fn build(
        depth: &DepthMap,
        camera: &PinholeCamera,
        max_surface_angle_deg: f32,
    ) -> Result<Self> {
        if !Self::is_valid_surface_angle(max_surface_angle_deg) {
            return Err(RenderError::InvalidSetting {
                field: "max_surface_angle_deg",
                value: max_surface_angle_deg.to_string(),
                reason: "must be an angle in (0, 90) degrees",
            });
        }
        let (w, h) = (depth.width(), depth.height());
        let vertices = w as u64 * h as u64;
        // Triangle ids are stored +1 in 32 bits; two triangles per cell bounds their count.
        if 2 * vertices >= u32::MAX as u64 {
            return Err(RenderError::TooLarge {
                what: "anchor mesh triangle ids",
                needed: 2 * vertices,
                limit: u32::MAX as u64 - 1,
            });
        }
        let positions = camera.unproject_depth_map(depth.data(), w, h)?;
        let cos_limit = max_surface_angle_deg.to_radians().cos();
        let keep = |tri: [u32; 3]| {
            let [p0, p1, p2] = tri.map(|v| positions[v as usize]);
            let normal = (p1 - p0).cross(p2 - p0);
            let ray = match camera.kind() {
                ProjectionKind::Perspective => (p0 + p1 + p2) / 3.0 - camera.center(),
                ProjectionKind::Orthographic => camera.forward(),
            };
            // |cos| of the angle between normal and ray, without dividing (a degenerate
            // triangle has a zero normal and is dropped).
            normal.dot(ray).abs() > cos_limit * normal.length() * ray.length()
        };
        let mut triangles =
            Vec::with_capacity(2 * (w.saturating_sub(1) * h.saturating_sub(1)) as usize);
        for j in 0..h.saturating_sub(1) {
            for i in 0..w.saturating_sub(1) {
                let a = j * w + i;
                let (b, c, d) = (a + 1, a + w, a + w + 1);
                for tri in [[a, b, c], [b, d, c]] {
                    if keep(tri) {
                        triangles.push(tri);
                    }
                }
            }
        }
        Ok(Self {
            width: w,
            height: h,
            positions,
            triangles,
        })
    }

    /// Grid columns (the feature map's width).
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Grid rows (the feature map's height).
    pub fn height(&self) -> u32 {
        self.height
    }

    /// World-space vertex positions, row-major over the grid.
    pub fn positions(&self) -> &[Vec3] {
        &self.positions
    }

    /// The kept triangles, as vertex indices; a triangle's id is its index here.
    pub fn triangles(&self) -> &[[u32; 3]] {
        &self.triangles
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::{Extrinsics, ImageSize, Intrinsics};

    /// A camera at the origin looking down +z with a 1 rad vertical field of view and a
    /// `w × h` image (the mesh grid).
    fn camera(w: u32, h: u32) -> PinholeCamera {
        PinholeCamera::new(
            Intrinsics::from_vertical_fov(1.0, w, h).unwrap(),
            Extrinsics::IDENTITY,
            ImageSize::new(w, h).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn flat_depth_keeps_two_triangles_per_quad() {
        let depth = DepthMap::new(4, 3, vec![2.0; 12]).unwrap();
        let mesh = AnchorMesh::build(&depth, &camera(4, 3), 80.0).unwrap();
        assert_eq!(mesh.triangles().len(), 2 * 3 * 2);
        assert_eq!(mesh.positions().len(), 12);
        assert!(mesh.positions().iter().all(|p| (p.z - 2.0).abs() < 1e-6));
    }

    #[test]
    fn a_step_drops_the_straddling_triangles() {
        // Columns 0–7 at depth 1, columns 8–15 at depth 3: the quads between columns 7 and 8
        // straddle an occlusion edge (seen within a few degrees of edge-on).
        let (w, h) = (16, 12);
        let row: Vec<f32> = (0..w).map(|i| if i < 8 { 1.0 } else { 3.0 }).collect();
        let depth = DepthMap::new(w, h, row.repeat(h as usize)).unwrap();
        let mesh = AnchorMesh::build(&depth, &camera(w, h), 80.0).unwrap();
        assert_eq!(mesh.triangles().len() as u32, 2 * (w - 2) * (h - 1));
        for tri in mesh.triangles() {
            let cols: Vec<u32> = tri.iter().map(|v| v % w).collect();
            assert!(cols.iter().all(|&c| c <= 7) || cols.iter().all(|&c| c >= 8));
        }
    }

    /// The plane z = z0 + tan(40°)·y (camera frame, y down): its normal is 40° from the
    /// optical axis and at most 69° from any ray of the 1 rad field of view, so the whole
    /// plane is kept at every grid — although on the coarsest grids neighbouring rows differ
    /// in depth by more than half, which a relative-jump limit would take for an edge.
    #[test]
    fn a_slanted_plane_is_kept_at_every_grid_resolution() {
        let (z0, slope) = (2.0f32, 40f32.to_radians().tan());
        for (w, h) in [(4, 3), (8, 6), (16, 12), (64, 48)] {
            let camera = camera(w, h);
            let k = *camera.intrinsics();
            let depth: Vec<f32> = (0..h)
                .flat_map(|j| {
                    let y = (j as f32 + 0.5 - k.cy) / k.fy;
                    (0..w).map(move |_| z0 / (1.0 - slope * y))
                })
                .collect();
            let largest_jump = depth
                .windows(w as usize + 1)
                .map(|pair| pair[w as usize] / pair[0])
                .fold(1.0f32, f32::max);
            let mesh =
                AnchorMesh::build(&DepthMap::new(w, h, depth).unwrap(), &camera, 80.0).unwrap();
            assert_eq!(
                mesh.triangles().len() as u32,
                2 * (w - 1) * (h - 1),
                "{w}×{h} grid (largest row-to-row depth ratio {largest_jump})"
            );
        }
    }

    /// The same plane seen almost edge-on (normal 85° from the optical axis, ≥ 83° from every
    /// ray near the image centre) is a wall of grazing triangles: dropped.
    #[test]
    fn a_plane_seen_edge_on_is_dropped() {
        let (w, h) = (16u32, 12u32);
        let camera = camera(w, h);
        let k = *camera.intrinsics();
        let slope = 85f32.to_radians().tan();
        // Only the central rows, where the plane is in front of the camera.
        let rows = 2u32;
        let j0 = h / 2 - 1;
        let depth: Vec<f32> = (j0..j0 + rows)
            .flat_map(|j| {
                let y = (j as f32 + 0.5 - k.cy) / k.fy;
                (0..w).map(move |_| 2.0 / (1.0 - slope * y))
            })
            .collect();
        assert!(depth.iter().all(|&z| z > 0.0));
        let band = PinholeCamera::new(
            Intrinsics {
                cy: k.cy - j0 as f32,
                ..k
            },
            Extrinsics::IDENTITY,
            ImageSize::new(w, rows).unwrap(),
        )
        .unwrap();
        let mesh = AnchorMesh::build(&DepthMap::new(w, rows, depth).unwrap(), &band, 80.0).unwrap();
        assert!(mesh.triangles().is_empty(), "{:?}", mesh.triangles().len());
    }

    #[test]
    fn bad_surface_angles_are_typed_errors() {
        let depth = DepthMap::new(4, 3, vec![2.0; 12]).unwrap();
        for degrees in [f32::NAN, 0.0, -10.0, 90.0, 120.0] {
            assert!(matches!(
                AnchorMesh::build(&depth, &camera(4, 3), degrees),
                Err(RenderError::InvalidSetting {
                    field: "max_surface_angle_deg",
                    ..
                })
            ));
        }
    }
}
