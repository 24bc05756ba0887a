//! scdeep-core: read count matrices, preprocess them as scanpy does, learn embeddings
//! on libtorch, cluster and score. No FFI and no printing here; front ends convert types.

// `!(x > 0.0)` is how the validations reject NaN along with the out-of-range values.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

pub mod batch;
pub mod cluster;
pub mod config;
pub mod device;
pub mod embedding;
pub mod error;
pub mod fastmath;
#[cfg(feature = "fuzz")]
pub mod fuzz;
pub mod io;
pub mod matrix;
pub mod metrics;
pub mod models;
pub mod pipeline;
pub mod preprocess;
pub mod progress;
pub mod results;
pub mod seed;
pub mod simulate;
pub mod store;
pub mod train;

pub use config::RunConfig;
pub use error::{Error, Result};
pub use matrix::{Csr, Dataset};

pub fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}
