//! contrastive-sc and CICL: they separate simulated groups, their losses fall, the same
//! seed gives the same labels, both CICL variants and λ = 0 train, and a model saves,
//! loads and embeds as it was trained.

use scdeep_core::progress::Silent;
use scdeep_core::simulate::{simulate, SimParams};
use scdeep_core::store::TrainedModel;
use scdeep_core::{pipeline, Dataset, RunConfig};
use serde_json::json;

/// Clearly separated groups (30 % of genes differentially expressed per group).
fn sim(n_cells: usize, seed: u64) -> Dataset {
    let p = SimParams { n_cells, n_genes: 800, group_prob: vec![0.4, 0.3, 0.2, 0.1], de_prob: 0.3, seed, ..Default::default() };
    let s = simulate(&p).unwrap();
    Dataset { x: s.counts, cells: s.cells, genes: s.genes, labels: Some(s.groups), batches: None, source: "sim".into() }
}

fn cfg(v: serde_json::Value) -> RunConfig {
    let mut base = json!({"device": "cpu", "threads": 1});
    base.as_object_mut().unwrap().extend(v.as_object().unwrap().clone());
    RunConfig::from_json(&base).unwrap()
}

fn losses(h: &[serde_json::Value], key: &str) -> Vec<f64> {
    h.iter().map(|e| e[key].as_f64().unwrap()).collect()
}

#[test]
fn contrastive_sc_separates_groups_deterministically() {
    let ds = sim(600, 1);
    let c = cfg(json!({"method": "contrastive-sc"}));
    let a = pipeline::run(&ds, &c, &mut Silent).unwrap();
    assert_eq!(a.dims, 60);
    assert_eq!(a.history.len(), 30);
    let l = losses(&a.history, "loss");
    // NT-Xent starts near or above ln(2B - 1) = ln(399) ≈ 6.0 (specs §3) and falls
    assert!(l[0] > 5.5 && l[0] < 8.0, "first loss {}", l[0]);
    assert!(l[29] < l[0] - 0.5, "loss did not fall: {} -> {}", l[0], l[29]);
    // embeddings are L2-normalised
    let norm: f32 = a.embedding[..60].iter().map(|v| v * v).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
    assert!(a.scores.as_ref().unwrap().ari > 0.9, "ARI {}", a.scores.as_ref().unwrap().ari);
    let b = pipeline::run(&ds, &c, &mut Silent).unwrap();
    assert_eq!(a.labels, b.labels, "same seed, same labels");
    assert_eq!(a.embedding, b.embedding);
    // the model (with BatchNorm running statistics) embeds as in training
    let dir = std::env::temp_dir().join(format!("scdeep-test-contrastive-{}", std::process::id()));
    a.model.save(&dir, false).unwrap();
    let m = TrainedModel::load(&dir, Some("contrastive-sc"), tch::Device::Cpu).unwrap();
    let e = m.embed(&ds, tch::Device::Cpu, &mut Silent).unwrap();
    let d = e.embedding.iter().zip(&a.embedding).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    assert!(d < 1e-5, "reloaded embedding differs by {d}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn cicl_variants_train_deterministically() {
    let ds = sim(300, 2);
    for (variant, lambda) in [("paper", 0.1), ("code", 0.1), ("paper", 0.0)] {
        let c = cfg(json!({"method": "cicl", "params": {"variant": variant, "lambda": lambda, "layers": 2}, "train": {"epochs": 15}}));
        let a = pipeline::run(&ds, &c, &mut Silent).unwrap();
        assert_eq!(a.dims, 800.min(a.n_genes_used), "H has one dimension per gene");
        let l = losses(&a.history, "loss");
        assert!(l.iter().all(|v| v.is_finite()), "{variant}: {l:?}");
        assert!(l[14] < l[0], "{variant} λ={lambda}: loss did not fall: {} -> {}", l[0], l[14]);
        assert!(a.history[0]["pseudo_classes"].as_f64().unwrap() >= 2.0);
        // 15 epochs at lr 1e-5 is a smoke test; accuracy is measured by bench/accuracy.py
        assert!(a.scores.as_ref().unwrap().ari > 0.8, "{variant}: ARI {}", a.scores.as_ref().unwrap().ari);
        let b = pipeline::run(&ds, &c, &mut Silent).unwrap();
        assert_eq!(a.labels, b.labels, "{variant}: same seed, same labels");
    }
    // fixed views (the reference code's augmentation) train too
    let c = cfg(json!({"method": "cicl", "params": {"fixed_views": true, "layers": 1}, "train": {"epochs": 3}}));
    assert!(pipeline::run(&ds, &c, &mut Silent).is_ok());
}

#[test]
fn cicl_needs_the_number_of_clusters() {
    let mut ds = sim(100, 3);
    ds.labels = None;
    let c = cfg(json!({"method": "cicl", "cluster": {"algorithm": "leiden"}, "train": {"epochs": 1}}));
    let e = pipeline::run(&ds, &c, &mut Silent).unwrap_err().to_string();
    assert!(e.contains("cluster.n_clusters"), "{e}");
}
