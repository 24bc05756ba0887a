//! Runs with batches: the correction (Harmony) mixes simulated batches without losing the
//! cell types, every read path carries the batches, and bad batch columns are named.

use scdeep_core::batch::Correction;
use scdeep_core::{io, pipeline, progress::Silent, results, simulate, Dataset, RunConfig};

fn params() -> simulate::SimParams {
    simulate::SimParams {
        n_cells: 900,
        n_genes: 800,
        group_prob: vec![0.4, 0.3, 0.3],
        de_prob: 0.2,
        batch_cells: vec![300, 300, 300],
        batch_fac_loc: 0.15,
        batch_fac_scale: 0.15,
        seed: 4,
        ..Default::default()
    }
}

fn pca(correction: Correction) -> RunConfig {
    let mut cfg = RunConfig::for_method("pca").unwrap();
    cfg.device = "cpu".into();
    cfg.batch.key = Some("batch".into());
    cfg.batch.correction = correction;
    cfg
}

#[test]
fn harmony_mixes_the_batches_and_keeps_the_types() {
    let sim = simulate::simulate(&params()).unwrap();
    let ds = Dataset { x: sim.counts, cells: sim.cells, genes: sim.genes, labels: Some(sim.groups), batches: None, source: "sim".into() }
        .with_batches(Some(sim.batches), "batch")
        .unwrap();
    let none = pipeline::run(&ds, &pca(Correction::None), &mut Silent).unwrap();
    let harmony = pipeline::run(&ds, &pca(Correction::Harmony), &mut Silent).unwrap();
    let (s0, s1) = (none.scores.unwrap(), harmony.scores.unwrap());
    let (i0, i1) = (s0.ilisi.unwrap(), s1.ilisi.unwrap());
    assert!(i1 > i0 + 0.2, "iLISI: no correction {i0:.3}, Harmony {i1:.3}");
    assert!(s1.batch_silhouette.unwrap() > s0.batch_silhouette.unwrap(), "{s0:?} {s1:?}");
    assert!(s1.ari >= s0.ari - 0.02 && s1.ari > 0.9, "ARI: no correction {:.3}, Harmony {:.3}", s0.ari, s1.ari);
    let acc = &harmony.clustering["batch"];
    assert_eq!((acc["key"].as_str(), acc["n_batches"].as_u64()), (Some("batch"), Some(3)));
    assert_eq!(acc["correction"]["method"], "harmony");
    let total: u64 = acc["clusters_by_batch"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|c| c.as_object().unwrap().values())
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(total, 900);
    assert!(harmony.timings.iter().any(|(s, _)| s == "batch_correction"));
}

#[test]
fn every_read_path_carries_the_batches_and_names_a_missing_column() {
    let dir = std::env::temp_dir().join(format!("scdeep-batches-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("sim.h5ad");
    results::simulate_to(&path, &params(), false, &[], &mut Silent).unwrap();
    let opts = io::ReadOptions { label_key: Some("group".into()), ..Default::default() };
    let mut cfg = pca(Correction::Harmony);
    cfg.preprocess.n_top_genes = 200;
    let read = |stream: Option<u64>| io::ReadOptions { stream_min_nnz: stream, ..opts.clone() };
    // HVGs per batch (the default): the genes most batches select, as
    // preprocess::hvg::highly_variable_genes_batched picks them (checked against scanpy in
    // core/tests/reference.rs); such inputs are read whole, never in blocks
    let whole = pipeline::run_path(&path, &read(None), &cfg, false, &mut Silent).unwrap();
    let blocks = pipeline::run_path(&path, &read(Some(0)), &cfg, false, &mut Silent).unwrap();
    assert_eq!(whole.result.model.genes(), blocks.result.model.genes());
    let mut pooled = cfg.clone();
    pooled.preprocess.hvg_per_batch = false;
    let p = pipeline::run_path(&path, &read(None), &pooled, false, &mut Silent).unwrap();
    assert_ne!(p.result.model.genes(), whole.result.model.genes(), "per batch, other genes are selected");
    // pooled HVGs stream in blocks of rows, carrying the batches: the same run
    let streamed = pipeline::run_path(&path, &read(Some(0)), &pooled, false, &mut Silent).unwrap();
    assert_eq!(p.result.labels, streamed.result.labels);
    assert_eq!(p.result.clustering["batch"], streamed.result.clustering["batch"]);
    assert!(whole.result.scores.unwrap().ilisi.is_some());
    // a file of batches instead of a column
    let tsv = dir.join("batches.tsv");
    let ds = io::read(&path, &io::ReadOptions { batch_key: Some("batch".into()), ..Default::default() }).unwrap();
    let body: String = ds.cells.iter().zip(ds.batches.as_ref().unwrap()).map(|(c, b)| format!("{c}\t{b}\n")).collect();
    std::fs::write(&tsv, format!("cell\tbatch\n{body}")).unwrap();
    let mut by_file = cfg.clone();
    by_file.batch.key = None;
    let from_file = io::ReadOptions { batches_file: Some(tsv.display().to_string()), stream_min_nnz: None, ..opts.clone() };
    let f = pipeline::run_path(&path, &from_file, &by_file, false, &mut Silent).unwrap();
    assert_eq!(f.result.labels, whole.result.labels);
    // a column the file lacks: the file and the column are named
    let mut missing = cfg.clone();
    missing.batch.key = Some("donor".into());
    let e = pipeline::run_path(&path, &opts, &missing, false, &mut Silent).unwrap_err().to_string();
    assert!(e.contains("donor") && e.contains("sim.h5ad"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}
