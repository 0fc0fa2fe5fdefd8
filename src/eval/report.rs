//! The evaluation's results: one summary per ablation row (the table), whether each technique
//! improved the metric it exists for (the verdicts), and every case's details — as JSON and as
//! a Markdown table.

use serde::Serialize;

use super::ablation::Variant;
use super::cases::case_environments;
use super::metrics::{ClipMetrics, Consistency};
use super::run::{CaseRun, EvalSettings};
use crate::world::TrajectorySpec;
use crate::world::split::EVAL_ONLY_ENVIRONMENTS;

/// One row of the table: its metrics over every case.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RowSummary {
    /// The row.
    pub variant: Variant,
    /// Its label in the table.
    pub label: &'static str,
    /// Clips measured.
    pub clips: usize,
    /// Mean camera-pose accuracy (retrieval of the own ground-truth view).
    pub pose_accuracy: f32,
    /// Multi-view colour error, pooled over every co-visible pixel of every clip.
    pub consistency: Consistency,
    /// Mean subject identity over the clips that show the subject.
    pub identity: Option<f32>,
    /// Fraction of clips whose prompted environment was recognised.
    pub prompt_alignment: f32,
    /// Mean seconds per generated clip (`None` for the ground truth).
    pub seconds_per_clip: Option<f64>,
}

/// Whether a technique improved the metric it exists for.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Verdict {
    /// The technique.
    pub technique: &'static str,
    /// The metric it should improve.
    pub metric: &'static str,
    /// The row without it.
    pub without: Variant,
    /// The row with it.
    pub with: Variant,
    /// The metric without it.
    pub before: Option<f64>,
    /// The metric with it.
    pub after: Option<f64>,
    /// Whether `after` is better than `before` (both present).
    pub improved: bool,
}

/// One row of one case.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CaseRowRecord {
    /// The row.
    pub variant: Variant,
    /// Its prompt (`None` for the ground truth).
    pub prompt: Option<String>,
    /// Seconds its generation took.
    pub seconds: Option<f64>,
    /// Its metrics.
    pub metrics: ClipMetrics,
    /// The pipeline's notices.
    pub notices: Vec<String>,
}

/// One case.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CaseRecord {
    /// Its index.
    pub index: usize,
    /// The demo subject's name.
    pub subject: &'static str,
    /// The environment's caption phrase.
    pub environment: String,
    /// Whether the environment never appears in training.
    pub held_out_environment: bool,
    /// The evaluation-split scene seed.
    pub seed: u64,
    /// The cameras' trajectory.
    pub trajectory: TrajectorySpec,
    /// The ground truth's caption.
    pub caption: String,
    /// Its rows.
    pub rows: Vec<CaseRowRecord>,
}

/// What a metric would score by chance.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Chance {
    /// One over the views per clip.
    pub pose_accuracy: f32,
    /// One over the environments.
    pub prompt_alignment: f32,
}

/// The whole evaluation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EvalReport {
    /// The settings it ran with.
    pub settings: EvalSettings,
    /// Chance levels.
    pub chance: Chance,
    /// One summary per row, in table order.
    pub rows: Vec<RowSummary>,
    /// One verdict per (technique, metric it exists for).
    pub verdicts: Vec<Verdict>,
    /// Every case.
    pub cases: Vec<CaseRecord>,
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, count) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    (count > 0).then(|| sum / count as f64)
}

impl RowSummary {
    /// The summary of `variant` over the cases' rows.
    fn new(variant: Variant, runs: &[CaseRun]) -> Self {
        let rows: Vec<_> = runs
            .iter()
            .flat_map(|run| run.rows.iter().filter(|r| r.variant == variant))
            .collect();
        let metrics = || rows.iter().map(|r| &r.metrics);
        Self {
            variant,
            label: variant.label(),
            clips: rows.len(),
            pose_accuracy: mean(metrics().map(|m| m.pose_accuracy as f64)).unwrap_or(0.0) as f32,
            consistency: Consistency::pool(metrics().map(|m| &m.consistency)),
            identity: mean(metrics().filter_map(|m| m.identity.map(f64::from))).map(|v| v as f32),
            prompt_alignment: mean(metrics().map(|m| f64::from(u8::from(m.environment_recognised))))
                .unwrap_or(0.0) as f32,
            seconds_per_clip: mean(rows.iter().filter_map(|r| r.seconds)),
        }
    }
}

/// How a verdict reads its metric off a row, and which direction is better.
struct Criterion {
    technique: &'static str,
    metric: &'static str,
    without: Variant,
    with: Variant,
    value: fn(&RowSummary) -> Option<f64>,
    higher_is_better: bool,
}

