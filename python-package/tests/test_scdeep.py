"""The Python package on AnnData: results where scanpy expects them, the CLI's labels,
round trips, and the right exception classes."""
import os
import pickle
import subprocess

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp

import scdeep

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "..", "shared", "data")
PBMC = os.path.join(DATA, "10x_pbmc_top2000", "10x_pbmc_top2000.h5ad")
POLLEN = os.path.join(DATA, "pollen_top1000hvg", "pollen_top1000hvg.h5ad")
BIN = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "scdeep")
FAST = {"train": {"epochs": 10}}


def test_same_labels_as_the_cli(tmp_path):
    # no method named: both doors take the core's default
    assert scdeep.DEFAULT_METHOD == scdeep.Model().method == "consensus"
    a = ad.read_h5ad(PBMC)
    scdeep.tl.cluster(a, label_key="cell_type", seed=0, threads=1, device="cpu", verbose=False, **FAST)
    subprocess.run([BIN, "run", "-q", "-i", PBMC, "--label-key", "cell_type", "--seed", "0", "--threads", "1",
                    "--device", "cpu", "--epochs", "10", "--no-h5ad", "--out", str(tmp_path)], check=True)
    cli = [line.split("\t")[1] for line in (tmp_path / "labels.tsv").read_text().splitlines()[1:]]
    assert list(a.obs["consensus_clusters"].astype(str)) == cli
    # the members' embeddings side by side: pca 50, scmae 128, contrastive-sc 60, mask-sc-mlp 60
    # (each weighted by its agreement; a member no better than chance left out)
    run = __import__("json").loads(a.uns["scdeep"]["consensus"]["run"])
    kept = sum(m["dims"] for m in run["clustering"]["members"] if m["kept"])
    assert a.obsm["X_consensus"].shape == (a.n_obs, kept) and kept >= 298 - 128
    u = a.uns["scdeep"]["consensus"]
    assert u["metrics"]["ari"] > 0.5 and "loss_mask[scmae]" in u["history"]
    assert isinstance(a.obs["consensus_clusters"].dtype, __import__("pandas").CategoricalDtype)


def test_batch_key_corrects_scores_and_gives_the_clis_labels(tmp_path):
    a = scdeep.simulate(n_cells=600, n_genes=500, group_prob=(0.5, 0.5), seed=2, de_prob=0.2,
                        batch_cells=[300, 300], batch_fac_loc=0.15, batch_fac_scale=0.15)
    a.write_h5ad(tmp_path / "sim.h5ad")
    none = scdeep.tl.cluster(a, method="pca", label_key="group", batch_key="batch", batch={"correction": "none"},
                             verbose=False, copy=True)
    scdeep.tl.cluster(a, method="pca", label_key="group", batch_key="batch", verbose=False)
    subprocess.run([BIN, "run", "-q", "-i", str(tmp_path / "sim.h5ad"), "--label-key", "group", "--batch-key", "batch",
                    "-m", "pca", "--no-h5ad", "--out", str(tmp_path / "cli")], check=True)
    cli = [line.split("\t")[1] for line in (tmp_path / "cli" / "labels.tsv").read_text().splitlines()[1:]]
    assert list(a.obs["pca_clusters"].astype(str)) == cli
    u, u0 = a.uns["scdeep"]["pca"], none.uns["scdeep"]["pca"]
    assert u["batch"]["correction"]["method"] == "harmony" and u0["batch"]["correction"]["method"] == "none"
    assert u["metrics"]["ilisi"] > u0["metrics"]["ilisi"] + 0.2 and u["metrics"]["ari"] > 0.9
    assert sum(sum(c.values()) for c in u["batch"]["clusters_by_batch"].values()) == a.n_obs
    a.write_h5ad(tmp_path / "out.h5ad")  # the batch account is h5ad-storable
    with pytest.raises(scdeep.InvalidOptionError, match="batch_key.*'donor'"):
        scdeep.tl.cluster(a, method="pca", batch_key="donor", verbose=False)
    a.obs["cell"] = a.obs_names
    with pytest.raises(scdeep.InvalidOptionError, match="every cell is a batch of its own"):
        scdeep.tl.cluster(a, method="pca", batch_key="cell", verbose=False)


