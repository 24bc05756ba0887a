#!/usr/bin/env python3
"""Seed inputs for the reader fuzz targets (core/src/fuzz.rs), cut from ../shared/data.

Writes tests/fuzz/corpus/<target>/seed-*: small, valid inputs of each format (a few cells
and genes of each shared dataset) from which libFuzzer mutates. The same folder holds the
regression inputs (crash-*: inputs that once crashed a reader, kept after the fix), and
core/tests/fuzz_corpus.rs replays all of it in `make test`.

    .venv/bin/python scripts/fuzz_seeds.py   # rewrites the seed-* files only
"""
import gzip
import io
import json
import os
import sys
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "tests" / "fuzz" / "corpus"
SEP = b"\0--scdeep-file--\0"  # core/src/fuzz.rs SEP
N_CELLS, N_GENES = 12, 16


def gz(b: bytes) -> bytes:
    buf = io.BytesIO()
    # A fixed mtime keeps the seeds byte-identical from one run to the next.
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=1) as f:
        f.write(b)
    return buf.getvalue()


def subset(name: str):
    a = ad.read_h5ad(DATA / name / f"{name}.h5ad")
    x = sp.csr_matrix(a.X)
    genes = np.argsort(-np.asarray((x > 0).sum(axis=0)).ravel(), kind="stable")[:N_GENES]
    genes.sort()
    b = a[:N_CELLS, genes].copy()
    b.X = sp.csr_matrix(b.X, dtype=np.float32)
    return b


def mtx_text(b) -> bytes:
    x = sp.coo_matrix(b.X.T)  # genes x cells, as 10x writes it
    lines = ["%%MatrixMarket matrix coordinate integer general", f"{x.shape[0]} {x.shape[1]} {x.nnz}"]
    lines += [f"{i + 1} {j + 1} {int(v)}" for i, j, v in zip(x.row, x.col, x.data)]
    return ("\n".join(lines) + "\n").encode()


def write(target: str, name: str, data: bytes):
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    (d / f"seed-{name}").write_bytes(data)


def main():
    for old in OUT.glob("*/seed-*"):
        old.unlink()
    names = sorted(p.name for p in DATA.iterdir() if (p / f"{p.name}.h5ad").exists())
    if not names:
        sys.exit(f"no datasets under {DATA}")
    for i, name in enumerate(names):
        b = subset(name)
        cells = [str(c) for c in b.obs_names]
        barcodes = ("\n".join(cells) + "\n").encode()
        features = ("\n".join(f"{g}\t{g}\tGene Expression" for g in b.var_names) + "\n").encode()
        m = mtx_text(b)
        write("mtx", name, m + SEP + barcodes + SEP + features)
        if i % 2 == 0:
            write("mtx", f"{name}-gz", gz(m) + SEP + gz(barcodes) + SEP + gz(features))
        label_col = "cell_type" if "cell_type" in b.obs else b.obs.columns[0]
        labels = "barcode\tlabel\n" + "".join(f"{c}\t{l}\n" for c, l in zip(cells, b.obs[label_col].astype(str)))
        write("tenx_tsv", name, barcodes + SEP + labels.encode())
        dense = pd.DataFrame(b.X.toarray(), index=cells, columns=[str(g) for g in b.var_names])
        table = dense if i % 2 == 0 else dense.T  # both orientations (first byte picks it)
        write("csv", name, table.to_csv().encode())
        emb = np.random.default_rng(i).normal(size=(N_CELLS, 4))
        buf = io.BytesIO()
        np.save(buf, emb.astype(np.float32 if i % 2 == 0 else np.float64))
        write("npy", name, buf.getvalue())
        c = ad.AnnData(X=b.X, obs=pd.DataFrame({"cell_type": b.obs[label_col].astype(str).astype("category").values}, index=cells), var=pd.DataFrame(index=[str(g) for g in b.var_names]))
        c.layers["counts"] = b.X.copy()
        c.raw = c.copy()
        if i % 2 == 1:
            c.X = c.X.toarray()  # a dense X too
        path = OUT / "h5ad" / f"seed-{name}"
        path.parent.mkdir(parents=True, exist_ok=True)
        c.write_h5ad(path)
        path = OUT / "tenx_h5" / f"seed-{name}"
        path.parent.mkdir(parents=True, exist_ok=True)
        xc = sp.csr_matrix(b.X)  # CSR of cells x genes is 10x's CSC of genes x cells
        with h5py.File(path, "w") as f:
            g = f.create_group("matrix")
            g["data"] = xc.data.astype(np.int32)
            g["indices"] = xc.indices.astype(np.int64)
            g["indptr"] = xc.indptr.astype(np.int64)
            g["shape"] = np.array([b.n_vars, b.n_obs], dtype=np.int32)
            g["barcodes"] = np.array(cells, dtype="S")
            fg = g.create_group("features")
            fg["id"] = np.array([str(v) for v in b.var_names], dtype="S")
            fg["name"] = np.array([str(v) for v in b.var_names], dtype="S")
    methods = json.loads(os.popen(f"{ROOT}/target/release/scdeep methods --json").read())
    for m in methods:
        write("config", m["name"], json.dumps(m["default_config"], indent=1).encode())
    write("config", "overlay", json.dumps({"method": "scmae", "train": {"epochs": 2}, "cluster": {"algorithm": "leiden", "resolution": 0.5}}).encode())
    write("config", "recipe", json.dumps({"method": "pca", "preprocess": {"recipe": "dca", "n_top_genes": 500}, "threads": 1}).encode())
    print(f"seeds written under {OUT.relative_to(ROOT)}: " + ", ".join(f"{d.name} {len(list(d.glob('seed-*')))}" for d in sorted(OUT.iterdir())))


if __name__ == "__main__":
    main()
