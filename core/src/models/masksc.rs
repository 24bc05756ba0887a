//! mask-sc (Mo, Chen & Bai), specs §4: masked expression modelling with a patch
//! transformer. Each cell's genes, ordered by mean expression (highest first) and
//! zero-padded, fill a `grid` x `grid` matrix; `patch` x `patch` patches become tokens
//! (a linear map of the flattened patch, which is the stride = kernel convolution), with
//! fixed 2-D sin-cos positions and a learnable class token. 75 % of the patches are
//! masked per cell; a pre-norm ViT encodes the class token and the visible patches, a
//! lighter decoder sees them with a shared mask token at every masked position and
//! predicts the masked patches' values, normalised per patch (MAE's norm_pix_loss). The
//! embedding is the mean of the encoder's patch tokens on the unmasked matrix.
//!
//! Presets: `small` (depth 4, width 256, 8 heads; decoder depth 2, width 128, 4 heads),
//! the CPU default, and `paper` (depth 12, width 768, 12 heads; decoder depth 8, width
//! 512, 16 heads). Each of those numbers can also be set on its own.
//!
//! `target = "seqfeat"`: the paper's target, features of a frozen contrastive-sc encoder
//! (specs §4 \[PROP\]). Before the transformer trains, a contrastive-sc encoder (its default
//! architecture and training, `seqfeat_epochs` epochs) learns from every cell's matrix rows
//! (grid genes each) as samples, and is frozen; a masked patch's target is the mean of its
//! encoder's embeddings of the `patch` rows the patch spans, and the decoder ends in a
//! linear head to that embedding's size. `norm_pix_loss` applies to the pixel target only.

use super::contrastive;
use super::deep::DeepNet;
use super::layers;
use super::Context;
use super::MethodInfo;
use crate::cluster::{Algorithm, ClusterConfig};
use crate::error::{Error, Result};
use crate::preprocess::Prepared;
use crate::preprocess::Recipe;
use crate::train::TrainConfig;
use crate::train::{random, Batcher, StepCtx, TrainStep};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

/// This method's entry in the registry (`models::METHODS`): its defaults live here.
pub const INFO: MethodInfo = MethodInfo {
    name: "mask-sc",
    description: "mask-sc: masked patch modelling of each cell's 64x64 gene matrix with a ViT encoder-decoder (small preset by default)",
    reference: "Mo, Chen & Bai (course report); specs §4",
    params: || super::params_json(&MaskscParams::default()),
    recipe: Recipe::Dca,
    n_top_genes: 4096,
    train: train_defaults,
    cluster: || ClusterConfig { algorithm: Algorithm::Kmeans, ..ClusterConfig::default() },
    build: |v| Ok(Box::new(super::deep::Deep::<Net>::new(MaskscParams::from_json(v)?))),
};

