//! Leiden (Traag, Waltman & van Eck 2019) and Louvain community detection, written from
//! the paper: fast local moving with a queue, refinement (Leiden only: merges within each
//! community, restricted to well-connected sets, chosen at random with probability
//! ∝ exp(ΔH/θ)), aggregation with the unrefined partition as the starting point, repeated
//! until nothing moves; the whole algorithm is then iterated from its own result until the
//! quality stops improving. Qualities: modularity with a resolution (RB configuration
//! model, what scanpy's `tl.leiden` optimises) and CPM. Seeded: ChaCha.

use super::graph::Graph;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quality {
    /// Σ_c [e_c − γ K_c² / (2m)] / (2m): modularity (Reichardt–Bornholdt configuration model).
    Modularity,
    /// Constant Potts model: Σ_c [e_c − γ n_c (n_c − 1)/2].
    Cpm,
}

#[derive(Debug, Clone, Copy)]
pub struct CommunityParams {
    pub quality: Quality,
    pub resolution: f64,
    /// Refinement (Leiden) or not (Louvain).
    pub refine: bool,
    /// Randomness of the refinement merges.
    pub theta: f64,
    /// Outer iterations of the whole algorithm (0 = until the quality stops improving).
    pub max_iterations: usize,
    pub seed: u64,
}

/// A graph level: weights plus the node "mass" used by the quality (degree or size).
struct Level {
    g: Graph,
    mass: Vec<f64>,
}

struct Ctx {
    gamma: f64,
    /// gain(v -> C) = w(v, C) − gamma * scale * mass(v) * mass(C)
    scale: f64,
}

/// Move nodes to the neighbouring community with the largest positive gain, revisiting
/// the neighbours of moved nodes (the "fast local move" of the Leiden paper).
fn move_nodes(l: &Level, part: &mut [usize], c: &Ctx, rng: &mut ChaCha8Rng) -> bool {
    let n = l.g.n;
    let mut cmass = vec![0.0f64; n];
    let mut csize = vec![0usize; n];
    for v in 0..n {
        cmass[part[v]] += l.mass[v];
        csize[part[v]] += 1;
    }
    let mut empty: Vec<usize> = (0..n).filter(|&x| csize[x] == 0).collect();
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(rng);
    let mut queue: VecDeque<usize> = order.into();
    let mut queued = vec![true; n];
    let mut wto = vec![0.0f64; n];
    let mut seen: Vec<usize> = Vec::new();
    let mut moved = false;
    while let Some(v) = queue.pop_front() {
        queued[v] = false;
        let cur = part[v];
        for (u, w) in l.g.neighbors(v) {
            if u == v {
                continue;
            }
            let cu = part[u];
            if wto[cu] == 0.0 {
                seen.push(cu);
            }
            wto[cu] += w;
        }
        let mv = l.mass[v];
        cmass[cur] -= mv;
        csize[cur] -= 1;
        let gain = |comm: usize, w: f64, cmass: &[f64]| w - c.gamma * c.scale * mv * cmass[comm];
        let mut best = cur;
        let mut best_gain = gain(cur, wto[cur], &cmass);
        for &cc in &seen {
            let g = gain(cc, wto[cc], &cmass);
            if g > best_gain + 1e-12 * g.abs().max(1.0) {
                best = cc;
                best_gain = g;
            }
        }
        if best_gain < 0.0 && csize[cur] > 0 {
            // alone is better than anywhere else
            if let Some(e) = empty.pop() {
                best = e;
            }
        }
        for &cc in &seen {
            wto[cc] = 0.0;
        }
        seen.clear();
        if csize[cur] == 0 && best != cur {
            empty.push(cur);
        }
        cmass[best] += mv;
        csize[best] += 1;
        part[v] = best;
        if best != cur {
            moved = true;
            for (u, _) in l.g.neighbors(v) {
                if part[u] != best && !queued[u] {
                    queued[u] = true;
                    queue.push_back(u);
                }
            }
        }
    }
    moved
}