/// Each technique against the metric it exists for.
const CRITERIA: [Criterion; 4] = [
    Criterion {
        technique: "pose blocks (customization)",
        metric: "subject identity",
        without: Variant::Base,
        with: Variant::PoseBlocks,
        value: |r| r.identity.map(f64::from),
        higher_is_better: true,
    },
    Criterion {
        technique: "DFR",
        metric: "camera-pose accuracy",
        without: Variant::PoseBlocks,
        with: Variant::Dfr,
        value: |r| Some(f64::from(r.pose_accuracy)),
        higher_is_better: true,
    },
    Criterion {
        technique: "DFR",
        metric: "multi-view error",
        without: Variant::PoseBlocks,
        with: Variant::Dfr,
        value: |r| (r.consistency.pixels > 0).then_some(f64::from(r.consistency.mean_abs)),
        higher_is_better: false,
    },
    Criterion {
        technique: "CLC",
        metric: "multi-view error",
        without: Variant::Dfr,
        with: Variant::DfrClc,
        value: |r| (r.consistency.pixels > 0).then_some(f64::from(r.consistency.mean_abs)),
        higher_is_better: false,
    },
];

impl EvalReport {
    /// Summarises the runs of an evaluation made with `settings`.
    pub fn new(settings: &EvalSettings, runs: &[CaseRun]) -> Self {
        let rows: Vec<RowSummary> = Variant::ALL
            .iter()
            .map(|v| RowSummary::new(*v, runs))
            .collect();
        let row = |v: Variant| rows.iter().find(|r| r.variant == v);
        let verdicts = CRITERIA
            .iter()
            .map(|c| {
                let before = row(c.without).and_then(c.value);
                let after = row(c.with).and_then(c.value);
                let improved = match (before, after) {
                    (Some(b), Some(a)) if c.higher_is_better => a > b,
                    (Some(b), Some(a)) => a < b,
                    _ => false,
                };
                Verdict {
                    technique: c.technique,
                    metric: c.metric,
                    without: c.without,
                    with: c.with,
                    before,
                    after,
                    improved,
                }
            })
            .collect();
        let cases = runs
            .iter()
            .map(|run| CaseRecord {
                index: run.case.index,
                subject: run.case.subject.name(),
                environment: run.case.environment.phrase(),
                held_out_environment: EVAL_ONLY_ENVIRONMENTS.contains(&run.case.environment),
                seed: run.case.seed,
                trajectory: run.case.clip.trajectory,
                caption: run.case.clip.caption.clone(),
                rows: run
                    .rows
                    .iter()
                    .map(|r| CaseRowRecord {
                        variant: r.variant,
                        prompt: r.prompt.clone(),
                        seconds: r.seconds,
                        metrics: r.metrics.clone(),
                        notices: r.notices.clone(),
                    })
                    .collect(),
            })
            .collect();
        Self {
            settings: settings.clone(),
            chance: Chance {
                pose_accuracy: 1.0 / settings.views.max(1) as f32,
                prompt_alignment: 1.0 / case_environments().len() as f32,
            },
            rows,
            verdicts,
            cases,
        }
    }

