//! The R binding: extendr functions that convert types only. Counts come in as the
//! parts of a `dgCMatrix` (genes x cells, column-compressed), which is exactly a CSR
//! matrix with cells in rows; results go back as plain vectors and JSON strings. The
//! Seurat / SingleCellExperiment glue, the defaults and the documentation live in
//! r-package/R/.
//!
//! Errors do not unwind through R: every function returns either its value or a
//! character string of class `scdeep_core_error` (attribute `kind`), which the R layer
//! turns into a classed condition with `stop()`. Long work polls R for a user interrupt
//! (Ctrl-C / Esc) at every progress event and then cancels the run.

use extendr_api::prelude::*;
use scdeep_core::config::ConfigBuilder;
use scdeep_core::progress::{Progress, TrainReport};
use scdeep_core::results;
use scdeep_core::store::TrainedModel;
use scdeep_core::{Csr, Dataset, Error};
use std::os::raw::{c_int, c_void};
use std::path::Path;

extern "C" {
    fn R_ToplevelExec(fun: extern "C" fn(*mut c_void), data: *mut c_void) -> c_int;
    fn R_CheckUserInterrupt();
}

extern "C" fn check_interrupt(_: *mut c_void) {
    unsafe { R_CheckUserInterrupt() }
}

/// True when the user pressed Ctrl-C / Esc (the interrupt is consumed, not raised here).
fn interrupted() -> bool {
    unsafe { R_ToplevelExec(check_interrupt, std::ptr::null_mut()) == 0 }
}

/// An error value for the R layer: the message with class `scdeep_core_error` and the
/// error's kind (io, format, data, option, numeric, cancelled) as attribute.
fn fail(kind: &str, msg: impl Into<String>) -> Robj {
    let mut r: Robj = r!(msg.into());
    let _ = r.set_attrib("kind", kind);
    let _ = r.set_class(["scdeep_core_error"]);
    r
}

fn core_fail(e: Error) -> Robj {
    fail(e.kind(), e.to_string())
}

fn arg_fail(arg: &str, msg: impl std::fmt::Display) -> Robj {
    fail("option", format!("argument `{arg}`: {msg}"))
}

/// Run a fallible body, turning `Err(robj)` into the error value.
fn guard(f: impl FnOnce() -> std::result::Result<Robj, Robj>) -> Robj {
    f().unwrap_or_else(|e| e)
}

fn strings(x: &Robj, arg: &str) -> std::result::Result<Vec<String>, Robj> {
    if x.is_null() {
        return Ok(Vec::new());
    }
    let v = x.as_str_vector().ok_or_else(|| arg_fail(arg, format!("expected a character vector, got {:?}", x.rtype())))?;
    Ok(v.into_iter().map(str::to_string).collect())
}

fn ints(x: &Robj, arg: &str) -> std::result::Result<Vec<i32>, Robj> {
    if let Some(s) = x.as_integer_slice() {
        return Ok(s.to_vec());
    }
    if let Some(s) = x.as_real_slice() {
        return Ok(s.iter().map(|&v| v as i32).collect());
    }
    Err(arg_fail(arg, format!("expected integers, got {:?}", x.rtype())))
}

/// A dataset from the slots of a genes x cells dgCMatrix: `p` (cell pointers), `i` (gene
/// indices, 0-based), `x` (values).
fn dataset(p: &Robj, i: &Robj, x: &Robj, cells: &Robj, genes: &Robj, labels: &Robj, source: &str) -> std::result::Result<Dataset, Robj> {
    let cells = strings(cells, "cells")?;
    let genes = strings(genes, "features")?;
    let ip = ints(p, "counts@p")?;
    let idx = ints(i, "counts@i")?;
    let val: Vec<f32> = match (x.as_real_slice(), x.as_integer_slice()) {
        (Some(v), _) => v.iter().map(|&v| v as f32).collect(),
        (None, Some(v)) => v.iter().map(|&v| v as f32).collect(),
        _ => return Err(arg_fail("counts@x", format!("expected numbers, got {:?}", x.rtype()))),
    };
    let (n_cells, n_genes) = (cells.len(), genes.len());
    let labels = if labels.is_null() { None } else { Some(strings(labels, "labels")?) };
    Dataset::from_csr_parts(n_cells, n_genes, &ip, &idx, val, cells, genes, labels, source).map_err(core_fail)
}

