//! Readers (10x MTX, 10x HDF5, AnnData .h5ad, dense CSV/TSV) into one CSR matrix,
//! and writers (TSV, .npy, JSON, .h5ad with results). Every writer goes through
//! [`AtomicFile`]: a temporary name renamed on success, so no half-written output.

#[doc(hidden)]
mod h5ad;
mod isolate;
mod mtx;
pub mod output;
mod tenx_h5;
mod text;
pub mod write;

pub use h5ad::{write_h5ad_new, write_h5ad_new_with_results};
pub use h5ad::{write_h5ad_results, H5adResults};
pub use text::{read_labels_tsv, read_table_numeric};
pub use write::AtomicFile;

use crate::error::{Error, Result};
use crate::matrix::Dataset;
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// Decide from the path: a folder is 10x MTX, .h5ad AnnData, .h5 10x HDF5,
    /// .csv/.tsv/.txt (optionally .gz) a dense table.
    #[default]
    Auto,
    #[serde(alias = "10x")]
    Mtx,
    #[serde(alias = "10x_h5", alias = "h5")]
    TenxH5,
    H5ad,
    Csv,
    Tsv,
}

impl std::str::FromStr for Format {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "auto" => Format::Auto,
            "mtx" | "10x" => Format::Mtx,
            "10x_h5" | "h5" => Format::TenxH5,
            "h5ad" => Format::H5ad,
            "csv" => Format::Csv,
            "tsv" => Format::Tsv,
            _ => return Err(Error::config("format", s, "expected auto, mtx, 10x_h5, h5ad, csv or tsv")),
        })
    }
}

/// Orientation of a dense text table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Orientation {
    /// One row per cell, one column per gene (AnnData's layout).
    #[default]
    CellsByGenes,
    /// One row per gene, one column per cell (Seurat's and most GEO tables' layout).
    GenesByCells,
}

/// What to read and from where inside the file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReadOptions {
    pub format: Format,
    /// .h5ad: read `layers/<layer>` instead of `X`.
    pub layer: Option<String>,
    /// .h5ad: read `raw/X` (and `raw/var` names) instead of `X`.
    pub use_raw: bool,
    /// .h5ad: obs column holding ground-truth labels.
    pub label_key: Option<String>,
    /// A `barcode<TAB>label` file (header line) with ground-truth labels.
    pub labels_file: Option<String>,
    /// .h5ad: obs column holding each cell's batch (sample, donor, lane).
    pub batch_key: Option<String>,
    /// A `barcode<TAB>batch` file (header line) with each cell's batch.
    pub batches_file: Option<String>,
    /// Dense tables only.
    pub orientation: Orientation,
    /// Bounds on what a file may expand to (gzip ratio, line length).
    pub limits: Limits,
    /// `read_for_run`: an .h5ad whose X is a csr_matrix of at least this many values, and
    /// whose HVG selection keeps at most half of its genes, is preprocessed in blocks of
    /// rows, never held at full width (the same result as reading it whole). None: always
    /// read whole.
    pub stream_min_nnz: Option<u64>,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            format: Format::Auto,
            layer: None,
            use_raw: false,
            label_key: None,
            labels_file: None,
            batch_key: None,
            batches_file: None,
            orientation: Orientation::CellsByGenes,
            limits: Limits::default(),
            stream_min_nnz: Some(1 << 24),
        }
    }
}

impl ReadOptions {
    /// Options from a JSON object (what C's `scdeep_dataset_read` takes): ReadOptions'
    /// fields, plus `genes_in_rows` (true: orientation genes_by_cells). A wrong field is
    /// named with its value; unknown fields are refused.
    pub fn from_json(v: &serde_json::Value) -> Result<ReadOptions> {
        let shown: String = v.to_string().chars().take(200).collect();
        let mut v = v.clone();
        let obj = v.as_object_mut().ok_or_else(|| Error::config("read options", shown, "must be a JSON object"))?;
        if let Some(g) = obj.remove("genes_in_rows") {
            let rows = g.as_bool().ok_or_else(|| Error::config("genes_in_rows", &g, "must be true or false"))?;
            obj.insert("orientation".into(), serde_json::json!(if rows { "genes_by_cells" } else { "cells_by_genes" }));
        }
        crate::error::from_json_at("", v)
    }
}

