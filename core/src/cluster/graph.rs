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

/// A kNN graph of `k` neighbours (the cell itself included) needs 2 <= k < n cells.
pub(crate) fn check_k(k: usize, n: usize) -> Result<()> {
    if k < 2 || k >= n {
        return Err(Error::config(
            "cluster.n_neighbors",
            k,
            format!("must be at least 2 and below the number of cells ({n}); it counts the cell itself"),
        ));
    }
    Ok(())
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

impl Knn {
    /// The same neighbours as the batch metrics take them.
    pub fn neighbours(&self) -> crate::metrics::batch::Neighbours<'_> {
        crate::metrics::batch::Neighbours { n: self.n, k: self.k, indices: &self.indices, distances: &self.distances }
    }
}

/// Checked, float, unit rows for cosine.
pub(super) fn prepare(x: &Tensor, k: usize, metric: Metric) -> Result<Tensor> {
    check_k(k, x.size()[0] as usize)?;
    let x = x.to_kind(Kind::Float);
    if x.isfinite().all().int64_value(&[]) != 1 {
        return Err(Error::data("the embedding contains NaN or infinite values"));
    }
    Ok(match metric {
        Metric::Cosine => &x / x.norm_scalaropt_dim(2.0, [1], true).clamp_min(1e-12),
        Metric::Euclidean => x,
    })
}

/// The k nearest of `cand` (global row ids; None: every row) for each of `query` (global
/// row ids), the query itself first whenever it is a candidate: indices and distances,
/// query-major.
fn nearest_among(x: &Tensor, sq: &Tensor, query: &Tensor, cand: Option<&Tensor>, k: usize, metric: Metric) -> Result<(Vec<i64>, Vec<f32>)> {
    let dev = x.device();
    let len = query.size()[0];
    let xq = x.index_select(0, query);
    // ||x_j||^2 - 2 x_i.x_j ranks the neighbours of row i (||x_i||^2 is constant per row)
    let idx = match cand {
        Some(cand) => {
            let mut d2 = sq.index_select(0, cand).unsqueeze(0).addmm(&(&xq * -2.0), &x.index_select(0, cand).transpose(0, 1));
            let _ = d2.masked_fill_(&cand.unsqueeze(0).eq_tensor(&query.unsqueeze(1)), f64::NEG_INFINITY);
            let (_, pos) = d2.topk(k as i64, 1, false, true);
            cand.index_select(0, &pos.view([-1])).view([len, k as i64])
        }
        None => {
            let mut d2 = sq.unsqueeze(0).addmm(&(&xq * -2.0), &x.transpose(0, 1));
            let rows = Tensor::arange(len, (Kind::Int64, dev));
            let _ = d2.index_put_(&[Some(rows), Some(query.shallow_clone())], &Tensor::from(f32::NEG_INFINITY).to_device(dev), false);
            d2.topk(k as i64, 1, false, true).1
        }
    };
    // The expansion above loses digits for near neighbours: recompute the chosen
    // distances from the differences, in float64.
    let nb = x.index_select(0, &idx.view([-1])).view([len, k as i64, -1]).to_kind(Kind::Double);
    let sqd = (nb - xq.to_kind(Kind::Double).unsqueeze(1)).square().sum_dim_intlist(2, false, Kind::Double);
    let dist = match metric {
        Metric::Euclidean => sqd.sqrt(),
        Metric::Cosine => sqd / 2.0, // 1 - cos for unit vectors
    };
    let dist = Vec::<f32>::try_from(&dist.to_kind(Kind::Float).to_device(tch::Device::Cpu).contiguous().view([-1]))?;
    let idx = Vec::<i64>::try_from(&idx.to_device(tch::Device::Cpu).contiguous().view([-1]))?;
    Ok((idx, dist))
}

/// Writes the rows found for `query` (global row ids) into `out`.
fn scatter(out: &mut Knn, query: &[i64], (idx, dist): (Vec<i64>, Vec<f32>)) {
    let k = out.k;
    for (r, &row) in query.iter().enumerate() {
        let o = row as usize * k;
        for t in 0..k {
            out.indices[o + t] = idx[r * k + t] as u32;
            out.distances[o + t] = dist[r * k + t];
        }
    }
}

