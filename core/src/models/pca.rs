//! PCA on libtorch. Exact: accumulate X^T X over row blocks and take `eigh` (genes <=
//! `exact_max_genes`). Randomized (Halko et al.): range finder with power iterations,
//! all products done block-wise. The sparse matrix is never densified whole.

use super::{Context, Method, Named};
use crate::error::{Error, Result};
use crate::preprocess::Prepared;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PcaParams {
    pub n_comps: usize,
    /// auto | full | randomized
    pub solver: String,
    pub exact_max_genes: usize,
    pub power_iterations: usize,
    pub oversamples: usize,
    pub block_rows: usize,
}

impl Default for PcaParams {
    fn default() -> Self {
        PcaParams { n_comps: 50, solver: "auto".into(), exact_max_genes: 4000, power_iterations: 4, oversamples: 10, block_rows: 8192 }
    }
}

pub struct Pca {
    pub p: PcaParams,
    pub components: Option<Tensor>,
    pub mean: Option<Tensor>,
    pub explained_variance: Vec<f64>,
}

impl Pca {
    pub fn from_params(v: &serde_json::Value) -> Result<Pca> {
        let p: PcaParams = crate::config::from_json_at("params", v.clone())?;
        if p.n_comps == 0 {
            return Err(Error::config("params.n_comps", 0, "must be >= 1"));
        }
        if !["auto", "full", "randomized"].contains(&p.solver.as_str()) {
            return Err(Error::config("params.solver", &p.solver, "expected auto, full or randomized"));
        }
        if p.block_rows == 0 {
            return Err(Error::config("params.block_rows", 0, "must be >= 1"));
        }
        Ok(Pca { p, components: None, mean: None, explained_variance: vec![] })
    }

    fn blocks(&self, data: &Prepared) -> Vec<Vec<usize>> {
        let n = data.n_cells();
        (0..n).step_by(self.p.block_rows).map(|s| (s..(s + self.p.block_rows).min(n)).collect()).collect()
    }

    fn block(data: &Prepared, rows: &[usize], dev: tch::Device) -> Tensor {
        let g = data.n_genes() as i64;
        Tensor::from_slice(&data.dense_rows(rows)).view([rows.len() as i64, g]).to_device(dev)
    }
}

/// Make each component's largest-magnitude loading positive (deterministic signs).
fn flip_signs(v: &Tensor) -> Tensor {
    // v: g x k
    let idx = v.abs().argmax(0, true); // 1 x k
    let s = v.gather(0, &idx, false).sign();
    let s = s.where_self(&s.ne(0.0), &Tensor::ones_like(&s));
    v * s
}

