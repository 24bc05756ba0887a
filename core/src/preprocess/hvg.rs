//! Highly variable genes with scanpy's flavours: 'seurat', 'cell_ranger', 'seurat_v3',
//! plus plain 'variance' (top variance of the current values, the CATALOG's sanity recipe).

use crate::error::{Error, Result};
use crate::matrix::Csr;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HvgFlavor {
    Seurat,
    CellRanger,
    SeuratV3,
    Variance,
    /// scran-like (modelGeneVar's idea; MaskClass's substitute, specs §5): a loess trend
    /// of the variance against the mean of the log values, genes ranked by the residual
    /// (biological) variance.
    Trend,
}

impl HvgFlavor {
    pub fn name(self) -> &'static str {
        match self {
            HvgFlavor::Seurat => "seurat",
            HvgFlavor::CellRanger => "cell_ranger",
            HvgFlavor::SeuratV3 => "seurat_v3",
            HvgFlavor::Variance => "variance",
            HvgFlavor::Trend => "trend",
        }
    }
}

pub use super::hvg_result::HvgResult;

/// Per-gene mean and unbiased variance (ddof 1) in f64, optionally of expm1(x): one
/// pass of sums and sums of squares, as scanpy's `_get_mean_var` (mean of squares less
/// the squared mean, in float64).
pub fn mean_var(x: &Csr, expm1: bool) -> (Vec<f64>, Vec<f64>) {
    let (s, sq) = x.col_sums_and_squares(expm1);
    mean_var_of_sums(x.n_rows, &s, &sq)
}

/// `mean_var` from the column sums and sums of squares of `rows` rows.
pub fn mean_var_of_sums(rows: usize, s: &[f64], sq: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let n = rows as f64;
    let mean: Vec<f64> = s.iter().map(|v| v / n).collect();
    let var = mean.iter().zip(sq).map(|(m, q)| if rows > 1 { ((q / n - m * m) * n / (n - 1.0)).max(0.0) } else { 0.0 }).collect();
    (mean, var)
}

/// pandas `cut(values, bins=n)` for equal-width bins: bin index per value.
fn equal_width_bins(values: &[f64], n_bins: usize) -> Vec<usize> {
    let mn = values.iter().cloned().fold(f64::INFINITY, f64::min);
    let mx = values.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let mut edges: Vec<f64>;
    if mn == mx {
        // pandas widens a degenerate range by 0.1 % on each side
        let (lo, hi) = if mn != 0.0 { (mn - 0.001 * mn.abs(), mx + 0.001 * mx.abs()) } else { (-0.001, 0.001) };
        let step = (hi - lo) / n_bins as f64;
        edges = (0..=n_bins).map(|i| i as f64 * step + lo).collect();
        edges[n_bins] = hi;
    } else {
        // numpy.linspace(mn, mx, n+1): i*step + start, last = stop; then lower the first edge.
        let step = (mx - mn) / n_bins as f64;
        edges = (0..=n_bins).map(|i| i as f64 * step + mn).collect();
        edges[n_bins] = mx;
        edges[0] -= (mx - mn) * 0.001;
    }
    values.iter().map(|&v| right_closed_bin(&edges, v)).collect()
}

/// Index i with edges[i] < v <= edges[i+1] (pandas right-closed intervals).
fn right_closed_bin(edges: &[f64], v: f64) -> usize {
    let k = edges.partition_point(|&e| e < v); // number of edges < v
    k.saturating_sub(1).min(edges.len() - 2)
}

/// numpy.percentile with linear interpolation.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    if n == 1 {
        return sorted[0];
    }
    let pos = q / 100.0 * (n - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(n - 1);
    let frac = pos - lo as f64;
    // numpy's _lerp: a + (b-a)*t, with the t >= 0.5 branch b - (b-a)*(1-t)
    let (a, b) = (sorted[lo], sorted[hi]);
    let d = b - a;
    if frac >= 0.5 {
        b - d * (1.0 - frac)
    } else {
        a + d * frac
    }
}

