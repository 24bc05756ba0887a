"""Conversion between Python objects (AnnData, numpy, scipy) and the extension's arrays."""
import functools
import json

import numpy as np
import scipy.sparse as sp

from . import _scdeep
from ._errors import InvalidOptionError, _convert


def call(f, *args, **kwargs):
    """Call into the extension, raising scdeep's exception classes."""
    try:
        return f(*args, **kwargs)
    except _scdeep.CoreError as e:
        raise _convert(e) from None


def wrap(f):
    @functools.wraps(f)
    def inner(*args, **kwargs):
        return call(f, *args, **kwargs)
    return inner


def csr_parts(x, what="X"):
    """(n_cells, n_genes, indptr int64, indices int64, data float32) of a matrix, CSR.

    Sparse input stays sparse (CSC is converted to CSR, never to dense); dense numpy
    arrays (C or Fortran order) are converted to CSR; integer or float64 counts become
    float32 values."""
    if sp.issparse(x):
        m = sp.csr_matrix(x)
    elif isinstance(x, np.ndarray) or hasattr(x, "__array__"):
        a = np.asarray(x)
        if a.ndim != 2:
            raise InvalidOptionError(f"argument `{what}`: expected a 2-d matrix, got shape {a.shape}")
        m = sp.csr_matrix(a)
    else:
        raise InvalidOptionError(f"argument `{what}`: expected an AnnData, numpy array or scipy sparse matrix, got {type(x).__name__}")
    if m.ndim != 2:
        raise InvalidOptionError(f"argument `{what}`: expected a 2-d matrix")
    m.sort_indices()
    if m.dtype.kind not in "biuf":
        raise InvalidOptionError(f"argument `{what}`: counts must be numeric, got dtype {m.dtype}")
    data = m.data.astype(np.float32, copy=False)
    return (m.shape[0], m.shape[1], m.indptr.astype(np.int64, copy=False), m.indices.astype(np.int64, copy=False), data)


def matrix_of(adata, layer=None, use_raw=False):
    """The count matrix and gene names of an AnnData (X, a layer or raw.X)."""
    if use_raw and layer is not None:
        raise InvalidOptionError("arguments `layer` and `use_raw`: give one or the other")
    if use_raw:
        if adata.raw is None:
            raise InvalidOptionError("argument `use_raw`: adata.raw is None")
        return adata.raw.X, list(map(str, adata.raw.var_names))
    if layer is not None:
        if layer not in adata.layers:
            raise InvalidOptionError(f"argument `layer`: no layer {layer!r} in adata.layers (has {sorted(adata.layers.keys())})")
        return adata.layers[layer], list(map(str, adata.var_names))
    return adata.X, list(map(str, adata.var_names))


def config_json(method, n_clusters, device, seed, threads, options):
    """The config request (JSON) for a call, validated: core's `ConfigBuilder` sorts keyword
    arguments into sections, top-level fields and method parameters; the run applies the
    rule for neither k nor ground truth (graph clustering) when it sees the data."""
    opts = dict(options, device=device, seed=int(seed))
    if threads is not None:
        opts["threads"] = int(threads)
    k = None if n_clusters is None else int(n_clusters)
    return call(_scdeep.config_request, method, k, json.dumps(opts))
