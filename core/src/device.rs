//! Device selection (`auto | cpu | cuda | cuda:N`), thread count and seeding.

use crate::error::{Error, Result};
use std::sync::Once;

static CUDA_LOAD: Once = Once::new();

/// The directory of the libtorch this process loaded (the one libtorch_cpu.so was mapped
/// from), so that an installed or relocated binary finds libtorch_cuda beside it.
fn loaded_libtorch_dir() -> Option<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.ends_with("/libtorch_cpu.so"))
        .map(|p| p.trim_end_matches("/libtorch_cpu.so").to_string())
}

/// The linker drops libtorch_cuda (`--as-needed`) because nothing references it by
/// symbol; load it once so CUDA kernels register: from the directory of the loaded
/// libtorch, else the one built against, else by name. Fails quietly on CPU-only installs.
pub fn load_cuda() {
    CUDA_LOAD.call_once(|| {
        let name = "libtorch_cuda.so";
        let dirs = [loaded_libtorch_dir(), option_env!("SCDEEP_LIBTORCH_LIB").map(String::from)];
        let paths = dirs.into_iter().flatten().map(|d| format!("{d}/{name}")).chain([name.to_string()]);
        for p in paths {
            let Ok(c) = std::ffi::CString::new(p) else { continue };
            // SAFETY: dlopen with a valid C string; the handle is intentionally leaked.
            let h = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
            if !h.is_null() {
                return;
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
            if cuda_available() {
                Ok(tch::Device::Cuda(0))
            } else {
                Err(bad("CUDA was requested but no CUDA device is visible (no NVIDIA driver, or libtorch sees no GPU)"))
            }
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
/// 10-15x slower than 1 (docs/dev/toolchain.md).
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
    // The version core/build.rs found beside the libtorch linked (tch 0.26 <-> torch
    // 2.13.0 unless the build bypassed tch's version check).
    env!("SCDEEP_LIBTORCH_VERSION").to_string()
}

thread_local! {
    /// Set while [`torch_guard`] runs on this thread: its panics are errors, not reports.
    static GUARDED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Install (once) a panic hook that stays silent for panics inside [`torch_guard`]
/// and hands every other panic to the hook that was there before.
fn install_quiet_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !GUARDED.with(|g| g.get()) {
                previous(info);
            }
        }));
    });
}

/// libtorch's own message without tch's wrapping (`Torch("...")`, escaped), the C++
/// backtrace or the enforce prefix: "DefaultCPUAllocator: can't allocate memory: ...".
fn first_line(msg: &str) -> &str {
    let mut m = msg.trim().trim_start_matches("called `Result::unwrap()` on an `Err` value: ");
    if let Some(rest) = m.strip_prefix("Torch(\"") {
        m = rest.split("\\n").next().unwrap_or(rest).trim_end_matches("\")");
    }
    m = m.lines().next().unwrap_or(m);
    if m.starts_with("[enforce fail") {
        if let Some(i) = m.find("] ") {
            m = &m[i + 2..];
            m = m.strip_prefix("err == 0. ").unwrap_or(m);
        }
    }
    m.trim()
}

fn is_oom(msg: &str) -> bool {
    let low = msg.to_lowercase();
    ["out of memory", "can't allocate memory", "not enough memory", "failed to allocate"].iter().any(|s| low.contains(s))
}

/// The message of a libtorch failure as an error, with what to do when it is memory.
pub fn torch_error(what: &str, device: tch::Device, msg: &str) -> Error {
    let first = first_line(msg);
    if is_oom(msg) {
        let hint = match device {
            tch::Device::Cuda(_) => {
                "lower train.batch_size or train.embed_batch_size (--set train.batch_size=N), or run on the CPU (device cpu)"
            }
            _ => "lower train.batch_size or train.embed_batch_size (--set train.batch_size=N), or the model's layer sizes",
        };
        return Error::Torch(format!("out of memory on {} while {what}: {first}; {hint}", device_name(device)));
    }
    Error::Torch(format!("{what} on {}: {first}", device_name(device)))
}

/// Run `f`, which calls libtorch on `device`: a libtorch failure that tch reports by
/// panicking (its infallible calls; CUDA out of memory in a layer, say) becomes
/// `Error::Torch` naming `what` and, for memory, what to lower. Explicit allocations use
/// tch's fallible `f_*` calls and arrive here as errors already.
pub fn torch_guard<T>(what: &str, device: tch::Device, f: impl FnOnce() -> Result<T>) -> Result<T> {
    install_quiet_hook();
    let was = GUARDED.with(|g| g.replace(true));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    GUARDED.with(|g| g.set(was));
    match r {
        Ok(Ok(v)) => Ok(v),
        // An `f_*` call's error: memory gets the hint (once, however deep the guards).
        Ok(Err(Error::Torch(m))) if !m.starts_with("out of memory on ") && is_oom(&m) => Err(torch_error(what, device, &m)),
        Ok(Err(e)) => Err(e),
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a panic without a message".into());
            if msg.contains("Torch(") || msg.contains("Torch error") || is_oom(&msg) {
                Err(torch_error(what, device, &msg))
            } else {
                // Not libtorch: a bug of ours, reported as such (and still no unwinding
                // across a door).
                Err(Error::Numeric(format!("internal error while {what}: {msg} (please report it)")))
            }
        }
    }
}

/// Hands the heap's free pages back to the system (glibc keeps what a run freed, and
/// after large frees serves large blocks from its heap, so a stage's freed matrices
/// would stay resident through the stages after it). No-op elsewhere.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Kind, Tensor};

    #[test]
    fn a_failed_allocation_is_a_typed_error_with_a_hint() {
        // Through an infallible call (tch panics): caught, silent, typed.
        let r: Result<()> = torch_guard("testing", tch::Device::Cpu, || {
            let _ = Tensor::zeros([1i64 << 50], (Kind::Float, tch::Device::Cpu));
            Ok(())
        });
        match r {
            Err(Error::Torch(m)) => {
                assert!(m.starts_with("out of memory on cpu while testing: DefaultCPUAllocator: can't allocate memory"), "{m}");
                assert!(m.contains("batch_size") && !m.contains("frame #"), "{m}");
            }
            other => panic!("{other:?}"),
        }
        // Through a fallible call: the same error.
        let r: Result<()> = torch_guard("testing", tch::Device::Cpu, || {
            let _big = Tensor::f_zeros([1i64 << 50], (Kind::Float, tch::Device::Cpu))?;
            Ok(())
        });
        assert!(matches!(&r, Err(Error::Torch(m)) if m.starts_with("out of memory on cpu while testing")), "{r:?}");
        // A panic that is not libtorch's is an internal error, not a crash.
        let r: Result<()> = torch_guard("testing", tch::Device::Cpu, || panic!("index out of bounds"));
        assert!(matches!(&r, Err(Error::Numeric(m)) if m.contains("internal error while testing")), "{r:?}");
    }
}
