//! `mvcustom inspect`: what a model folder holds — each component's configuration summary and
//! parameter count (from the safetensors headers, without loading weights). A single component
//! folder (e.g. `unet/`) is summarised on its own, and a subject (its definition file, or a
//! folder holding one) by [`inspect_subject`](super::inspect_subject).

use std::path::{Path, PathBuf};

use clap::Args;
use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::{Value, json};

use super::error::{CliError, Result};
use super::inspect_subject::{definition_in, inspect_subject, render_subject};
use super::params::{WeightsSummary, summarize};
use crate::diffusion::SchedulerConfig;
use crate::diffusion::scheduler::{
    BetaSchedule, CommonConfig, FinalSigmas, PredictionType, SchedulerKind, SolverType,
    TimestepSpacing, TimestepType,
};
use crate::model::clip::ClipTextConfig;
use crate::model::motion_adapter::MotionAdapterConfig;
use crate::model::tokenizer::ClipTokenizer;
use crate::model::unet::config::{AttentionLayout, UNetConfig, UNetLayout};
use crate::model::vae::VaeConfig;
use crate::model::{ComponentDir, ModelError, WeightVariant};

/// Arguments of `mvcustom inspect`.
#[derive(Clone, Debug, Args)]
pub struct InspectArgs {
    /// A diffusers-layout model folder (tokenizer/, text_encoder/, unet/, motion_adapter/,
    /// vae/, scheduler/), one component folder of it, or a subject: its definition (.ron) or
    /// the folder holding it (definition, references, weights and training files).
    #[arg(value_name = "FOLDER")]
    pub folder: PathBuf,
    /// Print the summary as JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The components this tool knows, in the order they are listed.
const KNOWN: [&str; 6] = [
    "tokenizer",
    "text_encoder",
    "unet",
    "motion_adapter",
    "vae",
    "scheduler",
];

/// What kind of folder was inspected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FolderKind {
    /// A model folder with component sub-folders.
    Model,
    /// A single component folder.
    Component,
}

/// Ordered `name → value` facts, serialised as a JSON object in that order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Details(pub Vec<(String, Value)>);

impl Details {
    fn add(&mut self, name: &str, value: impl Into<Value>) {
        self.0.push((name.to_string(), value.into()));
    }
}

impl Serialize for Details {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// One component's summary.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ComponentReport {
    /// Folder name (`unet`, `vae`…).
    pub name: String,
    /// The class it is an instance of (`UNet2DConditionModel`…), when the folder says.
    pub class: Option<String>,
    /// Configuration facts.
    pub details: Details,
    /// Its weights, when it has any.
    pub weights: Option<WeightsSummary>,
    /// Why the folder could not be summarised, if it could not.
    pub error: Option<String>,
}

/// The summary of an inspected folder.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FolderReport {
    /// The folder.
    pub folder: PathBuf,
    /// Model or single component.
    pub kind: FolderKind,
    /// Facts about the model as a whole (views per generation, native size).
    pub model: Details,
    /// One entry per component.
    pub components: Vec<ComponentReport>,
    /// Sum of the components' parameters.
    pub total_parameters: u64,
}

/// Runs `inspect`: prints the summary (text or JSON) and fails, after printing, if a
/// component could not be read.
pub fn run(args: &InspectArgs) -> Result<()> {
    if let Some(definition) = definition_in(&args.folder)? {
        let summary = inspect_subject(&definition)?;
        if args.json {
            let text = serde_json::to_string_pretty(&summary).map_err(|e| {
                CliError::file(&definition, format!("cannot serialise summary: {e}"))
            })?;
            println!("{text}");
        } else {
            print!("{}", render_subject(&summary));
        }
        return Ok(());
    }
    let report = inspect(&args.folder)?;
    if args.json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| CliError::file(&args.folder, format!("cannot serialise summary: {e}")))?;
        println!("{text}");
    } else {
        print!("{}", render_text(&report));
    }
    match report.components.iter().find(|c| c.error.is_some()) {
        Some(bad) => Err(CliError::file(
            report.folder.join(&bad.name),
            bad.error.clone().unwrap_or_default(),
        )),
        None => Ok(()),
    }
}

