//! scRAE (Mondal, Asnani, Singla & AP), specs §7: a ZINB autoencoder whose latent space is
//! regularised by a learned prior: a generator maps N(0, I) noise into the latent space
//! and a WGAN-GP critic tells generated codes from the encoder's; the encoder and the
//! generator are moved towards each other.
//!
//! Encoder: (Linear → LeakyReLU → BatchNorm) per hidden width (BatchNorm after the
//! activation, TF's momentum 0.99 / ε 1e-3; or dropout instead of BatchNorm), then a
//! linear z. Library branch: h2 = ReLU(Linear(h → n_z)), l_m = Linear(h2 → 1),
//! l_v = exp(Linear(h2 → 1)), ℓ ~ N(l_m, l_v). Decoder: the mirror, with heads
//! μ = e^ℓ·softmax(W_μ h) (kept as log μ in double), zero-inflation logit W_π h, inverse dispersion θ = e^r
//! (a free per-gene vector, r ~ N(0, 1) at the start). Generator: n_z → widths of
//! `gen_width` → n_z; critic: n_z → widths of `critic_width` → 1 (LeakyReLU, no norm).
//!
//! Losses: L_AE = mean over cells of the ZINB NLL summed over genes + kl_weight·KL(N(l_m,
//! l_v) ‖ N(μ_L, σ_L²)), μ_L and σ_L² the mean and variance of the training cells' log
//! library sizes; L_critic = mean C(G(n)) − mean C(z) + gp_weight·E[(‖∇C(ẑ)‖ − 1)²];
//! L_enc = mean C(z); L_gen = −mean C(G(n)).
//!
//! Order per iteration (the reference code): the AE step (Adam, train.optimizer.lr);
//! then, on every `n_critic`-th iteration, an encoder step on L_enc (Adam, lr·enc_adv_lr
//! _factor, β = (0, 0.9)) and a generator step (Adam, gan_lr, β = (0, 0.9)); on the
//! others a critic step (Adam, gan_lr, β = (0, 0.9)). The code's "lr decay" scales
//! losses, which Adam cancels; it is not implemented.
//!
//! Targets: `counts` (default, the paper): input = the log-normalised HVGs, target = their
//! raw counts. `scaled_log` (the reference code): input and target are
//! log2(1+c)/max(log2(1+C)) of the HVG counts, the library prior built from those values.
//!
//! Cells: `test_fraction` of them (seeded) are held out of training and their ZINB NLL is
//! logged per epoch (`test_zinb_nll`); every cell is embedded and clustered. The paper
//! clusters only the test split and reports the best epoch per metric; scdeep uses the
//! last epoch. An epoch is ⌊N_train/B⌋ iterations (the code: ⌊N/B⌋ windows of the
//! training set). Checkpoints/resume are not supported: the generator, the critic and
//! their optimisers are outside the trainer's checkpoint.

use super::deep::DeepNet;
use super::layers;
use super::zinb::zinb_nll_log;
use super::Context;
use super::MethodInfo;
use crate::cluster::{Algorithm, ClusterConfig};
use crate::error::{Error, Result};
use crate::preprocess::Prepared;
use crate::preprocess::Recipe;
use crate::train::TrainConfig;
use crate::train::{random, Adam, Batcher, OptimConfig, StepCtx, TrainStep};
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tch::nn::{self, Module, ModuleT};
use tch::{Kind, Tensor};

/// This method's entry in the registry (`models::METHODS`): its defaults live here.
pub const INFO: MethodInfo = MethodInfo {
    name: "scrae",
    description: "scRAE: ZINB autoencoder with a learned latent prior (generator + WGAN-GP critic)",
    reference: "Mondal, Asnani, Singla & AP; specs §7",
    params: || super::params_json(&ScraeParams::default()),
    recipe: Recipe::Scrae,
    n_top_genes: 720,
    train: train_defaults,
    // specs §7: K-means with k = #labels (random_state 0: the run's seed here)
    cluster: || ClusterConfig { algorithm: Algorithm::Kmeans, ..ClusterConfig::default() },
    build: |v| Ok(Box::new(super::deep::Deep::<Net>::new(ScraeParams::from_json(v)?))),
};

