"""Merging: every method against a dense reference written here, on real MiniLM weights (with seeded
synthetic fine-tunes) and on digits models fine-tuned for real; streaming writer; CLI end to end.

Sign ties (TIES): a zero sum of weighted deltas elects +, as in mergekit; the references below do the same.
Trimming keeps every entry whose magnitude is >= the k-th largest (entries tied with it are all kept).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from weightzoo.analysis.merging import (
    global_magnitude_threshold,
    magnitude_threshold,
    merge,
    save_merged,
    tensor_seed,
)
from weightzoo.cli import main
from weightzoo.errors import InvalidOptionError, ShapeMismatchError, TensorNotFoundError

TOL = 1e-6


# --- fixtures: real MiniLM weights, seeded synthetic fine-tunes ------------------------------------


def _minilm_subset(minilm_dir: Path) -> dict[str, torch.Tensor]:
    """Real MiniLM tensors: embeddings (not the 47 MB word table), layer 0's attention, the int64 position ids."""
    sd = load_file(str(minilm_dir / "model.safetensors"))
    keep = {k: v for k, v in sd.items() if (k.startswith("embeddings.") and "word_embeddings" not in k)
            or k.startswith("encoder.layer.0.attention.")}
    assert "embeddings.position_ids" in keep
    return keep


