//! Splatter-style simulation (Zappia et al. 2017): gamma gene means with outliers,
//! group DE factors, batch factors, log-normal library sizes, biological coefficient of
//! variation, Poisson sampling of true counts, and logistic dropout. Cells are generated
//! in parallel blocks, each cell from its own random stream (the same counts for a seed
//! whatever the thread count), so memory stays proportional to the non-zeros.

use crate::error::{Error, Result};
use crate::matrix::Csr;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{ChiSquared, Distribution, Gamma, LogNormal, Poisson};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropoutType {
    None,
    /// One midpoint/shape for every cell.
    Experiment,
    /// One midpoint/shape per group (`dropout_mid`/`dropout_shape` give one value per group).
    Group,
    /// One midpoint/shape per batch.
    Batch,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SimParams {
    pub n_cells: usize,
    pub n_genes: usize,
    /// Proportions of the groups (cell types); normalised to sum 1.
    pub group_prob: Vec<f64>,
    /// Nested types: the parent type of each group (empty = every group its own type).
    /// Groups with the same parent share the parent's differential expression (drawn
    /// with `de_prob`) and add their own, drawn with `subtype_de_prob`: subtypes of a type.
    pub group_parent: Vec<usize>,
    pub subtype_de_prob: f64,
    /// Cells per batch; empty = one batch of all cells.
    pub batch_cells: Vec<usize>,
    pub mean_shape: f64,
    pub mean_rate: f64,
    pub lib_loc: f64,
    pub lib_scale: f64,
    pub out_prob: f64,
    pub out_fac_loc: f64,
    pub out_fac_scale: f64,
    pub de_prob: f64,
    pub de_down_prob: f64,
    pub de_fac_loc: f64,
    pub de_fac_scale: f64,
    pub batch_fac_loc: f64,
    pub batch_fac_scale: f64,
    pub bcv_common: f64,
    pub bcv_df: f64,
    pub dropout_type: DropoutType,
    pub dropout_mid: Vec<f64>,
    pub dropout_shape: Vec<f64>,
    pub seed: u64,
    /// Also return the counts before dropout (`true_counts`); false halves the memory.
    pub true_counts: bool,
}

impl Default for SimParams {
    fn default() -> Self {
        // Splatter's defaults, with DE strong enough that groups are separable.
        SimParams {
            n_cells: 2000,
            n_genes: 2000,
            group_prob: vec![0.3, 0.25, 0.2, 0.15, 0.1],
            group_parent: vec![],
            subtype_de_prob: 0.03,
            batch_cells: vec![],
            mean_shape: 0.6,
            mean_rate: 0.3,
            lib_loc: 11.0,
            lib_scale: 0.2,
            out_prob: 0.05,
            out_fac_loc: 4.0,
            out_fac_scale: 0.5,
            de_prob: 0.1,
            de_down_prob: 0.5,
            de_fac_loc: 0.3,
            de_fac_scale: 0.4,
            batch_fac_loc: 0.1,
            batch_fac_scale: 0.1,
            bcv_common: 0.1,
            bcv_df: 60.0,
            dropout_type: DropoutType::Experiment,
            dropout_mid: vec![2.0],
            dropout_shape: vec![-1.0],
            seed: 0,
            true_counts: true,
        }
    }
}

pub struct Simulated {
    pub counts: Csr,
    /// The counts before dropout (None when `SimParams::true_counts` is false).
    pub true_counts: Option<Csr>,
    pub cells: Vec<String>,
    pub genes: Vec<String>,
    pub groups: Vec<String>,
    pub batches: Vec<String>,
}

impl SimParams {
    /// Parameters from a (partial) JSON object over the defaults; an unknown name is an
    /// error that names it.
    pub fn from_json(over: &serde_json::Value) -> Result<SimParams> {
        if !(over.is_object() || over.is_null()) {
            return Err(Error::config("simulate", over, "must be named parameters"));
        }
        let v = if over.is_null() { serde_json::json!({}) } else { over.clone() };
        let p: SimParams = serde_json::from_value(v).map_err(|e| Error::config("simulate", "(params)", e.to_string()))?;
        p.validate()?;
        Ok(p)
    }

    pub fn validate(&self) -> Result<()> {
        let f = |n: &str, v: f64, m: &str| Err(Error::config(&format!("simulate.{n}"), v, m));
        if self.n_cells == 0 {
            return f("n_cells", 0.0, "must be >= 1");
        }
        if self.n_genes == 0 {
            return f("n_genes", 0.0, "must be >= 1");
        }
        if self.group_prob.is_empty() || self.group_prob.iter().any(|&p| !(p > 0.0 && p.is_finite())) {
            return Err(Error::config("simulate.group_prob", format!("{:?}", self.group_prob), "needs one or more positive proportions"));
        }
        if !self.batch_cells.is_empty() && self.batch_cells.iter().sum::<usize>() != self.n_cells {
            return Err(Error::config(
                "simulate.batch_cells",
                format!("{:?}", self.batch_cells),
                format!("must sum to n_cells = {}", self.n_cells),
            ));
        }
        if !self.group_parent.is_empty() && self.group_parent.len() != self.group_prob.len() {
            return Err(Error::config(
                "simulate.group_parent",
                format!("{:?}", self.group_parent),
                format!("needs one parent per group ({}) or none", self.group_prob.len()),
            ));
        }
        for (n, v) in [
            ("de_prob", self.de_prob),
            ("de_down_prob", self.de_down_prob),
            ("out_prob", self.out_prob),
            ("subtype_de_prob", self.subtype_de_prob),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return f(n, v, "must be in [0, 1]");
            }
        }
        for (n, v) in [("mean_shape", self.mean_shape), ("mean_rate", self.mean_rate), ("bcv_df", self.bcv_df)] {
            if !(v > 0.0) {
                return f(n, v, "must be > 0");
            }
        }
        for (n, v) in [
            ("lib_scale", self.lib_scale),
            ("de_fac_scale", self.de_fac_scale),
            ("batch_fac_scale", self.batch_fac_scale),
            ("out_fac_scale", self.out_fac_scale),
            ("bcv_common", self.bcv_common),
        ] {
            if !(v >= 0.0) {
                return f(n, v, "must be >= 0");
            }
        }
        let n_expected = match self.dropout_type {
            DropoutType::None => 0,
            DropoutType::Experiment => 1,
            DropoutType::Group => self.group_prob.len(),
            DropoutType::Batch => self.batch_cells.len().max(1),
        };
        if n_expected > 0 && (self.dropout_mid.len() != n_expected || self.dropout_shape.len() != n_expected) {
            return Err(Error::config(
                "simulate.dropout_mid",
                format!("{:?}", self.dropout_mid),
                format!("dropout_type {:?} needs {n_expected} midpoint(s) and shape(s)", self.dropout_type),
            ));
        }
        Ok(())
    }
}

