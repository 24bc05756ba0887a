//! CICL (Jiang, Wang, Guan & Zhou), specs §6: a transformer encoder on noisy views, a
//! projection head, pseudo-labels from K-means centroids (Student-t assignment), and the
//! instance-wise plus cluster-aware contrastive losses L = L_ins + λ·L_clu.
//!
//! Encoder: each cell is a sequence of length 1, so attention weights are identically 1
//! and the Q/K projections have no effect; each of the `layers` layers computes (dropout
//! `dropout`): a = W_O·W_V·h (no biases); a' = LN₀(a + h) (non-affine);
//! h ← LN₁(h + drop(a')); h ← LN₂(h + drop(W₂ drop(ReLU(W₁h)))). A final affine
//! LayerNorm gives H, the embedding (dimension G). Projection head: Linear G->2048 ->
//! ReLU -> Linear 2048->512 -> L2-normalise.
//!
//! Pseudo-labels: l_i = argmax_j q_ij with q_ij ∝ (1 + ‖h_i − c_j‖²/α)^{−(α+1)/2}; the
//! argmax is the nearest centroid for every α > 0, so α does not change the labels and is
//! not an option here. `variant = "paper"` (default): the centroids are K-means on the
//! current H, re-estimated at every step (warm-started Lloyd iterations from the previous
//! centroids), with the paper's loss formulas. `variant = "code"`: one K-means on the
//! untrained encoder's embeddings, frozen, the reference code's losses (one-directional
//! L_ins with cross-view negatives; L_clu per pseudo-class, summed) and its optimiser
//! (encoder 10x the configured learning rate with weight decay 1e-3, head at the rate). H for the labels is
//! computed from the clean input without dropout. Epochs are never selected by looking at
//! the ground truth (the reference code keeps the epoch with the best ARI against the true
//! labels; scdeep trains the configured number of epochs and uses the last).

use super::deep::DeepNet;
use super::layers;
use super::Context;
use super::MethodInfo;
use crate::cluster::kmeans::{kmeans, kmeans_from, nearest, KMeansParams};
use crate::cluster::{Algorithm, ClusterConfig};
use crate::error::{Error, Result};
use crate::preprocess::Prepared;
use crate::preprocess::Recipe;
use crate::train::TrainConfig;
use crate::train::{random, Batcher, ParamGroup, StepCtx, TrainStep};

/// This method's entry in the registry (`models::METHODS`): its defaults live here.
pub const INFO: MethodInfo = MethodInfo {
    name: "cicl",
    description: "CICL: transformer encoder, instance-wise and cluster-aware contrastive losses with K-means pseudo-labels",
    reference: "Jiang, Wang, Guan & Zhou; specs §6",
    params: || super::params_json(&CiclParams::default()),
    recipe: Recipe::Dca,
    n_top_genes: 500,
    train: train_defaults,
    cluster: || ClusterConfig { algorithm: Algorithm::Kmeans, ..ClusterConfig::default() },
    build: |v| Ok(Box::new(super::deep::Deep::<Net>::new(CiclParams::from_json(v)?))),
};

/// Default training options.
fn train_defaults() -> TrainConfig {
    // specs §6 [P]: Adam lr 1e-5, batch 6000 (full batch for most data sets), 1000 epochs.
    TrainConfig {
        epochs: 1000,
        batch_size: 6000,
        drop_last: false,
        optimizer: crate::train::OptimConfig { lr: 1e-5, ..Default::default() },
        ..TrainConfig::default()
    }
}