fn median_of(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Normalised dispersions per bin: seurat (mean/std, ddof 1) or cell_ranger (median/MAD).
fn normalise_in_bins(disp: &[f64], bins: &[usize], n_bins: usize, flavor: HvgFlavor) -> Vec<f64> {
    let mut groups: Vec<Vec<f64>> = vec![Vec::new(); n_bins];
    let mut members = vec![0usize; n_bins];
    for (g, &b) in bins.iter().enumerate() {
        members[b] += 1;
        if !disp[g].is_nan() {
            groups[b].push(disp[g]); // pandas skips NaN in mean/std/median
        }
    }
    let mut avg = vec![f64::NAN; n_bins];
    let mut dev = vec![f64::NAN; n_bins];
    for b in 0..n_bins {
        let v = &mut groups[b];
        let n = v.len();
        match flavor {
            HvgFlavor::Seurat => {
                if n > 0 {
                    avg[b] = v.iter().sum::<f64>() / n as f64;
                }
                if n > 1 {
                    let m = avg[b];
                    dev[b] = (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1) as f64).sqrt();
                }
                // scanpy: a bin whose std is NaN (one gene) gets std := mean and mean := 0,
                // so its genes score 1 (or NaN when the bin's mean is NaN too).
                if dev[b].is_nan() && members[b] > 0 {
                    dev[b] = avg[b];
                    avg[b] = 0.0;
                }
            }
            _ => {
                if n > 0 {
                    let med = median_of(v);
                    let mut ad: Vec<f64> = v.iter().map(|x| (x - med).abs()).collect();
                    avg[b] = med;
                    // statsmodels.robust.mad: median(|x - median|) / Phi^-1(3/4)
                    dev[b] = median_of(&mut ad) / 0.6744897501960817;
                }
            }
        }
    }
    disp.iter().zip(bins).map(|(&d, &b)| (d - avg[b]) / dev[b]).collect()
}

/// Genes whose value is >= the n-th largest non-NaN value (scanpy 1.10+: NaN counts as -inf;
/// scanpy 1.9 mapped NaN to 0, which only matters when fewer than n values are finite).
/// Ties at the cut-off select slightly more than n genes, as in scanpy.
fn top_n_mask(values: &[f64], n: usize) -> Vec<bool> {
    let mut v: Vec<f64> = values.iter().cloned().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return vec![false; values.len()];
    }
    v.sort_by(|a, b| b.total_cmp(a));
    let cut = v[n.min(v.len()) - 1];
    values.iter().map(|&x| !x.is_nan() && x >= cut).collect()
}

/// scanpy `highly_variable_genes(flavor=..., n_top_genes=n)` on one batch.
/// `x` is log1p data for seurat/cell_ranger and raw counts for seurat_v3.
pub fn highly_variable_genes(x: &Csr, flavor: HvgFlavor, n_top: usize, n_bins: usize, span: f64) -> Result<HvgResult> {
    let (mean, var) = mean_var(x, flavor == HvgFlavor::Seurat);
    select_from_moments(flavor, x.n_rows, mean, var, n_top, n_bins, span, |clip, s, sq| {
        super::seurat_v3::add_clipped(&x.indices, &x.data, clip, s, sq);
        Ok(())
    })
}

