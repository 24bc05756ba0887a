//! Sparse CSR count matrix (cells x genes, f32) with cell and gene names.

use crate::error::{Error, Result};
use rayon::prelude::*;

/// Compressed sparse rows: row `i` holds `indices[indptr[i]..indptr[i+1]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Csr {
    pub n_rows: usize,
    pub n_cols: usize,
    pub indptr: Vec<usize>,
    pub indices: Vec<u32>,
    pub data: Vec<f32>,
}

impl Csr {
    pub fn nnz(&self) -> usize {
        self.data.len()
    }

    /// No rows, `n_cols` columns.
    pub fn empty(n_cols: usize) -> Csr {
        Csr { n_rows: 0, n_cols, indptr: vec![0], indices: Vec::new(), data: Vec::new() }
    }

    pub fn row(&self, i: usize) -> (&[u32], &[f32]) {
        let (a, b) = (self.indptr[i], self.indptr[i + 1]);
        (&self.indices[a..b], &self.data[a..b])
    }

    /// Check the structure (used on everything read from a file).
    pub fn validate_structure(&self) -> Result<()> {
        let bad = |m: String| Err(Error::data(m));
        if self.indptr.len() != self.n_rows + 1 {
            return bad(format!("indptr has {} entries, expected rows+1 = {}", self.indptr.len(), self.n_rows + 1));
        }
        if self.indptr[0] != 0 || *self.indptr.last().unwrap() != self.data.len() || self.indices.len() != self.data.len() {
            return bad(format!(
                "indptr/indices/data disagree: indptr ends at {}, {} indices, {} values",
                self.indptr.last().unwrap(),
                self.indices.len(),
                self.data.len()
            ));
        }
        for i in 0..self.n_rows {
            if self.indptr[i] > self.indptr[i + 1] {
                return bad(format!("indptr decreases at row {i}"));
            }
        }
        if let Some(&j) = self.indices.iter().find(|&&j| j as usize >= self.n_cols) {
            return bad(format!("column index {j} out of range for {} columns", self.n_cols));
        }
        Ok(())
    }

    /// Build from (row, col, value) triplets; duplicates are summed, rows sorted by column.
    pub fn from_triplets(n_rows: usize, n_cols: usize, rows: &[u32], cols: &[u32], vals: &[f32]) -> Csr {
        let mut counts = vec![0usize; n_rows + 1];
        for &r in rows {
            counts[r as usize + 1] += 1;
        }
        for i in 0..n_rows {
            counts[i + 1] += counts[i];
        }
        let mut next = counts.clone();
        let mut indices = vec![0u32; vals.len()];
        let mut data = vec![0f32; vals.len()];
        for k in 0..vals.len() {
            let r = rows[k] as usize;
            indices[next[r]] = cols[k];
            data[next[r]] = vals[k];
            next[r] += 1;
        }
        let mut m = Csr { n_rows, n_cols, indptr: counts, indices, data };
        m.sort_and_sum_duplicates();
        m
    }

    fn sort_and_sum_duplicates(&mut self) {
        let mut out_ptr = vec![0usize; self.n_rows + 1];
        let mut w = 0usize;
        let mut buf: Vec<(u32, f32)> = Vec::new();
        for i in 0..self.n_rows {
            buf.clear();
            for k in self.indptr[i]..self.indptr[i + 1] {
                buf.push((self.indices[k], self.data[k]));
            }
            buf.sort_by_key(|e| e.0);
            let mut k = 0;
            while k < buf.len() {
                let (j, mut v) = buf[k];
                k += 1;
                while k < buf.len() && buf[k].0 == j {
                    v += buf[k].1;
                    k += 1;
                }
                self.indices[w] = j;
                self.data[w] = v;
                w += 1;
            }
            out_ptr[i + 1] = w;
        }
        self.indices.truncate(w);
        self.data.truncate(w);
        self.indptr = out_ptr;
    }

