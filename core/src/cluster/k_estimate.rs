//! The number of clusters when neither k nor labels are given: one of three label-free
//! rules on an embedding (the consensus default's, and `scdeep cluster` without `-k`).
//! Which rule, and its constants: chosen by leave-one-dataset-out over the labelled and
//! simulated sets (bench/generalization.py, bench/studies/k_estimate/k_rules.py; their
//! numbers in bench/results/generalization.json and bench/studies/k_estimate/results).

use super::{build_graph, communities, kmeans, ClusterConfig, CommunityParams, KMeansParams};
use crate::error::{Error, Result};
use crate::progress::Progress;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tch::Tensor;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum KRule {
    /// The number of Leiden communities at one resolution.
    Leiden,
    /// The number of Leiden communities that holds over the widest span of
    /// log-resolution on a grid (ties: the larger number).
    Plateau,
    /// The k whose K-means partition has the highest mean silhouette.
    Silhouette,
}

/// A k rule and its constants.
#[derive(Debug, Clone, PartialEq)]
pub struct KEstimate {
    pub rule: KRule,
    /// Bounds of the estimate (every rule).
    pub k_min: usize,
    pub k_max: usize,
    /// `leiden`: the resolution.
    pub resolution: f64,
    /// `plateau`: the grid, `resolution_steps` resolutions evenly spaced in log scale
    /// from `resolution_range[0]` to `resolution_range[1]`.
    pub resolution_range: [f64; 2],
    pub resolution_steps: usize,
    /// `silhouette`: at most this many cells (drawn from the seed) are scanned.
    pub scan_cells: usize,
    /// `leiden` and `plateau`: above this many cells, the graph is built on this many
    /// (drawn from the seed), so that the scan's cost stops growing with the data.
    pub graph_cells: usize,
}

impl Default for KEstimate {
    /// The consensus default's rule (`models::consensus::Params` reads it from here): the
    /// plateau, whose grid was fixed before it was measured (no constant tuned on the
    /// sets); chosen over Leiden at 0.2 on 27 of 28 leave-one-dataset-out folds
    /// (bench/results/generalization.json, `k_rules_on_default`).
    fn default() -> Self {
        KEstimate {
            rule: KRule::Plateau,
            k_min: 2,
            k_max: 30,
            resolution: 0.2,
            resolution_range: [0.02, 4.0],
            resolution_steps: 41,
            scan_cells: 2000,
            graph_cells: 50_000,
        }
    }
}

impl KEstimate {
    /// The grid of the plateau rule.
    pub fn grid(&self) -> Vec<f64> {
        let [lo, hi] = self.resolution_range;
        let m = self.resolution_steps;
        if m < 2 {
            return vec![lo];
        }
        (0..m).map(|i| (lo.ln() + (hi.ln() - lo.ln()) * i as f64 / (m - 1) as f64).exp()).collect()
    }
}

/// The stream of the cells the silhouette scan draws.
const K_SCAN_STREAM: u64 = 0x4B5C_0000;

/// k by `est.rule` on `x` (cells x dims), the graph rules on `cfg`'s kNN graph; k and the
/// evidence (the count or score of every candidate) for run.json and the log.
pub fn estimate_k(x: &Tensor, est: &KEstimate, cfg: &ClusterConfig, seed: u64, progress: &mut dyn Progress) -> Result<(usize, Value)> {
    let n = x.size()[0] as usize;
    if n < 3 {
        return Err(Error::data(format!("too few cells ({n}) to estimate the number of clusters")));
    }
    let bound = |k: usize| k.clamp(est.k_min, est.k_max).min(n);
    let params = |resolution: f64| CommunityParams {
        quality: cfg.quality,
        resolution,
        refine: true,
        theta: 0.01,
        max_iterations: cfg.max_iterations,
        seed,
    };
    match est.rule {
        KRule::Leiden | KRule::Plateau => {
            let xs = sample_cells(x, est.graph_cells, seed)?;
            let (g, knn) = build_graph(&xs, cfg, cfg.n_neighbors, seed, progress)?;
            let count = |r: f64| {
                let (l, _) = communities(&g, &params(r));
                l.iter().max().map_or(0, |m| m + 1)
            };
            if est.rule == KRule::Leiden {
                let found = count(est.resolution);
                let k = bound(found);
                return Ok((
                    k,
                    json!({"rule": "leiden", "cells": xs.size()[0], "resolution": est.resolution, "communities": found, "knn": knn}),
                ));
            }
            // resolutions rise and so, mostly, do the counts: the scan stops after the
            // first count above k_max (no plateau there is admissible)
            let grid = est.grid();
            let mut counts = Vec::with_capacity(grid.len());
            for &r in &grid {
                counts.push(count(r));
                if counts.last().is_some_and(|&c| c > est.k_max) {
                    break;
                }
            }
            let admissible: Vec<usize> = counts.iter().map(|&c| if c > est.k_max { 0 } else { c }).collect();
            let (k, from, len) = longest_plateau(&admissible, est.k_min.max(2));
            let k = bound(k);
            progress.message(&format!(
                "k by plateau: {k} communities over {len} of {} resolutions from {:.3}",
                grid.len(),
                grid.get(from).copied().unwrap_or(f64::NAN)
            ));
            Ok((
                k,
                json!({"rule": "plateau", "cells": xs.size()[0],
                       "resolutions": grid[..counts.len()].iter().map(|r| (r * 1e4).round() / 1e4).collect::<Vec<_>>(),
                       "communities": counts, "plateau": {"k": k, "from": grid.get(from), "steps": len}, "knn": knn}),
            ))
        }
        KRule::Silhouette => {
            let m = n.min(est.scan_cells);
            let xs = sample_cells(x, m, seed)?;
            let d = xs.size()[1] as usize;
            let rows = Vec::<f32>::try_from(&xs.f_to_device(tch::Device::Cpu)?.f_contiguous()?.f_view([-1])?)?;
            let mut scores = serde_json::Map::new();
            let mut best: Option<(usize, f64)> = None;
            for k in est.k_min..=est.k_max.min(m.saturating_sub(1)) {
                let l = kmeans(&xs, &KMeansParams { k, n_init: 3, max_iter: cfg.max_iter, tol: cfg.tol, seed })?.labels;
                let (codes, found) = crate::metrics::encode(&l);
                if found < 2 {
                    continue;
                }
                let s = crate::metrics::silhouette(&rows, d, &codes)?;
                scores.insert(k.to_string(), json!((s * 1e4).round() / 1e4));
                if best.is_none_or(|(_, b)| s > b) {
                    best = Some((k, s));
                }
            }
            let (k, _) = best.ok_or_else(|| Error::data(format!("too few cells ({n}) to estimate the number of clusters")))?;
            progress.message(&format!("silhouette by k on {m} cells: best k = {k}"));
            Ok((k, json!({"rule": "silhouette", "cells": m, "silhouette_by_k": scores})))
        }
    }
}

