"""The Nextflow module and example pipeline — NOT run under Nextflow (it cannot run on our
machines: no Nextflow jar is reachable). What is tested instead: every .nf file (and the
config) compiles as Groovy, and each process's script:/stub: block, rendered with mock
inputs by a Groovy helper (tests/workflows/nf_render.groovy), runs under bash against the
real CLI and produces every output the process declares."""
import json
import os
import re
import shutil
import subprocess

import pytest

from conftest import ROOT, png_size

NF = ROOT / "workflows" / "nextflow"
RUN = NF / "modules" / "scdeep" / "run" / "main.nf"
SUMMARY = NF / "modules" / "scdeep" / "summary" / "main.nf"
RENDER = ROOT / "tests" / "workflows" / "nf_render.groovy"
POLLEN = ROOT.parent / "shared" / "data" / "pollen_top1000hvg" / "pollen_top1000hvg.h5ad"


@pytest.fixture(scope="module")
def groovy_env(cli_env):
    if shutil.which("groovy") is None:
        pytest.fail("groovy is missing: `make test` installs Debian's groovy")
    env = dict(cli_env)
    env.setdefault("JAVA_HOME", "/usr/lib/jvm/java-17-openjdk-amd64")
    return env


def groovy(args, env):
    r = subprocess.run(["groovy", str(RENDER), *args], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def declared_outputs(nf_file, proc):
    """(glob, optional) for every path output of a process."""
    text = nf_file.read_text()
    body = text[text.index(f"process {proc} {{"):]
    block = body[body.index("output:"):]
    block = block[:re.search(r"\n\s*(when|script|stub):", block).start()]
    outs = []
    for line in block.splitlines():
        m = re.search(r'path\(?\s*"([^"]+)"', line)
        if m:
            outs.append((m.group(1), "optional: true" in line))
    assert outs, f"no outputs parsed for {proc}"
    return outs


def run_process(nf_file, proc, section, bindings, staged, workdir, env):
    """Render the block, stage inputs as links, run it as Nextflow would (bash -ue)."""
    workdir.mkdir(parents=True, exist_ok=True)
    for name, src in staged.items():
        os.symlink(src, workdir / name)
    script = groovy(["render", str(nf_file), proc, section, json.dumps(bindings)], env)
    (workdir / ".command.sh").write_text("#!/bin/bash -ue\n" + script)
    with open(workdir / ".command.err", "w") as err:
        r = subprocess.run(["bash", "-ue", ".command.sh"], cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=err)
    return r.returncode, (workdir / ".command.err").read_text()


def check_outputs(nf_file, proc, workdir):
    for pattern, optional in declared_outputs(nf_file, proc):
        found = list(workdir.glob(pattern))
        assert found or optional, f"{proc}: declared output {pattern!r} not produced; files: {sorted(os.listdir(workdir))}"


def run_bindings(run_id, method, seed):
    return {
        "meta": {"id": run_id, "sample": "pollen", "method": method, "seed": seed, "label_key": "cell_type"},
        # what nextflow.config's ext.args closure gives for this meta
        "task": {"ext": {"args": f"--method {method} --seed {seed}"}, "cpus": 1, "process": "SCDEEP_RUN"},
        "counts": "pollen.h5ad",
    }


def test_every_nf_file_and_the_config_compile_as_groovy(groovy_env):
    files = sorted(NF.rglob("*.nf")) + [NF / "nextflow.config"]
    out = groovy(["parse", *map(str, files)], groovy_env)
    assert out.count("parsed ") == len(files)


def test_pipeline_includes_existing_processes():
    main = (NF / "main.nf").read_text()
    for name, path in re.findall(r"include\s*\{\s*(\w+)\s*\}\s*from\s*'([^']+)'", main):
        f = (NF / path).with_suffix(".nf")
        assert f.is_file(), f"{path} does not exist"
        assert f"process {name} {{" in f.read_text()


def test_run_and_summary_scripts_produce_their_declared_outputs(tmp_path, groovy_env):
    tables = []
    for method, seed in [("pca", 0), ("pca", 1)]:
        run_id = f"pollen_{method}_seed{seed}"
        wd = tmp_path / run_id
        code, err = run_process(RUN, "SCDEEP_RUN", "script", run_bindings(run_id, method, seed), {"pollen.h5ad": POLLEN}, wd, groovy_env)
        assert code == 0, err
        check_outputs(RUN, "SCDEEP_RUN", wd)
        assert (wd / f"{run_id}.metrics.tsv").is_file(), "metrics are expected with a label_key"
        header, row = (wd / f"{run_id}.metrics.tsv").read_text().splitlines()
        cols = dict(zip(header.split("\t"), row.split("\t")))
        assert cols["id"] == run_id and cols["method"] == method and float(cols["ari"]) > 0.8
        versions = (wd / "versions.yml").read_text()
        assert re.search(r'"SCDEEP_RUN":\n\s+scdeep: \d+\.\d+\.\d+\n\s+libtorch: 2\.', versions), versions
        tables.append(wd / f"{run_id}.metrics.tsv")
    # what main.nf's collectFile(keepHeader: true, skip: 1) makes of them
    lines = tables[0].read_text().splitlines() + tables[1].read_text().splitlines()[1:]
    (tmp_path / "metrics.tsv").write_text("\n".join(lines) + "\n")
    wd = tmp_path / "summary"
    bindings = {"task": {"ext": {}, "cpus": 1, "process": "SCDEEP_SUMMARY"}, "metrics": "metrics.tsv"}
    code, err = run_process(SUMMARY, "SCDEEP_SUMMARY", "script", bindings, {"metrics.tsv": tmp_path / "metrics.tsv"}, wd, groovy_env)
    assert code == 0, err
    check_outputs(SUMMARY, "SCDEEP_SUMMARY", wd)
    w, h = png_size(wd / "summary.png")
    assert w >= 800 and h == 560


def test_the_run_module_passes_a_batch_key(groovy_env):
    b = run_bindings("pollen_pca_seed0", "pca", 0)
    script = groovy(["render", str(RUN), "SCDEEP_RUN", "script", json.dumps(b)], groovy_env)
    assert "--batch-key" not in script
    b["meta"]["batch_key"] = "donor"
    script = groovy(["render", str(RUN), "SCDEEP_RUN", "script", json.dumps(b)], groovy_env)
    assert "--batch-key donor" in script


def test_stub_blocks_produce_their_declared_outputs(tmp_path, groovy_env):
    code, err = run_process(RUN, "SCDEEP_RUN", "stub", run_bindings("s", "pca", 0), {"pollen.h5ad": POLLEN}, tmp_path / "run", groovy_env)
    assert code == 0, err
    check_outputs(RUN, "SCDEEP_RUN", tmp_path / "run")


def test_bad_input_fails_the_process_with_the_cli_message(tmp_path, groovy_env):
    bad = tmp_path / "broken.h5ad"
    bad.write_text("not an HDF5 file\n")
    b = run_bindings("bad", "pca", 0)
    b["counts"] = "broken.h5ad"
    code, err = run_process(RUN, "SCDEEP_RUN", "script", b, {"broken.h5ad": bad}, tmp_path / "bad", groovy_env)
    assert code != 0
    assert "broken.h5ad" in err and "not an HDF5 file" in err, err
    assert not list((tmp_path / "bad").glob("*.h5ad")) or all(p.is_symlink() for p in (tmp_path / "bad").glob("*.h5ad"))
