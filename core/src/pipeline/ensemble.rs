//! The `consensus` method: several methods embed the same cells, each with its own
//! recipe (preprocessing, training, defaults); their embeddings, each centred and scaled
//! to unit mean squared norm per cell, are concatenated into the consensus embedding,
//! which K-means clusters (k given, or estimated). Each member's own K-means partition
//! and its agreement with the consensus (NMI, the member's weight) are reported.
//!
//! Why the concatenation (bench/consensus_picks.py on bench/consensus_members.py's
//! embeddings, 7 labelled sets, 5 seeds; bench/results/consensus_picks.json): no
//! label-free rule that picks one member's partition (mean agreement with the other
//! members, stability across restarts, silhouettes) finds the best member on more than
//! 4 of 7 sets, and the co-association cut loses up to 0.5 ARI where one type dominates
//! (bench/results/consensus_members.json). K-means on the concatenation is within 0.01
//! of the best member or above it on 5 of 7 sets there, because a distance every member
//! contributes to averages out each member's own noise. In full runs (accuracy.json,
//! `consensus`) it loses where one member is far better than the rest (darmanis: scMAE).
//!
//! It sits above [`crate::models::Method`]: every member runs the pipeline's own
//! preprocess -> fit -> embed ([`super::fit_embed`]) as a run of that method
//! would; only the clustering differs. The saved model holds every member's model and
//! the centre and scale its embedding had here, so that it embeds new cells into the
//! same consensus embedding (`store::Body::Consensus`).

use crate::cluster::{kmeans, KMeansParams};
use crate::config::{ConfigBuilder, RunConfig};
use crate::error::{Error, Result};
use crate::metrics::{normalized_mutual_info, AverageMethod};
use crate::models::consensus::{Params, NAME};
use crate::preprocess::{Source, Sourced};
use crate::progress::Progress;
use serde_json::{json, Value};
use std::time::Instant;
use tch::Tensor;

use super::RunResult;

/// The run's options for member `m`: its defaults; then the consensus run's `train` and
/// `preprocess` fields that differ from a consensus's defaults (what the user set there
/// applies to every member: `train.epochs`, a cell filter); then `options` (the member's
/// own, from `params.member_options`); with the consensus run's seed, device, threads,
/// number of clusters and metrics.
fn member_config(cfg: &RunConfig, defaults: &RunConfig, m: &str, options: Option<&Value>, k: Option<usize>) -> Result<RunConfig> {
    let mut b = ConfigBuilder::new().method(m);
    for (section, set, default) in [
        ("train", serde_json::to_value(&cfg.train), serde_json::to_value(&defaults.train)),
        ("preprocess", serde_json::to_value(&cfg.preprocess), serde_json::to_value(&defaults.preprocess)),
    ] {
        let (set, default) = (set.unwrap_or_default(), default.unwrap_or_default());
        for (key, v) in set.as_object().into_iter().flatten() {
            if default.get(key) != Some(v) {
                b = b.set(&format!("{section}.{key}"), v.clone())?;
            }
        }
    }
    b = b.options(options.unwrap_or(&Value::Null))?;
    for (field, v) in [("seed", json!(cfg.seed)), ("device", json!(cfg.device)), ("threads", json!(cfg.threads))] {
        b = b.set(field, v)?;
    }
    let mut c =
        b.n_clusters(k).build(true).map_err(|e| Error::config(&format!("params.member_options.{m}"), "(options)", e.to_string()))?;
    c.metrics = cfg.metrics.clone();
    Ok(c)
}

/// The cells the members kept: names, rows of the input, ground truth.
type Kept = (Vec<String>, Vec<usize>, Option<Vec<String>>);

/// What one member took (its embedding is kept apart until the concatenation).
struct Member {
    name: String,
    dims: usize,
    model: crate::store::TrainedModel,
    history: Vec<Value>,
}

