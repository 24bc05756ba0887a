//! scMAE and the shared trainer: accuracy on simulated groups, determinism, exact resume,
//! save/load/embed, and clear errors on bad input.

use scdeep_core::progress::{Progress, Silent, TrainReport};
use scdeep_core::simulate::{simulate, SimParams};
use scdeep_core::store::TrainedModel;
use scdeep_core::{pipeline, Dataset, Error, RunConfig};
use serde_json::json;
use std::path::PathBuf;

fn sim(n_cells: usize, seed: u64) -> Dataset {
    let p = SimParams { n_cells, n_genes: 1000, group_prob: vec![0.4, 0.3, 0.2, 0.1], seed, ..Default::default() };
    let s = simulate(&p).unwrap();
    Dataset { x: s.counts, cells: s.cells, genes: s.genes, labels: Some(s.groups), batches: None, source: "sim".into() }
}

fn cfg(over: serde_json::Value) -> RunConfig {
    let mut base = json!({"method": "scmae", "device": "cpu", "threads": 1, "preprocess": {"n_top_genes": 500}});
    if let (Some(b), Some(o)) = (base.as_object_mut(), over.as_object()) {
        for (k, v) in o {
            if let (Some(bv), true) = (b.get_mut(k), v.is_object()) {
                bv.as_object_mut().unwrap().extend(v.as_object().unwrap().clone());
            } else {
                b.insert(k.clone(), v.clone());
            }
        }
    }
    RunConfig::from_json(&base).unwrap()
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("scdeep-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn separates_simulated_groups_and_is_deterministic() {
    let ds = sim(1200, 3);
    let c = cfg(json!({}));
    let a = pipeline::run(&ds, &c, &mut Silent).unwrap();
    let s = a.scores.as_ref().unwrap();
    assert!(s.ari >= 0.9, "scMAE should separate clear simulated groups: ARI {}", s.ari);
    assert_eq!(a.dims, 128);
    assert_eq!(a.history.len(), 81);
    // the loss falls, and the mask loss beats the constant predictor H(p)
    let first = a.history[0]["loss"].as_f64().unwrap();
    let last = a.history[80]["loss"].as_f64().unwrap();
    assert!(last < first, "loss did not fall: {first} -> {last}");
    let h = &a.history[9];
    assert!(h["loss_mask"].as_f64().unwrap() < h["mask_entropy"].as_f64().unwrap(), "mask loss above H(p) at epoch 10: {h}");
    let b = pipeline::run(&ds, &c, &mut Silent).unwrap();
    assert_eq!(a.labels, b.labels, "same seed, same labels");
    assert_eq!(a.embedding, b.embedding, "same seed, same embedding");
    let other = pipeline::run(&ds, &RunConfig { seed: 1, ..c }, &mut Silent).unwrap();
    assert_ne!(a.embedding, other.embedding, "the seed changes the embedding");
}

#[test]
fn per_gene_shuffle_trains() {
    let ds = sim(800, 4);
    let c = cfg(json!({"params": {"shuffle": "per_gene"}}));
    let r = pipeline::run(&ds, &c, &mut Silent).unwrap();
    let s = r.scores.unwrap();
    assert!(s.ari >= 0.8, "per-gene corruption: ARI {}", s.ari);
    // the paper's shuffle changes far more entries than swapping rows of a sparse batch
    let rate = r.history[0]["mask_rate"].as_f64().unwrap();
    assert!(rate > 0.1 && rate <= 0.4, "effective mask rate {rate}");
}

/// Cancels the run once `stop_after` epochs are done (like Ctrl-C).
struct StopAfter(usize, bool);
impl Progress for StopAfter {
    fn train(&mut self, r: &TrainReport) {
        if r.losses.is_some() && r.epoch >= self.0 {
            self.1 = true;
        }
    }
    fn should_continue(&mut self) -> bool {
        !self.1
    }
}

#[test]
fn resume_gives_the_uninterrupted_result() {
    let ds = sim(700, 5);
    let dir = tmpdir("resume");
    let c = cfg(json!({"train": {"epochs": 60, "checkpoint_every": 10, "checkpoint_dir": dir.to_str().unwrap()}}));
    let full = pipeline::run(
        &ds,
        &RunConfig { train: scdeep_core::train::TrainConfig { checkpoint_every: 0, ..c.train.clone() }, ..c.clone() },
        &mut Silent,
    )
    .unwrap();
    // interrupted after epoch 40 (a checkpoint was written after epoch 40)
    let err = pipeline::run(&ds, &c, &mut StopAfter(40, false)).unwrap_err();
    assert!(matches!(err, Error::Cancelled), "{err}");
    let meta: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("checkpoint.json")).unwrap()).unwrap();
    assert_eq!(meta["epochs_done"], 40);
    // one weights file, the one the JSON names (earlier ones removed after the switch)
    assert_eq!(meta["weights"], "checkpoint-40.safetensors");
    let weights: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".safetensors"))
        .collect();
    assert_eq!(weights, vec!["checkpoint-40.safetensors".to_string()]);
    let mut resumed_cfg = c.clone();
    resumed_cfg.train.resume = true;
    let resumed = pipeline::run(&ds, &resumed_cfg, &mut Silent).unwrap();
    assert_eq!(resumed.history.len(), 60);
    assert_eq!(resumed.labels, full.labels);
    assert_eq!(resumed.embedding, full.embedding);
    // a checkpoint from a different run is refused, naming the field
    let mut other = resumed_cfg.clone();
    other.params["mask_rate"] = json!(0.3);
    let e = pipeline::run(&ds, &other, &mut Silent).unwrap_err().to_string();
    assert!(e.contains("checkpoint.json") && e.contains("params.mask_rate"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn saved_model_embeds_new_data() {
    let ds = sim(600, 6);
    let c = cfg(json!({"train": {"epochs": 5}}));
    let r = pipeline::run(&ds, &c, &mut Silent).unwrap();
    let dir = tmpdir("model");
    r.model.save(&dir, false).unwrap();
    for f in ["config.json", "model.safetensors", "genes.tsv", "preprocess.json"] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    let m = TrainedModel::load(&dir, Some("scmae"), tch::Device::Cpu).unwrap();
    assert_eq!(m.genes().len(), 500);
    // the training cells embed to the training embedding
    let e = m.embed(&ds, tch::Device::Cpu, &mut Silent).unwrap();
    assert_eq!(e.missing_genes, 0);
    assert_eq!(e.embedding, r.embedding);
    // genes in another order, some missing: still embeds, and says how many are missing
    let genes: Vec<usize> = (0..ds.n_genes()).rev().filter(|j| j % 10 != 0).collect();
    let sub = ds.select_genes(&genes);
    let e2 = m.embed(&sub, tch::Device::Cpu, &mut Silent).unwrap();
    let model_genes: std::collections::HashSet<&String> = m.genes().iter().collect();
    let dropped = (0..ds.n_genes()).filter(|j| j % 10 == 0 && model_genes.contains(&ds.genes[*j])).count();
    assert_eq!(e2.missing_genes, dropped);
    assert!(dropped > 0);
    // no shared gene at all is an error
    let mut renamed = ds.clone();
    renamed.genes.iter_mut().for_each(|g| *g = format!("other_{g}"));
    let err = m.embed(&renamed, tch::Device::Cpu, &mut Silent).unwrap_err().to_string();
    assert!(err.contains("none of the model's 500 genes"), "{err}");
    // a model of another method, and a folder with a missing file
    let err = TrainedModel::load(&dir, Some("pca"), tch::Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("holds a `scmae` model"), "{err}");
    std::fs::remove_file(dir.join("genes.tsv")).unwrap();
    let err = TrainedModel::load(&dir, None, tch::Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("genes.tsv") && err.contains("missing"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_input_gets_clear_errors() {
    let ds = sim(300, 7);
    // more clusters than cells
    let e = pipeline::run(&ds, &cfg(json!({"cluster": {"n_clusters": 301}})), &mut Silent).unwrap_err();
    assert!(matches!(e, Error::Config { .. }) && e.to_string().contains("more clusters than cells"), "{e}");
    // more HVGs than genes, when asked for explicitly
    let e = pipeline::run(&ds, &cfg(json!({"preprocess": {"n_top_genes": 5000}})), &mut Silent).unwrap_err().to_string();
    assert!(e.contains("preprocess.n_top_genes") && e.contains("only 1000 genes"), "{e}");
    // out-of-range hyper-parameters name the field
    let e = RunConfig::from_json(&json!({"method": "scmae", "params": {"mask_rate": 1.5}})).unwrap_err().to_string();
    assert!(e.contains("params.mask_rate"), "{e}");
    let e = RunConfig::from_json(&json!({"method": "scmae", "train": {"optimizer": {"lr": -1}}})).unwrap_err().to_string();
    assert!(e.contains("train.optimizer.lr"), "{e}");
    // a diverging run stops with the epoch and the loss term
    let e = pipeline::run(&ds, &cfg(json!({"train": {"epochs": 50, "optimizer": {"lr": 1e30}}})), &mut Silent).unwrap_err().to_string();
    assert!(e.contains("epoch") && e.contains("loss"), "{e}");
}

#[test]
fn an_allocation_libtorch_cannot_make_is_a_typed_error_not_a_panic() {
    // A 2^40-wide hidden layer: terabytes for every tensor of that width, refused by libtorch's allocator
    // (tch reports it by panicking; the pipeline's guard makes it Error::Torch).
    let ds = sim(200, 1);
    let c = cfg(json!({"params": {"hidden_dim": 1u64 << 40}, "train": {"epochs": 1}}));
    match pipeline::run(&ds, &c, &mut Silent) {
        Err(Error::Torch(m)) => assert!(m.starts_with("out of memory on cpu while training scmae") && m.contains("batch_size"), "{m}"),
        other => panic!("expected Error::Torch, got {other:?}"),
    }
}
