//! Errors of the method layer: every lower layer's error, plus bad requests.

use std::path::PathBuf;

use crate::camera::CameraError;
use crate::diffusion::DiffusionError;
use crate::model::ModelError;
use crate::render::RenderError;

/// Why a generation, a training run or a subject load failed.
#[derive(Debug, thiserror::Error)]
pub enum MvError {
    /// A field of a request has a value that cannot be used.
    #[error("invalid request: `{field}` {reason}")]
    InvalidRequest {
        /// The request field at fault.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The run was cancelled through its cancel token.
    #[error("cancelled")]
    Cancelled,
    /// A network failed to load or run.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The sampling loop or a scheduler failed.
    #[error(transparent)]
    Diffusion(DiffusionError),
    /// The feature renderer failed.
    #[error(transparent)]
    Render(#[from] RenderError),
    /// A camera was invalid.
    #[error(transparent)]
    Camera(#[from] CameraError),
    /// A subject definition or its files are unusable.
    #[error(transparent)]
    Subject(#[from] super::subject::SubjectError),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// The procedural world could not draw or render a scene (demo subjects, evaluation).
    #[error(transparent)]
    World(#[from] crate::world::WorldError),
}

impl From<DiffusionError> for MvError {
    fn from(error: DiffusionError) -> Self {
        if error.is_cancelled() {
            MvError::Cancelled
        } else {
            MvError::Diffusion(error)
        }
    }
}

impl MvError {
    /// A bad request field.
    pub fn request(field: &'static str, reason: impl Into<String>) -> Self {
        MvError::InvalidRequest {
            field,
            reason: reason.into(),
        }
    }

    /// Whether the run stopped because it was cancelled.
    pub fn is_cancelled(&self) -> bool {
        matches!(
            self,
            MvError::Cancelled | MvError::Model(ModelError::Cancelled)
        )
    }
}

/// Result type of the method layer.
pub type Result<T> = std::result::Result<T, MvError>;
