//! End-to-end runs of the `mvcustom` binary against the tiny AnimateDiff fixture model
//! (`<crate>/../shared/fixtures/parity/animatediff_pipeline_tiny`, or under
//! `MVCUSTOM_PARITY_DIR`): generated files and reports, parameter counts checked against the
//! safetensors crate, and clear failures for bad arguments and files.

use std::path::{Path, PathBuf};

use bevy_mvcustom::camera::PinholeCamera;
use bevy_mvcustom::cli::depth::read_depth;
use bevy_mvcustom::model::depth::{DepthAnything, DepthAnythingArchitecture};
use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use serde_json::Value;

mod common;
use common::{assert_fails, mvcustom, path, scratch, stderr, tiny_model};

/// Runs `generate` on the tiny model and returns the report.
fn generate(out: &Path, cameras: &[&str]) -> Value {
    let model = tiny_model();
    let mut args = vec![
        "generate",
        "--model",
        path(&model),
        "--prompt",
        "a photo of a teddy bear",
        "--steps",
        "2",
        "--guidance",
        "1",
        "--seed",
        "7",
        "--width",
        "32",
        "--height",
        "32",
        "--out",
        path(out),
        "--quiet",
    ];
    args.extend_from_slice(cameras);
    let output = mvcustom(&args);
    assert!(
        output.status.success(),
        "generate failed: {}",
        stderr(&output)
    );
    serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap()
}

#[test]
fn generate_writes_views_cameras_and_a_complete_report() {
    let out = scratch("generate");
    let report = generate(&out, &["--orbit", "4,15,2.5"]);

    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let expected = [
        "cameras.ron",
        "report.json",
        "view_00.png",
        "view_01.png",
        "view_02.png",
        "view_03.png",
    ];
    assert_eq!(names, expected, "only the outputs, no temporary files");
    for i in 0..4 {
        let image = image::open(out.join(format!("view_{i:02}.png"))).unwrap();
        assert_eq!((image.width(), image.height()), (32, 32));
    }

    let settings = &report["settings"];
    assert_eq!(settings["prompt"], "a photo of a teddy bear");
    assert_eq!(settings["steps"], 2);
    assert_eq!(settings["guidance_scale"], 1.0);
    assert_eq!(settings["seed"], 7);
    assert_eq!(
        (settings["width"].clone(), settings["height"].clone()),
        (32.into(), 32.into())
    );
    assert_eq!(settings["device"], "cpu");
    assert_eq!(settings["dtype"], "f32");
    assert_eq!(settings["techniques"]["dense_attention"], true);
    assert!(settings["techniques"]["dfr"].is_object() && settings["techniques"]["clc"].is_object());
    assert!(settings["anchor_depth"].is_null());
    assert_eq!(report["tool"]["command"], "generate");
    assert_eq!(report["rig"]["kind"], "orbit");
    assert_eq!(report["rig"]["views"], 4);
    assert_eq!(report["model"], path(&tiny_model()));

    let views = report["views"].as_array().unwrap();
    assert_eq!(views.len(), 4);
    let ron_cameras: Vec<PinholeCamera> =
        ron::from_str(&std::fs::read_to_string(out.join("cameras.ron")).unwrap()).unwrap();
    for (i, view) in views.iter().enumerate() {
        assert_eq!(view["index"], i);
        assert_eq!(view["image"], format!("view_{i:02}.png"));
        let camera: PinholeCamera = serde_json::from_value(view["camera"].clone()).unwrap();
        assert_eq!(camera, ron_cameras[i]);
        assert!((camera.center().length() - 2.5).abs() < 1e-4);
        assert_eq!((camera.size().width, camera.size().height), (32, 32));
    }

    let stages: Vec<&str> = report["timings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            assert!(t["seconds"].as_f64().unwrap() >= 0.0);
            t["stage"].as_str().unwrap()
        })
        .collect();
    for stage in ["loading", "denoising", "decoding"] {
        assert!(stages.contains(&stage), "{stage} missing from {stages:?}");
    }
    assert!(report["total_seconds"].as_f64().unwrap() > 0.0);
    let peak = &report["peak_memory_bytes"];
    if cfg!(target_os = "linux") {
        assert!(peak.as_u64().unwrap() > 1 << 20, "{peak}");
    } else {
        assert!(peak.is_null() || peak.is_u64());
    }

    // The cameras it wrote reproduce the same views (same seed, deterministic on CPU).
    let again = scratch("generate-again");
    let replay = generate(&again, &["--cameras", path(&out.join("cameras.ron"))]);
    assert_eq!(replay["rig"]["kind"], "camera_file");
    for i in 0..4 {
        let name = format!("view_{i:02}.png");
        let a = image::open(out.join(&name)).unwrap().to_rgb8();
        let b = image::open(again.join(&name)).unwrap().to_rgb8();
        assert_eq!(a, b, "{name} differs between the orbit and its cameras.ron");
    }

    // Started from those views (video-to-video), the run differs from the one from noise.
    let restyled = scratch("generate-restyled");
    let report = generate(
        &restyled,
        &[
            "--cameras",
            path(&out.join("cameras.ron")),
            "--init-views",
            path(&out),
            "--strength",
            "0.5",
        ],
    );
    assert_eq!(
        report["settings"]["init_views"],
        serde_json::json!([path(&out), 0.5])
    );
    let differing = (0..4)
        .filter(|i| {
            let name = format!("view_{i:02}.png");
            let a = image::open(out.join(&name)).unwrap().to_rgb8();
            let b = image::open(restyled.join(&name)).unwrap().to_rgb8();
            a != b
        })
        .count();
    assert_eq!(differing, 4);
    for dir in [out, again, restyled] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

