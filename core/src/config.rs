//! `RunConfig`: every option of a run, serde-(de)serialisable. Front ends build it
//! from JSON overlays: method defaults <- recipe preset <- user JSON <- flags.

pub use crate::batch::BatchConfig;
use crate::cluster::ClusterConfig;
pub use crate::error::from_json_at;
use crate::error::{Error, Result};
pub use crate::metrics::MetricsConfig;
use crate::preprocess::{PreprocessConfig, Recipe};
use crate::train::TrainConfig;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    pub method: String,
    /// Method hyper-parameters (validated by the method; see `scdeep methods --json`).
    pub params: Value,
    pub preprocess: PreprocessConfig,
    /// Training options of the deep methods (ignored by pca).
    pub train: TrainConfig,
    pub cluster: ClusterConfig,
    /// auto | cpu | cuda | cuda:N
    pub device: String,
    pub seed: u64,
    /// libtorch intra-op threads (default 1, see device::set_threads).
    pub threads: Option<usize>,
    pub metrics: MetricsConfig,
    /// Cells of several batches: where their batches are, and the correction.
    pub batch: BatchConfig,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig::for_method(DEFAULT_METHOD).expect("the default method exists")
    }
}

fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(bv) if bv.is_object() && v.is_object() => merge(bv, v),
                    _ => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// The sections of a config that bindings accept as nested options.
const SECTIONS: [&str; 5] = ["preprocess", "train", "cluster", "metrics", "batch"];
/// Top-level fields that bindings accept as plain options.
const TOP_LEVEL: [&str; 3] = ["device", "seed", "threads"];

/// The method of a run that names none: the one default of every door (CLI, C, Python, R).
/// The consensus of PCA, scMAE, contrastive-sc and the mask-sc MLP: no single method is
/// best on every labelled set, and the consensus is within 0.01 of the best one on 4 of 7
/// (scMAE alone on 2 of 7), never 0.1 below it where scMAE is up to 0.43 below (blakeley),
/// with k estimated when unknown (README, "Consensus"; bench/studies/consensus/results/consensus_table.json).
pub const DEFAULT_METHOD: &str = crate::models::consensus::NAME;

/// How every door builds a run's config, so that the same request gives the same run
/// from the CLI, C, Python and R. Layers apply in the order they are added, over the
/// method's defaults: a base config ([`ConfigBuilder::from_json`]: a config file, C's
/// `config_json`, a run.json), named options ([`ConfigBuilder::options`]: Python keyword
/// arguments, R's `...`), dotted settings ([`ConfigBuilder::set`]: CLI flags and `--set`).
/// [`ConfigBuilder::build`] then applies the one rule that depends on the data: with
/// neither a number of clusters nor ground truth, and no algorithm chosen, the cells are
/// clustered by Leiden on the kNN graph (resolution 1.0) instead of failing for want of k
/// (a consensus estimates k instead).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigBuilder {
    over: serde_json::Map<String, Value>,
}

impl ConfigBuilder {
    pub fn new() -> ConfigBuilder {
        ConfigBuilder::default()
    }

    /// A (partial) RunConfig as the base layer; it must be a JSON object.
    pub fn from_json(base: &Value) -> Result<ConfigBuilder> {
        match base {
            Value::Object(m) => Ok(ConfigBuilder { over: m.clone() }),
            v => Err(Error::config("config", v, "must be a JSON object")),
        }
    }

    pub fn from_json_str(s: &str) -> Result<ConfigBuilder> {
        let v: Value = serde_json::from_str(s).map_err(|e| Error::config("config", "(json)", format!("not valid JSON: {e}")))?;
        ConfigBuilder::from_json(&v)
    }

    /// Named options: the sections `preprocess`, `train`, `cluster`, `metrics`, `batch` as
    /// objects (merged into what is there), `device`, `seed`, `threads` top-level, every
    /// other key a method parameter (`params.<key>`).
    pub fn options(mut self, options: &Value) -> Result<ConfigBuilder> {
        let opts = match options {
            Value::Null => return Ok(self),
            Value::Object(m) => m,
            v => return Err(Error::config("options", v, "must be named options")),
        };
        for (k, v) in opts {
            if SECTIONS.contains(&k.as_str()) {
                if !v.is_object() {
                    return Err(Error::config(k, v, format!("must be named {k} options (see `scdeep methods --json`)")));
                }
                merge(self.over.entry(k.clone()).or_insert_with(|| Value::Object(Default::default())), v);
            } else if TOP_LEVEL.contains(&k.as_str()) || k == "method" {
                self.over.insert(k.clone(), v.clone());
            } else {
                self = self.set(&format!("params.{k}"), v.clone())?;
            }
        }
        Ok(self)
    }

