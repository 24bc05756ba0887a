//! Harmony (Korsunsky et al. 2019, Nature Methods 16:1289), with the formulas and
//! defaults of the R package `harmony` >= 1.0 that harmonypy 2 follows: cells on the unit sphere are
//! soft-clustered with a penalty on clusters that hold one batch more than its share
//! (the diversity penalty, `theta`), then each cluster's batch effect is estimated by
//! ridge regression on the batches and removed from the original embedding in proportion
//! to each cell's membership; the two steps alternate until the objective settles.
//! Checked against harmonypy on tests/fixtures/harmony.json (scripts/make_fixtures.py).
//!
//! Randomness (the initial K-means and the order in which blocks of cells update their
//! memberships) comes from the seed's streams, so the result is deterministic for a seed,
//! device and thread count; it matches harmonypy's up to those draws.

use crate::error::{Error, Result};
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

/// Harmony's options, with the defaults of harmonypy and the R package.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HarmonyConfig {
    /// Diversity penalty: higher mixes batches more within each cluster.
    pub theta: f64,
    /// Ridge penalty of the per-cluster batch effects; None: estimated per cluster as
    /// `alpha` times each batch's expected cells in it.
    pub lambda: Option<f64>,
    /// The factor of the estimated ridge penalty.
    pub alpha: f64,
    /// Width of the soft clustering's kernel (on the sphere's squared distance).
    pub sigma: f64,
    /// Soft clusters; None: min(round(cells / 30), 100).
    pub n_clusters: Option<usize>,
    /// Fraction of the cells that update their memberships together.
    pub block_size: f64,
    /// Rounds of clustering and correction.
    pub max_iter: usize,
    /// Clustering iterations per round.
    pub max_iter_kmeans: usize,
    /// Relative change of the clustering objective (over a window of 3) that stops a round's clustering.
    pub epsilon_cluster: f64,
    /// Relative change of the objective between rounds that stops Harmony.
    pub epsilon_harmony: f64,
}

impl Default for HarmonyConfig {
    fn default() -> Self {
        HarmonyConfig {
            theta: 2.0,
            lambda: None,
            alpha: 0.2,
            sigma: 0.1,
            n_clusters: None,
            block_size: 0.05,
            max_iter: 10,
            max_iter_kmeans: 4,
            epsilon_cluster: 1e-3,
            epsilon_harmony: 1e-2,
        }
    }
}

impl HarmonyConfig {
    pub fn validate(&self) -> Result<()> {
        let f = |n: &str| format!("harmony.{n}");
        for (name, v) in [("theta", self.theta), ("lambda", self.lambda.unwrap_or(0.0)), ("alpha", self.alpha)] {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(Error::config(&f(name), v, "must be >= 0"));
            }
        }
        for (name, v) in [("sigma", self.sigma), ("epsilon_cluster", self.epsilon_cluster), ("epsilon_harmony", self.epsilon_harmony)] {
            if !(v > 0.0 && v.is_finite()) {
                return Err(Error::config(&f(name), v, "must be > 0"));
            }
        }
        if !(self.block_size > 0.0 && self.block_size <= 1.0) {
            return Err(Error::config(&f("block_size"), self.block_size, "must be in (0, 1]"));
        }
        if self.n_clusters == Some(0) {
            return Err(Error::config(&f("n_clusters"), 0, "must be >= 1"));
        }
        if self.max_iter == 0 || self.max_iter_kmeans == 0 {
            let (n, v) = if self.max_iter == 0 { ("max_iter", 0) } else { ("max_iter_kmeans", 0) };
            return Err(Error::config(&f(n), v, "must be >= 1"));
        }
        Ok(())
    }
}

/// A corrected embedding and how Harmony got there.
#[derive(Debug, Clone)]
pub struct Harmonized {
    /// cells x dims, row-major, in the input's order.
    pub embedding: Vec<f32>,
    pub n_clusters: usize,
    /// Rounds of clustering and correction run.
    pub iterations: usize,
    pub converged: bool,
    /// The objective after the initial clustering and after each round.
    pub objective: Vec<f64>,
}

