//! Arguments shared by several commands (compute device and precision, technique switches)
//! and the parsers of structured values (`--orbit 8,15,2.5`, `--target 0,0.5,0`), whose
//! errors name the argument, the expected form and the value given.

use candle_core::{DType, Device};
use clap::{Args, ValueEnum};
use glam::Vec3;
use serde::Serialize;

use super::error::{CliError, Result};
use crate::model::ComputeSettings;
use crate::model::hook::{HookKind, LevelSelection};
use crate::mvcustom::{ClcSettings, DfrSettings, Techniques};
use crate::render::AnchorMesh;

/// `--orbit views,elevation_deg,radius`: cameras evenly spaced around a target.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct OrbitSpec {
    /// Number of views.
    pub views: u32,
    /// Elevation above the horizontal plane, degrees (positive: looking down).
    pub elevation_deg: f32,
    /// Distance from the target.
    pub radius: f32,
}

/// `--translation views,sx,sy,sz,ex,ey,ez`: cameras along a straight segment.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct TranslationSpec {
    /// Number of views.
    pub views: u32,
    /// First camera centre.
    pub start: Vec3,
    /// Last camera centre.
    pub end: Vec3,
}

/// Splits `text` at commas into exactly `N` finite numbers; the error describes `form`.
fn numbers<const N: usize>(text: &str, form: &str) -> std::result::Result<[f32; N], String> {
    let bad = |why: String| format!("expects {form}, got {text:?} ({why})");
    let parts: Vec<&str> = text.split(',').map(str::trim).collect();
    if parts.len() != N {
        return Err(bad(format!("{} values instead of {N}", parts.len())));
    }
    let mut out = [0.0; N];
    for (slot, part) in out.iter_mut().zip(&parts) {
        let value: f32 = part
            .parse()
            .map_err(|_| bad(format!("{part:?} is not a number")))?;
        if !value.is_finite() {
            return Err(bad(format!("{part:?} is not finite")));
        }
        *slot = value;
    }
    Ok(out)
}

/// A view count: a whole number of at least 1.
fn view_count(value: f32, form: &str, text: &str) -> std::result::Result<u32, String> {
    if value >= 1.0 && value.fract() == 0.0 && value <= u32::MAX as f32 {
        Ok(value as u32)
    } else {
        Err(format!(
            "expects {form}, got {text:?} (views must be a whole number of at least 1)"
        ))
    }
}

/// Parses `--orbit views,elevation_deg,radius`.
pub fn parse_orbit(text: &str) -> std::result::Result<OrbitSpec, String> {
    const FORM: &str = "views,elevation_deg,radius";
    let [views, elevation_deg, radius] = numbers::<3>(text, FORM)?;
    let views = view_count(views, FORM, text)?;
    if radius <= 0.0 {
        return Err(format!("expects {FORM}, got {text:?} (radius must be > 0)"));
    }
    if elevation_deg.abs() >= 90.0 {
        return Err(format!(
            "expects {FORM}, got {text:?} (elevation must lie strictly between -90 and 90 degrees)"
        ));
    }
    Ok(OrbitSpec {
        views,
        elevation_deg,
        radius,
    })
}

/// Parses `--translation views,sx,sy,sz,ex,ey,ez`.
pub fn parse_translation(text: &str) -> std::result::Result<TranslationSpec, String> {
    const FORM: &str = "views,start_x,start_y,start_z,end_x,end_y,end_z";
    let [views, sx, sy, sz, ex, ey, ez] = numbers::<7>(text, FORM)?;
    Ok(TranslationSpec {
        views: view_count(views, FORM, text)?,
        start: Vec3::new(sx, sy, sz),
        end: Vec3::new(ex, ey, ez),
    })
}

/// Parses a point or direction `x,y,z`.
pub fn parse_vec3(text: &str) -> std::result::Result<Vec3, String> {
    numbers::<3>(text, "x,y,z").map(Vec3::from)
}

/// Parses a vertical field of view in degrees, strictly between 0 and 180.
pub fn parse_fov_deg(text: &str) -> std::result::Result<f32, String> {
    match text.trim().parse::<f32>() {
        Ok(v) if v > 0.0 && v < 180.0 => Ok(v),
        _ => Err(format!(
            "expects a field of view in degrees between 0 and 180, got {text:?}"
        )),
    }
}

