//! Batches: several samples, donors or protocols in one dataset. Correction of an
//! embedding so that cells cluster by type rather than by batch (Harmony), and how well
//! batches mix in a saved embedding (scIB's metrics, `metrics::batch`).

pub mod harmony;

use crate::error::{Error, Result};
use crate::progress::Progress;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::Path;

pub use harmony::{harmony, Harmonized, HarmonyConfig};

/// How a run treats cells of several batches (`RunConfig::batch`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BatchConfig {
    /// Where each cell's batch is: an .h5ad obs column (CLI `--batch-key`), an AnnData
    /// obs key (Python `batch_key`), a meta.data / colData column (R `batch`). None: the
    /// cells have no batches unless the door gives them otherwise (CLI `--batches FILE`).
    pub key: Option<String>,
    /// How the embedding of cells of several batches is corrected before clustering.
    pub correction: Correction,
    /// Harmony's options (`correction: harmony`).
    pub harmony: HarmonyConfig,
    /// The batch metrics' nearest neighbours per cell (scIB: 90; the LISI perplexity is a third).
    pub metrics_neighbors: usize,
    /// The batch metrics are computed on at most this many cells (a fixed draw), as their
    /// exact neighbour search is quadratic in the cells.
    pub metrics_cells: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            key: None,
            correction: Correction::Harmony,
            harmony: HarmonyConfig::default(),
            metrics_neighbors: 90,
            metrics_cells: 20_000,
        }
    }
}

/// The correction of an embedding for batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Correction {
    /// Harmony (Korsunsky et al. 2019) on the embedding: cells cluster by type, not batch.
    Harmony,
    /// The embedding as the method made it.
    None,
}

impl BatchConfig {
    pub fn validate(&self) -> Result<()> {
        if let Some(k) = self.key.as_ref().filter(|k| k.trim().is_empty()) {
            return Err(Error::config("batch.key", k, "must name a column"));
        }
        if self.metrics_neighbors < 3 {
            return Err(Error::config("batch.metrics_neighbors", self.metrics_neighbors, "must be >= 3"));
        }
        if self.metrics_cells < 10 {
            return Err(Error::config("batch.metrics_cells", self.metrics_cells, "must be >= 10"));
        }
        self.harmony.validate()
    }
}

/// The batches of a run's cells: each cell's code and the batches' names (sorted).
#[derive(Debug, Clone)]
pub struct Batches {
    pub names: Vec<String>,
    pub codes: Vec<usize>,
}

impl Batches {
    /// The batches of `cells` (the run's kept cells, in order), checked against the run's
    /// config: None (with a note) for a single batch; an error when `cfg.key` names batches
    /// the cells do not have, or when every cell is a batch of its own.
    pub fn of_cells(values: Option<&[String]>, cfg: &BatchConfig, progress: &mut dyn Progress) -> Result<Option<Batches>> {
        let field = cfg.key.as_deref().map_or("batches".to_string(), |k| format!("batch.key '{k}'"));
        let Some(values) = values else {
            return match &cfg.key {
                Some(k) => Err(Error::config(
                    "batch.key",
                    k,
                    "the cells have no batches: read them from that column (.h5ad obs, AnnData obs, Seurat meta.data) or give --batches FILE",
                )),
                None => Ok(None),
            };
        };
        let mut names: Vec<String> = values.to_vec();
        names.sort_unstable();
        names.dedup();
        let n = values.len();
        if names.len() < 2 {
            progress.message(&format!(
                "{field}: one batch ('{}') among the {n} cells; nothing to correct and no batch metrics",
                names.first().map_or("", String::as_str)
            ));
            return Ok(None);
        }
        if names.len() == n {
            return Err(Error::config(
                cfg.key.as_deref().map_or("batches", |_| "batch.key"),
                cfg.key.as_deref().unwrap_or("(file)"),
                format!("every cell is a batch of its own ({n} batches for {n} cells): name a column of samples, donors or lanes"),
            ));
        }
        let codes = values.iter().map(|v| names.binary_search(v).unwrap_or(0)).collect();
        Ok(Some(Batches { names, codes }))
    }

