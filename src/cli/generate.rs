//! `mvcustom generate`: views of a prompt from a camera rig, optionally of a trained subject,
//! written as `view_NN.png`, with the cameras (`cameras.ron`), the anchor depth and technique
//! masks that were used (see [`technique_outputs`](super::technique_outputs)) and a
//! `report.json` of settings, outputs, timings and peak memory.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use clap::Args;

use super::args::{ComputeArgs, TechniqueArgs};
use super::atomic::{write_atomic, write_json_atomic};
use super::cameras::{CameraSourceArgs, RigArgs};
use super::depth::read_depth;
use super::error::{CliError, Result};
use super::memory::peak_rss_bytes;
use super::progress::Progress;
use super::report::{
    DepthInfo, GenerateReport, GenerateSettings, SubjectRecord, ToolInfo, ViewRecord,
};
use super::resolve_model;
use super::technique_outputs::{write_depth, write_png, write_technique_masks};
use crate::camera::PinholeCamera;
use crate::diffusion::CancelToken;
use crate::model::depth::DepthAnything;
use crate::mvcustom::{
    GenerationRequest, InitViews, LoadedSubject, MvError, MvPipeline, StageTiming, Subject,
    SubjectWeights,
};

/// Arguments of `mvcustom generate`.
#[derive(Clone, Debug, Args)]
pub struct GenerateArgs {
    /// The diffusers-layout model folder (tokenizer/, text_encoder/, unet/, motion_adapter/,
    /// vae/, scheduler/). Required: no model is built into the tool yet.
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// What to generate (name a trained subject by its token, e.g. `a photo of <teddy>`).
    #[arg(long, short)]
    pub prompt: String,
    /// What to steer away from.
    #[arg(long, value_name = "TEXT", default_value = "")]
    pub negative_prompt: String,
    /// Denoising steps.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub steps: u32,
    /// Classifier-free guidance scale (1 or less: no guidance).
    #[arg(long, default_value_t = 7.5, allow_negative_numbers = true)]
    pub guidance: f64,
    /// Seed of the initial noise (the same seed gives the same views on CPU).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// View width in pixels (default: the model's native size).
    #[arg(long, value_name = "PIXELS")]
    pub width: Option<u32>,
    /// View height in pixels (default: the model's native size).
    #[arg(long, value_name = "PIXELS")]
    pub height: Option<u32>,
    /// Output folder (created if needed): view_00.png …, cameras.ron, report.json and, when
    /// DFR runs, anchor_depth.npy/.png and the DFR/CLC mask PNGs.
    #[arg(long, short, value_name = "DIR")]
    pub out: PathBuf,
    /// No progress output on stderr.
    #[arg(long, short)]
    pub quiet: bool,
    /// Where the cameras come from.
    #[command(flatten)]
    pub source: CameraSourceArgs,
    /// How orbit and translation rigs are placed.
    #[command(flatten)]
    pub rig: RigArgs,
    /// Technique switches.
    #[command(flatten)]
    pub techniques: TechniqueArgs,
    /// A trained subject's definition (RON, trained with `mvcustom train` on the same model):
    /// its token in the prompt takes the learned embedding and its pose blocks condition the
    /// views (unless --no-pose-blocks).
    #[arg(long, value_name = "FILE")]
    pub subject: Option<PathBuf>,
    /// The anchor view's z-depth in world units, for DFR: a .npy float array [H, W] or a
    /// 16-bit grayscale .png (see --depth-scale). Without it --depth-model estimates the depth;
    /// with neither, DFR and CLC are skipped with a notice.
    #[arg(long, value_name = "FILE", conflicts_with = "no_dfr")]
    pub depth: Option<PathBuf>,
    /// Divisor turning 16-bit PNG depth values into world units [default: 1000, i.e.
    /// millimetres].
    #[arg(long, value_name = "UNITS", requires = "depth")]
    pub depth_scale: Option<f32>,
    /// A Depth-Anything-V2 folder (config.json naming its safetensors files) that estimates
    /// the anchor view's depth for DFR and CLC when no --depth is given.
    #[arg(long, value_name = "DIR", conflicts_with = "depth")]
    pub depth_model: Option<PathBuf>,
    /// Start from these views instead of noise (video-to-video): a folder of one image per
    /// camera, taken in file-name order (e.g. renders of the scene, or an earlier run's
    /// view_00.png …); the prompt restyles them and their layout is kept.
    #[arg(long, value_name = "DIR")]
    pub init_views: Option<PathBuf>,
    /// With --init-views: the fraction of the denoising steps that run, in (0, 1] (low keeps
    /// the views, high regenerates more of them).
    #[arg(long, default_value_t = 0.5, requires = "init_views")]
    pub strength: f64,
    /// Device and precision.
    #[command(flatten)]
    pub compute: ComputeArgs,
}