/// Parses a fraction of the denoising steps, in [0, 1].
pub fn parse_fraction(text: &str) -> std::result::Result<f32, String> {
    match text.trim().parse::<f32>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("expects a fraction between 0 and 1, got {text:?}")),
    }
}

/// Where networks run: `cpu`, `cuda[:N]` or `metal[:N]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceArg {
    /// The CPU.
    Cpu,
    /// The NVIDIA GPU of this ordinal (needs the crate's `cuda` feature).
    Cuda(usize),
    /// The Apple GPU of this ordinal (needs the crate's `metal` feature).
    Metal(usize),
}

/// Parses `--device`.
pub fn parse_device(text: &str) -> std::result::Result<DeviceArg, String> {
    let bad = || format!("expects cpu, cuda, cuda:N, metal or metal:N, got {text:?}");
    let (kind, ordinal) = match text.split_once(':') {
        Some((kind, n)) => (kind, Some(n.parse::<usize>().map_err(|_| bad())?)),
        None => (text, None),
    };
    match (kind, ordinal) {
        ("cpu", None) => Ok(DeviceArg::Cpu),
        ("cuda", n) => Ok(DeviceArg::Cuda(n.unwrap_or(0))),
        ("metal", n) => Ok(DeviceArg::Metal(n.unwrap_or(0))),
        _ => Err(bad()),
    }
}

impl std::fmt::Display for DeviceArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceArg::Cpu => write!(f, "cpu"),
            DeviceArg::Cuda(n) => write!(f, "cuda:{n}"),
            DeviceArg::Metal(n) => write!(f, "metal:{n}"),
        }
    }
}

/// The precision networks compute in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DTypeArg {
    /// 32-bit floats (the reference; the default).
    F32,
    /// 16-bit floats.
    F16,
    /// bfloat16.
    Bf16,
}

impl From<DTypeArg> for DType {
    fn from(value: DTypeArg) -> Self {
        match value {
            DTypeArg::F32 => DType::F32,
            DTypeArg::F16 => DType::F16,
            DTypeArg::Bf16 => DType::BF16,
        }
    }
}

/// `--device` and `--dtype`.
#[derive(Clone, Debug, Args, Serialize)]
#[command(next_help_heading = "Compute")]
pub struct ComputeArgs {
    /// Where the networks run: cpu, cuda[:N] or metal[:N] (GPUs need the crate built with
    /// the `cuda` or `metal` feature).
    #[arg(long, value_name = "DEVICE", default_value = "cpu", value_parser = parse_device)]
    pub device: DeviceArg,
    /// Precision of weights and activations.
    #[arg(long, value_enum, value_name = "DTYPE", default_value = "f32")]
    pub dtype: DTypeArg,
}

impl ComputeArgs {
    /// The device and dtype, or an error naming `--device` when it cannot be opened.
    pub fn settings(&self) -> Result<ComputeSettings> {
        let device = match self.device {
            DeviceArg::Cpu => Ok(Device::Cpu),
            DeviceArg::Cuda(n) => Device::new_cuda(n),
            DeviceArg::Metal(n) => Device::new_metal(n),
        }
        .map_err(|e| {
            CliError::argument(
                "--device",
                format!("{}: cannot be opened: {e}", self.device),
            )
        })?;
        Ok(ComputeSettings {
            device,
            dtype: self.dtype.into(),
        })
    }
}

/// A `--dfr-layers` item: `spatial-block`, `motion-module` or `cross-attention`.
pub fn parse_hook_kind(text: &str) -> std::result::Result<HookKind, String> {
    match text.trim() {
        "spatial-block" => Ok(HookKind::SpatialBlock),
        "motion-module" => Ok(HookKind::MotionModule),
        "cross-attention" => Ok(HookKind::SpatialCrossAttention),
        other => Err(format!(
            "expects spatial-block, motion-module or cross-attention, got {other:?}"
        )),
    }
}

