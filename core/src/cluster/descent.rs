//! NN-descent (Dong, Charikar & Li 2011, "Efficient k-nearest neighbor graph construction
//! for generic similarity measures"), in the synchronous form pynndescent uses: each round
//! samples every cell's new and old neighbours (and the cells that list it), compares the
//! new ones with each other and with the old ones, and keeps the nearest `width` per cell.
//! The comparisons of a block of cells are computed in parallel from the block's start
//! state and applied in cell order, so the graph is the same for any thread count.

use super::graph::{prepare, Knn, Metric};
use crate::error::{Error, Result};
use rayon::prelude::*;
use tch::Tensor;

/// How long NN-descent works: at most `max_rounds` rounds, stopping early once a round
/// improves fewer than `delta` x cells x k neighbours. Each cell compares up to
/// `max_candidates` new and as many old candidates per round.
#[derive(Debug, Clone, Copy)]
pub struct DescentParams {
    pub max_rounds: usize,
    pub max_candidates: usize,
    pub delta: f64,
    /// Neighbours kept per cell while descending (at least k - 1; the nearest k - 1 are
    /// returned): a wider graph escapes the local optima a k-wide one stops in.
    pub width: usize,
    pub seed: u64,
    pub threads: usize,
}

/// A descent stops once a round improves fewer than this fraction of cells x width
/// neighbours (pynndescent's default).
pub const DELTA: f64 = 0.001;

/// What a descent did: rounds run and neighbours improved in each.
#[derive(Debug, Clone, Default)]
pub struct DescentReport {
    pub updates: Vec<usize>,
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[inline]
fn sqdist(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            let t = x[l] - y[l];
            acc[l] += t * t;
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += (x - y) * (x - y);
    }
    s
}

/// Bounded max-heaps, one row of `w` slots per cell, keyed by `key` (smaller is kept).
struct Heaps<K> {
    w: usize,
    key: Vec<K>,
    id: Vec<u32>,
    flag: Vec<bool>,
}

impl<K: Copy + PartialOrd> Heaps<K> {
    fn new(n: usize, w: usize, worst: K) -> Self {
        Heaps { w, key: vec![worst; n * w], id: vec![u32::MAX; n * w], flag: vec![false; n * w] }
    }

    fn top(&self, i: usize) -> K {
        self.key[i * self.w]
    }

    /// Keep `j` among row `i`'s `w` smallest keys; false when it is not smaller than the
    /// largest kept or is already there.
    fn push(&mut self, i: usize, j: u32, key: K, flag: bool) -> bool {
        let (w, o) = (self.w, i * self.w);
        if !(key < self.key[o]) || self.id[o..o + w].contains(&j) {
            return false;
        }
        let mut p = 0;
        loop {
            let l = 2 * p + 1;
            if l >= w {
                break;
            }
            let c = if l + 1 < w && self.key[o + l + 1] > self.key[o + l] { l + 1 } else { l };
            if self.key[o + c] > key {
                self.key[o + p] = self.key[o + c];
                self.id[o + p] = self.id[o + c];
                self.flag[o + p] = self.flag[o + c];
                p = c;
            } else {
                break;
            }
        }
        self.key[o + p] = key;
        self.id[o + p] = j;
        self.flag[o + p] = flag;
        true
    }

    fn row(&self, i: usize) -> impl Iterator<Item = u32> + '_ {
        self.id[i * self.w..(i + 1) * self.w].iter().copied().filter(|&j| j != u32::MAX)
    }
}

/// Cells per block whose comparisons are computed together before being applied.
const BLOCK: usize = 16_384;

