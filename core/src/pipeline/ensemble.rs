//! The `consensus` method: several methods embed the same cells, each with its own
//! recipe (preprocessing, training, defaults); their embeddings, each centred and scaled
//! to unit mean squared norm per cell, are concatenated into the consensus embedding,
//! which K-means clusters (k given, or estimated). Each member's own K-means partition
//! and its agreement with the consensus (NMI, the member's weight) are reported.
//!
//! Why the concatenation, and why members are weighted by their agreement: the studies
//! in bench/ (consensus_members.py, consensus_picks.py, generalization.py; their numbers
//! in bench/studies/consensus/results/consensus_members.json, consensus_picks.json and
//! generalization.json). Picking one member's partition without labels misses the best
//! member too often, and the co-association cut fails where one type dominates; a
//! distance every member contributes to averages out each member's own noise, and
//! leaving out members that agree with no one limits the damage of a failing member.
//!
//! It sits above [`crate::models::Method`]: every member runs the pipeline's own
//! preprocess -> fit -> embed (`super::fit_embed`) as a run of that method
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
type Kept = (Vec<String>, Vec<usize>, Option<Vec<String>>, Option<crate::batch::Batches>);

/// What one member took (its embedding is kept apart until the concatenation).
struct Member {
    name: String,
    dims: usize,
    model: crate::store::TrainedModel,
    history: Vec<Value>,
}

