"""Networks that write networks: graph hypernetworks that predict parameters from ComputeGraphs.

    >>> from weightzoo.hyper import GHN, predict_parameters, recalibrate_bn      # doctest: +SKIP
    >>> ghn = GHN.from_pretrained("runs/ghn/seed-0")                              # doctest: +SKIP
    >>> model = ghn.predict(MyNet())       # a copy with predicted parameters     # doctest: +SKIP

Names resolve lazily (PEP 562), so importing this package imports neither torch nor torch_geometric.
"""

from __future__ import annotations

from weightzoo.zoo import lazy_exports

_EXPORTS = {name: f"weightzoo.hyper.{module}" for name, module in {
    "GHN": "ghn", "ENCODERS": "ghn", "GraphInput": "graph_input", "graph_input": "graph_input",
    "ParameterTarget": "targets", "targets_of": "targets", "ShapeDecoder": "decoder",
    "Prediction": "predict", "PredictionReport": "predict", "predict_parameters": "predict",
    "recalibrate_bn": "bn", "batchnorm_layers": "bn",
}.items()}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = sorted(_EXPORTS)
