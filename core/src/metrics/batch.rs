//! How well batches mix in an embedding, and how well cell types stay apart: the batch
//! metrics of the scIB benchmark (Luecken et al., Nat Methods 2022), computed as
//! `scib-metrics` computes them (checked against its output: tests/fixtures/batch_metrics.json,
//! from `scripts/make_fixtures.py batch`).
//!
//! - [`silhouette_batch`]: within each cell type, the silhouette of the cells on their batch
//!   labels, `1 - |s|` per cell, averaged per type, then over types (1: batches mixed).
//! - [`lisi`]: the inverse Simpson index of a cell's neighbours' labels, the neighbours
//!   weighted by a Gaussian kernel tuned to a perplexity; iLISI on batches (scaled so 1 is
//!   every batch equally near), cLISI on cell types (scaled so 1 is one type near).
//! - [`graph_connectivity`]: per cell type, the share of its cells in the largest strongly
//!   connected piece of the kNN graph restricted to the type (1: each type one piece).

use super::encode;
use crate::error::{Error, Result};
use serde::Serialize;

/// Each cell's nearest cells, itself included (`k` per cell, row-major, nearest first),
/// and their Euclidean distances: `cluster::Knn`'s layout.
#[derive(Debug, Clone, Copy)]
pub struct Neighbours<'a> {
    pub n: usize,
    pub k: usize,
    pub indices: &'a [u32],
    pub distances: &'a [f32],
}

/// The batch metrics of one embedding.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BatchScores {
    /// scIB's batch ASW (None when no cell type has cells of two or more batches).
    pub silhouette_batch: Option<f64>,
    /// iLISI, scaled to [0, 1] (median over cells).
    pub ilisi: f64,
    /// cLISI, scaled to [0, 1] (median over cells).
    pub clisi: f64,
    pub graph_connectivity: f64,
    /// The neighbours per cell (the cell included) and the perplexity the LISIs used.
    pub n_neighbors: usize,
    pub perplexity: f64,
}

/// Every batch metric of `x` (n x d, row-major) for the cell types `labels` and the
/// batches `batches`, on `knn` (each cell's nearest cells, itself included; scIB uses 90),
/// the LISI perplexity a third of the neighbours (30 for 90).
pub fn evaluate_batches<L: std::hash::Hash + Eq + Clone, B: std::hash::Hash + Eq + Clone>(
    x: &[f32],
    d: usize,
    labels: &[L],
    batches: &[B],
    knn: Neighbours,
) -> Result<BatchScores> {
    let n = labels.len();
    if batches.len() != n || knn.n != n || x.len() != n * d {
        return Err(Error::data(format!(
            "batch metrics: {n} cell types, {} batches, {} kNN rows and {} embedding values for {n} x {d}",
            batches.len(),
            knn.n,
            x.len()
        )));
    }
    let (l, nl) = encode(labels);
    let (b, nb) = encode(batches);
    if nb < 2 {
        return Err(Error::data("batch metrics need at least two batches, got one"));
    }
    let perplexity = (knn.k / 3) as f64;
    let scaled = |v: Vec<f64>| median(&v);
    let ilisi = (scaled(lisi(knn, &b, nb, perplexity)) - 1.0) / (nb as f64 - 1.0);
    let clisi = if nl > 1 { (nl as f64 - scaled(lisi(knn, &l, nl, perplexity))) / (nl as f64 - 1.0) } else { 1.0 };
    Ok(BatchScores {
        silhouette_batch: silhouette_batch(x, d, &l, &b)?,
        ilisi,
        clisi,
        graph_connectivity: graph_connectivity(knn, &l),
        n_neighbors: knn.k,
        perplexity,
    })
}

/// scIB's batch ASW: for each cell type (codes `labels`) with 2..cells-1 batches among its
/// cells, the silhouette of its cells on their batch codes, `1 - |s|`, averaged over its
/// cells; the mean over those types (None when there is none).
pub fn silhouette_batch(x: &[f32], d: usize, labels: &[usize], batches: &[usize]) -> Result<Option<f64>> {
    let nl = labels.iter().max().map_or(0, |m| m + 1);
    let mut per_type = Vec::new();
    for t in 0..nl {
        let cells: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == t).collect();
        let (sub_b, nb) = encode(&cells.iter().map(|&i| batches[i]).collect::<Vec<_>>());
        if nb < 2 || nb == cells.len() {
            continue;
        }
        let sub: Vec<f32> = cells.iter().flat_map(|&i| x[i * d..(i + 1) * d].iter().copied()).collect();
        let s = super::silhouette_values(&sub, d, &sub_b)?;
        per_type.push(s.iter().map(|v| 1.0 - v.abs()).sum::<f64>() / s.len() as f64);
    }
    Ok((!per_type.is_empty()).then(|| per_type.iter().sum::<f64>() / per_type.len() as f64))
}

