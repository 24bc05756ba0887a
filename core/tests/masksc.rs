//! mask-sc: the patch transformer's masked-patch loss falls, the same seed gives the same
//! labels, a saved model (with its gene order) embeds as trained, and genes that do not fit
//! the matrix are reported; the MLP variant's reconstruction loss falls, its embedding has
//! 60 dimensions (L2-normalised unless `normalize = false`), same seed same labels.

use scdeep_core::progress::{Progress, Silent};
use scdeep_core::simulate::{simulate, SimParams};
use scdeep_core::store::TrainedModel;
use scdeep_core::{pipeline, Dataset, RunConfig};
use serde_json::json;

#[test]
fn mlp_variant_trains_and_is_deterministic() {
    // strong differential expression, so that the cell type explains much of each gene's variance
    let p = SimParams {
        n_cells: 500,
        n_genes: 800,
        group_prob: vec![0.5, 0.3, 0.2],
        de_prob: 0.3,
        de_fac_loc: 1.0,
        seed: 4,
        ..Default::default()
    };
    let s = simulate(&p).unwrap();
    let ds = Dataset { x: s.counts, cells: s.cells, genes: s.genes, labels: Some(s.groups), batches: None, source: "sim".into() };
    let c =
        RunConfig::from_json(&json!({"method": "mask-sc-mlp", "device": "cpu", "threads": 1, "train": {"epochs": 30, "batch_size": 64}}))
            .unwrap();
    let a = pipeline::run(&ds, &c, &mut Silent).unwrap();
    assert_eq!(a.dims, 60);
    // the clean cell is reconstructed from the 10 % of its genes left after masking
    let l: Vec<f64> = a.history.iter().map(|h| h["loss"].as_f64().unwrap()).collect();
    assert!(l[29] < 0.88 * l[0], "MSE did not fall: {:?}", l);
    assert!(a.scores.as_ref().unwrap().ari > 0.9, "ARI {}", a.scores.as_ref().unwrap().ari);
    // contrastive-sc's encoder: the code is L2-normalised unless normalize = false
    let norms = |e: &[f32]| e.chunks(60).map(|r| r.iter().map(|v| v * v).sum::<f32>().sqrt()).collect::<Vec<_>>();
    assert!(norms(&a.embedding).iter().all(|n| (n - 1.0).abs() < 1e-4));
    let b = pipeline::run(&ds, &c, &mut Silent).unwrap();
    assert_eq!(a.labels, b.labels);
    assert_eq!(a.embedding, b.embedding);
    let mut raw = c.clone();
    raw.params = json!({"normalize": false});
    let r = pipeline::run(&ds, &raw, &mut Silent).unwrap();
    assert!(norms(&r.embedding).iter().any(|n| (n - 1.0).abs() > 0.1));
    // the masking rate is validated where the encoder is
    let bad = RunConfig::from_json(&json!({"method": "mask-sc-mlp", "params": {"dropout": 1.0}}))
        .and_then(|c| pipeline::run(&ds, &c, &mut Silent).map(|_| ()));
    let e = bad.unwrap_err().to_string();
    assert!(e.contains("params.dropout") && e.contains('1'), "{e}");
}

struct Messages(Vec<String>);

impl Progress for Messages {
    fn message(&mut self, msg: &str) {
        self.0.push(msg.to_string());
    }
}

#[test]
fn patch_transformer_trains_is_deterministic_and_reloads() {
    let p = SimParams { n_cells: 300, n_genes: 400, group_prob: vec![0.5, 0.3, 0.2], de_prob: 0.3, seed: 5, ..Default::default() };
    let s = simulate(&p).unwrap();
    let ds = Dataset { x: s.counts, cells: s.cells, genes: s.genes, labels: Some(s.groups), batches: None, source: "sim".into() };
    // a 16 x 16 gene matrix (the 256 genes of highest mean), 4 x 4 patches, one block each side
    let params =
        json!({"grid": 16, "patch": 4, "depth": 1, "width": 32, "heads": 2, "decoder_depth": 1, "decoder_width": 16, "decoder_heads": 2});
    let c = RunConfig::from_json(&json!({"method": "mask-sc", "device": "cpu", "threads": 1, "params": params,
        "train": {"epochs": 25, "batch_size": 64, "warmup_epochs": 2, "optimizer": {"lr": 1e-3}}}))
    .unwrap();
    let mut msgs = Messages(vec![]);
    let a = pipeline::run(&ds, &c, &mut msgs).unwrap();
    assert_eq!(a.dims, 32);
    // more genes than the 16 x 16 matrix holds: the user is told which and what to set
    assert!(msgs.0.iter().any(|m| m.starts_with("warning") && m.contains("set preprocess.n_top_genes to 256")), "{:?}", msgs.0);
    let l: Vec<f64> = a.history.iter().map(|h| h["masked_patch_loss"].as_f64().unwrap()).collect();
    assert!(l[24] < 0.8 * l[0], "masked-patch loss did not fall: {} -> {}", l[0], l[24]);
    let b = pipeline::run(&ds, &c, &mut Silent).unwrap();
    assert_eq!(a.labels, b.labels);
    assert_eq!(a.embedding, b.embedding);
    let dir = std::env::temp_dir().join(format!("scdeep-test-masksc-{}", std::process::id()));
    a.model.save(&dir, false).unwrap();
    let e = TrainedModel::load(&dir, None, tch::Device::Cpu).unwrap().embed(&ds, tch::Device::Cpu, &mut Silent).unwrap();
    let d = e.embedding.iter().zip(&a.embedding).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    assert!(d < 1e-5, "reloaded embedding differs by {d}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn seqfeat_target_trains_a_row_encoder_and_is_deterministic() {
    let p = SimParams { n_cells: 200, n_genes: 300, group_prob: vec![0.5, 0.5], de_prob: 0.3, seed: 6, ..Default::default() };
    let s = simulate(&p).unwrap();
    let ds = Dataset { x: s.counts, cells: s.cells, genes: s.genes, labels: Some(s.groups), batches: None, source: "sim".into() };
    let params = json!({"grid": 16, "patch": 4, "target": "seqfeat", "seqfeat_epochs": 3, "depth": 1, "width": 32, "heads": 2,
        "decoder_depth": 1, "decoder_width": 16, "decoder_heads": 2});
    let c = RunConfig::from_json(&json!({"method": "mask-sc", "device": "cpu", "threads": 1, "params": params,
        "preprocess": {"n_top_genes": 256}, "train": {"epochs": 15, "batch_size": 50, "optimizer": {"lr": 1e-3}}}))
    .unwrap();
    let mut msgs = Messages(vec![]);
    let a = pipeline::run(&ds, &c, &mut msgs).unwrap();
    // the row encoder saw every cell's 16 rows
    assert!(msgs.0.iter().any(|m| m.contains("contrastive-sc encoder on 3200 matrix rows of 16 genes (3 epochs)")), "{:?}", msgs.0);
    let l: Vec<f64> = a.history.iter().map(|h| h["masked_patch_loss"].as_f64().unwrap()).collect();
    assert!(l.iter().all(|v| v.is_finite()));
    assert!(l[14] < 0.8 * l[0], "seqfeat loss did not fall: {} -> {}", l[0], l[14]);
    let b = pipeline::run(&ds, &c, &mut Silent).unwrap();
    assert_eq!(a.labels, b.labels);
    assert_eq!(a.embedding, b.embedding);
}