/// Summarises `folder`: a model folder or one component folder.
pub fn inspect(folder: &Path) -> Result<FolderReport> {
    if !folder.is_dir() {
        return Err(CliError::file(folder, "folder not found"));
    }
    let subfolders = component_folders(folder)?;
    let (kind, components) = if !subfolders.is_empty() {
        let unet_layout = read_unet(&folder.join("unet"))
            .ok()
            .map(|(_, layout)| layout);
        let components = subfolders
            .iter()
            .map(|name| component(&folder.join(name), name, unet_layout.as_ref()))
            .collect();
        (FolderKind::Model, components)
    } else if let Some(kind) = ComponentKind::detect(folder) {
        let name = folder
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| kind.folder_name().to_string());
        (
            FolderKind::Component,
            vec![summarise(folder, &name, kind, None)],
        )
    } else {
        return Err(CliError::file(
            folder,
            "neither a model folder (no unet/, vae/, text_encoder/ … inside) nor a component \
             folder (no config.json, scheduler_config.json or tokenizer files)",
        ));
    };
    let total_parameters = components
        .iter()
        .filter_map(|c| c.weights.as_ref())
        .map(|w| w.parameters)
        .sum();
    let model = if kind == FolderKind::Model {
        model_facts(folder, &components)
    } else {
        Details::default()
    };
    Ok(FolderReport {
        folder: folder.to_path_buf(),
        kind,
        model,
        components,
        total_parameters,
    })
}

/// The component sub-folders of a model folder: the known ones in their usual order, then
/// any other sub-folder holding a configuration or weights.
fn component_folders(folder: &Path) -> Result<Vec<String>> {
    let mut names: Vec<String> = KNOWN
        .iter()
        .filter(|n| folder.join(n).is_dir())
        .map(|n| n.to_string())
        .collect();
    if names.is_empty() {
        return Ok(names);
    }
    let entries = std::fs::read_dir(folder)
        .map_err(|e| CliError::file(folder, format!("cannot list: {e}")))?;
    let mut others: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !KNOWN.contains(&n.as_str()))
        .filter(|n| {
            let dir = folder.join(n);
            dir.join("config.json").is_file() || weight_files(&dir).is_some()
        })
        .collect();
    others.sort();
    names.extend(others);
    Ok(names)
}

/// The kinds of component this tool summarises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ComponentKind {
    Tokenizer,
    TextEncoder,
    UNet,
    MotionAdapter,
    Vae,
    Scheduler,
    Other,
}

impl ComponentKind {
    fn from_folder_name(name: &str) -> Self {
        match name {
            "tokenizer" => Self::Tokenizer,
            "text_encoder" => Self::TextEncoder,
            "unet" => Self::UNet,
            "motion_adapter" => Self::MotionAdapter,
            "vae" => Self::Vae,
            "scheduler" => Self::Scheduler,
            _ => Self::Other,
        }
    }

    fn folder_name(self) -> &'static str {
        match self {
            Self::Tokenizer => "tokenizer",
            Self::TextEncoder => "text_encoder",
            Self::UNet => "unet",
            Self::MotionAdapter => "motion_adapter",
            Self::Vae => "vae",
            Self::Scheduler => "scheduler",
            Self::Other => "component",
        }
    }

    /// What a stand-alone component folder holds, from its files and declared class.
    fn detect(dir: &Path) -> Option<Self> {
        if dir.join("scheduler_config.json").is_file() {
            return Some(Self::Scheduler);
        }
        if dir.join("tokenizer.json").is_file() || dir.join("vocab.json").is_file() {
            return Some(Self::Tokenizer);
        }
        if !dir.join("config.json").is_file() {
            return None;
        }
        Some(match declared_class(dir).as_deref() {
            Some("UNet2DConditionModel") => Self::UNet,
            Some("MotionAdapter") => Self::MotionAdapter,
            Some("AutoencoderKL") => Self::Vae,
            Some("CLIPTextModel") => Self::TextEncoder,
            _ => Self::Other,
        })
    }
}

