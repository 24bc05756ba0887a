// Bake libtorch's directory into everything this crate links (tests included), so
// nothing needs LD_LIBRARY_PATH at run time (see docs/dev/toolchain.md), and generate
// the C header with cbindgen into OUT_DIR (`make header` copies it to c-include/; a test
// fails when the checked-in copy is stale).
fn main() {
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
        println!("cargo:rustc-env=SCDEEP_LIBTORCH_LIB={dir}");
    }
    let crate_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    let out = std::path::Path::new(&std::env::var("OUT_DIR").unwrap()).join("scdeep.h");
    let cfg = cbindgen::Config::from_file(format!("{crate_dir}/cbindgen.toml")).expect("cbindgen.toml");
    cbindgen::Builder::new().with_crate(&crate_dir).with_config(cfg).generate().expect("cbindgen").write_to_file(&out);
    println!("cargo:rerun-if-changed=src/lib.rs");
    println!("cargo:rerun-if-changed=cbindgen.toml");
}