    /// Transpose (CSC of the same matrix read as CSR of the transpose, and back).
    pub fn transpose(&self) -> Csr {
        let mut counts = vec![0usize; self.n_cols + 1];
        for &j in &self.indices {
            counts[j as usize + 1] += 1;
        }
        for j in 0..self.n_cols {
            counts[j + 1] += counts[j];
        }
        let mut next = counts.clone();
        let mut indices = vec![0u32; self.nnz()];
        let mut data = vec![0f32; self.nnz()];
        for i in 0..self.n_rows {
            for k in self.indptr[i]..self.indptr[i + 1] {
                let j = self.indices[k] as usize;
                indices[next[j]] = i as u32;
                data[next[j]] = self.data[k];
                next[j] += 1;
            }
        }
        Csr { n_rows: self.n_cols, n_cols: self.n_rows, indptr: counts, indices, data }
    }

    pub fn from_dense(n_rows: usize, n_cols: usize, values: &[f32]) -> Csr {
        let mut indptr = Vec::with_capacity(n_rows + 1);
        indptr.push(0);
        let (mut indices, mut data) = (Vec::new(), Vec::new());
        for i in 0..n_rows {
            for j in 0..n_cols {
                let v = values[i * n_cols + j];
                if v != 0.0 {
                    indices.push(j as u32);
                    data.push(v);
                }
            }
            indptr.push(data.len());
        }
        Csr { n_rows, n_cols, indptr, indices, data }
    }

    /// Dense row-major copy of rows `rows` (a mini-batch); never the whole matrix unless asked.
    pub fn dense_rows(&self, rows: &[usize]) -> Vec<f32> {
        let mut out = vec![0f32; rows.len() * self.n_cols];
        for (r, &i) in rows.iter().enumerate() {
            let (idx, val) = self.row(i);
            for (&j, &v) in idx.iter().zip(val) {
                out[r * self.n_cols + j as usize] = v;
            }
        }
        out
    }

    pub fn to_dense(&self) -> Vec<f32> {
        let all: Vec<usize> = (0..self.n_rows).collect();
        self.dense_rows(&all)
    }

    pub fn row_sums(&self) -> Vec<f64> {
        (0..self.n_rows).map(|i| self.row(i).1.iter().map(|&v| v as f64).sum()).collect()
    }

    /// Number of stored non-zero entries per column and per-column sums.
    pub fn col_nnz_and_sums(&self) -> (Vec<usize>, Vec<f64>) {
        let mut nnz = vec![0usize; self.n_cols];
        let mut sums = vec![0f64; self.n_cols];
        self.add_col_nnz_and_sums(&mut nnz, &mut sums);
        (nnz, sums)
    }

    /// `col_nnz_and_sums` added to running totals, value by value in row order (so a
    /// matrix read in consecutive row blocks gives the same totals).
    pub fn add_col_nnz_and_sums(&self, nnz: &mut [usize], sums: &mut [f64]) {
        for (&j, &v) in self.indices.iter().zip(&self.data) {
            if v != 0.0 {
                nnz[j as usize] += 1;
            }
            sums[j as usize] += v as f64;
        }
    }

    /// `select_rows` in place for increasing `rows` (no second copy of the matrix).
    pub fn retain_rows(&mut self, rows: &[usize]) {
        if !rows.windows(2).all(|w| w[0] < w[1]) {
            *self = self.select_rows(rows);
            return;
        }
        let mut w = 0;
        let mut indptr = Vec::with_capacity(rows.len() + 1);
        indptr.push(0);
        for &i in rows {
            let (a, b) = (self.indptr[i], self.indptr[i + 1]);
            self.indices.copy_within(a..b, w);
            self.data.copy_within(a..b, w);
            w += b - a;
            indptr.push(w);
        }
        self.finish_in_place(indptr, self.n_cols);
    }