/// A consensus run (see the module's doc) whose members read the cells from `src`, each
/// with its own preprocessing; a member's prepared matrix is freed before the next reads.
pub fn run<'a>(src: &mut dyn Source<'a>, cfg: &RunConfig, progress: &mut dyn Progress) -> Result<RunResult> {
    let (mut cfg, device) = super::setup(cfg, progress)?;
    let params = Params::from_json(&cfg.params)?;
    let mut timings: Vec<(String, f64)> = Vec::new();
    let mut members: Vec<Member> = Vec::new();
    let mut embs: Vec<Tensor> = Vec::new();
    let mut kept: Option<Kept> = None;
    let mut k = cfg.cluster.n_clusters;
    let defaults = RunConfig::for_method(NAME)?;
    for (i, name) in params.members.iter().enumerate() {
        progress.message(&format!("consensus member {}/{}: {name}", i + 1, params.members.len()));
        let mut mcfg = member_config(&cfg, &defaults, name, params.member_options.get(name), k)?;
        let mut method = crate::models::build(name, &mcfg.params)?;
        progress.stage("preprocess");
        let t = Instant::now();
        let Sourced { prep, n_genes, notes } = src.prepare(&mcfg.preprocess, method.needs_counts())?;
        for n in &notes {
            progress.message(n);
        }
        super::resolve_n_top_genes(&mut mcfg, n_genes);
        let mut mt = vec![("preprocess".to_string(), t.elapsed().as_secs_f64())];
        match &kept {
            None => {
                k = super::known_k(&mcfg, &prep)?;
                if k.is_none() {
                    // k will be estimated on a kNN graph: a graph these cells cannot have
                    // is an error now, not after every member has trained
                    crate::cluster::graph::check_k(cfg.cluster.n_neighbors, prep.n_cells())?;
                }
                progress.message(&format!("{} cells x {} genes after {name}'s preprocessing", prep.n_cells(), prep.n_genes()));
                kept = Some((prep.cells.clone(), prep.cell_index.clone(), prep.labels.clone()));
            }
            Some((_, index, _)) if *index != prep.cell_index => {
                return Err(Error::config(
                    "params.members",
                    name,
                    format!(
                        "its preprocessing keeps {} cells where {}'s keeps {}; members must keep the same cells (set the same cell filters in params.member_options)",
                        prep.n_cells(),
                        params.members[0],
                        index.len()
                    ),
                ));
            }
            Some(_) => {}
        }
        mcfg.cluster.n_clusters = k;
        let (emb, _) = super::fit_embed(&prep, &mcfg, device, method.as_mut(), k, &mut mt, progress)?;
        timings.extend(mt.into_iter().map(|(s, t)| (format!("{name}.{s}"), t)));
        let history = method.history();
        let model = crate::store::TrainedModel::single(
            mcfg.clone(),
            method,
            crate::preprocess::SavedPreprocess::from_prepared(&prep, &mcfg.preprocess),
        );
        members.push(Member { name: name.clone(), dims: emb.size()[1] as usize, model, history });
        embs.push(emb);
        drop(prep);
        crate::device::release_free_memory();
    }
    let (cells, cell_index, truth) = kept.ok_or_else(|| Error::config("params.members", "[]", "needs at least one method"))?;

    progress.stage("cluster");
    let t = Instant::now();
    let (embedding, standard) = crate::device::torch_guard("concatenating the embeddings", device, || concatenate(embs))?;
    crate::device::release_free_memory();
    let member_dims: Vec<usize> = members.iter().map(|m| m.dims).collect();
    let dims: usize = member_dims.iter().sum();
    let n_inits: Vec<usize> = members.iter().map(|m| m.model.config.cluster.n_init).collect();
    let (k, k_info, choice) = crate::device::torch_guard("clustering", device, || {
        with_tensor(&embedding, dims, device, |concat| {
            let (k, k_info) = match k {
                Some(k) => (k, Value::Null),
                None => {
                    let (k, info) = estimate_k(concat, &params, &cfg, progress)?;
                    progress.message(&format!("consensus: estimated k = {k}"));
                    (k, info)
                }
            };
            let choice = choose(concat, &member_dims, &n_inits, k, &cfg, progress)?;
            Ok((k, k_info, choice))
        })
    })?;
    cfg.cluster.n_clusters = Some(k);
    timings.push(("cluster".to_string(), t.elapsed().as_secs_f64()));
    progress.message(&format!(
        "consensus: member weights (NMI to the consensus, normalised) {}",
        members.iter().zip(&choice.weights).map(|(m, w)| format!("{} {w:.2}", m.name)).collect::<Vec<_>>().join(", ")
    ));

    let labels = choice.consensus;
    let scores = match &truth {
        Some(t) => {
            progress.stage("metrics");
            let tm = Instant::now();
            let s = crate::metrics::evaluate(t, &labels, Some((&embedding, dims)), cfg.metrics.nmi_average, cfg.metrics.silhouette_sample)?;
            timings.push(("metrics".to_string(), tm.elapsed().as_secs_f64()));
            Some(s)
        }
        None => None,
    };
    let clustering = json!({
        "algorithm": "consensus", "k": k, "k_estimate": k_info, "consensus_clustering": choice.info,
        "members": members.iter().enumerate().map(|(i, m)| json!({
            "method": m.name, "dims": m.dims, "weight": choice.weights[i], "nmi_to_consensus": choice.agreement[i],
            "labels": choice.labels[i], "config": m.model.config,
        })).collect::<Vec<_>>(),
    });
    let history = merged_history(&members);
    let model = crate::store::TrainedModel::consensus(
        cfg.clone(),
        members.into_iter().zip(standard).map(|(m, (centre, scale))| crate::store::Member { model: m.model, centre, scale }).collect(),
    );
    Ok(RunResult {
        n_genes_used: model.genes().len(),
        model,
        cells,
        cell_index,
        embedding,
        dims,
        labels,
        truth,
        scores,
        history,
        timings,
        config: cfg,
        clustering,
        imputed: None,
    })
}

