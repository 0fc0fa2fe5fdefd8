//! `mvcustom bench`: wall-clock seconds and peak resident memory per stage — model loading,
//! prompt encoding, one UNet forward, preparing a subject (its reference features), and a full
//! generation broken into the pipeline's own stages (the subject's rendered features, denoising
//! for N steps, decoding, and whatever stages the techniques add) — for a model folder and/or
//! the SD-1.5 configuration with random weights. The subject is a trained one (`--subject`) or
//! a synthetic one with freshly initialised weights (same cost). With DFR or CLC on, the anchor
//! view's depth is a synthetic plane through the orbit's centre, so both techniques run and are
//! timed (their cost does not depend on the depth values). Medians over `--repeat` runs; a table
//! on stdout and, with `--json`, a JSON file.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use candle_core::Tensor;
use clap::Args;
use serde::Serialize;

use super::args::{ComputeArgs, DTypeArg, DeviceArg, OrbitSpec, TechniqueArgs};
use super::atomic::write_json_atomic;
use super::cameras::{CameraSource, RigArgs};
use super::error::{CliError, Result};
use super::memory::{peak_rss_bytes, reset_peak};
use super::progress::Progress;
use super::report::ToolInfo;
use super::{resolve_model, sd15};
use crate::diffusion::{CancelToken, NoiseGenerator};
use crate::model::ComputeSettings;
use crate::model::motion::MotionAttention;
use crate::model::pose::PoseConfig;
use crate::model::tokenizer::ClipTokenizer;
use crate::mvcustom::subject::Reference;
use crate::mvcustom::{
    DiffusionComponents, GenerationEvent, GenerationRequest, MvError, MvPipeline, Stage, Subject,
    SubjectWeights, SubjectWeightsInfo, Techniques,
};
use crate::render::DepthMap;

/// The prompt benchmarks encode and generate.
const DEFAULT_PROMPT: &str = "a photo of a teddy bear sitting on a beach";

/// Arguments of `mvcustom bench`.
#[derive(Clone, Debug, Args)]
pub struct BenchArgs {
    /// Benchmark this diffusers-layout model folder.
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// Benchmark the SD-1.5 + AnimateDiff configuration (320/640/1280/1280 UNet, motion
    /// adapter v1.5-2, CLIP ViT-L text encoder, SD VAE) built with random weights in memory
    /// (about 6 GB in f32).
    #[arg(long)]
    pub sd15: bool,
    /// The CLIP tokenizer folder for --sd15 (default: the tokenizer/ of --model).
    #[arg(long, value_name = "DIR")]
    pub tokenizer: Option<PathBuf>,
    /// Denoising steps of the generation stage.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub steps: u32,
    /// Views generated together (the UNet's frames); 1 for models without motion modules.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    pub views: u32,
    /// Side of the square latent grid (the views are this times the VAE's downscale factor).
    #[arg(long, value_name = "SIDE", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
    pub latent: u32,
    /// Classifier-free guidance scale (above 1 doubles the UNet batch).
    #[arg(long, default_value_t = 7.5, allow_negative_numbers = true)]
    pub guidance: f64,
    /// Runs per stage; the table reports the median (loading runs once).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub repeat: u32,
    /// The prompt encoded and generated.
    #[arg(long, default_value = DEFAULT_PROMPT)]
    pub prompt: String,
    /// Seed of the noise (and of the random weights of --sd15).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// A trained subject (definition RON) to generate with on --model; without it a synthetic
    /// subject with fresh weights stands in (the cost is the same).
    #[arg(long, value_name = "FILE")]
    pub subject: Option<PathBuf>,
    /// Reference views of the synthetic subject; 0 benchmarks generation without a subject.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub subject_references: u32,
    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// No progress output on stderr.
    #[arg(long, short)]
    pub quiet: bool,
    /// Technique switches of the generation stage.
    #[command(flatten)]
    pub techniques: TechniqueArgs,
    /// Device and precision.
    #[command(flatten)]
    pub compute: ComputeArgs,
}

