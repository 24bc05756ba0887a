//! Readers (10x MTX, 10x HDF5, AnnData .h5ad, dense CSV/TSV) into one CSR matrix,
//! and writers (TSV, .npy, JSON, .h5ad with results). Every writer goes through
//! [`AtomicFile`]: a temporary name renamed on success, so no half-written output.

mod h5ad;
mod mtx;
mod tenx_h5;
mod text;
pub mod write;

pub use h5ad::{write_h5ad_results, H5adResults};
pub use text::{read_labels_tsv, read_table_numeric};
pub use write::AtomicFile;
pub use h5ad::{write_h5ad_new, write_h5ad_new_with_results};

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
    Mtx,
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
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
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
    /// Dense tables only.
    pub orientation: Orientation,
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

/// Read a count matrix with names (and labels when asked) and validate it.
pub fn read(path: &Path, opts: &ReadOptions) -> Result<Dataset> {
    if !path.exists() {
        return Err(Error::io(path, "no such file or directory"));
    }
    let fmt = if opts.format == Format::Auto { detect_format(path)? } else { opts.format };
    if opts.format != Format::H5ad && fmt != Format::H5ad {
        if opts.layer.is_some() || opts.use_raw {
            return Err(Error::config("layer", opts.layer.clone().unwrap_or("raw".into()), "layers and raw exist only in .h5ad input"));
        }
        if opts.label_key.is_some() {
            return Err(Error::config("label_key", opts.label_key.clone().unwrap(),
                "a label column exists only in .h5ad input; use labels_file (--labels) for other formats"));
        }
    }
    let mut ds = match fmt {
        Format::Mtx => mtx::read_10x_mtx(path)?,
        Format::TenxH5 => tenx_h5::read_10x_h5(path)?,
        Format::H5ad => h5ad::read_h5ad(path, opts)?,
        Format::Csv => text::read_dense_table(path, b',', opts.orientation)?,
        Format::Tsv => text::read_dense_table(path, b'\t', opts.orientation)?,
        Format::Auto => unreachable!(),
    };
    if let Some(f) = &opts.labels_file {
        ds.labels = Some(text::labels_for_cells(Path::new(f), &ds.cells)?);
    }
    ds.validate()?;
    Ok(ds)
}

/// Open a possibly gzip-compressed file for buffered reading; a truncated gzip
/// stream surfaces as an error on read, which callers map to the file name.
pub(crate) fn open_maybe_gz(path: &Path) -> Result<Box<dyn std::io::BufRead>> {
    use std::io::{BufReader, Read};
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut magic = [0u8; 2];
    let n = f.read(&mut magic).map_err(|e| Error::io(path, e))?;
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    if n == 2 && magic == [0x1f, 0x8b] {
        Ok(Box::new(BufReader::with_capacity(1 << 20, flate2::read::MultiGzDecoder::new(f))))
    } else {
        Ok(Box::new(BufReader::with_capacity(1 << 20, f)))
    }
}