/// Seed stream of Harmony's draws.
const STREAM: u64 = 0x4841_524D;

/// Harmony on `x` (cells x `dims`, row-major) with `batch[i]` the batch of cell i
/// (codes 0..B, every code used, at least two batches).
pub fn harmony(x: &[f32], dims: usize, batch: &[usize], cfg: &HarmonyConfig, seed: u64, device: Device) -> Result<Harmonized> {
    cfg.validate()?;
    let n = batch.len();
    if dims == 0 || x.len() != n * dims {
        return Err(Error::data(format!("harmony: {} values for {n} cells x {dims} dimensions", x.len())));
    }
    let n_batches = batch.iter().max().map_or(0, |&b| b + 1);
    let mut sizes = vec![0usize; n_batches];
    for &b in batch {
        sizes[b] += 1;
    }
    if let Some(b) = sizes.iter().position(|&s| s == 0) {
        return Err(Error::data(format!("harmony: batch code {b} has no cells (codes must be 0..{n_batches}, each used)")));
    }
    if n_batches < 2 {
        return Err(Error::config("batch", n_batches, "Harmony needs at least two batches"));
    }
    if x.iter().any(|v| !v.is_finite()) {
        return Err(Error::data("harmony: the embedding has non-finite values"));
    }
    let k = cfg.n_clusters.unwrap_or_else(|| ((n as f64 / 30.0).round() as usize).clamp(1, 100));
    if k > n {
        return Err(Error::config("harmony.n_clusters", k, format!("more clusters than cells ({n})")));
    }
    tch::no_grad(|| run(x, dims, batch, n_batches, &sizes, k, cfg, seed, device))
}

