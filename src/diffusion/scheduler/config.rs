//! Scheduler configurations as diffusers writes them in `scheduler/scheduler_config.json`.
//! `_class_name` picks the scheduler; every field this implementation reads has the default of
//! the diffusers class; unknown extra fields are ignored; a known field with a value outside
//! what is implemented is a
//! [`DiffusionError::UnsupportedConfig`](crate::diffusion::DiffusionError::UnsupportedConfig) naming file, field and value.

use std::path::Path;

use super::fields::ConfigFields;
use crate::diffusion::error::Result;
use crate::model::{ComponentDir, ModelError};

/// The file name of a scheduler configuration inside its component folder.
pub const SCHEDULER_CONFIG_FILE: &str = "scheduler_config.json";

/// How the training noise schedule β_1…β_T is laid out (`beta_schedule`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BetaSchedule {
    /// `linear`: β evenly spaced from `beta_start` to `beta_end`.
    Linear,
    /// `scaled_linear`: √β evenly spaced (Stable Diffusion's schedule).
    ScaledLinear,
    /// `squaredcos_cap_v2`: the cosine schedule of improved DDPM, β capped at 0.999.
    SquaredCosCapV2,
}

/// What the network predicts (`prediction_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PredictionType {
    /// `epsilon`: the added noise ε.
    Epsilon,
    /// `v_prediction`: the velocity v = √ᾱ ε − √(1−ᾱ) x₀.
    VPrediction,
    /// `sample`: the clean sample x₀ itself.
    Sample,
}

/// How inference timesteps are picked among the training steps (`timestep_spacing`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimestepSpacing {
    /// `leading`: multiples of ⌊T/n⌋ from 0, plus `steps_offset`.
    Leading,
    /// `trailing`: counted back from T in steps of T/n, minus one.
    Trailing,
    /// `linspace`: evenly spaced from 0 to T−1, rounded.
    Linspace,
}

/// The noise level after the last step of sigma-based schedulers (`final_sigmas_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinalSigmas {
    /// `zero`: the last step lands on the clean sample.
    Zero,
    /// `sigma_min`: the last step lands on the smallest training noise level.
    SigmaMin,
}

/// The timestep values an Euler scheduler hands to the network (`timestep_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimestepType {
    /// `discrete`: training-step indices (possibly fractional).
    Discrete,
    /// `continuous`: with `v_prediction`, 0.25·ln σ (EDM-style models); otherwise as discrete.
    Continuous,
}

/// The second-order update of DPM-Solver++ (`solver_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SolverType {
    /// `midpoint` (diffusers' default; `logrho`, `bh1` and `bh2` map to it as in diffusers).
    Midpoint,
    /// `heun`.
    Heun,
}

/// Which scheduler a configuration describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchedulerKind {
    /// `DDIMScheduler`.
    Ddim,
    /// `EulerDiscreteScheduler`.
    EulerDiscrete,
    /// `DPMSolverMultistepScheduler`.
    DpmSolverMultistep,
}

impl SchedulerKind {
    /// The diffusers class name (`_class_name`).
    pub fn class_name(self) -> &'static str {
        match self {
            SchedulerKind::Ddim => "DDIMScheduler",
            SchedulerKind::EulerDiscrete => "EulerDiscreteScheduler",
            SchedulerKind::DpmSolverMultistep => "DPMSolverMultistepScheduler",
        }
    }
}

/// The fields every supported scheduler shares: the training noise schedule and the way
/// inference timesteps are chosen.
#[derive(Clone, Debug, PartialEq)]
pub struct CommonConfig {
    /// Number of training steps T (`num_train_timesteps`).
    pub num_train_timesteps: usize,
    /// First β of `linear` / `scaled_linear` (`beta_start`).
    pub beta_start: f64,
    /// Last β of `linear` / `scaled_linear` (`beta_end`).
    pub beta_end: f64,
    /// The β layout (`beta_schedule`).
    pub beta_schedule: BetaSchedule,
    /// Explicit β values overriding `beta_schedule` (`trained_betas`).
    pub trained_betas: Option<Vec<f64>>,
    /// Rescale β so the last step has zero SNR (`rescale_betas_zero_snr`).
    pub rescale_betas_zero_snr: bool,
    /// What the network predicts (`prediction_type`).
    pub prediction_type: PredictionType,
    /// How inference timesteps are spaced (`timestep_spacing`).
    pub timestep_spacing: TimestepSpacing,
    /// Added to `leading` timesteps (`steps_offset`).
    pub steps_offset: usize,
}

