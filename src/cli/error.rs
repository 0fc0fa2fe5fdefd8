//! The CLI's error: every failure names the argument or the file at fault and maps to an exit
//! status, so the binary can print one line and exit.

use std::path::PathBuf;

use crate::camera::CameraError;
use crate::diffusion::DiffusionError;
use crate::model::ModelError;
use crate::mvcustom::MvError;
use crate::render::RenderError;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A command-line argument has a value that cannot be used.
    #[error("{flag} {reason}")]
    Argument {
        /// The argument, as typed (`--orbit`, `--model`…).
        flag: &'static str,
        /// What is wrong with its value.
        reason: String,
    },
    /// The pipeline rejected the value an argument set (too many views for the model, a
    /// size it cannot divide…).
    #[error("{flag}: {reason}")]
    Rejected {
        /// The argument that set the value.
        flag: &'static str,
        /// Why the pipeline rejected it.
        reason: String,
    },
    /// A file or folder could not be read, parsed or written.
    #[error("{}: {reason}", path.display())]
    File {
        /// The file or folder.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A camera file could not be parsed (the message names file and line).
    #[error(transparent)]
    Camera(#[from] CameraError),
    /// Generation failed (its message names the request field, file or tensor).
    #[error(transparent)]
    Mv(#[from] MvError),
    /// A network failed to load or run.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A scheduler configuration or the sampling loop failed.
    #[error(transparent)]
    Diffusion(#[from] DiffusionError),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Result type of the CLI.
pub type Result<T> = std::result::Result<T, CliError>;

/// Exit status of a run that failed on its arguments (the status clap uses too).
pub const EXIT_USAGE: u8 = 2;
/// Exit status of a run that failed while working (a file, a model, a generation).
pub const EXIT_FAILURE: u8 = 1;

impl CliError {
    /// A bad value of the argument `flag`.
    pub fn argument(flag: &'static str, reason: impl Into<String>) -> Self {
        CliError::Argument {
            flag,
            reason: reason.into(),
        }
    }

    /// A failure on the file or folder `path`.
    pub fn file(path: impl Into<PathBuf>, reason: impl ToString) -> Self {
        CliError::File {
            path: path.into(),
            reason: reason.to_string(),
        }
    }

    /// A camera that could not be built from the argument `flag`.
    pub fn camera(flag: &'static str, error: CameraError) -> Self {
        Self::argument(flag, format!("gives an invalid camera: {error}"))
    }

    /// A depth map that could not be built from the file `path`.
    pub fn render(path: impl Into<PathBuf>, error: RenderError) -> Self {
        Self::file(path, error)
    }

    /// The process exit status for this error: [`EXIT_USAGE`] for bad arguments,
    /// [`EXIT_FAILURE`] otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Argument { .. } | CliError::Rejected { .. } => EXIT_USAGE,
            _ => EXIT_FAILURE,
        }
    }

    /// The message on a single line (nested causes may contain line breaks).
    pub fn one_line(&self) -> String {
        self.to_string()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ")
    }
}
