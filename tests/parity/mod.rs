//! One module per fixture kind; [`run`] dispatches a case to its kind.

pub mod common;
pub mod motion_unet;
pub mod scheduler;
pub mod unet;

use common::{Case, Check};

/// Runs one case, returning the comparison of each output it checks.
pub fn run(case: &Case) -> Result<Vec<Check>, String> {
    match case.kind.as_str() {
        "scheduler" => scheduler::run(case),
        "unet" => unet::run(case),
        "motion_unet" => motion_unet::run(case),
        unknown => Err(format!("unknown parity kind `{unknown}`")),
    }
}
