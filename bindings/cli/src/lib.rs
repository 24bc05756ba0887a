//! `scdeep`: the command-line door into scdeep-core, and the shim the Nextflow and
//! Snakemake modules call. Every option lives in core's RunConfig; flags only overlay it.
//! The binary (src/main.rs) and the Python wheel's `scdeep` console script both call
//! [`main_with_args`], so the two are the same program.

mod plot;
mod progress;
mod signals;

use clap::{Args, Parser, Subcommand};
use scdeep_core::config::ConfigBuilder;
use scdeep_core::io::output::{self, refuse_overlap, Output, StagedDir};
use scdeep_core::io::{self, write, Format, Orientation, ReadOptions};
use scdeep_core::results;
use scdeep_core::{Error, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

fn exit_codes() -> String {
    format!("Exit codes: {}.", scdeep_core::error::exit_codes_text())
}

#[derive(Parser)]
#[command(name = "scdeep", version, about = "Deep self-supervised clustering of single-cell RNA-seq counts", after_help = exit_codes())]
struct Cli {
    /// No progress output (errors are still printed).
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Simulate Splatter-style counts with known cell types (observed + true counts).
    #[command(after_help = "Example:\n  scdeep simulate --out sim.h5ad --n-cells 3000 --n-genes 2000 --groups 0.5,0.3,0.2 --seed 1")]
    Simulate(SimArgs),
    /// Read and preprocess counts; write the selected genes' log-normalised values.
    #[command(after_help = "Example:\n  scdeep preprocess --input pbmc.h5ad --recipe dca --n-top-genes 1000 --out prep.h5ad")]
    Preprocess(PrepArgs),
    /// Read -> preprocess -> method -> cluster -> metrics -> write results.
    #[command(
        after_help = "Examples:\n  scdeep run --input pbmc.h5ad --label-key cell_type --method pca --out results/\n  scdeep run --input mtx_folder/ --labels labels.tsv --config run.json --set cluster.n_init=20 --out results/\n\nOutputs in --out: embedding.tsv, embedding.npy, labels.tsv, run.json, history.json, versions.yml,\nmetrics.json, metrics.tsv and truth.tsv (with ground truth), and <input>.scdeep.h5ad (the input's\ncells and counts with the results added; --no-h5ad skips it). Methods that impute add\nlayers['scdeep_imputed'] to the .h5ad, and imputed/ (10x MTX) with --imputed-mtx, --no-h5ad or\n--use-raw (raw/X's genes are not var's). Each file is written whole (temp file + rename)."
    )]
    Run(RunArgs),
    /// Embed new counts with a saved model (same genes, normalisation and scaling).
    #[command(
        after_help = "Example:\n  scdeep run --input ref.h5ad --method scmae --save-model model/ --out ref_results/\n  scdeep embed --model model/ --input query.h5ad --out query_results/ -k 8\n\nOutputs in --out: embedding.tsv, embedding.npy, versions.yml, and labels.tsv with -k."
    )]
    Embed(EmbedArgs),
    /// Cluster an embedding file (.npy or TSV with a header and a cell column) with K-means.
    Cluster(ClusterArgs),
    /// Score predicted labels against ground truth (both `cell<TAB>label` TSV files).
    Evaluate(EvalArgs),
    /// Draw PNG figures of a run folder: loss.png (history.json), embedding.png (2-D view
    /// coloured by cluster and ground truth), confusion.png (cluster x truth heatmap).
    #[command(
        after_help = "Examples:\n  scdeep run --input pbmc.h5ad --label-key cell_type --method scmae --out results/\n  scdeep plot --run results/\n  scdeep plot --summary metrics.tsv --out summary.png\n\nGround truth comes from results/truth.tsv (written by `scdeep run` when labels are known) or --truth."
    )]
    Plot(PlotCmd),
    /// List methods and their default configurations.
    Methods {
        #[arg(long)]
        json: bool,
    },
    /// Print scdeep, libtorch and device versions.
    Version {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Clone)]
