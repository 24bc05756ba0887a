//! Dense CSV/TSV count tables and label files.

use super::{Limits, Lines, Orientation};
use crate::error::{Error, Result};
use crate::matrix::{Csr, Dataset};
use std::collections::HashMap;

use std::path::Path;

/// Parse a numeric table with a header row and a row-name column, one row at a time:
/// `row(name, values)` gets each data row. Returns the column names.
fn for_each_row(path: &Path, sep: u8, lim: &Limits, mut row: impl FnMut(String, &[f32]) -> Result<()>) -> Result<Vec<String>> {
    let mut lines = Lines::open(path, lim)?;
    let sep = sep as char;
    let mut line = String::new();
    if !lines.next_into(&mut line)? {
        return Err(Error::format(path, "empty file"));
    }
    let mut cols: Vec<String> = line.split(sep).map(|s| s.trim().trim_matches('"').to_string()).collect();
    // A header may or may not name the row-name column; decide from the first data row.
    let mut width = None;
    let mut vals: Vec<f32> = Vec::new();
    let mut n_rows = 0usize;
    while lines.next_into(&mut line)? {
        let lineno = lines.lineno;
        if line.trim().is_empty() {
            continue;
        }
        let mut it = line.split(sep);
        let name = it.next().unwrap_or("").trim().trim_matches('"').to_string();
        vals.clear();
        for (j, tok) in it.enumerate() {
            let t = tok.trim();
            let v: f32 = t.parse().map_err(|_| {
                Error::format(
                    path,
                    format!("line {lineno}, column {}: '{}' is not a number", j + 2, t.chars().take(40).collect::<String>()),
                )
            })?;
            vals.push(v);
        }
        let w = vals.len();
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
        row(name, &vals)?;
        n_rows += 1;
    }
    if n_rows == 0 {
        return Err(Error::format(path, "no data rows"));
    }
    Ok(cols)
}

/// Read a numeric table with a header row and a row-name column.
/// Returns (row names, column names, row-major values).
pub fn read_table_numeric(path: &Path, sep: u8) -> Result<(Vec<String>, Vec<String>, Vec<f32>)> {
    let mut rows = Vec::new();
    let mut all = Vec::new();
    let cols = for_each_row(path, sep, &Limits::default(), |name, v| {
        rows.push(name);
        all.extend_from_slice(v);
        Ok(())
    })?;
    Ok((rows, cols, all))
}

/// A dense count table, kept sparse as it is read: a table of mostly zeros costs
/// memory for its non-zeros only.
pub fn read_dense_table(path: &Path, sep: u8, orient: Orientation, lim: &Limits) -> Result<Dataset> {
    let mut rows = Vec::new();
    let (mut indptr, mut indices, mut data) = (vec![0usize], Vec::new(), Vec::new());
    let cols = for_each_row(path, sep, lim, |name, v| {
        rows.push(name);
        for (j, &x) in v.iter().enumerate() {
            if x != 0.0 {
                indices.push(j as u32);
                data.push(x);
            }
        }
        indptr.push(data.len());
        Ok(())
    })?;
    let m = Csr { n_rows: rows.len(), n_cols: cols.len(), indptr, indices, data };
    let (x, cells, genes) = match orient {
        Orientation::CellsByGenes => (m, rows, cols),
        Orientation::GenesByCells => (m.transpose(), cols, rows),
    };
    Ok(Dataset { x, cells, genes, labels: None, batches: None, source: path.display().to_string() })
}

/// Read `barcode<TAB>label` lines (the first line is a header).
pub fn read_labels_tsv(path: &Path) -> Result<Vec<(String, String)>> {
    let mut lines = Lines::open(path, &Limits::default())?;
    let mut out = Vec::new();
    let mut line = String::new();
    while lines.next_into(&mut line)? {
        let n = lines.lineno;
        if n == 1 || line.trim().is_empty() {
            continue;
        }
        let mut it = line.splitn(2, ['\t', ',']);
        let (a, b) = (it.next().unwrap_or(""), it.next());
        let b = b.ok_or_else(|| {
            Error::format(path, format!("line {n}: expected 'barcode<TAB>label', got '{}'", line.chars().take(80).collect::<String>()))
        })?;
        out.push((a.trim().to_string(), b.trim().to_string()));
    }
    if out.is_empty() {
        return Err(Error::format(path, "no labels (the first line is read as a header)"));
    }
    Ok(out)
}

/// Labels in the order of `cells`; every cell must have one. Lines of barcodes that are
/// not among `cells` are skipped as they are read, so the memory used is bounded by the
/// data set, whatever the file holds.
pub fn labels_for_cells(path: &Path, cells: &[String], lim: &Limits) -> Result<Vec<String>> {
    values_for_cells(path, cells, lim, "label")
}

/// [`labels_for_cells`] for any per-cell value (`what`: label, batch), named in errors.
pub fn values_for_cells(path: &Path, cells: &[String], lim: &Limits, what: &str) -> Result<Vec<String>> {
    let index: HashMap<&str, usize> = cells.iter().enumerate().map(|(i, c)| (c.as_str(), i)).collect();
    let mut out: Vec<Option<String>> = vec![None; cells.len()];
    let mut lines = Lines::open(path, lim)?;
    let mut line = String::new();
    let mut any = false;
    while lines.next_into(&mut line)? {
        let n = lines.lineno;
        if n == 1 || line.trim().is_empty() {
            continue;
        }
        let mut it = line.splitn(2, ['\t', ',']);
        let (a, b) = (it.next().unwrap_or("").trim(), it.next());
        let b = b
            .ok_or_else(|| {
                Error::format(path, format!("line {n}: expected 'barcode<TAB>{what}', got '{}'", line.chars().take(80).collect::<String>()))
            })?
            .trim();
        any = true;
        let Some(&i) = index.get(a) else { continue };
        if b.is_empty() {
            return Err(Error::format(path, format!("line {n}: cell '{a}' has an empty {what}")));
        }
        match &out[i] {
            Some(prev) if prev != b => {
                return Err(Error::format(
                    path,
                    format!("line {n}: cell '{a}' is listed twice with different {what}s ('{prev}' and '{b}')"),
                ));
            }
            _ => out[i] = Some(b.to_string()),
        }
    }
    if !any {
        return Err(Error::format(path, format!("no {what}s (the first line is read as a header)")));
    }
    let missing: Vec<&str> = cells.iter().zip(&out).filter(|(_, l)| l.is_none()).map(|(c, _)| c.as_str()).collect();
    if !missing.is_empty() {
        let show: Vec<_> = missing.iter().take(3).copied().collect();
        return Err(Error::format(path, format!("{} of {} cells have no {what} (e.g. {})", missing.len(), cells.len(), show.join(", "))));
    }
    Ok(out.into_iter().flatten().collect())
}