#[allow(clippy::too_many_arguments)]
fn run(
    x: &[f32],
    dims: usize,
    batch: &[usize],
    n_batches: usize,
    sizes: &[usize],
    k: usize,
    cfg: &HarmonyConfig,
    seed: u64,
    device: Device,
) -> Result<Harmonized> {
    let n = batch.len();
    let f = (Kind::Float, device);
    // dims x cells, as the algorithm is written
    let z = Tensor::from_slice(x).to_device(device).view([n as i64, dims as i64]).transpose(0, 1).contiguous();
    let codes = Tensor::from_slice(&batch.iter().map(|&b| b as i64).collect::<Vec<_>>()).to_device(device);
    let phi = codes.one_hot(n_batches as i64).to_kind(Kind::Float).transpose(0, 1).contiguous(); // B x N
    let pr_b = Tensor::from_slice(&sizes.iter().map(|&s| s as f32 / n as f32).collect::<Vec<_>>()).to_device(device);
    let theta = Tensor::full([1, n_batches as i64], cfg.theta, f);
    // the intercept is not penalised
    let fixed_lamb = cfg.lambda.map(|l| {
        let mut v = vec![l; n_batches + 1];
        v[0] = 0.0;
        Tensor::from_slice(&v).to_kind(Kind::Float).to_device(device)
    });
    let phi_moe = Tensor::cat(&[Tensor::ones([1, n as i64], f), phi.shallow_clone()], 0); // (B+1) x N
    let sigma = cfg.sigma;

    let mut h =
        State { z_cos: unit_columns(&z), r: Tensor::zeros([k as i64, n as i64], f), o: Tensor::zeros([1], f), e: Tensor::zeros([1], f) };
    // initial centroids: K-means on the cells on the sphere
    let xs = h.z_cos.transpose(0, 1).contiguous();
    let km = crate::cluster::kmeans(
        &xs,
        &crate::cluster::KMeansParams { k, n_init: 1, max_iter: 25, tol: 1e-4, seed: crate::seed::mix_seed(seed, STREAM) },
    )?;
    let mut y = unit_columns(&Tensor::from_slice(&km.centroids).to_device(device).view([k as i64, dims as i64]).transpose(0, 1));
    let mut dist = y.transpose(0, 1).matmul(&h.z_cos) * -2.0 + 2.0;
    h.r = (dist.shallow_clone() * (-1.0 / sigma)).exp();
    h.r = &h.r / h.r.sum_dim_intlist(0, true, Kind::Float);
    h.e = h.r.sum_dim_intlist(1, false, Kind::Float).outer(&pr_b);
    h.o = h.r.matmul(&phi.transpose(0, 1));
    let mut obj_kmeans = vec![objective(&h, &dist, sigma, &theta, n)];
    let mut obj_harmony = vec![obj_kmeans[0]];

    let mut rng = crate::seed::rng_for(seed, STREAM + 1);
    let mut z_corr = z.shallow_clone();
    let (mut iterations, mut converged) = (0, false);
    const WINDOW: usize = 3;
    for _ in 0..cfg.max_iter {
        iterations += 1;
        // clustering
        for i in 0..cfg.max_iter_kmeans {
            y = unit_columns(&h.z_cos.matmul(&h.r.transpose(0, 1)));
            dist = y.transpose(0, 1).matmul(&h.z_cos) * -2.0 + 2.0;
            update_r(&mut h, &dist, sigma, &theta, &phi, &pr_b, cfg.block_size, &mut rng);
            obj_kmeans.push(objective(&h, &dist, sigma, &theta, n));
            if i > WINDOW {
                let m = obj_kmeans.len();
                let old: f64 = obj_kmeans[m - WINDOW - 1..m - 1].iter().sum();
                let new: f64 = obj_kmeans[m - WINDOW..].iter().sum();
                if (old - new).abs() / old.abs() < cfg.epsilon_cluster {
                    break;
                }
            }
        }
        obj_harmony.push(obj_kmeans[obj_kmeans.len() - 1]);
        // correction: per cluster, ridge regression of the cells (weighted by membership)
        // on their batches; the batch terms (not the intercept) are removed. All clusters
        // at once: for each column b of [intercept, batches], R ∘ phi_b (K x N).
        let weighted = |b: i64| &h.r * phi_moe.get(b).unsqueeze(0);
        let zt = z.transpose(0, 1);
        let (mut covs, mut sums) = (Vec::new(), Vec::new());
        for b in 0..=n_batches as i64 {
            let rb = weighted(b);
            covs.push(rb.matmul(&phi_moe.transpose(0, 1))); // K x (B+1): row b of each cluster's covariance
            sums.push(rb.matmul(&zt)); // K x dims
        }
        let lamb = match &fixed_lamb {
            Some(l) => l.unsqueeze(0).expand([k as i64, n_batches as i64 + 1], false).contiguous(),
            None => Tensor::cat(&[Tensor::zeros([k as i64, 1], f), &h.e * cfg.alpha], 1),
        };
        let cov = Tensor::stack(&covs, 1) + lamb.diag_embed(0, -2, -1); // K x (B+1) x (B+1)
        let inv = cov.to_kind(Kind::Double).inverse().to_kind(Kind::Float);
        let w = inv.matmul(&Tensor::stack(&sums, 1)); // K x (B+1) x dims
        z_corr = z.copy();
        for b in 1..=n_batches as i64 {
            z_corr -= w.select(1, b).transpose(0, 1).matmul(&weighted(b));
        }
        h.z_cos = unit_columns(&z_corr);
        let m = obj_harmony.len();
        let (old, new) = (obj_harmony[m - 2], obj_harmony[m - 1]);
        if (old - new) / old.abs() < cfg.epsilon_harmony {
            converged = true;
            break;
        }
    }
    let out = z_corr.transpose(0, 1).contiguous().to_device(Device::Cpu);
    let embedding = Vec::<f32>::try_from(out.view([-1]))?;
    if embedding.iter().any(|v| !v.is_finite()) {
        return Err(Error::Numeric("Harmony's correction produced non-finite values".into()));
    }
    Ok(Harmonized { embedding, n_clusters: k, iterations, converged, objective: obj_harmony })
}