struct InputArgs {
    /// Counts: a 10x folder, .h5ad, 10x .h5, .csv or .tsv (optionally .gz).
    #[arg(long, short)]
    input: PathBuf,
    /// Override format detection: auto, mtx, 10x_h5, h5ad, csv, tsv.
    #[arg(long, default_value = "auto")]
    format: String,
    /// .h5ad: read this layer instead of X.
    #[arg(long)]
    layer: Option<String>,
    /// .h5ad: read raw/X.
    #[arg(long)]
    use_raw: bool,
    /// Dense tables: genes in rows and cells in columns.
    #[arg(long)]
    genes_in_rows: bool,
    /// .h5ad obs column with the ground-truth labels.
    #[arg(long)]
    label_key: Option<String>,
    /// TSV `barcode<TAB>label` (with a header line) with the ground-truth labels.
    #[arg(long)]
    labels: Option<PathBuf>,
    /// Refuse gzip data that expands more than this many times (a bomb or corruption;
    /// real 10x files expand 2-11x).
    #[arg(long, value_name = "RATIO")]
    max_decompression_ratio: Option<u64>,
    /// HDF5 input (.h5ad, 10x .h5) is parsed in a child process that may take this many
    /// seconds plus one per 10 MB of file (a corrupt file can make libhdf5 loop).
    #[arg(long, value_name = "SECONDS")]
    hdf5_timeout: Option<f64>,
    /// `run`: an .h5ad whose X is a csr_matrix of at least this many values, and whose HVG
    /// selection keeps at most half of the genes, is preprocessed in blocks of rows and
    /// never held at full width (same result); `none` always reads it whole.
    #[arg(long, value_name = "VALUES")]
    stream_min_nnz: Option<String>,
}

impl InputArgs {
    fn read_options(&self) -> Result<ReadOptions> {
        Ok(ReadOptions {
            format: self.format.parse::<Format>()?,
            layer: self.layer.clone(),
            use_raw: self.use_raw,
            label_key: self.label_key.clone(),
            labels_file: self.labels.as_ref().map(|p| p.display().to_string()),
            batch_key: None,
            batches_file: None,
            orientation: if self.genes_in_rows { Orientation::GenesByCells } else { Orientation::CellsByGenes },
            limits: io::Limits {
                max_decompression_ratio: self.max_decompression_ratio.unwrap_or(io::Limits::default().max_decompression_ratio),
                hdf5_timeout_s: self.hdf5_timeout.unwrap_or(io::Limits::default().hdf5_timeout_s),
                ..Default::default()
            },
            stream_min_nnz: match self.stream_min_nnz.as_deref() {
                None => ReadOptions::default().stream_min_nnz,
                Some("none") => None,
                Some(v) => Some(v.parse().map_err(|_| Error::config("--stream-min-nnz", v, "expected a number of values or none"))?),
            },
        })
    }

    /// Ground truth is given (it sets k when -k is not).
    fn has_truth(&self) -> bool {
        self.label_key.is_some() || self.labels.is_some()
    }

    /// The files this input reads (for refusing outputs that would replace them).
    fn paths(&self) -> Vec<(&'static str, &Path)> {
        let mut v: Vec<(&'static str, &Path)> = vec![("--input", &self.input)];
        if let Some(l) = &self.labels {
            v.push(("--labels", l));
        }
        v
    }
}

#[derive(Args, Clone)]
struct ConfigArgs {
    /// JSON file with a (partial) RunConfig; flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long, short, help = format!("Method (see `scdeep methods`; default {}).", scdeep_core::config::DEFAULT_METHOD))]
    method: Option<String>,
    /// Preprocessing preset: dca, scanpy, sanity, scrae, maskclass, custom.
    #[arg(long)]
    recipe: Option<String>,
    #[arg(long)]
    n_top_genes: Option<usize>,
    /// Number of clusters (default: the number of ground-truth classes; with neither, the
    /// default method estimates k and says how in run.json's clustering.k_estimate; a single
    /// method clusters its kNN graph with Leiden at cluster.resolution).
    #[arg(long, short = 'k')]
    n_clusters: Option<usize>,
    #[arg(long)]
    seed: Option<u64>,
    /// libtorch threads (default 1).
    #[arg(long)]
    threads: Option<usize>,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long)]
    device: Option<String>,
    /// Training epochs of the deep methods (train.epochs).
    #[arg(long)]
    epochs: Option<usize>,
    #[command(flatten)]
    clus: ClusterFlags,
    /// Set any config field by its dotted path, e.g. --set params.n_comps=30 (value parsed as JSON).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

