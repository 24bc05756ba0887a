//! AnnData .h5ad (anndata >= 0.8 on-disk format): read X / a layer / raw/X as CSR,
//! CSC or dense, names from obs/var `_index`, labels from an obs column; write a copy
//! of the input with scdeep's results added.

use super::{check_memory, Limits, ReadOptions};
use crate::error::{Error, Result};
use crate::matrix::{Csr, Dataset};
use hdf5::types::{FixedAscii, FixedUnicode, TypeDescriptor, VarLenAscii, VarLenUnicode};
use std::path::Path;

pub(crate) fn h5err(path: &Path, what: &str, e: hdf5::Error) -> Error {
    Error::format(path, format!("{what}: {e}"))
}

pub(crate) fn open(path: &Path) -> Result<hdf5::File> {
    // Check the signature first so a CSV renamed to .h5ad gets a clear message.
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut sig = [0u8; 8];
    let n = f.read(&mut sig).map_err(|e| Error::io(path, e))?;
    if n < 8 || &sig != b"\x89HDF\r\n\x1a\n" {
        return Err(Error::format(path, "not an HDF5 file (bad signature)"));
    }
    hdf5::File::open(path).map_err(|e| h5err(path, "cannot open as HDF5 (truncated or corrupt?)", e))
}

fn attr_string(loc: &hdf5::Location, name: &str) -> Option<String> {
    let a = loc.attr(name).ok()?;
    if let Ok(s) = a.read_scalar::<VarLenUnicode>() {
        return Some(s.as_str().to_string());
    }
    if let Ok(s) = a.read_scalar::<VarLenAscii>() {
        return Some(s.as_str().to_string());
    }
    a.read_scalar::<FixedAscii<256>>().ok().map(|s| s.as_str().to_string())
}

/// Read a 1-d string dataset whatever its string type (variable or fixed length).
pub(crate) fn read_strings(path: &Path, lim: &Limits, ds: &hdf5::Dataset, what: &str) -> Result<Vec<String>> {
    let td = ds.dtype().and_then(|t| t.to_descriptor()).map_err(|e| h5err(path, what, e))?;
    guard(path, ds, what, 16, lim)?;
    let r: hdf5::Result<Vec<String>> = match td {
        TypeDescriptor::VarLenUnicode => ds.read_raw::<VarLenUnicode>().map(|v| v.iter().map(|s| s.as_str().to_string()).collect()),
        TypeDescriptor::VarLenAscii => ds.read_raw::<VarLenAscii>().map(|v| v.iter().map(|s| s.as_str().to_string()).collect()),
        TypeDescriptor::FixedAscii(n) if n <= 1024 => {
            ds.read_raw::<FixedAscii<1024>>().map(|v| v.iter().map(|s| s.as_str().to_string()).collect())
        }
        TypeDescriptor::FixedUnicode(n) if n <= 1024 => {
            ds.read_raw::<FixedUnicode<1024>>().map(|v| v.iter().map(|s| s.as_str().to_string()).collect())
        }
        other => return Err(Error::format(path, format!("{what}: expected strings, found {other}"))),
    };
    r.map_err(|e| h5err(path, what, e))
}

/// Check a dataset's declared size before reading it: it must fit in memory (as
/// `elem_bytes` per element) and, when the file holds far fewer bytes than declared
/// (chunks never written, or compression beyond any real data), it is refused.
pub(crate) fn guard(path: &Path, ds: &hdf5::Dataset, what: &str, elem_bytes: u128, lim: &Limits) -> Result<()> {
    let elems: u128 = ds.shape().iter().map(|&d| d as u128).product();
    let declared = elems * elem_bytes;
    check_memory(&format!("{}: {what} ({elems} values)", path.display()), declared)?;
    // What HDF5 says it stores, but never more than the file holds: a corrupt header can
    // declare a contiguous dataset far beyond the end of the file (read as zeros).
    let file_len = std::fs::metadata(path).map_or(u64::MAX, |m| m.len()) as u128;
    let stored = (ds.storage_size() as u128).min(file_len);
    let allowed = (stored * lim.max_decompression_ratio as u128).max(lim.min_decompressed_bytes as u128);
    if declared > allowed {
        return Err(Error::format(
            path,
            format!("{what} declares {elems} values ({declared} bytes) but the file stores {stored} bytes for it: unwritten or corrupt data (limit: limits.max_decompression_ratio)"),
        ));
    }
    Ok(())
}

pub(crate) fn read_f32(path: &Path, lim: &Limits, ds: &hdf5::Dataset, what: &str) -> Result<Vec<f32>> {
    guard(path, ds, what, 4, lim)?;
    ds.read_raw::<f32>().map_err(|e| h5err(path, what, e))
}
/// Values per read of an index array (its i64 form is never held whole).
const INDEX_CHUNK: usize = 1 << 22;

