//! C ABI over scdeep-core. For now: version strings. The full API (datasets, runs,
//! results, models; status codes, thread-local last error, panics caught at the
//! boundary) and the cbindgen header in c-include/ come with the C ABI issue.

use std::ffi::c_char;

/// scdeep's version as a static NUL-terminated string (never free it).
#[no_mangle]
pub extern "C" fn scdeep_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr() as *const c_char
}

/// The libtorch version scdeep was built against (static, never free it).
#[no_mangle]
pub extern "C" fn scdeep_libtorch_version() -> *const c_char {
    "2.13.0\0".as_ptr() as *const c_char
}

#[cfg(test)]
mod tests {
    #[test]
    fn versions_are_c_strings() {
        let v = unsafe { std::ffi::CStr::from_ptr(super::scdeep_version()) };
        assert_eq!(v.to_str().unwrap(), scdeep_core::version());
        let t = unsafe { std::ffi::CStr::from_ptr(super::scdeep_libtorch_version()) };
        assert_eq!(t.to_str().unwrap(), scdeep_core::device::libtorch_version());
    }
}