/// What `read_for_run` gives: the dataset, or its preprocessed cells when it was read in
/// blocks of rows.
pub enum Input {
    Whole(Dataset),
    Prepared(Box<StreamedInput>),
}

/// An input preprocessed while it was read (`ReadOptions::stream_min_nnz`).
pub struct StreamedInput {
    pub prep: crate::preprocess::Prepared<'static>,
    /// The input's cells and (unique) gene names, for placing results back on them.
    pub n_cells: usize,
    pub genes: Vec<String>,
    /// What the reader has to say (genes renamed, the blocks read).
    pub notes: Vec<String>,
    /// Seconds the read and the preprocessing took.
    pub seconds: f64,
}

/// What a reader accepts before it allocates: hostile or broken files get an error
/// naming the file instead of exhausting memory.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// A gzip stream may expand to at most this many times the compressed bytes read
    /// so far (after the first `min_decompressed_bytes`). Real 10x files expand 2-11x.
    pub max_decompression_ratio: u64,
    /// Decompressed bytes always allowed, whatever the ratio.
    pub min_decompressed_bytes: u64,
    /// Longest line of a text file (MTX, TSV/CSV tables, names, labels).
    pub max_line_bytes: usize,
    /// Read (and add results to) HDF5 files in a child process bounded in memory and
    /// time, so that a corrupt file that makes libhdf5 loop or allocate without end
    /// gives an error instead of a hung or killed run (Linux; elsewhere in process).
    pub hdf5_child: bool,
    /// Seconds that child may take, plus one per 10 MB of file.
    pub hdf5_timeout_s: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_decompression_ratio: 100,
            min_decompressed_bytes: 64 << 20,
            max_line_bytes: 64 << 20,
            hdf5_child: true,
            hdf5_timeout_s: 30.0,
        }
    }
}

impl Limits {
    pub fn validate(&self) -> Result<()> {
        if self.max_decompression_ratio < 1 {
            return Err(Error::config("limits.max_decompression_ratio", self.max_decompression_ratio, "must be >= 1"));
        }
        if self.max_line_bytes < 1024 {
            return Err(Error::config("limits.max_line_bytes", self.max_line_bytes, "must be >= 1024"));
        }
        if !(self.hdf5_timeout_s.is_finite() && self.hdf5_timeout_s > 0.0) {
            return Err(Error::config("limits.hdf5_timeout_s", self.hdf5_timeout_s, "must be a number of seconds > 0"));
        }
        Ok(())
    }
}

pub fn detect_format(path: &Path) -> Result<Format> {
    if path.is_dir() {
        return Ok(Format::Mtx);
    }
    let name = path.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
    let name = name.strip_suffix(".gz").unwrap_or(&name);
    if name.ends_with(".h5ad") {
        Ok(Format::H5ad)
    } else if name.ends_with(".h5") || name.ends_with(".hdf5") {
        Ok(Format::TenxH5)
    } else if name.ends_with(".csv") {
        Ok(Format::Csv)
    } else if name.ends_with(".tsv") || name.ends_with(".txt") {
        Ok(Format::Tsv)
    } else if name.ends_with(".mtx") {
        Ok(Format::Mtx)
    } else {
        Err(Error::format(
            path,
            "unknown input format: expected a 10x folder (matrix.mtx[.gz]), .h5ad, .h5 (10x), .csv or .tsv; pass --format to override",
        ))
    }
}

/// `read` for a run with the preprocessing `pre` (and the counts kept when
/// `keep_counts`): a large, wide .h5ad (`ReadOptions::stream_min_nnz`) is preprocessed
/// while it is read; anything else is read whole.
pub fn read_for_run(path: &Path, opts: &ReadOptions, pre: &crate::preprocess::PreprocessConfig, keep_counts: bool) -> Result<Input> {
    if check_request(path, opts)? == Format::H5ad && opts.stream_min_nnz.is_some() {
        return match isolate::run(path, &opts.limits, || h5ad::read_h5ad_for_run(path, opts, pre, keep_counts))? {
            Input::Whole(ds) => finish(ds, opts).map(Input::Whole),
            streamed => Ok(streamed),
        };
    }
    read(path, opts).map(Input::Whole)
}

