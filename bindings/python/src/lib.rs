//! The `scdeep._scdeep` extension module (built by maturin). It converts types only:
//! CSR arrays and names in, numpy arrays and JSON strings out. The AnnData glue, the
//! exception classes and the scanpy-style API live in python-package/scdeep/.
//!
//! Errors are raised as `CoreError(kind, message)`; the Python layer maps `kind` to its
//! `ScdeepError` subclasses. Training runs without the GIL; progress calls back into
//! Python at every step, which also checks for Ctrl-C (then the run is cancelled and
//! `KeyboardInterrupt` raised).

use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray1};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use scdeep_core::config::{ConfigBuilder, DEFAULT_METHOD};
use scdeep_core::progress::{Progress, TrainReport};
use scdeep_core::results;
use scdeep_core::store::TrainedModel;
use scdeep_core::{Csr, Dataset, Error, RunConfig};

create_exception!(_scdeep, CoreError, PyException, "An error from scdeep's core: args = (kind, message).");

fn err(e: Error) -> PyErr {
    CoreError::new_err((e.kind(), e.to_string()))
}

fn option_err(field: &str, msg: impl std::fmt::Display) -> PyErr {
    CoreError::new_err(("option", format!("argument `{field}`: {msg}")))
}

/// A count matrix from Python: (n_cells, n_genes, indptr, indices, data), CSR, cells in rows.
type CsrIn<'py> = (usize, usize, PyReadonlyArray1<'py, i64>, PyReadonlyArray1<'py, i64>, PyReadonlyArray1<'py, f32>);

/// Build a dataset from CSR components (checked by the core).
fn dataset(x: CsrIn, cells: Vec<String>, genes: Vec<String>, labels: Option<Vec<String>>) -> PyResult<Dataset> {
    let (n_cells, n_genes, indptr, indices, data) = x;
    Dataset::from_csr_parts(
        n_cells,
        n_genes,
        indptr.as_slice()?,
        indices.as_slice()?,
        data.as_slice()?.to_vec(),
        cells,
        genes,
        labels,
        "AnnData",
    )
    .map_err(err)
}

struct PyProgress {
    cb: Option<Py<PyAny>>,
    interrupted: Option<PyErr>,
}

impl PyProgress {
    fn call(&mut self, stage: &str, epoch: usize, epochs: usize, step: usize, steps: usize, losses: Option<&[(String, f64)]>) {
        Python::attach(|py| {
            if self.interrupted.is_none() {
                if let Err(e) = py.check_signals() {
                    self.interrupted = Some(e);
                    return;
                }
            }
            if let Some(cb) = &self.cb {
                let l: Option<Vec<(String, f64)>> = losses.map(|l| l.to_vec());
                if let Err(e) = cb.call1(py, (stage, epoch, epochs, step, steps, l)) {
                    self.interrupted = Some(e);
                }
            }
        });
    }
}

impl Progress for PyProgress {
    fn stage(&mut self, name: &str) {
        self.call(name, 0, 0, 0, 0, None);
    }
    fn message(&mut self, msg: &str) {
        self.call(&format!("message:{msg}"), 0, 0, 0, 0, None);
    }
    fn train(&mut self, r: &TrainReport) {
        self.call("train", r.epoch, r.epochs, r.step, r.steps, r.losses);
    }
    fn should_continue(&mut self) -> bool {
        self.interrupted.is_none()
    }
}

fn finish<T>(r: Result<T, Error>, p: &mut PyProgress) -> PyResult<T> {
    match r {
        // A Ctrl-C seen after the last cancellation point (clustering, metrics) still
        // raises: the user asked to stop, and Python must not lose the KeyboardInterrupt.
        Ok(_) if p.interrupted.is_some() => Err(p.interrupted.take().unwrap()),
        Ok(v) => Ok(v),
        Err(Error::Cancelled) if p.interrupted.is_some() => Err(p.interrupted.take().unwrap()),
        Err(e) => Err(err(e)),
    }
}

fn vec2<'py>(py: Python<'py>, v: Vec<f32>, rows: usize, cols: usize) -> PyResult<Bound<'py, PyAny>> {
    Ok(PyArray1::from_vec(py, v).reshape([rows, cols])?.into_any())
}

