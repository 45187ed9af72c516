"""Versioned type vocabularies of weightzoo graphs (format v1).

Every integer id a graph carries (node type, edge type, activation, pooling, normalization) comes from
these enums, so graphs of different architectures — and graphs built by different weightzoo versions
with the same :data:`VOCAB_VERSION` — batch together and share embedding tables. Ids are append-only:
a new member gets the next free id; changing or removing an id bumps :data:`VOCAB_VERSION`.
"""

from __future__ import annotations

from enum import IntEnum

VOCAB_VERSION = 1


class NodeType(IntEnum):
    """What a node stands for."""

    INPUT = 0  #: an input feature / channel of the network
    HIDDEN = 1  #: a hidden neuron / channel
    OUTPUT = 2  #: an output neuron / channel
    FLATTEN = 3  #: one feature of a flattened C×H×W map (fed by its channel through a FLATTEN edge)


class EdgeType(IntEnum):
    """What an edge stands for."""

    LINEAR = 0  #: one entry of a Linear weight (value at the kernel-window centre)
    CONV1D = 1  #: one Conv1d kernel (centre row of the window)
    CONV2D = 2  #: one Conv2d kernel (centred in the window)
    RESIDUAL = 3  #: identity skip connection (value 1 at the window centre, no parameter)
    FLATTEN = 4  #: channel → flattened feature (value 1 at the window centre, no parameter)


class Activation(IntEnum):
    """Activation applied to a node (``NONE`` = identity)."""

    NONE = 0
    RELU = 1
    GELU = 2
    SILU = 3
    TANH = 4
    SIGMOID = 5
    LEAKY_RELU = 6  #: slope in the ``act_param`` node feature
    SINE = 7  #: sin(w0·x); w0 in the ``act_param`` node feature


class Pool(IntEnum):
    """Global pooling applied to a channel node before the dense head."""

    NONE = 0
    AVG = 1
    MAX = 2


class Norm(IntEnum):
    """Normalization whose per-neuron parameters a node carries."""

    NONE = 0
    BATCH = 1
    LAYER = 2
    GROUP = 3


#: Columns of ``ParameterGraph.node_values`` (the exact parameters; absent = 0).
NODE_VALUE_COLUMNS: tuple[str, ...] = ("bias", "norm_weight", "norm_bias", "running_mean", "running_var")

#: Columns of ``to_pyg().x``: the node values, then these per-node descriptors as floats.
NODE_FEATURE_COLUMNS: tuple[str, ...] = NODE_VALUE_COLUMNS + (
    "act_param", "layer", "position", "node_type", "activation", "pool", "norm",
)

ACTIVATION_IDS: dict[str, Activation] = {
    "identity": Activation.NONE, "relu": Activation.RELU, "gelu": Activation.GELU, "silu": Activation.SILU,
    "tanh": Activation.TANH, "sigmoid": Activation.SIGMOID, "leaky_relu": Activation.LEAKY_RELU,
    "sine": Activation.SINE,
}

__all__ = [
    "ACTIVATION_IDS", "Activation", "EdgeType", "NODE_FEATURE_COLUMNS", "NODE_VALUE_COLUMNS", "NodeType",
    "Norm", "Pool", "VOCAB_VERSION",
]
