//! `mvcustom eval`: the held-out benchmark and ablation table (see [`crate::eval`]). Prints
//! the Markdown table and writes, into the output folder, `report.json` (settings, summaries,
//! verdicts, every case's metrics), `table.md` and one PNG strip per case and row
//! (`views/case_NN_<row>.png`, the views side by side).

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use serde::Serialize;

use super::args::{ComputeArgs, DTypeArg, DeviceArg, DfrLayerArgs};
use super::atomic::{write_atomic, write_json_atomic};
use super::error::{CliError, Result};
use super::generate::read_subject;
use super::inspect_subject::definition_in;
use super::memory::peak_rss_bytes;
use super::progress::Progress;
use super::report::ToolInfo;
use super::technique_outputs::write_png;
use crate::diffusion::CancelToken;
use crate::eval::run::demo_subject_of;
use crate::eval::{CaseRun, EvalEvent, EvalReport, EvalSettings, EvalSubject, evaluate};
use crate::mvcustom::demo_subject::demo_subject_definition;
use crate::mvcustom::{DfrSettings, MvError, MvPipeline, default_model_dir, demo_subjects_dir};
use crate::world::DemoSubject;

/// Arguments of `mvcustom eval`.
#[derive(Clone, Debug, Args)]
pub struct EvalArgs {
    /// The diffusers-layout model folder (default: the embedded default model,
    /// assets/default_model).
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// Trained demo subjects: subject folders or `*.subject.ron` definitions, comma-separated
    /// or repeated (default: every demo subject in assets/subjects). Their tokens must be
    /// demo subjects' (<toy_robot>, <patterned_vase>): the world renders their ground truth.
    #[arg(long, value_name = "PATH", value_delimiter = ',')]
    pub subjects: Vec<PathBuf>,
    /// Cases per subject (environments cycle, held-out ones first).
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    pub cases: u32,
    /// Views (cameras) per case.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    pub views: u32,
    /// Denoising steps.
    #[arg(long, default_value_t = 25, value_parser = clap::value_parser!(u32).range(1..))]
    pub steps: u32,
    /// Width and height of the views in pixels (default: the model's native size).
    #[arg(long, value_name = "PIXELS", value_parser = clap::value_parser!(u32).range(8..))]
    pub size: Option<u32>,
    /// Classifier-free guidance scale.
    #[arg(long, default_value_t = 5.0, allow_negative_numbers = true)]
    pub guidance: f64,
    /// Noise seed of the first case (case k uses seed + k, the same for every row).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Ground-truth clips per environment prototype of the prompt-alignment classifier.
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub prototype_clips: u32,
    /// Output folder (created if needed): report.json, table.md, views/.
    #[arg(long, short, value_name = "DIR", default_value = "eval")]
    pub out: PathBuf,
    /// No progress output on stderr.
    #[arg(long, short)]
    pub quiet: bool,
    /// Where the DFR rows' feature rendering works (layers, mesh), for ablating those choices.
    #[command(flatten)]
    pub dfr: DfrLayerArgs,
    /// Device and precision.
    #[command(flatten)]
    pub compute: ComputeArgs,
}

/// `report.json`: the evaluation with what produced it.
#[derive(Serialize)]
struct EvalFileReport<'a> {
    tool: ToolInfo,
    model: PathBuf,
    subjects: Vec<PathBuf>,
    device: DeviceArg,
    dtype: DTypeArg,
    #[serde(flatten)]
    evaluation: &'a EvalReport,
    /// The view strips, relative to the output folder, one per case and row.
    views: Vec<String>,
    total_seconds: f64,
    peak_memory_bytes: Option<u64>,
}

/// The subject definitions to evaluate: the named paths (a folder's only definition, or the
/// file), or every demo subject written into the crate's assets/subjects.
fn subject_definitions(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    if paths.is_empty() {
        let dir = demo_subjects_dir();
        let found: Vec<PathBuf> = DemoSubject::ALL
            .iter()
            .map(|d| demo_subject_definition(&dir.join(d.name()), *d))
            .filter(|p| p.is_file())
            .collect();
        if found.is_empty() {
            return Err(CliError::argument(
                "--subjects",
                format!(
                    "was not given and {} holds no demo subject: write one with `mvcustom \
                     demo-subject toy_robot` and train it with `mvcustom train`",
                    dir.display()
                ),
            ));
        }
        return Ok(found);
    }
    paths
        .iter()
        .map(|path| {
            definition_in(path)?.ok_or_else(|| {
                CliError::argument(
                    "--subjects",
                    format!("{}: no subject definition there", path.display()),
                )
            })
        })
        .collect()
}

/// A rejected request field as an error naming the argument that set it.
fn request_error(error: MvError) -> CliError {
    match error {
        MvError::InvalidRequest { field, reason } => {
            let flag = match field {
                "cameras" | "views" => "--views",
                "width" | "height" => "--size",
                "steps" => "--steps",
                "guidance_scale" => "--guidance",
                _ => return MvError::InvalidRequest { field, reason }.into(),
            };
            CliError::Rejected { flag, reason }
        }
        other => other.into(),
    }
}