/// Default training options.
fn train_defaults() -> TrainConfig {
    // specs §7, the Zeisel script: batch 16, at most 200 epochs, AE Adam 1e-3; ⌊N/B⌋
    // iterations. Training stops once the held-out cells' ZINB NLL has not improved for 10
    // epochs (no labels involved): the reference code instead reports each metric's best
    // epoch by the labels. Against the full 200 epochs: bench/results/accuracy.json,
    // labels scrae and scrae_200ep.
    let early_stopping = Some(crate::train::EarlyStopping { patience: 10, min_delta: 1e-3, monitor: "test_zinb_nll".into() });
    TrainConfig { epochs: 200, batch_size: 16, drop_last: true, early_stopping, ..TrainConfig::default() }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ZinbTarget {
    /// Input log-normalised values, target raw counts (the paper).
    Counts,
    /// Input and target log2(1+c)/max (the reference code).
    ScaledLog,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ScraeParams {
    /// Encoder widths (mirrored by the decoder); their count is n_l.
    pub hidden_dims: Vec<usize>,
    /// n_z: 2, 10 or 20 in the paper.
    pub latent_dim: usize,
    pub leak: f64,
    /// BatchNorm after each hidden activation (the Zeisel script); false = dropout.
    pub batch_norm: bool,
    /// Dropout rate when batch_norm is false (the code's flag default: 0.1).
    pub dropout: f64,
    pub gen_width: usize,
    pub critic_width: usize,
    /// Adam learning rate of the critic and the generator.
    pub gan_lr: f64,
    /// The encoder's adversarial step uses train.optimizer.lr times this.
    pub enc_adv_lr_factor: f64,
    /// Critic steps per generator/encoder step + 1: those run on every n_critic-th iteration.
    pub n_critic: usize,
    pub gp_weight: f64,
    /// Weight of the library-size KL term (the code: 0.1).
    pub kl_weight: f64,
    pub zinb_target: ZinbTarget,
    /// Cells held out of training (their NLL is logged); all cells are embedded.
    pub test_fraction: f64,
}

impl Default for ScraeParams {
    fn default() -> Self {
        // specs §7, the Zeisel script (n_z = 10)
        ScraeParams {
            hidden_dims: vec![512, 512],
            latent_dim: 10,
            leak: 0.2,
            batch_norm: true,
            dropout: 0.1,
            gen_width: 32,
            critic_width: 64,
            gan_lr: 9e-5,
            enc_adv_lr_factor: 1e-3,
            n_critic: 5,
            gp_weight: 10.0,
            kl_weight: 0.1,
            zinb_target: ZinbTarget::Counts,
            test_fraction: 0.2,
        }
    }
}

impl ScraeParams {
    pub fn from_json(v: &Value) -> Result<ScraeParams> {
        let p: ScraeParams = crate::error::from_json_at("params", v.clone())?;
        if p.hidden_dims.is_empty() || p.hidden_dims.contains(&0) {
            return Err(Error::config("params.hidden_dims", format!("{:?}", p.hidden_dims), "needs at least one layer, every width >= 1"));
        }
        for (n, v) in [("latent_dim", p.latent_dim), ("gen_width", p.gen_width), ("critic_width", p.critic_width), ("n_critic", p.n_critic)]
        {
            if v == 0 {
                return Err(Error::config(&format!("params.{n}"), 0, "must be >= 1"));
            }
        }
        for (n, v) in [("gan_lr", p.gan_lr), ("enc_adv_lr_factor", p.enc_adv_lr_factor)] {
            if !(v > 0.0 && v.is_finite()) {
                return Err(Error::config(&format!("params.{n}"), v, "must be > 0"));
            }
        }
        if !(0.0..1.0).contains(&p.leak) {
            return Err(Error::config("params.leak", p.leak, "must be in [0, 1)"));
        }
        for (n, v) in [("gp_weight", p.gp_weight), ("kl_weight", p.kl_weight)] {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(Error::config(&format!("params.{n}"), v, "must be >= 0"));
            }
        }
        if !(0.0..1.0).contains(&p.dropout) {
            return Err(Error::config("params.dropout", p.dropout, "must be in [0, 1)"));
        }
        if !(0.0..0.9).contains(&p.test_fraction) {
            return Err(Error::config("params.test_fraction", p.test_fraction, "must be in [0, 0.9)"));
        }
        Ok(p)
    }
}

/// Linear → LeakyReLU → BatchNorm (or dropout).
struct Block {
    lin: nn::Linear,
    bn: Option<nn::BatchNorm>,
}

pub struct Net {
    vs: nn::VarStore,
    enc: Vec<Block>,
    z: nn::Linear,
    lib_h: nn::Linear,
    lib_mean: nn::Linear,
    lib_logvar: nn::Linear,
    dec: Vec<Block>,
    mu: nn::Linear,
    pi: nn::Linear,
    r: Tensor,
    gen: Vec<nn::Linear>,
    critic: Vec<nn::Linear>,
    /// max log2(1+C) of the training counts (scaled_log input), saved with the model.
    input_max: Tensor,
    leak: f64,
    dropout: f64,
    target: ZinbTarget,
}

fn mlp(p: nn::Path, widths: &[i64], rng: &mut rand_chacha::ChaCha8Rng) -> Vec<nn::Linear> {
    widths.windows(2).enumerate().map(|(i, w)| layers::linear(&p / i, w[0], w[1], rng)).collect()
}

impl Net {
    fn new(p: &ScraeParams, g: i64, device: tch::Device, seed: u64) -> Net {
        let vs = nn::VarStore::new(device);
        let rng = &mut crate::seed::rng_for(seed, crate::seed::INIT_STREAM);
        let root = vs.root();
        let nz = p.latent_dim as i64;
        let hidden: Vec<i64> = p.hidden_dims.iter().map(|&w| w as i64).collect();
        let blocks = |path: nn::Path, widths: &[i64], rng: &mut rand_chacha::ChaCha8Rng| -> Vec<Block> {
            widths
                .windows(2)
                .enumerate()
                .map(|(i, w)| Block {
                    lin: layers::linear(&path / i / "linear", w[0], w[1], rng),
                    bn: p.batch_norm.then(|| layers::batch_norm1d_with(&path / i / "bn", w[1], 0.01, 1e-3)),
                })
                .collect()
        };
        let enc_w: Vec<i64> = std::iter::once(g).chain(hidden.iter().copied()).collect();
        let enc = blocks(&root / "encoder", &enc_w, rng);
        let h = *hidden.last().unwrap();
        let z = layers::linear(&root / "z", h, nz, rng);
        let lib_h = layers::linear(&root / "library" / "hidden", h, nz, rng);
        let lib_mean = layers::linear(&root / "library" / "mean", nz, 1, rng);
        let lib_logvar = layers::linear(&root / "library" / "logvar", nz, 1, rng);
        let dec_w: Vec<i64> = std::iter::once(nz).chain(hidden.iter().rev().copied()).collect();
        let dec = blocks(&root / "decoder", &dec_w, rng);
        let hd = hidden[0];
        let mu = layers::linear(&root / "decoder" / "mu", hd, g, rng);
        let pi = layers::linear(&root / "decoder" / "pi", hd, g, rng);
        let r = (&root / "decoder").var("r", &[g], nn::Init::Const(0.0));
        tch::no_grad(|| r.shallow_clone().copy_(&random::normal(rng, &[g], device)));
        let gen_w: Vec<i64> = std::iter::once(nz).chain(hidden.iter().map(|_| p.gen_width as i64)).chain([nz]).collect();
        let gen = mlp(&root / "generator", &gen_w, rng);
        let critic_w: Vec<i64> = std::iter::once(nz).chain(hidden.iter().map(|_| p.critic_width as i64)).chain([1]).collect();
        let critic = mlp(&root / "critic", &critic_w, rng);
        let input_max = root.zeros_no_train("input_max", &[1]);
        Net {
            vs,
            enc,
            z,
            lib_h,
            lib_mean,
            lib_logvar,
            dec,
            mu,
            pi,
            r,
            gen,
            critic,
            input_max,
            leak: p.leak,
            dropout: p.dropout,
            target: p.zinb_target,
        }
    }

    fn blocks(&self, blocks: &[Block], x: &Tensor, train: Option<&mut rand_chacha::ChaCha8Rng>) -> Tensor {
        let mut rng = train;
        let is_train = rng.is_some();
        blocks.iter().fold(x.shallow_clone(), |h, b| {
            let h = leaky(b.lin.forward(&h), self.leak);
            match (&b.bn, rng.as_deref_mut()) {
                (Some(bn), _) => bn.forward_t(&h, is_train),
                (None, Some(r)) => random::dropout(r, &h, self.dropout),
                (None, None) => h,
            }
        })
    }

    /// (hidden h, z) of the encoder; `train` (the step's RNG) selects training mode.
    fn encode(&self, x: &Tensor, train: Option<&mut rand_chacha::ChaCha8Rng>) -> (Tensor, Tensor) {
        let h = self.blocks(&self.enc, x, train);
        let z = self.z.forward(&h);
        (h, z)
    }

    fn mlp_forward(&self, layers: &[nn::Linear], x: &Tensor) -> Tensor {
        let last = layers.len() - 1;
        layers.iter().enumerate().fold(x.shallow_clone(), |h, (i, l)| {
            let h = l.forward(&h);
            if i < last {
                leaky(h, self.leak)
            } else {
                h
            }
        })
    }

    fn critic(&self, z: &Tensor) -> Tensor {
        self.mlp_forward(&self.critic, z)
    }

    fn generate(&self, n: &Tensor) -> Tensor {
        self.mlp_forward(&self.gen, n)
    }

    /// The network's input for a dense block of the prepared values `x` or counts `c`.
    fn input(&self, x: Tensor, c: impl FnOnce() -> Tensor) -> Tensor {
        match self.target {
            ZinbTarget::Counts => x,
            ZinbTarget::ScaledLog => scaled_log(&c(), &self.input_max),
        }
    }

    /// The likelihood's target for a dense block of counts `c`.
    fn target(&self, c: Tensor) -> Tensor {
        match self.target {
            ZinbTarget::Counts => c,
            ZinbTarget::ScaledLog => scaled_log(&c, &self.input_max),
        }
    }

    /// Per-cell ZINB NLL (summed over genes) and library KL for input `x` and target `t`;
    /// `rng` = training (sampled library size, batch statistics), None = evaluation (ℓ = l_m).
    fn ae_losses(&self, x: &Tensor, t: &Tensor, prior: (f64, f64), mut rng: Option<&mut rand_chacha::ChaCha8Rng>) -> (Tensor, Tensor) {
        let (h, z) = self.encode(x, rng.as_deref_mut());
        let h2 = self.lib_h.forward(&h).relu();
        let l_m = self.lib_mean.forward(&h2);
        let l_logv = self.lib_logvar.forward(&h2);
        let ell = match rng.as_deref_mut() {
            Some(r) => &l_m + (&l_logv * 0.5).exp() * random::normal(r, &l_m.size(), l_m.device()),
            None => l_m.shallow_clone(),
        };
        let hd = self.blocks(&self.dec, &z, rng);
        // log μ = ℓ + log softmax, in double: with μ itself in f32 a gene whose softmax
        // underflows sends ∂NLL/∂μ ≈ −x/μ to infinity and the step to NaN
        let log_mu = ell.to_kind(Kind::Double) + self.mu.forward(&hd).to_kind(Kind::Double).log_softmax(-1, Kind::Double);
        let nll = zinb_nll_log(t, &log_mu, &self.r.exp(), &self.pi.forward(&hd)).sum_dim_intlist([1i64].as_slice(), false, Kind::Double);
        // KL(N(l_m, v) ‖ N(μ_L, σ²_L))
        let (m0, v0) = prior;
        let kl = ((l_logv.exp() + (&l_m - m0).square()) / v0 - l_logv + v0.ln() - 1.0) * 0.5;
        (nll, kl.squeeze_dim(1).to_kind(Kind::Double))
    }
}

/// Leaky ReLU with slope `a` in [0, 1) (tch has only the 0.01 slope).
fn leaky(x: Tensor, a: f64) -> Tensor {
    x.maximum(&(&x * a))
}

/// log2(1 + c) / max, the reference code's input and target.
fn scaled_log(c: &Tensor, max: &Tensor) -> Tensor {
    (c + 1.0).log2() / max
}

/// Mean and variance (ddof 0) of the log library sizes of the rows of a dense target.
fn library_prior(batcher: &Batcher, target: impl Fn(Tensor) -> Tensor) -> (f64, f64) {
    let parts: Vec<Tensor> = tch::no_grad(|| {
        batcher.blocks(4096).map(|rows| target(batcher.dense(&rows)).sum_dim_intlist([1i64].as_slice(), false, Kind::Double)).collect()
    });
    let log_l = Tensor::cat(&parts, 0).clamp_min(1e-8).log();
    let m = log_l.mean(Kind::Double).double_value(&[]);
    let v = log_l.var(false).double_value(&[]);
    (m, v.max(1e-4))
}

#[derive(Default)]
struct Sums {
    critic: (f64, usize),
    gp_norm: (f64, usize),
    w_dist: (f64, usize),
    gen: (f64, usize),
    enc: (f64, usize),
}

fn add(s: &mut (f64, usize), v: f64) {
    s.0 += v;
    s.1 += 1;
}

struct Step<'a> {
    net: &'a Net,
    p: &'a ScraeParams,
    counts: Batcher<'a>,
    test: Option<(Batcher<'a>, Batcher<'a>)>,
    prior: (f64, f64),
    enc_opt: Adam,
    gen_opt: Adam,
    critic_opt: Adam,
    enc_lr: f64,
    iteration: usize,
    sums: Sums,
}

