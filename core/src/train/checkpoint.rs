//! Training checkpoints: `checkpoint.safetensors` (weights + Adam moments) and
//! `checkpoint.json` (epochs done, optimiser step, history, the run's fingerprint).
//! Both are written to temporary names and renamed, the JSON last, so a crash while
//! writing leaves the previous checkpoint usable.

use super::{Adam, History};
use crate::error::{Error, Result};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use tch::Tensor;

pub struct Checkpoint {
    pub dir: PathBuf,
    fingerprint: Value,
}

const WEIGHTS: &str = "checkpoint.safetensors";
const META: &str = "checkpoint.json";

impl Checkpoint {
    pub fn new(dir: &str, fingerprint: &Value) -> Checkpoint {
        Checkpoint { dir: PathBuf::from(dir), fingerprint: fingerprint.clone() }
    }

    pub fn save(&self, epochs_done: usize, history: &History, params: &[(String, Tensor)], opt: &Adam) -> Result<()> {
        std::fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        let mut named: Vec<(String, Tensor)> = params.iter().map(|(n, t)| (format!("model.{n}"), t.detach().to_device(tch::Device::Cpu))).collect();
        named.extend(opt.state().into_iter().map(|(n, t)| (n, t.to_device(tch::Device::Cpu))));
        let wtmp = self.dir.join(format!(".{WEIGHTS}.tmp"));
        Tensor::write_safetensors(&named, &wtmp).map_err(|e| Error::io(&wtmp, e))?;
        let meta = json!({"epochs_done": epochs_done, "optimizer_step": opt.step, "history": history, "fingerprint": self.fingerprint});
        let mtmp = self.dir.join(format!(".{META}.tmp"));
        std::fs::write(&mtmp, serde_json::to_string_pretty(&meta).unwrap()).map_err(|e| Error::io(&mtmp, e))?;
        let w = self.dir.join(WEIGHTS);
        std::fs::rename(&wtmp, &w).map_err(|e| Error::io(&w, e))?;
        let m = self.dir.join(META);
        std::fs::rename(&mtmp, &m).map_err(|e| Error::io(&m, e))
    }

    /// Restore weights and optimiser state; `None` when the folder holds no checkpoint.
    pub fn load(&self, params: &[(String, Tensor)], opt: &mut Adam) -> Result<Option<(usize, History)>> {
        let m = self.dir.join(META);
        if !m.exists() {
            return Ok(None);
        }
        let meta = crate::io::write::read_json(&m)?;
        if let Some(diff) = first_difference(&meta["fingerprint"], &self.fingerprint, "") {
            return Err(Error::format(&m, format!("written by a different run ({diff} differs); use another checkpoint folder or drop --resume")));
        }
        let epochs_done = meta["epochs_done"].as_u64().ok_or_else(|| Error::format(&m, "field `epochs_done` missing"))? as usize;
        let step = meta["optimizer_step"].as_i64().ok_or_else(|| Error::format(&m, "field `optimizer_step` missing"))?;
        let history: History = meta["history"].as_array().cloned().ok_or_else(|| Error::format(&m, "field `history` missing"))?;
        let w = self.dir.join(WEIGHTS);
        let named: HashMap<String, Tensor> = Tensor::read_safetensors(&w).map_err(|e| Error::format(&w, e.to_string()))?.into_iter().collect();
        let model: HashMap<String, Tensor> = named.iter().filter_map(|(k, t)| k.strip_prefix("model.").map(|n| (n.to_string(), t.shallow_clone()))).collect();
        super::copy_named(params, &model, &w.display().to_string())?;
        opt.load_state(&named, step)?;
        Ok(Some((epochs_done, history)))
    }
}

/// The dotted path of the first field where two JSON values differ.
pub fn first_difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys()) {
                let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                if let Some(d) = first_difference(x.get(k).unwrap_or(&Value::Null), y.get(k).unwrap_or(&Value::Null), &p) {
                    return Some(d);
                }
            }
            None
        }
        _ if a == b => None,
        _ => Some(if path.is_empty() { "(root)".into() } else { path.to_string() }),
    }
}
