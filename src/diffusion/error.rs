//! Errors of the diffusion layer: every failure names the file, field, argument or timestep at
//! fault.

use std::path::PathBuf;

use crate::model::ModelError;

/// Everything that can go wrong while configuring a scheduler or running the sampling loop.
#[derive(Debug, thiserror::Error)]
pub enum DiffusionError {
    /// Reading a file failed, or a network called by the loop failed.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A configuration field holds a value this implementation does not support.
    #[error("unsupported value in {path}: field `{field}` = {value}")]
    UnsupportedConfig {
        /// The configuration file.
        path: PathBuf,
        /// The field at fault.
        field: String,
        /// The value found, as written.
        value: String,
    },
    /// A configuration field has the wrong type or an impossible value.
    #[error("invalid field `{field}` in {path}: {reason}")]
    InvalidConfig {
        /// The configuration file.
        path: PathBuf,
        /// The field at fault.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A timestep that the scheduler cannot use (not in its schedule, not an integer training
    /// step, or past the end of the schedule).
    #[error("{scheduler}: timestep {timestep} cannot be used: {reason}")]
    InvalidTimestep {
        /// The scheduler's diffusers class name.
        scheduler: &'static str,
        /// The timestep given.
        timestep: f64,
        /// Why it cannot be used.
        reason: String,
    },
    /// `step` was called before `set_timesteps`.
    #[error("{scheduler}: no inference schedule yet; call `set_timesteps` first")]
    TimestepsNotSet {
        /// The scheduler's diffusers class name.
        scheduler: &'static str,
    },
    /// An argument of a call has the wrong shape or value.
    #[error("invalid argument `{name}`: {reason}")]
    InvalidArgument {
        /// The argument at fault.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Sampling was stopped through its [`CancelToken`](super::CancelToken) (or a hook).
    #[error("cancelled")]
    Cancelled,
    /// Any other error raised by candle during computation.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl DiffusionError {
    /// Whether this error means the work was cancelled, by the loop's token or by a network
    /// that checked its own token ([`ModelError::Cancelled`]).
    pub fn is_cancelled(&self) -> bool {
        matches!(
            self,
            DiffusionError::Cancelled | DiffusionError::Model(ModelError::Cancelled)
        )
    }

    /// An [`DiffusionError::InvalidArgument`] for `name`.
    pub(crate) fn argument(name: &str, reason: impl Into<String>) -> Self {
        DiffusionError::InvalidArgument {
            name: name.to_string(),
            reason: reason.into(),
        }
    }
}

/// Result type of the diffusion layer.
pub type Result<T> = std::result::Result<T, DiffusionError>;
