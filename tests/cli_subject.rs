//! End-to-end subject workflow of the `mvcustom` binary on the tiny AnimateDiff fixture model
//! (`<crate>/../shared/fixtures/parity/animatediff_pipeline_tiny`, or under
//! `MVCUSTOM_PARITY_DIR`): the toy robot's demo subject folder (procedural-world renders) is
//! trained for a few steps (and resumed), inspected, then generated in four views with depth
//! from the world renderer; files, sizes and reports are checked, and bad subject arguments
//! fail naming what is at fault.

use std::path::{Path, PathBuf};
use std::process::Output;

use bevy_mvcustom::cli::depth::encode_npy;
use bevy_mvcustom::mvcustom::{DemoSubjectOptions, write_demo_subject};
use bevy_mvcustom::world::{Clip, DemoSubject, RenderSettings, Split, TrajectorySampler};
use serde_json::Value;

mod common;
use common::{assert_fails, json, mvcustom, path, scratch, stderr, tiny_model};

const SIZE: u32 = 32;
const TOKEN: &str = "<toy_robot>";

/// The toy robot's subject folder as `mvcustom demo-subject` writes it (four references
/// around the subject), plus the cameras of four targets on a held-out evaluation scene of the
/// robot (`targets.ron`) and the z-depth of the target that will be the DFR anchor
/// (`anchor.npy`, sky replaced by twice the farthest surface). Returns the definition and the
/// anchor depth.
fn build_subject(dir: &Path) -> (PathBuf, Vec<f32>) {
    let options = DemoSubjectOptions {
        references: 4,
        size: SIZE,
        ..Default::default()
    };
    let definition = write_demo_subject(DemoSubject::ToyRobot, dir, &options).unwrap();
    let trajectories = TrajectorySampler {
        views: 4,
        width: SIZE,
        height: SIZE,
        ..Default::default()
    };
    let clip = Clip::sample(
        Split::Eval.seed(3).unwrap(),
        &Split::Eval.subject_sampler(DemoSubject::ToyRobot),
        &trajectories,
        &RenderSettings::default(),
    )
    .unwrap();
    std::fs::write(
        dir.join("targets.ron"),
        ron::ser::to_string(&clip.cameras).unwrap(),
    )
    .unwrap();
    // The default anchor is the middle target: index 2 of 4.
    let depth = clip.frames[2].depth.data();
    let far = depth.iter().copied().fold(0.0f32, f32::max);
    let depth: Vec<f32> = depth
        .iter()
        .map(|&d| if d > 0.0 { d } else { 2.0 * far })
        .collect();
    std::fs::write(dir.join("anchor.npy"), encode_npy(SIZE, SIZE, &depth)).unwrap();
    (definition, depth)
}

/// `mvcustom train` on the tiny model for `steps` steps (small and fast).
fn train(definition: &Path, steps: u32) -> Output {
    let model = tiny_model();
    mvcustom(&[
        "train",
        path(definition),
        "--model",
        path(&model),
        "--steps",
        &steps.to_string(),
        "--resolution",
        &SIZE.to_string(),
        "--references-per-step",
        "2",
        "--pose-levels",
        "0,1",
        "--ray-samples",
        "8",
        "--checkpoint-every",
        "2",
        "--seed",
        "5",
        "--quiet",
    ])
}

