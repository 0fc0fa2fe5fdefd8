//! Progress on stderr while a generation or a training run works: a line per stage and, during
//! denoising or training, a bar (with the training loss) redrawn in place on a terminal (one
//! line per step when stderr is redirected to a file).

use std::io::{IsTerminal, Write};
use std::time::Instant;

use crate::mvcustom::{GenerationEvent, Stage};

/// Width of the bar itself, in characters.
const BAR_WIDTH: usize = 30;

/// Turns [`GenerationEvent`]s into progress output on stderr.
pub struct Progress {
    enabled: bool,
    interactive: bool,
    step_started: Option<Instant>,
    /// Steps already done before the first step reported since the stage started (a
    /// resumed training run starts past 0).
    done_before: Option<usize>,
    bar_open: bool,
}

impl Progress {
    /// Progress output on stderr, silent when `quiet`.
    pub fn new(quiet: bool) -> Self {
        Self {
            enabled: !quiet,
            interactive: std::io::stderr().is_terminal(),
            step_started: None,
            done_before: None,
            bar_open: false,
        }
    }

    /// Starts a stage named `label`: a status line, and the clock of its step bar.
    pub fn stage(&mut self, label: &str) {
        if self.enabled {
            self.close_bar();
            eprintln!("{label}…");
        }
        self.step_started = Some(Instant::now());
        self.done_before = None;
    }

    /// Prints a free-form status line (ends the current bar first).
    pub fn note(&mut self, message: &str) {
        if self.enabled {
            self.close_bar();
            eprintln!("{message}");
        }
    }

    /// Reports one generation event.
    pub fn event(&mut self, event: &GenerationEvent) {
        if !self.enabled {
            return;
        }
        match event {
            GenerationEvent::StageStarted(stage) => self.stage(stage_label(*stage)),
            GenerationEvent::Step { completed, total } => self.step(*completed, *total, None),
            GenerationEvent::Preview { .. } => {}
            GenerationEvent::Notice(notice) => {
                self.close_bar();
                eprintln!("note: {notice}");
            }
        }
    }

    /// Reports step `completed` of `total` of the current stage, with the step's loss when
    /// training. Rates count only the steps done since the stage started, so a resumed run
    /// estimates from its own pace.
    pub fn step(&mut self, completed: usize, total: usize, loss: Option<f32>) {
        if !self.enabled {
            return;
        }
        let started = *self.step_started.get_or_insert_with(Instant::now);
        let done_before = *self.done_before.get_or_insert(completed.saturating_sub(1));
        let elapsed = started.elapsed().as_secs_f64();
        let mut line = step_line(
            completed,
            total,
            elapsed,
            completed.saturating_sub(done_before),
        );
        if let Some(loss) = loss {
            line.push_str(&format!("  loss {loss:.4}"));
        }
        if self.interactive {
            eprint!("\r{line}");
            self.bar_open = true;
            let _ = std::io::stderr().flush();
        } else {
            self.bar_open = false;
            eprintln!("{line}");
        }
    }

    /// Ends the bar's line, if one is being drawn.
    pub fn finish(&mut self) {
        self.close_bar();
    }

    fn close_bar(&mut self) {
        if self.bar_open {
            eprintln!();
            self.bar_open = false;
        }
    }
}

/// What the user sees for a stage.
pub fn stage_label(stage: Stage) -> &'static str {
    match stage {
        Stage::EncodingPrompt => "encoding the prompt",
        Stage::AnchorDepth => "estimating the anchor view's depth",
        Stage::RenderingFeatures => "rendering features",
        Stage::Denoising => "denoising",
        Stage::Decoding => "decoding",
    }
}

/// `[#########---------]  3/10 steps  1.20 s/step  eta 8 s` after `completed` of `total`
/// steps, the last `timed` of which took `elapsed` seconds.
pub fn step_line(completed: usize, total: usize, elapsed: f64, timed: usize) -> String {
    let total = total.max(1);
    let completed = completed.min(total);
    let filled = completed * BAR_WIDTH / total;
    let per_step = if timed > 0 {
        elapsed / timed as f64
    } else {
        0.0
    };
    let eta = per_step * (total - completed) as f64;
    format!(
        "[{}{}] {completed:>width$}/{total} steps  {per_step:.2} s/step  eta {eta:.0} s",
        "#".repeat(filled),
        "-".repeat(BAR_WIDTH - filled),
        width = total.to_string().len(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_fills_in_proportion_and_estimates_the_rest() {
        let line = step_line(3, 10, 6.0, 3);
        let bar = format!("[{}{}]", "#".repeat(9), "-".repeat(21));
        assert!(line.starts_with(&bar), "{line}");
        assert!(
            line.contains(" 3/10 steps")
                && line.contains("2.00 s/step")
                && line.ends_with("eta 14 s"),
            "{line}"
        );
        let done = step_line(10, 10, 5.0, 10);
        assert!(
            done.starts_with(&format!("[{}]", "#".repeat(BAR_WIDTH))) && done.ends_with("eta 0 s"),
            "{done}"
        );
        assert!(step_line(0, 0, 0.0, 0).starts_with(&format!("[{}]", "-".repeat(BAR_WIDTH))));
        // A resumed run: 2 of 4 steps timed, 2 left at the same pace.
        let resumed = step_line(4, 6, 3.0, 2);
        assert!(
            resumed.contains("1.50 s/step") && resumed.ends_with("eta 3 s"),
            "{resumed}"
        );
    }
}
