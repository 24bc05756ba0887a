//! Batches: several samples, donors or protocols in one dataset. Correction of an
//! embedding so that cells cluster by type rather than by batch (Harmony).

pub mod harmony;

pub use harmony::{harmony, Harmonized, HarmonyConfig};