/// A trained model (weights, config, genes, preprocessing).
#[pyclass(module = "scdeep._scdeep")]
struct Model {
    // tch tensors are Send but not Sync; Python may share the object between threads.
    inner: std::sync::Mutex<TrainedModel>,
}

impl Model {
    fn new(m: TrainedModel) -> Model {
        Model { inner: std::sync::Mutex::new(m) }
    }
    fn get(&self) -> std::sync::MutexGuard<'_, TrainedModel> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[pymethods]
impl Model {
    /// Load a model folder; `method` (optional) must match the saved method.
    #[staticmethod]
    #[pyo3(signature = (path, method=None, device="auto"))]
    fn load(path: &str, method: Option<&str>, device: &str) -> PyResult<Model> {
        let dev = scdeep_core::device::parse_device(device).map_err(err)?;
        Ok(Model::new(TrainedModel::load(std::path::Path::new(path), method, dev).map_err(err)?))
    }

    #[pyo3(signature = (path, overwrite=false))]
    fn save(&self, path: &str, overwrite: bool) -> PyResult<()> {
        self.get().save(std::path::Path::new(path), overwrite).map_err(err)
    }

    /// The model folder's files as {path: bytes} (for pickling).
    fn to_files<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (name, b) in self.get().to_files().map_err(err)? {
            d.set_item(name, PyBytes::new(py, &b))?;
        }
        Ok(d)
    }

    #[staticmethod]
    #[pyo3(signature = (files, device="auto"))]
    fn from_files(files: std::collections::BTreeMap<String, Vec<u8>>, device: &str) -> PyResult<Model> {
        let dev = scdeep_core::device::parse_device(device).map_err(err)?;
        let files: Vec<(String, Vec<u8>)> = files.into_iter().collect();
        Ok(Model::new(TrainedModel::from_files(&files, dev).map_err(err)?))
    }

    #[getter]
    fn method(&self) -> String {
        self.get().config.method.clone()
    }

    #[getter]
    fn genes(&self) -> Vec<String> {
        self.get().genes().to_vec()
    }

    #[getter]
    fn config_json(&self) -> String {
        serde_json::to_string(&self.get().config).unwrap()
    }

    /// Embed CSR counts: returns (embedding on every input cell, NaN rows for cells the
    /// filter removed; missing_genes).
    #[pyo3(signature = (x, cells, genes, device="auto"))]
    fn embed<'py>(
        &self,
        py: Python<'py>,
        x: CsrIn,
        cells: Vec<String>,
        genes: Vec<String>,
        device: &str,
    ) -> PyResult<(Bound<'py, PyAny>, usize)> {
        let ds = dataset(x, cells, genes, None)?;
        let n_cells = ds.n_cells();
        let dev = scdeep_core::device::parse_device(device).map_err(err)?;
        let inner = &self.inner;
        let mut p = PyProgress { cb: None, interrupted: None };
        let r = py.detach(|| inner.lock().unwrap_or_else(|e| e.into_inner()).embed(&ds, dev, &mut p));
        let e = finish(r, &mut p)?;
        let full = results::scatter_rows(&e.embedding, e.dims, &e.prepared.cell_index, n_cells);
        Ok((vec2(py, full, n_cells, e.dims)?, e.missing_genes))
    }
}

