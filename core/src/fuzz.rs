//! Entry points for coverage-guided fuzzing of the readers (fuzz/ drives them with
//! libFuzzer; tests/fuzz_corpus.rs replays the regression corpus through them in
//! `make test`). Each takes arbitrary bytes, writes them where the reader expects its
//! files, and reads them: the reader may return any error, but must not panic, abort
//! or allocate beyond its limits.

use crate::error::{Error, Result};
use crate::io::{Format, Limits, Orientation, ReadOptions};
use std::path::{Path, PathBuf};

/// The readers fuzzed, by name (`make fuzz` runs each).
pub const TARGETS: [&str; 7] = ["mtx", "tenx_tsv", "csv", "npy", "config", "h5ad", "tenx_h5"];

/// Separates the files of one input where a target reads several (the 10x folder):
/// a line no valid text file holds and compressed data is most unlikely to.
pub const SEP: &[u8] = b"\0--scdeep-file--\0";

/// Limits for fuzzing: the defaults, except that only 1 MiB is always allowed to expand
/// (instead of 64 MiB) so that every execution stays fast, and HDF5 is read in this
/// process (libFuzzer sees only its own process's coverage; the child process that
/// bounds libhdf5 in a run is tested in tests/hostile).
pub fn limits() -> Limits {
    Limits { min_decompressed_bytes: 1 << 20, max_line_bytes: 1 << 20, hdf5_child: false, ..Limits::default() }
}

/// Run target `name` on `data`, whatever the reader returns.
pub fn run(name: &str, data: &[u8]) {
    let _ = check(name, data);
}

/// Run target `name` on `data` and return what the reader returned (the corpus test
/// checks that the seeds are read).
pub fn check(name: &str, data: &[u8]) -> Result<()> {
    match name {
        "mtx" => mtx(data),
        "tenx_tsv" => tenx_tsv(data),
        "csv" => csv(data),
        "npy" => npy(data),
        "config" => config(data),
        "h5ad" => h5ad(data),
        "tenx_h5" => tenx_h5(data),
        other => Err(Error::config("fuzz target", other, format!("known: {}", TARGETS.join(", ")))),
    }
}

/// The scratch folder of this thread (in /dev/shm where there is one, so that writing
/// the input costs no disk I/O).
pub fn scratch() -> PathBuf {
    let base = if Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
    let thread = format!("{:?}", std::thread::current().id()).chars().filter(char::is_ascii_digit).collect::<String>();
    let d = base.join(format!("scdeep-fuzz-{}-{thread}", std::process::id()));
    let _ = std::fs::create_dir_all(&d);
    d
}

fn put(dir: &Path, name: &str, data: &[u8]) -> Result<PathBuf> {
    let p = dir.join(name);
    std::fs::write(&p, data).map_err(|e| Error::io(&p, e))?;
    Ok(p)
}

fn split(data: &[u8], n: usize) -> Vec<&[u8]> {
    let mut parts = Vec::with_capacity(n);
    let mut rest = data;
    while parts.len() + 1 < n {
        match rest.windows(SEP.len()).position(|w| w == SEP) {
            Some(i) => {
                parts.push(&rest[..i]);
                rest = &rest[i + SEP.len()..];
            }
            None => break,
        }
    }
    parts.push(rest);
    parts.resize(n, &[]);
    parts
}

fn opts(format: Format) -> ReadOptions {
    ReadOptions { format, limits: limits(), ..ReadOptions::default() }
}

/// A 10x folder: matrix.mtx, barcodes.tsv and features.tsv, separated by [`SEP`].
/// A first byte of 0x1f (gzip's) writes them as .gz names, so the bounded gzip reader
/// is fuzzed too (the seeds include gzipped folders).
pub fn mtx(data: &[u8]) -> Result<()> {
    let d = scratch().join("mtx");
    let _ = std::fs::create_dir_all(&d);
    let p = split(data, 3);
    let (gz, other) = if data.first() == Some(&0x1f) { (".gz", "") } else { ("", ".gz") };
    for f in ["matrix.mtx", "barcodes.tsv", "features.tsv"] {
        let _ = std::fs::remove_file(d.join(format!("{f}{other}")));
    }
    put(&d, &format!("matrix.mtx{gz}"), p[0])?;
    put(&d, &format!("barcodes.tsv{gz}"), p[1])?;
    put(&d, &format!("features.tsv{gz}"), p[2])?;
    crate::io::read(&d, &opts(Format::Mtx)).map(drop)
}

