//! Methods that turn a prepared matrix into an embedding, behind one trait and a registry.
//! (The deep methods and the shared trainer arrive with the scMAE issue.)

pub mod pca;

use crate::config::RunConfig;
use crate::error::{Error, Result};
use crate::preprocess::Prepared;
use tch::Tensor;

/// What a method needs besides the data.
pub struct Context<'a> {
    pub device: tch::Device,
    pub seed: u64,
    pub progress: &'a mut dyn crate::progress::Progress,
}

pub trait Method {
    fn name(&self) -> &'static str;
    /// Learn from `data` and return its embedding (cells x dims, float, on ctx.device).
    fn fit_embed(&mut self, data: &Prepared, ctx: &mut Context) -> Result<Tensor>;
    /// Loss terms per epoch (empty for non-iterative methods).
    fn history(&self) -> Vec<serde_json::Value> {
        Vec::new()
    }
}

pub struct MethodInfo {
    pub name: &'static str,
    pub description: &'static str,
    pub reference: &'static str,
}

pub const METHODS: &[MethodInfo] = &[MethodInfo {
    name: "pca",
    description: "Principal components of the scaled HVG matrix (baseline)",
    reference: "scanpy pp.pca; specs §0",
}];

pub fn build(cfg: &RunConfig) -> Result<Box<dyn Method>> {
    match cfg.method.as_str() {
        "pca" => Ok(Box::new(pca::Pca::from_params(&cfg.params)?)),
        other => Err(Error::config("method", other, format!("unknown method; available: {}", METHODS.iter().map(|m| m.name).collect::<Vec<_>>().join(", ")))),
    }
}

/// Default method parameters (the `params` section of the config) as JSON.
pub fn default_params(method: &str) -> Result<serde_json::Value> {
    match method {
        "pca" => Ok(serde_json::to_value(pca::PcaParams::default()).unwrap()),
        other => Err(Error::config("method", other, format!("unknown method; available: {}", METHODS.iter().map(|m| m.name).collect::<Vec<_>>().join(", ")))),
    }
}
