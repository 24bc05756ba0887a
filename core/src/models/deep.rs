//! The `Method` implementation every deep method shares: a network type says how it is
//! built, trained and applied; `Deep<N>` keeps it with its parameters and history and
//! does the rest (embedding in blocks, saving and loading the weights).

use super::layers::{self, Named};
use super::{Context, Imputed, Method};
use crate::error::{Error, Result};
use crate::preprocess::Prepared;
use serde_json::Value;
use tch::{nn, Tensor};

pub trait DeepNet: Sized + Send {
    type Params: Send;
    const NAME: &'static str;
    /// Whether training or embedding reads `Prepared::counts` (see `Method::needs_counts`).
    const NEEDS_COUNTS: bool = false;
    /// The network for `n_genes` inputs, initialised from `seed`.
    fn build(p: &Self::Params, n_genes: i64, device: tch::Device, seed: u64) -> Self;
    fn vs(&self) -> &nn::VarStore;
    /// Train on `data`; returns the history (see `Context::fit`).
    fn train(&self, p: &Self::Params, data: &Prepared, ctx: &mut Context) -> Result<Vec<Value>>;
    /// The embedding of a dense block of cells (evaluation mode).
    fn embed(&self, x: &Tensor) -> Tensor;
    /// The embedding of every cell of `data` (networks whose input is not the prepared
    /// values override it).
    fn embed_data(&self, data: &Prepared, ctx: &Context) -> Result<Tensor> {
        Ok(ctx.embed_blocks(data, |x| self.embed(x)))
    }
    /// The imputed matrix of `data`, for networks that impute.
    fn impute(&self, _data: &Prepared, _ctx: &Context) -> Option<Imputed> {
        None
    }
}

pub struct Deep<N: DeepNet> {
    pub p: N::Params,
    net: Option<N>,
    history: Vec<Value>,
}

impl<N: DeepNet> Deep<N> {
    pub fn new(p: N::Params) -> Deep<N> {
        Deep { p, net: None, history: Vec::new() }
    }

    fn net(&self) -> Result<&N> {
        self.net.as_ref().ok_or_else(|| Error::data(format!("{}: the model is not trained or loaded", N::NAME)))
    }
}

impl<N: DeepNet> Method for Deep<N> {
    fn name(&self) -> &'static str {
        N::NAME
    }

    fn fit(&mut self, data: &Prepared, ctx: &mut Context) -> Result<()> {
        let net = N::build(&self.p, data.n_genes() as i64, ctx.device, ctx.seed);
        self.history = net.train(&self.p, data, ctx)?;
        self.net = Some(net);
        Ok(())
    }

    fn embed(&self, data: &Prepared, ctx: &mut Context) -> Result<Tensor> {
        let net = self.net()?;
        net.embed_data(data, ctx)
    }

    fn needs_counts(&self) -> bool {
        N::NEEDS_COUNTS
    }

    fn impute(&self, data: &Prepared, ctx: &mut Context) -> Result<Option<Imputed>> {
        Ok(self.net()?.impute(data, ctx))
    }

    fn history(&self) -> Vec<Value> {
        self.history.clone()
    }

    fn tensors(&self) -> Result<Vec<(String, Tensor)>> {
        Ok(layers::to_cpu(layers::named_vars(self.net()?.vs())))
    }

    fn load_tensors(&mut self, n_genes: usize, device: tch::Device, tensors: &Named, what: &str) -> Result<()> {
        let net = N::build(&self.p, n_genes as i64, device, 0);
        crate::train::copy_named(&layers::named_vars(net.vs()), tensors, what)?;
        self.net = Some(net);
        Ok(())
    }
}
