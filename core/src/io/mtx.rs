//! 10x Genomics MTX folder: matrix.mtx[.gz] (genes x cells), features.tsv[.gz] or
//! genes.tsv[.gz], barcodes.tsv[.gz].

use super::{check_memory, Limits, Lines};
use crate::error::{Error, Result};
use crate::matrix::{Csr, Dataset};
use std::path::{Path, PathBuf};

fn find(dir: &Path, stems: &[&str]) -> Option<PathBuf> {
    for s in stems {
        for ext in ["", ".gz"] {
            let p = dir.join(format!("{s}{ext}"));
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

pub fn read_10x_mtx(path: &Path, lim: &Limits) -> Result<Dataset> {
    let (dir, mtx) = if path.is_dir() {
        let m = find(path, &["matrix.mtx"]).ok_or_else(|| Error::format(path, "folder holds no matrix.mtx or matrix.mtx.gz"))?;
        (path.to_path_buf(), m)
    } else {
        (path.parent().unwrap_or(Path::new(".")).to_path_buf(), path.to_path_buf())
    };
    let genes_file = find(&dir, &["features.tsv", "genes.tsv"])
        .ok_or_else(|| Error::format(&dir, "no features.tsv[.gz] or genes.tsv[.gz] beside the matrix"))?;
    let barcodes_file = find(&dir, &["barcodes.tsv"]).ok_or_else(|| Error::format(&dir, "no barcodes.tsv[.gz] beside the matrix"))?;

    // The matrix header first: its sizes bound how many names are read (a names file
    // that holds more lines than the header declares is refused as soon as it does, so
    // a small compressed file of many short lines cannot fill memory).
    let mut m = MtxReader::open(&mtx, lim)?;
    let (n_genes, n_cells, _) = m.dims;
    check_memory(
        &format!("{}: names for the {n_cells} cells and {n_genes} genes it declares", mtx.display()),
        (n_genes as u128 + n_cells as u128) * 64,
    )?;
    // 10x features: id, symbol, type. Use the id (unique) as the gene name, as
    // scanpy's read_10x_mtx(var_names="gene_ids") does; symbols are not unique.
    let genes = read_name_column(&genes_file, 0, lim, n_genes, &format!("gene names but {} declares {n_genes} genes", mtx.display()))?;
    let cells = read_name_column(&barcodes_file, 0, lim, n_cells, &format!("barcodes but {} declares {n_cells} cells", mtx.display()))?;
    if genes.len() != n_genes {
        return Err(Error::format(&genes_file, format!("{} gene names but {} declares {} genes", genes.len(), mtx.display(), n_genes)));
    }
    if cells.len() != n_cells {
        return Err(Error::format(&barcodes_file, format!("{} barcodes but {} declares {} cells", cells.len(), mtx.display(), n_cells)));
    }
    let (rows, cols, vals) = m.entries()?;
    // The file is genes x cells; we store cells x genes, so swap.
    let x = Csr::from_triplets(n_cells, n_genes, &cols, &rows, &vals);
    Ok(Dataset { x, cells, genes, labels: None, batches: None, source: path.display().to_string() })
}

type Triplets = (Vec<u32>, Vec<u32>, Vec<f32>);

/// A MatrixMarket coordinate file: the header is read (and checked) by `open`, the
/// entries by `entries`.
struct MtxReader<'a> {
    path: &'a Path,
    lines: Lines<'a>,
    line: String,
    /// rows, cols, entries as the size line declares them.
    dims: (usize, usize, usize),
    symmetric: bool,
    pattern: bool,
}

impl<'a> MtxReader<'a> {
    fn open(path: &'a Path, lim: &Limits) -> Result<MtxReader<'a>> {
        let mut lines = Lines::open(path, lim)?;
        let mut line = String::new();
        lines.next_into(&mut line)?;
        let header = line.trim().to_lowercase();
        if !header.starts_with("%%matrixmarket matrix coordinate") {
            let shown: String = line.trim().chars().take(80).collect();
            return Err(Error::format(path, format!("not a MatrixMarket coordinate file (header: '{shown}')")));
        }
        let field = header.split_whitespace().nth(3).unwrap_or("real").to_string();
        if field == "complex" {
            return Err(Error::format(path, "complex MatrixMarket matrices are not supported"));
        }
        let symmetric = header.contains("symmetric");
        let pattern = field == "pattern";
        loop {
            if !lines.next_into(&mut line)? {
                return Err(Error::format(path, "file ends before the size line"));
            }
            if !line.starts_with('%') && !line.trim().is_empty() {
                break;
            }
        }
        let lineno = lines.lineno;
        let shown: String = line.trim().chars().take(80).collect();
        let dims: Vec<usize> =
            line.split_whitespace().map(|t| t.parse::<usize>()).collect::<std::result::Result<_, _>>().map_err(|_| {
                Error::format(path, format!("bad size line {lineno}: '{shown}' (expected three whole numbers: rows cols entries)"))
            })?;
        if dims.len() != 3 {
            return Err(Error::format(path, format!("size line {lineno} must hold rows cols entries, got '{shown}'")));
        }
        let (nr, nc, nnz) = (dims[0], dims[1], dims[2]);
        if nr > u32::MAX as usize || nc > u32::MAX as usize {
            return Err(Error::format(
                path,
                format!("size line {lineno} declares {nr} x {nc}; at most {} rows and columns are supported", u32::MAX),
            ));
        }
        // Every entry takes at least 4 bytes ("1 1\n"); a header that declares more
        // entries than the file (or, gzipped, its bounded expansion) can hold is refused.
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let is_gz = path.to_string_lossy().ends_with(".gz");
        let most = if is_gz { size.saturating_mul(lim.max_decompression_ratio).max(lim.min_decompressed_bytes) } else { size };
        if size > 0 && (nnz as u128) * 4 > most as u128 {
            return Err(Error::format(
                path,
                format!("size line {lineno} declares {nnz} entries, more than a file of {size} bytes can hold"),
            ));
        }
        let per_entry = if symmetric { 2 * 12 } else { 12 };
        check_memory(&format!("{}: the {nnz} entries its size line declares", path.display()), nnz as u128 * per_entry)?;
        Ok(MtxReader { path, lines, line, dims: (nr, nc, nnz), symmetric, pattern })
    }

    fn entries(&mut self) -> Result<Triplets> {
        let path = self.path;
        let (nr, nc, nnz) = self.dims;
        // Grow as the entries arrive rather than trusting the header for the capacity.
        let cap = nnz.min(1 << 22) * if self.symmetric { 2 } else { 1 };
        let (mut rows, mut cols, mut vals) = (Vec::with_capacity(cap), Vec::with_capacity(cap), Vec::with_capacity(cap));
        let mut seen = 0usize;
        while seen < nnz {
            if !self.lines.next_into(&mut self.line)? {
                return Err(Error::format(path, format!("file ends after {seen} of {nnz} entries (truncated?)")));
            }
            let lineno = self.lines.lineno;
            let t = self.line.trim();
            if t.is_empty() || t.starts_with('%') {
                continue;
            }
            let mut it = t.split_ascii_whitespace();
            let bad = || {
                Error::format(path, format!("line {lineno}: expected 'row col value', got '{}'", t.chars().take(80).collect::<String>()))
            };
            let i: usize = it.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
            let j: usize = it.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
            let v: f32 = if self.pattern { 1.0 } else { it.next().and_then(|s| s.parse().ok()).ok_or_else(bad)? };
            if i == 0 || j == 0 || i > nr || j > nc {
                return Err(Error::format(path, format!("line {lineno}: entry ({i}, {j}) outside the declared {nr} x {nc} matrix")));
            }
            rows.push((i - 1) as u32);
            cols.push((j - 1) as u32);
            vals.push(v);
            if self.symmetric && i != j {
                rows.push((j - 1) as u32);
                cols.push((i - 1) as u32);
                vals.push(v);
            }
            seen += 1;
        }
        // Entries beyond the declared count would be dropped silently otherwise.
        while self.lines.next_into(&mut self.line)? {
            let t = self.line.trim();
            if !t.is_empty() && !t.starts_with('%') {
                return Err(Error::format(path, format!("line {}: more entries than the {nnz} the size line declares", self.lines.lineno)));
            }
        }
        Ok((rows, cols, vals))
    }
}

/// Column `col` of every non-empty line; more than `most` lines is an error (`what`
/// completes "more than `most` ...").
fn read_name_column(path: &Path, col: usize, lim: &Limits, most: usize, what: &str) -> Result<Vec<String>> {
    let mut lines = Lines::open(path, lim)?;
    let mut out = Vec::new();
    let mut line = String::new();
    while lines.next_into(&mut line)? {
        if line.is_empty() {
            continue;
        }
        if out.len() == most {
            return Err(Error::format(path, format!("more than {most} lines (line {}): more {what}", lines.lineno)));
        }
        let name =
            line.split('\t').nth(col).ok_or_else(|| Error::format(path, format!("line {} has no column {}", lines.lineno, col + 1)))?;
        out.push(name.to_string());
    }
    Ok(out)
}
