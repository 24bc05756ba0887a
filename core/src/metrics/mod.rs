//! Clustering metrics matching scikit-learn (checked against fixtures it generates).

pub mod batch;
mod hungarian;

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Encode arbitrary labels as 0..k-1 in order of first appearance.
pub fn encode<T: std::hash::Hash + Eq + Clone>(labels: &[T]) -> (Vec<usize>, usize) {
    let mut map = HashMap::new();
    let codes = labels
        .iter()
        .map(|l| {
            let n = map.len();
            *map.entry(l.clone()).or_insert(n)
        })
        .collect();
    (codes, map.len())
}

/// Contingency table (true x predicted) with marginals.
pub struct Contingency {
    pub table: Vec<Vec<u64>>,
    pub rows: Vec<u64>,
    pub cols: Vec<u64>,
    pub n: u64,
}

impl Contingency {
    pub fn new(truth: &[usize], kt: usize, pred: &[usize], kp: usize) -> Self {
        let mut table = vec![vec![0u64; kp]; kt];
        for (&t, &p) in truth.iter().zip(pred) {
            table[t][p] += 1;
        }
        let rows = table.iter().map(|r| r.iter().sum()).collect();
        let cols = (0..kp).map(|j| table.iter().map(|r| r[j]).sum()).collect();
        Contingency { table, rows, cols, n: truth.len() as u64 }
    }
}

fn comb2(n: u64) -> f64 {
    let n = n as f64;
    n * (n - 1.0) / 2.0
}

fn entropy(counts: &[u64], n: u64) -> f64 {
    let n = n as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.ln()
        })
        .sum()
}

