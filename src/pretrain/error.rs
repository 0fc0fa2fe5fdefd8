//! Why a base-model training run failed.

use std::path::PathBuf;

use crate::model::ModelError;
use crate::world::WorldError;

/// A failed base-model training run.
#[derive(Debug, thiserror::Error)]
pub enum PretrainError {
    /// A setting has a value training cannot use.
    #[error("invalid setting `{field}`: {reason}")]
    Setting {
        /// The setting at fault.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A file of the model or work folder could not be read or written.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The run was cancelled; its last checkpoint stays valid.
    #[error("cancelled")]
    Cancelled,
    /// A network failed to build, load or run.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The scheduler configuration could not be read.
    #[error(transparent)]
    Diffusion(#[from] crate::diffusion::DiffusionError),
    /// The procedural world failed to produce a batch.
    #[error(transparent)]
    World(#[from] WorldError),
    /// A tensor operation failed.
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
}

/// Results of base-model training.
pub type Result<T> = std::result::Result<T, PretrainError>;

impl PretrainError {
    /// A bad setting.
    pub fn setting(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Setting {
            field,
            reason: reason.into(),
        }
    }

    /// A file error.
    pub fn file(path: impl Into<PathBuf>, reason: impl std::fmt::Display) -> Self {
        Self::File {
            path: path.into(),
            reason: reason.to_string(),
        }
    }
}
