//! The `mvcustom` command-line tool (no window, no Bevy): `train` a subject, `generate` views
//! of a prompt (and subject) from a camera rig, `inspect` a model folder or a subject, `bench`
//! the stages of a generation, write a `demo-subject` folder, `eval` on held-out ground
//! truth. The binary `src/bin/mvcustom.rs` only parses [`Cli`] and calls [`run`]; everything else lives here so
//! it can be tested.
//!
//! Every failure becomes a [`CliError`] whose one-line message names the argument or file at
//! fault; bad arguments exit with status 2, other failures with 1.

pub mod args;
pub mod atomic;
pub mod bench;
pub mod cameras;
pub mod demo_subject;
pub mod depth;
pub mod error;
pub mod eval;
pub mod generate;
pub mod inspect;
pub mod inspect_subject;
pub mod memory;
pub mod params;
pub mod pretrain;
pub mod progress;
pub mod report;
pub mod sd15;
pub mod technique_outputs;
pub mod train;

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

pub use error::{CliError, EXIT_FAILURE, EXIT_USAGE, Result};

/// Multi-view customized diffusion: views of a subject, consistent across your cameras.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "mvcustom",
    version,
    about,
    long_about = "Multi-view customized diffusion (MVCustom) without a window: train a subject \
                  from its reference views, generate views of a prompt (and subject) for a rig \
                  of cameras, inspect model folders and subjects, benchmark the stages of a \
                  generation.",
    after_help = "Exit status: 0 on success, 2 for a bad argument, 1 for any other failure."
)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Clone, Debug, Subcommand)]
pub enum Command {
    /// Generate one PNG per camera for a prompt, plus cameras.ron and report.json.
    #[command(
        after_help = "Examples:\n  mvcustom generate --model models/animatediff --prompt \"a teddy bear\" \\\n      --orbit 8,15,2.5 --steps 25 --out views/\n  mvcustom generate --model models/animatediff --prompt \"a teddy bear\" \\\n      --cameras views/cameras.ron --no-dfr --no-clc --out ablation/"
    )]
    Generate(Box<generate::GenerateArgs>),
    /// Train a subject (its pose blocks and token row) on a model, writing its weights
    /// beside its definition; resumes from the last checkpoint.
    #[command(
        after_help = "Examples:\n  mvcustom train subjects/teddy/teddy.ron --model models/animatediff --steps 1600\n  mvcustom train subjects/teddy/teddy.ron --model models/animatediff \\\n      --class-images class/teddy_bear --resolution 256 --steps 800\n\nWrites <weights> (default: the definition's name with .safetensors), a checkpoint\n<weights stem>.checkpoint.safetensors and a report <weights stem>.train.json beside it.\nInterrupting a run (Ctrl-C) keeps its last checkpoint: running the same command again\nresumes from it, with the same result as an uninterrupted run; --restart starts over."
    )]
    Train(train::TrainArgs),
    /// Summarise a model folder (each component's configuration and parameter count) or a
    /// subject (its definition and trained weights).
    Inspect(inspect::InspectArgs),
    /// Measure seconds and peak memory per stage for a model and/or SD-1.5 with random
    /// weights.
    Bench(bench::BenchArgs),
    /// Train a model folder's networks from scratch on the procedural world (how the
    /// embedded default model is made); resumable.
    Pretrain(pretrain::PretrainArgs),
    /// Write the subject folder of a procedural demo subject (reference renders, masks,
    /// cameras and a `<name>.subject.ron` definition) for `mvcustom train`.
    #[command(
        after_help = "Examples:\n  mvcustom demo-subject toy_robot --out assets/subjects/toy_robot\n  mvcustom demo-subject patterned_vase --references 12 --size 64 --seed 3 --force"
    )]
    DemoSubject(demo_subject::DemoSubjectArgs),
    /// Evaluate the model and trained demo subjects on held-out scenes with ground truth:
    /// the ablation table (base model, + pose blocks, + DFR, + DFR + CLC) of camera-pose
    /// accuracy, multi-view consistency, subject identity and prompt alignment.
    #[command(
        after_help = "Examples:\n  mvcustom eval --cases 4 --views 8 --steps 25 --out eval/\n  mvcustom eval --model models/tiny --subjects subjects/toy_robot --cases 1 --views 4 --size 32\n\nPrints the Markdown table; writes report.json, table.md and views/case_NN_<row>.png\n(each row's views side by side) into --out."
    )]
    Eval(eval::EvalArgs),
}

/// Runs a parsed command line.
pub fn run(cli: &Cli) -> Result<()> {
    match &cli.command {
        Command::Generate(args) => generate::run(args),
        Command::Train(args) => train::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Pretrain(args) => pretrain::run(args),
        Command::DemoSubject(args) => demo_subject::run(args),
        Command::Eval(args) => eval::run(args),
    }
}