/// Progress lines on R's console (stderr), at most about 20 per training run, and
/// interrupt polling.
struct RProgress {
    verbose: bool,
    interrupted: bool,
}

impl Progress for RProgress {
    fn stage(&mut self, name: &str) {
        if self.verbose {
            reprintln!("scdeep: {name}");
        }
    }
    fn message(&mut self, msg: &str) {
        if self.verbose {
            reprintln!("scdeep: {msg}");
        }
    }
    fn train(&mut self, r: &TrainReport) {
        if !self.verbose {
            return;
        }
        if let Some(losses) = r.losses {
            let every = r.epochs.div_ceil(20).max(1);
            if r.epoch.is_multiple_of(every) || r.epoch == r.epochs || r.epoch == 1 {
                let l: Vec<String> = losses.iter().map(|(k, v)| format!("{k} {v:.4}")).collect();
                let eta = r.eta_s.map(|s| format!(", {s:.0} s left")).unwrap_or_default();
                reprintln!("scdeep: epoch {}/{}: {}{eta}", r.epoch, r.epochs, l.join(", "));
            }
        }
    }
    fn should_continue(&mut self) -> bool {
        if !self.interrupted && interrupted() {
            self.interrupted = true;
        }
        !self.interrupted
    }
}

fn cancelled_or(e: Error, p: &RProgress) -> Robj {
    if p.interrupted {
        fail("cancelled", "interrupted by the user")
    } else {
        core_fail(e)
    }
}

/// A trained model behind an external pointer.
struct Model(TrainedModel);

fn model_of(m: &Robj) -> std::result::Result<&TrainedModel, Robj> {
    // A pointer restored by readRDS() is NULL: the weights live in a model folder.
    if m.rtype() == Rtype::ExternalPtr && unsafe { extendr_ffi::R_ExternalPtrAddr(m.get()) }.is_null() {
        return Err(arg_fail("model", "this model was restored from an R session file and holds no weights; save models with SaveScdeepModel() and load them with LoadScdeepModel()"));
    }
    let p: &ExternalPtr<Model> = m.try_into().map_err(|_| arg_fail("model", "not an scdeep model (see LoadScdeepModel)"))?;
    Ok(&p.0)
}

fn f32s(v: &[f32]) -> Robj {
    v.iter().map(|&x| x as f64).collect_robj()
}

/// Doubles with R's NA for NaN (results of cells the filter removed).
fn f64s_na(v: &[f32]) -> Robj {
    v.iter().map(|&x| if x.is_nan() { Rfloat::na() } else { Rfloat::from(x as f64) }).collect_robj()
}