    /// `select_cols` in place for increasing `cols` (no second copy of the matrix).
    pub fn retain_cols(&mut self, cols: &[usize]) {
        if !cols.windows(2).all(|w| w[0] < w[1]) {
            *self = self.select_cols(cols);
            return;
        }
        let mut map = vec![u32::MAX; self.n_cols];
        for (new, &old) in cols.iter().enumerate() {
            map[old] = new as u32;
        }
        let mut w = 0;
        let mut indptr = Vec::with_capacity(self.n_rows + 1);
        indptr.push(0);
        for i in 0..self.n_rows {
            for k in self.indptr[i]..self.indptr[i + 1] {
                let m = map[self.indices[k] as usize];
                if m != u32::MAX {
                    self.indices[w] = m;
                    self.data[w] = self.data[k];
                    w += 1;
                }
            }
            indptr.push(w);
        }
        self.finish_in_place(indptr, cols.len());
    }

    fn finish_in_place(&mut self, indptr: Vec<usize>, n_cols: usize) {
        let nnz = *indptr.last().unwrap_or(&0);
        self.indices.truncate(nnz);
        self.indices.shrink_to_fit();
        self.data.truncate(nnz);
        self.data.shrink_to_fit();
        self.n_rows = indptr.len() - 1;
        self.n_cols = n_cols;
        self.indptr = indptr;
    }

    pub fn select_rows(&self, rows: &[usize]) -> Csr {
        let mut indptr = Vec::with_capacity(rows.len() + 1);
        indptr.push(0);
        let (mut indices, mut data) = (Vec::new(), Vec::new());
        for &i in rows {
            let (idx, val) = self.row(i);
            indices.extend_from_slice(idx);
            data.extend_from_slice(val);
            indptr.push(data.len());
        }
        Csr { n_rows: rows.len(), n_cols: self.n_cols, indptr, indices, data }
    }

    pub fn select_cols(&self, cols: &[usize]) -> Csr {
        if cols.len() == self.n_cols && cols.iter().enumerate().all(|(a, &b)| a == b) {
            return self.clone();
        }
        let mut map = vec![u32::MAX; self.n_cols];
        for (new, &old) in cols.iter().enumerate() {
            map[old] = new as u32;
        }
        // Increasing columns keep each row's order; otherwise rows are re-sorted.
        let sorted = cols.windows(2).all(|w| w[0] < w[1]);
        let lens: Vec<usize> =
            (0..self.n_rows).into_par_iter().map(|i| self.row(i).0.iter().filter(|&&j| map[j as usize] != u32::MAX).count()).collect();
        let mut indptr = Vec::with_capacity(self.n_rows + 1);
        indptr.push(0);
        for l in &lens {
            indptr.push(indptr.last().unwrap() + l);
        }
        let nnz = *indptr.last().unwrap();
        let (mut indices, mut data) = (vec![0u32; nnz], vec![0f32; nnz]);
        let blocks: Vec<_> = split_rows(&indptr, &mut indices).into_iter().zip(split_rows(&indptr, &mut data)).collect();
        blocks.into_par_iter().for_each(|((r0, r1, idx_out), (_, _, val_out))| {
            let mut pos = 0;
            let mut buf: Vec<(u32, f32)> = Vec::new();
            for i in r0..r1 {
                let (idx, val) = self.row(i);
                let start = pos;
                for (&j, &v) in idx.iter().zip(val) {
                    let m = map[j as usize];
                    if m != u32::MAX {
                        idx_out[pos] = m;
                        val_out[pos] = v;
                        pos += 1;
                    }
                }
                if !sorted {
                    buf.clear();
                    buf.extend(idx_out[start..pos].iter().copied().zip(val_out[start..pos].iter().copied()));
                    buf.sort_by_key(|e| e.0);
                    for (k, &(j, v)) in buf.iter().enumerate() {
                        idx_out[start + k] = j;
                        val_out[start + k] = v;
                    }
                }
            }
        });
        Csr { n_rows: self.n_rows, n_cols: cols.len(), indptr, indices, data }
    }

