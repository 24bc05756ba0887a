//! MaskClass, specs §5: a masked denoising autoencoder on robustly scaled log2 values
//! that masks zeros by their probability of being dropouts, with biozero probabilities
//! p_bio from a ZINB-style model; its product is an imputed matrix (observed non-zeros
//! kept bit for bit), its bottleneck the embedding.
//!
//! p_bio (`Biozero`, from C′ = 2^X_log − 1 as the reference code does): size factors
//! ℓ_i = L_i / median(L); μ_j = mean_i C′_ij/ℓ_i; φ_j by moments on the gene's non-zero
//! C′/ℓ values, (var − mean)/mean² floored at 0 and shrunk towards the median positive φ
//! with weight 1/(1 + n_nz/20); one logistic curve P(zero) = 1/(1 + e^{−k(ln μ_j − x0)})
//! (k ≤ 0) fitted over the genes' zero fractions by Levenberg–Marquardt from k = −1 and
//! x0 = the median ln μ of genes with zero rate in (0.2, 0.8). Per entry, μ_ij = μ_j ℓ_i,
//! p_tot = that curve at ln μ_ij, f0 = (1 + μφ)^{−1/φ} capped at p_tot + 1e-6,
//! δ = (p_tot − f0)/(1 − f0) in [0, 1), p_bio = (1−δ)f0 / (δ + (1−δ)f0) on zeros and 0 on
//! non-zeros, times (1 − 0.3·z̃_i), z̃_i the cell's zero fraction rescaled by its
//! 5th–95th percentile over cells, clipped to [0, 1].
//!
//! Training (per batch): masks m ~ Bernoulli(0.01·p_bio) on zeros and Bernoulli(0.30) on
//! non-zeros; masked non-zeros become 0 in the scaled space, masked zeros
//! scale(log2(1 + η·c_j^max)) with η ~ U(0, 0.2) and c_j^max the gene's largest C′.
//! L_mask = (2·Σ_zeros m r² + Σ_nonzeros m r²) / (2·Σ_zeros m + Σ_nonzeros m), r = ŝ − s;
//! L_bio = Σ_zeros p_bio (ŝ − scale(0))² / Σ_zeros p_bio; L = L_mask + γ L_bio with
//! γ = 1 ("balanced", default) or 0 ("best").
//!
//! Network: G → 64 → 32 and 32 → 64, each Linear → LayerNorm → SiLU, then Linear 64 → G.
//! Output: invscale(network(s)) of the clean input, negative values set to 0 (log2(1+x)
//! cannot be negative), observed non-zeros put back unchanged.

use super::deep::DeepNet;
use super::layers;
use super::MethodInfo;
use super::{Context, Imputed};
use crate::cluster::{Algorithm, ClusterConfig};
use crate::error::{Error, Result};
use crate::matrix::Csr;
use crate::preprocess::hvg::percentile;
use crate::preprocess::Recipe;
use crate::preprocess::{Prepared, RobustScaler};
use crate::train::TrainConfig;
use crate::train::{random, Batcher, StepCtx, TrainStep};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

/// This method's entry in the registry (`models::METHODS`): its defaults live here.
pub const INFO: MethodInfo = MethodInfo {
    name: "maskclass",
    description: "MaskClass: masked denoising autoencoder with biozero probabilities; imputes the matrix",
    reference: "anonymous ICML submission; specs §5",
    params: || super::params_json(&MaskclassParams::default()),
    recipe: Recipe::Maskclass,
    n_top_genes: 1000,
    train: train_defaults,
    // specs §5 evaluates PCA of the imputed matrix + K-means; the bottleneck here
    cluster: || ClusterConfig { algorithm: Algorithm::Kmeans, ..ClusterConfig::default() },
    build: |v| Ok(Box::new(super::deep::Deep::<Net>::new(MaskclassParams::from_json(v)?))),
};