/// Non-negative integer indices, each below `bound` (u32 column indices, or offsets),
/// read as i64 in chunks and converted chunk by chunk.
fn read_index_array<T>(path: &Path, lim: &Limits, ds: &hdf5::Dataset, what: &str, bound: u64, conv: fn(i64) -> T) -> Result<Vec<T>> {
    guard(path, ds, what, 8, lim)?;
    if ds.ndim() != 1 {
        return Err(Error::format(path, format!("{what}: {} dimensions, expected 1", ds.ndim())));
    }
    let n = ds.size();
    let mut out = Vec::with_capacity(n);
    for start in (0..n).step_by(INDEX_CHUNK) {
        let v = ds.read_slice_1d::<i64, _>(start..(start + INDEX_CHUNK).min(n)).map_err(|e| h5err(path, what, e))?;
        for &x in v.iter() {
            if x < 0 {
                return Err(Error::format(path, format!("{what}: negative index {x}")));
            }
            if x as u64 > bound {
                return Err(Error::format(path, format!("{what}: index {x} is out of range (at most {bound})")));
            }
            out.push(conv(x));
        }
    }
    Ok(out)
}
pub(crate) fn read_usize(path: &Path, lim: &Limits, ds: &hdf5::Dataset, what: &str) -> Result<Vec<usize>> {
    read_index_array(path, lim, ds, what, usize::MAX as u64, |x| x as usize)
}
pub(crate) fn read_u32(path: &Path, lim: &Limits, ds: &hdf5::Dataset, what: &str) -> Result<Vec<u32>> {
    read_index_array(path, lim, ds, what, u32::MAX as u64, |x| x as u32)
}

/// Read a sparse group (csr_matrix / csc_matrix) or a dense dataset as cells x genes CSR.
pub(crate) fn read_matrix(path: &Path, lim: &Limits, parent: &hdf5::Group, name: &str) -> Result<Csr> {
    if !parent.link_exists(name) {
        return Err(Error::format(path, format!("no '{}/{}' in the file", parent.name().trim_end_matches('/'), name)));
    }
    let full = format!("{}/{}", parent.name().trim_end_matches('/'), name);
    if let Ok(g) = parent.group(name) {
        let enc = attr_string(&g, "encoding-type")
            .or_else(|| attr_string(&g, "h5sparse_format").map(|s| format!("{s}_matrix")))
            .ok_or_else(|| {
                Error::format(
                    path,
                    format!(
                        "{full}: group without an 'encoding-type' attribute (written by anndata < 0.8? re-save it with a current anndata)"
                    ),
                )
            })?;
        let shape: Vec<usize> = g
            .attr("shape")
            .or_else(|_| g.attr("h5sparse_shape"))
            .and_then(|a| a.read_raw::<i64>())
            .map_err(|e| h5err(path, &format!("{full}: 'shape' attribute"), e))?
            .into_iter()
            .map(|x| x as usize)
            .collect();
        if shape.len() != 2 {
            return Err(Error::format(path, format!("{full}: shape attribute has {} dimensions, expected 2", shape.len())));
        }
        let get = |n: &str| g.dataset(n).map_err(|e| h5err(path, &format!("{full}/{n}"), e));
        let data = read_f32(path, lim, &get("data")?, &format!("{full}/data"))?;
        let indices: Vec<u32> = read_u32(path, lim, &get("indices")?, &format!("{full}/indices"))?;
        let indptr = read_usize(path, lim, &get("indptr")?, &format!("{full}/indptr"))?;
        let m = match enc.as_str() {
            "csr_matrix" => Csr { n_rows: shape[0], n_cols: shape[1], indptr, indices, data },
            "csc_matrix" => Csr { n_rows: shape[1], n_cols: shape[0], indptr, indices, data },
            other => return Err(Error::format(path, format!("{full}: unsupported encoding-type '{other}'"))),
        };
        m.validate_structure().map_err(|e| Error::format(path, format!("{full}: {e}")))?;
        return Ok(if enc == "csc_matrix" { m.transpose() } else { m });
    }
    let ds = parent.dataset(name).map_err(|e| h5err(path, &full, e))?;
    let shape = ds.shape();
    if shape.len() != 2 {
        return Err(Error::format(path, format!("{full}: dense array has {} dimensions, expected 2", shape.len())));
    }
    read_dense_rows(path, lim, &ds, &full, shape[0], shape[1])
}

/// A dense 2-d dataset read in blocks of rows into CSR: memory for one block and the
/// non-zeros, not for the whole dense array.
fn read_dense_rows(path: &Path, lim: &Limits, ds: &hdf5::Dataset, what: &str, n_rows: usize, n_cols: usize) -> Result<Csr> {
    guard(path, ds, what, 4, lim)?;
    let block = ((16usize << 20) / n_cols.max(1)).clamp(1, n_rows.max(1));
    let (mut indptr, mut indices, mut data) = (Vec::with_capacity(n_rows + 1), Vec::new(), Vec::new());
    indptr.push(0usize);
    let mut start = 0;
    while start < n_rows {
        let end = (start + block).min(n_rows);
        let a = ds.read_slice_2d::<f32, _>((start..end, ..)).map_err(|e| h5err(path, what, e))?;
        for row in a.rows() {
            for (j, &v) in row.iter().enumerate() {
                if v != 0.0 {
                    indices.push(j as u32);
                    data.push(v);
                }
            }
            indptr.push(data.len());
        }
        start = end;
    }
    Ok(Csr { n_rows, n_cols, indptr, indices, data })
}