/// Default training options.
fn train_defaults() -> TrainConfig {
    // specs §4: AdamW lr 1e-4, betas (0.9, 0.95), batch 256 [P]; weight decay 0.05 with
    // warm-up and cosine decay as the public README (MAE's recipe). The paper trains 1600
    // epochs; 200 (10 warm-up) here, where the small preset runs on CPUs.
    TrainConfig {
        epochs: 200,
        batch_size: 256,
        drop_last: false,
        optimizer: crate::train::OptimConfig {
            kind: crate::train::OptimKind::Adamw,
            lr: 1e-4,
            beta1: 0.9,
            beta2: 0.95,
            weight_decay: 0.05,
            ..Default::default()
        },
        schedule: crate::train::Schedule::Cosine,
        warmup_epochs: 10,
        embed_batch_size: 256,
        ..TrainConfig::default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    Small,
    Paper,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// The masked patches' values, normalised per patch (default).
    Pixel,
    /// Features of a frozen contrastive-sc encoder trained on the matrix rows.
    Seqfeat,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MaskscParams {
    pub preset: Preset,
    /// Side of the gene matrix: grid^2 genes (64 -> 4096).
    pub grid: usize,
    /// Side of a patch (grid must be a multiple).
    pub patch: usize,
    pub mask_ratio: f64,
    pub target: Target,
    /// Normalise each target patch to mean 0, variance 1 (MAE's norm_pix_loss).
    pub norm_pix_loss: bool,
    pub mlp_ratio: f64,
    /// Training epochs of the contrastive-sc row encoder (target "seqfeat").
    pub seqfeat_epochs: usize,
    /// The following default to the preset's values.
    pub depth: Option<usize>,
    pub width: Option<usize>,
    pub heads: Option<usize>,
    pub decoder_depth: Option<usize>,
    pub decoder_width: Option<usize>,
    pub decoder_heads: Option<usize>,
}

impl Default for MaskscParams {
    fn default() -> Self {
        MaskscParams {
            preset: Preset::Small,
            grid: 64,
            patch: 4,
            mask_ratio: 0.75,
            target: Target::Pixel,
            norm_pix_loss: true,
            mlp_ratio: 4.0,
            seqfeat_epochs: 30,
            depth: None,
            width: None,
            heads: None,
            decoder_depth: None,
            decoder_width: None,
            decoder_heads: None,
        }
    }
}

/// The resolved architecture.
#[derive(Debug, Clone, Copy)]
struct Arch {
    depth: usize,
    width: i64,
    heads: i64,
    dec_depth: usize,
    dec_width: i64,
    dec_heads: i64,
}

impl MaskscParams {
    pub fn from_json(v: &Value) -> Result<MaskscParams> {
        let p: MaskscParams = crate::error::from_json_at("params", v.clone())?;
        if p.target == Target::Seqfeat && p.seqfeat_epochs == 0 {
            return Err(Error::config("params.seqfeat_epochs", 0, "must be >= 1 with target \"seqfeat\""));
        }
        if p.patch == 0 || p.grid == 0 || p.grid % p.patch != 0 {
            return Err(Error::config("params.patch", p.patch, format!("must be >= 1 and divide params.grid ({})", p.grid)));
        }
        let n = p.n_patches() as usize;
        if !(p.mask_ratio >= 0.0 && p.mask_ratio < 1.0) || p.n_keep() == 0 || p.n_keep() > n {
            return Err(Error::config(
                "params.mask_ratio",
                p.mask_ratio,
                format!("must be in [0, 1) and leave at least one of the {n} patches visible"),
            ));
        }
        if !(p.mlp_ratio > 0.0 && p.mlp_ratio.is_finite()) {
            return Err(Error::config("params.mlp_ratio", p.mlp_ratio, "must be > 0"));
        }
        let a = p.arch();
        for (name, w, h) in [("width", a.width, a.heads), ("decoder_width", a.dec_width, a.dec_heads)] {
            if w == 0 || h == 0 || w % h != 0 {
                return Err(Error::config(&format!("params.{name}"), w, format!("must be >= 1 and a multiple of the heads ({h})")));
            }
        }
        if a.depth == 0 || a.dec_depth == 0 {
            return Err(Error::config("params.depth", format!("{} / decoder {}", a.depth, a.dec_depth), "must be >= 1"));
        }
        Ok(p)
    }

    fn arch(&self) -> Arch {
        let (d, w, h, dd, dw, dh) = match self.preset {
            Preset::Small => (4, 256, 8, 2, 128, 4),
            Preset::Paper => (12, 768, 12, 8, 512, 16),
        };
        Arch {
            depth: self.depth.unwrap_or(d),
            width: self.width.unwrap_or(w) as i64,
            heads: self.heads.unwrap_or(h) as i64,
            dec_depth: self.decoder_depth.unwrap_or(dd),
            dec_width: self.decoder_width.unwrap_or(dw) as i64,
            dec_heads: self.decoder_heads.unwrap_or(dh) as i64,
        }
    }

    /// Genes the grid x grid matrix holds.
    fn matrix_genes(&self) -> usize {
        self.grid * self.grid
    }

    fn n_patches(&self) -> i64 {
        ((self.grid / self.patch) * (self.grid / self.patch)) as i64
    }

    /// Visible patches per cell: MAE's int(N * (1 - mask_ratio)).
    fn n_keep(&self) -> usize {
        (self.n_patches() as f64 * (1.0 - self.mask_ratio)) as usize
    }
}

/// Linear layer initialised as MAE does: Xavier-uniform weights, zero bias.
fn linear_mae(p: nn::Path, fan_in: i64, fan_out: i64, rng: &mut ChaCha8Rng) -> nn::Linear {
    let l = layers::linear_xavier(p, fan_in, fan_out, rng);
    if let Some(b) = &l.bs {
        tch::no_grad(|| {
            let _ = b.shallow_clone().zero_();
        });
    }
    l
}

/// Pre-norm transformer block: x + MHA(LN(x)); x + MLP(LN(x)) with GELU.
struct Block {
    ln1: nn::LayerNorm,
    qkv: nn::Linear,
    proj: nn::Linear,
    ln2: nn::LayerNorm,
    fc1: nn::Linear,
    fc2: nn::Linear,
    heads: i64,
}

impl Block {
    fn new(p: nn::Path, width: i64, heads: i64, mlp_ratio: f64, rng: &mut ChaCha8Rng) -> Block {
        let hidden = (width as f64 * mlp_ratio) as i64;
        Block {
            ln1: layers::layer_norm(&p / "ln1", width),
            qkv: linear_mae(&p / "qkv", width, 3 * width, rng),
            proj: linear_mae(&p / "proj", width, width, rng),
            ln2: layers::layer_norm(&p / "ln2", width),
            fc1: linear_mae(&p / "fc1", width, hidden, rng),
            fc2: linear_mae(&p / "fc2", hidden, width, rng),
            heads,
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let (b, t, d) = x.size3().unwrap();
        let qkv = self.qkv.forward(&self.ln1.forward(x)).view([b, t, 3, self.heads, d / self.heads]).permute([2, 0, 3, 1, 4]);
        let (q, k, v) = (qkv.get(0), qkv.get(1), qkv.get(2));
        let a = Tensor::scaled_dot_product_attention(&q, &k, &v, None::<Tensor>, 0.0, false, None, false);
        let x = x + self.proj.forward(&a.transpose(1, 2).reshape([b, t, d]));
        let m = self.fc2.forward(&self.fc1.forward(&self.ln2.forward(&x)).gelu("none"));
        x + m
    }
}

/// Fixed 2-D sin-cos positions (MAE's get_2d_sincos_pos_embed): n x n grid -> n^2 x dim,
/// half of the dimensions for the row coordinate, half for the column.
fn sincos_2d(n: i64, dim: i64, device: tch::Device) -> Tensor {
    let quarter = dim / 4;
    let omega: Vec<f64> = (0..quarter).map(|i| 1.0 / 10000f64.powf(i as f64 / quarter as f64)).collect();
    let mut out = vec![0f32; (n * n * dim) as usize];
    for r in 0..n {
        for c in 0..n {
            let row = &mut out[((r * n + c) * dim) as usize..((r * n + c + 1) * dim) as usize];
            // MAE: the first half embeds the grid's w (column) coordinate, the second h (row)
            for (half, pos) in [(0usize, c as f64), (1usize, r as f64)] {
                for (i, w) in omega.iter().enumerate() {
                    let base = half * (dim as usize / 2);
                    row[base + i] = (pos * w).sin() as f32;
                    row[base + quarter as usize + i] = (pos * w).cos() as f32;
                }
            }
        }
    }
    Tensor::from_slice(&out).view([n * n, dim]).to_device(device)
}

pub struct Net {
    vs: nn::VarStore,
    p: MaskscParams,
    /// grid^2 column indices into [x, 0]: the genes by decreasing mean, then padding.
    order: Tensor,
    patch_embed: nn::Linear,
    cls: Tensor,
    pos: Tensor,
    blocks: Vec<Block>,
    norm: nn::LayerNorm,
    dec_embed: nn::Linear,
    mask_token: Tensor,
    dec_pos: Tensor,
    dec_blocks: Vec<Block>,
    dec_norm: nn::LayerNorm,
    dec_pred: nn::Linear,
}

impl Net {
    fn new(p: &MaskscParams, g: i64, device: tch::Device, seed: u64) -> Net {
        let a = p.arch();
        let vs = nn::VarStore::new(device);
        let rng = &mut crate::seed::rng_for(seed, crate::seed::INIT_STREAM);
        let root = vs.root();
        let pp = (p.patch * p.patch) as i64;
        let side = (p.grid / p.patch) as i64;
        let cells = p.matrix_genes() as i64;
        // the order is set from the data when training starts (and loaded with a model)
        let order = root.ones_no_train("gene_order", &[cells]);
        tch::no_grad(|| {
            let ids: Vec<f32> = (0..cells).map(|i| i.min(g) as f32).collect();
            order.shallow_clone().copy_(&Tensor::from_slice(&ids).to_device(device));
        });
        let patch_embed = linear_mae(&root / "patch_embed", pp, a.width, rng);
        let cls = root.var("cls_token", &[1, 1, a.width], nn::Init::Const(0.0));
        let mask_token = root.var("mask_token", &[1, 1, a.dec_width], nn::Init::Const(0.0));
        tch::no_grad(|| {
            cls.shallow_clone().copy_(&(random::normal(rng, &[1, 1, a.width], device) * 0.02));
            mask_token.shallow_clone().copy_(&(random::normal(rng, &[1, 1, a.dec_width], device) * 0.02));
        });
        let blocks = (0..a.depth).map(|i| Block::new(&root / "encoder" / i, a.width, a.heads, p.mlp_ratio, rng)).collect();
        let norm = layers::layer_norm(&root / "norm", a.width);
        let dec_embed = linear_mae(&root / "decoder_embed", a.width, a.dec_width, rng);
        let dec_blocks = (0..a.dec_depth).map(|i| Block::new(&root / "decoder" / i, a.dec_width, a.dec_heads, p.mlp_ratio, rng)).collect();
        let dec_norm = layers::layer_norm(&root / "decoder_norm", a.dec_width);
        let out = match p.target {
            Target::Pixel => pp,
            Target::Seqfeat => contrastive::ContrastiveParams::default().latent_dim as i64,
        };
        let dec_pred = linear_mae(&root / "decoder_pred", a.dec_width, out, rng);
        Net {
            pos: sincos_2d(side, a.width, device),
            dec_pos: sincos_2d(side, a.dec_width, device),
            vs,
            p: p.clone(),
            order,
            patch_embed,
            cls,
            blocks,
            norm,
            dec_embed,
            mask_token,
            dec_blocks,
            dec_norm,
            dec_pred,
        }
    }

    /// Genes by decreasing mean of the prepared (log-normalised, unscaled) values.
    fn set_order(&self, data: &Prepared) {
        let g = data.n_genes();
        let (_, sums) = data.x.col_nnz_and_sums();
        let mut genes: Vec<usize> = (0..g).collect();
        genes.sort_by(|&a, &b| sums[b].total_cmp(&sums[a]).then(a.cmp(&b)));
        let cells = self.p.matrix_genes();
        let ids: Vec<f32> = (0..cells).map(|i| genes.get(i).copied().unwrap_or(g) as f32).collect();
        tch::no_grad(|| self.order.shallow_clone().copy_(&Tensor::from_slice(&ids).to_device(self.order.device())));
    }

    /// Cells (B x G) -> their gene matrices, flattened row by row (B x grid^2).
    fn matrix(&self, x: &Tensor) -> Tensor {
        let b = x.size()[0];
        let padded = Tensor::cat(&[x.shallow_clone(), Tensor::zeros([b, 1], (x.kind(), x.device()))], 1);
        padded.index_select(1, &self.order.to_kind(Kind::Int64))
    }

    /// Cells (B x G) -> the rows of their matrices (B·grid x grid).
    fn matrix_rows(&self, x: &Tensor) -> Tensor {
        let g = self.p.grid as i64;
        self.matrix(x).view([-1, g])
    }

    /// Cells (B x G) -> patches (B x N x patch^2).
    fn patchify(&self, x: &Tensor) -> Tensor {
        let b = x.size()[0];
        let (s, p) = ((self.p.grid / self.p.patch) as i64, self.p.patch as i64);
        self.matrix(x).view([b, s, p, s, p]).permute([0, 1, 3, 2, 4]).reshape([b, s * s, p * p])
    }

    /// seqfeat targets (B x N x L): each patch gets the mean of the frozen encoder's
    /// embeddings of the `patch` matrix rows it spans.
    fn seqfeat_targets(&self, x: &Tensor, seq: &contrastive::Net) -> Tensor {
        let b = x.size()[0];
        let (s, p) = ((self.p.grid / self.p.patch) as i64, self.p.patch as i64);
        let e = tch::no_grad(|| seq.embed(&self.matrix_rows(x)));
        let l = e.size()[1];
        let band = e.view([b, s, p, l]).mean_dim(2, false, Kind::Float);
        band.unsqueeze(2).expand([b, s, s, l], false).reshape([b, s * s, l])
    }

    fn encode_tokens(&self, tokens: &Tensor) -> Tensor {
        let b = tokens.size()[0];
        let cls = self.cls.expand([b, 1, -1], false);
        let h = Tensor::cat(&[cls, tokens.shallow_clone()], 1);
        let h = self.blocks.iter().fold(h, |h, blk| blk.forward(&h));
        self.norm.forward(&h)
    }

    /// The masked-patch loss of a batch; `noise` (B x N uniform) picks the visible patches;
    /// `row_encoder` is the frozen encoder of the seqfeat target.
    fn loss(&self, x: &Tensor, noise: &Tensor, row_encoder: Option<&contrastive::Net>) -> Tensor {
        let patches = self.patchify(x);
        let (b, n, _) = patches.size3().unwrap();
        let tokens = self.patch_embed.forward(&patches) + self.pos.unsqueeze(0);
        let keep = self.p.n_keep() as i64;
        let shuffle = noise.argsort(1, false);
        let restore = shuffle.argsort(1, false);
        let ids_keep = shuffle.narrow(1, 0, keep);
        let visible = tokens.gather(1, &ids_keep.unsqueeze(2).expand([b, keep, tokens.size()[2]], false), false);
        let h = self.encode_tokens(&visible);
        // decoder: visible tokens, then mask tokens, put back in patch order
        let d = self.dec_embed.forward(&h);
        let dw = d.size()[2];
        let masked = self.mask_token.expand([b, n - keep, dw], false);
        let seq = Tensor::cat(&[d.narrow(1, 1, keep), masked], 1);
        let seq = seq.gather(1, &restore.unsqueeze(2).expand([b, n, dw], false), false) + self.dec_pos.unsqueeze(0);
        let y = Tensor::cat(&[d.narrow(1, 0, 1), seq], 1);
        let y = self.dec_blocks.iter().fold(y, |y, blk| blk.forward(&y));
        let pred = self.dec_pred.forward(&self.dec_norm.forward(&y)).narrow(1, 1, n);
        let target = if let Some(enc) = row_encoder {
            self.seqfeat_targets(x, enc)
        } else if self.p.norm_pix_loss {
            let mean = patches.mean_dim(-1, true, Kind::Float);
            let var = patches.var_dim(-1, true, true);
            (&patches - mean) / (var + 1e-6).sqrt()
        } else {
            patches
        };
        // 1 on masked patches: ranks >= keep in the shuffled order
        let mask = restore.ge(keep).to_kind(Kind::Float);
        let per_patch = (pred - target).square().mean_dim(-1, false, Kind::Float);
        (per_patch * &mask).sum(Kind::Float) / mask.sum(Kind::Float)
    }

    /// The seqfeat target's contrastive-sc encoder, trained on every cell's matrix rows
    /// with contrastive-sc's default options for `seqfeat_epochs` epochs.
    fn train_row_encoder(&self, p: &MaskscParams, batcher: &Batcher, ctx: &mut Context) -> Result<contrastive::Net> {
        let g = p.grid;
        let mut rows: Vec<f32> = Vec::with_capacity(batcher.n_rows() * p.matrix_genes());
        tch::no_grad(|| -> Result<()> {
            for block in batcher.blocks(ctx.train.embed_batch_size) {
                let m = self.matrix_rows(&batcher.dense(&block)).to_device(tch::Device::Cpu);
                rows.extend(Vec::<f32>::try_from(&m.reshape([-1])).map_err(|e| Error::Numeric(e.to_string()))?);
            }
            Ok(())
        })?;
        let n = rows.len() / g;
        let rows = crate::matrix::Csr::from_dense(n, g, &rows);
        let cfg = crate::train::TrainConfig { epochs: p.seqfeat_epochs, ..(super::info(contrastive::Net::NAME)?.train)() };
        ctx.progress
            .message(&format!("seqfeat target: training a contrastive-sc encoder on {n} matrix rows of {g} genes ({} epochs)", cfg.epochs));
        let (net, loss) = contrastive::train_encoder(
            &contrastive::ContrastiveParams::default(),
            &Batcher::with_scaler(&rows, None, ctx.device),
            &cfg,
            ctx.seed,
            &mut *ctx.progress,
        )?;
        ctx.progress.message(&format!("seqfeat target: row encoder trained (final NT-Xent loss {loss:.4}); frozen"));
        Ok(net)
    }

    fn embed_cells(&self, x: &Tensor) -> Tensor {
        let tokens = self.patch_embed.forward(&self.patchify(x)) + self.pos.unsqueeze(0);
        let h = self.encode_tokens(&tokens);
        let n = h.size()[1] - 1;
        h.narrow(1, 1, n).mean_dim(1, false, Kind::Float)
    }
}

struct Step<'n> {
    net: &'n Net,
    /// The frozen contrastive-sc row encoder (target "seqfeat").
    seq: Option<contrastive::Net>,
}

impl TrainStep for Step<'_> {
    fn parameters(&self) -> Vec<(String, Tensor)> {
        layers::named_vars(&self.net.vs).into_iter().filter(|(_, t)| t.requires_grad()).collect()
    }

    fn losses(&mut self, x: &Tensor, _rows: &[usize], ctx: &mut StepCtx) -> Result<Vec<(&'static str, Tensor)>> {
        let noise = random::uniform(ctx.rng, &[x.size()[0], self.net.p.n_patches()], 0.0, 1.0, x.device());
        Ok(vec![("masked_patch_loss", self.net.loss(x, &noise, self.seq.as_ref()))])
    }
}

impl DeepNet for Net {
    type Params = MaskscParams;
    const NAME: &'static str = "mask-sc";

    fn build(p: &MaskscParams, n_genes: i64, device: tch::Device, seed: u64) -> Net {
        Net::new(p, n_genes, device, seed)
    }

    fn vs(&self) -> &nn::VarStore {
        &self.vs
    }

    fn train(&self, p: &MaskscParams, data: &Prepared, ctx: &mut Context) -> Result<Vec<Value>> {
        let cells = p.matrix_genes();
        if data.n_genes() > cells {
            ctx.progress.message(&format!(
                "warning: mask-sc's {g}x{g} matrix holds {cells} genes; {} of the {} selected genes (the lowest means) are left out; set preprocess.n_top_genes to {cells} to select that many HVGs",
                data.n_genes() - cells,
                data.n_genes(),
                g = p.grid
            ));
        }
        self.set_order(data);
        let batcher = Batcher::new(data, ctx.device);
        let seq = match p.target {
            Target::Pixel => None,
            Target::Seqfeat => Some(self.train_row_encoder(p, &batcher, ctx)?),
        };
        ctx.fit(&mut Step { net: self, seq }, &batcher)
    }

    fn embed(&self, x: &Tensor) -> Tensor {
        self.embed_cells(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patches_follow_the_gene_order_and_masking_hides_three_quarters() {
        let p = MaskscParams {
            grid: 8,
            patch: 2,
            depth: Some(1),
            width: Some(16),
            heads: Some(2),
            decoder_depth: Some(1),
            decoder_width: Some(8),
            decoder_heads: Some(2),
            ..Default::default()
        };
        let p = MaskscParams::from_json(&serde_json::to_value(&p).unwrap()).unwrap();
        assert_eq!((p.n_patches(), p.n_keep()), (16, 4));
        let net = Net::new(&p, 50, tch::Device::Cpu, 0);
        // genes 0..50 with value = gene index + 1; order is the identity, then padding
        let x = Tensor::arange_start(1, 51, (Kind::Float, tch::Device::Cpu)).unsqueeze(0);
        let patches = net.patchify(&x);
        assert_eq!(patches.size(), [1, 16, 4]);
        // patch 0 covers matrix rows 0-1, columns 0-1: genes 0, 1, 8, 9 (values 1, 2, 9, 10)
        assert_eq!(Vec::<f32>::try_from(&patches.get(0).get(0)).unwrap(), [1.0, 2.0, 9.0, 10.0]);
        // the last patch is all padding (genes 54, 55, 62, 63 do not exist)
        assert_eq!(Vec::<f32>::try_from(&patches.get(0).get(15)).unwrap(), [0.0; 4]);
        let l = net.loss(&x.repeat([3, 1]), &Tensor::rand([3, 16], (Kind::Float, tch::Device::Cpu)), None);
        assert!(l.double_value(&[]).is_finite());
        assert_eq!(net.embed_cells(&x).size(), [1, 16]);
        assert!(MaskscParams::from_json(&serde_json::json!({"target": "seqfeat", "seqfeat_epochs": 0})).is_err());
        assert!(MaskscParams::from_json(&serde_json::json!({"patch": 5})).is_err());
        assert!(MaskscParams::from_json(&serde_json::json!({"mask_ratio": 1.0})).is_err());
    }

    #[test]
    fn seqfeat_targets_are_the_mean_row_embedding_of_each_patch_band() {
        let p = MaskscParams {
            grid: 8,
            patch: 2,
            target: Target::Seqfeat,
            depth: Some(1),
            width: Some(16),
            heads: Some(2),
            decoder_depth: Some(1),
            decoder_width: Some(8),
            decoder_heads: Some(2),
            ..Default::default()
        };
        let net = Net::new(&p, 64, tch::Device::Cpu, 0);
        let enc = contrastive::Net::new(&contrastive::ContrastiveParams::default(), 8, tch::Device::Cpu, 1);
        let x = Tensor::rand([3, 64], (Kind::Float, tch::Device::Cpu));
        let t = net.seqfeat_targets(&x, &enc);
        assert_eq!(t.size(), [3, 16, 60]);
        // cell 1, patch 6 = band 1 (matrix rows 2-3), column 2: the mean embedding of rows 2 and 3
        let rows = x.get(1).view([8, 8]).narrow(0, 2, 2);
        let want = tch::no_grad(|| enc.embed(&rows)).mean_dim(0, false, Kind::Float);
        assert!(f64::try_from((t.get(1).get(6) - &want).abs().max()).unwrap() < 1e-6);
        // every patch of a band has the same target; the bands differ
        assert!(f64::try_from((t.get(1).get(4) - t.get(1).get(7)).abs().max()).unwrap() == 0.0);
        assert!(f64::try_from((t.get(1).get(4) - t.get(1).get(8)).abs().max()).unwrap() > 1e-4);
        let l = net.loss(&x, &Tensor::rand([3, 16], (Kind::Float, tch::Device::Cpu)), Some(&enc));
        assert!(l.double_value(&[]).is_finite());
    }

    #[test]
    fn sincos_matches_mae_for_a_small_grid() {
        // MAE: emb[pos] = [sin(w*omega), cos(w*omega), sin(h*omega), cos(h*omega)]
        let e = sincos_2d(2, 8, tch::Device::Cpu);
        let row = Vec::<f32>::try_from(&e.get(1)).unwrap(); // h = 0, w = 1
        let om = [1.0f64, 0.01];
        let want: Vec<f32> =
            [om.map(|o| (o).sin()), om.map(|o| (o).cos()), [0.0, 0.0], [1.0, 1.0]].concat().iter().map(|&v| v as f32).collect();
        assert_eq!(row, want);
    }
}
