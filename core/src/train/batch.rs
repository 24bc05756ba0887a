//! Mini-batches from the sparse CSR matrix, densified on the device and scaled there
//! with the preprocessing's per-gene scaler. The whole matrix is never densified.

use crate::error::Result;
use crate::matrix::Csr;
use crate::preprocess::{Prepared, Scaler};
use tch::{Device, Kind, Tensor};

pub struct Batcher<'a> {
    x: &'a Csr,
    device: Device,
    mean: Option<Tensor>,
    std: Option<Tensor>,
    clip: Option<(f64, bool)>,
}

impl<'a> Batcher<'a> {
    pub fn new(data: &'a Prepared, device: Device) -> Batcher<'a> {
        Batcher::with_scaler(&data.x, data.scaler.as_ref(), device)
    }

    pub fn with_scaler(x: &'a Csr, scaler: Option<&Scaler>, device: Device) -> Batcher<'a> {
        let (mut mean, mut std, mut clip) = (None, None, None);
        if let Some(s) = scaler {
            if s.zero_center {
                mean = Some(Tensor::from_slice(&s.mean).to_device(device));
            }
            std = Some(Tensor::from_slice(&s.std).to_device(device));
            clip = s.max_value.map(|c| (c as f64, s.zero_center));
        }
        Batcher { x, device, mean, std, clip }
    }

    pub fn n_rows(&self) -> usize {
        self.x.n_rows
    }
    pub fn n_cols(&self) -> usize {
        self.x.n_cols
    }
    pub fn device(&self) -> Device {
        self.device
    }

    /// Dense, scaled rows (rows.len() x genes, float, on the device); a libtorch
    /// failure (out of memory) panics with its message, which `device::torch_guard`
    /// turns into `Error::Torch`. See [`Batcher::try_dense`].
    pub fn dense(&self, rows: &[usize]) -> Tensor {
        self.try_dense(rows).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Dense, scaled rows through tch's fallible calls: an allocation that fails on the
    /// device is an error.
    pub fn try_dense(&self, rows: &[usize]) -> Result<Tensor> {
        let (b, g) = (rows.len() as i64, self.x.n_cols as i64);
        let raw = if self.device == Device::Cpu {
            Tensor::f_from_slice(&self.x.dense_rows(rows))?.f_view([b, g])?
        } else {
            // Ship the batch's non-zeros (COO) and scatter them into a dense block there.
            let nnz: usize = rows.iter().map(|&r| self.x.indptr[r + 1] - self.x.indptr[r]).sum();
            let mut flat = Vec::with_capacity(nnz);
            let mut vals = Vec::with_capacity(nnz);
            for (i, &r) in rows.iter().enumerate() {
                let (idx, v) = self.x.row(r);
                flat.extend(idx.iter().map(|&j| i as i64 * g + j as i64));
                vals.extend_from_slice(v);
            }
            let out = Tensor::f_zeros([b * g], (Kind::Float, self.device))?;
            let flat = Tensor::f_from_slice(&flat)?.f_to_device(self.device)?;
            let vals = Tensor::f_from_slice(&vals)?.f_to_device(self.device)?;
            out.f_index_put(&[Some(flat)], &vals, false)?.f_view([b, g])?
        };
        self.f_scale(raw)
    }

    fn f_scale(&self, mut x: Tensor) -> Result<Tensor> {
        // not `x -= m`: Tensor's `-=` works in place, and x may share storage with the data
        if let Some(m) = &self.mean {
            x = x.f_sub(m)?;
        }
        if let Some(s) = &self.std {
            x = x.f_div(s)?;
        }
        Ok(match self.clip {
            Some((c, true)) => x.f_clamp(-c, c)?,
            Some((c, false)) => x.f_clamp_max(c)?,
            None => x,
        })
    }

    /// Every row in blocks of `block` rows, in order (for embedding passes).
    pub fn blocks(&self, block: usize) -> impl Iterator<Item = Vec<usize>> + '_ {
        let n = self.x.n_rows;
        (0..n).step_by(block.max(1)).map(move |s| (s..(s + block.max(1)).min(n)).collect())
    }
}