impl TrainStep for Step<'_> {
    fn parameters(&self) -> Vec<(String, Tensor)> {
        layers::named_vars(&self.net.vs)
            .into_iter()
            .filter(|(n, t)| t.requires_grad() && !n.starts_with("generator") && !n.starts_with("critic"))
            .collect()
    }

    fn losses(&mut self, x: &Tensor, rows: &[usize], ctx: &mut StepCtx) -> Result<Vec<(&'static str, Tensor)>> {
        let input = self.net.input(x.shallow_clone(), || self.counts.dense(rows));
        let (nll, kl) = self.net.ae_losses(&input, &self.net.target(self.counts.dense(rows)), self.prior, Some(&mut *ctx.rng));
        let (nll, kl) = (nll.mean(Kind::Double), kl.mean(Kind::Double));
        let loss = (&nll + &kl * self.p.kl_weight).to_kind(Kind::Float);
        Ok(vec![("loss", loss), ("zinb_nll", nll.detach()), ("kl_library", kl.detach())])
    }

    fn after_step(&mut self, x: &Tensor, rows: &[usize], ctx: &mut StepCtx) -> Result<()> {
        let net = self.net;
        let input = net.input(x.shallow_clone(), || self.counts.dense(rows));
        let b = rows.len() as i64;
        let nz = self.p.latent_dim as i64;
        let dev = x.device();
        let it = self.iteration;
        self.iteration += 1;
        if it % self.p.n_critic == 0 {
            // the encoder moves its codes towards what the critic rates as generated
            self.enc_opt.zero_grad();
            let l_enc = net.critic(&net.encode(&input, Some(&mut *ctx.rng)).1).mean(Kind::Float);
            l_enc.backward();
            self.enc_opt.step(self.enc_lr);
            add(&mut self.sums.enc, l_enc.double_value(&[]));
            // the generator moves towards what the critic rates as the encoder's
            self.gen_opt.zero_grad();
            let l_gen = -net.critic(&net.generate(&random::normal(ctx.rng, &[b, nz], dev))).mean(Kind::Float);
            l_gen.backward();
            self.gen_opt.step(self.p.gan_lr);
            add(&mut self.sums.gen, l_gen.double_value(&[]));
        } else {
            self.critic_opt.zero_grad();
            let (z, g) =
                tch::no_grad(|| (net.encode(&input, Some(&mut *ctx.rng)).1, net.generate(&random::normal(ctx.rng, &[b, nz], dev))));
            let w = net.critic(&g).mean(Kind::Float) - net.critic(&z).mean(Kind::Float);
            let alpha = random::uniform(ctx.rng, &[b, 1], 0.0, 1.0, dev);
            let zhat = (&alpha * &z + (alpha.ones_like() - &alpha) * &g).set_requires_grad(true);
            let grad = Tensor::run_backward(&[net.critic(&zhat).sum(Kind::Float)], &[&zhat], true, true).pop().unwrap();
            // ‖∇‖ with a tiny floor inside the root: the norm's gradient is 0/0 at zero
            let norm = (grad.square().sum_dim_intlist([1i64].as_slice(), false, Kind::Float) + 1e-12).sqrt();
            let gp = (&norm - 1.0).square().mean(Kind::Float);
            let l_critic = &w + &gp * self.p.gp_weight;
            l_critic.backward();
            self.critic_opt.step(self.p.gan_lr);
            add(&mut self.sums.critic, l_critic.double_value(&[]));
            add(&mut self.sums.w_dist, -w.double_value(&[]));
            add(&mut self.sums.gp_norm, norm.mean(Kind::Float).double_value(&[]));
        }
        Ok(())
    }

    fn end_epoch(&mut self) -> Vec<(&'static str, f64)> {
        let s = std::mem::take(&mut self.sums);
        let mut out: Vec<(&'static str, f64)> =
            [("critic_loss", s.critic), ("wasserstein", s.w_dist), ("gp_norm", s.gp_norm), ("gen_loss", s.gen), ("enc_adv_loss", s.enc)]
                .into_iter()
                .filter(|(_, (_, n))| *n > 0)
                .map(|(k, (v, n))| (k, v / n as f64))
                .collect();
        if let Some((x, c)) = &self.test {
            let net = self.net;
            let parts: Vec<Tensor> = tch::no_grad(|| {
                x.blocks(1024)
                    .map(|rows| {
                        let cb = c.dense(&rows);
                        let input = net.input(x.dense(&rows), || cb.shallow_clone());
                        net.ae_losses(&input, &net.target(cb), self.prior, None).0
                    })
                    .collect()
            });
            out.push(("test_zinb_nll", Tensor::cat(&parts, 0).mean(Kind::Double).double_value(&[])));
        }
        out
    }
}

