//! Stage timings of read -> prepare -> write, for bench/run_benchmarks.py:
//! prep_timing in.h5ad out.h5ad threads [n_top] -> one JSON line.
use scdeep_core::preprocess::{self, PreprocessConfig, Recipe};
use std::time::Instant;
fn main() {
    let a: Vec<String> = std::env::args().collect();
    scdeep_core::device::set_threads(Some(a[3].parse().unwrap())).unwrap();
    let t = Instant::now();
    let ds = scdeep_core::io::read(std::path::Path::new(&a[1]), &Default::default()).unwrap();
    let t_read = t.elapsed().as_secs_f64();
    let mut cfg = PreprocessConfig::recipe(Recipe::Scanpy);
    if let Some(n) = a.get(4) {
        cfg.n_top_genes = n.parse().unwrap();
        cfg.n_top_genes_is_default = false;
    }
    let t = Instant::now();
    let p = preprocess::prepare(&ds, &cfg, true).unwrap();
    let t_prep = t.elapsed().as_secs_f64();
    let t = Instant::now();
    scdeep_core::io::write_h5ad_new(std::path::Path::new(&a[2]), &p.x, &p.cells, &p.genes, &[], &[("counts", p.counts().unwrap())])
        .unwrap();
    println!(
        "{}",
        serde_json::json!({"read_s": t_read, "prepare_s": t_prep, "write_s": t.elapsed().as_secs_f64(), "genes": p.genes.len()})
    );
}