/// A member's centre (one value per dimension) and divisor in the consensus embedding.
type Standard = (Vec<f32>, f32);

/// The members' training losses by epoch, each key suffixed with its member
/// (`loss[scmae]`), so that one loss plot shows them all.
fn merged_history(members: &[Member]) -> Vec<Value> {
    let mut out: Vec<serde_json::Map<String, Value>> = Vec::new();
    for m in members {
        for (i, h) in m.history.iter().enumerate() {
            if out.len() <= i {
                out.push(serde_json::Map::from_iter([("epoch".to_string(), json!(i + 1))]));
            }
            for (key, v) in h.as_object().into_iter().flatten().filter(|(key, _)| *key != "epoch") {
                out[i].insert(format!("{key}[{}]", m.name), v.clone());
            }
        }
    }
    out.into_iter().map(Value::Object).collect()
}

/// The consensus embedding (row-major, on the CPU): each member's embedding centred and
/// divided by the root of its mean squared row norm (so each member weighs the same in a
/// distance), side by side (`store::place_block`, as a saved consensus embeds); with
/// each member's centre and divisor. Each member's tensor is freed once copied and its
/// copy once placed, so at most one member's embedding is held twice (at 1M cells the
/// default members' embeddings are 1.2 GB).
fn concatenate(embs: Vec<Tensor>) -> Result<(Vec<f32>, Vec<Standard>)> {
    let n = embs.first().map_or(0, |e| e.size()[0] as usize);
    let dims: usize = embs.iter().map(|e| e.size()[1] as usize).sum();
    let mut cat = vec![0f32; n * dims];
    let mut standard = Vec::with_capacity(embs.len());
    let mut at = 0;
    for x in embs {
        let d = x.size()[1] as usize;
        let e = Vec::<f32>::try_from(&x.f_to_device(tch::Device::Cpu)?.f_to_kind(tch::Kind::Float)?.f_contiguous()?.f_view([-1])?)?;
        drop(x);
        let (centre, scale) = crate::store::standard_of(&e, d);
        crate::store::place_block(&mut cat, dims, at, &e, d, (&centre, scale));
        standard.push((centre, scale));
        at += d;
    }
    Ok((cat, standard))
}

/// `f` on `x` (rows of `dims` values) as a cells x dims tensor on `device`. On the CPU the
/// tensor reads `x` where it is, not a copy (the consensus embedding is a gigabyte at 1M
/// cells); on another device it is a copy there.
fn with_tensor<T>(x: &[f32], dims: usize, device: tch::Device, f: impl FnOnce(&Tensor) -> Result<T>) -> Result<T> {
    let n = (x.len() / dims.max(1)) as i64;
    // SAFETY: the tensor is dropped before this function returns, while `x` is borrowed
    // and so neither written nor freed; it has x's length and element type. `f` only
    // reads it (the clustering writes only tensors it makes) and returns no tensor.
    let t = unsafe { Tensor::f_from_blob(x.as_ptr().cast::<u8>(), &[n, dims as i64], &[], tch::Kind::Float, tch::Device::Cpu)? };
    let t = if device == tch::Device::Cpu { t } else { t.f_to_device(device)? };
    f(&t)
}

