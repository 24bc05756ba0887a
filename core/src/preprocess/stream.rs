//! `prepare` on a matrix read in blocks of rows (an .h5ad too wide to hold whole): the
//! per-gene and per-cell statistics are gathered in passes over the blocks, and only the
//! kept cells' values of the selected genes are ever held. The result is the `Prepared`
//! that `prepare` gives on the whole matrix, value for value (tests/preprocess_stream.rs).
//!
//! Passes: (1) per-gene counts (the gene filter) and the values' checks; (2) per-cell
//! totals over the kept genes (the cell filter and library sizes; the counts' moments for
//! seurat_v3); (3) the moments HVG selection ranks (the clipped counts for seurat_v3);
//! (4) the kept cells and selected genes, normalised.

use super::{check_options, hvg, kept_genes, no_cell_passes, norm_genes, normalize, HvgFlavor, Names, Prepared, PreprocessConfig, Scaler};
use crate::error::{Error, Result};
use crate::matrix::{ColMoments, Csr};
use std::borrow::Cow;

/// A cells x genes matrix visited in consecutive blocks of rows, as often as needed.
pub trait RowBlocks {
    fn n_rows(&self) -> usize;
    fn n_cols(&self) -> usize;
    /// `f(first_row, block)` for blocks that cover rows 0..n_rows in order.
    fn for_each_block(&mut self, f: &mut dyn FnMut(usize, &Csr) -> Result<()>) -> Result<()>;
}

/// An in-memory matrix visited `rows` rows at a time.
pub struct InMemoryRows<'a> {
    pub x: &'a Csr,
    pub rows: usize,
}

impl RowBlocks for InMemoryRows<'_> {
    fn n_rows(&self) -> usize {
        self.x.n_rows
    }
    fn n_cols(&self) -> usize {
        self.x.n_cols
    }
    fn for_each_block(&mut self, f: &mut dyn FnMut(usize, &Csr) -> Result<()>) -> Result<()> {
        for r0 in (0..self.x.n_rows).step_by(self.rows.max(1)) {
            let r1 = (r0 + self.rows.max(1)).min(self.x.n_rows);
            let (a, b) = (self.x.indptr[r0], self.x.indptr[r1]);
            let block = Csr {
                n_rows: r1 - r0,
                n_cols: self.x.n_cols,
                indptr: self.x.indptr[r0..=r1].iter().map(|p| p - a).collect(),
                indices: self.x.indices[a..b].to_vec(),
                data: self.x.data[a..b].to_vec(),
            };
            f(r0, &block)?;
        }
        Ok(())
    }
}

/// Whether `prepare_streamed` can run these options (everything but
/// exclude_highly_expressed, whose library sizes need a pass per cell over two sums).
pub fn streamable(cfg: &PreprocessConfig) -> bool {
    !cfg.exclude_highly_expressed
}

/// Appends `b`'s rows to `dst`.
fn append_rows(dst: &mut Csr, b: &Csr) {
    let base = dst.data.len();
    dst.indices.extend_from_slice(&b.indices);
    dst.data.extend_from_slice(&b.data);
    dst.indptr.extend(b.indptr[1..].iter().map(|p| p + base));
    dst.n_rows += b.n_rows;
}