    /// The ablation table, the verdicts and the chance levels as Markdown.
    pub fn markdown(&self) -> String {
        let optional = |v: Option<f32>, digits: usize| match v {
            Some(v) => format!("{v:.digits$}"),
            None => "–".to_string(),
        };
        let mut out = String::new();
        out.push_str(
            "| Variant | Pose accuracy ↑ | Multi-view error ↓ | Multi-view PSNR (dB) ↑ | \
             Identity ↑ | Prompt alignment ↑ | Seconds / clip |\n",
        );
        out.push_str("|---|---:|---:|---:|---:|---:|---:|\n");
        for row in &self.rows {
            out.push_str(&format!(
                "| {} | {:.3} | {} | {} | {} | {:.3} | {} |\n",
                row.label,
                row.pose_accuracy,
                if row.consistency.pixels > 0 {
                    format!("{:.4}", row.consistency.mean_abs)
                } else {
                    "–".into()
                },
                optional(row.consistency.psnr, 2),
                optional(row.identity, 3),
                row.prompt_alignment,
                match row.seconds_per_clip {
                    Some(s) => format!("{s:.1}"),
                    None => "–".into(),
                },
            ));
        }
        let clips = self.rows.first().map_or(0, |r| r.clips);
        let s = &self.settings;
        out.push_str(&format!(
            "\n{clips} clips ({} per subject) of {} views at {}×{}, {} steps, guidance {}. \
             Chance: pose accuracy {:.3}, prompt alignment {:.3}.\n\n",
            s.cases,
            s.views,
            s.size,
            s.size,
            s.steps,
            s.guidance_scale,
            self.chance.pose_accuracy,
            self.chance.prompt_alignment
        ));
        for v in &self.verdicts {
            let value = |x: Option<f64>| x.map_or("–".to_string(), |x| format!("{x:.4}"));
            out.push_str(&format!(
                "- {} {} {}: {} → {} ({} vs {})\n",
                v.technique,
                if v.improved {
                    "improves"
                } else {
                    "does **not** improve"
                },
                v.metric,
                value(v.before),
                value(v.after),
                v.with.label(),
                v.without.label()
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::cases::EvalCase;
    use crate::eval::run::RowRun;
    use crate::world::{DemoSubject, RenderSettings, TrajectorySampler};

    fn metrics(pose: f32, error: f32, identity: Option<f32>, recognised: bool) -> ClipMetrics {
        ClipMetrics {
            pose_accuracy: pose,
            retrieved: vec![0, 1],
            consistency: Consistency {
                pixels: 100,
                mean_abs: error,
                rmse: error,
                psnr: Some(-20.0 * error.log10()),
            },
            identity,
            recognised_environment: None,
            environment_recognised: recognised,
        }
    }

    fn run(index: usize, values: [(f32, f32, Option<f32>, bool); 5]) -> CaseRun {
        let trajectories = TrajectorySampler {
            views: 2,
            width: 8,
            height: 8,
            ..Default::default()
        };
        let render = RenderSettings {
            supersampling: 1,
            ..Default::default()
        };
        let case = EvalCase::new(index, DemoSubject::ToyRobot, 0, &trajectories, &render).unwrap();
        let rows = Variant::ALL
            .iter()
            .zip(values)
            .map(|(v, (p, e, i, r))| RowRun {
                variant: *v,
                prompt: v.uses_subject().then(|| "p".to_string()),
                images: Vec::new(),
                metrics: metrics(p, e, i, r),
                seconds: (*v != Variant::GroundTruth).then_some(2.0),
                notices: Vec::new(),
            })
            .collect();
        CaseRun { case, rows }
    }

    #[test]
    fn summaries_average_cases_and_verdicts_follow_each_metric_direction() {
        let runs = [
            run(
                0,
                [
                    (1.0, 0.01, Some(0.9), true),
                    (0.5, 0.10, Some(0.2), true),
                    (0.5, 0.10, Some(0.6), false),
                    (1.0, 0.05, Some(0.6), true),
                    (1.0, 0.06, None, true),
                ],
            ),
            run(
                1,
                [
                    (1.0, 0.01, Some(0.7), true),
                    (0.0, 0.10, Some(0.4), false),
                    (0.5, 0.10, Some(0.4), false),
                    (0.5, 0.05, Some(0.6), true),
                    (0.5, 0.06, Some(0.5), true),
                ],
            ),
        ];
        let settings = EvalSettings {
            views: 2,
            ..Default::default()
        };
        let report = EvalReport::new(&settings, &runs);
        let base = &report.rows[1];
        assert_eq!((base.variant, base.clips), (Variant::Base, 2));
        assert!((base.pose_accuracy - 0.25).abs() < 1e-6);
        assert!((base.identity.unwrap() - 0.3).abs() < 1e-6);
        assert!((base.prompt_alignment - 0.5).abs() < 1e-6);
        assert_eq!(base.seconds_per_clip, Some(2.0));
        assert_eq!(report.rows[0].seconds_per_clip, None);
        // Identity skips clips without a score.
        assert!((report.rows[4].identity.unwrap() - 0.5).abs() < 1e-6);
        let verdicts: Vec<(&str, &str, bool)> = report
            .verdicts
            .iter()
            .map(|v| (v.technique, v.metric, v.improved))
            .collect();
        assert_eq!(
            verdicts,
            [
                ("pose blocks (customization)", "subject identity", true),
                ("DFR", "camera-pose accuracy", true),
                ("DFR", "multi-view error", true),
                ("CLC", "multi-view error", false),
            ]
        );
        assert_eq!(report.chance.pose_accuracy, 0.5);
        let table = report.markdown();
        assert_eq!(table.lines().filter(|l| l.starts_with("| ")).count(), 6);
        assert!(
            table.contains("| + DFR + CLC | 0.750 | 0.0600 |"),
            "{table}"
        );
        assert!(
            table.contains("CLC does **not** improve multi-view error"),
            "{table}"
        );
        assert_eq!(report.cases.len(), 2);
        assert!(report.cases[0].held_out_environment);
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["rows"][2]["variant"], "pose_blocks");
        assert_eq!(json["cases"][1]["rows"].as_array().unwrap().len(), 5);
    }
}