/// What [`choose`] found: the consensus partition and each member's own.
struct Choice {
    consensus: Vec<i64>,
    /// How the consensus embedding was clustered (`cluster::run`'s account).
    info: Value,
    labels: Vec<Vec<i64>>,
    /// NMI of each member's partition to the consensus, and the same normalised to sum 1.
    agreement: Vec<f64>,
    weights: Vec<f64>,
}

fn as_usize(l: &[i64]) -> Vec<usize> {
    l.iter().map(|&v| v as usize).collect()
}

/// The consensus embedding `concat` clustered into k as the run's `cluster` section says
/// (K-means with `n_init` starts by default), each member's block of it (`dims` columns
/// each, in order: the member's embedding centred and scaled, which K-means partitions
/// as it does the embedding) by K-means with its `n_inits` starts (its own run's), and
/// each member's agreement with the consensus.
fn choose(concat: &Tensor, dims: &[usize], n_inits: &[usize], k: usize, cfg: &RunConfig, progress: &mut dyn Progress) -> Result<Choice> {
    let c = &cfg.cluster;
    progress.message("consensus: clustering the consensus embedding");
    let cons = crate::cluster::run(concat, c, Some(k), cfg.seed, progress)?;
    let canon = as_usize(&cons.labels);
    let mut labels = Vec::with_capacity(dims.len());
    let mut agreement = Vec::with_capacity(dims.len());
    let mut at = 0;
    for (&d, &n_init) in dims.iter().zip(n_inits) {
        let x = concat.f_narrow(1, at as i64, d as i64)?.f_contiguous()?;
        at += d;
        let l = kmeans(&x, &KMeansParams { k, n_init, max_iter: c.max_iter, tol: c.tol, seed: cfg.seed })?.labels;
        agreement.push(normalized_mutual_info(&as_usize(&l), &canon, AverageMethod::Arithmetic)?);
        labels.push(l);
    }
    Ok(Choice { consensus: cons.labels, info: cons.info, labels, weights: normalised(&agreement), agreement })
}

/// `w` divided by its sum (equal weights when the sum is not positive).
fn normalised(w: &[f64]) -> Vec<f64> {
    let sum: f64 = w.iter().map(|v| v.max(0.0)).sum();
    if sum > 0.0 {
        w.iter().map(|v| v.max(0.0) / sum).collect()
    } else {
        vec![1.0 / w.len() as f64; w.len()]
    }
}