/// Names of a dataframe group (obs / var): the `_index` attribute names the column.
pub(crate) fn read_index(path: &Path, lim: &Limits, df: &hdf5::Group) -> Result<Vec<String>> {
    let col = attr_string(df, "_index").unwrap_or_else(|| "_index".to_string());
    let ds = df.dataset(&col).map_err(|e| h5err(path, &format!("{}/{col} (dataframe index)", df.name()), e))?;
    read_strings(path, lim, &ds, &format!("{}/{col}", df.name()))
}

/// An obs column as strings: categorical (codes + categories), strings, or numbers.
pub(crate) fn read_obs_column(path: &Path, lim: &Limits, obs: &hdf5::Group, key: &str) -> Result<Vec<String>> {
    if !obs.link_exists(key) {
        let mut cols: Vec<String> = obs.member_names().unwrap_or_default();
        let idx = attr_string(obs, "_index").unwrap_or_default();
        cols.retain(|c| c != &idx && c != "__categories");
        return Err(Error::format(path, format!("obs has no column '{key}' (available: {})", cols.join(", "))));
    }
    let what = format!("obs/{key}");
    if let Ok(g) = obs.group(key) {
        let cats_ds = g.dataset("categories").map_err(|e| h5err(path, &format!("{what}/categories"), e))?;
        let cats = match read_strings(path, lim, &cats_ds, &format!("{what}/categories")) {
            Ok(c) => c,
            Err(_) => read_f32(path, lim, &cats_ds, &format!("{what}/categories"))?.iter().map(|v| v.to_string()).collect(),
        };
        let codes_ds = g.dataset("codes").map_err(|e| h5err(path, &format!("{what}/codes"), e))?;
        guard(path, &codes_ds, &format!("{what}/codes"), 8, lim)?;
        let codes = codes_ds.read_raw::<i64>().map_err(|e| h5err(path, &format!("{what}/codes"), e))?;
        return codes
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                if c < 0 {
                    Err(Error::data(format!("{}: {what}: cell {i} has a missing label (code -1)", path.display())))
                } else {
                    cats.get(c as usize)
                        .cloned()
                        .ok_or_else(|| Error::format(path, format!("{what}: code {c} >= {} categories", cats.len())))
                }
            })
            .collect();
    }
    let ds = obs.dataset(key).map_err(|e| h5err(path, &what, e))?;
    match read_strings(path, lim, &ds, &what) {
        Ok(s) => Ok(s),
        Err(_) => Ok(read_f32(path, lim, &ds, &what)?.iter().map(|v| v.to_string()).collect()),
    }
}

/// Where the matrix `opts` asks for lives: its parent group and name, and the var
/// dataframe naming its columns.
fn locate(path: &Path, root: &hdf5::Group, opts: &ReadOptions) -> Result<(hdf5::Group, String, hdf5::Group)> {
    if opts.use_raw && opts.layer.is_some() {
        return Err(Error::config("layer", opts.layer.clone().unwrap_or_default(), "use either a layer or raw, not both"));
    }
    if opts.use_raw {
        let raw = root.group("raw").map_err(|_| Error::format(path, "use_raw: the file has no 'raw' group"))?;
        let var = raw.group("var").map_err(|e| h5err(path, "raw/var", e))?;
        return Ok((raw, "X".into(), var));
    }
    let var = root.group("var").map_err(|e| h5err(path, "var", e))?;
    match &opts.layer {
        Some(l) => {
            let layers = root.group("layers").map_err(|_| Error::format(path, "the file has no 'layers' group"))?;
            if !layers.link_exists(l) {
                let names = layers.member_names().unwrap_or_default();
                return Err(Error::format(
                    path,
                    format!("no layer '{l}' (available: {})", if names.is_empty() { "none".into() } else { names.join(", ") }),
                ));
            }
            Ok((layers, l.clone(), var))
        }
        None => Ok((root.clone(), "X".into(), var)),
    }
}

/// Cell names, gene names, labels and batches.
type Names = (Vec<String>, Vec<String>, Option<Vec<String>>, Option<Vec<String>>);

