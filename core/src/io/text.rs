//! Dense CSV/TSV count tables and label files.

use super::{open_maybe_gz, Orientation};
use crate::error::{Error, Result};
use crate::matrix::{Csr, Dataset};
use std::collections::HashMap;
use std::io::BufRead;
use std::path::Path;

/// Read a numeric table with a header row and a row-name column.
/// Returns (row names, column names, row-major values).
pub fn read_table_numeric(path: &Path, sep: u8) -> Result<(Vec<String>, Vec<String>, Vec<f32>)> {
    let r = open_maybe_gz(path)?;
    let sep = sep as char;
    let mut lines = r.lines();
    let header = match lines.next() {
        Some(l) => l.map_err(|e| Error::format(path, format!("read failed at line 1: {e}")))?,
        None => return Err(Error::format(path, "empty file")),
    };
    let mut cols: Vec<String> = header.split(sep).map(|s| s.trim().trim_matches('"').to_string()).collect();
    // A header may or may not name the row-name column; decide from the first data row.
    let mut rows = Vec::new();
    let mut vals = Vec::new();
    let mut width = None;
    for (n, line) in lines.enumerate() {
        let lineno = n + 2;
        let line = line.map_err(|e| Error::format(path, format!("read failed at line {lineno}: {e} (truncated or corrupt file?)")))?;
        if line.trim().is_empty() {
            continue;
        }
        let mut it = line.split(sep);
        let name = it.next().unwrap().trim().trim_matches('"').to_string();
        let before = vals.len();
        for (j, tok) in it.enumerate() {
            let t = tok.trim();
            let v: f32 = t.parse().map_err(|_| {
                Error::format(path, format!("line {lineno}, column {}: '{t}' is not a number", j + 2))
            })?;
            vals.push(v);
        }
        let w = vals.len() - before;
        match width {
            None => {
                width = Some(w);
                if cols.len() == w + 1 {
                    cols.remove(0);
                } else if cols.len() != w {
                    return Err(Error::format(path, format!("header has {} names but line {lineno} has {w} values", cols.len())));
                }
            }
            Some(w0) if w0 != w => {
                return Err(Error::format(path, format!("line {lineno} has {w} values, earlier lines have {w0}")));
            }
            _ => {}
        }
        rows.push(name);
    }
    if rows.is_empty() {
        return Err(Error::format(path, "no data rows"));
    }
    Ok((rows, cols, vals))
}

pub fn read_dense_table(path: &Path, sep: u8, orient: Orientation) -> Result<Dataset> {
    let (rows, cols, vals) = read_table_numeric(path, sep)?;
    let (nr, nc) = (rows.len(), cols.len());
    let m = Csr::from_dense(nr, nc, &vals);
    let (x, cells, genes) = match orient {
        Orientation::CellsByGenes => (m, rows, cols),
        Orientation::GenesByCells => (m.transpose(), cols, rows),
    };
    Ok(Dataset { x, cells, genes, labels: None, source: path.display().to_string() })
}

/// Read `barcode<TAB>label` lines (the first line is a header).
pub fn read_labels_tsv(path: &Path) -> Result<Vec<(String, String)>> {
    let r = open_maybe_gz(path)?;
    let mut out = Vec::new();
    for (n, line) in r.lines().enumerate() {
        let line = line.map_err(|e| Error::format(path, format!("read failed at line {}: {e}", n + 1)))?;
        if n == 0 || line.trim().is_empty() {
            continue;
        }
        let mut it = line.splitn(2, ['\t', ',']);
        let (a, b) = (it.next().unwrap(), it.next());
        let b = b.ok_or_else(|| Error::format(path, format!("line {}: expected 'barcode<TAB>label', got '{line}'", n + 1)))?;
        out.push((a.trim().to_string(), b.trim().to_string()));
    }
    if out.is_empty() {
        return Err(Error::format(path, "no labels (the first line is read as a header)"));
    }
    Ok(out)
}

/// Labels in the order of `cells`; every cell must have one.
pub fn labels_for_cells(path: &Path, cells: &[String]) -> Result<Vec<String>> {
    let pairs = read_labels_tsv(path)?;
    let map: HashMap<&str, &str> = pairs.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let mut out = Vec::with_capacity(cells.len());
    let mut missing = Vec::new();
    for c in cells {
        match map.get(c.as_str()) {
            Some(l) => out.push(l.to_string()),
            None => missing.push(c.clone()),
        }
    }
    if !missing.is_empty() {
        let show: Vec<_> = missing.iter().take(3).cloned().collect();
        return Err(Error::format(path, format!("{} of {} cells have no label (e.g. {})", missing.len(), cells.len(), show.join(", "))));
    }
    Ok(out)
}
