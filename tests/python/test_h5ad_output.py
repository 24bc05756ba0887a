"""The .h5ad copy that `scdeep run` writes must open in anndata and work in scanpy."""
import json
import os
import subprocess

import anndata as ad
import numpy as np
import pytest
import scanpy as sc

import scdeep

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "scdeep")
DATA = os.path.join(ROOT, "..", "shared", "data")


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    src = os.path.join(DATA, "10x_pbmc_top2000", "10x_pbmc_top2000.h5ad")
    subprocess.run([BIN, "run", "-q", "--input", src, "--label-key", "cell_type", "--method", "pca", "--out", str(out)], check=True)
    return out, src


def test_h5ad_copy_opens_in_anndata_and_scanpy(result):
    out, src = result
    a = ad.read_h5ad(out / "10x_pbmc_top2000.scdeep.h5ad")
    orig = ad.read_h5ad(src)
    assert a.shape == orig.shape
    assert (a.X != orig.X).nnz == 0  # the input's data is untouched
    assert list(a.obs.columns) == ["cell_type", "pca_clusters"]
    assert isinstance(a.obs["pca_clusters"].dtype, __import__("pandas").CategoricalDtype)
    emb = np.load(out / "embedding.npy")
    np.testing.assert_array_equal(a.obsm["X_pca"], emb)
    labels = [l.split("\t")[1] for l in open(out / "labels.tsv").read().splitlines()[1:]]
    assert a.obs["pca_clusters"].astype(str).tolist() == labels
    m = json.load(open(out / "metrics.json"))
    assert a.uns["scdeep"]["pca"]["metrics"]["ari"] == pytest.approx(m["ari"])
    info = json.loads(a.uns["scdeep"]["pca"]["run"])
    assert info["config"]["method"] == "pca"
    assert json.loads(a.uns["scdeep"]["pca"]["config"]) == info["config"]
    sc.pp.neighbors(a, use_rep="X_pca", n_neighbors=10)
    sc.tl.umap(a, maxiter=20)
    assert a.obsm["X_umap"].shape == (a.n_obs, 2)


def test_the_cli_and_python_write_the_same_results_schema(result):
    """One description of the results (core's results module): the CLI's .h5ad and
    scdeep.tl.cluster give the same uns['scdeep'] keys, config, metrics and cells' results."""
    out, src = result
    cli = ad.read_h5ad(out / "10x_pbmc_top2000.scdeep.h5ad")
    py = ad.read_h5ad(src)
    scdeep.tl.cluster(py, method="pca", label_key="cell_type", verbose=False)
    u_cli, u_py = cli.uns["scdeep"]["pca"], py.uns["scdeep"]["pca"]
    assert set(u_cli) == set(u_py) == {"config", "run", "versions", "timings_s", "history", "metrics", "stability"}
    assert u_cli["config"] == u_py["config"]
    # the partition's stability under subsampling, overall and per cluster, the same from both
    assert u_cli["stability"]["overall"] == u_py["stability"]["overall"] == u_py["metrics"]["stability"]
    assert dict(u_cli["stability"]["per_cluster"]) == dict(u_py["stability"]["per_cluster"])
    assert u_cli["metrics"] == pytest.approx(u_py["metrics"])
    assert set(u_cli["versions"]) == set(u_py["versions"]) and set(u_cli["timings_s"]) == set(u_py["timings_s"])
    np.testing.assert_array_equal(cli.obsm["X_pca"], py.obsm["X_pca"])
    assert cli.obs["pca_clusters"].astype(str).tolist() == py.obs["pca_clusters"].astype(str).tolist()


def test_metrics_agree_with_scikit_learn(result):
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
    out, src = result
    a = ad.read_h5ad(out / "10x_pbmc_top2000.scdeep.h5ad")
    m = json.load(open(out / "metrics.json"))
    assert m["ari"] == pytest.approx(adjusted_rand_score(a.obs["cell_type"], a.obs["pca_clusters"]), abs=1e-9)
    assert m["nmi"] == pytest.approx(normalized_mutual_info_score(a.obs["cell_type"], a.obs["pca_clusters"]), abs=1e-9)


def test_simulated_h5ad_is_valid_anndata(tmp_path):
    p = tmp_path / "sim.h5ad"
    subprocess.run([BIN, "simulate", "-q", "--out", str(p), "--n-cells", "300", "--n-genes", "200", "--batches", "100,200",
                    "--dropout-type", "batch", "--dropout-mid", "1,3", "--dropout-shape=-1,-1"], check=True)
    a = ad.read_h5ad(p)
    assert a.shape == (300, 200)
    assert set(a.obs["batch"]) == {"Batch1", "Batch2"}
    assert "true_counts" in a.layers
    t = a.layers["true_counts"]
    assert (a.X > t).nnz == 0  # dropout only removes counts