/// Cell names, gene names, labels and batches (obs columns) of the file, checked against the
/// matrix's shape.
fn read_names(path: &Path, opts: &ReadOptions, root: &hdf5::Group, var: &hdf5::Group, n_rows: usize, n_cols: usize) -> Result<Names> {
    let lim = &opts.limits;
    let genes = read_index(path, lim, var)?;
    let obs = root.group("obs").map_err(|e| h5err(path, "obs", e))?;
    let cells = read_index(path, lim, &obs)?;
    let labels = match &opts.label_key {
        Some(k) => Some(read_obs_column(path, lim, &obs, k)?),
        None => None,
    };
    let batches = match &opts.batch_key {
        Some(k) => Some(read_obs_column(path, lim, &obs, k)?),
        None => None,
    };
    if cells.len() != n_rows || genes.len() != n_cols {
        return Err(Error::format(
            path,
            format!(
                "names do not match the matrix: {} obs names and {} var names for a {n_rows} x {n_cols} matrix",
                cells.len(),
                genes.len()
            ),
        ));
    }
    Ok((cells, genes, labels, batches))
}

pub fn read_h5ad(path: &Path, opts: &ReadOptions) -> Result<Dataset> {
    let f = open(path)?;
    let (parent, name, var) = locate(path, &f, opts)?;
    read_whole(path, opts, &f, &parent, &name, &var)
}

/// The matrix `parent/name` and the names of the opened file `f`.
fn read_whole(path: &Path, opts: &ReadOptions, f: &hdf5::File, parent: &hdf5::Group, name: &str, var: &hdf5::Group) -> Result<Dataset> {
    let x = read_matrix(path, &opts.limits, parent, name)?;
    let (cells, genes, labels, batches) = read_names(path, opts, f, var, x.n_rows, x.n_cols)?;
    Ok(Dataset { x, cells, genes, labels, batches, source: path.display().to_string() })
}

/// A csr_matrix group read in blocks of rows of about `block_nnz` values each.
pub(crate) struct CsrRows {
    path: std::path::PathBuf,
    what: String,
    data: hdf5::Dataset,
    indices: hdf5::Dataset,
    indptr: Vec<usize>,
    n_cols: usize,
    block_nnz: usize,
}

impl CsrRows {
    /// The matrix `opts` asks for as row blocks, when it is a csr_matrix group of at least
    /// `min_nnz` values (None: another encoding, or small enough to read whole).
    fn open(path: &Path, lim: &Limits, parent: &hdf5::Group, name: &str, min_nnz: u64) -> Result<Option<CsrRows>> {
        let Ok(g) = parent.group(name) else { return Ok(None) };
        if attr_string(&g, "encoding-type").as_deref() != Some("csr_matrix") {
            return Ok(None);
        }
        let what = format!("{}/{}", parent.name().trim_end_matches('/'), name);
        let get = |n: &str| g.dataset(n).map_err(|e| h5err(path, &format!("{what}/{n}"), e));
        let (data, indices) = (get("data")?, get("indices")?);
        if (data.size() as u64) < min_nnz {
            return Ok(None);
        }
        let shape: Vec<i64> =
            g.attr("shape").and_then(|a| a.read_raw::<i64>()).map_err(|e| h5err(path, &format!("{what}: 'shape' attribute"), e))?;
        let (n_rows, n_cols) = match shape[..] {
            [r, c] if r >= 0 && c >= 0 && c <= u32::MAX as i64 => (r as usize, c as usize),
            _ => return Err(Error::format(path, format!("{what}: shape attribute {shape:?} is not two sizes"))),
        };
        guard(path, &data, &format!("{what}/data"), 4, lim)?;
        guard(path, &indices, &format!("{what}/indices"), 4, lim)?;
        let indptr = read_usize(path, lim, &get("indptr")?, &format!("{what}/indptr"))?;
        let nnz = data.size();
        if indptr.len() != n_rows + 1
            || indptr[0] != 0
            || indptr[n_rows] != nnz
            || indices.size() != nnz
            || indptr.windows(2).any(|w| w[0] > w[1])
        {
            return Err(Error::format(
                path,
                format!(
                    "{what}: indptr ({} entries, ending at {:?}) does not describe {n_rows} rows of {nnz} values and {} indices",
                    indptr.len(),
                    indptr.last(),
                    indices.size()
                ),
            ));
        }
        Ok(Some(CsrRows { path: path.to_path_buf(), what, data, indices, indptr, n_cols, block_nnz: 1 << 22 }))
    }
}