def test_scanpy_runs_on_the_output(tmp_path):
    import scanpy as sc
    a = ad.read_h5ad(POLLEN)
    scdeep.tl.cluster(a, method="scmae", label_key="cell_type", device="cpu", verbose=False, **FAST)
    sc.pp.neighbors(a, use_rep="X_scmae")
    sc.tl.umap(a)
    assert a.obsm["X_umap"].shape == (a.n_obs, 2)
    a.write_h5ad(tmp_path / "out.h5ad")  # uns holds only h5ad-storable values
    b = ad.read_h5ad(tmp_path / "out.h5ad")
    assert np.array_equal(b.obsm["X_scmae"], a.obsm["X_scmae"])


def test_consensus_runs_from_anndata_with_every_members_labels():
    import json
    a = ad.read_h5ad(POLLEN)
    scdeep.tl.cluster(a, method="consensus", label_key="cell_type", device="cpu", threads=1, verbose=False, **FAST)
    run = json.loads(a.uns["scdeep"]["consensus"]["run"])
    members = run["clustering"]["members"]
    assert [m["method"] for m in members] == ["pca", "scmae", "contrastive-sc", "mask-sc-mlp"]
    # the consensus's train.epochs reached every deep member; the embedding is theirs side by side
    assert all(m["config"]["train"]["epochs"] == 10 for m in members[1:])
    assert a.obsm["X_consensus"].shape == (a.n_obs, sum(m["dims"] for m in members if m["kept"]))
    assert a.uns["scdeep"]["consensus"]["metrics"]["ari"] > 0.8
    # weights from each member's agreement with the others, the most agreeing member at 1
    assert max(m["weight"] for m in members) == 1 and all(0 <= m["weight"] <= 1 for m in members)
    assert all(m["kept"] == (m["weight"] > 0) for m in members)
    # how stable the partition is, overall and per cluster, with and without labels
    u = a.uns["scdeep"]["consensus"]
    assert 0 < u["stability"]["overall"] <= 1 and u["metrics"]["stability"] == u["stability"]["overall"]
    assert set(u["stability"]["per_cluster"]) == {str(c) for c in a.obs["consensus_clusters"].cat.categories}


def test_a_consensus_model_transforms_into_its_consensus_embedding(tmp_path):
    a = ad.read_h5ad(POLLEN)
    m = scdeep.Model("consensus", device="cpu", threads=1, verbose=False, members=["pca", "scmae"], **FAST).fit(a)
    e = m.transform(a)
    assert np.array_equal(e, m.embedding_)  # the run's cells at the run's embedding
    m2 = pickle.loads(pickle.dumps(m))
    assert np.array_equal(m2.transform(a), e)
    m.save(tmp_path / "model")
    assert (tmp_path / "model" / "members" / "scmae" / "model.safetensors").is_file()
    assert np.array_equal(scdeep.Model.load(tmp_path / "model", method="consensus", device="cpu").transform(a), e)


def test_inputs_are_converted_alike():
    a = ad.read_h5ad(POLLEN)
    x = sp.csr_matrix(a.X)
    kw = dict(method="pca", n_clusters=5, device="cpu", verbose=False)
    outs = []
    for m in (x, x.tocsc(), x.toarray(), np.asfortranarray(x.toarray()), x.toarray().astype(np.float64), x.toarray().astype(np.int64)):
        b = ad.AnnData(m, obs=a.obs, var=a.var)
        scdeep.tl.cluster(b, **kw)
        outs.append(b.obsm["X_pca"])
    for o in outs[1:]:
        np.testing.assert_allclose(o, outs[0], rtol=1e-5, atol=1e-5)
    # copy=True leaves the input alone; layers work
    b = ad.AnnData(x, obs=a.obs, var=a.var, layers={"counts": x})
    c = scdeep.tl.cluster(b, layer="counts", copy=True, key_added="p2", **kw)
    assert "X_p2" in c.obsm and "X_p2" not in b.obsm


def test_cells_the_filter_removes_get_missing_results():
    a = ad.read_h5ad(POLLEN)
    x = sp.csr_matrix(a.X, dtype=np.float32)
    x = sp.vstack([x[:3], sp.csr_matrix((2, x.shape[1]), dtype=np.float32), x[3:]]).tocsr()  # cells 3 and 4: no counts
    b = ad.AnnData(x, obs=__import__("pandas").DataFrame(index=[f"c{i}" for i in range(x.shape[0])]), var=a.var)
    scdeep.tl.cluster(b, method="pca", n_clusters=5, device="cpu", verbose=False)
    cl = b.obs["pca_clusters"]
    assert cl.isna().tolist()[2:6] == [False, True, True, False] and cl.notna().sum() == x.shape[0] - 2
    assert np.isnan(b.obsm["X_pca"][3:5]).all() and not np.isnan(b.obsm["X_pca"][[0, 5]]).any()
    m = scdeep.Model("pca", n_clusters=5, device="cpu", verbose=False).fit(x)
    assert list(m.labels_[2:6] < 0) == [False, True, True, False] and np.isnan(m.transform(x)[3]).all()


