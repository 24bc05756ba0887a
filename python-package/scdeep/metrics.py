"""Clustering metrics (the core's, checked against scikit-learn to 1e-6)."""
import json

import numpy as np

from . import _scdeep
from ._core import call


def evaluate(truth, pred, embedding=None, average_method="arithmetic"):
    """Every metric of `pred` against `truth`.

    Parameters
    ----------
    truth, pred : array-like
        Labels per cell (any hashable values).
    embedding : array-like, optional
        cells x dims; adds silhouette scores.
    average_method : {"arithmetic", "geometric", "max", "min"}
        NMI/AMI normalisation (scikit-learn's default is arithmetic).

    Returns
    -------
    dict
        ari, nmi, ami, homogeneity, completeness, v_measure, purity, acc, silhouette, ...
    """
    truth = [str(t) for t in truth]
    pred = np.asarray(pred).astype(str).tolist()
    emb, dims = None, 0
    if embedding is not None:
        e = np.ascontiguousarray(embedding, dtype=np.float32)
        emb, dims = e.ravel(), e.shape[1]
    return json.loads(call(_scdeep.evaluate, truth, pred, emb, dims, average_method))


def ari(truth, pred):
    """Adjusted Rand index."""
    return evaluate(truth, pred)["ari"]


def nmi(truth, pred, average_method="arithmetic"):
    """Normalized mutual information."""
    return evaluate(truth, pred, average_method=average_method)["nmi"]