/// 16-bit PNG depth values per world unit when `--depth-scale` is not given (millimetres).
pub const DEFAULT_DEPTH_SCALE: f32 = 1000.0;

/// The file name of view `index`.
pub fn view_file_name(index: usize) -> String {
    format!("view_{index:02}.png")
}

/// Runs `generate`.
pub fn run(args: &GenerateArgs) -> Result<()> {
    let started = Instant::now();
    if !args.guidance.is_finite() {
        return Err(CliError::argument(
            "--guidance",
            format!("must be a finite number, got {}", args.guidance),
        ));
    }
    // Everything that can fail on the arguments or on small files fails before the model loads.
    let model = resolve_model(args.model.as_deref())?;
    let depth_scale = args.depth_scale.unwrap_or(DEFAULT_DEPTH_SCALE);
    let source = args.source.load()?;
    args.techniques.validate(source.views())?;
    let depth = args
        .depth
        .as_deref()
        .map(|path| read_depth(path, depth_scale))
        .transpose()?;
    let subject = args.subject.as_deref().map(read_subject).transpose()?;
    let init_views = args
        .init_views
        .as_deref()
        .map(|dir| read_init_views(dir, args.strength, source.views()))
        .transpose()?;
    let settings = args.compute.settings()?;
    let estimator = args
        .depth_model
        .as_deref()
        .map(|dir| DepthAnything::load(dir, &settings))
        .transpose()?;
    std::fs::create_dir_all(&args.out)
        .map_err(|e| CliError::file(&args.out, format!("cannot create output folder: {e}")))?;

    let mut progress = Progress::new(args.quiet);
    progress.note(&format!("loading {}…", model.display()));
    let loading = Instant::now();
    let mut pipeline = MvPipeline::load(&model, &settings)?;
    if let Some(estimator) = estimator {
        pipeline = pipeline.with_depth_estimator(Arc::new(estimator));
    }
    let mut timings = vec![StageTiming {
        stage: "loading".into(),
        seconds: loading.elapsed().as_secs_f64(),
    }];
    let native = pipeline.components().vae.config().sample_size as u32;
    let width = args.width.unwrap_or(native);
    let height = args.height.unwrap_or(native);
    let rig = source.rig(&args.rig, width, height)?;
    let subject = subject
        .map(|subject| -> Result<LoadedSubject> {
            progress.note(&format!("preparing subject {}…", subject.token));
            let components = pipeline.components();
            let weights = SubjectWeights::load(
                &subject.weights_path,
                &components.unet,
                components.text_encoder.config().hidden_size,
                &components.settings.device,
            )?;
            let loaded = pipeline.prepare_subject(subject, &weights)?;
            timings.push(StageTiming {
                stage: "reference_features".into(),
                seconds: loaded.preparation_time().as_secs_f64(),
            });
            Ok(loaded)
        })
        .transpose()?;

    let request = GenerationRequest {
        prompt: args.prompt.clone(),
        negative_prompt: args.negative_prompt.clone(),
        cameras: rig.cameras.clone(),
        width,
        height,
        steps: args.steps as usize,
        guidance_scale: args.guidance,
        seed: args.seed,
        techniques: args.techniques.techniques(),
        anchor_depth: depth,
        preview_every: None,
        composition: None,
        init_views,
    };
    let result = pipeline.generate_with(
        &request,
        subject.as_ref(),
        &mut |event| progress.event(&event),
        &CancelToken::new(),
    );
    progress.finish();
    let generation = result.map_err(|e| request_error(e, args.source.flag()))?;
    let views = &generation.views;
    timings.extend(views.timings.iter().cloned());

    let records = write_views(&args.out, &views.images, &rig.cameras)?;
    let depth_output = match (&views.anchor_depth, generation.anchor_view) {
        (Some(depth), Some(anchor)) => Some(write_depth(&args.out, depth, anchor)?),
        _ => None,
    };
    let masks = write_technique_masks(
        &args.out,
        &generation.dfr_visibility,
        generation.clc_disocclusion.as_ref(),
    )?;
    let subject_record = subject
        .as_ref()
        .map(|s| SubjectRecord::new(s, request.techniques.pose_blocks));
    let report = GenerateReport {
        tool: ToolInfo::new("generate"),
        model,
        settings: GenerateSettings {
            prompt: request.prompt,
            negative_prompt: request.negative_prompt,
            steps: request.steps,
            guidance_scale: request.guidance_scale,
            seed: request.seed,
            width,
            height,
            device: args.compute.device,
            dtype: args.compute.dtype,
            techniques: request.techniques,
            anchor_depth: request.anchor_depth.as_ref().map(|d| DepthInfo {
                path: args.depth.clone().unwrap_or_default(),
                width: d.width(),
                height: d.height(),
                png_scale: depth_scale,
            }),
            depth_model: args.depth_model.clone(),
            init_views: args.init_views.clone().map(|dir| (dir, args.strength)),
        },
        rig: rig.description,
        subject: subject_record,
        views: records,
        anchor_depth: depth_output,
        masks,
        timings,
        notices: views.notices.clone(),
        total_seconds: started.elapsed().as_secs_f64(),
        peak_memory_bytes: peak_rss_bytes(),
    };
    let report_path = args.out.join("report.json");
    write_json_atomic(&report_path, &report)?;
    progress.note(&format!(
        "wrote {} views, cameras.ron{} and report.json to {}",
        report.views.len(),
        if report.anchor_depth.is_some() {
            ", the anchor depth, the technique masks"
        } else {
            ""
        },
        args.out.display()
    ));
    Ok(())
}

