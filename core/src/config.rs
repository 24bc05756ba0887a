//! `RunConfig`: every option of a run, serde-(de)serialisable. Front ends build it
//! from JSON overlays: method defaults <- recipe preset <- user JSON <- flags.

use crate::cluster::ClusterConfig;
use crate::error::{Error, Result};
use crate::metrics::AverageMethod;
use crate::preprocess::{PreprocessConfig, Recipe};
use crate::train::TrainConfig;
use serde::{Deserialize, Serialize};
use serde_json::Value;

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
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig::for_method("pca").expect("pca exists")
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

/// Deserialize `v` (the value of the config section `prefix`, "" for the whole
/// config); an error names the dotted field that is wrong and its value, e.g.
/// `train.epochs` = true.
pub fn from_json_at<T: serde::de::DeserializeOwned>(prefix: &str, v: Value) -> Result<T> {
    let copy = v.clone();
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let at = if path == "." { String::new() } else { path.clone() };
        let field = match (prefix.is_empty(), at.is_empty()) {
            (true, true) => "config".to_string(),
            (true, false) => at.clone(),
            (false, true) => prefix.to_string(),
            (false, false) => format!("{prefix}.{at}"),
        };
        let pointer = format!("/{}", at.replace('.', "/"));
        let value = if at.is_empty() {
            copy.to_string()
        } else {
            copy.pointer(&pointer).map(|x| x.to_string()).unwrap_or_else(|| "(missing)".into())
        };
        let shown: String = value.chars().take(200).collect();
        Error::config(&field, shown, inner)
    })
}

/// The sections of a config that bindings accept as nested options.
const SECTIONS: [&str; 4] = ["preprocess", "train", "cluster", "metrics"];
/// Top-level fields that bindings accept as plain options.
const TOP_LEVEL: [&str; 3] = ["device", "seed", "threads"];

/// A config overlay from a binding's call (Python keyword arguments, R `...`): the
/// sections `preprocess`, `train`, `cluster`, `metrics` pass through as objects, `device`,
/// `seed` and `threads` stay top-level, and every other key is a method parameter. With
/// neither `n_clusters` nor ground truth, the graph is clustered (Leiden at resolution
/// 1.0) unless the caller chose an algorithm. The result goes to `RunConfig::from_json`.
pub fn options_overlay(method: &str, n_clusters: Option<usize>, has_truth: bool, options: &Value) -> Result<Value> {
    let opts = match options {
        Value::Null => serde_json::Map::new(),
        Value::Object(m) => m.clone(),
        v => return Err(Error::config("options", v, "must be named options")),
    };
    let mut cfg = serde_json::Map::new();
    cfg.insert("method".into(), Value::String(method.to_string()));
    let mut params = serde_json::Map::new();
    for (k, v) in opts {
        if SECTIONS.contains(&k.as_str()) {
            if !v.is_object() {
                return Err(Error::config(&k, &v, format!("must be named {k} options (see `scdeep methods --json`)")));
            }
            cfg.insert(k, v);
        } else if TOP_LEVEL.contains(&k.as_str()) {
            cfg.insert(k, v);
        } else {
            params.insert(k, v);
        }
    }
    if !params.is_empty() {
        cfg.insert("params".into(), Value::Object(params));
    }
    let cluster = cfg.entry("cluster").or_insert_with(|| Value::Object(Default::default()));
    if let Some(k) = n_clusters {
        cluster["n_clusters"] = Value::from(k);
    } else if !has_truth && cluster.get("algorithm").is_none() {
        cluster["algorithm"] = Value::from("leiden");
    }
    Ok(Value::Object(cfg))
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
        })
    }

    /// Build from a (partial) JSON object over the method's defaults. A
    /// `preprocess.recipe` in the overlay first resets preprocessing to that preset.
    pub fn from_json(over: &Value) -> Result<RunConfig> {
        if !over.is_object() {
            return Err(Error::config("config", over, "must be a JSON object"));
        }
        let method = match over.get("method") {
            None => "pca".to_string(),
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
        crate::models::build(self)?; // validates method and params
        self.cluster.validate()?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn options_are_sorted_into_sections_and_params() {
        let o = options_overlay("scmae", Some(5), false, &json!({"mask_rate": 0.3, "train": {"epochs": 2}, "seed": 3})).unwrap();
        assert_eq!(
            o,
            json!({"method": "scmae", "params": {"mask_rate": 0.3}, "train": {"epochs": 2}, "seed": 3, "cluster": {"n_clusters": 5}})
        );
        let cfg = RunConfig::from_json(&o).unwrap();
        assert_eq!((cfg.seed, cfg.train.epochs, cfg.cluster.n_clusters), (3, 2, Some(5)));
        // no k, no truth: graph clustering unless chosen
        let o = options_overlay("pca", None, false, &json!({})).unwrap();
        assert_eq!(o["cluster"]["algorithm"], "leiden");
        let o = options_overlay("pca", None, false, &json!({"cluster": {"algorithm": "kmeans"}})).unwrap();
        assert_eq!(o["cluster"]["algorithm"], "kmeans");
        let o = options_overlay("pca", None, true, &json!(null)).unwrap();
        assert!(o["cluster"].get("algorithm").is_none());
        let e = options_overlay("pca", None, true, &json!({"train": 3})).unwrap_err().to_string();
        assert!(e.contains("train"), "{e}");
    }
}
