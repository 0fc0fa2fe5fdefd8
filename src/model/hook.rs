//! Feature hooks: named points inside the UNet where a caller can read the hidden states of a
//! layer and, if it wants, replace them (depth-aware feature rendering reads the anchor view's
//! features and writes rendered features into the other views; diagnostics record them).
//!
//! The UNet calls [`FeatureHook::on_features`] at every [`HookPoint`] during a forward pass, in
//! execution order. Every point hands the tensor over in one layout, `[batch·frames, channels,
//! height, width]` (frames folded into the batch, frame index fastest, the layout of the UNet's
//! own 2-D activations), so a hook can treat any layer's features as a batch of images.

use candle_core::Tensor;

use super::error::Result;

/// What kind of layer a hook point sits after.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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
