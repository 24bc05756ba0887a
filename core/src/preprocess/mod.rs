//! Preprocessing with scanpy semantics (docs/specs/methods.md §0.1–0.2).
//!
//! `PreprocessConfig` holds every option; named recipes (`dca`, `scanpy`, `sanity`)
//! are just preset values of it. `prepare` turns a count `Dataset` into `Prepared`:
//! the selected genes' log-normalised values kept sparse, plus the per-gene `Scaler`
//! that mini-batches apply after densifying.

pub mod hvg;
pub mod hvg_result;
pub mod normalize;
pub mod scale;
pub mod seurat_v3;
pub mod stream;

pub use hvg::{highly_variable_genes, HvgFlavor, HvgResult};
pub use scale::{RobustScaler, Scaler};

use crate::error::{Error, Result};
use crate::matrix::{Cells, Csr, Dataset};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Recipe {
    /// DCA / scDeepCluster: ceil, drop empty genes and cells, median normalize, log1p,
    /// 'seurat' HVGs, scale (no clip). Used by scMAE, contrastive-sc, CICL.
    Dca,
    /// scanpy's tutorial path: median normalize, log1p, 'seurat' HVGs (2000),
    /// scale(max_value=10).
    Scanpy,
    /// The CATALOG's sanity score: normalize to 1e4, log1p, top-2000 variance genes, z-score.
    Sanity,
    /// scRAE (specs §7): cells with >= 1 gene, genes in >= 10 cells, normalize_total
    /// (median, exclude_highly_expressed), log1p, 720 'seurat' HVGs, no scaling.
    Scrae,
    /// MaskClass (specs §5): genes in >= 3 cells, median normalisation, log2(1+x),
    /// 1000 'trend' HVGs; no z-scoring (the method scales each gene robustly itself).
    Maskclass,
    /// Whatever the fields say.
    Custom,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PreprocessConfig {
    /// The preset the other fields started from (informational once resolved).
    pub recipe: Recipe,
    pub ceil_counts: bool,
    pub min_counts_per_cell: f64,
    pub min_genes_per_cell: usize,
    pub min_counts_per_gene: f64,
    pub min_cells_per_gene: usize,
    /// None = median library size (scanpy's target_sum=None).
    pub target_sum: Option<f64>,
    pub exclude_highly_expressed: bool,
    pub max_fraction: f64,
    pub log1p: bool,
    /// Base of the log1p (None = e; MaskClass uses 2).
    pub log_base: Option<f64>,
    /// None = HVG selection off (all genes).
    pub hvg_flavor: Option<HvgFlavor>,
    pub n_top_genes: usize,
    /// With cells of several batches (`batch`), select the HVGs in each batch and keep
    /// those most batches select (scanpy's `highly_variable_genes(batch_key=...)`).
    pub hvg_per_batch: bool,
    pub n_bins: usize,
    pub loess_span: f64,
    pub scale: bool,
    pub max_value: Option<f64>,
    /// True when n_top_genes came from a default rather than the user: then data with
    /// fewer genes uses them all instead of failing. Not part of the JSON config.
    #[serde(skip)]
    pub n_top_genes_is_default: bool,
}

impl Default for PreprocessConfig {
    fn default() -> Self {
        PreprocessConfig::recipe(Recipe::Scanpy)
    }
}

impl PreprocessConfig {
    pub fn recipe(r: Recipe) -> Self {
        let base = PreprocessConfig {
            recipe: r,
            ceil_counts: false,
            min_counts_per_cell: 1.0,
            min_genes_per_cell: 0,
            min_counts_per_gene: 1.0,
            min_cells_per_gene: 0,
            target_sum: None,
            exclude_highly_expressed: false,
            max_fraction: 0.05,
            log1p: true,
            log_base: None,
            hvg_flavor: Some(HvgFlavor::Seurat),
            n_top_genes: 2000,
            hvg_per_batch: true,
            n_bins: 20,
            loess_span: 0.3,
            scale: true,
            max_value: None,
            n_top_genes_is_default: true,
        };
        match r {
            Recipe::Dca => PreprocessConfig { ceil_counts: true, n_top_genes: 1000, ..base },
            Recipe::Scanpy | Recipe::Custom => PreprocessConfig { max_value: Some(10.0), ..base },
            Recipe::Scrae => PreprocessConfig {
                min_counts_per_cell: 0.0,
                min_genes_per_cell: 1,
                min_counts_per_gene: 0.0,
                min_cells_per_gene: 10,
                exclude_highly_expressed: true,
                n_top_genes: 720,
                scale: false,
                ..base
            },
            Recipe::Maskclass => PreprocessConfig {
                min_counts_per_gene: 0.0,
                min_cells_per_gene: 3,
                log_base: Some(2.0),
                hvg_flavor: Some(HvgFlavor::Trend),
                n_top_genes: 1000,
                scale: false,
                ..base
            },
            Recipe::Sanity => PreprocessConfig { target_sum: Some(1e4), hvg_flavor: Some(HvgFlavor::Variance), ..base },
        }
    }

    pub fn validate(&self) -> Result<()> {
        let p = "preprocess";
        if self.min_counts_per_cell < 0.0 || !self.min_counts_per_cell.is_finite() {
            return Err(Error::config(&format!("{p}.min_counts_per_cell"), self.min_counts_per_cell, "must be >= 0"));
        }
        if self.min_counts_per_gene < 0.0 || !self.min_counts_per_gene.is_finite() {
            return Err(Error::config(&format!("{p}.min_counts_per_gene"), self.min_counts_per_gene, "must be >= 0"));
        }
        if let Some(t) = self.target_sum {
            if !(t > 0.0 && t.is_finite()) {
                return Err(Error::config(&format!("{p}.target_sum"), t, "must be > 0 (or null for the median library size)"));
            }
        }
        if !(self.max_fraction > 0.0 && self.max_fraction <= 1.0) {
            return Err(Error::config(&format!("{p}.max_fraction"), self.max_fraction, "must be in (0, 1]"));
        }
        if self.hvg_flavor.is_some() && self.n_top_genes == 0 {
            return Err(Error::config(&format!("{p}.n_top_genes"), 0, "must be >= 1"));
        }
        if let Some(b) = self.log_base {
            if !(b > 1.0 && b.is_finite()) {
                return Err(Error::config(&format!("{p}.log_base"), b, "must be > 1 (or null for the natural log)"));
            }
        }
        if self.n_bins == 0 {
            return Err(Error::config(&format!("{p}.n_bins"), 0, "must be >= 1"));
        }
        if !(self.loess_span > 0.0 && self.loess_span <= 1.0) {
            return Err(Error::config(&format!("{p}.loess_span"), self.loess_span, "must be in (0, 1]"));
        }
        if let Some(m) = self.max_value {
            if !(m > 0.0) {
                return Err(Error::config(&format!("{p}.max_value"), m, "must be > 0 (or null for no clipping)"));
            }
        }
        Ok(())
    }
}

/// A prepared matrix: sparse log-normalised values of the selected genes + scaler.
#[derive(Debug, Clone)]
pub struct Prepared<'a> {
    /// cells x selected genes (log-normalised, not scaled).
    pub x: Csr,
    /// Raw counts of the kept cells and selected genes (for count likelihoods): the
    /// input's own matrix, borrowed, when no filter or selection changed it; None when
    /// the run's method does not read them (`prepare` of an owned dataset).
    pub counts: Option<Cow<'a, Csr>>,
    pub cells: Vec<String>,
    pub genes: Vec<String>,
    pub labels: Option<Vec<String>>,
    /// The kept cells' batches, when the input has them.
    pub batches: Option<Vec<String>>,
    /// Per-cell factors from normalize_total (size factors when target is the median).
    pub size_factors: Vec<f32>,
    /// Indices of the kept cells in the input dataset.
    pub cell_index: Vec<usize>,
    pub scaler: Option<Scaler>,
    pub hvg: Option<HvgResult>,
    /// The library size every cell was normalised to (the median when target_sum is None).
    pub target_sum: f64,
    /// The genes library sizes were computed over, when the gene filter removed expressed
    /// genes (empty: every gene of the input).
    pub norm_genes: Vec<String>,
}

