//! Neighbour graphs of an embedding: exact kNN as blocked matrix products on the
//! embedding's device, scanpy's UMAP connectivities and Seurat's shared-nearest-neighbour
//! (Jaccard) weights.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    Euclidean,
    Cosine,
}

/// k nearest neighbours of every row, the row itself first (scanpy's convention).
#[derive(Debug, Clone)]
pub struct Knn {
    pub n: usize,
    pub k: usize,
    /// n x k, row-major
    pub indices: Vec<u32>,
    pub distances: Vec<f32>,
}

/// Exact kNN of the rows of `x` (n x d, any device), `k` including the row itself.
pub fn knn_exact(x: &Tensor, k: usize, metric: Metric, block: usize) -> Result<Knn> {
    let n = x.size()[0] as usize;
    if k < 2 || k > n {
        return Err(Error::config("cluster.n_neighbors", k, format!("must be in [2, number of cells = {n}] (it counts the cell itself)")));
    }
    let mut x = x.to_kind(Kind::Float);
    if x.isfinite().all().int64_value(&[]) != 1 {
        return Err(Error::data("the embedding contains NaN or infinite values"));
    }
    if metric == Metric::Cosine {
        x = &x / x.norm_scalaropt_dim(2.0, [1], true).clamp_min(1e-12);
    }
    let sq = x.square().sum_dim_intlist(1, false, Kind::Float);
    let (mut indices, mut distances) = (Vec::with_capacity(n * k), Vec::with_capacity(n * k));
    let block = block.max(1);
    for s in (0..n).step_by(block) {
        let len = block.min(n - s) as i64;
        let xb = x.narrow(0, s as i64, len);
        let mut d2: Tensor = sq.narrow(0, s as i64, len).unsqueeze(1) + sq.unsqueeze(0) - xb.matmul(&x.transpose(0, 1)) * 2.0;
        d2 = d2.clamp_min(0.0);
        // the cell itself first, whatever rounding says
        let rows = Tensor::arange(len, (Kind::Int64, x.device()));
        let own = Tensor::arange_start(s as i64, s as i64 + len, (Kind::Int64, x.device()));
        let _ = d2.index_put_(&[Some(rows), Some(own)], &Tensor::from(-1.0f32).to_device(x.device()), false);
        let (_, idx) = d2.topk(k as i64, 1, false, true);
        // The expansion above loses digits for near neighbours: recompute the chosen
        // distances from the differences, in float64.
        let nb = x.index_select(0, &idx.view([-1])).view([len, k as i64, -1]).to_kind(Kind::Double);
        let diff = nb - xb.to_kind(Kind::Double).unsqueeze(1);
        let sqd = diff.square().sum_dim_intlist(2, false, Kind::Double);
        let dist = match metric {
            Metric::Euclidean => sqd.sqrt(),
            Metric::Cosine => sqd / 2.0, // 1 - cos for unit vectors
        }
        .to_kind(Kind::Float);
        distances.extend(Vec::<f32>::try_from(&dist.to_device(tch::Device::Cpu).contiguous().view([-1]))?);
        indices.extend(Vec::<i64>::try_from(&idx.to_device(tch::Device::Cpu).contiguous().view([-1]))?.into_iter().map(|i| i as u32));
    }
    Ok(Knn { n, k, indices, distances })
}

/// A weighted undirected graph in CSR form (both directions stored).
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    pub n: usize,
    pub indptr: Vec<usize>,
    pub indices: Vec<u32>,
    pub weights: Vec<f64>,
}

impl Graph {
    /// Symmetric graph from (i, j, w) triplets; duplicates are summed.
    pub fn from_triplets(n: usize, mut t: Vec<(u32, u32, f64)>) -> Graph {
        t.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        let mut indptr = vec![0usize; n + 1];
        let (mut indices, mut weights): (Vec<u32>, Vec<f64>) = (Vec::with_capacity(t.len()), Vec::with_capacity(t.len()));
        let mut last: Option<(u32, u32)> = None;
        for (i, j, w) in t {
            if last == Some((i, j)) {
                *weights.last_mut().unwrap() += w;
                continue;
            }
            last = Some((i, j));
            indices.push(j);
            weights.push(w);
            indptr[i as usize + 1] += 1;
        }
        for i in 0..n {
            indptr[i + 1] += indptr[i];
        }
        Graph { n, indptr, indices, weights }
    }