    /// One field by its dotted path (`train.epochs`, `params.mask_rate`), creating the
    /// objects on the way.
    pub fn set(mut self, path: &str, v: Value) -> Result<ConfigBuilder> {
        let parts: Vec<&str> = path.split('.').map(str::trim).collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(Error::config("--set", path, "expected a dotted field name such as train.epochs"));
        }
        put(&mut self.over, &parts, v);
        Ok(self)
    }

    /// `KEY=VALUE` (the CLI's `--set`): VALUE is parsed as JSON, or taken as a string.
    pub fn set_pair(self, kv: &str) -> Result<ConfigBuilder> {
        let (k, v) = kv.split_once('=').ok_or_else(|| Error::config("--set", kv, "expected KEY=VALUE"))?;
        let val = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()));
        self.set(k, val)
    }

    pub fn method(mut self, method: &str) -> ConfigBuilder {
        put(&mut self.over, &["method"], Value::from(method));
        self
    }

    pub fn n_clusters(mut self, k: Option<usize>) -> ConfigBuilder {
        if let Some(k) = k {
            put(&mut self.over, &["cluster", "n_clusters"], Value::from(k));
        }
        self
    }

    /// The layers so far, before the data-dependent rule (a partial RunConfig).
    pub fn overlay(&self) -> Value {
        Value::Object(self.over.clone())
    }

    /// The config, validated. `has_truth`: the run has ground-truth labels (they give k).
    pub fn build(&self, has_truth: bool) -> Result<RunConfig> {
        let mut over = self.over.clone();
        let (k, algorithm) = match over.get("cluster") {
            None => (None, None),
            Some(Value::Object(c)) => (c.get("n_clusters").filter(|k| !k.is_null()), c.get("algorithm")),
            Some(c) => return Err(Error::config("cluster", c, "must be named cluster options")),
        };
        let method = over.get("method").and_then(Value::as_str).unwrap_or(DEFAULT_METHOD);
        // A consensus estimates k itself (pipeline::ensemble).
        if !has_truth && k.is_none() && algorithm.is_none() && method != crate::models::consensus::NAME {
            put(&mut over, &["cluster", "algorithm"], Value::from("leiden"));
        }
        RunConfig::from_json(&Value::Object(over))
    }
}

/// Set `parts` (a dotted path, split) in `map` to `v`, replacing non-objects on the way.
fn put(map: &mut serde_json::Map<String, Value>, parts: &[&str], v: Value) {
    match parts {
        [] => {}
        [last] => {
            map.insert(last.to_string(), v);
        }
        [first, rest @ ..] => {
            let slot = map.entry(first.to_string()).or_insert_with(|| Value::Object(Default::default()));
            if !slot.is_object() {
                *slot = Value::Object(Default::default());
            }
            if let Value::Object(inner) = slot {
                put(inner, rest, v);
            }
        }
    }
}

impl RunConfig {
    /// The defaults of a method (from its spec).
    pub fn for_method(method: &str) -> Result<RunConfig> {
        let info = crate::models::info(method)?;
        Ok(RunConfig {
            method: method.to_string(),
            params: (info.params)(),
            preprocess: crate::models::default_preprocess(method)?,
            train: (info.train)(),
            cluster: (info.cluster)(),
            device: "auto".into(),
            seed: 0,
            threads: None,
            metrics: MetricsConfig::default(),
            batch: BatchConfig::default(),
        })
    }