/// Statistics of one stage over its runs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StageStats {
    /// The stage (`load`, `encode_prompt`, `unet_forward`, `reference_features`, `generate`,
    /// then the generation's own stages such as `rendered_features`, `denoising` and
    /// `decoding`).
    pub stage: String,
    /// How many runs were timed.
    pub runs: usize,
    /// Median wall-clock seconds.
    pub median_seconds: f64,
    /// Fastest run.
    pub min_seconds: f64,
    /// Slowest run.
    pub max_seconds: f64,
    /// Largest peak resident memory of the process during the stage, in bytes; null where
    /// unavailable.
    pub peak_memory_bytes: Option<u64>,
}

/// The results for one model.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConfigBench {
    /// Which model (`model <folder>` or `sd15-animatediff (random weights)`).
    pub name: String,
    /// Views generated together.
    pub views: usize,
    /// View width in pixels.
    pub width: u32,
    /// View height in pixels.
    pub height: u32,
    /// One entry per stage, in the order they ran.
    pub stages: Vec<StageStats>,
}

/// Settings shared by every benchmarked model.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BenchSettings {
    /// Denoising steps.
    pub steps: u32,
    /// Requested views.
    pub views: u32,
    /// Side of the latent grid.
    pub latent: u32,
    /// Guidance scale.
    pub guidance_scale: f64,
    /// Runs per stage.
    pub repeat: u32,
    /// The prompt.
    pub prompt: String,
    /// The seed.
    pub seed: u64,
    /// Where the networks ran.
    pub device: DeviceArg,
    /// Their precision.
    pub dtype: DTypeArg,
    /// The technique switches.
    pub techniques: Techniques,
    /// The subject generated with: a definition file, `synthetic` or none.
    pub subject: Option<String>,
    /// The anchor depth DFR and CLC ran with (none when both are off).
    pub anchor_depth: Option<&'static str>,
}

/// The JSON written by `--json`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BenchReport {
    /// Which tool and version measured.
    pub tool: ToolInfo,
    /// The settings.
    pub settings: BenchSettings,
    /// `stage` when each stage's peak was measured on its own (Linux), `process` when peaks
    /// are since the process started.
    pub peak_memory_scope: &'static str,
    /// One entry per model.
    pub configs: Vec<ConfigBench>,
}

/// Seconds and peak memory of the runs of one stage.
#[derive(Clone, Debug, Default)]
struct Samples {
    seconds: Vec<f64>,
    peak: Option<u64>,
}

impl Samples {
    fn add(&mut self, seconds: f64, peak: Option<u64>) {
        self.seconds.push(seconds);
        self.peak = self.peak.max(peak);
    }
}

/// Stage samples in the order stages first ran.
#[derive(Clone, Debug, Default)]
struct StageLog {
    order: Vec<String>,
    samples: BTreeMap<String, Samples>,
}

impl StageLog {
    fn add(&mut self, stage: &str, seconds: f64, peak: Option<u64>) {
        if !self.samples.contains_key(stage) {
            self.order.push(stage.to_string());
        }
        self.samples
            .entry(stage.to_string())
            .or_default()
            .add(seconds, peak);
    }

    fn stats(&self) -> Vec<StageStats> {
        self.order
            .iter()
            .filter_map(|stage| {
                let s = self.samples.get(stage)?;
                let (min, max) = s
                    .seconds
                    .iter()
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                        (lo.min(v), hi.max(v))
                    });
                Some(StageStats {
                    stage: stage.clone(),
                    runs: s.seconds.len(),
                    median_seconds: median(&s.seconds)?,
                    min_seconds: min,
                    max_seconds: max,
                    peak_memory_bytes: s.peak,
                })
            })
            .collect()
    }
}

/// The median of `values` (mean of the middle two for an even count); `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some(0.5 * (sorted[n / 2 - 1] + sorted[n / 2])),
    }
}

/// The name the pipeline gives a stage's timing: the stage in snake case
/// (`Stage::RenderingFeatures` → `rendering_features`).
fn stage_key(stage: Stage) -> String {
    let mut key = String::new();
    for (i, c) in format!("{stage:?}").chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            key.push('_');
        }
        key.extend(c.to_lowercase());
    }
    key
}