/// Run the pipeline. Returns a list of the results on the input's cells
/// (`scdeep_core::results`): embedding (row-major, NaN rows for cells the filter
/// removed), dims, labels (NA for those), uns (JSON: uns['scdeep'][key]), model (external
/// pointer), and imputed: NULL, or the imputed matrix placed on the genes `imputed_genes`
/// (NULL: the method's own genes) as the slots of a genes x cells dgCMatrix (p, i, x) with
/// `genes` and `covered`.
#[extendr]
#[allow(clippy::too_many_arguments)]
fn scdeep_run(
    p: Robj,
    i: Robj,
    x: Robj,
    cells: Robj,
    genes: Robj,
    labels: Robj,
    batches: Robj,
    source: &str,
    config_json: &str,
    imputed_genes: Robj,
    verbose: bool,
) -> Robj {
    guard(|| {
        let batches = if batches.is_null() { None } else { Some(strings(&batches, "batch")?) };
        let ds = dataset(&p, &i, &x, &cells, &genes, &labels, source)?.with_batches(batches, "batch").map_err(core_fail)?;
        let cfg = ConfigBuilder::from_json_str(config_json).and_then(|b| b.build(ds.labels.is_some())).map_err(core_fail)?;
        let place_on = if imputed_genes.is_null() { None } else { Some(strings(&imputed_genes, "imputed_genes")?) };
        let n_cells = ds.n_cells();
        let mut prog = RProgress { verbose, interrupted: false };
        let r = scdeep_core::pipeline::run(ds, &cfg, &mut prog).map_err(|e| cancelled_or(e, &prog))?;
        let genes = place_on.or_else(|| r.imputed.as_ref().map(|imp| imp.genes.clone()));
        let placed = results::on_input(&r, n_cells, genes.as_deref()).map_err(core_fail)?;
        let imputed: Robj = match (&placed.imputed, genes) {
            // cells x genes CSR = the CSC slots of genes x cells
            (Some((m, covered)), Some(g)) => list!(
                p = m.indptr.iter().map(|&v| v as i32).collect_robj(),
                i = m.indices.iter().map(|&v| v as i32).collect_robj(),
                x = f32s(&m.data),
                genes = g,
                covered = covered.iter().map(|&c| Rbool::from(c)).collect_robj()
            )
            .into(),
            _ => Robj::from(()),
        };
        let labels: Vec<Option<i32>> = placed.labels.iter().map(|&l| (l >= 0).then_some(l as i32)).collect();
        Ok(list!(
            embedding = f64s_na(&placed.embedding),
            dims = placed.dims as i32,
            labels = labels.into_iter().map(|l| l.map_or(Rint::na(), Rint::from)).collect_robj(),
            uns = results::uns_entry(&r).to_string(),
            imputed = imputed,
            model = ExternalPtr::new(Model(r.model))
        )
        .into())
    })
}

/// Embed counts with a trained model. Returns list(embedding (row-major, NA rows for cells
/// the filter removed), dims, missing_genes).
#[extendr]
#[allow(clippy::too_many_arguments)]
fn scdeep_model_embed(model: Robj, p: Robj, i: Robj, x: Robj, cells: Robj, genes: Robj, source: &str, device: &str, verbose: bool) -> Robj {
    guard(|| {
        let m = model_of(&model)?;
        let ds = dataset(&p, &i, &x, &cells, &genes, &Robj::from(()), source)?;
        let dev = scdeep_core::device::parse_device(device).map_err(core_fail)?;
        let mut prog = RProgress { verbose, interrupted: false };
        let e = m.embed(&ds, dev, &mut prog).map_err(|e| cancelled_or(e, &prog))?;
        let full = results::scatter_rows(&e.embedding, e.dims, &e.prepared.cell_index, ds.n_cells());
        Ok(list!(embedding = f64s_na(&full), dims = e.dims as i32, missing_genes = e.missing_genes as i32).into())
    })
}

#[extendr]
fn scdeep_model_save(model: Robj, path: &str, overwrite: bool) -> Robj {
    guard(|| {
        model_of(&model)?.save(Path::new(path), overwrite).map_err(core_fail)?;
        Ok(Robj::from(()))
    })
}

#[extendr]
fn scdeep_model_load(path: &str, method: Robj, device: &str) -> Robj {
    guard(|| {
        let method =
            if method.is_null() { None } else { Some(method.as_str().ok_or_else(|| arg_fail("method", "expected a string"))?.to_string()) };
        let dev = scdeep_core::device::parse_device(device).map_err(core_fail)?;
        let m = TrainedModel::load(Path::new(path), method.as_deref(), dev).map_err(core_fail)?;
        Ok(ExternalPtr::new(Model(m)).into())
    })
}

/// list(method, genes, config JSON) of a model.
#[extendr]
fn scdeep_model_info(model: Robj) -> Robj {
    guard(|| {
        let m = model_of(&model)?;
        Ok(list!(method = m.config.method.clone(), genes = m.genes().to_vec(), config = serde_json::to_string(&m.config).unwrap()).into())
    })
}

