//! R binding: extendr wrappers arrive with the R package issue.
pub fn version() -> &'static str {
    scdeep_core::version()
}
