//! Checkpoints and weight files written atomically: tensors go to a temporary file in the
//! destination's folder, are flushed to disk, then renamed over the destination, so a crash
//! or a full disk never leaves a half-written file where a good one was.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use candle_core::{Device, Tensor};

use crate::model::{ModelError, Result};

/// Distinguishes temporary files of concurrent writers in one process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A sibling temporary path for `path`.
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "checkpoint".into());
    let unique = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.{}.{unique}.tmp", std::process::id()))
}

fn io_error(path: &Path, source: std::io::Error) -> ModelError {
    ModelError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `bytes` to `path` atomically (temporary sibling, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let temp = temp_path(path);
    let result = (|| {
        let mut file = std::fs::File::create(&temp).map_err(|e| io_error(&temp, e))?;
        file.write_all(bytes).map_err(|e| io_error(&temp, e))?;
        file.sync_all().map_err(|e| io_error(&temp, e))?;
        std::fs::rename(&temp, path).map_err(|e| io_error(path, e))
    })();
    if result.is_err() {
        // The temporary file is ours; a failed removal leaves only a hidden stray file.
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Saves named tensors as safetensors at `path`, atomically.
pub fn save_tensors_atomic(path: &Path, tensors: &HashMap<String, Tensor>) -> Result<()> {
    let temp = temp_path(path);
    let result = (|| {
        candle_core::safetensors::save(tensors, &temp)?;
        let file = std::fs::File::open(&temp).map_err(|e| io_error(&temp, e))?;
        file.sync_all().map_err(|e| io_error(&temp, e))?;
        std::fs::rename(&temp, path).map_err(|e| io_error(path, e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Loads every tensor of the safetensors file `path` onto `device`.
pub fn load_tensors(path: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    if !path.is_file() {
        return Err(ModelError::MissingFile {
            path: path.to_path_buf(),
        });
    }
    candle_core::safetensors::load(path, device).map_err(|e| ModelError::InvalidInput {
        name: path.display().to_string(),
        reason: format!("not a readable safetensors file: {e}"),
    })
}

/// The tensor `name` of a loaded file, checked against `shape`.
pub fn take_tensor(
    tensors: &HashMap<String, Tensor>,
    name: &str,
    shape: &[usize],
    file: &Path,
) -> Result<Tensor> {
    let tensor = tensors.get(name).ok_or_else(|| ModelError::MissingTensor {
        tensor: name.to_string(),
        files: vec![file.to_path_buf()],
    })?;
    if tensor.dims() != shape {
        return Err(ModelError::ShapeMismatch {
            tensor: name.to_string(),
            files: vec![file.to_path_buf()],
            expected: shape.to_vec(),
            found: tensor.dims().to_vec(),
        });
    }
    Ok(tensor.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("mvcustom-checkpoint-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn saves_atomically_and_loads_back() {
        let dir = scratch("roundtrip");
        let path = dir.join("weights.safetensors");
        let t = Tensor::arange(0f32, 6.0, &Device::Cpu)
            .unwrap()
            .reshape((2, 3))
            .unwrap();
        let map = HashMap::from([("a.weight".to_string(), t.clone())]);
        save_tensors_atomic(&path, &map).unwrap();
        // Overwrite: the old file is replaced whole.
        save_tensors_atomic(&path, &map).unwrap();
        let loaded = load_tensors(&path, &Device::Cpu).unwrap();
        let back = take_tensor(&loaded, "a.weight", &[2, 3], &path).unwrap();
        assert_eq!(back.to_vec2::<f32>().unwrap(), t.to_vec2::<f32>().unwrap());
        // No temporary file is left behind.
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .collect();
        assert_eq!(leftovers.len(), 1);
        assert!(matches!(
            take_tensor(&loaded, "b", &[1], &path),
            Err(ModelError::MissingTensor { .. })
        ));
        assert!(matches!(
            take_tensor(&loaded, "a.weight", &[3, 2], &path),
            Err(ModelError::ShapeMismatch { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_failed_write_keeps_the_previous_file() {
        let dir = scratch("failed");
        let path = dir.join("out.bin");
        write_atomic(&path, b"good").unwrap();
        // Writing into a folder that does not exist fails before touching `path`.
        let missing = dir.join("no/such/folder/out.bin");
        assert!(matches!(
            write_atomic(&missing, b"bad"),
            Err(ModelError::Io { .. })
        ));
        assert_eq!(std::fs::read(&path).unwrap(), b"good");
        assert!(matches!(
            load_tensors(&dir.join("absent.safetensors"), &Device::Cpu),
            Err(ModelError::MissingFile { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