    /// Apply `f(row, values)` to every row, in parallel over blocks of rows.
    pub fn map_rows_mut(&mut self, f: impl Fn(usize, &mut [f32]) + Sync) {
        let indptr = &self.indptr;
        split_rows(indptr, &mut self.data).into_par_iter().for_each(|(r0, r1, vals)| {
            let base = indptr[r0];
            for i in r0..r1 {
                f(i, &mut vals[indptr[i] - base..indptr[i + 1] - base]);
            }
        });
    }

    /// Per-column sums of the stored values (of expm1 of them, rounded to f32, with
    /// `expm1`) and of their squares, in f64: partial sums per block of rows, added in
    /// block order (the same result for any thread count).
    pub fn col_sums_and_squares(&self, expm1: bool) -> (Vec<f64>, Vec<f64>) {
        let parts: Vec<Vec<f64>> = (0..self.n_rows.div_ceil(ROW_BLOCK).max(1))
            .into_par_iter()
            .map(|b| {
                let mut s = vec![0f64; 2 * self.n_cols];
                let (r0, r1) = ((b * ROW_BLOCK).min(self.n_rows), ((b + 1) * ROW_BLOCK).min(self.n_rows));
                let (a, e) = (self.indptr[r0], self.indptr[r1]);
                let mut buf = Vec::new();
                let vals = if expm1 {
                    buf.resize(e - a, 0f32);
                    crate::fastmath::expm1_slice(&self.data[a..e], &mut buf);
                    &buf[..]
                } else {
                    &self.data[a..e]
                };
                for (&j, &v) in self.indices[a..e].iter().zip(vals) {
                    let y = v as f64;
                    s[2 * j as usize] += y;
                    s[2 * j as usize + 1] += y * y;
                }
                s
            })
            .collect();
        let mut out = vec![0f64; 2 * self.n_cols];
        for p in parts {
            out.iter_mut().zip(p).for_each(|(o, v)| *o += v);
        }
        (out.iter().step_by(2).copied().collect(), out.iter().skip(1).step_by(2).copied().collect())
    }
}

/// Rows per block in the parallel passes: fixed, not per thread, so reductions add
/// their partial results in the same order whatever the thread count.
pub const ROW_BLOCK: usize = 2048;

/// `Csr::col_sums_and_squares` of rows pushed one at a time (a matrix streamed from a
/// file): the rows are gathered into blocks of `ROW_BLOCK` and each block's partial sums
/// added in order, so the totals equal those of the whole matrix bit for bit.
pub struct ColMoments {
    block: Csr,
    sums: Vec<f64>,
    squares: Vec<f64>,
    expm1: bool,
    rows: usize,
}

impl ColMoments {
    pub fn new(n_cols: usize, expm1: bool) -> ColMoments {
        ColMoments { block: Csr::empty(n_cols), sums: vec![0.0; n_cols], squares: vec![0.0; n_cols], expm1, rows: 0 }
    }

    pub fn push_row(&mut self, idx: &[u32], vals: &[f32]) {
        self.block.indices.extend_from_slice(idx);
        self.block.data.extend_from_slice(vals);
        self.block.indptr.push(self.block.data.len());
        self.block.n_rows += 1;
        self.rows += 1;
        if self.block.n_rows == ROW_BLOCK {
            self.flush();
        }
    }

    fn flush(&mut self) {
        let (s, q) = self.block.col_sums_and_squares(self.expm1);
        self.sums.iter_mut().zip(s).for_each(|(o, v)| *o += v);
        self.squares.iter_mut().zip(q).for_each(|(o, v)| *o += v);
        self.block.n_rows = 0;
        self.block.indptr.truncate(1);
        self.block.indices.clear();
        self.block.data.clear();
    }

    /// Rows pushed, and the per-column sums and sums of squares.
    pub fn finish(mut self) -> (usize, Vec<f64>, Vec<f64>) {
        if self.block.n_rows > 0 {
            self.flush();
        }
        (self.rows, self.sums, self.squares)
    }
}

