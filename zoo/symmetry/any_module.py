r"""Weight-space symmetries of ANY module, from the constraints of its recorded layout (:mod:`~weightzoo.zoo.graphs.dataflow`).

A permutation :math:`P_g` per neuron group :math:`g` is a symmetry when every tensor is permuted along
each axis by the permutation of the group that axis indexes, and the constraints hold:

* tied groups (residual adds, gates, contractions such as :math:`q k^\top`, depthwise convs, a norm's new
  group) share one permutation — a *class*;
* a class split into :math:`H` heads takes :math:`P = (\pi \otimes I)\,\mathrm{diag}(\sigma_h)`: a
  permutation :math:`\pi` of whole heads, shared by every class head-tied to it (q, k and v of one
  attention), and a permutation :math:`\sigma_h` inside each head (identity where something varies along
  the head dims, e.g. rotary embeddings: then only whole heads move; identity :math:`\pi` where something
  varies over the heads, e.g. a relative-position bias table);
* a concatenation (or a fused layer sliced into parts) is permuted by the concatenation of its parts'
  permutations; a flattened map by its channel permutation repeated over positions;
* fixed classes never move: network inputs and outputs, channels that meet a constant varying along
  them, reshapes mixing channels with positions, ops the analysis does not follow (each with its reason
  in :func:`symmetry_groups`).

Permutations use the gather convention (``perm[j]`` = old index of new neuron ``j``), per group.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from weightzoo.errors import SpecError
from weightzoo.zoo.graphs.layout import Layout
from weightzoo.zoo.graphs.vocab import NodeType

Perms = dict[int, torch.Tensor]


@dataclass(frozen=True)
class SymmetryGroup:
    """One class of neuron groups that share a permutation.

    Attributes:
        groups: layout group indices in the class. labels: where each comes from (module path, op).
        size: neurons per group. status: ``"free"`` (any permutation), ``"heads"`` (whole heads, shared
        with the head-tied classes, and dims inside heads), ``"derived"`` (follows the classes it
        concatenates or flattens), ``"fixed"``. heads: number of heads (``"heads"`` only).
        reason: why the class is fixed or derived (empty for free classes).
    """

    groups: tuple[int, ...]
    labels: tuple[str, ...]
    size: int
    status: str
    heads: int = 0
    reason: str = ""


class _Classes:
    """Union-find over a recorded layout's groups, with heads, parts and fixed reasons per class."""

    def __init__(self, layout: Layout) -> None:
        sym = layout.info.get("symmetry")
        if not layout.info.get("recorded") or not isinstance(sym, Mapping):
            raise SpecError("not a recorded layout (ParameterGraph.from_module of a class-based module)")
        self.layout = layout
        n = len(layout.groups)
        parent = list(range(n))

        def find(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for a, b in sym["ties"]:
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
        self.find = find
        self.members: dict[int, list[int]] = {}
        for g in range(n):
            self.members.setdefault(find(g), []).append(g)
        heads = {int(k): int(v) for k, v in sym["heads"].items()}
        self.parts = {int(k): [int(x) for x in v] for k, v in sym["parts"].items()}
        self.labels = list(sym["labels"])
        self.fixed: dict[int, str] = {}
        self.heads_fixed: dict[int, str] = {}
        self.heads: dict[int, int] = {}
        self.derived: dict[int, tuple[str, list[int]]] = {}  # root -> ("parts", part roots) / ("flatten", [channel root])
        for g, why in sym["fixed"].items():
            self.fixed.setdefault(find(int(g)), why)
        for g, why in sym["heads_fixed"].items():
            self.heads_fixed.setdefault(find(int(g)), why)
        self.dims_fixed: dict[int, str] = {}
        for g, why in sym.get("dims_fixed", {}).items():
            self.dims_fixed.setdefault(find(int(g)), why)
        for gr in layout.groups:
            r = find(gr.index)
            if gr.kind in (NodeType.INPUT, NodeType.OUTPUT):
                self.fixed.setdefault(r, f"network {gr.kind.name.lower()}")
        for r in list(self.dims_fixed):
            if r not in {find(g) for g in heads}:
                self.fixed.setdefault(r, self.dims_fixed[r])
        for r, ms in self.members.items():
            hs = {heads[m] for m in ms if m in heads}
            if len(hs) > 1:
                self.fixed.setdefault(r, f"split into different numbers of heads {sorted(hs)}")
            elif hs:
                self.heads[r] = hs.pop()
            defs = []
            for m in ms:
                if m in self.parts:
                    defs.append(("parts", [find(p) for p in self.parts[m]]))
                gr = layout.groups[m]
                if gr.kind == NodeType.FLATTEN and gr.channel_group is not None:
                    defs.append(("flatten", [find(gr.channel_group)]))
            if defs:
                if any(d != defs[0] for d in defs) or r in self.heads or r in defs[0][1]:
                    self.fixed.setdefault(r, "concatenations or flattenings that disagree")
                self.derived[r] = defs[0]
        # head ties between classes
        hparent = {r: r for r in self.members}

        def hfind(i: int) -> int:
            while hparent[i] != i:
                hparent[i] = hparent[hparent[i]]
                i = hparent[i]
            return i

        for a, b in sym["head_ties"]:
            ra, rb = hfind(find(a)), hfind(find(b))
            if ra != rb:
                hparent[max(ra, rb)] = min(ra, rb)
        self.hfind = hfind
        # propagate fixedness to fixpoint
        changed = True
        while changed:
            changed = False
            for r, (_, srcs) in self.derived.items():
                if r in self.fixed:
                    for s in srcs:
                        if s not in self.fixed:
                            self.fixed[s] = f"part of fixed group {self.labels[r]}"
                            changed = True
            comps: dict[int, list[int]] = {}
            for r in self.members:
                comps.setdefault(hfind(r), []).append(r)
            for comp in comps.values():
                headed = [r for r in comp if r in self.heads]
                bad = [r for r in comp if r in self.fixed or r in self.heads_fixed]
                counts = {self.heads[r] for r in headed}
                if (bad or len(counts) > 1 or len(headed) != len(comp)) and len(comp) > 1:
                    why = (self.heads_fixed.get(bad[0]) or f"tied to fixed {self.labels[bad[0]]}") if bad else \
                        "heads of different sizes meet"
                    for r in comp:
                        if r not in self.heads_fixed:
                            self.heads_fixed[r] = why
                            changed = True

    def size(self, root: int) -> int:
        return self.layout.groups[root].size

    def status(self, r: int) -> tuple[str, str]:
        if r in self.fixed:
            return "fixed", self.fixed[r]
        if r in self.derived:
            kind, srcs = self.derived[r]
            return "derived", (f"concatenation of {len(srcs)} groups" if kind == "parts" else "flattened channels")
        if r in self.heads:
            if r in self.heads_fixed and r in self.dims_fixed:
                return "fixed", f"{self.heads_fixed[r]}; {self.dims_fixed[r]}"
            return "heads", "; ".join(x for x in (self.heads_fixed.get(r), self.dims_fixed.get(r)) if x)
        return "free", ""

    def sample(self, generator: torch.Generator | None) -> Perms:
        perms: dict[int, torch.Tensor] = {}
        head_perms: dict[int, torch.Tensor] = {}
        for r in sorted(self.members):
            status, _ = self.status(r)
            n = self.size(r)
            if status == "fixed" or status == "derived":
                continue
            if status == "heads":
                h = self.heads[r]
                dh = n // h
                key = self.hfind(r)
                if r in self.heads_fixed:
                    pi = torch.arange(h)
                else:
                    if key not in head_perms:
                        head_perms[key] = torch.randperm(h, generator=generator)
                    pi = head_perms[key]
                sigma = (torch.arange(dh).expand(h, dh) if r in self.dims_fixed else
                         torch.stack([torch.randperm(dh, generator=generator) for _ in range(h)]))
                perms[r] = (pi.unsqueeze(1) * dh + sigma[pi]).reshape(-1)
            else:
                perms[r] = torch.randperm(n, generator=generator)
        return self.expand(perms)

    def expand(self, perms: Mapping[int, torch.Tensor]) -> Perms:
        """Class permutations (free/headed roots) → a permutation for every group, derived ones included."""
        out: dict[int, torch.Tensor] = dict(perms)

        def of(r: int, depth: int = 0) -> torch.Tensor:
            if r in out:
                return out[r]
            status, _ = self.status(r)
            if status != "derived" or depth > 64:
                out[r] = torch.arange(self.size(r))
                return out[r]
            kind, srcs = self.derived[r]
            if kind == "flatten":
                gr = next(self.layout.groups[m] for m in self.members[r] if self.layout.groups[m].kind == NodeType.FLATTEN)
                pc = of(srcs[0], depth + 1)
                out[r] = (pc.unsqueeze(1) * gr.spatial + torch.arange(gr.spatial)).reshape(-1)
                return out[r]
            pieces, off = [], 0
            for s in srcs:
                p = of(s, depth + 1)
                pieces.append(p + off)
                off += len(p)
            out[r] = torch.cat(pieces) if pieces else torch.arange(self.size(r))
            return out[r]

        groups: Perms = {}
        for r, ms in self.members.items():
            p = of(r)
            for m in ms:
                groups[m] = p
        return groups

    def report(self) -> list[SymmetryGroup]:
        out = []
        for r in sorted(self.members):
            ms = self.members[r]
            kinds = {self.layout.groups[m].kind for m in ms}
            if kinds <= {NodeType.PARAMETER, NodeType.EMBEDDING, NodeType.UNUSED}:
                continue  # table rows: never neurons
            status, why = self.status(r)
            out.append(SymmetryGroup(tuple(ms), tuple(self.labels[m] for m in ms), self.size(r), status,
                                     self.heads.get(r, 0) if status == "heads" else 0, why))
        return out


def recorded_classes(layout: Layout) -> _Classes:
    return _Classes(layout)


def apply_recorded_permutation(layout: Layout, state_dict: Mapping[str, torch.Tensor], perms: Perms
                               ) -> dict[str, torch.Tensor]:
    """Permute every tensor along each axis by the permutation of the group the axis indexes."""
    bind = layout.info["symmetry"]["bind"]
    out: dict[str, torch.Tensor] = {}
    for name in state_dict.keys():
        t = state_dict[name]
        for axis, g in enumerate(bind.get(name, ())):
            if g is None:
                continue
            p = perms.get(int(g))
            if p is None or torch.equal(p, torch.arange(len(p))):
                continue
            t = t.index_select(axis, p)
        out[name] = t.contiguous() if t is not state_dict[name] else t
    return out


#: how a group may be read (dataflow ``uses``) for each transform to be a symmetry: ReLU/LeakyReLU and max
#: pooling commute with positive scaling, tanh/sine with negation; both with linear ops (averages, layout)
_SCALE_USES = frozenset({"contract", "relu", "leaky_relu", "dropout", "identity", "max_pool", "avg_pool", "layout"})
_FLIP_USES = frozenset({"contract", "tanh", "sine", "dropout", "identity", "avg_pool", "layout"})


def scaling_groups(layout: Layout, kind: str) -> tuple[list[int], dict[int, str]]:
    r"""Hidden groups of a recorded layout whose neurons admit sign flips (``kind="flip"``) or positive
    scaling (``kind="scale"``), and, for every other hidden group, why not.

    Neuron :math:`j` of group :math:`g` may be multiplied by :math:`\alpha_j` (incoming weights and bias, or
    the affine weight and bias of a norm right after the layer, which alone reads the layer's output) and
    its outgoing weights divided by it when: :math:`g` is produced by one dense layer (a weight and an
    optional bias, and optionally such a norm; no residual add, gate or other tie), every op reading it acts on each channel
    alone and commutes with the factor — ReLU/LeakyReLU and max pooling for :math:`\alpha > 0`, tanh/sine
    for :math:`\alpha = -1`, averages, dropout and reshapes for both — and the layers reading it contract it
    with a dense (groups = 1) weight, possibly after a flatten. Everything else is left alone and reported.
    """
    if kind not in ("flip", "scale"):
        raise ValueError(f"scaling_groups: kind must be 'flip' or 'scale', got {kind!r}")
    sym = layout.info.get("symmetry")
    if not layout.info.get("recorded") or not isinstance(sym, Mapping):
        raise SpecError("not a recorded layout (ParameterGraph.from_module of a class-based module)")
    if "uses" not in sym:
        raise SpecError("this recorded layout predates sign/scale analysis; record the module again")
    allowed = _SCALE_USES if kind == "scale" else _FLIP_USES
    uses: dict[int, list[tuple[str, int]]] = {}
    for k, v in sym["uses"].items():
        uses[int(k)] = [(u.rpartition("@")[0], int(u.rpartition("@")[2])) for u in v]
    made = {int(k): int(v) for k, v in sym.get("made", {}).items()}
    bind = sym["bind"]
    classes = _Classes(layout)
    flat_of: dict[int, list[int]] = {}
    for gr in layout.groups:
        if gr.kind == NodeType.FLATTEN and gr.channel_group is not None:
            flat_of.setdefault(gr.channel_group, []).append(gr.index)
    touching: dict[int, list[tuple[str, int]]] = {}  # group -> (tensor, axis) bound to it
    for name, axes in bind.items():
        for a, gb in enumerate(axes):
            if gb is not None:
                touching.setdefault(int(gb), []).append((name, a))
    eligible: list[int] = []
    why: dict[int, str] = {}
    for gr in layout.groups:
        g = gr.index
        if gr.kind != NodeType.HIDDEN:
            continue
        status, reason = classes.status(classes.find(g))
        if status != "free":
            why[g] = f"its permutation class is {status}" + (f" ({reason})" if reason else "")
            continue
        if classes.members[classes.find(g)] != [g]:
            why[g] = "tied to other groups (residual add, norm, gate, shared layer ...)"
            continue
        flats = flat_of.get(g, [])
        used = list(uses.get(g, ()))
        for f in flats:
            used += uses.get(f, [])
        made_slots = [sl for sl in layout.slots if sl.out_group == g and sl.role != "buffer"]
        roles = [sl.role for sl in made_slots]
        normed = "norm_weight" in roles  # an affine norm after the layer: the factor goes onto its weight and bias
        producer = made.get(g)
        labels = {u for u, _ in used}
        if normed:  # the layer's own output feeds the norm only; everything after the norm must commute
            before = {u for u, src in used if src == producer}
            after = {u for u, src in used if src != producer}
            if producer is None or before != {"norm"} or "norm" in after:
                why[g] = "read by something other than its norm before the norm"
                continue
            labels = after
        bad = sorted(labels - allowed)
        if bad:
            why[g] = "read by " + ", ".join(x.removeprefix("other:") for x in bad)
            continue
        if "contract" not in labels:
            why[g] = "no dense layer reads it"
            continue
        weights = [sl for sl in made_slots if sl.role == "weight"]
        extra = [r for r in roles if r not in ("weight", "bias", "norm_weight", "norm_bias", "running_mean",
                                                "running_var")]
        if len(weights) != 1 or weights[0].out_parts or (weights[0].in_major and weights[0].groups != 1) or extra \
                or any(roles.count(r) > 1 for r in set(roles)):
            why[g] = "not produced by one dense layer (and an affine norm) alone"
            continue
        ok = True
        for h in [g, *flats]:
            for name, a in touching.get(h, ()):
                sl = layout.slot_by_name.get(name)
                own = sl is not None and h == g and sl.out_group == g and (
                    sl.role != "weight" or a == (1 if sl.in_major else 0))
                consumer = sl is not None and sl.role == "weight" and sl.in_group == h and sl.groups == 1 and \
                    a == (0 if sl.in_major else 1)
                ok = ok and (own or consumer)
        if not ok:
            why[g] = "a tensor uses it other than as a layer's output or a dense layer's input"
            continue
        eligible.append(g)
    return eligible, why


def apply_recorded_scaling(layout: Layout, state_dict: Mapping[str, torch.Tensor], factors: Mapping[int, torch.Tensor]
                           ) -> dict[str, torch.Tensor]:
    """Multiply each listed group's incoming weights and bias by ``factors[g]`` and divide its outgoing
    weights (flattened consumers by the factor repeated over positions). Only valid for
    :func:`scaling_groups`; exact for factors ±1 and powers of two."""
    bind = layout.info["symmetry"]["bind"]
    flat_parent = {gr.index: gr for gr in layout.groups if gr.kind == NodeType.FLATTEN and gr.channel_group in factors}
    normed = {sl.out_group for sl in layout.slots if sl.role == "norm_weight"}
    out: dict[str, torch.Tensor] = {}
    for name in state_dict.keys():
        t = state_dict[name]
        sl = layout.slot_by_name.get(name)
        for a, gb in enumerate(bind.get(name, ())):
            if gb is None or sl is None:
                continue
            gb = int(gb)
            if gb in factors:
                f = factors[gb]
                if sl.out_group == gb and sl.role in ("running_mean", "running_var"):
                    continue  # statistics of the layer's output: unchanged (the factor goes after the norm)
                if sl.out_group == gb and gb in normed and sl.role in ("weight", "bias"):
                    continue  # the norm's affine weight and bias carry the factor instead
                producer = sl.out_group == gb and (sl.role != "weight" or a == (1 if sl.in_major else 0))
            elif gb in flat_parent:
                gr = flat_parent[gb]
                f, producer = factors[gr.channel_group].repeat_interleave(gr.spatial), False  # type: ignore[index]
            else:
                continue
            shape = [1] * t.dim()
            shape[a] = -1
            f = f.to(t.dtype).reshape(shape)
            t = t * f if producer else t / f
        out[name] = t
    return out


def align_recorded(layout: Layout, sd_a: Mapping[str, torch.Tensor], sd_b: Mapping[str, torch.Tensor], *,
                   max_iter: int = 100, seed: int = 0) -> Perms:
    r"""Git Re-Basin weight matching on a recorded layout: the per-group permutations of ``b`` that best
    match ``a``.

    Coordinate ascent over the free classes in a seeded random order: for class :math:`r`, solve
    :math:`\max_P \langle A_r, P B_r\rangle` where :math:`A_r`/:math:`B_r` stack every tensor axis bound
    to a group of the class (whole, or its slice inside a concatenation; a flattened axis by channel), with
    ``b``'s other axes at their current permutations; stop when a sweep changes nothing. Classes split into
    heads, derived and fixed classes are not matched (identity, or derived from their parts).
    """
    from scipy.optimize import linear_sum_assignment

    classes = _Classes(layout)
    bind = layout.info["symmetry"]["bind"]
    find = classes.find
    free = [r for r in sorted(classes.members) if classes.status(r)[0] == "free"]
    perms: dict[int, torch.Tensor] = {r: torch.arange(classes.size(r)) for r in free}
    names = [n for n in sd_a.keys() if bind.get(n) and sd_a[n].is_floating_point()
             and any(g is not None for g in bind[n])]
    a64 = {n: sd_a[n].detach().to(torch.float64) for n in names}
    b64 = {n: sd_b[n].detach().to(torch.float64) for n in names}

    def slices(g: int, r: int) -> list[tuple[int, int, int]]:
        """(offset, length, spatial) pieces of group ``g``'s axis that class ``r`` permutes."""
        if find(g) == r:
            return [(0, len_of(g), 1)]
        gr = layout.groups[g]
        if gr.kind == NodeType.FLATTEN and gr.channel_group is not None and find(gr.channel_group) == r:
            return [(0, layout.groups[gr.channel_group].size, gr.spatial)]
        out, off = [], 0
        for p in classes.parts.get(g, []):
            out += [(off + o, n, sp) for o, n, sp in slices(p, r)]
            off += len_of(p)
        return out

    def len_of(g: int) -> int:
        return layout.groups[g].size

    rng = np.random.default_rng(seed)
    for _ in range(max_iter):
        changed = False
        for r in rng.permutation(free).tolist():
            n = classes.size(r)
            group_perms = classes.expand({k: v for k, v in perms.items() if k != r})
            cost = torch.zeros(n, n, dtype=torch.float64)
            for name in names:
                b_now = b64[name]
                for axis, g in enumerate(bind[name]):
                    if g is not None and not any(True for _ in slices(g, r)):
                        p = group_perms.get(int(g))
                        if p is not None:
                            b_now = b_now.index_select(axis, p)
                for axis, g in enumerate(bind[name]):
                    if g is None:
                        continue
                    for off, length, spatial in slices(int(g), r):
                        width = length * spatial
                        ta = a64[name].narrow(axis, off, width).movedim(axis, 0).reshape(length, -1)
                        tb = b_now.narrow(axis, off, width).movedim(axis, 0).reshape(length, -1)
                        cost += ta @ tb.T
            _, col = linear_sum_assignment(cost.numpy(), maximize=True)
            new = torch.as_tensor(col, dtype=torch.long)
            if not torch.equal(new, perms[r]):
                perms[r], changed = new, True
        if not changed:
            break
    return classes.expand(perms)


def recorded_layout(module: nn.Module, example_input: Any = None) -> Layout:
    """The recorded layout of ``module`` (one forward pass; pack 1: tables are irrelevant to symmetries)."""
    from weightzoo.zoo.arch import class_reference
    from weightzoo.zoo.graphs.dataflow import layout_from_plan, record_plan

    return layout_from_plan(record_plan(module, example_input, pack=1, strict=False,
                                        reference=class_reference(module)))


def permute_recorded(module: nn.Module, generator: torch.Generator | None = None, example_input: Any = None, *,
                     layout: Layout | None = None) -> tuple[nn.Module, Perms]:
    """A random function-preserving permutation of ``module`` (a new module) and the per-group permutations."""
    layout = layout or recorded_layout(module, example_input)
    perms = _Classes(layout).sample(generator)
    new = copy.deepcopy(module)
    new.load_state_dict(apply_recorded_permutation(layout, module.state_dict(), perms), strict=True)
    return new, perms


def symmetry_groups(module: nn.Module | Layout, example_input: Any = None) -> list[SymmetryGroup]:
    """What can be permuted in ``module`` and why the rest cannot, from one recorded forward pass.

    One :class:`SymmetryGroup` per class of tied neuron groups (table rows of plain parameters and
    embeddings are left out). Works for any module; ``example_input`` as in
    :meth:`~weightzoo.zoo.graphs.ParameterGraph.from_module`.
    """
    layout = module if isinstance(module, Layout) else recorded_layout(module, example_input)
    return _Classes(layout).report()


@dataclass(frozen=True)
class SymmetryCheck:
    """The result of :func:`check_symmetry`: whether outputs agree, and by how much they differ."""

    preserved: bool
    max_abs_diff: float
    outputs: int
    atol: float
    rtol: float

    def __bool__(self) -> bool:
        return self.preserved


def check_symmetry(module: nn.Module, transform: Callable[[nn.Module], nn.Module] | nn.Module, example_input: Any,
                   *, atol: float = 1e-5, rtol: float = 1e-4) -> SymmetryCheck:
    """Run ``module`` and ``transform(module)`` (or a given transformed module) on ``example_input`` in
    eval mode and compare every floating output tensor (``allclose`` with ``atol``/``rtol``).

    ``transform`` is typically ``lambda m: permute_hidden(m, gen, example_input=x)``; the check is
    falsifiable: a permutation that is not a symmetry makes it fail (see the negative controls in the tests).
    """
    other = transform if isinstance(transform, nn.Module) else transform(module)
    a, b = _outputs(module, example_input), _outputs(other, example_input)
    if len(a) != len(b) or any(x.shape != y.shape for x, y in zip(a, b)):
        return SymmetryCheck(False, float("inf"), len(a), atol, rtol)
    diff = max((float((x - y).abs().max()) for x, y in zip(a, b) if x.numel()), default=0.0)
    ok = all(torch.allclose(x, y, atol=atol, rtol=rtol) for x, y in zip(a, b))
    return SymmetryCheck(ok, diff, len(a), atol, rtol)


def _outputs(m: nn.Module, example_input: Any) -> list[torch.Tensor]:
    from weightzoo.zoo.arch.example_inputs import example_inputs

    args, kwargs = example_inputs(m, example_input, None)
    training = {x: x.training for x in m.modules()}
    m.eval()
    try:
        with torch.no_grad():
            out = m(*args, **kwargs)
    finally:
        for x, flag in training.items():
            x.train(flag)
    flat: list[torch.Tensor] = []

    def walk(o: Any, depth: int = 0) -> None:
        if isinstance(o, torch.Tensor):
            if o.is_floating_point():
                flat.append(o.detach().to(torch.float64))
        elif depth < 6 and isinstance(o, Mapping):
            for v in o.values():
                walk(v, depth + 1)
        elif depth < 6 and isinstance(o, list | tuple):
            for v in o:
                walk(v, depth + 1)

    walk(out)
    return flat


__all__ = ["SymmetryCheck", "SymmetryGroup", "align_recorded", "apply_recorded_permutation", "apply_recorded_scaling",
           "check_symmetry", "permute_recorded", "recorded_layout", "scaling_groups", "symmetry_groups"]
