//! PCA on libtorch. Exact: accumulate X^T X over row blocks and take `eigh` (genes <=
//! `exact_max_genes` and cells <= `exact_max_cells`). Randomized (Halko et al.): range
//! finder with power iterations. The sparse matrix is never densified whole: the products
//! go through X = a constant row + a sparse part, O(non-zeros) instead of O(cells x
//! genes), on the CPU by `Implicit`, on a GPU by `DeviceSparse` (sparse tensors uploaded
//! once; dense blocks of rows from the host when they do not fit).

use super::MethodInfo;
use super::{Context, Method, Named};
use crate::cluster::ClusterConfig;
use crate::error::{Error, Result};
use crate::matrix::Csr;
use crate::preprocess::Recipe;
use crate::preprocess::{Prepared, Scaler};
use crate::train::TrainConfig;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// This method's entry in the registry (`models::METHODS`): its defaults live here.
pub const INFO: MethodInfo = MethodInfo {
    name: "pca",
    description: "Principal components of the scaled HVG matrix (baseline)",
    reference: "scanpy pp.pca; specs §0",
    params: || super::params_json(&PcaParams::default()),
    recipe: Recipe::Scanpy,
    n_top_genes: 2000,
    train: train_defaults,
    cluster: ClusterConfig::default,
    build: |v| Ok(Box::new(Pca::from_params(v)?)),
};

/// Default training options (PCA fits in one pass: nothing here applies but the device).
fn train_defaults() -> TrainConfig {
    TrainConfig { epochs: 1, ..TrainConfig::default() }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PcaParams {
    pub n_comps: usize,
    /// auto | full | randomized
    pub solver: String,
    pub exact_max_genes: usize,
    /// Above this many cells `auto` is randomized (the exact covariance costs cells x genes^2).
    pub exact_max_cells: usize,
    pub power_iterations: usize,
    pub oversamples: usize,
    pub block_rows: usize,
}

impl Default for PcaParams {
    fn default() -> Self {
        PcaParams {
            n_comps: 50,
            solver: "auto".into(),
            exact_max_genes: 4000,
            exact_max_cells: 50_000,
            power_iterations: 4,
            oversamples: 10,
            block_rows: 8192,
        }
    }
}

pub struct Pca {
    pub p: PcaParams,
    pub components: Option<Tensor>,
    pub mean: Option<Tensor>,
    pub explained_variance: Vec<f64>,
    /// Tests: the CPU takes the device's sparse-tensor products (`DeviceSparse`) instead of
    /// `Implicit`, so that the GPU's code path is checked where there is no GPU.
    sparse_tensors_on_cpu: bool,
}

impl Pca {
    pub fn from_params(v: &serde_json::Value) -> Result<Pca> {
        let p: PcaParams = crate::error::from_json_at("params", v.clone())?;
        if p.n_comps == 0 {
            return Err(Error::config("params.n_comps", 0, "must be >= 1"));
        }
        if !["auto", "full", "randomized"].contains(&p.solver.as_str()) {
            return Err(Error::config("params.solver", &p.solver, "expected auto, full or randomized"));
        }
        if p.block_rows == 0 {
            return Err(Error::config("params.block_rows", 0, "must be >= 1"));
        }
        Ok(Pca { p, components: None, mean: None, explained_variance: vec![], sparse_tensors_on_cpu: false })
    }

    fn blocks(&self, data: &Prepared) -> Vec<Vec<usize>> {
        let n = data.n_cells();
        (0..n).step_by(self.p.block_rows).map(|s| (s..(s + self.p.block_rows).min(n)).collect()).collect()
    }

    /// Whether the sparse products run on the host (`Implicit`) rather than as tensors on `dev`.
    fn host_products(&self, dev: tch::Device) -> bool {
        dev == tch::Device::Cpu && !self.sparse_tensors_on_cpu
    }

    /// The data as sparse tensors on `dev`; None (dense blocks instead, said in the log)
    /// when they do not fit there.
    fn device_sparse(&self, data: &Prepared, dev: tch::Device, ctx: &mut Context) -> Option<DeviceSparse> {
        match crate::device::torch_guard("uploading the sparse matrix for PCA", dev, || DeviceSparse::new(data, dev)) {
            Ok(ds) => Some(ds),
            Err(e) => {
                ctx.progress.message(&format!("PCA: {e}; using dense blocks of rows from the host instead"));
                None
            }
        }
    }

    fn block(data: &Prepared, rows: &[usize], dev: tch::Device) -> Tensor {
        let g = data.n_genes() as i64;
        Tensor::from_slice(&data.dense_rows(rows)).view([rows.len() as i64, g]).to_device(dev)
    }
}

/// The matrix mini-batches see (the scaled log values) as a constant row plus a sparse
/// part: X = 1 z^T + S, with z_j the value a zero of gene j takes and S non-zero only where
/// the log matrix is. Products cost O(non-zeros x columns). Row blocks are fixed by the
/// size of the data, so results do not depend on the thread count.
struct Implicit<'a> {
    x: &'a Csr,
    scaler: Option<&'a Scaler>,
    z: Vec<f32>,
}

