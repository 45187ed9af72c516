r"""Hidden-neuron permutations of MLPs, CNNs and transformers: they leave the network's function unchanged.

* :func:`permute_hidden` — permute hidden neurons/channels. Neurons tied by residual connections share
  one permutation (the residual stream); batch/layer/group-norm parameters and running statistics move
  with their channels; grouped convolutions and group norms only admit permutations that keep their
  groups together (a permutation of whole groups, shared by a grouped conv's input and output channels,
  composed with free permutations inside each group; when several group structures meet on the same
  channels only the within-group part is kept). Input and output neurons, and neurons next to a layer
  a graph skipped, never move.
Sign flips and positive scaling live in :mod:`.sign_scale`, weight matching (Git Re-Basin) in :mod:`.align`.

Transformers (Hugging Face families, ``nn.MultiheadAttention``, ``nn.TransformerEncoderLayer``):
:func:`permute_hidden` permutes whole heads, q/k dims inside heads (not under rotary embeddings), v/o
dims inside heads, MLP hidden units and the residual stream — see :mod:`weightzoo.zoo.symmetry.transformer`.
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

import torch
from torch import nn

from weightzoo.errors import ShapeMismatchError, SpecError, UnsupportedLayerError
from weightzoo.zoo.arch import HF_FORMAT, TORCH_FORMAT, spec_from_module
from weightzoo.zoo.graphs.layout import Layout, flat_in_index, layout_of
from weightzoo.zoo.graphs.vocab import NodeType

Perms = dict[int, torch.Tensor]


def _layout_for(spec: Mapping[str, Any], sd: Mapping[str, torch.Tensor]) -> Layout:
    transformer = isinstance(spec, Mapping) and spec.get("format") in (HF_FORMAT, TORCH_FORMAT)
    return layout_of(spec, list(sd.keys()) if transformer else None)


def fast_spec(module: nn.Module) -> dict[str, Any] | None:
    """The spec of a module the spec/family fast paths cover (``None`` for other modules)."""
    from weightzoo.zoo.graphs.hf_families import covered_module_spec

    spec = covered_module_spec(module)
    if spec is not None:
        return spec
    try:
        return spec_from_module(module)
    except UnsupportedLayerError:
        return None


def _resolve(obj: Any, spec: Mapping[str, Any] | None) -> tuple[Layout, dict[str, torch.Tensor]]:
    if isinstance(obj, nn.Module):
        if spec is None:
            from weightzoo.zoo.graphs.hf_families import module_spec

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
    if layout.info.get("recorded"):
        raise UnsupportedLayerError("<root>", str(layout.spec.get("module")),
                                    f"{what} covers MLPs and CNNs built from specs; recorded modules get "
                                    "permute_hidden and align")
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
        from .transformer import apply_transformer_permutation

        return apply_transformer_permutation(layout, state_dict, perms)
    if layout.info.get("recorded"):
        from .any_module import apply_recorded_permutation

        return apply_recorded_permutation(layout, state_dict, perms)
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
                   spec: Mapping[str, Any] | None = None, *, return_perms: bool = False,
                   example_input: Any = None) -> Any:
    """A random function-preserving permutation of hidden neurons/channels.

    Args:
        model_or_state_dict: ANY ``nn.Module``, or a state dict (then ``spec`` is needed: a spec, or the
            recorded layout ``ParameterGraph.from_module(...).spec`` of a class-based module).
        generator: the ``torch.Generator`` that draws the permutation (seed it for reproducibility).
        spec: the architecture spec (defaults to ``spec_from_module`` for modules).
        return_perms: also return the per-group permutations (gather convention).
        example_input: for modules outside the spec/family fast paths, the input of the recorded forward
            pass whose data flow gives the symmetries (:mod:`.any_module`; derived when not given).

    Class-based modules (residuals, attention, concatenations, gates, plain parameters) get every
    permutation their recorded data flow admits: tied channels share one, heads move whole (q, k, v
    together), concatenations follow their parts; :func:`~.any_module.symmetry_groups` says what moves.

    Transformers (``hf``/``torch`` specs, Hugging Face models of covered families,
    ``nn.MultiheadAttention``, ``nn.TransformerEncoderLayer``) get whole-head, within-head (q/k only
    without rotary; v/o always), MLP-hidden and residual-stream permutations
    (:func:`~weightzoo.zoo.symmetry.transformer.sample_transformer_perms`).

    Returns the same kind it was given (a new module, or a new state dict), or ``(that, perms)``.
    """
    if isinstance(model_or_state_dict, nn.Module) and spec is None and fast_spec(model_or_state_dict) is None:
        from .any_module import permute_recorded

        new, perms = permute_recorded(model_or_state_dict, generator, example_input)
        return (new, perms) if return_perms else new
    layout, sd = _resolve(model_or_state_dict, spec)
    if layout.info.get("recorded"):
        from .any_module import recorded_classes

        perms = recorded_classes(layout).sample(generator)
        new = _rebuild(model_or_state_dict, apply_permutation(layout, sd, perms))
        return (new, perms) if return_perms else new
    if layout.is_transformer:
        from .transformer import sample_transformer_perms

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


__all__ = ["apply_permutation", "fast_spec", "node_permutation", "permute_hidden"]
