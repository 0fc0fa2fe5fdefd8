//! The renderer front end: picks the backend, builds meshes, rasterises them once into the
//! target views and resolves features through the result as often as they change.

use std::sync::Arc;

use super::cpu;
use super::error::{RenderError, Result};
use super::gpu::{GpuContext, GpuPipelines, GpuResolver};
use super::maps::{DepthMap, FeatureMap, ViewFeatures};
use super::mesh::AnchorMesh;
use super::settings::{Backend, RenderSettings};
use super::view::ViewTransform;
use super::visibility::Visibility;
use crate::camera::PinholeCamera;

/// Renders anchor feature meshes into target views, on the GPU or the CPU per
/// [`RenderSettings::backend`].
#[derive(Debug)]
pub struct FeatureRenderer {
    settings: RenderSettings,
    gpu: Option<Arc<GpuPipelines>>,
}

impl FeatureRenderer {
    /// A renderer on its own headless device (CLI, tests, benches). `Auto` falls back to the
    /// CPU when no hardware adapter or device is available; `Gpu` returns that error instead.
    pub fn new(settings: RenderSettings) -> Result<Self> {
        settings.validate()?;
        let ctx = match settings.backend {
            Backend::Cpu => None,
            Backend::Gpu => Some(GpuContext::headless()?),
            Backend::Auto => match GpuContext::headless() {
                Ok(ctx) => Some(ctx),
                Err(RenderError::NoAdapter { .. } | RenderError::RequestDevice { .. }) => None,
                Err(e) => return Err(e),
            },
        };
        Self::build(settings, ctx)
    }

    /// A renderer on an existing device, e.g. the Bevy app's. `Backend::Cpu` ignores it, and
    /// so does `Auto` when it is a software rasteriser.
    pub fn with_context(settings: RenderSettings, ctx: GpuContext) -> Result<Self> {
        settings.validate()?;
        Self::build(settings, Some(ctx))
    }

    /// Compiles the GPU pipelines when there is a device the backend setting accepts.
    fn build(settings: RenderSettings, ctx: Option<GpuContext>) -> Result<Self> {
        let ctx = ctx.filter(|ctx| match settings.backend {
            Backend::Cpu => false,
            Backend::Gpu => true,
            Backend::Auto => !ctx.is_software(),
        });
        let gpu = ctx.map(GpuPipelines::new).transpose()?.map(Arc::new);
        Ok(Self { settings, gpu })
    }

    /// The settings in force.
    pub fn settings(&self) -> &RenderSettings {
        &self.settings
    }

    /// Whether rasterisation and resolve run on a GPU (else on the CPU reference).
    pub fn uses_gpu(&self) -> bool {
        self.gpu.is_some()
    }

    /// What runs the work: the adapter and graphics API, or "CPU reference rasteriser".
    pub fn describe(&self) -> String {
        self.gpu.as_ref().map_or_else(
            || "CPU reference rasteriser".to_owned(),
            |g| g.ctx.describe(),
        )
    }

    /// Lifts the anchor view's depth map into a mesh with this renderer's surface-angle limit
    /// (see [`AnchorMesh::build`]).
    pub fn build_mesh(&self, depth: &DepthMap, anchor: &PinholeCamera) -> Result<AnchorMesh> {
        AnchorMesh::build(depth, anchor, self.settings.max_surface_angle_deg)
    }

    /// Rasterises `mesh` into every camera of `targets` at a `width × height` output grid
    /// (each camera's intrinsics scaled to that grid): the geometry step, done once; features
    /// are then gathered with [`Rasterization::resolve`].
    pub fn rasterize(
        &self,
        mesh: &AnchorMesh,
        targets: &[PinholeCamera],
        width: u32,
        height: u32,
    ) -> Result<Rasterization> {
        if targets.is_empty() {
            return Err(RenderError::Empty {
                field: "target cameras",
            });
        }
        if width == 0 {
            return Err(RenderError::Empty {
                field: "output width",
            });
        }
        if height == 0 {
            return Err(RenderError::Empty {
                field: "output height",
            });
        }
        let views = targets
            .iter()
            .enumerate()
            .map(|(k, cam)| {
                ViewTransform::new(
                    k,
                    cam,
                    width,
                    height,
                    self.settings.near_plane,
                    mesh.positions(),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let engine = match &self.gpu {
            Some(gpu) => Engine::Gpu {
                resolver: Box::new(gpu.rasterize(
                    mesh,
                    &views,
                    width,
                    height,
                    self.settings.resolve_chunk_bytes,
                )?),
                pipelines: Arc::clone(gpu),
            },
            None => Engine::Cpu {
                visibility: cpu::rasterize(mesh, &views, width, height),
            },
        };
        Ok(Rasterization {
            grid: (mesh.height(), mesh.width()),
            triangles: mesh.triangles().to_vec(),
            engine,
        })
    }
}

/// Where a rasterisation's visibility buffer lives.
#[derive(Debug)]
enum Engine {
    /// On the CPU.
    Cpu { visibility: Visibility },
    /// On the GPU, with a CPU copy.
    Gpu {
        pipelines: Arc<GpuPipelines>,
        resolver: Box<GpuResolver>,
    },
}

/// A mesh rasterised into K target views: the visibility buffer (masks, depth) and whatever
/// the backend keeps to gather features again cheaply.
#[derive(Debug)]
pub struct Rasterization {
    /// The mesh grid, (height, width).
    grid: (u32, u32),
    /// The mesh's triangles (vertex indices).
    triangles: Vec<[u32; 3]>,
    engine: Engine,
}

impl Rasterization {
    /// The visibility buffer: [`Visibility::mask`], [`Visibility::disocclusion`],
    /// [`Visibility::depth`].
    pub fn visibility(&self) -> &Visibility {
        match &self.engine {
            Engine::Cpu { visibility } => visibility,
            Engine::Gpu { resolver, .. } => resolver.visibility(),
        }
    }

    /// Renders `features` (the anchor's `[C, h, w]` map on the mesh grid, any C ≥ 1) into every
    /// view: `[K, C, height, width]`, zero where the mesh is not visible. Re-run each
    /// denoising step and layer; the geometry is not rasterised again.
    pub fn resolve(&mut self, features: &FeatureMap) -> Result<ViewFeatures> {
        let found = (features.height(), features.width());
        if found != self.grid {
            return Err(RenderError::GridMismatch {
                field: "features",
                expected: self.grid,
                found,
            });
        }
        match &mut self.engine {
            Engine::Cpu { visibility } => cpu::resolve(&self.triangles, visibility, features),
            Engine::Gpu {
                pipelines,
                resolver,
            } => resolver.resolve(&pipelines.ctx, &pipelines.resolve, features),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plugin drives rendering from async task threads: everything must cross threads.
    #[test]
    fn renderer_and_rasterisation_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<FeatureRenderer>();
        check::<Rasterization>();
        check::<GpuContext>();
    }
}
