//! Layers shared by the deep methods, initialised as PyTorch does (specs §0.3).

use crate::train::random;
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use tch::nn::{self, Module};
use tch::Tensor;

/// Linear layer with PyTorch's default init: weight and bias ~ U(±1/√fan_in), drawn
/// from the run's own RNG (see train::random).
pub fn linear(p: nn::Path, fan_in: i64, fan_out: i64, rng: &mut ChaCha8Rng) -> nn::Linear {
    let b = 1.0 / (fan_in as f64).sqrt();
    let dev = p.device();
    let zero = nn::Init::Const(0.0);
    let l = nn::linear(p, fan_in, fan_out, nn::LinearConfig { ws_init: zero, bs_init: Some(zero), bias: true });
    tch::no_grad(|| {
        l.ws.shallow_clone().copy_(&random::uniform(rng, &[fan_out, fan_in], -b, b, dev));
        if let Some(bs) = &l.bs {
            bs.shallow_clone().copy_(&random::uniform(rng, &[fan_out], -b, b, dev));
        }
    });
    l
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
