//! One module per fixture kind; [`run`] dispatches a case to its kind.

pub mod animatediff_pipeline;
pub mod clip_text;
pub mod common;
pub mod scheduler;
pub mod tokenizer;
pub mod unet;
pub mod vae;

use common::{Case, Check};

/// Runs one case, returning the comparison of each output it checks.
pub fn run(case: &Case) -> Result<Vec<Check>, String> {
    match case.kind.as_str() {
        "animatediff_pipeline" => animatediff_pipeline::run(case),
        "scheduler" => scheduler::run(case),
        "unet" => unet::run(case, false),
        "motion_unet" => unet::run(case, true),
        "clip_text" => clip_text::run(case),
        "tokenizer" => tokenizer::run(case),
        "vae" => vae::run(case),
        unknown => Err(format!("unknown parity kind `{unknown}`")),
    }
}