impl CommonConfig {
    /// diffusers' defaults, with the class-dependent default `spacing`.
    fn with_spacing(spacing: TimestepSpacing) -> Self {
        Self {
            num_train_timesteps: 1000,
            beta_start: 0.0001,
            beta_end: 0.02,
            beta_schedule: BetaSchedule::Linear,
            trained_betas: None,
            rescale_betas_zero_snr: false,
            prediction_type: PredictionType::Epsilon,
            timestep_spacing: spacing,
            steps_offset: 0,
        }
    }

    fn read(f: &ConfigFields, default_spacing: TimestepSpacing) -> Result<Self> {
        let d = Self::with_spacing(default_spacing);
        // Dynamic thresholding (Imagen) is not implemented by any scheduler here.
        f.require_bool("thresholding", false)?;
        let cfg = Self {
            num_train_timesteps: f.usize_or("num_train_timesteps", d.num_train_timesteps)?,
            beta_start: f.f64_or("beta_start", d.beta_start)?,
            beta_end: f.f64_or("beta_end", d.beta_end)?,
            beta_schedule: f.choice(
                "beta_schedule",
                d.beta_schedule,
                &[
                    ("linear", BetaSchedule::Linear),
                    ("scaled_linear", BetaSchedule::ScaledLinear),
                    ("squaredcos_cap_v2", BetaSchedule::SquaredCosCapV2),
                ],
            )?,
            trained_betas: f.opt_f64_list("trained_betas")?,
            rescale_betas_zero_snr: f
                .bool_or("rescale_betas_zero_snr", d.rescale_betas_zero_snr)?,
            prediction_type: f.choice(
                "prediction_type",
                d.prediction_type,
                &[
                    ("epsilon", PredictionType::Epsilon),
                    ("v_prediction", PredictionType::VPrediction),
                    ("sample", PredictionType::Sample),
                ],
            )?,
            timestep_spacing: f.choice(
                "timestep_spacing",
                d.timestep_spacing,
                &[
                    ("leading", TimestepSpacing::Leading),
                    ("trailing", TimestepSpacing::Trailing),
                    ("linspace", TimestepSpacing::Linspace),
                ],
            )?,
            steps_offset: f.usize_or("steps_offset", d.steps_offset)?,
        };
        cfg.validate(f)?;
        Ok(cfg)
    }

    fn validate(&self, f: &ConfigFields) -> Result<()> {
        if self.num_train_timesteps < 2 {
            return Err(f.invalid(
                "num_train_timesteps",
                format!("{} is below 2", self.num_train_timesteps),
            ));
        }
        if let Some(betas) = &self.trained_betas {
            if betas.len() != self.num_train_timesteps {
                return Err(f.invalid(
                    "trained_betas",
                    format!(
                        "{} values for {} training steps",
                        betas.len(),
                        self.num_train_timesteps
                    ),
                ));
            }
            if let Some((i, b)) = betas
                .iter()
                .enumerate()
                .find(|(_, b)| !(0.0..1.0).contains(*b))
            {
                return Err(f.invalid("trained_betas", format!("item {i} = {b} is outside [0, 1)")));
            }
        } else if self.beta_schedule != BetaSchedule::SquaredCosCapV2 {
            for (field, value) in [("beta_start", self.beta_start), ("beta_end", self.beta_end)] {
                if !(0.0..1.0).contains(&value) {
                    return Err(f.invalid(field, format!("{value} is outside [0, 1)")));
                }
            }
        }
        Ok(())
    }
}

fn final_sigmas(f: &ConfigFields) -> Result<FinalSigmas> {
    f.choice(
        "final_sigmas_type",
        FinalSigmas::Zero,
        &[
            ("zero", FinalSigmas::Zero),
            ("sigma_min", FinalSigmas::SigmaMin),
        ],
    )
}

/// The ends of a Karras σ ramp (`sigma_min`, `sigma_max`); each defaults to the end of the
/// schedule's own σ range. diffusers keeps these fields even for classes that do not declare
/// them (a configuration shared between compatible schedulers), so both σ-based schedulers
/// read them.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SigmaRange {
    /// The smallest σ of the ramp (`sigma_min`).
    pub min: Option<f64>,
    /// The largest σ of the ramp (`sigma_max`).
    pub max: Option<f64>,
}

impl SigmaRange {
    fn read(f: &ConfigFields) -> Result<Self> {
        let positive = |field: &str| -> Result<Option<f64>> {
            match f.opt_f64(field)? {
                Some(v) if !(v.is_finite() && v > 0.0) => {
                    Err(f.invalid(field, format!("{v} is not a positive number")))
                }
                value => Ok(value),
            }
        };
        Ok(Self {
            min: positive("sigma_min")?,
            max: positive("sigma_max")?,
        })
    }
}

