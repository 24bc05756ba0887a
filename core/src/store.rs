//! A trained model and its folder on disk:
//!
//! - `model.safetensors`: the method's tensors, with stable layer names;
//! - `config.json`: format marker, scdeep version, method and the full RunConfig;
//! - `genes.tsv`: the model's genes, one per line, in input order;
//! - `preprocess.json`: preprocessing options, target library size and per-gene scaler.
//!
//! The folder is written under a temporary name and renamed into place.

use crate::config::RunConfig;
use crate::error::{Error, Result};
use crate::matrix::Dataset;
use crate::models::{Context, Method, Named};
use crate::preprocess::{self, Prepared, SavedPreprocess};
use serde_json::{json, Value};
use std::path::Path;
use tch::Tensor;

pub const FORMAT: &str = "scdeep-model";
pub const FORMAT_VERSION: u64 = 1;
const FILES: [&str; 4] = ["config.json", "model.safetensors", "genes.tsv", "preprocess.json"];

/// A model folder written before output folders carried scdeep's marker: only the
/// model's files, with a config.json that says it is one.
pub fn is_model_folder(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else { return false };
    let only_ours = entries.filter_map(|e| e.ok()).all(|e| FILES.contains(&e.file_name().to_string_lossy().as_ref()));
    only_ours
        && crate::io::read_capped_string(&dir.join("config.json"), 64 << 20)
            .ok()
            .and_then(|s| serde_json::from_str::<Value>(&s).ok())
            .is_some_and(|v| v["format"] == FORMAT)
}

pub struct TrainedModel {
    pub config: RunConfig,
    pub method: Box<dyn Method>,
    pub preprocess: SavedPreprocess,
}

impl std::fmt::Debug for TrainedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TrainedModel({}, {} genes)", self.config.method, self.preprocess.genes.len())
    }
}

/// Result of embedding new data with a trained model.
#[derive(Debug)]
pub struct Embedded {
    pub prepared: Prepared<'static>,
    /// cells x dims, row-major.
    pub embedding: Vec<f32>,
    pub dims: usize,
    /// Model genes absent from the data (filled with zeros).
    pub missing_genes: usize,
}

impl TrainedModel {
    pub fn genes(&self) -> &[String] {
        &self.preprocess.genes
    }

    /// Write the model folder `dir` as one unit (staged beside it, then moved into
    /// place). An existing folder is replaced only if it is empty or scdeep wrote it
    /// (its marker, or a model folder of ours), or with `overwrite`; files that are not
    /// the model's are never removed.
    pub fn save(&self, dir: &Path, overwrite: bool) -> Result<()> {
        let stage = crate::io::output::StagedDir::new(dir, overwrite, &is_model_folder)?;
        self.write_files(stage.path())?;
        stage.commit()
    }

    /// The model's files into an existing folder (a staging folder, see `save`).
    pub fn write_files(&self, dir: &Path) -> Result<()> {
        let w = dir.join("model.safetensors");
        Tensor::write_safetensors(&self.method.tensors()?, &w).map_err(|e| Error::io(&w, e))?;
        let cfg = json!({
            "format": FORMAT, "format_version": FORMAT_VERSION, "scdeep": crate::version(),
            "method": self.config.method, "n_genes": self.preprocess.genes.len(), "config": self.config,
        });
        crate::io::write::write_json(&dir.join("config.json"), &cfg)?;
        let g = dir.join("genes.tsv");
        std::fs::write(&g, self.preprocess.genes.join("\n") + "\n").map_err(|e| Error::io(&g, e))?;
        crate::io::write::write_json(
            &dir.join("preprocess.json"),
            &serde_json::to_value(&self.preprocess).map_err(|e| Error::Numeric(e.to_string()))?,
        )
    }