impl<'a> Implicit<'a> {
    fn new(p: &'a Prepared) -> Implicit<'a> {
        let z = (0..p.n_genes()).map(|j| p.scaler.as_ref().map_or(0.0, |s| s.value(j, 0.0))).collect();
        Implicit { x: &p.x, scaler: p.scaler.as_ref(), z }
    }

    /// S's entry for log value `v` of gene `j`.
    #[inline]
    fn s(&self, j: usize, v: f32) -> f32 {
        match self.scaler {
            Some(sc) => sc.value(j, v) - self.z[j],
            None => v,
        }
    }

    /// Rows per block of `tmul`'s partial sums (at most ~64 blocks).
    fn block_rows(&self) -> usize {
        (self.x.n_rows / 64 + 1).max(16_384)
    }

    /// S^T q for q (cells x l, row-major), in f64.
    fn tmul(&self, q: &[f32], l: usize) -> Vec<f64> {
        let (n, g) = (self.x.n_rows, self.x.n_cols);
        let br = self.block_rows();
        let starts: Vec<usize> = (0..n).step_by(br).collect();
        let partial = |&r0: &usize| {
            let mut acc = vec![0f64; g * l];
            let mut row = vec![0f32; l];
            for i in r0..(r0 + br).min(n) {
                let (idx, val) = self.x.row(i);
                let qi = &q[i * l..(i + 1) * l];
                for (&j, &v) in idx.iter().zip(val) {
                    let s = self.s(j as usize, v);
                    row.iter_mut().zip(qi).for_each(|(r, &qv)| *r = s * qv);
                    acc[j as usize * l..(j as usize + 1) * l].iter_mut().zip(&row).for_each(|(a, &r)| *a += r as f64);
                }
            }
            acc
        };
        let parts: Vec<Vec<f64>> = crate::device::with_threads(|| starts.par_iter().map(partial).collect());
        let mut out = vec![0f64; g * l];
        for p in parts {
            out.iter_mut().zip(p).for_each(|(o, v)| *o += v);
        }
        out
    }

    /// The column means of X.
    fn mean(&self) -> Vec<f64> {
        let n = self.x.n_rows;
        let sums = self.tmul(&vec![1f32; n], 1);
        self.z.iter().zip(sums).map(|(&z, s)| z as f64 + s / n as f64).collect()
    }

    /// (X - 1 mean^T) m for m (genes x l): S m + 1 ((z - mean)^T m).
    fn centred_mul(&self, mean: &[f32], m: &Tensor) -> Result<Tensor> {
        let (n, l) = (self.x.n_rows, m.size()[1] as usize);
        let md = cpu_floats(m)?;
        let mv = floats(&md);
        // the constant row (z - mean)^T m
        let mut c = vec![0f32; l];
        for (j, (z, mu)) in self.z.iter().zip(mean).enumerate() {
            c.iter_mut().zip(&mv[j * l..(j + 1) * l]).for_each(|(a, &b)| *a += (z - mu) * b);
        }
        let out = Tensor::f_empty([n as i64, l as i64], (Kind::Float, tch::Device::Cpu))?;
        // SAFETY: `out` is a new contiguous float CPU tensor of n * l values that nothing
        // else reads or writes until this function returns it.
        let buf = unsafe { std::slice::from_raw_parts_mut(out.data_ptr() as *mut f32, n * l) };
        crate::device::with_threads(|| {
            buf.par_chunks_mut(l * 1024).enumerate().for_each(|(b, chunk)| {
                for (r, o) in chunk.chunks_mut(l).enumerate() {
                    o.copy_from_slice(&c);
                    let (idx, val) = self.x.row(b * 1024 + r);
                    for (&j, &v) in idx.iter().zip(val) {
                        let s = self.s(j as usize, v);
                        o.iter_mut().zip(&mv[j as usize * l..(j as usize + 1) * l]).for_each(|(a, &b)| *a += s * b);
                    }
                }
            })
        });
        Ok(out)
    }

    /// (X - 1 mean^T)^T q for q (cells x l): S^T q + (z - mean) (1^T q).
    fn centred_tmul(&self, mean: &[f32], q: &Tensor) -> Result<Tensor> {
        let (g, l) = (self.x.n_cols, q.size()[1] as usize);
        let qd = cpu_floats(q)?;
        let qv = floats(&qd);
        let mut acc = self.tmul(qv, l);
        let mut colsum = vec![0f64; l];
        for row in qv.chunks(l) {
            colsum.iter_mut().zip(row).for_each(|(a, &b)| *a += b as f64);
        }
        for j in 0..g {
            let wj = (self.z[j] - mean[j]) as f64;
            acc[j * l..(j + 1) * l].iter_mut().zip(&colsum).for_each(|(a, &c)| *a += wj * c);
        }
        Ok(Tensor::from_slice(&acc).view([g as i64, l as i64]).to_kind(Kind::Float))
    }
}

/// The same decomposition X = 1 z^T + S held on the device (a GPU): S in blocks of rows as
/// sparse CSR tensors, each with its transpose (genes x block rows), so that both products
/// of the randomized range finder run there (cuSPARSE on CUDA) from one upload, instead of
/// densifying every block on the host for every product. Device memory: about 2 x
/// non-zeros x 12 bytes.
struct DeviceSparse {
    /// (S_b, S_b^T) per block of rows
    blocks: Vec<(Tensor, Tensor)>,
    /// rows of each block
    lens: Vec<i64>,
    z: Tensor,
    n: usize,
}

impl DeviceSparse {
    /// Rows per block (bounds the host copy made while uploading).
    const BLOCK_ROWS: usize = 65_536;

