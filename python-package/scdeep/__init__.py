"""scdeep: deep self-supervised clustering of single-cell RNA-seq counts, on AnnData.

>>> import scdeep
>>> scdeep.tl.cluster(adata, method="scmae", label_key="cell_type")
>>> adata.obsm["X_scmae"], adata.obs["scmae_clusters"], adata.uns["scdeep"]["scmae"]

The engine is Rust on libtorch (scdeep._scdeep); this package converts AnnData, numpy
and scipy inputs and writes results where scanpy users expect them.
"""
import json

import torch  # noqa: F401  (loads libtorch and makes CUDA visible before the extension)

from . import _scdeep, metrics, pp, tl
from ._core import call
from ._errors import DataError, FileFormatError, InvalidOptionError, NumericError, ScdeepError, ScdeepIOError
from ._model import Model

__version__ = _scdeep.version()
#: The method of a call that names none (core's, the same in the CLI, C and R).
DEFAULT_METHOD = _scdeep.DEFAULT_METHOD
__all__ = ["tl", "pp", "metrics", "Model", "methods", "simulate", "DEFAULT_METHOD", "ScdeepError", "InvalidOptionError", "DataError",
           "FileFormatError", "ScdeepIOError", "NumericError", "__version__"]


def methods():
    """Every method with its description and default configuration.

    Returns
    -------
    dict
        ``{name: {"description": str, "reference": str, "default_config": dict}}``, read
        from the core (the same list as ``scdeep methods --json``).
    """
    return {m["name"]: {k: v for k, v in m.items() if k != "name"} for m in json.loads(call(_scdeep.methods_json))}


def simulate(n_cells=1000, n_genes=2000, group_prob=(1.0,), seed=0, **params):
    """Splatter-style simulated counts with known groups.

    Parameters
    ----------
    n_cells, n_genes : int
        Size of the count matrix.
    group_prob : sequence of float
        Proportion of cells per group.
    seed : int
        Random seed.
    **params
        Any other simulation parameter (``de_prob``, ``dropout_type``, ``dropout_mid``, ...).

    Returns
    -------
    anndata.AnnData
        ``X`` observed counts (CSR float32), ``layers['true_counts']``,
        ``obs['group']`` and ``obs['batch']``.
    """
    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp

    p = dict(params, n_cells=int(n_cells), n_genes=int(n_genes), group_prob=[float(g) for g in group_prob], seed=int(seed))
    s = call(_scdeep.simulate, json.dumps(p))

    def csr(d):
        return sp.csr_matrix((d["data"], d["indices"], d["indptr"]), shape=tuple(d["shape"]))

    obs = pd.DataFrame({"group": pd.Categorical(s["groups"]), "batch": pd.Categorical(s["batches"])}, index=s["cells"])
    a = ad.AnnData(X=csr(s["counts"]), obs=obs, var=pd.DataFrame(index=s["genes"]))
    if s["true_counts"] is not None:  # params={"true_counts": False} skips them
        a.layers["true_counts"] = csr(s["true_counts"])
    return a