/// The config request (JSON) for a call, validated: see `scdeep_core::config::ConfigBuilder`.
#[extendr]
fn scdeep_config(method: &str, n_clusters: Robj, has_truth: bool, options_json: &str) -> Robj {
    guard(|| {
        let k = if n_clusters.is_null() {
            None
        } else {
            let k = ints(&n_clusters, "n.clusters")?;
            match k.as_slice() {
                [k] if *k >= 1 => Some(*k as usize),
                _ => return Err(arg_fail("n.clusters", format!("expected one integer >= 1, got {k:?}"))),
            }
        };
        let opts: serde_json::Value = serde_json::from_str(options_json).map_err(|e| arg_fail("...", e))?;
        let b = ConfigBuilder::new().method(method).options(&opts).map_err(core_fail)?.n_clusters(k);
        b.build(has_truth).map_err(core_fail)?; // validate now: errors before any work
        Ok(r!(b.overlay().to_string()))
    })
}

/// The method of a call that names none (`scdeep_core::config::DEFAULT_METHOD`).
#[extendr]
fn scdeep_default_method() -> &'static str {
    scdeep_core::config::DEFAULT_METHOD
}

#[extendr]
fn scdeep_methods_json() -> Robj {
    guard(|| Ok(r!(scdeep_core::config::methods_json().map_err(core_fail)?.to_string())))
}

/// The core's error table (`scdeep_core::error::ERROR_KINDS`) as JSON.
#[extendr]
fn scdeep_error_kinds_json() -> Robj {
    r!(serde_json::to_string(&scdeep_core::error::ERROR_KINDS).unwrap_or_default())
}

/// Metrics of `pred` against `truth` as JSON; silhouette when an embedding (row-major) is given.
#[extendr]
fn scdeep_evaluate(truth: Robj, pred: Robj, embedding: Robj, dims: i32, average: &str) -> Robj {
    guard(|| {
        let truth = strings(&truth, "truth")?;
        let pred = strings(&pred, "labels")?;
        let emb: Option<Vec<f32>> = if embedding.is_null() {
            None
        } else {
            Some(
                embedding
                    .as_real_slice()
                    .ok_or_else(|| arg_fail("embedding", "expected a numeric matrix"))?
                    .iter()
                    .map(|&v| v as f32)
                    .collect(),
            )
        };
        let emb = emb.as_deref().map(|e| (e, dims as usize));
        let s = scdeep_core::metrics::evaluate_named(&truth, &pred, emb, "average", average).map_err(core_fail)?;
        Ok(r!(serde_json::to_string(&s).unwrap()))
    })
}

fn csc_parts(m: &Csr) -> Robj {
    list!(p = m.indptr.iter().map(|&v| v as i32).collect_robj(), i = m.indices.iter().map(|&v| v as i32).collect_robj(), x = f32s(&m.data))
        .into()
}

/// Simulated counts: list(counts, true_counts (dgCMatrix slots, genes x cells), cells,
/// genes, groups, batches).
#[extendr]
fn scdeep_simulate(params_json: &str) -> Robj {
    guard(|| {
        let over: serde_json::Value = serde_json::from_str(params_json).map_err(|e| arg_fail("...", e))?;
        let p = scdeep_core::simulate::SimParams::from_json(&over).map_err(core_fail)?;
        let s = scdeep_core::simulate::simulate(&p).map_err(core_fail)?;
        let true_counts: Robj = s.true_counts.as_ref().map_or(().into(), csc_parts);
        Ok(list!(
            counts = csc_parts(&s.counts),
            true_counts = true_counts,
            cells = s.cells,
            genes = s.genes,
            groups = s.groups,
            batches = s.batches
        )
        .into())
    })
}

#[extendr]
fn scdeep_version() -> Robj {
    list!(scdeep = scdeep_core::version(), libtorch = scdeep_core::device::libtorch_version(), cuda = scdeep_core::device::cuda_available())
        .into()
}

extendr_module! {
    mod scdeep;
    fn scdeep_run;
    fn scdeep_model_embed;
    fn scdeep_model_save;
    fn scdeep_model_load;
    fn scdeep_model_info;
    fn scdeep_config;
    fn scdeep_default_method;
    fn scdeep_methods_json;
    fn scdeep_error_kinds_json;
    fn scdeep_evaluate;
    fn scdeep_simulate;
    fn scdeep_version;
}
