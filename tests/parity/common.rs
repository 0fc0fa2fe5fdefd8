//! What every parity kind shares: the case description, the peer's tensors, and the
//! element-wise tolerance check `|ours − theirs| ≤ atol + rtol·|theirs|`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

/// One case folder: its `case.json` and where it lives.
pub struct Case {
    /// Folder name, e.g. `unet_tiny`.
    pub name: String,
    /// The folder.
    pub dir: PathBuf,
    /// `kind` from case.json.
    pub kind: String,
    /// Absolute tolerance.
    pub atol: f64,
    /// Relative tolerance.
    pub rtol: f64,
    /// The whole case.json, for call arguments.
    pub json: serde_json::Value,
}

impl Case {
    /// Reads `dir/case.json`.
    pub fn load(dir: &Path) -> Result<Self, String> {
        let path = dir.join("case.json");
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let kind = json["kind"]
            .as_str()
            .ok_or_else(|| format!("{}: no `kind`", path.display()))?
            .to_string();
        let atol = json["atol"].as_f64().unwrap_or(0.0);
        let rtol = json["rtol"].as_f64().unwrap_or(0.0);
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Self {
            name,
            dir: dir.to_path_buf(),
            kind,
            atol,
            rtol,
            json,
        })
    }

    /// A string argument of case.json.
    pub fn str_arg(&self, key: &str) -> Result<&str, String> {
        self.json[key]
            .as_str()
            .ok_or_else(|| format!("case.json has no string `{key}`"))
    }

    /// A numeric argument of case.json.
    pub fn f64_arg(&self, key: &str) -> Result<f64, String> {
        self.json[key]
            .as_f64()
            .ok_or_else(|| format!("case.json has no number `{key}`"))
    }

    /// The peer's tensors from `io.safetensors`, loaded on the CPU.
    pub fn io(&self) -> Result<Io, String> {
        let path = self.dir.join("io.safetensors");
        let tensors = candle_core::safetensors::load(&path, &Device::Cpu)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Io { path, tensors })
    }

    /// A sub-folder of the case (a model component).
    pub fn component(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Compares `ours` against the peer's `theirs` under this case's tolerances.
    pub fn check(&self, name: &str, ours: &Tensor, theirs: &Tensor) -> Result<Check, String> {
        compare(name, ours, theirs, self.atol, self.rtol)
    }
}

/// The tensors of one `io.safetensors`.
pub struct Io {
    path: PathBuf,
    tensors: HashMap<String, Tensor>,
}

impl Io {
    /// The tensor `name`, or an error naming the file.
    pub fn get(&self, name: &str) -> Result<Tensor, String> {
        self.tensors
            .get(name)
            .cloned()
            .ok_or_else(|| format!("{} has no tensor `{name}`", self.path.display()))
    }
}

/// The outcome of comparing one output tensor.
pub struct Check {
    /// Which output.
    pub name: String,
    /// Largest `|ours − theirs|`.
    pub max_abs_err: f64,
    /// Number of elements over tolerance.
    pub failures: usize,
    /// Number of elements compared.
    pub elements: usize,
}

impl Check {
    /// Every element within tolerance.
    pub fn passed(&self) -> bool {
        self.failures == 0
    }
}

/// Compares two tensors element-wise (shapes must match exactly).
pub fn compare(
    name: &str,
    ours: &Tensor,
    theirs: &Tensor,
    atol: f64,
    rtol: f64,
) -> Result<Check, String> {
    if ours.dims() != theirs.dims() {
        return Err(format!(
            "`{name}`: shape {:?}, peer has {:?}",
            ours.dims(),
            theirs.dims()
        ));
    }
    let flat = |t: &Tensor| -> Result<Vec<f64>, String> {
        t.to_dtype(DType::F64)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f64>())
            .map_err(|e| format!("`{name}`: {e}"))
    };
    let (a, b) = (flat(ours)?, flat(theirs)?);
    let mut max_abs_err = 0.0f64;
    let mut failures = 0;
    for (x, y) in a.iter().zip(&b) {
        let err = (x - y).abs();
        if err.is_nan() || err > atol + rtol * y.abs() {
            failures += 1;
        }
        if err.is_nan() {
            max_abs_err = f64::NAN;
        } else if !max_abs_err.is_nan() {
            max_abs_err = max_abs_err.max(err);
        }
    }
    Ok(Check {
        name: name.to_string(),
        max_abs_err,
        failures,
        elements: a.len(),
    })
}
