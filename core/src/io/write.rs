//! Writers for run outputs. Each output is written to `<name>.tmp-<pid>` and renamed
//! on success; if anything fails (or the process dies) no file with the final name
//! appears half-written.

use crate::error::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

pub struct AtomicFile {
    tmp: PathBuf,
    dest: PathBuf,
    done: bool,
}

impl AtomicFile {
    pub fn new(dest: &Path) -> Result<Self> {
        if let Some(dir) = dest.parent() {
            if !dir.as_os_str().is_empty() && !dir.is_dir() {
                return Err(Error::io(dest, format!("output folder {} does not exist", dir.display())));
            }
        }
        let name = dest.file_name().ok_or_else(|| Error::io(dest, "not a file name"))?;
        // At most 100 characters of the name: a destination name near the file system's
        // limit (255 bytes) must not make the temporary name too long.
        let short: String = name.to_string_lossy().chars().take(100).collect();
        let tmp = dest.with_file_name(format!(".{short}.tmp-{}", std::process::id()));
        Ok(AtomicFile { tmp, dest: dest.to_path_buf(), done: false })
    }
    pub fn tmp_path(&self) -> &Path {
        &self.tmp
    }
    pub fn commit(mut self) -> Result<()> {
        std::fs::rename(&self.tmp, &self.dest).map_err(|e| Error::io(&self.dest, e))?;
        self.done = true;
        Ok(())
    }
    /// Write all bytes produced by `f` and commit.
    pub fn write_with(dest: &Path, f: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<()> {
        let a = AtomicFile::new(dest)?;
        {
            let file = std::fs::File::create(&a.tmp).map_err(|e| Error::io(dest, e))?;
            let mut w = std::io::BufWriter::new(file);
            f(&mut w).map_err(|e| Error::io(dest, e))?;
            w.flush().map_err(|e| Error::io(dest, e))?;
        }
        a.commit()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// cells x dims matrix as TSV with a header (`cell`, `<prefix>1`, ...).
pub fn write_matrix_tsv(dest: &Path, rows: &[String], prefix: &str, values: &[f32], dims: usize) -> Result<()> {
    AtomicFile::write_with(dest, |w| {
        write!(w, "cell")?;
        for d in 0..dims {
            write!(w, "\t{prefix}{}", d + 1)?;
        }
        writeln!(w)?;
        for (i, r) in rows.iter().enumerate() {
            write!(w, "{r}")?;
            for v in &values[i * dims..(i + 1) * dims] {
                write!(w, "\t{v}")?;
            }
            writeln!(w)?;
        }
        Ok(())
    })
}

/// `cell<TAB><column>` lines with a header.
pub fn write_labels_tsv(dest: &Path, cells: &[String], column: &str, labels: &[String]) -> Result<()> {
    AtomicFile::write_with(dest, |w| {
        writeln!(w, "cell\t{column}")?;
        for (c, l) in cells.iter().zip(labels) {
            writeln!(w, "{c}\t{l}")?;
        }
        Ok(())
    })
}

/// NumPy .npy (format 1.0), little-endian f32, C order.
pub fn write_npy_f32(dest: &Path, values: &[f32], shape: &[usize]) -> Result<()> {
    AtomicFile::write_with(dest, |w| {
        write_npy_header(w, "<f4", shape)?;
        write_le(w, values, f32::to_le_bytes)
    })
}

pub fn write_npy_i64(dest: &Path, values: &[i64], shape: &[usize]) -> Result<()> {
    AtomicFile::write_with(dest, |w| {
        write_npy_header(w, "<i8", shape)?;
        write_le(w, values, i64::to_le_bytes)
    })
}

/// `values` as little-endian bytes, a block at a time (not a copy of them all: an
/// embedding of 1M cells is a gigabyte).
fn write_le<T: Copy, const N: usize>(w: &mut dyn Write, values: &[T], bytes: fn(T) -> [u8; N]) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(N << 16);
    for block in values.chunks(1 << 16) {
        buf.clear();
        buf.extend(block.iter().flat_map(|&v| bytes(v)));
        w.write_all(&buf)?;
    }
    Ok(())
}

fn write_npy_header(w: &mut dyn Write, descr: &str, shape: &[usize]) -> std::io::Result<()> {
    let shape_s = match shape.len() {
        1 => format!("({},)", shape[0]),
        _ => format!("({})", shape.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", ")),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_s}, }}");
    // magic(6) + version(2) + len(2) + header + '\n' must be a multiple of 64.
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    w.write_all(b"\x93NUMPY\x01\x00")?;
    w.write_all(&(header.len() as u16).to_le_bytes())?;
    w.write_all(header.as_bytes())
}

