//! Draws core's progress events: a spinner/bar on a terminal, plain lines in logs.

use indicatif::{ProgressBar, ProgressStyle};
use scdeep_core::progress::{Progress, TrainReport};
use std::io::IsTerminal;
use std::time::Instant;

pub struct CliProgress {
    quiet: bool,
    bar: Option<ProgressBar>,
    start: Instant,
}

impl CliProgress {
    pub fn new(quiet: bool) -> Self {
        let bar = if !quiet && std::io::stderr().is_terminal() {
            let b = ProgressBar::new_spinner();
            b.set_style(ProgressStyle::with_template("{spinner} [{elapsed_precise}] {prefix:>10} {wide_msg}").unwrap());
            b.enable_steady_tick(std::time::Duration::from_millis(120));
            Some(b)
        } else {
            None
        };
        CliProgress { quiet, bar, start: Instant::now() }
    }
    pub fn stage_msg(&mut self, s: &str) {
        self.stage(s)
    }
    pub fn line(&mut self, s: &str) {
        self.message(s)
    }
    pub fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

impl Progress for CliProgress {
    fn stage(&mut self, name: &str) {
        if self.quiet {
            return;
        }
        match &self.bar {
            Some(b) => b.set_prefix(name.to_string()),
            None => eprintln!("scdeep: [{:7.1}s] {name}", self.start.elapsed().as_secs_f64()),
        }
    }
    fn message(&mut self, msg: &str) {
        if self.quiet {
            return;
        }
        match &self.bar {
            Some(b) => b.set_message(msg.to_string()),
            None => eprintln!("scdeep: [{:7.1}s]   {msg}", self.start.elapsed().as_secs_f64()),
        }
    }
    fn train(&mut self, r: &TrainReport) {
        if self.quiet {
            return;
        }
        let losses = |l: &[(String, f64)]| l.iter().take(3).map(|(k, v)| format!("{k} {v:.4}")).collect::<Vec<_>>().join("  ");
        match (&self.bar, r.losses) {
            (Some(b), None) => b.set_message(format!("epoch {}/{} step {}/{}", r.epoch, r.epochs, r.step, r.steps)),
            (Some(b), Some(l)) => {
                b.set_message(format!("epoch {}/{} | {} | ETA {:.0}s", r.epoch, r.epochs, losses(l), r.eta_s.unwrap_or(0.0)))
            }
            (None, Some(l)) => {
                // Logs: about 20 lines per training run.
                let every = (r.epochs / 20).max(1);
                if r.epoch == 1 || r.epoch % every == 0 || r.epoch == r.epochs {
                    eprintln!(
                        "scdeep: [{:7.1}s]   epoch {:>4}/{} | {} | lr {:.2e} | ETA {:.0}s",
                        self.start.elapsed().as_secs_f64(),
                        r.epoch,
                        r.epochs,
                        losses(l),
                        r.lr,
                        r.eta_s.unwrap_or(0.0)
                    );
                }
            }
            (None, None) => {}
        }
    }
    fn should_continue(&mut self) -> bool {
        crate::signals::received().is_none()
    }
    fn tick(&mut self, done: u64, total: u64) {
        if let Some(b) = &self.bar {
            b.set_message(format!("{done}/{total}"));
        }
    }
}