/// Split a CSR array (indices or values) into disjoint slices per block of rows r0..r1.
fn split_rows<'a, T>(indptr: &[usize], mut rest: &'a mut [T]) -> Vec<(usize, usize, &'a mut [T])> {
    let n = indptr.len() - 1;
    let mut out = Vec::new();
    for r0 in (0..n).step_by(ROW_BLOCK) {
        let r1 = (r0 + ROW_BLOCK).min(n);
        let (head, tail) = std::mem::take(&mut rest).split_at_mut(indptr[r1] - indptr[r0]);
        out.push((r0, r1, head));
        rest = tail;
    }
    out
}

/// A count matrix with its names and optional ground truth.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// cells x genes
    pub x: Csr,
    pub cells: Vec<String>,
    pub genes: Vec<String>,
    /// Ground-truth labels (one per cell) when a label column or file was given.
    pub labels: Option<Vec<String>>,
    /// Each cell's batch (sample, donor, lane, protocol) when a batch column or file was
    /// given (`batch.key`, `ReadOptions::batch_key` / `batches_file`).
    pub batches: Option<Vec<String>>,
    /// Where the matrix came from (for messages).
    pub source: String,
}

/// Cells given in memory to a run (`pipeline::run`) or to `preprocess::prepare`: a dataset the caller keeps (`&Dataset`), or one
/// the run may consume (`Dataset`): its matrix is then normalised in place and the raw
/// counts dropped when the method does not read them (peak memory one input matrix less).
pub struct Cells<'a>(pub std::borrow::Cow<'a, Dataset>);

impl<'a> From<&'a Dataset> for Cells<'a> {
    fn from(ds: &'a Dataset) -> Cells<'a> {
        Cells(std::borrow::Cow::Borrowed(ds))
    }
}

impl From<Dataset> for Cells<'static> {
    fn from(ds: Dataset) -> Cells<'static> {
        Cells(std::borrow::Cow::Owned(ds))
    }
}

impl Dataset {
    /// A dataset from the parts of a CSR matrix as a door receives them (cells in rows:
    /// `indptr` has `n_cells + 1` offsets, `indices` 0-based gene columns, `data` the
    /// values), with the cells' and genes' names and the labels when given. Checked once,
    /// here, for every door: an error names the part (`indptr`, `indices`, `data`, `cells`,
    /// `genes`, `labels`) and its value, then [`Dataset::validate`] checks the names and
    /// values.
    ///
    /// ```
    /// use scdeep_core::Dataset;
    /// let names = |p: &str, n: usize| (0..n).map(|i| format!("{p}{i}")).collect::<Vec<_>>();
    /// // 2 cells x 3 genes: cell 0 has genes 0 and 2, cell 1 gene 1
    /// let ds = Dataset::from_csr_parts(2, 3, &[0i64, 2, 3], &[0i32, 2, 1], vec![1.0, 4.0, 2.0], names("c", 2), names("g", 3), None, "example")?;
    /// assert_eq!((ds.n_cells(), ds.n_genes()), (2, 3));
    /// // an index outside the genes names the part and the value
    /// let e = Dataset::from_csr_parts(2, 3, &[0i64, 2, 3], &[0i32, 5, 1], vec![1.0, 4.0, 2.0], names("c", 2), names("g", 3), None, "example");
    /// assert!(e.unwrap_err().to_string().contains("`indices` = 5"));
    /// # Ok::<(), scdeep_core::Error>(())
    /// ```
    #[allow(clippy::too_many_arguments)]
    pub fn from_csr_parts<P: Copy + Into<i64>, J: Copy + Into<i64>>(
        n_cells: usize,
        n_genes: usize,
        indptr: &[P],
        indices: &[J],
        data: Vec<f32>,
        cells: Vec<String>,
        genes: Vec<String>,
        labels: Option<Vec<String>>,
        source: &str,
    ) -> Result<Dataset> {
        let nnz = data.len();
        if indptr.len() != n_cells + 1 {
            return Err(Error::config("indptr", format!("{} entries", indptr.len()), format!("expected n_cells + 1 = {}", n_cells + 1)));
        }
        let ip: Vec<i64> = indptr.iter().map(|&v| v.into()).collect();
        if ip[0] != 0 || ip[n_cells] != nnz as i64 || ip.windows(2).any(|w| w[1] < w[0]) {
            return Err(Error::config(
                "indptr",
                format!("[{}, …, {}]", ip[0], ip[n_cells]),
                format!("must start at 0, never decrease and end at nnz = {nnz}"),
            ));
        }
        if indices.len() != nnz {
            return Err(Error::config("data", format!("{nnz} values"), format!("{} column indices", indices.len())));
        }
        let mut cols = Vec::with_capacity(nnz);
        for (k, &j) in indices.iter().enumerate() {
            let j: i64 = j.into();
            if j < 0 || j >= n_genes as i64 {
                return Err(Error::config("indices", j, format!("entry {k} is outside [0, n_genes = {n_genes})")));
            }
            cols.push(j as u32);
        }
        for (field, names, n) in [("cells", &cells, n_cells), ("genes", &genes, n_genes)] {
            if names.len() != n {
                return Err(Error::config(
                    field,
                    format!("{} names", names.len()),
                    format!("the matrix is {n_cells} cells x {n_genes} genes"),
                ));
            }
        }
        if let Some(l) = labels.as_ref().filter(|l| l.len() != n_cells) {
            return Err(Error::config("labels", format!("{} labels", l.len()), format!("for {n_cells} cells")));
        }
        let x = Csr { n_rows: n_cells, n_cols: n_genes, indptr: ip.into_iter().map(|v| v as usize).collect(), indices: cols, data };
        let ds = Dataset { x, cells, genes, labels, batches: None, source: source.to_string() };
        ds.validate()?;
        Ok(ds)
    }

