//! The consensus method: its members run with their own recipes, the partition of their
//! concatenated embeddings is returned with every member's labels and weight, the saved
//! model embeds new cells into the same concatenation, the same seed gives the same
//! labels, k is estimated on simulated groups when unknown, and bad options name the field.

use scdeep_core::progress::Silent;
use scdeep_core::simulate::{simulate, SimParams};
use scdeep_core::store::TrainedModel;
use scdeep_core::{pipeline, Dataset, RunConfig};
use serde_json::json;

fn sim(n_cells: usize, groups: usize, seed: u64) -> Dataset {
    sim_de(n_cells, groups, seed, SimParams::default().de_fac_loc)
}

/// `sim` with the groups' differential expression of size `de_fac_loc` (log scale).
fn sim_de(n_cells: usize, groups: usize, seed: u64, de_fac_loc: f64) -> Dataset {
    let p = SimParams { n_cells, n_genes: 600, group_prob: vec![1.0; groups], de_prob: 0.3, de_fac_loc, seed, ..Default::default() };
    let s = simulate(&p).unwrap();
    Dataset { x: s.counts, cells: s.cells, genes: s.genes, labels: Some(s.groups), batches: None, source: "sim".into() }
}

/// A consensus of `members`, scMAE trained shortly (every member's defaults otherwise).
fn cfg(members: &[&str]) -> RunConfig {
    let short: serde_json::Map<String, serde_json::Value> =
        members.iter().filter(|m| **m == "scmae").map(|m| (m.to_string(), json!({"train": {"epochs": 8}}))).collect();
    RunConfig::from_json(&json!({
        "method": "consensus", "device": "cpu", "threads": 1, "params": {"members": members, "member_options": short},
    }))
    .unwrap()
}

const ALL: [&str; 4] = ["pca", "scmae", "contrastive-sc", "mask-sc-mlp"];

#[test]
fn consensus_returns_a_members_partition_with_every_members_labels_and_weight() {
    let ds = sim(400, 4, 3);
    let c = cfg(&ALL);
    let a = pipeline::run(&ds, &c, &mut Silent).unwrap();
    let info = &a.clustering;
    let members = info["members"].as_array().unwrap();
    let names: Vec<&str> = members.iter().map(|m| m["method"].as_str().unwrap()).collect();
    assert_eq!(names, ["pca", "scmae", "contrastive-sc", "mask-sc-mlp"]);
    // weights from each member's agreement with the others (the most agreeing at 1); a
    // member of weight 0 is left out of the embedding
    let w: Vec<f64> = members.iter().map(|m| m["weight"].as_f64().unwrap()).collect();
    assert!(w.iter().cloned().fold(0.0, f64::max) == 1.0 && w.iter().all(|w| (0.0..=1.0).contains(w)), "weights {w:?}");
    for m in members {
        assert_eq!(m["labels"].as_array().unwrap().len(), a.cells.len());
    }
    // scMAE trained for 8 epochs only separates the groups poorly; the others agree with the consensus
    let agree = members.iter().filter(|m| m["nmi_to_consensus"].as_f64().unwrap() > 0.8).count();
    assert!(agree >= 3, "members near the consensus: {agree} of 4 ({members:?})");
    // the embedding is the kept members' side by side
    let members: Vec<&serde_json::Value> = members.iter().filter(|m| m["kept"] == json!(true)).collect();
    let dims: u64 = members.iter().map(|m| m["dims"].as_u64().unwrap()).sum();
    assert_eq!(a.dims as u64, dims);
    assert_eq!(a.embedding.len(), a.cells.len() * a.dims);
    assert_eq!(a.model.config.method, "consensus");
    // each member's block has a mean squared norm per cell of its weight
    let n = a.cells.len();
    let mut off = 0;
    for m in members {
        let dm = m["dims"].as_u64().unwrap() as usize;
        let ms: f64 = (0..n)
            .map(|i| a.embedding[i * a.dims + off..i * a.dims + off + dm].iter().map(|v| (*v as f64).powi(2)).sum::<f64>())
            .sum::<f64>()
            / n as f64;
        let w = m["weight"].as_f64().unwrap();
        assert!((ms - w).abs() < 1e-3, "{}: mean squared norm {ms}, weight {w}", m["method"]);
        off += dm;
    }
    assert_eq!(a.config.method, "consensus");
    for t in ["pca.train", "scmae.train", "contrastive-sc.train", "mask-sc-mlp.train", "cluster"] {
        assert!(a.timings.iter().any(|(k, _)| k == t), "no timing {t}: {:?}", a.timings);
    }
    let ari = a.scores.as_ref().unwrap().ari;
    assert!(ari > 0.9, "ARI {ari} on clearly separated groups");
    let b = pipeline::run(&ds, &c, &mut Silent).unwrap();
    assert_eq!(a.labels, b.labels, "same seed, same labels");
    assert_eq!(a.embedding, b.embedding);
}