/// Exact kNN of the rows of `x` (n x d, any device), `k` including the row itself:
/// blocked matrix products and top-k on the device.
pub fn knn_exact(x: &Tensor, k: usize, metric: Metric, block: usize) -> Result<Knn> {
    let x = prepare(x, k, metric)?;
    let n = x.size()[0] as usize;
    let sq = x.square().sum_dim_intlist(1, false, Kind::Float);
    let mut out = Knn { n, k, indices: vec![0; n * k], distances: vec![0.0; n * k] };
    let all = Tensor::arange(n as i64, (Kind::Int64, x.device()));
    for s in (0..n).step_by(block.max(1)) {
        let len = block.max(1).min(n - s);
        let q: Vec<i64> = (s as i64..(s + len) as i64).collect();
        let found = nearest_among(&x, &sq, &all.narrow(0, s as i64, len as i64), None, k, metric)?;
        scatter(&mut out, &q, found);
    }
    Ok(out)
}

/// An inverted file over the rows of an embedding, for approximate kNN on the device.
/// K-means on a sample splits the cells into `nlist` lists (0: one per ~`IVF_LIST_CELLS`
/// cells), trained in two levels above `IVF_FLAT_MAX_LISTS` lists, and every cell keeps its
/// `max_probes` nearest list centres. A search with `nprobe` (<= `max_probes`) lets the
/// cells of one list search together their own list and the `search` lists (0: 3 x nprobe)
/// they take most often among their `nprobe` nearest, which keeps the work per cell fixed
/// whatever the number of lists. Deterministic for a seed.
pub struct IvfIndex {
    x: Tensor,
    sq: Tensor,
    k: usize,
    metric: Metric,
    max_probes: usize,
    /// n x max_probes, nearest first
    probes: Vec<u32>,
    members: Vec<Vec<i64>>,
}

impl IvfIndex {
    pub fn build(x: &Tensor, k: usize, metric: Metric, nlist: usize, max_probes: usize, seed: u64) -> Result<IvfIndex> {
        let x = prepare(x, k, metric)?;
        let n = x.size()[0] as usize;
        let dev = x.device();
        let nlist = if nlist == 0 { n / IVF_LIST_CELLS } else { nlist }.clamp(1, n);
        let mut rng = crate::seed::rng_for(seed, 7);
        let sample: Vec<i64> = {
            let mut all: Vec<i64> = (0..n as i64).collect();
            rand::seq::SliceRandom::shuffle(all.as_mut_slice(), &mut rng);
            all.truncate((IVF_SAMPLE_PER_LIST * nlist).min(n));
            all
        };
        let xs = x.index_select(0, &Tensor::from_slice(&sample).to_device(dev));
        let cent = ivf_centres(&xs, nlist, seed)?;
        let nlist = cent.size()[0] as usize;
        let max_probes = max_probes.clamp(1, nlist);
        let probes = nearest_centres(&x, &cent, max_probes)?;
        let mut members: Vec<Vec<i64>> = vec![Vec::new(); nlist];
        for i in 0..n {
            members[probes[i * max_probes] as usize].push(i as i64);
        }
        let sq = x.square().sum_dim_intlist(1, false, Kind::Float);
        Ok(IvfIndex { x, sq, k, metric, max_probes, probes, members })
    }

    /// Searches for `k` neighbours from now on (below the number of cells).
    pub fn set_k(&mut self, k: usize) -> Result<()> {
        check_k(k, self.sq.size()[0] as usize)?;
        self.k = k;
        Ok(())
    }

    pub fn n_lists(&self) -> usize {
        self.members.len()
    }

