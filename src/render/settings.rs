//! Renderer settings: which backend rasterises, and the geometric thresholds of the mesh.

use serde::{Deserialize, Serialize};

use super::error::{RenderError, Result};
use super::mesh::AnchorMesh;

/// Where rasterisation and feature resolve run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Backend {
    /// A hardware GPU when there is one (the app's device, else a headless one), else the CPU
    /// reference path. A software adapter (lavapipe, llvmpipe, WARP) counts as none: on the
    /// same cores the CPU path is faster (see the `feature_mesh` benchmark).
    #[default]
    Auto,
    /// The GPU only, software adapters included: no adapter is an error.
    Gpu,
    /// The CPU reference rasteriser (no GPU needed; slower).
    Cpu,
}

/// Settings of the anchor feature mesh and its renderer.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RenderSettings {
    /// Where rasterisation and resolve run.
    pub backend: Backend,
    /// A mesh triangle seen more edge-on than this angle (degrees between its normal and the
    /// viewing ray) is dropped: lifted into a mesh, an occlusion edge becomes a wall of
    /// triangles almost parallel to the rays, which would smear foreground into background,
    /// while a floor seen at a slant stays below the limit at every grid resolution. In
    /// (0, 90).
    pub max_surface_angle_deg: f32,
    /// Near plane, in camera z-depth (world units): triangles with a vertex at or in front of
    /// it are not drawn into that view. Must be > 0.
    pub near_plane: f32,
    /// Upper bound, in bytes, of the GPU buffer the resolve writes in one dispatch; larger
    /// outputs are produced in chunks. `None`: the device's storage-buffer binding limit.
    pub resolve_chunk_bytes: Option<u64>,
}

impl Default for RenderSettings {
    fn default() -> Self {
        Self {
            backend: Backend::Auto,
            max_surface_angle_deg: 80.0,
            near_plane: 1e-4,
            resolve_chunk_bytes: None,
        }
    }
}

impl RenderSettings {
    /// Checks every threshold is in range.
    pub fn validate(&self) -> Result<()> {
        if !AnchorMesh::is_valid_surface_angle(self.max_surface_angle_deg) {
            return Err(RenderError::InvalidSetting {
                field: "max_surface_angle_deg",
                value: self.max_surface_angle_deg.to_string(),
                reason: "must be an angle in (0, 90) degrees",
            });
        }
        if !(self.near_plane.is_finite() && self.near_plane > 0.0) {
            return Err(RenderError::InvalidSetting {
                field: "near_plane",
                value: self.near_plane.to_string(),
                reason: "must be finite and > 0",
            });
        }
        if let Some(bytes) = self.resolve_chunk_bytes
            && bytes < 4
        {
            return Err(RenderError::InvalidSetting {
                field: "resolve_chunk_bytes",
                value: bytes.to_string(),
                reason: "must hold at least one f32",
            });
        }
        Ok(())
    }
}