impl Method for Pca {
    fn name(&self) -> &'static str {
        "pca"
    }

    fn fit(&mut self, data: &Prepared, ctx: &mut Context) -> Result<()> {
        let dev = ctx.device;
        let (n, g) = (data.n_cells(), data.n_genes());
        let k = self.p.n_comps.min(n).min(g);
        if n < 2 {
            return Err(Error::data("PCA needs at least 2 cells"));
        }
        let blocks = self.blocks(data);
        // mean
        let mut sum = Tensor::zeros([g as i64], (Kind::Double, dev));
        for b in &blocks {
            sum += Self::block(data, b, dev).sum_dim_intlist(0, false, Kind::Double);
        }
        let mean = (sum / n as f64).to_kind(Kind::Float);
        let exact = match self.p.solver.as_str() {
            "full" => true,
            "randomized" => false,
            _ => g <= self.p.exact_max_genes,
        };
        ctx.progress.message(&format!("PCA ({}) of {n} cells x {g} genes, {k} components", if exact { "exact" } else { "randomized" }));
        let comps = if exact {
            let mut cov = Tensor::zeros([g as i64, g as i64], (Kind::Double, dev));
            for b in &blocks {
                let xb = (Self::block(data, b, dev) - &mean).to_kind(Kind::Double);
                cov += xb.transpose(0, 1).matmul(&xb);
            }
            let cov = cov / (n as f64 - 1.0);
            let (evals, evecs) = cov.linalg_eigh("L");
            // ascending -> take the last k, reversed
            let idx = Tensor::arange_start_step(g as i64 - 1, g as i64 - 1 - k as i64, -1, (Kind::Int64, dev));
            self.explained_variance = Vec::<f64>::try_from(&evals.index_select(0, &idx).to_device(tch::Device::Cpu))?;
            evecs.index_select(1, &idx).to_kind(Kind::Float)
        } else {
            let l = (k + self.p.oversamples).min(g) as i64;
            let opts = (Kind::Float, dev);
            let mut rng = crate::train::rng_for(ctx.seed, crate::train::INIT_STREAM);
            let omega = crate::train::random::normal(&mut rng, &[g as i64, l], dev);
            // Y = Xc * omega, then power iterations Q <- orth(Xc Xc^T Q)
            let xc_mul = |m: &Tensor| -> Tensor {
                let parts: Vec<Tensor> = blocks.iter().map(|b| (Self::block(data, b, dev) - &mean).matmul(m)).collect();
                Tensor::cat(&parts, 0)
            };
            let xct_mul = |q: &Tensor| -> Tensor {
                let mut acc = Tensor::zeros([g as i64, q.size()[1]], opts);
                let mut start = 0i64;
                for b in &blocks {
                    let qb = q.narrow(0, start, b.len() as i64);
                    acc += (Self::block(data, b, dev) - &mean).transpose(0, 1).matmul(&qb);
                    start += b.len() as i64;
                }
                acc
            };
            let mut q = Tensor::linalg_qr(&xc_mul(&omega), "reduced").0;
            for _ in 0..self.p.power_iterations {
                let z = Tensor::linalg_qr(&xct_mul(&q), "reduced").0;
                q = Tensor::linalg_qr(&xc_mul(&z), "reduced").0;
            }
            let bt = xct_mul(&q); // g x l  (= B^T)
            // SVD of the small l x g matrix B through the eigendecomposition of B B^T
            // (tch's linalg_svd passes a driver string that CPU tensors reject).
            let btd = bt.to_kind(Kind::Double);
            let (evals, evecs) = btd.transpose(0, 1).matmul(&btd).linalg_eigh("L");
            let l = evals.size()[0];
            let idx = Tensor::arange_start_step(l - 1, l - 1 - k as i64, -1, (Kind::Int64, dev));
            let ev = evals.index_select(0, &idx).clamp_min(0.0);
            let w = evecs.index_select(1, &idx);
            let u = btd.matmul(&w) / ev.sqrt().clamp_min(1e-30).unsqueeze(0);
            let evs = Vec::<f64>::try_from(&ev.to_device(tch::Device::Cpu))?;
            self.explained_variance = evs.iter().map(|&v| v / (n as f64 - 1.0)).collect();
            u.to_kind(Kind::Float)
        };
        self.components = Some(flip_signs(&comps));
        self.mean = Some(mean);
        Ok(())
    }

    fn embed(&self, data: &Prepared, ctx: &mut Context) -> Result<Tensor> {
        let (Some(comps), Some(mean)) = (&self.components, &self.mean) else {
            return Err(Error::data("pca: the model is not fitted or loaded"));
        };
        let dev = ctx.device;
        let (comps, mean) = (comps.to_device(dev), mean.to_device(dev));
        let parts: Vec<Tensor> = self.blocks(data).iter().map(|b| (Self::block(data, b, dev) - &mean).matmul(&comps)).collect();
        Ok(Tensor::cat(&parts, 0))
    }

    fn tensors(&self) -> Result<Vec<(String, Tensor)>> {
        let (Some(c), Some(m)) = (&self.components, &self.mean) else {
            return Err(Error::data("pca: the model is not fitted"));
        };
        let ev = Tensor::from_slice(&self.explained_variance);
        Ok(vec![("components".into(), c.to_device(tch::Device::Cpu)), ("mean".into(), m.to_device(tch::Device::Cpu)), ("explained_variance".into(), ev)])
    }

    fn load_tensors(&mut self, n_genes: usize, device: tch::Device, t: &Named, what: &str) -> Result<()> {
        let get = |k: &str| t.get(k).ok_or_else(|| Error::Data(format!("{what}: missing tensor `{k}`")));
        let (c, m) = (get("components")?, get("mean")?);
        if c.dim() != 2 || c.size()[0] != n_genes as i64 || m.size() != [n_genes as i64] {
            return Err(Error::Data(format!("{what}: components {:?} / mean {:?} do not fit {n_genes} genes", c.size(), m.size())));
        }
        self.components = Some(c.to_kind(Kind::Float).to_device(device));
        self.mean = Some(m.to_kind(Kind::Float).to_device(device));
        self.explained_variance = get("explained_variance").ok().and_then(|e| Vec::<f64>::try_from(e).ok()).unwrap_or_default();
        Ok(())
    }
}