/// `--dfr-levels`: `coarsest:N` (N ≥ 1) or level numbers, comma-separated (0: the latent grid).
pub fn parse_levels(text: &str) -> std::result::Result<LevelSelection, String> {
    let bad = || format!("expects coarsest:N (N ≥ 1) or levels such as 0,1, got {text:?}");
    if let Some(n) = text.trim().strip_prefix("coarsest:") {
        return match n.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(LevelSelection::Coarsest(n)),
            _ => Err(bad()),
        };
    }
    let levels = text
        .split(',')
        .map(|level| level.trim().parse::<usize>())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|_| bad())?;
    Ok(LevelSelection::Levels(levels))
}

/// `--dfr-max-surface-angle`: degrees in (0, 90).
pub fn parse_surface_angle(text: &str) -> std::result::Result<f32, String> {
    match text.trim().parse::<f32>() {
        Ok(v) if AnchorMesh::is_valid_surface_angle(v) => Ok(v),
        _ => Err(format!("expects an angle in (0, 90) degrees, got {text:?}")),
    }
}

/// Where depth-aware feature rendering works — which UNet layers, and which anchor-mesh
/// triangles it drops — for ablating those choices; unset options keep [`DfrSettings`]'s
/// defaults. `generate`, `bench` and `eval` (its DFR rows) take them.
#[derive(Clone, Debug, Default, Args, Serialize)]
#[command(next_help_heading = "DFR layers")]
pub struct DfrLayerArgs {
    /// The kinds of UNet layer whose outputs DFR replaces, comma-separated: spatial-block,
    /// motion-module, cross-attention (default: spatial-block,motion-module).
    #[arg(
        long = "dfr-layers",
        value_name = "KINDS",
        value_delimiter = ',',
        value_parser = parse_hook_kind
    )]
    pub kinds: Vec<HookKind>,
    /// The up-path levels DFR works at: coarsest:N, or level numbers such as 0,1 (0: the latent
    /// grid; default: coarsest:3).
    #[arg(long = "dfr-levels", value_name = "LEVELS", value_parser = parse_levels)]
    pub levels: Option<LevelSelection>,
    /// Anchor-mesh triangles seen more edge-on than this many degrees are dropped as depth
    /// discontinuities (default: 80).
    #[arg(long = "dfr-max-surface-angle", value_name = "DEG", value_parser = parse_surface_angle)]
    pub max_surface_angle_deg: Option<f32>,
}

impl DfrLayerArgs {
    /// Whether any option is given.
    pub fn is_set(&self) -> bool {
        !self.kinds.is_empty() || self.levels.is_some() || self.max_surface_angle_deg.is_some()
    }

    /// `settings` with the given options applied.
    pub fn apply(&self, settings: DfrSettings) -> DfrSettings {
        let mut layers = settings.layers;
        if !self.kinds.is_empty() {
            layers.kinds = self.kinds.clone();
        }
        if let Some(levels) = &self.levels {
            layers.levels = levels.clone();
        }
        DfrSettings {
            layers,
            max_surface_angle_deg: self
                .max_surface_angle_deg
                .unwrap_or(settings.max_surface_angle_deg),
            ..settings
        }
    }
}

/// MVCustom's technique switches, each of which can be turned off for ablation.
#[derive(Clone, Debug, Default, Args, Serialize)]
#[command(next_help_heading = "Techniques")]
pub struct TechniqueArgs {
    /// Use AnimateDiff's 1-D temporal attention instead of dense spatio-temporal attention.
    #[arg(long)]
    pub no_dense_attention: bool,
    /// Restrict dense attention to a window of this radius, in feature pixels.
    #[arg(long, value_name = "R", conflicts_with = "no_dense_attention")]
    pub attention_window: Option<usize>,
    /// Switch the subject's pose-conditioned blocks off.
    #[arg(long)]
    pub no_pose_blocks: bool,
    /// Switch depth-aware feature rendering (DFR) off.
    #[arg(long)]
    pub no_dfr: bool,
    /// The DFR anchor view (default: the middle view).
    #[arg(long, value_name = "INDEX", conflicts_with = "no_dfr")]
    pub anchor_view: Option<usize>,
    /// Fraction of the steps, from the first, during which DFR replaces features.
    #[arg(long, value_name = "F", conflicts_with = "no_dfr", value_parser = parse_fraction)]
    pub dfr_fraction: Option<f32>,
    /// Where DFR works (layers, mesh).
    #[command(flatten)]
    pub dfr_layers: DfrLayerArgs,
    /// Switch consistency-aware latent completion (CLC) off.
    #[arg(long)]
    pub no_clc: bool,
    /// Fraction of the steps, from the first, during which CLC re-noises disoccluded latents.
    #[arg(long, value_name = "F", conflicts_with = "no_clc", value_parser = parse_fraction)]
    pub clc_fraction: Option<f32>,
}

