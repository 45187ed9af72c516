"""Draw docs/img/cnn_graph.png: the ParameterGraph of a small residual CNN (run from the repo root).

    .venv/bin/python docs/make_graph_figure.py
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from weightzoo.zoo.arch import Residual
from weightzoo.zoo.graphs import ParameterGraph
from weightzoo.zoo.graphs.draw import draw_parameter_graph

torch.manual_seed(0)
cnn = nn.Sequential(
    nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
    Residual(nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1))), nn.ReLU(),
    nn.Conv2d(4, 6, 3, padding=1, groups=2), nn.ReLU(),
    nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3),
)
graph = ParameterGraph.from_module(cnn)
out = Path(__file__).parent / "img" / "cnn_graph.png"
out.parent.mkdir(exist_ok=True)
draw_parameter_graph(graph, out, title="Small CNN: conv+BN, residual block, grouped conv (groups=2), global pool, linear")
print(graph, "→", out)
