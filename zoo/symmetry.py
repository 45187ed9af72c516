r"""Weight-space symmetries of MLPs and CNNs: transformations that leave the network's function unchanged.

* :func:`permute_hidden` — permute hidden neurons/channels. Neurons tied by residual connections share
  one permutation (the residual stream); batch/layer/group-norm parameters and running statistics move
  with their channels; grouped convolutions and group norms only admit permutations that keep their
  groups together (a permutation of whole groups, shared by a grouped conv's input and output channels,
  composed with free permutations inside each group; when several group structures meet on the same
  channels only the within-group part is kept). Input and output neurons, and neurons next to a layer
  a graph skipped, never move.
* :func:`flip_signs` — :math:`\sigma(-x) = -\sigma(x)` for odd activations (tanh, sine, identity), so
  negating a neuron's pre-activation and its outgoing weights is a symmetry.
* :func:`scale` — :math:`\sigma(\alpha x) = \alpha\sigma(x)` for :math:`\alpha > 0` and ReLU/LeakyReLU
  (and identity), so scaling the pre-activation by α and the outgoing weights by 1/α is a symmetry.
* :func:`align` — Git Re-Basin weight matching (Ainsworth et al., 2023): the permutation of ``b`` that
  maximises :math:`\sum_\ell \langle W^a_\ell, P_\ell W^b_\ell P_{\ell-1}^\top\rangle`, by coordinate
  ascent with one linear assignment (``scipy.optimize.linear_sum_assignment``) per neuron space.

Where sign/scale symmetries hold, exactly: a neuron qualifies when it is hidden, not on a residual stream,
its activation is odd (flip) or positively homogeneous (scale), global max pooling blocks flips, and no
normalization comes after its activation. When a normalization comes *before* the activation, the
factor goes onto that norm's affine weight and bias (scaling the weights feeding a batch norm would be
undone by the normalization), so a non-affine norm before the activation disqualifies the neuron.

Transformers (Hugging Face families, ``nn.MultiheadAttention``, ``nn.TransformerEncoderLayer``):
:func:`permute_hidden` permutes whole heads, q/k dims inside heads (not under rotary embeddings), v/o
dims inside heads, MLP hidden units and the residual stream — see :mod:`weightzoo.zoo.transformer_symmetry`.
Sign/scale symmetries and :func:`align` cover MLPs and CNNs only.

Permutations use the gather convention: ``perm[j]`` is the old index of new neuron ``j``
(``W_new = W_old[perm]``); they are returned per neuron group (``Layout.groups`` index), flatten
groups included, so :func:`node_permutation` maps them onto ParameterGraph nodes.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ShapeMismatchError, SpecError, UnsupportedLayerError
from .arch import HF_FORMAT, TORCH_FORMAT, spec_from_module
from .graphs.layout import Layout, flat_in_index, layout_of
from .graphs.vocab import Activation, NodeType, Pool

Perms = dict[int, torch.Tensor]


def _layout_for(spec: Mapping[str, Any], sd: Mapping[str, torch.Tensor]) -> Layout:
    transformer = isinstance(spec, Mapping) and spec.get("format") in (HF_FORMAT, TORCH_FORMAT)
    return layout_of(spec, list(sd.keys()) if transformer else None)


def _resolve(obj: Any, spec: Mapping[str, Any] | None) -> tuple[Layout, dict[str, torch.Tensor]]:
    if isinstance(obj, nn.Module):
        if spec is None:
            from .graphs.hf_families import module_spec

            spec = module_spec(obj) or spec_from_module(obj)
        sd = dict(obj.state_dict())
        return _layout_for(spec, sd), sd
    if isinstance(obj, Mapping):
        if spec is None:
            raise SpecError("a state dict carries no architecture: pass spec= (see weightzoo.zoo.arch)")
        sd = {k: obj[k] for k in obj.keys()}
        return _layout_for(spec, sd), sd
    raise TypeError(f"expected an nn.Module or a state dict, got {type(obj).__name__}")


def _mlp_cnn_only(layout: Layout, what: str) -> None:
    if layout.is_transformer:
        raise UnsupportedLayerError("<root>", str(layout.info.get("family")),
                                    f"{what} covers MLPs and CNNs; permute_hidden covers transformers")


def _rebuild(obj: Any, sd: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, nn.Module):
        new = copy.deepcopy(obj)
        new.load_state_dict(sd, strict=True)
        return new
    return sd


# --- neuron spaces -------------------------------------------------------------------------------------


class _Spaces:
    """Union of groups that must share a permutation (residual streams), and their block constraints."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        parent = list(range(len(layout.groups)))

        def find(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for st in layout.struct:
            if st.edge_type.name == "RESIDUAL":
                parent[find(st.src_group)] = find(st.dst_group)
        self.find = find
        self.members: dict[int, list[int]] = {}
        for g in layout.groups:
            if g.kind != NodeType.FLATTEN:
                self.members.setdefault(find(g.index), []).append(g.index)
        self.fixed = {r for r, ms in self.members.items()
                      if any(layout.groups[m].kind in (NodeType.INPUT, NodeType.OUTPUT) or layout.groups[m].fixed
                             for m in ms)}
        self.counts: dict[int, set[int]] = {}
        links: dict[int, set[int]] = {}
        for in_g, out_g, n in layout.grouped:
            a, b = find(flat_in_index(layout, in_g)[0]), find(out_g)
            self.counts.setdefault(a, set()).add(n)
            self.counts.setdefault(b, set()).add(n)
            links.setdefault(a, set()).add(b)
            links.setdefault(b, set()).add(a)
        for gi, n in layout.group_norms:
            if layout.groups[gi].kind == NodeType.FLATTEN:
                self.fixed.add(find(flat_in_index(layout, gi)[0]))
            else:
                self.counts.setdefault(find(gi), set()).add(n)
        # connected components of block ties
        self.components: list[list[int]] = []
        seen: set[int] = set()
        for r in self.counts:
            if r in seen:
                continue
            comp, stack = [], [r]
            while stack:
                x = stack.pop()
                if x in seen:
                    continue
                seen.add(x)
                comp.append(x)
                stack.extend(links.get(x, ()))
            self.components.append(sorted(comp))

    def size(self, root: int) -> int:
        return self.layout.groups[root].size

    def free(self) -> list[int]:
        """Spaces a plain (unconstrained) permutation may move."""
        return sorted(r for r in self.members if r not in self.fixed and r not in self.counts)


def _block_perm(size: int, blocks: int, rho: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
    s = size // blocks
    within = torch.stack([torch.randperm(s, generator=g) for _ in range(blocks)])  # [blocks, s]
    return (rho.unsqueeze(1) * s + within[rho]).reshape(-1)


def _sample(spaces: _Spaces, g: torch.Generator | None) -> dict[int, torch.Tensor]:
    out: dict[int, torch.Tensor] = {}
    for r in spaces.free():
        out[r] = torch.randperm(spaces.size(r), generator=g)
    for comp in spaces.components:
        counts = set().union(*(spaces.counts[r] for r in comp))
        shared = len(counts) == 1 and not any(r in spaces.fixed for r in comp)
        rho = torch.randperm(next(iter(counts)), generator=g) if shared else None
        for r in comp:
            if r in spaces.fixed:
                continue
            blocks = next(iter(counts)) if shared else math.lcm(*spaces.counts[r])
            out[r] = _block_perm(spaces.size(r), blocks, rho if rho is not None else torch.arange(blocks), g)
    return out


def _group_perms(spaces: _Spaces, space_perms: dict[int, torch.Tensor]) -> Perms:
    layout = spaces.layout
    perms: Perms = {}
    for gr in layout.groups:
        if gr.kind == NodeType.FLATTEN:
            continue
        p = space_perms.get(spaces.find(gr.index))
        perms[gr.index] = p if p is not None else torch.arange(gr.size)
    for gr in layout.groups:
        if gr.kind == NodeType.FLATTEN:
            pc = perms[gr.channel_group]  # type: ignore[index]
            perms[gr.index] = (pc.unsqueeze(1) * gr.spatial + torch.arange(gr.spatial)).reshape(-1)
    return perms


def _dense(layout: Layout, state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Grouped conv weights expanded to block-diagonal dense ``[out, in, k...]`` (so any permutation applies)."""
    out = dict(state_dict)
    for s in layout.slots:
        if s.role == "weight" and s.groups > 1:
            t = state_dict[s.name]
            n_out, cpg = t.shape[0], t.shape[1]
            opg = n_out // s.groups
            d = t.new_zeros((n_out, cpg * s.groups, *t.shape[2:]))
            for b in range(s.groups):
                d[b * opg:(b + 1) * opg, b * cpg:(b + 1) * cpg] = t[b * opg:(b + 1) * opg]
            out[s.name] = d
    return out


def apply_permutation(layout: Layout, state_dict: Mapping[str, torch.Tensor], perms: Perms, *,
                      dense: bool = False) -> dict[str, torch.Tensor]:
    """Permute every tensor of ``state_dict`` by per-group gather permutations (missing groups: identity).

    Grouped convolutions need block-consistent permutations (as :func:`permute_hidden` samples);
    others raise :class:`~weightzoo.errors.ShapeMismatchError`.
    """
    if layout.is_transformer:
        from .transformer_symmetry import apply_transformer_permutation

        return apply_transformer_permutation(layout, state_dict, perms)
    out = dict(state_dict)

    def perm(gi: int) -> torch.Tensor | None:
        p = perms.get(gi)
        return None if p is None or torch.equal(p, torch.arange(len(p))) else p

    for s in layout.slots:
        t = state_dict[s.name]
        if s.role == "buffer":
            continue
        if s.role != "weight":
            p = perm(s.out_group)  # type: ignore[arg-type]
            out[s.name] = t[p] if p is not None else t
            continue
        po, pi = perm(s.out_group), perm(s.in_group)  # type: ignore[arg-type]
        if po is not None:
            t = t[po]
        if pi is not None:
            if s.groups == 1 or dense:
                t = t[:, pi]
            else:
                n_out, cpg = t.shape[0], t.shape[1]
                opg = n_out // s.groups
                old_o = po if po is not None else torch.arange(n_out)
                new_o = torch.arange(n_out)
                cols = (new_o // opg).unsqueeze(1) * cpg + torch.arange(cpg)  # new input channels per row
                local = pi[cols] - (old_o // opg).unsqueeze(1) * cpg
                if bool((local < 0).any() or (local >= cpg).any()):
                    raise ShapeMismatchError(f"{s.name}: permutation breaks the conv's {s.groups} groups")
                idx = local.reshape(n_out, cpg, *([1] * (t.dim() - 2))).expand_as(t)
                t = torch.gather(t, 1, idx)
        out[s.name] = t.contiguous()
    return out


def permute_hidden(model_or_state_dict: Any, generator: torch.Generator | None = None,
                   spec: Mapping[str, Any] | None = None, *, return_perms: bool = False) -> Any:
    """A random function-preserving permutation of hidden neurons/channels.

    Args:
        model_or_state_dict: an ``nn.Sequential``-style module or a state dict (then ``spec`` is needed).
        generator: the ``torch.Generator`` that draws the permutation (seed it for reproducibility).
        spec: the architecture spec (defaults to ``spec_from_module`` for modules).
        return_perms: also return the per-group permutations (gather convention).

    Transformers (``hf``/``torch`` specs, Hugging Face models of covered families,
    ``nn.MultiheadAttention``, ``nn.TransformerEncoderLayer``) get whole-head, within-head (q/k only
    without rotary; v/o always), MLP-hidden and residual-stream permutations
    (:func:`~weightzoo.zoo.transformer_symmetry.sample_transformer_perms`).

    Returns the same kind it was given (a new module, or a new state dict), or ``(that, perms)``.
    """
    layout, sd = _resolve(model_or_state_dict, spec)
    if layout.is_transformer:
        from .transformer_symmetry import sample_transformer_perms

        perms = sample_transformer_perms(layout, generator)
        new = _rebuild(model_or_state_dict, apply_permutation(layout, sd, perms))
        return (new, perms) if return_perms else new
    spaces = _Spaces(layout)
    perms = _group_perms(spaces, _sample(spaces, generator))
    new = _rebuild(model_or_state_dict, apply_permutation(layout, sd, perms))
    return (new, perms) if return_perms else new


def node_permutation(layout: Layout, perms: Perms) -> torch.Tensor:
    """``m`` with ``m[old_node] = new_node``: the ParameterGraph relabelling a permutation induces."""
    m = torch.arange(layout.num_nodes)
    for gi, p in perms.items():
        start = layout.groups[gi].start
        m[start + p] = start + torch.arange(len(p))
    return m


# --- sign flips and positive scaling -------------------------------------------------------------------

_ODD = {Activation.NONE, Activation.TANH, Activation.SINE}
_HOMOGENEOUS = {Activation.NONE, Activation.RELU, Activation.LEAKY_RELU}


def eligible_groups(layout: Layout, kind: str) -> list[int]:
    """Hidden groups whose neurons admit a sign flip (``kind="flip"``) or positive scaling (``"scale"``)."""
    _mlp_cnn_only(layout, "sign flips and scaling")
    acts = _ODD if kind == "flip" else _HOMOGENEOUS
    on_stream = {st.src_group for st in layout.struct if st.edge_type.name == "RESIDUAL"}
    on_stream |= {st.dst_group for st in layout.struct if st.edge_type.name == "RESIDUAL"}
    flat_of = {g.channel_group: g for g in layout.groups if g.kind == NodeType.FLATTEN}
    blocked_norm = {gi for gi, _ in layout.group_norms}
    out = []
    for g in layout.groups:
        f = flat_of.get(g.index)
        ok = (g.kind == NodeType.HIDDEN and not g.fixed and g.index not in on_stream and g.act in acts
              and not (kind == "flip" and g.pool == Pool.MAX) and not g.norm_after_act
              and (g.norm.name == "NONE" or g.norm_affine)
              and (f is None or (f.norm.name == "NONE" and f.act == Activation.NONE and f.index not in blocked_norm)))
        if ok:
            out.append(g.index)
    return out


def apply_scaling(layout: Layout, state_dict: Mapping[str, torch.Tensor], factors: dict[int, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Multiply each listed group's pre-activation by ``factors[g]`` and divide its outgoing weights.

    Only valid for :func:`eligible_groups`; exact up to rounding (factors ±1 and powers of two are exact).
    """
    out = dict(state_dict)
    groups = layout.groups
    for s in layout.slots:
        if s.role in ("buffer", "running_mean", "running_var"):
            continue
        t = out[s.name]
        f_out = factors.get(s.out_group)  # type: ignore[arg-type]
        if s.role in ("bias", "weight") and f_out is not None and groups[s.out_group].norm.name == "NONE":  # type: ignore[index]
            t = t * f_out.to(t.dtype).reshape(-1, *([1] * (t.dim() - 1)))
        if s.role in ("norm_weight", "norm_bias") and f_out is not None:
            t = t * f_out.to(t.dtype)
        if s.role == "weight":
            cg, hw = flat_in_index(layout, s.in_group)  # type: ignore[arg-type]
            f_in = factors.get(cg)
            if f_in is not None:
                f_in = f_in.repeat_interleave(hw)
                n_out, cpg = t.shape[0], t.shape[1]
                cols = (torch.arange(n_out) // (n_out // s.groups)).unsqueeze(1) * cpg + torch.arange(cpg)
                t = t / f_in[cols].to(t.dtype).reshape(n_out, cpg, *([1] * (t.dim() - 2)))
        out[s.name] = t
    return out


def flip_signs(model_or_state_dict: Any, generator: torch.Generator | None = None,
               spec: Mapping[str, Any] | None = None, *, return_signs: bool = False) -> Any:
    """Negate a random subset of eligible hidden neurons (odd activations; see the module docstring).

    Returns the same kind it was given, or ``(that, signs)`` with ``signs[group]`` a ±1 tensor.
    """
    layout, sd = _resolve(model_or_state_dict, spec)
    signs = {gi: torch.randint(0, 2, (layout.groups[gi].size,), generator=generator).to(torch.float64) * 2 - 1
             for gi in eligible_groups(layout, "flip")}
    new = _rebuild(model_or_state_dict, apply_scaling(layout, sd, signs))
    return (new, signs) if return_signs else new


def scale(model_or_state_dict: Any, generator: torch.Generator | None = None, spec: Mapping[str, Any] | None = None,
          *, low: float = 0.5, high: float = 2.0, return_scales: bool = False) -> Any:
    """Scale eligible hidden neurons (ReLU/LeakyReLU/identity) by random α ∈ [low, high] (log-uniform).

    Incoming weights and bias (or the preceding norm's affine weight and bias) are multiplied by α,
    outgoing weights divided by α. Returns the same kind it was given, or ``(that, scales)``.
    """
    if not 0 < low <= high:
        raise ValueError(f"scale: need 0 < low <= high, got low={low}, high={high}")
    layout, sd = _resolve(model_or_state_dict, spec)
    factors = {}
    for gi in eligible_groups(layout, "scale"):
        u = torch.rand(layout.groups[gi].size, generator=generator, dtype=torch.float64)
        factors[gi] = torch.exp(math.log(low) + u * (math.log(high) - math.log(low)))
    new = _rebuild(model_or_state_dict, apply_scaling(layout, sd, factors))
    return (new, factors) if return_scales else new


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


def align(a: Any, b: Any, spec: Mapping[str, Any] | None = None, *, max_iter: int = 100,
          seed: int = 0) -> tuple[Any, Perms]:
    r"""Permute ``b``'s hidden neurons to best match ``a`` (Git Re-Basin weight matching).

    Coordinate ascent: for each neuron space in a seeded random order, solve the linear assignment
    :math:`\max_P \langle A, P B\rangle` where ``A``/``B`` stack every tensor slice the space indexes (its
    rows in the layer it feeds out of, its columns in the next layer, biases and norm parameters), with
    ``b``'s other spaces already permuted; stop when a sweep changes nothing (or after ``max_iter``).
    Residual streams are one space. Channels under grouped convs or group norms are matched as
    :func:`permute_hidden` permutes them: whole groups (one assignment over groups, valued by the best
    assignment inside each pair of groups) where all their group structures agree, else inside groups.

    Returns ``(aligned b, perms)`` — ``aligned`` is the same kind as ``b``.
    """
    from scipy.optimize import linear_sum_assignment

    layout, sd_a = _resolve(a, spec)
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


__all__ = [
    "align", "apply_permutation", "apply_scaling", "eligible_groups", "flip_signs", "node_permutation",
    "permute_hidden", "scale",
]
