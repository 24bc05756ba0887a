//! 10x Genomics MTX folder: matrix.mtx[.gz] (genes x cells), features.tsv[.gz] or
//! genes.tsv[.gz], barcodes.tsv[.gz].

use super::open_maybe_gz;
use crate::error::{Error, Result};
use crate::matrix::{Csr, Dataset};
use std::io::BufRead;
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

pub fn read_10x_mtx(path: &Path) -> Result<Dataset> {
    let (dir, mtx) = if path.is_dir() {
        let m = find(path, &["matrix.mtx"]).ok_or_else(|| Error::format(path, "folder holds no matrix.mtx or matrix.mtx.gz"))?;
        (path.to_path_buf(), m)
    } else {
        (path.parent().unwrap_or(Path::new(".")).to_path_buf(), path.to_path_buf())
    };
    let genes_file = find(&dir, &["features.tsv", "genes.tsv"])
        .ok_or_else(|| Error::format(&dir, "no features.tsv[.gz] or genes.tsv[.gz] beside the matrix"))?;
    let barcodes_file = find(&dir, &["barcodes.tsv"]).ok_or_else(|| Error::format(&dir, "no barcodes.tsv[.gz] beside the matrix"))?;

    let (n_genes, n_cells, rows, cols, vals) = read_mtx_triplets(&mtx)?;
    // The file is genes x cells; we store cells x genes, so swap.
    let x = Csr::from_triplets(n_cells, n_genes, &cols, &rows, &vals);
    // 10x features: id, symbol, type. Use the id (unique) as the gene name, as
    // scanpy's read_10x_mtx(var_names="gene_ids") does; symbols are not unique.
    let genes = read_name_column(&genes_file, 0)?;
    let cells = read_name_column(&barcodes_file, 0)?;
    if genes.len() != n_genes {
        return Err(Error::format(&genes_file, format!("{} gene names but {} declares {} genes", genes.len(), mtx.display(), n_genes)));
    }
    if cells.len() != n_cells {
        return Err(Error::format(&barcodes_file, format!("{} barcodes but {} declares {} cells", cells.len(), mtx.display(), n_cells)));
    }
    Ok(Dataset { x, cells, genes, labels: None, source: path.display().to_string() })
}

type Triplets = (usize, usize, Vec<u32>, Vec<u32>, Vec<f32>);

fn read_mtx_triplets(path: &Path) -> Result<Triplets> {
    let mut r = open_maybe_gz(path)?;
    let mut line = String::new();
    let mut lineno = 0usize;
    let rd = |r: &mut Box<dyn BufRead>, line: &mut String, lineno: &mut usize| -> Result<usize> {
        line.clear();
        *lineno += 1;
        r.read_line(line).map_err(|e| Error::format(path, format!("read failed near line {lineno}: {e} (truncated or corrupt file?)")))
    };
    rd(&mut r, &mut line, &mut lineno)?;
    let header = line.trim().to_lowercase();
    if !header.starts_with("%%matrixmarket matrix coordinate") {
        return Err(Error::format(path, format!("not a MatrixMarket coordinate file (header: '{}')", line.trim())));
    }
    let field = header.split_whitespace().nth(3).unwrap_or("real").to_string();
    if field == "complex" {
        return Err(Error::format(path, "complex MatrixMarket matrices are not supported"));
    }
    let symmetric = header.contains("symmetric");
    let pattern = field == "pattern";
    loop {
        if rd(&mut r, &mut line, &mut lineno)? == 0 {
            return Err(Error::format(path, "file ends before the size line"));
        }
        if !line.starts_with('%') && !line.trim().is_empty() {
            break;
        }
    }
    let dims: Vec<usize> = line
        .split_whitespace()
        .map(|t| t.parse::<usize>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| Error::format(path, format!("bad size line {lineno}: '{}'", line.trim())))?;
    if dims.len() != 3 {
        return Err(Error::format(path, format!("size line {lineno} must hold rows cols entries, got '{}'", line.trim())));
    }
    let (nr, nc, nnz) = (dims[0], dims[1], dims[2]);
    let cap = if symmetric { 2 * nnz } else { nnz };
    let (mut rows, mut cols, mut vals) = (Vec::with_capacity(cap), Vec::with_capacity(cap), Vec::with_capacity(cap));
    let mut seen = 0usize;
    while seen < nnz {
        if rd(&mut r, &mut line, &mut lineno)? == 0 {
            return Err(Error::format(path, format!("file ends after {seen} of {nnz} entries (truncated?)")));
        }
        let t = line.trim();
        if t.is_empty() || t.starts_with('%') {
            continue;
        }
        let mut it = t.split_ascii_whitespace();
        let bad = || Error::format(path, format!("line {lineno}: expected 'row col value', got '{t}'"));
        let i: usize = it.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
        let j: usize = it.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
        let v: f32 = if pattern { 1.0 } else { it.next().and_then(|s| s.parse().ok()).ok_or_else(bad)? };
        if i == 0 || j == 0 || i > nr || j > nc {
            return Err(Error::format(path, format!("line {lineno}: entry ({i}, {j}) outside the declared {nr} x {nc} matrix")));
        }
        rows.push((i - 1) as u32);
        cols.push((j - 1) as u32);
        vals.push(v);
        if symmetric && i != j {
            rows.push((j - 1) as u32);
            cols.push((i - 1) as u32);
            vals.push(v);
        }
        seen += 1;
    }
    Ok((nr, nc, rows, cols, vals))
}

fn read_name_column(path: &Path, col: usize) -> Result<Vec<String>> {
    let r = open_maybe_gz(path)?;
    let mut out = Vec::new();
    for (n, line) in r.lines().enumerate() {
        let line = line.map_err(|e| Error::format(path, format!("read failed at line {}: {e} (truncated or corrupt file?)", n + 1)))?;
        if line.is_empty() {
            continue;
        }
        let name = line.split('\t').nth(col).ok_or_else(|| Error::format(path, format!("line {} has no column {}", n + 1, col + 1)))?;
        out.push(name.to_string());
    }
    Ok(out)
}
