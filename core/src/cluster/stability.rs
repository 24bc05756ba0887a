//! How far to trust a partition: the run's clustering is done again on random subsamples
//! of the cells, and each result compared with the partition on the cells it saw
//! (clusterboot's resampling, Hennig 2007; chooseR and MultiK resample the same way).
//! Overall: the mean adjusted Rand index over the runs. Per cluster: the mean over runs
//! of its best Jaccard index with a cluster of the run (Hennig reads below 0.6 as
//! dissolved, above 0.75 as stable). Identical results give 1 everywhere.

use super::{run, ClusterConfig};
use crate::error::Result;
use crate::progress::Silent;
use rand::seq::index::sample;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tch::Tensor;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StabilityConfig {
    /// Subsampled clusterings compared with the run's (0 = not measured).
    pub runs: usize,
    /// The share of the cells each one sees.
    pub fraction: f64,
    /// At most this many cells each (bounds the cost on large inputs).
    pub max_cells: usize,
}

impl Default for StabilityConfig {
    fn default() -> Self {
        StabilityConfig { runs: 5, fraction: 0.8, max_cells: 20_000 }
    }
}

impl StabilityConfig {
    pub fn validate(&self) -> Result<()> {
        if !(self.fraction > 0.0 && self.fraction <= 1.0) {
            return Err(crate::error::Error::config("cluster.stability.fraction", self.fraction, "must be in (0, 1]"));
        }
        if self.max_cells < 2 {
            return Err(crate::error::Error::config("cluster.stability.max_cells", self.max_cells, "must be >= 2"));
        }
        Ok(())
    }
}

/// The stability of `labels` (the clustering of `x` by `cfg`, aiming at `k` clusters when
/// known): `cfg` run again on `sc.runs` subsamples drawn from `seed`. JSON with the overall
/// score, its range over the runs and the score of each cluster (by label); null when
/// not measured (no runs, or fewer than 4 cells).
pub fn stability(x: &Tensor, labels: &[i64], cfg: &ClusterConfig, k: Option<usize>, seed: u64, sc: &StabilityConfig) -> Result<Value> {
    sc.validate()?;
    let n = labels.len();
    let m = ((n as f64 * sc.fraction).round() as usize).min(sc.max_cells).min(n);
    let mut clusters: Vec<i64> = labels.to_vec();
    clusters.sort_unstable();
    clusters.dedup();
    if sc.runs == 0 || n < 4 || k.is_some_and(|k| k > m) {
        return Ok(Value::Null);
    }
    let mut aris = Vec::with_capacity(sc.runs);
    let mut jaccard = vec![0.0f64; clusters.len()];
    for r in 0..sc.runs {
        let mut rng = crate::seed::rng_for(seed, STREAM + r as u64);
        let mut cells: Vec<usize> = sample(&mut rng, n, m).into_vec();
        cells.sort_unstable();
        let idx = Tensor::from_slice(&cells.iter().map(|&i| i as i64).collect::<Vec<_>>()).to_device(x.device());
        let sub = x.f_index_select(0, &idx)?;
        let again = run(&sub, cfg, k, crate::seed::mix_seed(seed, STREAM + r as u64), &mut Silent)?.labels;
        let here: Vec<i64> = cells.iter().map(|&i| labels[i]).collect();
        let (a, _) = crate::metrics::encode(&here);
        let (b, _) = crate::metrics::encode(&again);
        aris.push(crate::metrics::adjusted_rand_index(&a, &b)?);
        for (c, j) in clusters.iter().zip(jaccard.iter_mut()) {
            *j += best_jaccard(&here, &again, *c);
        }
    }
    let mean = aris.iter().sum::<f64>() / aris.len() as f64;
    let per: serde_json::Map<String, Value> =
        clusters.iter().zip(&jaccard).map(|(c, j)| (c.to_string(), json!(round4(j / sc.runs as f64)))).collect();
    Ok(json!({
        "overall": round4(mean),
        "range": [round4(aris.iter().cloned().fold(f64::INFINITY, f64::min)), round4(aris.iter().cloned().fold(f64::NEG_INFINITY, f64::max))],
        "per_cluster": per,
        "runs": sc.runs,
        "cells_per_run": m,
        "measure": "ARI to the run's partition over subsampled reclusterings; per cluster the mean best Jaccard index",
    }))
}