    /// The same cells with their batches (one per cell, in the cells' order; None: one
    /// batch), checked: as many as the cells, none empty. `field` names where they came
    /// from in an error (`batches`, an obs column, a file).
    ///
    /// ```
    /// use scdeep_core::Dataset;
    /// let names = |p: &str, n: usize| (0..n).map(|i| format!("{p}{i}")).collect::<Vec<_>>();
    /// let ds = Dataset::from_csr_parts(2, 2, &[0i64, 1, 2], &[0i32, 1], vec![1.0, 2.0], names("c", 2), names("g", 2), None, "example")?;
    /// let e = ds.clone().with_batches(Some(vec!["a".into()]), "batches").unwrap_err().to_string();
    /// assert!(e.contains("batches") && e.contains("1 batch"), "{e}");
    /// let ds = ds.with_batches(Some(vec!["a".into(), "b".into()]), "batches")?;
    /// assert_eq!(ds.batches.unwrap(), ["a", "b"]);
    /// # Ok::<(), scdeep_core::Error>(())
    /// ```
    pub fn with_batches(mut self, batches: Option<Vec<String>>, field: &str) -> Result<Dataset> {
        if let Some(b) = &batches {
            if b.len() != self.n_cells() {
                return Err(Error::config(field, format!("{} batch values", b.len()), format!("for {} cells", self.n_cells())));
            }
        }
        validate_batches(field, &self.cells, batches.as_deref())?;
        self.batches = batches;
        Ok(self)
    }

    pub fn n_cells(&self) -> usize {
        self.x.n_rows
    }
    pub fn n_genes(&self) -> usize {
        self.x.n_cols
    }

