//! Progress on stderr while a generation runs: a line per stage and, during denoising, a bar
//! redrawn in place on a terminal (one line per step when stderr is redirected to a file).

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
    bar_open: bool,
}

impl Progress {
    /// Progress output on stderr, silent when `quiet`.
    pub fn new(quiet: bool) -> Self {
        Self {
            enabled: !quiet,
            interactive: std::io::stderr().is_terminal(),
            step_started: None,
            bar_open: false,
        }
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
            GenerationEvent::StageStarted(stage) => {
                self.close_bar();
                self.step_started = Some(Instant::now());
                eprintln!("{}…", stage_label(*stage));
            }
            GenerationEvent::Step { completed, total } => {
                let elapsed = self
                    .step_started
                    .map(|t| t.elapsed().as_secs_f64())
                    .unwrap_or_default();
                let line = step_line(*completed, *total, elapsed);
                if self.interactive {
                    eprint!("\r{line}");
                    self.bar_open = true;
                    let _ = std::io::stderr().flush();
                } else {
                    eprintln!("{line}");
                }
            }
            GenerationEvent::Preview { .. } => {}
            GenerationEvent::Notice(notice) => {
                self.close_bar();
                eprintln!("note: {notice}");
            }
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
/// steps taking `elapsed` seconds in all.
pub fn step_line(completed: usize, total: usize, elapsed: f64) -> String {
    let total = total.max(1);
    let completed = completed.min(total);
    let filled = completed * BAR_WIDTH / total;
    let per_step = if completed > 0 {
        elapsed / completed as f64
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
        let line = step_line(3, 10, 6.0);
        let bar = format!("[{}{}]", "#".repeat(9), "-".repeat(21));
        assert!(line.starts_with(&bar), "{line}");
        assert!(
            line.contains(" 3/10 steps")
                && line.contains("2.00 s/step")
                && line.ends_with("eta 14 s"),
            "{line}"
        );
        let done = step_line(10, 10, 5.0);
        assert!(
            done.starts_with(&format!("[{}]", "#".repeat(BAR_WIDTH))) && done.ends_with("eta 0 s"),
            "{done}"
        );
        assert!(step_line(0, 0, 0.0).starts_with(&format!("[{}]", "-".repeat(BAR_WIDTH))));
    }
}
