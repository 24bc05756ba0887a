"""Panic sites in non-test Rust code: `.unwrap()`, `.expect(`, `panic!`, `unreachable!`,
`unimplemented!`, `todo!`. Each is a place where a hostile input could abort a run (and,
through the C, Python or R doors, the host process), so their number per file may only
go down: `panic_sites.json` holds the counts, and this test fails when a file has more.

`python tests/hostile/test_panic_sites.py --update` rewrites the counts (after removing
some) and prints every remaining site.
"""

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BASELINE = Path(__file__).with_name("panic_sites.json")
PATTERN = re.compile(r"\.unwrap\(\)|\.expect\(|\bpanic!|\bunreachable!|\bunimplemented!|\btodo!")


def sources():
    for d in ["core/src", "bindings/cli/src", "bindings/c/src", "bindings/python/src", "bindings/r/src"]:
        yield from sorted((ROOT / d).rglob("*.rs"))


def sites(path):
    """(line number, text) of each panic site before the file's `#[cfg(test)]` module."""
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip().startswith("#[cfg(test)]"):
            break
        code = line.split("//")[0]
        out += [(n, line.strip())] * len(PATTERN.findall(code))
    return out


def counts():
    return {str(p.relative_to(ROOT)): len(s) for p in sources() if (s := sites(p))}


def test_panic_sites_only_go_down():
    base = json.loads(BASELINE.read_text())
    now = counts()
    grown = {f: (base.get(f, 0), n) for f, n in now.items() if n > base.get(f, 0)}
    assert not grown, "new unwrap/expect/panic sites (baseline, now): " + json.dumps(grown) + \
        " -- return an Error instead, or justify and run this file with --update"


if __name__ == "__main__" and "--update" in sys.argv:
    c = counts()
    BASELINE.write_text(json.dumps(c, indent=1, sort_keys=True) + "\n")
    for p in sources():
        for n, t in sites(p):
            print(f"{p.relative_to(ROOT)}:{n}: {t[:120]}")
    print(f"{sum(c.values())} sites in {len(c)} files")
