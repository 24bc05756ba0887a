// Bake libtorch's directory into everything this crate links (tests included),
// so nothing needs LD_LIBRARY_PATH at run time (see ../shared/TOOLCHAIN.md).
fn main() {
    // Installed next to torch in site-packages: scdeep/_scdeep.abi3.so -> torch/lib.
    println!("cargo:rustc-link-arg=-Wl,-rpath,$ORIGIN/../torch/lib");
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
        println!("cargo:rustc-env=SCDEEP_LIBTORCH_LIB={dir}");
    }
}
