// The extension is installed next to torch in site-packages (scdeep/_scdeep.abi3.so),
// so libtorch is found at $ORIGIN/../torch/lib from any venv; no absolute path (a wheel
// built in pip's isolated environment would otherwise carry a dead temporary path).
fn main() {
    println!("cargo:rustc-link-arg=-Wl,-rpath,$ORIGIN/../torch/lib");
}
