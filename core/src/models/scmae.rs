//! scMAE (Fang, Zheng & Li 2024), specs §1: corrupt a batch by swapping entries with
//! shuffled values, predict which entries changed and reconstruct the clean input.
//!
//! encoder: Linear G->256, LayerNorm, Mish, Linear 256->128, LayerNorm, Mish, Linear 128->128 (= E)
//! mask predictor: Linear 128->G (logits); decoder: Linear (128+G)->G on concat(E, logits).
//! L = (1-γ)·mean(Ω∘(x̂-x)²) + γ·BCEWithLogits(logits, m), Ω = λm + (1-λ)(1-m),
//! m = 1[corrupted value ≠ clean value].

use super::deep::DeepNet;
use super::layers::{self, LinNormMish};
use super::Context;
use super::MethodInfo;
use crate::cluster::{Algorithm, ClusterConfig};
use crate::error::{Error, Result};
use crate::preprocess::Prepared;
use crate::preprocess::Recipe;
use crate::train::TrainConfig;
use crate::train::{random, Batcher, StepCtx, TrainStep};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tch::nn::{self, Module};
use tch::{Kind, Reduction, Tensor};

/// This method's entry in the registry (`models::METHODS`): its defaults live here.
pub const INFO: MethodInfo = MethodInfo {
    name: "scmae",
    description: "scMAE: masked autoencoder with shuffled-value corruption and mask prediction",
    reference: "Fang, Zheng & Li 2024, Bioinformatics; specs §1",
    params: || super::params_json(&ScmaeParams::default()),
    recipe: Recipe::Dca,
    n_top_genes: 1000,
    train: train_defaults,
    // specs §1: K-means below 10 000 cells, Leiden with the resolution search above
    cluster: || ClusterConfig { algorithm: Algorithm::Auto, ..ClusterConfig::default() },
    build: |v| Ok(Box::new(super::deep::Deep::<Net>::new(ScmaeParams::from_json(v)?))),
};