/// Reference code (variant "code"): encoder learning rate / head learning rate (1e-4 / 1e-5).
const CODE_ENCODER_LR_SCALE: f64 = 10.0;
/// Reference code (variant "code"): the encoder's Adam weight decay (L2).
const CODE_ENCODER_WEIGHT_DECAY: f64 = 1e-3;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Variant {
    /// Centroids re-estimated by K-means during training; the paper's loss formulas.
    Paper,
    /// Frozen centroids from the untrained encoder; the reference code's losses.
    Code,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CiclParams {
    pub variant: Variant,
    /// Encoder layers.
    pub layers: usize,
    /// Attention value width (heads x head size; 2 x 512 in the paper).
    pub attn_dim: usize,
    /// Feed-forward width.
    pub ffn_dim: usize,
    pub dropout: f64,
    pub proj_hidden: usize,
    pub proj_dim: usize,
    /// Temperature T of both losses.
    pub temperature: f64,
    /// λ: weight of the cluster-aware loss (0 = instance-wise loss only).
    pub lambda: f64,
    /// Augmentation: N(0, noise_std²) added to a random `noise_fraction` of each cell's genes.
    pub noise_std: f64,
    pub noise_fraction: f64,
    /// Draw the two noisy views once (the reference code) instead of every epoch.
    pub fixed_views: bool,
    /// Lloyd iterations per step when re-estimating the centroids (paper variant).
    pub kmeans_iter: usize,
}

impl Default for CiclParams {
    fn default() -> Self {
        CiclParams {
            variant: Variant::Paper,
            layers: 4,
            attn_dim: 1024,
            ffn_dim: 1024,
            dropout: 0.2,
            proj_hidden: 2048,
            proj_dim: 512,
            temperature: 0.5,
            lambda: 0.1,
            noise_std: 0.5,
            noise_fraction: 0.8,
            fixed_views: false,
            kmeans_iter: 10,
        }
    }
}

impl CiclParams {
    pub fn from_json(v: &Value) -> Result<CiclParams> {
        let p: CiclParams = crate::error::from_json_at("params", v.clone())?;
        if !(0.0..1.0).contains(&p.dropout) {
            return Err(Error::config("params.dropout", p.dropout, "must be in [0, 1)"));
        }
        if !(p.temperature > 0.0 && p.temperature.is_finite()) {
            return Err(Error::config("params.temperature", p.temperature, "must be > 0"));
        }
        if !(p.lambda >= 0.0 && p.lambda.is_finite()) {
            return Err(Error::config("params.lambda", p.lambda, "must be >= 0"));
        }
        if !(p.noise_std >= 0.0 && p.noise_std.is_finite()) {
            return Err(Error::config("params.noise_std", p.noise_std, "must be >= 0"));
        }
        if !(0.0..=1.0).contains(&p.noise_fraction) {
            return Err(Error::config("params.noise_fraction", p.noise_fraction, "must be in [0, 1]"));
        }
        for (n, v) in [
            ("layers", p.layers),
            ("attn_dim", p.attn_dim),
            ("ffn_dim", p.ffn_dim),
            ("proj_hidden", p.proj_hidden),
            ("proj_dim", p.proj_dim),
            ("kmeans_iter", p.kmeans_iter),
        ] {
            if v == 0 {
                return Err(Error::config(&format!("params.{n}"), 0, "must be >= 1"));
            }
        }
        Ok(p)
    }
}

struct Layer {
    v: nn::Linear,
    o: nn::Linear,
    ln0: nn::LayerNorm,
    ln1: nn::LayerNorm,
    ln2: nn::LayerNorm,
    w1: nn::Linear,
    w2: nn::Linear,
}

pub struct Net {
    vs: nn::VarStore,
    layers: Vec<Layer>,
    norm: nn::LayerNorm,
    proj1: nn::Linear,
    proj2: nn::Linear,
    dropout: f64,
}

impl Net {
    fn new(p: &CiclParams, g: i64, device: tch::Device, seed: u64) -> Net {
        let vs = nn::VarStore::new(device);
        let rng = &mut crate::seed::rng_for(seed, crate::seed::INIT_STREAM);
        let root = vs.root();
        let plain = nn::LayerNormConfig { elementwise_affine: false, ..Default::default() };
        let (a, f) = (p.attn_dim as i64, p.ffn_dim as i64);
        let layers = (0..p.layers)
            .map(|i| {
                let l = &root / "encoder" / i;
                Layer {
                    v: layers::linear_opt(&l / "v", g, a, false, rng),
                    o: layers::linear_opt(&l / "o", a, g, false, rng),
                    ln0: nn::layer_norm(&l / "ln0", vec![g], plain),
                    ln1: layers::layer_norm(&l / "ln1", g),
                    ln2: layers::layer_norm(&l / "ln2", g),
                    w1: layers::linear(&l / "w1", g, f, rng),
                    w2: layers::linear(&l / "w2", f, g, rng),
                }
            })
            .collect();
        let norm = layers::layer_norm(&root / "norm", g);
        let proj1 = layers::linear(&root / "proj" / "0", g, p.proj_hidden as i64, rng);
        let proj2 = layers::linear(&root / "proj" / "2", p.proj_hidden as i64, p.proj_dim as i64, rng);
        Net { vs, layers, norm, proj1, proj2, dropout: p.dropout }
    }

    /// H; `rng` (training) drives the dropout.
    fn encode(&self, x: &Tensor, mut rng: Option<&mut ChaCha8Rng>) -> Tensor {
        let p = self.dropout;
        let mut drop = |t: Tensor| match rng.as_deref_mut() {
            Some(r) => random::dropout(r, &t, p),
            None => t,
        };
        let mut h = x.shallow_clone();
        for l in &self.layers {
            let a = l.o.forward(&l.v.forward(&h));
            let a = l.ln0.forward(&(a + &h));
            h = l.ln1.forward(&(&h + drop(a)));
            let ff = drop(l.w1.forward(&h).relu());
            let ff = drop(l.w2.forward(&ff));
            h = l.ln2.forward(&(&h + ff));
        }
        self.norm.forward(&h)
    }

    fn project(&self, h: &Tensor) -> Tensor {
        layers::l2_normalize(&self.proj2.forward(&self.proj1.forward(h).relu()))
    }
}

/// The paper's cluster-aware loss over the 2B projections `z` (rows L2-normalised) with
/// pseudo-labels `l` (2B): for each anchor, the same-label rows other than itself against
/// the other-label rows; anchors without any other-label row are left out.
fn l_clu_paper(z: &Tensor, l: &Tensor, t: f64) -> Tensor {
    let n = z.size()[0];
    let s = z.matmul(&z.tr()) / t;
    let same = l.unsqueeze(1).eq_tensor(&l.unsqueeze(0));
    let eye = Tensor::eye(n, (Kind::Bool, z.device()));
    let pos = same.logical_and(&eye.logical_not());
    let neg = same.logical_not();
    let lse = |m: &Tensor| s.masked_fill(&m.logical_not(), f64::NEG_INFINITY).logsumexp([1], false);
    let valid = neg.any_dim(1, false);
    if valid.any().int64_value(&[]) == 0 {
        return z.sum(Kind::Float) * 0.0;
    }
    let per = (lse(&neg) - lse(&pos)).masked_select(&valid);
    per.mean(Kind::Float)
}

/// The reference code's cluster-aware loss: anchors are both views of the cells of each
/// pseudo-class; the positive is the cell's other view, the denominator that positive
/// plus every other-class row; the mean per class, summed over classes.
fn l_clu_code(z: &Tensor, l: &Tensor, t: f64) -> Tensor {
    let n = z.size()[0];
    let b = n / 2;
    let s = z.matmul(&z.tr()) / t;
    let partner: Vec<i64> = (0..n).map(|i| (i + b) % n).collect();
    let partner = Tensor::from_slice(&partner).to_device(z.device());
    let onehot_partner = partner.one_hot(n).to_kind(Kind::Bool);
    let allowed = l.unsqueeze(1).ne_tensor(&l.unsqueeze(0)).logical_or(&onehot_partner);
    let logp = s.masked_fill(&allowed.logical_not(), f64::NEG_INFINITY).log_softmax(1, Kind::Float);
    let per = -logp.gather(1, &partner.unsqueeze(1), false).squeeze_dim(1);
    let k = l.max().int64_value(&[]) + 1;
    let sums = Tensor::zeros([k], (Kind::Float, z.device())).index_add(0, l, &per);
    let counts = Tensor::zeros([k], (Kind::Float, z.device())).index_add(0, l, &per.ones_like());
    (sums / counts.clamp_min(1.0)).sum(Kind::Float)
}

struct Step<'n> {
    net: &'n Net,
    p: &'n CiclParams,
    k: usize,
    seed: u64,
    centroids: Option<Tensor>,
    /// (noise1, noise2) for every cell when the views are fixed.
    fixed: Option<(Tensor, Tensor)>,
}

