//! Helpers shared by the integration tests: where the diffusers parity fixtures live, scratch
//! folders that remove themselves, and running the `mvcustom` binary and checking its failures;
//! [`bevy_app`] holds the headless Bevy apps of the plugin tests.
//!
//! Every test crate compiles this module and uses a different subset of it.
#![allow(dead_code)]

pub mod bevy_app;

use std::ffi::OsStr;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The parity fixtures: `$MVCUSTOM_PARITY_DIR`, or `../shared/fixtures/parity` beside the crate.
pub fn parity_dir() -> PathBuf {
    std::env::var_os("MVCUSTOM_PARITY_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/parity"))
}

/// The tiny AnimateDiff pipeline of the parity fixtures (a diffusers-layout model folder).
pub fn tiny_model() -> PathBuf {
    let model = parity_dir().join("animatediff_pipeline_tiny");
    assert!(
        model.is_dir(),
        "fixture model {} is missing (set MVCUSTOM_PARITY_DIR)",
        model.display()
    );
    model
}

/// A fresh folder under the system's temporary folder, removed when dropped.
pub struct Scratch(pub PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Deref for Scratch {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

/// An empty scratch folder named after the test crate, the process and `name`.
pub fn scratch(name: &str) -> Scratch {
    let dir = std::env::temp_dir().join(format!(
        "mvcustom-{}-{}-{name}",
        env!("CARGO_CRATE_NAME"),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Scratch(dir)
}

/// Runs the `mvcustom` binary with `args`.
pub fn mvcustom<S: AsRef<OsStr>>(args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mvcustom"))
        .args(args)
        .output()
        .expect("the mvcustom binary runs")
}

/// A run's standard error as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `p` as a command-line argument.
pub fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// The JSON document at `path`.
pub fn json(path: &Path) -> Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Asserts a failed run: status `code`, one `error:` line naming every `culprit`, no panic.
pub fn assert_fails<S: AsRef<OsStr> + std::fmt::Debug>(args: &[S], code: i32, culprits: &[&str]) {
    let output = mvcustom(args);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(code), "{args:?}: {err}");
    let first = err.lines().next().unwrap_or_default();
    assert!(first.starts_with("error: "), "{first}");
    for culprit in culprits {
        assert!(
            first.contains(culprit),
            "{culprit:?} not named in {first:?}"
        );
    }
    assert!(!err.contains("panicked"), "{err}");
}

/// The largest absolute element-wise difference of two tensors of the same shape.
pub fn max_abs_difference(a: &candle_core::Tensor, b: &candle_core::Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}
