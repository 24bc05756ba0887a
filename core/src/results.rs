//! A run's results, laid out one way for every door.
//!
//! - [`OnInput`]: the results placed back on the input's cells (and genes): cells the
//!   method's filter removed get NaN embedding rows, label -1 (missing) and empty
//!   imputed rows; genes the method did not use are empty imputed columns. The CLI's
//!   .h5ad, Python's AnnData and R's Seurat/SingleCellExperiment objects all take these.
//! - [`uns_entry`]: what `uns['scdeep'][<key>]` holds (every door writes the same keys).
//! - [`write_run_folder`]: the files of `scdeep run --out` ([`RUN_FILES`]), and
//!   [`write_embedding_files`] those of `scdeep embed --out`.

use crate::error::{Error, Result};
use crate::io::write::{self, AtomicFile};
use crate::matrix::{Csr, Dataset};
use crate::models::Imputed;
use crate::pipeline::RunResult;
use serde_json::{json, Value};
use std::path::Path;

pub const EMBEDDING_TSV: &str = "embedding.tsv";
pub const EMBEDDING_NPY: &str = "embedding.npy";
pub const LABELS_TSV: &str = "labels.tsv";
pub const RUN_JSON: &str = "run.json";
pub const HISTORY_JSON: &str = "history.json";
pub const VERSIONS_YML: &str = "versions.yml";
pub const METRICS_JSON: &str = "metrics.json";
pub const METRICS_TSV: &str = "metrics.tsv";
pub const TRUTH_TSV: &str = "truth.tsv";
/// 10x MTX folder of the imputed matrix.
pub const IMPUTED_DIR: &str = "imputed";
/// Layer (and var column) of the imputed matrix in the .h5ad.
pub const IMPUTED_LAYER: &str = "scdeep_imputed";
/// The files a run folder may hold (besides `<input>.scdeep.h5ad` and `imputed/`).
pub const RUN_FILES: [&str; 9] =
    [EMBEDDING_TSV, EMBEDDING_NPY, LABELS_TSV, RUN_JSON, HISTORY_JSON, VERSIONS_YML, METRICS_JSON, METRICS_TSV, TRUTH_TSV];

/// `n` rows of `dims` values with `rows` (row r of `values`) at the positions `index[r]`,
/// NaN elsewhere.
pub fn scatter_rows(values: &[f32], dims: usize, index: &[usize], n: usize) -> Vec<f32> {
    let mut out = vec![f32::NAN; n * dims];
    for (r, &i) in index.iter().enumerate() {
        out[i * dims..(i + 1) * dims].copy_from_slice(&values[r * dims..(r + 1) * dims]);
    }
    out
}

/// `n` labels with `labels[r]` at `index[r]`, -1 (missing) elsewhere.
pub fn scatter_labels(labels: &[i64], index: &[usize], n: usize) -> Vec<i64> {
    let mut out = vec![-1i64; n];
    for (&l, &i) in labels.iter().zip(index) {
        out[i] = l;
    }
    out
}

/// The imputed matrix (kept cells x its genes, row-major) placed on `n_cells` cells x
/// `genes` (CSR, columns in `genes`' order), and which of `genes` it covers. Every gene
/// the method imputed must be in `genes` (the first of duplicate names is taken).
pub fn place_imputed(imp: &Imputed, index: &[usize], n_cells: usize, genes: &[String]) -> Result<(Csr, Vec<bool>)> {
    let mut pos = std::collections::HashMap::new();
    for (j, g) in genes.iter().enumerate() {
        pos.entry(g.as_str()).or_insert(j);
    }
    let cols = imp
        .genes
        .iter()
        .map(|g| pos.get(g.as_str()).copied().ok_or_else(|| Error::data(format!("the imputed gene '{g}' is not among the input's genes"))))
        .collect::<Result<Vec<usize>>>()?;
    let mut order: Vec<usize> = (0..cols.len()).collect();
    order.sort_by_key(|&k| cols[k]);
    let mut covered = vec![false; genes.len()];
    cols.iter().for_each(|&j| covered[j] = true);
    let mut row_of = vec![usize::MAX; n_cells];
    for (r, &i) in index.iter().enumerate() {
        row_of[i] = r;
    }
    let g = imp.genes.len();
    let (mut indptr, mut indices, mut data) = (vec![0usize], Vec::new(), Vec::new());
    for &r in &row_of {
        if r != usize::MAX {
            for &k in &order {
                let v = imp.values[r * g + k];
                if v != 0.0 {
                    indices.push(cols[k] as u32);
                    data.push(v);
                }
            }
        }
        indptr.push(data.len());
    }
    Ok((Csr { n_rows: n_cells, n_cols: genes.len(), indptr, indices, data }, covered))
}