#[test]
fn train_then_generate_views_of_the_subject() {
    let dir = scratch("workflow");
    let (definition, depth) = build_subject(&dir.0);
    let weights = dir.0.join("toy_robot.safetensors");
    let checkpoint = dir.0.join("toy_robot.checkpoint.safetensors");
    let train_report = dir.0.join("toy_robot.train.json");

    // Train three steps.
    let output = train(&definition, 3);
    assert!(output.status.success(), "train failed: {}", stderr(&output));
    assert!(weights.is_file() && checkpoint.is_file() && train_report.is_file());
    let report = json(&train_report);
    assert_eq!(report["tool"]["command"], "train");
    assert_eq!(report["token"], TOKEN);
    assert_eq!(report["settings"]["steps"], 3);
    assert_eq!(report["settings"]["resolution"], SIZE);
    assert_eq!(
        report["settings"]["pose"]["levels"],
        serde_json::json!([0, 1])
    );
    assert_eq!(report["resumed_at"], 0);
    let steps = report["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 3);
    for (i, step) in steps.iter().enumerate() {
        assert_eq!(step["step"], i + 1);
        for term in ["total", "denoising", "opacity", "background", "rgb"] {
            let value = step[term].as_f64().unwrap();
            assert!(value.is_finite() && value >= 0.0, "{term} = {value}");
        }
    }
    assert!(report["peak_memory_bytes"].is_u64() || report["peak_memory_bytes"].is_null());

    // Resume to four steps: only the fourth step runs.
    let output = train(&definition, 4);
    assert!(
        output.status.success(),
        "resume failed: {}",
        stderr(&output)
    );
    let report = json(&train_report);
    assert_eq!(report["resumed_at"], 3);
    let steps: Vec<u64> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, [4]);

    // Inspect the subject folder: the weights' parameters as the safetensors crate counts them.
    let output = mvcustom(&["inspect", path(&dir.0), "--json"]);
    assert!(
        output.status.success(),
        "inspect failed: {}",
        stderr(&output)
    );
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["token"], TOKEN);
    assert_eq!(summary["references"].as_array().unwrap().len(), 4);
    assert!(summary["references"][0]["masked"].as_bool().unwrap());
    let bytes = std::fs::read(&weights).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let parameters: usize = tensors
        .tensors()
        .iter()
        .map(|(_, t)| t.shape().iter().product::<usize>())
        .sum();
    assert_eq!(summary["weights"]["parameters"], parameters);
    assert_eq!(summary["weights"]["info"]["reference_resolution"], SIZE);
    let groups = summary["weights"]["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 7, "six pose blocks and the token row");
    assert_eq!(groups[6]["name"], "token_embedding");
    assert_eq!(summary["training"]["steps"], 4);
    let text = mvcustom(&["inspect", path(&definition)]);
    assert!(text.status.success());
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.contains(&format!(
            "{TOKEN} (class \"toy robot\"), 4 reference view(s)"
        )) && text.contains("trained 4 steps"),
        "{text}"
    );

    // Generate four views of the subject with DFR on the world's depth.
    let out = dir.0.join("views");
    let model = tiny_model();
    let prompt = format!("a photo of {TOKEN} toy robot on the grass");
    let output = mvcustom(&[
        "generate",
        "--model",
        path(&model),
        "--subject",
        path(&definition),
        "--prompt",
        &prompt,
        "--cameras",
        path(&dir.0.join("targets.ron")),
        "--depth",
        path(&dir.0.join("anchor.npy")),
        "--steps",
        "2",
        "--guidance",
        "3",
        "--seed",
        "9",
        "--width",
        &SIZE.to_string(),
        "--height",
        &SIZE.to_string(),
        "--out",
        path(&out),
        "--quiet",
    ]);
    assert!(
        output.status.success(),
        "generate failed: {}",
        stderr(&output)
    );
    let report = json(&out.join("report.json"));
    for i in 0..4 {
        let view = image::open(out.join(format!("view_{i:02}.png"))).unwrap();
        assert_eq!((view.width(), view.height()), (SIZE, SIZE));
    }
    let settings = &report["settings"];
    assert_eq!(settings["prompt"], prompt.as_str());
    assert_eq!(
        (settings["steps"].clone(), settings["seed"].clone()),
        (2.into(), 9.into())
    );
    assert_eq!(settings["guidance_scale"], 3.0);
    assert_eq!(settings["techniques"]["pose_blocks"], true);
    assert_eq!(settings["anchor_depth"]["width"], SIZE);

    let subject = &report["subject"];
    assert_eq!(subject["token"], TOKEN);
    assert_eq!(subject["references"], 4);
    assert_eq!(subject["reference_resolution"], SIZE);
    assert_eq!(subject["pose_blocks"].as_array().unwrap().len(), 6);
    assert_eq!(subject["pose_blocks_used"], true);
    assert_eq!(subject["parameters"], parameters);
    assert_eq!(subject["weights"], path(&weights));

    let stages: Vec<&str> = report["timings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            assert!(t["seconds"].as_f64().unwrap() >= 0.0);
            t["stage"].as_str().unwrap()
        })
        .collect();
    for stage in [
        "loading",
        "reference_features",
        "rendered_features",
        "dfr_rasterise",
        "denoising",
        "dfr_resolve",
        "clc",
        "decoding",
    ] {
        assert!(stages.contains(&stage), "{stage} missing from {stages:?}");
    }
    assert!(report["total_seconds"].as_f64().unwrap() > 0.0);
    if cfg!(target_os = "linux") {
        assert!(report["peak_memory_bytes"].as_u64().unwrap() > 1 << 20);
    }
    assert!(
        report["notices"].as_array().unwrap().is_empty(),
        "{}",
        report["notices"]
    );

    // The anchor depth it used: exact in the .npy, normalised in the 16-bit PNG.
    let anchor = &report["anchor_depth"];
    assert_eq!(anchor["view"], 2);
    assert_eq!(
        (anchor["width"].clone(), anchor["height"].clone()),
        (SIZE.into(), SIZE.into())
    );
    let written =
        bevy_mvcustom::cli::depth::read_depth(&out.join(anchor["npy"].as_str().unwrap()), 1.0)
            .unwrap();
    assert_eq!(written.data(), depth.as_slice());
    let png = image::open(out.join(anchor["png"].as_str().unwrap())).unwrap();
    assert!(matches!(png, image::DynamicImage::ImageLuma16(_)));
    let near = anchor["near"].as_f64().unwrap();
    let far = anchor["far"].as_f64().unwrap();
    assert!(near > 0.0 && far > near, "{near} {far}");

    // The masks it used: DFR visibility per replaced grid, CLC disocclusion at 16×16 latents.
    let masks = report["masks"].as_array().unwrap();
    let kinds: Vec<&str> = masks.iter().map(|m| m["kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"dfr_visibility") && kinds.last() == Some(&"clc_disocclusion"));
    for mask in masks {
        let grid = mask["grid"].as_array().unwrap();
        let (h, w) = (
            grid[0].as_u64().unwrap() as u32,
            grid[1].as_u64().unwrap() as u32,
        );
        let files = mask["files"].as_array().unwrap();
        assert_eq!(files.len(), 4);
        for (view, file) in files.iter().enumerate() {
            let image = image::open(out.join(file.as_str().unwrap()))
                .unwrap()
                .to_luma8();
            assert_eq!(image.dimensions(), (w, h));
            if view == 2 {
                assert!(
                    image.pixels().all(|p| p.0[0] == 0),
                    "the anchor needs no mask"
                );
            }
        }
    }
    assert_eq!(masks.last().unwrap()["grid"], serde_json::json!([16, 16]));

    // Every file the report names exists, and nothing else but the inputs' outputs.
    let mut listed: Vec<String> = vec!["cameras.ron".into(), "report.json".into()];
    listed.extend((0..4).map(|i| format!("view_{i:02}.png")));
    listed.push(anchor["npy"].as_str().unwrap().into());
    listed.push(anchor["png"].as_str().unwrap().into());
    for mask in masks {
        for file in mask["files"].as_array().unwrap() {
            listed.push(file.as_str().unwrap().into());
        }
    }
    listed.sort();
    let mut present: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    present.sort();
    assert_eq!(present, listed);
}

#[test]
fn bad_subject_arguments_name_what_is_at_fault() {
    let dir = scratch("errors");
    let model = tiny_model();
    let m = path(&model);
    let definition = dir.0.join("robot.ron");
    let missing = dir.0.join("absent.ron");
    assert_fails(
        &["train", path(&missing), "--model", m],
        1,
        &[path(&missing)],
    );
    std::fs::write(
        &definition,
        "(token: \"robot\", class_word: \"toy\", references: [])",
    )
    .unwrap();
    assert_fails(
        &["train", path(&definition), "--model", m],
        1,
        &[path(&definition), "token"],
    );

    let (definition, _) = build_subject(&dir.0);
    let d = path(&definition);
    assert_fails(
        &["train", d, "--model", m, "--resolution", "30", "-q"],
        2,
        &["--resolution", "30"],
    );
    assert_fails(
        &["train", d, "--model", m, "--pose-levels", "1,x"],
        2,
        &["--pose-levels", "1,x"],
    );
    let empty = dir.0.join("no-images");
    std::fs::create_dir_all(&empty).unwrap();
    assert_fails(
        &["train", d, "--model", m, "--class-images", path(&empty)],
        2,
        &["--class-images", "no PNG or JPEG"],
    );
    // Not trained yet.
    let out = dir.0.join("out");
    assert_fails(
        &[
            "generate",
            "--model",
            m,
            "--subject",
            d,
            "--prompt",
            "p",
            "--orbit",
            "4,10,2",
            "--out",
            path(&out),
        ],
        1,
        &["toy_robot.safetensors", "train it first"],
    );
    // Weights of another placement than the model has: no block at level 5.
    assert_fails(
        &[
            "train",
            d,
            "--model",
            m,
            "--pose-levels",
            "5",
            "--steps",
            "1",
            "-q",
        ],
        1,
        &["levels [5]"],
    );
    // `train --help` documents every option.
    let help = mvcustom(&["train", "--help"]);
    assert!(help.status.success());
    let help = String::from_utf8(help.stdout).unwrap();
    for flag in [
        "--model",
        "--steps",
        "--lr",
        "--resolution",
        "--references-per-step",
        "--reference-dropout",
        "--prompt-dropout",
        "--class-images",
        "--pose-levels",
        "--ray-samples",
        "--seed",
        "--checkpoint-every",
        "--restart",
        "--device",
        "checkpoint",
    ] {
        assert!(help.contains(flag), "train --help lacks {flag}");
    }
}
