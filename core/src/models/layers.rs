//! Layers shared by the deep methods, initialised as PyTorch does (specs §0.3).

use crate::train::random;
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use tch::nn::{self, Module};
use tch::Tensor;

/// Linear layer with PyTorch's default init: weight and bias ~ U(±1/√fan_in), drawn
/// from the run's own RNG (see train::random).
pub fn linear(p: nn::Path, fan_in: i64, fan_out: i64, rng: &mut ChaCha8Rng) -> nn::Linear {
    linear_opt(p, fan_in, fan_out, true, rng)
}

/// `linear`, optionally without a bias.
pub fn linear_opt(p: nn::Path, fan_in: i64, fan_out: i64, bias: bool, rng: &mut ChaCha8Rng) -> nn::Linear {
    let b = 1.0 / (fan_in as f64).sqrt();
    let dev = p.device();
    let zero = nn::Init::Const(0.0);
    let l = nn::linear(p, fan_in, fan_out, nn::LinearConfig { ws_init: zero, bs_init: Some(zero), bias });
    tch::no_grad(|| {
        l.ws.shallow_clone().copy_(&random::uniform(rng, &[fan_out, fan_in], -b, b, dev));
        if let Some(bs) = &l.bs {
            bs.shallow_clone().copy_(&random::uniform(rng, &[fan_out], -b, b, dev));
        }
    });
    l
}

/// Linear layer with Xavier-uniform weights U(±√(6/(fan_in+fan_out))) and PyTorch's
/// default bias (contrastive-sc re-initialises only the weights).
pub fn linear_xavier(p: nn::Path, fan_in: i64, fan_out: i64, rng: &mut ChaCha8Rng) -> nn::Linear {
    let l = linear(p, fan_in, fan_out, rng);
    let a = (6.0 / (fan_in + fan_out) as f64).sqrt();
    tch::no_grad(|| l.ws.shallow_clone().copy_(&random::uniform(rng, &[fan_out, fan_in], -a, a, l.ws.device())));
    l
}

/// Rows scaled to unit L2 norm.
pub fn l2_normalize(x: &Tensor) -> Tensor {
    x / x.norm_scalaropt_dim(2, [1], true).clamp_min(1e-12)
}

/// NT-Xent (SimCLR) over the 2B embeddings of two views (rows already L2-normalised):
/// every row is an anchor, its other view the positive among the 2B - 1 other rows;
/// the mean over the 2B anchors.
pub fn nt_xent(z1: &Tensor, z2: &Tensor, temperature: f64) -> Tensor {
    let b = z1.size()[0];
    let z = Tensor::cat(&[z1, z2], 0);
    let sim = z.matmul(&z.tr()) / temperature;
    let eye = Tensor::eye(2 * b, (tch::Kind::Bool, z.device()));
    let sim = sim.masked_fill(&eye, f64::NEG_INFINITY);
    let idx: Vec<i64> = (0..2 * b).map(|i| (i + b) % (2 * b)).collect();
    let target = Tensor::from_slice(&idx).to_device(z.device());
    sim.cross_entropy_for_logits(&target)
}

/// BatchNorm1d as PyTorch initialises it (weight 1, bias 0). tch's default draws the
/// weight from U(0, 1) with libtorch's global generator, which made runs irreproducible.
pub fn batch_norm1d(p: nn::Path, dim: i64) -> nn::BatchNorm {
    batch_norm1d_with(p, dim, 0.1, 1e-5)
}

/// `batch_norm1d` with PyTorch's `momentum` (TF's momentum m is PyTorch's 1 − m) and `eps`.
pub fn batch_norm1d_with(p: nn::Path, dim: i64, momentum: f64, eps: f64) -> nn::BatchNorm {
    let cfg = nn::BatchNormConfig { ws_init: nn::Init::Const(1.0), bs_init: nn::Init::Const(0.0), momentum, eps, ..Default::default() };
    nn::batch_norm1d(p, dim, cfg)
}

pub fn layer_norm(p: nn::Path, dim: i64) -> nn::LayerNorm {
    nn::layer_norm(p, vec![dim], Default::default())
}

/// Linear -> LayerNorm -> Mish.
#[derive(Debug)]
pub struct LinNormMish {
    pub lin: nn::Linear,
    pub norm: nn::LayerNorm,
}

impl Module for LinNormMish {
    fn forward(&self, x: &Tensor) -> Tensor {
        self.norm.forward(&self.lin.forward(x)).mish()
    }
}

/// Linear -> LayerNorm -> SiLU.
#[derive(Debug)]
pub struct LinNormSilu {
    pub lin: nn::Linear,
    pub norm: nn::LayerNorm,
}

impl Module for LinNormSilu {
    fn forward(&self, x: &Tensor) -> Tensor {
        self.norm.forward(&self.lin.forward(x)).silu()
    }
}

/// Every variable of a VarStore with its name, sorted (stable across runs).
pub fn named_vars(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// Tensors for saving: detached copies on the CPU.
pub fn to_cpu(named: Vec<(String, Tensor)>) -> Vec<(String, Tensor)> {
    named.into_iter().map(|(n, t)| (n, t.detach().to_device(tch::Device::Cpu))).collect()
}

pub type Named = HashMap<String, Tensor>;