/// A run's results on its input's cells and genes.
#[derive(Debug, Clone, PartialEq)]
pub struct OnInput {
    /// n_cells x dims, row-major; NaN rows for removed cells.
    pub embedding: Vec<f32>,
    pub dims: usize,
    /// One per input cell; -1 for removed cells.
    pub labels: Vec<i64>,
    /// The imputed matrix over the input's cells x `genes`, and which genes it covers.
    pub imputed: Option<(Csr, Vec<bool>)>,
}

/// The results of `res` on an input of `n_cells` cells; the imputed matrix is placed
/// on `genes` (the input's gene names as the run saw them; None leaves it out).
pub fn on_input(res: &RunResult, n_cells: usize, genes: Option<&[String]>) -> Result<OnInput> {
    let imputed = match (&res.imputed, genes) {
        (Some(imp), Some(g)) => Some(place_imputed(imp, &res.cell_index, n_cells, g)?),
        _ => None,
    };
    Ok(OnInput {
        embedding: scatter_rows(&res.embedding, res.dims, &res.cell_index, n_cells),
        dims: res.dims,
        labels: scatter_labels(&res.labels, &res.cell_index, n_cells),
        imputed,
    })
}

/// The loss history as columns: every key any epoch reports, in first-seen order, one
/// value per epoch (null where an epoch lacks it).
pub fn history_columns(history: &[Value]) -> serde_json::Map<String, Value> {
    let mut names: Vec<&str> = Vec::new();
    for h in history {
        for k in h.as_object().into_iter().flat_map(|o| o.keys()) {
            if !names.contains(&k.as_str()) {
                names.push(k);
            }
        }
    }
    names
        .iter()
        .map(|&k| (k.to_string(), Value::Array(history.iter().map(|h| h.get(k).cloned().unwrap_or(Value::Null)).collect())))
        .collect()
}

/// `uns['scdeep'][<key>]`, the same in every door: `config` (the resolved config, JSON
/// text), `run` (run.json, JSON text), `versions` and `timings_s` (flat), `history`
/// (loss columns, one value per epoch), `metrics` (numeric scores; only with ground
/// truth) and `batch` (with several batches: the cells per batch, the correction, each
/// cluster's cells per batch). AnnData cannot hold nulls or nested lists, hence the JSON texts.
pub fn uns_entry(res: &RunResult) -> Value {
    let info = res.info_json();
    let mut e = json!({
        "config": serde_json::to_string(&res.config).unwrap_or_default(),
        "run": info.to_string(),
        "versions": info["versions"],
        "timings_s": info["timings_s"],
        "history": history_columns(&res.history),
    });
    // how far to trust the partition (no labels needed): overall and per cluster
    if let Some(st) = info["clustering"].get("stability").filter(|v| v.is_object()) {
        e["stability"] = json!({"overall": st["overall"], "per_cluster": st["per_cluster"]});
    }
    if let Some(Value::Object(b)) = info["clustering"].get("batch") {
        e["batch"] = Value::Object(b.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), v.clone())).collect());
    }
    if let Some(s) = &res.scores {
        e["metrics"] = s.as_pairs().into_iter().map(|(k, v)| (k, json!(v))).collect::<serde_json::Map<_, _>>().into();
    }
    e
}