impl Prepared<'_> {
    /// The same, owning its counts (a copy when they were borrowed from the input).
    pub fn into_owned(self) -> Prepared<'static> {
        let Prepared { x, counts, cells, genes, labels, batches, size_factors, cell_index, scaler, hvg, target_sum, norm_genes } = self;
        Prepared {
            x,
            counts: counts.map(|c| Cow::Owned(c.into_owned())),
            cells,
            genes,
            labels,
            batches,
            size_factors,
            cell_index,
            scaler,
            hvg,
            target_sum,
            norm_genes,
        }
    }
    /// The raw counts (see `counts`).
    pub fn counts(&self) -> Result<&Csr> {
        self.counts.as_deref().ok_or_else(|| Error::data("the raw counts were not kept for this run (Method::needs_counts)"))
    }
    pub fn n_cells(&self) -> usize {
        self.x.n_rows
    }
    pub fn n_genes(&self) -> usize {
        self.x.n_cols
    }
    /// Dense, scaled rows (a mini-batch, or everything for small data).
    pub fn dense_rows(&self, rows: &[usize]) -> Vec<f32> {
        let mut b = self.x.dense_rows(rows);
        if let Some(s) = &self.scaler {
            s.apply(&mut b);
        }
        b
    }
}

fn no_cell_passes(source: &str) -> Error {
    Error::data(format!("{source}: no cell passes the cell filter"))
}

