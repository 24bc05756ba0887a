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


def _labels(adata, label_key):
    if label_key is None:
        return None
    if label_key not in adata.obs:
        raise InvalidOptionError(f"argument `label_key`: no column {label_key!r} in adata.obs (has {list(adata.obs.columns)})")
    return adata.obs[label_key].astype(str).tolist()


def _flat(d):
    """uns-friendly: drop None values (h5ad cannot store them)."""
    return {k: v for k, v in d.items() if v is not None}


def cluster(adata, method="scmae", n_clusters=None, layer=None, use_raw=False, label_key=None, key_added=None,
            device="auto", seed=0, threads=None, verbose=True, copy=False, **method_options):
    """Learn an embedding with a self-supervised method, cluster the cells, and score them.

    Parameters
    ----------
    adata : anndata.AnnData
        Raw counts in ``X`` (or ``layer`` / ``raw``); sparse data is never densified.
    method : str
        ``scdeep.methods()`` lists them (``"scmae"``, ``"pca"``, ...).
    n_clusters : int, optional
        Number of clusters; by default the number of classes in ``label_key``, or graph
        clustering at resolution 1.0 when neither is given.
    layer : str, optional
        Use ``adata.layers[layer]`` instead of ``X``.
    use_raw : bool
        Use ``adata.raw.X``.
    label_key : str, optional
        ``obs`` column with ground truth: adds metrics to ``uns``.
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
        get NaN) and ``uns['scdeep'][<key>]`` (config JSON, history, metrics). Methods that
        impute (``"maskclass"``) also write ``layers['scdeep_imputed']`` (sparse, the
        log-normalised scale of the method, observed non-zeros unchanged; genes the
        method did not use and dropped cells are empty) and ``var['scdeep_imputed']``
        (which genes it covers).
    """
    adata = adata.copy() if copy else adata
    x, genes = matrix_of(adata, layer, use_raw)
    parts = csr_parts(x, "layer" if layer else "X")
    labels = _labels(adata, label_key)
    cfg = config_json(method, n_clusters, device, seed, threads, method_options, has_truth=labels is not None)
    progress = Progress(verbose)
    try:
        r = call(_scdeep.run, parts, list(map(str, adata.obs_names)), genes, labels, cfg, progress)
    finally:
        progress.close()
    key = key_added or method
    emb = r["embedding"]
    idx = np.asarray(r["cell_index"], dtype=np.int64)
    full = np.full((adata.n_obs, emb.shape[1]), np.nan, dtype=np.float32)
    full[idx] = emb
    adata.obsm[f"X_{key}"] = full
    lab = np.full(adata.n_obs, None, dtype=object)
    lab[idx] = r["labels"].astype(str)
    cats = sorted({str(v) for v in r["labels"]}, key=int)
    adata.obs[f"{key}_clusters"] = pd.Categorical(lab, categories=cats)
    info = json.loads(r["info"])
    hist = json.loads(r["history"])
    entry = {"config": json.dumps(info["config"]), "versions": _flat(info["versions"]), "timings_s": _flat(info["timings_s"]),
             "history": {k: np.array([h.get(k, np.nan) for h in hist], dtype=float) for k in (hist[0] if hist else {})}}
    if r["metrics"] is not None:
        entry["metrics"] = _flat(json.loads(r["metrics"]))
    adata.uns.setdefault("scdeep", {})[key] = entry
    if r["imputed"] is not None:
        _add_imputed(adata, r["imputed"], idx, genes, use_raw)
    return adata if copy else None


def _add_imputed(adata, imp, idx, genes, use_raw):
    """The imputed values in the shape of ``adata`` (see ``cluster``)."""
    if use_raw:
        warnings.warn("scdeep: the imputed matrix covers adata.raw's genes, not adata.var's; "
                      "it is in adata.uns['scdeep_imputed'] (values, genes, cell_index) instead of a layer")
        adata.uns["scdeep_imputed"] = {"values": imp["values"], "genes": np.asarray(imp["genes"], dtype=object), "cell_index": idx}
        return
    pos = {g: j for j, g in enumerate(genes)}
    cols = np.array([pos[g] for g in imp["genes"]], dtype=np.int64)
    vals = imp["values"]
    rows = np.repeat(idx, len(cols))
    full = sp.csr_matrix((vals.ravel(), (rows, np.tile(cols, len(idx)))), shape=(adata.n_obs, adata.n_vars), dtype=np.float32)
    full.eliminate_zeros()
    adata.layers["scdeep_imputed"] = full
    covered = np.zeros(adata.n_vars, dtype=bool)
    covered[cols] = True
    adata.var["scdeep_imputed"] = covered