/// Read a .npy f32/f64 2-d array (for `scdeep cluster` on an embedding file). Every
/// size in the header is checked against the file before anything is allocated.
pub fn read_npy_f32(path: &Path) -> Result<(Vec<f32>, Vec<usize>)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(Error::format(path, "not a .npy file"));
    }
    let (hlen, off): (usize, usize) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        2 | 3 => return Err(Error::format(path, "truncated header")),
        v => return Err(Error::format(path, format!("unsupported .npy format version {v}"))),
    };
    let header =
        bytes.get(off..off.saturating_add(hlen)).ok_or_else(|| Error::format(path, format!("truncated header (declares {hlen} bytes)")))?;
    let header = std::str::from_utf8(header).map_err(|_| Error::format(path, "header is not text"))?;
    if header.contains("'fortran_order': True") {
        return Err(Error::format(path, "Fortran-order arrays are not supported; save with np.ascontiguousarray"));
    }
    let shape_s =
        header.split("'shape': (").nth(1).and_then(|s| s.split(')').next()).ok_or_else(|| Error::format(path, "no shape in header"))?;
    let shape: Vec<usize> = shape_s
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse().map_err(|_| Error::format(path, format!("bad shape '{shape_s}'"))))
        .collect::<Result<_>>()?;
    let width = if header.contains("'<f4'") {
        4
    } else if header.contains("'<f8'") {
        8
    } else {
        return Err(Error::format(path, format!("unsupported dtype in header {}; use float32 or float64", header.trim())));
    };
    let body = &bytes[off + hlen..];
    let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).filter(|n| n.checked_mul(width).is_some_and(|b| b <= body.len()));
    let n =
        n.ok_or_else(|| Error::format(path, format!("shape {shape:?} needs more data than the file's {} bytes (truncated?)", body.len())))?;
    let vals: Vec<f32> = if width == 4 {
        body.chunks_exact(4).take(n).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
    } else {
        body.chunks_exact(8).take(n).map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32).collect()
    };
    Ok((vals, shape))
}

/// Most bytes of a JSON file scdeep reads (configs, model and checkpoint metadata).
pub const MAX_JSON_BYTES: u64 = 64 << 20;

/// A JSON file, with errors naming it.
pub fn read_json(p: &Path) -> Result<serde_json::Value> {
    let s = super::read_capped_string(p, MAX_JSON_BYTES)?;
    serde_json::from_str(&s).map_err(|e| Error::format(p, format!("not valid JSON: {e}")))
}

pub fn write_json(dest: &Path, value: &serde_json::Value) -> Result<()> {
    AtomicFile::write_with(dest, |w| {
        serde_json::to_writer_pretty(&mut *w, value).map_err(std::io::Error::other)?;
        writeln!(w)
    })
}

/// A 10x MTX folder: matrix.mtx.gz (genes x cells; values written exactly), features.tsv.gz,
/// barcodes.tsv.gz.
pub fn write_10x_mtx(dir: &Path, x: &crate::matrix::Csr, cells: &[String], genes: &[String]) -> Result<()> {
    use flate2::{write::GzEncoder, Compression};
    let gz = |dest: &Path, f: &dyn Fn(&mut dyn Write) -> std::io::Result<()>| {
        AtomicFile::write_with(dest, |w| {
            let mut e = GzEncoder::new(w, Compression::fast());
            f(&mut e)?;
            e.finish().map(|_| ())
        })
    };
    // "integer" for counts; "real" otherwise (readers would truncate the values)
    let field = if x.data.iter().all(|v| v.fract() == 0.0) { "integer" } else { "real" };
    gz(&dir.join("matrix.mtx.gz"), &|w| {
        writeln!(w, "%%MatrixMarket matrix coordinate {field} general")?;
        writeln!(w, "{} {} {}", x.n_cols, x.n_rows, x.nnz())?;
        for i in 0..x.n_rows {
            let (idx, val) = x.row(i);
            for (&j, &v) in idx.iter().zip(val) {
                writeln!(w, "{} {} {}", j + 1, i + 1, v)?;
            }
        }
        Ok(())
    })?;
    gz(&dir.join("features.tsv.gz"), &|w| {
        for g in genes {
            writeln!(w, "{g}\t{g}\tGene Expression")?;
        }
        Ok(())
    })?;
    gz(&dir.join("barcodes.tsv.gz"), &|w| {
        for c in cells {
            writeln!(w, "{c}")?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_written_in_blocks_reads_back_exactly() {
        // more values than one block (65 536), and a partial last block
        let v: Vec<f32> = (0..(1 << 16) * 2 + 7).map(|i| i as f32 * 0.25 - 7.0).collect();
        let p = std::env::temp_dir().join(format!("scdeep-npy-{}.npy", std::process::id()));
        write_npy_f32(&p, &v, &[v.len() / 3, 3]).unwrap();
        let (back, shape) = read_npy_f32(&p).unwrap();
        assert_eq!(shape, vec![v.len() / 3, 3]);
        assert!(back == v, "values differ");
        let len = std::fs::metadata(&p).unwrap().len() as usize;
        assert_eq!(len % 4, 0);
        assert_eq!(len - v.len() * 4, 128, "header of 128 bytes, then the values only");
        std::fs::remove_file(&p).unwrap();
    }
}
