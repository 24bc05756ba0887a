//! contrastive-sc (Ciortan & Defrance 2021), specs §3: two views of a batch from two
//! independent inverted-dropout masks (p = 0.9) on the input, an MLP encoder with
//! BatchNorm, NT-Xent (τ = 0.07) over the 2B L2-normalised embeddings.
//!
//! encoder: Dropout(p) -> Linear G->200 -> BN -> ReLU -> Linear 200->40 -> BN -> ReLU ->
//! Linear 40->60 -> L2-normalise; Xavier-uniform weights. Embedding in eval mode (no
//! dropout, BatchNorm running statistics).

use super::deep::DeepNet;
use super::layers;
use super::Context;
use super::MethodInfo;
use crate::cluster::{Algorithm, ClusterConfig};
use crate::error::{Error, Result};
use crate::preprocess::Prepared;
use crate::preprocess::Recipe;
use crate::train::TrainConfig;
use crate::train::{self, random, Batcher, StepCtx, TrainStep};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tch::nn::{self, Module, ModuleT};
use tch::Tensor;

/// This method's entry in the registry (`models::METHODS`): its defaults live here.
pub const INFO: MethodInfo = MethodInfo {
    name: "contrastive-sc",
    description: "contrastive-sc: NT-Xent between two input-dropout views, MLP encoder with BatchNorm (baseline)",
    reference: "Ciortan & Defrance 2021, BMC Bioinformatics; specs §3",
    params: || super::params_json(&ContrastiveParams::default()),
    recipe: Recipe::Dca,
    n_top_genes: 500,
    train: train_defaults,
    // specs §3: K-means with k = #labels; its Leiden alternative uses 300 neighbours
    cluster: || ClusterConfig { algorithm: Algorithm::Kmeans, n_neighbors: 300, ..ClusterConfig::default() },
    build: |v| Ok(Box::new(super::deep::Deep::<Net>::new(ContrastiveParams::from_json(v)?))),
};

