//! Reader throughput: `read_bench <path> [<path>...]` prints one JSON line per input
//! (seconds, cells, genes, non-zeros per second). Used by bench/run_benchmarks.py.
use scdeep_core::io::{self, ReadOptions};
use std::time::Instant;

fn main() {
    for p in std::env::args().skip(1) {
        let path = std::path::Path::new(&p);
        let fmt = io::detect_format(path).map(|f| format!("{f:?}")).unwrap_or_default();
        let t = Instant::now();
        match io::read(path, &ReadOptions::default()) {
            Ok(ds) => {
                let s = t.elapsed().as_secs_f64();
                println!(
                    "{}",
                    serde_json::json!({"path": p, "format": fmt, "seconds": s, "cells": ds.n_cells(), "genes": ds.n_genes(),
                        "nnz": ds.x.nnz(), "nnz_per_s": ds.x.nnz() as f64 / s})
                );
            }
            Err(e) => println!("{}", serde_json::json!({"path": p, "error": e.to_string()})),
        }
    }
}