impl ConfigArgs {
    /// The flags as a config request (over --config), through core's one builder.
    fn builder(&self) -> Result<ConfigBuilder> {
        let mut b = match &self.config {
            Some(p) => ConfigBuilder::from_json(&write::read_json(p)?)
                .map_err(|_| Error::format(self.config.as_deref().unwrap(), "the config must be a JSON object"))?,
            None => ConfigBuilder::new(),
        };
        let flags: [(&str, Option<Value>); 8] = [
            ("method", self.method.as_ref().map(|m| json!(m))),
            ("preprocess.recipe", self.recipe.as_ref().map(|r| json!(r))),
            ("preprocess.n_top_genes", self.n_top_genes.map(|n| json!(n))),
            ("cluster.n_clusters", self.n_clusters.map(|k| json!(k))),
            ("seed", self.seed.map(|s| json!(s))),
            ("threads", self.threads.map(|t| json!(t))),
            ("device", self.device.as_ref().map(|d| json!(d))),
            ("train.epochs", self.epochs.map(|e| json!(e))),
        ];
        for (k, v) in flags.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).chain(self.clus.overlay()) {
            b = b.set(k, v)?;
        }
        for kv in &self.set {
            b = b.set_pair(kv)?;
        }
        Ok(b)
    }
}

#[derive(Args)]
struct SimArgs {
    /// Output: .h5ad (X, layers/true_counts, obs group/batch), a folder (10x MTX + true_counts/ + labels.tsv), or .csv/.tsv.
    #[arg(long, short)]
    out: PathBuf,
    #[arg(long)]
    n_cells: Option<usize>,
    #[arg(long)]
    n_genes: Option<usize>,
    /// Group proportions, comma-separated (e.g. 0.6,0.3,0.1).
    #[arg(long)]
    groups: Option<String>,
    /// Cells per batch, comma-separated (must sum to n-cells).
    #[arg(long)]
    batches: Option<String>,
    #[arg(long)]
    de_prob: Option<f64>,
    /// none, experiment, group, batch.
    #[arg(long)]
    dropout_type: Option<String>,
    /// Dropout midpoint(s), comma-separated (one per group/batch as the type needs).
    #[arg(long)]
    dropout_mid: Option<String>,
    /// Dropout shape(s), comma-separated.
    #[arg(long, allow_hyphen_values = true)]
    dropout_shape: Option<String>,
    #[arg(long)]
    seed: Option<u64>,
    /// JSON with any simulation parameter (flags override it).
    #[arg(long)]
    params: Option<PathBuf>,
    /// Write into an existing output folder that scdeep did not write (other files are kept).
    #[arg(long)]
    overwrite: bool,
    /// Do not write the counts before dropout (true_counts): half the memory and the file.
    #[arg(long)]
    no_true_counts: bool,
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["run", "summary"])))]
struct PlotCmd {
    /// A run folder (the --out of `scdeep run`).
    #[arg(long)]
    run: Option<PathBuf>,
    /// Instead: a metrics table (TSV with `method` and `ari`/`nmi` columns, one row per
    /// run) drawn as one point per run and the median per method; --out names the PNG.
    #[arg(long, value_name = "TSV")]
    summary: Option<PathBuf>,
    /// Where to write the PNGs (default: the run folder); with --summary, the PNG file.
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// Ground truth `cell<TAB>label` TSV with a header (default: <run>/truth.tsv if present).
    #[arg(long)]
    truth: Option<PathBuf>,
}

#[derive(Args)]
struct PrepArgs {
    #[command(flatten)]
    input: InputArgs,
    #[command(flatten)]
    cfg: ConfigArgs,
    /// Output .h5ad with X = log-normalised values of the selected genes.
    #[arg(long, short)]
    out: PathBuf,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    input: InputArgs,
    #[command(flatten)]
    cfg: ConfigArgs,
    #[command(flatten)]
    batch: BatchArgs,
    /// Output folder (created if missing; an existing one must be empty or written by
    /// scdeep, unless --overwrite).
    #[arg(long, short)]
    out: PathBuf,
    /// Write into existing --out / --save-model folders that scdeep did not write:
    /// scdeep's files replace those of the same name, other files are kept.
    #[arg(long)]
    overwrite: bool,
    /// Do not write <input>.scdeep.h5ad (the input's cells and counts with the results added).
    #[arg(long)]
    no_h5ad: bool,
    /// Methods that impute (maskclass): also write the imputed matrix as a 10x MTX folder
    /// `imputed/` (always written when --no-h5ad leaves no layer to hold it).
    #[arg(long)]
    imputed_mtx: bool,
    /// Save the trained model to this folder (for `scdeep embed` and the bindings).
    #[arg(long, value_name = "DIR")]
    save_model: Option<PathBuf>,
    /// Write a training checkpoint every N epochs (into --checkpoint-dir).
    #[arg(long, value_name = "N")]
    checkpoint_every: Option<usize>,
    /// Checkpoint folder (default: <out>/checkpoint).
    #[arg(long, value_name = "DIR")]
    checkpoint_dir: Option<PathBuf>,
    /// Continue training from the checkpoint in the checkpoint folder, if there is one.
    #[arg(long)]
    resume: bool,
}

