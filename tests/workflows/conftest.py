"""Shared set-up for the workflow tests: the `scdeep` CLI built by `make build` on PATH."""
import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
TARGET = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
BIN_DIR = TARGET / "release"


@pytest.fixture(scope="session")
def cli_env():
    if not (BIN_DIR / "scdeep").is_file():
        pytest.fail(f"{BIN_DIR / 'scdeep'} is missing: run `make build` first")
    env = dict(os.environ)
    env["PATH"] = f"{BIN_DIR}{os.pathsep}{pathlib.Path(os.sys.executable).parent}{os.pathsep}{env['PATH']}"
    return env


def png_size(path):
    """(width, height) of a PNG, from its IHDR chunk."""
    b = pathlib.Path(path).read_bytes()
    assert b[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert b[12:16] == b"IHDR"
    return int.from_bytes(b[16:20], "big"), int.from_bytes(b[20:24], "big")
