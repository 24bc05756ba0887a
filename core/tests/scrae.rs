//! scRAE: the ZINB NLL falls on training and held-out cells, the critic's loss turns
//! negative with gradient-penalty norms near 1, nothing becomes NaN, the same seed gives
//! the same labels, the `scaled_log` target trains, and a saved model embeds as trained.

use scdeep_core::progress::Silent;
use scdeep_core::simulate::{simulate, SimParams};
use scdeep_core::store::TrainedModel;
use scdeep_core::{pipeline, Dataset, RunConfig};
use serde_json::json;

fn sim() -> Dataset {
    let p = SimParams { n_cells: 400, n_genes: 600, group_prob: vec![0.4, 0.35, 0.25], de_prob: 0.3, seed: 7, ..Default::default() };
    let s = simulate(&p).unwrap();
    Dataset { x: s.counts, cells: s.cells, genes: s.genes, labels: Some(s.groups), batches: None, source: "sim".into() }
}

fn cfg(extra: serde_json::Value) -> RunConfig {
    // every epoch of the 30 is trained (the default stops early on the held-out NLL)
    let mut v =
        json!({"method": "scrae", "device": "cpu", "threads": 1, "train": {"epochs": 30, "batch_size": 16, "early_stopping": null}});
    v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    RunConfig::from_json(&v).unwrap()
}

fn tmp(tag: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("scdeep-test-scrae-{tag}-{}", std::process::id()))
}

fn series(h: &[serde_json::Value], key: &str) -> Vec<f64> {
    h.iter().map(|e| e[key].as_f64().unwrap_or_else(|| panic!("history lacks {key}: {e}"))).collect()
}

#[test]
fn scrae_trains_stably_and_deterministically() {
    let ds = sim();
    let c = cfg(json!({}));
    let a = pipeline::run(&ds, &c, &mut Silent).unwrap();
    assert_eq!(a.dims, 10);
    let h = &a.history;
    let (nll, test) = (series(h, "zinb_nll"), series(h, "test_zinb_nll"));
    assert!(nll[29] < 0.8 * nll[0], "training ZINB NLL did not fall: {} -> {}", nll[0], nll[29]);
    assert!(test[29] < test[0], "held-out ZINB NLL did not fall: {} -> {}", test[0], test[29]);
    let (critic, gp) = (series(h, "critic_loss"), series(h, "gp_norm"));
    assert!(critic[29] < 0.0, "critic loss {critic:?}");
    assert!(gp[15..].iter().all(|g| (0.5..1.6).contains(g)), "gradient-penalty norms {gp:?}");
    for key in ["gen_loss", "enc_adv_loss", "kl_library", "wasserstein"] {
        assert!(series(h, key).iter().all(|v| v.is_finite()), "{key}");
    }
    assert!(a.embedding.iter().all(|v| v.is_finite()));
    assert!(a.scores.as_ref().unwrap().ari > 0.6, "ARI {}", a.scores.as_ref().unwrap().ari);
    let b = pipeline::run(&ds, &c, &mut Silent).unwrap();
    assert_eq!(a.labels, b.labels);
    assert_eq!(a.embedding, b.embedding);
    // the model (BatchNorm statistics included) embeds as in training
    let dir = tmp("counts");
    a.model.save(&dir, false).unwrap();
    let m = TrainedModel::load(&dir, Some("scrae"), tch::Device::Cpu).unwrap();
    let e = m.embed(&ds, tch::Device::Cpu, &mut Silent).unwrap();
    let d = e.embedding.iter().zip(&a.embedding).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    assert!(d < 1e-5, "reloaded embedding differs by {d}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn scrae_scaled_log_target_trains_and_reloads() {
    let ds = sim();
    let a = pipeline::run(&ds, &cfg(json!({"params": {"zinb_target": "scaled_log", "latent_dim": 2}})), &mut Silent).unwrap();
    assert_eq!(a.dims, 2);
    let nll = series(&a.history, "zinb_nll");
    assert!(nll[29] < nll[0], "{nll:?}");
    // the saved input scale (max log2(1+c)) is what the reloaded model divides by
    let dir = tmp("scaled");
    a.model.save(&dir, false).unwrap();
    let e = TrainedModel::load(&dir, None, tch::Device::Cpu).unwrap().embed(&ds, tch::Device::Cpu, &mut Silent).unwrap();
    let d = e.embedding.iter().zip(&a.embedding).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    assert!(d < 1e-5, "reloaded embedding differs by {d}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn scrae_rejects_checkpoints_and_bad_options() {
    let ds = sim();
    let e = pipeline::run(&ds, &cfg(json!({"train": {"epochs": 2, "checkpoint_every": 1, "checkpoint_dir": "/tmp/x"}})), &mut Silent)
        .unwrap_err();
    assert!(e.to_string().contains("checkpoint"), "{e}");
    for (k, v) in [("test_fraction", json!(0.95)), ("leak", json!(1.5)), ("hidden_dims", json!([])), ("zinb_target", json!("logcounts"))] {
        let r = RunConfig::from_json(&json!({"method": "scrae", "params": {k: v}}));
        let msg = match r {
            Err(e) => e.to_string(),
            Ok(c) => pipeline::run(&ds, &c, &mut Silent).map(|_| ()).unwrap_err().to_string(),
        };
        assert!(msg.contains(k), "{k}: {msg}");
    }
}

#[test]
fn early_stopping_watches_a_logged_term() {
    let ds = sim();
    // a 95 % improvement per epoch is never reached: patience 2 stops after epoch 3
    let es = json!({"patience": 2, "min_delta": 0.95, "monitor": "test_zinb_nll"});
    let a = pipeline::run(&ds, &cfg(json!({"train": {"epochs": 30, "early_stopping": es}})), &mut Silent).unwrap();
    assert_eq!(a.history.len(), 3);
    // by default, training stops when the held-out cells' ZINB NLL stops improving
    let d = RunConfig::from_json(&json!({"method": "scrae"})).unwrap().train.early_stopping.unwrap();
    assert_eq!((d.monitor.as_str(), d.patience), ("test_zinb_nll", 10));
    let bad = json!({"patience": 2, "monitor": "val_loss"});
    let e = pipeline::run(&ds, &cfg(json!({"train": {"epochs": 30, "early_stopping": bad}})), &mut Silent).unwrap_err().to_string();
    assert!(e.contains("train.early_stopping.monitor") && e.contains("val_loss") && e.contains("test_zinb_nll"), "{e}");
}
