//! config -> result: preprocess -> method -> cluster -> metrics.

pub mod ensemble;

use crate::config::RunConfig;
use crate::error::{Error, Result};
use crate::io::ReadOptions;
use crate::matrix::Dataset;
use crate::metrics::Scores;
use crate::models::Context;
use crate::progress::Progress;
use serde_json::{json, Value};
use std::borrow::Cow;
use std::path::Path;
use std::time::Instant;

#[derive(Debug)]
pub struct RunResult {
    /// The trained model (save it with `model.save(dir)`).
    pub model: crate::store::TrainedModel,
    /// Names of the cells that passed filtering (rows of the embedding).
    pub cells: Vec<String>,
    /// Their row numbers in the input.
    pub cell_index: Vec<usize>,
    /// cells x dims, row-major.
    pub embedding: Vec<f32>,
    pub dims: usize,
    pub labels: Vec<i64>,
    pub truth: Option<Vec<String>>,
    pub scores: Option<Scores>,
    pub history: Vec<Value>,
    pub timings: Vec<(String, f64)>,
    pub config: RunConfig,
    /// How the cells were clustered (algorithm, k or resolution, inertia or quality).
    pub clustering: Value,
    pub n_genes_used: usize,
    /// The imputed matrix of methods that impute (MaskClass), over `cells` and its genes.
    pub imputed: Option<crate::models::Imputed>,
}

pub fn versions(device: &str) -> Value {
    json!({"scdeep": crate::version(), "libtorch": crate::device::libtorch_version(), "device": device})
}

impl RunResult {
    /// Run information as JSON (config, versions, timings, metrics).
    pub fn info_json(&self) -> Value {
        let timings: serde_json::Map<String, Value> = self.timings.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        json!({
            "config": self.config,
            "versions": versions(&self.config.device),
            "n_cells": self.cells.len(),
            "n_genes_used": self.n_genes_used,
            "dims": self.dims,
            "n_clusters": self.labels.iter().collect::<std::collections::BTreeSet<_>>().len(),
            "clustering": self.clustering,
            "timings_s": timings,
            "metrics": self.scores,
        })
    }
}

/// The stability of a run's partition (`cluster::stability`) in the log, with the
/// clusters that do not hold together under resampling.
pub(crate) fn report_stability(stability: &Value, progress: &mut dyn Progress) {
    let Some(overall) = stability["overall"].as_f64() else { return };
    let weak: Vec<String> = stability["per_cluster"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, v)| v.as_f64().is_some_and(|j| j < 0.6))
        .map(|(c, v)| format!("{c} ({v})"))
        .collect();
    progress.message(&format!(
        "stability of the partition under subsampling: {overall:.3} (ARI, 1 = always the same){}",
        if weak.is_empty() { String::new() } else { format!("; clusters that dissolve (Jaccard < 0.6): {}", weak.join(", ")) }
    ));
}

/// What must match for a checkpoint to be resumed: everything that shapes training.
fn fingerprint(cfg: &RunConfig, prep: &crate::preprocess::Prepared) -> Value {
    let mut train = serde_json::to_value(&cfg.train).unwrap_or_default();
    if let Some(t) = train.as_object_mut() {
        for k in ["checkpoint_every", "checkpoint_dir", "resume", "embed_batch_size"] {
            t.remove(k);
        }
    }
    json!({
        "method": cfg.method, "params": cfg.params, "preprocess": cfg.preprocess, "train": train,
        "seed": cfg.seed, "device": cfg.device, "n_cells": prep.n_cells(), "n_genes": prep.n_genes(),
    })
}

/// The input of a run as its outputs need it (the run may have consumed the matrix).
#[derive(Debug, Clone)]
pub struct InputShape {
    pub n_cells: usize,
    /// Gene names as the run saw them (made unique).
    pub genes: Vec<String>,
}

/// A run on a file ([`run_path`]): its result, the input's shape, and the input itself
/// when it was asked for and read whole.
#[derive(Debug)]
pub struct PathRun {
    pub result: RunResult,
    pub shape: InputShape,
    pub input: Option<Dataset>,
}

