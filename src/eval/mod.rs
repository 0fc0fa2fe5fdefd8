//! Held-out evaluation with ground truth (`mvcustom eval`): how well generated views follow
//! their cameras, agree with each other, keep the subject's identity and follow the prompt,
//! for the base model and with each of MVCustom's techniques added (the ablation table).
//!
//! Each **case** ([`EvalCase`]) is a trained demo subject in an environment of the world's
//! evaluation split (held-out environments first), seen along a drawn trajectory; the world
//! renders its ground truth (colour, exact depth, instance masks). Each **row** ([`Variant`])
//! generates the case's views for the same cameras and noise: the base model prompted with the
//! subject's class word, then the subject's token and pose blocks, then DFR with the
//! ground-truth anchor depth, then CLC. The ground-truth renders are measured too, as the
//! ceiling of every metric. Metrics ([`measure`]):
//! - **camera-pose accuracy** ([`pose`]): the fraction of views whose nearest ground-truth
//!   view (coarse, colour-normalised structure) is their own camera's;
//! - **multi-view consistency** ([`metrics`]): colour error between views warped into each
//!   other with ground-truth depth and poses, on co-visible pixels;
//! - **subject identity** ([`identity`]): colour-histogram intersection of the subject region
//!   (ground-truth mask) with the references' subject;
//! - **prompt alignment** ([`alignment`]): the environment recognised from the background
//!   (nearest prototype of ground-truth colour statistics) is the prompted one.
//!
//! [`evaluate`] runs everything; [`EvalReport`] summarises it as JSON and a Markdown table,
//! with a verdict on whether each technique improved the metric it exists for.

pub mod ablation;
pub mod alignment;
pub mod cases;
pub mod identity;
pub mod metrics;
pub mod pose;
pub mod report;
pub mod run;

pub use ablation::Variant;
pub use cases::EvalCase;
pub use metrics::{ClipMetrics, Consistency, measure};
pub use report::EvalReport;
pub use run::{CaseRun, EvalEvent, EvalSettings, EvalSubject, evaluate};
