"""Every model's prediction is invariant to zoo.symmetry hidden-neuron permutations of its input network
(random and trained networks), and reacts to a permutation that is not a symmetry (negative control).
The flat MLP is the exception by design: it is checked to *not* be invariant."""

from __future__ import annotations

import copy
import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from weightzoo.metanets.data import GraphDataset
from weightzoo.metanets.features import Featurizer
from weightzoo.metanets.models import MODELS, model_class
from weightzoo.metanets.train import TrainConfig, build_model
from weightzoo.zoo.arch import build_module
from weightzoo.zoo.graphs import ParameterGraph
from weightzoo.zoo.symmetry import permute_hidden

_spec = importlib.util.spec_from_file_location("_mn_conftest", Path(__file__).with_name("conftest.py"))
_conf = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
sys.modules["_mn_conftest"] = _conf
_spec.loader.exec_module(_conf)  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def ds(syn_zoo):  # type: ignore[no-untyped-def]
    return GraphDataset.from_zoo(syn_zoo, target="score", filters={"dataset": "syn"})


def _trained_cnn(seed: int) -> torch.nn.Module:
    from weightzoo.datasets.digits import digits_split

    sp = digits_split()
    torch.manual_seed(seed)
    m = build_module(_conf.cnn_spec("relu"))
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    y = sp.y_train[:256] % 3  # the head has 3 outputs
    for _ in range(15):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(m(sp.x_train[:256]), y).backward()
        opt.step()
    return m.eval()


def _model(name: str, ds: GraphDataset):  # type: ignore[no-untyped-def]
    if name.startswith("nfn"):
        pytest.importorskip("nfn")
    if getattr(model_class(name), "inr_only", False):
        pytest.skip("needs an INR (tests/metanets/test_inr.py covers it)")
    cfg = TrainConfig(model=name, target="score", filters={"dataset": "syn"},
                      model_options={"hidden": 16, "layers": 2} if name in ("gmn", "np", "hnp") else {})
    kind = model_class(name).input_kind
    f = Featurizer.fit(kind, ds)
    m = build_model(cfg, ds, f, seed=0)
    if getattr(m, "fit_only", False):
        tr = ds.indices("train")
        x = f.encode([ds.graphs[i] for i in tr], [ds.records[i] for i in tr])
        m.fit(x, torch.nan_to_num(x).sum(1))  # a target the features determine, so the trees are not constant
    m.eval()
    return m, f


def _predict(m, f, sd, record):  # type: ignore[no-untyped-def]
    g = ParameterGraph.from_spec(_conf.cnn_spec("relu"), sd)
    with torch.no_grad():
        return m(f.encode([g], [record])).reshape(-1)


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("source", ["random", "trained"])
def test_invariance_and_negative_control(name: str, source: str, ds) -> None:  # type: ignore[no-untyped-def]
    model, f = _model(name, ds)
    torch.manual_seed(3)
    net = build_module(_conf.cnn_spec("relu")) if source == "random" else _trained_cnn(1)
    sd = {k: v.detach() for k, v in net.state_dict().items()}
    rec = ds.records[ds.indices("test")[0]]  # settings for the hparams model (it sees no weights)
    y0 = _predict(model, f, sd, rec)
    sym = permute_hidden(sd, torch.Generator().manual_seed(7), spec=_conf.cnn_spec("relu"))
    y1 = _predict(model, f, sym, rec)
    bad = copy.copy(sd)  # permute the first conv's output channels but not the next conv's inputs: no symmetry
    p = torch.roll(torch.arange(4), 1)
    bad["0.weight"], bad["0.bias"] = sd["0.weight"][p], sd["0.bias"][p]
    y2 = _predict(model, f, bad, rec)
    if name == "mlp":
        assert (y0 - y1).abs().max() > 1e-6  # a flat vector moves with the permutation: no invariance by design
        return
    torch.testing.assert_close(y1, y0, atol=1e-4, rtol=1e-4)
    if name == "hparams":
        torch.testing.assert_close(y2, y0)  # sees no weights at all
    elif name.startswith("statnn"):
        # per-tensor statistics ignore *every* permutation inside a tensor (more than the symmetries): the
        # negative control for them is a change of values
        torch.testing.assert_close(y2, y0)
        scaled = {**sd, "0.weight": sd["0.weight"] * 3}
        assert (y0 - _predict(model, f, scaled, rec)).abs().max() > 1e-6
    else:
        assert (y0 - y2).abs().max() > 1e-6, f"{name} does not react to a change of function"
