//! HDF5 files are parsed by libhdf5 (C), which loops forever or allocates without bound
//! on some corrupt files (fuzzing found both: global-heap and local-heap free-list
//! parsing, variable-length string conversion). Nothing in the library can bound that,
//! so on Linux an HDF5 input is read in a forked child process with an address-space
//! limit and a deadline; the child sends the dataset (or its error) back through a pipe
//! and exits. A child that runs out of time or memory, or dies, becomes a clear error
//! naming the file instead of a hung or killed run. Elsewhere the read runs in process.

use super::Limits;
use crate::error::{Error, Result};
use crate::matrix::{Csr, Dataset};
use crate::preprocess::{HvgResult, Prepared, Scaler};
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// What a child sends back.
pub(crate) trait Wire: Sized {
    /// Send the value, freeing what is sent as it goes (the child and the parent then do
    /// not both hold the whole value).
    fn put(self, w: &mut dyn Write) -> std::io::Result<()>;
    fn get(r: &mut dyn Read, budget: u64) -> std::io::Result<Self>;
}

impl Wire for () {
    fn put(self, _: &mut dyn Write) -> std::io::Result<()> {
        Ok(())
    }
    fn get(_: &mut dyn Read, _: u64) -> std::io::Result<()> {
        Ok(())
    }
}

fn put_u64(w: &mut dyn Write, v: u64) -> std::io::Result<()> {
    w.write_all(&v.to_le_bytes())
}
fn get_u64(r: &mut dyn Read) -> std::io::Result<u64> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b)?;
    Ok(u64::from_le_bytes(b))
}

/// Plain numbers whose every bit pattern is a value (u32, f32, u64, usize): sent as their
/// bytes in this machine's order (both ends are the same program on the same machine).
trait Pod: Copy + Default {}
impl Pod for u32 {}
impl Pod for f32 {}
impl Pod for u64 {}
impl Pod for usize {}
impl Pod for f64 {}
impl Pod for u8 {}

fn bytes_of<T: Pod>(v: &[T]) -> &[u8] {
    // SAFETY: T is a plain number type without padding; the slice covers v exactly.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
}

fn bytes_of_mut<T: Pod>(v: &mut [T]) -> &mut [u8] {
    // SAFETY: as above, and every byte pattern is a valid T.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
}

fn put_vec<T: Pod>(w: &mut dyn Write, v: &[T]) -> std::io::Result<()> {
    put_u64(w, v.len() as u64)?;
    w.write_all(bytes_of(v))
}

fn too_big(n: u64, what: &str) -> std::io::Error {
    std::io::Error::other(format!("the reader announced {n} {what}, more than the memory budget"))
}

fn get_vec<T: Pod>(r: &mut dyn Read, budget: u64) -> std::io::Result<Vec<T>> {
    let n = get_u64(r)?;
    if n.saturating_mul(std::mem::size_of::<T>() as u64) > budget {
        return Err(too_big(n, "values"));
    }
    let mut v = vec![T::default(); n as usize];
    r.read_exact(bytes_of_mut(&mut v))?;
    Ok(v)
}

fn put_strings(w: &mut dyn Write, v: &[String]) -> std::io::Result<()> {
    put_u64(w, v.len() as u64)?;
    v.iter().try_for_each(|s| put_string(w, s))
}

fn put_string(w: &mut dyn Write, s: &str) -> std::io::Result<()> {
    put_u64(w, s.len() as u64)?;
    w.write_all(s.as_bytes())
}

fn get_string(r: &mut dyn Read, budget: u64) -> std::io::Result<String> {
    let n = get_u64(r)?;
    if n > budget {
        return Err(too_big(n, "bytes"));
    }
    let mut b = vec![0u8; n as usize];
    r.read_exact(&mut b)?;
    String::from_utf8(b).map_err(std::io::Error::other)
}