impl crate::preprocess::stream::RowBlocks for CsrRows {
    fn n_rows(&self) -> usize {
        self.indptr.len() - 1
    }
    fn n_cols(&self) -> usize {
        self.n_cols
    }
    fn for_each_block(&mut self, f: &mut dyn FnMut(usize, &Csr) -> Result<()>) -> Result<()> {
        let (path, what, n) = (&self.path, &self.what, self.n_rows());
        let mut r0 = 0;
        while r0 < n {
            let a = self.indptr[r0];
            // at least one row, then as many as fit in block_nnz values
            let r1 = (r0 + 1).max(self.indptr.partition_point(|&p| p <= a + self.block_nnz).saturating_sub(1)).min(n);
            let b = self.indptr[r1];
            let data = self.data.read_slice_1d::<f32, _>(a..b).map_err(|e| h5err(path, &format!("{what}/data"), e))?.to_vec();
            let raw = self.indices.read_slice_1d::<i64, _>(a..b).map_err(|e| h5err(path, &format!("{what}/indices"), e))?;
            let mut indices = Vec::with_capacity(raw.len());
            for &j in raw.iter() {
                if j < 0 || j as u64 >= self.n_cols as u64 {
                    return Err(Error::format(
                        path,
                        format!("{what}/indices: column index {j} is out of range for {} columns", self.n_cols),
                    ));
                }
                indices.push(j as u32);
            }
            let block =
                Csr { n_rows: r1 - r0, n_cols: self.n_cols, indptr: self.indptr[r0..=r1].iter().map(|p| p - a).collect(), indices, data };
            f(r0, &block)?;
            r0 = r1;
        }
        Ok(())
    }
}

/// Whether `read_h5ad_for_run` reads the matrix `opts` asks for in blocks of rows when the
/// preprocessing lets it: a csr_matrix of at least `min_nnz` values.
pub(crate) fn reads_in_blocks(path: &Path, opts: &ReadOptions, min_nnz: u64) -> Result<bool> {
    let f = open(path)?;
    let (parent, name, _) = locate(path, &f, opts)?;
    Ok(CsrRows::open(path, &opts.limits, &parent, &name, min_nnz)?.is_some())
}

/// What `super::read_for_run` reads from an .h5ad: the matrix whole, or (a csr_matrix of
/// at least `opts.stream_min_nnz` values whose HVG selection keeps at most half of the
/// genes) preprocessed block by block, holding only the kept cells and selected genes.
pub(crate) fn read_h5ad_for_run(
    path: &Path,
    opts: &ReadOptions,
    pre: &crate::preprocess::PreprocessConfig,
    keep_counts: bool,
) -> Result<super::Input> {
    use crate::preprocess::stream::{prepare_streamed, streamable, RowBlocks};
    let start = std::time::Instant::now();
    let f = open(path)?;
    let (parent, name, var) = locate(path, &f, opts)?;
    let rows = match opts.stream_min_nnz {
        // HVGs per batch need each batch's moments: such inputs are read whole
        Some(min)
            if streamable(pre)
                && pre.hvg_flavor.is_some()
                && !(pre.hvg_per_batch && (opts.batch_key.is_some() || opts.batches_file.is_some())) =>
        {
            CsrRows::open(path, &opts.limits, &parent, &name, min)?.filter(|r| pre.n_top_genes.saturating_mul(2) <= r.n_cols())
        }
        _ => None,
    };
    let Some(mut rows) = rows else {
        return read_whole(path, opts, &f, &parent, &name, &var).map(super::Input::Whole);
    };
    let (cells, mut genes, mut labels, mut batches) = read_names(path, opts, &f, &var, rows.n_rows(), rows.n_cols())?;
    let source = path.display().to_string();
    if let Some(l) = &opts.labels_file {
        labels = Some(super::text::labels_for_cells(Path::new(l), &cells, &opts.limits)?);
    }
    if let Some(b) = &opts.batches_file {
        batches = Some(super::text::values_for_cells(Path::new(b), &cells, &opts.limits, "batch")?);
    }
    crate::matrix::validate_names(&source, &cells, &genes, labels.as_deref(), rows.n_rows(), rows.n_cols())?;
    crate::matrix::validate_batches(&source, &cells, batches.as_deref())?;
    let mut notes = Vec::new();
    if let Some((unique, msg)) = crate::matrix::unique_gene_names(&source, &genes) {
        genes = unique;
        notes.push(msg);
    }
    let names =
        crate::preprocess::Names { cells: &cells, genes: &genes, labels: labels.as_deref(), batches: batches.as_deref(), source: &source };
    let prep = crate::device::with_threads(|| prepare_streamed(&mut rows, &names, pre, keep_counts))?;
    notes.push(format!(
        "read {} cells x {} genes in blocks of rows: kept {} cells x {} selected genes",
        cells.len(),
        genes.len(),
        prep.n_cells(),
        prep.n_genes()
    ));
    Ok(super::Input::Prepared(Box::new(super::StreamedInput {
        prep,
        n_cells: cells.len(),
        genes,
        notes,
        seconds: start.elapsed().as_secs_f64(),
    })))
}

// ---------------------------------------------------------------- writing

/// What scdeep adds to a copy of an input .h5ad.
pub struct H5adResults<'a> {
    /// Method name: results go to `obsm['X_<method>']`, `obs['<method>_clusters']`, `uns['scdeep'][method]`.
    pub method: &'a str,
    /// cells x dims, row-major.
    pub embedding: &'a [f32],
    pub dims: usize,
    /// One per cell; negative = missing (a cell the filter removed).
    pub labels: &'a [i64],
    /// `uns['scdeep'][method]` (`results::uns_entry`): objects become dicts, strings
    /// and numbers scalars, arrays of numbers (null = NaN) arrays, of strings string arrays.
    pub uns: &'a serde_json::Value,
    /// An imputed matrix over all cells and genes of the file (`layers['<name>']`, CSR), and
    /// which genes it imputed (`var['<name>']`, bool).
    pub imputed: Option<(&'a str, &'a Csr, &'a [bool])>,
}