#[derive(Args, Clone)]
struct BatchArgs {
    /// .h5ad obs column with each cell's batch (sample, donor, lane): the embedding is
    /// corrected for it before clustering (--batch-correction) and, with ground truth, the
    /// batch metrics are scored.
    #[arg(long, value_name = "COLUMN")]
    batch_key: Option<String>,
    /// TSV `barcode<TAB>batch` (with a header line) with each cell's batch, for any input format.
    #[arg(long, value_name = "FILE", conflicts_with = "batch_key")]
    batches: Option<PathBuf>,
    /// How the embedding of several batches is corrected: harmony (default) or none.
    #[arg(long, value_name = "harmony|none")]
    batch_correction: Option<String>,
}

impl BatchArgs {
    /// The batch flags on the config and the read options.
    fn apply(&self, b: ConfigBuilder, opts: &mut ReadOptions) -> Result<ConfigBuilder> {
        opts.batches_file = self.batches.as_ref().map(|p| p.display().to_string());
        let b = match &self.batch_key {
            Some(k) => b.set("batch.key", json!(k))?,
            None => b,
        };
        match &self.batch_correction {
            Some(c) => b.set("batch.correction", json!(c)),
            None => Ok(b),
        }
    }
}

#[derive(Args, Clone)]
struct ClusterFlags {
    /// Clustering: kmeans, leiden, louvain, consensus (of cluster.consensus_runs single-start
    /// K-means runs, cut on the kNN graph; needs k) or auto (K-means below 10 000 cells,
    /// Leiden above).
    #[arg(long = "cluster", value_name = "ALGORITHM")]
    algorithm: Option<String>,
    /// Leiden/Louvain resolution (with -k, the resolution is searched to hit k instead).
    #[arg(long)]
    resolution: Option<f64>,
    /// Neighbours per cell for the graph, the cell included (default 15).
    #[arg(long)]
    n_neighbors: Option<usize>,
}

impl ClusterFlags {
    fn overlay(&self) -> Vec<(&'static str, Value)> {
        let mut v = Vec::new();
        if let Some(a) = &self.algorithm {
            v.push(("cluster.algorithm", json!(a)));
        }
        if let Some(r) = self.resolution {
            // JSON has no NaN or infinity (json! would turn them into null).
            let r = if r.is_finite() { json!(r) } else { json!(r.to_string()) };
            v.push(("cluster.resolution", r));
            v.push(("cluster.resolution_choice", json!("fixed")));
        }
        if let Some(n) = self.n_neighbors {
            v.push(("cluster.n_neighbors", json!(n)));
        }
        v
    }
}

#[derive(Args)]
struct DeviceArgs {
    /// libtorch threads (default 1).
    #[arg(long)]
    threads: Option<usize>,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    device: String,
}

impl DeviceArgs {
    fn setup(&self, quiet: bool) -> Result<tch::Device> {
        scdeep_core::device::set_threads(self.threads)?;
        if let Some(w) = scdeep_core::device::threads_note(self.threads).filter(|_| !quiet) {
            eprintln!("scdeep: {w}");
        }
        scdeep_core::device::parse_device(&self.device)
    }
}

#[derive(Args)]
struct EmbedArgs {
    #[command(flatten)]
    input: InputArgs,
    /// Model folder written by `scdeep run --save-model`.
    #[arg(long)]
    model: PathBuf,
    /// Fail unless the model is of this method.
    #[arg(long, short)]
    method: Option<String>,
    /// Cluster the embedding into this many clusters (K-means).
    #[arg(long, short = 'k')]
    n_clusters: Option<usize>,
    #[command(flatten)]
    dev: DeviceArgs,
    /// Output folder (created if missing; an existing one must be empty or written by
    /// scdeep, unless --overwrite).
    #[arg(long, short)]
    out: PathBuf,
    /// Write into an existing --out folder that scdeep did not write (other files are kept).
    #[arg(long)]
    overwrite: bool,
}

