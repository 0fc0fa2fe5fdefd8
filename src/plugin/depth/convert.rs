//! From a camera's depth buffer (Bevy's NDC depth, reverse-Z) to the z-depth map DFR lifts
//! into the anchor mesh: cropped to the camera's viewport, converted through the inverse of the
//! camera's own projection, resampled to the generated view's size.

use bevy::camera::{Camera, Projection};
use bevy::math::{Mat4, URect, UVec2, Vec4};

use crate::render::DepthMap;

/// How to turn one camera's depth buffer into the z-depth of the view generated for it: the
/// camera's projection and viewport at the moment its pose was read.
#[derive(Clone, Debug, PartialEq)]
pub struct DepthConversion {
    /// The inverse of the projection's clip-from-view matrix, evaluated over the viewport.
    view_from_clip: Mat4,
    /// The region of the render target the camera draws into, in physical pixels.
    viewport: URect,
    /// Depth given to pixels nothing was drawn into (the projection's far distance).
    far: f32,
    /// Size of the generated view, which the depth map is resampled to.
    output: UVec2,
}

/// Why a depth buffer could not be converted.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum DepthConversionError {
    /// The camera's projection has no inverse (degenerate parameters).
    #[error("the camera's projection matrix is not invertible")]
    SingularProjection,
    /// The camera has no computed target or viewport size yet.
    #[error("the camera has no viewport size yet (its render target is not ready)")]
    NoViewport,
    /// The depth buffer does not cover the viewport.
    #[error("a {width}×{height} depth buffer does not cover the viewport {viewport:?}")]
    BufferTooSmall {
        /// Buffer columns.
        width: u32,
        /// Buffer rows.
        height: u32,
        /// The viewport it should cover.
        viewport: URect,
    },
    /// The buffer holds another number of values than its size says.
    #[error("a {width}×{height} depth buffer holds {len} values")]
    BufferLength {
        /// Buffer columns.
        width: u32,
        /// Buffer rows.
        height: u32,
        /// Values it holds.
        len: usize,
    },
    /// The resulting map was refused (empty output size).
    #[error("depth map: {0}")]
    Map(String),
}

impl DepthConversion {
    /// The conversion for `camera` rendering with `projection`, for a generated view of
    /// `output` pixels. Uses the same viewport the view's pose was computed over.
    pub fn new(
        camera: &Camera,
        projection: &Projection,
        output: UVec2,
    ) -> Result<Self, DepthConversionError> {
        let viewport = camera
            .physical_viewport_rect()
            .filter(|rect| rect.width() > 0 && rect.height() > 0)
            .ok_or(DepthConversionError::NoViewport)?;
        Self::for_viewport(projection, viewport, output)
    }

    /// The conversion for `projection` drawing into `viewport` of its target.
    pub fn for_viewport(
        projection: &Projection,
        viewport: URect,
        output: UVec2,
    ) -> Result<Self, DepthConversionError> {
        let mut projection = projection.clone();
        projection.update(viewport.width() as f32, viewport.height() as f32);
        let clip_from_view = projection.get_clip_from_view();
        let determinant = clip_from_view.determinant();
        if !determinant.is_finite() || determinant == 0.0 {
            return Err(DepthConversionError::SingularProjection);
        }
        Ok(Self {
            view_from_clip: clip_from_view.inverse(),
            viewport,
            far: projection.far(),
            output,
        })
    }

    /// The z-depth (distance along the optical axis) of NDC depth `ndc_depth` at NDC
    /// position `(ndc_x, ndc_y)`; `None` where the point lies at infinity or behind the
    /// camera (a cleared pixel of Bevy's infinite reverse-Z perspective has depth 0).
    fn z_depth(&self, ndc_x: f32, ndc_y: f32, ndc_depth: f32) -> Option<f32> {
        let view = self.view_from_clip * Vec4::new(ndc_x, ndc_y, ndc_depth, 1.0);
        // Bevy cameras look down −Z: the z-depth is −z of the view-space point.
        let z = -view.z / view.w;
        (z.is_finite() && z > 0.0).then_some(z)
    }