    fn new(p: &Prepared, dev: tch::Device) -> Result<DeviceSparse> {
        let im = Implicit::new(p);
        let (n, g) = (p.x.n_rows, p.x.n_cols);
        let mut blocks = Vec::new();
        let mut lens = Vec::new();
        for r0 in (0..n).step_by(Self::BLOCK_ROWS) {
            let r1 = (r0 + Self::BLOCK_ROWS).min(n);
            let mut b = p.x.select_rows(&(r0..r1).collect::<Vec<_>>());
            for (v, &j) in b.data.iter_mut().zip(&b.indices) {
                *v = im.s(j as usize, *v);
            }
            let bt = b.transpose();
            blocks.push((csr_tensor(&b, dev)?, csr_tensor(&bt, dev)?));
            lens.push((r1 - r0) as i64);
        }
        let z = Tensor::from_slice(&im.z).f_to_device(dev)?;
        // both products once, so that a device without them is known before the fit
        if let Some((s, st)) = blocks.first() {
            let _ = s.f_mm(&Tensor::f_ones([g as i64, 1], (Kind::Float, dev))?)?;
            let _ = st.f_mm(&Tensor::f_ones([lens[0], 1], (Kind::Float, dev))?)?;
        }
        Ok(DeviceSparse { blocks, lens, z, n })
    }