pub use crate::pipeline::InputShape;

/// How `scdeep run` writes its folder.
#[derive(Debug, Clone)]
pub struct RunFolder<'a> {
    /// The input file or folder (its name names the .h5ad; an .h5ad input is copied).
    pub input: &'a Path,
    pub input_is_h5ad: bool,
    /// The counts were read from raw/X (whose genes are not var's: no imputed layer).
    pub use_raw: bool,
    /// Write `<input>.scdeep.h5ad`.
    pub h5ad: bool,
    /// Also write the imputed matrix as `imputed/` (10x MTX).
    pub imputed_mtx: bool,
}

impl RunFolder<'_> {
    /// The imputed matrix can be a layer of the output .h5ad.
    fn imputed_layer_fits(&self) -> bool {
        self.h5ad && !(self.use_raw && self.input_is_h5ad)
    }

    /// `<stem>.scdeep.h5ad`: the input's name without its extension (and .gz), at most
    /// 200 characters.
    pub fn h5ad_name(&self) -> String {
        let input = self.input;
        let name = input.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| "data".into());
        let stem = name.trim_end_matches(".gz").trim_end_matches('/');
        let stem = stem.rsplit_once('.').map(|(s, _)| s).filter(|s| !s.is_empty() && !input.is_dir()).unwrap_or(stem);
        let stem: String = stem.chars().take(200).collect();
        let stem = if stem.len() > 200 { stem.chars().take(50).collect() } else { stem };
        format!("{stem}.scdeep.h5ad")
    }
}

/// Every file of a run folder into `dir` (a staging folder: see `output::StagedDir`).
/// `counts`: the input, kept for a new .h5ad when the input was not one.
pub fn write_run_folder(dir: &Path, res: &RunResult, input: &InputShape, counts: Option<&Dataset>, opts: &RunFolder) -> Result<()> {
    let method = &res.config.method;
    write_embedding_files(dir, method, &res.cells, &res.embedding, res.dims, &res.config.device)?;
    write_labels(dir, method, &res.cells, &res.labels)?;
    write::write_json(&dir.join(HISTORY_JSON), &json!(res.history))?;
    write::write_json(&dir.join(RUN_JSON), &res.info_json())?;
    if let Some(s) = &res.scores {
        let v = serde_json::to_value(s).map_err(|e| Error::Numeric(format!("cannot encode the metrics as JSON: {e}")))?;
        write::write_json(&dir.join(METRICS_JSON), &v)?;
        write_metrics_tsv(&dir.join(METRICS_TSV), method, res.config.seed, &v)?;
    }
    if let Some(t) = &res.truth {
        write::write_labels_tsv(&dir.join(TRUTH_TSV), &res.cells, "truth", t)?;
    }
    if let Some(imp) = res.imputed.as_ref().filter(|_| opts.imputed_mtx || !opts.imputed_layer_fits()) {
        let m = Csr::from_dense(res.cells.len(), imp.genes.len(), &imp.values);
        let d = dir.join(IMPUTED_DIR);
        std::fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
        write::write_10x_mtx(&d, &m, &res.cells, &imp.genes)?;
    }
    if opts.h5ad {
        write_h5ad(&dir.join(opts.h5ad_name()), res, input, counts, opts)?;
    }
    Ok(())
}

/// The .h5ad: a copy of an .h5ad input, or for other inputs a new file with the counts
/// (`counts`) in X and the truth in obs, with `obsm['X_<method>']`,
/// `obs['<method>_clusters']`, `uns['scdeep'][<method>]` and the imputed layer added.
fn write_h5ad(dest: &Path, res: &RunResult, input: &InputShape, counts: Option<&Dataset>, opts: &RunFolder) -> Result<()> {
    let genes = opts.imputed_layer_fits().then_some(input.genes.as_slice());
    let placed = on_input(res, input.n_cells, genes)?;
    let uns = uns_entry(res);
    let results = crate::io::H5adResults {
        method: &res.config.method,
        embedding: &placed.embedding,
        dims: placed.dims,
        labels: &placed.labels,
        uns: &uns,
        imputed: placed.imputed.as_ref().map(|(m, g)| (IMPUTED_LAYER, m, g.as_slice())),
    };
    if opts.input_is_h5ad {
        return crate::io::write_h5ad_results(opts.input, dest, &results);
    }
    let ds = counts.ok_or_else(|| Error::Numeric("internal: the input's counts were not kept for the new .h5ad".into()))?;
    let truth: Vec<(&str, &[String])> = match &ds.labels {
        Some(l) => vec![("truth", l.as_slice())],
        None => vec![],
    };
    crate::io::write_h5ad_new_with_results(dest, &ds.x, &ds.cells, &ds.genes, &truth, &results)
}