def test_imputed_layer_and_mtx_agree_and_keep_observed_values(tmp_path):
    # MaskClass's imputed matrix: layer + var flag in the .h5ad, the same values in imputed/
    src = os.path.join(DATA, "darmanis_top1000hvg", "darmanis_top1000hvg.h5ad")
    subprocess.run([BIN, "run", "-q", "--input", src, "--label-key", "cell_type", "--method", "maskclass", "--epochs", "3",
                    "--n-top-genes", "500", "--imputed-mtx", "--out", str(tmp_path)], check=True)
    a = ad.read_h5ad(tmp_path / "darmanis_top1000hvg.scdeep.h5ad")
    covered = a.var["scdeep_imputed"].to_numpy()
    assert covered.dtype == bool and covered.sum() == 500
    layer = a.layers["scdeep_imputed"].tocsr()
    assert layer[:, ~covered].nnz == 0
    m = sc.read_10x_mtx(tmp_path / "imputed")
    cols = a.var_names.get_indexer(m.var_names)
    rows = a.obs_names.get_indexer(m.obs_names)
    np.testing.assert_array_equal(layer[rows][:, cols].toarray(), m.X.toarray())
    # observed counts: imputed value = log2(1 + count * median library / library) over the recipe's genes
    x = a.X.toarray()[rows].astype(np.float64)
    kept = (a.X.toarray() > 0).sum(0) >= 3
    lib = x[:, kept].sum(1, keepdims=True)
    want = np.log2(1 + x[:, cols] * np.median(lib) / lib)
    obs = x[:, cols] > 0
    np.testing.assert_allclose(m.X.toarray()[obs], want[obs], rtol=1e-5)
    assert (m.X.toarray()[~obs] > 0).mean() > 0.5


def test_imputed_from_raw_goes_to_mtx_not_a_layer(tmp_path):
    # raw/X has other genes than var: no layer can hold the imputed values; imputed/ does
    a = ad.read_h5ad(os.path.join(DATA, "pollen_top1000hvg", "pollen_top1000hvg.h5ad"))
    a.raw = a
    a = a[:, :400].copy()
    src = tmp_path / "with_raw.h5ad"
    a.write_h5ad(src)
    out = tmp_path / "out"
    subprocess.run([BIN, "run", "-q", "--input", str(src), "--use-raw", "--label-key", "cell_type", "--method", "maskclass",
                    "--epochs", "2", "--out", str(out)], check=True)
    res = ad.read_h5ad(out / "with_raw.scdeep.h5ad")
    assert "scdeep_imputed" not in res.layers and "X_maskclass" in res.obsm
    m = sc.read_10x_mtx(out / "imputed")
    assert m.n_vars == 1000 and m.n_obs == a.n_obs


def _run(args):
    return subprocess.run([BIN, "run", *args], check=True, capture_output=True, text=True)


@pytest.mark.parametrize("method,extra", [("pca", []), ("scrae", ["--epochs", "1", "--set", "preprocess.exclude_highly_expressed=false"])])
def test_wide_h5ad_read_in_row_blocks_gives_the_same_run(tmp_path, method, extra):
    """An .h5ad preprocessed while it is read in row blocks (--stream-min-nnz 0) gives
    the run that reading it whole gives: same embedding, labels and .h5ad results."""
    p = tmp_path / "wide.h5ad"
    subprocess.run([BIN, "simulate", "-q", "--out", str(p), "--n-cells", "2500", "--n-genes", "5000", "--seed", "3"], check=True)
    outs = {}
    for mode in ("0", "none"):
        out = tmp_path / f"out_{mode}"
        r = _run(["--input", str(p), "--label-key", "group", "--method", method, "-k", "4", "--out", str(out), "--stream-min-nnz", mode, *extra])
        assert ("in blocks of rows" in r.stderr) == (mode == "0"), r.stderr
        outs[mode] = out
    a, b = outs["0"], outs["none"]
    np.testing.assert_array_equal(np.load(a / "embedding.npy"), np.load(b / "embedding.npy"))
    assert open(a / "labels.tsv").read() == open(b / "labels.tsv").read()
    ha, hb = ad.read_h5ad(a / "wide.scdeep.h5ad"), ad.read_h5ad(b / "wide.scdeep.h5ad")
    np.testing.assert_array_equal(ha.obsm[f"X_{method}"], hb.obsm[f"X_{method}"])
    assert ha.obs[f"{method}_clusters"].equals(hb.obs[f"{method}_clusters"])
    assert json.load(open(a / "run.json"))["config"] == json.load(open(b / "run.json"))["config"]
