//! Feature hooks: named points inside the UNet where a caller can read the hidden states of a
//! layer and, if it wants, replace them (depth-aware feature rendering reads the anchor view's
//! features and writes rendered features into the other views; diagnostics record them).
//!
//! The UNet calls [`FeatureHook::on_features`] at every [`HookPoint`] during a forward pass, in
//! execution order. Every point hands the tensor over in one layout, `[batch·frames, channels,
//! height, width]` (frames folded into the batch, frame index fastest, the layout of the UNet's
//! own 2-D activations), so a hook can treat any layer's features as a batch of images.

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use super::error::Result;

/// What kind of layer a hook point sits after.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HookKind {
    /// Inside a spatial transformer block, after self-attention and text cross-attention
    /// (their residuals added) and before the feed-forward. The point is named
    /// `<block>.attn2`, e.g. `up_blocks.1.attentions.0.transformer_blocks.0.attn2`.
    SpatialCrossAttention,
    /// The output of a spatial transformer block (`BasicTransformerBlock`), e.g.
    /// `down_blocks.1.attentions.0.transformer_blocks.0`.
    SpatialBlock,
    /// The output of an AnimateDiff motion module (its residual added), e.g.
    /// `down_blocks.1.motion_modules.0`.
    MotionModule,
}

/// One place in the network where hooks are called.
#[derive(Clone, Copy, Debug)]
pub struct HookPoint<'a> {
    /// The layer's stable name, the diffusers module path of the layer in `UNetMotionModel`
    /// (which equals the `UNet2DConditionModel` path for the spatial layers).
    pub name: &'a str,
    /// What the layer is.
    pub kind: HookKind,
    /// Frames per batch item (1 for a plain 2-D UNet); the tensor's first dimension is
    /// `batch · frames` with the frame index fastest.
    pub frames: usize,
}

/// The path of the UNet a layer belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum UNetPath {
    /// `down_blocks.*`: the encoder half.
    Down,
    /// `mid_block`: the bottleneck.
    Mid,
    /// `up_blocks.*`: the decoder half.
    Up,
}

/// A hook point together with where it sits in the network: its path and resolution level,
/// so that callers can choose layers by position ("the up path's two coarsest levels") rather
/// than by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookSite {
    /// The hook point's name (see [`HookPoint::name`]).
    pub name: String,
    /// What the layer is.
    pub kind: HookKind,
    /// The path the layer is on.
    pub path: UNetPath,
    /// How many 2× downsamplings separate the layer's features from the latent grid: 0 at
    /// latent resolution; for SD-1.5 at 64² latents, levels 0–3 are 64², 32², 16² and 8².
    pub level: usize,
}

impl HookSite {
    /// The `(height, width)` of this layer's features for a latent grid of `latent`: each
    /// level halves the sides, rounding up as the UNet's stride-2 downsamplers do.
    pub fn grid(&self, latent: (usize, usize)) -> (usize, usize) {
        (0..self.level).fold(latent, |(h, w), _| (h.div_ceil(2), w.div_ceil(2)))
    }
}

/// Which resolution levels a [`LayerSelection`] takes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LevelSelection {
    /// The `n` coarsest levels among the hook sites of the selected kinds and paths (fewer
    /// when the network has fewer such levels).
    Coarsest(usize),
    /// Exactly these levels (see [`HookSite::level`]).
    Levels(Vec<usize>),
}

/// A choice of hook sites by kind, path and resolution level, e.g. "the spatial transformer
/// block outputs of the up path at its two coarsest levels". It adapts to any UNet layout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerSelection {
    /// The kinds of layer to take.
    pub kinds: Vec<HookKind>,
    /// The paths to take them from.
    pub paths: Vec<UNetPath>,
    /// The resolution levels to take them at.
    pub levels: LevelSelection,
}

impl LayerSelection {
    /// The sites of `sites` (a network's [`HookSite`]s) this selection takes, in order.
    pub fn select<'a>(&self, sites: &'a [HookSite]) -> Vec<&'a HookSite> {
        let candidates: Vec<&HookSite> = sites
            .iter()
            .filter(|s| self.kinds.contains(&s.kind) && self.paths.contains(&s.path))
            .collect();
        let levels: Vec<usize> = match &self.levels {
            LevelSelection::Levels(levels) => levels.clone(),
            LevelSelection::Coarsest(n) => {
                let mut levels: Vec<usize> = candidates.iter().map(|s| s.level).collect();
                levels.sort_unstable_by(|a, b| b.cmp(a));
                levels.dedup();
                levels.truncate(*n);
                levels
            }
        };
        candidates
            .into_iter()
            .filter(|s| levels.contains(&s.level))
            .collect()
    }
}

/// A caller-supplied observer / editor of intermediate features.
///
/// Implementations must return either `None` (keep the features) or a tensor of exactly the
/// shape, dtype and device they were given; anything else is rejected with
/// [`ModelError::InvalidInput`](super::ModelError::InvalidInput).
pub trait FeatureHook {
    /// Whether this hook wants to see `point`. Points it declines cost nothing (no layout
    /// conversion). The default sees every point.
    fn wants(&self, point: &HookPoint<'_>) -> bool {
        let _ = point;
        true
    }

