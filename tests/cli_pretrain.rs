//! `mvcustom pretrain` end to end on the component configurations of the tiny AnimateDiff
//! fixture (`<crate>/../shared/fixtures/parity/animatediff_pipeline_tiny`, or under
//! `MVCUSTOM_PARITY_DIR`) with no weights: the autoencoder trains from scratch for two steps,
//! resumes to three and writes its measured scaling factor; then the text encoder, UNet and
//! motion modules train on two-view procedural clips with high-noise timesteps, keeping a
//! moving average of their weights. Loss logs, checkpoints and weights are checked, and bad
//! settings fail naming their flag.

use std::path::Path;

use candle_core::{Device, Tensor};

mod common;
use common::{assert_fails, max_abs_difference, mvcustom, path, scratch, stderr, tiny_model};

/// The configuration files of the tiny fixture model (no weights) under `dir`.
fn configurations_only(dir: &Path) {
    let model = tiny_model();
    for component in [
        "vae",
        "unet",
        "motion_adapter",
        "text_encoder",
        "tokenizer",
        "scheduler",
    ] {
        std::fs::create_dir_all(dir.join(component)).unwrap();
        for entry in std::fs::read_dir(model.join(component)).unwrap() {
            let file = entry.unwrap().path();
            if file.extension().is_some_and(|e| e == "json") {
                std::fs::copy(&file, dir.join(component).join(file.file_name().unwrap())).unwrap();
            }
        }
    }
}

/// The `step,loss,seconds` rows of a loss log.
fn loss_rows(path: &Path) -> Vec<(usize, f32)> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("step,loss,seconds"));
    lines
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            assert_eq!(fields.len(), 3, "{line}");
            (fields[0].parse().unwrap(), fields[1].parse().unwrap())
        })
        .collect()
}

fn scaling_factor(model: &Path) -> f64 {
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(model.join("vae/config.json")).unwrap()).unwrap();
    config["scaling_factor"].as_f64().unwrap()
}

#[test]
fn both_stages_train_from_scratch_resume_and_write_their_weights() {
    let dir = scratch("stages");
    let model = dir.join("model");
    let work = dir.join("work");
    configurations_only(&model);
    let fixture_factor = scaling_factor(&model);
    let vae = |steps: &str| {
        mvcustom(&[
            "pretrain",
            "vae",
            "--model",
            path(&model),
            "--work",
            path(&work),
            "--steps",
            steps,
            "--batch",
            "2",
            "--size",
            "32",
            "--crop",
            "16",
            "--warmup",
            "1",
            "--save-every",
            "1",
            "--quiet",
        ])
    };
    let output = vae("2");
    assert!(output.status.success(), "{}", stderr(&output));
    let rows = loss_rows(&work.join("vae.losses.csv"));
    assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), [1, 2]);
    assert!(
        rows.iter().all(|r| r.1.is_finite() && r.1 > 0.0),
        "{rows:?}"
    );
    assert!(work.join("vae.checkpoint.safetensors").is_file());
    assert!(
        model
            .join("vae/diffusion_pytorch_model.safetensors")
            .is_file()
    );
    let measured = scaling_factor(&model);
    assert!(
        measured.is_finite() && measured > 0.0 && measured != fixture_factor,
        "{measured}"
    );
    let summary = String::from_utf8_lossy(&output.stdout);
    assert!(summary.contains("scaling factor"), "{summary}");

    // Resumed: one more step, the log continues.
    let output = vae("3");
    assert!(output.status.success(), "{}", stderr(&output));
    let rows = loss_rows(&work.join("vae.losses.csv"));
    assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), [1, 2, 3]);

    let output = mvcustom(&[
        "pretrain",
        "denoiser",
        "--model",
        path(&model),
        "--work",
        path(&work),
        "--steps",
        "2",
        "--batch",
        "1",
        "--views",
        "2",
        "--size",
        "32",
        "--warmup",
        "1",
        "--save-every",
        "1",
        "--timesteps",
        "high-noise",
        "--ema-decay",
        "0.9",
        "--quiet",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let rows = loss_rows(&work.join("denoiser.losses.csv"));
    assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), [1, 2]);
    assert!(
        rows.iter().all(|r| r.1.is_finite() && r.1 > 0.0),
        "{rows:?}"
    );
    for weights in [
        "unet/diffusion_pytorch_model.safetensors",
        "motion_adapter/diffusion_pytorch_model.safetensors",
        "text_encoder/model.safetensors",
    ] {
        assert!(model.join(weights).is_file(), "{weights} not written");
    }
    // The model folder holds the moving average the checkpoint resumes from, not the last
    // step's weights.
    let checkpoint =
        candle_core::safetensors::load(work.join("denoiser.checkpoint.safetensors"), &Device::Cpu)
            .unwrap();
    let unet = candle_core::safetensors::load(
        model.join("unet/diffusion_pytorch_model.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let name = "conv_in.weight";
    let published = &unet[name];
    let distance = |other: &Tensor| max_abs_difference(published, other);
    assert_eq!(distance(&checkpoint[&format!("ema/unet/{name}")]), 0.0);
    assert!(distance(&checkpoint[&format!("unet/{name}")]) > 0.0);
}

#[test]
fn bad_settings_name_their_flag() {
    let dir = scratch("errors");
    let model = dir.join("model");
    configurations_only(&model);
    let work = dir.join("work");
    let base = |stage: &str, extra: &[&str]| -> Vec<String> {
        [
            "pretrain",
            stage,
            "--model",
            path(&model),
            "--work",
            path(&work),
            "--steps",
            "1",
            "--batch",
            "1",
            "--size",
            "32",
            "--quiet",
        ]
        .iter()
        .chain(extra)
        .map(|s| s.to_string())
        .collect()
    };
    assert_fails(
        &base("denoiser", &["--caption-dropout", "1.5"]),
        2,
        &["--caption-dropout"],
    );
    assert_fails(
        &base("denoiser", &["--timesteps", "sideways"]),
        2,
        &["--timesteps"],
    );
    assert_fails(&base("vae", &["--crop", "48"]), 2, &["--crop"]);
    assert_fails(&base("vae", &["--ema-decay", "1.5"]), 2, &["--ema-decay"]);
    let missing = dir.join("no-model");
    let mut args = base("vae", &[]);
    args[3] = path(&missing).to_string();
    assert_fails(&args, 1, &["no-model"]);
}