/// The model folder to use: `--model` when given and present, otherwise the embedded default
/// model (`assets/default_model`).
pub fn resolve_model(model: Option<&Path>) -> Result<PathBuf> {
    resolve_model_or(model, &crate::mvcustom::default_model_dir())
}

/// [`resolve_model`] with `default` as the folder used without `--model`; a default folder
/// without trained weights (a checkout where `mvcustom pretrain` has not run) is an error that
/// says how to get them.
pub fn resolve_model_or(model: Option<&Path>, default: &Path) -> Result<PathBuf> {
    let Some(model) = model else {
        let trained = ["vae", "unet", "text_encoder"]
            .iter()
            .all(|component| component_has_weights(&default.join(component)));
        if !trained {
            return Err(CliError::argument(
                "--model",
                format!(
                    "is required: the embedded default model in {} has no trained weights \
                     (train it with `mvcustom pretrain vae` then `mvcustom pretrain denoiser`), \
                     or pass a diffusers-layout folder (tokenizer/, text_encoder/, unet/, \
                     motion_adapter/, vae/, scheduler/)",
                    default.display()
                ),
            ));
        }
        return Ok(default.to_path_buf());
    };
    if !model.is_dir() {
        return Err(CliError::argument(
            "--model",
            format!("{}: no such folder", model.display()),
        ));
    }
    Ok(model.to_path_buf())
}

/// Whether a component folder holds a safetensors weights file.
fn component_has_weights(folder: &Path) -> bool {
    std::fs::read_dir(folder).is_ok_and(|entries| {
        entries.filter_map(|e| e.ok()).any(|e| {
            e.path()
                .extension()
                .is_some_and(|extension| extension == "safetensors")
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn a_missing_model_names_the_argument() {
        let untrained =
            std::env::temp_dir().join(format!("mvcustom-untrained-{}", std::process::id()));
        for component in ["vae", "unet", "text_encoder"] {
            std::fs::create_dir_all(untrained.join(component)).unwrap();
            std::fs::write(untrained.join(component).join("config.json"), "{}").unwrap();
        }
        let err = resolve_model_or(None, &untrained).unwrap_err();
        assert!(err.to_string().starts_with("--model is required"), "{err}");
        assert!(err.to_string().contains("mvcustom pretrain"), "{err}");
        assert_eq!(err.exit_code(), EXIT_USAGE);
        // Once every component has weights, the default folder is the model.
        for component in ["vae", "unet", "text_encoder"] {
            let weights = untrained.join(component).join("model.safetensors");
            std::fs::write(weights, b"").unwrap();
        }
        assert_eq!(resolve_model_or(None, &untrained).unwrap(), untrained);
        std::fs::remove_dir_all(&untrained).unwrap();
        let err = resolve_model(Some(Path::new("/no/such/model"))).unwrap_err();
        assert_eq!(err.to_string(), "--model /no/such/model: no such folder");
    }

    #[test]
    fn generate_arguments_parse_into_techniques_and_rigs() {
        let cli = Cli::try_parse_from([
            "mvcustom",
            "generate",
            "--model",
            "m",
            "--prompt",
            "a cat",
            "--orbit",
            "4,10,2",
            "--no-dfr",
            "--attention-window",
            "2",
            "--out",
            "o",
        ])
        .unwrap();
        let Command::Generate(args) = cli.command else {
            panic!("not generate")
        };
        assert_eq!(args.source.orbit.unwrap().views, 4);
        let techniques = args.techniques.techniques();
        assert!(techniques.dfr.is_none() && techniques.clc.is_some());
        assert_eq!(techniques.attention_window, Some(2));
        assert_eq!((args.steps, args.guidance, args.seed), (50, 7.5, 0));
    }

    #[test]
    fn contradictory_arguments_are_rejected_by_the_parser() {
        let base = ["mvcustom", "generate", "--prompt", "p", "--out", "o"];
        let parse =
            |extra: &[&str]| Cli::try_parse_from(base.iter().chain(extra).copied()).map(|_| ());
        assert!(parse(&["--orbit", "4,10,2", "--cameras", "c.ron"]).is_err());
        assert!(parse(&[]).is_err(), "a camera source is required");
        assert!(parse(&["--orbit", "4,10,2", "--no-dfr", "--depth", "d.npy"]).is_err());
        assert!(
            parse(&[
                "--orbit",
                "4,10,2",
                "--no-dense-attention",
                "--attention-window",
                "1"
            ])
            .is_err()
        );
        let err = parse(&["--orbit", "8,x"]).unwrap_err().to_string();
        assert!(
            err.contains("--orbit") && err.contains("views,elevation_deg,radius"),
            "{err}"
        );
        assert!(parse(&["--orbit", "4,10,2", "--steps", "0"]).is_err());
    }
}
