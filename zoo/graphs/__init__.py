"""Graphs of networks: ParameterGraph (neurons and weights) and its versioned type vocabulary.

Importing this package imports torch but not torch_geometric (``ParameterGraph.to_pyg`` imports it).
"""

from __future__ import annotations

from .compute_graph import ComputeGraph, Coverage, OpNode
from .layout import Layout, NeuronGroup, ParamSlot, Skipped, layout_of
from .ops import OP_VOCAB_VERSION, OpType
from .parameter_graph import DEFAULT_MAX_KERNEL, GRAPH_FORMAT, TRANSFORMER_MAX_KERNEL, ParameterGraph
from .views import GraphView, layer_views, sampled_view
from .vocab import (
    NODE_FEATURE_COLUMNS,
    NODE_VALUE_COLUMNS,
    VOCAB_VERSION,
    Activation,
    EdgeType,
    NodeType,
    Norm,
    Pool,
)

__all__ = [
    "Activation",
    "ComputeGraph",
    "Coverage",
    "DEFAULT_MAX_KERNEL",
    "EdgeType",
    "GRAPH_FORMAT",
    "GraphView",
    "Layout",
    "NODE_FEATURE_COLUMNS",
    "NODE_VALUE_COLUMNS",
    "NeuronGroup",
    "NodeType",
    "Norm",
    "OP_VOCAB_VERSION",
    "OpNode",
    "OpType",
    "ParamSlot",
    "ParameterGraph",
    "Pool",
    "Skipped",
    "TRANSFORMER_MAX_KERNEL",
    "VOCAB_VERSION",
    "layer_views",
    "layout_of",
    "sampled_view",
]