/// Keep the cells that pass the cell filter; their rows in the input.
fn filter_cells<'a>(x: Cow<'a, Csr>, cfg: &PreprocessConfig, source: &str) -> Result<(Cow<'a, Csr>, Vec<usize>)> {
    let keep = normalize::cells_passing(&x, cfg.min_counts_per_cell, cfg.min_genes_per_cell);
    if keep.is_empty() {
        return Err(no_cell_passes(source));
    }
    if keep.len() < x.n_rows {
        let x = match x {
            Cow::Owned(mut x) => {
                x.retain_rows(&keep);
                x
            }
            Cow::Borrowed(x) => x.select_rows(&keep),
        };
        return Ok((Cow::Owned(x), keep));
    }
    Ok((x, keep))
}

/// Round up non-integer counts (the DCA recipe); integer data is left borrowed.
fn ceil_if_fractional(x: &mut Cow<'_, Csr>) {
    if x.data.iter().any(|v| v.fract() != 0.0) {
        normalize::ceil_counts(x.to_mut());
    }
}

/// Run the configured preprocessing on a validated dataset (on `device::set_threads`'
/// thread count; the result does not depend on it). Given `&Dataset`, the dataset is left
/// as it was and the raw counts are always at hand; given a `Dataset` (which it may
/// consume), its matrix is normalised in place and, unless `keep_counts`, the raw counts
/// are not kept (`Prepared::counts` is then an error), so that the run holds one matrix
/// of the input's size instead of two.
pub fn prepare<'a>(cells: impl Into<Cells<'a>>, cfg: &PreprocessConfig, keep_counts: bool) -> Result<Prepared<'a>> {
    match cells.into().0 {
        Cow::Borrowed(ds) => crate::device::with_threads(|| prepare_in_pool(Cow::Borrowed(&ds.x), &Names::of(ds), cfg, true)),
        Cow::Owned(ds) => {
            let Dataset { x, cells, genes, labels, batches, source } = ds;
            let names = Names { cells: &cells, genes: &genes, labels: labels.as_deref(), batches: batches.as_deref(), source: &source };
            crate::device::with_threads(|| prepare_in_pool(Cow::Owned(x), &names, cfg, keep_counts))
        }
    }
}

/// Where each member of a consensus reads its cells from, with its own recipe: a dataset
/// in memory, or a file read again for each member (`io::MemberReads`), so that no
/// member's matrix outlives its member.
pub trait Source<'a> {
    /// The input prepared with `cfg` (the raw counts kept when `keep_counts`).
    fn prepare(&mut self, cfg: &PreprocessConfig, keep_counts: bool) -> Result<Sourced<'a>>;
}

