//! The CPU reference rasteriser and feature resolve: the oracle of the GPU path in tests and its
//! fallback where no adapter exists.
//!
//! It follows the conventions listed in the [render module](super) exactly as the GPU does:
//! - Vertices go through [`ViewTransform::clip`], as in `shaders/visibility.wgsl`.
//! - Coverage uses vertex positions snapped to 1/256 pixel (8 sub-pixel bits, as Vulkan
//!   rasterisers do) with exact integer edge functions and the top-left fill rule.
//! - The depth test compares `clip.z / clip.w` interpolated linearly in screen space, stored as
//!   f32 like a `Depth32Float` target; "greater" wins, the earlier triangle on ties (API order).
//! - Barycentrics and depth are perspective-correct, computed from unsnapped positions.

use glam::DVec2;

use super::error::Result;
use super::maps::{FeatureMap, ViewFeatures};
use super::mesh::AnchorMesh;
use super::view::ViewTransform;
use super::visibility::{Fragment, Visibility};

/// Sub-pixel precision of the coverage test, in bits.
const SUBPIXEL_BITS: u32 = 8;

/// A triangle vertex in screen space.
#[derive(Clone, Copy)]
struct ScreenVertex {
    /// Continuous pixel position.
    pos: DVec2,
    /// Snapped position, in 1/256 pixel.
    fixed: [i64; 2],
    /// Reversed depth `clip.z / clip.w`.
    key: f64,
    /// Clip w (camera z for perspective views, 1 for orthographic).
    w: f64,
    /// Camera z-depth.
    z: f64,
}

/// Twice the signed area of (a, b, p): positive when p is right of a → b on a y-down screen.
fn edge_f(a: DVec2, b: DVec2, p: DVec2) -> f64 {
    (b.x - a.x) * (p.y - a.y) - (b.y - a.y) * (p.x - a.x)
}

/// Bound on snapped coordinates (2^60 / 256 ≈ 4.5e15 pixels, far beyond any real projection),
/// so that [`edge_i`] cannot overflow i128.
const FIXED_LIMIT: i64 = 1 << 60;

/// A continuous coordinate snapped to 1/256 pixel, clamped to ±[`FIXED_LIMIT`].
fn snap(x: f64) -> i64 {
    ((x * (1u64 << SUBPIXEL_BITS) as f64).round() as i64).clamp(-FIXED_LIMIT, FIXED_LIMIT)
}

/// [`edge_f`] on snapped integer positions, exact.
fn edge_i(a: [i64; 2], b: [i64; 2], p: [i64; 2]) -> i128 {
    let d = |u: i64, v: i64| u as i128 - v as i128;
    d(b[0], a[0]) * d(p[1], a[1]) - d(b[1], a[1]) * d(p[0], a[0])
}

/// Half a pixel in snapped units: pixel i's centre is at `i · 256 + HALF_PIXEL`.
const HALF_PIXEL: i64 = 1 << (SUBPIXEL_BITS - 1);

/// The pixels, along an axis of `n`, whose centres lie within the snapped coordinates
/// `coords` (empty when none).
fn pixel_span(coords: [i64; 3], n: u32) -> std::ops::RangeInclusive<i64> {
    let scale = (1i64 << SUBPIXEL_BITS) as f64;
    let lo = coords[0].min(coords[1]).min(coords[2]);
    let hi = coords[0].max(coords[1]).max(coords[2]);
    let first = ((lo - HALF_PIXEL) as f64 / scale).ceil().max(0.0) as i64;
    let last = ((hi - HALF_PIXEL) as f64 / scale)
        .floor()
        .min(n as f64 - 1.0) as i64;
    first..=last
}

/// Whether edge a → b of a positively oriented triangle is a top or left edge (y down).
fn is_top_left(a: [i64; 2], b: [i64; 2]) -> bool {
    let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
    dy < 0 || (dy == 0 && dx > 0)
}

/// Rasterises `mesh` into each view of `views` at `width × height`.
pub(crate) fn rasterize(
    mesh: &AnchorMesh,
    views: &[ViewTransform],
    width: u32,
    height: u32,
) -> Visibility {
    let n = width as usize * height as usize;
    let mut fragments = vec![Fragment::default(); views.len() * n];
    for (view, out) in views.iter().zip(fragments.chunks_mut(n)) {
        rasterize_view(mesh, view, width, height, out);
    }
    Visibility::new(views.len(), height, width, fragments)
}