/// Each cell's LISI on the codes `labels` (of `n_labels`): the kernel weights of its
/// neighbours (itself left out) tuned by bisection on the precision until their entropy is
/// ln(perplexity) (tolerance 1e-5, at most 50 steps), the inverse of the Simpson index
/// of the weighted labels; -1 where the entropy is 0.
pub fn lisi(knn: Neighbours, labels: &[usize], n_labels: usize, perplexity: f64) -> Vec<f64> {
    let k = knn.k;
    let target = perplexity.ln();
    (0..knn.n)
        .map(|i| {
            let idx = &knn.indices[i * k..(i + 1) * k];
            let dist: Vec<f64> = knn.distances[i * k..(i + 1) * k].iter().map(|&v| v as f64).collect();
            let keep: Vec<bool> = idx.iter().map(|&j| j as usize != i).collect();
            let h_p = |beta: f64| {
                let p: Vec<f64> = dist.iter().zip(&keep).map(|(&dv, &m)| if m { (-dv * beta).exp() } else { 0.0 }).collect();
                let sum: f64 = p.iter().sum();
                if sum == 0.0 {
                    return (0.0, vec![0.0; p.len()]);
                }
                let h = sum.ln() + beta * dist.iter().zip(&p).map(|(a, b)| a * b).sum::<f64>() / sum;
                (h, p.iter().map(|v| v / sum).collect())
            };
            let (mut beta, mut lo, mut hi) = (1.0f64, f64::NEG_INFINITY, f64::INFINITY);
            let (mut h, mut p) = h_p(beta);
            let mut diff = h - target;
            let mut tries = 0;
            while diff.abs() >= 1e-5 && tries < 50 {
                if diff > 0.0 {
                    lo = beta;
                    beta = if hi == f64::INFINITY { beta * 2.0 } else { (beta + hi) / 2.0 };
                } else {
                    hi = beta;
                    beta = if lo == f64::NEG_INFINITY { beta / 2.0 } else { (beta + lo) / 2.0 };
                }
                (h, p) = h_p(beta);
                diff = h - target;
                tries += 1;
            }
            if h == 0.0 {
                return -1.0;
            }
            let mut per = vec![0.0; n_labels];
            for (&j, &pj) in idx.iter().zip(&p) {
                per[labels[j as usize]] += pj;
            }
            1.0 / per.iter().map(|v| v * v).sum::<f64>()
        })
        .collect()
}

/// scIB's graph connectivity: per cell type (codes `labels`), the largest strongly
/// connected component of the directed kNN graph on its cells over their number; the mean.
pub fn graph_connectivity(knn: Neighbours, labels: &[usize]) -> f64 {
    let nl = labels.iter().max().map_or(0, |m| m + 1);
    let mut total = 0.0;
    let mut types = 0;
    for t in 0..nl {
        let cells: Vec<usize> = (0..knn.n).filter(|&i| labels[i] == t).collect();
        if cells.is_empty() {
            continue;
        }
        let mut local = vec![usize::MAX; knn.n];
        for (a, &i) in cells.iter().enumerate() {
            local[i] = a;
        }
        let adj: Vec<Vec<usize>> = cells
            .iter()
            .map(|&i| knn.indices[i * knn.k..(i + 1) * knn.k].iter().map(|&j| local[j as usize]).filter(|&a| a != usize::MAX).collect())
            .collect();
        let largest = strong_components(&adj).into_iter().max().unwrap_or(0);
        total += largest as f64 / cells.len() as f64;
        types += 1;
    }
    if types == 0 {
        0.0
    } else {
        total / types as f64
    }
}

