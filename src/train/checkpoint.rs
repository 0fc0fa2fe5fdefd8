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
    save_tensors_with_metadata(path, tensors, None)
}

/// Saves named tensors as safetensors at `path`, atomically, with `metadata` as the file's
/// `__metadata__` string map (what the tensors are for, read back with [`load_metadata`]).
pub fn save_tensors_with_metadata(
    path: &Path,
    tensors: &HashMap<String, Tensor>,
    metadata: Option<HashMap<String, String>>,
) -> Result<()> {
    let temp = temp_path(path);
    let result = (|| {
        safetensors::serialize_to_file(tensors, metadata, &temp)
            .map_err(candle_core::Error::from)?;
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

/// Headers larger than this are not safetensors headers (the format caps them at 100 MB).
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// The `__metadata__` string map of the safetensors file `path` (empty when it has none),
/// read from the header alone.
pub fn load_metadata(path: &Path) -> Result<HashMap<String, String>> {
    use std::io::Read;
    let invalid = |reason: String| ModelError::InvalidInput {
        name: path.display().to_string(),
        reason,
    };
    let mut file = std::fs::File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ModelError::MissingFile {
            path: path.to_path_buf(),
        },
        _ => io_error(path, e),
    })?;
    let mut length = [0u8; 8];
    file.read_exact(&mut length)
        .map_err(|_| invalid("not a safetensors file: shorter than its header length".into()))?;
    let length = u64::from_le_bytes(length);
    if length > MAX_HEADER_BYTES {
        return Err(invalid(format!(
            "not a safetensors file: header length {length} is implausible"
        )));
    }
    let mut header = vec![0u8; length as usize];
    file.read_exact(&mut header)
        .map_err(|_| invalid("not a safetensors file: truncated header".into()))?;
    let header: serde_json::Value = serde_json::from_slice(&header)
        .map_err(|e| invalid(format!("not a safetensors file: malformed header: {e}")))?;
    match header.get("__metadata__") {
        None => Ok(HashMap::new()),
        Some(value) => serde_json::from_value(value.clone())
            .map_err(|e| invalid(format!("malformed `__metadata__`: {e}"))),
    }
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
    fn metadata_round_trips_and_is_empty_when_absent() {
        let dir = scratch("metadata");
        let path = dir.join("described.safetensors");
        let map = HashMap::from([(
            "w".to_string(),
            Tensor::ones((2, 2), candle_core::DType::F32, &Device::Cpu).unwrap(),
        )]);
        let metadata = HashMap::from([("purpose".to_string(), "test".to_string())]);
        save_tensors_with_metadata(&path, &map, Some(metadata.clone())).unwrap();
        assert_eq!(load_metadata(&path).unwrap(), metadata);
        assert_eq!(load_tensors(&path, &Device::Cpu).unwrap().len(), 1);
        save_tensors_atomic(&path, &map).unwrap();
        assert!(load_metadata(&path).unwrap().is_empty());
        std::fs::write(&path, b"nope").unwrap();
        assert!(matches!(
            load_metadata(&path),
            Err(ModelError::InvalidInput { .. })
        ));
        assert!(matches!(
            load_metadata(&dir.join("absent.safetensors")),
            Err(ModelError::MissingFile { .. })
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
