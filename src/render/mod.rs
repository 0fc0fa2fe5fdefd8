//! Depth-aware feature rendering: the anchor view lifted into a mesh that carries UNet feature
//! vectors, rasterised into every other view, returning rendered features, visibility masks and
//! depth.
//!
//! Geometry is rasterised once into a *visibility buffer* (per pixel: triangle id,
//! perspective-correct barycentrics, z-depth); features of any channel count are then gathered
//! from it by a compute pass, as often as they change (every denoising step and layer). The GPU
//! path runs on wgpu, either on the app's device ([`GpuContext::from_device`]) or a headless one
//! ([`GpuContext::headless`]); a CPU reference rasteriser is both the test oracle and the
//! fallback. Both follow the same conventions:
//! - The mesh: one vertex per feature cell, at the cell centre, unprojected with its depth
//!   ([`AnchorMesh`]); a target camera's intrinsics are scaled to the output grid.
//! - A triangle with a vertex at or in front of [`RenderSettings::near_plane`] is not drawn
//!   into that view; there is no back-face culling.
//! - Samples at pixel centres (i + ½, j + ½); coverage with vertices snapped to 1/256 pixel
//!   and the top-left fill rule (y down), so a pixel centre on an edge shared by two triangles
//!   belongs to exactly one, and one on the mesh's right or bottom boundary to none.
//! - Depth test on reversed depth (`near / z` for perspective views), nearer wins, the earlier
//!   triangle on ties.
//! - Rendered features are the barycentric blend of the triangle's three vertex features; zero
//!   where nothing is visible. The disocclusion mask is `1 −` the visibility mask.
//!
//! ```no_run
//! # use bevy_mvcustom::render::*;
//! # use bevy_mvcustom::camera::PinholeCamera;
//! # fn demo(anchor: PinholeCamera, targets: &[PinholeCamera], depth: Vec<f32>, feats: Vec<f32>) -> Result<()> {
//! let renderer = FeatureRenderer::new(RenderSettings::default())?;
//! let mesh = renderer.build_mesh(&DepthMap::new(64, 64, depth)?, &anchor)?;
//! let mut raster = renderer.rasterize(&mesh, targets, 64, 64)?; // once per geometry
//! let mask = raster.visibility().mask(); // [K, 64, 64]
//! let latent_mask = mask.complement().area_resize(32, 32)?; // disocclusion at another size
//! let rendered = raster.resolve(&FeatureMap::new(320, 64, 64, feats)?)?; // [K, 320, 64, 64]
//! # Ok(()) }
//! ```
//!
//! Nothing here depends on Bevy: the plugin hands over its `wgpu::Device` and `wgpu::Queue`.

mod cpu;
mod error;
mod gpu;
mod maps;
mod mesh;
mod renderer;
mod settings;
mod view;
mod visibility;

pub use error::{RenderError, Result};
pub use gpu::GpuContext;
pub use maps::{DepthMap, FeatureMap, ViewFeatures, ViewMaps, ViewStack};
pub use mesh::AnchorMesh;
pub use renderer::{FeatureRenderer, Rasterization};
pub use settings::{Backend, RenderSettings};
pub use visibility::{Fragment, Visibility};