/// Leiden refinement: within each community of `part`, start from singletons and merge
/// well-connected nodes into well-connected sub-communities.
fn refine(l: &Level, part: &[usize], c: &Ctx, theta: f64, rng: &mut ChaCha8Rng) -> Vec<usize> {
    let n = l.g.n;
    let mut refined: Vec<usize> = (0..n).collect();
    let mut rmass = l.mass.clone();
    let mut rsize = vec![1usize; n];
    // mass of each community of `part`, and each node's edge weight to the rest of its community
    let mut smass = vec![0.0f64; n];
    for v in 0..n {
        smass[part[v]] += l.mass[v];
    }
    // ext[r] = weight from refined community r to the rest of its community of `part`
    let mut ext: Vec<f64> = (0..n).map(|v| l.g.neighbors(v).filter(|&(u, _)| u != v && part[u] == part[v]).map(|(_, w)| w).sum()).collect();
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(rng);
    let mut wto = vec![0.0f64; n];
    let mut seen: Vec<usize> = Vec::new();
    for v in order {
        if rsize[refined[v]] != 1 {
            continue; // only singletons move
        }
        let s = part[v];
        let mv = l.mass[v];
        if ext[v] < c.gamma * c.scale * mv * (smass[s] - mv) {
            continue; // v is not well connected to its community
        }
        for (u, w) in l.g.neighbors(v) {
            if u == v || part[u] != s {
                continue;
            }
            let r = refined[u];
            if wto[r] == 0.0 {
                seen.push(r);
            }
            wto[r] += w;
        }
        let own = refined[v];
        let mut cands: Vec<(usize, f64)> = Vec::new();
        for &r in &seen {
            if r == own {
                continue;
            }
            if ext[r] < c.gamma * c.scale * rmass[r] * (smass[s] - rmass[r]) {
                continue; // not well connected
            }
            let g = wto[r] - c.gamma * c.scale * mv * rmass[r];
            if g >= 0.0 {
                cands.push((r, g));
            }
        }
        if !cands.is_empty() {
            // staying alone has gain 0; pick with probability ∝ exp(gain/θ)
            let gmax = cands.iter().map(|x| x.1).fold(0.0f64, f64::max);
            let mut cum = Vec::with_capacity(cands.len() + 1);
            let mut tot = (-(gmax) / theta).exp();
            cum.push(tot);
            for &(_, g) in &cands {
                tot += ((g - gmax) / theta).exp();
                cum.push(tot);
            }
            let x = rng.random::<f64>() * tot;
            let pick = cum.partition_point(|&cv| cv <= x);
            if pick > 0 && pick <= cands.len() {
                let (r, _) = cands[pick - 1];
                let w_vr = wto[r];
                ext[r] = ext[r] + ext[v] - 2.0 * w_vr;
                rmass[r] += mv;
                rsize[r] += 1;
                rmass[own] -= mv;
                rsize[own] -= 1;
                refined[v] = r;
            }
        }
        for &r in &seen {
            wto[r] = 0.0;
        }
        seen.clear();
    }
    refined
}

/// Renumber labels 0..k in order of first appearance.
fn relabel(p: &mut [usize]) -> usize {
    let mut map = std::collections::HashMap::new();
    for x in p.iter_mut() {
        let next = map.len();
        *x = *map.entry(*x).or_insert(next);
    }
    map.len()
}

/// The aggregate graph whose nodes are the communities of `p` (labels 0..k).
fn aggregate(l: &Level, p: &[usize], k: usize) -> Level {
    let mut trip = Vec::with_capacity(l.g.n_edges());
    for v in 0..l.g.n {
        for (u, w) in l.g.neighbors(v) {
            trip.push((p[v] as u32, p[u] as u32, w));
        }
    }
    let mut mass = vec![0.0; k];
    for v in 0..l.g.n {
        mass[p[v]] += l.mass[v];
    }
    Level { g: Graph::from_triplets(k, trip), mass }
}