/// Default training options.
fn train_defaults() -> TrainConfig {
    // specs §5: Adam lr 1e-4, no weight decay, batch 32, 300 epochs (transductive).
    TrainConfig {
        epochs: 300,
        batch_size: 32,
        drop_last: false,
        optimizer: crate::train::OptimConfig { lr: 1e-4, ..Default::default() },
        ..TrainConfig::default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Variant {
    /// γ = 1: the biozero regulariser on (MaskClass_balanced).
    Balanced,
    /// γ = 0: masked reconstruction only (MaskClass_best).
    Best,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MaskclassParams {
    pub variant: Variant,
    pub hidden_dim: usize,
    pub latent_dim: usize,
    /// Masking probability of a zero is zero_mask_scale · p_bio.
    pub zero_mask_scale: f64,
    pub nonzero_mask_rate: f64,
    /// Masked zeros become scale(log2(1 + η c_max)), η ~ U(0, noise_max).
    pub noise_max: f64,
    /// Loss weight of masked zeros relative to masked non-zeros.
    pub zero_weight: f64,
    /// α of the cell-sparsity adjustment of p_bio.
    pub cell_alpha: f64,
    /// Percentiles of the per-gene winsorisation.
    pub winsor_lo: f64,
    pub winsor_hi: f64,
}

impl Default for MaskclassParams {
    fn default() -> Self {
        MaskclassParams {
            variant: Variant::Balanced,
            hidden_dim: 64,
            latent_dim: 32,
            zero_mask_scale: 0.01,
            nonzero_mask_rate: 0.30,
            noise_max: 0.2,
            zero_weight: 2.0,
            cell_alpha: 0.3,
            winsor_lo: 2.0,
            winsor_hi: 99.5,
        }
    }
}

impl MaskclassParams {
    pub fn from_json(v: &Value) -> Result<MaskclassParams> {
        let p: MaskclassParams = crate::error::from_json_at("params", v.clone())?;
        for (n, v) in [("hidden_dim", p.hidden_dim), ("latent_dim", p.latent_dim)] {
            if v == 0 {
                return Err(Error::config(&format!("params.{n}"), 0, "must be >= 1"));
            }
        }
        for (n, v) in [("zero_mask_scale", p.zero_mask_scale), ("nonzero_mask_rate", p.nonzero_mask_rate), ("cell_alpha", p.cell_alpha)] {
            if !(0.0..=1.0).contains(&v) {
                return Err(Error::config(&format!("params.{n}"), v, "must be in [0, 1]"));
            }
        }
        for (n, v) in [("noise_max", p.noise_max), ("zero_weight", p.zero_weight)] {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(Error::config(&format!("params.{n}"), v, "must be >= 0"));
            }
        }
        if !(0.0 <= p.winsor_lo && p.winsor_lo < p.winsor_hi && p.winsor_hi <= 100.0) {
            return Err(Error::config(
                "params.winsor_lo",
                format!("{} / winsor_hi {}", p.winsor_lo, p.winsor_hi),
                "needs 0 <= winsor_lo < winsor_hi <= 100",
            ));
        }
        Ok(p)
    }

    fn gamma(&self) -> f64 {
        match self.variant {
            Variant::Balanced => 1.0,
            Variant::Best => 0.0,
        }
    }
}

/// The per-gene and per-cell quantities p_bio is computed from.
#[derive(Debug, Clone)]
pub struct Biozero {
    pub mu: Vec<f64>,
    pub phi: Vec<f64>,
    /// Logistic curve of P(zero) against ln μ.
    pub k: f64,
    pub x0: f64,
    /// Size factors ℓ_i.
    pub ell: Vec<f64>,
    /// Rescaled cell zero fractions z̃_i.
    pub sparsity: Vec<f64>,
    /// c_j^max: the largest C′ of each gene.
    pub cmax: Vec<f64>,
}

/// Least-squares fit of y ≈ 1/(1 + e^{−k(x − x0)}) with k ≤ 0 (Levenberg–Marquardt).
pub fn fit_logistic(x: &[f64], y: &[f64], k0: f64, x00: f64) -> (f64, f64) {
    let sig = |k: f64, x0: f64, xi: f64| 1.0 / (1.0 + (-k * (xi - x0)).exp());
    let loss = |k: f64, x0: f64| x.iter().zip(y).map(|(&xi, &yi)| (sig(k, x0, xi) - yi).powi(2)).sum::<f64>();
    let (mut k, mut x0, mut lam) = (k0.min(0.0), x00, 1e-3);
    let mut cur = loss(k, x0);
    for _ in 0..200 {
        let (mut a11, mut a12, mut a22, mut g1, mut g2) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (&xi, &yi) in x.iter().zip(y) {
            let s = sig(k, x0, xi);
            let d = s * (1.0 - s);
            let (jk, jx) = (d * (xi - x0), -d * k);
            let r = s - yi;
            a11 += jk * jk;
            a12 += jk * jx;
            a22 += jx * jx;
            g1 += jk * r;
            g2 += jx * r;
        }
        let mut improved = false;
        for _ in 0..20 {
            let (b11, b22) = (a11 * (1.0 + lam) + 1e-12, a22 * (1.0 + lam) + 1e-12);
            let det = b11 * b22 - a12 * a12;
            if det.abs() < 1e-300 {
                lam *= 10.0;
                continue;
            }
            let dk = -(b22 * g1 - a12 * g2) / det;
            let dx = -(-a12 * g1 + b11 * g2) / det;
            let (nk, nx) = ((k + dk).min(0.0), x0 + dx);
            let l = loss(nk, nx);
            if l < cur {
                (k, x0, cur) = (nk, nx, l);
                lam = (lam / 10.0).max(1e-12);
                improved = true;
                break;
            }
            lam *= 10.0;
        }
        if !improved {
            break;
        }
    }
    (k, x0)
}

impl Biozero {
    /// From the log2(1 + x) values (cells x genes).
    pub fn fit(x_log: &Csr) -> Result<Biozero> {
        let (n, g) = (x_log.n_rows, x_log.n_cols);
        let mut lib = vec![0f64; n];
        for (i, l) in lib.iter_mut().enumerate() {
            let (_, v) = x_log.row(i);
            *l = v.iter().map(|&v| (v as f64).exp2() - 1.0).sum();
        }
        let mut sorted = lib.clone();
        sorted.sort_by(|a, b| a.total_cmp(b));
        let med = percentile(&sorted, 50.0);
        if med <= 0.0 || med.is_nan() {
            return Err(Error::data(format!(
                "MaskClass: the median library size over the {g} selected genes is 0; select more genes or filter empty cells"
            )));
        }
        let ell: Vec<f64> = lib.iter().map(|l| l / med).collect();
        // per gene: the non-zero C′/ℓ values
        let csc = x_log.transpose();
        let (mut mu, mut phi, mut nnz, mut cmax) = (vec![0f64; g], vec![f64::NAN; g], vec![0usize; g], vec![0f64; g]);
        for j in 0..g {
            let (idx, val) = csc.row(j);
            let ys: Vec<f64> = idx.iter().zip(val).map(|(&i, &v)| ((v as f64).exp2() - 1.0) / ell[i as usize]).collect();
            cmax[j] = val.iter().map(|&v| (v as f64).exp2() - 1.0).fold(0.0, f64::max);
            nnz[j] = ys.len();
            mu[j] = ys.iter().sum::<f64>() / n as f64;
            if ys.len() >= 2 {
                let m = ys.iter().sum::<f64>() / ys.len() as f64;
                let v = ys.iter().map(|y| (y - m) * (y - m)).sum::<f64>() / ys.len() as f64;
                phi[j] = ((v - m) / (m * m)).max(0.0);
            }
        }
        let mut pos: Vec<f64> = phi.iter().cloned().filter(|p| *p > 0.0).collect();
        pos.sort_by(|a, b| a.total_cmp(b));
        let med_phi = if pos.is_empty() { 0.0 } else { percentile(&pos, 50.0) };
        for j in 0..g {
            let w = 1.0 / (1.0 + nnz[j] as f64 / 20.0);
            phi[j] = if phi[j].is_nan() { med_phi } else { (1.0 - w) * phi[j] + w * med_phi };
        }
        // the zero-rate curve over genes with μ > 0
        let genes: Vec<usize> = (0..g).filter(|&j| mu[j] > 0.0).collect();
        let xs: Vec<f64> = genes.iter().map(|&j| mu[j].ln()).collect();
        let ys: Vec<f64> = genes.iter().map(|&j| 1.0 - nnz[j] as f64 / n as f64).collect();
        let mut mid: Vec<f64> = xs.iter().zip(&ys).filter(|(_, &y)| y > 0.2 && y < 0.8).map(|(&x, _)| x).collect();
        if mid.is_empty() {
            mid = xs.clone();
        }
        mid.sort_by(|a, b| a.total_cmp(b));
        let x00 = if mid.is_empty() { 0.0 } else { percentile(&mid, 50.0) };
        let (k, x0) = fit_logistic(&xs, &ys, -1.0, x00);
        // cell sparsity, rescaled by its 5th-95th percentile
        let zf: Vec<f64> = (0..n).map(|i| 1.0 - x_log.row(i).0.len() as f64 / g as f64).collect();
        let mut s = zf.clone();
        s.sort_by(|a, b| a.total_cmp(b));
        let (q5, q95) = (percentile(&s, 5.0), percentile(&s, 95.0));
        let sparsity = zf.iter().map(|z| if q95 > q5 { ((z - q5) / (q95 - q5)).clamp(0.0, 1.0) } else { 0.0 }).collect();
        Ok(Biozero { mu, phi, k, x0, ell, sparsity, cmax })
    }
}

/// `Biozero` on the device, ready to give p_bio for mini-batches.
pub struct BiozeroTensors {
    /// μ_j, φ_j (1 x G).
    mu: Tensor,
    phi: Tensor,
    /// ℓ_i and z̃_i (cells x 1).
    ell: Tensor,
    sparsity: Tensor,
    k: f64,
    x0: f64,
    alpha: f64,
}

impl Biozero {
    /// The tensors for p_bio with cell adjustment weight `alpha`.
    pub fn tensors(&self, alpha: f64, device: tch::Device) -> BiozeroTensors {
        let t = |v: &[f64], shape: [i64; 2]| Tensor::from_slice(v).view(shape).to_kind(Kind::Float).to_device(device);
        BiozeroTensors {
            mu: t(&self.mu, [1, -1]),
            phi: t(&self.phi, [1, -1]),
            ell: t(&self.ell, [-1, 1]),
            sparsity: t(&self.sparsity, [-1, 1]),
            k: self.k,
            x0: self.x0,
            alpha,
        }
    }
}

impl BiozeroTensors {
    /// p_bio of the dense block `x` (log values; zeros are the candidates) of cells `rows`.
    pub fn p_bio(&self, x: &Tensor, rows: &[usize]) -> Tensor {
        let idx = Tensor::from_slice(&rows.iter().map(|&r| r as i64).collect::<Vec<_>>()).to_device(x.device());
        let (ell, sparsity) = (self.ell.index_select(0, &idx), self.sparsity.index_select(0, &idx));
        let m = (&self.mu * ell).to_kind(Kind::Double);
        let p_tot = ((m.clamp_min(1e-300).log() - self.x0) * self.k).sigmoid();
        let ph = self.phi.to_kind(Kind::Double).clamp_min(1e-12);
        let f0 = (-(&m * &ph).log1p() / &ph).exp();
        let f0 = f0.minimum(&(&p_tot + 1e-6));
        let room = f0.ones_like() - &f0;
        let delta = ((&p_tot - &f0) / room.clamp_min(1e-12)).where_self(&room.gt(1e-12), &f0.zeros_like()).clamp(0.0, 1.0 - 1e-9);
        let keep = delta.ones_like() - &delta;
        let pb = (&keep * &f0) / (&delta + &keep * &f0).clamp_min(1e-300);
        let adj = sparsity.to_kind(Kind::Double) * (-self.alpha) + 1.0;
        let pb = pb * adj;
        pb.where_self(&x.eq(0.0), &pb.zeros_like()).to_kind(Kind::Float)
    }
}

pub struct Net {
    vs: nn::VarStore,
    enc: Vec<layers::LinNormSilu>,
    dec: layers::LinNormSilu,
    out: nn::Linear,
    /// The robust scaler: lo, hi, mean, std, zmin, range (1 x G each), saved with the model.
    scaler: [Tensor; 6],
}

impl Net {
    fn new(p: &MaskclassParams, g: i64, device: tch::Device, seed: u64) -> Net {
        let vs = nn::VarStore::new(device);
        let rng = &mut crate::seed::rng_for(seed, crate::seed::INIT_STREAM);
        let root = vs.root();
        let (h, z) = (p.hidden_dim as i64, p.latent_dim as i64);
        let block = |path: nn::Path, a: i64, b: i64, rng: &mut rand_chacha::ChaCha8Rng| layers::LinNormSilu {
            lin: layers::linear(&path / "linear", a, b, rng),
            norm: layers::layer_norm(&path / "norm", b),
        };
        let enc = vec![block(&root / "encoder" / 0, g, h, rng), block(&root / "encoder" / 1, h, z, rng)];
        let dec = block(&root / "decoder" / 0, z, h, rng);
        let out = layers::linear(&root / "decoder" / "out", h, g, rng);
        let sc = &root / "scaler";
        let scaler = ["lo", "hi", "mean", "std", "zmin", "range"].map(|n| sc.ones_no_train(n, &[1, g]));
        Net { vs, enc, dec, out, scaler }
    }

    fn set_scaler(&self, r: &RobustScaler) {
        let range: Vec<f32> = r.zmax.iter().zip(&r.zmin).map(|(a, b)| if a - b > 0.0 { a - b } else { 1.0 }).collect();
        for (t, v) in self.scaler.iter().zip([&r.lo, &r.hi, &r.mean, &r.std, &r.zmin, &range]) {
            tch::no_grad(|| t.shallow_clone().copy_(&Tensor::from_slice(v).view([1, -1])));
        }
    }

    /// The robust scaling of log values (as RobustScaler::transform).
    fn scale(&self, v: &Tensor) -> Tensor {
        let [lo, hi, mean, std, zmin, range] = &self.scaler;
        let z = (v.clamp_tensor(Some(lo), Some(hi)) - mean) / std;
        (z - zmin) * 2.0 / range - 1.0
    }

    fn unscale(&self, s: &Tensor) -> Tensor {
        let [_, _, mean, std, zmin, range] = &self.scaler;
        ((s + 1.0) / 2.0 * range + zmin) * std + mean
    }

    fn encode(&self, s: &Tensor) -> Tensor {
        self.enc.iter().fold(s.shallow_clone(), |h, b| b.forward(&h))
    }

    fn reconstruct(&self, s: &Tensor) -> Tensor {
        self.out.forward(&self.dec.forward(&self.encode(s)))
    }
}

struct Step<'a> {
    net: &'a Net,
    p: &'a MaskclassParams,
    bio: BiozeroTensors,
    cmax: Tensor,
    /// scale(0) per gene (1 x G): the biozero regulariser's target.
    s0: Tensor,
}

impl TrainStep for Step<'_> {
    fn parameters(&self) -> Vec<(String, Tensor)> {
        layers::named_vars(&self.net.vs).into_iter().filter(|(_, t)| t.requires_grad()).collect()
    }

    fn losses(&mut self, x: &Tensor, rows: &[usize], ctx: &mut StepCtx) -> Result<Vec<(&'static str, Tensor)>> {
        let net = self.net;
        let dev = x.device();
        let pb = self.bio.p_bio(x, rows);
        let zero = x.eq(0.0);
        let shape = x.size();
        let u = random::uniform(ctx.rng, &shape, 0.0, 1.0, dev);
        let m_zero = u.lt_tensor(&(&pb * self.p.zero_mask_scale)).logical_and(&zero);
        let m_nz = u.lt(self.p.nonzero_mask_rate).logical_and(&zero.logical_not());
        let s = net.scale(x);
        let eta = random::uniform(ctx.rng, &shape, 0.0, self.p.noise_max, dev);
        let noise = net.scale(&(eta * &self.cmax + 1.0).log2());
        let s_in = s.masked_fill(&m_nz, 0.0).where_self(&m_zero.logical_not(), &noise);
        let s_hat = net.reconstruct(&s_in);
        let r2 = (&s_hat - &s).square();
        let (mz, mn) = (m_zero.to_kind(Kind::Float), m_nz.to_kind(Kind::Float));
        let w = self.p.zero_weight;
        let num = (&r2 * &mz).sum(Kind::Float) * w + (&r2 * &mn).sum(Kind::Float);
        let den = mz.sum(Kind::Float) * w + mn.sum(Kind::Float);
        let l_mask = num / den.clamp_min(1e-8);
        let l_bio = ((&s_hat - &self.s0).square() * &pb).sum(Kind::Float) / pb.sum(Kind::Float).clamp_min(1e-8);
        let loss = &l_mask + &l_bio * self.p.gamma();
        Ok(vec![
            ("loss", loss),
            ("loss_mask", l_mask.detach()),
            ("loss_bio", l_bio.detach()),
            ("masked_zero_frac", (mz.sum(Kind::Float) / zero.to_kind(Kind::Float).sum(Kind::Float).clamp_min(1.0)).detach()),
        ])
    }
}