/// What a [`Source`] gives a member.
pub struct Sourced<'a> {
    pub prep: Prepared<'a>,
    /// The input's number of genes (before filters and selection).
    pub n_genes: usize,
    /// What the reader has to say (genes renamed, blocks read).
    pub notes: Vec<String>,
}

impl<'a> Source<'a> for &'a Dataset {
    fn prepare(&mut self, cfg: &PreprocessConfig, _keep_counts: bool) -> Result<Sourced<'a>> {
        Ok(Sourced { prep: prepare(*self, cfg, true)?, n_genes: self.n_genes(), notes: Vec::new() })
    }
}

/// What `prepare` reads of a dataset besides its matrix.
pub struct Names<'n> {
    pub cells: &'n [String],
    pub genes: &'n [String],
    pub labels: Option<&'n [String]>,
    pub batches: Option<&'n [String]>,
    pub source: &'n str,
}

impl<'n> Names<'n> {
    fn of(ds: &'n Dataset) -> Names<'n> {
        Names { cells: &ds.cells, genes: &ds.genes, labels: ds.labels.as_deref(), batches: ds.batches.as_deref(), source: &ds.source }
    }
}

/// The checks of the options against the data before any work.
fn check_options(cfg: &PreprocessConfig, ds: &Names) -> Result<()> {
    cfg.validate()?;
    let n_genes = ds.genes.len();
    if cfg.hvg_flavor.is_some() && cfg.n_top_genes > n_genes && !cfg.n_top_genes_is_default {
        return Err(Error::config(
            "preprocess.n_top_genes",
            cfg.n_top_genes,
            format!("{} has only {} genes; ask for at most {} highly variable genes (--n-top-genes) or turn selection off (preprocess.hvg_flavor = null)", ds.source, n_genes, n_genes),
        ));
    }
    Ok(())
}

/// The genes that pass the gene filter, or an error when none does.
fn kept_genes(cfg: &PreprocessConfig, ds: &Names, nnz: &[usize], sums: &[f64]) -> Result<Vec<usize>> {
    let keep = normalize::genes_passing_counts(nnz, sums, cfg.min_counts_per_gene, cfg.min_cells_per_gene);
    if keep.is_empty() {
        return Err(Error::data(format!(
            "{}: no gene has >= {} counts in >= {} cells",
            ds.source, cfg.min_counts_per_gene, cfg.min_cells_per_gene
        )));
    }
    Ok(keep)
}

/// `Prepared::norm_genes`: the kept genes' names when the gene filter drops expressed genes
/// (library sizes then depend on it, and a saved model repeats them on new data).
fn norm_genes(cfg: &PreprocessConfig, ds: &Names, genes_keep: &[usize]) -> Vec<String> {
    let drops_expressed = cfg.min_cells_per_gene > 1 || cfg.min_counts_per_gene > 1.0;
    if drops_expressed {
        genes_keep.iter().map(|&j| ds.genes[j].clone()).collect()
    } else {
        Vec::new()
    }
}

/// Whether seurat_v3 selection, which ranks the counts, runs on `n_genes` kept genes.
fn hvg_on_counts(cfg: &PreprocessConfig, n_genes: usize) -> bool {
    cfg.hvg_flavor == Some(HvgFlavor::SeuratV3) && cfg.n_top_genes < n_genes
}

/// Logs in `base` rescaled to natural logs (as scanpy does before 'seurat' undoes them).
fn to_natural_log(vals: &mut [f32], base: Option<f64>) {
    if let Some(b) = base {
        let f = (b as f32).ln();
        vals.iter_mut().for_each(|v| *v *= f);
    }
}

/// The kept cells' batch codes when the HVGs are selected per batch: `hvg_per_batch` and
/// two or more batches among them.
fn batch_codes(cfg: &PreprocessConfig, batches: Option<&[String]>, cells_keep: &[usize]) -> Option<Vec<usize>> {
    let b = batches.filter(|_| cfg.hvg_per_batch)?;
    let mut names: Vec<&str> = cells_keep.iter().map(|&i| b[i].as_str()).collect();
    names.sort_unstable();
    names.dedup();
    (names.len() > 1).then(|| cells_keep.iter().map(|&i| names.binary_search(&b[i].as_str()).unwrap_or(0)).collect())
}

fn prepare_in_pool<'a>(input: Cow<'a, Csr>, ds: &Names, cfg: &PreprocessConfig, keep_counts: bool) -> Result<Prepared<'a>> {
    check_options(cfg, ds)?;
    let n_genes = ds.genes.len();
    // Filter genes first, then cells (the DCA recipe's order), remembering cell indices.
    let (nnz, sums) = input.col_nnz_and_sums();
    let genes_keep = kept_genes(cfg, ds, &nnz, &sums)?;
    // The counts stay borrowed from the input until a filter or ceil changes them.
    let mut counts = match input {
        x if genes_keep.len() == n_genes => x,
        Cow::Owned(mut x) => {
            x.retain_cols(&genes_keep);
            Cow::Owned(x)
        }
        Cow::Borrowed(x) => Cow::Owned(x.select_cols(&genes_keep)),
    };
    if cfg.ceil_counts {
        ceil_if_fractional(&mut counts);
    }
    let norm_genes = norm_genes(cfg, ds, &genes_keep);
    let (counts, cells_keep) = filter_cells(counts, cfg, ds.source)?;
    // seurat_v3 ranks genes on the counts: they are kept until the genes are selected.
    let (mut x, mut counts) = if keep_counts || hvg_on_counts(cfg, counts.n_cols) {
        (counts.as_ref().clone(), Some(counts))
    } else {
        (counts.into_owned(), None)
    };
    let (size_factors, target_sum) = normalize::normalize_total(&mut x, cfg.target_sum, cfg.exclude_highly_expressed, cfg.max_fraction);
    if cfg.log1p {
        normalize::log1p(&mut x, cfg.log_base);
    }
    let mut genes: Vec<String> = genes_keep.iter().map(|&j| ds.genes[j].clone()).collect();
    let mut hvg = None;
    if let Some(fl) = cfg.hvg_flavor.filter(|_| cfg.n_top_genes < x.n_cols) {
        // 'seurat' undoes the log with expm1: scanpy first rescales other bases to e
        let natural;
        let src = match (fl, cfg.log_base, &counts) {
            (HvgFlavor::SeuratV3, _, Some(c)) => c.as_ref(),
            (HvgFlavor::Seurat, Some(_), _) if cfg.log1p => {
                let mut m = x.clone();
                to_natural_log(&mut m.data, cfg.log_base);
                natural = m;
                &natural
            }
            _ => &x,
        };
        let r = match batch_codes(cfg, ds.batches, &cells_keep) {
            Some(codes) => hvg::highly_variable_genes_batched(src, &codes, &genes, fl, cfg.n_top_genes, cfg.n_bins, cfg.loess_span)?,
            None => highly_variable_genes(src, fl, cfg.n_top_genes, cfg.n_bins, cfg.loess_span)?,
        };
        let sel = r.selected();
        genes = sel.iter().map(|&j| genes[j].clone()).collect();
        x = x.select_cols(&sel);
        counts = if keep_counts { counts.map(|c| Cow::Owned(c.select_cols(&sel))) } else { None };
        hvg = Some(r);
    }
    let scaler = if cfg.scale { Some(Scaler::fit(&x, true, cfg.max_value)) } else { None };
    Ok(Prepared {
        cells: cells_keep.iter().map(|&i| ds.cells[i].clone()).collect(),
        labels: ds.labels.map(|l| cells_keep.iter().map(|&i| l[i].clone()).collect()),
        batches: ds.batches.map(|b| cells_keep.iter().map(|&i| b[i].clone()).collect()),
        x,
        counts,
        genes,
        size_factors,
        cell_index: cells_keep,
        scaler,
        hvg,
        target_sum,
        norm_genes,
    })
}

