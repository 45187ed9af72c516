"""Tests of weightzoo.analysis.filters and the `weightzoo filters` command.

Metrics are checked against direct NumPy implementations of CNN Filter DB's definitions, on random and on
really trained (digits) conv layers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from weightzoo.analysis.filters import (
    DegenerationThresholds,
    FilterAnalysisError,
    FilterPCA,
    FilterTable,
    distribution_shift,
    group_shift,
    iter_conv_layers,
    layer_quality,
    layer_sparsity_vectorized,
    normalize_filters,
    random_reference_entropy,
    scan_filters,
    sparsity_mask,
)
from weightzoo.cli import main

# --- direct NumPy references (the definitions, written the obvious way) ------------------------------


def ref_sparsity(w: np.ndarray, eps: float = 0.01) -> tuple[float, np.ndarray]:
    k = w.reshape(-1, w.shape[-1] * w.shape[-2])
    t = np.abs(w).max() * eps
    t = t if t > 0 else 1.0
    mask = np.array([np.all(np.abs(row) < t) for row in k])
    return mask.mean(), mask


def ref_entropy(x: np.ndarray) -> float:
    x = x.astype(np.float64)
    if len(x) < 2:
        return 0.0
    s = np.linalg.svd(x - x.mean(axis=0), compute_uv=False)
    lam = s**2 / (len(x) - 1)
    if lam.sum() == 0:
        return 0.0
    p = lam / lam.sum()
    return float(-sum(pi * math.log10(pi) for pi in p if pi > 0))


def ref_orthogonality(w: np.ndarray) -> float:
    m = w.reshape(w.shape[0], -1).astype(np.float64)
    n = m.shape[0]
    norms = np.linalg.norm(m, axis=1)
    norms[norms == 0] = 1
    m = m / norms[:, None]
    return 1 - np.abs(m @ m.T - np.eye(n)).sum() / (n * (n - 1))


def ref_h(n: int) -> float:
    return 1.2618047 / (1 + np.exp(-0.88767525 * (np.log2(n) - 2.30436435))) - 0.31050834


def check_against_reference(w: np.ndarray) -> None:
    q = layer_quality(w)
    sp, mask = ref_sparsity(w)
    flat = w.reshape(-1, 9)
    assert q.n_filters == flat.shape[0]
    assert q.sparsity == pytest.approx(sp, abs=1e-12)
    assert q.variance_entropy == pytest.approx(ref_entropy(flat), abs=1e-9)
    assert q.variance_entropy_clean == pytest.approx(ref_entropy(flat[~mask]), abs=1e-9)
    assert q.variance_entropy_ratio == pytest.approx(ref_entropy(flat) / ref_h(len(flat)), rel=1e-9)
    assert q.orthogonality == pytest.approx(ref_orthogonality(w), abs=1e-9)
    assert q.l1 == pytest.approx(np.abs(w.astype(np.float64)).sum(), rel=1e-9)
    assert q.l2 == pytest.approx(np.linalg.norm(w.astype(np.float64)), rel=1e-9)


def test_metrics_equal_numpy_reference_on_random_layers() -> None:
    rng = np.random.default_rng(0)
    for shape in [(16, 8, 3, 3), (64, 32, 3, 3), (5, 1, 3, 3)]:
        w = rng.standard_normal(shape).astype(np.float32)
        w[: shape[0] // 3] *= 1e-4  # some sparse kernels, so the clean entropy differs
        check_against_reference(w)


def test_metrics_equal_numpy_reference_on_trained_layers(digits_cnn) -> None:
    convs = [m for m in digits_cnn.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 3
    for conv in convs:
        check_against_reference(conv.weight.detach().numpy())


def test_all_zero_layer_is_fully_sparse_with_zero_entropy() -> None:
    q = layer_quality(np.zeros((8, 4, 3, 3), np.float32))
    assert q.sparsity == 1.0 and q.variance_entropy == 0.0
    assert "high_sparsity" in q.flags


def test_random_gaussian_layers_score_entropy_ratio_near_one() -> None:
    g = torch.Generator().manual_seed(1)
    for c_out, c_in in [(16, 8), (64, 64), (128, 32), (256, 256)]:
        w = torch.randn(c_out, c_in, 3, 3, generator=g)
        q = layer_quality(w)
        assert 0.98 <= q.variance_entropy_ratio <= 1.03, (c_out, c_in, q.variance_entropy_ratio)
        assert q.flags == ("random_like",)
    # other kernel sizes use the Monte-Carlo reference
    w5 = torch.randn(32, 16, 5, 5, generator=g)
    assert layer_quality(w5).variance_entropy_ratio == pytest.approx(1.0, abs=0.02)


def test_reference_curve_values_and_limits() -> None:
    assert random_reference_entropy(4096) == pytest.approx(ref_h(4096))
    assert random_reference_entropy(10**9) < math.log10(9)
    assert random_reference_entropy(2) <= 0  # no meaningful reference: ratio is NaN there
    assert math.isnan(layer_quality(np.random.default_rng(0).standard_normal((2, 1, 3, 3))).variance_entropy_ratio)
    with pytest.raises(FilterAnalysisError):
        random_reference_entropy(100, 5, method="fit")
    with pytest.raises(FilterAnalysisError):
        random_reference_entropy(0)


def test_trained_then_pruned_layer_is_flagged(digits_cnn) -> None:
    w = digits_cnn[5].weight.detach().clone()  # 16×16×3×3, trained
    assert "high_sparsity" not in layer_quality(w).flags
    flat = w.reshape(-1, 9)
    keep = torch.randperm(flat.shape[0], generator=torch.Generator().manual_seed(0))[: flat.shape[0] // 5]
    pruned = torch.zeros_like(flat)
    pruned[keep] = flat[keep]
    q = layer_quality(pruned.reshape(w.shape))
    assert q.sparsity == pytest.approx(0.8, abs=0.01)
    assert "high_sparsity" in q.flags
    # a stricter threshold object is honoured, and invalid thresholds are refused
    assert "high_sparsity" not in layer_quality(pruned.reshape(w.shape), thresholds=DegenerationThresholds(sparsity=0.9)).flags
    with pytest.raises(FilterAnalysisError):
        DegenerationThresholds(sparsity=0.0)


def test_low_diversity_flag_on_rank_one_filters() -> None:
    rng = np.random.default_rng(0)
    base = rng.standard_normal(9)
    w = (rng.standard_normal((64, 8, 1)) * base).reshape(64, 8, 3, 3) + 1e-3 * rng.standard_normal((64, 8, 3, 3))
    assert "low_diversity" in layer_quality(w).flags


def test_conv_layers_found_from_shapes_with_depth_and_groups(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3), nn.Conv2d(8, 8, 3, groups=8), nn.Conv2d(8, 16, 1), nn.Conv2d(16, 16, 5), nn.Linear(4, 4)
    )
    exact = list(iter_conv_layers(model, kernel=None, model_name="m"))
    assert [c.layer for c in exact] == ["0", "1", "2", "3"]
    assert [c.depth for c in exact] == [0, 1, 2, 3]
    assert [c.normalized_depth for c in exact] == pytest.approx([0, 1 / 3, 2 / 3, 1])
    assert [c.groups for c in exact] == [1, 8, 1, 1] and not any(c.groups_inferred for c in exact)
    # 3×3 only by default; depth still counts every conv
    assert [(c.layer, c.depth) for c in iter_conv_layers(model)] == [("0", 0), ("1", 1)]
    # from a checkpoint file: groups inferred (first conv with one input channel is not depthwise)
    path = tmp_path / "m.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    inferred = list(iter_conv_layers(path, kernel=None))
    assert [c.groups for c in inferred] == [1, 8, 1, 1] and all(c.groups_inferred for c in inferred)
    assert [c.layer for c in inferred] == ["0", "1", "2", "3"]


def test_minilm_has_no_conv_layers(minilm_dir: Path) -> None:
    scan = scan_filters([minilm_dir])
    assert scan.table.n_layers == 0 and len(scan.table) == 0
    assert scan.skipped == [str(minilm_dir)]


def test_vectorised_sparsity_and_normalisation_match_per_layer_loop() -> None:
    rng = np.random.default_rng(3)
    layers = [rng.standard_normal((n, 9)).astype(np.float32) * rng.uniform(0.01, 1, (n, 1)).astype(np.float32) for n in (5, 70, 1, 300)]
    layers[1][:10] = 0
    x = np.concatenate(layers)
    offsets = np.cumsum([0, *(len(layer) for layer in layers)])
    mask, sp = layer_sparsity_vectorized(x, offsets)
    for i, layer in enumerate(layers):
        m = sparsity_mask(layer)
        assert np.array_equal(mask[offsets[i] : offsets[i + 1]], m)
        assert sp[i] == pytest.approx(m.mean())
    xn = normalize_filters(x)
    for row, nrow in zip(x[:50], xn[:50]):
        assert np.allclose(nrow, row / (np.abs(row).max() or 1.0), atol=1e-7)


def test_pca_matches_sklearn_and_projection_matches_naive() -> None:
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(0)
    x = (rng.standard_normal((5000, 9)) @ rng.standard_normal((9, 9))).astype(np.float32)
    x[:7] = 0  # all-zero filters stay zero when normalised
    pca = FilterPCA(3).fit(x)
    sk = PCA(n_components=9).fit(normalize_filters(x))
    assert np.allclose(pca.explained_variance_ratio, sk.explained_variance_ratio_, atol=1e-5)
    assert np.allclose(np.abs(pca.components @ sk.components_.T), np.eye(9), atol=1e-3)
    coeffs = pca.transform(x)
    naive = (normalize_filters(x).astype(np.float64) - pca.mean) @ pca.components.T
    assert coeffs.shape == (5000, 9)
    assert np.allclose(coeffs, naive, atol=1e-4)
    with pytest.raises(FilterAnalysisError):
        FilterPCA(3).transform(x)


def test_shift_is_zero_for_identical_groups_and_grows_with_a_shift() -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((20000, 9)).astype(np.float32)
    b = rng.standard_normal((20000, 9)).astype(np.float32)
    evr = np.full(9, 1 / 9)
    assert distribution_shift(a, a, evr) == pytest.approx(0.0, abs=1e-9)
    same = distribution_shift(a, b, evr)
    shifted = distribution_shift(a, b + 1.0, evr)
    assert 0 <= same < 0.05 and shifted > 10 * same and shifted > 0.5
    with pytest.raises(FilterAnalysisError):
        distribution_shift(a[:0], b, evr)


def test_group_shift_on_trained_versus_random_models(digits_cnn) -> None:
    torch.manual_seed(0)
    rnd = nn.Sequential(nn.Conv2d(1, 8, 3), nn.Conv2d(8, 16, 3), nn.Conv2d(16, 16, 3))
    rnd2 = nn.Sequential(nn.Conv2d(1, 8, 3), nn.Conv2d(8, 16, 3), nn.Conv2d(16, 16, 3))
    scan = scan_filters([("trained", digits_cnn), ("random", rnd), ("random2", rnd2)])
    res = group_shift(scan.table, "model")
    assert res.groups == ["random", "random2", "trained"]
    assert res.sizes == [392, 392, 392]
    m = res.matrix
    assert np.allclose(m, m.T) and np.allclose(np.diag(m), 0, atol=1e-9)
    assert m[0, 1] < m[0, 2] and m[0, 1] < m[1, 2]  # two random inits are closer than random vs trained
    assert res.pca.explained_variance_ratio.sum() == pytest.approx(1.0)
    with pytest.raises(FilterAnalysisError, match="available keys"):
        scan.table.group_layers("task")


def test_hdf5_and_csv_round_trip(tmp_path: Path, digits_cnn) -> None:
    scan = scan_filters([("cnn", digits_cnn)])
    t = scan.table
    h5 = t.to_hdf5(tmp_path / "t.h5")
    back = FilterTable.from_hdf5(h5)
    assert np.array_equal(back.filters, t.filters) and back.filters.dtype == np.float32
    assert np.array_equal(back.offsets, t.offsets) and back.kernel == 3
    for a, b in zip(back.layers, t.layers):
        assert a["model"] == b["model"] and a["layer"] == b["layer"] and a["depth"] == b["depth"]
        assert a["sparsity"] == pytest.approx(b["sparsity"]) and a["flags"] == b["flags"]
    # the 'meta' dataset is CNN Filter DB's CSV with inclusive "first:last" filter_ids
    import h5py

    with h5py.File(h5) as f:
        meta = bytes(f["meta"][...]).decode()
        assert f["filters"].shape == (392, 9)
    assert meta.splitlines()[0].endswith("filter_ids") and meta.splitlines()[1].endswith(",0:7")
    csv_path = t.to_csv(tmp_path / "t.csv")
    lines = csv_path.read_text().splitlines()
    assert len(lines) == 1 + len(t)
    header = lines[0].split(",")
    row = dict(zip(header, lines[9].split(",")))  # filter 8 = first filter of the second conv
    assert row["layer"] == "3" and row["depth"] == "1"
    assert [float(row[f"w{j}"]) for j in range(9)] == pytest.approx(t.filters[8].tolist())


def test_streaming_scan_writes_hdf5_with_bounded_memory(tmp_path: Path, digits_cnn) -> None:
    out = tmp_path / "zoo.h5"
    scan = scan_filters([("a", digits_cnn), ("b", digits_cnn)], out=out)
    try:
        assert len(scan.table) == 784 and not isinstance(scan.table.filters, np.ndarray)
        res = group_shift(scan.table, "model")
        assert res.matrix[0, 1] == pytest.approx(0.0, abs=1e-9)  # same weights under two names
    finally:
        scan.table.close()
    assert FilterTable.from_hdf5(out).n_layers == 6


def test_to_pandas_when_available(digits_cnn) -> None:
    pytest.importorskip("pandas")
    df = scan_filters([("cnn", digits_cnn)]).table.to_pandas()
    assert len(df) == 392 and {"model", "layer", "depth", "w8"} <= set(df.columns)


# --- CLI ---------------------------------------------------------------------------------------------


def _save(model: nn.Module, path: Path) -> Path:
    from safetensors.torch import save_file

    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def test_cli_json_records_per_conv_layer(tmp_path: Path, digits_cnn, capsys) -> None:
    p = _save(digits_cnn, tmp_path / "cnn.safetensors")
    assert main(["filters", str(p), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    layers = out["layers"]
    assert [r["layer"] for r in layers] == ["0", "3", "5"]
    for r, conv in zip(layers, [digits_cnn[0], digits_cnn[3], digits_cnn[5]]):
        assert {"model", "layer", "n_filters", "sparsity", "variance_entropy", "orthogonality"} <= set(r)
        assert r["model"] == str(p)
        assert r["n_filters"] == conv.weight.shape[0] * conv.weight.shape[1]
        assert r["variance_entropy"] == pytest.approx(ref_entropy(conv.weight.detach().numpy().reshape(-1, 9)), abs=1e-9)
    assert out["shift"] is None


def test_cli_by_model_with_table_and_plots(tmp_path: Path, digits_cnn, capsys) -> None:
    torch.manual_seed(0)
    rnd = nn.Sequential(nn.Conv2d(1, 8, 3), nn.Conv2d(8, 16, 3))
    a = _save(digits_cnn, tmp_path / "trained.safetensors")
    b = _save(rnd, tmp_path / "random.safetensors")
    out_h5, plots = tmp_path / "table.h5", tmp_path / "plots"
    rc = main(["filters", str(a), str(b), "--by", "model", "--out", str(out_h5), "--plots", str(plots), "--json"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    assert len(res["layers"]) == 5 and res["shift"]["groups"] == [str(b), str(a)]
    mat = np.array(res["shift"]["matrix"])
    assert mat.shape == (2, 2) and mat[0, 1] > 0 and mat[0, 1] == pytest.approx(mat[1, 0])
    assert FilterTable.from_hdf5(out_h5).n_layers == 5
    assert {p.name for p in plots.iterdir()} == {"layer_metrics.png", "pca_basis.png", "coefficients.png", "shift_heatmap.png"}
    # text output and CSV export
    csv_out = tmp_path / "t.csv"
    assert main(["filters", str(a), "--out", str(csv_out)]) == 0
    assert "variance" not in capsys.readouterr().err and csv_out.read_text().count("\n") == 393


def test_cli_zero_conv_layers_and_errors(tmp_path: Path, digits_mlp, capsys) -> None:
    p = _save(digits_mlp, tmp_path / "mlp.safetensors")
    assert main(["filters", str(p), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["layers"] == [] and out["skipped"] == [str(p)]
    assert main(["filters", str(p), "--by", "model"]) == 1
    assert "no 3×3 conv filters" in capsys.readouterr().err
    assert main(["filters", str(tmp_path / "missing.safetensors")]) == 1
    assert main(["filters", str(p), "--kernel", "0"]) == 1
    assert main(["filters", str(p), "--out", str(tmp_path / "x.txt")]) == 1
    assert main(["filters"]) == 1


def test_cli_on_a_zoo_by_task(tmp_path: Path, digits_cnn, capsys) -> None:
    store = pytest.importorskip("weightzoo.zoo.store")
    torch.manual_seed(0)
    other = nn.Sequential(nn.Conv2d(1, 8, 3), nn.Conv2d(8, 16, 3))
    with store.Zoo.open(tmp_path / "zoo") as z:
        z.ingest(digits_cnn, name="digits-cnn", metadata={"task": "digits"})
        z.ingest(other, name="random-cnn", metadata={"task": "none"})
    rc = main(["filters", "--zoo", str(tmp_path / "zoo"), "--by", "task", "--json"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    assert {r["model"] for r in res["layers"]} == {"digits-cnn", "random-cnn"}
    assert all(r["task"] in ("digits", "none") for r in res["layers"])
    assert res["shift"]["groups"] == ["digits", "none"] and res["shift"]["matrix"][0][1] > 0
    assert main(["filters", "--zoo", str(tmp_path / "zoo"), "--models", "digits-cnn", "--json"]) == 0
    assert {r["model"] for r in json.loads(capsys.readouterr().out)["layers"]} == {"digits-cnn"}


@pytest.mark.parametrize("shape", [(64, 64, 1, 3), (64, 64, 3, 1), (64, 64, 1, 7)])
def test_non_square_kernels_use_a_reference_of_their_own_size(shape) -> None:
    from weightzoo.analysis.filter_metrics import layer_quality

    w = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    q = layer_quality(w)
    assert 0.95 <= q.variance_entropy_ratio <= 1.05, q  # random filters are as diverse as random filters
    assert "low_diversity" not in q.flags
