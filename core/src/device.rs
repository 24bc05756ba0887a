//! Device selection (`auto | cpu | cuda | cuda:N`), thread count and seeding.

use crate::error::{Error, Result};
use std::sync::Once;

static CUDA_LOAD: Once = Once::new();

/// The linker drops libtorch_cuda (`--as-needed`) because nothing references it by
/// symbol; load it once so CUDA kernels register. Fails quietly on CPU-only installs.
pub fn load_cuda() {
    CUDA_LOAD.call_once(|| {
        for name in ["libtorch_cuda.so"] {
            let mut path = String::new();
            if let Some(dir) = option_env!("SCDEEP_LIBTORCH_LIB") {
                path = format!("{dir}/{name}");
            }
            for p in [path.as_str(), name] {
                if p.is_empty() {
                    continue;
                }
                let c = std::ffi::CString::new(p).unwrap();
                // SAFETY: dlopen with a valid C string; the handle is intentionally leaked.
                let h = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
                if !h.is_null() {
                    return;
                }
            }
        }
    });
}

/// Whether an NVIDIA driver is present at all. Loading libtorch_cuda and its CUDA
/// libraries costs about 0.5 s, which `auto` should not pay on machines without a GPU.
fn nvidia_driver_present() -> bool {
    std::path::Path::new("/proc/driver/nvidia/version").exists() || std::path::Path::new("/dev/nvidiactl").exists()
}

pub fn cuda_available() -> bool {
    if !nvidia_driver_present() {
        return false;
    }
    load_cuda();
    tch::Cuda::is_available()
}

/// Parse a device string.
pub fn parse_device(s: &str) -> Result<tch::Device> {
    let bad = |m: &str| Error::config("device", s, m);
    match s {
        "auto" => Ok(if cuda_available() { tch::Device::Cuda(0) } else { tch::Device::Cpu }),
        "cpu" => Ok(tch::Device::Cpu),
        "cuda" | "gpu" => {
            if cuda_available() { Ok(tch::Device::Cuda(0)) } else { Err(bad("CUDA was requested but no CUDA device is visible (no NVIDIA driver, or libtorch sees no GPU)")) }
        }
        _ => {
            if let Some(n) = s.strip_prefix("cuda:") {
                let n: usize = n.parse().map_err(|_| bad("expected auto, cpu, cuda or cuda:N"))?;
                if !cuda_available() {
                    return Err(bad("CUDA was requested but no CUDA device is visible (no NVIDIA driver, or libtorch sees no GPU)"));
                }
                let count = tch::Cuda::device_count() as usize;
                if n >= count {
                    return Err(bad(&format!("only {count} CUDA device(s) visible")));
                }
                Ok(tch::Device::Cuda(n))
            } else {
                Err(bad("expected auto, cpu, cuda or cuda:N"))
            }
        }
    }
}

pub fn device_name(d: tch::Device) -> String {
    match d {
        tch::Device::Cpu => "cpu".into(),
        tch::Device::Cuda(n) => format!("cuda:{n}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// Set libtorch's intra-op threads. The default is 1: libtorch's OpenMP pool
/// spin-waits, and 2 threads on a 2-core machine with the other core busy ran
/// 10-15x slower than 1 (../shared/TOOLCHAIN.md).
/// The same count sizes the pool of the core's own parallel passes (preprocessing).
/// Set libtorch's and the parallel kernels' thread count (default 1). More threads
/// than this machine has cores are capped at the core count: see [`threads_note`].
pub fn set_threads(threads: Option<usize>) -> Result<usize> {
    let n = threads.unwrap_or(1);
    if n == 0 {
        return Err(Error::config("threads", 0, "must be >= 1"));
    }
    let n = n.min(cores());
    tch::set_num_threads(n as i32);
    THREADS.store(n, std::sync::atomic::Ordering::Relaxed);
    Ok(n)
}

/// Cores this process may use.
pub fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// The warning to show when `requested` threads exceed the cores (None otherwise).
pub fn threads_note(requested: Option<usize>) -> Option<String> {
    let r = requested?;
    (r > cores()).then(|| format!("warning: threads = {r} is more than the {} cores here; using {}", cores(), cores()))
}

static THREADS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);

/// Run `f` with rayon's parallel iterators on `set_threads`' thread count. Parallel
/// passes split work into fixed blocks, so their results do not depend on the count.
pub fn with_threads<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    let n = THREADS.load(std::sync::atomic::Ordering::Relaxed).max(1);
    match rayon::ThreadPoolBuilder::new().num_threads(n).build() {
        Ok(pool) => pool.install(f),
        Err(_) => f(),
    }
}

pub fn libtorch_version() -> String {
    // torch-sys is built against exactly this version (tch 0.26 <-> torch 2.13.0).
    "2.13.0".to_string()
}