/// What a trained model needs to prepare new data exactly as its training data:
/// the options, the library size cells were normalised to, the genes and their scaler.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SavedPreprocess {
    pub config: PreprocessConfig,
    pub target_sum: f64,
    pub genes: Vec<String>,
    pub scaler: Option<Scaler>,
    /// `Prepared::norm_genes` (absent in models saved before it existed: every gene).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub norm_genes: Vec<String>,
}

impl SavedPreprocess {
    /// Prepare new data for a trained model: same cell filter, normalisation to the
    /// training library size, log1p, the model's genes in the model's order (genes the
    /// data lacks are zero columns; their count is returned) and the training scaler.
    pub fn apply(&self, ds: &Dataset) -> Result<(Prepared<'static>, usize)> {
        crate::device::with_threads(|| prepare_with_in_pool(ds, self))
    }

    pub fn from_prepared(p: &Prepared, cfg: &PreprocessConfig) -> SavedPreprocess {
        SavedPreprocess {
            config: cfg.clone(),
            target_sum: p.target_sum,
            genes: p.genes.clone(),
            scaler: p.scaler.clone(),
            norm_genes: p.norm_genes.clone(),
        }
    }
}

fn prepare_with_in_pool(ds: &Dataset, saved: &SavedPreprocess) -> Result<(Prepared<'static>, usize)> {
    let cfg = &saved.config;
    // Library sizes over the training data's filtered genes (see Prepared::norm_genes).
    let (mut x, data_genes) = if saved.norm_genes.is_empty() {
        (ds.x.clone(), ds.genes.clone())
    } else {
        let keep: std::collections::HashSet<&str> = saved.norm_genes.iter().map(|g| g.as_str()).collect();
        let cols: Vec<usize> = (0..ds.n_genes()).filter(|&j| keep.contains(ds.genes[j].as_str())).collect();
        (ds.x.select_cols(&cols), cols.iter().map(|&j| ds.genes[j].clone()).collect::<Vec<_>>())
    };
    if cfg.ceil_counts {
        normalize::ceil_counts(&mut x);
    }
    let index: std::collections::HashMap<&str, usize> = data_genes.iter().enumerate().map(|(j, g)| (g.as_str(), j)).collect();
    let cols: Vec<Option<usize>> = saved.genes.iter().map(|g| index.get(g.as_str()).copied()).collect();
    let missing = cols.iter().filter(|c| c.is_none()).count();
    if missing == saved.genes.len() {
        return Err(Error::data(format!(
            "{}: none of the model's {} genes are in the data (model genes start {:?}; data genes start {:?})",
            ds.source,
            saved.genes.len(),
            &saved.genes[..saved.genes.len().min(3)],
            &ds.genes[..ds.genes.len().min(3)]
        )));
    }
    let (filtered, cells_keep) = filter_cells(Cow::Owned(x), cfg, &ds.source)?;
    let mut x = filtered.into_owned();
    let counts_all = x.clone();
    let (size_factors, _) = normalize::normalize_total(&mut x, Some(saved.target_sum), cfg.exclude_highly_expressed, cfg.max_fraction);
    if cfg.log1p {
        normalize::log1p(&mut x, cfg.log_base);
    }
    let present: Vec<usize> = cols.iter().flatten().copied().collect();
    // Map the present columns to their positions among the model's genes.
    let positions: Vec<u32> = cols.iter().enumerate().filter_map(|(k, c)| c.map(|_| k as u32)).collect();
    let place = |m: &Csr| {
        let mut sel = m.select_cols(&present);
        sel.indices.iter_mut().for_each(|j| *j = positions[*j as usize]);
        sel.n_cols = saved.genes.len();
        sel
    };
    Ok((
        Prepared {
            cells: cells_keep.iter().map(|&i| ds.cells[i].clone()).collect(),
            labels: ds.labels.as_ref().map(|l| cells_keep.iter().map(|&i| l[i].clone()).collect()),
            batches: ds.batches.as_ref().map(|b| cells_keep.iter().map(|&i| b[i].clone()).collect()),
            x: place(&x),
            counts: Some(Cow::Owned(place(&counts_all))),
            genes: saved.genes.clone(),
            size_factors,
            cell_index: cells_keep,
            scaler: saved.scaler.clone(),
            hvg: None,
            target_sum: saved.target_sum,
            norm_genes: saved.norm_genes.clone(),
        },
        missing,
    ))
}