    /// The candidates searched by the cells of list `l`: its members first, then the members
    /// of the `search` lists they take most often among their `nprobe` nearest (ties: the
    /// lower list); every cell when that makes fewer than k.
    fn candidates(&self, l: usize, nprobe: usize, search: usize, count: &mut [u32]) -> Vec<i64> {
        let (pm, nprobe) = (self.max_probes, nprobe.clamp(1, self.max_probes));
        let search = if search == 0 { 3 * nprobe } else { search };
        let mut seen: Vec<usize> = Vec::new();
        for &i in &self.members[l] {
            for &p in &self.probes[i as usize * pm + 1..i as usize * pm + nprobe] {
                let p = p as usize;
                if p != l {
                    if count[p] == 0 {
                        seen.push(p);
                    }
                    count[p] += 1;
                }
            }
        }
        seen.sort_by(|&a, &b| count[b].cmp(&count[a]).then(a.cmp(&b)));
        for &p in &seen {
            count[p] = 0;
        }
        seen.truncate(search);
        let mut cand: Vec<i64> =
            self.members[l].iter().copied().chain(seen.iter().flat_map(|&m| self.members[m].iter().copied())).collect();
        if cand.len() < self.k {
            let n = self.sq.size()[0];
            cand = self.members[l].iter().copied().chain((0..n).filter(|i| !self.members[l].contains(i))).collect();
        }
        cand
    }

    /// kNN of every cell with `nprobe` nearest lists (at most `max_probes`).
    pub fn search(&self, nprobe: usize, search: usize) -> Result<Knn> {
        let n = self.sq.size()[0] as usize;
        let (k, dev) = (self.k, self.x.device());
        let mut out = Knn { n, k, indices: vec![0; n * k], distances: vec![0.0; n * k] };
        let mut count = vec![0u32; self.n_lists()];
        for l in 0..self.n_lists() {
            if self.members[l].is_empty() {
                continue;
            }
            let cand = self.candidates(l, nprobe, search, &mut count);
            let qi = Tensor::from_slice(&self.members[l]).to_device(dev);
            let found = nearest_among(&self.x, &self.sq, &qi, Some(&Tensor::from_slice(&cand).to_device(dev)), k, self.metric)?;
            scatter(&mut out, &self.members[l], found);
        }
        Ok(out)
    }

    /// `rounds` of neighbour-of-neighbour refinement of `knn`, on the index's rows (unit
    /// rows for cosine).
    pub fn refine(&self, knn: &mut Knn, rounds: usize) -> Result<()> {
        for _ in 0..rounds {
            refine_by_neighbours(&self.x, knn, self.metric)?;
        }
        Ok(())
    }

    /// The recall `search(nprobe, search)` would have on `sample` (whose exact
    /// neighbours are `exact`, from `exact_neighbours`), found by searching only their lists'
    /// candidates for them: the same number as measuring that search on these cells.
    pub fn recall_on(&self, sample: &[i64], exact: &[i64], nprobe: usize, search: usize) -> Result<f64> {
        let (k, dev, pm) = (self.k, self.x.device(), self.max_probes);
        let mut by_list: std::collections::BTreeMap<u32, Vec<(usize, i64)>> = Default::default();
        for (r, &i) in sample.iter().enumerate() {
            by_list.entry(self.probes[i as usize * pm]).or_default().push((r, i));
        }
        let mut count = vec![0u32; self.n_lists()];
        let mut hit = 0usize;
        for (l, qs) in by_list {
            let cand = self.candidates(l as usize, nprobe, search, &mut count);
            let q: Vec<i64> = qs.iter().map(|a| a.1).collect();
            let (idx, _) = nearest_among(
                &self.x,
                &self.sq,
                &Tensor::from_slice(&q).to_device(dev),
                Some(&Tensor::from_slice(&cand).to_device(dev)),
                k,
                self.metric,
            )?;
            for (t, &(r, _)) in qs.iter().enumerate() {
                hit += overlap(&exact[r * k + 1..(r + 1) * k], &idx[t * k + 1..(t + 1) * k]);
            }
        }
        Ok(hit as f64 / (sample.len() * (k - 1)).max(1) as f64)
    }
}

/// How many of `b` are in `a` (short neighbour lists).
fn overlap(a: &[i64], b: &[i64]) -> usize {
    b.iter().filter(|j| a.contains(j)).count()
}