fn gan_adam(params: Vec<(String, Tensor)>) -> Adam {
    Adam::new(params, OptimConfig { beta1: 0.0, beta2: 0.9, ..OptimConfig::default() })
}

impl DeepNet for Net {
    type Params = ScraeParams;
    const NAME: &'static str = "scrae";
    const NEEDS_COUNTS: bool = true;

    fn build(p: &ScraeParams, n_genes: i64, device: tch::Device, seed: u64) -> Net {
        Net::new(p, n_genes, device, seed)
    }

    fn vs(&self) -> &nn::VarStore {
        &self.vs
    }

    fn train(&self, p: &ScraeParams, data: &Prepared, ctx: &mut Context) -> Result<Vec<Value>> {
        if ctx.train.checkpoint_every > 0 || ctx.train.resume {
            return Err(Error::config(
                "train.checkpoint_every",
                ctx.train.checkpoint_every,
                "scRAE does not support checkpoints or resume (its critic and generator are trained outside the checkpointed optimiser)",
            ));
        }
        if p.zinb_target == ZinbTarget::Counts && data.counts()?.data.iter().any(|v| v.fract() != 0.0) {
            ctx.progress.message(
                "scrae: the input has non-integer values (RPKM/TPM?); the ZINB likelihood treats them as counts, which it is not meant for",
            );
        }
        let n = data.n_cells();
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut crate::seed::rng_for(ctx.seed, crate::seed::INIT_STREAM - 2));
        let n_test = (n as f64 * p.test_fraction).round() as usize;
        let (test_rows, train_rows) = order.split_at(n_test);
        let (mut train_rows, mut test_rows) = (train_rows.to_vec(), test_rows.to_vec());
        train_rows.sort_unstable();
        test_rows.sort_unstable();
        if train_rows.len() < 2 {
            return Err(Error::data(format!("scrae: {n} cells leave {} for training; lower params.test_fraction", train_rows.len())));
        }
        let (x_tr, c_tr) = (data.x.select_rows(&train_rows), data.counts()?.select_rows(&train_rows));
        let (x_te, c_te) = (data.x.select_rows(&test_rows), data.counts()?.select_rows(&test_rows));
        let scaler = data.scaler.as_ref();
        let dev = ctx.device;
        let counts = Batcher::with_scaler(&c_tr, None, dev);
        if p.zinb_target == ZinbTarget::ScaledLog {
            let max = c_tr.data.iter().fold(0f32, |m, &v| m.max(v));
            let max = ((max as f64) + 1.0).log2().max(1e-6);
            tch::no_grad(|| {
                let _ = self.input_max.shallow_clone().fill_(max);
            });
        }
        let prior = library_prior(&counts, |c| self.target(c));
        let vars = layers::named_vars(&self.vs);
        let pick = |prefixes: &[&str]| {
            vars.iter()
                .filter(|(n, _)| prefixes.iter().any(|p| n.starts_with(p)))
                .map(|(n, t)| (n.clone(), t.shallow_clone()))
                .collect::<Vec<_>>()
        };
        let enc_params: Vec<(String, Tensor)> = pick(&["encoder.", "z."]).into_iter().filter(|(_, t)| t.requires_grad()).collect();
        let mut step = Step {
            net: self,
            p,
            counts,
            test: (!test_rows.is_empty()).then(|| (Batcher::with_scaler(&x_te, scaler, dev), Batcher::with_scaler(&c_te, None, dev))),
            prior,
            enc_opt: gan_adam(enc_params),
            gen_opt: gan_adam(pick(&["generator."])),
            critic_opt: gan_adam(pick(&["critic."])),
            enc_lr: ctx.train.optimizer.lr * p.enc_adv_lr_factor,
            iteration: 0,
            sums: Sums::default(),
        };
        let batcher = Batcher::with_scaler(&x_tr, scaler, dev);
        ctx.fit(&mut step, &batcher)
    }

    fn embed(&self, x: &Tensor) -> Tensor {
        self.encode(x, None).1
    }

    fn embed_data(&self, data: &Prepared, ctx: &Context) -> Result<Tensor> {
        Ok(match self.target {
            ZinbTarget::Counts => ctx.embed_blocks(data, |x| self.embed(x)),
            ZinbTarget::ScaledLog => {
                ctx.embed_batcher(&Batcher::with_scaler(data.counts()?, None, ctx.device), |c| self.embed(&scaled_log(c, &self.input_max)))
            }
        })
    }
}
