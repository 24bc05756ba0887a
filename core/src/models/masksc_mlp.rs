//! mask-sc's MLP variant ("trivial mask-sc", appendix A of Mo, Chen & Bai), specs §4: a
//! 3-layer encoder from 500 HVGs to 60 dimensions, one linear decoder layer back to the
//! genes, MSE reconstruction, "trained like contrastive-sc".
//!
//! The paper gives neither the hidden widths nor the activation. contrastive-sc's encoder
//! is exactly such a 3-layer 500 -> 60 network, so the variant reuses it, input masking
//! included: inverted dropout p = 0.9 on the input (the "mask"), Linear -> BN -> ReLU x
//! [200, 40], Linear -> 60, L2-normalised; the decoder reconstructs every gene of the
//! clean input from that code. `dropout = 0` gives a plain autoencoder, `normalize =
//! false` drops the L2 normalisation. The 60-d code of the unmasked input (eval mode) is
//! the embedding.

use super::contrastive::{self, ContrastiveParams};
use super::deep::DeepNet;
use super::layers;
use super::Context;
use super::MethodInfo;
use crate::cluster::{Algorithm, ClusterConfig};
use crate::error::Result;
use crate::preprocess::Prepared;
use crate::preprocess::Recipe;
use crate::train::TrainConfig;
use crate::train::{random, Batcher, StepCtx, TrainStep};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

/// This method's entry in the registry (`models::METHODS`): its defaults live here.
pub const INFO: MethodInfo = MethodInfo {
    name: "mask-sc-mlp",
    description: "mask-sc's MLP variant: contrastive-sc's encoder (500 HVGs, 90 % of them masked, -> 200 -> 40 -> 60) with a linear decoder, MSE on all genes",
    reference: "Mo, Chen & Bai (course report), appendix A; specs §4",
    params: || super::params_json(&MlpParams::default()),
    recipe: Recipe::Dca,
    n_top_genes: 500,
    train: train_defaults,
    cluster: || ClusterConfig { algorithm: Algorithm::Kmeans, ..ClusterConfig::default() },
    build: |v| Ok(Box::new(super::deep::Deep::<Net>::new(MlpParams::from_json(v)?))),
};

/// Default training options.
fn train_defaults() -> TrainConfig {
    // specs §4 [PROP]: trained like contrastive-sc's family: Adam 1e-3, batch 256, 100 epochs.
    TrainConfig { epochs: 100, batch_size: 256, drop_last: false, ..TrainConfig::default() }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MlpParams {
    /// Widths of the encoder's hidden layers (contrastive-sc's).
    pub hidden_dims: Vec<usize>,
    /// Embedding size.
    pub latent_dim: usize,
    /// Fraction of the input genes masked (inverted dropout) during training; 0 = none.
    pub dropout: f64,
    /// L2-normalise the code (as contrastive-sc does); the decoder and K-means see it.
    pub normalize: bool,
}

impl Default for MlpParams {
    fn default() -> Self {
        let c = ContrastiveParams::default();
        MlpParams { hidden_dims: c.hidden_dims, latent_dim: c.latent_dim, dropout: c.dropout, normalize: true }
    }
}

impl MlpParams {
    pub fn from_json(v: &Value) -> Result<MlpParams> {
        let p: MlpParams = crate::error::from_json_at("params", v.clone())?;
        p.encoder()?;
        Ok(p)
    }

    /// The contrastive-sc encoder these parameters describe (validated there).
    fn encoder(&self) -> Result<ContrastiveParams> {
        let c = ContrastiveParams {
            hidden_dims: self.hidden_dims.clone(),
            latent_dim: self.latent_dim,
            dropout: self.dropout,
            ..ContrastiveParams::default()
        };
        c.validate()?;
        Ok(c)
    }
}

pub struct Net {
    vs: nn::VarStore,
    enc: contrastive::Encoder,
    dec: nn::Linear,
    normalize: bool,
}

impl Net {
    fn encode(&self, x: &Tensor, train: bool) -> Tensor {
        if self.normalize {
            self.enc.encode(x, train)
        } else {
            self.enc.code(x, train)
        }
    }
}

struct Step<'n> {
    net: &'n Net,
    dropout: f64,
}

impl TrainStep for Step<'_> {
    fn parameters(&self) -> Vec<(String, Tensor)> {
        // BatchNorm's running statistics are variables without gradients: Adam skips them.
        layers::named_vars(&self.net.vs)
    }

    fn losses(&mut self, x: &Tensor, _rows: &[usize], ctx: &mut StepCtx) -> Result<Vec<(&'static str, Tensor)>> {
        let masked = random::dropout(ctx.rng, x, self.dropout);
        let recon = self.net.dec.forward(&self.net.encode(&masked, true));
        Ok(vec![("loss", (recon - x).square().mean(Kind::Float))])
    }
}

impl DeepNet for Net {
    type Params = MlpParams;
    const NAME: &'static str = "mask-sc-mlp";

    fn build(p: &MlpParams, n_genes: i64, device: tch::Device, seed: u64) -> Net {
        let vs = nn::VarStore::new(device);
        let rng = &mut crate::seed::rng_for(seed, crate::seed::INIT_STREAM);
        let c = p.encoder().expect("validated in from_json");
        let enc = contrastive::Encoder::new(&(vs.root() / "encoder"), &c, n_genes, rng);
        let dec = layers::linear(&vs.root() / "decoder", p.latent_dim as i64, n_genes, rng);
        Net { vs, enc, dec, normalize: p.normalize }
    }

    fn vs(&self) -> &nn::VarStore {
        &self.vs
    }

    fn train(&self, p: &MlpParams, data: &Prepared, ctx: &mut Context) -> Result<Vec<Value>> {
        let batcher = Batcher::new(data, ctx.device);
        ctx.fit(&mut Step { net: self, dropout: p.dropout }, &batcher)
    }

    fn embed(&self, x: &Tensor) -> Tensor {
        self.encode(x, false)
    }
}