/// The sizes of the strongly connected components of a directed graph (Tarjan, iterative).
fn strong_components(adj: &[Vec<usize>]) -> Vec<usize> {
    let n = adj.len();
    let (mut index, mut low, mut on) = (vec![usize::MAX; n], vec![0usize; n], vec![false; n]);
    let (mut stack, mut sizes, mut next) = (Vec::new(), Vec::new(), 0usize);
    for root in 0..n {
        if index[root] != usize::MAX {
            continue;
        }
        let mut call: Vec<(usize, usize)> = vec![(root, 0)];
        index[root] = next;
        low[root] = next;
        next += 1;
        stack.push(root);
        on[root] = true;
        while let Some(&mut (v, ref mut e)) = call.last_mut() {
            if *e < adj[v].len() {
                let w = adj[v][*e];
                *e += 1;
                if index[w] == usize::MAX {
                    index[w] = next;
                    low[w] = next;
                    next += 1;
                    stack.push(w);
                    on[w] = true;
                    call.push((w, 0));
                } else if on[w] {
                    low[v] = low[v].min(index[w]);
                }
            } else {
                call.pop();
                if let Some(&(u, _)) = call.last() {
                    low[u] = low[u].min(low[v]);
                }
                if low[v] == index[v] {
                    let mut size = 0;
                    while let Some(w) = stack.pop() {
                        on[w] = false;
                        size += 1;
                        if w == v {
                            break;
                        }
                    }
                    sizes.push(size);
                }
            }
        }
    }
    sizes
}

/// numpy's median (the mean of the two middle values for an even count).
fn median(v: &[f64]) -> f64 {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| !x.is_nan()).collect();
    if s.is_empty() {
        return f64::NAN;
    }
    s.sort_by(|a, b| a.total_cmp(b));
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strong_components_of_a_small_graph() {
        // 0 -> 1 -> 2 -> 0 is one piece; 3 -> 0 alone; 4 <-> 5
        let adj = vec![vec![1], vec![2], vec![0], vec![0], vec![5], vec![4]];
        let mut s = strong_components(&adj);
        s.sort();
        assert_eq!(s, vec![1, 2, 3]);
    }

    #[test]
    fn one_batch_is_an_error_and_mixing_scores_higher() {
        // two types far apart; batches alternate (mixed) or follow a shift (unmixed)
        let n = 40;
        // every cell's 12 nearest (itself first), by brute force
        let knn_of = |x: &[f32]| {
            let mut idx = Vec::new();
            let mut dist = Vec::new();
            for i in 0..n {
                let mut o: Vec<(f32, u32)> =
                    (0..n).map(|j| (((x[2 * i] - x[2 * j]).powi(2) + (x[2 * i + 1] - x[2 * j + 1]).powi(2)).sqrt(), j as u32)).collect();
                o.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                idx.extend(o[..12].iter().map(|p| p.1));
                dist.extend(o[..12].iter().map(|p| p.0));
            }
            (idx, dist)
        };
        fn nb(p: &(Vec<u32>, Vec<f32>)) -> Neighbours<'_> {
            Neighbours { n: p.0.len() / 12, k: 12, indices: &p.0, distances: &p.1 }
        }
        let types: Vec<usize> = (0..n).map(|i| i / 20).collect();
        let batches: Vec<usize> = (0..n).map(|i| i % 2).collect();
        let mixed: Vec<f32> = (0..n).flat_map(|i| [(i / 20) as f32 * 50.0 + (i % 7) as f32 * 0.3, (i % 5) as f32 * 0.3]).collect();
        let unmixed: Vec<f32> =
            (0..n).flat_map(|i| [(i / 20) as f32 * 50.0 + (i % 7) as f32 * 0.3, (i % 5) as f32 * 0.3 + (i % 2) as f32 * 10.0]).collect();
        let (km, ku) = (knn_of(&mixed), knn_of(&unmixed));
        let m = evaluate_batches(&mixed, 2, &types, &batches, nb(&km)).unwrap();
        let u = evaluate_batches(&unmixed, 2, &types, &batches, nb(&ku)).unwrap();
        assert!(m.ilisi > u.ilisi + 0.3 && m.silhouette_batch.unwrap() > u.silhouette_batch.unwrap() + 0.3, "{m:?} {u:?}");
        assert!((m.clisi - 1.0).abs() < 1e-9 && (m.graph_connectivity - 1.0).abs() < 1e-9, "{m:?}");
        let err = evaluate_batches(&mixed, 2, &types, &vec![0; n], nb(&km)).unwrap_err().to_string();
        assert!(err.contains("two batches"), "{err}");
    }

    #[test]
    fn median_as_numpy() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