/// `prepare` on the matrix `src` with the names `ds` (checked by the caller).
pub fn prepare_streamed(src: &mut dyn RowBlocks, ds: &Names, cfg: &PreprocessConfig, keep_counts: bool) -> Result<Prepared<'static>> {
    check_options(cfg, ds)?;
    if !streamable(cfg) {
        return Err(Error::config(
            "preprocess.exclude_highly_expressed",
            true,
            "is not available when the matrix is read in blocks (read.stream_min_nnz = null reads it whole)",
        ));
    }
    let n_genes = src.n_cols();

    // (1) Genes: non-zero cells and totals, whether any value is fractional.
    let (mut nnz, mut sums, mut fractional) = (vec![0usize; n_genes], vec![0f64; n_genes], vec![false; n_genes]);
    let mut nonzero = false;
    src.for_each_block(&mut |r0, b| {
        crate::matrix::validate_values(ds.source, b, r0, ds.cells, ds.genes)?;
        b.add_col_nnz_and_sums(&mut nnz, &mut sums);
        for (&j, &v) in b.indices.iter().zip(&b.data) {
            fractional[j as usize] |= v.fract() != 0.0;
            nonzero |= v != 0.0;
        }
        Ok(())
    })?;
    if !nonzero {
        return Err(crate::matrix::all_zeros(ds.source));
    }
    let genes_keep = kept_genes(cfg, ds, &nnz, &sums)?;
    let ceil = cfg.ceil_counts && genes_keep.iter().any(|&j| fractional[j]);
    let all_genes = genes_keep.len() == n_genes;
    // A block's counts over `cols` (increasing), rounded up when the recipe asks.
    let counts_of = |b: &Csr, cols: &[usize], all: bool| {
        let mut c = if all { b.clone() } else { b.select_cols(cols) };
        if ceil {
            normalize::ceil_counts(&mut c);
        }
        c
    };

    // (2) Cells: the filter on the kept genes' counts, and the library sizes.
    let hvg_counts = super::hvg_on_counts(cfg, genes_keep.len());
    let mut counts_moments = hvg_counts.then(|| ColMoments::new(genes_keep.len(), false));
    let (mut cells_keep, mut library) = (Vec::new(), Vec::new());
    src.for_each_block(&mut |r0, b| {
        let c = counts_of(b, &genes_keep, all_genes);
        for i in 0..c.n_rows {
            let (idx, v) = c.row(i);
            if normalize::cell_passes(v, cfg.min_counts_per_cell, cfg.min_genes_per_cell) {
                cells_keep.push(r0 + i);
                library.push(normalize::row_total(v) as f32);
                if let Some(m) = &mut counts_moments {
                    m.push_row(idx, v);
                }
            }
        }
        Ok(())
    })?;
    if cells_keep.is_empty() {
        return Err(no_cell_passes(ds.source));
    }
    let (factors, target_sum) = normalize::size_factors(&library, cfg.target_sum);
    drop(library);

    // The counts of a block's kept cells over `cols`, and the kept cells' first entry in
    // cells_keep (`next` moves past them).
    let mut next = 0;
    let kept_counts = |b: &Csr, r0: usize, next: &mut usize, cols: &[usize], all: bool| -> (Csr, usize) {
        let first = *next;
        while *next < cells_keep.len() && cells_keep[*next] < r0 + b.n_rows {
            *next += 1;
        }
        let local: Vec<usize> = cells_keep[first..*next].iter().map(|&i| i - r0).collect();
        (counts_of(&b.select_rows(&local), cols, all), first)
    };
    // Those counts normalised (and logged); `first` as kept_counts gives it.
    let normalised = |counts: &Csr, first: usize| -> Csr {
        let mut x = counts.clone();
        for (k, f) in factors[first..first + x.n_rows].iter().enumerate() {
            let (a, e) = (x.indptr[k], x.indptr[k + 1]);
            normalize::divide_row(&mut x.data[a..e], *f);
        }
        if cfg.log1p {
            normalize::log1p(&mut x, cfg.log_base);
        }
        x
    };

    // (3) The genes' moments that the selection ranks, then the selection.
    let mut hvg = None;
    if let Some(fl) = cfg.hvg_flavor.filter(|_| cfg.n_top_genes < genes_keep.len()) {
        let (rows, s, sq) = match counts_moments.take() {
            Some(m) => m.finish(),
            None => {
                let mut m = ColMoments::new(genes_keep.len(), fl == HvgFlavor::Seurat);
                next = 0;
                src.for_each_block(&mut |r0, b| {
                    let (c, first) = kept_counts(b, r0, &mut next, &genes_keep, all_genes);
                    let mut x = normalised(&c, first);
                    if fl == HvgFlavor::Seurat && cfg.log1p {
                        super::to_natural_log(&mut x.data, cfg.log_base);
                    }
                    (0..x.n_rows).for_each(|i| {
                        let (idx, v) = x.row(i);
                        m.push_row(idx, v);
                    });
                    Ok(())
                })?;
                m.finish()
            }
        };
        let (mean, var) = hvg::mean_var_of_sums(rows, &s, &sq);
        let r = hvg::select_from_moments(fl, rows, mean, var, cfg.n_top_genes, cfg.n_bins, cfg.loess_span, |clip, s, sq| {
            next = 0;
            src.for_each_block(&mut |r0, b| {
                let (c, _) = kept_counts(b, r0, &mut next, &genes_keep, all_genes);
                super::seurat_v3::add_clipped(&c.indices, &c.data, clip, s, sq);
                Ok(())
            })
        })?;
        hvg = Some(r);
    }

    // (4) The kept cells over the selected genes.
    let cols: Vec<usize> = match &hvg {
        Some(r) => r.selected().iter().map(|&k| genes_keep[k]).collect(),
        None => genes_keep.clone(),
    };
    let all = cols.len() == n_genes;
    let (mut x, mut counts) = (Csr::empty(cols.len()), Csr::empty(cols.len()));
    next = 0;
    src.for_each_block(&mut |r0, b| {
        let (cb, first) = kept_counts(b, r0, &mut next, &cols, all);
        let xb = normalised(&cb, first);
        append_rows(&mut x, &xb);
        if keep_counts {
            append_rows(&mut counts, &cb);
        }
        Ok(())
    })?;
    let scaler = if cfg.scale { Some(Scaler::fit(&x, true, cfg.max_value)) } else { None };
    Ok(Prepared {
        cells: cells_keep.iter().map(|&i| ds.cells[i].clone()).collect(),
        labels: ds.labels.map(|l| cells_keep.iter().map(|&i| l[i].clone()).collect()),
        batches: ds.batches.map(|b| cells_keep.iter().map(|&i| b[i].clone()).collect()),
        x,
        counts: keep_counts.then_some(Cow::Owned(counts)),
        genes: cols.iter().map(|&j| ds.genes[j].clone()).collect(),
        size_factors: factors,
        norm_genes: norm_genes(cfg, ds, &genes_keep),
        cell_index: cells_keep,
        scaler,
        hvg,
        target_sum,
    })
}
