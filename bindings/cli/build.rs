// Bake libtorch's directory into everything this crate links (tests included),
// so nothing needs LD_LIBRARY_PATH at run time (see docs/dev/toolchain.md).
fn main() {
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
        println!("cargo:rustc-env=SCDEEP_LIBTORCH_LIB={dir}");
    }
}
