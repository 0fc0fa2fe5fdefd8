//! Depth-aware feature rendering (method.md, DFR): during the first part of sampling, the
//! features of chosen UNet layers in every non-anchor view n are replaced where the anchor
//! view is visible,
//!
//! `F̂_n = M_n ⊙ F_n^a + (1 − M_n) ⊙ F_n`,
//!
//! with `F_n^a` the anchor view's features at that layer rendered into view n through the
//! anchor feature mesh and `M_n` its visibility mask. The geometry ([`AnchorGeometry`]) is
//! rasterised once per feature grid before sampling; each step and layer only resolves the
//! anchor's current features through it.

mod geometry;

use std::collections::HashMap;
use std::time::Duration;
use std::time::Instant;

use candle_core::{DType, Tensor};

pub use geometry::{AnchorGeometry, GridGeometry};

use super::request::view_maps;
use super::text_to_video::StepFeatureHook;
use crate::diffusion::StepInfo;
use crate::model::ModelError;
use crate::model::hook::{FeatureHook, HookPoint, HookSite};
use crate::render::ViewMaps;

/// The [`StepFeatureHook`] that applies depth-aware feature rendering.
///
/// With classifier-free guidance the UNet batch is `[uncond; text]`: each half's anchor
/// features are rendered into that half's views, so both predictions see their own anchor.
#[derive(Debug)]
pub struct DfrHook {
    geometry: AnchorGeometry,
    /// Selected hook-point names and the (height, width) of their features.
    layers: HashMap<String, (usize, usize)>,
    step_fraction: f64,
    active: bool,
    resolve_time: Duration,
}

impl DfrHook {
    /// Replaces features at `layers` (sites of the UNet, each with a grid `geometry` was
    /// built for, given the latent grid `latent`) while `step.progress() < step_fraction`.
    /// Fails when a layer's grid has no geometry.
    pub fn new(
        geometry: AnchorGeometry,
        layers: &[&HookSite],
        latent: (usize, usize),
        step_fraction: f64,
    ) -> super::Result<Self> {
        let mut selected = HashMap::new();
        for site in layers {
            let grid = site.grid(latent);
            if geometry.grid(grid).is_none() {
                return Err(super::MvError::request(
                    "techniques.dfr.layers",
                    format!(
                        "layer `{}` works at {grid:?}, which has no geometry",
                        site.name
                    ),
                ));
            }
            selected.insert(site.name.clone(), grid);
        }
        Ok(Self {
            geometry,
            layers: selected,
            step_fraction,
            active: false,
            resolve_time: Duration::ZERO,
        })
    }

    /// Wall-clock time spent rendering and blending features so far.
    pub fn resolve_time(&self) -> Duration {
        self.resolve_time
    }

    /// The geometry the hook renders through.
    pub fn geometry(&self) -> &AnchorGeometry {
        &self.geometry
    }

    /// The visibility masks M of every view at each grid of the replaced layers, finest
    /// first: 1 where the view sees the anchor mesh, 0 elsewhere and in the anchor view.
    pub fn visibility_maps(&self) -> super::Result<Vec<ViewMaps>> {
        let mut grids: Vec<(usize, usize)> = self.layers.values().copied().collect();
        grids.sort_unstable_by(|a, b| (b.0 * b.1).cmp(&(a.0 * a.1)).then(b.cmp(a)));
        grids.dedup();
        grids
            .into_iter()
            .filter_map(|grid| self.geometry.grid(grid))
            .map(|g| view_maps(g.visibility()))
            .collect()
    }

    /// `[B·F, C, h, w]` features with every half's non-anchor views replaced by rendered
    /// features where visible.
    fn replace(&mut self, point: &HookPoint<'_>, features: &Tensor) -> super::Result<Tensor> {
        let views = self.geometry.views();
        let (n, _, h, w) = features.dims4()?;
        if point.frames != views || n % views != 0 {
            return Err(super::MvError::request(
                "features",
                format!(
                    "{n} images of {} frames at `{}`, the geometry has {views} views",
                    point.frames, point.name
                ),
            ));
        }
        let grid = (h, w);
        let expected = self.layers.get(point.name).copied();
        let visibility = match expected.and_then(|e| self.geometry.grid(e)) {
            Some(g) if expected == Some(grid) => g.visibility().to_device(features.device())?,
            _ => {
                return Err(super::MvError::request(
                    "features",
                    format!(
                        "`{}` features are {h}×{w}, expected {:?} (height, width)",
                        point.name, expected
                    ),
                ));
            }
        };
        let hidden = visibility.affine(-1.0, 1.0)?;
        let features32 = features.to_dtype(DType::F32)?;
        let anchor = self.geometry.anchor();
        let mut halves = Vec::with_capacity(n / views);
        for b in 0..n / views {
            let own = features32.narrow(0, b * views, views)?;
            let rendered = self.geometry.render(grid, &own.get(anchor)?)?;
            let blended = (rendered.broadcast_mul(&visibility)? + own.broadcast_mul(&hidden)?)?;
            halves.push(blended);
        }
        Ok(Tensor::cat(&halves, 0)?.to_dtype(features.dtype())?)
    }
}

impl FeatureHook for DfrHook {
    fn wants(&self, point: &HookPoint<'_>) -> bool {
        self.active && self.layers.contains_key(point.name)
    }

    fn on_features(
        &mut self,
        point: &HookPoint<'_>,
        features: &Tensor,
    ) -> crate::model::Result<Option<Tensor>> {
        if !self.wants(point) {
            return Ok(None);
        }
        let started = Instant::now();
        let replaced = self
            .replace(point, features)
            .map_err(|e| ModelError::InvalidInput {
                name: format!("depth-aware feature rendering at `{}`", point.name),
                reason: e.to_string(),
            })?;
        self.resolve_time += started.elapsed();
        Ok(Some(replaced))
    }
}

impl StepFeatureHook for DfrHook {
    fn begin_step(&mut self, step: &StepInfo) {
        self.active = step.progress() < self.step_fraction;
    }
}

#[cfg(test)]
mod tests;