/// The stage (as named by [`stage_key`]) during which the pipeline timing `timing` runs: the
/// subject's features and DFR's rasterisation while features are rendered, DFR's resolves and
/// latent completion while denoising; other timings are stages of their own.
fn timing_stage(timing: &str) -> &str {
    match timing {
        "rendered_features" | "dfr_rasterise" => "rendering_features",
        "dfr_resolve" | "clc" => "denoising",
        other => other,
    }
}

/// Runs `f`, returning its value, its seconds and the peak memory while it ran.
fn measure<T>(f: impl FnOnce() -> Result<T>) -> Result<(T, f64, Option<u64>)> {
    reset_peak();
    let started = Instant::now();
    let value = f()?;
    Ok((value, started.elapsed().as_secs_f64(), peak_rss_bytes()))
}

/// Runs `bench`.
pub fn run(args: &BenchArgs) -> Result<()> {
    if args.model.is_none() && !args.sd15 {
        return Err(CliError::argument(
            "--model",
            "(or --sd15) is needed: there is nothing to benchmark",
        ));
    }
    if !args.guidance.is_finite() {
        return Err(CliError::argument(
            "--guidance",
            format!("must be a finite number, got {}", args.guidance),
        ));
    }
    args.techniques.validate(args.views as usize)?;
    let model = args
        .model
        .as_deref()
        .map(|m| resolve_model(Some(m)))
        .transpose()?;
    let tokenizer_dir = match (&args.tokenizer, &model) {
        (Some(dir), _) => Some(dir.clone()),
        (None, Some(model)) => Some(model.join("tokenizer")),
        (None, None) => None,
    };
    if args.sd15 && tokenizer_dir.is_none() {
        return Err(CliError::argument(
            "--tokenizer",
            "is needed for --sd15 without --model (a CLIP tokenizer folder)",
        ));
    }
    let settings = args.compute.settings()?;
    let mut progress = Progress::new(args.quiet);
    let mut configs = Vec::new();
    let trained = args
        .subject
        .as_deref()
        .map(|path| Subject::load(path).map_err(MvError::from))
        .transpose()?;
    if let Some(model) = &model {
        progress.note(&format!("loading {}…", model.display()));
        let (pipeline, seconds, peak) = measure(|| Ok(MvPipeline::load(model, &settings)?))?;
        let mut log = StageLog::default();
        log.add("load", seconds, peak);
        configs.push(bench_model(
            args,
            &format!("model {}", model.display()),
            pipeline.components().clone(),
            trained.clone(),
            log,
            &mut progress,
        )?);
    }
    if let (true, Some(dir)) = (args.sd15, &tokenizer_dir) {
        configs.push(bench_sd15(args, dir, &settings, &mut progress)?);
    }
    let report = BenchReport {
        tool: ToolInfo::new("bench"),
        settings: BenchSettings {
            steps: args.steps,
            views: args.views,
            latent: args.latent,
            guidance_scale: args.guidance,
            repeat: args.repeat,
            prompt: args.prompt.clone(),
            seed: args.seed,
            device: args.compute.device,
            dtype: args.compute.dtype,
            techniques: args.techniques.techniques(),
            subject: match (&args.subject, args.subject_references) {
                (Some(path), _) => Some(path.display().to_string()),
                (None, 0) => None,
                (None, _) => Some("synthetic".into()),
            },
            anchor_depth: needs_anchor_depth(&args.techniques.techniques())
                .then_some(SYNTHETIC_DEPTH),
        },
        peak_memory_scope: if reset_peak() { "stage" } else { "process" },
        configs,
    };
    print!("{}", render_table(&report));
    if let Some(path) = &args.json {
        write_json_atomic(path, &report)?;
    }
    Ok(())
}

