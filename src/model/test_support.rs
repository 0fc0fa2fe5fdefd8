//! Helpers for the model layer's unit tests: unique temporary folders and component folders
//! (config + safetensors) synthesised for any configuration, so that loading errors can be
//! provoked by removing or reshaping one tensor.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};

/// A fresh, empty folder under the system temp dir, unique to this process and call,
/// removed with everything in it when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates the folder; `tag` makes its name readable.
    pub fn new(tag: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("mvcustom-test-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Every tensor a network constructor asks for, with standard-normal values (scaled by
/// 0.5 to keep activations moderate), keyed by checkpoint name.
pub fn random_weights<T>(
    build: impl FnOnce(VarBuilder<'static>) -> candle_core::Result<T>,
) -> HashMap<String, Tensor> {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    build(vb).unwrap();
    let vars = varmap.data().lock().unwrap();
    vars.iter()
        .map(|(name, var)| {
            let t = (Tensor::randn(0f32, 1.0, var.shape(), &Device::Cpu).unwrap() * 0.5).unwrap();
            (name.clone(), t)
        })
        .collect()
}

/// Writes `config` as `dir/config.json` and `tensors` as `dir/<weights_file>`.
pub fn write_component(
    dir: &Path,
    config: &str,
    weights_file: &str,
    tensors: &HashMap<String, Tensor>,
) {
    std::fs::write(dir.join("config.json"), config).unwrap();
    candle_core::safetensors::save(tensors, dir.join(weights_file)).unwrap();
}

/// Largest absolute element-wise difference of two same-shape tensors.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a.to_dtype(DType::F32).unwrap() - b.to_dtype(DType::F32).unwrap())
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}
