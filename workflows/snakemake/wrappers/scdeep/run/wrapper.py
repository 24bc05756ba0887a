"""Snakemake wrapper for `scdeep run`: deep self-supervised clustering of scRNA-seq counts.

input:  counts (required; .h5ad, a 10x folder, 10x .h5, .csv/.tsv), labels (optional TSV
        `cell<TAB>label` with ground truth), batches (optional TSV `cell<TAB>batch`)
output: any of embedding, labels, metrics, h5ad, history, run, versions, truth, model
        (named outputs; all files in one folder, the run folder; `model` is a folder)
params: method (default: the CLI's, consensus), seed, n_clusters, label_key (an .h5ad obs column with
        ground truth), batch_key (an .h5ad obs column with each cell's batch: corrected for
        before clustering), device ("cpu", "cuda", "auto"), extra (more CLI flags, e.g.
        "--epochs 50 --set train.batch_size=128")
threads: passed as --threads (libtorch intra-op threads)
log:    the CLI's stderr (progress and errors)
"""

__author__ = "scdeep developers"
__license__ = "MIT"

import os
import shlex

from snakemake.shell import shell

FILES = {
    "embedding": "embedding.tsv",
    "embedding_npy": "embedding.npy",
    "labels": "labels.tsv",
    "metrics": "metrics.json",
    "history": "history.json",
    "run": "run.json",
    "versions": "versions.yml",
    "truth": "truth.tsv",
}

counts = snakemake.input.get("counts", snakemake.input[0] if len(snakemake.input) else None)
if counts is None:
    raise ValueError("scdeep wrapper: input `counts` is required")
outputs = dict(snakemake.output.items())
if not outputs:
    raise ValueError("scdeep wrapper: name at least one output (embedding, labels, metrics, h5ad, ...)")
folders = {os.path.dirname(p) or "." for k, p in outputs.items() if k != "model"}
if len(folders) != 1:
    raise ValueError(f"scdeep wrapper: outputs must share one folder, got {sorted(folders)}")
outdir = folders.pop()
for key, path in outputs.items():
    if key in FILES and os.path.basename(path) != FILES[key]:
        raise ValueError(f"scdeep wrapper: output `{key}` must be named {FILES[key]} (got {path})")

args = ["run", "--input", counts, "--out", outdir, "--threads", str(snakemake.threads)]
for name, flag in [("method", "--method"), ("seed", "--seed"), ("n_clusters", "--n-clusters"), ("label_key", "--label-key"),
                    ("batch_key", "--batch-key"), ("device", "--device")]:
    value = snakemake.params.get(name)
    if value is not None:
        args += [flag, str(value)]
if "labels" in snakemake.input.keys():
    args += ["--labels", snakemake.input.labels]
if "batches" in snakemake.input.keys():
    args += ["--batches", snakemake.input.batches]
if "model" in outputs:
    args += ["--save-model", outputs["model"]]
if "h5ad" not in outputs:
    args += ["--no-h5ad"]
cmd = " ".join(shlex.quote(a) for a in args)
extra = snakemake.params.get("extra", "")
log = snakemake.log_fmt_shell(stdout=False, stderr=True)
shell("scdeep {cmd} {extra} {log}")

if "h5ad" in outputs:
    # `scdeep run` names it <input stem>.scdeep.h5ad; move it to the requested name.
    written = [f for f in os.listdir(outdir) if f.endswith(".scdeep.h5ad")]
    if len(written) != 1:
        raise RuntimeError(f"scdeep wrapper: expected one .scdeep.h5ad in {outdir}, found {written}")
    src = os.path.join(outdir, written[0])
    if os.path.abspath(src) != os.path.abspath(outputs["h5ad"]):
        os.replace(src, outputs["h5ad"])
