//! In-process Harmony timing for bench/harmony_speed.py:
//! `harmony_timing X.npy BATCHES.txt threads OUT.npy` -> one JSON line (seconds, rounds,
//! clusters); the corrected embedding is written to OUT.npy.
use scdeep_core::batch::{harmony, HarmonyConfig};
use scdeep_core::io::write;
use std::time::Instant;

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() != 5 {
        eprintln!("usage: harmony_timing X.npy BATCHES.txt threads OUT.npy");
        std::process::exit(2);
    }
    let (x, shape) = write::read_npy_f32(std::path::Path::new(&a[1])).expect("X.npy");
    let batch: Vec<usize> =
        std::fs::read_to_string(&a[2]).expect("batches").lines().map(|l| l.trim().parse().expect("a batch code")).collect();
    tch::set_num_threads(a[3].parse().expect("threads"));
    let t = Instant::now();
    let h = harmony(&x, shape[1], &batch, &HarmonyConfig::default(), 0, tch::Device::Cpu).expect("harmony");
    let secs = t.elapsed().as_secs_f64();
    write::write_npy_f32(std::path::Path::new(&a[4]), &h.embedding, &[shape[0], shape[1]]).expect("OUT.npy");
    println!("{{\"seconds\": {secs:.3}, \"rounds\": {}, \"clusters\": {}, \"converged\": {}}}", h.iterations, h.n_clusters, h.converged);
}
