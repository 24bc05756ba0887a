//! K-means on libtorch tensors: greedy k-means++ initialisation (scikit-learn's, with
//! 2 + ln k local trials), Lloyd iterations, relative tolerance (tol x mean feature
//! variance), n_init restarts keeping the lowest inertia. Seeded and deterministic for
//! a given device and thread count.

use crate::error::{Error, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Kind, Tensor};

#[derive(Debug, Clone, Copy)]
pub struct KMeansParams {
    pub k: usize,
    pub n_init: usize,
    pub max_iter: usize,
    pub tol: f64,
    pub seed: u64,
}

#[derive(Debug)]
pub struct KMeansResult {
    pub labels: Vec<i64>,
    /// k x d, row-major
    pub centroids: Vec<f32>,
    pub inertia: f64,
    pub n_iter: usize,
}

fn sq_dists(x: &Tensor, x_sq: &Tensor, c: &Tensor) -> Tensor {
    // ||x||^2 - 2 x c^T + ||c||^2, clamped at 0
    let c_sq = c.square().sum_dim_intlist(1, false, Kind::Float);
    let t: Tensor = x_sq.unsqueeze(1) - x.matmul(&c.transpose(0, 1)) * 2.0 + c_sq.unsqueeze(0);
    t.clamp_min(0.0)
}

fn weighted_pick(rng: &mut ChaCha8Rng, cum: &[f64]) -> usize {
    let total = *cum.last().unwrap();
    let r = rng.random::<f64>() * total;
    cum.partition_point(|&c| c <= r).min(cum.len() - 1)
}

fn kmeans_pp(x: &Tensor, x_sq: &Tensor, k: usize, rng: &mut ChaCha8Rng) -> Result<Tensor> {
    let n = x.size()[0] as usize;
    let trials = 2 + (k as f64).ln().floor() as usize;
    let first = rng.random_range(0..n) as i64;
    let mut centers = vec![x.get(first)];
    let mut closest = sq_dists(x, x_sq, &x.get(first).unsqueeze(0)).squeeze_dim(1);
    for _ in 1..k {
        let cd: Vec<f64> = Vec::<f32>::try_from(&closest.to_kind(Kind::Float).to_device(tch::Device::Cpu))?
            .iter().map(|&v| v as f64).collect();
        let mut cum = Vec::with_capacity(n);
        let mut s = 0.0;
        for v in &cd {
            s += v;
            cum.push(s);
        }
        let cands: Vec<i64> = if s <= 0.0 {
            (0..trials).map(|_| rng.random_range(0..n) as i64).collect()
        } else {
            (0..trials).map(|_| weighted_pick(rng, &cum) as i64).collect()
        };
        let idx = Tensor::from_slice(&cands).to_device(x.device());
        let cx = x.index_select(0, &idx);
        let d = sq_dists(x, x_sq, &cx); // n x trials
        let pot = d.minimum(&closest.unsqueeze(1)); // n x trials
        let sums = pot.sum_dim_intlist(0, false, Kind::Double);
        let best = sums.argmin(0, false).int64_value(&[]);
        centers.push(cx.get(best));
        closest = pot.select(1, best);
    }
    Ok(Tensor::stack(&centers, 0))
}

fn lloyd(x: &Tensor, x_sq: &Tensor, mut c: Tensor, p: &KMeansParams, tol_abs: f64) -> Result<(Tensor, Tensor, f64, usize)> {
    let (n, d) = (x.size()[0], x.size()[1]);
    let k = p.k as i64;
    let ones = Tensor::ones([n], (Kind::Float, x.device()));
    let mut iters = 0;
    for it in 0..p.max_iter {
        iters = it + 1;
        let dist = sq_dists(x, x_sq, &c);
        let labels = dist.argmin(1, false);
        let sums = Tensor::zeros([k, d], (Kind::Float, x.device())).index_add(0, &labels, x);
        let counts = Tensor::zeros([k], (Kind::Float, x.device())).index_add(0, &labels, &ones);
        let mut newc = &sums / counts.clamp_min(1.0).unsqueeze(1);
        // Empty clusters take the points farthest from their centres (scikit-learn's relocation).
        let empty: Vec<i64> = Vec::<f32>::try_from(&counts.to_device(tch::Device::Cpu))?
            .iter().enumerate().filter(|(_, &v)| v == 0.0).map(|(i, _)| i as i64).collect();
        if !empty.is_empty() {
            let mind = dist.gather(1, &labels.unsqueeze(1), false).squeeze_dim(1);
            let far = mind.topk(empty.len() as i64, 0, true, true).1;
            let far: Vec<i64> = Vec::<i64>::try_from(&far.to_device(tch::Device::Cpu))?;
            for (e, f) in empty.iter().zip(far) {
                newc = newc.index_copy(0, &Tensor::from_slice(&[*e]).to_device(x.device()), &x.get(f).unsqueeze(0));
            }
        }
        let shift = (&newc - &c).square().sum(Kind::Double).double_value(&[]);
        c = newc;
        if shift <= tol_abs {
            break;
        }
    }
    // Final assignment so labels match the returned centres.
    let dist = sq_dists(x, x_sq, &c);
    let (mind, labels) = dist.min_dim(1, false);
    let inertia = mind.sum(Kind::Double).double_value(&[]);
    Ok((c, labels, inertia, iters))
}