/// Quality of a partition (modularity: the usual Q in [-1/2, 1]; CPM: Σ e_c − γ n_c(n_c−1)/2).
pub fn quality(g: &Graph, labels: &[usize], q: Quality, resolution: f64) -> f64 {
    let k = labels.iter().max().map_or(0, |m| m + 1);
    let mut inside = vec![0.0f64; k];
    for v in 0..g.n {
        for (u, w) in g.neighbors(v) {
            if labels[u] == labels[v] {
                inside[labels[v]] += w; // each edge twice (both directions)
            }
        }
    }
    match q {
        Quality::Modularity => {
            let deg = g.degrees();
            let m2: f64 = deg.iter().sum();
            let mut kc = vec![0.0f64; k];
            for v in 0..g.n {
                kc[labels[v]] += deg[v];
            }
            (0..k).map(|c| inside[c] - resolution * kc[c] * kc[c] / m2).sum::<f64>() / m2
        }
        Quality::Cpm => {
            let mut nc = vec![0.0f64; k];
            for &l in labels {
                nc[l] += 1.0;
            }
            (0..k).map(|c| inside[c] / 2.0 - resolution * nc[c] * (nc[c] - 1.0) / 2.0).sum()
        }
    }
}

/// One pass of the algorithm from `init` (labels on the nodes of `g`).
fn one_pass(g: &Graph, init: Vec<usize>, p: &CommunityParams, rng: &mut ChaCha8Rng) -> Vec<usize> {
    let (mass, scale) = match p.quality {
        Quality::Modularity => {
            let d = g.degrees();
            let m2: f64 = d.iter().sum();
            (d, if m2 > 0.0 { 1.0 / m2 } else { 0.0 })
        }
        Quality::Cpm => (vec![1.0; g.n], 1.0),
    };
    let c = Ctx { gamma: p.resolution, scale };
    let mut level = Level { g: g.clone(), mass };
    let mut part = init;
    // membership of original nodes in the current level's nodes
    let mut node_of: Vec<usize> = (0..g.n).collect();
    loop {
        move_nodes(&level, &mut part, &c, rng);
        let k = relabel(&mut part);
        if k == level.g.n {
            break; // every community is a single node: done
        }
        let (agg_labels, start) = if p.refine {
            let mut r = refine(&level, &part, &c, p.theta, rng);
            let kr = relabel(&mut r);
            // the aggregate's start partition: each refined community in its community of `part`
            let mut start = vec![0usize; kr];
            for v in 0..level.g.n {
                start[r[v]] = part[v];
            }
            (r, start)
        } else {
            (part.clone(), (0..k).collect())
        };
        let kk = agg_labels.iter().max().map_or(0, |m| m + 1);
        level = aggregate(&level, &agg_labels, kk);
        for x in node_of.iter_mut() {
            *x = agg_labels[*x];
        }
        part = start;
        if kk == 0 {
            break;
        }
    }
    node_of.iter().map(|&x| part[x]).collect()
}

/// Communities of `g`: labels 0..k, numbered by decreasing size (ties by first node).
pub fn communities(g: &Graph, p: &CommunityParams) -> (Vec<usize>, f64) {
    let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
    let mut labels: Vec<usize> = (0..g.n).collect();
    let mut best_q = f64::NEG_INFINITY;
    let mut it = 0;
    loop {
        let next = one_pass(g, labels.clone(), p, &mut rng);
        let q = quality(g, &next, p.quality, p.resolution);
        it += 1;
        if q > best_q + 1e-12 * best_q.abs().max(1e-300) || it == 1 {
            let improved = q > best_q;
            labels = next;
            best_q = q;
            if !improved {
                break;
            }
        } else {
            break;
        }
        if p.max_iterations > 0 && it >= p.max_iterations {
            break;
        }
    }
    // by size, descending
    let k = relabel(&mut labels);
    let mut size = vec![0usize; k];
    for &l in &labels {
        size[l] += 1;
    }
    let mut ord: Vec<usize> = (0..k).collect();
    ord.sort_by(|&a, &b| size[b].cmp(&size[a]).then(a.cmp(&b)));
    let mut rank = vec![0usize; k];
    for (r, &c) in ord.iter().enumerate() {
        rank[c] = r;
    }
    (labels.iter().map(|&l| rank[l]).collect(), best_q)
}