fn bench_sd15(
    args: &BenchArgs,
    tokenizer_dir: &std::path::Path,
    settings: &ComputeSettings,
    progress: &mut Progress,
) -> Result<ConfigBench> {
    let tokenizer = ClipTokenizer::load(tokenizer_dir).map_err(|e| {
        CliError::argument("--tokenizer", format!("{}: {e}", tokenizer_dir.display()))
    })?;
    progress.note("building SD-1.5 + AnimateDiff with random weights…");
    let (components, seconds, peak) = measure(|| sd15::components(tokenizer, settings, args.seed))?;
    let mut log = StageLog::default();
    log.add("random_init", seconds, peak);
    bench_model(
        args,
        "sd15-animatediff (random weights)",
        components,
        None,
        log,
        progress,
    )
}

/// A subject of `views` procedural reference views (a coloured disc on grey, fully masked
/// outside it) on an orbit of radius 2.5 around the origin, `side` pixels square, named
/// `<bench>` with class word `toy`.
fn synthetic_subject(views: usize, side: u32, rig: &RigArgs) -> Result<Subject> {
    let cameras = CameraSource::Orbit(OrbitSpec {
        views: views as u32,
        elevation_deg: 25.0,
        radius: 2.5,
    })
    .rig(
        &RigArgs {
            azimuth_deg: rig.azimuth_deg + 20.0,
            ..rig.clone()
        },
        side,
        side,
    )?
    .cameras;
    let centre = side as f32 / 2.0;
    let inside = |x: u32, y: u32| {
        let (dx, dy) = (x as f32 + 0.5 - centre, y as f32 + 0.5 - centre);
        dx * dx + dy * dy < (0.35 * side as f32).powi(2)
    };
    let references = cameras
        .into_iter()
        .enumerate()
        .map(|(i, camera)| Reference {
            path: PathBuf::from(format!("synthetic_{i:02}.png")),
            image: image::RgbaImage::from_fn(side, side, |x, y| {
                if inside(x, y) {
                    image::Rgba([200, (40 * i % 256) as u8, (255 * y / side) as u8, 255])
                } else {
                    image::Rgba([128, 128, 128, 255])
                }
            }),
            mask: image::GrayImage::from_fn(side, side, |x, y| {
                image::Luma([if inside(x, y) { 255 } else { 0 }])
            }),
            camera,
        })
        .collect();
    Ok(Subject {
        path: PathBuf::from("synthetic"),
        token: "<bench>".into(),
        class_word: "toy".into(),
        references,
        weights_path: PathBuf::new(),
    })
}

/// The subject of a benchmark with its weights: `trained` with the weights it names, or a
/// synthetic one (`--subject-references` views at the benchmark's size) with fresh weights;
/// `None` without either.
fn bench_subject(
    args: &BenchArgs,
    components: &DiffusionComponents,
    trained: Option<Subject>,
    side: u32,
    rig: &RigArgs,
) -> Result<Option<(Subject, SubjectWeights)>> {
    let unet = &components.unet;
    let hidden = components.text_encoder.config().hidden_size;
    let device = &components.settings.device;
    if let Some(subject) = trained {
        let weights = SubjectWeights::load(&subject.weights_path, unet, hidden, device)?;
        return Ok(Some((subject, weights)));
    }
    if args.subject_references == 0 {
        return Ok(None);
    }
    let subject = synthetic_subject(args.subject_references as usize, side, rig)?;
    let class = components
        .tokenizer
        .content_ids(&subject.class_word)
        .first()
        .copied()
        .unwrap_or(components.tokenizer.bos_id());
    let init = components
        .text_encoder
        .token_embedding()
        .get(class as usize)?;
    let info = SubjectWeightsInfo {
        pose: PoseConfig::default(),
        reference_resolution: side,
    };
    let weights = SubjectWeights::fresh(unet, &info, &init, args.seed, device)?;
    Ok(Some((subject, weights)))
}

/// Times the stages of one model `args.repeat` times, after its setup stage in `log`.
/// Distance of the benchmark's orbit cameras from the orbit's centre.
const ORBIT_RADIUS: f32 = 2.5;

/// What the benchmark's anchor depth is, as reported.
const SYNTHETIC_DEPTH: &str = "synthetic: a plane through the orbit's centre";

