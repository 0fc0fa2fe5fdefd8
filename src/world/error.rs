//! Errors of the procedural world: every failure names the field, file or value at fault.

use std::path::PathBuf;

use crate::camera::CameraError;

/// Why a scene could not be sampled, built, rendered, written or read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WorldError {
    /// A camera could not be built (bad trajectory settings or a degenerate look-at).
    #[error(transparent)]
    Camera(#[from] CameraError),
    /// A setting or spec field holds a value outside its valid range.
    #[error("`{field}` = {value} is invalid: {reason}")]
    InvalidValue {
        /// The field at fault (dotted path, e.g. `objects[2].scale`).
        field: String,
        /// Its value, as text.
        value: String,
        /// What the value must satisfy.
        reason: &'static str,
    },
    /// A buffer whose length disagrees with its stated size.
    #[error("`{field}` has {found} elements, expected {expected}")]
    SizeMismatch {
        /// The buffer at fault.
        field: String,
        /// Elements expected.
        expected: usize,
        /// Elements found.
        found: usize,
    },
    /// A file-system operation failed.
    #[error("cannot {operation} `{path}`: {reason}")]
    Io {
        /// What was attempted (`create`, `write`, `read`, `rename`, …).
        operation: &'static str,
        /// The path at fault.
        path: PathBuf,
        /// What the operating system said.
        reason: String,
    },
    /// A clip folder that already exists (clips are written once, atomically).
    #[error("clip folder `{path}` already exists")]
    AlreadyExists {
        /// The folder.
        path: PathBuf,
    },
    /// An image that cannot be encoded or decoded, or has the wrong size or format.
    #[error("image `{path}`: {reason}")]
    Image {
        /// The image file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A RON manifest that cannot be written or parsed.
    #[error("manifest `{path}`: {reason}")]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A batch tensor that candle could not build.
    #[error("cannot build batch tensor `{name}`: {reason}")]
    Tensor {
        /// The tensor (`frames`, `depth`, `masks`, `images`).
        name: &'static str,
        /// What candle said.
        reason: String,
    },
}

/// Result type of the world module.
pub type Result<T> = std::result::Result<T, WorldError>;

/// An [`WorldError::InvalidValue`] for `field`.
pub(crate) fn invalid(
    field: impl Into<String>,
    value: impl std::fmt::Debug,
    reason: &'static str,
) -> WorldError {
    WorldError::InvalidValue {
        field: field.into(),
        value: format!("{value:?}"),
        reason,
    }
}

/// Checks that `value` is finite.
pub(crate) fn check_finite(field: impl Into<String>, value: f32) -> Result<f32> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(invalid(field, value, "must be finite"))
    }
}

/// Checks that `value` is finite and strictly positive.
pub(crate) fn check_positive(field: impl Into<String>, value: f32) -> Result<f32> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(invalid(field, value, "must be finite and > 0"))
    }
}

/// Checks that every component of a colour or vector is finite and non-negative.
pub(crate) fn check_non_negative3(
    field: impl Into<String>,
    value: glam::Vec3,
) -> Result<glam::Vec3> {
    if value.is_finite() && value.min_element() >= 0.0 {
        Ok(value)
    } else {
        Err(invalid(field, value, "components must be finite and >= 0"))
    }
}
