//! Progress reporting from core to front ends (the CLI draws a bar, Python/R print).

/// Receives progress events. Return `false` from `should_continue` to cancel.
pub trait Progress {
    /// A stage started (e.g. "read", "preprocess", "pca", "kmeans").
    fn stage(&mut self, _name: &str) {}
    /// A free-form status line.
    fn message(&mut self, _msg: &str) {}
    /// Work within a stage: `done` of `total` units.
    fn tick(&mut self, _done: u64, _total: u64) {}
    fn should_continue(&mut self) -> bool {
        true
    }
}

/// Discards everything (quiet mode, tests).
pub struct Silent;
impl Progress for Silent {}