#[derive(Args)]
struct ClusterArgs {
    /// Embedding: .npy (cells x dims) or TSV with a header and a first `cell` column.
    #[arg(long, short)]
    embedding: PathBuf,
    /// Number of clusters (K-means; for Leiden/Louvain, the resolution is searched to hit it).
    /// Without it, K-means uses the k that --k-rule estimates.
    #[arg(long, short = 'k')]
    n_clusters: Option<usize>,
    /// Without -k, how K-means's k is estimated: leiden (communities at the default run's
    /// k resolution), plateau (the number of communities that holds over the widest span of
    /// resolutions) or silhouette. Default: the default method's rule.
    #[arg(long, value_name = "RULE", value_parser = ["leiden", "plateau", "silhouette"])]
    k_rule: Option<String>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value_t = 10)]
    n_init: usize,
    #[command(flatten)]
    clus: ClusterFlags,
    #[command(flatten)]
    dev: DeviceArgs,
    /// Output labels TSV.
    #[arg(long, short)]
    out: PathBuf,
}

#[derive(Args)]
struct EvalArgs {
    /// Predicted labels: `cell<TAB>label` with a header.
    #[arg(long)]
    labels: PathBuf,
    /// Ground truth: `cell<TAB>label` with a header.
    #[arg(long)]
    truth: PathBuf,
    /// arithmetic (default), geometric, max, min.
    #[arg(long, default_value = "arithmetic")]
    nmi_average: String,
    /// Batches, `cell<TAB>batch` with a header: adds scIB's batch metrics of --embedding
    /// (batch silhouette, iLISI, cLISI, graph connectivity; the cell types from --truth).
    #[arg(long, requires = "embedding")]
    batches: Option<PathBuf>,
    /// The embedding the batch metrics score: .npy (rows are --truth's cells in order) or a
    /// table with the cells' names in its first column.
    #[arg(long, requires = "batches")]
    embedding: Option<PathBuf>,
    /// Neighbours per cell (the cell included) for the batch metrics (scIB: 90).
    #[arg(long, default_value_t = 90)]
    batch_neighbors: usize,
    /// Write the metrics JSON here (stdout otherwise).
    #[arg(long, short)]
    out: Option<PathBuf>,
}

/// Runs the command line `args` (the program name first) and returns the exit status:
/// 0, the error table's code of the error (`scdeep --help`), or 128 + a signal that
/// cancelled the run. Invalid arguments and `--help` print and exit as clap does.
pub fn main_with_args<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = Cli::parse_from(args);
    signals::install();
    let quiet = cli.quiet;
    let r = match cli.cmd {
        Cmd::Simulate(a) => cmd_simulate(a, quiet),
        Cmd::Preprocess(a) => cmd_preprocess(a, quiet),
        Cmd::Run(a) => cmd_run(a, quiet),
        Cmd::Embed(a) => cmd_embed(a, quiet),
        Cmd::Cluster(a) => cmd_cluster(a, quiet),
        Cmd::Evaluate(a) => cmd_evaluate(a),
        Cmd::Plot(a) => cmd_plot(a, quiet),
        Cmd::Methods { json } => cmd_methods(json),
        Cmd::Version { json } => cmd_version(json),
    };
    let _ = std::io::Write::flush(&mut std::io::stdout());
    // A signal that arrived while the last step ran still cancels: nothing was committed
    // after it unless the command had already finished.
    match (r, signals::received()) {
        (Err(_), Some(sig)) => {
            eprintln!("scdeep: cancelled by {}; no output was written (staged files removed)", signals::name(sig));
            128 + sig
        }
        (Err(e), None) => {
            eprintln!("scdeep: error: {e}");
            e.exit_code()
        }
        (Ok(()), _) => 0,
    }
}

fn csv_list<T: std::str::FromStr>(field: &str, s: &str) -> Result<Vec<T>> {
    s.split(',').map(|t| t.trim().parse::<T>().map_err(|_| Error::config(field, s, "expected comma-separated numbers"))).collect()
}