fn lognormal(loc: f64, scale: f64) -> LogNormal<f64> {
    LogNormal::new(loc, scale.max(1e-12)).unwrap()
}

#[allow(clippy::needless_range_loop)] // parallel arrays indexed by one loop variable
pub fn simulate(p: &SimParams) -> Result<Simulated> {
    // Observed and true counts are kept sparse, but a cell's dense row and its share of
    // both matrices cost about 14 bytes per cell and gene (bench/results/scale.json has
    // the simulator's peak memory).
    p.validate()?;
    // What is certain before any cell is drawn: names, row offsets and labels per cell,
    // factors per gene; the counts are estimated from the first block below.
    let groups_and_batches = p.group_prob.len() + p.batch_cells.len().max(1);
    crate::io::check_memory(
        &format!("simulating {} cells x {} genes", p.n_cells, p.n_genes),
        p.n_cells as u128 * 128 + p.n_genes as u128 * 8 * (groups_and_batches as u128 + 2),
    )?;
    let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
    let g = p.n_genes;
    let ng = p.group_prob.len();
    let batch_cells = if p.batch_cells.is_empty() { vec![p.n_cells] } else { p.batch_cells.clone() };
    let nb = batch_cells.len();

    // Gene means: gamma(shape, rate) with high-expression outliers.
    let gamma = Gamma::new(p.mean_shape, 1.0 / p.mean_rate).unwrap();
    let mut base: Vec<f64> = (0..g).map(|_| gamma.sample(&mut rng)).collect();
    let mut sorted = base.clone();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let median = sorted[g / 2];
    let out = lognormal(p.out_fac_loc, p.out_fac_scale);
    for m in &mut base {
        if rng.random::<f64>() < p.out_prob {
            *m = median * out.sample(&mut rng);
        }
    }
    // Batch and group factors per gene.
    let bfac = lognormal(p.batch_fac_loc, p.batch_fac_scale);
    let batch_fac: Vec<Vec<f64>> = (0..nb).map(|_| (0..g).map(|_| if nb > 1 { bfac.sample(&mut rng) } else { 1.0 }).collect()).collect();
    let dfac = lognormal(p.de_fac_loc, p.de_fac_scale);
    // One gene's DE factor: up or down with probability `prob`, else 1.
    let de_factors = |rng: &mut ChaCha8Rng, prob: f64| -> Vec<f64> {
        (0..g)
            .map(|_| {
                if rng.random::<f64>() < prob {
                    let f = dfac.sample(rng);
                    if rng.random::<f64>() < p.de_down_prob {
                        1.0 / f
                    } else {
                        f
                    }
                } else {
                    1.0
                }
            })
            .collect()
    };
    let de_fac: Vec<Vec<f64>> = if p.group_parent.is_empty() {
        (0..ng).map(|_| de_factors(&mut rng, p.de_prob)).collect()
    } else {
        let n_parents = p.group_parent.iter().max().map_or(0, |m| m + 1);
        let parents: Vec<Vec<f64>> = (0..n_parents).map(|_| de_factors(&mut rng, p.de_prob)).collect();
        p.group_parent
            .iter()
            .map(|&parent| de_factors(&mut rng, p.subtype_de_prob).iter().zip(&parents[parent]).map(|(a, b)| a * b).collect())
            .collect()
    };
    // Cell assignments.
    let total: f64 = p.group_prob.iter().sum();
    let mut cum = Vec::new();
    let mut s = 0.0;
    for q in &p.group_prob {
        s += q / total;
        cum.push(s);
    }
    let lib = lognormal(p.lib_loc, p.lib_scale);
    let chi = ChiSquared::new(p.bcv_df).unwrap();
    let batch_end: Vec<usize> = batch_cells
        .iter()
        .scan(0, |acc, &b| {
            *acc += b;
            Some(*acc)
        })
        .collect();

    // One cell: its group, batch, and (gene, count) pairs observed and before dropout.
    let cell = |i: usize, row: &mut Row| {
        let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
        rng.set_stream(i as u64 + 1); // stream 0 drew the gene parameters above
        let batch = batch_end.partition_point(|&e| e <= i).min(nb - 1);
        let u: f64 = rng.random();
        let grp = cum.partition_point(|&c| c < u).min(ng - 1);
        let l = lib.sample(&mut rng);
        let mut sum = 0.0;
        for j in 0..g {
            row.mean[j] = base[j] * batch_fac[batch][j] * de_fac[grp][j];
            sum += row.mean[j];
        }
        let bcv_scale = (p.bcv_df / chi.sample(&mut rng)).sqrt();
        let (mid, shape) = match p.dropout_type {
            DropoutType::None => (0.0, 0.0),
            DropoutType::Experiment => (p.dropout_mid[0], p.dropout_shape[0]),
            DropoutType::Group => (p.dropout_mid[grp], p.dropout_shape[grp]),
            DropoutType::Batch => (p.dropout_mid[batch], p.dropout_shape[batch]),
        };
        for j in 0..g {
            let m = row.mean[j] / sum * l;
            let bcv = (p.bcv_common + 1.0 / m.sqrt()) * bcv_scale;
            let shape_g = 1.0 / (bcv * bcv);
            let tm = if shape_g.is_finite() && shape_g > 0.0 {
                Gamma::new(shape_g, m / shape_g).map(|d| d.sample(&mut rng)).unwrap_or(m)
            } else {
                m
            };
            let c = if tm > 0.0 { Poisson::new(tm).map(|d| d.sample(&mut rng)).unwrap_or(0.0) } else { 0.0 };
            if c > 0.0 {
                if p.true_counts {
                    row.tru.push((j as u32, c as f32));
                }
                let drop = match p.dropout_type {
                    DropoutType::None => false,
                    _ => {
                        let prob = 1.0 / (1.0 + (-shape * (tm.ln() - mid)).exp());
                        rng.random::<f64>() < prob
                    }
                };
                if !drop {
                    row.obs.push((j as u32, c as f32));
                }
            }
        }
        (grp, batch)
    };
    // Blocks of cells in parallel; each block's rows are appended in order.
    use rayon::prelude::*;
    const BLOCK: usize = 2048;
    let make_block = |b: usize| {
        let mut row = Row { mean: vec![0.0; g], obs: Vec::new(), tru: Vec::new() };
        let mut out = Block::default();
        for i in b * BLOCK..((b + 1) * BLOCK).min(p.n_cells) {
            row.obs.clear();
            row.tru.clear();
            let (grp, batch) = cell(i, &mut row);
            out.obs.push_row(&row.obs);
            out.tru.push_row(&row.tru);
            out.groups.push(grp);
            out.batches.push(batch);
        }
        out
    };
    let n_blocks = p.n_cells.div_ceil(BLOCK);
    let first = make_block(0);
    let per_cell = (first.obs.val.len() + first.tru.val.len()) as f64 / first.groups.len().max(1) as f64;
    crate::io::check_memory(
        &format!(
            "the counts of {} cells x {} genes ({per_cell:.0} non-zeros per cell in the first {})",
            p.n_cells,
            p.n_genes,
            first.groups.len()
        ),
        (per_cell * 8.0 * 1.1 * p.n_cells as f64) as u128,
    )?;
    let blocks: Vec<Block> = std::iter::once(first).chain((1..n_blocks).into_par_iter().map(make_block).collect::<Vec<_>>()).collect();
    let (n_obs, n_tru): (usize, usize) = blocks.iter().fold((0, 0), |(a, b), x| (a + x.obs.val.len(), b + x.tru.val.len()));
    let mut obs = Parts::with_capacity(p.n_cells, n_obs);
    let mut tru = Parts::with_capacity(if p.true_counts { p.n_cells } else { 0 }, n_tru);
    let mut groups = Vec::with_capacity(p.n_cells);
    let mut batches = Vec::with_capacity(p.n_cells);
    for b in blocks {
        obs.append(b.obs);
        tru.append(b.tru);
        groups.extend(b.groups.into_iter().map(|grp| format!("Group{}", grp + 1)));
        batches.extend(b.batches.into_iter().map(|bt| format!("Batch{}", bt + 1)));
    }
    let counts = obs.into_csr(p.n_cells, g);
    let true_counts = if p.true_counts { Some(tru.into_csr(p.n_cells, g)) } else { None };
    Ok(Simulated {
        counts,
        true_counts,
        cells: (1..=p.n_cells).map(|i| format!("Cell{i}")).collect(),
        genes: (1..=g).map(|j| format!("Gene{j}")).collect(),
        groups,
        batches,
    })
}