/// At most `m` rows of `x`, drawn from the seed (in their order), or `x` itself.
fn sample_cells(x: &Tensor, m: usize, seed: u64) -> Result<Tensor> {
    let n = x.size()[0] as usize;
    if m >= n {
        return Ok(x.shallow_clone());
    }
    let mut rng = crate::seed::rng_for(seed, K_SCAN_STREAM);
    let mut cells = rand::seq::index::sample(&mut rng, n, m).into_vec();
    cells.sort_unstable();
    Ok(x.f_index_select(0, &Tensor::from_slice(&cells.iter().map(|&i| i as i64).collect::<Vec<_>>()).to_device(x.device()))?)
}

/// k by `est`, then [`super::run`] with that k; the clustering, and the k rule's evidence
/// (`scdeep cluster` without `-k`).
pub fn run_estimating_k(
    x: &Tensor,
    cfg: &ClusterConfig,
    est: &KEstimate,
    seed: u64,
    progress: &mut dyn Progress,
) -> Result<(super::Clustering, Value)> {
    let (k, evidence) = estimate_k(x, est, cfg, seed, progress)?;
    progress.message(&format!("estimated k = {k} ({:?} rule)", est.rule));
    Ok((super::run(x, cfg, Some(k), seed, progress)?, evidence))
}

/// The count at least `min` that repeats over the longest run of consecutive grid points
/// (ties: the larger count), its first index and the run's length; (`min`, 0, 0) when no
/// count reaches `min`.
fn longest_plateau(counts: &[usize], min: usize) -> (usize, usize, usize) {
    let mut best = (min, 0, 0);
    let mut i = 0;
    while i < counts.len() {
        let mut j = i;
        while j < counts.len() && counts[j] == counts[i] {
            j += 1;
        }
        let (c, len) = (counts[i], j - i);
        if c >= min && (len > best.2 || (len == best.2 && c > best.0)) {
            best = (c, i, len);
        }
        i = j;
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_plateau_wins_and_ties_go_to_the_larger_count() {
        assert_eq!(longest_plateau(&[1, 1, 1, 1, 3, 3, 3, 5, 5, 8], 2), (3, 4, 3));
        assert_eq!(longest_plateau(&[2, 2, 4, 4, 4, 2, 6, 6, 6], 2), (6, 6, 3));
        // a count that comes back after a break is two plateaus, not one
        assert_eq!(longest_plateau(&[3, 3, 4, 3, 3, 5, 5, 5], 2), (5, 5, 3));
        assert_eq!(longest_plateau(&[1, 1, 1], 2), (2, 0, 0));
    }

    #[test]
    fn the_grid_spans_the_range_in_log_scale() {
        let e = KEstimate { resolution_range: [0.02, 2.0], resolution_steps: 3, ..Default::default() };
        let g = e.grid();
        assert!((g[0] - 0.02).abs() < 1e-12 && (g[1] - 0.2).abs() < 1e-9 && (g[2] - 2.0).abs() < 1e-9, "{g:?}");
    }
}