/// The sum of element counts of every tensor in `files`, by the safetensors crate.
fn tensor_elements(files: &[PathBuf]) -> u64 {
    files
        .iter()
        .map(|file| {
            let bytes = std::fs::read(file).unwrap();
            let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
            tensors
                .tensors()
                .iter()
                .map(|(_, view)| view.shape().iter().product::<usize>() as u64)
                .sum::<u64>()
        })
        .sum()
}

#[test]
fn inspect_counts_every_tensor_element() {
    let model = tiny_model();
    let output = mvcustom(&["inspect", path(&model), "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["kind"], "model");
    let components = report["components"].as_array().unwrap();
    let names: Vec<&str> = components
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "tokenizer",
            "text_encoder",
            "unet",
            "motion_adapter",
            "vae",
            "scheduler"
        ]
    );
    let mut total = 0;
    for name in ["text_encoder", "unet", "motion_adapter", "vae"] {
        let c = components.iter().find(|c| c["name"] == name).unwrap();
        assert!(c["error"].is_null(), "{name}: {}", c["error"]);
        let files: Vec<PathBuf> = std::fs::read_dir(model.join(name))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
            .collect();
        let expected = tensor_elements(&files);
        assert_eq!(
            c["weights"]["parameters"].as_u64().unwrap(),
            expected,
            "{name}"
        );
        total += expected;
    }
    assert_eq!(report["total_parameters"].as_u64().unwrap(), total);

    let unet = components.iter().find(|c| c["name"] == "unet").unwrap();
    assert_eq!(unet["class"], "UNet2DConditionModel");
    assert_eq!(
        unet["details"]["block_out_channels"],
        serde_json::json!([32, 64])
    );
    let adapter = components
        .iter()
        .find(|c| c["name"] == "motion_adapter")
        .unwrap();
    assert_eq!(adapter["details"]["max_frames"], 32);
    let scheduler = components
        .iter()
        .find(|c| c["name"] == "scheduler")
        .unwrap();
    assert_eq!(scheduler["class"], "DDIMScheduler");
    assert_eq!(scheduler["details"]["steps_offset"], 1);
    assert_eq!(scheduler["details"]["beta_schedule"], "scaled_linear");
    assert_eq!(report["model"]["max_views"], 32);

    // The text form prints the same counts.
    let text = mvcustom(&["inspect", path(&model)]);
    assert!(text.status.success());
    let text = String::from_utf8(text.stdout).unwrap();
    let unet_count = tensor_elements(&[model.join("unet/diffusion_pytorch_model.safetensors")]);
    let grouped = unet_count
        .to_string()
        .as_bytes()
        .rchunks(3)
        .rev()
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(",");
    assert!(
        text.contains(&format!(
            "unet (UNet2DConditionModel): {grouped} parameters"
        )),
        "{text}"
    );
}

