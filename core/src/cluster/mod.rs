//! Clustering of embeddings: K-means, and Leiden/Louvain on a kNN graph (UMAP or SNN
//! weights). K-means and the kNN search run as tensor code on the embedding's device.

pub mod coassociation;
pub mod descent;
pub mod graph;
pub mod k_estimate;
pub mod kmeans;
pub mod leiden;
pub mod stability;

pub use graph::{knn_exact, knn_hnsw, knn_ivf, recall, snn, umap_connectivities, Graph, Knn, Metric};
pub use k_estimate::{estimate_k, run_estimating_k, KEstimate, KRule};
pub use kmeans::{kmeans, KMeansParams, KMeansResult};
pub use leiden::{communities, quality, CommunityParams, Quality};
pub use stability::{stability, StabilityConfig};

use crate::error::{Error, Result};
use crate::progress::Progress;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tch::Tensor;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    Kmeans,
    Leiden,
    Louvain,
    /// scMAE's rule: K-means below `auto_max_kmeans_cells` cells, Leiden (resolution
    /// searched to hit k) above.
    Auto,
    /// Evidence accumulation over `consensus_runs` single-start K-means runs: the kNN
    /// graph weighted by how often two cells share a cluster, cut by Leiden at the
    /// resolution that gives k clusters.
    Consensus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KnnMethod {
    /// Exact up to `knn_exact_max_cells` cells; above, the inverted file when one of its
    /// breadths reaches `knn_min_recall` on the sampled cells, else NN-descent.
    Auto,
    Exact,
    /// Inverted file (K-means lists) searched with matrix products on the device.
    Ivf,
    /// HNSW graph index on the CPU (instant-distance).
    Hnsw,
    /// NN-descent on the CPU, from the inverted file's graph at `descent_init_nprobe`.
    NnDescent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Weights {
    /// scanpy's `pp.neighbors` connectivities.
    Umap,
    /// Seurat's shared-nearest-neighbour Jaccard weights.
    Snn,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResolutionChoice {
    /// Search for k clusters when k is known, else use `resolution`.
    Auto,
    /// Always `resolution`.
    Fixed,
    /// Bisection on the resolution (in log scale, from 1.0, the graph built once) for
    /// exactly k clusters, at most `MAX_SEARCH_RUNS` Leiden runs; else the partition whose
    /// number of clusters was nearest to k.
    MatchK,
    /// scMAE's search: resolutions 2.49, 2.47, ..., 0.01; the first giving exactly k
    /// clusters, else the first with the smallest |#clusters − k| (up to 125 runs).
    Grid,
    /// The resolution in `resolutions` whose partition has the best silhouette.
    Silhouette,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    pub algorithm: Algorithm,
    /// Number of clusters; None = the number of ground-truth classes when labels are given
    /// (K-means needs it; graph clustering uses it to search the resolution).
    pub n_clusters: Option<usize>,
    pub n_init: usize,
    pub max_iter: usize,
    pub tol: f64,
    /// Neighbours per cell, the cell included (scanpy's n_neighbors).
    pub n_neighbors: usize,
    pub metric: Metric,
    pub knn: KnnMethod,
    /// `auto`: exact kNN up to this many cells, the inverted file above.
    pub knn_exact_max_cells: usize,
    /// Inverted-file lists (0 = one per 512 cells, at least √cells) and the lists nearest
    /// to each cell that it searches.
    pub ivf_nlist: usize,
    pub ivf_nprobe: usize,
    /// Lists the cells of one list search besides their own: those they take most
    /// often among their probes (0 = 3 x ivf_nprobe). Fixed, so the search stays linear.
    pub ivf_search: usize,
    /// Rounds of neighbour-of-neighbour refinement after the inverted file.
    pub knn_refine: usize,
    /// Cells on which the recall of an approximate kNN graph is measured against exact
    /// search, and reported (0 = not measured).
    pub knn_recall_cells: usize,
    /// Below this recall the approximate search is made twice as broad (IVF probes and
    /// lists searched, HNSW ef), at most `knn_max_retries` times, each logged; 0 = never.
    /// The inverted file knows each breadth's recall on the sampled cells beforehand and
    /// searches once; HNSW searches again. Each doubling doubles the search's cost, so
    /// `auto` allows one and then turns to NN-descent, whose cost does not grow with the
    /// breadth a cell type would need.
    pub knn_min_recall: f64,
    pub knn_max_retries: u32,
    /// HNSW search and construction breadth.
    pub hnsw_ef: usize,
    /// NN-descent: neighbours kept per cell while descending (0 = 2 x n_neighbors; the
    /// nearest n_neighbors are used), at most `descent_rounds` rounds, and the lists per
    /// cell of the inverted-file graph it starts from.
    pub descent_width: usize,
    pub descent_rounds: usize,
    pub descent_init_nprobe: usize,
    pub weights: Weights,
    /// SNN edges below this Jaccard index are removed (Seurat: 1/15).
    pub snn_prune: f64,
    pub quality: Quality,
    pub resolution: f64,
    pub resolution_choice: ResolutionChoice,
    /// Candidates for `silhouette`.
    pub resolutions: Vec<f64>,
    /// Leiden's outer iterations (0 = until the quality stops improving).
    pub max_iterations: usize,
    pub auto_max_kmeans_cells: usize,
    /// `consensus`: the K-means runs (one start each, seeds derived from the run's)
    /// whose co-association weights the graph.
    pub consensus_runs: usize,
    /// `consensus`: which partition is returned. `silhouette`: the graph consensus or the
    /// runs' lowest-inertia K-means partition, whichever has the higher mean silhouette
    /// on the embedding (on at most `consensus_silhouette_sample` cells); `graph`: always
    /// the graph consensus.
    pub consensus_pick: ConsensusPick,
    pub consensus_silhouette_sample: usize,
    /// How stable the partition is: the clustering run again on subsamples of the cells
    /// (`stability::stability`), reported with every run.
    pub stability: StabilityConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsensusPick {
    Silhouette,
    Graph,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        // K-means: scikit-learn's defaults (specs §0.3); graphs: scanpy's.
        ClusterConfig {
            algorithm: Algorithm::Kmeans,
            n_clusters: None,
            n_init: 10,
            max_iter: 300,
            tol: 1e-4,
            n_neighbors: 15,
            metric: Metric::Euclidean,
            knn: KnnMethod::Auto,
            knn_exact_max_cells: 20_000,
            ivf_nlist: 0,
            ivf_nprobe: 10,
            ivf_search: 0,
            knn_refine: 0,
            knn_recall_cells: 256,
            knn_min_recall: 0.95,
            knn_max_retries: 1,
            hnsw_ef: 32,
            descent_width: 0,
            descent_rounds: 20,
            descent_init_nprobe: 3,
            weights: Weights::Umap,
            snn_prune: 1.0 / 15.0,
            quality: Quality::Modularity,
            resolution: 1.0,
            resolution_choice: ResolutionChoice::Auto,
            resolutions: (1..=20).map(|i| i as f64 / 10.0).collect(),
            max_iterations: 0,
            auto_max_kmeans_cells: 10_000,
            consensus_runs: 20,
            consensus_pick: ConsensusPick::Silhouette,
            consensus_silhouette_sample: 5_000,
            stability: StabilityConfig::default(),
        }
    }
}

impl ClusterConfig {
    /// K-means with this config's restarts, iterations and tolerance.
    pub fn kmeans_params(&self, k: usize, seed: u64) -> KMeansParams {
        KMeansParams { k, n_init: self.n_init, max_iter: self.max_iter, tol: self.tol, seed }
    }

    /// This config with `options` set (`cluster.<field>` or `<field>`, as a door's flags
    /// name them); an unknown field or a value of the wrong type is an error naming the
    /// options given.
    pub fn with_options(&self, options: &[(&str, serde_json::Value)]) -> Result<ClusterConfig> {
        let mut v = serde_json::to_value(self).map_err(|e| Error::data(e.to_string()))?;
        for (k, x) in options {
            v[k.strip_prefix("cluster.").unwrap_or(k)] = x.clone();
        }
        let shown: Vec<String> = options.iter().map(|(k, x)| format!("{k}={x}")).collect();
        let c: ClusterConfig = serde_json::from_value(v).map_err(|e| Error::config("cluster", shown.join(" "), e.to_string()))?;
        c.validate()?;
        Ok(c)
    }

    pub fn validate(&self) -> Result<()> {
        self.stability.validate()?;
        let f = |n: &str| format!("cluster.{n}");
        if self.n_clusters == Some(0) {
            return Err(Error::config(&f("n_clusters"), 0, "must be >= 1"));
        }
        if self.n_init == 0 {
            return Err(Error::config(&f("n_init"), 0, "must be >= 1"));
        }
        if self.max_iter == 0 {
            return Err(Error::config(&f("max_iter"), 0, "must be >= 1"));
        }
        if !(self.tol >= 0.0 && self.tol.is_finite()) {
            return Err(Error::config(&f("tol"), self.tol, "must be >= 0"));
        }
        if !(0.0..=1.0).contains(&self.knn_min_recall) {
            return Err(Error::config(&f("knn_min_recall"), self.knn_min_recall, "must be in [0, 1]"));
        }
        if self.ivf_nprobe == 0 {
            return Err(Error::config(&f("ivf_nprobe"), 0, "must be >= 1"));
        }
        if self.knn_refine > 10 {
            return Err(Error::config(
                &f("knn_refine"),
                self.knn_refine,
                "must be at most 10 (each round rarely changes anything after the second)",
            ));
        }
        if self.consensus_runs < 2 {
            return Err(Error::config(&f("consensus_runs"), self.consensus_runs, "must be >= 2"));
        }
        if self.descent_rounds == 0 {
            return Err(Error::config(&f("descent_rounds"), 0, "must be >= 1"));
        }
        if self.descent_init_nprobe == 0 {
            return Err(Error::config(&f("descent_init_nprobe"), 0, "must be >= 1"));
        }
        if self.hnsw_ef < 8 {
            return Err(Error::config(&f("hnsw_ef"), self.hnsw_ef, "must be >= 8"));
        }
        if self.n_neighbors < 2 {
            return Err(Error::config(&f("n_neighbors"), self.n_neighbors, "must be >= 2 (it counts the cell itself)"));
        }
        if !(self.resolution > 0.0 && self.resolution.is_finite()) {
            return Err(Error::config(&f("resolution"), self.resolution, "must be > 0"));
        }
        if !(0.0..1.0).contains(&self.snn_prune) {
            return Err(Error::config(&f("snn_prune"), self.snn_prune, "must be in [0, 1)"));
        }
        if self.resolution_choice == ResolutionChoice::Silhouette
            && (self.resolutions.is_empty() || self.resolutions.iter().any(|r| !(*r > 0.0)))
        {
            return Err(Error::config(
                &f("resolutions"),
                format!("{:?}", self.resolutions),
                "silhouette needs a non-empty list of resolutions > 0",
            ));
        }
        Ok(())
    }
}

/// Labels plus what was decided on the way (algorithm, resolution, quality, ...).
#[derive(Debug)]
pub struct Clustering {
    pub labels: Vec<i64>,
    pub info: Value,
}

/// Cluster the rows of `x` as the config says; `k` is the wanted number of clusters when known.
pub fn run(x: &Tensor, cfg: &ClusterConfig, k: Option<usize>, seed: u64, progress: &mut dyn Progress) -> Result<Clustering> {
    cfg.validate()?;
    let n = x.size()[0] as usize;
    if let Some(k) = k {
        if k > n {
            return Err(Error::config("cluster.n_clusters", k, format!("more clusters than cells ({n})")));
        }
    }
    let (algo, choice, n_neighbors) = match cfg.algorithm {
        Algorithm::Auto if n < cfg.auto_max_kmeans_cells => (Algorithm::Kmeans, cfg.resolution_choice, cfg.n_neighbors),
        // scMAE searches on a k = 10 graph
        Algorithm::Auto => (Algorithm::Leiden, ResolutionChoice::MatchK, 10),
        a => (a, cfg.resolution_choice, cfg.n_neighbors),
    };
    if algo == Algorithm::Kmeans {
        let k = k.ok_or_else(|| {
            Error::config(
                "cluster.n_clusters",
                "null",
                "K-means needs the number of clusters (--n-clusters), or use cluster.algorithm = leiden",
            )
        })?;
        progress.message(&format!("K-means, k = {k}, {} starts", cfg.n_init));
        let km = kmeans(x, &cfg.kmeans_params(k, seed))?;
        let found = km.labels.iter().collect::<std::collections::HashSet<_>>().len();
        if found < k {
            // Only possible when the points do not allow k clusters; say why.
            let (u, _, _) = x.unique_dim(0, false, false, false);
            let distinct = u.size()[0];
            return Err(Error::data(format!(
                "the embedding of {n} cells has only {distinct} distinct points, too few for the {k} clusters asked for (too few genes, or cells with identical profiles?); ask for fewer clusters"
            )));
        }
        return Ok(Clustering {
            labels: km.labels,
            info: json!({"algorithm": "kmeans", "k": k, "inertia": km.inertia, "n_iter": km.n_iter}),
        });
    }
    if algo == Algorithm::Consensus {
        let k = k.ok_or_else(|| {
            Error::config("cluster.n_clusters", "null", "consensus clustering needs the number of clusters (--n-clusters)")
        })?;
        return consensus_of_kmeans(x, cfg, k, seed, progress);
    }
    let (g, knn_info) = build_graph(x, cfg, n_neighbors, seed, progress)?;
    let (_, n_comp) = g.components();
    let choice = match choice {
        ResolutionChoice::Auto if k.is_some() => ResolutionChoice::MatchK,
        ResolutionChoice::Auto => ResolutionChoice::Fixed,
        c => c,
    };
    if let (Some(k), ResolutionChoice::MatchK) = (k, choice) {
        if n_comp > k {
            return Err(Error::data(format!(
                "the {n_neighbors}-nearest-neighbour graph falls apart into {n_comp} disconnected pieces, more than the {k} clusters asked for; raise cluster.n_neighbors or ask for more clusters"
            )));
        }
    }
    let params = |resolution: f64| CommunityParams {
        quality: cfg.quality,
        resolution,
        refine: algo == Algorithm::Leiden,
        theta: 0.01,
        max_iterations: cfg.max_iterations,
        seed,
    };
    let name = if algo == Algorithm::Leiden { "leiden" } else { "louvain" };
    progress.message(&format!(
        "{name} on a {n_neighbors}-NN graph ({} edges, {n_comp} connected components), resolution {:?}",
        g.n_edges() / 2,
        choice
    ));
    let (labels, res, q, tried) = match choice {
        ResolutionChoice::MatchK => {
            let k =
                k.ok_or_else(|| Error::config("cluster.resolution_choice", "match_k", "needs the number of clusters (--n-clusters)"))?;
            search_resolution(k, MAX_SEARCH_RUNS, |r, attempt| {
                communities(&g, &CommunityParams { seed: seed.wrapping_add(attempt), ..params(r) })
            })
        }
        ResolutionChoice::Grid => {
            let k = k.ok_or_else(|| Error::config("cluster.resolution_choice", "grid", "needs the number of clusters (--n-clusters)"))?;
            let mut best = NearestK::new(k);
            for i in 0..125 {
                let r = 2.49 - 0.02 * i as f64;
                let (l, q) = communities(&g, &params(r));
                if best.offer(l, r, q) == 0 {
                    break;
                }
            }
            best.result()
        }
        ResolutionChoice::Silhouette => {
            let emb = Vec::<f32>::try_from(&x.to_kind(tch::Kind::Float).to_device(tch::Device::Cpu).contiguous().view([-1]))?;
            let d = x.size()[1] as usize;
            let mut best: Option<(Vec<usize>, f64, f64, f64)> = None;
            for &r in &cfg.resolutions {
                let (l, q) = communities(&g, &params(r));
                let nc = l.iter().max().map_or(0, |m| m + 1);
                let s = if nc >= 2 && nc < n { crate::metrics::silhouette(&emb, d, &l)? } else { f64::NEG_INFINITY };
                if best.as_ref().is_none_or(|b| s > b.3) {
                    best = Some((l, r, q, s));
                }
            }
            let (l, r, q, _) = best.unwrap();
            (l, r, q, cfg.resolutions.len())
        }
        _ => {
            let (l, q) = communities(&g, &params(cfg.resolution));
            (l, cfg.resolution, q, 1)
        }
    };
    let nc = labels.iter().max().map_or(0, |m| m + 1);
    Ok(Clustering {
        labels: labels.into_iter().map(|l| l as i64).collect(),
        info: json!({
            "algorithm": name, "n_neighbors": n_neighbors, "weights": cfg.weights, "quality": cfg.quality,
            "resolution": res, "resolutions_tried": tried, "quality_value": q, "n_clusters": nc,
            "graph_components": n_comp, "knn": knn_info,
        }),
    })
}

/// `consensus`: `cfg.consensus_runs` K-means runs of one start each, their co-association
/// on the kNN graph, and Leiden on it with the resolution searched to hit k; with
/// `consensus_pick` = silhouette, that partition or the runs' lowest-inertia one (K-means
/// with as many starts as runs), whichever has the higher silhouette.
fn consensus_of_kmeans(x: &Tensor, cfg: &ClusterConfig, k: usize, seed: u64, progress: &mut dyn Progress) -> Result<Clustering> {
    let runs = cfg.consensus_runs;
    progress.message(&format!("consensus of {runs} K-means runs (k = {k}, one start each) on a {}-NN graph", cfg.n_neighbors));
    let mut parts = Vec::with_capacity(runs);
    let mut inertias = Vec::with_capacity(runs);
    for r in 0..runs {
        let p = KMeansParams { k, n_init: 1, max_iter: cfg.max_iter, tol: cfg.tol, seed: crate::seed::mix_seed(seed, r as u64) };
        let km = kmeans(x, &p)?;
        inertias.push(km.inertia);
        parts.push(km.labels.iter().map(|&l| l as usize).collect::<Vec<usize>>());
    }
    let (g, knn_info) = build_graph(x, cfg, cfg.n_neighbors, seed, progress)?;
    let leiden =
        CommunityParams { quality: cfg.quality, resolution: 1.0, refine: true, theta: 0.01, max_iterations: cfg.max_iterations, seed };
    let (graph_labels, res, q, tried) = coassociation::combine(&g, &parts, k, &leiden);
    // How well each run agrees with the consensus (ARI): a label-free stability measure.
    let agreement = parts.iter().map(|p| crate::metrics::adjusted_rand_index(p, &graph_labels)).collect::<Result<Vec<f64>>>()?;
    let best = (0..runs).min_by(|&a, &b| inertias[a].total_cmp(&inertias[b])).unwrap_or(0);
    let (labels, picked, silhouettes) = match cfg.consensus_pick {
        ConsensusPick::Graph => (graph_labels, "graph", Value::Null),
        ConsensusPick::Silhouette => {
            // The graph cut wins where it separates what K-means merges; where one type
            // dominates, modularity at k splits it and K-means' compact clusters score higher.
            let kmeans_labels = coassociation::canonical(&parts[best]);
            let d = x.size()[1] as usize;
            let emb = Vec::<f32>::try_from(&x.to_kind(tch::Kind::Float).to_device(tch::Device::Cpu).contiguous().view([-1]))?;
            let (got, cells) =
                crate::metrics::sampled_silhouettes(&emb, d, &[&graph_labels, &kmeans_labels], cfg.consensus_silhouette_sample)?;
            let (sg, sk) = (got[0].unwrap_or(0.0), got[1].unwrap_or(0.0));
            let sil = json!({"graph": sg, "kmeans": sk, "cells": cells});
            if sk > sg {
                (kmeans_labels, "kmeans", sil)
            } else {
                (graph_labels, "graph", sil)
            }
        }
    };
    progress.message(&format!("consensus: the {picked} partition"));
    let nc = labels.iter().max().map_or(0, |m| m + 1);
    Ok(Clustering {
        labels: labels.into_iter().map(|l| l as i64).collect(),
        info: json!({
            "algorithm": "consensus", "k": k, "runs": runs, "n_neighbors": cfg.n_neighbors, "resolution": res,
            "resolutions_tried": tried, "quality_value": q, "n_clusters": nc, "knn": knn_info,
            "run_inertia": inertias, "run_agreement_ari": agreement, "picked": picked, "pick": cfg.consensus_pick,
            "silhouettes": silhouettes,
        }),
    })
}

/// Most Leiden runs of the `match_k` resolution search.
pub const MAX_SEARCH_RUNS: usize = 12;

/// The resolution whose partition has `k` clusters, by bisection in log scale: from 1.0,
/// doubled or halved until k is bracketed, then the geometric mean of the bracket, at
/// most `max_runs` runs of `cluster(resolution, attempt) -> (labels, quality)`. The number
/// of clusters grows with the resolution but not strictly, and near a jump (10 to 12
/// clusters, say) it depends on Leiden's seed: once the bracket is narrower than 2 %, each
/// further run at its centre takes the next `attempt` (a seed offset). The partition whose
/// count was nearest to k is kept (the first of equals). Returns (labels, resolution,
/// quality, runs).
pub fn search_resolution(
    k: usize,
    max_runs: usize,
    mut cluster: impl FnMut(f64, u64) -> (Vec<usize>, f64),
) -> (Vec<usize>, f64, f64, usize) {
    let mut best = NearestK::new(k);
    let (mut lo, mut hi): (Option<f64>, Option<f64>) = (None, None);
    let (mut r, mut attempt) = (1.0f64, 0u64);
    while best.runs < max_runs.max(1) {
        let (l, q) = cluster(r, attempt);
        let nc = l.iter().max().map_or(0, |m| m + 1);
        if best.offer(l, r, q) == 0 {
            break;
        }
        if nc < k {
            lo = Some(lo.map_or(r, |a: f64| a.max(r)));
        } else {
            hi = Some(hi.map_or(r, |b: f64| b.min(r)));
        }
        r = match (lo, hi) {
            (Some(a), Some(b)) => {
                if b / a < 1.02 {
                    attempt += 1;
                }
                (a * b).sqrt()
            }
            (Some(a), None) => a * 2.0,
            (None, Some(b)) => b / 2.0,
            (None, None) => break, // one bound is always set above
        };
        if !(1e-4..=1e4).contains(&r) {
            break;
        }
    }
    best.result()
}

/// The partition of a resolution search whose number of clusters is nearest to k (the
/// first of equals), and how many were tried.
struct NearestK {
    k: usize,
    best: Option<(Vec<usize>, f64, f64, usize)>,
    runs: usize,
}

impl NearestK {
    fn new(k: usize) -> Self {
        NearestK { k, best: None, runs: 0 }
    }

    /// Consider the partition of resolution `r` (quality `q`); returns |#clusters - k|.
    fn offer(&mut self, labels: Vec<usize>, r: f64, q: f64) -> usize {
        self.runs += 1;
        let diff = labels.iter().max().map_or(0, |m| m + 1).abs_diff(self.k);
        if self.best.as_ref().is_none_or(|b| diff < b.3) {
            self.best = Some((labels, r, q, diff));
        }
        diff
    }

    /// (labels, resolution, quality, runs).
    fn result(self) -> (Vec<usize>, f64, f64, usize) {
        match self.best {
            Some((l, r, q, _)) => (l, r, q, self.runs),
            None => (Vec::new(), 1.0, 0.0, 0),
        }
    }
}

/// The kNN graph of `x` with the configured weights, and how its neighbours were found
/// (method; for an approximate search, its recall measured on `knn_recall_cells` cells).
pub fn build_graph(x: &Tensor, cfg: &ClusterConfig, n_neighbors: usize, seed: u64, progress: &mut dyn Progress) -> Result<(Graph, Value)> {
    let n = x.size()[0] as usize;
    let method = match cfg.knn {
        KnnMethod::Auto if n > cfg.knn_exact_max_cells => KnnMethod::Ivf,
        KnnMethod::Auto => KnnMethod::Exact,
        m => m,
    };
    let floor = cfg.knn_recall_cells > 0 && cfg.knn_min_recall > 0.0;
    let top = if floor { 1usize << cfg.knn_max_retries } else { 1 };
    let cells = cfg.knn_recall_cells.min(n);
    // The sampled cells' exact neighbours, for every recall an approximate search reports.
    let sample = if method != KnnMethod::Exact && cfg.knn_recall_cells > 0 {
        Some(graph::exact_neighbours_of_sample(x, n_neighbors, cfg.metric, cfg.knn_recall_cells, seed)?)
    } else {
        None
    };
    let (knn, mut info, recall) = match method {
        KnnMethod::Ivf | KnnMethod::NnDescent => {
            // The recall of each breadth is known on the sampled cells before the search
            // (their lists' candidates searched for them alone): search once, at the
            // narrowest breadth that reaches the floor.
            let probes = if method == KnnMethod::Ivf { cfg.ivf_nprobe * top } else { cfg.descent_init_nprobe };
            let mut index = graph::IvfIndex::build(x, n_neighbors, cfg.metric, cfg.ivf_nlist, probes, seed)?;
            let mut scale = 1;
            let mut r = None;
            let mut descend = method == KnnMethod::NnDescent;
            if let (Some((pick, exact)), false) = (&sample, descend) {
                loop {
                    let rr = index.recall_on(pick, exact, cfg.ivf_nprobe * scale, cfg.ivf_search * scale)?;
                    r = Some(rr);
                    if rr >= cfg.knn_min_recall || !floor {
                        break;
                    }
                    if scale >= top {
                        // `auto`: no breadth of the inverted file is enough here
                        descend = cfg.knn == KnnMethod::Auto;
                        if descend {
                            progress.message(&format!("kNN recall of the inverted file would be {rr:.3} on {cells} cells even with {} nearest lists per cell: using NN-descent", cfg.ivf_nprobe * scale));
                        }
                        break;
                    }
                    progress.message(&format!("kNN recall with {} nearest lists per cell would be {rr:.3} on {cells} cells, below cluster.knn_min_recall {}: searching {}x as broadly", cfg.ivf_nprobe * scale, cfg.knn_min_recall, scale * 2));
                    scale *= 2;
                }
            }
            if descend {
                let width = if cfg.descent_width == 0 { 2 * n_neighbors } else { cfg.descent_width.max(n_neighbors) }.min(n - 1);
                let nprobe = cfg.descent_init_nprobe;
                progress.message(&format!("approximate kNN of {n} cells: NN-descent ({width} neighbours per cell, at most {} rounds) from the inverted file's graph ({} lists, {nprobe} nearest per cell)", cfg.descent_rounds, index.n_lists()));
                index.set_k((width + 1).min(n - 1))?;
                let init = index.search(nprobe, 0)?;
                drop(index); // its probes (cells x lists) are not needed by the descent
                let p = descent::DescentParams {
                    max_rounds: cfg.descent_rounds,
                    max_candidates: width,
                    delta: descent::DELTA,
                    width,
                    seed,
                    threads: tch::get_num_threads().max(1) as usize,
                };
                let (knn, rep) = descent::knn_descent(x, n_neighbors, init, cfg.metric, &p)?;
                progress.message(&format!("NN-descent: {} rounds, neighbours improved per round {:?}", rep.updates.len(), rep.updates));
                if let Some((pick, exact)) = &sample {
                    r = Some(graph::recall_on_sample(&knn, pick, exact));
                }
                (knn, json!({"method": "nn_descent", "width": width, "rounds": rep.updates.len(), "init_nprobe": nprobe}), r)
            } else {
                let nprobe = cfg.ivf_nprobe * scale;
                progress.message(&format!(
                    "approximate kNN of {n} cells: inverted file ({} lists, {nprobe} nearest per cell), {} refinement round(s)",
                    index.n_lists(),
                    cfg.knn_refine
                ));
                let mut knn = index.search(nprobe, cfg.ivf_search * scale)?;
                index.refine(&mut knn, cfg.knn_refine)?;
                if let (Some((pick, exact)), true) = (&sample, cfg.knn_refine > 0) {
                    r = Some(graph::recall_on_sample(&knn, pick, exact));
                }
                let mut info = json!({"method": "ivf", "nprobe": nprobe, "refine": cfg.knn_refine});
                if scale > 1 {
                    info["breadth_scale"] = json!(scale);
                }
                (knn, info, r)
            }
        }
        KnnMethod::Hnsw => {
            let hnsw = |ef: usize, progress: &mut dyn Progress| {
                progress.message(&format!("approximate kNN of {n} cells (HNSW, ef {ef})"));
                knn_hnsw(x, n_neighbors, cfg.metric, ef, seed, tch::get_num_threads().max(1) as usize)
            };
            let mut scale = 1;
            let mut knn = hnsw(cfg.hnsw_ef, progress)?;
            let mut r = None;
            if let Some((pick, exact)) = &sample {
                let mut rr = graph::recall_on_sample(&knn, pick, exact);
                // Below the floor, search again twice as broadly (a few times at most).
                while floor && rr < cfg.knn_min_recall && scale < top {
                    scale *= 2;
                    progress.message(&format!(
                        "kNN recall {rr:.3} is below cluster.knn_min_recall {}: searching again {scale}x as broadly",
                        cfg.knn_min_recall
                    ));
                    knn = hnsw(cfg.hnsw_ef * scale, progress)?;
                    rr = graph::recall_on_sample(&knn, pick, exact);
                }
                r = Some(rr);
            }
            let mut info = json!({"method": "hnsw", "ef": cfg.hnsw_ef * scale});
            if scale > 1 {
                info["breadth_scale"] = json!(scale);
            }
            (knn, info, r)
        }
        _ => (knn_exact(x, n_neighbors, cfg.metric, 512)?, json!({"method": "exact"}), None),
    };
    if let Some(r) = recall {
        progress.message(&format!("kNN recall against exact search, measured on {cells} cells: {r:.3}"));
        if r < 0.9 {
            let raise = if info["method"] == "nn_descent" { "cluster.descent_width" } else { "cluster.ivf_nprobe or cluster.knn_refine" };
            progress.message(&format!(
                "warning: the approximate kNN graph misses many neighbours; raise {raise}, or use cluster.knn = \"exact\""
            ));
        }
        info["recall"] = json!(r);
        info["recall_cells"] = json!(cells);
    }
    info["n_neighbors"] = json!(n_neighbors);
    let g = match cfg.weights {
        Weights::Umap => umap_connectivities(&knn),
        Weights::Snn => snn(&knn, cfg.snn_prune),
    };
    Ok((g, info))
}