/// Scratch of one cell.
struct Row {
    mean: Vec<f64>,
    obs: Vec<(u32, f32)>,
    tru: Vec<(u32, f32)>,
}

/// CSR parts of consecutive rows (row lengths, not offsets, so blocks concatenate).
#[derive(Default)]
struct Parts {
    len: Vec<usize>,
    idx: Vec<u32>,
    val: Vec<f32>,
}

impl Parts {
    fn with_capacity(rows: usize, nnz: usize) -> Parts {
        Parts { len: Vec::with_capacity(rows), idx: Vec::with_capacity(nnz), val: Vec::with_capacity(nnz) }
    }
    fn push_row(&mut self, row: &[(u32, f32)]) {
        self.len.push(row.len());
        self.idx.extend(row.iter().map(|e| e.0));
        self.val.extend(row.iter().map(|e| e.1));
    }
    fn append(&mut self, other: Parts) {
        self.len.extend(other.len);
        self.idx.extend(other.idx);
        self.val.extend(other.val);
    }
    fn into_csr(self, n_rows: usize, n_cols: usize) -> Csr {
        let mut indptr = Vec::with_capacity(n_rows + 1);
        indptr.push(0);
        for l in self.len {
            indptr.push(indptr[indptr.len() - 1] + l);
        }
        Csr { n_rows, n_cols, indptr, indices: self.idx, data: self.val }
    }
}

