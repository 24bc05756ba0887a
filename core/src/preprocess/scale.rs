//! Per-gene scaling. `Scaler` is scanpy's `pp.scale` (ddof 1, zero-variance genes
//! keep std 1, optional clip) kept as parameters, so the sparse log matrix is never
//! densified whole: mini-batches are densified and scaled where they are used.
//! `RobustScaler` is MaskClass's invertible winsorise -> z-score -> [-1, 1] map.

use super::hvg::{mean_var, percentile};
use crate::matrix::Csr;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Scaler {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    pub max_value: Option<f32>,
    pub zero_center: bool,
}

impl Scaler {
    pub fn fit(x: &Csr, zero_center: bool, max_value: Option<f64>) -> Scaler {
        let (m, v) = mean_var(x, false);
        Scaler {
            mean: m.iter().map(|&a| a as f32).collect(),
            std: v
                .iter()
                .map(|&a| {
                    let s = a.sqrt() as f32;
                    if s == 0.0 {
                        1.0
                    } else {
                        s
                    }
                })
                .collect(),
            max_value: max_value.map(|v| v as f32),
            zero_center,
        }
    }

    /// The scaled value of gene `j`'s log value `v`.
    #[inline]
    pub fn value(&self, j: usize, v: f32) -> f32 {
        let mut v = v;
        if self.zero_center {
            v -= self.mean[j];
        }
        v /= self.std[j];
        if let Some(c) = self.max_value {
            v = if self.zero_center { v.clamp(-c, c) } else { v.min(c) };
        }
        v
    }

    /// Scale a dense row-major block (rows x genes) in place.
    pub fn apply(&self, block: &mut [f32]) {
        let g = self.mean.len();
        for row in block.chunks_mut(g) {
            for (j, v) in row.iter_mut().enumerate() {
                *v = self.value(j, *v);
            }
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RobustScaler {
    pub lo: Vec<f32>,
    pub hi: Vec<f32>,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    pub zmin: Vec<f32>,
    pub zmax: Vec<f32>,
}

impl RobustScaler {
    /// Winsorise each gene to its [q_lo, q_hi] percentiles (numpy linear), z-score
    /// (population std; a std below 1e-8 becomes 1, as the MaskClass code does), then map
    /// the gene's z range to [-1, 1].
    pub fn fit(x: &Csr, q_lo: f64, q_hi: f64) -> RobustScaler {
        let csc = x.transpose();
        let n = x.n_rows;
        let g = x.n_cols;
        let mut r = RobustScaler {
            lo: vec![0.0; g],
            hi: vec![0.0; g],
            mean: vec![0.0; g],
            std: vec![1.0; g],
            zmin: vec![0.0; g],
            zmax: vec![0.0; g],
        };
        let mut col = vec![0f64; n];
        for j in 0..g {
            col.iter_mut().for_each(|v| *v = 0.0);
            let (idx, val) = csc.row(j);
            for (&i, &v) in idx.iter().zip(val) {
                col[i as usize] = v as f64;
            }
            let mut s = col.clone();
            s.sort_by(|a, b| a.total_cmp(b));
            let (lo, hi) = (percentile(&s, q_lo), percentile(&s, q_hi));
            let w: Vec<f64> = col.iter().map(|v| v.clamp(lo, hi)).collect();
            let m = w.iter().sum::<f64>() / n as f64;
            let mut sd = (w.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / n as f64).sqrt();
            if sd < 1e-8 {
                sd = 1.0;
            }
            let zs: Vec<f64> = w.iter().map(|v| (v - m) / sd).collect();
            let zmin = zs.iter().cloned().fold(f64::INFINITY, f64::min);
            let zmax = zs.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            r.lo[j] = lo as f32;
            r.hi[j] = hi as f32;
            r.mean[j] = m as f32;
            r.std[j] = sd as f32;
            r.zmin[j] = zmin as f32;
            r.zmax[j] = zmax as f32;
        }
        r
    }

    fn range(&self, j: usize) -> f32 {
        let d = self.zmax[j] - self.zmin[j];
        if d > 0.0 {
            d
        } else {
            1.0
        }
    }

    /// Scale a dense block (rows x genes) in place; computed in f64.
    #[allow(clippy::needless_range_loop)] // parallel arrays indexed by one loop variable
    pub fn transform(&self, block: &mut [f32]) {
        let g = self.lo.len();
        for row in block.chunks_mut(g) {
            for j in 0..g {
                let z = ((row[j].clamp(self.lo[j], self.hi[j]) as f64) - self.mean[j] as f64) / self.std[j] as f64;
                row[j] = (2.0 * (z - self.zmin[j] as f64) / self.range(j) as f64 - 1.0) as f32;
            }
        }
    }

    /// The inverse of `transform` (of the winsorised values); computed in f64.
    #[allow(clippy::needless_range_loop)] // parallel arrays indexed by one loop variable
    pub fn inverse(&self, block: &mut [f32]) {
        let g = self.lo.len();
        for row in block.chunks_mut(g) {
            for j in 0..g {
                let z = (row[j] as f64 + 1.0) / 2.0 * self.range(j) as f64 + self.zmin[j] as f64;
                row[j] = (z * self.std[j] as f64 + self.mean[j] as f64) as f32;
            }
        }
    }
}