/// Improves the kNN graph `init` of the rows of `x` (any device; searched on the CPU) by
/// NN-descent; returns `k` neighbours per cell, the cell itself first (`init` may hold more).
pub fn knn_descent(x: &Tensor, k: usize, init: Knn, metric: Metric, p: &DescentParams) -> Result<(Knn, DescentReport)> {
    let n = init.n;
    let x = prepare(x, k, metric)?.to_device(tch::Device::Cpu);
    let d = x.size()[1] as usize;
    // The descent works on the cells renumbered in a breadth-first order of `init`, so that
    // the cells compared together lie near each other in memory (the rows of a cell's
    // candidates are otherwise scattered over the whole matrix, and fetching them costs
    // more than comparing them). `order[new] = old`.
    let order = locality_order(&init);
    let mut rank = vec![0u32; n];
    for (new, &old) in order.iter().enumerate() {
        rank[old as usize] = new as u32;
    }
    let rows = {
        let perm = Tensor::from_slice(&order.iter().map(|&o| o as i64).collect::<Vec<_>>());
        Vec::<f32>::try_from(&x.index_select(0, &perm).contiguous().view([-1]))?
    };
    drop(x);
    let row = |i: u32| &rows[i as usize * d..(i as usize + 1) * d];
    let kk = p.width.max(k - 1);
    let mut g: Heaps<f32> = Heaps::new(n, kk, f32::INFINITY);
    // The start: `init`'s nearest, and a quarter of the slots random cells (seeded), so
    // that neighbourhoods closed in `init` (a list of the inverted file that is a whole
    // group) are linked to the rest and the descent can leave them.
    let random = kk / 4;
    for (i, &old) in order.iter().enumerate() {
        let mut kept = 0;
        let old = old as usize;
        for &j in &init.indices[old * init.k..(old + 1) * init.k] {
            let j = rank[j as usize];
            if j as usize != i && kept < kk - random {
                kept += g.push(i, j, sqdist(row(i as u32), row(j)), true) as usize;
            }
        }
        let mut t = 0u64;
        while kept < kk && t < 4 * kk as u64 {
            let j = (mix(p.seed ^ mix((i as u64) << 20 ^ t)) % n as u64) as u32;
            t += 1;
            if j as usize != i {
                kept += g.push(i, j, sqdist(row(i as u32), row(j)), true) as usize;
            }
        }
    }
    drop(init);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(p.threads.max(1)).build().map_err(|e| Error::Numeric(e.to_string()))?;
    let mc = p.max_candidates.max(1);
    let mut report = DescentReport::default();
    for round in 0..p.max_rounds {
        // candidates: new and old neighbours both ways, a seeded random `mc` of each
        let mut newc: Heaps<u32> = Heaps::new(n, mc, u32::MAX);
        let mut oldc: Heaps<u32> = Heaps::new(n, mc, u32::MAX);
        let salt = mix(p.seed ^ mix(round as u64 + 1));
        for i in 0..n {
            for t in 0..kk {
                let o = i * kk + t;
                let j = g.id[o];
                if j == u32::MAX {
                    continue;
                }
                let pr = (mix(salt ^ ((i as u64) << 32 | j as u64)) >> 32) as u32;
                let c = if g.flag[o] { &mut newc } else { &mut oldc };
                c.push(i, j, pr, false);
                c.push(j as usize, i as u32, pr, false);
            }
        }
        for i in 0..n {
            for t in 0..kk {
                let o = i * kk + t;
                if g.flag[o] && newc.id[i * mc..(i + 1) * mc].contains(&g.id[o]) {
                    g.flag[o] = false;
                }
            }
        }
        let mut updates = 0usize;
        for s in (0..n).step_by(BLOCK) {
            let e = (s + BLOCK).min(n);
            let gr = &g;
            let (nc, oc) = (&newc, &oldc);
            let found: Vec<Vec<(u32, u32, f32)>> = pool.install(|| {
                (s..e)
                    .into_par_iter()
                    .map(|v| {
                        let nv: Vec<u32> = nc.row(v).collect();
                        let ov: Vec<u32> = oc.row(v).collect();
                        let mut out = Vec::new();
                        for (a, &u) in nv.iter().enumerate() {
                            let (ru, tu) = (row(u), gr.top(u as usize));
                            for &w in nv[a + 1..].iter().chain(ov.iter().filter(|&&w| w != u)) {
                                let dd = sqdist(ru, row(w));
                                if dd < tu || dd < gr.top(w as usize) {
                                    out.push((u, w, dd));
                                }
                            }
                        }
                        out
                    })
                    .collect()
            });
            for (u, w, dd) in found.into_iter().flatten() {
                updates += g.push(u as usize, w, dd, true) as usize;
                updates += g.push(w as usize, u, dd, true) as usize;
            }
        }
        report.updates.push(updates);
        if (updates as f64) <= p.delta * (n * kk) as f64 {
            break;
        }
    }
    let mut out = Knn { n, k, indices: vec![0; n * k], distances: vec![0.0; n * k] };
    for i in 0..n {
        let old = order[i] as usize;
        let mut nb: Vec<(f64, u32)> = g
            .row(i)
            .map(|j| (row(i as u32).iter().zip(row(j)).map(|(a, b)| ((a - b) as f64).powi(2)).sum::<f64>(), order[j as usize]))
            .collect();
        if nb.len() < k - 1 {
            return Err(Error::Numeric(format!("NN-descent found {} of {} neighbours for cell {old}", nb.len(), k - 1)));
        }
        nb.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        nb.truncate(k - 1);
        out.indices[old * k] = old as u32;
        for (t, (dd, j)) in nb.into_iter().enumerate() {
            out.indices[old * k + 1 + t] = j;
            out.distances[old * k + 1 + t] = match metric {
                Metric::Euclidean => dd.sqrt() as f32,
                Metric::Cosine => (dd / 2.0) as f32,
            };
        }
    }
    Ok((out, report))
}

/// The cells in breadth-first order of the graph `g` (each unvisited cell, in index order,
/// starts a new search): neighbours get nearby numbers.
fn locality_order(g: &Knn) -> Vec<u32> {
    let mut seen = vec![false; g.n];
    let mut order: Vec<u32> = Vec::with_capacity(g.n);
    for s in 0..g.n {
        if seen[s] {
            continue;
        }
        seen[s] = true;
        let mut head = order.len();
        order.push(s as u32);
        while head < order.len() {
            let i = order[head] as usize;
            head += 1;
            for &j in &g.indices[i * g.k..(i + 1) * g.k] {
                if !seen[j as usize] {
                    seen[j as usize] = true;
                    order.push(j);
                }
            }
        }
    }
    order
}
