//! Points where callers attach to the sampling loop: [`SamplingHook`]s that read or replace the
//! latents around each network call and scheduler step (consistency-aware latent completion
//! edits latents there; model-feature hooks such as depth-aware feature rendering learn the
//! step index there), [`ProgressEvent`]s, and the [`CancelToken`] that stops sampling between
//! steps.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::Tensor;

use super::error::{DiffusionError, Result};
use super::scheduler::Scheduler;

/// Where the loop stands: step `index` (0-based) of `num_steps`, at `timestep`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepInfo {
    /// 0-based position in the schedule.
    pub index: usize,
    /// Number of steps of the run.
    pub num_steps: usize,
    /// The scheduler timestep of this step (what the network is conditioned on).
    pub timestep: f64,
}

impl StepInfo {
    /// The fraction of the run completed before this step, in [0, 1): lets step-dependent
    /// techniques ("the first 70% of steps") scale with the step count.
    pub fn progress(&self) -> f64 {
        self.index as f64 / self.num_steps.max(1) as f64
    }
}

/// What a hook sees besides the tensors: the step and the scheduler (for ᾱ, x̂₀ and
/// [`Scheduler::add_noise`] at the current timestep).
pub struct HookContext<'a> {
    /// The current step.
    pub step: StepInfo,
    /// The run's scheduler, read-only.
    pub scheduler: &'a dyn Scheduler,
}

/// Callbacks around each sampling step. Every method may replace `latents` (assign a new
/// tensor of the same shape) and may stop the run by returning an error, e.g.
/// [`DiffusionError::Cancelled`]. The defaults do nothing.
///
/// Order within step `i`: `before_denoise` → scale input, network call, guidance →
/// `after_denoise` → scheduler step → `after_step` → progress event.
pub trait SamplingHook {
    /// Before the network call, with the latents x_t of this step.
    fn before_denoise(&mut self, ctx: &HookContext<'_>, latents: &mut Tensor) -> Result<()> {
        let _ = (ctx, latents);
        Ok(())
    }

    /// After the network call and guidance, before the scheduler step: `latents` is still x_t,
    /// `model_output` the guided prediction the step will use ([`Scheduler::predict_original`]
    /// turns them into x̂₀). Both may be replaced.
    fn after_denoise(
        &mut self,
        ctx: &HookContext<'_>,
        latents: &mut Tensor,
        model_output: &mut Tensor,
    ) -> Result<()> {
        let _ = (ctx, latents, model_output);
        Ok(())
    }

    /// After the scheduler step: `latents` is the next step's x, `pred_original` the step's x̂₀.
    fn after_step(
        &mut self,
        ctx: &HookContext<'_>,
        pred_original: &Tensor,
        latents: &mut Tensor,
    ) -> Result<()> {
        let _ = (ctx, pred_original, latents);
        Ok(())
    }
}

/// Reported after each completed step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProgressEvent {
    /// Steps completed so far (1 after the first step).
    pub completed: usize,
    /// Steps of the run.
    pub total: usize,
    /// The timestep of the step just completed.
    pub timestep: f64,
}

/// A shared flag that asks a running computation to stop. Clones share the flag, so one clone
/// can stay with the UI while another travels with the task.
#[derive(Clone, Debug, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A token not yet cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks every holder of this token to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Whether cancellation was asked for.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    /// `Err(DiffusionError::Cancelled)` once cancelled.
    pub fn check(&self) -> Result<()> {
        if self.is_cancelled() {
            Err(DiffusionError::Cancelled)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_flag() {
        let token = CancelToken::new();
        let other = token.clone();
        assert!(other.check().is_ok());
        token.cancel();
        assert!(other.is_cancelled());
        assert!(other.check().unwrap_err().is_cancelled());
    }

    #[test]
    fn step_progress_fraction() {
        let info = StepInfo {
            index: 35,
            num_steps: 50,
            timestep: 0.0,
        };
        assert!((info.progress() - 0.7).abs() < 1e-12);
    }
}