/// Default training options.
fn train_defaults() -> TrainConfig {
    // specs §1: Adam 1e-3, batch 256 with drop_last, 81 epochs, embedding in blocks of 1280.
    TrainConfig { epochs: 81, batch_size: 256, drop_last: true, embed_batch_size: 1280, ..TrainConfig::default() }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shuffle {
    /// The reference code: one permutation of the batch's rows, applied to every gene.
    BatchRows,
    /// The paper (and scNAME): every gene shuffled independently over all cells.
    PerGene,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ScmaeParams {
    pub hidden_dim: usize,
    pub latent_dim: usize,
    /// Probability that an entry is replaced by its shuffled value.
    pub mask_rate: f64,
    pub shuffle: Shuffle,
    /// λ: weight of the corrupted entries in the reconstruction loss.
    pub lambda: f64,
    /// γ: weight of the mask-prediction loss.
    pub gamma: f64,
    /// Dropout on the encoder input (the reference code uses 0).
    pub dropout: f64,
}

impl Default for ScmaeParams {
    fn default() -> Self {
        ScmaeParams {
            hidden_dim: 256,
            latent_dim: 128,
            mask_rate: 0.4,
            shuffle: Shuffle::BatchRows,
            lambda: 0.75,
            gamma: 0.7,
            dropout: 0.0,
        }
    }
}

impl ScmaeParams {
    pub fn from_json(v: &Value) -> Result<ScmaeParams> {
        let p: ScmaeParams = crate::error::from_json_at("params", v.clone())?;
        for (name, val) in [("params.mask_rate", p.mask_rate), ("params.lambda", p.lambda), ("params.gamma", p.gamma)] {
            if !(0.0..=1.0).contains(&val) {
                return Err(Error::config(name, val, "must be in [0, 1]"));
            }
        }
        if !(0.0..1.0).contains(&p.dropout) {
            return Err(Error::config("params.dropout", p.dropout, "must be in [0, 1)"));
        }
        if p.mask_rate == 0.0 {
            return Err(Error::config("params.mask_rate", 0, "must be > 0: nothing would be corrupted"));
        }
        for (name, val) in [("params.hidden_dim", p.hidden_dim), ("params.latent_dim", p.latent_dim)] {
            if val == 0 {
                return Err(Error::config(name, 0, "must be >= 1"));
            }
        }
        Ok(p)
    }
}

pub struct Net {
    vs: nn::VarStore,
    enc1: LinNormMish,
    enc2: LinNormMish,
    enc3: nn::Linear,
    mask: nn::Linear,
    dec: nn::Linear,
    dropout: f64,
}

impl Net {
    /// Layer names follow the reference's nn.Sequential indices (Dropout at 0).
    fn new(p: &ScmaeParams, g: i64, device: tch::Device, seed: u64) -> Net {
        let vs = nn::VarStore::new(device);
        let rng = &mut crate::seed::rng_for(seed, crate::seed::INIT_STREAM);
        let (h, d) = (p.hidden_dim as i64, p.latent_dim as i64);
        let root = vs.root();
        let e = &root / "encoder";
        let enc1 = LinNormMish { lin: layers::linear(&e / "1", g, h, rng), norm: layers::layer_norm(&e / "2", h) };
        let enc2 = LinNormMish { lin: layers::linear(&e / "4", h, d, rng), norm: layers::layer_norm(&e / "5", d) };
        let enc3 = layers::linear(&e / "7", d, d, rng);
        let mask = layers::linear(&root / "mask_predictor", d, g, rng);
        let dec = layers::linear(&root / "decoder", d + g, g, rng);
        Net { vs, enc1, enc2, enc3, mask, dec, dropout: p.dropout }
    }

    /// Encoder; `rng` (training only) drives the input dropout.
    fn encode(&self, x: &Tensor, rng: Option<&mut ChaCha8Rng>) -> Tensor {
        let x = match rng {
            Some(r) => random::dropout(r, x, self.dropout),
            None => x.shallow_clone(),
        };
        self.enc3.forward(&self.enc2.forward(&self.enc1.forward(&x)))
    }
}

struct Step<'n> {
    net: &'n Net,
    p: &'n ScmaeParams,
}

impl TrainStep for Step<'_> {
    fn parameters(&self) -> Vec<(String, Tensor)> {
        layers::named_vars(&self.net.vs)
    }

    fn losses(&mut self, x: &Tensor, _rows: &[usize], ctx: &mut StepCtx) -> Result<Vec<(&'static str, Tensor)>> {
        let (b, g) = (x.size()[0], x.size()[1]);
        let dev = x.device();
        let shuffled = match self.p.shuffle {
            Shuffle::BatchRows => x.index_select(0, &random::permutation(ctx.rng, b as usize, dev)),
            Shuffle::PerGene => {
                // Each gene's replacement is its value in a uniformly drawn cell of the
                // whole data set: draw B cells, then permute every gene independently.
                let n = ctx.batcher.n_rows();
                let other: Vec<usize> = (0..b).map(|_| ctx.rng.random_range(0..n)).collect();
                let o = ctx.batcher.dense(&other);
                o.gather(0, &random::column_permutations(ctx.rng, b as usize, g as usize, dev), false)
            }
        };
        let draw = random::bernoulli(ctx.rng, &[b, g], self.p.mask_rate, dev);
        let corrupted = shuffled.where_self(&draw, x);
        let m = corrupted.ne_tensor(x).to_kind(Kind::Float);
        let e = self.net.encode(&corrupted, Some(&mut *ctx.rng));
        let logits = self.net.mask.forward(&e);
        let recon = self.net.dec.forward(&Tensor::cat(&[&e, &logits], 1));
        let lam = self.p.lambda;
        let omega: Tensor = &m * lam + (1.0 - &m) * (1.0 - lam);
        let l_r = (omega * (&recon - x).square()).mean(Kind::Float);
        let l_m = logits.binary_cross_entropy_with_logits::<Tensor>(&m, None, None, Reduction::Mean);
        let gam = self.p.gamma;
        let loss = &l_r * (1.0 - gam) + &l_m * gam;
        // Diagnostics (specs §1 acceptance): the effective mask rate p, the constant
        // predictor's BCE H(p), and precision/recall of the predicted mask.
        let (rate, h, prec, rec) = tch::no_grad(|| {
            let rate = m.mean(Kind::Float);
            let pc = rate.clamp(1e-7, 1.0 - 1e-7);
            let q: Tensor = 1.0 - &pc;
            let h = -(&pc * pc.log() + &q * q.log());
            let pred = logits.gt(0.0).to_kind(Kind::Float);
            let tp = (&pred * &m).sum(Kind::Float);
            let prec = &tp / pred.sum(Kind::Float).clamp_min(1.0);
            let rec = &tp / m.sum(Kind::Float).clamp_min(1.0);
            (rate, h, prec, rec)
        });
        Ok(vec![
            ("loss", loss),
            ("loss_recon", l_r.detach()),
            ("loss_mask", l_m.detach()),
            ("mask_rate", rate),
            ("mask_entropy", h),
            ("mask_precision", prec),
            ("mask_recall", rec),
        ])
    }
}

impl DeepNet for Net {
    type Params = ScmaeParams;
    const NAME: &'static str = "scmae";

    fn build(p: &ScmaeParams, n_genes: i64, device: tch::Device, seed: u64) -> Net {
        Net::new(p, n_genes, device, seed)
    }

    fn vs(&self) -> &nn::VarStore {
        &self.vs
    }

    fn train(&self, p: &ScmaeParams, data: &Prepared, ctx: &mut Context) -> Result<Vec<Value>> {
        let batcher = Batcher::new(data, ctx.device);
        ctx.fit(&mut Step { net: self, p }, &batcher)
    }

    fn embed(&self, x: &Tensor) -> Tensor {
        self.encode(x, None)
    }
}