impl Step<'_> {
    fn noise(&self, rng: &mut ChaCha8Rng, shape: &[i64], dev: tch::Device) -> Tensor {
        let keep = random::bernoulli(rng, shape, self.p.noise_fraction, dev).to_kind(Kind::Float);
        random::normal(rng, shape, dev) * self.p.noise_std * keep
    }

    /// Pseudo-labels of the batch (nearest centroid of H of the clean input).
    fn labels(&mut self, x: &Tensor) -> Result<Tensor> {
        let h = tch::no_grad(|| self.net.encode(x, None));
        let (c, labels) = match (&self.centroids, self.p.variant) {
            (Some(c), Variant::Code) => (c.shallow_clone(), nearest(&h, c)),
            (Some(c), Variant::Paper) => kmeans_from(&h, c, self.p.kmeans_iter, 1e-4)?,
            (None, _) => {
                let r = kmeans(&h, &KMeansParams { k: self.k, n_init: 10, max_iter: 300, tol: 1e-4, seed: self.seed })?;
                let c = Tensor::from_slice(&r.centroids).view([self.k as i64, -1]).to_device(h.device());
                (c, Tensor::from_slice(&r.labels).to_device(h.device()))
            }
        };
        self.centroids = Some(c);
        Ok(labels)
    }
}

