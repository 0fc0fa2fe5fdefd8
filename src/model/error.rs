//! Errors of the model layer: every failure names the file, tensor, field or value at fault.

use std::path::PathBuf;

/// Everything that can go wrong while loading or running a network.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A file the model needs is not there (config, weights, vocabulary…).
    #[error("missing file {path}")]
    MissingFile {
        /// The path that was looked for.
        path: PathBuf,
    },
    /// A file exists but could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file being read.
        path: PathBuf,
        /// The operating-system error.
        source: std::io::Error,
    },
    /// A JSON configuration (or tokenizer file) is malformed.
    #[error("cannot parse {path}: {source}")]
    ConfigParse {
        /// The file being parsed.
        path: PathBuf,
        /// What the parser said, with line and column.
        source: serde_json::Error,
    },
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
    /// A tensor the architecture needs is absent from the weight files.
    #[error("tensor `{tensor}` not found in {}", display_paths(files))]
    MissingTensor {
        /// The checkpoint name of the tensor.
        tensor: String,
        /// The weight files searched.
        files: Vec<PathBuf>,
    },
    /// A tensor exists but its shape disagrees with the configuration.
    #[error(
        "tensor `{tensor}` in {} has shape {found:?}, the config implies {expected:?}",
        display_paths(files)
    )]
    ShapeMismatch {
        /// The checkpoint name of the tensor.
        tensor: String,
        /// The weight files searched.
        files: Vec<PathBuf>,
        /// Shape implied by the configuration.
        expected: Vec<usize>,
        /// Shape stored in the file.
        found: Vec<usize>,
    },
    /// An input to a forward pass has the wrong shape or value.
    #[error("invalid input `{name}`: {reason}")]
    InvalidInput {
        /// The argument at fault.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A computation was cancelled through its cancel token.
    #[error("cancelled")]
    Cancelled,
    /// Any other error raised by candle during computation.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

fn display_paths(files: &[PathBuf]) -> String {
    files
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Result type of the model layer.
pub type Result<T> = std::result::Result<T, ModelError>;

impl ModelError {
    /// Re-expresses a candle error raised while building a network from `files` so that a
    /// missing tensor or a shape mismatch names the tensor and the files; other errors pass
    /// through unchanged.
    pub fn from_weights(error: candle_core::Error, files: &[PathBuf]) -> Self {
        match innermost(error) {
            candle_core::Error::CannotFindTensor { path } => ModelError::MissingTensor {
                tensor: path,
                files: files.to_vec(),
            },
            candle_core::Error::UnexpectedShape { msg, expected, got } => {
                ModelError::ShapeMismatch {
                    tensor: msg
                        .strip_prefix("shape mismatch for ")
                        .unwrap_or(&msg)
                        .to_string(),
                    files: files.to_vec(),
                    expected: expected.dims().to_vec(),
                    found: got.dims().to_vec(),
                }
            }
            other => ModelError::Candle(other),
        }
    }
}

/// Strips candle's backtrace and path wrappers to reach the error that was raised.
fn innermost(error: candle_core::Error) -> candle_core::Error {
    match error {
        candle_core::Error::WithBacktrace { inner, .. }
        | candle_core::Error::WithPath { inner, .. }
        | candle_core::Error::Context { inner, .. } => innermost(*inner),
        other => other,
    }
}