pub use crate::matrix::Cells;

/// Run on cells in memory: `run(&ds, ..)` leaves the dataset to the caller,
/// `run(ds, ..)` lets the run consume it ([`Cells`]).
///
/// ```
/// use scdeep_core::{pipeline, progress::Silent, simulate, Dataset, RunConfig};
/// let sim = simulate::simulate(&simulate::SimParams { n_cells: 200, n_genes: 600, group_prob: vec![1.0, 1.0], de_prob: 0.3, ..Default::default() })?;
/// let ds = Dataset { x: sim.counts, cells: sim.cells, genes: sim.genes, labels: Some(sim.groups), batches: None, source: "simulated".into() };
/// let cfg = RunConfig::for_method("pca")?;
/// let kept = pipeline::run(&ds, &cfg, &mut Silent)?; // ds stays usable
/// let consumed = pipeline::run(ds, &cfg, &mut Silent)?; // normalised in place
/// assert_eq!(kept.labels, consumed.labels);
/// assert!(kept.scores.unwrap().ari > 0.9, "two simulated groups, k from the labels");
/// # Ok::<(), scdeep_core::Error>(())
/// ```
pub fn run<'a>(cells: impl Into<Cells<'a>>, cfg: &RunConfig, progress: &mut dyn Progress) -> Result<RunResult> {
    run_input(cells.into().0, cfg, progress)
}

/// Run on the file at `path`, read with `opts` (the cells' batches from the obs column
/// `cfg.batch.key` unless `opts` names a column or file). The run decides how to read it: a
/// consensus reads a large .h5ad again for each member (in blocks of rows where the
/// member's preprocessing allows, `io::MemberReads`), a single method preprocesses a
/// large .h5ad while reading it (`ReadOptions::stream_min_nnz`), and anything else is read
/// once, whole, and shared. With `keep_input` a whole read is left intact and returned in
/// [`PathRun::input`] (to write it with the results); without it the run consumes it.
///
/// ```
/// use scdeep_core::{io, pipeline, progress::Silent, simulate, RunConfig};
/// let dir = std::env::temp_dir().join(format!("scdeep-doc-run-path-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let out = dir.join("sim.h5ad");
/// let params = simulate::SimParams { n_cells: 200, n_genes: 600, group_prob: vec![1.0, 1.0], de_prob: 0.3, ..Default::default() };
/// scdeep_core::results::simulate_to(&out, &params, false, &[], &mut Silent)?;
/// let opts = io::ReadOptions { label_key: Some("group".into()), ..Default::default() };
/// let run = pipeline::run_path(&out, &opts, &RunConfig::for_method("pca")?, false, &mut Silent)?;
/// assert_eq!(run.shape.n_cells, 200);
/// assert!(run.input.is_none(), "consumed by the run");
/// assert_eq!(run.result.labels.len(), 200);
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), scdeep_core::Error>(())
/// ```
pub fn run_path(path: &Path, opts: &ReadOptions, cfg: &RunConfig, keep_input: bool, progress: &mut dyn Progress) -> Result<PathRun> {
    cfg.validate()?;
    let mut opts = opts.clone();
    if opts.batch_key.is_none() && opts.batches_file.is_none() {
        opts.batch_key = cfg.batch.key.clone();
    }
    let members = match cfg.method == crate::models::consensus::NAME {
        true => crate::io::MemberReads::open(path, &opts)?,
        false => None,
    };
    if let Some(mut members) = members {
        let result = ensemble::run(&mut members, cfg, progress)?;
        let (n_cells, genes) = members.shape.take().unwrap_or_default();
        return Ok(PathRun { result, shape: InputShape { n_cells, genes }, input: None });
    }
    if cfg.method == crate::models::consensus::NAME {
        opts.stream_min_nnz = None;
    }
    match crate::io::read_for_run(path, &opts, &cfg.preprocess, needs_counts(cfg)?)? {
        crate::io::Input::Prepared(s) => {
            let shape = InputShape { n_cells: s.n_cells, genes: s.genes.clone() };
            Ok(PathRun { result: run_streamed(*s, cfg, progress)?, shape, input: None })
        }
        crate::io::Input::Whole(mut ds) => {
            progress.message(&format!("read {} cells x {} genes from {}", ds.n_cells(), ds.n_genes(), path.display()));
            if let Some(w) = ds.make_genes_unique() {
                progress.message(&w);
            }
            let shape = InputShape { n_cells: ds.n_cells(), genes: ds.genes.clone() };
            match keep_input {
                true => Ok(PathRun { result: run(&ds, cfg, progress)?, shape, input: Some(ds) }),
                false => Ok(PathRun { result: run(ds, cfg, progress)?, shape, input: None }),
            }
        }
    }
}