    /// The z-depth map of a row-major `width × height` NDC depth buffer (the camera's whole
    /// render target): the viewport's pixels, nearest-sampled at the output pixels' centres.
    /// Pixels with no geometry get the projection's far distance, or the farthest depth
    /// seen when some geometry lies beyond it.
    pub fn depth_map(
        &self,
        ndc: &[f32],
        width: u32,
        height: u32,
    ) -> Result<DepthMap, DepthConversionError> {
        if ndc.len() != width as usize * height as usize {
            return Err(DepthConversionError::BufferLength {
                width,
                height,
                len: ndc.len(),
            });
        }
        let viewport = self.viewport;
        if viewport.max.x > width || viewport.max.y > height {
            return Err(DepthConversionError::BufferTooSmall {
                width,
                height,
                viewport,
            });
        }
        let (out_w, out_h) = (self.output.x, self.output.y);
        let (vp_w, vp_h) = (viewport.width(), viewport.height());
        let mut depths = Vec::with_capacity(out_w as usize * out_h as usize);
        for j in 0..out_h {
            // The viewport pixel whose area holds the output pixel's centre.
            let y = nearest(j, out_h, vp_h);
            let ndc_y = 1.0 - 2.0 * (y as f32 + 0.5) / vp_h as f32;
            for i in 0..out_w {
                let x = nearest(i, out_w, vp_w);
                let ndc_x = 2.0 * (x as f32 + 0.5) / vp_w as f32 - 1.0;
                let index =
                    (viewport.min.y + y) as usize * width as usize + (viewport.min.x + x) as usize;
                depths.push(self.z_depth(ndc_x, ndc_y, ndc[index]));
            }
        }
        let farthest = depths.iter().flatten().fold(self.far, |a, &b| a.max(b));
        let data = depths
            .into_iter()
            .map(|depth| depth.unwrap_or(farthest))
            .collect();
        DepthMap::new(out_w, out_h, data).map_err(|e| DepthConversionError::Map(e.to_string()))
    }
}

