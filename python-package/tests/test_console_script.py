"""The package's `scdeep` console script runs the CLI in-process (scdeep._scdeep.cli_main):
it must be the same program as the standalone binary built from bindings/cli."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "scdeep")
DATA = os.path.join(ROOT, "..", "shared", "data", "pollen_top1000hvg", "pollen_top1000hvg.h5ad")
SCRIPT = [sys.executable, "-m", "scdeep._cli"]


def out(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def test_console_script_prints_what_the_binary_prints():
    for args in (["version", "--json"], ["methods", "--json"], ["--help"]):
        a, b = out(SCRIPT + args), out([BIN] + args)
        assert a.returncode == b.returncode == 0, (args, a.stderr)
        assert a.stdout == b.stdout, args


def test_console_script_run_gives_the_binarys_labels(tmp_path):
    args = ["run", "-q", "-i", DATA, "--method", "pca", "--label-key", "cell_type", "--seed", "0", "--threads", "1", "--no-h5ad"]
    a = out(SCRIPT + args + ["--out", str(tmp_path / "script")])
    b = out([BIN] + args + ["--out", str(tmp_path / "bin")])
    assert a.returncode == b.returncode == 0, a.stderr
    assert (tmp_path / "script" / "labels.tsv").read_text() == (tmp_path / "bin" / "labels.tsv").read_text()
    assert json.loads((tmp_path / "script" / "metrics.json").read_text())["ari"] > 0.8


@pytest.mark.parametrize("args", [["run", "-i", "/nonexistent/x.h5ad", "--out", "OUT"], ["run", "--no-such-flag"]])
def test_console_script_exit_status_is_the_binarys(tmp_path, args):
    args = [str(tmp_path / "o") if a == "OUT" else a for a in args]
    a, b = out(SCRIPT + args), out([BIN] + args)
    assert a.returncode == b.returncode != 0
    assert a.stderr == b.stderr