/// Approximate kNN by an inverted file (`IvfIndex`) searched with `nprobe` lists per cell,
/// then `refine` rounds of neighbour-of-neighbour refinement.
#[allow(clippy::too_many_arguments)]
pub fn knn_ivf(x: &Tensor, k: usize, metric: Metric, nlist: usize, nprobe: usize, search: usize, refine: usize, seed: u64) -> Result<Knn> {
    let index = IvfIndex::build(x, k, metric, nlist, nprobe, seed)?;
    let mut out = index.search(nprobe, search)?;
    index.refine(&mut out, refine)?;
    Ok(out)
}

/// Sampled cells per inverted-file list for training its centres.
const IVF_SAMPLE_PER_LIST: usize = 48;
/// Up to this many lists the centres are one K-means on the sample; above, K-means finds
/// √nlist groups first and then each group's share of the lists among its cells (so the
/// training costs sample x (√nlist + lists per group), not sample x nlist x k-means++).
pub const IVF_FLAT_MAX_LISTS: usize = 256;

fn kmeans_centres(xs: &Tensor, k: usize, seed: u64) -> Result<(Tensor, Vec<i64>)> {
    let km = super::kmeans(xs, &super::KMeansParams { k, n_init: 1, max_iter: 20, tol: 1e-4, seed })?;
    Ok((Tensor::from_slice(&km.centroids).view([k as i64, -1]).to_device(xs.device()), km.labels))
}

/// About `nlist` list centres from the sampled cells `xs` (exactly `nlist` up to
/// `IVF_FLAT_MAX_LISTS`; above, each group's share rounded).
fn ivf_centres(xs: &Tensor, nlist: usize, seed: u64) -> Result<Tensor> {
    let s = xs.size()[0] as usize;
    if nlist <= IVF_FLAT_MAX_LISTS {
        return Ok(kmeans_centres(xs, nlist, seed)?.0);
    }
    let nc = ((nlist as f64).sqrt().round() as usize).clamp(2, s);
    let (_, lab) = kmeans_centres(xs, nc, seed)?;
    let mut groups: Vec<Vec<i64>> = vec![Vec::new(); nc];
    for (i, &g) in lab.iter().enumerate() {
        groups[g as usize].push(i as i64);
    }
    let mut parts = Vec::with_capacity(nc);
    for (g, rows) in groups.into_iter().enumerate() {
        if rows.is_empty() {
            continue;
        }
        let kg = ((nlist as f64 * rows.len() as f64 / s as f64).round() as usize).clamp(1, rows.len());
        let xg = xs.index_select(0, &Tensor::from_slice(&rows).to_device(xs.device()));
        parts.push(kmeans_centres(&xg, kg, crate::seed::mix_seed(seed, g as u64))?.0);
    }
    Ok(Tensor::cat(&parts, 0))
}

/// Each row's `nprobe` nearest centres, nearest first (rows x nprobe, row-major): matrix
/// products and top-k in blocks of rows.
fn nearest_centres(x: &Tensor, cent: &Tensor, nprobe: usize) -> Result<Vec<u32>> {
    let (n, nlist) = (x.size()[0] as usize, cent.size()[0] as usize);
    let csq = cent.square().sum_dim_intlist(1, false, Kind::Float).unsqueeze(0);
    let mut probes: Vec<u32> = Vec::with_capacity(n * nprobe);
    let block = ((1usize << 24) / nlist.max(1)).clamp(256, 65536);
    for s in (0..n).step_by(block) {
        let len = block.min(n - s) as i64;
        let d = csq.addmm(&(x.narrow(0, s as i64, len) * -2.0), &cent.transpose(0, 1));
        let (_, p) = d.topk(nprobe as i64, 1, false, true);
        probes.extend(Vec::<i64>::try_from(&p.to_device(tch::Device::Cpu).contiguous().view([-1]))?.into_iter().map(|p| p as u32));
    }
    Ok(probes)
}

/// Cells per inverted-file list when `ivf_nlist` is 0: lists of a fixed size keep the
/// search linear in the cells.
pub const IVF_LIST_CELLS: usize = 512;