/// A consensus's members reading one large .h5ad (`pipeline::run_path`): each member
/// reads the file again with its own preprocessing, in blocks of rows where
/// [`read_for_run`] would (else whole, its matrix normalised in place), so that the run
/// holds one member's matrix at a time, never the input and a member's copy together.
pub struct MemberReads {
    path: std::path::PathBuf,
    opts: ReadOptions,
    /// The input's number of cells and (unique) gene names, once a member has read them.
    pub shape: Option<(usize, Vec<String>)>,
}

impl MemberReads {
    /// The reads of `path`, when it is an .h5ad whose matrix is a csr_matrix of at least
    /// `opts.stream_min_nnz` values; None for anything else, which is better read once
    /// and shared ([`read_for_run`] and `pipeline::run`).
    pub fn open(path: &Path, opts: &ReadOptions) -> Result<Option<MemberReads>> {
        let Some(min) = opts.stream_min_nnz else { return Ok(None) };
        if check_request(path, opts)? != Format::H5ad || !isolate::run(path, &opts.limits, || h5ad::reads_in_blocks(path, opts, min))? {
            return Ok(None);
        }
        Ok(Some(MemberReads { path: path.to_path_buf(), opts: opts.clone(), shape: None }))
    }
}

impl crate::preprocess::Source<'static> for MemberReads {
    fn prepare(&mut self, cfg: &crate::preprocess::PreprocessConfig, keep_counts: bool) -> Result<crate::preprocess::Sourced<'static>> {
        let (prep, n_cells, genes, notes) = match read_for_run(&self.path, &self.opts, cfg, keep_counts)? {
            Input::Prepared(s) => {
                let StreamedInput { prep, n_cells, genes, notes, .. } = *s;
                (prep, n_cells, genes, notes)
            }
            Input::Whole(mut ds) => {
                let notes = ds.make_genes_unique().into_iter().collect();
                let (n_cells, genes) = (ds.n_cells(), ds.genes.clone());
                (crate::preprocess::prepare(ds, cfg, keep_counts)?, n_cells, genes, notes)
            }
        };
        let n_genes = genes.len();
        self.shape.get_or_insert((n_cells, genes));
        Ok(crate::preprocess::Sourced { prep, n_genes, notes })
    }
}

/// The input's format, once the path exists and the options fit it.
fn check_request(path: &Path, opts: &ReadOptions) -> Result<Format> {
    if !path.exists() {
        return Err(Error::io(path, "no such file or directory"));
    }
    let fmt = if opts.format == Format::Auto { detect_format(path)? } else { opts.format };
    if opts.format != Format::H5ad && fmt != Format::H5ad {
        if opts.layer.is_some() || opts.use_raw {
            return Err(Error::config("layer", opts.layer.clone().unwrap_or("raw".into()), "layers and raw exist only in .h5ad input"));
        }
        if opts.label_key.is_some() {
            return Err(Error::config(
                "label_key",
                opts.label_key.clone().unwrap(),
                "a label column exists only in .h5ad input; use labels_file (--labels) for other formats",
            ));
        }
        if let Some(k) = &opts.batch_key {
            return Err(Error::config(
                "batch_key",
                k,
                "a batch column exists only in .h5ad input; use batches_file (--batches) for other formats",
            ));
        }
    }
    opts.limits.validate()?;
    Ok(fmt)
}

/// Labels from `labels_file`, and the dataset's checks.
fn finish(mut ds: Dataset, opts: &ReadOptions) -> Result<Dataset> {
    if let Some(f) = &opts.labels_file {
        ds.labels = Some(text::labels_for_cells(Path::new(f), &ds.cells, &opts.limits)?);
    }
    if let Some(f) = &opts.batches_file {
        ds.batches = Some(text::values_for_cells(Path::new(f), &ds.cells, &opts.limits, "batch")?);
    }
    ds.validate()?;
    Ok(ds)
}