impl DeepNet for Net {
    type Params = MaskclassParams;
    const NAME: &'static str = "maskclass";

    fn build(p: &MaskclassParams, n_genes: i64, device: tch::Device, seed: u64) -> Net {
        Net::new(p, n_genes, device, seed)
    }

    fn vs(&self) -> &nn::VarStore {
        &self.vs
    }

    fn train(&self, p: &MaskclassParams, data: &Prepared, ctx: &mut Context) -> Result<Vec<Value>> {
        if data.scaler.is_some() {
            return Err(Error::config(
                "preprocess.scale",
                true,
                "MaskClass scales each gene robustly itself; set preprocess.scale = false",
            ));
        }
        let dev = ctx.device;
        self.set_scaler(&RobustScaler::fit(&data.x, p.winsor_lo, p.winsor_hi));
        let bz = Biozero::fit(&data.x)?;
        let cmax = Tensor::from_slice(&bz.cmax).view([1, -1]).to_kind(Kind::Float).to_device(dev);
        let s0 = self.scale(&cmax.zeros_like());
        let mut step = Step { net: self, p, bio: bz.tensors(p.cell_alpha, dev), cmax, s0 };
        ctx.progress.message(&format!("maskclass: zero-rate curve k = {:.3}, x0 = {:.3}", bz.k, bz.x0));
        let batcher = Batcher::with_scaler(&data.x, None, dev);
        ctx.fit(&mut step, &batcher)
    }

