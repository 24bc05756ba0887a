//! K-means on libtorch tensors: greedy k-means++ initialisation (scikit-learn's, with
//! 2 + ln k local trials), Lloyd iterations, relative tolerance (tol x mean feature
//! variance), n_init restarts keeping the lowest inertia. Seeded and deterministic for
//! a given device and thread count.
//!
//! The restarts run side by side: each k-means++ step draws the candidates of every
//! restart and measures them in one matrix product, and each Lloyd iteration assigns
//! the points of every unconverged restart in one product and forms the new centres as
//! a one-hot product (no atomic adds, so also deterministic on CUDA). One pass over the
//! data serves all restarts; a restart that has converged stops iterating, so each one
//! follows the path it would follow alone.

use crate::error::{Error, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

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

/// Largest n x columns working tensor (elements) a group of restarts may use.
const GROUP_ELEMENTS: i64 = 1 << 25;
/// Rows per block: the distance and one-hot blocks stay small enough for the allocator to
/// reuse (a fresh 40 MB tensor per pass costs more in page faults than its matmul).
const BLOCK: i64 = 8192;

fn blocks(n: i64) -> impl Iterator<Item = (i64, i64)> {
    (0..n).step_by(BLOCK as usize).map(move |s| (s, BLOCK.min(n - s)))
}

/// ||c||^2 - 2 x c^T (n x m): the squared distances less ||x||^2, enough for an argmin.
fn shifted_dists(x: &Tensor, c: &Tensor) -> Tensor {
    let c_sq = c.square().sum_dim_intlist(1, false, Kind::Float);
    c_sq.unsqueeze(0).addmm(x, &(c * -2.0).transpose(0, 1))
}

/// Squared distances of the centres to the points, m x n, clamped at 0.
fn sq_dists_t(c: &Tensor, x: &Tensor, x_sq: &Tensor) -> Tensor {
    let c_sq = c.square().sum_dim_intlist(1, false, Kind::Float);
    let mut t = c_sq.unsqueeze(1).addmm(&(c * -2.0), &x.transpose(0, 1));
    let _ = t.g_add_(&x_sq.unsqueeze(0));
    t.clamp_min_(0.0)
}

fn to_vec_f64(t: &Tensor) -> Result<Vec<f64>> {
    Ok(Vec::<f64>::try_from(&t.to_kind(Kind::Double).to_device(Device::Cpu).contiguous().view([-1]))?)
}

fn to_vec_i64(t: &Tensor) -> Result<Vec<i64>> {
    Ok(Vec::<i64>::try_from(&t.to_kind(Kind::Int64).to_device(Device::Cpu).contiguous().view([-1]))?)
}

/// closest (m x n) <- min(closest, squared distances to c (m x d)), block by block.
fn lower_closest(closest: &Tensor, c: &Tensor, x: &Tensor, x_sq: &Tensor) {
    for (s, b) in blocks(x.size()[0]) {
        let mut cb = closest.narrow(1, s, b);
        let d = sq_dists_t(c, &x.narrow(0, s, b), &x_sq.narrow(0, s, b));
        cb.copy_(&d.minimum(&cb));
    }
}

/// k-means++ for `r` restarts at once: r x k x d starting centres.
fn kmeans_pp(x: &Tensor, x_sq: &Tensor, k: usize, r: usize, rng: &mut ChaCha8Rng) -> Result<Tensor> {
    let (n, d) = (x.size()[0], x.size()[1]);
    let dev = x.device();
    let trials = 2 + (k as f64).ln().floor() as usize;
    let mut chosen: Vec<Vec<i64>> = (0..r).map(|_| vec![rng.random_range(0..n)]).collect();
    let first: Vec<i64> = chosen.iter().map(|c| c[0]).collect();
    let closest = Tensor::full([r as i64, n], f64::INFINITY, (Kind::Float, dev)); // r x n
    lower_closest(&closest, &x.index_select(0, &Tensor::from_slice(&first).to_device(dev)), x, x_sq);
    for _ in 1..k {
        // Candidates drawn with probability proportional to the distance to the nearest
        // centre: the first index whose running sum exceeds u * total (scikit-learn's
        // searchsorted on the cumulative potential).
        let cum = closest.cumsum(1, Kind::Double); // r x n
        let total = to_vec_f64(&cum.select(1, n - 1))?;
        let mut draws = Vec::with_capacity(r * trials);
        let mut uniform = Vec::new();
        for (j, &t) in total.iter().enumerate() {
            for s in 0..trials {
                if t > 0.0 {
                    draws.push(rng.random::<f64>() * t);
                } else {
                    draws.push(0.0);
                    uniform.push((j * trials + s, rng.random_range(0..n)));
                }
            }
        }
        let u = Tensor::from_slice(&draws).to_device(dev).view([r as i64, trials as i64]);
        let picked = u.searchsorted(&cum, false, true, "right", None::<Tensor>).clamp_max(n - 1);
        let mut cands = to_vec_i64(&picked)?;
        for (pos, i) in uniform {
            cands[pos] = i;
        }
        // The potential (sum of min distances) each candidate would leave; keep the lowest.
        let cx = x.index_select(0, &Tensor::from_slice(&cands).to_device(dev)); // r*trials x d
        let mut pot = Tensor::zeros([r as i64, trials as i64], (Kind::Double, dev));
        for (s, b) in blocks(n) {
            let dc = sq_dists_t(&cx, &x.narrow(0, s, b), &x_sq.narrow(0, s, b)).view([r as i64, trials as i64, b]);
            pot += dc.minimum(&closest.narrow(1, s, b).unsqueeze(1)).sum_dim_intlist(2, false, Kind::Double);
        }
        let best = to_vec_i64(&pot.argmin(1, false))?;
        let picks: Vec<i64> = best.iter().enumerate().map(|(j, &b)| cands[j * trials + b as usize]).collect();
        for (j, &p) in picks.iter().enumerate() {
            chosen[j].push(p);
        }
        if chosen[0].len() < k {
            lower_closest(&closest, &x.index_select(0, &Tensor::from_slice(&picks).to_device(dev)), x, x_sq);
        }
    }
    let idx: Vec<i64> = chosen.concat();
    Ok(x.index_select(0, &Tensor::from_slice(&idx).to_device(dev)).view([r as i64, k as i64, d]))
}

/// Labels (n x a), inertia per restart, and the per-cluster sums and counts.
type Assignment = (Tensor, Vec<f64>, Option<(Tensor, Tensor)>);

/// One pass over the points for a restarts' centres (a x k x d): each point's nearest
/// centre per restart (n x a), each restart's inertia and, when asked, the per-cluster
/// sums ((a*k) x d) and counts (a*k) for the update.
fn assign(x: &Tensor, x_sq_total: f64, c: &Tensor, with_sums: bool) -> Result<Assignment> {
    let (n, d) = (x.size()[0], x.size()[1]);
    let (a, k) = (c.size()[0], c.size()[1]);
    let dev = x.device();
    let cf = c.view([a * k, d]);
    let c_sq = cf.square().sum_dim_intlist(1, false, Kind::Float).unsqueeze(0);
    let ct = (&cf * -2.0).transpose(0, 1);
    let offs = Tensor::arange(a, (Kind::Int64, dev)).unsqueeze(0) * k;
    let labels = Tensor::empty([n, a], (Kind::Int64, dev));
    let mut mind = Tensor::zeros([a], (Kind::Double, dev));
    let mut sums = Tensor::zeros([a * k, d], (Kind::Float, dev));
    let mut counts = Tensor::zeros([a * k], (Kind::Int64, dev));
    let onehot = Tensor::zeros([BLOCK.min(n), a * k], (Kind::Float, dev));
    for (s, b) in blocks(n) {
        let xb = x.narrow(0, s, b);
        let (v, l) = c_sq.addmm(&xb, &ct).view([b, a, k]).min_dim(2, false);
        labels.narrow(0, s, b).copy_(&l);
        mind += v.sum_dim_intlist(0, false, Kind::Double);
        if with_sums {
            let g = l + &offs;
            let mut oh = onehot.narrow(0, 0, b);
            let _ = oh.zero_();
            let _ = oh.scatter_value_(1, &g, 1.0);
            let _ = sums.addmm_(&oh.transpose(0, 1), &xb);
            counts += g.view([-1]).bincount(None::<Tensor>, a * k);
        }
    }
    let inertia = to_vec_f64(&mind)?.into_iter().map(|v| (v + x_sq_total).max(0.0)).collect();
    Ok((labels, inertia, with_sums.then_some((sums.view([a, k, d]), counts.view([a, k])))))
}

/// Lloyd iterations for r restarts (centres r x k x d) until each one's labels stop
/// changing or its centre shift is <= tol_abs. Returns the centres, the labels (n x r)
/// that go with them, and each restart's inertia and number of iterations.
fn lloyd(x: &Tensor, x_sq: &Tensor, c: Tensor, max_iter: usize, tol_abs: f64) -> Result<(Tensor, Tensor, Vec<f64>, Vec<usize>)> {
    let n = x.size()[0];
    let (r, k) = (c.size()[0], c.size()[1]);
    let dev = x.device();
    let x_sq_total = x_sq.sum(Kind::Double).double_value(&[]);
    let mut active: Vec<i64> = (0..r).collect();
    let mut labels = Tensor::full([n, r], -1, (Kind::Int64, dev));
    let mut inertia = vec![0.0; r as usize];
    let mut stale: Vec<i64> = Vec::new(); // stopped on the shift or max_iter: labels lag the centres
    let mut iters = vec![0; r as usize];
    for it in 0..max_iter {
        if active.is_empty() {
            break;
        }
        let act = Tensor::from_slice(&active).to_device(dev);
        let ca = c.index_select(0, &act); // a x k x d
        let (lab, ine, sc) = assign(x, x_sq_total, &ca, true)?;
        let (sums, counts) = sc.unwrap();
        let newc = (&sums / counts.clamp_min(1).unsqueeze(2)).contiguous();
        // Empty clusters take the points farthest from their centres (scikit-learn's relocation).
        let cnt = to_vec_i64(&counts)?;
        for (pos, _) in cnt.iter().enumerate().filter(|(_, &v)| v == 0) {
            let (j, e) = ((pos as i64) / k, (pos as i64) % k);
            let row = &cnt[(j * k) as usize..((j + 1) * k) as usize];
            let empties = row.iter().filter(|&&v| v == 0).count() as i64;
            let rank = cnt[(j * k) as usize..pos].iter().filter(|&&v| v == 0).count();
            let cj = ca.get(j);
            let lj = lab.select(1, j).unsqueeze(1);
            let dj = sq_dists_t(&cj, x, x_sq).transpose(0, 1).gather(1, &lj, false).squeeze_dim(1);
            let far = to_vec_i64(&dj.topk(empties, 0, true, true).1)?[rank];
            newc.get(j).get(e).copy_(&x.get(far));
        }
        let shift = to_vec_f64(&(&newc - &ca).square().sum_dim_intlist([1, 2].as_slice(), false, Kind::Double))?;
        let same = to_vec_i64(&lab.eq_tensor(&labels.index_select(1, &act)).all_dim(0, false))?;
        let _ = labels.index_copy_(1, &act, &lab);
        let mut next = Vec::new();
        for (j, &i) in active.iter().enumerate() {
            iters[i as usize] = it + 1;
            if same[j] == 1 {
                // Same labels as last time: the new centres equal the ones just used, so
                // these labels and this inertia are final.
                inertia[i as usize] = ine[j];
            } else {
                c.get(i).copy_(&newc.get(j as i64));
                if shift[j] <= tol_abs || it + 1 == max_iter {
                    stale.push(i);
                } else {
                    next.push(i);
                }
            }
        }
        active = next;
    }
    // Final assignment where labels lag the centres.
    if !stale.is_empty() {
        let st = Tensor::from_slice(&stale).to_device(dev);
        let (lab, ine, _) = assign(x, x_sq_total, &c.index_select(0, &st), false)?;
        let _ = labels.index_copy_(1, &st, &lab);
        for (j, &i) in stale.iter().enumerate() {
            inertia[i as usize] = ine[j];
        }
    }
    Ok((c, labels, inertia, iters))
}

/// The index of each row's nearest centre (k x d), as a tensor on x's device.
pub fn nearest(x: &Tensor, centres: &Tensor) -> Tensor {
    shifted_dists(&x.to_kind(Kind::Float), &centres.to_kind(Kind::Float)).argmin(1, false)
}

/// Lloyd iterations from given centres (k x d): the warm-started K-means CICL re-runs at
/// every training step. Returns the centres and each row's label (tensors on x's device).
pub fn kmeans_from(x: &Tensor, centres: &Tensor, max_iter: usize, tol: f64) -> Result<(Tensor, Tensor)> {
    let x = x.to_kind(Kind::Float);
    let x_sq = x.square().sum_dim_intlist(1, false, Kind::Float);
    let var_mean = x.var_dim(0, false, false).mean(Kind::Double).double_value(&[]);
    let c0 = centres.to_kind(Kind::Float).unsqueeze(0).contiguous();
    let (c, labels, _, _) = lloyd(&x, &x_sq, c0, max_iter.max(1), var_mean * tol)?;
    Ok((c.squeeze_dim(0), labels.squeeze_dim(1)))
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
    let x = x.to_kind(Kind::Float).contiguous();
    let finite = x.isfinite().all().int64_value(&[]) == 1;
    if !finite {
        return Err(Error::data("the embedding contains NaN or infinite values"));
    }
    let x_sq = x.square().sum_dim_intlist(1, false, Kind::Float);
    let var_mean = x.var_dim(0, false, false).mean(Kind::Double).double_value(&[]);
    let tol_abs = var_mean * p.tol;
    let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
    // Restarts per group: the one-hot and distance tensors (n x group*k) stay bounded.
    let trials = 2 + (p.k as f64).ln().floor() as usize;
    let per = (n * p.k.max(trials)).max(1) as i64;
    let group = ((GROUP_ELEMENTS / per).max(1) as usize).min(p.n_init);
    let mut best: Option<(Tensor, Tensor, f64, usize)> = None;
    let mut done = 0;
    while done < p.n_init {
        let r = group.min(p.n_init - done);
        let c0 = kmeans_pp(&x, &x_sq, p.k, r, &mut rng)?;
        let (c, labels, inertia, iters) = lloyd(&x, &x_sq, c0, p.max_iter, tol_abs)?;
        for (j, &v) in inertia.iter().enumerate() {
            if best.as_ref().is_none_or(|b| v < b.2) {
                best = Some((c.get(j as i64), labels.select(1, j as i64), v, iters[j]));
            }
        }
        done += r;
    }
    let (c, labels, inertia, n_iter) = best.unwrap();
    Ok(KMeansResult {
        labels: to_vec_i64(&labels)?,
        centroids: Vec::<f32>::try_from(&c.to_device(Device::Cpu).contiguous().view([-1]))?,
        inertia,
        n_iter,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_consistent(x: &Tensor, r: &KMeansResult, k: usize) {
        let d = x.size()[1];
        let c = Tensor::from_slice(&r.centroids).view([k as i64, d]);
        let want = to_vec_i64(&nearest(x, &c)).unwrap();
        let dist = sq_dists_t(&c, x, &x.square().sum_dim_intlist(1, false, Kind::Float));
        let own = dist.gather(0, &Tensor::from_slice(&r.labels).unsqueeze(0), false).sum(Kind::Double).double_value(&[]);
        let mismatched = r.labels.iter().zip(&want).filter(|(a, b)| a != b).count();
        // ties between equidistant centres may go either way in float
        assert!(mismatched <= 2, "{mismatched} labels are not the nearest centre");
        assert!((own - r.inertia).abs() <= 1e-4 * own.max(1.0), "inertia {} vs {own}", r.inertia);
    }

    #[test]
    fn labels_and_inertia_go_with_the_returned_centres() {
        let mut rng = crate::seed::rng_for(3, 0);
        let x = crate::train::random::normal(&mut rng, &[20_000, 8], Device::Cpu);
        for max_iter in [1, 2, 5, 300] {
            for n_init in [1, 4] {
                let r = kmeans(&x, &KMeansParams { k: 7, n_init, max_iter, tol: 1e-4, seed: 1 }).unwrap();
                assert!(r.n_iter <= max_iter);
                check_consistent(&x, &r, 7);
            }
        }
    }

    #[test]
    fn duplicate_points_leave_no_cluster_empty_handed() {
        // four identical points and one far away, k = 3: k-means++ runs out of potential
        // and Lloyd meets empty clusters; the result must still cover both locations.
        let mut v = vec![1.0f32, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 9.0, 9.0];
        let x = Tensor::from_slice(&v).view([5, 2]);
        for seed in 0..5 {
            let r = kmeans(&x, &KMeansParams { k: 3, n_init: 3, max_iter: 50, tol: 0.0, seed }).unwrap();
            assert!(r.inertia.abs() < 1e-9, "seed {seed}: inertia {}", r.inertia);
            assert!(r.labels.iter().all(|&l| (0..3).contains(&l)));
            assert_ne!(r.labels[0], r.labels[4]);
        }
        v.iter_mut().for_each(|a| *a = 2.0);
        let x = Tensor::from_slice(&v).view([5, 2]);
        let r = kmeans(&x, &KMeansParams { k: 3, n_init: 2, max_iter: 10, tol: 1e-4, seed: 0 }).unwrap();
        assert_eq!(r.inertia, 0.0);
    }
}