/// The rows of one block of cells.
#[derive(Default)]
struct Block {
    obs: Parts,
    tru: Parts,
    groups: Vec<usize>,
    batches: Vec<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Mean log-expression profile of each group.
    fn profiles(sim: &Simulated, ng: usize) -> Vec<Vec<f64>> {
        let dense = sim.counts.to_dense();
        let g = sim.counts.n_cols;
        let mut sum = vec![vec![0.0; g]; ng];
        let mut n = vec![0usize; ng];
        for (i, grp) in sim.groups.iter().enumerate() {
            let k: usize = grp.trim_start_matches("Group").parse::<usize>().unwrap() - 1;
            n[k] += 1;
            for j in 0..g {
                sum[k][j] += (dense[i * g + j] as f64).ln_1p();
            }
        }
        sum.iter().zip(&n).map(|(s, &c)| s.iter().map(|v| v / c as f64).collect()).collect()
    }

    #[test]
    fn subtypes_of_a_type_are_closer_to_each_other_than_to_other_types() {
        let p = SimParams {
            n_cells: 800,
            n_genes: 600,
            group_prob: vec![1.0; 4],
            group_parent: vec![0, 0, 1, 1],
            dropout_type: DropoutType::None,
            seed: 3,
            ..Default::default()
        };
        let sim = simulate(&p).unwrap();
        let m = profiles(&sim, 4);
        let d = |a: usize, b: usize| m[a].iter().zip(&m[b]).map(|(x, y)| (x - y).powi(2)).sum::<f64>();
        for (sib, other) in [((0, 1), (0, 2)), ((2, 3), (1, 3)), ((0, 1), (1, 2))] {
            assert!(
                d(sib.0, sib.1) < d(other.0, other.1) / 2.0,
                "siblings {sib:?} {} vs {other:?} {}",
                d(sib.0, sib.1),
                d(other.0, other.1)
            );
        }
        // subtypes still differ, and a parent per group is required
        assert!(d(0, 1) > 0.0);
        let bad = SimParams { group_parent: vec![0, 0], ..p };
        assert!(bad.validate().unwrap_err().to_string().contains("group_parent"));
    }
}