    /// The column means of X.
    fn mean(&self) -> Result<Tensor> {
        let mut sum = Tensor::f_zeros([self.z.size()[0], 1], (Kind::Double, self.z.device()))?;
        for ((_, st), &len) in self.blocks.iter().zip(&self.lens) {
            // in float64: a column's sum over a block is a long float32 accumulation
            sum += st.f_to_kind(Kind::Double)?.f_mm(&Tensor::f_ones([len, 1], (Kind::Double, self.z.device()))?)?;
        }
        Ok((sum.squeeze_dim(1) / self.n as f64 + self.z.to_kind(Kind::Double)).to_kind(Kind::Float))
    }

    /// (X - 1 mean^T) m for m (genes x l).
    fn centred_mul(&self, mean: &Tensor, m: &Tensor) -> Result<Tensor> {
        let c = (&self.z - mean).unsqueeze(0).f_mm(m)?;
        let parts = self.blocks.iter().map(|(s, _)| s.f_mm(m)).collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(Tensor::f_cat(&parts, 0)? + c)
    }

    /// (X - 1 mean^T)^T q for q (cells x l).
    fn centred_tmul(&self, mean: &Tensor, q: &Tensor) -> Result<Tensor> {
        let mut acc = (&self.z - mean).unsqueeze(1) * q.sum_dim_intlist(0, true, Kind::Float);
        let mut start = 0;
        for ((_, st), &len) in self.blocks.iter().zip(&self.lens) {
            acc += st.f_mm(&q.narrow(0, start, len))?;
            start += len;
        }
        Ok(acc)
    }
}

/// A sparse CSR tensor of `m` on `dev`.
fn csr_tensor(m: &Csr, dev: tch::Device) -> Result<Tensor> {
    let crow: Vec<i64> = m.indptr.iter().map(|&p| p as i64).collect();
    let col: Vec<i64> = m.indices.iter().map(|&j| j as i64).collect();
    let opts = (Kind::Float, dev);
    Ok(Tensor::f_sparse_csr_tensor_crow_col_value_size(
        &Tensor::from_slice(&crow).f_to_device(dev)?,
        &Tensor::from_slice(&col).f_to_device(dev)?,
        &Tensor::from_slice(&m.data).f_to_device(dev)?,
        [m.n_rows as i64, m.n_cols as i64],
        opts,
    )?)
}

/// `t` as a contiguous float tensor on the CPU (itself when it already is one).
fn cpu_floats(t: &Tensor) -> Result<Tensor> {
    Ok(t.f_to_device(tch::Device::Cpu)?.f_to_kind(Kind::Float)?.f_contiguous()?)
}

/// The values of a tensor from `cpu_floats`, borrowed.
fn floats(t: &Tensor) -> &[f32] {
    // SAFETY: `t` is contiguous, float and on the CPU (cpu_floats) and outlives the slice;
    // nothing writes to it while the slice is read.
    unsafe { std::slice::from_raw_parts(t.data_ptr() as *const f32, t.numel()) }
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
        let exact = match self.p.solver.as_str() {
            "full" => true,
            "randomized" => false,
            _ => g <= self.p.exact_max_genes && n <= self.p.exact_max_cells,
        };
        let host = self.host_products(dev);
        let implicit = (!exact && host).then(|| Implicit::new(data));
        let on_device = if exact || host { None } else { self.device_sparse(data, dev, ctx) };
        ctx.progress.message(&format!(
            "PCA ({}) of {n} cells x {g} genes, {k} components",
            if exact {
                "exact"
            } else if implicit.is_some() {
                "randomized, sparse products"
            } else if on_device.is_some() {
                "randomized, sparse products on the device"
            } else {
                "randomized"
            }
        ));
        // The column means, also as a host vector when the sparse products use them.
        let (mean, mean_v) = match (&implicit, &on_device) {
            (Some(im), _) => {
                let v: Vec<f32> = im.mean().iter().map(|&m| m as f32).collect();
                (Tensor::from_slice(&v), v)
            }
            (None, Some(ds)) => (ds.mean()?, Vec::new()),
            (None, None) => {
                let mut sum = Tensor::zeros([g as i64], (Kind::Double, dev));
                for b in &blocks {
                    sum += Self::block(data, b, dev).sum_dim_intlist(0, false, Kind::Double);
                }
                ((sum / n as f64).to_kind(Kind::Float), Vec::new())
            }
        };
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
            let mut rng = crate::seed::rng_for(ctx.seed, crate::seed::INIT_STREAM);
            let omega = crate::train::random::normal(&mut rng, &[g as i64, l], dev);
            // Y = Xc * omega, then power iterations Q <- orth(Xc Xc^T Q)
            let xc_mul = |m: &Tensor| -> Result<Tensor> {
                if let Some(im) = &implicit {
                    return im.centred_mul(&mean_v, m);
                }
                if let Some(ds) = &on_device {
                    return ds.centred_mul(&mean, m);
                }
                let parts: Vec<Tensor> = blocks.iter().map(|b| (Self::block(data, b, dev) - &mean).matmul(m)).collect();
                Ok(Tensor::cat(&parts, 0))
            };
            let xct_mul = |q: &Tensor| -> Result<Tensor> {
                if let Some(im) = &implicit {
                    return im.centred_tmul(&mean_v, q);
                }
                if let Some(ds) = &on_device {
                    return ds.centred_tmul(&mean, q);
                }
                let mut acc = Tensor::zeros([g as i64, q.size()[1]], opts);
                let mut start = 0i64;
                for b in &blocks {
                    let qb = q.narrow(0, start, b.len() as i64);
                    acc += (Self::block(data, b, dev) - &mean).transpose(0, 1).matmul(&qb);
                    start += b.len() as i64;
                }
                Ok(acc)
            };
            let mut q = Tensor::linalg_qr(&xc_mul(&omega)?, "reduced").0;
            for _ in 0..self.p.power_iterations {
                let z = Tensor::linalg_qr(&xct_mul(&q)?, "reduced").0;
                drop(q); // cells x l: one fewer alive at the peak
                q = Tensor::linalg_qr(&xc_mul(&z)?, "reduced").0;
            }
            let bt = xct_mul(&q)?; // g x l  (= B^T)
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
        if self.host_products(dev) && data.n_cells() > self.p.exact_max_cells {
            let mean_v = Vec::<f32>::try_from(&mean.to_kind(Kind::Float).to_device(dev).contiguous())?;
            return Implicit::new(data).centred_mul(&mean_v, &comps.to_kind(Kind::Float).to_device(dev));
        }
        let (comps, mean) = (comps.to_device(dev), mean.to_device(dev));
        if data.n_cells() > self.p.exact_max_cells {
            if let Some(ds) = self.device_sparse(data, dev, ctx) {
                return ds.centred_mul(&mean.to_kind(Kind::Float), &comps.to_kind(Kind::Float));
            }
        }
        let parts: Vec<Tensor> = self.blocks(data).iter().map(|b| (Self::block(data, b, dev) - &mean).matmul(&comps)).collect();
        Ok(Tensor::cat(&parts, 0))
    }