fn write_csr(parent: &hdf5::Group, name: &str, m: &Csr) -> hdf5::Result<()> {
    let g = parent.create_group(name)?;
    set_encoding(&g, "csr_matrix", "0.1.0")?;
    g.new_attr_builder().with_data(&[m.n_rows as i64, m.n_cols as i64][..]).create("shape")?;
    g.new_dataset_builder().with_data(&m.data[..]).create("data")?;
    let idx: Vec<i32> = m.indices.iter().map(|&v| v as i32).collect();
    g.new_dataset_builder().with_data(&idx[..]).create("indices")?;
    let ptr: Vec<i64> = m.indptr.iter().map(|&v| v as i64).collect();
    g.new_dataset_builder().with_data(&ptr[..]).create("indptr")?;
    Ok(())
}

/// Append `col` to a dataframe group's column-order attribute.
fn add_column_order(df: &hdf5::Group, col: &str) -> hdf5::Result<()> {
    let mut order: Vec<String> = match df.attr("column-order").and_then(|a| a.read_raw::<VarLenUnicode>()) {
        Ok(v) => v.iter().map(|s| s.as_str().to_string()).collect(),
        Err(_) => vec![],
    };
    if !order.iter().any(|c| c == col) {
        order.push(col.to_string());
    }
    df.delete_attr("column-order").ok();
    let ov: Vec<VarLenUnicode> = order.iter().map(|s| vstr(s)).collect();
    df.new_attr_builder().with_data(&ov[..]).create("column-order")?;
    Ok(())
}

fn vstr(s: &str) -> VarLenUnicode {
    s.parse::<VarLenUnicode>().expect("strings without NUL")
}

fn set_attr_str(loc: &hdf5::Location, name: &str, value: &str) -> hdf5::Result<()> {
    if loc.attr(name).is_ok() {
        loc.delete_attr(name)?;
    }
    loc.new_attr::<VarLenUnicode>().shape(()).create(name)?.write_scalar(&vstr(value))
}

fn set_encoding(loc: &hdf5::Location, ty: &str, ver: &str) -> hdf5::Result<()> {
    set_attr_str(loc, "encoding-type", ty)?;
    set_attr_str(loc, "encoding-version", ver)
}

fn replace_group(parent: &hdf5::Group, name: &str) -> hdf5::Result<hdf5::Group> {
    if parent.link_exists(name) {
        parent.unlink(name)?;
    }
    parent.create_group(name)
}

fn ensure_dict(parent: &hdf5::Group, name: &str) -> hdf5::Result<hdf5::Group> {
    if parent.link_exists(name) {
        if let Ok(g) = parent.group(name) {
            return Ok(g);
        }
        parent.unlink(name)?;
    }
    let g = parent.create_group(name)?;
    set_encoding(&g, "dict", "0.1.0")?;
    Ok(g)
}

fn write_str_array(g: &hdf5::Group, name: &str, values: &[String]) -> hdf5::Result<()> {
    let v: Vec<VarLenUnicode> = values.iter().map(|s| vstr(s)).collect();
    let ds = g.new_dataset_builder().with_data(&v[..]).create(name)?;
    set_encoding(&ds, "string-array", "0.2.0")
}

/// Write `input` + results to `output` atomically (temp file, then rename).
pub fn write_h5ad_results(input: &Path, output: &Path, r: &H5adResults) -> Result<()> {
    let out = super::AtomicFile::new(output)?;
    let tmp = out.tmp_path().to_path_buf();
    // libhdf5 parses the input again here (obs, and the groups results go to): bounded
    // in a child process as the readers are.
    super::isolate::run(input, &Limits::default(), || {
        // Validate the input is an h5ad we understand before copying it.
        let n_obs = {
            let f = open(input)?;
            let obs = f.group("obs").map_err(|e| h5err(input, "obs", e))?;
            read_index(input, &Limits::default(), &obs)?.len()
        };
        check_sizes(input, n_obs, r)?;
        // A byte copy into a new file: the output gets the usual mode (0666 less the umask),
        // not the input's (a read-only input would give a copy HDF5 cannot open to write).
        {
            let mut src = std::fs::File::open(input).map_err(|e| Error::io(input, e))?;
            let mut dst = std::fs::File::create(&tmp).map_err(|e| Error::io(output, e))?;
            std::io::copy(&mut src, &mut dst).map_err(|e| Error::io(output, e))?;
        }
        add_results(&tmp, output, n_obs, r)
    })?;
    out.commit()
}

