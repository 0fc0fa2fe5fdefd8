//! `mvcustom inspect` on a subject: its definition (token, class word, reference views with
//! their sizes, masks and cameras) and its trained weights (settings from the file's metadata,
//! tensors and parameter counts per pose block, read from the safetensors header), with the
//! checkpoint and the training report beside them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::error::{CliError, Result};
use super::params::read_header;
use super::train::report_path;
use crate::model::pose::POSE_PREFIX;
use crate::mvcustom::train::checkpoint_path;
use crate::mvcustom::{MvError, Subject, SubjectDefinition, SubjectWeightsInfo};

/// The subject definition `path` names: the file itself when it is a `.ron` file, or the
/// only `.ron` file of a folder (not a model folder) that parses as a subject definition;
/// `None` when `path` is neither.
pub fn definition_in(path: &Path) -> Result<Option<PathBuf>> {
    let is_ron = |p: &Path| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("ron"));
    if path.is_file() {
        return Ok(is_ron(path).then(|| path.to_path_buf()));
    }
    if !path.is_dir() || path.join("unet").is_dir() || path.join("config.json").is_file() {
        return Ok(None);
    }
    let entries =
        std::fs::read_dir(path).map_err(|e| CliError::file(path, format!("cannot list: {e}")))?;
    let mut definitions: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && is_ron(p))
        .filter(|p| {
            std::fs::read_to_string(p).is_ok_and(|text| SubjectDefinition::parse(&text, p).is_ok())
        })
        .collect();
    definitions.sort();
    match definitions.len() {
        0 => Ok(None),
        1 => Ok(definitions.pop()),
        _ => Err(CliError::file(
            path,
            format!(
                "holds several subject definitions ({}): name one",
                definitions
                    .iter()
                    .filter_map(|p| p.file_name())
                    .map(|n| n.to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// One reference view.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReferenceSummary {
    /// The image file.
    pub image: PathBuf,
    /// Its width in pixels.
    pub width: u32,
    /// Its height in pixels.
    pub height: u32,
    /// Whether its subject mask leaves part of the image out (false without a mask, or with
    /// an all-subject one).
    pub masked: bool,
    /// The camera centre in the world.
    pub camera_center: [f32; 3],
}

/// The tensors of one pose block (or the token row).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TensorGroup {
    /// The carrying transformer block, or `token_embedding`.
    pub name: String,
    /// Tensor name (within the group) → shape.
    pub tensors: BTreeMap<String, Vec<u64>>,
    /// Scalars in the group.
    pub parameters: u64,
}

/// The trained weights file.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WeightsSummary {
    /// The file.
    pub path: PathBuf,
    /// What they were trained for (from the file's metadata).
    pub info: SubjectWeightsInfo,
    /// One group per pose block, then the token row.
    pub groups: Vec<TensorGroup>,
    /// Number of tensors.
    pub tensors: usize,
    /// Scalars in all.
    pub parameters: u64,
    /// Size on disk in bytes.
    pub bytes: u64,
}

/// What the training report says about the run that wrote the weights.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TrainingSummary {
    /// The report file.
    pub report: PathBuf,
    /// Steps trained in all.
    pub steps: u64,
    /// The last step's total loss, if the run made steps.
    pub last_loss: Option<f64>,
}

/// The summary of a subject.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SubjectSummary {
    /// The definition file.
    pub definition: PathBuf,
    /// The prompt token.
    pub token: String,
    /// The class word.
    pub class_word: String,
    /// The reference views.
    pub references: Vec<ReferenceSummary>,
    /// The trained weights; null when the subject has not been trained.
    pub weights: Option<WeightsSummary>,
    /// The resumable checkpoint, when one exists.
    pub checkpoint: Option<PathBuf>,
    /// The last training run, when its report exists.
    pub training: Option<TrainingSummary>,
}

/// Summarises the subject of the definition file `path`.
pub fn inspect_subject(path: &Path) -> Result<SubjectSummary> {
    let subject = Subject::load(path).map_err(MvError::from)?;
    let references = subject
        .references
        .iter()
        .map(|r| {
            let size = r.camera.size();
            ReferenceSummary {
                image: r.path.clone(),
                width: size.width,
                height: size.height,
                masked: r.mask.pixels().any(|p| p.0[0] < 128),
                camera_center: r.camera.center().to_array(),
            }
        })
        .collect();
    let weights = if subject.weights_path.is_file() {
        Some(summarise_weights(&subject.weights_path)?)
    } else {
        None
    };
    let checkpoint = Some(checkpoint_path(&subject.weights_path)).filter(|p| p.is_file());
    let report = report_path(&subject.weights_path);
    let training = if report.is_file() {
        Some(read_training(&report)?)
    } else {
        None
    };
    Ok(SubjectSummary {
        definition: path.to_path_buf(),
        token: subject.token,
        class_word: subject.class_word,
        references,
        weights,
        checkpoint,
        training,
    })
}