/// `_class_name` (diffusers) or the first of `architectures` (transformers) of
/// `dir/config.json`, or `tokenizer_class` of `dir/tokenizer_config.json`.
fn declared_class(dir: &Path) -> Option<String> {
    let read = |file: &str| -> Option<Value> {
        serde_json::from_str(&std::fs::read_to_string(dir.join(file)).ok()?).ok()
    };
    if let Some(config) = read("config.json") {
        let class = config
            .get("_class_name")
            .or_else(|| config.get("architectures").and_then(|a| a.get(0)));
        if let Some(Value::String(class)) = class {
            return Some(class.clone());
        }
    }
    match read("tokenizer_config.json")?.get("tokenizer_class")? {
        Value::String(class) => Some(class.clone()),
        _ => None,
    }
}

/// The weight files of a component folder (full precision preferred).
fn weight_files(dir: &Path) -> Option<Vec<PathBuf>> {
    let dir = ComponentDir::new(dir);
    dir.weight_files(WeightVariant::Full)
        .or_else(|_| dir.weight_files(WeightVariant::Fp16))
        .ok()
}

fn component(dir: &Path, name: &str, unet: Option<&UNetLayout>) -> ComponentReport {
    summarise(dir, name, ComponentKind::from_folder_name(name), unet)
}

/// Summarises one component folder; failures are recorded in the report, not returned.
fn summarise(
    dir: &Path,
    name: &str,
    kind: ComponentKind,
    unet: Option<&UNetLayout>,
) -> ComponentReport {
    let mut report = ComponentReport {
        name: name.to_string(),
        class: declared_class(dir),
        details: Details::default(),
        weights: None,
        error: None,
    };
    let text = |e: ModelError| e.to_string();
    let details = match kind {
        ComponentKind::Tokenizer => tokenizer_details(dir).map_err(text),
        ComponentKind::TextEncoder => text_encoder_details(dir).map_err(text),
        ComponentKind::UNet => unet_details(dir).map_err(text),
        ComponentKind::MotionAdapter => motion_adapter_details(dir, unet).map_err(text),
        ComponentKind::Vae => vae_details(dir).map_err(text),
        ComponentKind::Scheduler => match scheduler_details(dir) {
            Ok((class, d)) => {
                report.class = Some(class.to_string());
                Ok(d)
            }
            Err(e) => Err(e.to_string()),
        },
        ComponentKind::Other => Ok(Details::default()),
    };
    match details {
        Ok(details) => report.details = details,
        Err(e) => report.error = Some(e),
    }
    if !matches!(kind, ComponentKind::Tokenizer | ComponentKind::Scheduler) {
        match weight_files(dir).map(|files| summarize(&files)) {
            Some(Ok(weights)) => report.weights = Some(weights),
            Some(Err(e)) => report.error = report.error.take().or(Some(e.one_line())),
            None => {
                report.error = report
                    .error
                    .take()
                    .or_else(|| Some("no safetensors weights found".into()))
            }
        }
    }
    if kind == ComponentKind::Tokenizer && report.class.is_none() {
        report.class = Some("CLIPTokenizer".into());
    }
    report
}

fn tokenizer_details(dir: &Path) -> std::result::Result<Details, ModelError> {
    let tokenizer = ClipTokenizer::load(dir)?;
    let mut d = Details::default();
    d.add("vocab_size", tokenizer.vocab_size());
    d.add("max_length", tokenizer.max_length());
    d.add(
        "special_ids",
        json!({"bos": tokenizer.bos_id(), "eos": tokenizer.eos_id(), "pad": tokenizer.pad_id()}),
    );
    Ok(d)
}