/// metrics.tsv: a header and one row (method, seed, every metric; NA where not computed),
/// the same columns for every run so that tables from many runs concatenate.
fn write_metrics_tsv(dest: &Path, method: &str, seed: u64, scores: &Value) -> Result<()> {
    let empty = serde_json::Map::new();
    let m = scores.as_object().unwrap_or(&empty);
    AtomicFile::write_with(dest, |w| {
        let names: Vec<&str> = m.keys().map(String::as_str).collect();
        writeln!(w, "method\tseed\t{}", names.join("\t"))?;
        let vals: Vec<String> = m.values().map(|x| if x.is_null() { "NA".to_string() } else { x.to_string() }).collect();
        writeln!(w, "{method}\t{seed}\t{}", vals.join("\t"))
    })
}

/// embedding.tsv, embedding.npy and versions.yml in `dir` (`scdeep run` and `scdeep embed`).
pub fn write_embedding_files(dir: &Path, method: &str, cells: &[String], emb: &[f32], dims: usize, device: &str) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    write::write_matrix_tsv(&dir.join(EMBEDDING_TSV), cells, &format!("{}_", method.to_uppercase()), emb, dims)?;
    write::write_npy_f32(&dir.join(EMBEDDING_NPY), emb, &[cells.len(), dims])?;
    AtomicFile::write_with(&dir.join(VERSIONS_YML), |w| {
        writeln!(w, "scdeep:\n  scdeep: {}\n  libtorch: {}\n  device: {}", crate::version(), crate::device::libtorch_version(), device)
    })
}

/// labels.tsv: `cell<TAB><method>_clusters`.
pub fn write_labels(dir: &Path, method: &str, cells: &[String], labels: &[i64]) -> Result<()> {
    let lab: Vec<String> = labels.iter().map(|l| l.to_string()).collect();
    write::write_labels_tsv(&dir.join(LABELS_TSV), cells, &format!("{method}_clusters"), &lab)
}

