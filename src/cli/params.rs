//! Parameter counts straight from safetensors headers: the 8-byte little-endian header length
//! and the JSON header that follows it list every tensor's dtype and shape, so a checkpoint of
//! any size is summarised without reading its weights.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::error::{CliError, Result};

/// Headers larger than this are not safetensors files (the format caps them at 100 MB).
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// One tensor listed in a safetensors header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorEntry {
    /// Its name in the checkpoint.
    pub name: String,
    /// Its dtype as the header spells it (`F32`, `F16`, `BF16`…).
    pub dtype: String,
    /// Its shape.
    pub shape: Vec<u64>,
}

/// The tensors of a set of weight files.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct WeightsSummary {
    /// The files summarised.
    pub files: Vec<PathBuf>,
    /// Number of tensors.
    pub tensors: usize,
    /// Number of scalar parameters (the sum of the tensors' element counts).
    pub parameters: u64,
    /// Parameters per stored dtype.
    pub dtypes: BTreeMap<String, u64>,
    /// Size of the files on disk, in bytes.
    pub bytes: u64,
}

/// Reads the header of the safetensors file `path`.
pub fn read_header(path: &Path) -> Result<Vec<TensorEntry>> {
    let bad = |reason: String| CliError::file(path, reason);
    let mut file = std::fs::File::open(path).map_err(|e| bad(format!("cannot open: {e}")))?;
    let file_len = file
        .metadata()
        .map_err(|e| bad(format!("cannot read: {e}")))?
        .len();
    let mut len_bytes = [0u8; 8];
    file.read_exact(&mut len_bytes)
        .map_err(|_| bad("not a safetensors file: shorter than its 8-byte header length".into()))?;
    let header_len = u64::from_le_bytes(len_bytes);
    if header_len > MAX_HEADER_BYTES || header_len > file_len.saturating_sub(8) {
        return Err(bad(format!(
            "not a safetensors file: header length {header_len} does not fit the file's {file_len} bytes"
        )));
    }
    let mut header = vec![0u8; header_len as usize];
    file.read_exact(&mut header)
        .map_err(|e| bad(format!("cannot read the header: {e}")))?;
    parse_header(&header).map_err(|reason| bad(format!("malformed safetensors header: {reason}")))
}

/// Parses a safetensors JSON header into its tensor entries, sorted by name.
fn parse_header(header: &[u8]) -> std::result::Result<Vec<TensorEntry>, String> {
    #[derive(serde::Deserialize)]
    struct Entry {
        dtype: String,
        shape: Vec<u64>,
    }
    let map: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(header).map_err(|e| e.to_string())?;
    map.into_iter()
        .filter(|(name, _)| name != "__metadata__")
        .map(|(name, value)| {
            let entry: Entry =
                serde_json::from_value(value).map_err(|e| format!("tensor `{name}`: {e}"))?;
            Ok(TensorEntry {
                name,
                dtype: entry.dtype,
                shape: entry.shape,
            })
        })
        .collect()
}

impl TensorEntry {
    /// Number of elements (1 for a scalar), or `None` if it overflows `u64`.
    pub fn elements(&self) -> Option<u64> {
        self.shape.iter().try_fold(1u64, |n, &d| n.checked_mul(d))
    }
}

/// Sums the tensors of `files` (e.g. the shards of one component).
pub fn summarize(files: &[PathBuf]) -> Result<WeightsSummary> {
    let mut summary = WeightsSummary {
        files: files.to_vec(),
        ..Default::default()
    };
    for file in files {
        summary.bytes += std::fs::metadata(file)
            .map_err(|e| CliError::file(file, format!("cannot read: {e}")))?
            .len();
        for entry in read_header(file)? {
            let elements = entry.elements().ok_or_else(|| {
                CliError::file(
                    file,
                    format!(
                        "tensor `{}` has an impossible shape {:?}",
                        entry.name, entry.shape
                    ),
                )
            })?;
            summary.tensors += 1;
            summary.parameters += elements;
            *summary.dtypes.entry(entry.dtype).or_default() += elements;
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(bytes: &[u8], name: &str) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("mvcustom-params-{}-{name}", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn counts_the_tensors_of_a_file_written_by_the_safetensors_crate() {
        let a = vec![0u8; 2 * 3 * 4];
        let b = vec![0u8; 5 * 2];
        let views = [
            (
                "a",
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![2, 3], &a)
                    .unwrap(),
            ),
            (
                "b",
                safetensors::tensor::TensorView::new(safetensors::Dtype::F16, vec![5], &b).unwrap(),
            ),
        ];
        let mut metadata = std::collections::HashMap::new();
        metadata.insert("format".to_string(), "pt".to_string());
        let bytes = safetensors::serialize(views, Some(metadata)).unwrap();
        let path = file_with(&bytes, "two.safetensors");
        let summary = summarize(std::slice::from_ref(&path)).unwrap();
        assert_eq!(summary.tensors, 2);
        assert_eq!(summary.parameters, 6 + 5);
        assert_eq!(summary.dtypes["F32"], 6);
        assert_eq!(summary.dtypes["F16"], 5);
        assert_eq!(summary.bytes, bytes.len() as u64);
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn rejects_files_that_are_not_safetensors() {
        let short = file_with(b"abc", "short.safetensors");
        let err = read_header(&short).unwrap_err().to_string();
        assert!(
            err.contains("short.safetensors") && err.contains("8-byte"),
            "{err}"
        );
        let mut huge = u64::MAX.to_le_bytes().to_vec();
        huge.extend_from_slice(b"{}");
        let huge = file_with(&huge, "huge.safetensors");
        assert!(
            read_header(&huge)
                .unwrap_err()
                .to_string()
                .contains("header length")
        );
        let mut garbled = 4u64.to_le_bytes().to_vec();
        garbled.extend_from_slice(b"{\"x\"");
        let garbled = file_with(&garbled, "garbled.safetensors");
        assert!(
            read_header(&garbled)
                .unwrap_err()
                .to_string()
                .contains("malformed")
        );
        for path in [short, huge, garbled] {
            std::fs::remove_file(path).unwrap();
        }
    }

    #[test]
    fn scalars_count_one_and_overflow_is_caught() {
        let scalar = TensorEntry {
            name: "s".into(),
            dtype: "F32".into(),
            shape: vec![],
        };
        assert_eq!(scalar.elements(), Some(1));
        let huge = TensorEntry {
            name: "h".into(),
            dtype: "F32".into(),
            shape: vec![u64::MAX, 2],
        };
        assert_eq!(huge.elements(), None);
    }
}