fn text_encoder_details(dir: &Path) -> std::result::Result<Details, ModelError> {
    let (cfg, path): (ClipTextConfig, _) = ComponentDir::new(dir).json("config.json")?;
    cfg.validate(&path)?;
    let mut d = Details::default();
    d.add("hidden_size", cfg.hidden_size);
    d.add("layers", cfg.num_hidden_layers);
    d.add("attention_heads", cfg.num_attention_heads);
    d.add("intermediate_size", cfg.intermediate_size);
    d.add("vocab_size", cfg.vocab_size);
    d.add("max_positions", cfg.max_position_embeddings);
    d.add("activation", cfg.hidden_act.clone());
    Ok(d)
}

fn read_unet(dir: &Path) -> std::result::Result<(UNetConfig, UNetLayout), ModelError> {
    let (cfg, path): (UNetConfig, _) = ComponentDir::new(dir).json("config.json")?;
    let layout = cfg.layout(&path)?;
    Ok((cfg, layout))
}

fn attention_text(attention: Option<AttentionLayout>) -> String {
    match attention {
        Some(a) => format!(
            ", attention {} heads × {} transformer layer(s), text width {}",
            a.heads, a.transformer_layers, a.cross_attention_dim
        ),
        None => String::new(),
    }
}

fn unet_details(dir: &Path) -> std::result::Result<Details, ModelError> {
    let (cfg, layout) = read_unet(dir)?;
    let mut d = Details::default();
    d.add("in_channels", layout.in_channels);
    d.add("out_channels", layout.out_channels);
    d.add("block_out_channels", cfg.block_out_channels.clone());
    let down: Vec<String> = layout
        .down
        .iter()
        .zip(&cfg.down_block_types)
        .map(|(b, kind)| {
            format!(
                "{kind}: {}→{} channels, {} resnets{}{}",
                b.in_channels,
                b.out_channels,
                b.layers,
                attention_text(b.attention),
                if b.downsample { ", downsample" } else { "" }
            )
        })
        .collect();
    d.add("down_blocks", down);
    if let Some(mid) = &layout.mid {
        d.add(
            "mid_block",
            format!(
                "{}: {} channels{}",
                cfg.mid_block_type.clone().unwrap_or_default(),
                mid.channels,
                attention_text(Some(mid.attention))
            ),
        );
    }
    let up: Vec<String> = layout
        .up
        .iter()
        .zip(&cfg.up_block_types)
        .map(|(b, kind)| {
            format!(
                "{kind}: {}→{} channels, {} resnets{}{}",
                b.prev_channels,
                b.out_channels,
                b.layers,
                attention_text(b.attention),
                if b.upsample { ", upsample" } else { "" }
            )
        })
        .collect();
    d.add("up_blocks", up);
    d.add("norm_groups", layout.norm_groups);
    d.add("time_embedding_dim", layout.time_embed_dim);
    d.add(
        "attention_projection",
        if layout.linear_projection {
            "linear"
        } else {
            "conv 1×1"
        },
    );
    Ok(d)
}

fn motion_adapter_details(
    dir: &Path,
    unet: Option<&UNetLayout>,
) -> std::result::Result<Details, ModelError> {
    let (cfg, path): (MotionAdapterConfig, _) = ComponentDir::new(dir).json("config.json")?;
    let mut d = Details::default();
    d.add("max_frames", cfg.motion_max_seq_length);
    d.add("block_out_channels", cfg.block_out_channels.clone());
    d.add("attention_heads", cfg.motion_num_attention_heads.clone());
    d.add("layers_per_block", cfg.motion_layers_per_block.clone());
    d.add(
        "transformer_layers_per_block",
        cfg.motion_transformer_layers_per_block.clone(),
    );
    d.add("mid_block", cfg.use_motion_mid_block);
    if let Some(unet) = unet {
        let layout = cfg.layout(&path, unet)?;
        let modules: usize = layout
            .down
            .iter()
            .chain(&layout.up)
            .map(|(n, _)| n)
            .sum::<usize>()
            + usize::from(layout.mid.is_some());
        d.add("motion_modules", modules);
    }
    Ok(d)
}

