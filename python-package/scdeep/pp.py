"""Preprocessing recipes (the core's, identical to scanpy's semantics; see specs §0)."""
import json

import numpy as np
import pandas as pd
import scipy.sparse as sp

from . import _scdeep
from ._core import call, csr_parts, matrix_of


def recipe(adata, recipe="scanpy", n_top_genes=None, layer=None, use_raw=False, **options):
    """Normalise, log-transform and select highly variable genes as a method would.

    Parameters
    ----------
    adata : anndata.AnnData
        Raw counts (``X``, a ``layer`` or ``raw``).
    recipe : {"scanpy", "dca", "sanity", "custom"}
        ``dca``: ceil, drop empty genes/cells, median normalisation, log1p, 'seurat' HVGs
        (1000), scaling without clipping (scMAE, contrastive-sc, CICL). ``scanpy``: median
        normalisation, log1p, 2000 'seurat' HVGs, scaling clipped at 10. ``sanity``: CPM
        1e4, log1p, top-2000 variance genes.
    n_top_genes : int, optional
        Number of highly variable genes (default: the recipe's).
    layer, use_raw
        Where the counts are.
    **options
        Any field of the ``preprocess`` config (``hvg_flavor="seurat_v3"``,
        ``target_sum=1e4``, ``min_genes_per_cell=200``, ...).

    Returns
    -------
    anndata.AnnData
        The kept cells and selected genes: ``X`` log-normalised (sparse, not scaled),
        ``layers['counts']`` their raw counts, ``obs['size_factor']``, ``var['mean']`` and
        ``var['std']`` (the per-gene scaler the methods apply to mini-batches) and
        ``uns['scdeep_preprocess']`` (the resolved options as JSON).
    """
    import anndata as ad

    x, genes = matrix_of(adata, layer, use_raw)
    over = dict(options, recipe=recipe)
    if n_top_genes is not None:
        over["n_top_genes"] = int(n_top_genes)
    r = call(_scdeep.prepare, csr_parts(x), list(map(str, adata.obs_names)), genes, json.dumps(over))

    def csr(d):
        return sp.csr_matrix((d["data"], d["indices"], d["indptr"]), shape=tuple(d["shape"]))

    idx = np.asarray(r["cell_index"], dtype=np.int64)
    obs = adata.obs.iloc[idx].copy()
    obs["size_factor"] = r["size_factors"]
    var = pd.DataFrame(index=r["genes"])
    if r["mean"] is not None:
        var["mean"], var["std"] = r["mean"], r["std"]
    out = ad.AnnData(X=csr(r["x"]), obs=obs, var=var, layers={"counts": csr(r["counts"])})
    out.uns["scdeep_preprocess"] = r["config"]
    return out