/// One round of neighbour-of-neighbour refinement (the local join of NN-descent, done for
/// all cells at once from the current graph): each cell's new neighbours are the nearest
/// among its neighbours and their neighbours. Returns how many neighbours changed.
pub fn refine_by_neighbours(x: &Tensor, knn: &mut Knn, metric: Metric) -> Result<usize> {
    let (n, k) = (knn.n, knn.k);
    let dev = x.device();
    let d = x.size()[1] as usize;
    let w = k + k * k;
    let graph = Tensor::from_slice(&knn.indices.iter().map(|&i| i as i64).collect::<Vec<_>>()).view([n as i64, k as i64]).to_device(dev);
    let block = ((1usize << 24) / (w * d.max(1))).clamp(16, 8192);
    let mut changed = 0usize;
    let (mut new_idx, mut new_dist) = (Vec::with_capacity(n * k), Vec::with_capacity(n * k));
    for s in (0..n).step_by(block) {
        let len = block.min(n - s) as i64;
        let cur = graph.narrow(0, s as i64, len);
        let nn = graph.index_select(0, &cur.reshape([-1])).view([len, (k * k) as i64]);
        let (cand, _) = Tensor::cat(&[cur, nn], 1).sort(1, false);
        let xq = x.narrow(0, s as i64, len);
        let xc = x.index_select(0, &cand.reshape([-1])).view([len, w as i64, d as i64]);
        let mut d2 = (xc - xq.unsqueeze(1)).square().sum_dim_intlist(2, false, Kind::Float);
        // the cell itself comes first; a candidate listed twice counts once
        let me = Tensor::arange_start(s as i64, s as i64 + len, (Kind::Int64, dev)).unsqueeze(1);
        let _ = d2.masked_fill_(&cand.eq_tensor(&me), -1.0);
        let dup = cand.narrow(1, 1, w as i64 - 1).eq_tensor(&cand.narrow(1, 0, w as i64 - 1));
        let _ = d2.narrow(1, 1, w as i64 - 1).masked_fill_(&dup, f64::INFINITY);
        let (dist, pos) = d2.topk(k as i64, 1, false, true);
        let idx = cand.gather(1, &pos, false);
        let dist = dist.clamp_min(0.0).to_kind(Kind::Double);
        let dist = match metric {
            Metric::Euclidean => dist.sqrt(),
            Metric::Cosine => dist / 2.0,
        };
        new_idx.extend(Vec::<i64>::try_from(&idx.to_device(tch::Device::Cpu).contiguous().view([-1]))?);
        new_dist.extend(Vec::<f32>::try_from(&dist.to_kind(Kind::Float).to_device(tch::Device::Cpu).contiguous().view([-1]))?);
    }
    for i in 0..n {
        let old: std::collections::HashSet<u32> = knn.indices[i * k..(i + 1) * k].iter().copied().collect();
        changed += new_idx[i * k..(i + 1) * k].iter().filter(|&&j| !old.contains(&(j as u32))).count();
    }
    knn.indices = new_idx.into_iter().map(|i| i as u32).collect();
    knn.distances = new_dist;
    Ok(changed)
}

/// `queries` cells drawn by `seed` (sorted) and their exact k nearest neighbours (queries x
/// k, the cell itself first). Costs `queries` x n distances.
pub fn exact_neighbours_of_sample(x: &Tensor, k: usize, metric: Metric, queries: usize, seed: u64) -> Result<(Vec<i64>, Vec<i64>)> {
    let x = prepare(x, k, metric)?;
    let n = x.size()[0] as usize;
    let dev = x.device();
    let mut rng = crate::seed::rng_for(seed, 11);
    let mut pick: Vec<i64> = rand::seq::index::sample(&mut rng, n, queries.min(n)).into_iter().map(|i| i as i64).collect();
    pick.sort_unstable();
    let sq = x.square().sum_dim_intlist(1, false, Kind::Float);
    let mut nb = Vec::with_capacity(pick.len() * k);
    for c in pick.chunks(((1usize << 25) / n).max(1)) {
        nb.extend(nearest_among(&x, &sq, &Tensor::from_slice(c).to_device(dev), None, k, metric)?.0);
    }
    Ok((pick, nb))
}

