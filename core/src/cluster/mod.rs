//! Clustering of embeddings. K-means runs as tensor code on the model's device.

pub mod kmeans;

pub use kmeans::{kmeans, KMeansParams, KMeansResult};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    Kmeans,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    pub algorithm: Algorithm,
    /// Number of clusters; None = the number of ground-truth classes when labels are given.
    pub n_clusters: Option<usize>,
    pub n_init: usize,
    pub max_iter: usize,
    pub tol: f64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        // scikit-learn's KMeans defaults (specs §0.3).
        ClusterConfig { algorithm: Algorithm::Kmeans, n_clusters: None, n_init: 10, max_iter: 300, tol: 1e-4 }
    }
}