fn get_strings(r: &mut dyn Read, budget: u64) -> std::io::Result<Vec<String>> {
    let n = get_u64(r)?;
    if n.saturating_mul(24) > budget {
        return Err(too_big(n, "names"));
    }
    (0..n).map(|_| get_string(r, budget)).collect()
}

fn put_csr(w: &mut dyn Write, x: Csr) -> std::io::Result<()> {
    let Csr { n_rows, n_cols, indptr, indices, data } = x;
    put_u64(w, n_rows as u64)?;
    put_u64(w, n_cols as u64)?;
    put_vec(w, &indptr)?;
    drop(indptr);
    put_vec(w, &indices)?;
    drop(indices);
    put_vec(w, &data)
}

fn get_csr(r: &mut dyn Read, budget: u64) -> std::io::Result<Csr> {
    let n_rows = get_u64(r)? as usize;
    let n_cols = get_u64(r)? as usize;
    let indptr = get_vec(r, budget)?;
    let indices = get_vec(r, budget)?;
    let data = get_vec(r, budget)?;
    Ok(Csr { n_rows, n_cols, indptr, indices, data })
}

/// A flag (0 or 1), then the value when there is one.
fn put_opt<T>(w: &mut dyn Write, v: Option<T>, put: impl FnOnce(&mut dyn Write, T) -> std::io::Result<()>) -> std::io::Result<()> {
    match v {
        Some(v) => {
            put_u64(w, 1)?;
            put(w, v)
        }
        None => put_u64(w, 0),
    }
}

fn get_opt<T>(r: &mut dyn Read, get: impl FnOnce(&mut dyn Read) -> std::io::Result<T>) -> std::io::Result<Option<T>> {
    Ok(if get_u64(r)? == 1 { Some(get(r)?) } else { None })
}

impl Wire for bool {
    fn put(self, w: &mut dyn Write) -> std::io::Result<()> {
        put_u64(w, self as u64)
    }
    fn get(r: &mut dyn Read, _: u64) -> std::io::Result<bool> {
        Ok(get_u64(r)? == 1)
    }
}

impl Wire for Dataset {
    fn put(self, w: &mut dyn Write) -> std::io::Result<()> {
        let Dataset { x, cells, genes, labels, batches, source } = self;
        put_csr(w, x)?;
        put_strings(w, &cells)?;
        put_strings(w, &genes)?;
        put_opt(w, labels, |w, l| put_strings(w, &l))?;
        put_opt(w, batches, |w, b| put_strings(w, &b))?;
        put_string(w, &source)
    }

    fn get(r: &mut dyn Read, budget: u64) -> std::io::Result<Dataset> {
        let x = get_csr(r, budget)?;
        let cells = get_strings(r, budget)?;
        let genes = get_strings(r, budget)?;
        let labels = get_opt(r, |r| get_strings(r, budget))?;
        let batches = get_opt(r, |r| get_strings(r, budget))?;
        let source = get_string(r, budget)?;
        Ok(Dataset { x, cells, genes, labels, batches, source })
    }
}