    /// Build from a (partial) JSON object over the method's defaults. A
    /// `preprocess.recipe` in the overlay first resets preprocessing to that preset.
    pub fn from_json(over: &Value) -> Result<RunConfig> {
        if !over.is_object() {
            return Err(Error::config("config", over, "must be a JSON object"));
        }
        let method = match over.get("method") {
            None => DEFAULT_METHOD.to_string(),
            Some(Value::String(s)) => s.clone(),
            Some(v) => return Err(Error::config("method", v, "must be a string")),
        };
        let mut base = serde_json::to_value(RunConfig::for_method(&method)?).unwrap();
        if let Some(r) = over.get("preprocess").and_then(|p| p.get("recipe")) {
            let recipe: Recipe = serde_json::from_value(r.clone())
                .map_err(|_| Error::config("preprocess.recipe", r, "expected dca, scanpy, sanity or custom"))?;
            base["preprocess"] = serde_json::to_value(PreprocessConfig::recipe(recipe)).unwrap();
        }
        merge(&mut base, over);
        let mut cfg: RunConfig = from_json_at("", base)?;
        cfg.preprocess.n_top_genes_is_default = over.get("preprocess").and_then(|p| p.get("n_top_genes")).is_none();
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn from_json_str(s: &str) -> Result<RunConfig> {
        let v: Value = serde_json::from_str(s).map_err(|e| Error::config("config", "(json)", format!("not valid JSON: {e}")))?;
        RunConfig::from_json(&v)
    }

    pub fn validate(&self) -> Result<()> {
        self.preprocess.validate()?;
        self.train.validate()?;
        if self.method == crate::models::consensus::NAME {
            crate::models::consensus::Params::from_json(&self.params)?;
        } else {
            crate::models::build(&self.method, &self.params)?; // validates method and params
        }
        self.cluster.validate()?;
        self.batch.validate()?;
        if self.threads == Some(0) {
            return Err(Error::config("threads", 0, "must be >= 1"));
        }
        let d = self.device.as_str();
        let ok = matches!(d, "auto" | "cpu" | "cuda" | "gpu") || d.strip_prefix("cuda:").is_some_and(|n| n.parse::<usize>().is_ok());
        if !ok {
            return Err(Error::config("device", d, "expected auto, cpu, cuda or cuda:N"));
        }
        Ok(())
    }
}

/// Every method with its description and default configuration (what `scdeep methods
/// --json`, the C ABI, Python and R list).
pub fn methods_json() -> Result<Value> {
    let mut list = Vec::new();
    for m in crate::models::METHODS {
        let cfg = RunConfig::for_method(m.name)?;
        list.push(serde_json::json!({"name": m.name, "description": m.description, "reference": m.reference, "default_config": cfg}));
    }
    Ok(Value::Array(list))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn options_are_sorted_into_sections_and_params() {
        let b = ConfigBuilder::new()
            .method("scmae")
            .options(&json!({"mask_rate": 0.3, "train": {"epochs": 2}, "seed": 3}))
            .unwrap()
            .n_clusters(Some(5));
        assert_eq!(
            b.overlay(),
            json!({"method": "scmae", "params": {"mask_rate": 0.3}, "train": {"epochs": 2}, "seed": 3, "cluster": {"n_clusters": 5}})
        );
        let cfg = b.build(false).unwrap();
        assert_eq!((cfg.seed, cfg.train.epochs, cfg.cluster.n_clusters), (3, 2, Some(5)));
        assert_eq!(cfg.cluster.algorithm, RunConfig::for_method("scmae").unwrap().cluster.algorithm);
        let e = ConfigBuilder::new().options(&json!({"train": 3})).unwrap_err().to_string();
        assert!(e.contains("train"), "{e}");
        // sections merge over a base config instead of replacing it
        let b = ConfigBuilder::from_json(&json!({"train": {"epochs": 4, "lr": 0.01}})).unwrap();
        let b = b.options(&json!({"train": {"epochs": 2}})).unwrap().set("train.batch_size", json!(64)).unwrap();
        assert_eq!(b.overlay()["train"], json!({"epochs": 2, "lr": 0.01, "batch_size": 64}));
        let b = ConfigBuilder::new().set_pair("params.n_comps=30").unwrap().set_pair("device=cpu").unwrap();
        assert_eq!(b.overlay(), json!({"params": {"n_comps": 30}, "device": "cpu"}));
        assert!(ConfigBuilder::new().set_pair("train..epochs=3").is_err());
        assert!(ConfigBuilder::from_json(&json!([1])).is_err());
    }

    #[test]
    fn without_k_or_truth_the_graph_is_clustered_unless_an_algorithm_is_chosen() {
        use crate::cluster::Algorithm;
        let b = ConfigBuilder::new().method("pca");
        assert_eq!(b.build(false).unwrap().cluster.algorithm, Algorithm::Leiden);
        assert_eq!(b.build(true).unwrap().cluster.algorithm, Algorithm::Kmeans);
        let chosen = b.clone().set("cluster.algorithm", json!("kmeans")).unwrap();
        assert_eq!(chosen.build(false).unwrap().cluster.algorithm, Algorithm::Kmeans);
        assert_eq!(b.n_clusters(Some(3)).build(false).unwrap().cluster.algorithm, Algorithm::Kmeans);
        assert_eq!(ConfigBuilder::new().build(true).unwrap().method, DEFAULT_METHOD);
    }

    #[test]
    fn a_resolved_config_builds_the_same_config() {
        let cfg = ConfigBuilder::new().method("scmae").options(&json!({"mask_rate": 0.2, "seed": 4})).unwrap().build(false).unwrap();
        let json = serde_json::to_value(&cfg).unwrap();
        let again = ConfigBuilder::from_json(&json).unwrap().build(false).unwrap();
        assert_eq!(serde_json::to_value(&again).unwrap(), json);
    }
}
