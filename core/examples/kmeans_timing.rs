//! In-process K-means timing on an .npy embedding, for bench/run_benchmarks.py:
//! kmeans_timing emb.npy k n_init threads repeats -> one JSON line.
use scdeep_core::cluster::kmeans::{kmeans, KMeansParams};
use std::time::Instant;
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let arg = |i: usize| a[i].parse::<usize>().unwrap();
    let (v, shape) = scdeep_core::io::write::read_npy_f32(std::path::Path::new(&a[1])).unwrap();
    tch::set_num_threads(arg(4) as i32);
    let x = tch::Tensor::from_slice(&v).view([shape[0] as i64, shape[1] as i64]);
    let mut secs = Vec::new();
    let mut last = None;
    for _ in 0..arg(5) {
        let t = Instant::now();
        let r = kmeans(&x, &KMeansParams { k: arg(2), n_init: arg(3), max_iter: 300, tol: 1e-4, seed: 0 }).unwrap();
        secs.push(t.elapsed().as_secs_f64());
        last = Some(r);
    }
    let r = last.unwrap();
    println!("{}", serde_json::json!({"fit_s": secs, "inertia": r.inertia, "n_iter": r.n_iter}));
}