/// `highly_variable_genes` from the per-gene mean and variance of the values it ranks
/// (`mean_var(x, flavor == Seurat)` over `rows` cells); seurat_v3 also needs the sums of
/// clipped counts, which `clipped(clip, sums, squares)` adds up (`seurat_v3::add_clipped`
/// over every value of the counts, in row order).
#[allow(clippy::too_many_arguments)] // the options of highly_variable_genes, plus the pass
pub fn select_from_moments(
    flavor: HvgFlavor,
    rows: usize,
    mean: Vec<f64>,
    var: Vec<f64>,
    n_top: usize,
    n_bins: usize,
    span: f64,
    clipped: impl FnOnce(&[f64], &mut [f64], &mut [f64]) -> Result<()>,
) -> Result<HvgResult> {
    if n_top == 0 {
        return Err(Error::config("preprocess.n_top_genes", 0, "must be >= 1"));
    }
    let n_top = n_top.min(mean.len());
    match flavor {
        HvgFlavor::Seurat | HvgFlavor::CellRanger => {
            let seurat = flavor == HvgFlavor::Seurat;
            let mut mean = mean;
            for m in &mut mean {
                if *m == 0.0 {
                    *m = 1e-12;
                }
            }
            let mut disp: Vec<f64> = mean.iter().zip(&var).map(|(m, v)| v / m).collect();
            if seurat {
                for d in &mut disp {
                    *d = if *d == 0.0 { f64::NAN } else { d.ln() };
                }
                for m in &mut mean {
                    *m = m.ln_1p();
                }
            }
            let (bins, nb) = if seurat {
                (equal_width_bins(&mean, n_bins), n_bins)
            } else {
                let mut s = mean.clone();
                s.sort_by(|a, b| a.total_cmp(b));
                let mut edges = vec![f64::NEG_INFINITY];
                for q in (10..=100).step_by(5) {
                    edges.push(percentile(&s, q as f64));
                }
                edges.push(f64::INFINITY);
                if edges.windows(2).any(|w| w[0] == w[1]) {
                    return Err(Error::data(
                        "cell_ranger HVG: mean-expression percentiles coincide (too many genes with equal means); filter unexpressed genes or use flavor 'seurat'",
                    ));
                }
                (mean.iter().map(|&m| right_closed_bin(&edges, m)).collect(), edges.len() - 1)
            };
            let norm = normalise_in_bins(&disp, &bins, nb, flavor);
            let hv = top_n_mask(&norm, n_top);
            Ok(HvgResult { means: mean, dispersions: disp, dispersions_norm: norm, highly_variable: hv })
        }
        HvgFlavor::SeuratV3 => super::seurat_v3::hvg_seurat_v3(rows, mean, var, n_top, span, clipped),
        HvgFlavor::Trend => {
            let keep: Vec<usize> = (0..var.len()).filter(|&j| var[j] > 0.0).collect();
            let fit = super::seurat_v3::loess_fit(
                &keep.iter().map(|&j| mean[j]).collect::<Vec<_>>(),
                &keep.iter().map(|&j| var[j]).collect::<Vec<_>>(),
                span,
            );
            let mut resid = vec![f64::NEG_INFINITY; var.len()];
            for (k, &j) in keep.iter().enumerate() {
                resid[j] = var[j] - fit[k];
            }
            let mut order: Vec<usize> = (0..var.len()).collect();
            order.sort_by(|&a, &b| resid[b].partial_cmp(&resid[a]).unwrap_or(std::cmp::Ordering::Equal));
            let mut hv = vec![false; var.len()];
            for &j in order.iter().take(n_top) {
                hv[j] = true;
            }
            Ok(HvgResult { means: mean, dispersions: var, dispersions_norm: resid, highly_variable: hv })
        }
        HvgFlavor::Variance => {
            // Strict top-n by variance, ties broken by gene order (stable).
            let mut order: Vec<usize> = (0..var.len()).collect();
            order.sort_by(|&a, &b| var[b].total_cmp(&var[a]));
            let mut hv = vec![false; var.len()];
            for &j in order.iter().take(n_top) {
                hv[j] = true;
            }
            Ok(HvgResult { means: mean, dispersions: var.clone(), dispersions_norm: var, highly_variable: hv })
        }
    }
}

