//! scanpy's `flavor="seurat_v3"` HVG selection on raw counts.
//!
//! scanpy fits `skmisc.loess(log10 mean, log10 var, span=0.3, degree=2)`; skmisc's
//! default surface is "interpolate" (a kd-tree with cubic blending between vertices).
//! We compute the exact local fit at every point (skmisc's `surface="direct"`). The
//! fixture test checks our fit against skmisc's direct fit and the resulting HVG set
//! against scanpy's; the two surfaces differ slightly, which can swap genes whose
//! normalised variances sit at the cut-off.

use super::hvg_result::HvgResult;
use crate::error::Result;

/// Local quadratic regression with tricube weights at each x (Cleveland's loess,
/// gaussian family, no robustness iterations), evaluated at the data points.
pub fn loess_fit(x: &[f64], y: &[f64], span: f64) -> Vec<f64> {
    let n = x.len();
    let q = ((n as f64 * span).floor() as usize).clamp(3.min(n), n);
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let xs: Vec<f64> = order.iter().map(|&i| x[i]).collect();
    let mut fitted = vec![0f64; n];
    for (rank, &i) in order.iter().enumerate() {
        let x0 = x[i];
        // q nearest neighbours in sorted order: grow a window [lo, hi).
        let (mut lo, mut hi) = (rank, rank + 1);
        while hi - lo < q {
            #[allow(clippy::if_same_then_else)] // one case per reason to grow to the right
            if lo == 0 {
                hi += 1;
            } else if hi == n {
                lo -= 1;
            } else if x0 - xs[lo - 1] <= xs[hi] - x0 {
                lo -= 1;
            } else {
                hi += 1;
            }
        }
        let mut h = (x0 - xs[lo]).max(xs[hi - 1] - x0);
        if q > n {
            h *= (q as f64 / n as f64).sqrt();
        }
        // netlib loess (ehg127) widens a zero or tiny bandwidth
        h = h.max(1e-10 * (xs[n - 1] - xs[0]).abs()).max(f64::MIN_POSITIVE);
        let (mut s0, mut s1, mut s2, mut s3, mut s4, mut t0, mut t1, mut t2) = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
        // include every point within h (ties at the boundary included)
        let mut a = lo;
        while a > 0 && (x0 - xs[a - 1]) <= h {
            a -= 1;
        }
        let mut b = hi;
        while b < n && (xs[b] - x0) <= h {
            b += 1;
        }
        for k in a..b {
            let d = (xs[k] - x0).abs() / h;
            if d >= 1.0 {
                continue;
            }
            let w = (1.0 - d * d * d).powi(3);
            let u = (xs[k] - x0) / h;
            let yy = y[order[k]];
            let (u2, u3, u4) = (u * u, u * u * u, u * u * u * u);
            s0 += w;
            s1 += w * u;
            s2 += w * u2;
            s3 += w * u3;
            s4 += w * u4;
            t0 += w * yy;
            t1 += w * u * yy;
            t2 += w * u2 * yy;
        }
        // Solve [[s0 s1 s2][s1 s2 s3][s2 s3 s4]] beta = [t0 t1 t2]; fitted = beta0.
        let m = [[s0, s1, s2], [s1, s2, s3], [s2, s3, s4]];
        let r = [t0, t1, t2];
        fitted[i] = solve3(m, r).map(|b| b[0]).unwrap_or(if s0 > 0.0 { t0 / s0 } else { y[i] });
    }
    fitted
}

fn solve3(m: [[f64; 3]; 3], r: [f64; 3]) -> Option<[f64; 3]> {
    let det = |a: [[f64; 3]; 3]| {
        a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1]) - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0])
            + a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0])
    };
    let d = det(m);
    let scale = m[0][0].abs() * m[1][1].abs() * m[2][2].abs();
    if d.abs() <= 1e-12 * scale || d == 0.0 {
        return None;
    }
    let mut out = [0.0; 3];
    for c in 0..3 {
        let mut a = m;
        for row in 0..3 {
            a[row][c] = r[row];
        }
        out[c] = det(a) / d;
    }
    Some(out)
}

/// seurat_v3 from the counts' per-gene mean and variance over `rows` cells; `clipped`
/// adds up the clipped counts and their squares (`add_clipped` over every value).
pub fn hvg_seurat_v3(
    rows: usize,
    mean: Vec<f64>,
    var: Vec<f64>,
    n_top: usize,
    span: f64,
    clipped: impl FnOnce(&[f64], &mut [f64], &mut [f64]) -> Result<()>,
) -> Result<HvgResult> {
    let n = rows as f64;
    let keep: Vec<usize> = (0..var.len()).filter(|&j| var[j] > 0.0).collect();
    let lx: Vec<f64> = keep.iter().map(|&j| mean[j].log10()).collect();
    let ly: Vec<f64> = keep.iter().map(|&j| var[j].log10()).collect();
    let fit = loess_fit(&lx, &ly, span);
    let mut est = vec![0f64; var.len()];
    for (k, &j) in keep.iter().enumerate() {
        est[j] = fit[k];
    }
    let reg_std: Vec<f64> = est.iter().map(|e| 10f64.powf(*e).sqrt()).collect();
    let vmax = n.sqrt();
    let clip: Vec<f64> = (0..var.len()).map(|j| reg_std[j] * vmax + mean[j]).collect();
    let mut sq = vec![0f64; var.len()];
    let mut s = vec![0f64; var.len()];
    clipped(&clip, &mut s, &mut sq)?;
    let norm: Vec<f64> = (0..var.len())
        .map(|j| {
            let r = 1.0 / ((n - 1.0) * reg_std[j] * reg_std[j]);
            r * ((n * mean[j] * mean[j]) + sq[j] - 2.0 * s[j] * mean[j])
        })
        .collect();
    // rank by normalised variance (descending; stable argsort like numpy's default quicksort
    // is not stable, but ties between distinct genes are practically absent)
    let mut order: Vec<usize> = (0..norm.len()).collect();
    order.sort_by(|&a, &b| norm[b].partial_cmp(&norm[a]).unwrap_or(std::cmp::Ordering::Equal));
    let mut hv = vec![false; norm.len()];
    for &j in order.iter().take(n_top) {
        hv[j] = true;
    }
    Ok(HvgResult { means: mean, dispersions: var, dispersions_norm: norm, highly_variable: hv })
}

/// Add each count, clipped at its gene's `clip`, to `s` and its square to `sq`.
pub fn add_clipped(indices: &[u32], data: &[f32], clip: &[f64], s: &mut [f64], sq: &mut [f64]) {
    for (&j, &v) in indices.iter().zip(data) {
        let j = j as usize;
        let e = (v as f64).min(clip[j]);
        sq[j] += e * e;
        s[j] += e;
    }
}
