//! End-to-end runs of the `scdeep` binary: good input, and every kind of bad input
//! (exit code, a message naming the file/field/value, and no output left behind).

use std::path::{Path, PathBuf};
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_scdeep"))
}
fn shared(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data").join(p)
}
/// A fresh folder in the temp dir, removed with its contents when the test ends (also
/// when it panics).
struct Tmp(PathBuf);

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl std::ops::Deref for Tmp {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<std::ffi::OsStr> for Tmp {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.as_os_str()
    }
}

fn tmp(name: &str) -> Tmp {
    let d = std::env::temp_dir().join(format!("scdeep-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    Tmp(d)
}

/// Run `scdeep run` and expect failure with `code` and every `needle` in stderr;
/// the output folder must not hold any file.
fn expect_fail(args: &[&str], code: i32, needles: &[&str]) {
    let dir = tmp("out");
    let out = dir.join("res");
    let o = bin().arg("run").args(args).arg("--out").arg(&out).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(code), "args {args:?}: stderr {err}");
    for n in needles {
        assert!(err.contains(n), "args {args:?}: '{n}' not in: {err}");
    }
    let files: Vec<_> = std::fs::read_dir(&out).map(|d| d.collect()).unwrap_or_default();
    assert!(files.is_empty(), "partial output left: {files:?}");
}

/// `scdeep run -q <args> --input pollen --out <out>`; panics with stderr on failure.
fn run_pollen(args: &[&str], out: &Path) -> std::process::Output {
    let o = bin()
        .arg("run")
        .arg("-q")
        .args(args)
        .arg("--input")
        .arg(shared("pollen_top1000hvg/pollen_top1000hvg.h5ad"))
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    o
}

fn write(dir: &Path, name: &str, s: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, s).unwrap();
    p.display().to_string()
}

#[test]
fn run_pca_end_to_end() {
    let out = tmp("ok");
    let o = run_pollen(&["--method", "pca", "--label-key", "cell_type", "--seed", "1"], &out);
    assert!(o.stderr.is_empty(), "--quiet printed: {}", String::from_utf8_lossy(&o.stderr));
    for f in [
        "embedding.tsv",
        "embedding.npy",
        "labels.tsv",
        "metrics.json",
        "run.json",
        "history.json",
        "versions.yml",
        "pollen_top1000hvg.scdeep.h5ad",
    ] {
        assert!(out.join(f).is_file(), "missing {f}");
    }
    let m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    assert!(m["ari"].as_f64().unwrap() > 0.8, "pollen PCA ARI {}", m["ari"]);
    // the same seed and threads give the same labels
    let out2 = tmp("ok2");
    run_pollen(&["--method", "pca", "--label-key", "cell_type", "--seed", "1", "--no-h5ad"], &out2);
    assert_eq!(std::fs::read(out.join("labels.tsv")).unwrap(), std::fs::read(out2.join("labels.tsv")).unwrap());
}

#[test]
fn a_consensus_on_a_large_h5ad_reads_it_once_per_member_with_the_same_result() {
    // --stream-min-nnz 1: pollen counts as large, so each member reads the file again
    // (those selecting at most half of its genes in blocks of rows) instead of sharing
    // one whole read; the results are the same, and the output .h5ad is written
    let (blocks, whole) = (tmp("members"), tmp("members-whole"));
    let common = ["--label-key", "cell_type", "--epochs", "2", "--seed", "3"];
    run_pollen(&[&common[..], &["--stream-min-nnz", "1"]].concat(), &blocks);
    run_pollen(&[&common[..], &["--stream-min-nnz", "none", "--no-h5ad"]].concat(), &whole);
    for f in ["labels.tsv", "embedding.npy", "metrics.json"] {
        assert_eq!(std::fs::read(blocks.join(f)).unwrap(), std::fs::read(whole.join(f)).unwrap(), "{f} differs");
    }
    assert!(blocks.join("pollen_top1000hvg.scdeep.h5ad").is_file());
    let run: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(blocks.join("run.json")).unwrap()).unwrap();
    assert_eq!(run["config"]["method"], "consensus");
}