/// Run on an input preprocessed while it was read (`io::read_for_run` with the raw
/// counts kept when the method reads them); not a consensus, whose members preprocess
/// the input each their own way.
fn run_streamed(input: crate::io::StreamedInput, cfg: &RunConfig, progress: &mut dyn Progress) -> Result<RunResult> {
    let (mut cfg, device, method) = start(cfg, progress)?;
    resolve_n_top_genes(&mut cfg, input.genes.len());
    for n in &input.notes {
        progress.message(n);
    }
    if input.prep.counts.is_none() && method.needs_counts() {
        return Err(Error::data(format!("{} reads the raw counts, which were not kept while reading", cfg.method)));
    }
    run_prepared(input.prep, cfg, device, method, vec![("preprocess".to_string(), input.seconds)], progress)
}

/// Whether the method `cfg` asks for reads the raw counts (what `io::read_for_run` keeps).
fn needs_counts(cfg: &RunConfig) -> Result<bool> {
    if cfg.method == crate::models::consensus::NAME {
        return Ok(true);
    }
    Ok(crate::models::build(&cfg.method, &cfg.params)?.needs_counts())
}

/// The run's checked options (with the device resolved), device and method.
fn start(cfg: &RunConfig, progress: &mut dyn Progress) -> Result<(RunConfig, tch::Device, Box<dyn crate::models::Method>)> {
    let (cfg, device) = setup(cfg, progress)?;
    let method = crate::models::build(&cfg.method, &cfg.params)?;
    Ok((cfg, device, method))
}

/// The run's checked options with the device resolved, and the device; the thread count set.
pub(crate) fn setup(cfg: &RunConfig, progress: &mut dyn Progress) -> Result<(RunConfig, tch::Device)> {
    cfg.validate()?;
    let device = crate::device::parse_device(&cfg.device)?;
    crate::device::set_threads(cfg.threads)?;
    if let Some(w) = crate::device::threads_note(cfg.threads) {
        progress.message(&w);
    }
    let mut cfg = cfg.clone();
    cfg.device = crate::device::device_name(device);
    Ok((cfg, device))
}

/// A default number of HVGs above the input's genes means all of them: the resolved
/// config (run.json) says so, so that it reproduces the run (a number the user gives
/// that is too large is an error).
pub(crate) fn resolve_n_top_genes(cfg: &mut RunConfig, n_genes: usize) {
    let p = &mut cfg.preprocess;
    if p.n_top_genes_is_default && p.hvg_flavor.is_some() && p.n_top_genes > n_genes {
        p.n_top_genes = n_genes;
    }
}

fn run_input(mut ds: Cow<'_, Dataset>, cfg: &RunConfig, progress: &mut dyn Progress) -> Result<RunResult> {
    if ds.has_duplicate_genes() {
        if let Some(w) = ds.to_mut().make_genes_unique() {
            progress.message(&w);
        }
    }
    if cfg.method == crate::models::consensus::NAME {
        return ensemble::run(&mut &*ds, cfg, progress);
    }
    let (mut cfg, device, method) = start(cfg, progress)?;
    resolve_n_top_genes(&mut cfg, ds.n_genes());
    progress.stage("preprocess");
    let t = Instant::now();
    let prep = crate::preprocess::prepare(Cells(ds), &cfg.preprocess, method.needs_counts())?;
    run_prepared(prep, cfg, device, method, vec![("preprocess".to_string(), t.elapsed().as_secs_f64())], progress)
}