fn vae_details(dir: &Path) -> std::result::Result<Details, ModelError> {
    let (cfg, path): (VaeConfig, _) = ComponentDir::new(dir).json("config.json")?;
    cfg.validate(&path)?;
    let mut d = Details::default();
    d.add("block_out_channels", cfg.block_out_channels.clone());
    d.add("layers_per_block", cfg.layers_per_block);
    d.add("latent_channels", cfg.latent_channels);
    d.add(
        "downscale_factor",
        1usize << cfg.block_out_channels.len().saturating_sub(1),
    );
    d.add("scaling_factor", cfg.scaling_factor);
    d.add("shift_factor", cfg.shift_factor);
    d.add("sample_size", cfg.sample_size);
    d.add("mid_block_attention", cfg.mid_block_add_attention);
    Ok(d)
}

/// diffusers' spelling of `final_sigmas_type`.
fn final_sigmas_name(value: FinalSigmas) -> &'static str {
    match value {
        FinalSigmas::Zero => "zero",
        FinalSigmas::SigmaMin => "sigma_min",
    }
}

/// The scheduler fields every class shares, spelled as in `scheduler_config.json`.
fn common_details(d: &mut Details, c: &CommonConfig) {
    d.add("num_train_timesteps", c.num_train_timesteps);
    d.add(
        "beta_schedule",
        match c.beta_schedule {
            BetaSchedule::Linear => "linear",
            BetaSchedule::ScaledLinear => "scaled_linear",
            BetaSchedule::SquaredCosCapV2 => "squaredcos_cap_v2",
        },
    );
    d.add("beta_start", c.beta_start);
    d.add("beta_end", c.beta_end);
    d.add("trained_betas", c.trained_betas.is_some());
    d.add("rescale_betas_zero_snr", c.rescale_betas_zero_snr);
    d.add(
        "prediction_type",
        match c.prediction_type {
            PredictionType::Epsilon => "epsilon",
            PredictionType::VPrediction => "v_prediction",
            PredictionType::Sample => "sample",
        },
    );
    d.add(
        "timestep_spacing",
        match c.timestep_spacing {
            TimestepSpacing::Leading => "leading",
            TimestepSpacing::Trailing => "trailing",
            TimestepSpacing::Linspace => "linspace",
        },
    );
    d.add("steps_offset", c.steps_offset);
}

fn scheduler_details(
    dir: &Path,
) -> std::result::Result<(&'static str, Details), crate::diffusion::DiffusionError> {
    let cfg = SchedulerConfig::from_dir(&ComponentDir::new(dir))?;
    let mut d = Details::default();
    match &cfg {
        SchedulerConfig::Ddim(c) => {
            common_details(&mut d, &c.common);
            d.add("clip_sample", c.clip_sample);
            d.add("clip_sample_range", c.clip_sample_range);
            d.add("set_alpha_to_one", c.set_alpha_to_one);
        }
        SchedulerConfig::EulerDiscrete(c) => {
            common_details(&mut d, &c.common);
            d.add("use_karras_sigmas", c.use_karras_sigmas);
            d.add(
                "timestep_type",
                match c.timestep_type {
                    TimestepType::Discrete => "discrete",
                    TimestepType::Continuous => "continuous",
                },
            );
            d.add("final_sigmas_type", final_sigmas_name(c.final_sigmas_type));
        }
        SchedulerConfig::DpmSolverMultistep(c) => {
            common_details(&mut d, &c.common);
            d.add("solver_order", c.solver_order);
            d.add(
                "solver_type",
                match c.solver_type {
                    SolverType::Midpoint => "midpoint",
                    SolverType::Heun => "heun",
                },
            );
            d.add("lower_order_final", c.lower_order_final);
            d.add("euler_at_final", c.euler_at_final);
            d.add("use_karras_sigmas", c.use_karras_sigmas);
            d.add("final_sigmas_type", final_sigmas_name(c.final_sigmas_type));
        }
    }
    let kind: SchedulerKind = cfg.kind();
    Ok((kind.class_name(), d))
}

