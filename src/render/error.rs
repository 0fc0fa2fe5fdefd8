//! Errors of the render layer: every failure names the input, field, index or value at fault.

use crate::camera::CameraError;

/// Why an anchor mesh could not be built, rasterised or resolved.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RenderError {
    /// No wgpu adapter exists for the requested backends (no GPU, no software Vulkan).
    #[error(
        "no GPU adapter found for backends {backends} ({reason}); install a Vulkan driver \
         (e.g. Mesa's lavapipe: mesa-vulkan-drivers) or select the CPU backend"
    )]
    NoAdapter {
        /// The backends that were searched.
        backends: String,
        /// What wgpu said.
        reason: String,
    },
    /// An adapter exists but refused to create a device.
    #[error("GPU adapter `{adapter}` could not create a device: {reason}")]
    RequestDevice {
        /// The adapter's name.
        adapter: String,
        /// What wgpu said.
        reason: String,
    },
    /// A GPU operation failed (validation, out of memory, lost device, failed readback).
    #[error("GPU operation `{operation}` failed: {reason}")]
    Gpu {
        /// The operation that failed.
        operation: &'static str,
        /// What wgpu said.
        reason: String,
    },
    /// A value that must be finite is NaN or infinite.
    #[error("`{field}`[{index}] is not finite: {value}")]
    NotFinite {
        /// The buffer at fault.
        field: &'static str,
        /// Row-major index of the value.
        index: usize,
        /// The value.
        value: f32,
    },
    /// A value that must be strictly positive is not.
    #[error("`{field}`[{index}] must be > 0, got {value}")]
    NotPositive {
        /// The buffer at fault.
        field: &'static str,
        /// Row-major index of the value.
        index: usize,
        /// The value.
        value: f32,
    },
    /// A buffer whose length disagrees with its stated shape.
    #[error("`{field}` has {found} elements, its shape {shape:?} needs {expected}")]
    SizeMismatch {
        /// The buffer at fault.
        field: &'static str,
        /// The stated shape.
        shape: Vec<usize>,
        /// Elements the shape needs.
        expected: usize,
        /// Elements found.
        found: usize,
    },
    /// Two inputs that must share a grid do not.
    #[error("`{field}` is {found:?} (height, width) but the anchor mesh grid is {expected:?}")]
    GridMismatch {
        /// The input at fault.
        field: &'static str,
        /// The mesh grid (height, width).
        expected: (u32, u32),
        /// The input's grid (height, width).
        found: (u32, u32),
    },
    /// A size or count that must be non-zero is zero.
    #[error("`{field}` must not be zero/empty")]
    Empty {
        /// The size, count or list at fault.
        field: &'static str,
    },
    /// A renderer setting out of its valid range.
    #[error("render setting `{field}` = {value} is invalid: {reason}")]
    InvalidSetting {
        /// The setting at fault.
        field: &'static str,
        /// Its value, as text.
        value: String,
        /// The valid range.
        reason: &'static str,
    },
    /// A target camera that cannot be rasterised into (projections overflow).
    #[error("target view {view} is degenerate: {reason}")]
    DegenerateView {
        /// Index of the target camera.
        view: usize,
        /// What is degenerate.
        reason: String,
    },
    /// A request larger than the device (or the index types) can hold.
    #[error("{what} needs {needed}, the limit is {limit}")]
    TooLarge {
        /// What is too large.
        what: &'static str,
        /// The amount needed.
        needed: u64,
        /// The limit.
        limit: u64,
    },
    /// A camera could not be derived (e.g. resized to the output grid).
    #[error(transparent)]
    Camera(#[from] CameraError),
}

/// Result type of the render layer.
pub type Result<T> = std::result::Result<T, RenderError>;