#[cfg(unix)]
#[test]
fn inspect_reports_the_readable_components_and_names_the_broken_one() {
    let model = tiny_model();
    let broken = scratch("broken-model");
    for name in ["tokenizer", "text_encoder", "unet", "scheduler"] {
        std::os::unix::fs::symlink(model.join(name), broken.join(name)).unwrap();
    }
    std::fs::create_dir(broken.join("vae")).unwrap();
    std::fs::write(
        broken.join("vae/config.json"),
        "{\"block_out_channels\": [16, }",
    )
    .unwrap();
    let output = mvcustom(&["inspect", path(&broken)]);
    assert_eq!(output.status.code(), Some(1));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("unet (UNet2DConditionModel): "), "{text}");
    assert!(
        text.contains("max_views: 1"),
        "no motion adapter: one view at a time\n{text}"
    );
    let err = stderr(&output);
    assert!(
        err.starts_with("error: ") && err.contains("vae") && err.contains("config.json"),
        "{err}"
    );
    std::fs::remove_dir_all(broken).unwrap();
}

/// A Depth-Anything-V2 folder with a tiny architecture and random weights, except that its last
/// layer outputs the constant inverse depth 1: deterministic, and aligned to the scene it is a
/// plane at the cameras' look-at distance.
fn tiny_depth_model(dir: &Path) {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let arch = DepthAnythingArchitecture {
        depth: 4,
        embed_dim: 16,
        num_heads: 2,
        out_channels: [4, 8, 8, 16],
        features: 8,
        layer_ids: [0, 1, 2, 3],
    };
    DepthAnything::new(vb, &arch, 28).unwrap();
    {
        let vars = varmap.data().lock().unwrap();
        let last = "depth_head.scratch.output_conv2.2";
        let weight = &vars[&format!("{last}.weight")];
        weight.set(&weight.zeros_like().unwrap()).unwrap();
        let bias = &vars[&format!("{last}.bias")];
        bias.set(&bias.ones_like().unwrap()).unwrap();
    }
    std::fs::create_dir_all(dir).unwrap();
    varmap.save(dir.join("depth.safetensors")).unwrap();
    let config = r#"{"architecture": {"depth": 4, "embed_dim": 16, "num_heads": 2,
        "out_channels": [4, 8, 8, 16], "features": 8, "layer_ids": [0, 1, 2, 3]},
        "weights": ["depth.safetensors"], "input_size": 28}"#;
    std::fs::write(dir.join("config.json"), config).unwrap();
}

