#!/usr/bin/env python
"""Recall@15 of scanpy's kNN search (pynndescent with the settings scanpy passes it) on an
embedding, beside scdeep's (`target/release/examples/knn_sweep EMB.npy ...`, same recall
definition: the exact 14 nearest other cells of 2000 sampled cells).

  NUMBA_NUM_THREADS=1 .venv/bin/python bench/studies/knn_recall/pynndescent_recall.py target/scale/out/embedding.npy

Prints one JSON line: cells, seconds (numba compilation included), recall.
"""
import json
import sys
import time

import numpy as np
from pynndescent import NNDescent


def main():
    x = np.load(sys.argv[1]).astype(np.float32)
    n = x.shape[0]
    # scanpy.neighbors -> umap.umap_.nearest_neighbors
    n_trees = min(64, 5 + int(round(n ** 0.5 / 20.0)))
    n_iters = max(5, int(round(np.log2(n))))
    t = time.time()
    idx = NNDescent(x, n_neighbors=15, metric="euclidean", n_trees=n_trees, n_iters=n_iters, max_candidates=60,
                    low_memory=True, n_jobs=1, random_state=0, verbose=False).neighbor_graph[0]
    seconds = time.time() - t
    q = np.random.default_rng(0).choice(n, 2000, replace=False)
    sq = (x * x).sum(1)
    hit = 0
    for c in np.array_split(q, 40):
        d = sq[None, :] - 2 * x[c] @ x.T
        d[np.arange(len(c)), c] = -np.inf
        nb = np.argpartition(d, 15, axis=1)[:, :15]
        for r, i in enumerate(c):
            hit += len((set(nb[r]) - {i}) & (set(idx[i]) - {i}))
    print(json.dumps({"cells": n, "seconds": round(seconds, 1), "recall": round(hit / (2000 * 14), 4),
                      "n_trees": n_trees, "n_iters": n_iters}))


if __name__ == "__main__":
    main()
