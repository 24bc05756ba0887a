"""The core's modules form layers: no import cycle between its top-level modules, nor
between the files of one module (issue 25 item 4). A static scan of `crate::<module>`
and `super::<file>` paths in core/src (test modules at the end of a file excluded);
`python tests/python/test_core_layers.py` prints the layers, lowest first."""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SRC = os.path.join(ROOT, "core", "src")


def sources():
    for d, _, files in os.walk(SRC):
        for f in files:
            if f.endswith(".rs"):
                p = os.path.join(d, f)
                rel = os.path.relpath(p, SRC)[:-3].split(os.sep)
                if rel[-1] == "mod":
                    rel = rel[:-1]
                text = open(p, encoding="utf-8").read()
                text = text.split("#[cfg(test)]")[0]
                text = re.sub(r"//[^\n]*", "", text)
                yield rel, text


def graphs():
    """({top-level module: set of top-level modules it uses}, {module: {file: files of it it uses}})."""
    top, inner = {}, {}
    files = list(sources())
    names = {rel[0] for rel, _ in files if rel and rel[0] != "lib"}
    for rel, text in files:
        if not rel or rel[0] == "lib":
            continue
        me = rel[0]
        uses = {m for m in re.findall(r"crate::(\w+)", text) if m in names and m != me}
        # `use crate::{a, b::c}` groups
        for group in re.findall(r"crate::\{([^}]*)\}", text):
            uses |= {g.strip().split("::")[0] for g in group.split(",") if g.strip().split("::")[0] in names} - {me}
        top.setdefault(me, set()).update(uses)
        if len(rel) == 2:  # a file of a module folder: its siblings through super::
            sib = set(re.findall(r"super::(\w+)", text))
            for group in re.findall(r"super::\{([^}]*)\}", text):
                sib |= {g.strip().split("::")[0] for g in group.split(",")}
            siblings = {r[1] for r, _ in files if len(r) == 2 and r[0] == me}
            inner.setdefault(me, {}).setdefault(rel[1], set()).update((sib & siblings) - {rel[1]})
    return top, inner


def cycle(graph):
    """A cycle of `graph` as a list of nodes, or None."""
    state = {}

    def visit(n, path):
        state[n] = 1
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return path[path.index(m):] + [m] if m in path else [n, m]
            if m not in state:
                c = visit(m, path + [m])
                if c:
                    return c
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            c = visit(n, [n])
            if c:
                return c
    return None


def layers(graph):
    left, out = dict(graph), []
    while left:
        ready = sorted(n for n, deps in left.items() if not (deps & set(left)))
        if not ready:
            return out + [sorted(left)]
        out.append(ready)
        for n in ready:
            del left[n]
    return out


def test_no_cycle_between_the_cores_modules():
    top, _ = graphs()
    assert len(top) >= 10, f"scan found only {sorted(top)}"
    assert "store" in top["pipeline"] and "config" in top["pipeline"], "the scan misses known dependencies"
    c = cycle(top)
    assert c is None, "import cycle between core modules: " + " -> ".join(c)


def test_no_cycle_between_the_files_of_a_module():
    _, inner = graphs()
    assert "seurat_v3" in inner["preprocess"]
    for module, g in inner.items():
        c = cycle(g)
        assert c is None, f"import cycle in core/src/{module}/: " + " -> ".join(c)


if __name__ == "__main__":
    top, inner = graphs()
    for i, layer in enumerate(layers(top)):
        print(f"layer {i}: {', '.join(layer)}")
    for module, g in sorted(inner.items()):
        print(f"{module}/: " + " | ".join(", ".join(layer) for layer in layers(g)))
    sys.exit(0)