impl TrainStep for Step<'_> {
    fn parameters(&self) -> Vec<(String, Tensor)> {
        layers::named_vars(&self.net.vs)
    }

    /// The reference code's optimiser (specs §6): the projection head at the configured
    /// rate (1e-5), the encoder (its final LayerNorm included) 10x faster (1e-4) with
    /// weight decay 1e-3. The paper variant trains everything at one rate.
    fn param_groups(&self) -> Vec<ParamGroup> {
        match self.p.variant {
            Variant::Paper => Vec::new(),
            Variant::Code => ["encoder.", "norm."]
                .iter()
                .map(|prefix| ParamGroup {
                    prefix: prefix.to_string(),
                    lr_scale: CODE_ENCODER_LR_SCALE,
                    weight_decay: CODE_ENCODER_WEIGHT_DECAY,
                })
                .collect(),
        }
    }

    fn losses(&mut self, x: &Tensor, rows: &[usize], ctx: &mut StepCtx) -> Result<Vec<(&'static str, Tensor)>> {
        let labels = self.labels(x)?;
        let (v1, v2) = match &self.fixed {
            Some((n1, n2)) => {
                let idx = Tensor::from_slice(&rows.iter().map(|&r| r as i64).collect::<Vec<_>>()).to_device(x.device());
                (x + n1.index_select(0, &idx), x + n2.index_select(0, &idx))
            }
            None => (x + self.noise(ctx.rng, &x.size(), x.device()), x + self.noise(ctx.rng, &x.size(), x.device())),
        };
        let z1 = self.net.project(&self.net.encode(&v1, Some(&mut *ctx.rng)));
        let z2 = self.net.project(&self.net.encode(&v2, Some(&mut *ctx.rng)));
        let t = self.p.temperature;
        let z = Tensor::cat(&[&z1, &z2], 0);
        let l2 = Tensor::cat(&[&labels, &labels], 0);
        let (l_ins, l_clu) = match self.p.variant {
            Variant::Paper => (layers::nt_xent(&z1, &z2, t), l_clu_paper(&z, &l2, t)),
            Variant::Code => {
                let b = z1.size()[0];
                let target = Tensor::arange(b, (Kind::Int64, x.device()));
                ((z1.matmul(&z2.tr()) / t).cross_entropy_for_logits(&target), l_clu_code(&z, &l2, t))
            }
        };
        let loss = &l_ins + &l_clu * self.p.lambda;
        let n_pseudo = tch::no_grad(|| labels.unique_dim(0, false, false, false).0.size()[0] as f64);
        Ok(vec![("loss", loss), ("loss_ins", l_ins.detach()), ("loss_clu", l_clu.detach()), ("pseudo_classes", Tensor::from(n_pseudo))])
    }
}

impl DeepNet for Net {
    type Params = CiclParams;
    const NAME: &'static str = "cicl";

    fn build(p: &CiclParams, n_genes: i64, device: tch::Device, seed: u64) -> Net {
        Net::new(p, n_genes, device, seed)
    }

    fn vs(&self) -> &nn::VarStore {
        &self.vs
    }

