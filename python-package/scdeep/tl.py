"""Tools in scanpy's style: results go into `obsm`, `obs` and `uns`."""
import json
import warnings

import numpy as np
import pandas as pd
import scipy.sparse as sp

from . import _scdeep
from ._core import call, config_json, csr_parts, matrix_of
from ._errors import InvalidOptionError
from ._progress import Progress


def _labels(adata, label_key, argument="label_key"):
    if label_key is None:
        return None
    if label_key not in adata.obs:
        raise InvalidOptionError(f"argument `{argument}`: no column {label_key!r} in adata.obs (has {list(adata.obs.columns)})")
    col = adata.obs[label_key]
    if col.isna().any():
        raise InvalidOptionError(f"argument `{argument}`: adata.obs[{label_key!r}] is missing for {int(col.isna().sum())} cells")
    return col.astype(str).tolist()


def cluster(adata, method=None, n_clusters=None, layer=None, use_raw=False, label_key=None, key_added=None,
            device="auto", seed=0, threads=None, verbose=True, copy=False, batch_key=None, **method_options):
    """Learn an embedding with a self-supervised method, cluster the cells, and score them.

    Parameters
    ----------
    adata : anndata.AnnData
        Raw counts in ``X`` (or ``layer`` / ``raw``); sparse data is never densified.
    method : str, optional
        ``scdeep.methods()`` lists them (``"scmae"``, ``"pca"``, ...); by default
        ``scdeep.DEFAULT_METHOD`` (core's, the same in every door).
    n_clusters : int, optional
        Number of clusters; by default the number of classes in ``label_key``; when
        neither is given the consensus estimates it, other methods cluster by Leiden at
        resolution 1.0.
    layer : str, optional
        Use ``adata.layers[layer]`` instead of ``X``.
    use_raw : bool
        Use ``adata.raw.X``.
    label_key : str, optional
        ``obs`` column with ground truth: adds metrics to ``uns``.
    batch_key : str, optional
        ``obs`` column with each cell's batch (sample, donor, lane), as in scanpy and
        scvi-tools: the embedding is corrected for it before clustering (Harmony; pass
        ``batch={"correction": "none"}`` to keep it as is), ``uns`` gets each cluster's
        cells per batch, and with ``label_key`` the metrics add scIB's batch silhouette,
        iLISI, cLISI and graph connectivity. ``obsm`` holds the corrected embedding.
    key_added : str, optional
        Name for the results (default: the method).
    device : {"auto", "cpu", "cuda", "cuda:N"}
    seed : int
    threads : int, optional
        libtorch threads (default 1).
    verbose : bool
        Show training progress.
    copy : bool
        Return a copy instead of writing into ``adata``.
    **method_options
        The method's hyper-parameters (``mask_rate=0.3``) and whole config sections
        (``train={"epochs": 50}``, ``preprocess={"n_top_genes": 2000}``, ``cluster={...}``).

    Returns
    -------
    anndata.AnnData or None
        With ``copy=True`` the annotated copy. Writes ``obsm['X_<key>']``,
        ``obs['<key>_clusters']`` (categorical strings; cells dropped by the cell filter
        get NaN) and ``uns['scdeep'][<key>]`` (the keys every door writes: config and run as
        JSON text, versions, timings_s, history, metrics). Methods that
        impute (``"maskclass"``) also write ``layers['scdeep_imputed']`` (sparse, the
        log-normalised scale of the method, observed non-zeros unchanged; genes the
        method did not use and dropped cells are empty) and ``var['scdeep_imputed']``
        (which genes it covers).
    """
    adata = adata.copy() if copy else adata
    x, genes = matrix_of(adata, layer, use_raw)
    parts = csr_parts(x, "layer" if layer else "X")
    labels = _labels(adata, label_key)
    batches = _labels(adata, batch_key, "batch_key")
    if batch_key is not None:
        method_options = dict(method_options, batch=dict(method_options.get("batch") or {}, key=batch_key))
    method = method or _scdeep.DEFAULT_METHOD
    cfg = config_json(method, n_clusters, device, seed, threads, method_options)
    progress = Progress(verbose)
    try:
        r = call(_scdeep.run, parts, list(map(str, adata.obs_names)), genes, labels, cfg, progress, batches)
    finally:
        progress.close()
    key = key_added or method
    # results on the input's cells and genes, placed by the core: only container types here
    adata.obsm[f"X_{key}"] = r["embedding"]
    lab = r["labels"]
    kept = lab >= 0  # -1: a cell the filter removed (NaN cluster)
    cats = np.unique(lab[kept])
    codes = np.full(len(lab), -1, dtype=np.int64)
    codes[kept] = np.searchsorted(cats, lab[kept])
    adata.obs[f"{key}_clusters"] = pd.Categorical.from_codes(codes, categories=[str(c) for c in cats])
    adata.uns.setdefault("scdeep", {})[key] = _uns(json.loads(r["uns"]))
    if r["imputed"] is not None:
        _add_imputed(adata, r["imputed"], use_raw)
    return adata if copy else None


def _uns(entry):
    """core's uns entry (`scdeep_core::results::uns_entry`) as AnnData stores it:
    loss columns as float arrays (null = NaN)."""
    entry["history"] = {k: np.array(v, dtype=float) for k, v in entry["history"].items()}
    return entry


def _add_imputed(adata, imp, use_raw):
    """The imputed values, placed by the core on the input's cells and genes (see ``cluster``)."""
    m = sp.csr_matrix((imp["data"], imp["indices"], imp["indptr"]), shape=imp["shape"], dtype=np.float32)
    if use_raw:
        warnings.warn("scdeep: the imputed matrix covers adata.raw's genes, not adata.var's; "
                      "it is in adata.uns['scdeep_imputed'] (X: cells x raw genes, covered) instead of a layer")
        adata.uns["scdeep_imputed"] = {"X": m, "covered": imp["covered"]}
        return
    adata.layers["scdeep_imputed"] = m
    adata.var["scdeep_imputed"] = imp["covered"]