/// `DDIMScheduler` settings.
#[derive(Clone, Debug, PartialEq)]
pub struct DdimConfig {
    /// Noise schedule and timestep spacing (default spacing: `leading`).
    pub common: CommonConfig,
    /// Clamp the predicted x₀ to ±`clip_sample_range` (`clip_sample`).
    pub clip_sample: bool,
    /// The clamp bound (`clip_sample_range`).
    pub clip_sample_range: f64,
    /// ᾱ after the last step: 1 when true, ᾱ₀ otherwise (`set_alpha_to_one`).
    pub set_alpha_to_one: bool,
}

impl Default for DdimConfig {
    fn default() -> Self {
        Self {
            common: CommonConfig::with_spacing(TimestepSpacing::Leading),
            clip_sample: true,
            clip_sample_range: 1.0,
            set_alpha_to_one: true,
        }
    }
}

impl DdimConfig {
    fn read(f: &ConfigFields) -> Result<Self> {
        let d = Self::default();
        Ok(Self {
            common: CommonConfig::read(f, d.common.timestep_spacing)?,
            clip_sample: f.bool_or("clip_sample", d.clip_sample)?,
            clip_sample_range: f.f64_or("clip_sample_range", d.clip_sample_range)?,
            set_alpha_to_one: f.bool_or("set_alpha_to_one", d.set_alpha_to_one)?,
        })
    }
}

/// `EulerDiscreteScheduler` settings.
#[derive(Clone, Debug, PartialEq)]
pub struct EulerConfig {
    /// Noise schedule and timestep spacing (default spacing: `linspace`).
    pub common: CommonConfig,
    /// Karras et al. σ spacing (`use_karras_sigmas`).
    pub use_karras_sigmas: bool,
    /// The Karras σ range (`sigma_min`, `sigma_max`).
    pub sigma_range: SigmaRange,
    /// Timestep values handed to the network (`timestep_type`).
    pub timestep_type: TimestepType,
    /// σ after the last step (`final_sigmas_type`).
    pub final_sigmas_type: FinalSigmas,
}

impl Default for EulerConfig {
    fn default() -> Self {
        Self {
            common: CommonConfig::with_spacing(TimestepSpacing::Linspace),
            use_karras_sigmas: false,
            sigma_range: SigmaRange::default(),
            timestep_type: TimestepType::Discrete,
            final_sigmas_type: FinalSigmas::Zero,
        }
    }
}

impl EulerConfig {
    fn read(f: &ConfigFields) -> Result<Self> {
        let d = Self::default();
        f.choice("interpolation_type", (), &[("linear", ())])?;
        f.require_bool("use_exponential_sigmas", false)?;
        f.require_bool("use_beta_sigmas", false)?;
        Ok(Self {
            common: CommonConfig::read(f, d.common.timestep_spacing)?,
            use_karras_sigmas: f.bool_or("use_karras_sigmas", d.use_karras_sigmas)?,
            sigma_range: SigmaRange::read(f)?,
            timestep_type: f.choice(
                "timestep_type",
                d.timestep_type,
                &[
                    ("discrete", TimestepType::Discrete),
                    ("continuous", TimestepType::Continuous),
                ],
            )?,
            final_sigmas_type: final_sigmas(f)?,
        })
    }
}

/// `DPMSolverMultistepScheduler` settings (DPM-Solver++ 1S / 2M).
#[derive(Clone, Debug, PartialEq)]
pub struct DpmSolverConfig {
    /// Noise schedule and timestep spacing (default spacing: `linspace`).
    pub common: CommonConfig,
    /// 1 (DPM-Solver++ 1S, i.e. DDIM) or 2 (DPM-Solver++ 2M) (`solver_order`).
    pub solver_order: usize,
    /// The second-order update (`solver_type`).
    pub solver_type: SolverType,
    /// Use lower orders for the last steps of short schedules (`lower_order_final`).
    pub lower_order_final: bool,
    /// First order on the very last step (`euler_at_final`).
    pub euler_at_final: bool,
    /// σ after the last step (`final_sigmas_type`).
    pub final_sigmas_type: FinalSigmas,
    /// Karras et al. σ spacing (`use_karras_sigmas`).
    pub use_karras_sigmas: bool,
    /// The Karras σ range (`sigma_min`, `sigma_max`).
    pub sigma_range: SigmaRange,
    /// Stop the schedule where the log-SNR λ falls below this (`lambda_min_clipped`).
    pub lambda_min_clipped: f64,
}

