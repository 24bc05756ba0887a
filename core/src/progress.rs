//! Progress reporting from core to front ends (the CLI draws a bar, Python/R print).

/// One training event: a finished step (`losses` None) or a finished epoch.
#[derive(Debug, Clone)]
pub struct TrainReport<'a> {
    /// 1-based.
    pub epoch: usize,
    pub epochs: usize,
    /// 1-based step within the epoch.
    pub step: usize,
    pub steps: usize,
    /// Mean of each loss term over the epoch (epoch ends only).
    pub losses: Option<&'a [(String, f64)]>,
    pub lr: f64,
    /// Seconds left, estimated from the epochs so far (epoch ends only).
    pub eta_s: Option<f64>,
}

/// Receives progress events. Return `false` from `should_continue` to cancel.
pub trait Progress {
    /// A stage started (e.g. "read", "preprocess", "scmae", "cluster").
    fn stage(&mut self, _name: &str) {}
    /// A free-form status line.
    fn message(&mut self, _msg: &str) {}
    /// Work within a stage: `done` of `total` units.
    fn tick(&mut self, _done: u64, _total: u64) {}
    /// Training progress (steps and epochs).
    fn train(&mut self, _r: &TrainReport) {}
    fn should_continue(&mut self) -> bool {
        true
    }
}

/// Discards everything (quiet mode, tests).
pub struct Silent;
impl Progress for Silent {}