impl Wire for super::Input {
    fn put(self, w: &mut dyn Write) -> std::io::Result<()> {
        match self {
            super::Input::Whole(ds) => {
                put_u64(w, 0)?;
                ds.put(w)
            }
            super::Input::Prepared(s) => {
                put_u64(w, 1)?;
                let super::StreamedInput { prep, n_cells, genes, notes, seconds } = *s;
                let Prepared {
                    x,
                    counts,
                    cells,
                    genes: kept,
                    labels,
                    batches,
                    size_factors,
                    cell_index,
                    scaler,
                    hvg,
                    target_sum,
                    norm_genes,
                } = prep;
                put_csr(w, x)?;
                put_opt(w, counts, |w, c| put_csr(w, c.into_owned()))?;
                put_strings(w, &cells)?;
                put_strings(w, &kept)?;
                put_opt(w, labels, |w, l| put_strings(w, &l))?;
                put_opt(w, batches, |w, b| put_strings(w, &b))?;
                put_vec(w, &size_factors)?;
                put_vec(w, &cell_index)?;
                put_opt(w, scaler, |w, s| {
                    put_vec(w, &s.mean)?;
                    put_vec(w, &s.std)?;
                    put_vec(w, &s.max_value.into_iter().collect::<Vec<f32>>())?;
                    put_u64(w, s.zero_center as u64)
                })?;
                put_opt(w, hvg, |w, h| {
                    put_vec(w, &h.means)?;
                    put_vec(w, &h.dispersions)?;
                    put_vec(w, &h.dispersions_norm)?;
                    put_vec(w, &h.highly_variable.iter().map(|&b| b as u8).collect::<Vec<u8>>())
                })?;
                put_u64(w, target_sum.to_bits())?;
                put_strings(w, &norm_genes)?;
                put_u64(w, n_cells as u64)?;
                put_strings(w, &genes)?;
                put_strings(w, &notes)?;
                put_u64(w, seconds.to_bits())
            }
        }
    }

    fn get(r: &mut dyn Read, budget: u64) -> std::io::Result<super::Input> {
        if get_u64(r)? == 0 {
            return Dataset::get(r, budget).map(super::Input::Whole);
        }
        let x = get_csr(r, budget)?;
        let counts = get_opt(r, |r| get_csr(r, budget))?.map(std::borrow::Cow::Owned);
        let cells = get_strings(r, budget)?;
        let kept = get_strings(r, budget)?;
        let labels = get_opt(r, |r| get_strings(r, budget))?;
        let batches = get_opt(r, |r| get_strings(r, budget))?;
        let size_factors = get_vec(r, budget)?;
        let cell_index = get_vec(r, budget)?;
        let scaler = get_opt(r, |r| {
            let (mean, std, max) = (get_vec(r, budget)?, get_vec(r, budget)?, get_vec::<f32>(r, budget)?);
            Ok(Scaler { mean, std, max_value: max.first().copied(), zero_center: get_u64(r)? == 1 })
        })?;
        let hvg = get_opt(r, |r| {
            let (means, dispersions, dispersions_norm) = (get_vec(r, budget)?, get_vec(r, budget)?, get_vec(r, budget)?);
            let highly_variable = get_vec::<u8>(r, budget)?.into_iter().map(|b| b == 1).collect();
            Ok(HvgResult { means, dispersions, dispersions_norm, highly_variable })
        })?;
        let target_sum = f64::from_bits(get_u64(r)?);
        let norm_genes = get_strings(r, budget)?;
        let prep =
            Prepared { x, counts, cells, genes: kept, labels, batches, size_factors, cell_index, scaler, hvg, target_sum, norm_genes };
        let n_cells = get_u64(r)? as usize;
        let genes = get_strings(r, budget)?;
        let notes = get_strings(r, budget)?;
        let seconds = f64::from_bits(get_u64(r)?);
        Ok(super::Input::Prepared(Box::new(super::StreamedInput { prep, n_cells, genes, notes, seconds })))
    }
}

/// How `memory_budget` is set, for messages.
const BUDGET_RULE: &str = "128 MiB + 2 x limits.max_decompression_ratio x the file size";

/// The memory a child may take beyond what it inherits: 128 MiB, plus twice what the
/// file may expand to under `lim` (values, then their conversion), at most the machine's.
pub(crate) fn memory_budget(file_len: u64, lim: &Limits) -> u64 {
    let expand = file_len.saturating_mul(lim.max_decompression_ratio).max(lim.min_decompressed_bytes);
    (128u64 << 20).saturating_add(expand.saturating_mul(2)).min(super::memory_limit_bytes())
}

/// The time a child may take: `limits.hdf5_timeout_s` plus one second per 10 MB of file.
pub(crate) fn deadline(file_len: u64, lim: &Limits) -> Duration {
    Duration::from_secs_f64(lim.hdf5_timeout_s + file_len as f64 / 10e6)
}