/// The number of clusters the run asks for: the config's, else the number of ground-truth
/// classes, else None; more clusters than cells is an error.
pub(crate) fn known_k(cfg: &RunConfig, prep: &crate::preprocess::Prepared) -> Result<Option<usize>> {
    let k = match (cfg.cluster.n_clusters, &prep.labels) {
        (Some(k), _) => Some(k),
        (None, Some(l)) => Some(l.iter().collect::<std::collections::HashSet<_>>().len()),
        (None, None) => None,
    };
    if let Some(k) = k.filter(|&k| k > prep.n_cells()) {
        return Err(Error::config("cluster.n_clusters", k, format!("more clusters than cells ({} after filtering)", prep.n_cells())));
    }
    Ok(k)
}

/// The method stage of a run: `method` trained on `prep`, the cells embedded (and
/// imputed, for methods that impute), with the stages' times added to `timings`.
pub(crate) fn fit_embed(
    prep: &crate::preprocess::Prepared,
    cfg: &RunConfig,
    device: tch::Device,
    method: &mut dyn crate::models::Method,
    k: Option<usize>,
    timings: &mut Vec<(String, f64)>,
    progress: &mut dyn Progress,
) -> Result<(tch::Tensor, Option<crate::models::Imputed>)> {
    progress.stage(&cfg.method);
    let t = Instant::now();
    let mut ctx =
        Context { device, seed: cfg.seed, train: &cfg.train, n_clusters: k, fingerprint: fingerprint(cfg, prep), progress: &mut *progress };
    use crate::device::torch_guard as guard;
    guard(&format!("training {}", cfg.method), device, || method.fit(prep, &mut ctx))?;
    timings.push(("train".to_string(), t.elapsed().as_secs_f64()));
    let t = Instant::now();
    let e = guard("embedding the cells", device, || method.embed(prep, &mut ctx))?;
    timings.push(("embed".to_string(), t.elapsed().as_secs_f64()));
    let t = Instant::now();
    let imputed = guard("imputing", device, || method.impute(prep, &mut ctx))?;
    if imputed.is_some() {
        timings.push(("impute".to_string(), t.elapsed().as_secs_f64()));
    }
    if !progress.should_continue() {
        return Err(Error::Cancelled);
    }
    Ok((e, imputed))
}

/// The embedding `emb` corrected for the batches `b` (`RunConfig::batch`), with the
/// account of the correction; its time added to `timings`.
pub(crate) fn correct_tensor(
    emb: tch::Tensor,
    b: &crate::batch::Batches,
    cfg: &RunConfig,
    device: tch::Device,
    timings: &mut Vec<(String, f64)>,
    progress: &mut dyn Progress,
) -> Result<(tch::Tensor, Value)> {
    let t = Instant::now();
    let (n, d) = (emb.size()[0], emb.size()[1]);
    let mut v = Vec::<f32>::try_from(&emb.f_to_device(tch::Device::Cpu)?.f_contiguous()?.f_view([-1])?)?;
    drop(emb);
    let info = crate::device::torch_guard("correcting for batches", device, || {
        b.correct(&mut v, d as usize, &cfg.batch, cfg.seed, device, progress)
    })?;
    timings.push(("batch_correction".to_string(), t.elapsed().as_secs_f64()));
    Ok((tch::Tensor::from_slice(&v).view([n, d]).f_to_device(device)?, info))
}

/// The scores of a run's partition `pred` against `truth`, of its embedding, and of how
/// its batches mix; their time added to `timings`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn scores(
    truth: &[String],
    pred: &[i64],
    (embedding, dims): (&[f32], usize),
    batches: Option<&crate::batch::Batches>,
    stability: &Value,
    cfg: &RunConfig,
    device: tch::Device,
    timings: &mut Vec<(String, f64)>,
    progress: &mut dyn Progress,
) -> Result<Scores> {
    progress.stage("metrics");
    let t = Instant::now();
    let s = crate::metrics::evaluate(truth, pred, Some((embedding, dims)), cfg.metrics.nmi_average, cfg.metrics.silhouette_sample)?;
    let batch = match batches {
        Some(b) => Some(crate::device::torch_guard("batch metrics", device, || b.scores(embedding, dims, truth, &cfg.batch, device))?),
        None => None,
    };
    timings.push(("metrics".to_string(), t.elapsed().as_secs_f64()));
    Ok(Scores { stability: stability["overall"].as_f64(), ..s }.with_batch(batch.as_ref()))
}

