"""The Snakemake example workflow and wrapper, run for real with snakemake from PyPI."""
import csv
import json
import shutil
import subprocess
import textwrap

import anndata as ad

from conftest import ROOT, png_size

SMK = ROOT / "workflows" / "snakemake"
WRAPPER = SMK / "wrappers" / "scdeep" / "run"


def snakemake(args, cwd, env):
    return subprocess.run(["snakemake", "--cores", "2", "--quiet", *args], cwd=cwd, env=env, capture_output=True, text=True)


def test_example_workflow_runs_end_to_end(tmp_path, cli_env):
    r = snakemake(["-s", str(SMK / "Snakefile"), "-d", str(tmp_path),
                   "--config", "methods=[\"pca\",\"scmae\"]", "seeds=[0,1,2]"], tmp_path, cli_env)
    assert r.returncode == 0, r.stdout + r.stderr
    with open(tmp_path / "results" / "metrics.tsv") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert sorted((row["method"], row["seed"]) for row in rows) == sorted((m, str(s)) for m in ["pca", "scmae"] for s in [0, 1, 2])
    for row in rows:
        assert -1.0 <= float(row["ari"]) <= 1.0 and 0.0 <= float(row["nmi"]) <= 1.0
    # PCA separates the simulated groups; each run wrote its annotated h5ad and figures
    assert min(float(r["ari"]) for r in rows if r["method"] == "pca") > 0.4
    a = ad.read_h5ad(tmp_path / "results" / "scmae" / "seed0" / "simulated.scdeep.h5ad")
    assert a.obsm["X_scmae"].shape == (a.n_obs, 128)
    assert str(a.obs["scmae_clusters"].dtype) == "category"
    w, h = png_size(tmp_path / "results" / "summary.png")
    assert w >= 800 and h == 560
    assert png_size(tmp_path / "results" / "pca" / "seed1" / "embedding.png") == (1500, 620)


def test_wrapper_test_snakefile(tmp_path, cli_env):
    work = tmp_path / "run"
    shutil.copytree(WRAPPER, work)
    r = snakemake([], work / "test", cli_env)
    assert r.returncode == 0, r.stdout + r.stderr
    metrics = json.loads((work / "test" / "results" / "pca" / "metrics.json").read_text())
    assert metrics["ilisi"] is not None, "batch_key reaches the CLI: batch metrics are scored"
    assert "results in results/pca" in (work / "test" / "logs" / "pca.log").read_text()


def test_bad_input_fails_the_rule_with_the_cli_message_in_its_log(tmp_path, cli_env):
    (tmp_path / "bad.h5ad").write_text("this is not HDF5\n")
    (tmp_path / "Snakefile").write_text(textwrap.dedent(f"""
        rule run:
            input: counts="bad.h5ad"
            output: labels="out/labels.tsv"
            params: method="pca", n_clusters=3
            log: "logs/bad.log"
            wrapper: "file:{WRAPPER}"
    """))
    r = snakemake([], tmp_path, cli_env)
    assert r.returncode != 0
    log = (tmp_path / "logs" / "bad.log").read_text()
    assert "bad.h5ad" in log and "error" in log.lower(), log
    assert not (tmp_path / "out" / "labels.tsv").exists()


def test_the_modules_name_only_files_of_cores_run_folder():
    """The run folder's file names live in core (scdeep_core::results::RUN_FILES); the
    Snakemake wrapper and the Nextflow module may only use those."""
    import ast
    import re
    src = (ROOT / "core" / "src" / "results.rs").read_text()
    consts = dict(re.findall(r'pub const (\w+): &str = "([^"]+)";', src))
    listed = re.search(r"pub const RUN_FILES: \[&str; \d+\] =\s*\[([^\]]*)\]", src).group(1)
    run_files = {consts[n.strip()] for n in listed.split(",") if n.strip()}
    assert {"labels.tsv", "run.json", "embedding.tsv"} <= run_files
    wrapper = (ROOT / "workflows" / "snakemake" / "wrappers" / "scdeep" / "run" / "wrapper.py").read_text()
    files = ast.literal_eval(re.search(r"FILES = (\{.*?\})", wrapper, re.S).group(1))
    assert set(files.values()) <= run_files, set(files.values()) - run_files
    nf = (ROOT / "workflows" / "nextflow" / "modules" / "scdeep" / "run" / "main.nf").read_text()
    moved = set(re.findall(r"mv \$\{prefix\}_out/([\w.]+) ", nf))
    assert moved and moved <= run_files, moved - run_files
