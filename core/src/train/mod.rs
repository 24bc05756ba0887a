//! The trainer every deep method uses: seeded epochs of shuffled mini-batches drawn from
//! the sparse matrix, Adam/AdamW with an optional learning-rate schedule, a history of
//! every loss term per epoch, a stop with an error on NaN/inf losses, optional early
//! stopping on a loss plateau, checkpoints every N epochs and exact resume, and progress
//! reports (epoch, step, losses, ETA) through the `Progress` callback.
//!
//! Randomness is derived from (seed, epoch): the batch order and every random tensor of
//! an epoch come from a ChaCha stream seeded for that epoch (`random`), never from
//! libtorch's process-global generator, so a run resumed from a checkpoint draws exactly
//! what the uninterrupted run drew and concurrent runs do not disturb each other.

pub mod adam;
pub mod batch;
pub mod checkpoint;
pub mod random;

pub use adam::Adam;
pub use batch::Batcher;

use crate::error::{Error, Result};
use crate::progress::{Progress, TrainReport};
use crate::seed::rng_for;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::time::Instant;
use tch::Tensor;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimKind {
    Adam,
    Adamw,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimConfig {
    pub kind: OptimKind,
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// L2 penalty (Adam) or decoupled decay (AdamW).
    pub weight_decay: f64,
}

impl Default for OptimConfig {
    fn default() -> Self {
        OptimConfig { kind: OptimKind::Adam, lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// Constant learning rate.
    None,
    /// Cosine decay from `lr` to `min_lr` over the epochs (after warm-up).
    Cosine,
    /// Multiply by `gamma` every `step_epochs` epochs.
    Step,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EarlyStopping {
    /// Stop when the monitored term has not improved for this many epochs.
    pub patience: usize,
    /// Relative improvement that counts (0.001 = 0.1 %).
    pub min_delta: f64,
    /// The history term to watch: "loss" (the total), or any term the method logs, e.g.
    /// scRAE's held-out "test_zinb_nll".
    pub monitor: String,
}

impl Default for EarlyStopping {
    fn default() -> Self {
        EarlyStopping { patience: 10, min_delta: 1e-3, monitor: "loss".into() }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    /// Drop the last partial batch of each epoch (PyTorch's drop_last).
    pub drop_last: bool,
    pub optimizer: OptimConfig,
    pub schedule: Schedule,
    pub min_lr: f64,
    /// Length of the cosine/step schedule in epochs (default: `epochs`); contrastive-sc's
    /// code fixes a 500-epoch cosine while training 30.
    pub schedule_epochs: Option<usize>,
    pub warmup_epochs: usize,
    pub step_epochs: usize,
    pub gamma: f64,
    /// None = train all epochs.
    pub early_stopping: Option<EarlyStopping>,
    /// Write a checkpoint every N epochs (0 = never).
    pub checkpoint_every: usize,
    /// Folder for checkpoints (the CLI defaults it to `<out>/checkpoint`).
    pub checkpoint_dir: Option<String>,
    /// Continue from the checkpoint in `checkpoint_dir` when there is one.
    pub resume: bool,
    /// Rows per block when embedding after training.
    pub embed_batch_size: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 100,
            batch_size: 256,
            drop_last: true,
            optimizer: OptimConfig::default(),
            schedule: Schedule::None,
            min_lr: 0.0,
            schedule_epochs: None,
            warmup_epochs: 0,
            step_epochs: 30,
            gamma: 0.1,
            early_stopping: None,
            checkpoint_every: 0,
            checkpoint_dir: None,
            resume: false,
            embed_batch_size: 1280,
        }
    }
}

/// More epochs than any published recipe by far (the papers train 81-1,600).
pub const MAX_EPOCHS: usize = 100_000;

impl TrainConfig {
    pub fn validate(&self) -> Result<()> {
        let f = |n: &str| format!("train.{n}");
        if self.epochs == 0 || self.epochs > MAX_EPOCHS {
            return Err(Error::config(&f("epochs"), self.epochs, format!("must be in [1, {MAX_EPOCHS}]")));
        }
        if self.batch_size < 2 {
            return Err(Error::config(&f("batch_size"), self.batch_size, "must be >= 2"));
        }
        if self.embed_batch_size == 0 {
            return Err(Error::config(&f("embed_batch_size"), 0, "must be >= 1"));
        }
        let o = &self.optimizer;
        if !(o.lr > 0.0 && o.lr.is_finite()) {
            return Err(Error::config(&f("optimizer.lr"), o.lr, "must be > 0"));
        }
        for (n, b) in [("optimizer.beta1", o.beta1), ("optimizer.beta2", o.beta2)] {
            if !(0.0..1.0).contains(&b) {
                return Err(Error::config(&f(n), b, "must be in [0, 1)"));
            }
        }
        if !(o.eps > 0.0) {
            return Err(Error::config(&f("optimizer.eps"), o.eps, "must be > 0"));
        }
        if !(o.weight_decay >= 0.0 && o.weight_decay.is_finite()) {
            return Err(Error::config(&f("optimizer.weight_decay"), o.weight_decay, "must be >= 0"));
        }
        if !(self.min_lr >= 0.0 && self.min_lr <= o.lr) {
            return Err(Error::config(&f("min_lr"), self.min_lr, "must be in [0, optimizer.lr]"));
        }
        if self.schedule_epochs == Some(0) {
            return Err(Error::config(&f("schedule_epochs"), 0, "must be >= 1 (or null for the number of epochs)"));
        }
        if self.schedule == Schedule::Step && (self.step_epochs == 0 || !(self.gamma > 0.0 && self.gamma <= 1.0)) {
            return Err(Error::config(&f("gamma"), self.gamma, "the step schedule needs step_epochs >= 1 and gamma in (0, 1]"));
        }
        if let Some(es) = &self.early_stopping {
            if es.patience == 0 {
                return Err(Error::config(&f("early_stopping.patience"), 0, "must be >= 1"));
            }
            if !(es.min_delta >= 0.0) {
                return Err(Error::config(&f("early_stopping.min_delta"), es.min_delta, "must be >= 0"));
            }
        }
        if (self.checkpoint_every > 0 || self.resume) && self.checkpoint_dir.is_none() {
            return Err(Error::config(&f("checkpoint_dir"), "null", "checkpoints and resume need a folder"));
        }
        Ok(())
    }

    /// Learning rate of epoch `e` (0-based).
    pub fn lr_at(&self, e: usize) -> f64 {
        let lr = self.optimizer.lr;
        if e < self.warmup_epochs {
            return lr * (e + 1) as f64 / self.warmup_epochs as f64;
        }
        let e2 = e - self.warmup_epochs;
        let span = self.schedule_epochs.unwrap_or(self.epochs).saturating_sub(self.warmup_epochs).max(1);
        match self.schedule {
            Schedule::None => lr,
            Schedule::Cosine => self.min_lr + (lr - self.min_lr) * 0.5 * (1.0 + (std::f64::consts::PI * e2 as f64 / span as f64).cos()),
            Schedule::Step => (lr * self.gamma.powi((e2 / self.step_epochs) as i32)).max(self.min_lr),
        }
    }
}

/// What the trainer needs from a model.
pub trait TrainStep {
    /// Trainable parameters with stable names.
    fn parameters(&self) -> Vec<(String, Tensor)>;
    /// Called before each epoch (0-based), e.g. to refresh cluster centroids.
    fn start_epoch(&mut self, _epoch: usize, _batcher: &Batcher) -> Result<()> {
        Ok(())
    }
    /// Loss terms of one mini-batch `x` (dense, scaled, on the device). The first term
    /// is minimised; the others are only logged (averaged over the epoch's batches).
    fn losses(&mut self, x: &Tensor, rows: &[usize], ctx: &mut StepCtx) -> Result<Vec<(&'static str, Tensor)>>;
    /// Called after the optimiser step of each batch: updates with optimisers of the
    /// model's own (scRAE's critic, generator and adversarial encoder steps).
    fn after_step(&mut self, _x: &Tensor, _rows: &[usize], _ctx: &mut StepCtx) -> Result<()> {
        Ok(())
    }
    /// Extra per-epoch history entries, e.g. means of the terms `after_step` computed
    /// (checked for NaN/inf like the loss terms).
    fn end_epoch(&mut self) -> Vec<(&'static str, f64)> {
        Vec::new()
    }
    /// Parameter groups with their own learning rate and weight decay (none: the
    /// optimiser's settings apply to every parameter).
    fn param_groups(&self) -> Vec<ParamGroup> {
        Vec::new()
    }
}

/// Learning rate and weight decay of the parameters whose names start with `prefix`
/// (CICL's reference code trains its encoder and its projection head at different rates).
#[derive(Debug, Clone, PartialEq)]
pub struct ParamGroup {
    pub prefix: String,
    /// Multiplies the scheduled learning rate.
    pub lr_scale: f64,
    pub weight_decay: f64,
}

pub struct StepCtx<'b, 'a> {
    pub batcher: &'b Batcher<'a>,
    pub rng: &'b mut ChaCha8Rng,
    pub epoch: usize,
}

/// One epoch of the history: `{"epoch", "lr", "seconds", <term>: mean over batches}`.
pub type History = Vec<Value>;

/// Copy named tensors into parameters (weights from a model file or a checkpoint).
pub fn copy_named(params: &[(String, Tensor)], src: &HashMap<String, Tensor>, what: &str) -> Result<()> {
    for (name, p) in params {
        let t = src.get(name).ok_or_else(|| Error::Data(format!("{what}: missing tensor `{name}`")))?;
        if t.size() != p.size() {
            return Err(Error::Data(format!("{what}: tensor `{name}` has shape {:?}, the model needs {:?}", t.size(), p.size())));
        }
        let mut p = p.shallow_clone();
        tch::no_grad(|| p.copy_(t));
    }
    Ok(())
}

/// Train `model` on the rows of `batcher` and return the per-epoch history.
/// `fingerprint` identifies the run for checkpoints (config + data shape).
pub fn fit(
    model: &mut dyn TrainStep,
    batcher: &Batcher,
    cfg: &TrainConfig,
    seed: u64,
    fingerprint: &Value,
    progress: &mut dyn Progress,
) -> Result<History> {
    cfg.validate()?;
    let n = batcher.n_rows();
    if n < 2 {
        return Err(Error::data(format!("training needs at least 2 cells, got {n}")));
    }
    let bs = cfg.batch_size.min(n);
    if bs < cfg.batch_size {
        progress.message(&format!("only {n} cells: batch size {} lowered to {n}", cfg.batch_size));
    }
    let n_batches = if cfg.drop_last { n / bs } else { n.div_ceil(bs) };
    let mut opt = Adam::new(model.parameters(), cfg.optimizer.clone()).with_groups(&model.param_groups());
    let mut history: History = Vec::new();
    let mut start = 0;
    let ckpt = cfg.checkpoint_dir.as_ref().map(|d| checkpoint::Checkpoint::new(d, fingerprint));
    if cfg.resume {
        let c = ckpt.as_ref().expect("validated");
        match c.load(&model.parameters(), &mut opt)? {
            Some((epochs_done, h)) => {
                progress.message(&format!("resuming after epoch {epochs_done} from {}", c.dir.display()));
                start = epochs_done;
                history = h;
            }
            None => progress.message(&format!("no checkpoint in {}; training from the start", c.dir.display())),
        }
    }
    // Early-stopping state, replayed from a resumed history.
    let (mut best, mut since_best) = (f64::INFINITY, 0usize);
    let improved = |total: f64, best: f64| cfg.early_stopping.as_ref().is_some_and(|es| total < best - es.min_delta * best.abs());
    let monitor = cfg.early_stopping.as_ref().map_or("loss", |es| es.monitor.as_str());
    for h in &history {
        let total = h[monitor].as_f64().unwrap_or(f64::INFINITY);
        if improved(total, best) || best.is_infinite() {
            (best, since_best) = (total, 0);
        } else {
            since_best += 1;
        }
    }
    let t0 = Instant::now();
    for epoch in start..cfg.epochs {
        let te = Instant::now();
        let lr = cfg.lr_at(epoch);
        let mut rng = rng_for(seed, epoch as u64);
        model.start_epoch(epoch, batcher)?;
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut rng);
        let mut names: Vec<&'static str> = Vec::new();
        let mut sums: Vec<Tensor> = Vec::new();
        for (b, rows) in order.chunks(bs).take(n_batches).enumerate() {
            let x = batcher.try_dense(rows)?;
            let terms = model.losses(&x, rows, &mut StepCtx { batcher, rng: &mut rng, epoch })?;
            if terms.is_empty() {
                return Err(Error::Numeric("the model returned no loss term".into()));
            }
            opt.zero_grad();
            terms[0].1.backward();
            opt.step(lr);
            model.after_step(&x, rows, &mut StepCtx { batcher, rng: &mut rng, epoch })?;
            if sums.is_empty() {
                names = terms.iter().map(|t| t.0).collect();
                sums = terms.iter().map(|t| t.1.detach().to_kind(tch::Kind::Double)).collect();
            } else {
                for (s, t) in sums.iter_mut().zip(&terms) {
                    *s += t.1.detach().to_kind(tch::Kind::Double);
                }
            }
            progress.train(&TrainReport {
                epoch: epoch + 1,
                epochs: cfg.epochs,
                step: b + 1,
                steps: n_batches,
                losses: None,
                lr,
                eta_s: None,
            });
            if !progress.should_continue() {
                return Err(Error::Cancelled);
            }
        }
        let mut rec = Map::new();
        rec.insert("epoch".into(), (epoch + 1).into());
        rec.insert("lr".into(), lr.into());
        let mut losses = Vec::with_capacity(names.len());
        let means = names.iter().zip(&sums).map(|(name, s)| (*name, s.double_value(&[]) / n_batches as f64));
        for (name, v) in means.chain(model.end_epoch()) {
            if !v.is_finite() {
                return Err(Error::Numeric(format!(
                    "loss term `{name}` became {v} in epoch {}; lower train.optimizer.lr or check the input values",
                    epoch + 1
                )));
            }
            rec.insert(name.to_string(), v.into());
            losses.push((name.to_string(), v));
        }
        rec.insert("seconds".into(), te.elapsed().as_secs_f64().into());
        history.push(Value::Object(rec));
        let done = epoch + 1 - start;
        let eta = t0.elapsed().as_secs_f64() / done as f64 * (cfg.epochs - epoch - 1) as f64;
        progress.train(&TrainReport {
            epoch: epoch + 1,
            epochs: cfg.epochs,
            step: n_batches,
            steps: n_batches,
            losses: Some(&losses),
            lr,
            eta_s: Some(eta),
        });
        if let Some(c) = &ckpt {
            if cfg.checkpoint_every > 0 && (epoch + 1) % cfg.checkpoint_every == 0 && epoch + 1 < cfg.epochs {
                c.save(epoch + 1, &history, &model.parameters(), &opt)?;
            }
        }
        if let Some(es) = &cfg.early_stopping {
            let total = losses.iter().find(|(n, _)| n == monitor).map(|t| t.1).ok_or_else(|| {
                let names: Vec<&str> = losses.iter().map(|t| t.0.as_str()).collect();
                Error::config("train.early_stopping.monitor", monitor, format!("not a term this method logs; it logs {}", names.join(", ")))
            })?;
            if improved(total, best) || best.is_infinite() {
                (best, since_best) = (total, 0);
            } else {
                since_best += 1;
                if since_best >= es.patience {
                    progress.message(&format!(
                        "early stop after epoch {}: no improvement of {monitor} for {} epochs",
                        epoch + 1,
                        es.patience
                    ));
                    break;
                }
            }
        }
    }
    Ok(history)
}