fn cmd_simulate(a: SimArgs, quiet: bool) -> Result<()> {
    use scdeep_core::simulate::SimParams;
    // The file's parameters, then the flags; SimParams::from_json fills in the defaults.
    let mut v = match &a.params {
        Some(p) => write::read_json(p)?,
        None => json!({}),
    };
    if !v.is_object() {
        return Err(Error::format(a.params.as_ref().unwrap(), "must be a JSON object"));
    }
    if let Some(n) = a.n_cells {
        v["n_cells"] = json!(n);
    }
    if let Some(n) = a.n_genes {
        v["n_genes"] = json!(n);
    }
    if let Some(g) = &a.groups {
        v["group_prob"] = json!(csv_list::<f64>("--groups", g)?);
    }
    if let Some(b) = &a.batches {
        v["batch_cells"] = json!(csv_list::<usize>("--batches", b)?);
    }
    if let Some(d) = a.de_prob {
        v["de_prob"] = json!(d);
    }
    if let Some(d) = &a.dropout_type {
        v["dropout_type"] = json!(d);
    }
    if let Some(d) = &a.dropout_mid {
        v["dropout_mid"] = json!(csv_list::<f64>("--dropout-mid", d)?);
    }
    if let Some(d) = &a.dropout_shape {
        v["dropout_shape"] = json!(csv_list::<f64>("--dropout-shape", d)?);
    }
    if let Some(s) = a.seed {
        v["seed"] = json!(s);
    }
    if a.no_true_counts {
        v["true_counts"] = json!(false);
    }
    let p = SimParams::from_json(&v)?;
    let out = &a.out;
    let params: Vec<(&str, &Path)> = a.params.iter().map(|p| ("--params", p.as_path())).collect();
    results::simulate_to(out, &p, a.overwrite, &params, &mut progress::CliProgress::new(true))?;
    if !quiet {
        eprintln!("scdeep: simulated {} cells x {} genes ({} groups) -> {}", p.n_cells, p.n_genes, p.group_prob.len(), out.display());
    }
    Ok(())
}

fn cmd_preprocess(a: PrepArgs, quiet: bool) -> Result<()> {
    let cfg = a.cfg.builder()?.build(a.input.has_truth())?;
    let mut inputs = a.input.paths();
    if let Some(c) = &a.cfg.config {
        inputs.push(("--config", c));
    }
    refuse_overlap(&[Output::File("--out", &a.out)], &inputs)?;
    scdeep_core::device::set_threads(cfg.threads)?;
    let ds = io::read(&a.input.input, &a.input.read_options()?)?;
    let prep = scdeep_core::preprocess::prepare(&ds, &cfg.preprocess, true)?;
    let labels: Vec<(&str, &[String])> = match &prep.labels {
        Some(l) => vec![("labels", l.as_slice())],
        None => vec![],
    };
    io::write_h5ad_new(&a.out, &prep.x, &prep.cells, &prep.genes, &labels, &[("counts", prep.counts()?)])?;
    if !quiet {
        eprintln!("scdeep: {} cells x {} genes -> {}", prep.n_cells(), prep.n_genes(), a.out.display());
    }
    Ok(())
}

fn cmd_run(a: RunArgs, quiet: bool) -> Result<()> {
    let mut read_opts = a.input.read_options()?;
    let mut cfg = a.batch.apply(a.cfg.builder()?, &mut read_opts)?.build(a.input.has_truth())?;
    if let Some(n) = a.checkpoint_every {
        cfg.train.checkpoint_every = n;
    }
    cfg.train.resume |= a.resume;
    if let Some(d) = &a.checkpoint_dir {
        cfg.train.checkpoint_dir = Some(d.display().to_string());
    }
    if (cfg.train.checkpoint_every > 0 || cfg.train.resume) && cfg.train.checkpoint_dir.is_none() {
        cfg.train.checkpoint_dir = Some(a.out.join("checkpoint").display().to_string());
    }
    cfg.validate()?;
    // Before any work: no output may replace an input, and the output folders must be
    // ours (or empty, or --overwrite). Everything is written into staging folders that
    // become --out and --save-model at the end, so a failing run leaves nothing new.
    let mut inputs = a.input.paths();
    if let Some(c) = &a.cfg.config {
        inputs.push(("--config", c));
    }
    if let Some(b) = &a.batch.batches {
        inputs.push(("--batches", b));
    }
    let mut outs = vec![Output::Dir("--out", &a.out)];
    if let Some(m) = &a.save_model {
        outs.push(Output::Dir("--save-model", m));
    }
    refuse_overlap(&outs, &inputs)?;
    let ckpt = cfg.train.checkpoint_dir.as_ref().map(PathBuf::from);
    if let Some(c) = &ckpt {
        refuse_overlap(&[Output::Dir("--checkpoint-dir", c)], &inputs)?;
    }
    let mut stage = StagedDir::new(&a.out, a.overwrite, &|_| false)?;
    let model_stage = match &a.save_model {
        Some(d) => Some(StagedDir::new(d, a.overwrite, &scdeep_core::store::is_model_folder)?),
        None => None,
    };
    if let Some(c) = &ckpt {
        // A checkpoint inside --out is written there while training (it must outlive a
        // failed run); the commit leaves it in place.
        if let Ok(rel) = output::resolve(c).strip_prefix(output::resolve(&a.out)) {
            if let Some(first) = rel.components().next() {
                stage.create_dest()?;
                stage.keep(&first.as_os_str().to_string_lossy());
            }
        }
    }
    let mut prog = progress::CliProgress::new(quiet);
    prog.stage_msg("read");
    signals::check()?;
    // The run consumes its input (normalised in place) unless the output .h5ad is a new
    // file that needs its counts.
    let keep_input = !a.no_h5ad && !is_h5ad_input(&a);
    let run = scdeep_core::pipeline::run_path(&a.input.input, &read_opts, &cfg, keep_input, &mut prog)?;
    let (res, kept, shape) = (run.result, run.input, run.shape);
    prog.finish();
    let folder = results::RunFolder {
        input: &a.input.input,
        input_is_h5ad: is_h5ad_input(&a),
        use_raw: a.input.use_raw,
        h5ad: !a.no_h5ad,
        imputed_mtx: a.imputed_mtx,
    };
    results::write_run_folder(stage.path(), &res, &shape, kept.as_ref(), &folder)?;
    if let Some(ms) = &model_stage {
        res.model.write_files(ms.path())?;
    }
    signals::check()?;
    stage.commit()?;
    if let Some(ms) = model_stage {
        ms.commit()?;
        if !quiet {
            eprintln!("scdeep: model saved to {}", a.save_model.as_deref().unwrap_or(Path::new("")).display());
        }
    }
    if !quiet {
        let method = &res.config.method;
        match &res.scores {
            Some(s) => eprintln!(
                "scdeep: {method}: {} cells, {} clusters | ARI {:.4}  NMI {:.4}  AMI {:.4}  ACC {:.4}  purity {:.4}{}",
                res.cells.len(),
                s.n_clusters,
                s.ari,
                s.nmi,
                s.ami,
                s.acc,
                s.purity,
                s.asw_truth.map(|a| format!("  ASW(truth) {a:.4}")).unwrap_or_default()
            ),
            None => eprintln!(
                "scdeep: {method}: {} cells, {} clusters",
                res.cells.len(),
                res.labels.iter().collect::<std::collections::BTreeSet<_>>().len()
            ),
        }
        eprintln!("scdeep: results in {}", a.out.display());
    }
    Ok(())
}

