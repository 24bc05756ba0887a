//! A trained model and its folder on disk:
//!
//! - `model.safetensors`: the method's tensors, with stable layer names;
//! - `config.json`: format marker, scdeep version, method and the full RunConfig;
//! - `genes.tsv`: the model's genes, one per line, in input order;
//! - `preprocess.json`: preprocessing options, target library size and per-gene scaler.
//!
//! A consensus model (`method` consensus) holds no preprocess.json: its members are
//! model folders of their own under `members/<method>/`, its `model.safetensors` holds
//! each member's centring vector and scale (`<method>.centre`, `<method>.scale`), and
//! its genes.tsv the union of the members' genes (first member's first).
//!
//! The folder is written under a temporary name and renamed into place. Applying a
//! saved model to new cells is in `apply.rs`.

use crate::config::RunConfig;
use crate::error::{Error, Result};
use crate::models::{Method, Named};
use crate::preprocess::{Prepared, SavedPreprocess};
use serde_json::{json, Value};
use std::path::Path;
use tch::Tensor;

mod apply;

pub const FORMAT: &str = "scdeep-model";
pub const FORMAT_VERSION: u64 = 1;
const FILES: [&str; 4] = ["config.json", "model.safetensors", "genes.tsv", "preprocess.json"];
/// A consensus model's files, and the folder of its members' models.
const CONSENSUS_FILES: [&str; 3] = ["config.json", "model.safetensors", "genes.tsv"];
const MEMBERS: &str = "members";

/// A model folder written before output folders carried scdeep's marker: only the
/// model's files, with a config.json that says it is one.
pub fn is_model_folder(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else { return false };
    let only_ours = entries.filter_map(|e| e.ok()).all(|e| {
        let n = e.file_name().to_string_lossy().to_string();
        FILES.contains(&n.as_str()) || n == MEMBERS
    });
    only_ours
        && crate::io::read_capped_string(&dir.join("config.json"), 64 << 20)
            .ok()
            .and_then(|s| serde_json::from_str::<Value>(&s).ok())
            .is_some_and(|v| v["format"] == FORMAT)
}

pub struct TrainedModel {
    pub config: RunConfig,
    pub body: Body,
}

/// What embeds the cells.
pub enum Body {
    /// One method's encoder and the preprocessing it was trained with.
    Single { method: Box<dyn Method>, preprocess: Box<SavedPreprocess> },
    /// A consensus: the members' models, whose embeddings, each centred and scaled as in
    /// the run, side by side are the consensus embedding; `genes`, the union of theirs.
    Consensus { members: Vec<Member>, genes: Vec<String> },
}

/// A consensus member's model and how its embedding enters the consensus:
/// `(embedding - centre) / scale`.
pub struct Member {
    pub model: TrainedModel,
    pub centre: Vec<f32>,
    pub scale: f32,
}