/// An embedding written by a run or by anyone: an .npy of cells x dims float32 (rows named
/// by their number), or a .csv / .tsv table with the cells' names in its first column.
/// Returns (cells, row-major values, dims).
pub fn read_embedding(p: &Path) -> Result<(Vec<String>, Vec<f32>, usize)> {
    if p.extension().is_some_and(|e| e == "npy") {
        let (v, shape) = write::read_npy_f32(p)?;
        if shape.len() != 2 {
            return Err(Error::format(p, format!("expected a 2-d array, got shape {shape:?}")));
        }
        let cells = (0..shape[0]).map(|i| i.to_string()).collect();
        Ok((cells, v, shape[1]))
    } else {
        let sep = if p.extension().is_some_and(|e| e == "csv") { b',' } else { b'\t' };
        let (rows, cols, v) = read_table_numeric(p, sep)?;
        Ok((rows, v, cols.len()))
    }
}

/// Read a count matrix with names (and labels when asked) and validate it.
pub fn read(path: &Path, opts: &ReadOptions) -> Result<Dataset> {
    let fmt = check_request(path, opts)?;
    let lim = &opts.limits;
    let ds = match fmt {
        Format::Mtx => mtx::read_10x_mtx(path, lim)?,
        Format::TenxH5 => isolate::run(path, lim, || tenx_h5::read_10x_h5(path, lim))?,
        Format::H5ad => isolate::run(path, lim, || h5ad::read_h5ad(path, opts))?,
        Format::Csv => text::read_dense_table(path, b',', opts.orientation, lim)?,
        Format::Tsv => text::read_dense_table(path, b'\t', opts.orientation, lim)?,
        Format::Auto => return Err(Error::format(path, "unknown input format")),
    };
    finish(ds, opts)
}

/// Open a possibly gzip-compressed file for buffered reading (opened once, so pipes
/// and FIFOs work); a truncated gzip stream surfaces as an error on read, which callers
/// map to the file name, and so does a stream that expands past `lim`.
pub(crate) fn open_maybe_gz(path: &Path, lim: &Limits) -> Result<Box<dyn std::io::BufRead>> {
    use std::io::{BufRead, BufReader};
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    if f.metadata().is_ok_and(|m| m.is_dir()) {
        return Err(Error::io(path, "is a folder, expected a file"));
    }
    let counted = Counted { inner: f, n: std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0)) };
    let read_so_far = counted.n.clone();
    let mut b = BufReader::with_capacity(1 << 16, counted);
    let magic = b.fill_buf().map_err(|e| Error::io(path, e))?;
    if magic.len() >= 2 && magic[..2] == [0x1f, 0x8b] {
        let gz = flate2::read::MultiGzDecoder::new(b);
        let bounded = Bounded { inner: gz, out: 0, compressed: read_so_far, lim: *lim };
        Ok(Box::new(BufReader::with_capacity(1 << 16, bounded)))
    } else {
        Ok(Box::new(b))
    }
}

/// Counts the bytes read from the compressed file.
struct Counted<R> {
    inner: R,
    n: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl<R: std::io::Read> std::io::Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.n.fetch_add(k as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(k)
    }
}

/// Fails once the decompressed bytes exceed the ratio to the compressed bytes read.
struct Bounded<R> {
    inner: R,
    out: u64,
    compressed: std::sync::Arc<std::sync::atomic::AtomicU64>,
    lim: Limits,
}

impl<R: std::io::Read> std::io::Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.out += k as u64;
        let c = self.compressed.load(std::sync::atomic::Ordering::Relaxed);
        if self.out > self.lim.min_decompressed_bytes && self.out > c.saturating_mul(self.lim.max_decompression_ratio) {
            return Err(std::io::Error::other(format!(
                "gzip data expands more than {}x ({} bytes from {c}); a corrupt file or a decompression bomb? (limit: limits.max_decompression_ratio, --max-decompression-ratio)",
                self.lim.max_decompression_ratio, self.out
            )));
        }
        Ok(k)
    }
}

/// Lines of a text file, each at most `max_line_bytes`, with errors naming the file
/// and the line.
pub(crate) struct Lines<'a> {
    r: Box<dyn std::io::BufRead>,
    path: &'a Path,
    max: usize,
    /// 1-based number of the line last read.
    pub lineno: usize,
}