fn is_h5ad_input(a: &RunArgs) -> bool {
    io::detect_format(&a.input.input).ok() == Some(Format::H5ad) || a.input.format == "h5ad"
}

fn cmd_plot(a: PlotCmd, quiet: bool) -> Result<()> {
    let files = match (a.run, a.summary) {
        (Some(run), _) => plot::plot_run(&plot::PlotArgs { run, out: a.out, truth: a.truth })?,
        (None, Some(table)) => {
            let out = a.out.ok_or_else(|| Error::config("--out", "(none)", "--summary needs --out FILE.png"))?;
            refuse_overlap(&[Output::File("--out", &out)], &[("--summary", &table)])?;
            plot::summary_plot(&table, &out)?;
            vec![out]
        }
        (None, None) => unreachable!("clap requires --run or --summary"),
    };
    if !quiet {
        for f in files {
            eprintln!("scdeep: wrote {}", f.display());
        }
    }
    Ok(())
}

fn cmd_embed(a: EmbedArgs, quiet: bool) -> Result<()> {
    let mut inputs = a.input.paths();
    inputs.push(("--model", &a.model));
    refuse_overlap(&[Output::Dir("--out", &a.out)], &inputs)?;
    let stage = StagedDir::new(&a.out, a.overwrite, &|_| false)?;
    let dev = a.dev.setup(quiet)?;
    let mut prog = progress::CliProgress::new(quiet);
    prog.stage_msg("load");
    let model = scdeep_core::store::TrainedModel::load(&a.model, a.method.as_deref(), dev)?;
    prog.line(&format!("{} model with {} genes from {}", model.config.method, model.genes().len(), a.model.display()));
    prog.stage_msg("read");
    let ds = io::read(&a.input.input, &a.input.read_options()?)?;
    prog.stage_msg("embed");
    let e = model.embed(&ds, dev, &mut prog)?;
    let cells = &e.prepared.cells;
    let method = model.config.method.clone();
    let labels = match a.n_clusters {
        Some(k) => {
            prog.stage_msg("cluster");
            let x = tch::Tensor::from_slice(&e.embedding).view([cells.len() as i64, e.dims as i64]).to_device(dev);
            let km = scdeep_core::cluster::kmeans(&x, &model.config.cluster.kmeans_params(k, model.config.seed))?;
            Some(km.labels)
        }
        None => None,
    };
    prog.finish();
    results::write_embedding_files(stage.path(), &method, cells, &e.embedding, e.dims, &scdeep_core::device::device_name(dev))?;
    if let Some(l) = &labels {
        results::write_labels(stage.path(), &method, cells, l)?;
    }
    signals::check()?;
    stage.commit()?;
    if !quiet {
        eprintln!("scdeep: embedded {} cells ({} dims) -> {}", cells.len(), e.dims, a.out.display());
    }
    Ok(())
}

