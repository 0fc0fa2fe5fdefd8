//! RON files a user writes (subject definitions, model configurations): one error type that
//! names the file and the line, column or field at fault, and the reading and parsing every
//! such file goes through. Each file type adds its own validation on top.

use std::fmt::Display;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// Why a RON file, or a file it names, could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum RonFileError {
    /// A file could not be read.
    #[error("cannot read {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The RON is malformed.
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        /// The RON file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the parser said.
        message: String,
    },
    /// A field holds an unusable value.
    #[error("{path}: `{field}` {reason}")]
    Invalid {
        /// The RON file.
        path: PathBuf,
        /// The field at fault (`defaults.steps`, `references[0].camera`).
        field: String,
        /// What is wrong.
        reason: String,
    },
}

impl RonFileError {
    /// `path` could not be read, for `reason`.
    pub fn read(path: &Path, reason: impl Display) -> Self {
        Self::Read {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        }
    }

    /// `field` of the RON file at `path` holds an unusable value, for `reason`.
    pub fn invalid(path: &Path, field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            path: path.to_path_buf(),
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// `bytes` read from `path` as UTF-8 text.
pub fn utf8(bytes: Vec<u8>, path: &Path) -> Result<String, RonFileError> {
    String::from_utf8(bytes).map_err(|e| RonFileError::read(path, e))
}

/// `text`, the contents of the file at `path`, parsed as RON into a `T`; a syntax error or a
/// field that does not fit `T` is a [`RonFileError::Parse`] at its line and column.
pub fn parse<T: DeserializeOwned>(text: &str, path: &Path) -> Result<T, RonFileError> {
    ron::from_str(text).map_err(|e| RonFileError::Parse {
        path: path.to_path_buf(),
        line: e.span.start.line,
        column: e.span.start.col,
        message: e.code.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Pair {
        a: u32,
        b: String,
    }

    #[test]
    fn well_formed_text_parses() {
        let pair: Pair = parse("(a: 3, b: \"x\")", Path::new("p.ron")).unwrap();
        assert_eq!(
            pair,
            Pair {
                a: 3,
                b: "x".into()
            }
        );
    }

    #[test]
    fn parse_errors_name_the_file_line_and_column() {
        let err = parse::<Pair>("(a: 3,\n   c: 1)", Path::new("dir/p.ron")).unwrap_err();
        match &err {
            RonFileError::Parse { line, column, .. } => assert_eq!((*line, *column), (2, 4)),
            other => panic!("{other:?}"),
        }
        let text = err.to_string();
        assert!(text.starts_with("dir/p.ron:2:4: "), "{text}");
        assert!(text.contains('c'), "{text}");
    }

    #[test]
    fn read_and_field_errors_name_the_file() {
        let err = utf8(vec![0xff, 0xfe], Path::new("bad.ron")).unwrap_err();
        assert!(matches!(&err, RonFileError::Read { path, .. } if path == Path::new("bad.ron")));
        assert!(
            err.to_string().starts_with("cannot read bad.ron: "),
            "{err}"
        );
        let err = RonFileError::invalid(Path::new("m.ron"), "steps", "must be at least 1");
        assert_eq!(err.to_string(), "m.ron: `steps` must be at least 1");
        assert_eq!(utf8(b"ok".to_vec(), Path::new("x")).unwrap(), "ok");
    }
}