impl<'a> Lines<'a> {
    pub fn open(path: &'a Path, lim: &Limits) -> Result<Lines<'a>> {
        Ok(Lines { r: open_maybe_gz(path, lim)?, path, max: lim.max_line_bytes, lineno: 0 })
    }

    /// The next line without its line ending into `buf`; false at the end of the file.
    pub fn next_into(&mut self, buf: &mut String) -> Result<bool> {
        use std::io::{BufRead, Read};
        buf.clear();
        self.lineno += 1;
        let n = (&mut self.r)
            .take(self.max as u64 + 1)
            .read_line(buf)
            .map_err(|e| Error::format(self.path, format!("read failed at line {}: {e} (truncated, corrupt or not text?)", self.lineno)))?;
        if n == 0 {
            return Ok(false);
        }
        if n > self.max && !buf.ends_with('\n') {
            return Err(Error::format(
                self.path,
                format!("line {} is longer than {} bytes (limits.max_line_bytes); not a text table?", self.lineno, self.max),
            ));
        }
        if buf.ends_with('\n') {
            buf.pop();
            if buf.ends_with('\r') {
                buf.pop();
            }
        }
        Ok(true)
    }
}

/// A whole (small) text file, refused when it holds more than `max` bytes.
pub fn read_capped_string(path: &Path, max: u64) -> Result<String> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    if f.metadata().is_ok_and(|m| m.is_dir()) {
        return Err(Error::io(path, "is a folder, expected a file"));
    }
    let mut bytes = Vec::new();
    f.take(max + 1).read_to_end(&mut bytes).map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > max {
        return Err(Error::format(path, format!("larger than {max} bytes; not the small text file expected here")));
    }
    String::from_utf8(bytes).map_err(|e| Error::format(path, format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to())))
}

/// Fail with a clear message when an allocation of `bytes` for `what` cannot fit in
/// this machine's memory (total RAM, or the cgroup limit when lower). Sizes read from
/// file headers pass through here before anything is allocated.
pub fn check_memory(what: &str, bytes: u128) -> Result<()> {
    let total = memory_limit_bytes();
    if bytes > total as u128 {
        return Err(Error::data(format!(
            "{what} would need {:.1} GB, more than this machine's {:.1} GB of memory",
            bytes as f64 / 1e9,
            total as f64 / 1e9
        )));
    }
    Ok(())
}

/// Total memory available to this process: MemTotal, or the cgroup v2 limit if lower
/// (read once).
pub fn memory_limit_bytes() -> u64 {
    static TOTAL: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TOTAL.get_or_init(read_memory_limit)
}

fn read_memory_limit() -> u64 {
    let mut total = u64::MAX;
    if let Ok(s) = std::fs::read_to_string("/proc/meminfo") {
        if let Some(kb) =
            s.lines().find(|l| l.starts_with("MemTotal:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse::<u64>().ok())
        {
            total = kb.saturating_mul(1024);
        }
    }
    if let Ok(s) = std::fs::read_to_string("/sys/fs/cgroup/memory.max") {
        if let Ok(v) = s.trim().parse::<u64>() {
            total = total.min(v);
        }
    }
    if total == u64::MAX {
        total = 1 << 40;
    }
    total
}

#[cfg(test)]
mod read_options_tests {
    use super::*;
    use serde_json::json;

    /// C's options: ReadOptions' fields, the CLI's format names, genes_in_rows; a wrong
    /// or unknown field is an option error that names it.
    #[test]
    fn read_options_from_json() {
        let o = ReadOptions::from_json(
            &json!({"format": "10x_h5", "label_key": "cell_type", "genes_in_rows": true, "limits": {"max_line_bytes": 4096}}),
        )
        .unwrap();
        assert_eq!(
            (o.format, o.orientation, o.label_key.as_deref(), o.limits.max_line_bytes),
            (Format::TenxH5, Orientation::GenesByCells, Some("cell_type"), 4096)
        );
        assert_eq!(o.stream_min_nnz, ReadOptions::default().stream_min_nnz);
        assert_eq!(ReadOptions::from_json(&json!({"format": "10x"})).unwrap().format, Format::Mtx);
        for (bad, field) in [
            (json!({"colour": 1}), "colour"),
            (json!({"use_raw": "yes"}), "use_raw"),
            (json!({"genes_in_rows": 1}), "genes_in_rows"),
            (json!([1]), "read options"),
        ] {
            let e = ReadOptions::from_json(&bad).unwrap_err();
            assert!(matches!(e, Error::Config { .. }) && e.to_string().contains(field), "{bad}: {e}");
        }
    }
}
