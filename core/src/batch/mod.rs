//! Batches: several samples, donors or protocols in one dataset. Correction of an
//! embedding so that cells cluster by type rather than by batch (Harmony), and how well
//! batches mix in a saved embedding (scIB's metrics, `metrics::batch`).

pub mod harmony;

use crate::error::{Error, Result};
use std::path::Path;

pub use harmony::{harmony, Harmonized, HarmonyConfig};

/// The batch metrics of a saved embedding (.npy, whose rows are `truth`'s cells in its
/// order, or a table with the cells' names), the cell types from `truth` and the batches
/// from `batches` (both `cell<TAB>value` with a header), joined by cell name, on the
/// exact `n_neighbors`-NN graph (at most the cells).
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
    let knn = crate::cluster::knn_exact(&t, n_neighbors.min(n), crate::cluster::Metric::Euclidean, 1024)?;
    crate::metrics::batch::evaluate_batches(&x, d, &labels, &batch, knn.neighbours()).map_err(|e| match e {
        Error::Data(m) => Error::format(batches, m),
        e => e,
    })
}