#[test]
fn methods_and_version() {
    let o = bin().args(["methods", "--json"]).output().unwrap();
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let pca = v.as_array().unwrap().iter().find(|m| m["name"] == "pca").expect("pca listed");
    assert_eq!(pca["default_config"]["params"]["n_comps"], 50);
    assert_eq!(pca["default_config"]["cluster"]["n_init"], 10);
    let o = bin().args(["version", "--json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // The version of the torch the build linked (the venv's 2.13.0, "+cu130" for the CUDA wheel).
    assert_eq!(v["libtorch"].as_str().and_then(|s| s.split('+').next()), Some("2.13.0"), "{v}");
}

#[test]
fn bad_files() {
    let d = tmp("files");
    expect_fail(&["--input", "/nonexistent/x.h5ad"], 3, &["/nonexistent/x.h5ad", "no such file"]);
    let unk = write(&d, "counts.xyz", "a b\n");
    expect_fail(&["--input", &unk], 4, &["counts.xyz", "unknown input format"]);
    // truncated gzip in a 10x folder
    let mtx = d.join("mtx");
    std::fs::create_dir_all(&mtx).unwrap();
    let src = shared("pollen_top1000hvg/mtx");
    for f in ["features.tsv.gz", "barcodes.tsv.gz"] {
        std::fs::copy(src.join(f), mtx.join(f)).unwrap();
    }
    let full = std::fs::read(src.join("matrix.mtx.gz")).unwrap();
    std::fs::write(mtx.join("matrix.mtx.gz"), &full[..full.len() / 2]).unwrap();
    expect_fail(&["--input", mtx.to_str().unwrap()], 4, &["matrix.mtx.gz"]);
    // names that do not match the matrix: drop one barcode
    std::fs::write(mtx.join("matrix.mtx.gz"), &full).unwrap();
    let mut bc = String::new();
    use std::io::Read;
    flate2::read::GzDecoder::new(std::fs::File::open(src.join("barcodes.tsv.gz")).unwrap()).read_to_string(&mut bc).unwrap();
    let short: Vec<&str> = bc.lines().skip(1).collect();
    std::fs::remove_file(mtx.join("barcodes.tsv.gz")).unwrap();
    std::fs::write(mtx.join("barcodes.tsv"), short.join("\n") + "\n").unwrap();
    expect_fail(&["--input", mtx.to_str().unwrap()], 4, &["barcodes.tsv", "298 barcodes", "299 cells"]);
    // truncated HDF5
    let h = std::fs::read(shared("10x_pbmc_top2000/10x_pbmc_top2000.h5ad")).unwrap();
    let th = d.join("trunc.h5ad");
    std::fs::write(&th, &h[..h.len() / 3]).unwrap();
    expect_fail(&["--input", th.to_str().unwrap()], 4, &["trunc.h5ad"]);
    // a CSV renamed to .h5ad
    let fake = write(&d, "fake.h5ad", "cell,g1\nc1,1\n");
    expect_fail(&["--input", &fake], 4, &["fake.h5ad", "not an HDF5 file"]);
}

#[test]
fn bad_values() {
    let d = tmp("values");
    let nan = write(&d, "nan.csv", "cell,g1,g2\nc1,1,nan\nc2,3,4\n");
    expect_fail(&["--input", &nan, "-k", "2"], 5, &["nan.csv", "NaN", "'c1'", "'g2'"]);
    let inf = write(&d, "inf.csv", "cell,g1,g2\nc1,1,2\nc2,inf,4\n");
    expect_fail(&["--input", &inf, "-k", "2"], 5, &["infinite", "'c2'", "'g1'"]);
    let neg = write(&d, "neg.csv", "cell,g1,g2\nc1,1,2\nc2,-3,4\n");
    expect_fail(&["--input", &neg, "-k", "2"], 5, &["negative", "-3"]);
    let zero = write(&d, "zero.csv", "cell,g1,g2\nc1,0,0\nc2,0,0\n");
    expect_fail(&["--input", &zero, "-k", "2"], 5, &["zero.csv", "all zeros"]);
    let small = write(&d, "small.csv", "cell,g1,g2,g3\nc1,1,2,3\nc2,3,4,1\nc3,5,1,2\n");
    expect_fail(&["--input", &small, "-k", "5"], 2, &["cluster.n_clusters", "5", "more clusters than cells (3"]);
    // a single method's K-means needs k (the default, the consensus, estimates it)
    expect_fail(
        &["--input", &small, "--method", "pca", "--cluster", "kmeans"],
        2,
        &["cluster.n_clusters", "K-means needs the number of clusters"],
    );
    let bad_num = write(&d, "text.csv", "cell,g1\nc1,abc\n");
    expect_fail(&["--input", &bad_num], 4, &["text.csv", "line 2", "'abc'"]);
}

#[test]
fn bad_options() {
    let d = tmp("opts");
    let pollen = shared("pollen_top1000hvg/pollen_top1000hvg.h5ad");
    let p = pollen.to_str().unwrap();
    expect_fail(&["--input", p, "--label-key", "nope"], 4, &["obs has no column 'nope'", "cell_type"]);
    expect_fail(&["--input", p, "--label-key", "cell_type", "--method", "magic"], 2, &["method", "magic", "unknown method", "pca"]);
    let cfg = write(&d, "cfg.json", r#"{"cluster": {"n_init": 3, "colour": "red"}}"#);
    expect_fail(&["--input", p, "--label-key", "cell_type", "--config", &cfg], 2, &["unknown field `colour`"]);
    expect_fail(&["--input", p, "--label-key", "cell_type", "--set", "cluster.n_init=0"], 2, &["cluster.n_init", "0", ">= 1"]);
    expect_fail(&["--input", p, "--label-key", "cell_type", "--set", "preprocess.max_fraction=2"], 2, &["preprocess.max_fraction", "2"]);
    expect_fail(&["--input", p, "--label-key", "cell_type", "--set", "params.n_comps=0"], 2, &["params.n_comps"]);
    expect_fail(&["--input", p, "--label-key", "cell_type", "--device", "tpu"], 2, &["device", "tpu"]);
    expect_fail(&["--input", p, "--label-key", "cell_type", "--layer", "missing"], 4, &["no layer 'missing'"]);
    let labels = write(&d, "labels.tsv", "barcode\tcell_type\nnot_a_cell\tA\n");
    expect_fail(&["--input", p, "--labels", &labels], 4, &["labels.tsv", "have no label"]);
}

#[test]
fn batch_flags_correct_score_and_name_bad_batches() {
    let d = tmp("batches");
    let params = write(&d, "p.json", r#"{"batch_fac_loc": 0.15, "batch_fac_scale": 0.15}"#);
    let sim = d.join("sim.h5ad");
    let o = bin()
        .args(["simulate", "-q", "--n-cells", "600", "--n-genes", "500", "--groups", "0.5,0.5", "--batches", "300,300", "--de-prob", "0.2"])
        .args(["--params", &params, "--out"])
        .arg(&sim)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = sim.to_str().unwrap();
    let res = d.join("res");
    let model = d.join("model");
    let o = bin()
        .args(["run", "--method", "pca", "--label-key", "group", "--batch-key", "batch", "--input", s, "--no-h5ad", "--save-model"])
        .arg(&model)
        .arg("--out")
        .arg(&res)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("correcting the embedding for 2 batches with Harmony"), "{err}");
    let tsv = std::fs::read_to_string(res.join("metrics.tsv")).unwrap();
    assert!(
        ["batch_silhouette", "ilisi", "clisi", "graph_connectivity"].iter().all(|c| tsv
            .lines()
            .next()
            .unwrap()
            .split('\t')
            .any(|h| h == *c)),
        "{tsv}"
    );
    let run: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(res.join("run.json")).unwrap()).unwrap();
    assert_eq!(run["config"]["batch"]["key"], "batch");
    assert_eq!(run["clustering"]["batch"]["cells"], serde_json::json!({"Batch1": 300, "Batch2": 300}));
    // new cells through the saved model: uncorrected, and said so
    let o = bin().args(["embed", "--input", s, "--model"]).arg(&model).arg("--out").arg(d.join("embedded")).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && err.contains("the correction is not part of the model"), "{err}");

    // bad batch columns and files are named, and nothing is written
    expect_fail(&["--input", s, "--method", "pca", "--batch-key", "donor"], 4, &["obs has no column 'donor'"]);
    expect_fail(
        &["--input", s, "--method", "pca", "--batch-key", "batch", "--batch-correction", "combat"],
        2,
        &["batch.correction", "combat"],
    );
    expect_fail(&["--input", s, "--batch-key", "batch", "--batches", s], 2, &["--batches", "--batch-key"]);
    let few = write(&d, "few.tsv", "cell\tbatch\nnot_a_cell\tA\n");
    expect_fail(&["--input", s, "--method", "pca", "--batches", &few], 4, &["few.tsv", "have no batch"]);
    let cells: Vec<String> = (0..600).map(|i| format!("Cell{}\tCell{}\n", i + 1, i + 1)).collect();
    let own = write(&d, "own.tsv", &format!("cell\tbatch\n{}", cells.concat()));
    expect_fail(
        &["--input", s, "--method", "pca", "--batches", &own],
        2,
        &["every cell is a batch of its own", "600 batches for 600 cells"],
    );
    // one batch: said, and the run goes on
    let one: Vec<String> = (0..600).map(|i| format!("Cell{}\tdonor1\n", i + 1)).collect();
    let one = write(&d, "one.tsv", &format!("cell\tbatch\n{}", one.concat()));
    let o = bin()
        .args(["run", "--method", "pca", "--label-key", "group", "--batches", &one, "--input", s, "--no-h5ad", "--out"])
        .arg(d.join("one"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && err.contains("one batch ('donor1')"), "{err}");
}

#[test]
fn simulate_cluster_evaluate() {
    let d = tmp("sim");
    let o = bin()
        .args(["simulate", "-q", "--n-cells", "600", "--n-genes", "500", "--groups", "0.5,0.5", "--seed", "3", "--out"])
        .arg(d.join("sim"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for f in ["matrix.mtx.gz", "features.tsv.gz", "barcodes.tsv.gz", "labels.tsv", "true_counts/matrix.mtx.gz"] {
        assert!(d.join("sim").join(f).is_file(), "{f}");
    }
    let o = bin()
        .args(["run", "-q", "--method", "pca", "--input"])
        .arg(d.join("sim"))
        .arg("--labels")
        .arg(d.join("sim/labels.tsv"))
        .arg("--out")
        .arg(d.join("res"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = bin()
        .args(["cluster", "-k", "2", "--embedding"])
        .arg(d.join("res/embedding.tsv"))
        .arg("--out")
        .arg(d.join("cl.tsv"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = bin().args(["evaluate", "--labels"]).arg(d.join("cl.tsv")).arg("--truth").arg(d.join("sim/labels.tsv")).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["ari"].as_f64().unwrap() > 0.9, "{v}");
    // without -k, each rule estimates k (the default's rule when none is named)
    for rule in [None, Some("leiden"), Some("plateau"), Some("silhouette")] {
        let mut c = bin();
        c.args(["cluster", "-q", "--embedding"]).arg(d.join("res/embedding.npy")).arg("--out").arg(d.join("cl_k.tsv"));
        if let Some(r) = rule {
            c.args(["--k-rule", r]);
        }
        let o = c.output().unwrap();
        assert!(o.status.success(), "{rule:?}: {}", String::from_utf8_lossy(&o.stderr));
        let labels = std::fs::read_to_string(d.join("cl_k.tsv")).unwrap();
        let found: std::collections::HashSet<&str> = labels.lines().skip(1).filter_map(|l| l.split('\t').nth(1)).collect();
        assert_eq!(found.len(), 2, "{rule:?}: {found:?}");
    }
    // batch metrics of the embedding: two made-up batches alternating over the cells mix well
    let truth = std::fs::read_to_string(d.join("sim/labels.tsv")).unwrap();
    let mut batches = String::from("cell\tbatch\n");
    for (i, l) in truth.lines().skip(1).enumerate() {
        batches += &format!("{}\tb{}\n", l.split('\t').next().unwrap(), i % 2);
    }
    std::fs::write(d.join("batches.tsv"), &batches).unwrap();
    let eval = |emb: &str, b: &str| {
        bin()
            .args(["evaluate", "--labels"])
            .arg(d.join("cl.tsv"))
            .arg("--truth")
            .arg(d.join("sim/labels.tsv"))
            .arg("--embedding")
            .arg(d.join(emb))
            .arg("--batches")
            .arg(d.join(b))
            .output()
            .unwrap()
    };
    let o = eval("res/embedding.tsv", "batches.tsv");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for k in ["silhouette_batch", "ilisi", "clisi", "graph_connectivity"] {
        assert!(v["batch"][k].as_f64().is_some_and(|x| (0.0..=1.0 + 1e-9).contains(&x)), "{k}: {v}");
    }
    assert!(v["batch"]["ilisi"].as_f64().unwrap() > 0.8, "{v}");
    // the .npy embedding (rows in the truth's order) gives the same
    let o = eval("res/embedding.npy", "batches.tsv");
    let w: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!((w["batch"]["ilisi"].as_f64().unwrap() - v["batch"]["ilisi"].as_f64().unwrap()).abs() < 1e-6, "{w}");
    // a cell without a batch names the file and the cell
    std::fs::write(d.join("short.tsv"), batches.lines().take(5).collect::<Vec<_>>().join("\n")).unwrap();
    let o = eval("res/embedding.tsv", "short.tsv");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("short.tsv") && err.contains("no value for cell"), "{err}");
    let o = bin()
        .args(["cluster", "--k-rule", "guess", "--embedding"])
        .arg(d.join("res/embedding.npy"))
        .arg("--out")
        .arg(d.join("x.tsv"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("guess"));
    let o = bin()
        .args(["cluster", "-k", "5000", "--embedding"])
        .arg(d.join("res/embedding.npy"))
        .arg("--out")
        .arg(d.join("cl2.tsv"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("embedding.npy"));
    assert!(!d.join("cl2.tsv").exists());
}

#[test]
fn scmae_run_save_model_embed_and_resume() {
    let dir = tmp("scmae");
    let input = shared("pollen_top1000hvg/pollen_top1000hvg.h5ad");
    let out = dir.join("res");
    let model = dir.join("model");
    let o = bin()
        .args([
            "run",
            "--method",
            "scmae",
            "--label-key",
            "cell_type",
            "--epochs",
            "12",
            "--checkpoint-every",
            "5",
            "--device",
            "cpu",
            "--input",
        ])
        .arg(&input)
        .arg("--out")
        .arg(&out)
        .arg("--save-model")
        .arg(&model)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("epoch") && err.contains("loss_mask"), "no training progress shown: {err}");
    let h: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("history.json")).unwrap()).unwrap();
    assert_eq!(h.as_array().unwrap().len(), 12);
    let run: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(run["config"]["method"], "scmae");
    assert_eq!(run["dims"], 128);
    for stage in ["preprocess", "train", "embed", "cluster", "metrics"] {
        assert!(run["timings_s"][stage].is_number(), "no timing for {stage}: {}", run["timings_s"]);
    }
    assert!(out.join("checkpoint/checkpoint.json").is_file());
    assert!(model.join("model.safetensors").is_file());
    let labels = std::fs::read_to_string(out.join("labels.tsv")).unwrap();

    // --resume from the epoch-10 checkpoint reproduces the same labels
    let out2 = dir.join("res2");
    std::fs::create_dir_all(&out2).unwrap();
    let o = bin()
        .args([
            "run",
            "-q",
            "--method",
            "scmae",
            "--label-key",
            "cell_type",
            "--epochs",
            "12",
            "--checkpoint-every",
            "5",
            "--resume",
            "--device",
            "cpu",
            "--no-h5ad",
            "--input",
        ])
        .arg(&input)
        .arg("--out")
        .arg(&out2)
        .arg("--checkpoint-dir")
        .arg(out.join("checkpoint"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read_to_string(out2.join("labels.tsv")).unwrap(), labels);

    // embed with the saved model: the training cells get the training embedding
    let emb = dir.join("emb");
    let o = bin()
        .args(["embed", "-q", "--device", "cpu", "-k", "11", "--model"])
        .arg(&model)
        .arg("--input")
        .arg(&input)
        .arg("--out")
        .arg(&emb)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read_to_string(emb.join("embedding.tsv")).unwrap(), std::fs::read_to_string(out.join("embedding.tsv")).unwrap());
    assert!(emb.join("labels.tsv").is_file() && emb.join("versions.yml").is_file());
    // a model of another method, a folder with a missing file
    let o = bin()
        .args(["embed", "--method", "pca", "--model"])
        .arg(&model)
        .arg("--input")
        .arg(&input)
        .arg("--out")
        .arg(dir.join("e2"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("holds a `scmae` model"));
    std::fs::remove_file(model.join("preprocess.json")).unwrap();
    let o = bin().args(["embed", "--model"]).arg(&model).arg("--input").arg(&input).arg("--out").arg(dir.join("e3")).output().unwrap();
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("preprocess.json"));
    assert!(!dir.join("e3").exists(), "output written despite the error");
}

#[test]
fn scmae_bad_options() {
    let input = shared("pollen_top1000hvg/pollen_top1000hvg.h5ad");
    let i = input.to_str().unwrap();
    expect_fail(
        &["-m", "scmae", "-i", i, "--label-key", "cell_type", "-k", "1000"],
        2,
        &["n_clusters", "1000", "more clusters than cells"],
    );
    expect_fail(
        &["-m", "scmae", "-i", i, "--label-key", "cell_type", "--n-top-genes", "2000"],
        2,
        &["preprocess.n_top_genes", "only 1000 genes"],
    );
    expect_fail(&["-m", "scmae", "-i", i, "--set", "params.shuffle=\"columns\""], 2, &["shuffle", "columns"]);
    expect_fail(&["-m", "scmae", "-i", i, "--set", "train.epochs=0"], 2, &["train.epochs"]);
}

#[test]
fn without_k_or_truth_the_graph_is_clustered_as_in_every_door() {
    let out = tmp("nok");
    run_pollen(&["--method", "pca", "--no-h5ad"], &out);
    let run: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(run["clustering"]["algorithm"], "leiden", "{}", run["clustering"]);
    assert_eq!(run["config"]["cluster"]["algorithm"], "leiden");
    assert!(run["metrics"].is_null());
    // the resolved config runs again to the same labels (run.json round trip)
    std::fs::write(out.join("cfg.json"), run["config"].to_string()).unwrap();
    let again = tmp("nok-again");
    run_pollen(&["--config", out.join("cfg.json").to_str().unwrap(), "--no-h5ad"], &again);
    let labels = |d: &Path| std::fs::read_to_string(d.join("labels.tsv")).unwrap();
    assert_eq!(labels(&again), labels(&out));
}

#[test]
fn graph_clustering_flags() {
    let out = tmp("leiden");
    run_pollen(&["--method", "pca", "--label-key", "cell_type", "--cluster", "leiden", "--resolution", "1.0", "--no-h5ad"], &out);
    let run: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(run["clustering"]["algorithm"], "leiden");
    assert_eq!(run["clustering"]["resolution"], 1.0);
    assert!(run["metrics"]["ari"].as_f64().unwrap() > 0.8, "{}", run["metrics"]);
    // the cluster subcommand needs no k with a graph algorithm
    let labels = out.join("louvain.tsv");
    let o = bin()
        .args(["cluster", "--cluster", "louvain", "--embedding"])
        .arg(out.join("embedding.npy"))
        .arg("--out")
        .arg(&labels)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(std::fs::read_to_string(&labels).unwrap().lines().count() > 100);
    expect_fail(
        &["--input", shared("pollen_top1000hvg/pollen_top1000hvg.h5ad").to_str().unwrap(), "--cluster", "spectral"],
        2,
        &["spectral"],
    );
}

/// (width, height) from a PNG's IHDR chunk; panics unless the file is a PNG.
fn png_size(p: &Path) -> (u32, u32) {
    let b = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    assert!(b.len() > 1000, "{} is only {} bytes", p.display(), b.len());
    assert_eq!(&b[..8], b"\x89PNG\r\n\x1a\n", "{} is not a PNG", p.display());
    assert_eq!(&b[12..16], b"IHDR");
    (u32::from_be_bytes(b[16..20].try_into().unwrap()), u32::from_be_bytes(b[20..24].try_into().unwrap()))
}

/// Count distinct colours in a PNG by decoding it with the `png` crate's reader.
fn png_colours(p: &Path) -> usize {
    let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(p).unwrap()));
    let mut r = dec.read_info().unwrap();
    let mut buf = vec![0; r.output_buffer_size()];
    let info = r.next_frame(&mut buf).unwrap();
    let px: std::collections::HashSet<&[u8]> = buf[..info.buffer_size()].chunks(3).collect();
    px.len()
}

#[test]
fn plot_a_deep_run_and_an_h5ad_for_mtx_input() {
    let out = tmp("plot");
    let data = shared("10x_pbmc_top2000");
    let o = bin()
        .args(["run", "-q", "--method", "scmae", "--epochs", "3", "--seed", "2"])
        .arg("--input")
        .arg(data.join("mtx"))
        .arg("--labels")
        .arg(data.join("labels.tsv"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // results added to a new .h5ad for a non-h5ad input, and the ground truth beside them
    assert!(out.join("mtx.scdeep.h5ad").is_file());
    assert!(std::fs::read_to_string(out.join("truth.tsv")).unwrap().lines().count() == 4272);
    let o = bin().arg("plot").arg("--run").arg(&out).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(png_size(&out.join("loss.png")), (1000, 640));
    assert_eq!(png_size(&out.join("embedding.png")), (1500, 620));
    let (w, h) = png_size(&out.join("confusion.png"));
    assert!((640..=1000).contains(&w) && (500..=900).contains(&h), "{w}x{h}");
    // a figure, not a blank canvas: many colours (points, palette, anti-aliased text)
    for f in ["loss.png", "embedding.png", "confusion.png"] {
        assert!(png_colours(&out.join(f)) > 50, "{f} looks blank");
    }
    // without ground truth: no confusion matrix, a one-panel embedding
    let bare = tmp("plot-bare");
    for f in ["run.json", "labels.tsv", "embedding.npy", "history.json"] {
        std::fs::copy(out.join(f), bare.join(f)).unwrap();
    }
    let o = bin().args(["plot", "-q", "--run"]).arg(&bare).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(png_size(&bare.join("embedding.png")), (760, 620));
    assert!(!bare.join("confusion.png").exists());
    // a folder that is not a run: exit 3 naming it
    let o = bin().args(["plot", "--run", "/nonexistent-run"]).output().unwrap();
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent-run"));
}
