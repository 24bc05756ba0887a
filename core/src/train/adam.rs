//! Adam and AdamW with PyTorch's update rule (torch.optim.Adam / AdamW, foreach=False),
//! written out so the moment estimates can be checkpointed and a resumed run continues
//! exactly where it stopped.

use super::{OptimConfig, ParamGroup};
use crate::error::{Error, Result};
use tch::Tensor;

pub struct Adam {
    /// (stable name, parameter), sorted by name.
    params: Vec<(String, Tensor)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    /// One work buffer per parameter: the update runs without allocating.
    scratch: Vec<Tensor>,
    /// Per parameter: (learning-rate multiplier, weight decay); (1, cfg's) unless a
    /// `ParamGroup` matched its name.
    groups: Vec<(f64, f64)>,
    pub step: i64,
    cfg: OptimConfig,
    /// Use the single-pass CPU update where it applies (true unless turned off).
    pub fused: bool,
}

/// The update of one parameter in a single pass over contiguous f32 CPU memory (the
/// tensor path below makes seven passes; with small batches Adam dominated the step).
/// Same rule: g' = g + wd·p (L2) or p ← p(1 − lr·wd) (decoupled); m ← m + (1−b1)(g' − m);
/// v ← v + (1−b2)(g'² − v); p ← p − step_size·m / (√v/√bc2 + eps). Returns false (and
/// does nothing) for tensors it does not handle.
#[allow(clippy::type_complexity)]
fn fused_cpu_step(p: &Tensor, g: &Tensor, m: &Tensor, v: &Tensor, c: (f64, f64, f64, f64, f64, f64, f64, bool)) -> bool {
    let ok = |t: &Tensor| t.device() == tch::Device::Cpu && t.kind() == tch::Kind::Float && t.is_contiguous();
    if !(ok(p) && ok(g) && ok(m) && ok(v)) {
        return false;
    }
    let n = p.numel();
    if g.numel() != n || m.numel() != n || v.numel() != n {
        return false;
    }
    let (b1, b2, bc2_sqrt, step_size, lr, wd, eps, decoupled) = c;
    let (b1, b2, bc2_sqrt, step_size, eps) = (b1 as f32, b2 as f32, bc2_sqrt as f32, step_size as f32, eps as f32);
    let (l2, decay) = if decoupled { (0f32, (1.0 - lr * wd) as f32) } else { (wd as f32, 1f32) };
    // SAFETY: four distinct, contiguous f32 CPU buffers of n elements (checked above); the
    // parameter, its gradient and the two moment buffers never share storage, and no
    // other reference reads them during the step (under no_grad, single thread).
    let (ps, gs, ms, vs) = unsafe {
        (
            std::slice::from_raw_parts_mut(p.data_ptr() as *mut f32, n),
            std::slice::from_raw_parts(g.data_ptr() as *const f32, n),
            std::slice::from_raw_parts_mut(m.data_ptr() as *mut f32, n),
            std::slice::from_raw_parts_mut(v.data_ptr() as *mut f32, n),
        )
    };
    for (((p, &g), m), v) in ps.iter_mut().zip(gs).zip(ms.iter_mut()).zip(vs.iter_mut()) {
        let g = g + l2 * *p;
        *p *= decay;
        *m += (1.0 - b1) * (g - *m);
        *v += (1.0 - b2) * (g * g - *v);
        *p -= step_size * *m / (v.sqrt() / bc2_sqrt + eps);
    }
    true
}

impl Adam {
    pub fn new(mut params: Vec<(String, Tensor)>, cfg: OptimConfig) -> Adam {
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let m = params.iter().map(|(_, p)| p.zeros_like().detach()).collect();
        let v = params.iter().map(|(_, p)| p.zeros_like().detach()).collect();
        let scratch = params.iter().map(|(_, p)| p.zeros_like().detach()).collect();
        let groups = vec![(1.0, cfg.weight_decay); params.len()];
        Adam { params, m, v, scratch, groups, step: 0, cfg, fused: true }
    }