/// Recall of `approx` (kNN of the rows of `x`) estimated on `queries` cells drawn by
/// `seed`: the fraction of their exact neighbours (the cell itself excluded) it holds.
/// Costs `queries` x n distances, so it can be reported for every approximate graph.
pub fn sampled_recall(x: &Tensor, approx: &Knn, metric: Metric, queries: usize, seed: u64) -> Result<f64> {
    let (pick, nb) = exact_neighbours_of_sample(x, approx.k, metric, queries, seed)?;
    Ok(recall_on_sample(approx, &pick, &nb))
}

/// Fraction of the exact neighbours of `pick` (`exact`, from `exact_neighbours_of_sample`;
/// the cell itself excluded) that `approx` holds.
pub fn recall_on_sample(approx: &Knn, pick: &[i64], exact: &[i64]) -> f64 {
    let k = approx.k;
    let mut hit = 0usize;
    for (r, &i) in pick.iter().enumerate() {
        let found: Vec<i64> = approx.indices[i as usize * k + 1..(i as usize + 1) * k].iter().map(|&j| j as i64).collect();
        hit += overlap(&exact[r * k + 1..(r + 1) * k], &found);
    }
    hit as f64 / (pick.len() * (k - 1)).max(1) as f64
}

#[derive(Clone)]
struct Row(Vec<f32>);

impl instant_distance::Point for Row {
    fn distance(&self, other: &Self) -> f32 {
        self.0.iter().zip(&other.0).map(|(a, b)| (a - b) * (a - b)).sum::<f32>()
    }
}

/// Approximate kNN with an HNSW index (instant-distance, MIT/Apache; M = 32), the cell
/// itself first. `ef` is the search breadth (and construction breadth). Built on one
/// thread when `threads` is 1, so the graph is the same on every run.
pub fn knn_hnsw(x: &Tensor, k: usize, metric: Metric, ef: usize, seed: u64, threads: usize) -> Result<Knn> {
    let x = prepare(x, k, metric)?.to_device(tch::Device::Cpu);
    let (n, d) = (x.size()[0] as usize, x.size()[1] as usize);
    let flat = Vec::<f32>::try_from(&x.contiguous().view([-1]))?;
    let rows: Vec<Row> = flat.chunks(d).map(|c| Row(c.to_vec())).collect();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads.max(1)).build().map_err(|e| Error::Numeric(e.to_string()))?;
    let ef = ef.max(k + 1);
    let map = pool.install(|| {
        instant_distance::Builder::default().ef_search(ef).ef_construction(ef).seed(seed).build(rows.clone(), (0..n as u32).collect())
    });
    let mut indices = Vec::with_capacity(n * k);
    let mut distances = Vec::with_capacity(n * k);
    let mut search = instant_distance::Search::default();
    for (i, r) in rows.iter().enumerate() {
        indices.push(i as u32);
        distances.push(0.0f32);
        let mut got = 1;
        for item in map.search(r, &mut search) {
            if got == k {
                break;
            }
            let j = *item.value;
            if j as usize == i {
                continue;
            }
            indices.push(j);
            let dd: f64 = r.0.iter().zip(&rows[j as usize].0).map(|(a, b)| ((a - b) as f64).powi(2)).sum();
            distances.push(match metric {
                Metric::Euclidean => dd.sqrt() as f32,
                Metric::Cosine => (dd / 2.0) as f32,
            });
            got += 1;
        }
        if got < k {
            return Err(Error::Numeric(format!("HNSW returned {got} of {k} neighbours for cell {i}; raise cluster.hnsw_ef")));
        }
    }
    Ok(Knn { n, k, indices, distances })
}

/// Fraction of the exact neighbours (the cell itself excluded) that `approx` found.
pub fn recall(exact: &Knn, approx: &Knn) -> f64 {
    let (n, k) = (exact.n, exact.k);
    let mut hit = 0usize;
    for i in 0..n {
        let e: std::collections::HashSet<u32> = exact.indices[i * k + 1..(i + 1) * k].iter().copied().collect();
        hit += approx.indices[i * k + 1..(i + 1) * k].iter().filter(|j| e.contains(j)).count();
    }
    hit as f64 / (n * (k - 1)) as f64
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
        t.sort_by_key(|a| (a.0, a.1));
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