    pub fn neighbors(&self, i: usize) -> impl Iterator<Item = (usize, f64)> + '_ {
        let (a, b) = (self.indptr[i], self.indptr[i + 1]);
        self.indices[a..b].iter().zip(&self.weights[a..b]).map(|(&j, &w)| (j as usize, w))
    }

    pub fn n_edges(&self) -> usize {
        self.indices.len()
    }

    /// Weighted degree of every node (a self-loop counts once).
    pub fn degrees(&self) -> Vec<f64> {
        (0..self.n).map(|i| self.neighbors(i).map(|(_, w)| w).sum()).collect()
    }

    /// Connected components: a label per node and their number.
    pub fn components(&self) -> (Vec<usize>, usize) {
        let mut comp = vec![usize::MAX; self.n];
        let mut c = 0;
        let mut stack = Vec::new();
        for s in 0..self.n {
            if comp[s] != usize::MAX {
                continue;
            }
            comp[s] = c;
            stack.push(s);
            while let Some(v) = stack.pop() {
                for (u, _) in self.neighbors(v) {
                    if comp[u] == usize::MAX {
                        comp[u] = c;
                        stack.push(u);
                    }
                }
            }
            c += 1;
        }
        (comp, c)
    }
}

/// scanpy's `pp.neighbors` weights (umap's fuzzy_simplicial_set, local_connectivity 1,
/// set_op_mix_ratio 1): per cell ρ (nearest positive distance) and σ (binary search so that
/// Σ exp(-(d-ρ)/σ) = log2 k), then A + Aᵀ - A∘Aᵀ.
pub fn umap_connectivities(knn: &Knn) -> Graph {
    let (n, k) = (knn.n, knn.k);
    let target = (k as f64).log2();
    let mean_all = knn.distances.iter().map(|&d| d as f64).sum::<f64>() / (n * k) as f64;
    let mut trip = Vec::with_capacity(2 * n * k);
    for i in 0..n {
        let d = &knn.distances[i * k..(i + 1) * k];
        let rho = d.iter().copied().find(|&v| v > 0.0).unwrap_or(0.0) as f64;
        let (mut lo, mut hi, mut mid) = (0.0f64, f64::INFINITY, 1.0f64);
        for _ in 0..64 {
            let mut psum = 0.0;
            for &dj in &d[1..] {
                let r = dj as f64 - rho;
                psum += if r > 0.0 { (-(r / mid)).exp() } else { 1.0 };
            }
            if (psum - target).abs() < 1e-5 {
                break;
            }
            if psum > target {
                hi = mid;
                mid = (lo + hi) / 2.0;
            } else {
                lo = mid;
                mid = if hi.is_infinite() { mid * 2.0 } else { (lo + hi) / 2.0 };
            }
        }
        let mut sigma = mid;
        let mean_i = d.iter().map(|&v| v as f64).sum::<f64>() / k as f64;
        if rho > 0.0 {
            sigma = sigma.max(1e-3 * mean_i);
        } else {
            sigma = sigma.max(1e-3 * mean_all);
        }
        for (j, &dj) in d.iter().enumerate() {
            let nb = knn.indices[i * k + j];
            if nb as usize == i {
                continue;
            }
            let r = dj as f64 - rho;
            let w = if r <= 0.0 || sigma == 0.0 { 1.0 } else { (-(r / sigma)).exp() };
            trip.push((i as u32, nb, w));
        }
    }
    // fuzzy union: a + b - a*b over the two directions
    let mut dir: std::collections::HashMap<(u32, u32), f64> = std::collections::HashMap::with_capacity(trip.len());
    for &(i, j, w) in &trip {
        dir.insert((i, j), w);
    }
    let mut sym = Vec::with_capacity(2 * trip.len());
    for (&(i, j), &a) in &dir {
        let b = dir.get(&(j, i)).copied().unwrap_or(0.0);
        let w = a + b - a * b;
        if w > 0.0 {
            sym.push((i, j, w));
            if b == 0.0 {
                sym.push((j, i, w));
            }
        }
    }
    Graph::from_triplets(n, sym)
}

/// Seurat's SNN graph: Jaccard index of the k-neighbourhoods (the cell included) for every
/// pair sharing a neighbour, edges below `prune` (Seurat: 1/15) removed.
pub fn snn(knn: &Knn, prune: f64) -> Graph {
    let (n, k) = (knn.n, knn.k);
    let mut rev: Vec<Vec<u32>> = vec![Vec::new(); n];
    for i in 0..n {
        for &j in &knn.indices[i * k..(i + 1) * k] {
            rev[j as usize].push(i as u32);
        }
    }
    let mut count = vec![0u32; n];
    let mut touched = Vec::new();
    let mut trip = Vec::new();
    for i in 0..n {
        for &j in &knn.indices[i * k..(i + 1) * k] {
            for &m in &rev[j as usize] {
                if count[m as usize] == 0 {
                    touched.push(m);
                }
                count[m as usize] += 1;
            }
        }
        for &m in &touched {
            let c = count[m as usize] as f64;
            let s = c / (2.0 * k as f64 - c);
            if s >= prune && m as usize != i {
                trip.push((i as u32, m, s));
            }
            count[m as usize] = 0;
        }
        touched.clear();
    }
    Graph::from_triplets(n, trip)
}
