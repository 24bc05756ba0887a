"""`make demo`'s script (scripts/demo.sh), one of the README's two commands: it must run,
print both methods' scores, and run again over its own results (scMAE with 3 epochs here
through DEMO_ARGS; the demo itself trains the default 81)."""
import os
import re
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_demo_runs_and_reruns(tmp_path):
    env = dict(os.environ, DEMO_OUT=str(tmp_path / "demo"), DEMO_ARGS="--epochs 3 -q")
    for _ in range(2):
        r = subprocess.run(["bash", os.path.join(ROOT, "scripts", "demo.sh")], env=env, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        scores = dict(re.findall(r"^\s+(pca|scmae|consensus)\s+ARI (\d\.\d+)", r.stdout, re.M))
        assert set(scores) == {"pca", "scmae", "consensus"}, r.stdout
        assert float(scores["pca"]) > 0.5, r.stdout
    assert (tmp_path / "demo" / "models" / "scmae").is_dir()
    assert (tmp_path / "demo" / "models" / "consensus" / "members" / "scmae").is_dir()