fn check_sizes(file: &Path, n_obs: usize, r: &H5adResults) -> Result<()> {
    if r.labels.len() != n_obs || r.embedding.len() != n_obs * r.dims || r.imputed.is_some_and(|(_, m, _)| m.n_rows != n_obs) {
        return Err(Error::data(format!(
            "{}: results for {} cells (embedding {} values, {} dims) do not match the file's {} cells",
            file.display(),
            r.labels.len(),
            r.embedding.len(),
            r.dims,
            n_obs
        )));
    }
    Ok(())
}

/// Add `r` to the .h5ad at `path` (n_obs cells) in place; errors name `output`.
fn add_results(path: &Path, output: &Path, n_obs: usize, r: &H5adResults) -> Result<()> {
    let we = |e: hdf5::Error| Error::io(output, format!("writing results: {e}"));
    let f = hdf5::File::open_rw(path).map_err(we)?;
    let obsm = ensure_dict(&f, "obsm").map_err(we)?;
    let key = format!("X_{}", r.method);
    if obsm.link_exists(&key) {
        obsm.unlink(&key).map_err(we)?;
    }
    let ds = obsm.new_dataset::<f32>().shape([n_obs, r.dims]).create(key.as_str()).map_err(we)?;
    ds.write_raw(r.embedding).map_err(we)?;
    set_encoding(&ds, "array", "0.2.0").map_err(we)?;

    // obs['<method>_clusters'] as a categorical of strings "0", "1", ...
    let obs = f.group("obs").map_err(we)?;
    let col = format!("{}_clusters", r.method);
    let g = replace_group(&obs, &col).map_err(we)?;
    set_encoding(&g, "categorical", "0.2.0").map_err(we)?;
    g.new_attr::<bool>().shape(()).create("ordered").and_then(|a| a.write_scalar(&false)).map_err(we)?;
    // Negative labels (cells removed by the filter) are missing values: code -1.
    let mut cats: Vec<i64> = r.labels.iter().copied().filter(|&l| l >= 0).collect();
    cats.sort_unstable();
    cats.dedup();
    let cat_names: Vec<String> = cats.iter().map(|c| c.to_string()).collect();
    write_str_array(&g, "categories", &cat_names).map_err(we)?;
    let codes: Vec<i32> = r.labels.iter().map(|l| cats.binary_search(l).map_or(-1, |c| c as i32)).collect();
    let cds = g.new_dataset_builder().with_data(&codes[..]).create("codes").map_err(we)?;
    set_encoding(&cds, "array", "0.2.0").map_err(we)?;
    add_column_order(&obs, &col).map_err(we)?;

    if let Some((name, m, genes)) = r.imputed {
        let layers = ensure_dict(&f, "layers").map_err(we)?;
        if layers.link_exists(name) {
            layers.unlink(name).map_err(we)?;
        }
        write_csr(&layers, name, m).map_err(we)?;
        let var = f.group("var").map_err(we)?;
        let n_var = read_index(output, &Limits::default(), &var)?.len();
        if n_var != m.n_cols {
            return Err(Error::data(format!("{}: the imputed matrix has {} genes, var has {n_var} (was the input read from raw/X?); the imputed values are in the run's imputed/ folder", output.display(), m.n_cols)));
        }
        if var.link_exists(name) {
            var.unlink(name).map_err(we)?;
        }
        let d = var.new_dataset_builder().with_data(genes).create(name).map_err(we)?;
        set_encoding(&d, "array", "0.2.0").map_err(we)?;
        add_column_order(&var, name).map_err(we)?;
    }

    let uns = ensure_dict(&f, "uns").map_err(we)?;
    let sc = ensure_dict(&uns, "scdeep").map_err(we)?;
    if sc.link_exists(r.method) {
        sc.unlink(r.method).map_err(we)?;
    }
    write_value(&sc, r.method, r.uns).map_err(we)?;
    Ok(())
}

/// A JSON value in AnnData's encoding: object -> dict, string -> string, number ->
/// numeric-scalar, bool -> numeric-scalar (bool), array of numbers/nulls -> float array
/// (NaN for null), array of strings -> string-array, other arrays -> their JSON text;
/// nulls are left out.
fn write_value(parent: &hdf5::Group, name: &str, v: &serde_json::Value) -> hdf5::Result<()> {
    use serde_json::Value;
    match v {
        Value::Null => Ok(()),
        Value::Object(m) => {
            let g = parent.create_group(name)?;
            set_encoding(&g, "dict", "0.1.0")?;
            m.iter().try_for_each(|(k, x)| write_value(&g, k, x))
        }
        Value::String(s) => {
            let d = parent.new_dataset::<VarLenUnicode>().shape(()).create(name)?;
            d.write_scalar(&vstr(s))?;
            set_encoding(&d, "string", "0.2.0")
        }
        Value::Bool(b) => {
            let d = parent.new_dataset::<bool>().shape(()).create(name)?;
            d.write_scalar(b)?;
            set_encoding(&d, "numeric-scalar", "0.2.0")
        }
        Value::Number(n) => {
            let d = match n.as_i64() {
                Some(i) => {
                    let d = parent.new_dataset::<i64>().shape(()).create(name)?;
                    d.write_scalar(&i)?;
                    d
                }
                None => {
                    let d = parent.new_dataset::<f64>().shape(()).create(name)?;
                    d.write_scalar(&n.as_f64().unwrap_or(f64::NAN))?;
                    d
                }
            };
            set_encoding(&d, "numeric-scalar", "0.2.0")
        }
        Value::Array(a) if a.iter().all(|x| x.is_number() || x.is_null()) => {
            let vals: Vec<f64> = a.iter().map(|x| x.as_f64().unwrap_or(f64::NAN)).collect();
            let d = parent.new_dataset_builder().with_data(&vals[..]).create(name)?;
            set_encoding(&d, "array", "0.2.0")
        }
        Value::Array(a) if a.iter().all(Value::is_string) => {
            let vals: Vec<String> = a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect();
            write_str_array(parent, name, &vals)
        }
        Value::Array(_) => write_value(parent, name, &Value::String(v.to_string())),
    }
}