/// The index of each row's nearest centre (k x d), as a tensor on x's device.
pub fn nearest(x: &Tensor, centres: &Tensor) -> Tensor {
    let x = x.to_kind(Kind::Float);
    let x_sq = x.square().sum_dim_intlist(1, false, Kind::Float);
    sq_dists(&x, &x_sq, &centres.to_kind(Kind::Float)).argmin(1, false)
}

/// Lloyd iterations from given centres (k x d): the warm-started K-means CICL re-runs at
/// every training step. Returns the centres and each row's label (tensors on x's device).
pub fn kmeans_from(x: &Tensor, centres: &Tensor, max_iter: usize, tol: f64) -> Result<(Tensor, Tensor)> {
    let x = x.to_kind(Kind::Float);
    let x_sq = x.square().sum_dim_intlist(1, false, Kind::Float);
    let var_mean = x.var_dim(0, false, false).mean(Kind::Double).double_value(&[]);
    let p = KMeansParams { k: centres.size()[0] as usize, n_init: 1, max_iter: max_iter.max(1), tol, seed: 0 };
    let (c, labels, _, _) = lloyd(&x, &x_sq, centres.to_kind(Kind::Float), &p, var_mean * tol)?;
    Ok((c, labels))
}

/// Cluster the rows of `x` (n x d float tensor, on any device).
pub fn kmeans(x: &Tensor, p: &KMeansParams) -> Result<KMeansResult> {
    let n = x.size()[0] as usize;
    if p.k == 0 {
        return Err(Error::config("cluster.n_clusters", 0, "must be >= 1"));
    }
    if p.k > n {
        return Err(Error::config("cluster.n_clusters", p.k, format!("more clusters than cells ({n})")));
    }
    if p.n_init == 0 {
        return Err(Error::config("cluster.n_init", 0, "must be >= 1"));
    }
    if p.max_iter == 0 {
        return Err(Error::config("cluster.max_iter", 0, "must be >= 1"));
    }
    if !(p.tol >= 0.0) {
        return Err(Error::config("cluster.tol", p.tol, "must be >= 0"));
    }
    let x = x.to_kind(Kind::Float);
    let finite = x.isfinite().all().int64_value(&[]) == 1;
    if !finite {
        return Err(Error::data("the embedding contains NaN or infinite values"));
    }
    let x_sq = x.square().sum_dim_intlist(1, false, Kind::Float);
    let var_mean = x.var_dim(0, false, false).mean(Kind::Double).double_value(&[]);
    let tol_abs = var_mean * p.tol;
    let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
    let mut best: Option<(Tensor, Tensor, f64, usize)> = None;
    for _ in 0..p.n_init {
        let c0 = kmeans_pp(&x, &x_sq, p.k, &mut rng)?;
        let r = lloyd(&x, &x_sq, c0, p, tol_abs)?;
        if best.as_ref().map_or(true, |b| r.2 < b.2) {
            best = Some(r);
        }
    }
    let (c, labels, inertia, n_iter) = best.unwrap();
    Ok(KMeansResult {
        labels: Vec::<i64>::try_from(&labels.to_device(tch::Device::Cpu))?,
        centroids: Vec::<f32>::try_from(&c.to_device(tch::Device::Cpu).contiguous().view([-1]))?,
        inertia,
        n_iter,
    })
}