/// A consensus run (see the module's doc) whose members read the cells from `src`, each
/// with its own preprocessing; a member's prepared matrix is freed before the next reads.
pub(crate) fn run<'a>(src: &mut dyn Source<'a>, cfg: &RunConfig, progress: &mut dyn Progress) -> Result<RunResult> {
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
                let b = crate::batch::Batches::of_cells(prep.batches.as_deref(), &cfg.batch, progress)?;
                kept = Some((prep.cells.clone(), prep.cell_index.clone(), prep.labels.clone(), b));
            }
            Some((_, index, _, _)) if *index != prep.cell_index => {
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
    let (cells, cell_index, truth, batches) = kept.ok_or_else(|| Error::config("params.members", "[]", "needs at least one method"))?;

    progress.stage("cluster");
    let t = Instant::now();
    let (mut embedding, mut standard) = crate::device::torch_guard("concatenating the embeddings", device, || concatenate(embs))?;
    crate::device::release_free_memory();
    let member_dims: Vec<usize> = members.iter().map(|m| m.dims).collect();
    let n_inits: Vec<usize> = members.iter().map(|m| m.model.config.cluster.n_init).collect();
    let all_dims: usize = member_dims.iter().sum();
    let correction = match &batches {
        Some(b) => {
            let t = Instant::now();
            let info = crate::device::torch_guard("correcting for batches", device, || {
                b.correct(&mut embedding, all_dims, &cfg.batch, cfg.seed, device, progress)
            })?;
            timings.push(("batch_correction".to_string(), t.elapsed().as_secs_f64()));
            info
        }
        None => Value::Null,
    };
    let (k, k_info) = match k {
        Some(k) => (k, Value::Null),
        None => {
            let (k, info) = crate::device::torch_guard("estimating k", device, || {
                with_tensor(&embedding, all_dims, device, |concat| {
                    crate::cluster::estimate_k(concat, &params.k_estimate(), &cfg.cluster, cfg.seed, progress)
                })
            })?;
            progress.message(&format!("consensus: estimated k = {k}"));
            (k, info)
        }
    };
    let (choice, stability, dims) = crate::device::torch_guard("clustering", device, || {
        combine(&mut embedding, &mut standard, &member_dims, &n_inits, k, &params, &cfg, device, progress)
    })?;
    cfg.cluster.n_clusters = Some(k);
    timings.push(("cluster".to_string(), t.elapsed().as_secs_f64()));
    let labels = choice.consensus;
    let scores = match &truth {
        Some(t) => Some(super::scores(t, &labels, (&embedding, dims), batches.as_ref(), &stability, &cfg, device, &mut timings, progress)?),
        None => None,
    };
    let mut clustering = json!({
        "algorithm": "consensus", "k": k, "k_estimate": k_info, "consensus_clustering": choice.info, "stability": stability,
        "weighting": {"rule": params.weighting, "weight_power": params.weight_power, "drop_below": params.drop_below},
        "members": members.iter().enumerate().map(|(i, m)| json!({
            "method": m.name, "dims": m.dims, "kept": choice.weights[i] > 0.0, "weight": choice.weights[i],
            "agreement": choice.agreement[i], "nmi_to_consensus": choice.nmi[i],
            "labels": choice.labels[i], "config": m.model.config,
        })).collect::<Vec<_>>(),
    });
    if let Some(b) = &batches {
        clustering["batch"] = b.account(&cfg.batch, correction, &labels);
    }
    let history = merged_history(&members);
    let model = crate::store::TrainedModel::consensus(
        cfg.clone(),
        members
            .into_iter()
            .zip(standard)
            .zip(&choice.weights)
            .filter(|(_, w)| **w > 0.0)
            .map(|((m, (centre, scale)), _)| crate::store::Member { model: m.model, centre, scale })
            .collect(),
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
/// distance), side by side (`embedding::place_block`, as a saved consensus embeds); with
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
        let (centre, scale) = crate::embedding::standard_of(&e, d);
        crate::embedding::place_block(&mut cat, dims, at, &e, d, (&centre, scale));
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

/// The consensus partition into k of the members' embeddings side by side (`x`, rows of
/// `dims` blocks, each centred and divided by `standard`'s scale): each member's own
/// partition, its agreement with the others, its weight (`params.weights`) applied to its
/// block in place (and to its scale, so that a saved model embeds new cells the same way;
/// blocks of weight 0 removed), then the run's clustering of the weighted embedding and
/// its stability. Returns the choice, the stability and the new row width.
#[allow(clippy::too_many_arguments)]
fn combine(
    x: &mut Vec<f32>,
    standard: &mut [Standard],
    dims: &[usize],
    n_inits: &[usize],
    k: usize,
    params: &Params,
    cfg: &RunConfig,
    device: tch::Device,
    progress: &mut dyn Progress,
) -> Result<(Choice, Value, usize)> {
    let parts = with_tensor(x, dims.iter().sum(), device, |concat| member_partitions(concat, dims, n_inits, k, cfg))?;
    let agreement = mean_agreement(&parts)?;
    let weights = params.weights(&agreement);
    progress.message(&format!(
        "consensus: member agreement (mean ARI to the others) -> weight: {}",
        params
            .members
            .iter()
            .zip(&agreement)
            .zip(&weights)
            .map(|((m, a), w)| format!("{m} {a:.2} -> {w:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let width = reweight(x, dims, &weights);
    for ((_, scale), w) in standard.iter_mut().zip(&weights).filter(|(_, w)| **w > 0.0) {
        *scale /= w.sqrt() as f32;
    }
    let (cons, stability) = with_tensor(x, width, device, |e| {
        progress.message("consensus: clustering the consensus embedding");
        let cons = crate::cluster::run(e, &cfg.cluster, Some(k), cfg.seed, progress)?;
        let stability = crate::cluster::stability(e, &cons.labels, &cfg.cluster, Some(k), cfg.seed, &cfg.cluster.stability)?;
        Ok((cons, stability))
    })?;
    super::report_stability(&stability, progress);
    let canon = as_usize(&cons.labels);
    let nmi: Vec<f64> =
        parts.iter().map(|l| normalized_mutual_info(&as_usize(l), &canon, AverageMethod::Arithmetic)).collect::<Result<_>>()?;
    Ok((Choice { consensus: cons.labels, info: cons.info, labels: parts, agreement, weights, nmi }, stability, width))
}

/// How the consensus partition was found, and each member's own partition.
struct Choice {
    consensus: Vec<i64>,
    /// How the consensus embedding was clustered (`cluster::run`'s account).
    info: Value,
    labels: Vec<Vec<i64>>,
    /// Each member's mean ARI to the other members' partitions, its weight in the
    /// consensus embedding (0: left out) and its NMI to the consensus partition.
    agreement: Vec<f64>,
    weights: Vec<f64>,
    nmi: Vec<f64>,
}

fn as_usize(l: &[i64]) -> Vec<usize> {
    l.iter().map(|&v| v as usize).collect()
}

/// Each member's partition into k: K-means with its own run's `n_inits` starts on its
/// block of `concat` (`dims` columns each, in order: the member's embedding centred and
/// scaled, which K-means partitions as it does the embedding).
fn member_partitions(concat: &Tensor, dims: &[usize], n_inits: &[usize], k: usize, cfg: &RunConfig) -> Result<Vec<Vec<i64>>> {
    let c = &cfg.cluster;
    let mut at = 0;
    dims.iter()
        .zip(n_inits)
        .map(|(&d, &n_init)| {
            let x = concat.f_narrow(1, at as i64, d as i64)?.f_contiguous()?;
            at += d;
            Ok(kmeans(&x, &KMeansParams { k, n_init, max_iter: c.max_iter, tol: c.tol, seed: cfg.seed })?.labels)
        })
        .collect()
}

/// Each partition's mean adjusted Rand index to the others (1 for a lone partition).
fn mean_agreement(parts: &[Vec<i64>]) -> Result<Vec<f64>> {
    let n = parts.len();
    if n < 2 {
        return Ok(vec![1.0; n]);
    }
    let p: Vec<Vec<usize>> = parts.iter().map(|l| as_usize(l)).collect();
    let mut sum = vec![0.0; n];
    for i in 0..n {
        for j in i + 1..n {
            let a = crate::metrics::adjusted_rand_index(&p[i], &p[j])?;
            sum[i] += a;
            sum[j] += a;
        }
    }
    Ok(sum.into_iter().map(|s| s / (n - 1) as f64).collect())
}

/// The consensus embedding `x` (rows of the members' blocks of `dims`) with each block
/// multiplied by the root of its member's weight (its share of a squared distance), the
/// blocks of weight 0 removed, in place; returns the new row width.
fn reweight(x: &mut Vec<f32>, dims: &[usize], weights: &[f64]) -> usize {
    let old: usize = dims.iter().sum();
    let kept: usize = dims.iter().zip(weights).filter(|(_, w)| **w > 0.0).map(|(d, _)| d).sum();
    let n = x.len() / old.max(1);
    let factors: Vec<Option<f32>> =
        dims.iter().zip(weights).flat_map(|(&d, &w)| std::iter::repeat_n(if w > 0.0 { Some(w.sqrt() as f32) } else { None }, d)).collect();
    // rows shrink or keep their width, so row i is written at or before where it is read
    for i in 0..n {
        let mut to = i * kept;
        for (j, f) in factors.iter().enumerate() {
            if let Some(f) = f {
                x[to] = x[i * old + j] * f;
                to += 1;
            }
        }
    }
    x.truncate(n * kept);
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::consensus::KRule;

    /// Three well-separated blobs of 30 points in `d` dimensions, shifted and scaled.
    fn blobs(d: i64, scale: f64, seed: i64) -> Tensor {
        tch::manual_seed(seed);
        let centres = Tensor::randn([3, d], (tch::Kind::Float, tch::Device::Cpu)) * 8.0;
        let idx = Tensor::arange(90, (tch::Kind::Int64, tch::Device::Cpu)).divide_scalar_mode(30, "floor");
        (centres.index_select(0, &idx) + Tensor::randn([90, d], (tch::Kind::Float, tch::Device::Cpu))) * scale + 3.0
    }

    /// The consensus of the embeddings `xs` into 3 clusters (10 K-means starts per member)
    /// with the default weighting, and the consensus embedding's width.
    fn consensus_of(xs: &[&Tensor]) -> Choice {
        consensus_with(xs, &Params::default()).0
    }

    fn consensus_with(xs: &[&Tensor], params: &Params) -> (Choice, Vec<f32>, usize) {
        let cfg = RunConfig::from_json(&json!({"method": NAME, "device": "cpu", "threads": 1})).unwrap();
        let dims: Vec<usize> = xs.iter().map(|x| x.size()[1] as usize).collect();
        let (mut cat, mut standard) = concatenate(xs.iter().map(|x| x.shallow_clone()).collect()).unwrap();
        let (choice, stability, width) =
            combine(&mut cat, &mut standard, &dims, &vec![10; xs.len()], 3, params, &cfg, tch::Device::Cpu, &mut crate::progress::Silent)
                .unwrap();
        assert!(stability["overall"].as_f64().unwrap() > 0.0, "{stability}");
        (choice, cat, width)
    }

    #[test]
    fn the_consensus_of_identical_embeddings_is_their_partition() {
        let x = blobs(5, 1.0, 1);
        let one = consensus_of(&[&x]);
        // the same embedding three times, at other scales and offsets: the same partition
        let (a, b) = (&x * 10.0 - 4.0, &x * 0.1);
        let three = consensus_of(&[&x, &a, &b]);
        let canon = |l: &[i64]| crate::cluster::coassociation::canonical(&as_usize(l));
        assert_eq!(canon(&three.consensus), canon(&one.consensus));
        for (l, agree) in three.labels.iter().zip(&three.agreement) {
            assert!((agree - 1.0).abs() < 1e-12, "a member identical to the consensus has NMI 1, got {agree}");
            assert_eq!(canon(l), canon(&one.consensus));
        }
        assert_eq!(three.weights, vec![1.0; 3]);
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
        let canon = |l: &[i64]| crate::cluster::coassociation::canonical(&as_usize(l));
        assert_eq!(canon(&xy.consensus), canon(&yx.consensus));
        assert_eq!(xy.agreement, vec![yx.agreement[1], yx.agreement[0]]);
        assert_eq!(xy.nmi, vec![yx.nmi[1], yx.nmi[0]]);
        // the weights read partitions, not label names: renamed labels give the same NMI
        let renamed: Vec<usize> = as_usize(&xy.labels[0]).iter().map(|l| 7 - l).collect();
        let nmi = normalized_mutual_info(&renamed, &as_usize(&xy.consensus), AverageMethod::Arithmetic).unwrap();
        assert!((nmi - xy.nmi[0]).abs() < 1e-12);
        // and the same seed gives the same labels
        let again = consensus_of(&[&x, &y]);
        assert_eq!(again.consensus, xy.consensus);
    }

    #[test]
    fn a_member_that_agrees_with_no_one_weighs_less_or_is_left_out() {
        let (x, y) = (blobs(4, 1.0, 3), blobs(6, 2.0, 3));
        tch::manual_seed(9);
        let noise = Tensor::randn([90, 5], (tch::Kind::Float, tch::Device::Cpu));
        use crate::models::consensus::Weighting;
        let weighted = Params { weighting: Weighting::Agreement, drop_below: 0.0, ..Params::default() };
        let (c, _, width) = consensus_with(&[&x, &noise, &y], &weighted);
        // a member at or below chance agreement (ARI <= 0) is left out even without drop_below
        assert!(width == 15 || (width == 10 && c.weights[1] == 0.0), "{width} {:?}", c.weights);
        assert!(c.weights[1] < 0.2 && c.weights[0] > 0.9 && c.weights[2] > 0.9, "{:?} from {:?}", c.weights, c.agreement);
        let canon = |l: &[i64]| crate::cluster::coassociation::canonical(&as_usize(l));
        let alone = consensus_of(&[&x]);
        assert_eq!(canon(&c.consensus), canon(&alone.consensus));
        // the default drops it: its block leaves the embedding, the others' stay as they were
        let drop = Params::default();
        assert!(drop.drop_below > 0.0);
        let (d, cat, width) = consensus_with(&[&x, &noise, &y], &drop);
        assert_eq!((width, d.weights[1]), (10, 0.0));
        let (full, _) = concatenate(vec![x.shallow_clone(), noise.shallow_clone(), y.shallow_clone()]).unwrap();
        for (row, whole) in cat.chunks(10).zip(full.chunks(15)) {
            for (i, j) in (0..4).chain(9..15).enumerate() {
                let w = d.weights[if j < 4 { 0 } else { 2 }];
                assert!((row[i] - whole[j] * w.sqrt() as f32).abs() < 1e-6);
            }
        }
        // equal weighting without a threshold keeps every member at weight 1
        let eq = Params { weighting: Weighting::Equal, drop_below: 0.0, ..Params::default() };
        assert_eq!(consensus_with(&[&x, &noise, &y], &eq).0.weights, vec![1.0; 3]);
    }

    /// `k` well-separated groups of 40 points in 8 dimensions.
    fn groups(k: i64, seed: i64) -> Tensor {
        tch::manual_seed(seed);
        let centres = Tensor::randn([k, 8], (tch::Kind::Float, tch::Device::Cpu)) * 12.0;
        let idx = Tensor::arange(40 * k, (tch::Kind::Int64, tch::Device::Cpu)).divide_scalar_mode(40, "floor");
        centres.index_select(0, &idx) + Tensor::randn([40 * k, 8], (tch::Kind::Float, tch::Device::Cpu))
    }

    fn estimate_k(x: &Tensor, p: &Params, cfg: &RunConfig, progress: &mut dyn Progress) -> Result<(usize, Value)> {
        crate::cluster::estimate_k(x, &p.k_estimate(), &cfg.cluster, cfg.seed, progress)
    }

    #[test]
    fn k_is_found_on_separated_groups_by_every_rule() {
        let cfg = RunConfig::from_json(&json!({"method": NAME, "device": "cpu", "threads": 1})).unwrap();
        for k in [2, 4, 7, 11] {
            let x = groups(k, k);
            for rule in [KRule::Silhouette, KRule::Leiden, KRule::Plateau] {
                let p = Params { k_rule: rule, ..Params::default() };
                let (found, info) = estimate_k(&x, &p, &cfg, &mut crate::progress::Silent).unwrap();
                assert_eq!(found as i64, k, "{rule:?}: {info}");
                if rule == KRule::Silhouette {
                    // a score for every candidate k
                    assert_eq!(info["silhouette_by_k"].as_object().unwrap().len(), p.k_max - p.k_min + 1);
                }
            }
        }
        // fewer cells than the scan's sample: every cell is used, and k stays below the cells
        let small = groups(3, 1).narrow(0, 0, 100);
        let p = Params { k_rule: KRule::Silhouette, k_scan_cells: 50, ..Params::default() };
        let (found, info) = estimate_k(&small, &p, &cfg, &mut crate::progress::Silent).unwrap();
        assert_eq!((found, info["cells"].as_u64()), (3, Some(50)), "{info}");
    }
}
