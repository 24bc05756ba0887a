//! Training checkpoints: `checkpoint-<epoch>.safetensors` (weights + Adam moments) and
//! `checkpoint.json` (epochs done, optimiser step, history, the run's fingerprint, and
//! the name of its weights file). The weights go to a new file, then the JSON is
//! renamed into place: that rename switches both at once, so a crash or signal at any
//! point leaves either the previous checkpoint or the new one, never a mix. Older
//! weights files are removed after the switch.

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
        let mut named: Vec<(String, Tensor)> =
            params.iter().map(|(n, t)| (format!("model.{n}"), t.detach().to_device(tch::Device::Cpu))).collect();
        named.extend(opt.state().into_iter().map(|(n, t)| (n, t.to_device(tch::Device::Cpu))));
        let wname = format!("checkpoint-{epochs_done}.safetensors");
        let w = self.dir.join(&wname);
        let wtmp = self.dir.join(format!(".{wname}.tmp"));
        Tensor::write_safetensors(&named, &wtmp).map_err(|e| Error::io(&wtmp, e))?;
        std::fs::rename(&wtmp, &w).map_err(|e| Error::io(&w, e))?;
        let meta = json!({"epochs_done": epochs_done, "optimizer_step": opt.step, "history": history, "fingerprint": self.fingerprint, "weights": wname});
        let mtmp = self.dir.join(format!(".{META}.tmp"));
        let text = serde_json::to_string_pretty(&meta).map_err(|e| Error::Numeric(e.to_string()))?;
        std::fs::write(&mtmp, text).map_err(|e| Error::io(&mtmp, e))?;
        let m = self.dir.join(META);
        std::fs::rename(&mtmp, &m).map_err(|e| Error::io(&m, e))?;
        // The switch is done: weights of earlier checkpoints are no longer referenced.
        for old in std::fs::read_dir(&self.dir).map_err(|e| Error::io(&self.dir, e))?.filter_map(|e| e.ok()) {
            let n = old.file_name().to_string_lossy().to_string();
            if n != wname && (n == WEIGHTS || (n.starts_with("checkpoint-") && n.ends_with(".safetensors"))) {
                let _ = std::fs::remove_file(old.path());
            }
        }
        Ok(())
    }

    /// Restore weights and optimiser state; `None` when the folder holds no checkpoint.
    pub fn load(&self, params: &[(String, Tensor)], opt: &mut Adam) -> Result<Option<(usize, History)>> {
        let m = self.dir.join(META);
        if !m.exists() {
            return Ok(None);
        }
        let meta = crate::io::write::read_json(&m)?;
        if let Some(diff) = first_difference(&meta["fingerprint"], &self.fingerprint, "") {
            return Err(Error::format(
                &m,
                format!("written by a different run ({diff} differs); use another checkpoint folder or drop --resume"),
            ));
        }
        let epochs_done = meta["epochs_done"].as_u64().ok_or_else(|| Error::format(&m, "field `epochs_done` missing"))? as usize;
        let step = meta["optimizer_step"].as_i64().ok_or_else(|| Error::format(&m, "field `optimizer_step` missing"))?;
        let history: History = meta["history"].as_array().cloned().ok_or_else(|| Error::format(&m, "field `history` missing"))?;
        // Checkpoints written before the weights file was named in the JSON use WEIGHTS.
        let wname = meta["weights"].as_str().unwrap_or(WEIGHTS);
        if wname.contains('/') || wname.starts_with('.') {
            return Err(Error::format(&m, format!("field `weights` = {wname:?} is not a file name")));
        }
        let w = self.dir.join(wname);
        let named: HashMap<String, Tensor> =
            Tensor::read_safetensors(&w).map_err(|e| Error::format(&w, e.to_string()))?.into_iter().collect();
        let model: HashMap<String, Tensor> =
            named.iter().filter_map(|(k, t)| k.strip_prefix("model.").map(|n| (n.to_string(), t.shallow_clone()))).collect();
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
