//! The anchor feature mesh: the anchor view's depth map lifted into a world-space grid mesh,
//! one vertex per feature cell, carrying that cell's feature vector.

use glam::Vec3;

use super::error::{RenderError, Result};
use super::maps::DepthMap;
use crate::camera::PinholeCamera;

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
    /// Lifts `depth` (z-depth at feature resolution, covering `camera`'s whole image) into a
    /// mesh. The quad of cells a=(i,j), b=(i+1,j), c=(i,j+1), d=(i+1,j+1) gives triangles
    /// [a, b, c] and [b, d, c]; a triangle is dropped when
    /// `(max depth − min depth) / min depth > discontinuity_threshold`.
    pub fn build(
        depth: &DepthMap,
        camera: &PinholeCamera,
        discontinuity_threshold: f32,
    ) -> Result<Self> {
        if !(discontinuity_threshold.is_finite() && discontinuity_threshold > 0.0) {
            return Err(RenderError::InvalidSetting {
                field: "discontinuity_threshold",
                value: discontinuity_threshold.to_string(),
                reason: "must be finite and > 0",
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
        let d = depth.data();
        let keep = |tri: [u32; 3]| {
            let z = tri.map(|v| d[v as usize]);
            let lo = z[0].min(z[1]).min(z[2]);
            let hi = z[0].max(z[1]).max(z[2]);
            (hi - lo) <= discontinuity_threshold * lo
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

    fn camera() -> PinholeCamera {
        PinholeCamera::new(
            Intrinsics::from_vertical_fov(1.0, 4, 3).unwrap(),
            Extrinsics::IDENTITY,
            ImageSize::new(4, 3).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn flat_depth_keeps_two_triangles_per_quad() {
        let depth = DepthMap::new(4, 3, vec![2.0; 12]).unwrap();
        let mesh = AnchorMesh::build(&depth, &camera(), 0.1).unwrap();
        assert_eq!(mesh.triangles().len(), 2 * 3 * 2);
        assert_eq!(mesh.positions().len(), 12);
        assert!(mesh.positions().iter().all(|p| (p.z - 2.0).abs() < 1e-6));
    }

    #[test]
    fn a_step_drops_the_straddling_triangles() {
        // Columns 0–1 at depth 1, columns 2–3 at depth 3: the middle column of quads straddles.
        let row = [1.0, 1.0, 3.0, 3.0];
        let depth = DepthMap::new(4, 3, row.repeat(3)).unwrap();
        let mesh = AnchorMesh::build(&depth, &camera(), 0.1).unwrap();
        assert_eq!(mesh.triangles().len(), 2 * 2 * 2);
        for tri in mesh.triangles() {
            let cols: Vec<u32> = tri.iter().map(|v| v % 4).collect();
            assert!(cols.iter().all(|&c| c <= 1) || cols.iter().all(|&c| c >= 2));
        }
    }

    #[test]
    fn bad_threshold_is_a_typed_error() {
        let depth = DepthMap::new(4, 3, vec![2.0; 12]).unwrap();
        assert!(matches!(
            AnchorMesh::build(&depth, &camera(), f32::NAN),
            Err(RenderError::InvalidSetting { .. })
        ));
    }
}
