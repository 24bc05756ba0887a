"""Adapts a copy of torch-sys's generated C++ wrappers to an older libtorch: every
`atg_*` wrapper that does not compile against the given headers (an op the older
libtorch lacks, or whose signature changed) gets a body that reports "unavailable in this
libtorch" through tch's usual error path instead. It stops if scdeep's sources (REPO)
name any stubbed op, so a binary built this way never reaches a stub.

    python3 bench/stub_torch_sys.py TORCH_SYS_COPY TORCH_DIR REPO
"""
import os
import pathlib
import re
import subprocess
import sys

src, torch, repo = sys.argv[1], sys.argv[2], sys.argv[3]
cpp = f"{src}/libtch/torch_api_generated.cpp"
inc = [f"-I{torch}/include", f"-I{torch}/include/torch/csrc/api/include"]
r = subprocess.run(["g++", "-std=c++17", "-fsyntax-only", "-fmax-errors=0", "-D_GLIBCXX_USE_CXX11_ABI=1", *inc, cpp],
                   capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"})
bad = sorted(set(re.findall(r"In function 'void (atg_\w+)\(", r.stderr)))
if r.returncode != 0 and not bad:
    sys.exit("torch_api_generated.cpp does not compile, and not because of single wrappers:\n" + r.stderr[-3000:])
text = open(cpp).read()
for name in bad:
    m = re.search(r"\nvoid " + name + r"\(.*?\) \{\n  PROTECT\(\n(.*?)\n  \)\n\}\n", text, re.S)
    if not m:
        sys.exit(f"cannot find the body of {name}")
    body = f'    throw std::runtime_error("{name[4:]} is unavailable in this libtorch");'
    text = text[: m.start(1)] + body + text[m.end(1):]
ours = "\n".join(p.read_text() for d in ("core", "bindings") for p in pathlib.Path(repo, d).rglob("*.rs"))
used = [n for n in bad if re.search(r"\b(internal)?" + n[4:].lstrip("_") + r"\b", ours)]
if used:
    sys.exit(f"scdeep calls ops this libtorch lacks: {used}")
open(cpp, "w").write(text)
print(f"stubbed {len(bad)} wrappers: {' '.join(bad)}")