/// The weights file's settings and tensors, grouped by pose block, from its header.
fn summarise_weights(path: &Path) -> Result<WeightsSummary> {
    let info = SubjectWeightsInfo::read(path)?;
    let entries = read_header(path)?;
    let mut groups: BTreeMap<String, TensorGroup> = BTreeMap::new();
    let mut parameters = 0;
    for entry in &entries {
        let elements = entry.elements().ok_or_else(|| {
            CliError::file(
                path,
                format!("tensor `{}` has an impossible shape", entry.name),
            )
        })?;
        parameters += elements;
        let (group, tensor) = split_name(&entry.name);
        let slot = groups.entry(group.clone()).or_insert_with(|| TensorGroup {
            name: group,
            tensors: BTreeMap::new(),
            parameters: 0,
        });
        slot.tensors.insert(tensor, entry.shape.clone());
        slot.parameters += elements;
    }
    // Pose blocks first (by name), the token row last.
    let mut groups: Vec<TensorGroup> = groups.into_values().collect();
    groups.sort_by_key(|g| {
        (
            !g.tensors.keys().any(|t| t.starts_with("field")),
            g.name.clone(),
        )
    });
    let bytes = std::fs::metadata(path)
        .map_err(|e| CliError::file(path, format!("cannot read: {e}")))?
        .len();
    Ok(WeightsSummary {
        path: path.to_path_buf(),
        info,
        tensors: entries.len(),
        groups,
        parameters,
        bytes,
    })
}

/// `pose_blocks.<block>.field.x.weight` → (`<block>`, `field.x.weight`); other names are
/// their own group.
fn split_name(name: &str) -> (String, String) {
    let Some(rest) = name
        .strip_prefix(POSE_PREFIX)
        .and_then(|r| r.strip_prefix('.'))
    else {
        return (name.to_string(), String::new());
    };
    for part in [".field.", ".fuse."] {
        if let Some(at) = rest.find(part) {
            return (rest[..at].to_string(), rest[at + 1..].to_string());
        }
    }
    (rest.to_string(), String::new())
}

/// The steps and last loss recorded in a `train.json` report.
fn read_training(path: &Path) -> Result<TrainingSummary> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::file(path, format!("cannot read: {e}")))?;
    let report: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| CliError::file(path, format!("not a training report: {e}")))?;
    let steps = report["settings"]["steps"].as_u64().ok_or_else(|| {
        CliError::file(path, "not a training report: no settings.steps".to_string())
    })?;
    let last_loss = report["steps"]
        .as_array()
        .and_then(|s| s.last())
        .and_then(|s| s["total"].as_f64());
    Ok(TrainingSummary {
        report: path.to_path_buf(),
        steps,
        last_loss,
    })
}

/// The summary as text.
pub fn render_subject(summary: &SubjectSummary) -> String {
    let mut out = format!(
        "subject {}: {} (class \"{}\"), {} reference view(s)\n",
        summary.definition.display(),
        summary.token,
        summary.class_word,
        summary.references.len()
    );
    for r in &summary.references {
        let [x, y, z] = r.camera_center;
        out.push_str(&format!(
            "  {} {}×{}{}, camera at ({x:.3}, {y:.3}, {z:.3})\n",
            r.image.display(),
            r.width,
            r.height,
            if r.masked { ", masked" } else { "" }
        ));
    }
    match &summary.weights {
        None => out.push_str("  not trained yet (no weights file)\n"),
        Some(w) => {
            out.push_str(&format!(
                "  weights {}: {} parameters in {} tensors ({:.1} KiB); references at {} px, \
                 pose levels {:?}, {} samples per ray\n",
                w.path.display(),
                w.parameters,
                w.tensors,
                w.bytes as f64 / 1024.0,
                w.info.reference_resolution,
                w.info.pose.levels,
                w.info.pose.sampling.samples
            ));
            for g in &w.groups {
                let shapes: Vec<String> = g
                    .tensors
                    .iter()
                    .map(|(n, s)| {
                        if n.is_empty() {
                            format!("{s:?}")
                        } else {
                            format!("{n} {s:?}")
                        }
                    })
                    .collect();
                out.push_str(&format!(
                    "    {}: {} parameters: {}\n",
                    g.name,
                    g.parameters,
                    shapes.join(", ")
                ));
            }
        }
    }
    if let Some(checkpoint) = &summary.checkpoint {
        out.push_str(&format!("  checkpoint {}\n", checkpoint.display()));
    }
    if let Some(t) = &summary.training {
        out.push_str(&format!(
            "  trained {} steps{} ({})\n",
            t.steps,
            t.last_loss
                .map(|l| format!(", last loss {l:.4}"))
                .unwrap_or_default(),
            t.report.display()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensor_names_group_by_pose_block() {
        assert_eq!(
            split_name(
                "pose_blocks.mid_block.attentions.0.transformer_blocks.0.field.view_mlp.0.weight"
            ),
            (
                "mid_block.attentions.0.transformer_blocks.0".to_string(),
                "field.view_mlp.0.weight".to_string()
            )
        );
        assert_eq!(
            split_name("pose_blocks.up_blocks.1.attentions.2.transformer_blocks.0.fuse.weight"),
            (
                "up_blocks.1.attentions.2.transformer_blocks.0".to_string(),
                "fuse.weight".to_string()
            )
        );
        assert_eq!(
            split_name("token_embedding"),
            ("token_embedding".to_string(), String::new())
        );
    }
}
