//! Recall and time of the approximate kNN settings against exact search (development aid):
//! `cargo run --release --example knn_sweep -- (EMB.npy | random:N) [ivf:NPROBE:REFINE[:NLIST[:SEARCH]] | hnsw:EF ...]`.
//! random:N is N points around 30 overlapping centres in 30 dimensions. One thread.
//! NO_EXACT=1 skips the exact search and estimates recall on 2000 cells instead.
use scdeep_core::cluster::{self, Metric};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    tch::set_num_threads(1);
    let x = match args[1].strip_prefix("random:") {
        Some(n) => {
            let n: i64 = n.parse().unwrap();
            let mut rng = scdeep_core::seed::rng_for(5, 0);
            let centers = scdeep_core::train::random::normal(&mut rng, &[30, 30], tch::Device::Cpu);
            let which = tch::Tensor::from_slice(&(0..n).map(|i| i % 30).collect::<Vec<_>>());
            centers.index_select(0, &which) + scdeep_core::train::random::normal(&mut rng, &[n, 30], tch::Device::Cpu)
        }
        None => {
            let (v, shape) = scdeep_core::io::write::read_npy_f32(std::path::Path::new(&args[1])).unwrap();
            tch::Tensor::from_slice(&v).view([shape[0] as i64, shape[1] as i64])
        }
    };
    let t = Instant::now();
    let exact =
        if std::env::var_os("NO_EXACT").is_some() { None } else { Some(cluster::knn_exact(&x, 15, Metric::Euclidean, 512).unwrap()) };
    println!("{} cells: exact {:.1} s", x.size()[0], t.elapsed().as_secs_f64());
    for spec in &args[2..] {
        let p: Vec<&str> = spec.split(':').collect();
        let t = Instant::now();
        let a = match p[0] {
            "ivf" => {
                let nlist = p.get(3).map_or(0, |s| s.parse().unwrap());
                cluster::knn_ivf(
                    &x,
                    15,
                    Metric::Euclidean,
                    nlist,
                    p[1].parse().unwrap(),
                    p.get(4).map_or(0, |s| s.parse().unwrap()),
                    p[2].parse().unwrap(),
                    0,
                )
                .unwrap()
            }
            "nnd" => {
                // nnd:NPROBE:ROUNDS[:MAX_CANDIDATES[:WIDTH]]: NN-descent from the inverted file's graph
                let w: usize = p.get(4).map_or(14, |s| s.parse().unwrap());
                let init = cluster::knn_ivf(&x, w + 1, Metric::Euclidean, 0, p[1].parse().unwrap(), 0, 0, 0).unwrap();
                let prm = cluster::descent::DescentParams {
                    max_rounds: p[2].parse().unwrap(),
                    max_candidates: p.get(3).map_or(15, |s| s.parse().unwrap()),
                    delta: 0.001,
                    width: w,
                    seed: 0,
                    threads: 1,
                };
                let (k, rep) = cluster::descent::knn_descent(&x, 15, init, Metric::Euclidean, &prm).unwrap();
                println!("  rounds {:?}", rep.updates);
                k
            }
            "hnsw" => cluster::knn_hnsw(&x, 15, Metric::Euclidean, p[1].parse().unwrap(), 0, 1).unwrap(),
            other => panic!("unknown search '{other}'"),
        };
        let s = t.elapsed().as_secs_f64();
        let r = match &exact {
            Some(e) => cluster::recall(e, &a),
            None => cluster::graph::sampled_recall(&x, &a, Metric::Euclidean, 2000, 0).unwrap(),
        };
        println!("{spec}: {s:.1} s, recall {r:.4}");
    }
}