    fn embed(&self, x: &Tensor) -> Tensor {
        self.encode(&self.scale(x))
    }

    fn embed_data(&self, data: &Prepared, ctx: &Context) -> Result<Tensor> {
        Ok(ctx.embed_batcher(&Batcher::with_scaler(&data.x, None, ctx.device), |x| self.embed(x)))
    }

    fn impute(&self, data: &Prepared, ctx: &Context) -> Option<Imputed> {
        let imp = ctx.embed_batcher(&Batcher::with_scaler(&data.x, None, ctx.device), |x| {
            self.unscale(&self.reconstruct(&self.scale(x))).clamp_min(0.0)
        });
        let mut values = Vec::<f32>::try_from(&imp.to_device(tch::Device::Cpu).contiguous().view([-1])).ok()?;
        // put the observed non-zeros back from the sparse matrix itself: bit for bit
        let g = data.n_genes();
        for i in 0..data.n_cells() {
            let (idx, v) = data.x.row(i);
            for (&j, &v) in idx.iter().zip(v) {
                values[i * g + j as usize] = v;
            }
        }
        Some(Imputed { genes: data.genes.clone(), values })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logistic_fit_recovers_a_decreasing_curve() {
        let xs: Vec<f64> = (0..60).map(|i| -4.0 + i as f64 * 0.15).collect();
        let ys: Vec<f64> = xs.iter().map(|x| 1.0 / (1.0 + (1.7 * (x - 0.8)).exp())).collect();
        let (k, x0) = fit_logistic(&xs, &ys, -1.0, 0.0);
        assert!((k + 1.7).abs() < 1e-4 && (x0 - 0.8).abs() < 1e-4, "k {k} x0 {x0}");
        // an increasing trend is not allowed: k stays <= 0
        let up: Vec<f64> = ys.iter().map(|y| 1.0 - y).collect();
        assert!(fit_logistic(&xs, &up, -1.0, 0.0).0 <= 0.0);
    }
}