/// Run the pipeline on CSR counts. Returns a dict of the results on the input's cells
/// (`scdeep_core::results::on_input`): embedding (cells x dims, NaN rows for cells the
/// filter removed), labels (-1 for those), uns (JSON: uns['scdeep'][key], see
/// `results::uns_entry`), history (JSON), model (Model), imputed (None, or a CSR dict over
/// the input's cells x `genes` with `covered`, which genes it imputed). `batches`: each
/// cell's batch (the obs column the config's `batch.key` names).
#[pyfunction]
#[pyo3(signature = (x, cells, genes, labels, config_json, progress=None, batches=None))]
#[allow(clippy::too_many_arguments)]
fn run<'py>(
    py: Python<'py>,
    x: CsrIn,
    cells: Vec<String>,
    genes: Vec<String>,
    labels: Option<Vec<String>>,
    config_json: &str,
    progress: Option<Py<PyAny>>,
    batches: Option<Vec<String>>,
) -> PyResult<Bound<'py, PyDict>> {
    let ds = dataset(x, cells, genes, labels)?.with_batches(batches, "batch_key").map_err(err)?;
    let cfg = ConfigBuilder::from_json_str(config_json).and_then(|b| b.build(ds.labels.is_some())).map_err(err)?;
    let (n_cells, genes) = (ds.n_cells(), ds.genes.clone());
    let mut p = PyProgress { cb: progress, interrupted: None };
    let r = py.detach(|| scdeep_core::pipeline::run(ds, &cfg, &mut p));
    let r = finish(r, &mut p)?;
    let placed = results::on_input(&r, n_cells, Some(&genes)).map_err(err)?;
    let d = PyDict::new(py);
    d.set_item("embedding", vec2(py, placed.embedding, n_cells, placed.dims)?)?;
    d.set_item("labels", PyArray1::from_vec(py, placed.labels))?;
    d.set_item("uns", results::uns_entry(&r).to_string())?;
    d.set_item("history", serde_json::to_string(&r.history).unwrap())?;
    match &placed.imputed {
        Some((m, covered)) => {
            let m2 = csr_dict(py, m)?;
            m2.set_item("covered", PyArray1::from_vec(py, covered.clone()))?;
            d.set_item("imputed", m2)?;
        }
        None => d.set_item("imputed", py.None())?,
    }
    d.set_item("model", Py::new(py, Model::new(r.model))?)?;
    Ok(d)
}

fn csr_dict<'py>(py: Python<'py>, m: &Csr) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("indptr", PyArray1::from_vec(py, m.indptr.iter().map(|&x| x as i64).collect()))?;
    d.set_item("indices", PyArray1::from_vec(py, m.indices.iter().map(|&x| x as i64).collect()))?;
    d.set_item("data", PyArray1::from_vec(py, m.data.clone()))?;
    d.set_item("shape", (m.n_rows, m.n_cols))?;
    Ok(d)
}

/// Preprocess counts with a (partial) `preprocess` config section as JSON. Returns a dict:
/// x (log-normalised selected genes, CSR), counts (their raw counts), genes, cell_index,
/// size_factors, mean/std (the scaler, or None), config (resolved, JSON).
#[pyfunction]
#[pyo3(signature = (x, cells, genes, preprocess_json))]
fn prepare<'py>(py: Python<'py>, x: CsrIn, cells: Vec<String>, genes: Vec<String>, preprocess_json: &str) -> PyResult<Bound<'py, PyDict>> {
    let ds = dataset(x, cells, genes, None)?;
    let over: serde_json::Value = serde_json::from_str(preprocess_json).map_err(|e| option_err("preprocess", e))?;
    let cfg = RunConfig::from_json(&serde_json::json!({"method": "pca", "preprocess": over})).map_err(err)?.preprocess;
    let p = py.detach(|| scdeep_core::preprocess::prepare(&ds, &cfg, true)).map_err(err)?;
    let d = PyDict::new(py);
    d.set_item("x", csr_dict(py, &p.x)?)?;
    d.set_item("counts", csr_dict(py, p.counts().map_err(err)?)?)?;
    d.set_item("genes", p.genes.clone())?;
    d.set_item("cell_index", p.cell_index.clone())?;
    d.set_item("size_factors", PyArray1::from_vec(py, p.size_factors.clone()))?;
    d.set_item("mean", p.scaler.as_ref().map(|s| PyArray1::from_vec(py, s.mean.clone())))?;
    d.set_item("std", p.scaler.as_ref().map(|s| PyArray1::from_vec(py, s.std.clone())))?;
    d.set_item("target_sum", p.target_sum)?;
    d.set_item("config", serde_json::to_string(&cfg).unwrap())?;
    Ok(d)
}

/// Every method with its default configuration, as JSON.
#[pyfunction]
fn methods_json() -> PyResult<String> {
    Ok(scdeep_core::config::methods_json().map_err(err)?.to_string())
}

