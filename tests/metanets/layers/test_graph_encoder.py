"""GraphEncoder: invariant to node relabelling (negative control: re-wiring changes it), batching agrees
with one-at-a-time, bad options raise."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from weightzoo.metanets.layers.graph_encoder import GraphEncoder

N, E = 9, 12


def _graph(seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    op = torch.randint(0, 5, (N,), generator=g)
    x = torch.randn(N, 3, generator=g)
    ei = torch.randint(0, N, (2, E), generator=g)
    ea = torch.randn(E, 2, generator=g)
    return op, x, ei, ea


def _encoder() -> GraphEncoder:
    torch.manual_seed(0)
    return GraphEncoder(5, 3, 2, dim=16, out_dim=8, layers=2).eval()


@settings(max_examples=10, deadline=None)
@given(st.permutations(list(range(N))))
def test_invariant_to_node_relabelling(perm: list[int]) -> None:
    enc = _encoder()
    op, x, ei, ea = _graph()
    p = torch.tensor(perm)
    inv = torch.argsort(p)  # new position j holds old node inv[j]
    out = enc(op[inv], x[inv], p[ei], ea)
    torch.testing.assert_close(out, enc(op, x, ei, ea), atol=1e-5, rtol=1e-5)


def test_negative_control_rewiring_changes_the_output() -> None:
    enc = _encoder()
    op, x, ei, ea = _graph()
    ei2 = ei.clone()
    ei2[1, 0] = (ei2[1, 0] + 1) % N
    assert not torch.allclose(enc(op, x, ei2, ea), enc(op, x, ei, ea), atol=1e-5)


def test_batch_agrees_with_single_graphs_and_repr() -> None:
    enc = _encoder()
    a, b = _graph(0), _graph(1)
    op = torch.cat([a[0], b[0]])
    x = torch.cat([a[1], b[1]])
    ei = torch.cat([a[2], b[2] + N], dim=1)
    ea = torch.cat([a[3], b[3]])
    batch = torch.arange(2).repeat_interleave(N)
    out = enc(op, x, ei, ea, batch, 2)
    torch.testing.assert_close(out, torch.cat([enc(*a), enc(*b)]), atol=1e-5, rtol=1e-5)
    assert repr(enc) == "GraphEncoder(num_ops=5, dim=16, out_dim=8, layers=2)"


def test_bad_options_raise() -> None:
    with pytest.raises(ValueError, match="GraphEncoder"):
        GraphEncoder(0, 3, 2)