    /// Check names against the matrix and the values for NaN/inf/negative entries.
    pub fn validate(&self) -> Result<()> {
        let src = &self.source;
        self.x.validate_structure().map_err(|e| Error::data(format!("{src}: {e}")))?;
        validate_names(src, &self.cells, &self.genes, self.labels.as_deref(), self.x.n_rows, self.x.n_cols)?;
        validate_batches(src, &self.cells, self.batches.as_deref())?;
        validate_values(src, &self.x, 0, &self.cells, &self.genes)?;
        if self.x.data.iter().all(|&v| v == 0.0) {
            return Err(all_zeros(src));
        }
        Ok(())
    }
    pub fn select_cells(&self, rows: &[usize]) -> Dataset {
        Dataset {
            x: self.x.select_rows(rows),
            cells: rows.iter().map(|&i| self.cells[i].clone()).collect(),
            genes: self.genes.clone(),
            labels: self.labels.as_ref().map(|l| rows.iter().map(|&i| l[i].clone()).collect()),
            batches: self.batches.as_ref().map(|b| rows.iter().map(|&i| b[i].clone()).collect()),
            source: self.source.clone(),
        }
    }

    pub fn select_genes(&self, cols: &[usize]) -> Dataset {
        Dataset {
            x: self.x.select_cols(cols),
            cells: self.cells.clone(),
            genes: cols.iter().map(|&j| self.genes[j].clone()).collect(),
            labels: self.labels.clone(),
            batches: self.batches.clone(),
            source: self.source.clone(),
        }
    }

    /// Gene names made unique as anndata's `var_names_make_unique` does: the second
    /// 'X' becomes 'X-1', the third 'X-2' (skipping names already taken). Returns the
    /// data set with unique names (borrowed when they already were) and a warning
    /// saying how many were renamed.
    pub fn with_unique_genes(&self) -> (std::borrow::Cow<'_, Dataset>, Option<String>) {
        match self.unique_gene_names() {
            None => (std::borrow::Cow::Borrowed(self), None),
            Some((genes, msg)) => (std::borrow::Cow::Owned(Dataset { genes, ..self.clone() }), Some(msg)),
        }
    }

    /// Whether some gene name repeats.
    pub fn has_duplicate_genes(&self) -> bool {
        let mut seen = std::collections::HashSet::with_capacity(self.genes.len());
        !self.genes.iter().all(|g| seen.insert(g.as_str()))
    }

    /// `with_unique_genes` in place.
    pub fn make_genes_unique(&mut self) -> Option<String> {
        let (genes, msg) = self.unique_gene_names()?;
        self.genes = genes;
        Some(msg)
    }

    /// The unique names and the warning, when some names repeat.
    fn unique_gene_names(&self) -> Option<(Vec<String>, String)> {
        unique_gene_names(&self.source, &self.genes)
    }

    /// True when every stored value is an integer (raw counts).
    pub fn is_integer(&self) -> bool {
        self.x.data.iter().all(|v| v.fract() == 0.0)
    }
}

/// Batches (when given): one per cell, none empty.
pub fn validate_batches(src: &str, cells: &[String], batches: Option<&[String]>) -> Result<()> {
    let Some(b) = batches else { return Ok(()) };
    if b.len() != cells.len() {
        return Err(Error::data(format!("{src}: {} batch values for {} cells", b.len(), cells.len())));
    }
    if let Some(i) = b.iter().position(|v| v.trim().is_empty() || v.contains('\0')) {
        return Err(Error::data(format!(
            "{src}: cell '{}' has an empty batch; give every cell a batch or leave out the batches",
            cells[i]
        )));
    }
    Ok(())
}

