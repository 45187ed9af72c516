"""Print the coverage table of recorded ParameterGraphs and symmetries over the test bed (docs/graphs.md).

For every architecture the test suite instantiates (tests/zoo/graphs/testbed.py: hand-written
torchvision/timm-style modules and tiny-config ``transformers`` models): whether the recorded graph round-trips
bit-exactly, whether a random permutation of every symmetry class preserves the function (check_symmetry),
how many classes move, seconds to build the graph, nodes and edges.

    OMP_NUM_THREADS=1 .venv/bin/python docs/make_graph_coverage.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "zoo" / "graphs"))
import testbed  # noqa: E402

from weightzoo.zoo.graphs import ParameterGraph  # noqa: E402
from weightzoo.zoo.symmetry import check_symmetry, permute_hidden, symmetry_groups  # noqa: E402


def row(name: str, m: torch.nn.Module, x: object) -> str:
    t = time.perf_counter()
    try:
        g = ParameterGraph.from_module(m, x, recorded=True)
    except Exception as exc:  # noqa: BLE001 - a table row says what failed
        return f"| {name} | ✘ ({type(exc).__name__}) | | | | | |"
    secs = time.perf_counter() - t
    sd, back = m.state_dict(), g.to_state_dict()
    exact = list(back) == list(sd) and all(torch.equal(back[k], v) and back[k].dtype == v.dtype for k, v in sd.items())
    groups = symmetry_groups(m, x)
    moving = sum(1 for s in groups if s.status in ("free", "heads"))
    new = permute_hidden(m, torch.Generator().manual_seed(0), example_input=x)
    ok = check_symmetry(m, new, x).preserved
    changed = any(not torch.equal(v, new.state_dict()[k]) for k, v in sd.items())
    perm = "✔" if ok and changed else ("✘" if not ok else "– (nothing moves)")
    return (f"| {name} | {'✔' if exact else '✘'} | {perm} | {moving}/{len(groups)} | {secs:.2f} | {g.num_nodes} | "
            f"{g.num_edges} |")


def main() -> None:
    torch.set_num_threads(1)
    print("| architecture | round trip | permutation | classes that move | seconds | nodes | edges |")
    print("|---|---|---|---|---|---|---|")
    for name in testbed.HANDWRITTEN:
        m, x = testbed.build(name)
        print(row(name, m, x), flush=True)
    try:
        import transformers  # noqa: F401
    except ImportError:
        return
    for family in testbed.HF_TINY:
        m, x = testbed.build_hf(family)
        print(row(f"transformers {family}", m, x), flush=True)


if __name__ == "__main__":
    main()