def test_model_save_load_and_pickle(tmp_path):
    a = ad.read_h5ad(POLLEN)
    m = scdeep.Model("scmae", device="cpu", verbose=False, **FAST).fit(a)
    e = m.transform(a)
    m.save(tmp_path / "model")
    m2 = scdeep.Model.load(tmp_path / "model", method="scmae", device="cpu")
    assert np.array_equal(m2.transform(a), e)
    m3 = pickle.loads(pickle.dumps(m))
    assert np.array_equal(m3.transform(a), e)
    assert len(m.labels_) == a.n_obs and m.genes == m2.genes
    with pytest.raises(scdeep.InvalidOptionError, match="holds a `scmae` model"):
        scdeep.Model.load(tmp_path / "model", method="pca")
    with pytest.raises(scdeep.ScdeepIOError, match="genes.tsv"):
        os.remove(tmp_path / "model" / "genes.tsv")
        scdeep.Model.load(tmp_path / "model")
    # a folder of the user's is not written into unless overwrite=True, which keeps its files
    user = tmp_path / "mine"
    user.mkdir()
    (user / "config.json").write_text("{}")
    (user / "notes.txt").write_text("keep")
    with pytest.raises(scdeep.ScdeepIOError, match="overwrite"):
        m.save(user)
    assert (user / "config.json").read_text() == "{}"
    m.save(user, overwrite=True)
    assert (user / "notes.txt").read_text() == "keep"
    assert np.array_equal(scdeep.Model.load(user, device="cpu").transform(a), e)


def test_errors_name_the_argument():
    a = ad.read_h5ad(POLLEN)
    with pytest.raises(scdeep.InvalidOptionError, match="layer"):
        scdeep.tl.cluster(a, layer="nope", verbose=False)
    with pytest.raises(ValueError, match="mask_ratio"):
        scdeep.tl.cluster(a, method="scmae", mask_ratio=0.3, label_key="cell_type", verbose=False)
    with pytest.raises(scdeep.InvalidOptionError, match="unknown method"):
        scdeep.tl.cluster(a, method="magic", verbose=False)
    with pytest.raises(scdeep.InvalidOptionError, match="label_key"):
        scdeep.tl.cluster(a, label_key="nope", verbose=False)
    bad = a.X.toarray()
    bad[3, 5] = np.nan
    with pytest.raises(scdeep.DataError, match="NaN"):
        scdeep.tl.cluster(ad.AnnData(bad), method="pca", n_clusters=3, verbose=False)
    with pytest.raises(scdeep.InvalidOptionError, match="2-d"):
        scdeep.Model("pca").fit(np.ones(5))
    with pytest.raises(scdeep.InvalidOptionError, match="n_clusters"):
        scdeep.tl.cluster(a, method="pca", n_clusters=10_000, verbose=False)


def test_methods_metrics_simulate():
    ms = scdeep.methods()
    assert "scmae" in ms and ms["scmae"]["default_config"]["train"]["epochs"] == 81
    s = scdeep.simulate(n_cells=300, n_genes=200, group_prob=[0.5, 0.5], seed=1)
    assert s.shape == (300, 200) and sp.issparse(s.X) and "true_counts" in s.layers
    from sklearn.metrics import adjusted_rand_score
    t = s.obs["group"].astype(str).to_numpy()
    p = np.array([0, 1] * 150)
    assert abs(scdeep.metrics.ari(t, p) - adjusted_rand_score(t, p)) < 1e-9