    /// Cells per batch, by name.
    pub fn sizes(&self) -> serde_json::Map<String, Value> {
        let mut counts = vec![0usize; self.names.len()];
        self.codes.iter().for_each(|&c| counts[c] += 1);
        self.names.iter().cloned().zip(counts.into_iter().map(Value::from)).collect()
    }

    /// Correct the embedding `x` (cells x `dims`, row-major) in place as `cfg` says; the
    /// account of what was done (for run.json).
    pub fn correct(
        &self,
        x: &mut [f32],
        dims: usize,
        cfg: &BatchConfig,
        seed: u64,
        device: tch::Device,
        progress: &mut dyn Progress,
    ) -> Result<Value> {
        match cfg.correction {
            Correction::None => Ok(json!({"method": "none"})),
            Correction::Harmony => {
                progress.message(&format!("correcting the embedding for {} batches with Harmony", self.names.len()));
                let h = harmony(x, dims, &self.codes, &cfg.harmony, seed, device)?;
                if !h.converged {
                    progress.message(&format!("Harmony did not converge in {} rounds (batch.harmony.max_iter)", h.iterations));
                }
                x.copy_from_slice(&h.embedding);
                Ok(json!({
                    "method": "harmony", "n_clusters": h.n_clusters, "iterations": h.iterations,
                    "converged": h.converged,
                }))
            }
        }
    }

    /// What a run says about its batches in run.json: the column, the cells per batch,
    /// the correction, and each cluster's cells per batch (a cluster of one batch is
    /// often a sample, not a cell type).
    pub fn account(&self, cfg: &BatchConfig, correction: Value, labels: &[i64]) -> Value {
        let mut by_cluster: std::collections::BTreeMap<i64, Vec<usize>> = Default::default();
        for (&l, &b) in labels.iter().zip(&self.codes) {
            by_cluster.entry(l).or_insert_with(|| vec![0; self.names.len()])[b] += 1;
        }
        let clusters: serde_json::Map<String, Value> = by_cluster
            .into_iter()
            .map(|(l, counts)| {
                (l.to_string(), Value::Object(self.names.iter().cloned().zip(counts.into_iter().map(Value::from)).collect()))
            })
            .collect();
        json!({"key": cfg.key, "n_batches": self.names.len(), "cells": self.sizes(), "correction": correction, "clusters_by_batch": clusters})
    }

    /// The batch metrics of `x` (cells x `dims`) for the cell types `truth`, on at most
    /// `cfg.metrics_cells` cells (a fixed draw) and their exact `cfg.metrics_neighbors`-NN graph.
    pub fn scores(
        &self,
        x: &[f32],
        dims: usize,
        truth: &[String],
        cfg: &BatchConfig,
        device: tch::Device,
    ) -> Result<crate::metrics::batch::BatchScores> {
        let cells = crate::metrics::silhouette_cells(truth.len(), cfg.metrics_cells);
        let xs: Vec<f32> = cells.iter().flat_map(|&i| x[i * dims..(i + 1) * dims].iter().copied()).collect();
        let types: Vec<&String> = cells.iter().map(|&i| &truth[i]).collect();
        let codes: Vec<usize> = cells.iter().map(|&i| self.codes[i]).collect();
        let n = cells.len();
        let t = tch::Tensor::from_slice(&xs).view([n as i64, dims as i64]).to_device(device);
        let knn = crate::cluster::knn_exact(&t, cfg.metrics_neighbors.min(n.saturating_sub(1)), crate::cluster::Metric::Euclidean, 1024)?;
        crate::metrics::batch::evaluate_batches(&xs, dims, &types, &codes, knn.neighbours())
    }
}

