"""Tests of weightzoo.analysis.stats and the `weightzoo stats` command, against NumPy/SciPy references on
random, trained (digits) and real (MiniLM) tensors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
import torch

from weightzoo.analysis.stats import StatsError, layer_stats, model_stats, spectral_norm, tensor_stats
from weightzoo.cli import main


def check_reference(t: torch.Tensor, s) -> None:
    x = t.detach().to(torch.float64).numpy()
    flat = x.reshape(-1)
    fin = flat[np.isfinite(flat)]
    assert s.numel == flat.size
    assert s.nan_count == int(np.isnan(flat).sum()) and s.inf_count == int(np.isinf(flat).sum())
    assert s.mean == pytest.approx(fin.mean(), rel=1e-9, abs=1e-12)
    assert s.std == pytest.approx(fin.std(), rel=1e-9)
    assert s.skewness == pytest.approx(scipy.stats.skew(fin), rel=1e-6, abs=1e-9)
    assert s.kurtosis == pytest.approx(scipy.stats.kurtosis(fin), rel=1e-6, abs=1e-9)  # excess (Fisher)
    assert s.l1 == pytest.approx(np.abs(fin).sum(), rel=1e-9)
    assert s.l2 == pytest.approx(np.linalg.norm(fin), rel=1e-9)
    assert s.linf == pytest.approx(np.abs(fin).max())
    assert s.near_zero == pytest.approx((np.abs(fin) < 0.01 * np.abs(fin).max()).mean())
    if x.ndim >= 2:
        m = np.where(np.isfinite(x), x, 0).reshape(x.shape[0], -1)
        sv = np.linalg.svd(m, compute_uv=False)
        assert s.spectral_norm == pytest.approx(np.linalg.norm(m, 2), rel=1e-5)
        assert s.stable_rank == pytest.approx(np.linalg.norm(m, "fro") ** 2 / sv[0] ** 2, rel=1e-4)
        p = sv / sv.sum()
        p = p[p > 0]
        assert s.effective_rank == pytest.approx(math.exp(-(p * np.log(p)).sum()), rel=1e-4)
    else:
        assert s.spectral_norm is None and s.effective_rank is None


def test_random_tensors_match_numpy_reference() -> None:
    g = torch.Generator().manual_seed(0)
    for shape in [(100,), (32, 64), (16, 8, 3, 3)]:
        t = torch.randn(shape, generator=g) ** 3  # skewed and heavy-tailed
        check_reference(t, tensor_stats(t))


def test_trained_digits_layers_match_numpy_reference(digits_cnn, digits_mlp) -> None:
    for model in (digits_cnn, digits_mlp):
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                check_reference(t, tensor_stats(t, name=name))


def test_real_minilm_tensors_match_numpy_reference(minilm_dir: Path) -> None:
    from weightzoo.zoo.store.resolve import load_state_dict

    sd = load_state_dict(minilm_dir)
    names = [n for n in sd if n.endswith(("attention.self.query.weight", "intermediate.dense.weight", "LayerNorm.weight"))][:4]
    assert names
    for n in names:
        check_reference(sd[n], tensor_stats(sd[n], name=n))


def test_effective_and_stable_rank_of_known_matrices() -> None:
    s = tensor_stats(torch.eye(6))
    assert s.effective_rank == pytest.approx(6.0) and s.stable_rank == pytest.approx(6.0) and s.spectral_norm == pytest.approx(1.0)
    r1 = torch.outer(torch.arange(1.0, 5.0), torch.arange(1.0, 4.0))
    s1 = tensor_stats(r1)
    assert s1.effective_rank == pytest.approx(1.0, abs=1e-5) and s1.stable_rank == pytest.approx(1.0, rel=1e-5)


def test_nan_and_inf_are_counted_and_excluded() -> None:
    t = torch.randn(20, 10, generator=torch.Generator().manual_seed(1))
    t[0, 0] = float("nan")
    t[3, 4] = float("inf")
    t[5, 5] = -float("inf")
    s = tensor_stats(t)
    assert s.nan_count == 1 and s.inf_count == 2
    check_reference(t, s)
    d = s.as_dict()
    json.dumps(d, allow_nan=False)
    all_nan = tensor_stats(torch.full((3, 3), float("nan")))
    assert all_nan.nan_count == 9 and all_nan.as_dict()["mean"] is None


def test_half_precision_computed_in_float32() -> None:
    t = torch.randn(64, 32, generator=torch.Generator().manual_seed(2))
    for dt in (torch.bfloat16, torch.float16):
        h = t.to(dt)
        s = tensor_stats(h)
        assert s.dtype == str(dt).removeprefix("torch.")
        check_reference(h.to(torch.float32), s)


def test_lanczos_spectral_norm_matches_numpy(digits_mlp) -> None:
    rng = np.random.default_rng(0)
    for m in [rng.standard_normal((300, 120)), digits_mlp[1].weight.detach().double().numpy(), rng.standard_normal((50, 400))]:
        assert spectral_norm(m) == pytest.approx(np.linalg.norm(m, 2), rel=1e-5)
    t = torch.tensor(rng.standard_normal((200, 100)), dtype=torch.float32)
    s = tensor_stats(t, max_svd_flops=0)  # forces the Lanczos path
    assert s.spectral_method == "lanczos" and math.isnan(s.effective_rank)
    assert s.spectral_norm == pytest.approx(np.linalg.norm(t.double().numpy(), 2), rel=1e-5)
    with pytest.raises(StatsError):
        spectral_norm(np.zeros(3))
    with pytest.raises(StatsError):
        tensor_stats(torch.zeros(3, dtype=torch.bool))


def test_model_and_layer_tables(digits_cnn) -> None:
    rows = list(model_stats(digits_cnn, model_name="cnn"))
    names = [r.tensor for r in rows]
    assert "1.running_mean" in names and "1.num_batches_tracked" not in names  # integer tensors skipped
    layers = {r["layer"]: r for r in layer_stats(rows)}
    w, b = digits_cnn[3].weight.detach().double(), digits_cnn[3].bias.detach().double()
    l3 = layers["3"]
    assert l3["numel"] == w.numel() + b.numel()
    assert l3["l2"] == pytest.approx(float(torch.cat([w.flatten(), b]).norm()), rel=1e-9)
    assert l3["mean"] == pytest.approx(float(torch.cat([w.flatten(), b]).mean()), rel=1e-9)
    assert l3["spectral_norm"] == pytest.approx(float(torch.linalg.matrix_norm(w.reshape(16, -1), 2)), rel=1e-5)


def _save(model, path: Path) -> Path:
    from safetensors.torch import save_file

    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def test_cli_stats_json_on_checkpoint(tmp_path: Path, digits_mlp, capsys) -> None:
    p = _save(digits_mlp, tmp_path / "mlp.safetensors")
    assert main(["stats", str(p), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert sorted(r["tensor"] for r in rows) == sorted(digits_mlp.state_dict())
    w = digits_mlp[1].weight.detach().double().numpy()
    r = next(r for r in rows if r["tensor"] == "1.weight")
    assert r["model"] == str(p) and r["shape"] == [32, 64]
    assert r["spectral_norm"] == pytest.approx(np.linalg.norm(w, 2), rel=1e-5)
    assert r["kurtosis"] == pytest.approx(scipy.stats.kurtosis(w.ravel()), rel=1e-6)
    assert main(["stats", str(p), "--layers", "--json"]) == 0
    assert [r["layer"] for r in json.loads(capsys.readouterr().out)] == ["1", "3", "5"]
    assert main(["stats", str(p)]) == 0
    assert "spectral" not in capsys.readouterr().err
    assert main(["stats", str(tmp_path / "nope.safetensors")]) == 1
    assert main(["stats"]) == 1
    assert main(["stats", "--all"]) == 1


@pytest.mark.slow
def test_cli_stats_on_real_minilm(minilm_dir: Path, capsys) -> None:
    assert main(["stats", str(minilm_dir), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) >= 100 and all(r["nan_count"] == 0 for r in rows)
    emb = next(r for r in rows if r["tensor"].endswith("word_embeddings.weight"))
    assert emb["shape"] == [30522, 384] and 1 < emb["effective_rank"] <= 384


def test_cli_stats_all_models_of_a_zoo(tmp_path: Path, digits_cnn, digits_mlp, capsys) -> None:
    store = pytest.importorskip("weightzoo.zoo.store")
    with store.Zoo.open(tmp_path / "zoo") as z:
        z.ingest(digits_cnn, name="cnn")
        z.ingest(digits_mlp, name="mlp")
    assert main(["stats", "--all", "--zoo", str(tmp_path / "zoo"), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["model"] for r in rows} == {"cnn", "mlp"}
    mlp_w = next(r for r in rows if r["model"] == "mlp" and r["tensor"] == "1.weight")
    assert mlp_w["l2"] == pytest.approx(float(digits_mlp[1].weight.detach().double().norm()), rel=1e-6)
    assert main(["stats", "mlp", "--zoo", str(tmp_path / "zoo"), "--json"]) == 0
    assert {r["model"] for r in json.loads(capsys.readouterr().out)} == {"mlp"}