/// The stream of the subsamples' seeds (apart from the clustering's own).
const STREAM: u64 = 0x5AB1_0000;

fn round4(v: f64) -> f64 {
    (v * 1e4).round() / 1e4
}

/// The largest Jaccard index between cluster `c` of `here` and any cluster of `again`
/// (both over the same cells).
fn best_jaccard(here: &[i64], again: &[i64], c: i64) -> f64 {
    let size = here.iter().filter(|&&l| l == c).count();
    if size == 0 {
        return 0.0;
    }
    let mut overlap: std::collections::HashMap<i64, usize> = Default::default();
    let mut sizes: std::collections::HashMap<i64, usize> = Default::default();
    for (&h, &a) in here.iter().zip(again) {
        *sizes.entry(a).or_default() += 1;
        if h == c {
            *overlap.entry(a).or_default() += 1;
        }
    }
    overlap.iter().map(|(a, &o)| o as f64 / (size + sizes[a] - o) as f64).fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::KMeansParams;

    fn km_cfg() -> ClusterConfig {
        ClusterConfig { n_init: 5, ..Default::default() }
    }

    #[test]
    fn separated_groups_are_stable_and_noise_is_not() {
        tch::manual_seed(0);
        let centres = Tensor::randn([4, 6], (tch::Kind::Float, tch::Device::Cpu)) * 20.0;
        let idx = Tensor::arange(200, (tch::Kind::Int64, tch::Device::Cpu)).divide_scalar_mode(50, "floor");
        let blobs = centres.index_select(0, &idx) + Tensor::randn([200, 6], (tch::Kind::Float, tch::Device::Cpu));
        let noise = Tensor::randn([200, 6], (tch::Kind::Float, tch::Device::Cpu));
        let sc = StabilityConfig::default();
        let params = KMeansParams { k: 4, n_init: 5, max_iter: 300, tol: 1e-4, seed: 1 };
        let lb = crate::cluster::kmeans(&blobs, &params).unwrap().labels;
        let s = stability(&blobs, &lb, &km_cfg(), Some(4), 1, &sc).unwrap();
        assert_eq!(s["overall"], json!(1.0), "{s}");
        assert!(s["per_cluster"].as_object().unwrap().values().all(|v| v == &json!(1.0)), "{s}");
        let ln = crate::cluster::kmeans(&noise, &params).unwrap().labels;
        let t = stability(&noise, &ln, &km_cfg(), Some(4), 1, &sc).unwrap();
        assert!(t["overall"].as_f64().unwrap() < 0.9, "noise: {t}");
        // the same seed gives the same score; no runs, no score
        assert_eq!(stability(&noise, &ln, &km_cfg(), Some(4), 1, &sc).unwrap(), t);
        let off = StabilityConfig { runs: 0, ..sc };
        assert_eq!(stability(&noise, &ln, &km_cfg(), Some(4), 1, &off).unwrap(), Value::Null);
    }

    #[test]
    fn best_jaccard_matches_by_hand() {
        let here = [0, 0, 0, 1, 1, 1];
        let again = [5, 5, 6, 6, 6, 6];
        // cluster 0 = {0,1,2}; best partner 5 = {0,1}: 2 / 3
        assert!((best_jaccard(&here, &again, 0) - 2.0 / 3.0).abs() < 1e-12);
        // cluster 1 = {3,4,5}; partner 6 = {2,3,4,5}: 3 / 4
        assert!((best_jaccard(&here, &again, 1) - 0.75).abs() < 1e-12);
    }
}