    /// Load a model folder. With `expect_method`, a model of another method is an error.
    pub fn load(dir: &Path, expect_method: Option<&str>, device: tch::Device) -> Result<TrainedModel> {
        if !dir.is_dir() {
            return Err(Error::io(dir, "no such model folder"));
        }
        for f in FILES {
            if !dir.join(f).is_file() {
                return Err(Error::io(&dir.join(f), format!("missing from the model folder (a model folder holds {})", FILES.join(", "))));
            }
        }
        let cpath = dir.join("config.json");
        let c = crate::io::write::read_json(&cpath)?;
        if c["format"] != FORMAT {
            return Err(Error::format(&cpath, format!("field `format` is {}, expected \"{FORMAT}\"", c["format"])));
        }
        if c["format_version"].as_u64() != Some(FORMAT_VERSION) {
            return Err(Error::format(
                &cpath,
                format!("field `format_version` is {}; this scdeep reads version {FORMAT_VERSION}", c["format_version"]),
            ));
        }
        let config: RunConfig =
            serde_json::from_value(c["config"].clone()).map_err(|e| Error::format(&cpath, format!("field `config`: {e}")))?;
        if let Some(m) = expect_method {
            if m != config.method {
                return Err(Error::config("method", m, format!("{} holds a `{}` model", dir.display(), config.method)));
            }
        }
        let ppath = dir.join("preprocess.json");
        let pre: SavedPreprocess =
            serde_json::from_value(crate::io::write::read_json(&ppath)?).map_err(|e| Error::format(&ppath, e.to_string()))?;
        let gpath = dir.join("genes.tsv");
        let genes_text = std::fs::read_to_string(&gpath).map_err(|e| Error::io(&gpath, e))?;
        let genes: Vec<&str> = genes_text.lines().collect();
        if genes != pre.genes.iter().map(|s| s.as_str()).collect::<Vec<_>>() {
            return Err(Error::format(
                &gpath,
                format!("lists {} genes that do not match the {} of preprocess.json", genes.len(), pre.genes.len()),
            ));
        }
        if let Some(s) = &pre.scaler {
            if s.mean.len() != pre.genes.len() || s.std.len() != pre.genes.len() {
                return Err(Error::format(&ppath, format!("scaler has {} values for {} genes", s.mean.len(), pre.genes.len())));
            }
        }
        let wpath = dir.join("model.safetensors");
        let named: Named = Tensor::read_safetensors(&wpath).map_err(|e| Error::format(&wpath, e.to_string()))?.into_iter().collect();
        // a model folder's parameters that do not build are the file's fault, not an option's
        let mut method =
            crate::models::build(&config.method, &config.params).map_err(|e| Error::format(&cpath, format!("field `config`: {e}")))?;
        crate::device::torch_guard("loading the model", device, || {
            method.load_tensors(pre.genes.len(), device, &named, &wpath.display().to_string())
        })?;
        Ok(TrainedModel { config, method, preprocess: pre })
    }

    /// Embed new counts: the model's preprocessing, then its encoder.
    pub fn embed(&self, ds: &Dataset, device: tch::Device, progress: &mut dyn crate::progress::Progress) -> Result<Embedded> {
        ds.validate()?;
        let (ds, renamed) = ds.with_unique_genes();
        if let Some(w) = renamed {
            progress.message(&w);
        }
        let (prepared, missing) = preprocess::prepare_with(&ds, &self.preprocess)?;
        if missing > 0 {
            progress.message(&format!(
                "warning: {missing} of the model's {} genes are missing from {}; they are filled with zeros",
                self.preprocess.genes.len(),
                ds.source
            ));
        }
        let mut ctx = Context {
            device,
            seed: self.config.seed,
            train: &self.config.train,
            n_clusters: self.config.cluster.n_clusters,
            fingerprint: Value::Null,
            progress,
        };
        let emb = crate::device::torch_guard("embedding the cells", device, || self.method.embed(&prepared, &mut ctx))?;
        let dims = emb.size()[1] as usize;
        let embedding = Vec::<f32>::try_from(&emb.f_to_device(tch::Device::Cpu)?.f_contiguous()?.f_view([-1])?)?;
        Ok(Embedded { prepared, embedding, dims, missing_genes: missing })
    }
}