/// Rasterises one view into `out` (`height × width` fragments, cleared).
fn rasterize_view(
    mesh: &AnchorMesh,
    view: &ViewTransform,
    width: u32,
    height: u32,
    out: &mut [Fragment],
) {
    let (wf, hf) = (width as f32, height as f32);
    let vertices: Vec<Option<ScreenVertex>> = mesh
        .positions()
        .iter()
        .map(|&p| {
            let z = view.camera_point(p).z;
            if z <= view.near() {
                return None;
            }
            let [x, y, cz, w] = view.clip(p);
            let pos = DVec2::new(
                ((x / w + 1.0) * 0.5 * wf) as f64,
                ((1.0 - y / w) * 0.5 * hf) as f64,
            );
            Some(ScreenVertex {
                pos,
                fixed: [snap(pos.x), snap(pos.y)],
                key: (cz / w) as f64,
                w: w as f64,
                z: z as f64,
            })
        })
        .collect();
    let mut keys = vec![0.0f32; out.len()];
    for (id, tri) in mesh.triangles().iter().enumerate() {
        let [Some(v0), Some(v1), Some(v2)] = tri.map(|v| vertices[v as usize]) else {
            continue;
        };
        let area = edge_i(v0.fixed, v1.fixed, v2.fixed);
        if area == 0 {
            continue;
        }
        // Coverage on a positively oriented copy; barycentrics keep the mesh's vertex order.
        let oriented = if area > 0 { [v0, v1, v2] } else { [v0, v2, v1] };
        let edges = [(0, 1), (1, 2), (2, 0)].map(|(a, b)| (oriented[a].fixed, oriented[b].fixed));
        let top_left = edges.map(|(a, b)| is_top_left(a, b));
        let xs = [v0.fixed[0], v1.fixed[0], v2.fixed[0]];
        let ys = [v0.fixed[1], v1.fixed[1], v2.fixed[1]];
        let columns = pixel_span(xs, width);
        let rows = pixel_span(ys, height);
        let area_f = edge_f(v0.pos, v1.pos, v2.pos);
        for j in rows {
            for i in columns.clone() {
                let sample = [
                    (i << SUBPIXEL_BITS) + HALF_PIXEL,
                    (j << SUBPIXEL_BITS) + HALF_PIXEL,
                ];
                let inside = edges.iter().zip(top_left).all(|(&(a, b), tl)| {
                    let e = edge_i(a, b, sample);
                    e > 0 || (e == 0 && tl)
                });
                if !inside {
                    continue;
                }
                let p = DVec2::new(i as f64 + 0.5, j as f64 + 0.5);
                let l = [
                    edge_f(v1.pos, v2.pos, p) / area_f,
                    edge_f(v2.pos, v0.pos, p) / area_f,
                    edge_f(v0.pos, v1.pos, p) / area_f,
                ];
                let key = (l[0] * v0.key + l[1] * v1.key + l[2] * v2.key) as f32;
                let pixel = j as usize * width as usize + i as usize;
                if !(key > keys[pixel] && key <= 1.0) {
                    continue;
                }
                keys[pixel] = key;
                let q = [l[0] / v0.w, l[1] / v1.w, l[2] / v2.w];
                let sum = q[0] + q[1] + q[2];
                let b = q.map(|x| x / sum);
                out[pixel] = Fragment {
                    triangle: id as u32 + 1,
                    bary: [b[0] as f32, b[1] as f32],
                    depth: (b[0] * v0.z + b[1] * v1.z + b[2] * v2.z) as f32,
                };
            }
        }
    }
}

/// Gathers `features` (the per-vertex attributes of the mesh with `triangles`) through
/// `visibility`: the output at a visible pixel is the barycentric blend of its triangle's
/// three vertex features, 0 elsewhere.
pub(crate) fn resolve(
    triangles: &[[u32; 3]],
    visibility: &Visibility,
    features: &FeatureMap,
) -> Result<ViewFeatures> {
    let n = visibility.area();
    let nv = features.area();
    let c = features.channels() as usize;
    let src = features.data();
    let mut data = vec![0.0f32; visibility.views() * c * n];
    for (frags, out) in visibility.fragments().chunks(n).zip(data.chunks_mut(c * n)) {
        // Per pixel: the three vertex indices and weights, or None.
        let taps: Vec<Option<([usize; 3], [f32; 3])>> = frags
            .iter()
            .map(|f| {
                let tri = triangles.get(f.triangle_id()? as usize)?;
                Some((tri.map(|v| v as usize), f.weights()))
            })
            .collect();
        for (plane, dst) in src.chunks(nv).zip(out.chunks_mut(n)) {
            for (o, tap) in dst.iter_mut().zip(&taps) {
                if let Some((v, w)) = tap {
                    *o = w[0] * plane[v[0]] + w[1] * plane[v[1]] + w[2] * plane[v[2]];
                }
            }
        }
    }
    ViewFeatures::new(
        visibility.views(),
        features.channels(),
        visibility.height(),
        visibility.width(),
        data,
    )
}
