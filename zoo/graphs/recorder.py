"""Recording a network's operations: one eager forward pass (module hooks + a ``TorchFunctionMode``), or a
walk of a ``torch.export`` graph. Both produce the same raw node list that
:class:`~weightzoo.zoo.graphs.ComputeGraph` turns into a graph.

How the eager recorder decides what a node is:

* a call of a *leaf* module (conv, linear, embedding, norms, attention, activation and identity modules)
  is one node owning the module's parameters; the torch functions it calls inside are not nodes (but
  parameters of other modules used inside are still attributed to it);
* every other torch function/method whose tensor inputs include a tensor produced by a node is a node;
  a function of parameters only (``cls_token.expand(...)``, ``weight.t()``) is no node: its output
  carries the parameters to the first data operation that consumes it, which then owns them;
* functions of constants only (``arange`` position ids, masks built from shapes) are not nodes;
* dtype/device/layout changes (``to``, ``contiguous``, ``clone`` ...) pass the producer through.

Producers are tracked per tensor object (``id`` plus a weak reference, so a recycled id is never
mistaken for a live tensor); an in-place op, ``setitem`` included, makes its node the new producer of
the tensor and of the tensor it is a view of.
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from weightzoo.errors import ComputeGraphError

from .ops import (
    ACTIVATION_KEYWORDS,
    PASSTHROUGH,
    OpType,
    arg_at,
    as_ints,
    classify,
    conv_op,
    normalize_name,
    shape_of,
)


@dataclass
class RawNode:
    """One recorded operation before pruning (indices refer to the recording order)."""

    op: OpType
    fn: str
    path: str
    inputs: list[int]
    params: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)
    param_ids: list[int] = field(default_factory=list)
    out_shapes: list[tuple[int, ...]] = field(default_factory=list)
    attrs: dict[str, Any] = field(default_factory=dict)
    #: with ``keep_args``: the call's arguments, tensors replaced by references (:func:`EagerRecorder.describe`)
    detail: dict[str, Any] | None = None


@dataclass
class Recording:
    """What a backend hands to ComputeGraph: nodes in execution (topological) order and parameter usage."""

    nodes: list[RawNode]
    param_names: dict[int, list[str]]  # tensor id -> every name it has in the module (tied weights: several)
    input_shapes: list[tuple[int, ...]]


def _tensors(obj: Any, depth: int = 0) -> Iterator[torch.Tensor]:
    """Every tensor in nested tuples/lists/dicts (HF ModelOutputs are dicts), in order."""
    if isinstance(obj, torch.Tensor):
        yield obj
    elif depth < 6 and isinstance(obj, list | tuple):
        for x in obj:
            yield from _tensors(x, depth + 1)
    elif depth < 6 and isinstance(obj, Mapping):
        for x in obj.values():
            yield from _tensors(x, depth + 1)


def _named_tensors(obj: Any, prefix: str, depth: int = 0) -> Iterator[tuple[str, torch.Tensor]]:
    if isinstance(obj, torch.Tensor):
        yield prefix, obj
    elif depth < 6 and isinstance(obj, list | tuple):
        for i, x in enumerate(obj):
            yield from _named_tensors(x, f"{prefix}[{i}]", depth + 1)
    elif depth < 6 and isinstance(obj, Mapping):
        for k, x in obj.items():
            yield from _named_tensors(x, f"{prefix}.{k}" if prefix else str(k), depth + 1)


# --- leaf modules ---------------------------------------------------------------------------------------


def _is_attention(module: nn.Module) -> bool:
    if isinstance(module, nn.MultiheadAttention):
        return True
    name = type(module).__name__
    return name.endswith("Attention") and any(True for _ in module.parameters())


def leaf_kinds(root: nn.Module, expand_attention: bool) -> dict[nn.Module, tuple[OpType, dict[str, Any]]]:
    """The modules recorded as one node each, with their op type and attributes.

    Attention: ``nn.MultiheadAttention`` and the innermost module whose class name ends in ``Attention``
    and that holds parameters (HF ``BertSelfAttention``, ``GPT2Attention``, ``ViTSelfAttention``).
    """
    kinds: dict[nn.Module, tuple[OpType, dict[str, Any]]] = {}
    attention = [m for m in root.modules() if _is_attention(m)] if not expand_attention else []
    inner = set(attention)
    for m in attention:  # keep only the innermost (BertSelfAttention, not BertAttention)
        if any(c is not m and c in inner for c in m.modules()) and not isinstance(m, nn.MultiheadAttention):
            inner.discard(m)
    for m in root.modules():
        name = type(m).__name__
        if isinstance(m, nn.modules.conv._ConvNd):
            transposed = bool(m.transposed)
            kernel = as_ints(m.kernel_size)
            op = conv_op(kernel, m.groups, m.in_channels, as_ints(m.dilation), transposed)
            kinds[m] = (op, {"kernel": kernel, "stride": as_ints(m.stride), "dilation": as_ints(m.dilation),
                             "groups": int(m.groups), "padding": m.padding if isinstance(m.padding, str)
                             else as_ints(m.padding), "dims": len(kernel)})
        elif isinstance(m, nn.Linear) or (name == "Conv1D" and hasattr(m, "nf")):  # HF Conv1D is a Linear
            kinds[m] = (OpType.LINEAR, {})
        elif isinstance(m, nn.Embedding | nn.EmbeddingBag):
            kinds[m] = (OpType.EMBEDDING, {})
        elif isinstance(m, nn.modules.batchnorm._BatchNorm) or name.endswith("BatchNorm"):
            kinds[m] = (OpType.BATCH_NORM, {})
        elif isinstance(m, nn.LayerNorm) or name.endswith("LayerNorm"):
            kinds[m] = (OpType.LAYER_NORM, {})
        elif isinstance(m, nn.GroupNorm) or name.endswith("GroupNorm"):
            kinds[m] = (OpType.GROUP_NORM, {})
        elif isinstance(m, nn.RMSNorm) or name.endswith("RMSNorm"):
            kinds[m] = (OpType.RMS_NORM, {})
        elif isinstance(m, nn.modules.instancenorm._InstanceNorm):
            kinds[m] = (OpType.INSTANCE_NORM, {})
        elif m in inner:
            heads = getattr(m, "num_heads", None) or getattr(m, "num_attention_heads", None)
            kinds[m] = (OpType.ATTENTION, {"heads": int(heads)} if isinstance(heads, int) else {})
        elif isinstance(m, nn.PReLU):
            kinds[m] = (OpType.PRELU, {})
        elif isinstance(m, nn.Identity):
            kinds[m] = (OpType.IDENTITY, {})
        elif not any(True for _ in m.children()) and not any(True for _ in m.parameters(recurse=False)):
            low = name.lower()
            for key, op in ACTIVATION_KEYWORDS:
                if key in low:
                    kinds[m] = (op, {})
                    break
    return kinds


# --- the eager recorder -------------------------------------------------------------------------------

_MHA_SIGNATURE = inspect.signature(F.multi_head_attention_forward)
_SDPA = frozenset({"scaled_dot_product_attention"})


class _Frame:
    __slots__ = ("module", "path", "inputs", "derived", "used", "detail")

    def __init__(self, module: nn.Module, path: str, inputs: list[int], derived: dict[int, None],
                 detail: dict[str, Any] | None = None) -> None:
        self.module, self.path, self.inputs, self.derived = module, path, inputs, derived
        self.used: dict[int, torch.Tensor] = {}
        self.detail = detail


class EagerRecorder(TorchFunctionMode):
    """Records one forward pass of ``root``; use :func:`record_eager`.

    With ``keep_args`` every node also keeps its call's arguments (:attr:`RawNode.detail`), tensors
    replaced by references — ``("v", node, output)`` for a recorded value, ``("p", param_id, ops)`` for a
    parameter reached through parameter-only ops (``ops``: their names and arguments, ``None`` when several
    parameters were combined), ``("c", shape)`` for a constant — and scaled-dot-product / multi-head
    attention stay one node each: what :mod:`.dataflow` needs to follow channels through a forward pass.
    """

    def __init__(self, root: nn.Module, expand_attention: bool, keep_args: bool = False) -> None:
        super().__init__()
        self.keep_args = keep_args
        self.out_pos: dict[int, int] = {}  # tensor id -> which output of its producer it is
        self.chains: dict[int, tuple[int, tuple[Any, ...] | None]] = {}  # derived tensor id -> (param, ops)
        self.nodes: list[RawNode] = []
        self.produced: dict[int, tuple[weakref.ref[torch.Tensor], int]] = {}
        self.derived: dict[int, tuple[weakref.ref[torch.Tensor], frozenset[int]]] = {}
        self.params: dict[int, torch.Tensor] = {}
        self.param_names: dict[int, list[str]] = {}
        for pname, p in root.named_parameters(remove_duplicate=False):
            self.params[id(p)] = p
            self.param_names.setdefault(id(p), []).append(pname)
        self.paths = {id(m): path for path, m in root.named_modules(remove_duplicate=False)}
        self.leaves = {id(m): kind for m, kind in leaf_kinds(root, expand_attention).items()}
        self.stack: list[str] = []
        self.frames: list[_Frame] = []
        self.leaf_depth = 0
        self.quiet = False

    # tensors -> (producer node indices, parameter ids)
    def _lookup(self, t: torch.Tensor) -> tuple[int | None, frozenset[int]]:
        key = id(t)
        if key in self.params and self.params[key] is t:
            return None, frozenset((key,))
        hit = self.produced.get(key)
        if hit is not None and hit[0]() is t:
            return hit[1], frozenset()
        der = self.derived.get(key)
        if der is not None and der[0]() is t:
            return None, der[1]
        return None, frozenset()

    def _sources(self, tensors: Iterator[torch.Tensor]) -> tuple[list[int], dict[int, None]]:
        """Producer nodes (in argument order) and parameter ids (an ordered set) of some tensors."""
        inputs: list[int] = []
        params: dict[int, None] = {}
        for t in tensors:
            node, ps = self._lookup(t)
            if node is not None and node not in inputs:
                inputs.append(node)
            params.update(dict.fromkeys(sorted(ps, key=self._order)))
        return inputs, params

    def _order(self, pid: int) -> str:
        return self.param_names[pid][0]

    def _produce(self, t: torch.Tensor, node: int, pos: int = 0) -> None:
        self.produced[id(t)] = (weakref.ref(t), node)
        self.derived.pop(id(t), None)
        if self.keep_args:
            self.out_pos[id(t)] = pos

    def describe(self, obj: Any, depth: int = 0) -> Any:
        """``obj`` with tensors replaced by references (see the class docstring); plain values kept."""
        if isinstance(obj, torch.Tensor):
            key = id(obj)
            if key in self.params and self.params[key] is obj:
                return ("p", key, (), shape_of(obj))
            hit = self.produced.get(key)
            if hit is not None and hit[0]() is obj:
                return ("v", hit[1], self.out_pos.get(key, 0))
            der = self.derived.get(key)
            if der is not None and der[0]() is obj:
                pid, ops = self.chains.get(key, (next(iter(der[1])), None))
                return ("p", pid, ops if len(der[1]) == 1 else None, shape_of(obj))
            return ("c", shape_of(obj))
        if isinstance(obj, bool | int | float | str) or obj is None:
            return obj
        if obj is Ellipsis:
            return "..."
        if isinstance(obj, slice):
            return ("slice", *(x if isinstance(x, int) or x is None else "?" for x in (obj.start, obj.stop, obj.step)))
        if depth < 6 and isinstance(obj, list | tuple):  # torch.Size too
            return tuple(self.describe(x, depth + 1) for x in obj)
        if depth < 6 and isinstance(obj, Mapping):
            return {str(k): self.describe(v, depth + 1) for k, v in obj.items()}
        return "?"

    def _chain(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], outs: list[torch.Tensor]) -> None:
        """Remember how a parameter-only result came from one parameter (``w.t()``, ``cls.expand(...)``)."""
        if not self.keep_args:
            return
        sources = [self.describe(t) for t in _tensors((args, kwargs))]
        refs = [r for r in sources if r[0] == "p"]
        ops: tuple[Any, ...] | None = None
        if len(refs) == 1 and refs[0][2] is not None and all(r[0] != "v" for r in sources):
            rest = tuple(self.describe(a) for a in args[1:])
            ops = (*refs[0][2], (name, rest, self.describe(kwargs)))
        for t in outs:
            if refs:
                self.chains[id(t)] = (refs[0][1], ops)

    def _add(self, op: OpType, fn: str, path: str, inputs: list[int], param_ids: Iterable[int],
             outs: list[torch.Tensor], attrs: dict[str, Any] | None = None,
             shapes: list[tuple[int, ...]] | None = None, inplace: bool = True) -> int:
        ids = list(param_ids)
        node = RawNode(op, fn, path, list(inputs), [(self.param_names[i][0], shape_of(self.params[i])) for i in ids],
                       ids, shapes if shapes is not None else [shape_of(t) for t in outs], dict(attrs or {}))
        self.nodes.append(node)
        index = len(self.nodes) - 1
        for k, t in enumerate(outs):
            self._produce(t, index, k)
            base = t._base
            if inplace and base is not None and id(base) in self.produced:  # in-place write through a view
                self._produce(base, index, k)
        return index

    def add_input(self, name: str, t: torch.Tensor) -> None:
        self._add(OpType.INPUT, name, "", [], [], [t])

    def add_outputs(self, output: Any) -> None:
        for name, t in _named_tensors(output, ""):
            node, ps = self._lookup(t)
            if node is None and not ps:
                continue
            detail = self._detail("output", (t,), {})
            self._add(OpType.OUTPUT, name or "output", "", [] if node is None else [node],
                      sorted(ps, key=self._order), [t])
            self.nodes[-1].detail = detail

    # hooks
    def pre_hook(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.quiet = True
        path = self.paths.get(id(module), "?")
        self.stack.append(path)
        if id(module) in self.leaves:
            if self.leaf_depth == 0:
                inputs, derived = self._sources(_tensors((args, kwargs)))
                detail = ({"name": "module", "args": self.describe(args), "kwargs": self.describe(kwargs)}
                          if self.keep_args else None)
                self.frames.append(_Frame(module, path, inputs, derived, detail))
            self.leaf_depth += 1
        self.quiet = False

    def post_hook(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
        self.quiet = True
        self.stack.pop()
        if id(module) in self.leaves:
            self.leaf_depth -= 1
            if self.leaf_depth == 0:
                self._close_leaf(self.frames.pop(), output)
        self.quiet = False

    def _close_leaf(self, frame: _Frame, output: Any) -> None:
        op, attrs = self.leaves[id(frame.module)]
        own = {id(p): None for p in frame.module.parameters()}  # ordered sets: main parameter first
        outs = list(_tensors(output))
        params = {**own, **dict.fromkeys(frame.used), **frame.derived}
        if not frame.inputs and not own:
            # a parameter-free module on constants/parameters: no node, its output carries the parameters
            for t in outs:
                if params:
                    self.derived[id(t)] = (weakref.ref(t), frozenset(params))
                    if self.keep_args and len(params) == 1:
                        self.chains[id(t)] = (next(iter(params)), None)
            return
        prefix = f"{frame.path}." if frame.path else ""
        ids = list(params)
        local = dict((id(p), prefix + n) for n, p in frame.module.named_parameters(remove_duplicate=False))
        node = RawNode(op, type(frame.module).__name__, frame.path, frame.inputs,
                       [(local.get(i, self.param_names[i][0]), shape_of(self.params[i])) for i in ids], ids,
                       [shape_of(t) for t in outs], attrs, frame.detail)
        self.nodes.append(node)
        for k, t in enumerate(outs):
            self._produce(t, len(self.nodes) - 1, k)

    # functions
    def __torch_function__(self, func: Callable[..., Any], types: Any, args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if self.quiet:
            return out
        if self.leaf_depth:
            frame = self.frames[-1]
            for t in _tensors((args, kwargs)):
                if id(t) in self.params and self.params[id(t)] is t:
                    frame.used[id(t)] = t
            return out
        self.quiet = True
        try:
            self._record(func, args, kwargs, out)
        finally:
            self.quiet = False
        return out

    def _record(self, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
        raw = getattr(func, "__name__", "") or ""
        if raw == "__get__":  # a tensor property (.T, .mT, .data, .shape)
            raw = getattr(getattr(func, "__self__", None), "__name__", raw)
        name = normalize_name(raw)
        if name == "setitem":
            target = args[0]
            inputs, params = self._sources(_tensors(args))
            if inputs:
                detail = self._detail(name, args, kwargs)
                self._add(OpType.INDEX_PUT, raw, self._where(), inputs, params, [target])
                self.nodes[-1].detail = detail
            return
        outs = list(_tensors(out))
        if not outs:
            return
        inputs, params = self._sources(_tensors((args, kwargs)))
        if not inputs:
            if params:  # a function of parameters (and constants) only: defer ownership
                self._chain(name, args, kwargs, outs)
                for t in outs:
                    self.derived[id(t)] = (weakref.ref(t), frozenset(params))
            return
        if name in PASSTHROUGH and not params:
            pos = self.out_pos.get(id(args[0]), 0) if args and isinstance(args[0], torch.Tensor) else 0
            for t in outs:
                if t is not args[0]:
                    self._produce(t, inputs[0], pos)
            return
        detail = self._detail(name, args, kwargs)
        if self.keep_args and (name in _SDPA or name == "multi_head_attention_forward"):
            attrs = {"attention": "sdpa" if name in _SDPA else "mha"}
            self._add(OpType.ATTENTION, raw, self._where(), inputs, params, outs, attrs)
            self.nodes[-1].detail = detail
            return
        if name == "multi_head_attention_forward":
            self._expand_mha(args, kwargs, inputs, params, outs)
            return
        if name in _SDPA:
            self._expand_sdpa(args, kwargs, outs)
            return
        op, attrs = classify(name, args, kwargs)
        if op is OpType.OTHER:
            attrs["fn"] = raw
        # only an in-place op (its result is its first argument) writes through a view into the view's base;
        # a view op (transpose, reshape, getitem) leaves the base's producer as it was
        inplace = bool(args) and isinstance(args[0], torch.Tensor) and any(t is args[0] for t in outs)
        self._add(op, raw, self._where(), inputs, params, outs, attrs, inplace=inplace)
        self.nodes[-1].detail = detail

    def _detail(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any] | None:
        if not self.keep_args:
            return None
        return {"name": name, "args": self.describe(args), "kwargs": self.describe(kwargs)}

    def _where(self) -> str:
        return self.stack[-1] if self.stack else ""

    def _expand_sdpa(self, args: tuple[Any, ...], kwargs: dict[str, Any], outs: list[torch.Tensor]) -> None:
        """softmax(Q Kᵀ / √d + mask) V as MATMUL → SOFTMAX → MATMUL nodes."""
        q, k, v = (arg_at(args, kwargs, i, key) for i, key in enumerate(("query", "key", "value")))
        where = self._where()
        pq, _ = self._sources(_tensors((q, k)))
        pv, _ = self._sources(_tensors(v))
        scores = (*shape_of(q)[:-1], shape_of(k)[-2])
        qk = self._add(OpType.MATMUL, "q@k", where, pq, [], [], {"attention": "scores"}, shapes=[scores])
        sm = self._add(OpType.SOFTMAX, "softmax", where, [qk], [], [], shapes=[scores])
        self._add(OpType.MATMUL, "p@v", where, [sm, *pv], [], outs, {"attention": "values"})

    def _expand_mha(self, args: tuple[Any, ...], kwargs: dict[str, Any], inputs: list[int], params: dict[int, None],
                    outs: list[torch.Tensor]) -> None:
        """F.multi_head_attention_forward as in-projection → QKᵀ → softmax → ·V → out-projection."""
        bound = _MHA_SIGNATURE.bind(*args, **kwargs).arguments
        out_ids = {id(bound[k]) for k in ("out_proj_weight", "out_proj_bias") if bound.get(k) is not None}
        where, q = self._where(), bound["query"]
        tgt, batch, embed = shape_of(q)
        heads = int(bound["num_heads"])
        src = shape_of(bound["key"])[0]
        inp = self._add(OpType.LINEAR, "in_proj", where, inputs, [p for p in params if p not in out_ids], [],
                        {"attention": "qkv"},
                        shapes=[(tgt, batch, 3 * embed)])
        qk = self._add(OpType.MATMUL, "q@k", where, [inp], [], [], {"attention": "scores"},
                       shapes=[(batch, heads, tgt, src)])
        sm = self._add(OpType.SOFTMAX, "softmax", where, [qk], [], [], shapes=[(batch, heads, tgt, src)])
        av = self._add(OpType.MATMUL, "p@v", where, [sm, inp], [], [], {"attention": "values"},
                       shapes=[(batch, heads, tgt, embed // heads)])
        self._add(OpType.LINEAR, "out_proj", where, [av], [p for p in params if p in out_ids], outs,
                  {"attention": "out"})


def record_eager(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], *,
                 expand_attention: bool = False, keep_args: bool = False) -> tuple[Recording, Any]:
    """Run ``module(*args, **kwargs)`` once under ``torch.no_grad()`` in eval mode and record it.

    The module's train/eval flags are restored afterwards and no parameter or buffer changes (eval-mode
    batch norm does not update its running statistics). Raises :class:`ComputeGraphError` naming the
    innermost module whose forward raised.
    """
    rec = EagerRecorder(module, expand_attention, keep_args)
    training = {m: m.training for m in module.modules()}
    handles = []
    try:
        for m in module.modules():
            handles.append(m.register_forward_pre_hook(rec.pre_hook, with_kwargs=True))
            handles.append(m.register_forward_hook(rec.post_hook, with_kwargs=True))
        module.eval()
        shapes = []
        for name, t in _named_tensors((args, kwargs), ""):
            rec.add_input(_input_name(name), t)
            shapes.append(shape_of(t))
        try:
            with torch.no_grad(), rec:
                output = module(*args, **kwargs)
        except ComputeGraphError:
            raise
        except Exception as exc:
            path = rec.stack[-1] if rec.stack else ""
            sub = module.get_submodule(path) if path not in ("", "?") else module
            raise ComputeGraphError(
                f"forward of module {path or '<root>'!r} ({type(sub).__name__}) raised "
                f"{type(exc).__name__}: {exc}; pass an example_input that fits the model",
                path=path or "<root>", kind=type(sub).__name__) from exc
        rec.add_outputs(output)
    finally:
        for h in handles:
            h.remove()
        for m, flag in training.items():
            m.train(flag)
    return Recording(rec.nodes, rec.param_names, shapes), output


def _input_name(name: str) -> str:
    # "[0][0]" -> "args[0]", "[1].input_ids" -> "input_ids"
    if name.startswith("[0]"):
        return "args" + name[3:]
    return name[4:] if name.startswith("[1].") else name


# --- the torch.export backend ---------------------------------------------------------------------------


def record_export(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Recording, Any]:
    """Export ``module`` with ``torch.export.export(strict=False)`` and walk its ATen graph.

    Same node rules as the eager recorder, with ATen op names mapped through the same vocabulary; there
    are no module-level nodes, so attention is always expanded. Module paths come from each node's
    ``nn_module_stack``.
    """
    training = {m: m.training for m in module.modules()}
    try:
        module.eval()
        try:
            ep = torch.export.export(module, args, kwargs, strict=False)
        except Exception as exc:
            raise ComputeGraphError(f"torch.export failed on {type(module).__name__}: {type(exc).__name__}: "
                                    f"{str(exc).splitlines()[0] if str(exc) else ''}; try backend='eager'",
                                    path="<root>", kind=type(module).__name__) from exc
    finally:
        for m, flag in training.items():
            m.train(flag)
    sig = ep.graph_signature
    to_param = dict(sig.inputs_to_parameters)
    named = dict(module.named_parameters(remove_duplicate=False))
    param_names: dict[int, list[str]] = {}
    for pname, p in named.items():
        param_names.setdefault(id(p), []).append(pname)
    canon = {pname: id(p) for pname, p in named.items()}
    user_inputs = list(sig.user_inputs)
    nodes: list[RawNode] = []
    produced: dict[str, int] = {}
    derived: dict[str, frozenset[int]] = {}
    shapes: list[tuple[int, ...]] = []

    def val(a: Any) -> Any:
        if isinstance(a, torch.fx.Node):
            return a.meta.get("val")
        if isinstance(a, list | tuple):
            return type(a)(val(x) for x in a)
        return a

    def sources(a: Any) -> tuple[list[int], dict[int, None]]:
        ins: list[int] = []
        ps: dict[int, None] = {}  # ordered: weight before bias, as in the call
        for n in _fx_nodes(a):
            if n.name in produced and produced[n.name] not in ins:
                ins.append(produced[n.name])
            ps.update(dict.fromkeys(sorted(derived.get(n.name, ()), key=lambda i: param_names[i][0])))
        return ins, ps

    def add(op: OpType, fn: str, path: str, ins: list[int], ps: Iterable[int], out: Any, attrs: dict[str, Any],
            name: str | None, shape_list: list[tuple[int, ...]] | None = None) -> int:
        ids = list(ps)
        outs = shape_list if shape_list is not None else [shape_of(t) for t in _tensors(out)]
        nodes.append(RawNode(op, fn, path, ins, [(param_names[i][0], tuple(named[param_names[i][0]].shape))
                                                 for i in ids], ids, outs, attrs))
        if name is not None:
            produced[name] = len(nodes) - 1
        return len(nodes) - 1

    for n in ep.graph.nodes:
        if n.op == "placeholder":
            if n.name in to_param and to_param[n.name] in canon:
                derived[n.name] = frozenset((canon[to_param[n.name]],))
            elif n.name in user_inputs:
                add(OpType.INPUT, n.name, "", [], [], n.meta.get("val"), {}, n.name)
                shapes.append(nodes[-1].out_shapes[0] if nodes[-1].out_shapes else ())
            continue
        if n.op == "output":
            for a in _fx_nodes(n.args):
                ins, ps = sources(a)
                if ins or ps:
                    add(OpType.OUTPUT, a.name, "", ins, ps, a.meta.get("val"), {}, None)
            continue
        if n.op != "call_function":
            continue
        target = n.target
        raw = getattr(target, "__name__", str(target))
        name = normalize_name(str(target) if str(target).startswith("aten.") else raw)
        ins, ps = sources((n.args, n.kwargs))
        if name == "getitem" and isinstance(n.args[0], torch.fx.Node) and isinstance(n.args[0].meta.get("val"),
                                                                                      list | tuple):
            if ins:  # an element of a multi-output op (split, batch norm, max pool with indices)
                produced[n.name] = ins[0]
            elif ps:
                derived[n.name] = frozenset(ps)
            continue
        if not ins:
            if ps:
                derived[n.name] = frozenset(ps)
            continue
        if name in PASSTHROUGH and not ps:
            produced[n.name] = ins[0]
            continue
        stack = n.meta.get("nn_module_stack") or {}
        path = _export_path(list(stack.values())[-1][0]) if stack else ""
        out = n.meta.get("val")
        if name in _SDPA:
            q, k = val(n.args[0]), val(n.args[1])
            pq, _ = sources(n.args[:2])
            pv, _ = sources(n.args[2])
            scores = (*shape_of(q)[:-1], shape_of(k)[-2])
            qk = add(OpType.MATMUL, "q@k", path, pq, [], None, {"attention": "scores"}, None, [scores])
            sm = add(OpType.SOFTMAX, "softmax", path, [qk], [], None, {}, None, [scores])
            add(OpType.MATMUL, "p@v", path, [sm, *pv], [], out, {"attention": "values"}, n.name)
            continue
        op, attrs = classify(name, val(n.args), val(n.kwargs))
        if op is OpType.OTHER:
            attrs["fn"] = str(target)
        add(op, str(target), path, ins, ps, out, attrs, n.name)
    return Recording(nodes, param_names, shapes), ep


def _fx_nodes(a: Any) -> Iterator[torch.fx.Node]:
    if isinstance(a, torch.fx.Node):
        yield a
    elif isinstance(a, list | tuple):
        for x in a:
            yield from _fx_nodes(x)
    elif isinstance(a, Mapping):
        for x in a.values():
            yield from _fx_nodes(x)


def _export_path(p: str) -> str:
    # non-strict export writes "L['self'].encoder.layer[0]" or "encoder.layer.0"; keep the module path
    p = p.replace("L['self']", "").replace("L__self__", "")
    for a, b in (("['", "."), ("']", ""), ("[", "."), ("]", "")):
        p = p.replace(a, b)
    return p.strip(".")
