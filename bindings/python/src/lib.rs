//! The `scdeep._scdeep` extension module (built by maturin). For now it exposes the
//! versions; the AnnData API comes with the Python issue.

use pyo3::prelude::*;

#[pyfunction]
fn version() -> &'static str {
    scdeep_core::version()
}

#[pymodule]
fn _scdeep(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(version, m)?)?;
    Ok(())
}
