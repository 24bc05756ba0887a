//! Methods that turn a prepared matrix into an embedding, behind one trait and a registry.
//! Adding a method touches its file here (which holds its registry entry `INFO`: name,
//! defaults of parameters, preprocessing, training and clustering, and its builder) and
//! one line of `METHODS`, nothing else: the config, the CLI and every binding read the
//! registry.

pub mod cicl;
pub mod consensus;
pub mod contrastive;
pub mod deep;
pub mod layers;
pub mod maskclass;
pub mod masksc;
pub mod masksc_mlp;
pub mod pca;
pub mod scmae;
pub mod scrae;
pub mod zinb;

use crate::cluster::ClusterConfig;
use crate::error::{Error, Result};
use crate::preprocess::{Prepared, PreprocessConfig, Recipe};
use crate::train::TrainConfig;
pub use layers::Named;
use serde_json::Value;
use tch::Tensor;

/// What a method needs besides the data.
pub struct Context<'a> {
    pub device: tch::Device,
    pub seed: u64,
    pub train: &'a TrainConfig,
    /// The number of clusters when known before training (from the config or the ground
    /// truth's classes); methods with a clustering head (CICL) need it.
    pub n_clusters: Option<usize>,
    /// Identifies the run in checkpoints (config + data shape).
    pub fingerprint: Value,
    pub progress: &'a mut dyn crate::progress::Progress,
}

impl Context<'_> {
    /// Train `step` on `batcher` with the run's training options.
    pub fn fit(&mut self, step: &mut dyn crate::train::TrainStep, batcher: &crate::train::Batcher) -> Result<Vec<Value>> {
        crate::train::fit(step, batcher, self.train, self.seed, &self.fingerprint, &mut *self.progress)
    }

    /// `encode` applied to the rows of `data` in blocks of `train.embed_batch_size`,
    /// without gradients.
    pub fn embed_blocks(&self, data: &Prepared, encode: impl Fn(&Tensor) -> Tensor) -> Tensor {
        self.embed_batcher(&crate::train::Batcher::new(data, self.device), encode)
    }

    /// `encode` applied to the rows of `batcher` in blocks, without gradients.
    pub fn embed_batcher(&self, batcher: &crate::train::Batcher, encode: impl Fn(&Tensor) -> Tensor) -> Tensor {
        let parts: Vec<Tensor> =
            tch::no_grad(|| batcher.blocks(self.train.embed_batch_size).map(|rows| encode(&batcher.dense(&rows))).collect());
        Tensor::cat(&parts, 0)
    }
}

pub trait Method: Send {
    fn name(&self) -> &'static str;
    /// Learn from `data`.
    fn fit(&mut self, data: &Prepared, ctx: &mut Context) -> Result<()>;
    /// Embedding of `data` (cells x dims, float, on ctx.device) with the fitted model.
    fn embed(&self, data: &Prepared, ctx: &mut Context) -> Result<Tensor>;
    /// Whether fit/embed read the raw counts (`Prepared::counts`); when not, a run on an
    /// input it owns drops them and normalises the input in place (one matrix, not two).
    fn needs_counts(&self) -> bool {
        false
    }
    /// Loss terms per epoch (empty for non-iterative methods).
    fn history(&self) -> Vec<Value> {
        Vec::new()
    }
    /// An imputed expression matrix of `data` (methods that denoise: MaskClass).
    fn impute(&self, _data: &Prepared, _ctx: &mut Context) -> Result<Option<Imputed>> {
        Ok(None)
    }
    /// The learned tensors with stable names (saved as safetensors, on the CPU).
    fn tensors(&self) -> Result<Vec<(String, Tensor)>>;
    /// Rebuild the model for `n_genes` inputs on `device` from saved tensors
    /// (`what` names their file in errors).
    fn load_tensors(&mut self, n_genes: usize, device: tch::Device, tensors: &Named, what: &str) -> Result<()>;
}

/// An imputed matrix over the prepared genes: cells x genes, row-major, in the prepared
/// (log-normalised) scale, observed non-zeros unchanged.
#[derive(Debug, Clone)]
pub struct Imputed {
    pub genes: Vec<String>,
    pub values: Vec<f32>,
}

pub struct MethodInfo {
    pub name: &'static str,
    pub description: &'static str,
    pub reference: &'static str,
    /// Default hyper-parameters (the config's `params` section).
    pub params: fn() -> Value,
    /// Default preprocessing recipe.
    pub recipe: Recipe,
    /// Default number of highly variable genes.
    pub n_top_genes: usize,
    /// Default training options (ignored by non-iterative methods).
    pub train: fn() -> TrainConfig,
    /// Default clustering.
    pub cluster: fn() -> ClusterConfig,
    pub build: fn(&Value) -> Result<Box<dyn Method>>,
}

/// A method's default parameters as the config's JSON (plain structs: serialising
/// cannot fail; Null if it ever did).
pub(crate) fn params_json<T: serde::Serialize>(p: &T) -> Value {
    serde_json::to_value(p).unwrap_or(Value::Null)
}

pub const METHODS: &[MethodInfo] =
    &[scmae::INFO, contrastive::INFO, cicl::INFO, masksc::INFO, masksc_mlp::INFO, scrae::INFO, maskclass::INFO, pca::INFO, consensus::INFO];

pub fn info(method: &str) -> Result<&'static MethodInfo> {
    METHODS.iter().find(|m| m.name == method).ok_or_else(|| {
        Error::config(
            "method",
            method,
            format!("unknown method; available: {}", METHODS.iter().map(|m| m.name).collect::<Vec<_>>().join(", ")),
        )
    })
}

/// The method `method` with its parameters `params` (validated by the method).
pub fn build(method: &str, params: &Value) -> Result<Box<dyn Method>> {
    (info(method)?.build)(params)
}

/// Default method parameters (the `params` section of the config) as JSON.
pub fn default_params(method: &str) -> Result<Value> {
    Ok((info(method)?.params)())
}

/// Default preprocessing of a method.
pub fn default_preprocess(method: &str) -> Result<PreprocessConfig> {
    let m = info(method)?;
    Ok(PreprocessConfig { n_top_genes: m.n_top_genes, ..PreprocessConfig::recipe(m.recipe) })
}
