r"""Git Re-Basin weight matching (Ainsworth et al., 2023) for MLPs and CNNs.

:func:`align` finds the permutation of ``b`` that maximises
:math:`\sum_\ell \langle W^a_\ell, P_\ell W^b_\ell P_{\ell-1}^\top\rangle`, by coordinate ascent with one
linear assignment (``scipy.optimize.linear_sum_assignment``) per neuron space.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from weightzoo.errors import ShapeMismatchError
from weightzoo.zoo.graphs.layout import Layout, flat_in_index

from .permutation import (
    Perms,
    _dense,
    _group_perms,
    _mlp_cnn_only,
    _rebuild,
    _resolve,
    _Spaces,
    apply_permutation,
)

# --- weight matching -----------------------------------------------------------------------------------


def _rows(layout: Layout, sd: Mapping[str, torch.Tensor], members: set[int], incoming_only: bool = False) -> list[torch.Tensor]:
    # ``sd`` holds dense (block-diagonal) grouped weights, see _dense
    """Every tensor slice indexed by the space ``members``, as [size, -1] float64 matrices."""
    mats = []
    for s in layout.slots:
        if s.role == "buffer":
            continue
        t = sd[s.name].to(torch.float64)
        if s.role != "weight":
            cg, _ = flat_in_index(layout, s.out_group)  # type: ignore[arg-type]
            if cg in members:
                mats.append(t.reshape(layout.groups[cg].size, -1))
            continue
        if s.out_group in members:
            mats.append(t.reshape(t.shape[0], -1))
        cg, _ = flat_in_index(layout, s.in_group)  # type: ignore[arg-type]
        if cg in members and not incoming_only:
            c = layout.groups[cg].size
            mats.append(t.reshape(t.shape[0], c, -1).transpose(0, 1).reshape(c, -1))
    return mats


def _assign(kind: str, n_blocks: int, costs: dict[int, np.ndarray], lsa: Any) -> dict[int, torch.Tensor]:
    """Maximising assignment per space: free, inside blocks only, or whole blocks shared by the spaces."""
    out = {}
    if kind == "free":
        for r, c in costs.items():
            out[r] = torch.as_tensor(lsa(c, maximize=True)[1], dtype=torch.long)
        return out
    if kind == "within":
        for r, c in costs.items():
            blk = np.arange(len(c)) // (len(c) // n_blocks)
            out[r] = torch.as_tensor(lsa(np.where(blk[:, None] == blk[None, :], c, -1e300), maximize=True)[1],
                                     dtype=torch.long)
        return out
    # shared: value of block b (of a) against block b2 (of b) = best within-block assignment, summed
    block_cost = np.zeros((n_blocks, n_blocks))
    within: dict[tuple[int, int, int], np.ndarray] = {}
    for r, c in costs.items():
        s = len(c) // n_blocks
        for b1 in range(n_blocks):
            for b2 in range(n_blocks):
                sub = c[b1 * s:(b1 + 1) * s, b2 * s:(b2 + 1) * s]
                rows, cols = lsa(sub, maximize=True)
                within[(r, b1, b2)] = cols
                block_cost[b1, b2] += sub[rows, cols].sum()
    rho = lsa(block_cost, maximize=True)[1]
    for r, c in costs.items():
        s = len(c) // n_blocks
        out[r] = torch.as_tensor(np.concatenate([rho[b] * s + within[(r, b, rho[b])] for b in range(n_blocks)]),
                                 dtype=torch.long)
    return out


def _state(obj: Any) -> dict[str, torch.Tensor]:
    return dict(obj.state_dict()) if isinstance(obj, nn.Module) else {k: obj[k] for k in obj.keys()}


def align(a: Any, b: Any, spec: Mapping[str, Any] | None = None, *, max_iter: int = 100,
          seed: int = 0, example_input: Any = None) -> tuple[Any, Perms]:
    r"""Permute ``b``'s hidden neurons to best match ``a`` (Git Re-Basin weight matching).

    Coordinate ascent: for each neuron space in a seeded random order, solve the linear assignment
    :math:`\max_P \langle A, P B\rangle` where ``A``/``B`` stack every tensor slice the space indexes (its
    rows in the layer it feeds out of, its columns in the next layer, biases and norm parameters), with
    ``b``'s other spaces already permuted; stop when a sweep changes nothing (or after ``max_iter``).
    Residual streams are one space. Channels under grouped convs or group norms are matched as
    :func:`permute_hidden` permutes them: whole groups (one assignment over groups, valued by the best
    assignment inside each pair of groups) where all their group structures agree, else inside groups.

    Any module outside the spec/family fast paths (or a recorded layout as ``spec``) is matched on its
    recorded layout (:func:`~.any_module.align_recorded`; ``example_input`` for the recorded pass).

    Returns ``(aligned b, perms)`` — ``aligned`` is the same kind as ``b``.
    """
    from scipy.optimize import linear_sum_assignment

    from .permutation import fast_spec

    if isinstance(a, nn.Module) and spec is None and fast_spec(a) is None:  # any module: its recorded layout
        from .any_module import align_recorded, apply_recorded_permutation, recorded_layout

        rec = recorded_layout(a, example_input)
        perms = align_recorded(rec, a.state_dict(), _state(b), max_iter=max_iter, seed=seed)
        return _rebuild(b, apply_recorded_permutation(rec, _state(b), perms)), perms
    layout, sd_a = _resolve(a, spec)
    if layout.info.get("recorded"):
        from .any_module import align_recorded, apply_recorded_permutation

        perms = align_recorded(layout, sd_a, _state(b), max_iter=max_iter, seed=seed)
        return _rebuild(b, apply_recorded_permutation(layout, _state(b), perms)), perms
    _mlp_cnn_only(layout, "align")
    layout_b, sd_b = _resolve(b, spec)
    if layout_b is not layout and layout_b.spec != layout.spec:
        raise ShapeMismatchError("align: a and b have different architectures")
    spaces = _Spaces(layout)
    dense_a, dense_b = _dense(layout, sd_a), _dense(layout, sd_b)
    units: list[tuple[str, int, tuple[int, ...]]] = [("free", 1, (r,)) for r in spaces.free()]
    for comp in spaces.components:
        counts = set().union(*(spaces.counts[r] for r in comp))
        if len(counts) == 1 and not any(r in spaces.fixed for r in comp):
            units.append(("shared", counts.pop(), tuple(comp)))  # one permutation of whole groups + within
        else:
            units += [("within", math.lcm(*spaces.counts[r]), (r,)) for r in comp if r not in spaces.fixed]
    space_perms = {r: torch.arange(spaces.size(r)) for _, _, u in units for r in u}

    def cost(r: int, incoming_only: bool = False) -> np.ndarray:
        # b with every other space at its current permutation and this one at identity
        others = dict(space_perms)
        others[r] = torch.arange(spaces.size(r))
        sd_b_now = apply_permutation(layout, dense_b, _group_perms(spaces, others), dense=True)
        members = set(spaces.members[r])
        pairs = zip(_rows(layout, dense_a, members, incoming_only), _rows(layout, sd_b_now, members, incoming_only))
        return np.asarray(sum(ra @ rb.T for ra, rb in pairs))

    # start: match each space on its incoming weights only, in forward order (exact for a permuted copy),
    # then make the grouped spaces' permutations respect their groups
    for r in sorted(space_perms, key=lambda r: min(spaces.members[r])):
        space_perms[r] = torch.as_tensor(linear_sum_assignment(cost(r, True), maximize=True)[1], dtype=torch.long)
    for kind, n_blocks, unit in units:
        if kind != "free":
            space_perms.update(_assign(kind, n_blocks, {r: cost(r) for r in unit}, linear_sum_assignment))
    rng = np.random.default_rng(seed)
    for _ in range(max_iter):
        changed = False
        for ui in rng.permutation(len(units)).tolist():
            kind, n_blocks, unit = units[ui]
            costs = {r: cost(r) for r in unit}
            new_perms = _assign(kind, n_blocks, costs, linear_sum_assignment)
            old = sum(float(c[np.arange(len(c)), space_perms[r].numpy()].sum()) for r, c in costs.items())
            new = sum(float(c[np.arange(len(c)), new_perms[r].numpy()].sum()) for r, c in costs.items())
            if new > old + 1e-12 * max(1.0, abs(old)):
                space_perms.update(new_perms)
                changed = True
        if not changed:
            break
    perms = _group_perms(spaces, space_perms)
    return _rebuild(b, apply_permutation(layout, sd_b, perms)), perms


__all__ = ["align"]