fn mutual_info(c: &Contingency) -> f64 {
    let n = c.n as f64;
    let mut mi = 0.0;
    for (i, row) in c.table.iter().enumerate() {
        for (j, &nij) in row.iter().enumerate() {
            if nij > 0 {
                let nij = nij as f64;
                mi += nij / n * ((nij * n) / (c.rows[i] as f64 * c.cols[j] as f64)).ln();
            }
        }
    }
    mi.max(0.0)
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// NMI/AMI normalisation: arithmetic (scikit-learn), geometric (scRAE), max (CICL's paper).
    pub nmi_average: AverageMethod,
    /// Silhouettes are O(n^2): above this many cells they are computed on this many,
    /// drawn by a fixed seed (0 = every cell).
    pub silhouette_sample: usize,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig { nmi_average: AverageMethod::Arithmetic, silhouette_sample: 5_000 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AverageMethod {
    #[default]
    Arithmetic,
    Geometric,
    Max,
    Min,
}

impl AverageMethod {
    /// The normalisation a user names; an error names the option (`field`) and the value.
    pub fn parse(field: &str, s: &str) -> Result<AverageMethod> {
        serde_json::from_value(serde_json::Value::from(s))
            .map_err(|_| Error::config(field, s, "expected arithmetic, geometric, max or min"))
    }
}

/// The scores a door's `evaluate` call gives (CLI, Python, R) for labels as the user has
/// them (any names, encoded here): the NMI/AMI average named by `average` (the option
/// `field`), silhouettes as a run computes them.
///
/// ```
/// use scdeep_core::metrics::evaluate_named;
/// let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
/// // the same partition under other names
/// let scores = evaluate_named(&s(&["a", "a", "b", "b"]), &s(&["x", "x", "y", "y"]), None, "average", "arithmetic")?;
/// assert_eq!((scores.ari, scores.nmi), (1.0, 1.0));
/// # Ok::<(), scdeep_core::Error>(())
/// ```
pub fn evaluate_named(truth: &[String], pred: &[String], embedding: Option<(&[f32], usize)>, field: &str, average: &str) -> Result<Scores> {
    let avg = AverageMethod::parse(field, average)?;
    let codes: Vec<i64> = encode(pred).0.into_iter().map(|c| c as i64).collect();
    evaluate(truth, &codes, embedding, avg, MetricsConfig::default().silhouette_sample)
}

fn generalized_mean(a: f64, b: f64, m: AverageMethod) -> f64 {
    match m {
        AverageMethod::Arithmetic => (a + b) / 2.0,
        AverageMethod::Geometric => (a * b).sqrt(),
        AverageMethod::Max => a.max(b),
        AverageMethod::Min => a.min(b),
    }
}

fn check_pair(truth: &[usize], pred: &[usize]) -> Result<()> {
    if truth.len() != pred.len() {
        return Err(Error::data(format!("labels have {} entries but ground truth has {}", pred.len(), truth.len())));
    }
    if truth.is_empty() {
        return Err(Error::data("no labels to compare"));
    }
    Ok(())
}

pub fn adjusted_rand_index(truth: &[usize], pred: &[usize]) -> Result<f64> {
    check_pair(truth, pred)?;
    let (t, kt) = encode(truth);
    let (p, kp) = encode(pred);
    let c = Contingency::new(&t, kt, &p, kp);
    let n = c.n;
    let sum_comb: f64 = c.table.iter().flatten().map(|&x| comb2(x)).sum();
    let sa: f64 = c.rows.iter().map(|&x| comb2(x)).sum();
    let sb: f64 = c.cols.iter().map(|&x| comb2(x)).sum();
    // sklearn: no false pairs either way (identical partitions) scores 1.
    if sa == sum_comb && sb == sum_comb {
        return Ok(1.0);
    }
    let expected = sa * sb / comb2(n);
    let max = (sa + sb) / 2.0;
    Ok((sum_comb - expected) / (max - expected))
}

pub fn normalized_mutual_info(truth: &[usize], pred: &[usize], avg: AverageMethod) -> Result<f64> {
    check_pair(truth, pred)?;
    let (c, ht, hp) = info_parts(truth, pred);
    // sklearn: both labellings with a single cluster is a perfect match.
    if c.rows.len() == 1 && c.cols.len() == 1 {
        return Ok(1.0);
    }
    let mi = mutual_info(&c);
    if mi == 0.0 {
        return Ok(0.0);
    }
    let norm = generalized_mean(ht, hp, avg).max(f64::EPSILON);
    Ok(mi / norm)
}

fn info_parts(truth: &[usize], pred: &[usize]) -> (Contingency, f64, f64) {
    let (t, kt) = encode(truth);
    let (p, kp) = encode(pred);
    let c = Contingency::new(&t, kt, &p, kp);
    let ht = entropy(&c.rows, c.n);
    let hp = entropy(&c.cols, c.n);
    (c, ht, hp)
}

fn ln_gamma(x: f64) -> f64 {
    // Lanczos approximation (g = 7, n = 9), accurate to ~1e-15 for x > 0.
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = G[0];
    let t = x + 7.5;
    for (i, g) in G.iter().enumerate().skip(1) {
        a += g / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// Expected mutual information under the hypergeometric model (Vinh et al. 2010).
fn expected_mutual_info(c: &Contingency) -> f64 {
    let n = c.n as f64;
    let a: Vec<u64> = c.rows.iter().cloned().filter(|&x| x > 0).collect();
    let b: Vec<u64> = c.cols.iter().cloned().filter(|&x| x > 0).collect();
    let gln_a: Vec<f64> = a.iter().map(|&x| ln_gamma(x as f64 + 1.0)).collect();
    let gln_b: Vec<f64> = b.iter().map(|&x| ln_gamma(x as f64 + 1.0)).collect();
    let gln_na: Vec<f64> = a.iter().map(|&x| ln_gamma(n - x as f64 + 1.0)).collect();
    let gln_nb: Vec<f64> = b.iter().map(|&x| ln_gamma(n - x as f64 + 1.0)).collect();
    let gln_n = ln_gamma(n + 1.0);
    let mut emi = 0.0;
    for (i, &ai) in a.iter().enumerate() {
        for (j, &bj) in b.iter().enumerate() {
            let start = (ai + bj).saturating_sub(c.n).max(1);
            let end = ai.min(bj);
            for nij in start..=end {
                let nijf = nij as f64;
                let term1 = nijf / n;
                let term2 = (n * nijf).ln() - ((ai as f64) * (bj as f64)).ln();
                let gln = gln_a[i] + gln_b[j] + gln_na[i] + gln_nb[j]
                    - gln_n
                    - ln_gamma(nijf + 1.0)
                    - ln_gamma(ai as f64 - nijf + 1.0)
                    - ln_gamma(bj as f64 - nijf + 1.0)
                    - ln_gamma(n - ai as f64 - bj as f64 + nijf + 1.0);
                emi += term1 * term2 * gln.exp();
            }
        }
    }
    emi
}

pub fn adjusted_mutual_info(truth: &[usize], pred: &[usize], avg: AverageMethod) -> Result<f64> {
    check_pair(truth, pred)?;
    let (c, ht, hp) = info_parts(truth, pred);
    // sklearn: both labellings with a single cluster is a perfect match.
    if c.rows.len() == 1 && c.cols.len() == 1 {
        return Ok(1.0);
    }
    let mi = mutual_info(&c);
    let emi = expected_mutual_info(&c);
    let normalizer = generalized_mean(ht, hp, avg);
    let mut denom = normalizer - emi;
    // sklearn: avoid 0 denominators by using the smallest positive float of the sign.
    if denom < 0.0 {
        denom = denom.min(-f64::EPSILON);
    } else {
        denom = denom.max(f64::EPSILON);
    }
    Ok((mi - emi) / denom)
}

/// (homogeneity, completeness, v_measure) as sklearn computes them (beta = 1).
pub fn homogeneity_completeness_v(truth: &[usize], pred: &[usize]) -> Result<(f64, f64, f64)> {
    check_pair(truth, pred)?;
    let (c, ht, hp) = info_parts(truth, pred);
    let mi = mutual_info(&c);
    let h = if ht != 0.0 { mi / ht } else { 1.0 };
    let cpl = if hp != 0.0 { mi / hp } else { 1.0 };
    let v = if h + cpl == 0.0 { 0.0 } else { 2.0 * h * cpl / (h + cpl) };
    Ok((h, cpl, v))
}

/// Fraction of cells whose cluster's majority true label is their own.
pub fn purity(truth: &[usize], pred: &[usize]) -> Result<f64> {
    check_pair(truth, pred)?;
    let (c, _, _) = info_parts(truth, pred);
    let kp = c.cols.len();
    let s: u64 = (0..kp).map(|j| c.table.iter().map(|r| r[j]).max().unwrap_or(0)).sum();
    Ok(s as f64 / c.n as f64)
}

/// Clustering accuracy: best one-to-one matching of clusters to classes (Hungarian).
pub fn accuracy(truth: &[usize], pred: &[usize]) -> Result<f64> {
    check_pair(truth, pred)?;
    let (c, _, _) = info_parts(truth, pred);
    let k = c.rows.len().max(c.cols.len());
    let mut cost = vec![vec![0i64; k]; k];
    for (i, row) in c.table.iter().enumerate() {
        for (j, &v) in row.iter().enumerate() {
            cost[j][i] = -(v as i64);
        }
    }
    let assign = hungarian::minimize(&cost);
    let matched: i64 = assign.iter().enumerate().map(|(r, &col)| -cost[r][col]).sum();
    Ok(matched as f64 / c.n as f64)
}

/// Mean silhouette (Euclidean) of `x` (n x d, row-major) under `labels`.
/// Computed exactly in blocks of rows (O(n^2 d) time, O(block x n) memory).
pub fn silhouette(x: &[f32], d: usize, labels: &[usize]) -> Result<f64> {
    Ok(silhouettes(x, d, &[labels])?[0])
}

/// The mean silhouettes of several labellings of the same cells, sharing one pass over
/// the pairwise distances.
pub fn silhouettes(x: &[f32], d: usize, labelings: &[&[usize]]) -> Result<Vec<f64>> {
    Ok(silhouette_parts(x, d, labelings)?.iter().map(|s| s.iter().sum::<f64>() / s.len() as f64).collect())
}

/// Each cell's silhouette (Euclidean) under `labels`, as scikit-learn's
/// `silhouette_samples` (0 for a cell alone in its cluster).
pub fn silhouette_values(x: &[f32], d: usize, labels: &[usize]) -> Result<Vec<f64>> {
    Ok(silhouette_parts(x, d, &[labels])?.swap_remove(0))
}

/// Every cell's silhouette under each labelling, one pass over the pairwise distances.
fn silhouette_parts(x: &[f32], d: usize, labelings: &[&[usize]]) -> Result<Vec<Vec<f64>>> {
    let n = labelings.first().map_or(0, |l| l.len());
    if x.len() != n * d {
        return Err(Error::data(format!("embedding has {} values, expected {} x {}", x.len(), n, d)));
    }
    let mut codes = Vec::new();
    let mut ks = Vec::new();
    for labels in labelings {
        if labels.len() != n {
            return Err(Error::data(format!("labellings of {} and {n} cells", labels.len())));
        }
        let (c, k) = encode(labels);
        if k < 2 || k > n - 1 {
            return Err(Error::data(format!("silhouette needs 2 <= clusters <= cells-1, got {k} clusters for {n} cells")));
        }
        codes.push(c);
        ks.push(k);
    }
    // Distances in float64 blocks with BLAS: ||xi||^2 + ||xj||^2 - 2 xi.xj, then
    // per-cluster sums through one one-hot matrix holding every labelling's columns.
    use tch::{Kind, Tensor};
    let xt = Tensor::from_slice(x).view([n as i64, d as i64]).to_kind(Kind::Double);
    let sq = xt.square().sum_dim_intlist(1, false, Kind::Double);
    let onehot = Tensor::cat(
        &codes
            .iter()
            .zip(&ks)
            .map(|(c, &k)| Tensor::from_slice(&c.iter().map(|&c| c as i64).collect::<Vec<_>>()).one_hot(k as i64))
            .collect::<Vec<_>>(),
        1,
    )
    .to_kind(Kind::Double);
    let width: usize = ks.iter().sum();
    let block = 1024usize;
    let mut sums_all: Vec<f64> = Vec::with_capacity(n * width);
    for s0 in (0..n).step_by(block) {
        let len = block.min(n - s0) as i64;
        let xb = xt.narrow(0, s0 as i64, len);
        let d2: Tensor = sq.narrow(0, s0 as i64, len).unsqueeze(1) + sq.unsqueeze(0) - xb.matmul(&xt.transpose(0, 1)) * 2.0;
        let mut dist = d2.clamp_min(0.0).sqrt();
        // a point's distance to itself is 0 (sklearn sets the diagonal to 0)
        let diag = Tensor::arange_start(s0 as i64, s0 as i64 + len, (Kind::Int64, tch::Device::Cpu));
        let _ = dist.index_put_(&[Some(Tensor::arange(len, (Kind::Int64, tch::Device::Cpu))), Some(diag)], &Tensor::from(0.0f64), false);
        sums_all.extend(Vec::<f64>::try_from(&dist.matmul(&onehot).view([-1]))?);
    }
    let mut out = Vec::with_capacity(codes.len());
    let mut off = 0;
    for (codes, &k) in codes.iter().zip(&ks) {
        let mut sizes = vec![0usize; k];
        for &c in codes {
            sizes[c] += 1;
        }
        let mut values = vec![0.0; n];
        for (i, v) in values.iter_mut().enumerate() {
            let sums = &sums_all[i * width + off..i * width + off + k];
            let own = codes[i];
            if sizes[own] <= 1 {
                continue; // sklearn: silhouette 0 for singletons
            }
            let a = sums[own] / (sizes[own] - 1) as f64;
            let b = (0..k).filter(|&c| c != own).map(|c| sums[c] / sizes[c] as f64).fold(f64::INFINITY, f64::min);
            let s = (b - a) / a.max(b);
            *v = if s.is_nan() { 0.0 } else { s };
        }
        out.push(values);
        off += k;
    }
    Ok(out)
}

/// The cells a silhouette of `n` cells is computed on: every cell when `sample` is 0 or
/// at least `n`, else `sample` cells drawn without replacement by a fixed seed (the same
/// cells for every run on the same data, whatever the run's seed), as scikit-learn's
/// `silhouette_score(sample_size=, random_state=)`.
pub fn silhouette_cells(n: usize, sample: usize) -> Vec<usize> {
    if sample == 0 || sample >= n {
        return (0..n).collect();
    }
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x5111_0e77e);
    let mut v = rand::seq::index::sample(&mut rng, n, sample).into_vec();
    v.sort_unstable();
    v
}

pub fn calinski_harabasz(x: &[f32], d: usize, labels: &[usize]) -> Result<f64> {
    let n = labels.len();
    if x.len() != n * d {
        return Err(Error::data(format!("embedding has {} values, expected {} x {}", x.len(), n, d)));
    }
    let (codes, k) = encode(labels);
    if k < 2 || k > n - 1 {
        return Err(Error::data(format!("Calinski-Harabasz needs 2 <= clusters <= cells-1, got {k}")));
    }
    let mut mean = vec![0f64; d];
    let mut cm = vec![vec![0f64; d]; k];
    let mut sizes = vec![0f64; k];
    for i in 0..n {
        sizes[codes[i]] += 1.0;
        for t in 0..d {
            let v = x[i * d + t] as f64;
            mean[t] += v;
            cm[codes[i]][t] += v;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    for c in 0..k {
        cm[c].iter_mut().for_each(|m| *m /= sizes[c]);
    }
    let (mut within, mut between) = (0.0, 0.0);
    for i in 0..n {
        for t in 0..d {
            let v = x[i * d + t] as f64 - cm[codes[i]][t];
            within += v * v;
        }
    }
    for c in 0..k {
        for t in 0..d {
            let v = cm[c][t] - mean[t];
            between += sizes[c] * v * v;
        }
    }
    Ok(if within == 0.0 { 1.0 } else { between * (n - k) as f64 / (within * (k - 1) as f64) })
}

/// All metrics of a clustering against ground truth (and of the embedding, if given).
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct Scores {
    pub ari: f64,
    pub nmi: f64,
    pub ami: f64,
    pub homogeneity: f64,
    pub completeness: f64,
    pub v_measure: f64,
    pub purity: f64,
    pub acc: f64,
    /// Silhouette of the embedding with the true labels, and (ASW+1)/2 (scMAE's "cell-type ASW").
    pub asw_truth: Option<f64>,
    pub asw_truth_scaled: Option<f64>,
    /// Silhouette and Calinski-Harabasz with the predicted labels.
    pub asw_pred: Option<f64>,
    pub calinski_harabasz: Option<f64>,
    /// How many cells the silhouettes were computed on (`metrics.silhouette_sample`).
    pub silhouette_cells: Option<usize>,
    pub n_clusters: usize,
    pub n_classes: usize,
    /// How stable the partition is (no labels used): the mean ARI between it and the
    /// clustering redone on subsamples of the cells (`cluster::stability`).
    pub stability: Option<f64>,
    /// With several batches (`batch`): scIB's batch ASW, iLISI, cLISI (scaled to [0, 1])
    /// and graph connectivity of the embedding the cells were clustered on
    /// (`metrics::batch`); None without batches.
    pub batch_silhouette: Option<f64>,
    pub ilisi: Option<f64>,
    pub clisi: Option<f64>,
    pub graph_connectivity: Option<f64>,
}

impl Scores {
    /// The same scores with the batch metrics `b` added.
    pub fn with_batch(self, b: Option<&batch::BatchScores>) -> Scores {
        match b {
            None => self,
            Some(b) => Scores {
                batch_silhouette: b.silhouette_batch,
                ilisi: Some(b.ilisi),
                clisi: Some(b.clisi),
                graph_connectivity: Some(b.graph_connectivity),
                ..self
            },
        }
    }

    pub fn as_pairs(&self) -> Vec<(String, f64)> {
        let v = serde_json::to_value(self).unwrap();
        v.as_object().unwrap().iter().filter_map(|(k, v)| v.as_f64().map(|f| (k.clone(), f))).collect()
    }
}

/// The mean silhouettes of `labelings` of the rows of `x` (n x d) on the cells of
/// [`silhouette_cells`]`(n, sample)`, in one pass over their distances: None for a
/// labelling with fewer than 2 or as many clusters as there are sampled cells. Returns
/// them and the number of cells used.
pub fn sampled_silhouettes(x: &[f32], d: usize, labelings: &[&[usize]], sample: usize) -> Result<(Vec<Option<f64>>, usize)> {
    let n = labelings.first().map_or(0, |l| l.len());
    let cells = silhouette_cells(n, sample);
    let m = cells.len();
    let xs: std::borrow::Cow<[f32]> =
        if m == n { x.into() } else { cells.iter().flat_map(|&i| x[i * d..(i + 1) * d].iter().copied()).collect::<Vec<f32>>().into() };
    let sampled: Vec<Vec<usize>> = labelings.iter().map(|l| cells.iter().map(|&i| l[i]).collect()).collect();
    let ok: Vec<bool> = sampled.iter().map(|l| (2..m).contains(&encode(l).1)).collect();
    let which: Vec<&[usize]> = sampled.iter().zip(&ok).filter(|w| *w.1).map(|w| w.0.as_slice()).collect();
    let mut got = silhouettes(&xs, d, &which)?.into_iter();
    Ok((ok.iter().map(|&o| if o { got.next() } else { None }).collect(), m))
}

/// Score predicted labels against truth. The silhouettes (O(m^2) for m cells) are
/// computed on the cells of [`silhouette_cells`]`(n, silhouette_sample)`; `silhouette_cells`
/// in the result says how many.
pub fn evaluate(
    truth: &[String],
    pred: &[i64],
    embedding: Option<(&[f32], usize)>,
    nmi_average: AverageMethod,
    silhouette_sample: usize,
) -> Result<Scores> {
    let (t, kt) = encode(truth);
    let (p, kp) = encode(pred);
    check_pair(&t, &p)?;
    let (h, c, v) = homogeneity_completeness_v(&t, &p)?;
    let mut s = Scores {
        ari: adjusted_rand_index(&t, &p)?,
        nmi: normalized_mutual_info(&t, &p, nmi_average)?,
        ami: adjusted_mutual_info(&t, &p, nmi_average)?,
        homogeneity: h,
        completeness: c,
        v_measure: v,
        purity: purity(&t, &p)?,
        acc: accuracy(&t, &p)?,
        n_clusters: kp,
        n_classes: kt,
        ..Default::default()
    };
    if let Some((x, d)) = embedding {
        let n = t.len();
        let (got, m) = sampled_silhouettes(x, d, &[&t, &p], silhouette_sample)?;
        s.asw_truth = got[0];
        s.asw_truth_scaled = s.asw_truth.map(|a| (a + 1.0) / 2.0);
        s.asw_pred = got[1];
        if got.iter().any(Option::is_some) {
            s.silhouette_cells = Some(m);
        }
        if kp >= 2 && kp < n {
            s.calinski_harabasz = Some(calinski_harabasz(x, d, &p)?);
        }
    }
    Ok(s)
}
