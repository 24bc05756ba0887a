"""Hostile and odd inputs against the `scdeep` CLI.

Every case builds its inputs in a fresh folder, runs the binary and asserts:
- the exit code (README's table) and that stderr names the file / field / value;
- no panic or abort (no "panicked", no signal exit);
- no partial output: a failed run creates neither its --out folder nor staging files,
  and every file the case marks as the user's is byte-identical afterwards;
- peak RSS of the child (wait4) at most 500 MB.

`python tests/hostile/test_hostile.py --table` prints the table (case, exit code,
peak RSS, first line of the message) for the issue's closing note.
"""

import gzip
import hashlib
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("SCDEEP_CLI", ROOT / "target" / "release" / "scdeep"))
MAX_RSS_MB = 500


# ---------------------------------------------------------------- running


# Linux charges a child the forking parent's resident size (the copied address space's
# high-water mark is recorded at exec), so a child forked from this pytest process would
# report pytest's size. A small launcher forks the CLI instead, forwards SIGINT/SIGTERM
# to it, and reports its exit status and peak RSS on the pipe its first argument names.
LAUNCHER = r"""
import os, signal, sys
fd = int(sys.argv[1])
pid = os.fork()
if pid == 0:
    os.close(fd)
    os.execv(sys.argv[2], sys.argv[2:])
for s in (signal.SIGINT, signal.SIGTERM):
    signal.signal(s, lambda sig, _f: os.kill(pid, sig))
while True:
    try:
        _, status, ru = os.wait4(pid, 0)
        break
    except InterruptedError:
        pass
os.write(fd, f"{os.waitstatus_to_exitcode(status)} {ru.ru_maxrss}".encode())
"""


def run(args, cwd, stdin=None, timeout=120, signal_at=None):
    """Run the CLI; return (exit code, stderr, peak RSS in MB). A negative exit code is
    the signal that killed it. `signal_at` = (signal, text): send the signal once stderr
    shows the text (e.g. a training epoch)."""
    r, w = os.pipe()
    p = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(w), str(BIN), *map(str, args)], cwd=cwd,
                         stdin=stdin or subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, pass_fds=(w,))
    os.close(w)
    err = []

    def read():
        for line in p.stderr:
            err.append(line)
            if signal_at and signal_at[1] in line.decode("utf-8", "replace") and not getattr(read, "sent", False):
                read.sent = True
                os.kill(p.pid, signal_at[0])
    t = threading.Thread(target=read)
    t.start()
    try:
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    t.join()
    report = os.read(r, 100).decode().split()
    os.close(r)
    if len(report) != 2:
        return -9, b"".join(err).decode("utf-8", "replace") + " (timed out)", 0
    return int(report[0]), b"".join(err).decode("utf-8", "replace"), int(report[1]) / 1024


