"""Plain PyTorch scMAE, the comparison side of bench/speed.

Same architecture, corruption (batch-row shuffle, p = 0.4), losses, Adam 1e-3, batch 256
with drop_last and epoch count as scdeep's `scmae` defaults (specs §1); preprocessing is
scanpy's DCA recipe and clustering scikit-learn's KMeans (n_init 10), i.e. what a user
would write in Python. Prints one JSON object with per-stage timings.

    python bench/scmae_torch.py --input ../shared/data/10x_pbmc_top2000/10x_pbmc_top2000.h5ad --threads 1
"""

import argparse
import json
import resource
import time

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", required=True)
    ap.add_argument("--label-key", default="cell_type")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=81)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    t0 = time.perf_counter()
    import torch
    from torch import nn
    import anndata as ad
    import scanpy as sc
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    t_import = time.perf_counter() - t0

    t = time.perf_counter()
    adata = ad.read_h5ad(a.input)
    adata.X.data = np.ceil(adata.X.data) if hasattr(adata.X, "data") else np.ceil(adata.X)
    sc.pp.filter_genes(adata, min_counts=1)
    sc.pp.filter_cells(adata, min_counts=1)
    sc.pp.normalize_total(adata)
    sc.pp.log1p(adata)
    sc.pp.highly_variable_genes(adata, flavor="seurat", n_top_genes=1000, subset=True)
    sc.pp.scale(adata)
    x = torch.from_numpy(np.asarray(adata.X, dtype=np.float32))
    t_prep = time.perf_counter() - t

    n, g = x.shape
    h, d = 256, 128
    encoder = nn.Sequential(
        nn.Dropout(0.0), nn.Linear(g, h), nn.LayerNorm(h), nn.Mish(),
        nn.Linear(h, d), nn.LayerNorm(d), nn.Mish(), nn.Linear(d, d),
    )
    mask_predictor = nn.Linear(d, g)
    decoder = nn.Linear(d + g, g)
    params = list(encoder.parameters()) + list(mask_predictor.parameters()) + list(decoder.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)
    bce = nn.BCEWithLogitsLoss()
    lam, gam, p, bs = 0.75, 0.7, 0.4, 256

    t = time.perf_counter()
    epoch_s = []
    for _ in range(a.epochs):
        te = time.perf_counter()
        order = torch.from_numpy(rng.permutation(n))
        for b in range(n // bs):
            xb = x[order[b * bs:(b + 1) * bs]]
            shuffled = xb[torch.randperm(bs)]
            draw = torch.rand(xb.shape) < p
            corrupted = torch.where(draw, shuffled, xb)
            m = (corrupted != xb).float()
            e = encoder(corrupted)
            logits = mask_predictor(e)
            recon = decoder(torch.cat([e, logits], 1))
            omega = lam * m + (1 - lam) * (1 - m)
            loss = (1 - gam) * (omega * (recon - xb) ** 2).mean() + gam * bce(logits, m)
            opt.zero_grad()
            loss.backward()
            opt.step()
        epoch_s.append(time.perf_counter() - te)
    t_train = time.perf_counter() - t

    t = time.perf_counter()
    encoder.eval()
    with torch.no_grad():
        emb = torch.cat([encoder(x[i:i + 1280]) for i in range(0, n, 1280)]).numpy()
    t_embed = time.perf_counter() - t

    t = time.perf_counter()
    truth = adata.obs[a.label_key].astype(str).to_numpy()
    k = len(set(truth))
    labels = KMeans(n_clusters=k, n_init=10, random_state=a.seed).fit_predict(emb)
    t_cluster = time.perf_counter() - t

    print(json.dumps({
        "tool": "pytorch", "threads": a.threads, "epochs": a.epochs, "n_cells": n, "n_genes": g,
        "seconds_per_epoch_median": float(np.median(epoch_s)),
        "seconds": {"import": t_import, "preprocess": t_prep, "train": t_train, "embed": t_embed, "cluster": t_cluster,
                    "total_read_to_labels": t_prep + t_train + t_embed + t_cluster},
        "ari": adjusted_rand_score(truth, labels), "nmi": normalized_mutual_info_score(truth, labels),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


if __name__ == "__main__":
    main()