/// The run from the preprocessed cells on: training, embedding, clustering, scores.
fn run_prepared(
    mut prep: crate::preprocess::Prepared<'_>,
    mut cfg: RunConfig,
    device: tch::Device,
    mut method: Box<dyn crate::models::Method>,
    mut timings: Vec<(String, f64)>,
    progress: &mut dyn Progress,
) -> Result<RunResult> {
    progress.message(&format!("{} cells x {} genes after preprocessing", prep.n_cells(), prep.n_genes()));

    let k = known_k(&cfg, &prep)?;
    if k.is_none()
        && (matches!(cfg.cluster.algorithm, crate::cluster::Algorithm::Kmeans | crate::cluster::Algorithm::Consensus)
            || (cfg.cluster.algorithm == crate::cluster::Algorithm::Auto && prep.n_cells() < cfg.cluster.auto_max_kmeans_cells))
    {
        return Err(Error::config(
            "cluster.n_clusters",
            "null",
            "K-means needs the number of clusters when no ground-truth labels are given (--n-clusters), or use --cluster leiden",
        ));
    }
    cfg.cluster.n_clusters = k;
    let batches = crate::batch::Batches::of_cells(prep.batches.as_deref(), &cfg.batch, progress)?;
    let (emb, imputed) = fit_embed(&prep, &cfg, device, method.as_mut(), k, &mut timings, progress)?;
    // Nothing reads the matrices after embedding and imputing: free them before the
    // clustering, whose neighbour search is the largest allocation left.
    let n_genes_used = prep.n_genes();
    prep.x = crate::matrix::Csr::empty(0);
    prep.counts = None;
    let (emb, correction) = match &batches {
        Some(b) => correct_tensor(emb, b, &cfg, device, &mut timings, progress)?,
        None => (emb, Value::Null),
    };

    progress.stage("cluster");
    let t = Instant::now();
    let mut km = crate::device::torch_guard("clustering", device, || crate::cluster::run(&emb, &cfg.cluster, k, cfg.seed, &mut *progress))?;
    timings.push(("cluster".to_string(), t.elapsed().as_secs_f64()));
    let t = Instant::now();
    let stability = crate::device::torch_guard("measuring the clustering's stability", device, || {
        crate::cluster::stability(&emb, &km.labels, &cfg.cluster, k, cfg.seed, &cfg.cluster.stability)
    })?;
    report_stability(&stability, progress);
    km.info["stability"] = stability.clone();
    timings.push(("stability".to_string(), t.elapsed().as_secs_f64()));
    let dims = emb.size()[1] as usize;
    let embedding = Vec::<f32>::try_from(&emb.f_to_device(tch::Device::Cpu)?.f_contiguous()?.f_view([-1])?)?;
    drop(emb);

    if let Some(b) = &batches {
        km.info["batch"] = b.account(&cfg.batch, correction, &km.labels);
    }
    let scores = match &prep.labels {
        Some(truth) => {
            Some(scores(truth, &km.labels, (&embedding, dims), batches.as_ref(), &stability, &cfg, device, &mut timings, progress)?)
        }
        None => None,
    };
    let model_history = method.history();
    let model =
        crate::store::TrainedModel::single(cfg.clone(), method, crate::preprocess::SavedPreprocess::from_prepared(&prep, &cfg.preprocess));
    Ok(RunResult {
        model,
        n_genes_used,
        cells: prep.cells,
        cell_index: prep.cell_index,
        embedding,
        dims,
        labels: km.labels,
        truth: prep.labels,
        scores,
        history: model_history,
        timings,
        config: cfg,
        clustering: km.info,
        imputed,
    })
}
