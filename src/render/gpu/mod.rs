//! The wgpu path: a visibility pass (render pipeline) and a resolve pass (compute pipeline),
//! compiled once per device. Shaders live in the crate's `shaders/` folder.

mod context;
mod raster;
mod resolve;

pub use context::GpuContext;
pub(crate) use resolve::GpuResolver;

use raster::VisibilityPass;
use resolve::ResolvePass;

use crate::render::error::Result;
use crate::render::mesh::AnchorMesh;
use crate::render::view::ViewTransform;

/// Both pipelines on one device.
#[derive(Debug)]
pub(crate) struct GpuPipelines {
    pub(crate) ctx: GpuContext,
    visibility: VisibilityPass,
    pub(crate) resolve: ResolvePass,
}

impl GpuPipelines {
    /// Compiles the pipelines on `ctx`.
    pub(crate) fn new(ctx: GpuContext) -> Result<Self> {
        let visibility = VisibilityPass::new(&ctx)?;
        let resolve = ResolvePass::new(&ctx)?;
        Ok(Self {
            ctx,
            visibility,
            resolve,
        })
    }

    /// Rasterises `mesh` into `views` and keeps the result on the GPU for resolves.
    pub(crate) fn rasterize(
        &self,
        mesh: &AnchorMesh,
        views: &[ViewTransform],
        width: u32,
        height: u32,
        chunk_bytes: Option<u64>,
    ) -> Result<GpuResolver> {
        let visibility = self.visibility.run(&self.ctx, mesh, views, width, height)?;
        Ok(GpuResolver::new(&self.ctx, visibility, chunk_bytes))
    }
}
