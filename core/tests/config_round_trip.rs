//! A run's resolved config (run.json's `config`) reproduces the run: built again through
//! the one builder every door uses, it gives the same config and the same labels.

use scdeep_core::config::ConfigBuilder;
use scdeep_core::pipeline::run;
use scdeep_core::progress::Silent;
use scdeep_core::simulate::{simulate, SimParams};
use scdeep_core::Dataset;
use serde_json::json;

/// 300 genes: fewer than the default number of highly variable genes (2000), the case
/// whose resolved config once failed to run again.
fn data(labels: bool) -> Dataset {
    let s = simulate(&SimParams { n_cells: 400, n_genes: 300, group_prob: vec![0.5, 0.3, 0.2], seed: 3, ..Default::default() }).unwrap();
    Dataset { x: s.counts, cells: s.cells, genes: s.genes, labels: labels.then_some(s.groups), batches: None, source: "simulated".into() }
}

fn round_trip(b: ConfigBuilder, labels: bool) {
    let ds = data(labels);
    let first = run(&ds, &b.build(labels).unwrap(), &mut Silent).unwrap();
    let resolved = first.info_json()["config"].clone();
    let cfg = ConfigBuilder::from_json(&resolved).unwrap().build(labels).unwrap();
    let again = run(&ds, &cfg, &mut Silent).unwrap();
    assert_eq!(again.info_json()["config"], resolved);
    assert_eq!(again.labels, first.labels);
    assert_eq!(again.embedding, first.embedding);
}

#[test]
fn run_json_reproduces_a_pca_run_clustered_by_leiden() {
    // neither k nor truth: the builder picks Leiden, and run.json records it
    let b = ConfigBuilder::new().method("pca");
    assert_eq!(b.build(false).unwrap().cluster.algorithm, scdeep_core::cluster::Algorithm::Leiden);
    round_trip(b, false);
}

#[test]
fn run_json_reproduces_a_deep_run_with_k_from_the_truth() {
    let b = ConfigBuilder::new().method("scmae").options(&json!({"train": {"epochs": 2}, "seed": 5, "mask_rate": 0.3})).unwrap();
    round_trip(b, true);
}

#[test]
fn a_number_of_genes_the_user_asks_for_above_the_data_is_still_an_error() {
    let b = ConfigBuilder::new().method("pca").set("preprocess.n_top_genes", json!(2000)).unwrap();
    let e = run(data(true), &b.build(true).unwrap(), &mut Silent).unwrap_err().to_string();
    assert!(e.contains("preprocess.n_top_genes") && e.contains("300 genes"), "{e}");
}