def test_ctrl_c_stops_training_with_keyboardinterrupt():
    import signal
    import sys
    import time
    # A shell that starts a job in the background (CI runners, nohup ... &) ignores SIGINT,
    # the child inherits that and Python then installs no KeyboardInterrupt handler: set it.
    code = (
        "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "import anndata as ad, scdeep, sys\n"
        f"a = ad.read_h5ad({PBMC!r})\n"
        "print('start', flush=True)\n"
        "try:\n"
        "    scdeep.tl.cluster(a, method='scmae', label_key='cell_type', device='cpu', verbose=False)\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted', flush=True); sys.exit(3)\n"
        "print('finished', flush=True)\n"
    )
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "start"
    time.sleep(4)  # inside training (81 epochs take ~45 s)
    t = time.perf_counter()
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=60)
    assert p.returncode == 3 and "interrupted" in out, (p.returncode, out)
    assert time.perf_counter() - t < 10, "Ctrl-C took too long to stop training"


def test_pp_recipe_matches_scanpy():
    import scanpy as sc
    a = ad.read_h5ad(PBMC)
    p = scdeep.pp.recipe(a, recipe="scanpy", n_top_genes=1000)
    b = a.copy()
    sc.pp.normalize_total(b)
    sc.pp.log1p(b)
    sc.pp.highly_variable_genes(b, flavor="seurat", n_top_genes=1000)
    assert set(p.var_names) == set(b.var_names[b.var["highly_variable"]])
    ref = b[:, p.var_names].X
    np.testing.assert_allclose(p.X.toarray(), ref.toarray(), rtol=1e-4, atol=1e-4)
    assert p.layers["counts"].sum() > 0 and "size_factor" in p.obs and "std" in p.var
    with pytest.raises(scdeep.InvalidOptionError, match="n_top_genes"):
        scdeep.pp.recipe(a, n_top_genes=50_000)
    with pytest.raises(scdeep.InvalidOptionError, match="colour"):
        scdeep.pp.recipe(a, colour=1)


def test_every_registered_deep_method_runs_from_anndata():
    # methods come from core's registry: the package needs no change to offer a new one
    a = ad.read_h5ad(POLLEN)
    assert {"contrastive-sc", "cicl"} <= set(scdeep.methods())
    scdeep.tl.cluster(a, method="contrastive-sc", label_key="cell_type", seed=0, verbose=False)
    assert a.obsm["X_contrastive-sc"].shape == (a.n_obs, 60)
    assert a.uns["scdeep"]["contrastive-sc"]["metrics"]["ari"] > 0.8
    scdeep.tl.cluster(a, method="cicl", label_key="cell_type", seed=0, verbose=False, train={"epochs": 3}, layers=1)
    assert a.obsm["X_cicl"].shape[0] == a.n_obs


def test_imputing_and_count_likelihood_methods_from_anndata():
    a = ad.read_h5ad(POLLEN)
    x = a.X.tocsr().astype(np.float32)
    scdeep.tl.cluster(a, method="maskclass", label_key="cell_type", seed=0, verbose=False, train={"epochs": 5})
    imp, covered = a.layers["scdeep_imputed"], a.var["scdeep_imputed"].to_numpy()
    assert sp.issparse(imp) and imp.shape == a.shape and covered.dtype == bool and covered.sum() == 1000
    assert a.obsm["X_maskclass"].shape == (a.n_obs, 32)
    # observed counts stay non-zero (their log2 values unchanged), zeros are filled
    imp = imp.tocsr()[:, covered].toarray()
    obs = x[:, covered].toarray()
    assert np.all(imp[obs > 0] > 0) and np.count_nonzero(imp) > np.count_nonzero(obs) + (obs == 0).sum() // 2
    scdeep.tl.cluster(a, method="scrae", label_key="cell_type", seed=0, verbose=False, train={"epochs": 2})
    assert a.obsm["X_scrae"].shape == (a.n_obs, 10)
    assert "gp_norm" in a.uns["scdeep"]["scrae"]["history"]


def test_every_error_kind_maps_to_the_tables_class():
    """The core's error table names each kind's Python class; a core error of that kind is
    raised as it, and every class but KeyboardInterrupt is a ScdeepError."""
    import json

    from scdeep import _errors, _scdeep

    kinds = json.loads(_scdeep.error_kinds_json())
    assert {k["kind"] for k in kinds} == {"io", "format", "data", "option", "numeric", "cancelled"}
    for k in kinds:
        e = _errors._convert(_scdeep.CoreError(k["kind"], "msg"))
        assert type(e).__name__ == k["python_class"], k
        assert str(e) == "msg"
        assert isinstance(e, scdeep.ScdeepError) or k["kind"] == "cancelled"