/// Write a standalone .h5ad (used by the simulator and `preprocess`): X as CSR,
/// obs names (+ optional string columns), var names, optional layers.
pub fn write_h5ad_new(
    output: &Path,
    x: &Csr,
    cells: &[String],
    genes: &[String],
    obs_cols: &[(&str, &[String])],
    layers: &[(&str, &Csr)],
) -> Result<()> {
    let out = super::AtomicFile::new(output)?;
    write_new_into(out.tmp_path(), output, x, cells, genes, obs_cols, layers)?;
    out.commit()
}

/// A new .h5ad (as `write_h5ad_new`) with results added (as `write_h5ad_results`), in
/// one atomic write.
pub fn write_h5ad_new_with_results(
    output: &Path,
    x: &Csr,
    cells: &[String],
    genes: &[String],
    obs_cols: &[(&str, &[String])],
    r: &H5adResults,
) -> Result<()> {
    check_sizes(output, cells.len(), r)?;
    let out = super::AtomicFile::new(output)?;
    write_new_into(out.tmp_path(), output, x, cells, genes, obs_cols, &[])?;
    add_results(out.tmp_path(), output, cells.len(), r)?;
    out.commit()
}

fn write_new_into(
    path: &Path,
    output: &Path,
    x: &Csr,
    cells: &[String],
    genes: &[String],
    obs_cols: &[(&str, &[String])],
    layers: &[(&str, &Csr)],
) -> Result<()> {
    let we = |e: hdf5::Error| Error::io(output, format!("writing: {e}"));
    {
        let f = hdf5::File::create(path).map_err(we)?;
        set_encoding(&f, "anndata", "0.1.0").map_err(we)?;
        write_csr(&f, "X", x).map_err(we)?;
        let obs = f.create_group("obs").map_err(we)?;
        set_encoding(&obs, "dataframe", "0.2.0").map_err(we)?;
        set_attr_str(&obs, "_index", "_index").map_err(we)?;
        write_str_array(&obs, "_index", cells).map_err(we)?;
        for (name, vals) in obs_cols {
            // Categorical strings, as anndata stores pandas categoricals.
            let mut cats: Vec<String> = vals.to_vec();
            cats.sort();
            cats.dedup();
            let g = obs.create_group(name).map_err(we)?;
            set_encoding(&g, "categorical", "0.2.0").map_err(we)?;
            g.new_attr::<bool>().shape(()).create("ordered").and_then(|a| a.write_scalar(&false)).map_err(we)?;
            write_str_array(&g, "categories", &cats).map_err(we)?;
            let codes: Vec<i32> = vals.iter().map(|v| cats.binary_search(v).unwrap() as i32).collect();
            let c = g.new_dataset_builder().with_data(&codes[..]).create("codes").map_err(we)?;
            set_encoding(&c, "array", "0.2.0").map_err(we)?;
        }
        let order: Vec<VarLenUnicode> = obs_cols.iter().map(|(n, _)| vstr(n)).collect();
        if order.is_empty() {
            obs.new_attr::<f64>().shape([0]).create("column-order").map_err(we)?;
        } else {
            obs.new_attr_builder().with_data(&order[..]).create("column-order").map_err(we)?;
        }
        let var = f.create_group("var").map_err(we)?;
        set_encoding(&var, "dataframe", "0.2.0").map_err(we)?;
        set_attr_str(&var, "_index", "_index").map_err(we)?;
        var.new_attr::<f64>().shape([0]).create("column-order").map_err(we)?;
        write_str_array(&var, "_index", genes).map_err(we)?;
        let lg = ensure_dict(&f, "layers").map_err(we)?;
        for (name, m) in layers {
            write_csr(&lg, name, m).map_err(we)?;
        }
        for d in ["obsm", "varm", "obsp", "varp", "uns"] {
            ensure_dict(&f, d).map_err(we)?;
        }
    }
    Ok(())
}
