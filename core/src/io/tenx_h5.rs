//! 10x Genomics HDF5 (CellRanger >= 3): group `matrix` with data/indices/indptr/shape
//! (CSC over cells = CSR of cells x genes), `barcodes`, and `features/id`.

use super::h5ad::{h5err, open, read_f32, read_strings, read_u32, read_usize};
use super::Limits;
use crate::error::{Error, Result};
use crate::matrix::{Csr, Dataset};
use std::path::Path;

pub fn read_10x_h5(path: &Path, lim: &Limits) -> Result<Dataset> {
    let f = open(path)?;
    let m = f.group("matrix").map_err(|_| {
        Error::format(
            path,
            "no 'matrix' group: not a CellRanger >= 3 HDF5 file (CellRanger 2 files keep one group per genome, which is not supported)",
        )
    })?;
    let get = |n: &str| m.dataset(n).map_err(|e| h5err(path, &format!("matrix/{n}"), e));
    let shape = read_usize(path, lim, &get("shape")?, "matrix/shape")?;
    if shape.len() != 2 {
        return Err(Error::format(path, format!("matrix/shape must hold 2 non-negative values, got {shape:?}")));
    }
    let (n_genes, n_cells) = (shape[0], shape[1]);
    let data = read_f32(path, lim, &get("data")?, "matrix/data")?;
    let indices = read_u32(path, lim, &get("indices")?, "matrix/indices")?;
    let indptr = read_usize(path, lim, &get("indptr")?, "matrix/indptr")?;
    // Column-compressed genes x cells == row-compressed cells x genes.
    let x = Csr { n_rows: n_cells, n_cols: n_genes, indptr, indices, data };
    x.validate_structure().map_err(|e| Error::format(path, format!("matrix: {e}")))?;
    let cells = read_strings(path, lim, &get("barcodes")?, "matrix/barcodes")?;
    let feats = m.group("features").map_err(|e| h5err(path, "matrix/features", e))?;
    let genes = read_strings(path, lim, &feats.dataset("id").map_err(|e| h5err(path, "matrix/features/id", e))?, "matrix/features/id")?;
    if cells.len() != n_cells || genes.len() != n_genes {
        return Err(Error::format(
            path,
            format!("{} barcodes and {} features for a {n_genes} x {n_cells} matrix", cells.len(), genes.len()),
        ));
    }
    Ok(Dataset { x, cells, genes, labels: None, batches: None, source: path.display().to_string() })
}