/// With k unknown: the number of communities Leiden finds at `cluster.resolution` on the
/// kNN graph of the consensus embedding (the run's graph options), at least `k_min` and
/// at most `k_max`. Within +-1 of the labelled types on 4 of 8 sets
/// (bench/results/consensus_k.json); internal indices of K-means on the same embedding
/// (silhouette, Calinski-Harabasz, Davies-Bouldin, restart stability;
/// bench/results/consensus_k_indices.txt) stop at 4 to 8 clusters where the labels have 8
/// to 16 types. Returns k and how it was found.
fn estimate_k(concat: &Tensor, params: &Params, cfg: &RunConfig, progress: &mut dyn Progress) -> Result<(usize, Value)> {
    let graph = crate::cluster::ClusterConfig {
        algorithm: crate::cluster::Algorithm::Leiden,
        resolution_choice: crate::cluster::ResolutionChoice::Fixed,
        ..cfg.cluster.clone()
    };
    let c = crate::cluster::run(concat, &graph, None, cfg.seed, progress)?;
    let found = c.labels.iter().collect::<std::collections::HashSet<_>>().len();
    let n = concat.size()[0] as usize;
    let k = found.clamp(params.k_min, params.k_max).min(n);
    Ok((k, json!({"rule": "leiden_communities", "resolution": cfg.cluster.resolution, "communities": found, "leiden": c.info})))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three well-separated blobs of 30 points in `d` dimensions, shifted and scaled.
    fn blobs(d: i64, scale: f64, seed: i64) -> Tensor {
        tch::manual_seed(seed);
        let centres = Tensor::randn([3, d], (tch::Kind::Float, tch::Device::Cpu)) * 8.0;
        let idx = Tensor::arange(90, (tch::Kind::Int64, tch::Device::Cpu)).divide_scalar_mode(30, "floor");
        (centres.index_select(0, &idx) + Tensor::randn([90, d], (tch::Kind::Float, tch::Device::Cpu))) * scale + 3.0
    }

    /// The consensus of the embeddings `xs` into 3 clusters (10 K-means starts per member).
    fn consensus_of(xs: &[&Tensor]) -> Choice {
        let cfg = RunConfig::from_json(&json!({"method": NAME, "device": "cpu", "threads": 1})).unwrap();
        let dims: Vec<usize> = xs.iter().map(|x| x.size()[1] as usize).collect();
        let (cat, _) = concatenate(xs.iter().map(|x| x.shallow_clone()).collect()).unwrap();
        with_tensor(&cat, dims.iter().sum(), tch::Device::Cpu, |t| {
            choose(t, &dims, &vec![10; xs.len()], 3, &cfg, &mut crate::progress::Silent)
        })
        .unwrap()
    }

    #[test]
    fn the_consensus_of_identical_embeddings_is_their_partition() {
        let x = blobs(5, 1.0, 1);
        let one = consensus_of(&[&x]);
        // the same embedding three times, at other scales and offsets: the same partition
        let (a, b) = (&x * 10.0 - 4.0, &x * 0.1);
        let three = consensus_of(&[&x, &a, &b]);
        let canon = |l: &[i64]| crate::cluster::consensus::canonical(&as_usize(l));
        assert_eq!(canon(&three.consensus), canon(&one.consensus));
        for (l, agree) in three.labels.iter().zip(&three.agreement) {
            assert!((agree - 1.0).abs() < 1e-12, "a member identical to the consensus has NMI 1, got {agree}");
            assert_eq!(canon(l), canon(&one.consensus));
        }
        assert_eq!(three.weights, vec![1.0 / 3.0; 3]);
        // each block has unit mean squared norm per cell
        let (cat, standard) = concatenate(vec![x.shallow_clone(), a.shallow_clone()]).unwrap();
        assert_eq!(standard.len(), 2);
        assert_eq!(standard[1].0.len(), 5);
        let ms: f64 = cat.chunks(10).map(|row| row[5..].iter().map(|v| (*v as f64).powi(2)).sum::<f64>()).sum::<f64>() / 90.0;
        assert!((ms - 1.0).abs() < 1e-4, "{ms}");
        // the clustering's tensor reads the embedding in place and leaves it as it was
        let before = cat.clone();
        let rows = with_tensor(&cat, 10, tch::Device::Cpu, |t| Ok(t.size()[0])).unwrap();
        assert_eq!((rows, &cat), (90, &before));
    }

    #[test]
    fn member_order_and_label_names_do_not_change_the_consensus() {
        let (x, y) = (blobs(4, 1.0, 2), blobs(6, 2.0, 2));
        let xy = consensus_of(&[&x, &y]);
        let yx = consensus_of(&[&y, &x]);
        let canon = |l: &[i64]| crate::cluster::consensus::canonical(&as_usize(l));
        assert_eq!(canon(&xy.consensus), canon(&yx.consensus));
        assert_eq!(xy.agreement, vec![yx.agreement[1], yx.agreement[0]]);
        // the weights read partitions, not label names: renamed labels give the same NMI
        let renamed: Vec<usize> = as_usize(&xy.labels[0]).iter().map(|l| 7 - l).collect();
        let nmi = normalized_mutual_info(&renamed, &as_usize(&xy.consensus), AverageMethod::Arithmetic).unwrap();
        assert!((nmi - xy.agreement[0]).abs() < 1e-12);
        // and the same seed gives the same labels
        let again = consensus_of(&[&x, &y]);
        assert_eq!(again.consensus, xy.consensus);
    }
}
