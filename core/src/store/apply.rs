//! Applying a saved model to new cells: the model's preprocessing of the counts, then its
//! encoder; a consensus embeds with each member and places the blocks side by side as
//! the run did (`crate::embedding`).

use super::{Body, Embedded, TrainedModel};
use crate::embedding::place_block;
use crate::error::{Error, Result};
use crate::matrix::Dataset;
use crate::models::Context;
use crate::preprocess::Prepared;
use serde_json::Value;

impl TrainedModel {
    /// Embed new counts: the model's preprocessing, then its encoder (a consensus: each
    /// member's, centred and scaled as in the run, side by side).
    pub fn embed(&self, ds: &Dataset, device: tch::Device, progress: &mut dyn crate::progress::Progress) -> Result<Embedded> {
        ds.validate()?;
        let (ds, renamed) = ds.with_unique_genes();
        if let Some(w) = renamed {
            progress.message(&w);
        }
        let missing = {
            let have: std::collections::HashSet<&str> = ds.genes.iter().map(|g| g.as_str()).collect();
            self.genes().iter().filter(|g| !have.contains(g.as_str())).count()
        };
        if missing > 0 {
            progress.message(&format!(
                "warning: {missing} of the model's {} genes are missing from {}; they are filled with zeros",
                self.genes().len(),
                ds.source
            ));
        }
        if let Some(k) = &self.config.batch.key {
            progress.message(&format!(
                "note: the model's run corrected its embedding for the batches in '{k}'; the correction is not part of the model, so these cells get the method's uncorrected embedding"
            ));
        }
        let (prepared, embedding, dims) = self.embed_unique(&ds, device, progress)?;
        Ok(Embedded { prepared, embedding, dims, missing_genes: missing })
    }

    /// [`Self::embed`] on data whose gene names are unique: the prepared cells, the
    /// embedding (cells x dims, row-major) and dims.
    fn embed_unique(
        &self,
        ds: &Dataset,
        device: tch::Device,
        progress: &mut dyn crate::progress::Progress,
    ) -> Result<(Prepared<'static>, Vec<f32>, usize)> {
        match &self.body {
            Body::Single { method, preprocess } => {
                // the missing genes were counted by `embed`, over every member of a consensus
                let (prepared, _) = preprocess.apply(ds)?;
                let mut ctx = Context {
                    device,
                    seed: self.config.seed,
                    train: &self.config.train,
                    n_clusters: self.config.cluster.n_clusters,
                    fingerprint: Value::Null,
                    progress,
                };
                let emb = crate::device::torch_guard("embedding the cells", device, || method.embed(&prepared, &mut ctx))?;
                let dims = emb.size()[1] as usize;
                let embedding = Vec::<f32>::try_from(&emb.f_to_device(tch::Device::Cpu)?.f_contiguous()?.f_view([-1])?)?;
                Ok((prepared, embedding, dims))
            }
            Body::Consensus { members, .. } => {
                // each member's block is placed as soon as it is embedded (as the run does)
                let dims: usize = members.iter().map(|m| m.centre.len()).sum();
                let mut embedding = Vec::new();
                let mut first: Option<Prepared<'static>> = None;
                let mut at = 0;
                for m in members {
                    let (p, e, d) = m.model.embed_unique(ds, device, progress)?;
                    if d != m.centre.len() {
                        return Err(Error::Numeric(format!(
                            "consensus member {} embeds into {d} dimensions where its centre has {}",
                            m.model.config.method,
                            m.centre.len()
                        )));
                    }
                    match &first {
                        Some(f) if f.cell_index != p.cell_index => {
                            return Err(Error::config(
                                "params.members",
                                &m.model.config.method,
                                format!("keeps {} cells of {} where the first member keeps {}", p.n_cells(), ds.source, f.n_cells()),
                            ))
                        }
                        Some(_) => {}
                        None => {
                            embedding = vec![0f32; p.n_cells() * dims];
                            first = Some(p);
                        }
                    }
                    place_block(&mut embedding, dims, at, &e, d, (&m.centre, m.scale));
                    at += d;
                }
                let prepared = first.ok_or_else(|| Error::config("params.members", "[]", "needs at least one method"))?;
                Ok((prepared, embedding, dims))
            }
        }
    }
}