/// Whether `techniques` use the anchor view's depth (DFR and CLC do).
fn needs_anchor_depth(techniques: &Techniques) -> bool {
    techniques.dfr.is_some() || techniques.clc.is_some()
}

fn bench_model(
    args: &BenchArgs,
    name: &str,
    components: DiffusionComponents,
    trained: Option<Subject>,
    mut log: StageLog,
    progress: &mut Progress,
) -> Result<ConfigBench> {
    let views = if components.unet.has_motion_modules() {
        args.views as usize
    } else {
        1
    };
    let factor = components.vae.downscale_factor() as u32;
    let side = args
        .latent
        .checked_mul(factor)
        .ok_or_else(|| CliError::argument("--latent", format!("{} is too large", args.latent)))?;
    let rig = RigArgs {
        target: glam::Vec3::ZERO,
        up: glam::Vec3::Y,
        forward: glam::Vec3::NEG_Z,
        azimuth_deg: 0.0,
        fov_deg: 50.0,
    };
    let cameras = CameraSource::Orbit(OrbitSpec {
        views: views as u32,
        elevation_deg: 15.0,
        radius: ORBIT_RADIUS,
    })
    .rig(&rig, side, side)?
    .cameras;
    let subject = bench_subject(args, &components, trained, side, &rig)?;
    let techniques = args.techniques.techniques();
    let prompt = match &subject {
        Some((subject, _)) => format!("{} {}", args.prompt, subject.token),
        None => args.prompt.clone(),
    };
    let request = GenerationRequest {
        prompt,
        negative_prompt: String::new(),
        cameras,
        width: side,
        height: side,
        steps: args.steps as usize,
        guidance_scale: args.guidance,
        seed: args.seed,
        techniques: techniques.clone(),
        anchor_depth: needs_anchor_depth(&techniques)
            .then(|| DepthMap::new(side, side, vec![ORBIT_RADIUS; (side * side) as usize]))
            .transpose()
            .map_err(|e| CliError::argument("--latent", format!("anchor depth: {e}")))?,
        preview_every: None,
        composition: None,
        init_views: None,
    };
    let mut unet = components.unet.clone();
    if techniques.dense_attention && unet.has_motion_modules() {
        unet.set_motion_attention(MotionAttention::Dense {
            window: techniques.attention_window,
        });
    }
    let (h, w) = components.latent_size(side, side)?;
    let channels = unet.layout().in_channels;
    let device = components.settings.device.clone();
    let shape: Vec<usize> = if unet.has_motion_modules() {
        vec![1, channels, views, h, w]
    } else {
        vec![1, channels, h, w]
    };
    let sample = NoiseGenerator::from_seed(args.seed).randn(&shape, &device)?;
    let timestep = Tensor::new(&[999f32], &device)?;
    let pipeline = MvPipeline::from_components(components);

    for run in 0..args.repeat {
        progress.note(&format!("{name}: run {} of {}", run + 1, args.repeat));
        let (embeds, seconds, peak) =
            measure(|| Ok(pipeline.components().encode_prompt(&args.prompt)?))?;
        log.add("encode_prompt", seconds, peak);
        let (_, seconds, peak) = measure(|| Ok(unet.forward(&sample, &timestep, &embeds, None)?))?;
        log.add("unet_forward", seconds, peak);
        let loaded = match &subject {
            Some((subject, weights)) => {
                let (loaded, seconds, peak) =
                    measure(|| Ok(pipeline.prepare_subject(subject.clone(), weights)?))?;
                log.add("reference_features", seconds, peak);
                Some(loaded)
            }
            None => None,
        };

        let mut stage_peaks: Vec<(String, Option<u64>)> = Vec::new();
        let mut current: Option<Stage> = None;
        let mut on_event = |event: GenerationEvent| {
            if let GenerationEvent::StageStarted(stage) = &event {
                if let Some(previous) = current.replace(*stage) {
                    stage_peaks.push((stage_key(previous), peak_rss_bytes()));
                }
                reset_peak();
            }
            progress.event(&event);
        };
        let (generated, seconds, total_peak) = measure(|| {
            Ok(pipeline
                .generate_with(
                    &request,
                    loaded.as_ref(),
                    &mut on_event,
                    &CancelToken::new(),
                )?
                .views)
        })?;
        if let Some(last) = current {
            stage_peaks.push((stage_key(last), peak_rss_bytes()));
        }
        progress.finish();
        let total_peak = total_peak.max(stage_peaks.iter().filter_map(|(_, p)| *p).max());
        log.add("generate", seconds, total_peak);
        for timing in &generated.timings {
            let stage = timing_stage(&timing.stage);
            let peak = stage_peaks
                .iter()
                .filter(|(key, _)| key == stage)
                .filter_map(|(_, p)| *p)
                .max();
            log.add(&timing.stage, timing.seconds, peak);
        }
    }
    Ok(ConfigBench {
        name: name.to_string(),
        views,
        width: side,
        height: side,
        stages: log.stats(),
    })
}

