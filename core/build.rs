// Bake libtorch's directory into everything this crate links (tests included),
// so nothing needs LD_LIBRARY_PATH at run time (see docs/dev/toolchain.md), and record
// the version of the libtorch built against (torch's version.py beside lib/, or a
// libtorch archive's build-version; a build with LIBTORCH_BYPASS_VERSION_CHECK may use
// another than tch's 2.13.0).
fn main() {
    let mut version = None;
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
        println!("cargo:rustc-env=SCDEEP_LIBTORCH_LIB={dir}");
        let root = std::path::Path::new(&dir).join("..");
        if let Ok(text) = std::fs::read_to_string(root.join("version.py")) {
            version = text
                .lines()
                .find_map(|l| l.strip_prefix("__version__ = "))
                .map(|v| v.trim().trim_matches(|c| c == '\'' || c == '"').to_string());
        } else if let Ok(text) = std::fs::read_to_string(root.join("build-version")) {
            version = Some(text.trim().to_string());
        }
    }
    println!("cargo:rustc-env=SCDEEP_LIBTORCH_VERSION={}", version.unwrap_or_else(|| "2.13.0".into()));
}