/// Writes each case's rows as PNG strips (views side by side) into `out/views`, returning
/// their paths relative to `out`.
fn write_strips(out: &Path, runs: &[CaseRun]) -> Result<Vec<String>> {
    let dir = out.join("views");
    std::fs::create_dir_all(&dir)
        .map_err(|e| CliError::file(&dir, format!("cannot create folder: {e}")))?;
    let mut files = Vec::new();
    for run in runs {
        for row in &run.rows {
            let Some(first) = row.images.first() else {
                continue;
            };
            let (w, h) = first.dimensions();
            let mut strip = image::RgbImage::new(w * row.images.len() as u32, h);
            for (k, view) in row.images.iter().enumerate() {
                image::imageops::replace(&mut strip, view, i64::from(w) * k as i64, 0);
            }
            let name = format!(
                "views/case_{:02}_{}.png",
                run.case.index,
                row.variant.name()
            );
            write_png(&out.join(&name), &image::DynamicImage::ImageRgb8(strip))?;
            files.push(name);
        }
    }
    Ok(files)
}

/// Runs `mvcustom eval`.
pub fn run(args: &EvalArgs) -> Result<()> {
    let started = Instant::now();
    if !args.guidance.is_finite() {
        return Err(CliError::argument(
            "--guidance",
            format!("must be a finite number, got {}", args.guidance),
        ));
    }
    // Subjects and model folder are checked before the model loads.
    let definitions = subject_definitions(&args.subjects)?;
    for definition in &definitions {
        demo_subject_of(&read_subject(definition)?)?;
    }
    let model = args.model.clone().unwrap_or_else(default_model_dir);
    if !model.is_dir() {
        return Err(CliError::argument(
            "--model",
            format!("{}: no such folder", model.display()),
        ));
    }
    let settings = args.compute.settings()?;
    std::fs::create_dir_all(&args.out)
        .map_err(|e| CliError::file(&args.out, format!("cannot create output folder: {e}")))?;

    let mut progress = Progress::new(args.quiet);
    progress.note(&format!("loading {}…", model.display()));
    let pipeline = MvPipeline::load(&model, &settings)?;
    let mut subjects = Vec::with_capacity(definitions.len());
    for definition in &definitions {
        progress.note(&format!("preparing subject {}…", definition.display()));
        subjects.push(EvalSubject::new(pipeline.load_subject(definition)?)?);
    }
    let native = pipeline.components().vae.config().sample_size as u32;
    let eval_settings = EvalSettings {
        cases: args.cases as usize,
        views: args.views,
        size: args.size.unwrap_or(native),
        steps: args.steps as usize,
        guidance_scale: args.guidance,
        seed: args.seed,
        prototype_clips: args.prototype_clips as usize,
        dfr: args.dfr.apply(DfrSettings::default()),
        ..Default::default()
    };
    let runs = evaluate(
        &pipeline,
        &subjects,
        &eval_settings,
        &mut |event| match event {
            EvalEvent::Prototypes => progress.note("rendering environment prototypes…"),
            EvalEvent::Case { case, total } => progress.note(&format!(
                "case {}/{total}: {} {}",
                case.index + 1,
                case.subject.name(),
                case.environment.phrase()
            )),
            EvalEvent::Row(variant) => progress.note(&format!("  {}", variant.label())),
            EvalEvent::Generation(event) => progress.event(event),
        },
        &CancelToken::new(),
    );
    progress.finish();
    let runs = runs.map_err(request_error)?;
    let evaluation = EvalReport::new(&eval_settings, &runs);
    let views = write_strips(&args.out, &runs)?;
    let table = evaluation.markdown();
    write_atomic(&args.out.join("table.md"), table.as_bytes())?;
    let report = EvalFileReport {
        tool: ToolInfo::new("eval"),
        model,
        subjects: definitions,
        device: args.compute.device,
        dtype: args.compute.dtype,
        evaluation: &evaluation,
        views,
        total_seconds: started.elapsed().as_secs_f64(),
        peak_memory_bytes: peak_rss_bytes(),
    };
    let report_path = args.out.join("report.json");
    write_json_atomic(&report_path, &report)?;
    print!("{table}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_errors_name_the_argument_that_set_them() {
        let err = request_error(MvError::request("width", "must be a multiple of 8"));
        assert_eq!(err.to_string(), "--size: must be a multiple of 8");
        let err = request_error(MvError::request("cameras", "9 views exceed 8 frames"));
        assert!(err.to_string().starts_with("--views"), "{err}");
        let err = request_error(MvError::request("techniques.dfr.layers", "x"));
        assert!(err.to_string().contains("techniques.dfr.layers"), "{err}");
    }
}