/// A config request (JSON) from keyword options, validated: see
/// `scdeep_core::config::ConfigBuilder::options`. `method` None is core's default.
#[pyfunction]
#[pyo3(signature = (method, n_clusters, options_json))]
fn config_request(method: Option<&str>, n_clusters: Option<usize>, options_json: &str) -> PyResult<String> {
    let opts: serde_json::Value = serde_json::from_str(options_json).map_err(|e| option_err("options", e))?;
    let b = ConfigBuilder::new().method(method.unwrap_or(DEFAULT_METHOD)).options(&opts).map_err(err)?.n_clusters(n_clusters);
    b.build(true).map_err(err)?; // errors before any work
    Ok(b.overlay().to_string())
}

/// Clustering metrics of `pred` against `truth` as JSON (silhouette when an embedding is given).
#[pyfunction]
#[pyo3(signature = (truth, pred, embedding=None, dims=0, nmi_average="arithmetic"))]
fn evaluate(
    truth: Vec<String>,
    pred: Vec<String>,
    embedding: Option<PyReadonlyArray1<f32>>,
    dims: usize,
    nmi_average: &str,
) -> PyResult<String> {
    let emb = match &embedding {
        Some(e) => Some((e.as_slice()?, dims)),
        None => None,
    };
    let s = scdeep_core::metrics::evaluate_named(&truth, &pred, emb, "average_method", nmi_average).map_err(err)?;
    Ok(serde_json::to_string(&s).unwrap())
}

/// Simulate counts (SimParams as JSON). Returns a dict of CSR arrays and names.
#[pyfunction]
fn simulate<'py>(py: Python<'py>, params_json: &str) -> PyResult<Bound<'py, PyDict>> {
    let over: serde_json::Value = serde_json::from_str(params_json).map_err(|e| option_err("params", e))?;
    let p = scdeep_core::simulate::SimParams::from_json(&over).map_err(err)?;
    let s = py.detach(|| scdeep_core::simulate::simulate(&p)).map_err(err)?;
    let d = PyDict::new(py);
    d.set_item("counts", csr_dict(py, &s.counts)?)?;
    match &s.true_counts {
        Some(t) => d.set_item("true_counts", csr_dict(py, t)?)?,
        None => d.set_item("true_counts", py.None())?,
    }
    d.set_item("cells", s.cells)?;
    d.set_item("genes", s.genes)?;
    d.set_item("groups", s.groups)?;
    d.set_item("batches", s.batches)?;
    Ok(d)
}

#[pyfunction]
fn version() -> &'static str {
    scdeep_core::version()
}

#[pyfunction]
fn libtorch_version() -> String {
    scdeep_core::device::libtorch_version()
}

/// The core's error table (`scdeep_core::error::ERROR_KINDS`) as JSON.
#[pyfunction]
fn error_kinds_json() -> String {
    serde_json::to_string(&scdeep_core::error::ERROR_KINDS).unwrap_or_default()
}

/// The `scdeep` command line, run in this process (the wheel's console script): `argv`
/// with the program name first; returns the exit status. It installs the CLI's SIGINT and
/// SIGTERM handlers, so it is for a process that exists to run the command.
#[pyfunction]
fn cli_main(py: Python<'_>, argv: Vec<String>) -> i32 {
    py.detach(|| scdeep_cli::main_with_args(argv))
}

#[pymodule]
fn _scdeep(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("CoreError", m.py().get_type::<CoreError>())?;
    m.add_class::<Model>()?;
    m.add_function(wrap_pyfunction!(run, m)?)?;
    m.add_function(wrap_pyfunction!(error_kinds_json, m)?)?;
    m.add_function(wrap_pyfunction!(methods_json, m)?)?;
    m.add_function(wrap_pyfunction!(prepare, m)?)?;
    m.add_function(wrap_pyfunction!(config_request, m)?)?;
    m.add("DEFAULT_METHOD", DEFAULT_METHOD)?;
    m.add_function(wrap_pyfunction!(evaluate, m)?)?;
    m.add_function(wrap_pyfunction!(simulate, m)?)?;
    m.add_function(wrap_pyfunction!(version, m)?)?;
    m.add_function(wrap_pyfunction!(libtorch_version, m)?)?;
    m.add_function(wrap_pyfunction!(cli_main, m)?)?;
    Ok(())
}