/// The source index (of `source` cells) whose area holds the centre of cell `index` of
/// `count` cells spread over the same extent.
fn nearest(index: u32, count: u32, source: u32) -> u32 {
    let centre = (index as f64 + 0.5) * source as f64 / count as f64;
    (centre.floor() as u32).min(source - 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bevy::camera::{OrthographicProjection, PerspectiveProjection, ScalingMode};
    use bevy::math::Vec3;

    /// The NDC depth Bevy's projection writes for a view-space point.
    fn ndc_of(projection: &Projection, size: UVec2, view_point: Vec3) -> f32 {
        let mut projection = projection.clone();
        projection.update(size.x as f32, size.y as f32);
        let clip = projection.get_clip_from_view() * view_point.extend(1.0);
        clip.z / clip.w
    }

    fn perspective() -> Projection {
        Projection::Perspective(PerspectiveProjection {
            fov: 0.9,
            near: 0.25,
            far: 300.0,
            ..Default::default()
        })
    }

    #[test]
    fn perspective_depth_is_near_over_ndc() {
        let projection = perspective();
        let size = UVec2::new(4, 2);
        let conversion = DepthConversion::for_viewport(
            &projection,
            URect::from_corners(UVec2::ZERO, size),
            size,
        )
        .unwrap();
        // Every pixel at its own depth, with the lateral position of its pixel centre.
        let zs = [0.5, 1.0, 2.5, 7.0, 11.0, 40.0, 123.0, 250.0];
        let ndc: Vec<f32> = zs
            .iter()
            .map(|&z| ndc_of(&projection, size, Vec3::new(0.1, -0.2, -z)))
            .collect();
        // Bevy's infinite reverse-Z: ndc = near / z.
        for (&z, &d) in zs.iter().zip(&ndc) {
            approx::assert_relative_eq!(d, 0.25 / z, max_relative = 1e-5);
        }
        let map = conversion.depth_map(&ndc, 4, 2).unwrap();
        for (&got, &want) in map.data().iter().zip(&zs) {
            approx::assert_relative_eq!(got, want, max_relative = 1e-4);
        }
    }

    #[test]
    fn cleared_pixels_get_the_far_distance_or_the_farthest_depth() {
        let projection = perspective();
        let size = UVec2::new(2, 1);
        let rect = URect::from_corners(UVec2::ZERO, size);
        let conversion = DepthConversion::for_viewport(&projection, rect, size).unwrap();
        let map = conversion.depth_map(&[0.0, 0.25 / 5.0], 2, 1).unwrap();
        approx::assert_relative_eq!(map.data()[0], 300.0);
        approx::assert_relative_eq!(map.data()[1], 5.0, max_relative = 1e-5);
        // Geometry beyond `far` (Bevy's perspective has no far plane) keeps the background
        // behind it.
        let map = conversion.depth_map(&[0.0, 0.25 / 500.0], 2, 1).unwrap();
        approx::assert_relative_eq!(map.data()[0], map.data()[1]);
        approx::assert_relative_eq!(map.data()[1], 500.0, max_relative = 1e-4);
    }

    #[test]
    fn orthographic_depth_inverts_the_linear_mapping() {
        let projection = Projection::Orthographic(OrthographicProjection {
            near: -2.0,
            far: 50.0,
            scaling_mode: ScalingMode::Fixed {
                width: 4.0,
                height: 4.0,
            },
            ..OrthographicProjection::default_3d()
        });
        let size = UVec2::new(3, 1);
        let rect = URect::from_corners(UVec2::ZERO, size);
        let conversion = DepthConversion::for_viewport(&projection, rect, size).unwrap();
        let zs = [0.5, 10.0, 49.0];
        let ndc: Vec<f32> = zs
            .iter()
            .map(|&z| ndc_of(&projection, size, Vec3::new(0.3, 0.2, -z)))
            .collect();
        let map = conversion.depth_map(&ndc, 3, 1).unwrap();
        for (&got, &want) in map.data().iter().zip(&zs) {
            approx::assert_relative_eq!(got, want, max_relative = 1e-4);
        }
    }

    #[test]
    fn the_viewport_is_cropped_and_resampled_to_the_output() {
        let projection = perspective();
        // A 6×4 target whose viewport is the 4×2 block at (2, 1); output 2×1.
        let viewport = URect::from_corners(UVec2::new(2, 1), UVec2::new(6, 3));
        let conversion =
            DepthConversion::for_viewport(&projection, viewport, UVec2::new(2, 1)).unwrap();
        let mut ndc = vec![0.25 / 99.0; 24];
        // Output pixel 0's centre is at viewport (1, 1) → target (3, 2); pixel 1's at (3, 1)
        // → target (5, 2).
        ndc[2 * 6 + 3] = 0.25 / 2.0;
        ndc[2 * 6 + 5] = 0.25 / 3.0;
        let map = conversion.depth_map(&ndc, 6, 4).unwrap();
        assert_eq!((map.width(), map.height()), (2, 1));
        approx::assert_relative_eq!(map.data()[0], 2.0, max_relative = 1e-2);
        approx::assert_relative_eq!(map.data()[1], 3.0, max_relative = 1e-2);
    }

    #[test]
    fn bad_buffers_are_refused() {
        let projection = perspective();
        let viewport = URect::from_corners(UVec2::ZERO, UVec2::new(4, 4));
        let conversion = DepthConversion::for_viewport(&projection, viewport, UVec2::ONE).unwrap();
        assert!(matches!(
            conversion.depth_map(&[0.5; 4], 2, 2),
            Err(DepthConversionError::BufferTooSmall { .. })
        ));
        assert!(matches!(
            conversion.depth_map(&[0.5; 3], 4, 4),
            Err(DepthConversionError::BufferLength { len: 3, .. })
        ));
    }
}