/// The batch metrics of a saved embedding (.npy, whose rows are `truth`'s cells in its
/// order, or a table with the cells' names), the cell types from `truth` and the batches
/// from `batches` (both `cell<TAB>value` with a header), joined by cell name, on the
/// exact `n_neighbors`-NN graph (at most the other cells).
pub fn evaluate_files(embedding: &Path, truth: &Path, batches: &Path, n_neighbors: usize) -> Result<crate::metrics::batch::BatchScores> {
    let (cells, x, d) = crate::io::read_embedding(embedding)?;
    let types = crate::io::read_labels_tsv(truth)?;
    let cells: Vec<String> = if embedding.extension().is_some_and(|e| e == "npy") {
        if types.len() != cells.len() {
            return Err(Error::format(
                embedding,
                format!("{} rows, but {} has {} cells (an .npy's rows are its cells in order)", cells.len(), truth.display(), types.len()),
            ));
        }
        types.iter().map(|(c, _)| c.clone()).collect()
    } else {
        cells
    };
    let n = cells.len();
    if n < 10 {
        return Err(Error::format(embedding, format!("{n} cells, too few for batch metrics (at least 10)")));
    }
    let lookup = |path: &Path, pairs: Vec<(String, String)>| -> Result<Vec<String>> {
        let map: std::collections::HashMap<String, String> = pairs.into_iter().collect();
        cells
            .iter()
            .map(|c| map.get(c).cloned().ok_or_else(|| Error::format(path, format!("no value for cell '{c}' of {}", embedding.display()))))
            .collect()
    };
    let labels = lookup(truth, types)?;
    let batch = lookup(batches, crate::io::read_labels_tsv(batches)?)?;
    let t = tch::Tensor::from_slice(&x).view([n as i64, d as i64]);
    let knn = crate::cluster::knn_exact(&t, n_neighbors.min(n - 1), crate::cluster::Metric::Euclidean, 1024)?;
    crate::metrics::batch::evaluate_batches(&x, d, &labels, &batch, knn.neighbours()).map_err(|e| match e {
        Error::Data(m) => Error::format(batches, m),
        e => e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// Messages of a run, kept.
    #[derive(Default)]
    struct Notes(Vec<String>);
    impl Progress for Notes {
        fn message(&mut self, msg: &str) {
            self.0.push(msg.to_string());
        }
    }

    #[test]
    fn batches_are_coded_and_bad_ones_named() {
        let cfg = BatchConfig { key: Some("donor".into()), ..Default::default() };
        let mut notes = Notes::default();
        let b = Batches::of_cells(Some(&strings(&["b", "a", "b", "a"])), &cfg, &mut notes).unwrap().unwrap();
        assert_eq!((b.names.clone(), b.codes.clone()), (strings(&["a", "b"]), vec![1, 0, 1, 0]));
        assert_eq!(Value::Object(b.sizes()), json!({"a": 2, "b": 2}));
        let acc = b.account(&cfg, json!({"method": "none"}), &[0, 0, 1, 1]);
        assert_eq!(acc["clusters_by_batch"], json!({"0": {"a": 1, "b": 1}, "1": {"a": 1, "b": 1}}));
        // one batch: nothing to do, said so
        assert!(Batches::of_cells(Some(&strings(&["x", "x", "x"])), &cfg, &mut notes).unwrap().is_none());
        assert!(notes.0.iter().any(|m| m.contains("batch.key 'donor'") && m.contains("one batch ('x')")), "{:?}", notes.0);
        // one batch per cell: a column of cell names, not batches
        let e = Batches::of_cells(Some(&strings(&["c1", "c2", "c3"])), &cfg, &mut notes).unwrap_err().to_string();
        assert!(e.contains("batch.key") && e.contains("donor") && e.contains("3 batches for 3 cells"), "{e}");
        // a key, but no batches read
        let e = Batches::of_cells(None, &cfg, &mut notes).unwrap_err().to_string();
        assert!(e.contains("donor") && e.contains("no batches"), "{e}");
        assert!(Batches::of_cells(None, &BatchConfig::default(), &mut notes).unwrap().is_none());
    }

    #[test]
    fn the_config_refuses_what_cannot_work() {
        let bad = [
            BatchConfig { key: Some(" ".into()), ..Default::default() },
            BatchConfig { metrics_neighbors: 2, ..Default::default() },
            BatchConfig { metrics_cells: 5, ..Default::default() },
        ];
        for (c, field) in bad.iter().zip(["batch.key", "batch.metrics_neighbors", "batch.metrics_cells"]) {
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(field), "{e}");
        }
        let c: BatchConfig = serde_json::from_value(json!({"key": "sample", "correction": "none"})).unwrap();
        assert_eq!((c.key.as_deref(), c.correction), (Some("sample"), Correction::None));
        assert!(serde_json::from_value::<BatchConfig>(json!({"correction": "combat"})).is_err());
    }
}
