//! `mvcustom eval` end to end on the tiny AnimateDiff fixture model
//! (`<crate>/../shared/fixtures/parity/animatediff_pipeline_tiny`, or under
//! `MVCUSTOM_PARITY_DIR`): the toy robot's demo subject folder is written and trained for two
//! steps, then one case of three 32×32 views is evaluated with two denoising steps. The
//! numbers of a barely trained tiny model mean nothing; what is checked is that the table and
//! the JSON are complete and well-formed, the ground-truth row scores its ceiling, and bad
//! subjects fail naming what is at fault.

use std::path::{Path, PathBuf};

use bevy_mvcustom::mvcustom::{DemoSubjectOptions, write_demo_subject};
use bevy_mvcustom::world::DemoSubject;
use serde_json::Value;

mod common;
use common::{assert_fails, mvcustom, path, scratch, stderr, tiny_model};

const SIZE: u32 = 32;
const VIEWS: usize = 3;

/// The toy robot's folder, trained for two steps on the tiny model.
fn trained_robot(dir: &Path) -> PathBuf {
    let options = DemoSubjectOptions {
        references: 4,
        size: SIZE,
        ..Default::default()
    };
    let folder = dir.join("toy_robot");
    let definition = write_demo_subject(DemoSubject::ToyRobot, &folder, &options).unwrap();
    let model = tiny_model();
    let output = mvcustom(&[
        "train",
        path(&definition),
        "--model",
        path(&model),
        "--steps",
        "2",
        "--resolution",
        &SIZE.to_string(),
        "--references-per-step",
        "2",
        "--pose-levels",
        "0,1",
        "--ray-samples",
        "8",
        "--quiet",
    ]);
    assert!(output.status.success(), "train failed: {}", stderr(&output));
    folder
}

#[test]
fn eval_writes_the_ablation_table_and_a_complete_report() {
    let dir = scratch("run");
    let subject = trained_robot(&dir.0);
    let out = dir.0.join("eval");
    let model = tiny_model();
    let output = mvcustom(&[
        "eval",
        "--model",
        path(&model),
        "--subjects",
        path(&subject),
        "--cases",
        "1",
        "--views",
        &VIEWS.to_string(),
        "--size",
        &SIZE.to_string(),
        "--steps",
        "2",
        "--prototype-clips",
        "1",
        "--dfr-layers",
        "motion-module",
        "--dfr-levels",
        "0",
        "--out",
        path(&out),
        "--quiet",
    ]);
    assert!(output.status.success(), "eval failed: {}", stderr(&output));

    // The table on stdout, also in table.md: a header, a rule and five rows.
    let table = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        std::fs::read_to_string(out.join("table.md")).unwrap(),
        table
    );
    let rows: Vec<&str> = table.lines().filter(|l| l.starts_with('|')).collect();
    assert_eq!(rows.len(), 7, "{table}");
    let labels = [
        "ground truth (renders)",
        "base model",
        "+ pose blocks (customization)",
        "+ DFR",
        "+ DFR + CLC",
    ];
    for (row, label) in rows[2..].iter().zip(labels) {
        let cells: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
        assert_eq!(cells.len(), 7, "{row}");
        assert_eq!(cells[0], label);
        let pose: f64 = cells[1].parse().unwrap();
        assert!((0.0..=1.0).contains(&pose), "{row}");
    }
    assert!(
        rows[2].starts_with("| ground truth (renders) | 1.000 |"),
        "{table}"
    );
    assert_eq!(
        table.lines().filter(|l| l.starts_with("- ")).count(),
        4,
        "{table}"
    );

    // report.json: settings, chance, five summaries, four verdicts, one case of five rows.
    let report: Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["tool"]["command"], "eval");
    assert_eq!(report["settings"]["views"], VIEWS);
    assert_eq!(report["settings"]["size"], SIZE);
    assert_eq!(report["settings"]["steps"], 2);
    // The DFR rows ran with the layers asked for, the rest of DFR's settings at their defaults.
    let dfr = &report["settings"]["dfr"];
    assert_eq!(dfr["layers"]["kinds"], serde_json::json!(["MotionModule"]));
    assert_eq!(
        dfr["layers"]["levels"],
        serde_json::json!({ "Levels": [0] })
    );
    assert_eq!(dfr["max_surface_angle_deg"], 80.0);
    assert!(
        (report["chance"]["pose_accuracy"].as_f64().unwrap() - 1.0 / VIEWS as f64).abs() < 1e-6
    );
    let summaries = report["rows"].as_array().unwrap();
    assert_eq!(summaries.len(), 5);
    for summary in summaries {
        assert_eq!(summary["clips"], 1);
        assert!(
            summary["consistency"]["pixels"].as_u64().unwrap() > 0,
            "{summary}"
        );
        assert!(
            summary["consistency"]["mean_abs"]
                .as_f64()
                .unwrap()
                .is_finite()
        );
        let identity = summary["identity"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&identity), "{summary}");
    }
    let truth = &summaries[0];
    assert_eq!(truth["variant"], "ground_truth");
    assert_eq!(truth["pose_accuracy"], 1.0);
    assert_eq!(truth["prompt_alignment"], 1.0);
    assert!(truth["seconds_per_clip"].is_null());
    assert!(summaries[1]["seconds_per_clip"].as_f64().unwrap() > 0.0);
    let verdicts = report["verdicts"].as_array().unwrap();
    assert_eq!(verdicts.len(), 4);
    assert!(verdicts.iter().all(|v| v["improved"].is_boolean()));

    let cases = report["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 1);
    let case = &cases[0];
    assert_eq!(case["subject"], "toy_robot");
    assert_eq!(case["held_out_environment"], true);
    let environment = case["environment"].as_str().unwrap();
    let case_rows = case["rows"].as_array().unwrap();
    assert_eq!(case_rows.len(), 5);
    assert!(case_rows[0]["prompt"].is_null());
    assert_eq!(
        case_rows[1]["prompt"],
        format!("a toy robot {environment}").as_str()
    );
    for row in &case_rows[2..] {
        assert_eq!(
            row["prompt"],
            format!("a <toy_robot> toy robot {environment}").as_str()
        );
        assert_eq!(row["notices"].as_array().unwrap().len(), 0, "{row}");
    }
    for row in case_rows {
        assert_eq!(row["metrics"]["retrieved"].as_array().unwrap().len(), VIEWS);
    }

    // One strip per row, the views side by side.
    let strips = report["views"].as_array().unwrap();
    assert_eq!(strips.len(), 5);
    for strip in strips {
        let image = image::open(out.join(strip.as_str().unwrap())).unwrap();
        assert_eq!((image.width(), image.height()), (SIZE * VIEWS as u32, SIZE));
    }
}