/// Default training options.
fn train_defaults() -> TrainConfig {
    // specs §3: Adam with lr 0.4 (sic), cosine from 0.4 to 0.4e-3 over a hard-coded
    // 500-epoch horizon while training 30 epochs, batch 200 keeping the last partial one.
    TrainConfig {
        epochs: 30,
        batch_size: 200,
        drop_last: false,
        optimizer: crate::train::OptimConfig { lr: 0.4, ..Default::default() },
        schedule: crate::train::Schedule::Cosine,
        min_lr: 0.4e-3,
        schedule_epochs: Some(500),
        ..TrainConfig::default()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ContrastiveParams {
    /// Widths of the hidden layers.
    pub hidden_dims: Vec<usize>,
    /// Embedding size.
    pub latent_dim: usize,
    /// Input dropout rate: the augmentation (kept genes are scaled by 1/(1-p)).
    pub dropout: f64,
    /// NT-Xent temperature τ.
    pub temperature: f64,
    /// Standard deviation of optional Gaussian noise added to each view (0 = off).
    pub noise: f64,
}

impl Default for ContrastiveParams {
    fn default() -> Self {
        ContrastiveParams { hidden_dims: vec![200, 40], latent_dim: 60, dropout: 0.9, temperature: 0.07, noise: 0.0 }
    }
}

impl ContrastiveParams {
    pub fn from_json(v: &Value) -> Result<ContrastiveParams> {
        let p: ContrastiveParams = crate::error::from_json_at("params", v.clone())?;
        p.validate()?;
        Ok(p)
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let p = self;
        if !(0.0..1.0).contains(&p.dropout) {
            return Err(Error::config("params.dropout", p.dropout, "must be in [0, 1)"));
        }
        if !(p.temperature > 0.0 && p.temperature.is_finite()) {
            return Err(Error::config("params.temperature", p.temperature, "must be > 0"));
        }
        if !(p.noise >= 0.0 && p.noise.is_finite()) {
            return Err(Error::config("params.noise", p.noise, "must be >= 0"));
        }
        if p.latent_dim == 0 || p.hidden_dims.contains(&0) {
            return Err(Error::config(
                "params.hidden_dims",
                format!("{:?} / latent_dim {}", p.hidden_dims, p.latent_dim),
                "layer widths must be >= 1",
            ));
        }
        Ok(())
    }
}

/// The encoder after the input dropout (mask-sc's MLP variant reuses it).
pub(crate) struct Encoder {
    hidden: Vec<(nn::Linear, nn::BatchNorm)>,
    out: nn::Linear,
}

impl Encoder {
    pub(crate) fn new(root: &nn::Path, p: &ContrastiveParams, g: i64, rng: &mut rand_chacha::ChaCha8Rng) -> Encoder {
        let mut hidden = Vec::new();
        let mut fan_in = g;
        for (i, &w) in p.hidden_dims.iter().enumerate() {
            let lin = layers::linear_xavier(root / format!("lin{i}"), fan_in, w as i64, rng);
            let bn = layers::batch_norm1d(root / format!("bn{i}"), w as i64);
            hidden.push((lin, bn));
            fan_in = w as i64;
        }
        let out = layers::linear_xavier(root / "out", fan_in, p.latent_dim as i64, rng);
        Encoder { hidden, out }
    }

    /// The output layer's code before the L2 normalisation; `train` selects BatchNorm's
    /// batch statistics.
    pub(crate) fn code(&self, x: &Tensor, train: bool) -> Tensor {
        let mut h = x.shallow_clone();
        for (lin, bn) in &self.hidden {
            h = bn.forward_t(&lin.forward(&h), train).relu();
        }
        self.out.forward(&h)
    }

    /// The L2-normalised embedding.
    pub(crate) fn encode(&self, x: &Tensor, train: bool) -> Tensor {
        layers::l2_normalize(&self.code(x, train))
    }
}

pub struct Net {
    vs: nn::VarStore,
    enc: Encoder,
}

impl Net {
    pub(crate) fn new(p: &ContrastiveParams, g: i64, device: tch::Device, seed: u64) -> Net {
        let vs = nn::VarStore::new(device);
        let rng = &mut crate::seed::rng_for(seed, crate::seed::INIT_STREAM);
        let enc = Encoder::new(&vs.root(), p, g, rng);
        Net { vs, enc }
    }
}

struct Step<'n> {
    net: &'n Net,
    p: &'n ContrastiveParams,
}

impl TrainStep for Step<'_> {
    fn parameters(&self) -> Vec<(String, Tensor)> {
        // BatchNorm's running statistics are variables without gradients: Adam skips them.
        layers::named_vars(&self.net.vs)
    }

    fn losses(&mut self, x: &Tensor, _rows: &[usize], ctx: &mut StepCtx) -> Result<Vec<(&'static str, Tensor)>> {
        let view = |rng: &mut rand_chacha::ChaCha8Rng| {
            let v = random::dropout(rng, x, self.p.dropout);
            let v = if self.p.noise > 0.0 { &v + random::normal(rng, &v.size(), v.device()) * self.p.noise } else { v };
            self.net.enc.encode(&v, true)
        };
        let z1 = view(ctx.rng);
        let z2 = view(ctx.rng);
        let loss = layers::nt_xent(&z1, &z2, self.p.temperature);
        Ok(vec![("loss", loss)])
    }
}

/// A contrastive-sc encoder trained on the rows of `batcher` with the training options
/// `cfg` (mask-sc's `seqfeat` target trains one on gene-matrix row fragments). Returns the
/// network and the final epoch's loss.
pub(crate) fn train_encoder(
    p: &ContrastiveParams,
    batcher: &Batcher,
    cfg: &train::TrainConfig,
    seed: u64,
    progress: &mut dyn crate::progress::Progress,
) -> Result<(Net, f64)> {
    let net = Net::new(p, batcher.n_cols() as i64, batcher.device(), seed);
    let history = train::fit(&mut Step { net: &net, p }, batcher, cfg, seed, &Value::Null, progress)?;
    let last = history.last().and_then(|h| h["loss"].as_f64()).unwrap_or(f64::NAN);
    Ok((net, last))
}

impl DeepNet for Net {
    type Params = ContrastiveParams;
    const NAME: &'static str = "contrastive-sc";

    fn build(p: &ContrastiveParams, n_genes: i64, device: tch::Device, seed: u64) -> Net {
        Net::new(p, n_genes, device, seed)
    }

    fn vs(&self) -> &nn::VarStore {
        &self.vs
    }

    fn train(&self, p: &ContrastiveParams, data: &Prepared, ctx: &mut Context) -> Result<Vec<Value>> {
        let batcher = Batcher::new(data, ctx.device);
        ctx.fit(&mut Step { net: self, p }, &batcher)
    }

    fn embed(&self, x: &Tensor) -> Tensor {
        self.enc.encode(x, false)
    }
}
