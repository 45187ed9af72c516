"""Versioned type vocabularies of weightzoo graphs (vocabulary v3: v2 plus the types of recorded graphs of
any module — plain parameters, unused parameters, concatenation/slice segments).

Every integer id a graph carries (node type, edge type, activation, pooling, normalization) comes from
these enums, so graphs of different architectures — and graphs built by different weightzoo versions
with the same :data:`VOCAB_VERSION` — batch together and share embedding tables. Ids are append-only:
a new member gets the next free id and bumps :data:`VOCAB_VERSION` (older files keep loading, see
:data:`COMPATIBLE_VOCAB_VERSIONS`); changing or removing an id would break that and is never done.
"""

from __future__ import annotations

from enum import IntEnum

VOCAB_VERSION = 3

#: Vocabulary versions whose ids mean the same in this one (append-only), so their graph files still load.
COMPATIBLE_VOCAB_VERSIONS = (1, 2, 3)


class NodeType(IntEnum):
    """What a node stands for."""

    INPUT = 0  #: an input feature / channel of the network
    HIDDEN = 1  #: a hidden neuron / channel
    OUTPUT = 2  #: an output neuron / channel
    FLATTEN = 3  #: one feature of a flattened C×H×W map (fed by its channel through a FLATTEN edge)
    # --- v2: transformers -------------------------------------------------------------------------
    EMBEDDING = 4  #: K consecutive rows of an embedding table (K = the edge window; position = chunk index)
    STREAM = 5  #: one dimension of the residual stream, shared by every block
    QUERY = 6  #: one query dimension of one head (its head: the HEAD node its ATTN_SCORE edge reaches)
    KEY = 7  #: one key dimension of one key/value head
    VALUE = 8  #: one value dimension of one key/value head
    HEAD = 9  #: one attention head: scores softmax(q·k) of its query and key dims
    ATTENTION = 10  #: one dimension of one head's attention output Σ softmax·v
    TIED_EMBEDDING = 11  #: an EMBEDDING chunk of a table that is also the output head (tied weights)
    # --- v3: any module (recorded graphs) ---------------------------------------------------------
    PARAMETER = 12  #: K consecutive rows of a plain parameter used in ``forward`` (class token, position table)
    UNUSED = 13  #: one entry-column of a parameter the forward pass never touched (isolated, kept for the round trip)


class EdgeType(IntEnum):
    """What an edge stands for."""

    LINEAR = 0  #: one entry of a Linear weight (value at the kernel-window centre)
    CONV1D = 1  #: one Conv1d kernel (centre row of the window)
    CONV2D = 2  #: one Conv2d kernel (centred in the window)
    RESIDUAL = 3  #: identity skip connection (value 1 at the window centre, no parameter)
    FLATTEN = 4  #: channel → flattened feature (value 1 at the window centre, no parameter)
    # --- v2: transformers -------------------------------------------------------------------------
    EMBEDDING = 5  #: embedding chunk → stream dim; feature = the chunk's K table rows of that dim (packed)
    ATTN_Q = 6  #: one entry of a query projection (input → QUERY)
    ATTN_K = 7  #: one entry of a key projection (input → KEY)
    ATTN_V = 8  #: one entry of a value projection (input → VALUE)
    ATTN_O = 9  #: one entry of an attention output projection (ATTENTION → output neuron)
    ATTN_SCORE = 10  #: QUERY/KEY dim → its HEAD (value 1, no parameter; a key reaches every head of its group)
    ATTN_MIX = 11  #: HEAD → its ATTENTION dims, and VALUE dim → ATTENTION dim of each head using it (value 1)
    NORM = 12  #: stream dim → the same dim of a normalization's nodes (value 1, no parameter)
    GATE = 13  #: gate neuron → the up neuron it multiplies (SwiGLU/GeGLU; value 1, no parameter)
    UNEMBED = 14  #: final features → output-head chunk; feature = K rows of an untied output head (packed)
    # --- v3: any module (recorded graphs) ---------------------------------------------------------
    SEGMENT = 15  #: channel → its place in a concatenation, or in a slice of a fused layer (value 1, no parameter)
    PARAMETER = 16  #: plain-parameter chunk → channel; feature = the chunk's K rows of that channel (packed)


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
    ROTARY = 8  #: rotary position embedding applied to query/key dims; base θ in ``act_param``
    GELU_TANH = 9  #: GELU with the tanh approximation (GPT-2's ``gelu_new``)


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
    RMS = 4  #: RMSNorm (weight only, no centring)


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

#: Hugging Face ``hidden_act`` names → activation ids (transformer graphs).
HF_ACTIVATION_IDS: dict[str, Activation] = {
    "gelu": Activation.GELU, "gelu_new": Activation.GELU_TANH, "gelu_pytorch_tanh": Activation.GELU_TANH,
    "gelu_fast": Activation.GELU_TANH, "relu": Activation.RELU, "silu": Activation.SILU, "swish": Activation.SILU,
    "tanh": Activation.TANH, "sigmoid": Activation.SIGMOID, "identity": Activation.NONE, "linear": Activation.NONE,
}

__all__ = [
    "ACTIVATION_IDS", "COMPATIBLE_VOCAB_VERSIONS", "HF_ACTIVATION_IDS", "Activation", "EdgeType",
    "NODE_FEATURE_COLUMNS", "NODE_VALUE_COLUMNS", "NodeType", "Norm", "Pool", "VOCAB_VERSION",
]