/// Simulated counts (`simulate::simulate(params)`) written to `out`, chosen by its name:
/// an .h5ad (obs `group` and `batch`, the true counts as a layer); a dense .csv or .tsv
/// with `<stem>.labels.tsv` (and `<stem>.true_counts.<ext>`) beside it; anything else a
/// 10x folder with labels.tsv, batches.tsv and true_counts/, staged so that it appears
/// whole or not at all (an existing folder scdeep did not write needs `overwrite`).
/// Nothing is simulated when `out` would replace one of `inputs`.
pub fn simulate_to(
    out: &Path,
    params: &crate::simulate::SimParams,
    overwrite: bool,
    inputs: &[(&str, &Path)],
    progress: &mut dyn crate::progress::Progress,
) -> Result<()> {
    use crate::io::output::{refuse_overlap, Output, StagedDir};
    let name = out.to_string_lossy().to_lowercase();
    let is_file = [".h5ad", ".csv", ".tsv"].iter().any(|e| name.ends_with(e));
    refuse_overlap(&[if is_file { Output::File("--out", out) } else { Output::Dir("--out", out) }], inputs)?;
    let stage = if is_file { None } else { Some(StagedDir::new(out, overwrite, &|_| false)?) };
    let sim = crate::simulate::simulate(params)?;
    let stem = out.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
    if name.ends_with(".h5ad") {
        let layers: Vec<(&str, &Csr)> = sim.true_counts.iter().map(|t| ("true_counts", t)).collect();
        crate::io::write_h5ad_new(out, &sim.counts, &sim.cells, &sim.genes, &[("group", &sim.groups), ("batch", &sim.batches)], &layers)?;
    } else if is_file {
        let (sep, ext) = if name.ends_with(".csv") { (',', "csv") } else { ('\t', "tsv") };
        let tpath = out.with_file_name(format!("{stem}.true_counts.{ext}"));
        for (m, path) in std::iter::once((&sim.counts, out.to_path_buf())).chain(sim.true_counts.as_ref().map(|t| (t, tpath))) {
            let dense = m.to_dense();
            AtomicFile::write_with(&path, |w| {
                write!(w, "cell")?;
                for g in &sim.genes {
                    write!(w, "{sep}{g}")?;
                }
                writeln!(w)?;
                for (i, c) in sim.cells.iter().enumerate() {
                    write!(w, "{c}")?;
                    for v in &dense[i * m.n_cols..(i + 1) * m.n_cols] {
                        write!(w, "{sep}{v}")?;
                    }
                    writeln!(w)?;
                }
                Ok(())
            })?;
        }
        write::write_labels_tsv(&out.with_file_name(format!("{stem}.labels.tsv")), &sim.cells, "cell_type", &sim.groups)?;
    } else if let Some(stage) = stage {
        let dir = stage.path();
        write::write_10x_mtx(dir, &sim.counts, &sim.cells, &sim.genes)?;
        if let Some(t) = &sim.true_counts {
            let tdir = dir.join("true_counts");
            std::fs::create_dir_all(&tdir).map_err(|e| Error::io(&tdir, e))?;
            write::write_10x_mtx(&tdir, t, &sim.cells, &sim.genes)?;
        }
        write::write_labels_tsv(&dir.join("labels.tsv"), &sim.cells, "cell_type", &sim.groups)?;
        write::write_labels_tsv(&dir.join("batches.tsv"), &sim.cells, "batch", &sim.batches)?;
        if !progress.should_continue() {
            return Err(Error::Cancelled);
        }
        stage.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_are_placed_on_the_input_cells_and_genes() {
        // kept cells 0 and 2 of 3; imputed genes b, a of the input's a, b, c
        let e = scatter_rows(&[1.0, 2.0, 3.0, 4.0], 2, &[0, 2], 3);
        assert_eq!(&e[..2], &[1.0, 2.0]);
        assert!(e[2].is_nan() && e[3].is_nan());
        assert_eq!(&e[4..], &[3.0, 4.0]);
        assert_eq!(scatter_labels(&[5, 6], &[0, 2], 3), vec![5, -1, 6]);
        let imp = Imputed { genes: vec!["b".into(), "a".into()], values: vec![1.0, 0.0, 2.0, 3.0] };
        let genes: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let (m, covered) = place_imputed(&imp, &[0, 2], 3, &genes).unwrap();
        assert_eq!(covered, vec![true, true, false]);
        assert_eq!((m.n_rows, m.n_cols), (3, 3));
        assert_eq!(m.indptr, vec![0, 1, 1, 3]);
        assert_eq!(m.indices, vec![1, 0, 1]);
        assert_eq!(m.data, vec![1.0, 3.0, 2.0]);
        let e = place_imputed(&imp, &[0, 2], 3, &genes[..1]).unwrap_err().to_string();
        assert!(e.contains("'b'"), "{e}");
    }

    #[test]
    fn history_columns_fill_missing_epochs_with_null() {
        let h = vec![json!({"epoch": 1, "loss": 2.0}), json!({"epoch": 2, "loss": 1.5, "loss_mask": 0.5})];
        let c = history_columns(&h);
        assert_eq!(c.keys().collect::<Vec<_>>(), ["epoch", "loss", "loss_mask"]);
        assert_eq!(c["loss_mask"], json!([null, 0.5]));
    }
}