/// What the clustering carries between steps: the cells on the sphere, memberships
/// (K x N), observed (O) and expected (E) cells of each batch per cluster (K x B).
struct State {
    z_cos: Tensor,
    r: Tensor,
    o: Tensor,
    e: Tensor,
}

/// Columns scaled to unit length (a zero column stays zero).
fn unit_columns(t: &Tensor) -> Tensor {
    t / t.norm_scalaropt_dim(2, [0], true).clamp_min(1e-12)
}

/// Memberships updated in blocks of cells, in a random order: each block leaves O and E,
/// gets memberships from the kernel times the diversity penalty of the rest, and enters
/// them again.
#[allow(clippy::too_many_arguments)]
fn update_r(
    h: &mut State,
    dist: &Tensor,
    sigma: f64,
    theta: &Tensor,
    phi: &Tensor,
    pr_b: &Tensor,
    block_size: f64,
    rng: &mut rand_chacha::ChaCha8Rng,
) {
    let n = phi.size()[1] as usize;
    let scale = (dist * (-1.0 / sigma)).exp();
    let scale = &scale / scale.sum_dim_intlist(0, true, Kind::Float);
    let mut order: Vec<i64> = (0..n as i64).collect();
    order.shuffle(rng);
    let order = Tensor::from_slice(&order).to_device(phi.device());
    let r_perm = h.r.index_select(1, &order);
    let s_perm = scale.index_select(1, &order);
    let phi_perm = phi.index_select(1, &order);
    let n_blocks = (1.0 / block_size).ceil() as usize;
    let per_block = (n as f64 * block_size) as usize;
    for b in 0..n_blocks {
        let lo = b * per_block;
        let hi = if b == n_blocks - 1 { n } else { ((b + 1) * per_block).min(n) };
        if hi <= lo {
            continue;
        }
        let len = (hi - lo) as i64;
        let rb = r_perm.narrow(1, lo as i64, len);
        let sb = s_perm.narrow(1, lo as i64, len);
        let pb = phi_perm.narrow(1, lo as i64, len);
        h.e -= rb.sum_dim_intlist(1, false, Kind::Float).outer(pr_b);
        h.o -= rb.matmul(&pb.transpose(0, 1));
        let ratio = (&h.e / (&h.o + &h.e).clamp_min(1e-8)).clamp(1e-8, 1.0);
        let mut new = sb * ratio.pow(theta).matmul(&pb);
        new = &new / new.sum_dim_intlist(0, true, Kind::Float).clamp_min(1e-8);
        h.e += new.sum_dim_intlist(1, false, Kind::Float).outer(pr_b);
        h.o += new.matmul(&pb.transpose(0, 1));
        r_perm.narrow(1, lo as i64, len).copy_(&new);
    }
    h.r = h.r.index_copy(1, &order, &r_perm);
}

/// The clustering objective (normalised to 2000 cells): distance, entropy and the
/// diversity penalty (summed per batch through O, which holds R's sums over each batch).
fn objective(h: &State, dist: &Tensor, sigma: f64, theta: &Tensor, n: usize) -> f64 {
    let kmeans_error = (&h.r * dist).sum(Kind::Float).double_value(&[]);
    let entropy = (&h.r * h.r.clamp_min(1e-30).log()).sum(Kind::Float).double_value(&[]) * sigma;
    let (o, e) = (h.o.clamp_min(1e-8), h.e.clamp_min(1e-8));
    let penalty = ((&o + &e) / &e).log() * theta;
    let cross = (penalty * &h.o).sum(Kind::Double).double_value(&[]) * sigma;
    (kmeans_error + entropy + cross) * 2000.0 / n as f64
}