    fn tensors(&self) -> Result<Vec<(String, Tensor)>> {
        let (Some(c), Some(m)) = (&self.components, &self.mean) else {
            return Err(Error::data("pca: the model is not fitted"));
        };
        let ev = Tensor::from_slice(&self.explained_variance);
        Ok(vec![
            ("components".into(), c.to_device(tch::Device::Cpu)),
            ("mean".into(), m.to_device(tch::Device::Cpu)),
            ("explained_variance".into(), ev),
        ])
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preprocess::Scaler;

    /// A sparse log-like matrix (about a third non-zero) with a scaler that clips hard
    /// (max 0.8, so zeros of dense genes and large values are both clipped), with two strong
    /// components.
    fn prepared(n: usize, g: usize, zero_center: bool) -> Prepared<'static> {
        let mut s = 12345u64;
        let mut next = || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 33) as f32 / (1u64 << 31) as f32
        };
        // genes 0..3 are expressed in almost every cell (their zeros clip at -0.8)
        // three groups of cells, each raising genes 3..12 of its own residue (two strong components)
        let dense: Vec<f32> = (0..n * g)
            .map(|k| {
                let (i, j) = (k / g, k % g);
                let up = (3..12).contains(&j) && i % 3 == j % 3;
                if next() < if j < 3 || up { 0.97 } else { 0.3 } {
                    1.0 + 3.0 * next() + if up { 4.0 } else { 0.0 }
                } else {
                    0.0
                }
            })
            .collect();
        let x = Csr::from_dense(n, g, &dense);
        let mut scaler = Scaler::fit(&x, true, Some(0.8));
        scaler.zero_center = zero_center;
        Prepared {
            counts: None,
            cells: (0..n).map(|i| i.to_string()).collect(),
            genes: (0..g).map(|j| j.to_string()).collect(),
            labels: None,
            batches: None,
            size_factors: vec![1.0; n],
            cell_index: (0..n).collect(),
            scaler: Some(scaler),
            hvg: None,
            target_sum: 1.0,
            norm_genes: Vec::new(),
            x,
        }
    }

    /// `f` with a CPU context (seed 3, default training options, no progress output).
    fn with_ctx<T>(f: impl FnOnce(&mut Context) -> T) -> T {
        let mut prog = crate::progress::Silent;
        let train = crate::train::TrainConfig::default();
        let mut ctx = Context {
            device: tch::Device::Cpu,
            seed: 3,
            train: &train,
            n_clusters: None,
            fingerprint: serde_json::Value::Null,
            progress: &mut prog,
        };
        f(&mut ctx)
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a - b).abs().max().double_value(&[])
    }

    #[test]
    fn implicit_products_equal_the_dense_ones() {
        for zero_center in [true, false] {
            let p = prepared(700, 23, zero_center);
            let (n, g) = (p.n_cells() as i64, p.n_genes() as i64);
            let dense = Tensor::from_slice(&p.dense_rows(&(0..p.n_cells()).collect::<Vec<_>>())).view([n, g]);
            let im = Implicit::new(&p);
            let mean = Tensor::from_slice(&im.mean()).to_kind(Kind::Float);
            assert!(max_diff(&mean, &dense.mean_dim(0, false, Kind::Float)) < 1e-5, "column means");
            let mean_v = Vec::<f32>::try_from(&mean).unwrap();
            let xc = &dense - &mean;
            let m = Tensor::randn([g, 7], (Kind::Float, tch::Device::Cpu));
            let q = Tensor::randn([n, 7], (Kind::Float, tch::Device::Cpu));
            assert!(max_diff(&im.centred_mul(&mean_v, &m).unwrap(), &xc.matmul(&m)) < 1e-3, "X_c m (zero_center {zero_center})");
            assert!(
                max_diff(&im.centred_tmul(&mean_v, &q).unwrap(), &xc.transpose(0, 1).matmul(&q)) < 1e-3,
                "X_c^T q (zero_center {zero_center})"
            );
        }
    }

    #[test]
    fn sparse_randomized_pca_matches_the_dense_blocks_and_exact() {
        let p = prepared(900, 30, true);
        let fit = |params: serde_json::Value| {
            let mut pca = Pca::from_params(&params).unwrap();
            with_ctx(|ctx| {
                pca.fit(&p, ctx).unwrap();
                (pca.explained_variance.clone(), pca.embed(&p, ctx).unwrap())
            })
        };
        let (ev_full, e_full) = fit(serde_json::json!({"n_comps": 4, "solver": "full"}));
        // above exact_max_cells: randomized fit, sparse embedding
        let (ev_rand, e_rand) = fit(serde_json::json!({"n_comps": 4, "exact_max_cells": 100, "power_iterations": 8}));
        for (a, b) in ev_full.iter().zip(&ev_rand).take(2) {
            assert!((a - b).abs() <= 1e-3 * a, "explained variance: exact {a} randomized {b}");
        }
        // same components up to float error: the embeddings agree (signs are fixed)
        assert!(max_diff(&e_full.narrow(1, 0, 2), &e_rand.narrow(1, 0, 2)) < 1e-2, "embeddings");
        // the sparse embedding of a fitted model equals its dense-block embedding
        let mut pca = Pca::from_params(&serde_json::json!({"n_comps": 4, "exact_max_cells": 100})).unwrap();
        let (sparse, blocks) = with_ctx(|ctx| {
            pca.fit(&p, ctx).unwrap();
            let sparse = pca.embed(&p, ctx).unwrap();
            pca.p.exact_max_cells = usize::MAX;
            (sparse, pca.embed(&p, ctx).unwrap())
        });
        assert!(max_diff(&sparse, &blocks) < 1e-4, "sparse vs block embedding");
    }

    /// The GPU's path (sparse CSR tensors on the device, `DeviceSparse`), taken here on the
    /// CPU: the same products, fit and embedding as the host's sparse path.
    #[test]
    fn device_sparse_tensors_give_the_host_sparse_results() {
        for zero_center in [true, false] {
            let p = prepared(70_000, 12, zero_center); // two blocks of DeviceSparse::BLOCK_ROWS
            let (im, ds) = (Implicit::new(&p), DeviceSparse::new(&p, tch::Device::Cpu).unwrap());
            assert_eq!(ds.blocks.len(), 2);
            let mean_v: Vec<f32> = im.mean().iter().map(|&m| m as f32).collect();
            let mean = ds.mean().unwrap();
            let dm = max_diff(&mean, &Tensor::from_slice(&mean_v));
            assert!(dm < 1e-5, "column means differ by {dm}");
            let mut rng = crate::seed::rng_for(1, 0);
            let m = crate::train::random::normal(&mut rng, &[12, 5], tch::Device::Cpu);
            let q = crate::train::random::normal(&mut rng, &[70_000, 5], tch::Device::Cpu);
            assert!(max_diff(&ds.centred_mul(&mean, &m).unwrap(), &im.centred_mul(&mean_v, &m).unwrap()) < 1e-3, "X_c m");
            let (a, b) = (ds.centred_tmul(&mean, &q).unwrap(), im.centred_tmul(&mean_v, &q).unwrap());
            assert!(max_diff(&a, &b) < 1e-5 * b.abs().max().double_value(&[]), "X_c^T q");
        }
        let p = prepared(3000, 30, true);
        let fit = |on_device: bool| {
            let mut pca = Pca::from_params(&serde_json::json!({"n_comps": 4, "exact_max_cells": 100})).unwrap();
            pca.sparse_tensors_on_cpu = on_device;
            with_ctx(|ctx| {
                pca.fit(&p, ctx).unwrap();
                (pca.explained_variance.clone(), pca.embed(&p, ctx).unwrap())
            })
        };
        let ((ev_h, e_h), (ev_d, e_d)) = (fit(false), fit(true));
        for (a, b) in ev_h.iter().zip(&ev_d) {
            assert!((a - b).abs() <= 1e-4 * a, "explained variance: host {a} device path {b}");
        }
        assert!(max_diff(&e_h, &e_d) < 1e-3, "embeddings");
    }
}
