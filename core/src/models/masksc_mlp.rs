//! mask-sc's MLP variant ("trivial mask-sc", appendix A of Mo, Chen & Bai), specs §4:
//! an autoencoder without masking. Encoder 500 HVGs -> 256 -> 128 -> 60 with ReLU between
//! the layers (widths and activation are unstated in the paper: the spec's proposal),
//! one linear decoder layer 60 -> 500, MSE reconstruction; the 60-d code is the embedding.

use super::deep::DeepNet;
use super::layers;
use super::Context;
use crate::error::{Error, Result};
use crate::preprocess::Prepared;
use crate::train::{self, Batcher, StepCtx, TrainStep};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MlpParams {
    pub hidden_dims: Vec<usize>,
    pub latent_dim: usize,
}

impl Default for MlpParams {
    fn default() -> Self {
        MlpParams { hidden_dims: vec![256, 128], latent_dim: 60 }
    }
}

impl MlpParams {
    pub fn from_json(v: &Value) -> Result<MlpParams> {
        let p: MlpParams = serde_json::from_value(v.clone()).map_err(|e| Error::config("params", v, e.to_string()))?;
        if p.latent_dim == 0 || p.hidden_dims.contains(&0) {
            return Err(Error::config("params.hidden_dims", format!("{:?} / latent_dim {}", p.hidden_dims, p.latent_dim), "layer widths must be >= 1"));
        }
        Ok(p)
    }
}

pub struct Net {
    vs: nn::VarStore,
    enc: Vec<nn::Linear>,
    dec: nn::Linear,
}

impl Net {
    fn new(p: &MlpParams, g: i64, device: tch::Device, seed: u64) -> Net {
        let vs = nn::VarStore::new(device);
        let rng = &mut train::rng_for(seed, train::INIT_STREAM);
        let root = vs.root();
        let mut widths = vec![g];
        widths.extend(p.hidden_dims.iter().map(|&w| w as i64));
        widths.push(p.latent_dim as i64);
        let enc = widths.windows(2).enumerate().map(|(i, w)| layers::linear(&root / "encoder" / i, w[0], w[1], rng)).collect();
        let dec = layers::linear(&root / "decoder", p.latent_dim as i64, g, rng);
        Net { vs, enc, dec }
    }

    fn encode(&self, x: &Tensor) -> Tensor {
        let last = self.enc.len() - 1;
        self.enc.iter().enumerate().fold(x.shallow_clone(), |h, (i, l)| {
            let h = l.forward(&h);
            if i < last { h.relu() } else { h }
        })
    }
}

struct Step<'n> {
    net: &'n Net,
}

impl TrainStep for Step<'_> {
    fn parameters(&self) -> Vec<(String, Tensor)> {
        layers::named_vars(&self.net.vs)
    }

    fn losses(&mut self, x: &Tensor, _rows: &[usize], _ctx: &mut StepCtx) -> Result<Vec<(&'static str, Tensor)>> {
        let recon = self.net.dec.forward(&self.net.encode(x));
        Ok(vec![("loss", (recon - x).square().mean(Kind::Float))])
    }
}

impl DeepNet for Net {
    type Params = MlpParams;
    const NAME: &'static str = "mask-sc-mlp";

    fn build(p: &MlpParams, n_genes: i64, device: tch::Device, seed: u64) -> Net {
        Net::new(p, n_genes, device, seed)
    }

    fn vs(&self) -> &nn::VarStore {
        &self.vs
    }

    fn train(&self, _p: &MlpParams, data: &Prepared, ctx: &mut Context) -> Result<Vec<Value>> {
        let batcher = Batcher::new(data, ctx.device);
        ctx.fit(&mut Step { net: self }, &batcher)
    }

    fn embed(&self, x: &Tensor) -> Tensor {
        self.encode(x)
    }
}