/// What the model as a whole can do: views per generation and native image size.
fn model_facts(folder: &Path, components: &[ComponentReport]) -> Details {
    let fact = |component: &str, key: &str| {
        components
            .iter()
            .find(|c| c.name == component && c.error.is_none())
            .and_then(|c| c.details.0.iter().find(|(k, _)| k == key))
            .map(|(_, v)| v.clone())
    };
    let mut d = Details::default();
    let motion = folder.join("motion_adapter").is_dir();
    d.add(
        "max_views",
        if motion {
            fact("motion_adapter", "max_frames").unwrap_or(Value::Null)
        } else {
            Value::from(1)
        },
    );
    if let Some(size) = fact("vae", "sample_size") {
        d.add("native_size", size);
    }
    if let Some(factor) = fact("vae", "downscale_factor") {
        d.add("latent_downscale", factor);
    }
    d
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A value as a person reads it: strings bare, the rest as compact JSON.
fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn render_details(out: &mut String, details: &Details, indent: &str) {
    for (key, value) in &details.0 {
        match value {
            Value::Array(items) if items.iter().all(Value::is_string) && !items.is_empty() => {
                out.push_str(&format!("{indent}{key}:\n"));
                for item in items {
                    out.push_str(&format!("{indent}  - {}\n", plain(item)));
                }
            }
            other => out.push_str(&format!("{indent}{key}: {}\n", plain(other))),
        }
    }
}

/// The human-readable summary.
pub fn render_text(report: &FolderReport) -> String {
    let mut out = format!(
        "{} folder {}\n",
        match report.kind {
            FolderKind::Model => "model",
            FolderKind::Component => "component",
        },
        report.folder.display()
    );
    render_details(&mut out, &report.model, "  ");
    for c in &report.components {
        out.push_str(&format!(
            "\n{} ({})",
            c.name,
            c.class.as_deref().unwrap_or("unknown class")
        ));
        if let Some(w) = &c.weights {
            let dtypes: Vec<&str> = w.dtypes.keys().map(String::as_str).collect();
            out.push_str(&format!(
                ": {} parameters in {} tensors ({}, {:.1} MiB)",
                thousands(w.parameters),
                w.tensors,
                dtypes.join("/"),
                w.bytes as f64 / (1024.0 * 1024.0)
            ));
        }
        out.push('\n');
        render_details(&mut out, &c.details, "  ");
        if let Some(error) = &c.error {
            out.push_str(&format!("  error: {error}\n"));
        }
    }
    out.push_str(&format!(
        "\ntotal: {} parameters\n",
        thousands(report.total_parameters)
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }

    #[test]
    fn details_serialise_in_insertion_order() {
        let mut d = Details::default();
        d.add("zeta", 1);
        d.add("alpha", "x");
        assert_eq!(
            serde_json::to_string(&d).unwrap(),
            r#"{"zeta":1,"alpha":"x"}"#
        );
    }

    #[test]
    fn a_folder_that_is_neither_model_nor_component_is_an_error() {
        let dir = std::env::temp_dir().join(format!("mvcustom-inspect-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let err = inspect(&dir).unwrap_err().to_string();
        assert!(err.contains("neither a model folder"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            inspect(&dir)
                .unwrap_err()
                .to_string()
                .contains("folder not found")
        );
    }
}
