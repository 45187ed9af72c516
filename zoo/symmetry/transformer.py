r"""Permutation symmetries of transformers (used by :func:`weightzoo.zoo.symmetry.permute_hidden`).

For a multi-head attention block with ``H`` query heads, ``G`` key/value heads (``r = H / G`` query
heads share one), head size ``dh`` and scores :math:`q_h^\top k_{g(h)}`, these leave the function
unchanged:

* **whole heads**: a permutation :math:`\sigma \in S_G` of the key/value heads, carrying their query
  heads along, composed with a permutation :math:`\tau_g \in S_r` of the query heads inside each group
  (for plain multi-head attention, ``r = 1``: a permutation of the heads). Queries, keys, values, the
  output projection's input columns (and q/k/v biases) move by whole heads;
* **inside a head, q/k dims**: :math:`\psi_g \in S_{dh}` applied to the key dims of head ``g`` and the
  query dims of every query head using it (:math:`q^\top k = (Pq)^\top (Pk)`) — only without rotary
  embeddings, which rotate fixed pairs of dims by position-dependent angles;
* **inside a head, v/o dims**: :math:`\phi_g \in S_{dh}` on the value dims and the matching output-
  projection columns — with or without rotary embeddings;
* **MLP hidden units**: one permutation of the hidden neurons (gate and up together in a gated MLP);
* **residual stream**: one permutation :math:`\pi` of the ``d`` stream dims applied consistently to
  every embedding table's columns, every norm's weight/bias (LayerNorm and RMSNorm statistics are
  permutation-invariant), every read projection's input columns, every write projection's output
  rows and bias, the patch embedding's outputs, and the (tied or untied) output head's columns. It is
  a symmetry only when something reads the stream before the output (an LM head, a classifier); a bare
  encoder outputs the stream itself, so its stream never moves.

Permutations are per neuron group of the :class:`~weightzoo.zoo.graphs.layout.Layout`, in the gather
convention (``perm[j]`` = old index of new neuron ``j``), so
:func:`~weightzoo.zoo.symmetry.node_permutation` maps them onto ParameterGraph nodes.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from weightzoo.zoo.graphs.layout import Layout

Perms = dict[int, torch.Tensor]


def _perm(n: int, on: bool, g: torch.Generator | None) -> torch.Tensor:
    return torch.randperm(n, generator=g) if on else torch.arange(n)


def sample_transformer_perms(layout: Layout, generator: torch.Generator | None = None, *, heads: bool = True,
                             within_heads: bool = True, mlp: bool = True, stream: bool = True) -> Perms:
    """Random function-preserving permutations of a transformer layout (see the module docstring).

    Args:
        layout: a transformer :class:`~weightzoo.zoo.graphs.layout.Layout` (``layout.is_transformer``).
        generator: the ``torch.Generator`` that draws them (seed it for reproducibility).
        heads, within_heads, mlp, stream: which kinds to draw (the others stay the identity).
    """
    info = layout.info
    perms: Perms = {}
    for a in info["attention"]:
        n_heads, n_kv, dh = a["heads"], a["kv_heads"], a["head_dim"]
        rep = n_heads // n_kv
        sigma = _perm(n_kv, heads, generator)
        tau = [_perm(rep, heads, generator) for _ in range(n_kv)]
        qk = [_perm(dh, within_heads and not a["rotary"], generator) for _ in range(n_kv)]
        vo = [_perm(dh, within_heads, generator) for _ in range(n_kv)]
        old_head = torch.tensor([int(sigma[g]) * rep + int(tau[int(sigma[g])][t]) for g in range(n_kv)
                                 for t in range(rep)], dtype=torch.long)
        perms[a["head"]] = old_head
        perms[a["q"]] = torch.cat([h * dh + qk[h // rep] for h in old_head.tolist()])
        perms[a["attn"]] = torch.cat([h * dh + vo[h // rep] for h in old_head.tolist()])
        perms[a["k"]] = torch.cat([s * dh + qk[s] for s in sigma.tolist()])
        perms[a["v"]] = torch.cat([s * dh + vo[s] for s in sigma.tolist()])
    for m in info["mlp"]:
        mu = _perm(layout.groups[m["hidden"][0]].size, mlp, generator)
        for gi in m["hidden"]:
            perms[gi] = mu
    if info["stream"] and info["stream_permutable"]:
        pi = _perm(layout.groups[info["stream"][0]].size, stream, generator)
        for gi in info["stream"]:
            perms[gi] = pi
    return perms


def _parts_perm(layout: Layout, parts: tuple[int, ...], perms: Perms) -> torch.Tensor | None:
    if not any(p in perms for p in parts):
        return None
    out, offset = [], 0
    for p in parts:
        size = layout.groups[p].size
        out.append(perms.get(p, torch.arange(size)) + offset)
        offset += size
    return torch.cat(out)


def apply_transformer_permutation(layout: Layout, state_dict: Mapping[str, torch.Tensor],
                                  perms: Perms) -> dict[str, torch.Tensor]:
    """Permute a transformer state dict by per-group gather permutations (missing groups: identity).

    Handles fused q|k|v projections, ``[in, out]`` (Conv1D) weights, packed embedding/unembedding
    tables (their ``d`` columns move with the stream) and tied second names (which follow their table).
    """
    out = dict(state_dict)
    for s in layout.slots:
        if s.role == "buffer":
            continue
        t = state_dict[s.name]
        if s.role in ("embedding", "unembed"):
            p = perms.get(s.out_group if s.role == "embedding" else s.in_group)  # type: ignore[arg-type]
            if p is not None:
                t = t.reshape(-1, s.shape[-1])[:, p].reshape(s.shape)
        else:
            po = _parts_perm(layout, s.out_parts or (s.out_group,), perms)  # type: ignore[arg-type]
            if s.role == "weight":
                pi = None if s.flat else perms.get(s.in_group)  # type: ignore[arg-type]
                m = t.t() if s.transposed else t
                if po is not None:
                    m = m[po]
                if pi is not None:
                    m = m[:, pi]
                t = m.t() if s.transposed else m
            elif po is not None:
                t = t[po]
        out[s.name] = t.contiguous()
    for alias, target in layout.info.get("aliases", {}).items():
        if alias in out:
            out[alias] = out[target]
    return out


__all__ = ["apply_transformer_permutation", "sample_transformer_perms"]