fn cmd_cluster(a: ClusterArgs, quiet: bool) -> Result<()> {
    refuse_overlap(&[Output::File("--out", &a.out)], &[("--embedding", &a.embedding)])?;
    let (cells, v, d) = io::read_embedding(&a.embedding)?;
    let dev = a.dev.setup(quiet)?;
    let x = tch::Tensor::from_slice(&v).view([cells.len() as i64, d as i64]).to_device(dev);
    let c = scdeep_core::cluster::ClusterConfig { n_init: a.n_init, ..Default::default() }.with_options(&a.clus.overlay())?;
    let mut prog = progress::CliProgress::new(true);
    let estimate = a.n_clusters.is_none() && c.algorithm == scdeep_core::cluster::Algorithm::Kmeans;
    let km = if estimate {
        let mut est = scdeep_core::cluster::KEstimate::default();
        if let Some(r) = &a.k_rule {
            est.rule = serde_json::from_value(json!(r)).map_err(|e| Error::config("--k-rule", r, e.to_string()))?;
        }
        scdeep_core::cluster::run_estimating_k(&x, &c, &est, a.seed, &mut prog).map(|(c, _)| c)
    } else {
        scdeep_core::cluster::run(&x, &c, a.n_clusters, a.seed, &mut prog)
    };
    let km = km.map_err(|e| match e {
        Error::Config { field, value, msg } if field == "cluster.n_clusters" => {
            Error::config("--n-clusters", value, format!("{msg} in {}", a.embedding.display()))
        }
        e => e,
    })?;
    let lab: Vec<String> = km.labels.iter().map(|l| l.to_string()).collect();
    write::write_labels_tsv(&a.out, &cells, "cluster", &lab)
}

fn cmd_evaluate(a: EvalArgs) -> Result<()> {
    if let Some(o) = &a.out {
        let mut inputs: Vec<(&str, &std::path::Path)> = vec![("--labels", &a.labels), ("--truth", &a.truth)];
        inputs.extend(a.batches.as_deref().map(|b| ("--batches", b)));
        inputs.extend(a.embedding.as_deref().map(|e| ("--embedding", e)));
        refuse_overlap(&[Output::File("--out", o)], &inputs)?;
    }
    let pred = io::read_labels_tsv(&a.labels)?;
    let truth: std::collections::HashMap<String, String> = io::read_labels_tsv(&a.truth)?.into_iter().collect();
    let mut t = Vec::new();
    let mut p = Vec::new();
    for (cell, l) in &pred {
        let tl = truth
            .get(cell)
            .ok_or_else(|| Error::format(&a.truth, format!("no ground truth for cell '{cell}' of {}", a.labels.display())))?;
        t.push(tl.clone());
        p.push(l.clone());
    }
    let s = scdeep_core::metrics::evaluate_named(&t, &p, None, "--nmi-average", &a.nmi_average)?;
    let mut v = serde_json::to_value(&s).unwrap();
    if let (Some(b), Some(e)) = (&a.batches, &a.embedding) {
        let scores = scdeep_core::batch::evaluate_files(e, &a.truth, b, a.batch_neighbors)?;
        v["batch"] = json!(scores);
    }
    match &a.out {
        Some(o) => write::write_json(o, &v),
        None => {
            println!("{}", serde_json::to_string_pretty(&v).unwrap());
            Ok(())
        }
    }
}

fn cmd_methods(as_json: bool) -> Result<()> {
    if as_json {
        println!("{}", serde_json::to_string_pretty(&scdeep_core::config::methods_json()?).unwrap());
    } else {
        for m in scdeep_core::models::METHODS {
            println!("{:<12} {}", m.name, m.description);
        }
    }
    Ok(())
}

fn cmd_version(as_json: bool) -> Result<()> {
    let dev = scdeep_core::device::device_name(scdeep_core::device::parse_device("auto")?);
    let v = scdeep_core::pipeline::versions(&dev);
    if as_json {
        println!("{}", serde_json::to_string_pretty(&v).unwrap());
    } else {
        println!("scdeep {}\nlibtorch {}\ndevice {}", scdeep_core::version(), scdeep_core::device::libtorch_version(), dev);
    }
    Ok(())
}
