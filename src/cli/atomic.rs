//! Atomic file output: every file the CLI writes appears complete or not at all, so an
//! interrupted run never leaves a truncated PNG or report behind.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::error::{CliError, Result};

/// Writes `bytes` to `path` through a temporary file in the same folder, flushed to disk and
/// then renamed over `path` (a rename within one file system is atomic).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let temp = temp_path(path)?;
    let written = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    written.map_err(|e| {
        // Best effort: the temporary file is useless once the write failed.
        let _ = std::fs::remove_file(&temp);
        CliError::file(path, format!("cannot write: {e}"))
    })
}

/// Writes `value` to `path` as pretty-printed JSON, atomically (the CLI's reports).
pub fn write_json_atomic<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let json = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::file(path, format!("cannot serialise as JSON: {e}")))?;
    write_atomic(path, json.as_bytes())
}

/// `dir/.name.tmp-<pid>` for `dir/name`: hidden, unique per process, same folder.
fn temp_path(path: &Path) -> Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| CliError::file(path, "not a file path"))?;
    let mut temp = std::ffi::OsString::from(".");
    temp.push(name);
    temp.push(format!(".tmp-{}", std::process::id()));
    Ok(path.with_file_name(temp))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("mvcustom-atomic-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn writes_replaces_and_leaves_no_temporary_file() {
        let dir = scratch("replace");
        let path = dir.join("report.json");
        write_atomic(&path, b"first").unwrap();
        write_atomic(&path, b"second, longer").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second, longer");
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("report.json")]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn json_reports_round_trip() {
        let dir = scratch("json");
        let path = dir.join("report.json");
        let report = serde_json::json!({"views": [1, 2], "model": "tiny"});
        write_json_atomic(&path, &report).unwrap();
        let read: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(read, report);
        // A value JSON cannot hold (a map with non-string keys) names the file.
        let bad: std::collections::HashMap<(u8, u8), u8> = [((1, 2), 3)].into();
        let err = write_json_atomic(&path, &bad).unwrap_err().to_string();
        assert!(err.contains("report.json") && err.contains("JSON"), "{err}");
        assert_eq!(
            read,
            serde_json::from_slice::<serde_json::Value>(&std::fs::read(&path).unwrap()).unwrap(),
            "the old report is kept"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_missing_folder_is_an_error_naming_the_file() {
        let dir = scratch("missing");
        let path = dir.join("absent").join("view_00.png");
        let err = write_atomic(&path, b"x").unwrap_err().to_string();
        assert!(
            err.contains("view_00.png") && err.contains("cannot write"),
            "{err}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