#[test]
fn a_saved_consensus_embeds_new_cells_into_the_runs_consensus_embedding() {
    let ds = sim(300, 3, 5);
    let a = pipeline::run(&ds, &cfg(&["pca", "scmae"]), &mut Silent).unwrap();
    let dir = std::env::temp_dir().join(format!("scdeep-consensus-model-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    a.model.save(&dir, false).unwrap();
    for f in ["config.json", "model.safetensors", "genes.tsv", "members/pca/config.json", "members/scmae/model.safetensors"] {
        assert!(dir.join(f).is_file(), "no {f}");
    }
    let m = TrainedModel::load(&dir, Some("consensus"), tch::Device::Cpu).unwrap();
    assert_eq!(m.genes(), a.model.genes());
    // the run's own cells come back at the run's embedding, bit for bit
    let e = m.embed(&ds, tch::Device::Cpu, &mut Silent).unwrap();
    assert_eq!((e.dims, e.prepared.cells.len()), (a.dims, a.cells.len()));
    assert!(e.embedding == a.embedding, "the saved consensus embeds the run's cells elsewhere");
    // a folder whose member is gone, or whose centre is missing, names what is wrong
    std::fs::rename(dir.join("members/scmae"), dir.join("members/gone")).unwrap();
    let err = TrainedModel::load(&dir, None, tch::Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("members/scmae"), "{err}");
    std::fs::rename(dir.join("members/gone"), dir.join("members/scmae")).unwrap();
    let mut c: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    c["members"] = json!(["pca", "../x"]);
    std::fs::write(dir.join("config.json"), c.to_string()).unwrap();
    let err = TrainedModel::load(&dir, None, tch::Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("config.json") && err.contains("../x"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn k_is_estimated_on_simulated_groups_when_unknown() {
    // Groups apart in the kNN graph: the number of Leiden communities that holds over the
    // widest span of resolutions is the number of groups. (The rule under-counts weakly
    // separated types: bench/results/generalization.json.)
    for (groups, seed) in [(3, 1), (6, 2), (10, 2)] {
        let mut ds = sim_de(100 * groups, groups, seed, 0.5);
        let truth = ds.labels.take();
        let c = cfg(&["pca", "contrastive-sc"]);
        assert_eq!(c.cluster.n_clusters, None);
        let r = pipeline::run(&ds, &c, &mut Silent).unwrap();
        let k = r.clustering["k"].as_u64().unwrap() as usize;
        assert_eq!(k, groups, "estimated k; candidates {}", r.clustering["k_estimate"]);
        assert_eq!(r.config.cluster.n_clusters, Some(k), "run.json says which k was used");
        let t = scdeep_core::metrics::evaluate(truth.as_ref().unwrap(), &r.labels, None, Default::default(), 0).unwrap();
        assert!(t.ari > 0.9, "ARI {} with the estimated k", t.ari);
    }
}

#[test]
fn options_set_on_the_consensus_reach_every_member_and_member_options_win() {
    let ds = sim(120, 2, 5);
    let mut c = cfg(&["pca", "scmae", "contrastive-sc"]);
    c.train.epochs = 3;
    c.preprocess.min_genes_per_cell = 5;
    c.params["member_options"] = json!({"contrastive-sc": {"train": {"epochs": 2}}});
    let r = pipeline::run(&ds, &c, &mut Silent).unwrap();
    let members = r.clustering["members"].as_array().unwrap();
    let conf = |i: usize, section: &str, key: &str| members[i]["config"][section][key].clone();
    assert_eq!(conf(1, "train", "epochs"), json!(3), "the consensus's train.epochs reaches scMAE");
    assert_eq!(conf(2, "train", "epochs"), json!(2), "a member's own option wins");
    for i in 0..3 {
        assert_eq!(conf(i, "preprocess", "min_genes_per_cell"), json!(5));
    }
    // what was not set keeps each member's own default (scMAE keeps 1000 genes, pca 2000 -> all 600 here)
    assert_eq!(conf(1, "train", "batch_size"), json!(RunConfig::for_method("scmae").unwrap().train.batch_size));
    assert_eq!(members[0]["config"]["method"], "pca");
}

#[test]
fn bad_consensus_options_name_the_field_and_value() {
    let build = |p: serde_json::Value| {
        scdeep_core::config::ConfigBuilder::new().method("consensus").options(&p).unwrap().build(true).map(|_| ()).unwrap_err().to_string()
    };
    let e = build(json!({"members": ["pca", "nonesuch"]}));
    assert!(e.contains("params.members") && e.contains("nonesuch"), "{e}");
    let e = build(json!({"members": ["pca", "consensus"]}));
    assert!(e.contains("its own member"), "{e}");
    let e = build(json!({"members": ["pca", "pca"]}));
    assert!(e.contains("named twice"), "{e}");
    let e = build(json!({"members": ["pca"], "member_options": {"scmae": {}}}));
    assert!(e.contains("params.member_options.scmae"), "{e}");
    let e = build(json!({"k_min": 1}));
    assert!(e.contains("params.k_min"), "{e}");
    // a member's own option is checked as that member's run checks it
    let ds = sim(100, 2, 4);
    let mut c = cfg(&["pca", "scmae"]);
    c.params["member_options"]["scmae"]["train"]["epochs"] = json!(0);
    let e = pipeline::run(&ds, &c, &mut Silent).unwrap_err().to_string();
    assert!(e.contains("scmae") && e.contains("epochs"), "{e}");
}

/// The stages a run entered.
#[derive(Default)]
struct Stages(Vec<String>);
impl scdeep_core::progress::Progress for Stages {
    fn stage(&mut self, name: &str) {
        self.0.push(name.to_string());
    }
}

#[test]
fn too_few_cells_to_estimate_k_is_an_error_before_any_member_trains() {
    let mut ds = sim(100, 2, 4);
    ds.x = ds.x.select_rows(&(0..10).collect::<Vec<_>>());
    ds.cells.truncate(10);
    ds.labels = None;
    let mut stages = Stages::default();
    let e = pipeline::run(&ds, &cfg(&["pca", "scmae"]), &mut stages).unwrap_err().to_string();
    assert!(e.contains("cluster.n_neighbors") && e.contains("(10)"), "{e}");
    assert!(!stages.0.iter().any(|s| s == "pca" || s == "scmae"), "a member trained first: {:?}", stages.0);
}

#[test]
fn members_reading_a_large_h5ad_each_in_turn_give_the_run_on_the_whole_input() {
    use scdeep_core::io::{self, MemberReads, ReadOptions};
    let ds = sim(400, 4, 7);
    let path = std::env::temp_dir().join(format!("scdeep-member-reads-{}.h5ad", std::process::id()));
    let labels = ds.labels.clone().unwrap();
    io::write_h5ad_new(&path, &ds.x, &ds.cells, &ds.genes, &[("group", &labels)], &[]).unwrap();
    // contrastive-sc selects 300 of the 600 genes: read in blocks of rows; mask-sc-mlp's 500
    // and pca's 2000 are more than half: read whole, its matrix normalised in place
    let c = RunConfig::from_json(&json!({
        "method": "consensus", "device": "cpu", "threads": 1,
        "params": {"members": ["pca", "contrastive-sc", "mask-sc-mlp"],
                   "member_options": {"contrastive-sc": {"preprocess": {"n_top_genes": 300}}}},
    }))
    .unwrap();
    let opts = ReadOptions { label_key: Some("group".into()), stream_min_nnz: Some(1), ..Default::default() };
    let whole = io::read(&path, &opts).unwrap();
    let expected = pipeline::run(&whole, &c, &mut Silent).unwrap();

    /// Records the stages and messages of a run.
    #[derive(Default)]
    struct Log(Vec<String>);
    impl scdeep_core::progress::Progress for Log {
        fn message(&mut self, m: &str) {
            self.0.push(m.to_string());
        }
    }
    assert!(MemberReads::open(&path, &opts).unwrap().is_some(), "a csr_matrix of more than 1 value is read per member");
    let mut log = Log::default();
    let got = pipeline::run_path(&path, &opts, &c, true, &mut log).unwrap();
    assert!(got.input.is_none(), "a consensus reading per member never holds the input whole");
    let got_shape = (got.shape.n_cells, got.shape.genes.clone());
    let got = got.result;
    assert_eq!(got.labels, expected.labels);
    assert_eq!(got.embedding, expected.embedding, "the same embedding, bit for bit");
    assert_eq!(got.cells, expected.cells);
    assert_eq!(got.clustering["members"], expected.clustering["members"]);
    assert_eq!(got_shape, (400, ds.genes.clone()));
    let blocks = log.0.iter().filter(|m| m.contains("in blocks of rows: kept 400 cells x 300 selected genes")).count();
    assert_eq!(blocks, 1, "only contrastive-sc reads in blocks: {:?}", log.0);

    // below the size that streams, or with streaming off, the input is read once and shared
    for min in [None, Some(u64::MAX)] {
        assert!(MemberReads::open(&path, &ReadOptions { stream_min_nnz: min, ..opts.clone() }).unwrap().is_none());
    }
    // a single method reads its input once: whole (and kept when asked), the same run
    let pca = RunConfig::for_method("pca").unwrap();
    let mut log = Log::default();
    let one = pipeline::run_path(&path, &opts, &pca, true, &mut log).unwrap();
    assert_eq!(one.result.labels, pipeline::run(&whole, &pca, &mut Silent).unwrap().labels);
    assert_eq!(one.input.as_ref().map(|d| d.n_cells()), Some(400), "kept for writing with the results");
    assert!(log.0.iter().any(|m| m.starts_with("read 400 cells x 600 genes")), "{:?}", log.0);
    assert!(pipeline::run_path(&path, &opts, &pca, false, &mut Silent).unwrap().input.is_none());
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn a_consensus_corrects_its_embedding_for_batches() {
    let p = SimParams {
        n_cells: 600,
        n_genes: 600,
        group_prob: vec![1.0; 3],
        de_prob: 0.3,
        batch_cells: vec![200, 200, 200],
        batch_fac_loc: 0.15,
        batch_fac_scale: 0.15,
        seed: 5,
        ..Default::default()
    };
    let s = simulate(&p).unwrap();
    let ds = Dataset { x: s.counts, cells: s.cells, genes: s.genes, labels: Some(s.groups), batches: None, source: "sim".into() }
        .with_batches(Some(s.batches), "batch")
        .unwrap();
    let mut c = cfg(&["pca", "scmae"]);
    c.batch.correction = scdeep_core::batch::Correction::None;
    let none = pipeline::run(&ds, &c, &mut Silent).unwrap();
    c.batch.correction = scdeep_core::batch::Correction::Harmony;
    let h = pipeline::run(&ds, &c, &mut Silent).unwrap();
    let (s0, s1) = (none.scores.unwrap(), h.scores.unwrap());
    assert!(s1.ilisi.unwrap() > s0.ilisi.unwrap() + 0.1, "iLISI {:?} -> {:?}", s0.ilisi, s1.ilisi);
    assert!(s1.ari > 0.9 && s1.ari >= s0.ari - 0.02, "ARI {} -> {}", s0.ari, s1.ari);
    assert_eq!(h.clustering["batch"]["correction"]["method"], "harmony");
    assert_eq!(none.clustering["batch"]["correction"]["method"], "none");
    assert!(h.timings.iter().any(|(k, _)| k == "batch_correction"));
}
