//! Mini-batches from the sparse CSR matrix, densified on the device and scaled there
//! with the preprocessing's per-gene scaler. The whole matrix is never densified.

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

    /// Dense, scaled rows (rows.len() x genes, float, on the device).
    pub fn dense(&self, rows: &[usize]) -> Tensor {
        let (b, g) = (rows.len() as i64, self.x.n_cols as i64);
        let raw = if self.device == Device::Cpu {
            Tensor::from_slice(&self.x.dense_rows(rows)).view([b, g])
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
            let out = Tensor::zeros([b * g], (Kind::Float, self.device));
            let flat = Tensor::from_slice(&flat).to_device(self.device);
            let vals = Tensor::from_slice(&vals).to_device(self.device);
            out.index_put(&[Some(flat)], &vals, false).view([b, g])
        };
        self.scale(raw)
    }

    // not `x -= m`: Tensor's `-=` works in place, and x may share storage with the data
    #[allow(clippy::assign_op_pattern)]
    fn scale(&self, mut x: Tensor) -> Tensor {
        if let Some(m) = &self.mean {
            x = x - m;
        }
        if let Some(s) = &self.std {
            x = x / s;
        }
        match self.clip {
            Some((c, true)) => x.clamp(-c, c),
            Some((c, false)) => x.clamp_max(c),
            None => x,
        }
    }

    /// Every row in blocks of `block` rows, in order (for embedding passes).
    pub fn blocks(&self, block: usize) -> impl Iterator<Item = Vec<usize>> + '_ {
        let n = self.x.n_rows;
        (0..n).step_by(block.max(1)).map(move |s| (s..(s + block.max(1)).min(n)).collect())
    }
}
