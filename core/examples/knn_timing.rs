//! Exact vs HNSW kNN timing on random clustered points (development aid).
use scdeep_core::cluster::{self, Metric};
use std::time::Instant;
fn main() {
    let n: i64 = std::env::args().nth(1).map(|s| s.parse().unwrap()).unwrap_or(20000);
    let ef: usize = std::env::args().nth(2).map(|s| s.parse().unwrap()).unwrap_or(64);
    tch::set_num_threads(1);
    let mut rng = scdeep_core::train::rng_for(5, 0);
    let centers = scdeep_core::train::random::normal(&mut rng, &[30, 30], tch::Device::Cpu);
    let which = tch::Tensor::from_slice(&(0..n).map(|i| i % 30).collect::<Vec<_>>());
    let x = centers.index_select(0, &which) + scdeep_core::train::random::normal(&mut rng, &[n, 30], tch::Device::Cpu);
    let t = Instant::now();
    let bl: usize = std::env::var("BL").map(|s| s.parse().unwrap()).unwrap_or(4096);
    let e = cluster::knn_exact(&x, 15, Metric::Euclidean, bl).unwrap();
    let te = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let a = cluster::knn_hnsw(&x, 15, Metric::Euclidean, ef, 0, 1).unwrap();
    let ta = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let v = cluster::knn_ivf(&x, 15, Metric::Euclidean, 0, 10, 0).unwrap();
    println!("ivf {:.2}s recall {:.4}", t.elapsed().as_secs_f64(), cluster::recall(&e, &v));
    println!("n {n} exact {te:.2}s hnsw(ef {ef}) {ta:.2}s recall {:.4}", cluster::recall(&e, &a));
}
