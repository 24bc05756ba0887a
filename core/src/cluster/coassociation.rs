//! Consensus of partitions by evidence accumulation (Fred & Jain 2005) on a sparse
//! co-association graph: each edge of the embedding's kNN graph is weighted by how often
//! its two cells share a cluster across the partitions, and the weighted graph is cut
//! into communities (Leiden, resolution searched to hit k). Only kNN pairs are counted,
//! so the cost is cells x neighbours x partitions, not cells squared.

use super::graph::Graph;
use super::leiden::{communities, CommunityParams};

/// One partition of `partitions`' consensus on the kNN graph `g`: `leiden` (its
/// resolution is searched to give `k` clusters, at most `super::MAX_SEARCH_RUNS` runs,
/// its seed offset by each attempt) on their co-association graph; labels numbered by
/// first appearance. Returns (labels, resolution, quality value, Leiden runs).
pub fn combine(g: &Graph, partitions: &[Vec<usize>], k: usize, leiden: &CommunityParams) -> (Vec<usize>, f64, f64, usize) {
    let cg = coassociation(g, partitions);
    let (labels, res, q, tried) = super::search_resolution(k, super::MAX_SEARCH_RUNS, |r, attempt| {
        communities(&cg, &CommunityParams { resolution: r, seed: leiden.seed.wrapping_add(attempt), ..*leiden })
    });
    (canonical(&labels), res, q, tried)
}

/// The kNN graph `g` with each edge (i, j) reweighted by the co-association of i and j
/// over `partitions` (labels per cell; the same cells in each): (agree + 1/2) / (P + 1),
/// where `agree` counts the partitions that put i and j in one cluster. The half
/// pseudo-count keeps an edge no partition supports at a small positive weight, so the
/// graph's connected components are those of `g`.
pub fn coassociation(g: &Graph, partitions: &[Vec<usize>]) -> Graph {
    let p = partitions.len() as f64;
    let mut weights = Vec::with_capacity(g.weights.len());
    for i in 0..g.n {
        for &j in &g.indices[g.indptr[i]..g.indptr[i + 1]] {
            let agree = partitions.iter().filter(|l| l[i] == l[j as usize]).count() as f64;
            weights.push((agree + 0.5) / (p + 1.0));
        }
    }
    Graph { n: g.n, indptr: g.indptr.clone(), indices: g.indices.clone(), weights }
}

/// Labels renumbered 0, 1, ... in order of first appearance (the same partition gives the
/// same numbers whatever its labels were).
pub fn canonical(labels: &[usize]) -> Vec<usize> {
    let mut map = std::collections::HashMap::new();
    labels
        .iter()
        .map(|&l| {
            let next = map.len();
            *map.entry(l).or_insert(next)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::Quality;

    fn leiden(seed: u64) -> CommunityParams {
        CommunityParams { quality: Quality::Modularity, resolution: 1.0, refine: true, theta: 0.01, max_iterations: 0, seed }
    }

    fn ring(n: usize) -> Graph {
        let mut t = Vec::new();
        for i in 0..n {
            for d in 1..=2 {
                let j = (i + d) % n;
                t.push((i as u32, j as u32, 1.0));
                t.push((j as u32, i as u32, 1.0));
            }
        }
        Graph::from_triplets(n, t)
    }

    #[test]
    fn weights_count_the_partitions_that_agree() {
        let g = ring(8);
        let a = vec![0, 0, 0, 0, 1, 1, 1, 1];
        let b = vec![5, 5, 7, 7, 7, 7, 5, 5];
        let c = coassociation(&g, &[a, b]);
        for i in 0..8 {
            for (j, w) in c.neighbors(i) {
                let agree = [i < 4, (2..6).contains(&i)].iter().zip([j < 4, (2..6).contains(&j)]).filter(|(x, y)| **x == *y).count();
                assert!((w - (agree as f64 + 0.5) / 3.0).abs() < 1e-12, "{i} {j} {w}");
            }
        }
        assert_eq!(c.n_edges(), g.n_edges());
    }

    /// Two rings of 12 cells joined by one edge.
    fn two_rings() -> (Graph, Vec<usize>) {
        let mut t = Vec::new();
        for base in [0usize, 12] {
            for i in 0..12 {
                for d in 1..=3 {
                    let (a, b) = ((base + i) as u32, (base + (i + d) % 12) as u32);
                    t.push((a, b, 1.0));
                    t.push((b, a, 1.0));
                }
            }
        }
        t.push((0, 12, 1.0));
        t.push((12, 0, 1.0));
        (Graph::from_triplets(24, t), (0..24).map(|i| i / 12).collect())
    }

    #[test]
    fn the_consensus_of_identical_partitions_is_that_partition() {
        let (g, rings) = two_rings();
        // split each ring in two halves: 4 clusters
        let four: Vec<usize> = (0..24).map(|i| i / 6).collect();
        for truth in [rings, four] {
            let k = truth.iter().max().unwrap() + 1;
            let parts = vec![truth.clone(); 5];
            let (labels, _, _, _) = combine(&g, &parts, k, &leiden(0));
            assert_eq!(labels, canonical(&truth));
        }
    }

    #[test]
    fn renaming_the_labels_of_a_partition_changes_nothing() {
        let (g, rings) = two_rings();
        let noisy: Vec<usize> = (0..24).map(|i| if i == 5 || i == 17 { 1 - i / 12 } else { i / 12 }).collect();
        let parts = vec![rings.clone(), rings.clone(), noisy.clone()];
        let renamed =
            vec![rings.iter().map(|l| 7 - l).collect(), rings.iter().map(|l| l + 3).collect(), noisy.iter().map(|l| 9 * l).collect()];
        let a = combine(&g, &parts, 2, &leiden(3));
        let b = combine(&g, &renamed, 2, &leiden(3));
        assert_eq!(a.0, b.0);
        assert_eq!(a.0, canonical(&rings), "the majority's rings, not the noisy run's two swapped cells");
        // and the same seed gives the same labels
        assert_eq!(a.0, combine(&g, &parts, 2, &leiden(3)).0);
    }

    #[test]
    fn canonical_numbers_by_first_appearance() {
        assert_eq!(canonical(&[7, 7, 3, 9, 3]), vec![0, 0, 1, 2, 1]);
    }
}