#[test]
fn a_depth_model_estimates_the_anchor_depth_that_dfr_uses() {
    let dir = scratch("depth-model");
    let depth_model = dir.join("depth");
    tiny_depth_model(&depth_model);
    let out = dir.join("views");
    let report = generate(
        &out,
        &["--orbit", "3,10,2.5", "--depth-model", path(&depth_model)],
    );
    assert_eq!(report["settings"]["depth_model"], path(&depth_model));
    assert!(
        report["settings"]["anchor_depth"].is_null(),
        "no file given"
    );
    let stages: Vec<&str> = report["timings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["stage"].as_str().unwrap())
        .collect();
    for stage in ["anchor_depth", "dfr_rasterise"] {
        assert!(stages.contains(&stage), "{stage} missing from {stages:?}");
    }
    assert!(
        report["notices"].as_array().unwrap().is_empty(),
        "{}",
        report["notices"]
    );
    // The estimate (constant) aligned to the scene is the plane through the orbit's centre,
    // 2.5 in front of the anchor camera; it is written like a supplied depth.
    assert!(!report["anchor_depth"].is_null());
    let depth = read_depth(&out.join("anchor_depth.npy"), 1.0).unwrap();
    assert!(
        depth.data().iter().all(|&z| (z - 2.5).abs() < 1e-3),
        "{:?}",
        &depth.data()[..8]
    );

    // A folder that is not a depth model is named; a depth file and a model conflict.
    let model = tiny_model();
    let missing = dir.join("no-such-depth-model");
    let base = [
        "generate",
        "--model",
        path(&model),
        "--prompt",
        "p",
        "--orbit",
        "2,10,2.5",
        "--out",
        path(&out),
        "-q",
    ];
    let with = |extra: &[&str]| -> Vec<String> {
        base.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    assert_fails(
        &with(&["--depth-model", path(&missing)]),
        1,
        &["no-such-depth-model"],
    );
    assert_fails(
        &with(&["--depth-model", path(&depth_model), "--depth", "d.npy"]),
        2,
        &["--depth"],
    );
}

#[test]
fn bench_reports_every_stage_of_the_tiny_model() {
    let out = scratch("bench");
    let json = out.join("bench.json");
    let model = tiny_model();
    let output = mvcustom(&[
        "bench",
        "--model",
        path(&model),
        "--steps",
        "1",
        "--views",
        "2",
        "--latent",
        "8",
        "--guidance",
        "1",
        "--repeat",
        "2",
        "--json",
        path(&json),
        "--quiet",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let table = String::from_utf8(output.stdout).unwrap();
    assert!(
        table.contains("unet_forward") && table.contains("median s"),
        "{table}"
    );
    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let config = &report["configs"][0];
    assert_eq!(
        (config["views"].clone(), config["width"].clone()),
        (2.into(), 16.into())
    );
    let stages: Vec<&str> = config["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            assert_eq!(s["runs"], if s["stage"] == "load" { 1 } else { 2 });
            assert!(s["min_seconds"].as_f64() <= s["max_seconds"].as_f64());
            assert!(s["median_seconds"].as_f64().unwrap() >= 0.0);
            s["stage"].as_str().unwrap()
        })
        .collect();
    // A synthetic subject (fresh weights, four procedural references) by default: its
    // reference features are measured on their own, its rendered features within generation.
    assert_eq!(
        stages,
        [
            "load",
            "encode_prompt",
            "unet_forward",
            "reference_features",
            "generate",
            "rendered_features",
            "dfr_rasterise",
            "denoising",
            "dfr_resolve",
            "clc",
            "decoding"
        ]
    );
    assert_eq!(report["settings"]["subject"], "synthetic");
    // DFR and CLC are on by default, so they run on a synthetic anchor depth.
    assert!(
        report["settings"]["anchor_depth"]
            .as_str()
            .is_some_and(|d| d.starts_with("synthetic")),
        "{}",
        report["settings"]
    );
    for stage in config["stages"].as_array().unwrap() {
        if cfg!(target_os = "linux") {
            assert!(stage["peak_memory_bytes"].is_u64(), "{stage}");
        }
    }
    std::fs::remove_dir_all(out).unwrap();
}

#[test]
fn bad_arguments_and_files_fail_with_a_message_naming_them() {
    let model = tiny_model();
    let out = scratch("errors");
    let m = path(&model);
    let o = path(&out);
    let base = |extra: &[&str]| -> Vec<String> {
        ["generate", "--model", m, "--prompt", "p", "--out", o, "-q"]
            .iter()
            .chain(extra)
            .map(|a| a.to_string())
            .collect()
    };
    assert_fails(
        &base(&["--orbit", "8,x"]),
        2,
        &["--orbit", "8,x", "views,elevation_deg,radius"],
    );
    assert_fails(&base(&["--orbit", "4,10,-2"]), 2, &["--orbit", "radius"]);
    assert_fails(
        &[
            "generate",
            "--model",
            "/no/such/model",
            "--prompt",
            "p",
            "--orbit",
            "4,10,2",
            "--out",
            o,
        ],
        2,
        &["--model", "/no/such/model"],
    );

    let missing = out.join("absent.ron");
    assert_fails(&base(&["--cameras", path(&missing)]), 1, &[path(&missing)]);
    let garbage = out.join("garbage.ron");
    std::fs::write(&garbage, "[(intrinsics: oops)]").unwrap();
    assert_fails(
        &base(&["--cameras", path(&garbage)]),
        1,
        &[path(&garbage), "not a RON list of cameras"],
    );
    let not_colmap = out.join("no-colmap");
    assert_fails(
        &base(&["--colmap", path(&not_colmap)]),
        1,
        &[path(&not_colmap)],
    );

    assert_fails(&base(&["--orbit", "33,10,2"]), 2, &["--orbit", "32 frames"]);
    assert_fails(
        &base(&["--orbit", "4,10,2", "--width", "30"]),
        2,
        &["--width", "30"],
    );
    assert_fails(
        &base(&["--orbit", "4,10,2", "--anchor-view", "4"]),
        2,
        &["--anchor-view"],
    );
    let depth = out.join("depth.txt");
    std::fs::write(&depth, "1 2 3").unwrap();
    assert_fails(
        &base(&["--orbit", "4,10,2", "--depth", path(&depth)]),
        1,
        &[path(&depth)],
    );

    let three_views = out.join("three-views");
    std::fs::create_dir_all(&three_views).unwrap();
    for i in 0..3 {
        image::RgbImage::new(8, 8)
            .save(three_views.join(format!("view_{i:02}.png")))
            .unwrap();
    }
    assert_fails(
        &base(&["--orbit", "4,10,2", "--init-views", path(&three_views)]),
        2,
        &["--init-views", "3 images for 4 cameras"],
    );
    assert_fails(
        &base(&[
            "--orbit",
            "4,10,2",
            "--init-views",
            path(&three_views),
            "--strength",
            "1.5",
        ]),
        2,
        &["--strength", "1.5"],
    );
    // clap names the missing flag on the line after the error.
    let without = mvcustom(&base(&["--orbit", "4,10,2", "--strength", "0.5"]));
    assert_eq!(without.status.code(), Some(2));
    assert!(
        stderr(&without).contains("--init-views"),
        "{}",
        stderr(&without)
    );

    assert_fails(&["inspect", "/no/such/folder"], 1, &["/no/such/folder"]);
    assert_fails(&["inspect", o], 1, &[o, "neither a model folder"]);
    assert_fails(&["bench"], 2, &["--model"]);
    let files: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        !files.iter().any(|f| f.to_string_lossy().ends_with(".png")),
        "failed runs wrote no views: {files:?}"
    );
    std::fs::remove_dir_all(out).unwrap();
}

#[test]
fn every_command_documents_its_arguments() {
    for (command, flags) in [
        (
            "generate",
            &[
                "--orbit",
                "--translation",
                "--cameras",
                "--colmap",
                "--no-dfr",
                "--out",
                "--subject",
                "--no-pose-blocks",
            ][..],
        ),
        ("inspect", &["--json", "FOLDER", "subject"][..]),
        (
            "bench",
            &[
                "--sd15",
                "--repeat",
                "--json",
                "--steps",
                "--subject",
                "--subject-references",
            ][..],
        ),
    ] {
        let output = mvcustom(&[command, "--help"]);
        assert!(output.status.success());
        let help = String::from_utf8(output.stdout).unwrap();
        for flag in flags {
            assert!(help.contains(flag), "{command} --help lacks {flag}");
        }
    }
}