impl Default for DpmSolverConfig {
    fn default() -> Self {
        Self {
            common: CommonConfig::with_spacing(TimestepSpacing::Linspace),
            solver_order: 2,
            solver_type: SolverType::Midpoint,
            lower_order_final: true,
            euler_at_final: false,
            final_sigmas_type: FinalSigmas::Zero,
            use_karras_sigmas: false,
            sigma_range: SigmaRange::default(),
            lambda_min_clipped: f64::NEG_INFINITY,
        }
    }
}

impl DpmSolverConfig {
    fn read(f: &ConfigFields) -> Result<Self> {
        let d = Self::default();
        // diffusers itself maps `deis` to DPM-Solver++.
        f.choice("algorithm_type", (), &[("dpmsolver++", ()), ("deis", ())])?;
        for flag in [
            "use_exponential_sigmas",
            "use_beta_sigmas",
            "use_lu_lambdas",
            "use_flow_sigmas",
            "use_dynamic_shifting",
        ] {
            f.require_bool(flag, false)?;
        }
        if let Some(variance) = f.opt_str("variance_type")? {
            return Err(f.unsupported("variance_type", format!("{variance:?}")));
        }
        let solver_order = f.usize_or("solver_order", d.solver_order)?;
        if !(1..=2).contains(&solver_order) {
            return Err(f.unsupported("solver_order", solver_order));
        }
        Ok(Self {
            common: CommonConfig::read(f, d.common.timestep_spacing)?,
            solver_order,
            solver_type: f.choice(
                "solver_type",
                d.solver_type,
                &[
                    ("midpoint", SolverType::Midpoint),
                    ("heun", SolverType::Heun),
                    ("logrho", SolverType::Midpoint),
                    ("bh1", SolverType::Midpoint),
                    ("bh2", SolverType::Midpoint),
                ],
            )?,
            lower_order_final: f.bool_or("lower_order_final", d.lower_order_final)?,
            euler_at_final: f.bool_or("euler_at_final", d.euler_at_final)?,
            final_sigmas_type: final_sigmas(f)?,
            use_karras_sigmas: f.bool_or("use_karras_sigmas", d.use_karras_sigmas)?,
            sigma_range: SigmaRange::read(f)?,
            lambda_min_clipped: f.f64_or("lambda_min_clipped", d.lambda_min_clipped)?,
        })
    }
}

/// A parsed `scheduler_config.json`: which scheduler, with its settings.
#[derive(Clone, Debug, PartialEq)]
pub enum SchedulerConfig {
    /// `DDIMScheduler`.
    Ddim(DdimConfig),
    /// `EulerDiscreteScheduler`.
    EulerDiscrete(EulerConfig),
    /// `DPMSolverMultistepScheduler`.
    DpmSolverMultistep(DpmSolverConfig),
}

impl SchedulerConfig {
    /// The settings every scheduler shares: the training noise schedule and what the network
    /// predicts (training uses these too).
    pub fn common(&self) -> &CommonConfig {
        match self {
            Self::Ddim(c) => &c.common,
            Self::EulerDiscrete(c) => &c.common,
            Self::DpmSolverMultistep(c) => &c.common,
        }
    }

    /// Reads `scheduler_config.json` from a component folder (usually `<model>/scheduler`).
    pub fn from_dir(dir: &ComponentDir) -> Result<Self> {
        Self::from_file(&dir.file(SCHEDULER_CONFIG_FILE)?)
    }