    /// Give the parameters whose names start with a group's prefix that group's learning
    /// rate (a multiple of the scheduled one) and weight decay, as torch.optim's parameter
    /// groups do; the first matching group wins.
    pub fn with_groups(mut self, groups: &[ParamGroup]) -> Adam {
        for ((name, _), slot) in self.params.iter().zip(self.groups.iter_mut()) {
            if let Some(g) = groups.iter().find(|g| name.starts_with(&g.prefix)) {
                *slot = (g.lr_scale, g.weight_decay);
            }
        }
        self
    }

    pub fn zero_grad(&mut self) {
        for (_, p) in self.params.iter_mut() {
            p.zero_grad();
        }
    }

    /// One update with learning rate `lr` (the schedule's value for this epoch).
    pub fn step(&mut self, lr: f64) {
        self.step += 1;
        let (b1, b2) = (self.cfg.beta1, self.cfg.beta2);
        let bc1 = 1.0 - b1.powi(self.step as i32);
        let bc2_sqrt = (1.0 - b2.powi(self.step as i32)).sqrt();
        let (eps, decoupled) = (self.cfg.eps, self.cfg.kind == super::OptimKind::Adamw);
        tch::no_grad(|| {
            for (i, (_, p)) in self.params.iter().enumerate() {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let (lr, wd) = (lr * self.groups[i].0, self.groups[i].1);
                let step_size = lr / bc1;
                if self.fused && fused_cpu_step(p, &g, &self.m[i], &self.v[i], (b1, b2, bc2_sqrt, step_size, lr, wd, eps, decoupled)) {
                    continue;
                }
                let mut p = p.shallow_clone();
                let g = if wd != 0.0 && !decoupled { &g + &p * wd } else { g };
                if wd != 0.0 && decoupled {
                    let _ = p.g_mul_scalar_(1.0 - lr * wd);
                }
                let s = &mut self.scratch[i];
                // m <- b1 m + (1-b1) g ; v <- b2 v + (1-b2) g^2
                let _ = self.m[i].lerp_(&g, 1.0 - b1);
                let _ = g.square_out(s);
                let _ = self.v[i].lerp_(s, 1.0 - b2);
                // p <- p - step_size m / (sqrt(v)/sqrt(bc2) + eps), written as
                // p + m / s with s = -(sqrt(v)/sqrt(bc2) + eps) / step_size.
                let _ = self.v[i].sqrt_out(s);
                let _ = s.g_mul_scalar_(-1.0 / (bc2_sqrt * step_size));
                let _ = s.g_add_scalar_(-eps / step_size);
                let _ = p.addcdiv_(&self.m[i], s);
            }
        });
    }

    /// Optimiser state as named tensors (for checkpoints).
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::with_capacity(2 * self.params.len());
        for (i, (name, _)) in self.params.iter().enumerate() {
            out.push((format!("adam.m.{name}"), self.m[i].shallow_clone()));
            out.push((format!("adam.v.{name}"), self.v[i].shallow_clone()));
        }
        out
    }

    /// Restore the state written by `state`.
    pub fn load_state(&mut self, named: &std::collections::HashMap<String, Tensor>, step: i64) -> Result<()> {
        for (i, (name, p)) in self.params.iter().enumerate() {
            for (prefix, slot) in [("adam.m.", &mut self.m[i]), ("adam.v.", &mut self.v[i])] {
                let key = format!("{prefix}{name}");
                let t = named.get(&key).ok_or_else(|| Error::Numeric(format!("checkpoint lacks optimiser tensor `{key}`")))?;
                if t.size() != p.size() {
                    return Err(Error::Numeric(format!(
                        "checkpoint tensor `{key}` has shape {:?}, the model needs {:?}",
                        t.size(),
                        p.size()
                    )));
                }
                *slot = t.to_device(p.device()).detach();
            }
        }
        self.step = step;
        Ok(())
    }
}
