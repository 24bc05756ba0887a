//! Filtering, normalize_total and log1p with scanpy's semantics and float32 arithmetic.

use crate::error::{Error, Result};
use crate::matrix::{Csr, Dataset};
use rayon::prelude::*;

/// Indices of cells that pass `min_counts` and `min_genes` (scanpy `filter_cells`).
pub fn cells_passing(x: &Csr, min_counts: f64, min_genes: usize) -> Vec<usize> {
    (0..x.n_rows).into_par_iter().filter(|&i| cell_passes(x.row(i).1, min_counts, min_genes)).collect()
}

/// Whether a cell with these values passes `min_counts` and `min_genes`.
pub fn cell_passes(v: &[f32], min_counts: f64, min_genes: usize) -> bool {
    let genes = v.iter().filter(|&&a| a != 0.0).count();
    row_total(v) >= min_counts && genes >= min_genes
}

/// A cell's total count, summed in f64 in column order.
pub fn row_total(v: &[f32]) -> f64 {
    v.iter().map(|&a| a as f64).sum()
}

/// Indices of genes that pass `min_counts` and `min_cells` (scanpy `filter_genes`).
pub fn genes_passing(x: &Csr, min_counts: f64, min_cells: usize) -> Vec<usize> {
    let (nnz, sums) = x.col_nnz_and_sums();
    genes_passing_counts(&nnz, &sums, min_counts, min_cells)
}

/// `genes_passing` from each gene's number of non-zero cells and total count.
pub fn genes_passing_counts(nnz: &[usize], sums: &[f64], min_counts: f64, min_cells: usize) -> Vec<usize> {
    (0..nnz.len()).filter(|&j| sums[j] >= min_counts && nnz[j] >= min_cells).collect()
}

/// Apply a filter, failing with a clear message if nothing is left.
pub fn filter(ds: &Dataset, min_counts_cell: f64, min_genes: usize, min_counts_gene: f64, min_cells: usize) -> Result<Dataset> {
    let genes = genes_passing(&ds.x, min_counts_gene, min_cells);
    if genes.is_empty() {
        return Err(Error::data(format!(
            "{}: no gene passes the filter (min_counts_per_gene={min_counts_gene}, min_cells_per_gene={min_cells})",
            ds.source
        )));
    }
    let ds = if genes.len() < ds.n_genes() { ds.select_genes(&genes) } else { ds.clone() };
    let cells = cells_passing(&ds.x, min_counts_cell, min_genes);
    if cells.is_empty() {
        return Err(Error::data(format!(
            "{}: no cell passes the filter (min_counts_per_cell={min_counts_cell}, min_genes_per_cell={min_genes})",
            ds.source
        )));
    }
    Ok(if cells.len() < ds.n_cells() { ds.select_cells(&cells) } else { ds })
}

/// Median as numpy computes it on a float32 array (mean of the two middle values in f32).
pub fn median_f32(v: &[f32]) -> f32 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    if n == 0 {
        return f32::NAN;
    }
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// scanpy `normalize_total` on CSR (in place). Returns the per-cell factors
/// (counts / target_sum), i.e. the size factors when target_sum is the median, and the
/// target sum used.
#[allow(clippy::needless_range_loop)] // parallel arrays indexed by one loop variable
pub fn normalize_total(x: &mut Csr, target_sum: Option<f64>, exclude_highly_expressed: bool, max_fraction: f64) -> (Vec<f32>, f64) {
    let mut counts: Vec<f32> = (0..x.n_rows).into_par_iter().map(|i| row_total(x.row(i).1) as f32).collect();
    if exclude_highly_expressed {
        let mut hi = vec![false; x.n_cols];
        for i in 0..x.n_rows {
            let lim = max_fraction as f32 * counts[i];
            let (idx, val) = x.row(i);
            for (&j, &v) in idx.iter().zip(val) {
                if v > lim {
                    hi[j as usize] = true;
                }
            }
        }
        for i in 0..x.n_rows {
            let (idx, val) = x.row(i);
            counts[i] = idx.iter().zip(val).filter(|(&j, _)| !hi[j as usize]).map(|(_, &v)| v as f64).sum::<f64>() as f32;
        }
    }
    let (factors, target) = size_factors(&counts, target_sum);
    x.map_rows_mut(|i, vals| divide_row(vals, factors[i]));
    (factors, target)
}

/// Per-cell factors (counts / target) for cells with these library sizes, and the target:
/// `target_sum`, or the median library size. scanpy's CSR path takes the median over all
/// cells (ours are filtered first).
pub fn size_factors(counts: &[f32], target_sum: Option<f64>) -> (Vec<f32>, f64) {
    let target = target_sum.map(|t| t as f32).unwrap_or_else(|| median_f32(counts));
    (counts.iter().map(|&c| c / target).collect(), target as f64)
}

/// A cell's values divided by its size factor (an empty cell stays zero).
pub fn divide_row(vals: &mut [f32], f: f32) {
    if f != 0.0 {
        vals.iter_mut().for_each(|v| *v /= f);
    }
}

/// Natural log1p in place (scanpy `log1p`, base None), or with another base.
pub fn log1p(x: &mut Csr, base: Option<f64>) {
    let div = base.map(|b| (b as f32).ln());
    x.data.par_chunks_mut(1 << 16).for_each(|c| {
        crate::fastmath::log1p_slice(c);
        if let Some(d) = div {
            c.iter_mut().for_each(|v| *v /= d);
        }
    });
}

/// Round counts up to integers (the DCA recipe's first step).
pub fn ceil_counts(x: &mut Csr) {
    for v in &mut x.data {
        *v = v.ceil();
    }
}