    /// Reads a scheduler configuration file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json_str(&text, path)
    }

    /// Parses the text of a scheduler configuration; `path` is only used in error messages.
    pub fn from_json_str(text: &str, path: &Path) -> Result<Self> {
        let f = ConfigFields::parse(text, path)?;
        let class = f.opt_str("_class_name")?.ok_or_else(|| {
            f.invalid(
                "_class_name",
                "missing: cannot tell which scheduler to build",
            )
        })?;
        match class {
            "DDIMScheduler" => DdimConfig::read(&f).map(Self::Ddim),
            "EulerDiscreteScheduler" => EulerConfig::read(&f).map(Self::EulerDiscrete),
            "DPMSolverMultistepScheduler" => {
                DpmSolverConfig::read(&f).map(Self::DpmSolverMultistep)
            }
            other => Err(f.unsupported("_class_name", format!("{other:?}"))),
        }
    }

    /// Which scheduler this configures.
    pub fn kind(&self) -> SchedulerKind {
        match self {
            SchedulerConfig::Ddim(_) => SchedulerKind::Ddim,
            SchedulerConfig::EulerDiscrete(_) => SchedulerKind::EulerDiscrete,
            SchedulerConfig::DpmSolverMultistep(_) => SchedulerKind::DpmSolverMultistep,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diffusion::error::DiffusionError;

    fn parse(text: &str) -> Result<SchedulerConfig> {
        SchedulerConfig::from_json_str(text, Path::new("m/scheduler/scheduler_config.json"))
    }

    #[test]
    fn class_defaults_follow_diffusers() {
        let SchedulerConfig::Ddim(ddim) = parse(r#"{"_class_name": "DDIMScheduler"}"#).unwrap()
        else {
            panic!("not DDIM")
        };
        assert_eq!(ddim, DdimConfig::default());
        assert_eq!(ddim.common.timestep_spacing, TimestepSpacing::Leading);
        assert!(ddim.clip_sample && ddim.set_alpha_to_one);
        let SchedulerConfig::DpmSolverMultistep(dpm) = parse(
            r#"{"_class_name": "DPMSolverMultistepScheduler", "lambda_min_clipped": -Infinity}"#,
        )
        .unwrap() else {
            panic!("not DPM")
        };
        assert_eq!(dpm, DpmSolverConfig::default());
    }

    #[test]
    fn unknown_fields_are_ignored_and_known_ones_read() {
        let cfg = parse(
            r#"{"_class_name": "EulerDiscreteScheduler", "_diffusers_version": "0.42.1",
                "something_new": [1, 2], "beta_schedule": "scaled_linear", "steps_offset": 1,
                "prediction_type": "v_prediction", "timestep_spacing": "trailing",
                "use_karras_sigmas": true, "sigma_min": null}"#,
        )
        .unwrap();
        let SchedulerConfig::EulerDiscrete(e) = cfg else {
            panic!("not Euler")
        };
        assert_eq!(e.common.beta_schedule, BetaSchedule::ScaledLinear);
        assert_eq!(e.common.steps_offset, 1);
        assert_eq!(e.common.prediction_type, PredictionType::VPrediction);
        assert_eq!(e.common.timestep_spacing, TimestepSpacing::Trailing);
        assert!(e.use_karras_sigmas);
        assert_eq!(e.sigma_range, SigmaRange::default());
    }

    #[test]
    fn unsupported_values_name_file_field_and_value() {
        for (text, field, value) in [
            (
                r#"{"_class_name": "PNDMScheduler"}"#,
                "_class_name",
                "PNDMScheduler",
            ),
            (
                r#"{"_class_name": "DDIMScheduler", "thresholding": true}"#,
                "thresholding",
                "true",
            ),
            (
                r#"{"_class_name": "DDIMScheduler", "prediction_type": "flow"}"#,
                "prediction_type",
                "flow",
            ),
            (
                r#"{"_class_name": "DPMSolverMultistepScheduler", "algorithm_type": "sde-dpmsolver++"}"#,
                "algorithm_type",
                "sde-dpmsolver++",
            ),
            (
                r#"{"_class_name": "DPMSolverMultistepScheduler", "solver_order": 3}"#,
                "solver_order",
                "3",
            ),
            (
                r#"{"_class_name": "EulerDiscreteScheduler", "interpolation_type": "log_linear"}"#,
                "interpolation_type",
                "log_linear",
            ),
        ] {
            let err = parse(text).unwrap_err();
            assert!(
                matches!(err, DiffusionError::UnsupportedConfig { .. }),
                "{err}"
            );
            let msg = err.to_string();
            assert!(msg.contains("m/scheduler/scheduler_config.json"), "{msg}");
            assert!(msg.contains(field) && msg.contains(value), "{msg}");
        }
    }

    #[test]
    fn inconsistent_values_are_invalid() {
        let err = parse(r#"{"_class_name": "DDIMScheduler", "num_train_timesteps": 3, "trained_betas": [0.1, 0.2]}"#)
            .unwrap_err();
        assert!(
            matches!(err, DiffusionError::InvalidConfig { ref field, .. } if field == "trained_betas")
        );
        let err =
            parse(r#"{"_class_name": "EulerDiscreteScheduler", "sigma_min": -1.0}"#).unwrap_err();
        assert!(
            matches!(err, DiffusionError::InvalidConfig { ref field, .. } if field == "sigma_min")
        );
        let err = parse(r#"{"beta_start": 0.1}"#).unwrap_err();
        assert!(
            matches!(err, DiffusionError::InvalidConfig { ref field, .. } if field == "_class_name")
        );
    }
}
