//! mask-sc's MLP variant: the reconstruction loss falls, the embedding has 60 dimensions,
//! and the same seed gives the same labels.

use scdeep_core::progress::Silent;
use scdeep_core::simulate::{simulate, SimParams};
use scdeep_core::{pipeline, Dataset, RunConfig};
use serde_json::json;

#[test]
fn mlp_variant_trains_and_is_deterministic() {
    let p = SimParams { n_cells: 500, n_genes: 800, group_prob: vec![0.5, 0.3, 0.2], de_prob: 0.3, seed: 4, ..Default::default() };
    let s = simulate(&p).unwrap();
    let ds = Dataset { x: s.counts, cells: s.cells, genes: s.genes, labels: Some(s.groups), source: "sim".into() };
    let c = RunConfig::from_json(&json!({"method": "mask-sc-mlp", "device": "cpu", "threads": 1, "train": {"epochs": 30}})).unwrap();
    let a = pipeline::run(&ds, &c, &mut Silent).unwrap();
    assert_eq!(a.dims, 60);
    let l: Vec<f64> = a.history.iter().map(|h| h["loss"].as_f64().unwrap()).collect();
    assert!(l[29] < 0.9 * l[0], "MSE did not fall: {} -> {}", l[0], l[29]);
    assert!(a.scores.as_ref().unwrap().ari > 0.9, "ARI {}", a.scores.as_ref().unwrap().ari);
    let b = pipeline::run(&ds, &c, &mut Silent).unwrap();
    assert_eq!(a.labels, b.labels);
    assert_eq!(a.embedding, b.embedding);
}
