//! Renderer settings: which backend rasterises, and the geometric thresholds of the mesh.

use serde::{Deserialize, Serialize};

use super::error::{RenderError, Result};

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
    /// A mesh triangle is dropped when its vertex depths differ by more than this fraction of
    /// the smallest one, `(max − min) / min > threshold`: such triangles straddle a depth
    /// discontinuity and would smear foreground into background. Must be > 0.
    pub discontinuity_threshold: f32,
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
            discontinuity_threshold: 0.1,
            near_plane: 1e-4,
            resolve_chunk_bytes: None,
        }
    }
}

impl RenderSettings {
    /// Checks every threshold is in range.
    pub fn validate(&self) -> Result<()> {
        if !(self.discontinuity_threshold.is_finite() && self.discontinuity_threshold > 0.0) {
            return Err(RenderError::InvalidSetting {
                field: "discontinuity_threshold",
                value: self.discontinuity_threshold.to_string(),
                reason: "must be finite and > 0",
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