/// The results as a text table, one block per model.
pub fn render_table(report: &BenchReport) -> String {
    let mut out = String::new();
    for config in &report.configs {
        out.push_str(&format!(
            "{}: {} view(s) of {}×{}, {} step(s), guidance {}, {} run(s), {} {}\n",
            config.name,
            config.views,
            config.width,
            config.height,
            report.settings.steps,
            report.settings.guidance_scale,
            report.settings.repeat,
            report.settings.device,
            format!("{:?}", report.settings.dtype).to_lowercase(),
        ));
        out.push_str(&format!(
            "  {:<20} {:>10} {:>10} {:>10} {:>12}\n",
            "stage", "median s", "min s", "max s", "peak MiB"
        ));
        for s in &config.stages {
            let peak = s
                .peak_memory_bytes
                .map(|b| format!("{:.1}", b as f64 / (1024.0 * 1024.0)))
                .unwrap_or_else(|| "n/a".into());
            out.push_str(&format!(
                "  {:<20} {:>10.4} {:>10.4} {:>10.4} {:>12}\n",
                s.stage, s.median_seconds, s.min_seconds, s.max_seconds, peak
            ));
        }
        out.push('\n');
    }
    out.push_str(&format!(
        "peak memory: {}\n",
        if report.peak_memory_scope == "stage" {
            "resident set peak during each stage"
        } else {
            "resident set peak since the process started"
        }
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn stage_keys_match_the_pipeline_timing_names() {
        assert_eq!(stage_key(Stage::Denoising), "denoising");
        assert_eq!(stage_key(Stage::Decoding), "decoding");
        assert_eq!(stage_key(Stage::RenderingFeatures), "rendering_features");
        assert_eq!(stage_key(Stage::EncodingPrompt), "encoding_prompt");
        assert_eq!(stage_key(Stage::AnchorDepth), "anchor_depth");
        for (timing, stage) in [
            ("rendered_features", Stage::RenderingFeatures),
            ("dfr_rasterise", Stage::RenderingFeatures),
            ("dfr_resolve", Stage::Denoising),
            ("clc", Stage::Denoising),
            ("denoising", Stage::Denoising),
            ("decoding", Stage::Decoding),
            ("anchor_depth", Stage::AnchorDepth),
        ] {
            assert_eq!(timing_stage(timing), stage_key(stage), "{timing}");
        }
    }

    #[test]
    fn the_log_keeps_first_run_order_and_summarises_runs() {
        let mut log = StageLog::default();
        log.add("unet_forward", 3.0, Some(10));
        log.add("decoding", 1.0, None);
        log.add("unet_forward", 1.0, Some(30));
        log.add("unet_forward", 2.0, Some(20));
        let stats = log.stats();
        assert_eq!(stats[0].stage, "unet_forward");
        assert_eq!(stats[0].runs, 3);
        assert_eq!(
            (
                stats[0].median_seconds,
                stats[0].min_seconds,
                stats[0].max_seconds
            ),
            (2.0, 1.0, 3.0)
        );
        assert_eq!(stats[0].peak_memory_bytes, Some(30));
        assert_eq!(
            (stats[1].stage.as_str(), stats[1].peak_memory_bytes),
            ("decoding", None)
        );
    }
}