def digest(paths):
    """Content hash of every file under `paths` (the user's files, checked unchanged)."""
    out = {}
    for p in paths:
        p = Path(p)
        files = [p] if p.is_file() else sorted(x for x in p.rglob("*") if x.is_file()) if p.is_dir() else []
        for f in files:
            out[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest()
        if not p.exists():
            out[str(p)] = None
    return out


def leftovers(d):
    """Staging or temporary files anywhere under `d`."""
    return [str(p) for p in Path(d).rglob("*") if ".tmp-" in p.name]


# ---------------------------------------------------------------- inputs


def counts(n_cells=60, n_genes=40, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.poisson(1.5, size=(n_cells, n_genes)).astype(np.int64)
    x[: n_cells // 2, : n_genes // 2] += rng.poisson(4, size=(n_cells // 2, n_genes // 2))
    return x


def write_mtx(d, x=None, header=None, extra_entries=(), barcodes=None, genes=None, gz=False):
    """A 10x folder: matrix.mtx (genes x cells), features.tsv, barcodes.tsv."""
    x = counts() if x is None else x
    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)
    ii, jj = np.nonzero(x.T)
    lines = [f"{i + 1} {j + 1} {x.T[i, j]}" for i, j in zip(ii, jj)] + list(extra_entries)
    head = header or f"{x.shape[1]} {x.shape[0]} {len(ii)}"
    text = "%%MatrixMarket matrix coordinate integer general\n" + head + "\n" + "\n".join(lines) + "\n"
    opener = (lambda p: gzip.open(str(p) + ".gz", "wt")) if gz else (lambda p: open(p, "w"))
    with opener(d / "matrix.mtx") as f:
        f.write(text)
    (d / "features.tsv").write_text("".join(f"{g}\t{g}\tGene Expression\n" for g in (genes or [f"G{j}" for j in range(x.shape[1])])))
    (d / "barcodes.tsv").write_text("".join(f"{c}\n" for c in (barcodes or [f"C{i}" for i in range(x.shape[0])])))
    return d


def write_labels(p, cells, labels):
    Path(p).write_text("cell\tlabel\n" + "".join(f"{c}\t{l}\n" for c, l in zip(cells, labels)))
    return p


def default_labels(x=None):
    x = counts() if x is None else x
    return [f"C{i}" for i in range(x.shape[0])], ["a" if i < x.shape[0] // 2 else "b" for i in range(x.shape[0])]


def gzip_bomb(p, chunk, n_chunks, prefix=b"", suffix=b""):
    """A gzip file expanding to prefix + chunk * n_chunks + suffix, written in pieces."""
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    with open(p, "wb") as f:
        f.write(c.compress(prefix))
        for _ in range(n_chunks):
            f.write(c.compress(chunk))
        f.write(c.compress(suffix))
        f.write(c.flush())
    return p


def write_h5ad(p, x, dense=False, indices_dtype="int32", obs=None):
    import anndata as ad
    import scipy.sparse as sp
    a = ad.AnnData(X=x.astype(np.float32) if dense else sp.csr_matrix(x.astype(np.float32)))
    a.obs_names = obs or [f"C{i}" for i in range(x.shape[0])]
    a.var_names = [f"G{j}" for j in range(x.shape[1])]
    a.write_h5ad(p)
    return p


def write_npy_raw(p, header, body=b"", version=1):
    h = header.encode()
    if version == 1:
        raw = b"\x93NUMPY\x01\x00" + len(h).to_bytes(2, "little") + h
    else:
        raw = b"\x93NUMPY\x02\x00" + len(h).to_bytes(4, "little") + h
    Path(p).write_bytes(raw + body)
    return p


# ---------------------------------------------------------------- cases
#
# Each case is a function of a fresh folder `d` returning a dict:
#   args: the CLI arguments; code: the expected exit code; needles: strings stderr must
#   hold; protect: files/folders that must be unchanged; out: the output path that a
#   failed run must not create (default d/"out"); check: an extra check on success.

CASES = {}


def case(name):
    def deco(f):
        CASES[name] = f
        return f
    return deco


def pca(inp, d, *extra, out=None):
    """`scdeep run` (pca on 1 thread unless `extra` names a method or thread count)."""
    base = ["run", "-q", "--input", inp, "--out", out or d / "out"]
    if "--method" not in extra:
        base += ["--method", "pca"]
    if "--threads" not in extra:
        base += ["--threads", "1"]
    return base + list(extra)


# --- data loss: never delete or overwrite what the user did not ask to replace


@case("save-model into a user folder holding config.json")
def _(d):
    u = d / "user"
    u.mkdir()
    (u / "config.json").write_text('{"mine": true}')
    (u / "notes.txt").write_text("keep me")
    m = write_mtx(d / "mtx")
    return dict(args=pca(m, d, "-k", "2", "--save-model", u), code=3, needles=[str(u), ".scdeep-output", "--overwrite"], protect=[u, m])


@case("save-model is the input folder")
def _(d):
    m = write_mtx(d / "mtx")
    return dict(args=pca(m, d, "-k", "2", "--save-model", m), code=2, needles=["--save-model", "is the input"], protect=[m])


@case("save-model is the parent of the input")
def _(d):
    m = write_mtx(d / "data" / "mtx")
    return dict(args=pca(m, d, "-k", "2", "--save-model", d / "data"), code=2, needles=["--save-model", "contains the input"], protect=[d / "data"])


@case("labels inside --out")
def _(d):
    m = write_mtx(d / "mtx")
    o = d / "out"
    o.mkdir()
    lab = write_labels(o / "labels.tsv", *default_labels())
    return dict(args=pca(m, d, "--labels", lab), code=2, needles=["--out", "labels.tsv", "--labels"], protect=[o], out=None)


@case("config inside --out")
def _(d):
    m = write_mtx(d / "mtx")
    o = d / "out"
    o.mkdir()
    (o / "run.json").write_text('{"cluster": {"n_clusters": 2}}')
    return dict(args=pca(m, d, "--config", o / "run.json"), code=2, needles=["--config", "run.json"], protect=[o], out=None)


@case("--out is the input folder")
def _(d):
    m = write_mtx(d / "mtx")
    return dict(args=pca(m, d, "-k", "2", out=m), code=2, needles=["--out", "is the input"], protect=[m], out=None)


@case("--out is an existing file")
def _(d):
    m = write_mtx(d / "mtx")
    f = d / "out"
    f.write_text("a file of the user")
    return dict(args=pca(m, d, "-k", "2"), code=3, needles=[str(f), "not a folder"], protect=[f], out=None)


def user_folder(d, **files):
    """`d/out` holding the user's `files` (name=text), and a 10x input folder."""
    o = d / "out"
    o.mkdir()
    for name, text in files.items():
        (o / name.replace("_", ".")).write_text(text)
    return write_mtx(d / "mtx"), o


@case("--out is a foreign non-empty folder")
def _(d):
    m, o = user_folder(d, labels_tsv="the user's labels")
    return dict(args=pca(m, d, "-k", "2"), code=3, needles=[str(o), "was not written by scdeep"], protect=[o], out=None)


@case("--overwrite keeps the user's other files")
def _(d):
    m, o = user_folder(d, notes_txt="keep me", labels_tsv="old")

    def check(d):
        assert (o / "notes.txt").read_text() == "keep me"
        assert (o / "labels.tsv").read_text().startswith("cell\t")
    return dict(args=pca(m, d, "-k", "2", "--overwrite"), code=0, protect=[o / "notes.txt"], check=check)


@case("rerun into its own output folder")
def _(d):
    m = write_mtx(d / "mtx")
    o = d / "out"
    assert run(pca(m, d, "-k", "2"), d)[0] == 0
    (o / "mine.txt").write_text("added by the user")

    def check(d):
        assert (o / "mine.txt").read_text() == "added by the user"
        assert (o / "labels.tsv").is_file() and not (o / "mtx.scdeep.h5ad").exists()
    return dict(args=pca(m, d, "-k", "3", "--no-h5ad"), code=0, protect=[o / "mine.txt"], check=check)


@case("--save-model equals --out")
def _(d):
    m = write_mtx(d / "mtx")
    return dict(args=pca(m, d, "-k", "2", "--save-model", d / "out"), code=2, needles=["--save-model", "separate"])


@case("--save-model inside --out")
def _(d):
    m = write_mtx(d / "mtx")
    return dict(args=pca(m, d, "-k", "2", "--save-model", d / "out" / "model"), code=2, needles=["separate"])


@case("cluster --out is the embedding")
def _(d):
    e = d / "emb.tsv"
    e.write_text("cell\tx\ty\n" + "".join(f"c{i}\t{i % 3}\t{i % 5}\n" for i in range(30)))
    return dict(args=["cluster", "-k", "2", "--embedding", e, "--out", e], code=2, needles=["--out", "emb.tsv"], protect=[e], out=None)


@case("evaluate --out is the truth file")
def _(d):
    t = write_labels(d / "t.tsv", *default_labels())
    return dict(args=["evaluate", "--labels", t, "--truth", t, "--out", t], code=2, needles=["--out", "t.tsv"], protect=[t], out=None)


@case("preprocess --out is the input (hard link)")
def _(d):
    h = write_h5ad(d / "in.h5ad", counts())
    os.link(h, d / "link.h5ad")
    return dict(args=["preprocess", "-q", "--input", h, "--out", d / "link.h5ad"], code=2, needles=["--out", "in.h5ad"], protect=[h], out=None)


@case("embed --out contains the model")
def _(d):
    m = write_mtx(d / "mtx")
    assert run(pca(m, d, "-k", "2", "--save-model", d / "res" / "model", out=d / "r0"), d)[0] == 0
    return dict(args=["embed", "-q", "--model", d / "res" / "model", "--input", m, "--out", d / "res"], code=2, needles=["--out", "--model"], protect=[d / "res"], out=None)


@case("a model folder whose config.json holds parameters that do not build")
def _(d):
    m = write_mtx(d / "mtx")
    assert run(pca(m, d, "-k", "2", "--save-model", d / "model", out=d / "r0"), d)[0] == 0
    cfg = d / "model" / "config.json"
    c = json.loads(cfg.read_text())
    c["config"]["params"]["n_comps"] = 0
    cfg.write_text(json.dumps(c))
    return dict(args=["embed", "-q", "--model", d / "model", "--input", m, "--out", d / "emb"], code=4, needles=[str(cfg), "n_comps"], protect=[d / "model"], out=d / "emb")


@case("simulate into a foreign folder")
def _(d):
    o = d / "out"
    o.mkdir()
    (o / "matrix.mtx.gz").write_bytes(b"the user's matrix")
    return dict(args=["simulate", "-q", "--n-cells", "50", "--n-genes", "30", "--out", o], code=3, needles=[str(o)], protect=[o], out=None)


@case("a run failing late leaves nothing (k > cells after the filter)")
def _(d):
    m = write_mtx(d / "mtx")
    return dict(args=pca(m, d, "-k", "500"), code=2, needles=["cluster.n_clusters", "500", "more clusters than cells"])


@case("a failing run leaves no parent folders")
def _(d):
    m = write_mtx(d / "mtx")
    return dict(args=pca(m, d, "-k", "500", out=d / "a" / "b" / "out"), code=2, needles=["500"], out=d / "a")


# --- sizes from headers checked before allocating


def mtx_case(name, needle, header=None, extra=0, entries=()):
    """A 10x folder whose size line is `header` (or declares `extra` more entries than
    the file holds, plus `entries`), expected to fail as a malformed matrix.mtx."""
    def build(d):
        x = counts()
        h = header or f"40 60 {np.count_nonzero(x) + extra}"
        m = write_mtx(d / "mtx", x, header=h, extra_entries=entries)
        return dict(args=pca(m, d, "-k", "2"), code=4, needles=["matrix.mtx", needle])
    CASES[name] = build


mtx_case("MTX header declares 1e12 cells", "1000000000000", header="40 1000000000000 10")
mtx_case("MTX header declares 1e12 entries", "1000000000000 entries", header="40 60 1000000000000")
mtx_case("MTX header declares fewer entries than the file holds", "more entries than the 10", header="40 60 10")
mtx_case("MTX truncated (fewer entries than declared)", "file ends after", extra=5)
mtx_case("MTX entry outside the declared size", "(41, 1)", extra=1, entries=["41 1 3"])
mtx_case("MTX entry not a number", "abc", extra=1, entries=["1 1 abc"])
mtx_case("MTX with a size line of 4 numbers", "size line", header="40 60 10 3")
mtx_case("MTX with a negative size", "size line", header="40 -60 10")


@case("not a MatrixMarket file")
def _(d):
    m = write_mtx(d / "mtx")
    (m / "matrix.mtx").write_text("hello\n1 2 3\n")
    return dict(args=pca(m, d, "-k", "2"), code=4, needles=["matrix.mtx", "MatrixMarket"])


@case("features count differs from the header")
def _(d):
    m = write_mtx(d / "mtx", genes=[f"G{j}" for j in range(39)])
    return dict(args=pca(m, d, "-k", "2"), code=4, needles=["features.tsv", "39"])


@case("no barcodes file")
def _(d):
    m = write_mtx(d / "mtx")
    (m / "barcodes.tsv").unlink()
    return dict(args=pca(m, d, "-k", "2"), code=4, needles=["barcodes.tsv"])


def barcode_case(name, i, barcode, needles):
    """A 10x folder whose barcode `i` is `barcode`, expected to fail as unusable data."""
    def build(d):
        cells = [f"C{j}" for j in range(60)]
        cells[i] = barcode
        m = write_mtx(d / "mtx", barcodes=cells)
        return dict(args=pca(m, d, "-k", "2"), code=5, needles=needles)
    CASES[name] = build


barcode_case("NUL byte in a barcode", 3, "C\x003", ["NUL", "cell name 3"])


@case("gzip bomb: one 200 MB line in barcodes")
def _(d):
    m = write_mtx(d / "mtx")
    (m / "barcodes.tsv").unlink()
    gzip_bomb(m / "barcodes.tsv.gz", b"A" * (1 << 20), 200)
    return dict(args=pca(m, d, "-k", "2"), code=4, needles=["barcodes.tsv.gz"])


@case("gzip bomb: a 200 MB comment line in the MTX")
def _(d):
    m = write_mtx(d / "mtx")
    (m / "matrix.mtx").unlink()
    gzip_bomb(m / "matrix.mtx.gz", b"x" * (1 << 20), 200, prefix=b"%%MatrixMarket matrix coordinate integer general\n%")
    return dict(args=pca(m, d, "-k", "2"), code=4, needles=["matrix.mtx.gz"])


@case("gzip bomb: 1 GB of short lines in barcodes")
def _(d):
    m = write_mtx(d / "mtx")
    (m / "barcodes.tsv").unlink()
    gzip_bomb(m / "barcodes.tsv.gz", b"A\n" * (1 << 19), 1024)
    return dict(args=pca(m, d, "-k", "2"), code=4, needles=["barcodes.tsv.gz", "more than 60 lines"])


@case("gzip bomb: 1 GB of short comment lines in the MTX")
def _(d):
    m = write_mtx(d / "mtx")
    (m / "matrix.mtx").unlink()
    gzip_bomb(m / "matrix.mtx.gz", b"%\n" * (1 << 19), 1024, prefix=b"%%MatrixMarket matrix coordinate integer general\n")
    return dict(args=pca(m, d, "-k", "2"), code=4, needles=["matrix.mtx.gz", "expands more than"])


@case("gzip bomb: 1 GB of short lines in --labels")
def _(d):
    m = write_mtx(d / "mtx")
    lab = gzip_bomb(d / "l.tsv.gz", b"x\ty\n" * (1 << 18), 1024, prefix=b"cell\tlabel\n")
    return dict(args=pca(m, d, "--labels", lab), code=4, needles=["l.tsv.gz", "expands more than"])


@case("truncated gzip")
def _(d):
    m = write_mtx(d / "mtx", gz=True)
    b = (m / "matrix.mtx.gz").read_bytes()
    (m / "matrix.mtx.gz").write_bytes(b[: len(b) // 2])
    return dict(args=pca(m, d, "-k", "2"), code=4, needles=["matrix.mtx.gz"])


@case("dense CSV of zeros is read sparse")
def _(d):
    p = d / "zeros.csv"
    row = ",".join(["0"] * 2000)
    with open(p, "w") as f:
        f.write("cell," + ",".join(f"G{j}" for j in range(2000)) + "\n")
        for i in range(5000):
            f.write(f"C{i},{row}\n")
    return dict(args=pca(p, d, "-k", "2"), code=5, needles=["zeros.csv", "all zeros"])


def table_case(name, file, text, code, needle):
    """A small text table `file` holding `text`, expected to fail with `code`."""
    def build(d):
        p = d / file
        p.write_text(text)
        return dict(args=pca(p, d, "-k", "2"), code=code, needles=[file, needle])
    CASES[name] = build


table_case("CSV with ragged rows", "t.csv", "cell,a,b\nc1,1,2\nc2,1\n", 4, "line 3")
table_case("CSV with a word among the counts", "t.csv", "cell,a,b\nc1,1,2\nc2,1,many\n", 4, "many")
table_case("CSV with a negative count", "t.csv", "cell,a,b\nc1,1,2\nc2,1,-4\n", 5, "negative")
table_case("CSV with NaN", "t.csv", "cell,a,b\nc1,1,2\nc2,1,nan\n", 5, "NaN")
table_case("TSV with an infinite count", "t.tsv", "cell\ta\tb\nc1\t1\t2\nc2\t1\tinf\n", 5, "infinite")
table_case("empty file", "t.tsv", "", 4, "empty")
table_case("header only", "t.csv", "cell,a,b\n", 4, "no data rows")


@case("h5ad dense X declared 1e6 x 1e6, never written")
def _(d):
    import h5py
    p = write_h5ad(d / "x.h5ad", counts())
    with h5py.File(p, "r+") as f:
        del f["X"]
        f.create_dataset("X", shape=(10**6, 10**6), dtype="f4", chunks=(1000, 1000))
    return dict(args=pca(p, d, "-k", "2"), code=5, needles=["x.h5ad", "X", "GB"])


@case("h5ad dense X of 400 MB declared, never written")
def _(d):
    import h5py
    p = write_h5ad(d / "x.h5ad", counts())
    with h5py.File(p, "r+") as f:
        del f["X"]
        f.create_dataset("X", shape=(50000, 2000), dtype="f4", chunks=(1000, 100))
    return dict(args=pca(p, d, "-k", "2"), code=4, needles=["x.h5ad", "unwritten"])


@case("h5ad dense X is read in row blocks")
def _(d):
    p = write_h5ad(d / "x.h5ad", counts(), dense=True)

    def check(d):
        lab = (d / "out" / "labels.tsv").read_text().splitlines()
        assert len(lab) == 61
    return dict(args=pca(p, d, "-k", "2"), code=0, check=check)


@case("h5ad int64 index >= 2^32")
def _(d):
    import h5py
    p = write_h5ad(d / "x.h5ad", counts())
    with h5py.File(p, "r+") as f:
        idx = f["X/indices"][:].astype(np.int64)
        idx[0] = 2**32 + 1
        del f["X/indices"]
        f["X/indices"] = idx
    return dict(args=pca(p, d, "-k", "2"), code=4, needles=["x.h5ad", "X/indices", "4294967297"])


@case("h5ad indptr that decreases")
def _(d):
    import h5py
    p = write_h5ad(d / "x.h5ad", counts())
    with h5py.File(p, "r+") as f:
        ip = f["X/indptr"][:]
        ip[5] = ip[7] + 3
        f["X/indptr"][...] = ip
    return dict(args=pca(p, d, "-k", "2"), code=4, needles=["x.h5ad", "indptr"])


@case("h5ad truncated")
def _(d):
    p = write_h5ad(d / "x.h5ad", counts())
    b = p.read_bytes()
    p.write_bytes(b[: len(b) // 3])
    return dict(args=pca(p, d, "-k", "2"), code=4, needles=["x.h5ad"])


def corrupt_heap(p, kind):
    """libhdf5 bugs fuzzing found, made on purpose: a global heap (variable-length
    strings) whose first object has index 0 and size 0 (the parser steps 0 bytes, for
    ever), or a local heap (link names) whose free list points at itself (a node
    allocated per turn, without end)."""
    import struct
    b = bytearray(p.read_bytes())
    if kind == "global":
        i = b.index(b"GCOL")
        b[i + 16:i + 18] = bytes(2)
        b[i + 24:i + 32] = bytes(8)
    else:
        j = b.index(b"HEAP")
        _, head, addr = struct.unpack_from("<QQQ", b, j + 8)
        struct.pack_into("<QQ", b, addr + head, head, 16)
    p.write_bytes(bytes(b))
    return p


@case("h5ad whose global heap makes libhdf5 loop")
def _(d):
    p = corrupt_heap(write_h5ad(d / "x.h5ad", counts()), "global")
    return dict(args=pca(p, d, "-k", "2", "--hdf5-timeout", "3"), code=4, needles=["x.h5ad", "did not finish", "hdf5_timeout"], protect=[p])


@case("h5ad whose local-heap free list is a cycle")
def _(d):
    p = corrupt_heap(write_h5ad(d / "x.h5ad", counts()), "local")
    return dict(args=pca(p, d, "-k", "2", "--hdf5-timeout", "3"), code=4, needles=["x.h5ad"], protect=[p])


@case("a model layer too large to allocate")
def _(d):
    m = write_mtx(d / "m")
    return dict(args=pca(m, d, "-k", "2", "--method", "scmae", "--epochs", "1", "--set", "params.hidden_dim=1099511627776"),
                code=6, needles=["out of memory", "batch"])


@case("random bytes named .h5ad")
def _(d):
    p = d / "x.h5ad"
    p.write_bytes(np.random.default_rng(0).bytes(5000))
    return dict(args=pca(p, d, "-k", "2"), code=4, needles=["x.h5ad", "HDF5"])


@case("npy with a short header")
def _(d):
    p = d / "e.npy"
    p.write_bytes(b"\x93NUMPY\x02\x00\x10\x00")
    return dict(args=["cluster", "-k", "2", "--embedding", p, "--out", d / "out"], code=4, needles=["e.npy", "header"])


@case("npy whose shape overflows")
def _(d):
    p = write_npy_raw(d / "e.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (18446744073709551615, 18446744073709551615), }\n", b"\0" * 64)
    return dict(args=["cluster", "-k", "2", "--embedding", p, "--out", d / "out"], code=4, needles=["e.npy", "shape"])


@case("npy header longer than the file")
def _(d):
    p = d / "e.npy"
    p.write_bytes(b"\x93NUMPY\x01\x00\xff\xff{'descr'")
    return dict(args=["cluster", "-k", "2", "--embedding", p, "--out", d / "out"], code=4, needles=["e.npy", "truncated"])


@case("npy of an unknown version")
def _(d):
    p = d / "e.npy"
    p.write_bytes(b"\x93NUMPY\x09\x00\x10\x00" + b" " * 16)
    return dict(args=["cluster", "-k", "2", "--embedding", p, "--out", d / "out"], code=4, needles=["e.npy", "version"])


# --- options


@case("--threads 2147483648 is capped")
def _(d):
    m = write_mtx(d / "mtx")
    a = pca(m, d, "-k", "2", "--threads", "2147483648")
    a.remove("-q")
    return dict(args=a, code=0, needles=["warning: threads = 2147483648", "cores"])


@case("--threads 10000 is capped")
def _(d):
    m = write_mtx(d / "mtx")
    a = pca(m, d, "-k", "2", "--threads", "10000")
    a.remove("-q")
    return dict(args=a, code=0, needles=["warning: threads = 10000"])


@case("--epochs 1e12")
def _(d):
    m = write_mtx(d / "mtx")
    return dict(args=pca(m, d, "-k", "2", "--method", "scmae", "--epochs", "1000000000000"), code=2, needles=["train.epochs", "1000000000000"])


@case("--config /dev/zero")
def _(d):
    m = write_mtx(d / "mtx")
    return dict(args=pca(m, d, "-k", "2", "--config", "/dev/zero"), code=4, needles=["/dev/zero", "larger than"])


@case("--labels /dev/zero")
def _(d):
    m = write_mtx(d / "mtx")
    return dict(args=pca(m, d, "--labels", "/dev/zero"), code=4, needles=["/dev/zero", "longer than"])


@case("--config that is not an object")
def _(d):
    m = write_mtx(d / "mtx")
    (d / "c.json").write_text("[1, 2]")
    return dict(args=pca(m, d, "-k", "2", "--config", d / "c.json"), code=4, needles=["c.json", "JSON object"])


@case("-k 0")
def _(d):
    m = write_mtx(d / "mtx")
    return dict(args=pca(m, d, "-k", "0"), code=2, needles=["n_clusters"])


@case("unknown method")
def _(d):
    m = write_mtx(d / "mtx")
    return dict(args=pca(m, d, "-k", "2", "--method", "nope"), code=2, needles=["nope"])


@case("--set with an unknown field")
def _(d):
    m = write_mtx(d / "mtx")
    return dict(args=pca(m, d, "-k", "2", "--set", "cluster.nope=3"), code=2, needles=["nope"])


@case("--max-decompression-ratio 0")
def _(d):
    m = write_mtx(d / "mtx")
    return dict(args=pca(m, d, "-k", "2", "--max-decompression-ratio", "0"), code=2, needles=["max_decompression_ratio"])


@case("simulate 1e12 cells")
def _(d):
    return dict(args=["simulate", "-q", "--n-cells", "1000000000000", "--out", d / "out"], code=5, needles=["1000000000000 cells", "GB"])


@case("missing input")
def _(d):
    return dict(args=pca(d / "nope.h5ad", d, "-k", "2"), code=3, needles=["nope.h5ad"])


# --- labels


@case("a barcode listed twice with different labels")
def _(d):
    m = write_mtx(d / "mtx")
    cells, labels = default_labels()
    lab = write_labels(d / "l.tsv", cells + ["C0"], labels + ["b"])
    return dict(args=pca(m, d, "--labels", lab), code=4, needles=["l.tsv", "C0", "twice"])


@case("an empty label")
def _(d):
    m = write_mtx(d / "mtx")
    cells, labels = default_labels()
    labels[4] = ""
    lab = write_labels(d / "l.tsv", cells, labels)
    return dict(args=pca(m, d, "--labels", lab), code=4, needles=["l.tsv", "C4", "empty label"])


barcode_case("a cell name listed twice", 7, "C2", ["'C2' appears twice", "cells 2 and 7"])


@case("duplicate gene names are made unique with a warning")
def _(d):
    genes = [f"G{j}" for j in range(40)]
    genes[9] = "G3"
    m = write_mtx(d / "mtx", genes=genes)
    a = pca(m, d, "-k", "2")
    a.remove("-q")
    return dict(args=a, code=0, needles=["1 duplicate gene names made unique", "'G3' -> 'G3-1'"])


@case("one gene, -k 5")
def _(d):
    p = d / "t.csv"
    p.write_text("cell,G1\n" + "".join(f"c{i},{(i * 7) % 21}\n" for i in range(100)))
    return dict(args=pca(p, d, "-k", "5"), code=5, needles=["distinct points", "5 clusters"])


# --- valid inputs on odd paths


@case("read-only input .h5ad")
def _(d):
    p = write_h5ad(d / "ro.h5ad", counts())
    os.chmod(p, 0o444)

    def check(d):
        mode = (d / "out" / "ro.scdeep.h5ad").stat().st_mode
        assert mode & stat.S_IWUSR, oct(mode)
    return dict(args=pca(p, d, "-k", "2"), code=0, check=check, protect=[p])


@case("a 250-byte input name")
def _(d):
    p = write_h5ad(d / ("n" * 244 + ".h5ad"), counts())

    def check(d):
        names = [f.name for f in (d / "out").iterdir()]
        assert any(n.endswith(".scdeep.h5ad") and len(n) < 255 for n in names), names
    return dict(args=pca(p, d, "-k", "2"), code=0, check=check)


@case("a gzipped table through a FIFO")
def _(d):
    fifo = d / "t.csv.gz"
    os.mkfifo(fifo)
    x = counts()
    body = "cell," + ",".join(f"G{j}" for j in range(x.shape[1])) + "\n" + "".join(
        f"C{i}," + ",".join(map(str, r)) + "\n" for i, r in enumerate(x))
    data = gzip.compress(body.encode())

    def feed():
        with open(fifo, "wb") as f:
            f.write(data)
    threading.Thread(target=feed, daemon=True).start()
    return dict(args=pca(fifo, d, "-k", "2", "--no-h5ad"), code=0)


# --- signals: cancel at the next safe point, remove staged files, exit 128 + signal


def training_run(d, *extra):
    m = write_mtx(d / "mtx", counts(300, 60))
    a = pca(m, d, "-k", "2", "--method", "scmae", "--epochs", "20000", "--device", "cpu", *extra)
    a.remove("-q")
    return a


@case("SIGINT while training")
def _(d):
    return dict(args=training_run(d), code=130, needles=["cancelled by SIGINT", "no output"], signal_at=(signal.SIGINT, "epoch    1/"))


@case("SIGTERM while training")
def _(d):
    return dict(args=training_run(d), code=143, needles=["cancelled by SIGTERM"], signal_at=(signal.SIGTERM, "epoch    1/"))


@case("SIGTERM while training with a model folder to write")
def _(d):
    return dict(args=training_run(d, "--save-model", d / "model"), code=143, needles=["SIGTERM"], signal_at=(signal.SIGTERM, "epoch    1/"), also_absent=[d / "model"])


@case("SIGINT with checkpoints in --out keeps only the checkpoint")
def _(d):
    def check(d):
        names = sorted(p.name for p in (d / "out").iterdir())
        assert names == [".scdeep-output", "checkpoint"], names
        w = [p.name for p in (d / "out" / "checkpoint").iterdir()]
        assert "checkpoint.json" in w and sum(n.endswith(".safetensors") for n in w) == 1, w
    return dict(args=training_run(d, "--checkpoint-every", "1"), code=130, needles=["SIGINT"], signal_at=(signal.SIGINT, "epoch    1/"), out=None, check_fail=check)


# ---------------------------------------------------------------- the test


# (exit code, stderr) of each case's CLI run, for the C door's comparison.
CLI_RESULTS = {}


def execute(name, d):
    spec = CASES[name](d)
    protect = spec.get("protect", [])
    before = digest(protect)
    out = spec.get("out", d / "out")
    existed = out is not None and Path(out).exists()
    code, err, rss = run(spec["args"], d, signal_at=spec.get("signal_at"))
    return spec, before, out, existed, code, err, rss


@pytest.mark.skipif(not BIN.exists(), reason="build the CLI first (make build)")
@pytest.mark.parametrize("name", list(CASES))
def test_hostile(name, tmp_path):
    spec, before, out, existed, code, err, rss = execute(name, tmp_path)
    CLI_RESULTS[name] = (code, err)
    if os.environ.get("SCDEEP_HOSTILE_TABLE"):  # one JSON line per case, for reports
        line = next((l for l in err.splitlines() if l.strip()), "")
        with open(os.environ["SCDEEP_HOSTILE_TABLE"], "a") as f:
            f.write(json.dumps({"case": name, "exit": code, "message": line[:200], "peak_rss_mb": round(rss)}) + "\n")
    assert "panicked" not in err and code >= 0, f"crash (exit {code}): {err}"
    assert code == spec["code"], f"exit {code}, expected {spec['code']}: {err}"
    for n in spec.get("needles", []):
        assert n in err, f"{n!r} not in: {err}"
    assert digest(spec.get("protect", [])) == before, "a user's file changed"
    if code != 0:
        if out is not None and not existed:
            assert not Path(out).exists(), f"partial output left: {out}"
        assert not leftovers(tmp_path), f"staging files left: {leftovers(tmp_path)}"
        for p in spec.get("also_absent", []):
            assert not Path(p).exists(), f"partial output left: {p}"
        if "check_fail" in spec:
            spec["check_fail"](tmp_path)
    elif "check" in spec:
        spec["check"](tmp_path)
    assert rss <= MAX_RSS_MB, f"peak RSS {rss:.0f} MB"


# ---------------------------------------------------------------- the C and Python doors

LIB = Path(os.environ.get("SCDEEP_LIB", ROOT / "target" / "release" / "libscdeep.so"))

C_DOOR = r"""
import ctypes, json, sys
lib = ctypes.CDLL(sys.argv[1])
lib.scdeep_last_error.restype = ctypes.c_char_p
ds = ctypes.c_void_p()
st = lib.scdeep_dataset_read(sys.argv[2].encode(), sys.argv[3].encode() if sys.argv[3] else None, ctypes.byref(ds))
print(json.dumps({"status": st, "error": (lib.scdeep_last_error() or b"").decode("utf-8", "replace")}))
"""


def input_of(args):
    """(--input, options JSON) of a `run` case."""
    a = [str(x) for x in args]
    opts = {}
    if "--labels" in a:
        opts["labels_file"] = a[a.index("--labels") + 1]
    return a[a.index("--input") + 1], json.dumps(opts) if opts else ""


READ_CASES = [n for n in CASES if n.split(":")[0] not in ("SIGINT while training", "SIGTERM while training")]


@pytest.mark.skipif(not LIB.exists(), reason="build the C library first (make build)")
@pytest.mark.parametrize("name", READ_CASES)
def test_c_door_reads_the_same_inputs(name, tmp_path):
    """scdeep_dataset_read on each case's input: a status, never a crash; where the CLI
    failed reading that input, the same status (the C codes are the CLI's exit codes)."""
    spec = CASES[name](tmp_path)
    if spec["args"][0] != "run":
        pytest.skip("not a `run` case")
    inp, opts = input_of(spec["args"])
    p = subprocess.run([sys.executable, "-c", C_DOOR, str(LIB), inp, opts], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, f"the C door crashed (exit {p.returncode}): {p.stderr[-2000:]}"
    r = json.loads(p.stdout)
    if r["status"] != 0:
        assert Path(inp).name in r["error"] or (opts and "labels" in opts), r
    if spec["code"] not in (3, 4, 5):
        return
    # The CLI's run of this case (test_hostile ran it; run it here when that was deselected).
    code, err = CLI_RESULTS.get(name) or run(spec["args"], tmp_path)[:2]
    if Path(inp).name in err:
        assert r["status"] == spec["code"], (r, err)


PY_DOOR = r"""
import json, sys
import numpy as np, scipy.sparse as sp, anndata as ad
import scdeep
case = sys.argv[1]
x = np.random.default_rng(0).poisson(2, size=(60, 40)).astype(np.float32)
names = [f"C{i}" for i in range(60)]
kw = dict(method="pca", n_clusters=2, verbose=False, threads=1)
if case == "nan":
    x[3, 4] = np.nan
elif case == "inf":
    x[3, 4] = np.inf
elif case == "negative":
    x[3, 4] = -1
elif case == "zeros":
    x[:] = 0
elif case == "nul":
    names[5] = "C\x005"
elif case == "k>cells":
    kw["n_clusters"] = 500
elif case == "epochs":
    kw.update(method="scmae", train={"epochs": 10**12})
elif case == "threads":
    kw["threads"] = 2**31
a = ad.AnnData(X=sp.csr_matrix(x))
a.obs_names = names
a.var_names = [f"G{j}" for j in range(40)]
try:
    scdeep.tl.cluster(a, **kw)
    print(json.dumps({"ok": True}))
except Exception as e:
    print(json.dumps({"ok": False, "type": type(e).__name__, "error": str(e)}))
"""

PY_CASES = {"nan": ("DataError", "NaN"), "inf": ("DataError", "infinite"), "negative": ("DataError", "negative"),
            "zeros": ("DataError", "all zeros"), "nul": ("DataError", "NUL"), "k>cells": ("InvalidOptionError", "more clusters than cells"),
            "epochs": ("InvalidOptionError", "train.epochs"), "threads": (None, "")}


def python_package():
    # find_spec, not import: importing scdeep maps libtorch into this process.
    import importlib.util
    return importlib.util.find_spec("scdeep") is not None


@pytest.mark.skipif(not python_package(), reason="install the Python package first (make python)")
@pytest.mark.parametrize("name", list(PY_CASES))
def test_python_door(name):
    """scdeep.tl.cluster on hostile AnnData: the documented exception, never a crash."""
    p = subprocess.run([sys.executable, "-c", PY_DOOR, name], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, f"the Python door crashed (exit {p.returncode}): {p.stderr[-2000:]}"
    r = json.loads(p.stdout.strip().splitlines()[-1])
    kind, needle = PY_CASES[name]
    if kind is None:
        assert r["ok"], r
    else:
        assert not r["ok"] and r["type"] == kind and needle in r["error"], r


def test_enough_cases():
    assert len(CASES) >= 60, len(CASES)


if __name__ == "__main__" and "--table" in sys.argv:
    import tempfile
    print("| case | exit | peak RSS (MB) | message |\n|---|---|---|---|")
    for name in CASES:
        with tempfile.TemporaryDirectory() as t:
            spec, _, _, _, code, err, rss = execute(name, Path(t))
            msg = next((l for l in err.splitlines() if "error" in l or "warning" in l), "").replace("|", "\\|").replace(t, "$T")
            print(f"| {name} | {code} | {rss:.0f} | {msg[:160]} |")
