//! Random tensors drawn from a per-run ChaCha stream on the host. libtorch's generator
//! is global to the process, so two runs in one process (tests, two C-ABI handles on
//! two threads) would draw from each other's stream; these helpers keep every run's
//! randomness its own, identical on CPU and CUDA, and reproducible on resume.

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use tch::{Device, Kind, Tensor};

/// U(lo, hi) floats of the given shape.
pub fn uniform(rng: &mut ChaCha8Rng, shape: &[i64], lo: f64, hi: f64, device: Device) -> Tensor {
    let n: i64 = shape.iter().product();
    let (lo, w) = (lo as f32, (hi - lo) as f32);
    let v: Vec<f32> = (0..n).map(|_| lo + w * rng.random::<f32>()).collect();
    Tensor::from_slice(&v).view(shape).to_device(device)
}

/// Standard normal floats of the given shape.
pub fn normal(rng: &mut ChaCha8Rng, shape: &[i64], device: Device) -> Tensor {
    let n: i64 = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| StandardNormal.sample(rng)).collect();
    Tensor::from_slice(&v).view(shape).to_device(device)
}

/// Boolean mask, true with probability `p`.
pub fn bernoulli(rng: &mut ChaCha8Rng, shape: &[i64], p: f64, device: Device) -> Tensor {
    let n: i64 = shape.iter().product();
    let thr = (p * 4294967296.0).min(4294967295.0) as u32;
    let v: Vec<u8> = (0..n).map(|_| (rng.random::<u32>() < thr) as u8).collect();
    Tensor::from_slice(&v).view(shape).to_device(device).to_kind(Kind::Bool)
}

/// A random permutation of 0..n as an index tensor.
pub fn permutation(rng: &mut ChaCha8Rng, n: usize, device: Device) -> Tensor {
    let mut v: Vec<i64> = (0..n as i64).collect();
    v.shuffle(rng);
    Tensor::from_slice(&v).to_device(device)
}

/// Independent permutations of the rows for every column: index (rows x cols) for `gather(0, ..)`.
pub fn column_permutations(rng: &mut ChaCha8Rng, rows: usize, cols: usize, device: Device) -> Tensor {
    let mut idx = vec![0i64; rows * cols];
    let mut perm: Vec<i64> = (0..rows as i64).collect();
    for j in 0..cols {
        perm.shuffle(rng);
        for (i, &p) in perm.iter().enumerate() {
            idx[i * cols + j] = p;
        }
    }
    Tensor::from_slice(&idx).view([rows as i64, cols as i64]).to_device(device)
}

/// Inverted dropout with rate `p` (identity when p = 0).
pub fn dropout(rng: &mut ChaCha8Rng, x: &Tensor, p: f64) -> Tensor {
    if p <= 0.0 {
        return x.shallow_clone();
    }
    let keep = bernoulli(rng, &x.size(), 1.0 - p, x.device());
    x * keep.to_kind(x.kind()) / (1.0 - p)
}