    fn train(&self, p: &CiclParams, data: &Prepared, ctx: &mut Context) -> Result<Vec<Value>> {
        let k = ctx.n_clusters.ok_or_else(|| {
            Error::config(
                "cluster.n_clusters",
                "null",
                "CICL's clustering head needs the number of clusters: give n_clusters (-k) or ground-truth labels",
            )
        })?;
        let batcher = Batcher::new(data, ctx.device);
        let mut step = Step { net: self, p, k, seed: ctx.seed, centroids: None, fixed: None };
        if p.variant == Variant::Code {
            // one K-means on the untrained encoder's embeddings of all cells
            let all: Vec<usize> = (0..batcher.n_rows()).collect();
            let _ = step.labels(&batcher.dense(&all))?;
        }
        if p.fixed_views {
            let rng = &mut crate::seed::rng_for(ctx.seed, crate::seed::INIT_STREAM - 1);
            let shape = [batcher.n_rows() as i64, data.n_genes() as i64];
            step.fixed = Some((step.noise(rng, &shape, ctx.device), step.noise(rng, &shape, ctx.device)));
        }
        ctx.fit(&mut step, &batcher)
    }

    fn embed(&self, x: &Tensor) -> Tensor {
        self.encode(x, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit_rows(v: &[f32], d: i64) -> Tensor {
        layers::l2_normalize(&Tensor::from_slice(v).view([-1, d]))
    }

    #[test]
    fn cluster_losses_match_hand_computed_values() {
        // 2 cells x 2 views; labels (0, 1): every anchor's only positive... paper: none
        // (same label, not self: only the partner), negatives: the other cell's two views.
        let z = unit_rows(&[1.0, 0.0, 0.0, 1.0, 1.0, 0.1, 0.1, 1.0], 2);
        let l = Tensor::from_slice(&[0i64, 1, 0, 1]);
        let t = 0.5;
        let s = Vec::<f32>::try_from(&(z.matmul(&z.tr()) / t).view([-1])).unwrap();
        let s = |i: usize, j: usize| s[i * 4 + j] as f64;
        let partner = [2, 3, 0, 1];
        let other = [[1, 3], [0, 2], [1, 3], [0, 2]];
        let want: f64 = (0..4).map(|a| -(s(a, partner[a]) - (s(a, other[a][0]).exp() + s(a, other[a][1]).exp()).ln())).sum::<f64>() / 4.0;
        let got = l_clu_paper(&z, &l, t).double_value(&[]);
        assert!((got - want).abs() < 1e-5, "paper {got} vs {want}");
        // code: per anchor -log(e^pos / (e^pos + Σ other-class)), mean per class, summed
        let per = |a: usize| -(s(a, partner[a]) - (s(a, partner[a]).exp() + s(a, other[a][0]).exp() + s(a, other[a][1]).exp()).ln());
        let want = (per(0) + per(2)) / 2.0 + (per(1) + per(3)) / 2.0;
        let got = l_clu_code(&z, &l, t).double_value(&[]);
        assert!((got - want).abs() < 1e-5, "code {got} vs {want}");
        // one pseudo-class: no negatives, the paper's loss is 0 (not NaN)
        let one = Tensor::from_slice(&[0i64, 0, 0, 0]);
        assert_eq!(l_clu_paper(&z, &one, t).double_value(&[]), 0.0);
        assert!(l_clu_code(&z, &one, t).double_value(&[]).abs() < 1e-6);
    }

    #[test]
    fn code_variant_trains_the_encoder_faster_than_the_head() {
        for variant in [Variant::Paper, Variant::Code] {
            let p = CiclParams { variant, layers: 2, attn_dim: 8, ffn_dim: 8, proj_hidden: 8, proj_dim: 4, ..CiclParams::default() };
            let net = Net::new(&p, 6, tch::Device::Cpu, 0);
            let step = Step { net: &net, p: &p, k: 2, seed: 0, centroids: None, fixed: None };
            let groups = step.param_groups();
            let params = step.parameters();
            assert!(params.iter().any(|(n, _)| n.starts_with("proj.")) && params.iter().any(|(n, _)| n.starts_with("norm.")));
            for (name, _) in params {
                let g = groups.iter().find(|g| name.starts_with(&g.prefix));
                match (variant, name.starts_with("proj.")) {
                    (Variant::Code, false) => assert!(g.is_some_and(|g| g.lr_scale == 10.0 && g.weight_decay == 1e-3), "{name}"),
                    _ => assert!(g.is_none(), "{variant:?}: {name} in a group"),
                }
            }
        }
    }
}