/// The names of a matrix (`n_rows` cells x `n_cols` genes) and its labels: as many as the
/// matrix has, no NUL byte, unique cell names, no empty label, not empty.
pub fn validate_names(
    src: &str,
    cells: &[String],
    genes: &[String],
    labels: Option<&[String]>,
    n_rows: usize,
    n_cols: usize,
) -> Result<()> {
    if cells.len() != n_rows {
        return Err(Error::data(format!("{src}: {} cell names for a matrix with {n_rows} cells", cells.len())));
    }
    if genes.len() != n_cols {
        return Err(Error::data(format!("{src}: {} gene names for a matrix with {n_cols} genes", genes.len())));
    }
    if let Some(l) = labels {
        if l.len() != n_rows {
            return Err(Error::data(format!("{src}: {} labels for {n_rows} cells", l.len())));
        }
    }
    // A NUL byte cannot be stored in HDF5 strings (or passed to C): refuse it here,
    // before any work, rather than fail while writing results.
    for (what, names) in [("cell", cells), ("gene", genes)] {
        if let Some((i, n)) = names.iter().enumerate().find(|(_, n)| n.contains('\0')) {
            return Err(Error::data(format!("{src}: {what} name {i} ({n:?}) contains a NUL byte")));
        }
    }
    if let Some((i, l)) = labels.iter().copied().flatten().enumerate().find(|(_, l)| l.contains('\0')) {
        return Err(Error::data(format!("{src}: the label of cell {i} ({l:?}) contains a NUL byte")));
    }
    let mut seen = std::collections::HashMap::with_capacity(cells.len());
    for (i, c) in cells.iter().enumerate() {
        if let Some(j) = seen.insert(c.as_str(), i) {
            return Err(Error::data(format!("{src}: cell name '{c}' appears twice (cells {j} and {i}); cell names must be unique")));
        }
    }
    if let Some(i) = labels.iter().copied().flatten().position(|l| l.trim().is_empty()) {
        return Err(Error::data(format!("{src}: cell '{}' has an empty label; label every cell or leave out the labels", cells[i])));
    }
    if n_rows == 0 || n_cols == 0 {
        return Err(Error::data(format!("{src}: empty matrix ({n_rows} cells x {n_cols} genes)")));
    }
    Ok(())
}

/// Every value of `x` (rows `first_row..` of the matrix `cells` x `genes` names) finite
/// and >= 0.
pub fn validate_values(src: &str, x: &Csr, first_row: usize, cells: &[String], genes: &[String]) -> Result<()> {
    for i in 0..x.n_rows {
        let (idx, val) = x.row(i);
        for (&j, &v) in idx.iter().zip(val) {
            if !v.is_finite() || v < 0.0 {
                let what = if v.is_nan() {
                    "NaN"
                } else if !v.is_finite() {
                    "infinite"
                } else {
                    "negative"
                };
                let r = first_row + i;
                return Err(Error::data(format!(
                    "{src}: {what} value {v} at cell '{}' (row {r}), gene '{}' (column {j}); counts must be finite and >= 0",
                    cells[r], genes[j as usize]
                )));
            }
        }
    }
    Ok(())
}

/// Gene names made unique as `Dataset::make_genes_unique` does, and its warning (None when
/// they already are).
pub fn unique_gene_names(src: &str, names: &[String]) -> Option<(Vec<String>, String)> {
    use std::collections::{HashMap, HashSet};
    let distinct: HashSet<&str> = names.iter().map(String::as_str).collect();
    if distinct.len() == names.len() {
        return None;
    }
    let mut taken: HashSet<String> = names.iter().cloned().collect();
    let mut next: HashMap<&str, usize> = HashMap::new();
    let mut seen: HashSet<&str> = HashSet::new();
    let mut genes = Vec::with_capacity(names.len());
    let mut example = None;
    for g in names {
        if seen.insert(g.as_str()) {
            genes.push(g.clone());
            continue;
        }
        let k = next.entry(g.as_str()).or_insert(0);
        let name = loop {
            *k += 1;
            let c = format!("{g}-{k}");
            if !taken.contains(&c) {
                break c;
            }
        };
        taken.insert(name.clone());
        example.get_or_insert_with(|| format!("'{g}' -> '{name}'"));
        genes.push(name);
    }
    let msg = format!(
        "warning: {}: {} duplicate gene names made unique as anndata's var_names_make_unique does (e.g. {})",
        src,
        names.len() - distinct.len(),
        example.unwrap_or_default()
    );
    Some((genes, msg))
}

/// The error for a matrix without a non-zero value.
pub fn all_zeros(src: &str) -> Error {
    Error::data(format!("{src}: the matrix is all zeros"))
}
