//! The visibility buffer: per target pixel, which mesh triangle is nearest there, where inside
//! it (perspective-correct barycentrics) and at what depth. Written once per geometry by a
//! rasteriser; features of any channel count are gathered from it afterwards.

use bytemuck::{Pod, Zeroable};

use std::ops::Deref;

use super::maps::{ViewMaps, ViewStack};

/// One visibility-buffer texel, 16 bytes, the same layout as the GPU's `Rgba32Uint` target.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct Fragment {
    /// Triangle id + 1 (index into [`AnchorMesh::triangles`](super::AnchorMesh::triangles));
    /// 0 where no triangle covers the pixel.
    pub triangle: u32,
    /// Perspective-correct barycentric weights of the triangle's first two vertices (the third
    /// is `1 − b0 − b1`).
    pub bary: [f32; 2],
    /// Camera z-depth of the surface at the pixel centre (0 where empty).
    pub depth: f32,
}

impl Fragment {
    /// The covering triangle's id, `None` where the mesh is not visible.
    pub fn triangle_id(&self) -> Option<u32> {
        self.triangle.checked_sub(1)
    }

    /// The three barycentric weights.
    pub fn weights(&self) -> [f32; 3] {
        let [b0, b1] = self.bary;
        [b0, b1, 1.0 - b0 - b1]
    }
}

/// The visibility buffer of K target views, `[views, height, width]` row-major. Its shape is
/// read through the [`ViewStack`] it dereferences to.
#[derive(Clone, Debug, PartialEq)]
pub struct Visibility(ViewStack<Fragment>);

impl Deref for Visibility {
    type Target = ViewStack<Fragment>;

    fn deref(&self) -> &ViewStack<Fragment> {
        &self.0
    }
}

impl Visibility {
    /// Wraps fragments in `[views, height, width]` order (the rasterisers' output).
    pub(crate) fn new(views: usize, height: u32, width: u32, fragments: Vec<Fragment>) -> Self {
        debug_assert_eq!(fragments.len(), views * height as usize * width as usize);
        Self(ViewStack::from_valid(views, height, width, fragments))
    }

    /// All fragments, `[views, height, width]` order.
    pub fn fragments(&self) -> &[Fragment] {
        self.data()
    }

    /// Per-pixel map built from each fragment.
    fn map(&self, f: impl Fn(&Fragment) -> f32) -> ViewMaps {
        ViewMaps::from_valid(
            self.views(),
            self.height(),
            self.width(),
            self.data().iter().map(f).collect(),
        )
    }

    /// Visibility mask M: 1 where the anchor mesh is seen, else 0.
    pub fn mask(&self) -> ViewMaps {
        self.map(|f| if f.triangle != 0 { 1.0 } else { 0.0 })
    }

    /// Disocclusion mask D = 1 − M: where the anchor view has nothing to say.
    pub fn disocclusion(&self) -> ViewMaps {
        self.map(|f| if f.triangle != 0 { 0.0 } else { 1.0 })
    }

    /// Rendered camera z-depth (0 where nothing is visible).
    pub fn depth(&self) -> ViewMaps {
        self.map(|f| f.depth)
    }
}