def _finetune(base: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, v in base.items():
        if not v.is_floating_point():
            out[k] = v.clone()
            continue
        scale = float(v.std()) if v.numel() > 1 else 0.02
        dense = 0.01 * scale * torch.randn(v.shape, generator=g)
        sparse = 0.2 * scale * torch.randn(v.shape, generator=g) * (torch.rand(v.shape, generator=g) < 0.1)
        out[k] = v + dense + sparse
    return out


@pytest.fixture(scope="module")
def minilm_models(tmp_path_factory, minilm_dir):
    d = tmp_path_factory.mktemp("minilm_merge")
    base = _minilm_subset(minilm_dir)
    save_file(base, str(d / "base.safetensors"))
    paths = []
    for i in range(3):
        ft = _finetune(base, 100 + i)
        p = d / f"ft{i}.safetensors"
        save_file(ft, str(p))
        paths.append(p)
    bf = {k: (v.to(torch.bfloat16) if v.is_floating_point() else v) for k, v in load_file(str(paths[1])).items()}
    save_file(bf, str(d / "ft1_bf16.safetensors"))
    return d


def _load(p: Path) -> dict[str, torch.Tensor]:
    return load_file(str(p))


# --- dense references (whole model at once, deliberately different code paths) ---------------------


def _kth_largest_sorted(values: torch.Tensor, density: float) -> float:
    n = values.numel()
    k = int(density * n)
    if k <= 0:
        return math.inf
    return float(values.kthvalue(n - k + 1).values)  # torch's selection, not the numpy one merging uses


def ref_ties(base, fts, weights, density, lam=1.0, normalize=True, trim="tensor", dare_seed=None):
    names = [k for k, v in base.items() if v.is_floating_point()]
    deltas = [{k: ft[k].float() - base[k].float() for k in names} for ft in fts]
    if dare_seed is None:
        if trim == "global":
            thr = [_kth_largest_sorted(torch.cat([d[k].abs().flatten() for k in names]), density) for d in deltas]
            for d, t in zip(deltas, thr):
                for k in names:
                    d[k] = torch.where(d[k].abs() >= t, d[k], torch.zeros(()))
        else:
            for d in deltas:
                for k in names:
                    t = _kth_largest_sorted(d[k].abs().flatten(), density)
                    d[k] = torch.where(d[k].abs() >= t, d[k], torch.zeros(()))
    else:
        for i, d in enumerate(deltas):
            for k in names:
                g = torch.Generator().manual_seed(tensor_seed(dare_seed, i, k))
                keep = torch.rand(d[k].shape, generator=g) < density
                d[k] = torch.where(keep, d[k], torch.zeros(())) / density
    out = {}
    for k in names:
        wd = torch.stack([w * d[k] for w, d in zip(weights, deltas)])
        elected = torch.sign(wd.sum(0))
        elected[elected == 0] = 1  # a tie counts as positive (mergekit)
        agree = (torch.sign(wd) == elected).float()
        mixed = (wd * agree).sum(0)
        if normalize:
            div = (torch.tensor(weights).view(-1, *[1] * (wd.dim() - 1)) * agree).sum(0)
            div[div == 0] = 1
            mixed = mixed / div
        out[k] = base[k].float() + lam * mixed
    return out


def ref_task_arithmetic(base, fts, weights, lam=1.0, dare=None):
    out = {}
    for k, v in base.items():
        if not v.is_floating_point():
            continue
        acc = torch.zeros(v.shape)
        for i, (w, ft) in enumerate(zip(weights, fts)):
            d = ft[k].float() - v.float()
            if dare is not None:
                seed, density = dare
                g = torch.Generator().manual_seed(tensor_seed(seed, i, k))
                d = torch.where(torch.rand(d.shape, generator=g) < density, d, torch.zeros(())) / density
            acc = acc + w * d
        out[k] = v.float() + lam * acc
    return out


def ref_slerp(a, b, t):
    out = {}
    for k, va in a.items():
        if not va.is_floating_point():
            continue
        x, y = va.double().flatten(), b[k].double().flatten()
        cos = float(x @ y / (x.norm() * y.norm()))
        if abs(cos) > 0.9995:
            r = (1 - t) * x + t * y
        else:
            om = math.acos(cos)
            r = (math.sin((1 - t) * om) * x + math.sin(t * om) * y) / math.sin(om)
        out[k] = r.float().reshape(va.shape)
    return out


def _max_diff(merged, ref) -> float:
    return max(float((merged[k].double() - ref[k].double()).abs().max()) for k in ref)


# --- exactness on MiniLM --------------------------------------------------------------------------


def test_ties_per_tensor_matches_reference(minilm_models):
    d = minilm_models
    fts = [d / f"ft{i}.safetensors" for i in range(3)]
    m = merge("ties", fts, d / "base.safetensors", weights=[1.0, 0.7, 1.3], params={"density": 0.3, "lambda": 0.9})
    ref = ref_ties(_load(d / "base.safetensors"), [_load(p) for p in fts], [1.0, 0.7, 1.3], 0.3, lam=0.9)
    assert _max_diff(m, ref) <= TOL
    # integer buffers pass through bit-exactly, with their dtype
    assert torch.equal(m["embeddings.position_ids"], _load(d / "base.safetensors")["embeddings.position_ids"])


def test_ties_global_trim_matches_paper_reference(minilm_models):
    d = minilm_models
    fts = [d / f"ft{i}.safetensors" for i in range(2)]
    m = merge("ties", fts, d / "base.safetensors", params={"density": 0.2}, trim="global")
    ref = ref_ties(_load(d / "base.safetensors"), [_load(p) for p in fts], [1.0, 1.0], 0.2, trim="global")
    assert _max_diff(m, ref) <= TOL
    per_tensor = merge("ties", fts, d / "base.safetensors", params={"density": 0.2})
    assert _max_diff(per_tensor, ref) > 1e-4  # the two trimming rules really differ


def test_ties_unnormalized_and_negative_weight(minilm_models):
    d = minilm_models
    fts = [d / f"ft{i}.safetensors" for i in range(3)]
    m = merge("ties", fts, d / "base.safetensors", weights=[1.0, -0.5, 0.8], params={"density": 0.5, "normalize": False})
    ref = ref_ties(_load(d / "base.safetensors"), [_load(p) for p in fts], [1.0, -0.5, 0.8], 0.5, normalize=False)
    assert _max_diff(m, ref) <= TOL


def test_global_threshold_is_exact(minilm_models):
    base, ft = _load(minilm_models / "base.safetensors"), _load(minilm_models / "ft0.safetensors")
    deltas = [ft[k] - base[k] for k in base if base[k].is_floating_point()]
    deltas.append(torch.zeros(1000))  # zeros count in n
    allv = torch.cat([x.abs().flatten() for x in deltas])
    for density in (1e-5, 0.01, 0.2, 0.5, 0.9, 0.999):
        n, k = allv.numel(), int(density * allv.numel())
        want = float(allv.kthvalue(n - k + 1).values)
        assert global_magnitude_threshold(lambda: iter(deltas), density) == want
        big = max(deltas, key=lambda t: t.numel())
        kb = int(density * big.numel())
        want_b = float(big.abs().flatten().kthvalue(big.numel() - kb + 1).values) if kb else math.inf
        assert magnitude_threshold(big, density) == want_b
    assert global_magnitude_threshold(lambda: iter(deltas), 1e-12) == math.inf  # k = 0 keeps nothing


def test_bracketing_selection_is_exact_on_adversarial_inputs():
    """The sampled bracket must never change the answer: ties, NaNs, sorted and structured data, float64,
    and the fused τ = θ − θ₀ variant all equal kthvalue (the bracket or its full-partition fallback)."""
    from weightzoo.analysis.merge_kernels import _DIRECT, kth_largest_abs

    g = torch.Generator().manual_seed(0)
    n = _DIRECT + 4099  # above _DIRECT: the sampled path
    heavy = torch.randn(n, generator=g)
    heavy[: n // 2] *= 1000.0  # the strided sample sees both halves, in proportion
    ties = torch.zeros(n)
    ties[::7] = 1.0
    nans = torch.randn(n, generator=g)
    nans[::1000] = float("nan")
    cases = [torch.randn(n, generator=g), heavy, ties, nans, torch.randn(n, generator=g, dtype=torch.float64),
             torch.arange(n, dtype=torch.float32) - n / 2]
    for x in cases:
        for density in (1e-5, 0.2, 0.9, 0.99999):
            k = int(density * n)
            want = float(x.abs().kthvalue(n - k + 1).values)
            got = kth_largest_abs(x.clone(), k)
            assert got == want or (math.isnan(got) and math.isnan(want))
            base = torch.randn(n, generator=g, dtype=x.dtype)
            theta = x + base
            tau = theta.clone()
            got = kth_largest_abs(tau, k, minus=base)  # tau becomes theta − base in place
            ref = theta - base
            assert torch.equal(tau.nan_to_num(7.0), ref.nan_to_num(7.0))
            want = float(ref.abs().kthvalue(n - k + 1).values)
            assert got == want or (math.isnan(got) and math.isnan(want))


def test_ties_from_dicts_and_from_files_agree(minilm_models):
    """Files are read zero-copy into reused buffers; dicts go through owned copies: same result, and the
    caller's dicts are left untouched."""
    d = minilm_models
    fts = [d / f"ft{i}.safetensors" for i in range(2)]
    dicts = [_load(p) for p in fts]
    before = [{k: v.clone() for k, v in sd.items()} for sd in dicts]
    from_files = merge("ties", fts, d / "base.safetensors", params={"density": 0.3})
    from_dicts = merge("ties", dicts, _load(d / "base.safetensors"), params={"density": 0.3})
    for k in from_files:
        assert torch.equal(from_files[k], from_dicts[k]), k
    assert all(torch.equal(a[k], b[k]) for a, b in zip(dicts, before) for k in a)


def test_dare_and_dare_ties_match_reference_and_are_deterministic(minilm_models):
    d = minilm_models
    fts = [d / f"ft{i}.safetensors" for i in range(2)]
    base, loaded = _load(d / "base.safetensors"), [_load(p) for p in fts]
    m = merge("dare", fts, d / "base.safetensors", params={"density": 0.4, "lambda": 0.8}, seed=7)
    assert _max_diff(m, ref_task_arithmetic(base, loaded, [1.0, 1.0], 0.8, dare=(7, 0.4))) <= TOL
    mt = merge("dare-ties", fts, d / "base.safetensors", params={"density": 0.4}, seed=7)
    assert _max_diff(mt, ref_ties(base, loaded, [1.0, 1.0], 0.4, dare_seed=7)) <= TOL
    # same seed, reversed read order -> identical bits; another seed -> different masks
    again = merge("dare", fts, d / "base.safetensors", params={"density": 0.4, "lambda": 0.8}, seed=7)
    for k in reversed(list(again)):
        assert torch.equal(again[k], m[k])
    other = merge("dare", fts, d / "base.safetensors", params={"density": 0.4, "lambda": 0.8}, seed=8)
    assert not torch.equal(other["encoder.layer.0.attention.self.query.weight"],
                           m["encoder.layer.0.attention.self.query.weight"])


def test_task_arithmetic_linear_mean_slerp(minilm_models):
    d = minilm_models
    fts = [d / f"ft{i}.safetensors" for i in range(3)]
    base, loaded = _load(d / "base.safetensors"), [_load(p) for p in fts]
    w = [0.5, 0.3, -0.2]
    ta = merge("task-arithmetic", fts, d / "base.safetensors", weights=w, params={"lambda": 1.5})
    assert _max_diff(ta, ref_task_arithmetic(base, loaded, w, 1.5)) <= TOL
    lin = merge("linear", fts, weights=[1.0, 2.0, 1.0])
    ref = {k: (loaded[0][k] + 2 * loaded[1][k] + loaded[2][k]) / 4 for k in base if base[k].is_floating_point()}
    assert _max_diff(lin, ref) <= TOL
    mean = merge("mean", fts)
    ref = {k: (loaded[0][k] + loaded[1][k] + loaded[2][k]) / 3 for k in base if base[k].is_floating_point()}
    assert _max_diff(mean, ref) <= TOL
    sl = merge("slerp", fts[:2], params={"t": 0.3})
    assert _max_diff(sl, ref_slerp(loaded[0], loaded[1], 0.3)) <= TOL
    # base + one model: interpolate from the base; parallel tensors take the linear fallback
    sl2 = merge("slerp", [d / "ft0.safetensors"], d / "base.safetensors", params={"t": 0.5})
    assert _max_diff(sl2, ref_slerp(base, loaded[0], 0.5)) <= TOL
    same = {k: v.clone() for k, v in base.items()}
    s3 = merge("slerp", [base, same], params={"t": 0.25})
    assert _max_diff(s3, {k: v for k, v in base.items() if v.is_floating_point()}) <= TOL


def test_dtype_mix_computes_in_fp32_and_saves_requested(minilm_models):
    d = minilm_models
    base, ft0 = _load(d / "base.safetensors"), _load(d / "ft0.safetensors")
    ft1 = {k: v.float() if v.is_floating_point() else v for k, v in _load(d / "ft1_bf16.safetensors").items()}
    ref = ref_task_arithmetic(base, [ft0, ft1], [1.0, 1.0])
    m = merge("task-arithmetic", [d / "ft0.safetensors", d / "ft1_bf16.safetensors"], d / "base.safetensors")
    assert all(m[k].dtype == torch.float32 for k in ref)  # default: the base's dtype
    assert _max_diff(m, ref) <= TOL
    mb = merge("task-arithmetic", [d / "ft0.safetensors", d / "ft1_bf16.safetensors"], d / "base.safetensors",
               dtype=torch.bfloat16)
    for k in ref:
        assert mb[k].dtype == torch.bfloat16 and torch.equal(mb[k], ref[k].to(torch.bfloat16))
    assert mb["embeddings.position_ids"].dtype == torch.int64


# --- digits models fine-tuned for real --------------------------------------------------------------


@pytest.fixture(scope="module")
def digits_finetunes(digits_cnn, digits_data):
    """Two real fine-tunes of the trained digits CNN (BatchNorm: float stats and an int64 counter)."""
    import copy

    x, y, _, _ = digits_data
    out = []
    for i, classes in enumerate(((0, 1, 2, 3, 4), (5, 6, 7, 8, 9))):
        torch.manual_seed(10 + i)
        model = copy.deepcopy(digits_cnn).train()
        sel = torch.isin(y, torch.tensor(classes))
        xs, ys = x[sel], y[sel]
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        for _ in range(15):
            b = torch.randint(0, len(ys), (64,))
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(xs[b]), ys[b]).backward()
            opt.step()
        out.append({k: v.detach().clone() for k, v in model.eval().state_dict().items()})
    return {k: v.detach().clone() for k, v in digits_cnn.state_dict().items()}, out


@pytest.mark.parametrize("method", ["ties", "dare-ties", "task-arithmetic", "dare"])
def test_digits_finetunes_match_reference(digits_finetunes, method):
    base, fts = digits_finetunes
    before = {k: v.clone() for k, v in base.items()}
    m = merge(method, fts, base, params={} if method == "task-arithmetic" else {"density": 0.3}, seed=3)
    if method == "ties":
        ref = ref_ties(base, fts, [1.0, 1.0], 0.3)
    elif method == "dare-ties":
        ref = ref_ties(base, fts, [1.0, 1.0], 0.3, dare_seed=3)
    elif method == "dare":
        ref = ref_task_arithmetic(base, fts, [1.0, 1.0], dare=(3, 0.3))
    else:
        ref = ref_task_arithmetic(base, fts, [1.0, 1.0])
    assert _max_diff(m, ref) <= TOL
    assert m["1.num_batches_tracked"].dtype == torch.int64
    assert torch.equal(m["1.num_batches_tracked"], base["1.num_batches_tracked"])  # never subtracted
    assert all(torch.equal(before[k], base[k]) for k in base)  # inputs untouched


# --- bad input --------------------------------------------------------------------------------------


def test_shape_mismatch_lists_tensors(minilm_models):
    d = minilm_models
    bad = _load(d / "ft0.safetensors")
    bad["encoder.layer.0.attention.self.query.weight"] = torch.zeros(10, 10)
    bad["embeddings.LayerNorm.bias"] = torch.zeros(3)
    with pytest.raises(ShapeMismatchError) as ei:
        merge("ties", [bad], d / "base.safetensors")
    assert "encoder.layer.0.attention.self.query.weight" in str(ei.value)
    assert len(ei.value.mismatches) == 2


def test_missing_tensor_policies(minilm_models):
    d = minilm_models
    base = _load(d / "base.safetensors")
    partial = _load(d / "ft0.safetensors")
    gone = "encoder.layer.0.attention.output.dense.bias"
    del partial[gone]
    with pytest.raises(TensorNotFoundError, match=gone):
        merge("ties", [partial], base)
    skipped = merge("ties", [partial], base, missing="skip")
    assert gone not in skipped and skipped.report.skipped == [gone]
    kept = merge("ties", [partial], base, missing="keep-base")
    assert torch.equal(kept[gone], base[gone])


def test_bad_method_and_params(minilm_models):
    d = minilm_models
    with pytest.raises(InvalidOptionError, match="unknown merge method"):
        merge("average-ish", [d / "ft0.safetensors"], d / "base.safetensors")
    with pytest.raises(InvalidOptionError, match="density"):
        merge("ties", [d / "ft0.safetensors"], d / "base.safetensors", params={"density": 1.5})
    with pytest.raises(InvalidOptionError, match="takes no parameter"):
        merge("mean", [d / "ft0.safetensors"], params={"density": 0.5})
    with pytest.raises(InvalidOptionError, match="needs a base"):
        merge("ties", [d / "ft0.safetensors"])
    with pytest.raises(InvalidOptionError, match="exactly two"):
        merge("slerp", [d / f"ft{i}.safetensors" for i in range(3)])


# --- the streaming writer ---------------------------------------------------------------------------


def test_writer_output_readable_and_bit_exact(minilm_models, tmp_path):
    d = minilm_models
    m = merge("ties", [d / "ft0.safetensors", d / "ft1.safetensors"], d / "base.safetensors", dtype=torch.bfloat16)
    save_merged(m, tmp_path / "out.safetensors")
    with safe_open(str(tmp_path / "out.safetensors"), "pt") as f:
        assert set(f.keys()) == set(m)
        meta = json.loads(f.metadata()["weightzoo_merge"])
        assert meta["method"] == "ties"
        for k in m:
            assert torch.equal(f.get_tensor(k), m[k])
    # sharded by bytes: several files plus the HF index, every tensor bit-exact
    files = save_merged(m, tmp_path / "shards", max_shard_size=400_000)["files"]
    index = json.loads((tmp_path / "shards" / "model.safetensors.index.json").read_text())
    shards = sorted({v for v in index["weight_map"].values()})
    assert len(shards) > 2 and len(files) == len(shards) + 1
    for shard in shards:
        with safe_open(str(tmp_path / "shards" / shard), "pt") as f:
            for k in f.keys():
                assert index["weight_map"][k] == shard and torch.equal(f.get_tensor(k), m[k])
    assert set(index["weight_map"]) == set(m)
    # sharded next to a file name, size as text: x-0000i-of-0000N.safetensors + x.safetensors.index.json
    files = save_merged(m, tmp_path / "named" / "x.safetensors", max_shard_size="0.4MB")["files"]
    assert files[-1].endswith("x.safetensors.index.json") and Path(files[0]).name.startswith("x-00001-of-")
    with pytest.raises(InvalidOptionError, match="cannot read a size"):
        save_merged(m, tmp_path / "bad", max_shard_size="lots")


# --- CLI ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_cli_merge_paths_and_config(minilm_models, tmp_path, capsys):
    d = minilm_models
    out = tmp_path / "cli.safetensors"
    rc = main(["merge", "--method", "ties", "--base", str(d / "base.safetensors"), "--models",
               str(d / "ft0.safetensors"), str(d / "ft1.safetensors"), "--weights", "1", "0.5",
               "--param", "density=0.3", "--param", "lambda=0.9", "--out", str(out), "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["method"] == "ties" and summary["params"]["density"] == [0.3, 0.3]
    api = merge("ties", [d / "ft0.safetensors", d / "ft1.safetensors"], d / "base.safetensors", weights=[1, 0.5],
                params={"density": 0.3, "lambda": 0.9})
    got = load_file(str(out))
    assert all(torch.equal(got[k], api[k]) for k in api)

    cfg = tmp_path / "merge.yaml"
    cfg.write_text(
        f"merge_method: dare_ties\nbase_model: {d / 'base.safetensors'}\nmodels:\n"
        f"  - model: {d / 'ft0.safetensors'}\n    parameters: {{weight: 1.0, density: 0.4}}\n"
        f"  - model: {d / 'ft2.safetensors'}\n    parameters: {{weight: 0.5, density: 0.6}}\n"
        f"  - model: {d / 'base.safetensors'}\n"
        "parameters: {normalize: true}\ndtype: bfloat16\nseed: 5\n")
    out2 = tmp_path / "cfg.safetensors"
    assert main(["merge", "--config", str(cfg), "--out", str(out2)]) == 0
    api = merge("dare-ties", [d / "ft0.safetensors", d / "ft2.safetensors"], d / "base.safetensors",
                weights=[1.0, 0.5], params={"density": [0.4, 0.6]}, seed=5, dtype=torch.bfloat16)
    got = load_file(str(out2))
    assert all(torch.equal(got[k], api[k]) for k in api)


def test_cli_errors_are_one_line(minilm_models, tmp_path, capsys):
    d = minilm_models
    rc = main(["merge", "--method", "ties", "--base", str(d / "base.safetensors"), "--models",
               str(tmp_path / "nope.safetensors"), "--out", str(tmp_path / "x.safetensors")])
    assert rc == 1 and "no such file" in capsys.readouterr().err
    rc = main(["merge", "--method", "blend", "--base", str(d / "base.safetensors"), "--models",
               str(d / "ft0.safetensors"), "--out", str(tmp_path / "x.safetensors")])
    assert rc == 1 and "unknown merge method" in capsys.readouterr().err
    assert not (tmp_path / "x.safetensors").exists()


def test_cli_merge_into_zoo_with_lineage(minilm_models, tmp_path, capsys):
    store = pytest.importorskip("weightzoo.zoo.store")
    d = minilm_models
    zdir = tmp_path / "zoo"
    with store.Zoo.open(zdir, create=True) as z:
        z.ingest(d / "base.safetensors", name="base")
        z.ingest(d / "ft0.safetensors", name="ft0")
        z.ingest(d / "ft1.safetensors", name="ft1")
    rc = main(["merge", "--method", "ties", "--zoo", str(zdir), "--base", "base", "--models", "ft0", "ft1",
               "--param", "density=0.3", "--out", "zoo:merged", "--json"])
    assert rc == 0, capsys.readouterr().err
    api = merge("ties", [d / "ft0.safetensors", d / "ft1.safetensors"], d / "base.safetensors", params={"density": 0.3})
    with store.Zoo.open(zdir, create=False) as z:
        sd = z.state_dict("merged")
        assert all(torch.equal(sd[k], api[k]) for k in api)
        parents = {(e["child"], e["parent"], e["relation"]) for e in z.lineage("merged", direction="up")}
        assert {("merged", p, "merge") for p in ("base", "ft0", "ft1")} <= parents


def test_merge_command_imports_no_torch():
    code = "import sys, weightzoo.commands.merge; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/")
    assert out.stdout.strip() == "False"


# --- aTLAS ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_atlas_learns_only_coefficients_and_matches_its_formula(digits_finetunes, digits_data):
    from weightzoo.analysis.atlas import classification_objective, learn_coefficients
    from weightzoo.analysis.task_vectors import TaskVector

    base, fts = digits_finetunes
    x, y, _, _ = digits_data
    tvs = [TaskVector(ft, base) for ft in fts]
    arch = torch.nn.Sequential(  # the digits CNN's architecture, weights irrelevant
        torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
        torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(16, 16, 3, padding=1),
        torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(16, 10))
    objective = classification_objective(arch, [(x[:100], y[:100]), (x[100:200], y[100:200])])
    res = learn_coefficients(base, tvs, objective, steps=30, lr=0.05, init=0.3)
    buffers = {"1.running_mean", "1.running_var"}
    assert set(res.coefficients) == set(tvs[0]) - buffers  # one block per parameter tensor
    rm = base["1.running_mean"] + 0.3 * ((fts[0]["1.running_mean"] - base["1.running_mean"])
                                         + (fts[1]["1.running_mean"] - base["1.running_mean"]))
    assert float((res.state_dict()["1.running_mean"] - rm).abs().max()) <= TOL  # buffers: initial scale
    assert all(c.shape == (2, 1) for c in res.coefficients.values())
    assert res.history[-1] < res.history[0]  # the few-shot loss went down
    assert any(float((c - 0.3).abs().max()) > 1e-3 for c in res.coefficients.values())
    merged = res.state_dict()
    k = "0.weight"
    c = res.coefficients[k][:, 0]
    want = base[k] + c[0] * (fts[0][k] - base[k]) + c[1] * (fts[1][k] - base[k])
    assert float((merged[k] - want).abs().max()) <= TOL
    assert torch.equal(merged["1.num_batches_tracked"], base["1.num_batches_tracked"])
    before = {n: p.detach().clone() for n, p in arch.named_parameters()}
    learn_coefficients(base, tvs, objective, steps=3)
    assert all(torch.equal(before[n], p) for n, p in arch.named_parameters())  # only coefficients train
    parts = learn_coefficients(base, tvs, objective, steps=2, partitions=3, seed=1)
    assert all(c.shape == (2, 3) for c in parts.coefficients.values())


def test_global_ties_with_mixed_float_dtypes() -> None:
    from weightzoo.analysis.merging import merge

    gen = torch.Generator().manual_seed(0)
    base = {"a": torch.randn(100, generator=gen), "b": torch.randn(10, generator=gen, dtype=torch.float64)}
    fts = [{k: v + 0.1 * torch.randn(v.shape, generator=gen, dtype=v.dtype) for k, v in base.items()} for _ in range(2)]
    merged = merge("ties", fts, base=base, params={"density": 0.3}, trim="global")
    out = {k: merged[k] for k in base}
    assert out["a"].dtype == torch.float32 and out["b"].dtype == torch.float64
    # same as the dense paper-style reference computed in float64 throughout
    ref = ref_ties({k: v.double() for k, v in base.items()}, [{k: v.double() for k, v in ft.items()} for ft in fts],
                   [1.0, 1.0], 0.3, trim="global")
    assert max(float((out[k].double() - ref[k]).abs().max()) for k in base) <= 1e-6
