"""`scdeep.Model`: fit, transform, save/load and pickle a method's model."""
import json

from . import _scdeep
from ._core import call, config_json, csr_parts, matrix_of
from ._errors import InvalidOptionError
from ._progress import Progress


def _input(data, layer=None, use_raw=False):
    """(matrix, cell names, gene names) of an AnnData, or of a matrix with default names."""
    if hasattr(data, "obs_names") and hasattr(data, "var_names"):
        x, genes = matrix_of(data, layer, use_raw)
        return x, list(map(str, data.obs_names)), genes
    if layer is not None or use_raw:
        raise InvalidOptionError("arguments `layer`/`use_raw` need an AnnData")
    shape = getattr(data, "shape", ())
    if len(shape) != 2:
        raise InvalidOptionError(f"argument `data`: expected a 2-d cells x genes matrix or an AnnData, got shape {shape}")
    return data, [f"cell_{i}" for i in range(shape[0])], [f"gene_{j}" for j in range(shape[1])]


class Model:
    """A self-supervised embedding model.

    Parameters
    ----------
    method : str, optional
        ``scdeep.methods()`` lists them; by default ``scdeep.DEFAULT_METHOD``.
    n_clusters : int, optional
        Clusters for ``labels_`` (default: the consensus estimates k; other methods
        cluster their kNN graph by Leiden at ``cluster.resolution``).
    device, seed, threads, verbose
        As in ``scdeep.tl.cluster``.
    **options
        Hyper-parameters and config sections, as in ``scdeep.tl.cluster``.

    Examples
    --------
    >>> m = scdeep.Model("scmae", train={"epochs": 50}).fit(adata)
    >>> emb = m.transform(new_adata)
    >>> m.save("model/"); m2 = scdeep.Model.load("model/")
    """

    def __init__(self, method=None, n_clusters=None, device="auto", seed=0, threads=None, verbose=True, **options):
        self.method = method or _scdeep.DEFAULT_METHOD
        self.n_clusters = n_clusters
        self.device = device
        self.seed = seed
        self.threads = threads
        self.verbose = verbose
        self.options = options
        config_json(self.method, n_clusters, device, seed, threads, options)  # errors before any work
        self._model = None
        self.labels_ = None
        self.embedding_ = None
        self.history_ = None

    def fit(self, data, layer=None, use_raw=False):
        """Train on counts (AnnData, numpy or scipy matrix). Returns self, with
        ``embedding_`` and ``labels_`` on every input cell (NaN rows and label -1 for cells
        the method's filter removed)."""
        x, cells, genes = _input(data, layer, use_raw)
        parts = csr_parts(x)
        cfg = config_json(self.method, self.n_clusters, self.device, self.seed, self.threads, self.options)
        progress = Progress(self.verbose)
        try:
            r = call(_scdeep.run, parts, cells, genes, None, cfg, progress)
        finally:
            progress.close()
        self._model = r["model"]
        self.embedding_ = r["embedding"]
        self.labels_ = r["labels"]
        self.history_ = json.loads(r["history"])
        return self

    def _fitted(self):
        if self._model is None:
            raise InvalidOptionError("this Model is not fitted: call fit() or Model.load()")
        return self._model

    def transform(self, data, layer=None, use_raw=False):
        """Embedding (cells x dims) of new counts, prepared like the training data; genes
        are matched by name and missing ones count as zero."""
        m = self._fitted()
        x, cells, genes = _input(data, layer, use_raw)
        parts = csr_parts(x)
        emb, missing = call(m.embed, parts, cells, genes, self.device)
        if missing:
            import warnings
            warnings.warn(f"{missing} of the model's {len(m.genes)} genes are missing from the data; they count as zero", stacklevel=2)
        return emb

    def fit_transform(self, data, layer=None, use_raw=False):
        """fit, then the embedding of the training cells."""
        self.fit(data, layer, use_raw)
        return self.transform(data, layer, use_raw)

    def save(self, path, overwrite=False):
        """Write the model folder (weights, config, genes, preprocessing).

        An existing folder is replaced only when it is empty or scdeep wrote it;
        ``overwrite=True`` writes into any folder (files that are not the model's stay).
        """
        call(self._fitted().save, str(path), overwrite)

    @classmethod
    def load(cls, path, method=None, device="auto"):
        """Load a model folder (from ``save`` or ``scdeep run --save-model``)."""
        inner = call(_scdeep.Model.load, str(path), method, device)
        cfg = json.loads(inner.config_json)
        m = cls.__new__(cls)
        m.method, m.n_clusters, m.device, m.seed, m.threads, m.verbose = inner.method, None, device, cfg["seed"], cfg["threads"], True
        m.options, m._model, m.labels_, m.embedding_, m.history_ = {}, inner, None, None, None
        return m

    @property
    def genes(self):
        """The model's genes, in input order."""
        return self._fitted().genes

    def __getstate__(self):
        s = {k: v for k, v in self.__dict__.items() if k != "_model"}
        s["_files"] = None if self._model is None else dict(self._model.to_files())
        return s

    def __setstate__(self, s):
        files = s.pop("_files")
        self.__dict__.update(s)
        self._model = None if files is None else call(_scdeep.Model.from_files, files, self.device)

    def __repr__(self):
        state = "fitted" if self._model is not None else "not fitted"
        return f"scdeep.Model({self.method!r}, {state})"