/// The TSV files of a 10x folder and a labels file: barcodes.tsv and labels.tsv from
/// the input (separated by [`SEP`]), with a matrix of as many cells as barcodes.tsv has
/// lines (one count each) and two genes, so that the readers of names and labels are what is exercised.
pub fn tenx_tsv(data: &[u8]) -> Result<()> {
    let d = scratch().join("tsv");
    let _ = std::fs::create_dir_all(&d);
    let p = split(data, 2);
    let n_cells = p[0].split(|&b| b == b'\n').filter(|l| !l.is_empty()).count();
    let mut m = format!("%%MatrixMarket matrix coordinate integer general\n2 {n_cells} {n_cells}\n");
    for j in 1..=n_cells {
        m.push_str(&format!("{} {j} 1\n", 1 + j % 2));
    }
    put(&d, "matrix.mtx", m.as_bytes())?;
    put(&d, "barcodes.tsv", p[0])?;
    put(&d, "features.tsv", b"g1\tG1\tGene Expression\ng2\tG2\tGene Expression\n")?;
    let labels = put(&scratch(), "labels.tsv", p[1])?;
    let o = ReadOptions { labels_file: Some(labels.display().to_string()), ..opts(Format::Mtx) };
    crate::io::read(&d, &o).map(drop)
}

/// A dense table: comma-separated, cells in rows or (first byte odd) genes in rows.
pub fn csv(data: &[u8]) -> Result<()> {
    let p = put(&scratch(), "table.csv", data)?;
    let orientation = if data.first().is_some_and(|b| b & 1 == 1) { Orientation::GenesByCells } else { Orientation::CellsByGenes };
    let r = crate::io::read(&p, &ReadOptions { orientation, ..opts(Format::Csv) });
    crate::io::read_table_numeric(&p, b',')?;
    r.map(drop)
}

/// An embedding as .npy (what `scdeep cluster` reads).
pub fn npy(data: &[u8]) -> Result<()> {
    let p = put(&scratch(), "embedding.npy", data)?;
    crate::io::write::read_npy_f32(&p).map(drop)
}

/// A run config (what `--config` reads): parsed, validated, and what it resolves to
/// read back.
pub fn config(data: &[u8]) -> Result<()> {
    let p = put(&scratch(), "config.json", data)?;
    let v = crate::io::write::read_json(&p)?;
    let _ = crate::config::ConfigBuilder::new().method("pca").options(&v).and_then(|b| b.build(false));
    let cfg = crate::config::ConfigBuilder::from_json(&v)?.build(false)?;
    let again = serde_json::to_value(&cfg).map_err(|e| Error::config("config", "(resolved)", e.to_string()))?;
    crate::config::ConfigBuilder::from_json(&again)?.build(false).map(drop)
}

/// An AnnData file, read as X with labels from obs['cell_type'], then as raw/X and as a
/// layer (first byte).
pub fn h5ad(data: &[u8]) -> Result<()> {
    let p = put(&scratch(), "data.h5ad", data)?;
    let mut o = ReadOptions { label_key: Some("cell_type".into()), ..opts(Format::H5ad) };
    match data.last().map(|b| b % 3) {
        Some(1) => o.use_raw = true,
        Some(2) => o.layer = Some("counts".into()),
        _ => {}
    }
    crate::io::read(&p, &o).map(drop)
}

/// A CellRanger HDF5 file.
pub fn tenx_h5(data: &[u8]) -> Result<()> {
    let p = put(&scratch(), "data.h5", data)?;
    crate::io::read(&p, &opts(Format::TenxH5)).map(drop)
}

/// The fuzz targets that read files of format `f`: every format has at least one (a new
/// `Format` does not compile until it is named here; docs/dev/adding.md).
pub fn targets_of(f: Format) -> &'static [&'static str] {
    match f {
        Format::Auto => &[],
        Format::Mtx => &["mtx", "tenx_tsv"],
        Format::TenxH5 => &["tenx_h5"],
        Format::H5ad => &["h5ad"],
        Format::Csv | Format::Tsv => &["csv"],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The checklist for a new reader (docs/dev/adding.md): a fuzz target, and seeds for
    /// it in tests/fuzz/corpus/<target>/ that `make test` replays.
    #[test]
    fn every_format_has_a_fuzz_target_with_a_seed_corpus() {
        let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fuzz/corpus");
        for f in [Format::Mtx, Format::TenxH5, Format::H5ad, Format::Csv, Format::Tsv] {
            assert!(!targets_of(f).is_empty(), "{f:?} has no fuzz target");
            for t in targets_of(f) {
                assert!(TARGETS.contains(t), "{t} is not in fuzz::TARGETS");
                let seeds = std::fs::read_dir(corpus.join(t)).map(|d| d.count()).unwrap_or(0);
                assert!(seeds > 0, "no seeds in tests/fuzz/corpus/{t}/");
            }
        }
        // and every target has its corpus folder
        for t in TARGETS {
            assert!(corpus.join(t).is_dir(), "tests/fuzz/corpus/{t}/ is missing");
        }
    }
}
