//! The `consensus` method's registry entry and parameters. It is not one model: the
//! pipeline runs its members (`pipeline::ensemble`), each a method of this registry.

use crate::error::{Error, Result};
use crate::models::MethodInfo;
use crate::preprocess::Recipe;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The method name of a consensus run.
pub const NAME: &str = "consensus";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    /// The methods whose embeddings are compared, each run with its own defaults.
    pub members: Vec<String>,
    /// Options of a member over its defaults, by member name, as a run of that method
    /// takes them: `{"scmae": {"train": {"epochs": 20}}}`.
    pub member_options: serde_json::Map<String, Value>,
    /// With neither k nor ground truth: the bounds of the estimated k.
    pub k_min: usize,
    pub k_max: usize,
    /// How much each member weighs in the consensus embedding: `equal`, or by its
    /// `agreement` with the others (its partition's mean ARI to theirs, relative to the
    /// most agreeing member's, to the power `weight_power`).
    pub weighting: Weighting,
    pub weight_power: f64,
    /// Members whose relative agreement is below this are left out (0 = none).
    pub drop_below: f64,
    /// With neither k nor ground truth, how k is estimated on the consensus embedding
    /// ([`crate::cluster::estimate_k`]): `leiden` communities at `k_resolution`; the
    /// `plateau`, the number of communities that holds over the widest span of the
    /// `k_resolution_steps` resolutions from `k_resolution_range[0]` to `[1]` (log scale);
    /// or the `silhouette`'s best k on at most `k_scan_cells` cells.
    pub k_rule: KRule,
    pub k_resolution: f64,
    pub k_resolution_range: [f64; 2],
    pub k_resolution_steps: usize,
    pub k_scan_cells: usize,
}

pub use crate::cluster::KRule;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Weighting {
    Equal,
    Agreement,
}

impl Default for Params {
    fn default() -> Self {
        let k = crate::cluster::KEstimate::default();
        Params {
            members: DEFAULT_MEMBERS.iter().map(|s| s.to_string()).collect(),
            member_options: Default::default(),
            k_min: k.k_min,
            k_max: k.k_max,
            // chosen leave-one-dataset-out over the labelled and simulated sets
            // (bench/generalization.py; bench/results/generalization.json)
            weighting: Weighting::Equal,
            weight_power: 1.0,
            drop_below: 0.6,
            k_rule: k.rule,
            k_resolution: k.resolution,
            k_resolution_range: k.resolution_range,
            k_resolution_steps: k.resolution_steps,
            k_scan_cells: k.scan_cells,
        }
    }
}

/// The default members: the linear baseline and three self-supervised methods that train
/// in about a minute on 4k cells on one CPU thread.
pub const DEFAULT_MEMBERS: [&str; 4] = ["pca", "scmae", "contrastive-sc", "mask-sc-mlp"];

pub const INFO: MethodInfo = MethodInfo {
    name: NAME,
    description: "Consensus of several methods' embeddings (default members: pca, scMAE, contrastive-sc, mask-sc MLP), \
                  each with its own recipe; the partition the members agree on most, chosen without labels",
    reference: "scdeep (issue 24); evidence accumulation: Fred & Jain, IEEE TPAMI 2005; SC3: Kiselev et al., Nat Methods 2017",
    params: || super::params_json(&Params::default()),
    recipe: Recipe::Scanpy,
    n_top_genes: 2000,
    train: crate::train::TrainConfig::default,
    // 30 K-means starts, not scikit-learn's 10: the concatenation has more near-equal optima
    cluster: || crate::cluster::ClusterConfig { n_init: 30, ..Default::default() },
    build: |_| {
        Err(Error::config(
            "method",
            NAME,
            "consensus is not one model: the pipeline runs its members (pipeline::run), and its saved model holds theirs",
        ))
    },
};

impl Params {
    /// The parameters of a consensus config's `params` section, checked.
    pub fn from_json(params: &Value) -> Result<Params> {
        let p: Params = crate::error::from_json_at("params", params.clone())?;
        if p.members.is_empty() {
            return Err(Error::config("params.members", "[]", "needs at least one method"));
        }
        for (i, m) in p.members.iter().enumerate() {
            if m == NAME {
                return Err(Error::config("params.members", m, "a consensus cannot be its own member"));
            }
            super::info(m).map_err(|e| Error::config("params.members", m, e.to_string()))?;
            if p.members[..i].contains(m) {
                return Err(Error::config("params.members", m, "named twice"));
            }
        }
        for (m, o) in &p.member_options {
            if !p.members.contains(m) {
                return Err(Error::config(&format!("params.member_options.{m}"), o, "is not a member (params.members)"));
            }
        }
        if !(p.weight_power >= 0.0 && p.weight_power.is_finite()) {
            return Err(Error::config("params.weight_power", p.weight_power, "must be a number >= 0"));
        }
        if !(0.0..=1.0).contains(&p.drop_below) {
            return Err(Error::config("params.drop_below", p.drop_below, "must be in [0, 1]"));
        }
        if !(p.k_resolution > 0.0 && p.k_resolution.is_finite()) {
            return Err(Error::config("params.k_resolution", p.k_resolution, "must be a number > 0"));
        }
        let [lo, hi] = p.k_resolution_range;
        if !(lo > 0.0 && hi >= lo && hi.is_finite()) {
            return Err(Error::config("params.k_resolution_range", format!("[{lo}, {hi}]"), "needs 0 < low <= high"));
        }
        if p.k_resolution_steps < 1 {
            return Err(Error::config("params.k_resolution_steps", p.k_resolution_steps, "must be >= 1"));
        }
        if p.k_scan_cells < 3 {
            return Err(Error::config("params.k_scan_cells", p.k_scan_cells, "must be >= 3"));
        }
        if p.k_min < 2 || p.k_max < p.k_min {
            return Err(Error::config("params.k_min", format!("{}..{}", p.k_min, p.k_max), "needs 2 <= k_min <= k_max"));
        }
        Ok(p)
    }

    /// The k rule of these parameters.
    pub fn k_estimate(&self) -> crate::cluster::KEstimate {
        crate::cluster::KEstimate {
            rule: self.k_rule,
            k_min: self.k_min,
            k_max: self.k_max,
            resolution: self.k_resolution,
            resolution_range: self.k_resolution_range,
            resolution_steps: self.k_resolution_steps,
            scan_cells: self.k_scan_cells,
            ..Default::default()
        }
    }

    /// Each member's weight from its `agreement` (mean ARI to the other members): 0 below
    /// `drop_below` relative to the largest; else 1 with `equal`, or its relative agreement
    /// to `weight_power` with `agreement` (0 when it agrees no better than chance). Equal
    /// weights when no member agrees with the others better than chance.
    pub fn weights(&self, agreement: &[f64]) -> Vec<f64> {
        let top = agreement.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        if !(top > 0.0) {
            return vec![1.0; agreement.len()];
        }
        agreement
            .iter()
            .map(|a| {
                let rel = a / top;
                if self.drop_below > 0.0 && rel < self.drop_below {
                    0.0
                } else if self.weighting == Weighting::Equal {
                    1.0
                } else if rel <= 0.0 {
                    0.0
                } else {
                    rel.powf(self.weight_power)
                }
            })
            .collect()
    }
}
