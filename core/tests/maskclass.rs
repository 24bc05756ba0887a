//! MaskClass: p_bio is a probability and 0 on observed non-zeros, the robust scaler round
//! trip is exact, the masked loss falls, the imputed matrix keeps every observed non-zero
//! bit for bit and fills zeros, the same seed gives the same result, a saved model embeds
//! as trained.

use scdeep_core::models::maskclass::Biozero;
use scdeep_core::preprocess::{self, RobustScaler};
use scdeep_core::progress::Silent;
use scdeep_core::simulate::{simulate, SimParams};
use scdeep_core::store::TrainedModel;
use scdeep_core::{pipeline, Dataset, RunConfig};
use serde_json::json;
use tch::Tensor;

fn sim() -> Dataset {
    let p = SimParams { n_cells: 400, n_genes: 1100, group_prob: vec![0.5, 0.3, 0.2], de_prob: 0.2, seed: 11, ..Default::default() };
    let s = simulate(&p).unwrap();
    Dataset { x: s.counts, cells: s.cells, genes: s.genes, labels: Some(s.groups), batches: None, source: "sim".into() }
}

fn cfg(epochs: usize) -> RunConfig {
    RunConfig::from_json(&json!({"method": "maskclass", "device": "cpu", "threads": 1, "train": {"epochs": epochs}})).unwrap()
}

#[test]
fn p_bio_is_a_probability_on_zeros_only() {
    let ds = sim();
    let prep = preprocess::prepare(&ds, &cfg(1).preprocess, true).unwrap();
    let bz = Biozero::fit(&prep.x).unwrap();
    assert!(bz.k <= 0.0 && bz.k.is_finite() && bz.x0.is_finite(), "k {} x0 {}", bz.k, bz.x0);
    assert!(bz.phi.iter().all(|p| *p >= 0.0 && p.is_finite()));
    let (n, g) = (prep.n_cells(), prep.n_genes());
    let rows: Vec<usize> = (0..n).collect();
    let x = Tensor::from_slice(&prep.x.dense_rows(&rows)).view([n as i64, g as i64]);
    let pb = bz.tensors(0.3, tch::Device::Cpu).p_bio(&x, &rows);
    let v = Vec::<f32>::try_from(&pb.view([-1])).unwrap();
    let xv = prep.x.dense_rows(&rows);
    assert!(v.iter().all(|p| (0.0..=1.0).contains(p)), "p_bio outside [0, 1]");
    assert!(v.iter().zip(&xv).all(|(p, x)| *x == 0.0 || *p == 0.0), "p_bio non-zero on an observed count");
    // zeros of highly expressed genes are less likely biological than those of rare genes
    let zeros: Vec<f32> = v.iter().zip(&xv).filter(|(_, x)| **x == 0.0).map(|(p, _)| *p).collect();
    let mean = zeros.iter().sum::<f32>() / zeros.len() as f32;
    assert!(mean > 0.05 && mean < 0.99, "mean p_bio on zeros {mean}");
}

#[test]
fn robust_scaler_round_trip_is_exact() {
    let ds = sim();
    let prep = preprocess::prepare(&ds, &cfg(1).preprocess, true).unwrap();
    let r = RobustScaler::fit(&prep.x, 2.0, 99.5);
    let rows: Vec<usize> = (0..prep.n_cells()).collect();
    let x = prep.x.dense_rows(&rows);
    let mut y = x.clone();
    r.transform(&mut y);
    let worst = y.iter().map(|v| v.abs()).fold(0f32, f32::max);
    assert!(worst <= 1.0 + 1e-5, "scaled value {worst} outside [-1, 1]");
    r.inverse(&mut y);
    let g = prep.n_genes();
    for (k, (b, v)) in y.iter().zip(&x).enumerate() {
        let w = v.clamp(r.lo[k % g], r.hi[k % g]);
        assert!((b - w).abs() <= 1e-6 * w.abs().max(1.0), "entry {k}: {b} vs winsorised {w}");
    }
}

#[test]
fn maskclass_imputes_keeping_observed_values() {
    let ds = sim();
    let c = cfg(40);
    let a = pipeline::run(&ds, &c, &mut Silent).unwrap();
    assert_eq!(a.dims, 32);
    let lm: Vec<f64> = a.history.iter().map(|h| h["loss_mask"].as_f64().unwrap()).collect();
    assert!(lm[39] < 0.8 * lm[0], "L_mask did not fall: {} -> {}", lm[0], lm[39]);
    let imp = a.imputed.as_ref().expect("MaskClass imputes");
    let prep = preprocess::prepare(&ds, &c.preprocess, true).unwrap();
    assert_eq!(imp.genes, prep.genes);
    let g = prep.n_genes();
    let (mut filled, mut zeros) = (0, 0);
    for i in 0..prep.n_cells() {
        let (idx, v) = prep.x.row(i);
        let row = &imp.values[i * g..(i + 1) * g];
        for (&j, &v) in idx.iter().zip(v) {
            assert_eq!(row[j as usize].to_bits(), v.to_bits(), "cell {i} gene {j}: observed {v} changed to {}", row[j as usize]);
        }
        zeros += g - idx.len();
        filled += row.iter().filter(|&&x| x > 0.0).count() - idx.len();
    }
    assert!(imp.values.iter().all(|v| v.is_finite() && *v >= 0.0));
    assert!(filled > zeros / 10, "only {filled} of {zeros} zeros imputed above 0");
    let b = pipeline::run(&ds, &c, &mut Silent).unwrap();
    assert_eq!(a.labels, b.labels);
    assert_eq!(a.imputed.unwrap().values, b.imputed.unwrap().values);
    // the scaler travels with the weights
    let dir = std::env::temp_dir().join(format!("scdeep-test-maskclass-{}", std::process::id()));
    a.model.save(&dir, false).unwrap();
    let e = TrainedModel::load(&dir, None, tch::Device::Cpu).unwrap().embed(&ds, tch::Device::Cpu, &mut Silent).unwrap();
    let d = e.embedding.iter().zip(&a.embedding).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    assert!(d < 1e-5, "reloaded embedding differs by {d}");
    let _ = std::fs::remove_dir_all(&dir);
}