impl std::fmt::Debug for TrainedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TrainedModel({}, {} genes)", self.config.method, self.genes().len())
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
    pub fn single(config: RunConfig, method: Box<dyn Method>, preprocess: SavedPreprocess) -> TrainedModel {
        TrainedModel { config, body: Body::Single { method, preprocess: Box::new(preprocess) } }
    }

    /// A consensus model of `members` (none of them a consensus).
    pub fn consensus(config: RunConfig, members: Vec<Member>) -> TrainedModel {
        let mut genes: Vec<String> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for m in &members {
            for g in m.model.genes() {
                if seen.insert(g.clone()) {
                    genes.push(g.clone());
                }
            }
        }
        TrainedModel { config, body: Body::Consensus { members, genes } }
    }

    /// The genes the model reads (a consensus: every member's, first member's first).
    pub fn genes(&self) -> &[String] {
        match &self.body {
            Body::Single { preprocess, .. } => &preprocess.genes,
            Body::Consensus { genes, .. } => genes,
        }
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
        let mut cfg = json!({
            "format": FORMAT, "format_version": FORMAT_VERSION, "scdeep": crate::version(),
            "method": self.config.method, "n_genes": self.genes().len(), "config": self.config,
        });
        let tensors = match &self.body {
            Body::Single { method, preprocess } => {
                crate::io::write::write_json(
                    &dir.join("preprocess.json"),
                    &serde_json::to_value(preprocess).map_err(|e| Error::Numeric(e.to_string()))?,
                )?;
                method.tensors()?
            }
            Body::Consensus { members, .. } => {
                let mut t = Vec::new();
                for m in members {
                    let name = &m.model.config.method;
                    let d = dir.join(MEMBERS).join(name);
                    std::fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
                    m.model.write_files(&d)?;
                    t.push((format!("{name}.centre"), Tensor::from_slice(&m.centre)));
                    t.push((format!("{name}.scale"), Tensor::from_slice(&[m.scale])));
                }
                cfg["members"] = json!(members.iter().map(|m| &m.model.config.method).collect::<Vec<_>>());
                t
            }
        };
        Tensor::write_safetensors(&tensors, &w).map_err(|e| Error::io(&w, e))?;
        crate::io::write::write_json(&dir.join("config.json"), &cfg)?;
        let g = dir.join("genes.tsv");
        std::fs::write(&g, self.genes().join("\n") + "\n").map_err(|e| Error::io(&g, e))
    }

    /// The model folder's files by path inside it (`members/pca/config.json`), for
    /// keeping a model without a folder (Python's pickle).
    pub fn to_files(&self) -> Result<Vec<(String, Vec<u8>)>> {
        let dir = scratch_dir("pickle");
        let r = self.save(&dir, false).and_then(|_| {
            let mut files = Vec::new();
            collect_files(&dir, "", &mut files)?;
            Ok(files)
        });
        let _ = std::fs::remove_dir_all(&dir);
        r
    }

    /// A model from [`Self::to_files`]'s files. A path that leaves the folder (absolute,
    /// `..`) is an error that names it.
    pub fn from_files(files: &[(String, Vec<u8>)], device: tch::Device) -> Result<TrainedModel> {
        let dir = scratch_dir("unpickle");
        let r = (|| {
            for (name, bytes) in files {
                let rel = Path::new(name);
                if name.is_empty() || !rel.components().all(|c| matches!(c, std::path::Component::Normal(_))) {
                    return Err(Error::config("files", name, "a model file's path must stay inside the model folder"));
                }
                let to = dir.join(rel);
                if let Some(parent) = to.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
                }
                std::fs::write(&to, bytes).map_err(|e| Error::io(&to, e))?;
            }
            TrainedModel::load(&dir, None, device)
        })();
        let _ = std::fs::remove_dir_all(&dir);
        r
    }

    /// Load a model folder. With `expect_method`, a model of another method is an error.
    pub fn load(dir: &Path, expect_method: Option<&str>, device: tch::Device) -> Result<TrainedModel> {
        if !dir.is_dir() {
            return Err(Error::io(dir, "no such model folder"));
        }
        let cpath = dir.join("config.json");
        if !cpath.is_file() {
            return Err(Error::io(&cpath, format!("missing from the model folder (a model folder holds {})", FILES.join(", "))));
        }
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
        let consensus = config.method == crate::models::consensus::NAME;
        let files: &[&str] = if consensus { &CONSENSUS_FILES } else { &FILES };
        for f in files {
            if !dir.join(f).is_file() {
                return Err(Error::io(&dir.join(f), format!("missing from the model folder (a model folder holds {})", files.join(", "))));
            }
        }
        let gpath = dir.join("genes.tsv");
        let genes_text = std::fs::read_to_string(&gpath).map_err(|e| Error::io(&gpath, e))?;
        let genes: Vec<&str> = genes_text.lines().collect();
        let wpath = dir.join("model.safetensors");
        let named: Named = Tensor::read_safetensors(&wpath).map_err(|e| Error::format(&wpath, e.to_string()))?.into_iter().collect();
        let model = if consensus {
            Self::load_members(dir, &c, config, &named, device)?
        } else {
            let ppath = dir.join("preprocess.json");
            let pre: SavedPreprocess =
                serde_json::from_value(crate::io::write::read_json(&ppath)?).map_err(|e| Error::format(&ppath, e.to_string()))?;
            if let Some(s) = &pre.scaler {
                if s.mean.len() != pre.genes.len() || s.std.len() != pre.genes.len() {
                    return Err(Error::format(&ppath, format!("scaler has {} values for {} genes", s.mean.len(), pre.genes.len())));
                }
            }
            // a model folder's parameters that do not build are the file's fault, not an option's
            let mut method =
                crate::models::build(&config.method, &config.params).map_err(|e| Error::format(&cpath, format!("field `config`: {e}")))?;
            crate::device::torch_guard("loading the model", device, || {
                method.load_tensors(pre.genes.len(), device, &named, &wpath.display().to_string())
            })?;
            TrainedModel::single(config, method, pre)
        };
        if genes != model.genes().iter().map(|s| s.as_str()).collect::<Vec<_>>() {
            let of = if consensus { "the members' genes" } else { "preprocess.json's" };
            return Err(Error::format(
                &gpath,
                format!("lists {} genes that do not match the {} of {of}", genes.len(), model.genes().len()),
            ));
        }
        Ok(model)
    }

    /// A consensus folder's members: `members/<method>/` for each method config.json's
    /// `members` lists, with its centre and scale from `named`.
    fn load_members(dir: &Path, c: &Value, config: RunConfig, named: &Named, device: tch::Device) -> Result<TrainedModel> {
        let cpath = dir.join("config.json");
        let wpath = dir.join("model.safetensors");
        let names: Vec<String> = serde_json::from_value(c["members"].clone())
            .map_err(|e| Error::format(&cpath, format!("field `members` ({}): {e}", c["members"])))?;
        let mut members = Vec::with_capacity(names.len());
        for name in &names {
            // a registered method other than consensus: its folder name is safe to join
            if name == crate::models::consensus::NAME || crate::models::info(name).is_err() {
                return Err(Error::format(&cpath, format!("field `members` lists `{name}`, which is not a method a consensus can hold")));
            }
            let model = TrainedModel::load(&dir.join(MEMBERS).join(name), Some(name), device)?;
            let get = |what: &str| {
                let key = format!("{name}.{what}");
                let t = named.get(&key).ok_or_else(|| Error::format(&wpath, format!("has no tensor `{key}`")))?;
                Ok::<Vec<f32>, Error>(Vec::<f32>::try_from(&t.f_to_kind(tch::Kind::Float)?.f_view([-1])?)?)
            };
            let (centre, scale) = (get("centre")?, get("scale")?);
            if scale.len() != 1 || !(scale[0].is_finite() && scale[0] > 0.0) {
                return Err(Error::format(&wpath, format!("tensor `{name}.scale` is {scale:?}, expected one positive number")));
            }
            members.push(Member { model, centre, scale: scale[0] });
        }
        if members.is_empty() {
            return Err(Error::format(&cpath, "field `members` is empty; a consensus model needs at least one member"));
        }
        Ok(TrainedModel::consensus(config, members))
    }
}

/// A folder name under the system's temporary folder that nothing else uses.
fn scratch_dir(what: &str) -> std::path::PathBuf {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    std::env::temp_dir().join(format!("scdeep-{what}-{}-{}-{nanos}", std::process::id(), crate::io::output::unique()))
}

/// Every file under `dir` (but scdeep's output marker) by its path below the top folder.
fn collect_files(dir: &Path, prefix: &str, out: &mut Vec<(String, Vec<u8>)>) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?.filter_map(|e| e.ok()).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = format!("{prefix}{}", e.file_name().to_string_lossy());
        let p = e.path();
        if p.is_dir() {
            collect_files(&p, &format!("{name}/"), out)?;
        } else if name != crate::io::output::MARKER {
            out.push((name, std::fs::read(&p).map_err(|e| Error::io(&p, e))?));
        }
    }
    Ok(())
}