    /// Called with the features at `point`, `[batch·frames, channels, height, width]`. Return
    /// `Some(replacement)` to make the network continue from `replacement` instead.
    fn on_features(&mut self, point: &HookPoint<'_>, features: &Tensor) -> Result<Option<Tensor>>;
}

/// The hook that does nothing: what a forward pass without hooks runs with.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoHook;

impl FeatureHook for NoHook {
    fn wants(&self, _point: &HookPoint<'_>) -> bool {
        false
    }

    fn on_features(
        &mut self,
        _point: &HookPoint<'_>,
        _features: &Tensor,
    ) -> Result<Option<Tensor>> {
        Ok(None)
    }
}

/// Runs `hook` at `point` on features held in some internal layout: `to_nchw` converts them to
/// the hook layout, `from_nchw` converts a replacement back. Checks that a replacement has the
/// shape, dtype and device of the original.
pub(crate) fn apply(
    hook: &mut dyn FeatureHook,
    point: &HookPoint<'_>,
    features: Tensor,
    to_nchw: impl FnOnce(&Tensor) -> candle_core::Result<Tensor>,
    from_nchw: impl FnOnce(&Tensor) -> candle_core::Result<Tensor>,
) -> Result<Tensor> {
    if !hook.wants(point) {
        return Ok(features);
    }
    let nchw = to_nchw(&features)?;
    match hook.on_features(point, &nchw)? {
        None => Ok(features),
        Some(replacement) => {
            if replacement.dims() != nchw.dims()
                || replacement.dtype() != nchw.dtype()
                || !replacement.device().same_device(nchw.device())
            {
                return Err(super::ModelError::InvalidInput {
                    name: format!("hook replacement at `{}`", point.name),
                    reason: format!(
                        "expected {:?} {:?} on {:?}, got {:?} {:?} on {:?}",
                        nchw.dims(),
                        nchw.dtype(),
                        nchw.device().location(),
                        replacement.dims(),
                        replacement.dtype(),
                        replacement.device().location()
                    ),
                });
            }
            Ok(from_nchw(&replacement)?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(name: &str, kind: HookKind, path: UNetPath, level: usize) -> HookSite {
        HookSite {
            name: name.into(),
            kind,
            path,
            level,
        }
    }

    /// The sites of an SD-1.5-like layout: transformers at levels 0–2 of the down and up
    /// paths, the mid block at level 3, motion modules everywhere.
    fn sd15_like() -> Vec<HookSite> {
        use HookKind::*;
        use UNetPath::*;
        let mut sites = Vec::new();
        for (i, level) in [(0, 0), (1, 1), (2, 2)] {
            let name = format!("down_blocks.{i}.attentions.0.transformer_blocks.0");
            sites.push(site(&name, SpatialBlock, Down, level));
        }
        sites.push(site(
            "mid_block.attentions.0.transformer_blocks.0",
            SpatialBlock,
            Mid,
            3,
        ));
        sites.push(site("up_blocks.0.motion_modules.0", MotionModule, Up, 3));
        for (i, level) in [(1, 2), (2, 1), (3, 0)] {
            for j in 0..3 {
                let name = format!("up_blocks.{i}.attentions.{j}.transformer_blocks.0");
                sites.push(site(&name, SpatialBlock, Up, level));
            }
        }
        sites
    }

    #[test]
    fn coarsest_levels_are_counted_among_matching_sites() {
        let sites = sd15_like();
        let selection = LayerSelection {
            kinds: vec![HookKind::SpatialBlock],
            paths: vec![UNetPath::Up],
            levels: LevelSelection::Coarsest(2),
        };
        let names: Vec<&str> = selection
            .select(&sites)
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        // Level 3 of the up path has only a motion module: the two coarsest transformer levels
        // are 2 and 1.
        assert_eq!(names.len(), 6);
        assert!(
            names
                .iter()
                .all(|n| n.starts_with("up_blocks.1") || n.starts_with("up_blocks.2"))
        );
        // More levels than exist: all of them.
        let all = LayerSelection {
            levels: LevelSelection::Coarsest(10),
            ..selection.clone()
        };
        assert_eq!(all.select(&sites).len(), 9);
    }

    #[test]
    fn explicit_levels_kinds_and_paths_filter() {
        let sites = sd15_like();
        let selection = LayerSelection {
            kinds: vec![HookKind::SpatialBlock, HookKind::MotionModule],
            paths: vec![UNetPath::Mid, UNetPath::Up],
            levels: LevelSelection::Levels(vec![3]),
        };
        let names: Vec<&str> = selection
            .select(&sites)
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "mid_block.attentions.0.transformer_blocks.0",
                "up_blocks.0.motion_modules.0"
            ]
        );
    }

    #[test]
    fn grids_halve_rounding_up() {
        let s = site("x", HookKind::SpatialBlock, UNetPath::Down, 2);
        assert_eq!(s.grid((64, 40)), (16, 10));
        assert_eq!(s.grid((10, 7)), (3, 2));
    }
}
