"""Versioned operation vocabulary of :class:`~weightzoo.zoo.graphs.ComputeGraph` (``OP_VOCAB_VERSION`` 1).

Every node of a compute graph carries an :class:`OpType` id, so graphs of different architectures (and
graphs recorded by the eager recorder and by ``torch.export``) share one embedding table. Ids are
append-only: a new member takes the next free id; changing or removing an id bumps
:data:`OP_VOCAB_VERSION`.

The mapping from what the recorder sees (a PyTorch function or method name, an ATen op name) to an op
type lives here too (:func:`op_from_name`), so both backends name operations identically.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import IntEnum
from typing import Any

OP_VOCAB_VERSION = 1


class OpType(IntEnum):
    """What a compute-graph node does."""

    OTHER = 0  #: an operation outside this vocabulary (the node keeps the function name in ``fn``)
    INPUT = 1  #: an input tensor of the network
    OUTPUT = 2  #: an output tensor of the network
    CONV = 3  #: dense convolution, some kernel side > 1, no dilation, groups = 1
    CONV_POINTWISE = 4  #: 1×1 (1-D: size-1) convolution, groups = 1
    CONV_DEPTHWISE = 5  #: one group per input channel (groups = in_channels > 1)
    CONV_GROUPED = 6  #: 1 < groups < in_channels
    CONV_DILATED = 7  #: dilation > 1 along some axis (groups = 1)
    CONV_TRANSPOSE = 8  #: transposed convolution (any kernel/groups)
    LINEAR = 9  #: y = x Wᵀ + b (nn.Linear, HF Conv1D, F.linear, addmm)
    EMBEDDING = 10  #: table lookup (nn.Embedding, F.embedding)
    BATCH_NORM = 11
    LAYER_NORM = 12
    GROUP_NORM = 13
    RMS_NORM = 14
    INSTANCE_NORM = 15
    ATTENTION = 16  #: multi-head attention with its q/k/v/output projections, as one op
    ADD = 17
    SUB = 18
    MUL = 19
    DIV = 20
    MATMUL = 21  #: matmul, bmm, mm, einsum, baddbmm
    CONCAT = 22  #: cat, stack
    SPLIT = 23  #: split, chunk, unbind, tensor_split
    INDEX = 24  #: indexing and slicing (getitem, select, narrow, gather, index_select)
    INDEX_PUT = 25  #: writes into part of a tensor (setitem, index_put, scatter, masked_fill)
    MAX_POOL = 26
    AVG_POOL = 27
    ADAPTIVE_AVG_POOL = 28  #: adaptive average pooling to an output size > 1
    ADAPTIVE_MAX_POOL = 29
    GLOBAL_AVG_POOL = 30  #: mean over every spatial axis (adaptive pooling to 1, mean over dims ≥ 2)
    GLOBAL_MAX_POOL = 31
    RELU = 32
    GELU = 33
    SILU = 34
    TANH = 35
    SIGMOID = 36
    LEAKY_RELU = 37
    HARDSWISH = 38
    HARDSIGMOID = 39
    ELU = 40
    SOFTPLUS = 41
    MISH = 42
    PRELU = 43
    SINE = 44
    SOFTMAX = 45  #: softmax and log_softmax
    DROPOUT = 46
    IDENTITY = 47
    FLATTEN = 48
    RESHAPE = 49  #: view, reshape, unflatten, squeeze, unsqueeze
    PERMUTE = 50
    TRANSPOSE = 51  #: transpose, t, swapaxes, .T / .mT
    EXPAND = 52  #: expand, repeat, broadcast_to, tile
    MEAN = 53  #: mean over non-spatial axes (reductions that are not global pooling)
    SUM = 54
    PAD = 55
    INTERPOLATE = 56  #: interpolate / upsample
    POW = 57
    SQRT = 58  #: sqrt, rsqrt
    EXP = 59
    LOG = 60
    NEG = 61
    CLAMP = 62  #: clamp, clip, hardtanh, relu6
    SIN = 63  #: sin, cos (e.g. sinusoidal features inside a forward)
    WHERE = 64  #: where, masked selection
    NORMALIZE = 65  #: F.normalize (unit-norm vectors)


# PyTorch function / method / ATen op name (lower-case, underscores stripped at both ends, in-place
# suffix removed) -> op type. Names that need arguments to decide (conv, pooling, mean) are handled by
# the recorders; everything else is a plain lookup.
_NAMES: dict[str, OpType] = {}


def _register(op: OpType, names: Sequence[str]) -> None:
    for name in names:
        _NAMES[name] = op


_register(OpType.LINEAR, ("linear", "addmm"))
_register(OpType.EMBEDDING, ("embedding", "embedding_bag"))
_register(OpType.BATCH_NORM, ("batch_norm", "native_batch_norm", "native_batch_norm_legit_no_training",
                              "native_batch_norm_legit", "native_batch_norm_legit_functional"))
_register(OpType.LAYER_NORM, ("layer_norm", "native_layer_norm"))
_register(OpType.GROUP_NORM, ("group_norm", "native_group_norm"))
_register(OpType.RMS_NORM, ("rms_norm", "fused_rms_norm"))
_register(OpType.INSTANCE_NORM, ("instance_norm",))
_register(OpType.ATTENTION, ("multi_head_attention_forward",))
_register(OpType.ADD, ("add", "radd", "iadd"))
_register(OpType.SUB, ("sub", "rsub", "isub", "subtract"))
_register(OpType.MUL, ("mul", "rmul", "imul", "multiply"))
_register(OpType.DIV, ("div", "truediv", "rtruediv", "itruediv", "divide", "floordiv", "floor_divide"))
_register(OpType.MATMUL, ("matmul", "rmatmul", "bmm", "mm", "einsum", "baddbmm", "addbmm", "bilinear"))
_register(OpType.CONCAT, ("cat", "concat", "concatenate", "stack", "hstack", "vstack"))
_register(OpType.SPLIT, ("split", "chunk", "unbind", "tensor_split", "split_with_sizes", "unsafe_split"))
_register(OpType.INDEX, ("getitem", "select", "narrow", "gather", "index_select", "slice", "take_along_dim",
                         "masked_select", "roll", "flip"))
_register(OpType.INDEX_PUT, ("setitem", "index_put", "scatter", "scatter_add", "masked_fill", "index_copy",
                             "index_add", "slice_scatter", "select_scatter", "masked_scatter"))
_register(OpType.MAX_POOL, ("max_pool1d", "max_pool2d", "max_pool3d", "max_pool1d_with_indices",
                            "max_pool2d_with_indices", "max_pool3d_with_indices"))
_register(OpType.AVG_POOL, ("avg_pool1d", "avg_pool2d", "avg_pool3d"))
_register(OpType.RELU, ("relu",))
_register(OpType.GELU, ("gelu",))
_register(OpType.SILU, ("silu", "swish"))
_register(OpType.TANH, ("tanh",))
_register(OpType.SIGMOID, ("sigmoid",))
_register(OpType.LEAKY_RELU, ("leaky_relu", "rrelu"))
_register(OpType.HARDSWISH, ("hardswish",))
_register(OpType.HARDSIGMOID, ("hardsigmoid",))
_register(OpType.ELU, ("elu", "selu", "celu"))
_register(OpType.SOFTPLUS, ("softplus",))
_register(OpType.MISH, ("mish",))
_register(OpType.PRELU, ("prelu",))
_register(OpType.SOFTMAX, ("softmax", "log_softmax", "safe_softmax", "softmin"))
_register(OpType.DROPOUT, ("dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout",
                           "feature_alpha_dropout", "native_dropout"))
_register(OpType.IDENTITY, ("identity", "alias", "lift_fresh_copy"))
_register(OpType.FLATTEN, ("flatten",))
_register(OpType.RESHAPE, ("view", "reshape", "unflatten", "squeeze", "unsqueeze", "view_as", "reshape_as",
                           "unsafe_view", "ravel"))
_register(OpType.PERMUTE, ("permute", "movedim", "moveaxis"))
_register(OpType.TRANSPOSE, ("transpose", "t", "swapaxes", "swapdims", "numpy_t", "mt"))
_register(OpType.EXPAND, ("expand", "expand_as", "repeat", "broadcast_to", "tile", "repeat_interleave"))
_register(OpType.SUM, ("sum", "nansum"))
_register(OpType.PAD, ("pad", "constant_pad_nd", "reflection_pad1d", "reflection_pad2d", "replication_pad2d"))
_register(OpType.INTERPOLATE, ("interpolate", "upsample", "upsample_nearest2d", "upsample_bilinear2d",
                               "upsample_bicubic2d"))
_register(OpType.POW, ("pow", "square", "ipow", "rpow"))
_register(OpType.SQRT, ("sqrt", "rsqrt"))
_register(OpType.EXP, ("exp", "expm1"))
_register(OpType.LOG, ("log", "log1p", "log2", "log10"))
_register(OpType.NEG, ("neg", "negative"))
_register(OpType.CLAMP, ("clamp", "clip", "hardtanh", "relu6", "clamp_min", "clamp_max"))
_register(OpType.SIN, ("sin", "cos"))
_register(OpType.WHERE, ("where",))
_register(OpType.NORMALIZE, ("normalize",))

#: Names whose output is its input for graph purposes (dtype/device/memory-layout changes, copies):
#: the recorder passes the producer through instead of adding a node.
PASSTHROUGH: frozenset[str] = frozenset({
    "contiguous", "to", "float", "double", "half", "bfloat16", "type", "type_as", "detach", "clone", "cpu",
    "cuda", "requires_grad", "data", "to_copy", "copy", "assert_tensor_metadata", "dequantize",
    "_assert_tensor_metadata", "lift_fresh", "coalesce",
})

#: Mean-like reductions: over every spatial axis they are global pooling, otherwise MEAN.
MEAN_NAMES: frozenset[str] = frozenset({"mean", "nanmean", "mean_dim"})
MAX_REDUCTIONS: frozenset[str] = frozenset({"amax", "max"})
ADAPTIVE_AVG = frozenset({"adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d"})
ADAPTIVE_MAX = frozenset({"adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d"})
CONV_NAMES = frozenset({"conv1d", "conv2d", "conv3d", "convolution", "conv_transpose1d", "conv_transpose2d",
                        "conv_transpose3d", "conv_tbc"})


def normalize_name(name: str) -> str:
    """A function/method/ATen name reduced to its vocabulary key: ``'__radd__'`` → ``'radd'``,
    ``'relu_'`` → ``'relu'``, ``'aten.add.Tensor'`` → ``'add'``, ``'_softmax'`` → ``'softmax'``."""
    if name.startswith("aten."):
        name = name.split(".")[1]
    name = name.lower().strip("_")
    return name


def op_from_name(name: str) -> OpType:
    """The op type of a (normalized) function name; :attr:`OpType.OTHER` when it is not in the vocabulary."""
    return _NAMES.get(name, OpType.OTHER)


def conv_op(kernel: Sequence[int], groups: int, in_channels: int, dilation: Sequence[int],
            transposed: bool = False) -> OpType:
    """Classify a convolution by kernel, groups and dilation (see :class:`OpType` for the kinds)."""
    if transposed:
        return OpType.CONV_TRANSPOSE
    if groups > 1 and groups == in_channels:
        return OpType.CONV_DEPTHWISE
    if groups > 1:
        return OpType.CONV_GROUPED
    if any(d > 1 for d in dilation):
        return OpType.CONV_DILATED
    if all(k == 1 for k in kernel):
        return OpType.CONV_POINTWISE
    return OpType.CONV


def shape_of(x: Any) -> tuple[int, ...]:
    return tuple(int(s) for s in x.shape)


def as_ints(v: Any) -> list[int]:
    return [int(x) for x in v] if isinstance(v, list | tuple) else [int(v)]


def arg_at(args: tuple[Any, ...], kwargs: Mapping[str, Any], i: int, key: str, default: Any = None) -> Any:
    if len(args) > i:
        return args[i]
    return kwargs.get(key, default)


def classify(name: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> tuple[OpType, dict[str, Any]]:
    """The op type and attributes of a call of function ``name`` (normalized) on ``args``.

    Works on real tensors (eager) and on ``torch.export`` meta values alike: only ``.shape`` is read.
    """
    if name in CONV_NAMES:
        x, w = args[0], arg_at(args, kwargs, 1, "weight")
        transposed = "transpose" in name
        if name == "convolution":  # aten.convolution(input, weight, bias, stride, padding, dilation, transposed, out_pad, groups)
            stride, dilation = as_ints(args[3]), as_ints(args[5])
            transposed, groups = bool(args[6]), int(args[8])
        elif transposed:  # conv_transpose(input, weight, bias, stride, padding, output_padding, groups, dilation)
            stride, groups = as_ints(arg_at(args, kwargs, 3, "stride", 1)), int(arg_at(args, kwargs, 6, "groups", 1))
            dilation = as_ints(arg_at(args, kwargs, 7, "dilation", 1))
        else:  # conv(input, weight, bias, stride, padding, dilation, groups)
            stride, dilation = as_ints(arg_at(args, kwargs, 3, "stride", 1)), as_ints(arg_at(args, kwargs, 5, "dilation", 1))
            groups = int(arg_at(args, kwargs, 6, "groups", 1))
        kernel = list(shape_of(w)[2:])
        return conv_op(kernel, groups, shape_of(x)[1], dilation, transposed), {
            "kernel": kernel, "stride": stride, "dilation": dilation, "groups": groups, "dims": len(kernel)}
    if name in MEAN_NAMES or name in MAX_REDUCTIONS:
        x = args[0]
        dims = arg_at(args, kwargs, 1, "dim")
        nd = len(shape_of(x))
        if dims is not None and not hasattr(dims, "shape") and nd >= 3:
            got = sorted(d % nd for d in as_ints(dims))
            if got == list(range(2, nd)):
                return (OpType.GLOBAL_AVG_POOL if name in MEAN_NAMES else OpType.GLOBAL_MAX_POOL), {}
        return (OpType.MEAN if name in MEAN_NAMES else OpType.OTHER), {}
    if name in ADAPTIVE_AVG or name in ADAPTIVE_MAX:
        size = arg_at(args, kwargs, 1, "output_size")
        glob = size is not None and all(s == 1 for s in as_ints(size))
        if name in ADAPTIVE_AVG:
            return (OpType.GLOBAL_AVG_POOL if glob else OpType.ADAPTIVE_AVG_POOL), {}
        return (OpType.GLOBAL_MAX_POOL if glob else OpType.ADAPTIVE_MAX_POOL), {}
    if name in ("max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
                "max_pool2d_with_indices"):
        ks = arg_at(args, kwargs, 1, "kernel_size")
        return op_from_name(name), ({"kernel": as_ints(ks)} if ks is not None else {})
    return op_from_name(name), {}


#: Activation-like parameter-free modules recognised by class name (torch and Hugging Face classes such
#: as ``NewGELUActivation``), matched in this order on the lower-cased name.
ACTIVATION_KEYWORDS: tuple[tuple[str, OpType], ...] = (
    ("hardswish", OpType.HARDSWISH), ("hardsigmoid", OpType.HARDSIGMOID), ("hardtanh", OpType.CLAMP),
    ("leakyrelu", OpType.LEAKY_RELU), ("relu6", OpType.CLAMP), ("relu", OpType.RELU), ("gelu", OpType.GELU),
    ("silu", OpType.SILU), ("swish", OpType.SILU), ("sigmoid", OpType.SIGMOID), ("tanh", OpType.TANH),
    ("mish", OpType.MISH), ("softplus", OpType.SOFTPLUS), ("elu", OpType.ELU), ("sine", OpType.SINE),
)

__all__ = ["OP_VOCAB_VERSION", "OpType", "classify", "conv_op", "normalize_name", "op_from_name"]