impl TechniqueArgs {
    /// The switches as the pipeline's [`Techniques`].
    pub fn techniques(&self) -> Techniques {
        let dfr = (!self.no_dfr).then(|| {
            let defaults = self.dfr_layers.apply(DfrSettings::default());
            DfrSettings {
                anchor_view: self.anchor_view,
                step_fraction: self.dfr_fraction.unwrap_or(defaults.step_fraction),
                ..defaults
            }
        });
        let clc = (!self.no_clc).then(|| ClcSettings {
            step_fraction: self
                .clc_fraction
                .unwrap_or(ClcSettings::default().step_fraction),
            ..ClcSettings::default()
        });
        Techniques {
            dense_attention: !self.no_dense_attention,
            attention_window: self.attention_window,
            pose_blocks: !self.no_pose_blocks,
            dfr,
            clc,
        }
    }

    /// Checks the switches against the number of views.
    pub fn validate(&self, views: usize) -> Result<()> {
        if self.no_dfr && self.dfr_layers.is_set() {
            return Err(CliError::argument(
                "--no-dfr",
                "switches DFR off: --dfr-layers, --dfr-levels and --dfr-max-surface-angle \
                 would have no effect",
            ));
        }
        match self.anchor_view {
            Some(anchor) if anchor >= views => Err(CliError::argument(
                "--anchor-view",
                format!(
                    "{anchor} is out of range for {views} views (0 to {})",
                    views.saturating_sub(1)
                ),
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orbit_specs_parse_and_bad_ones_name_the_form_and_value() {
        assert_eq!(
            parse_orbit("8, 15,2.5").unwrap(),
            OrbitSpec {
                views: 8,
                elevation_deg: 15.0,
                radius: 2.5
            }
        );
        for (text, why) in [
            ("8,x", "2 values instead of 3"),
            ("8,x,2", "\"x\" is not a number"),
            ("0,10,2", "at least 1"),
            ("2.5,10,2", "whole number"),
            ("4,10,-1", "radius must be > 0"),
            ("4,90,1", "between -90 and 90"),
            ("4,nan,1", "not finite"),
        ] {
            let err = parse_orbit(text).unwrap_err();
            assert!(err.contains("views,elevation_deg,radius"), "{err}");
            assert!(
                err.contains(&format!("{text:?}")) && err.contains(why),
                "{text}: {err}"
            );
        }
    }

    #[test]
    fn translations_and_vectors_parse() {
        let t = parse_translation("3,-1,0,-4,1,0,-4").unwrap();
        assert_eq!(t.views, 3);
        assert_eq!(t.start, Vec3::new(-1.0, 0.0, -4.0));
        assert_eq!(t.end, Vec3::new(1.0, 0.0, -4.0));
        assert!(
            parse_translation("3,1,2,3")
                .unwrap_err()
                .contains("4 values instead of 7")
        );
        assert_eq!(parse_vec3("0,0.5,-1").unwrap(), Vec3::new(0.0, 0.5, -1.0));
        assert!(parse_vec3("0,1").unwrap_err().contains("x,y,z"));
        assert_eq!(parse_fov_deg("50").unwrap(), 50.0);
        assert!(parse_fov_deg("180").is_err() && parse_fov_deg("0").is_err());
        assert_eq!(parse_fraction("0.7").unwrap(), 0.7);
        assert!(parse_fraction("1.5").is_err());
    }

    #[test]
    fn devices_parse() {
        assert_eq!(parse_device("cpu").unwrap(), DeviceArg::Cpu);
        assert_eq!(parse_device("cuda").unwrap(), DeviceArg::Cuda(0));
        assert_eq!(parse_device("cuda:1").unwrap(), DeviceArg::Cuda(1));
        assert_eq!(parse_device("metal:0").unwrap(), DeviceArg::Metal(0));
        for bad in ["gpu", "cpu:1", "cuda:x"] {
            assert!(parse_device(bad).unwrap_err().contains(bad));
        }
        assert_eq!(DeviceArg::Cuda(2).to_string(), "cuda:2");
    }

    #[test]
    fn technique_switches_map_onto_techniques() {
        assert_eq!(TechniqueArgs::default().techniques(), Techniques::default());
        let off = TechniqueArgs {
            no_dense_attention: true,
            no_pose_blocks: true,
            no_dfr: true,
            no_clc: true,
            ..Default::default()
        };
        assert_eq!(off.techniques(), Techniques::none());
        let tuned = TechniqueArgs {
            attention_window: Some(3),
            anchor_view: Some(1),
            dfr_fraction: Some(0.5),
            clc_fraction: Some(0.1),
            ..Default::default()
        }
        .techniques();
        assert_eq!(tuned.attention_window, Some(3));
        let dfr = tuned.dfr.unwrap();
        assert_eq!((dfr.anchor_view, dfr.step_fraction), (Some(1), 0.5));
        assert_eq!(
            dfr.max_surface_angle_deg,
            DfrSettings::default().max_surface_angle_deg
        );
        assert_eq!(tuned.clc.unwrap().step_fraction, 0.1);
        let anchored = TechniqueArgs {
            anchor_view: Some(4),
            ..Default::default()
        };
        assert!(anchored.validate(5).is_ok());
        let err = anchored.validate(4).unwrap_err().to_string();
        assert!(
            err.starts_with("--anchor-view 4 is out of range for 4 views"),
            "{err}"
        );
    }

    #[test]
    fn dfr_layer_options_parse_and_override_only_what_they_name() {
        assert_eq!(
            parse_hook_kind(" motion-module").unwrap(),
            HookKind::MotionModule
        );
        assert!(
            parse_hook_kind("attention")
                .unwrap_err()
                .contains("\"attention\"")
        );
        assert_eq!(
            parse_levels("coarsest:2").unwrap(),
            LevelSelection::Coarsest(2)
        );
        assert_eq!(
            parse_levels("0, 2").unwrap(),
            LevelSelection::Levels(vec![0, 2])
        );
        for bad in ["coarsest:0", "coarsest:x", "1,,2", "-1", ""] {
            assert!(
                parse_levels(bad).unwrap_err().contains("coarsest:N"),
                "{bad}"
            );
        }
        assert_eq!(parse_surface_angle("75").unwrap(), 75.0);
        for bad in ["0", "90", "nan", "x"] {
            assert!(parse_surface_angle(bad).is_err(), "{bad}");
        }

        let defaults = DfrSettings::default();
        assert!(!DfrLayerArgs::default().is_set());
        assert_eq!(DfrLayerArgs::default().apply(defaults.clone()), defaults);
        let kinds_only = DfrLayerArgs {
            kinds: vec![HookKind::SpatialBlock],
            ..Default::default()
        };
        let applied = kinds_only.apply(defaults.clone());
        assert_eq!(applied.layers.kinds, vec![HookKind::SpatialBlock]);
        assert_eq!(applied.layers.levels, defaults.layers.levels);
        assert_eq!(
            applied.max_surface_angle_deg,
            defaults.max_surface_angle_deg
        );
        let all = DfrLayerArgs {
            kinds: vec![HookKind::MotionModule],
            levels: Some(LevelSelection::Levels(vec![1])),
            max_surface_angle_deg: Some(70.0),
        };
        let techniques = TechniqueArgs {
            dfr_fraction: Some(0.5),
            dfr_layers: all.clone(),
            ..Default::default()
        }
        .techniques();
        let dfr = techniques.dfr.unwrap();
        assert_eq!(dfr.layers.kinds, vec![HookKind::MotionModule]);
        assert_eq!(dfr.layers.levels, LevelSelection::Levels(vec![1]));
        assert_eq!(dfr.layers.paths, defaults.layers.paths);
        assert_eq!((dfr.max_surface_angle_deg, dfr.step_fraction), (70.0, 0.5));
        let contradictory = TechniqueArgs {
            no_dfr: true,
            dfr_layers: all,
            ..Default::default()
        };
        let err = contradictory.validate(4).unwrap_err().to_string();
        assert!(
            err.starts_with("--no-dfr") && err.contains("--dfr-layers"),
            "{err}"
        );
    }
}