/// Reads the subject definition `path` (images, masks, cameras) and checks that it has been
/// trained, before any model loads.
pub(crate) fn read_subject(path: &Path) -> Result<Subject> {
    let subject = Subject::load(path).map_err(MvError::from)?;
    if !subject.weights_path.is_file() {
        return Err(CliError::file(
            &subject.weights_path,
            format!(
                "the weights of subject {} are missing: train it first with `mvcustom train {}`",
                subject.token,
                path.display()
            ),
        ));
    }
    Ok(subject)
}

/// Reads the views of `--init-views`: every PNG or JPEG in `dir`, in file-name order, one per
/// camera of a rig of `views` views.
fn read_init_views(dir: &Path, strength: f64, views: usize) -> Result<InitViews> {
    if !(strength > 0.0 && strength <= 1.0) {
        return Err(CliError::argument(
            "--strength",
            format!("{strength} is outside (0, 1]"),
        ));
    }
    let entries = std::fs::read_dir(dir)
        .map_err(|e| CliError::file(dir, format!("cannot read the --init-views folder: {e}")))?;
    let mut paths = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| CliError::file(dir, e))?.path();
        let is_image = path.extension().is_some_and(|ext| {
            ["png", "jpg", "jpeg"]
                .iter()
                .any(|known| ext.eq_ignore_ascii_case(known))
        });
        if is_image {
            paths.push(path);
        }
    }
    paths.sort();
    if paths.len() != views {
        return Err(CliError::argument(
            "--init-views",
            format!(
                "{} holds {} images for {views} cameras (one per camera, in name order)",
                dir.display(),
                paths.len()
            ),
        ));
    }
    let images = paths
        .iter()
        .map(|path| {
            image::open(path)
                .map(|image| image.to_rgba8())
                .map_err(|e| CliError::file(path, format!("cannot read the image: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(InitViews { images, strength })
}

/// Writes one PNG per view and `cameras.ron`, returning the views' records for the report.
fn write_views(
    out: &Path,
    images: &[image::RgbaImage],
    cameras: &[PinholeCamera],
) -> Result<Vec<ViewRecord>> {
    let mut records = Vec::with_capacity(images.len());
    for (index, (image, camera)) in images.iter().zip(cameras).enumerate() {
        let name = view_file_name(index);
        write_view_png(&out.join(&name), image)?;
        records.push(ViewRecord {
            index,
            image: name,
            camera: *camera,
        });
    }
    let path = out.join("cameras.ron");
    let text = ron::ser::to_string_pretty(cameras, ron::ser::PrettyConfig::default())
        .map_err(|e| CliError::file(&path, format!("cannot serialise cameras: {e}")))?;
    write_atomic(&path, text.as_bytes())?;
    Ok(records)
}

/// A rejected request field as an error naming the argument that set it.
fn request_error(error: MvError, camera_flag: &'static str) -> CliError {
    match error {
        MvError::InvalidRequest { field, reason } => {
            let flag = match field {
                "cameras" => camera_flag,
                "width" => "--width",
                "height" => "--height",
                "steps" => "--steps",
                "guidance_scale" => "--guidance",
                "anchor_depth" => "--depth",
                "init_views.images" => "--init-views",
                "init_views.strength" => "--strength",
                _ => return MvError::InvalidRequest { field, reason }.into(),
            };
            CliError::Rejected { flag, reason }
        }
        other => other.into(),
    }
}

/// Encodes an opaque view as an RGB PNG and writes it atomically.
fn write_view_png(path: &Path, image: &image::RgbaImage) -> Result<()> {
    let rgb = image::DynamicImage::ImageRgba8(image.clone()).to_rgb8();
    write_png(path, &image::DynamicImage::ImageRgb8(rgb))
}