#[test]
fn bad_subjects_are_named_before_the_model_loads() {
    let dir = scratch("errors");
    let model = tiny_model();
    let m = path(&model);
    let out = dir.0.join("out");
    let o = path(&out);
    // A folder without a definition.
    let empty = dir.0.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    assert_fails(
        &["eval", "--model", m, "--subjects", path(&empty), "--out", o],
        2,
        &["--subjects", "no subject definition"],
    );
    // A demo subject that was never trained.
    let options = DemoSubjectOptions {
        references: 1,
        size: 16,
        ..Default::default()
    };
    let vase = dir.0.join("vase");
    write_demo_subject(DemoSubject::PatternedVase, &vase, &options).unwrap();
    assert_fails(
        &["eval", "--model", m, "--subjects", path(&vase), "--out", o],
        1,
        &["patterned_vase.safetensors", "train it first"],
    );
    // A subject that is not a demo subject: no ground truth to render.
    let teddy = dir.0.join("teddy");
    std::fs::create_dir_all(&teddy).unwrap();
    let definition = std::fs::read_to_string(vase.join("patterned_vase.subject.ron"))
        .unwrap()
        .replace("<patterned_vase>", "<teddy>")
        .replace("\"images/", "\"../vase/images/")
        .replace("\"masks/", "\"../vase/masks/");
    std::fs::write(teddy.join("teddy.subject.ron"), definition).unwrap();
    std::fs::write(teddy.join("patterned_vase.safetensors"), b"").unwrap();
    assert_fails(
        &["eval", "--model", m, "--subjects", path(&teddy), "--out", o],
        1,
        &["teddy.subject.ron", "<teddy>", "<toy_robot>"],
    );
    assert!(
        !out.exists(),
        "nothing is written when the arguments are bad"
    );
}