/// Run `f` (which reads or writes the HDF5 file `path`) in a child process when
/// `limits.hdf5_child` is set and this is Linux; otherwise in this process.
pub(crate) fn run<T: Wire>(path: &Path, lim: &Limits, f: impl FnOnce() -> Result<T>) -> Result<T> {
    #[cfg(target_os = "linux")]
    if lim.hdf5_child {
        let len = std::fs::metadata(path).map_or(0, |m| m.len());
        return linux::in_child(path, memory_budget(len, lim), deadline(len, lim), f);
    }
    let _ = (path, lim);
    f()
}

#[cfg(target_os = "linux")]
mod linux {
    use super::*;

    const OK: u8 = 0;
    const ERR: u8 = 1;

    /// Reads the pipe, waiting at most until `until`.
    struct Timed {
        fd: libc::c_int,
        until: Instant,
        timed_out: bool,
    }

    impl Read for Timed {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            loop {
                let left = self.until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    self.timed_out = true;
                    return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "deadline"));
                }
                let mut p = libc::pollfd { fd: self.fd, events: libc::POLLIN, revents: 0 };
                let ms = left.as_millis().min(1000) as libc::c_int;
                // SAFETY: one valid pollfd.
                let r = unsafe { libc::poll(&mut p, 1, ms.max(1)) };
                if r < 0 {
                    let e = std::io::Error::last_os_error();
                    if e.kind() == std::io::ErrorKind::Interrupted {
                        continue;
                    }
                    return Err(e);
                }
                if r == 0 {
                    continue;
                }
                // SAFETY: buf is valid for buf.len() bytes.
                let n = unsafe { libc::read(self.fd, buf.as_mut_ptr().cast(), buf.len()) };
                if n < 0 {
                    let e = std::io::Error::last_os_error();
                    if e.kind() == std::io::ErrorKind::Interrupted {
                        continue;
                    }
                    return Err(e);
                }
                return Ok(n as usize);
            }
        }
    }

    /// Writes to the pipe (the child's end).
    struct Fd(libc::c_int);
    impl Write for Fd {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            // SAFETY: buf is valid for buf.len() bytes.
            let n = unsafe { libc::write(self.0, buf.as_ptr().cast(), buf.len()) };
            if n < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// `VmSize` or `VmPeak` of this process in bytes (0 when unknown).
    fn vm(field: &str) -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse::<u64>().ok())
            })
            .map_or(0, |kb| kb * 1024)
    }

    /// The child: bounded, runs `f`, sends the result, never returns.
    fn child<T: Wire>(path: &Path, wfd: libc::c_int, budget: u64, wait: Duration, f: impl FnOnce() -> Result<T>) -> ! {
        let cur = vm("VmSize:");
        // SAFETY: plain libc calls in the child of fork(); no locks are taken before
        // `f`, which only touches this thread's state and libhdf5.
        unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGPIPE] {
                libc::signal(sig, libc::SIG_DFL);
            }
            libc::alarm(wait.as_secs() as libc::c_uint + 5);
            if cur > 0 {
                let lim = libc::rlimit { rlim_cur: cur.saturating_add(budget), rlim_max: libc::RLIM_INFINITY };
                libc::setrlimit(libc::RLIMIT_AS, &lim);
            }
        }
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| {
            let what = p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
            Err(Error::data(format!("the HDF5 reader failed: {what}")))
        });
        // An error after the address space reached its limit is the limit's doing (libhdf5
        // reports a failed allocation as whatever it was reading, "no such link" say).
        let r = match r {
            Err(e) if cur > 0 && vm("VmPeak:") + (16 << 20) >= cur.saturating_add(budget) => Err(Error::format(
                path,
                format!("reading it with the HDF5 library needed more than its {:.0} MiB memory budget: a corrupt file? ({e}; budget: {BUDGET_RULE})", budget as f64 / 1048576.0),
            )),
            r => r,
        };
        let mut w = std::io::BufWriter::with_capacity(1 << 20, Fd(wfd));
        let sent = match r {
            Ok(v) => w.write_all(&[OK]).and_then(|_| v.put(&mut w)),
            Err(e) => {
                let json = serde_json::to_string(&e).unwrap_or_default();
                w.write_all(&[ERR]).and_then(|_| put_string(&mut w, &json))
            }
        };
        let ok = sent.and_then(|_| w.flush()).is_ok();
        // SAFETY: ends the child without running the parent's destructors or atexit.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) }
    }

    pub(super) fn in_child<T: Wire>(path: &Path, budget: u64, wait: Duration, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: fds has room for two descriptors.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return f();
        }
        let (rfd, wfd) = (fds[0], fds[1]);
        let start = Instant::now();
        // SAFETY: the child only runs `child`, which ends in _exit.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            // SAFETY: our descriptors.
            unsafe {
                libc::close(rfd);
                libc::close(wfd);
            }
            return f();
        }
        if pid == 0 {
            // SAFETY: the read end belongs to the parent.
            unsafe { libc::close(rfd) };
            child(path, wfd, budget, wait, f);
        }
        // SAFETY: the write end belongs to the child; 1 MiB pipe buffer (best effort).
        unsafe {
            libc::close(wfd);
            libc::fcntl(rfd, libc::F_SETPIPE_SZ, 1 << 20);
        }
        let mut r = std::io::BufReader::with_capacity(1 << 20, Timed { fd: rfd, until: start + wait, timed_out: false });
        let got = read_reply::<T>(&mut r, budget);
        let timed_out = r.get_ref().timed_out;
        // SAFETY: our descriptor and our child.
        let status = unsafe {
            libc::close(rfd);
            if timed_out || got.is_err() {
                libc::kill(pid, libc::SIGKILL);
            }
            let mut st = 0;
            while libc::waitpid(pid, &mut st, 0) < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {}
            st
        };
        let secs = wait.as_secs_f64();
        let mb = budget as f64 / 1048576.0;
        if timed_out || (libc::WIFSIGNALED(status) && matches!(libc::WTERMSIG(status), libc::SIGALRM)) {
            return Err(Error::format(
                path,
                format!("the HDF5 library did not finish with this file within {secs:.0} s (a corrupt file? limit: limits.hdf5_timeout_s plus 1 s per 10 MB)"),
            ));
        }
        if libc::WIFSIGNALED(status) {
            let sig = libc::WTERMSIG(status);
            if sig == libc::SIGINT || sig == libc::SIGTERM {
                return Err(Error::Cancelled);
            }
            if let Ok(v) = got {
                return v;
            }
            let why = if sig == libc::SIGABRT || sig == libc::SIGKILL || sig == libc::SIGSEGV {
                format!("it needed more than its {mb:.0} MiB memory budget or the file is corrupt (signal {sig}; budget: {BUDGET_RULE})")
            } else {
                format!("signal {sig}; a corrupt file?")
            };
            return Err(Error::format(path, format!("reading the file with the HDF5 library failed: {why}")));
        }
        match got {
            Ok(v) => v,
            Err(e) => Err(Error::format(
                path,
                format!("reading the file with the HDF5 library failed ({e}); a corrupt file, or more than the {mb:.0} MiB memory budget?"),
            )),
        }
    }

    /// The child's value or error; an I/O error when the reply is cut short.
    fn read_reply<T: Wire>(r: &mut dyn Read, budget: u64) -> std::io::Result<Result<T>> {
        let mut tag = [0u8; 1];
        r.read_exact(&mut tag)?;
        if tag[0] == OK {
            return Ok(Ok(T::get(r, budget)?));
        }
        let json = get_string(r, budget)?;
        Ok(Err(serde_json::from_str(&json).map_err(std::io::Error::other)?))
    }
}