/// scanpy's `highly_variable_genes(..., batch_key=...)` with `n_top_genes`: the selection
/// runs in each batch (`batch[i]`: cell i's code, 0..n_batches) and the batches vote.
/// 'seurat' / 'cell_ranger' (`x` log values): each batch ranks only the genes it expresses
/// (the others count as 0), the per-batch means, dispersions and normalised dispersions
/// are averaged (NaN skipped), and the genes selected in the most batches are kept, ties
/// broken by the mean normalised dispersion, then by gene name (`genes`; pandas' group
/// order). 'seurat_v3' (`x` counts): each batch's normalised variances are ranked; genes
/// are kept by their median rank among the batches where they are in the top `n_top`,
/// then by the number of such batches. Other flavours rank the pooled cells.
pub fn highly_variable_genes_batched(
    x: &Csr,
    batch: &[usize],
    genes: &[String],
    flavor: HvgFlavor,
    n_top: usize,
    n_bins: usize,
    span: f64,
) -> Result<HvgResult> {
    let n_batches = batch.iter().max().map_or(0, |&b| b + 1);
    if batch.len() != x.n_rows || genes.len() != x.n_cols {
        return Err(Error::data(format!(
            "HVG per batch: {} batch codes and {} genes for {} x {}",
            batch.len(),
            genes.len(),
            x.n_rows,
            x.n_cols
        )));
    }
    if n_top == 0 {
        return Err(Error::config("preprocess.n_top_genes", 0, "must be >= 1"));
    }
    let rows_of = |b: usize| -> Vec<usize> { (0..batch.len()).filter(|&i| batch[i] == b).collect() };
    let g = x.n_cols;
    match flavor {
        HvgFlavor::Seurat | HvgFlavor::CellRanger => {
            let (mut means, mut disp, mut norm) = (vec![0f64; g], Mean::new(g), Mean::new(g));
            let mut votes = vec![0usize; g];
            for b in 0..n_batches {
                let xb = x.select_rows(&rows_of(b));
                let mut expressed = vec![false; g];
                for (&j, &v) in xb.indices.iter().zip(&xb.data) {
                    expressed[j as usize] |= v > 0.0;
                }
                let cols: Vec<usize> = (0..g).filter(|&j| expressed[j]).collect();
                let r = highly_variable_genes(&xb.select_cols(&cols), flavor, n_top, n_bins, span)?;
                for j in (0..g).filter(|&j| !expressed[j]) {
                    disp.add(j, 0.0);
                    norm.add(j, 0.0);
                }
                for (k, &j) in cols.iter().enumerate() {
                    means[j] += r.means[k];
                    disp.add(j, r.dispersions[k]);
                    norm.add(j, r.dispersions_norm[k]);
                    votes[j] += r.highly_variable[k] as usize;
                }
            }
            means.iter_mut().for_each(|m| *m /= n_batches as f64);
            let norm = norm.values();
            let mut order: Vec<usize> = (0..g).collect();
            order.sort_by(|&a, &b| genes[a].cmp(&genes[b]));
            order.sort_by(|&a, &b| votes[b].cmp(&votes[a]).then_with(|| descending_nan_last(norm[a], norm[b])));
            let mut hv = vec![false; g];
            order.iter().take(n_top).for_each(|&j| hv[j] = true);
            Ok(HvgResult { means, dispersions: disp.values(), dispersions_norm: norm, highly_variable: hv })
        }
        HvgFlavor::SeuratV3 => {
            let mut norm = Mean::new(g);
            let mut ranks: Vec<Vec<f64>> = vec![Vec::new(); g];
            for b in 0..n_batches {
                let r = highly_variable_genes(&x.select_rows(&rows_of(b)), flavor, n_top, n_bins, span)?;
                let mut order: Vec<usize> = (0..g).collect();
                order.sort_by(|&a, &b| r.dispersions_norm[b].total_cmp(&r.dispersions_norm[a]));
                for (rank, &j) in order.iter().enumerate().take(n_top) {
                    ranks[j].push(rank as f64);
                }
                for j in 0..g {
                    norm.add(j, r.dispersions_norm[j]);
                }
            }
            let votes: Vec<usize> = ranks.iter().map(Vec::len).collect();
            let median: Vec<f64> = ranks.iter_mut().map(|r| if r.is_empty() { f64::NAN } else { median_of(r) }).collect();
            let mut order: Vec<usize> = (0..g).collect();
            order.sort_by(|&a, &b| ascending_nan_last(median[a], median[b]).then_with(|| votes[b].cmp(&votes[a])));
            let mut hv = vec![false; g];
            order.iter().take(n_top).for_each(|&j| hv[j] = true);
            let (means, vars) = mean_var(x, false);
            Ok(HvgResult { means, dispersions: vars, dispersions_norm: norm.values(), highly_variable: hv })
        }
        _ => highly_variable_genes(x, flavor, n_top, n_bins, span),
    }
}

/// A per-gene mean of values that skips NaN (pandas' `mean`).
struct Mean {
    sum: Vec<f64>,
    n: Vec<usize>,
}

impl Mean {
    fn new(g: usize) -> Mean {
        Mean { sum: vec![0.0; g], n: vec![0; g] }
    }
    fn add(&mut self, j: usize, v: f64) {
        if !v.is_nan() {
            self.sum[j] += v;
            self.n[j] += 1;
        }
    }
    fn values(&self) -> Vec<f64> {
        self.sum.iter().zip(&self.n).map(|(s, &n)| if n > 0 { s / n as f64 } else { f64::NAN }).collect()
    }
}

fn descending_nan_last(a: f64, b: f64) -> std::cmp::Ordering {
    match (a.is_nan(), b.is_nan()) {
        (false, false) => b.total_cmp(&a),
        (x, y) => x.cmp(&y),
    }
}

fn ascending_nan_last(a: f64, b: f64) -> std::cmp::Ordering {
    match (a.is_nan(), b.is_nan()) {
        (false, false) => a.total_cmp(&b),
        (x, y) => x.cmp(&y),
    }
}
