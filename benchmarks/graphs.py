"""ParameterGraph construction speed and memory.

1. A batch of small CNNs (the Small CNN Zoo architecture of Unterthiner et al. 2020: three 3×3 convs of 16
   channels, global average pooling, dense 10; 4,970 parameters): graphs/s for ``ParameterGraph.from_spec``,
   against (a) a naive per-weight Python loop that builds the same edge list (on a subset) and (b) the
   memory-copy floor ``torch.nn.utils.parameters_to_vector`` on every network, all measured in this run.
2. One ~10M-parameter CNN: seconds and peak RSS (in a fresh subprocess), against the same subprocess
   only building the model and copying its parameters with ``parameters_to_vector``.
3. The real all-MiniLM-L6-v2 (22.7M parameters) from a zoo: seconds and peak memory (VmHWM, fresh
   subprocess) to build its ParameterGraph with every edge tensor (``to_pyg()``), against a fresh
   subprocess that reads the same tensors from the zoo and concatenates them.

4. ``--recorded``: ParameterGraphs of class-based modules from one recorded forward pass
   (``ParameterGraph.from_module`` on a ``transformers`` ``ResNetModel`` at three widths, the largest the
   default config = ResNet-50; ``--arch vit``: a class-based timm-style ViT/16 at the widths of ViT-Ti/S/B),
   seconds and peak RSS (VmHWM) in a fresh subprocess, then the same after reading the edge structure
   (``edge_index``, ``edge_type``, ``edge_layer``, node features) and after writing the padded format-v1
   ``edge_attr`` (``to_pyg``), and ``permute_hidden`` (checked with ``check_symmetry``), against a fresh subprocess running ``ComputeGraph.record`` on the same
   network and reading the state dict (concatenating every tensor).

    .venv/bin/python benchmarks/graphs.py [--nets 10000] [--minilm-dir DIR]
    .venv/bin/python benchmarks/graphs.py --recorded [--arch resnet|vit] [--scales ...]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch
from torch import nn

from weightzoo.zoo.arch import spec_from_module
from weightzoo.zoo.graphs import ParameterGraph


def small_cnn() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(1, 16, 3, stride=2), nn.ReLU(), nn.Conv2d(16, 16, 3, stride=2), nn.ReLU(),
                         nn.Conv2d(16, 16, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(16, 10))


def big_cnn() -> nn.Sequential:
    layers: list[nn.Module] = []
    widths = [3, 64, 128, 256, 512, 512, 512, 512]
    for a, b in zip(widths, widths[1:]):
        layers += [nn.Conv2d(a, b, 3, padding=1), nn.BatchNorm2d(b), nn.ReLU()]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, 2000)]
    return nn.Sequential(*layers)


def naive_graph(spec: dict, sd: dict[str, torch.Tensor], k: int = 7) -> tuple[list, list]:
    """Reference construction: one Python iteration per weight / kernel (what vectorisation replaces)."""
    edges, attrs = [], []
    offset, n_prev = 0, None
    for name, t in sd.items():
        if not name.endswith("weight"):
            continue
        n_out, n_in = t.shape[0], t.shape[1]
        if n_prev is None:
            n_prev = n_in
        for o in range(n_out):
            for i in range(n_in):
                kern = [[0.0] * k for _ in range(k)]
                w = t[o, i]
                if w.dim() == 0:
                    kern[k // 2][k // 2] = float(w)
                else:
                    r0 = (k - w.shape[0]) // 2
                    for r in range(w.shape[0]):
                        for c in range(w.shape[1]):
                            kern[r0 + r][r0 + c] = float(w[r, c])
                edges.append((offset + i, offset + n_in + o))
                attrs.append(kern)
        offset += n_in
    return edges, attrs


def _rss_mb() -> float:
    """Peak RSS of this process (VmHWM: unlike ru_maxrss it is not inherited from the parent across exec)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def big_case(mode: str) -> None:
    """Run in a subprocess: build the big CNN and either its graph or the parameters_to_vector floor."""
    torch.manual_seed(0)
    m = big_cnn()
    sd = m.state_dict()
    spec = spec_from_module(m)
    base = _rss_mb()
    t = time.perf_counter()
    if mode == "graph":
        g = ParameterGraph.from_spec(spec, sd)
        g.edge_attr  # noqa: B018 - the padded features are written on first read: time them with the build
        extra = {"nodes": g.num_nodes, "edges": g.num_edges,
                 "graph_mb": (g.edge_attr.nbytes + g.node_values.nbytes + g.edge_index.nbytes) / 2**20}
    else:
        v = nn.utils.parameters_to_vector(m.parameters())
        extra = {"vector_mb": v.nbytes / 2**20}
    secs = time.perf_counter() - t
    print(json.dumps({"seconds": secs, "peak_rss_mb": _rss_mb(), "rss_before_mb": base,
                      "params": sum(p.numel() for p in m.parameters()), **extra}))


def minilm_case(mode: str, zoo_dir: str) -> None:
    """Run in a subprocess: MiniLM's graph from the zoo (lazy state dict), or the read-and-concatenate floor."""
    import torch_geometric.data  # noqa: F401 - imported before timing: to_pyg's first call would import it

    from weightzoo.zoo.store import Zoo

    base = _rss_mb()
    t = time.perf_counter()
    with Zoo.open(zoo_dir, create=False) as zoo:
        rec = zoo.model("minilm")
        sd = zoo.state_dict("minilm")
        if mode == "graph":
            g = ParameterGraph.from_spec(rec.spec, sd)
            data = g.to_pyg()
            secs = time.perf_counter() - t
            back = g.to_state_dict()
            exact = all(torch.equal(back[k], sd[k]) and back[k].dtype == sd[k].dtype for k in sd) and list(back) == list(sd)
            extra = {"nodes": g.num_nodes, "edges": g.num_edges, "exact": exact, "params": g.num_parameters,
                     "graph_mb": sum(v.nbytes for v in (data.x, data.edge_index, data.edge_attr, data.edge_type,
                                                        data.edge_layer)) / 2**20}
        else:
            v = torch.cat([sd[k].reshape(-1).to(torch.float32) for k in sd])
            secs = time.perf_counter() - t
            extra = {"vector_mb": v.nbytes / 2**20}
    print(json.dumps({"seconds": secs, "peak_rss_mb": _rss_mb(), "rss_before_mb": base, **extra}))


def minilm_figures(minilm_dir: str | None) -> None:
    import tempfile

    from weightzoo.zoo.store import Zoo

    if minilm_dir is None:
        from weightzoo.datasets.minilm import fetch_minilm

        minilm_dir = str(fetch_minilm())
    with tempfile.TemporaryDirectory() as tmp:
        with Zoo.open(tmp + "/zoo") as zoo:
            zoo.ingest(minilm_dir, name="minilm")
        res = {}
        for mode in ("graph", "vector"):
            out = subprocess.run([sys.executable, __file__, "--minilm", mode, "--zoo", tmp + "/zoo"],
                                 capture_output=True, text=True, check=True)
            res[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    g, v = res["graph"], res["vector"]
    print(f"all-MiniLM-L6-v2 from a zoo ({g['params'] / 1e6:.1f}M parameters, {g['nodes']} nodes, {g['edges']} edges, "
          f"1×1 window; round trip bit-exact: {g['exact']}):")
    print(f"  ParameterGraph.from_spec + to_pyg : {g['seconds']:.2f} s, peak RSS (VmHWM) {g['peak_rss_mb']:.0f} MB "
          f"(after imports {g['rss_before_mb']:.0f} MB; graph tensors {g['graph_mb']:.0f} MB)")
    print(f"  read + concatenate the tensors    : {v['seconds']:.2f} s, peak RSS {v['peak_rss_mb']:.0f} MB "
          f"→ graph/read time {g['seconds'] / v['seconds']:.1f}×, peak RSS {g['peak_rss_mb'] / v['peak_rss_mb']:.2f}×")


def _hf_resnet(scale: float) -> nn.Module:
    from transformers import ResNetConfig, ResNetModel

    widths = [max(8, int(w * scale)) for w in (256, 512, 1024, 2048)]
    cfg = ResNetConfig(embedding_size=max(8, int(64 * scale)), hidden_sizes=widths)
    return ResNetModel(cfg).eval()


class _ViTAttention(nn.Module):
    """timm-style attention: fused qkv, reshape to (3, heads, head_dim), scaled dot product, projection."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        y = torch.nn.functional.scaled_dot_product_attention(q, k, v)
        return self.proj(y.transpose(1, 2).reshape(b, n, c))


class _ViTBlock(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), _ViTAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    """A class-based ViT in timm's style (ViT-B/16 at ``dim=768``: 16×16 patch conv, class token, position
    table, 12 pre-norm blocks with 12 heads, 1000-class head; 86.6M parameters at 224×224)."""

    def __init__(self, dim: int = 768, depth: int = 12, heads: int = 12, image: int = 224, patch: int = 16,
                 classes: int = 1000) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, dim, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, (image // patch) ** 2 + 1, dim) * 0.02)
        self.blocks = nn.Sequential(*[_ViTBlock(dim, heads) for _ in range(depth)])
        self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        return self.head(self.norm(self.blocks(x))[:, 0])


#: ViT widths (heads = width / 64): ViT-Ti, ViT-S, ViT-B
VIT_SIZES = {192: "ViT-Ti/16", 384: "ViT-S/16", 768: "ViT-B/16"}


def _recorded_model(arch: str, size: float) -> tuple[nn.Module, object, int]:
    """(module, example input, max_kernel) of one benchmark network."""
    if arch == "resnet":
        return _hf_resnet(size), {"pixel_values": torch.randn(1, 3, 64, 64)}, 7
    dim = int(size)
    return ViT(dim=dim, heads=dim // 64).eval(), torch.randn(1, 3, 224, 224), 16


_PADDED_LIMIT = 3 * 2**30  # bytes: larger padded edge_attr tensors are not written (reported as the size)


def recorded_case(arch: str, size: float, mode: str) -> None:
    """Run in a subprocess: a recorded ParameterGraph (``from_module``, then its edge structure, then the
    padded format-v1 edge features), or the baseline (``ComputeGraph.record`` + reading the state dict)."""
    import torch_geometric.data  # noqa: F401 - imported before timing (to_pyg's first call would import it)

    from weightzoo.zoo.graphs import ComputeGraph

    torch.set_num_threads(1)
    torch.manual_seed(0)
    m, x, mk = _recorded_model(arch, size)
    base = _rss_mb()
    t = time.perf_counter()
    if mode == "graph":
        g = ParameterGraph.from_module(m, x, max_kernel=mk, recorded=True)
        secs = time.perf_counter() - t
        peak = _rss_mb()
        kernels_mb = g._kernels.nbytes / 2**20 if g._kernels is not None else float("nan")  # the stored runs
        t = time.perf_counter()
        et = (g.edge_index, g.edge_type, g.edge_layer, g.node_features())
        struct_secs = time.perf_counter() - t
        struct_peak = _rss_mb()
        kh, kw = g.max_kernel
        padded_bytes = g.num_edges * kh * kw * 4
        pad_secs = pad_peak = None
        if padded_bytes <= _PADDED_LIMIT:
            t = time.perf_counter()
            g.to_pyg()  # materialises the padded [E, kh·kw] edge_attr
            pad_secs = time.perf_counter() - t
            pad_peak = _rss_mb()
        sd = m.state_dict()
        back = g.to_state_dict()
        extra = {"nodes": g.num_nodes, "edges": g.num_edges, "window": [kh, kw],
                 "exact": list(back) == list(sd) and all(torch.equal(back[k], sd[k]) for k in sd),
                 "kernels_mb": kernels_mb,
                 "structure_mb": sum(v.nbytes for v in et) / 2**20, "padded_mb": padded_bytes / 2**20,
                 "structure_seconds": struct_secs, "structure_peak_mb": struct_peak,
                 "padded_seconds": pad_secs, "padded_peak_mb": pad_peak}
    elif mode == "permute":
        from weightzoo.zoo.symmetry import check_symmetry, permute_hidden

        p = permute_hidden(m, torch.Generator().manual_seed(0), example_input=x)
        secs = time.perf_counter() - t
        peak = _rss_mb()
        moved = sum(not torch.equal(a, b) for a, b in zip(m.state_dict().values(), p.state_dict().values()))
        chk = check_symmetry(m, p, x, atol=1e-4, rtol=1e-4)
        extra = {"preserved": bool(chk), "max_abs_diff": chk.max_abs_diff, "tensors_moved": moved,
                 "tensors": len(m.state_dict())}
    else:
        ComputeGraph.record(m, x)
        v = torch.cat([t_.reshape(-1).to(torch.float32) for t_ in m.state_dict().values()])
        secs = time.perf_counter() - t
        peak = _rss_mb()
        extra = {"vector_mb": v.nbytes / 2**20}
    print(json.dumps({"seconds": secs, "peak_rss_mb": peak, "rss_before_mb": base,
                      "params": sum(p.numel() for p in m.parameters()), **extra}))


def recorded_figures(arch: str, sizes: list[float]) -> None:
    if arch == "resnet":
        print("recorded ParameterGraphs of transformers ResNetModel (7×7 window; 64×64 input), fresh subprocess each:")
    else:
        print("recorded ParameterGraphs of a class-based timm-style ViT/16 (16×16 window; 224×224 input), "
              "fresh subprocess each:")
    for size in sizes:
        res = {}
        for mode in ("graph", "permute", "baseline"):
            out = subprocess.run([sys.executable, __file__, "--recorded-case", mode, "--arch", arch, "--scale", str(size)],
                                 capture_output=True, text=True, check=True)
            res[mode] = json.loads(out.stdout.strip().splitlines()[-1])
        g, p, b = res["graph"], res["permute"], res["baseline"]
        name = f"width ×{size:<5}" if arch == "resnet" else f"{VIT_SIZES.get(int(size), f'dim {int(size)}'):9}"
        print(f"  {name} {g['params'] / 1e6:5.1f}M params, {g['edges'] / 1e6:5.2f}M edges (exact {g['exact']}); "
              f"baseline record + read {b['seconds']:5.2f} s, peak RSS {b['peak_rss_mb']:5.0f} MB")
        print(f"    from_module                : {g['seconds']:6.2f} s, peak RSS {g['peak_rss_mb']:6.0f} MB "
              f"(model built: {g['rss_before_mb']:.0f} MB; edge kernels {g['kernels_mb']:.0f} MB) → {g['seconds'] / b['seconds']:.2f}× time, "
              f"{g['peak_rss_mb'] / b['peak_rss_mb']:.2f}× peak RSS")
        tot = g["seconds"] + g["structure_seconds"]
        print(f"    + edge_index/type/layer, x : {tot:6.2f} s, peak RSS {g['structure_peak_mb']:6.0f} MB "
              f"(structure {g['structure_mb']:.0f} MB) → {tot / b['seconds']:.2f}× time, "
              f"{g['structure_peak_mb'] / b['peak_rss_mb']:.2f}× peak RSS")
        if g["padded_seconds"] is not None:
            tot += g["padded_seconds"]
            print(f"    + padded edge_attr (to_pyg): {tot:6.2f} s, peak RSS {g['padded_peak_mb']:6.0f} MB "
                  f"(padded {g['padded_mb']:.0f} MB) → {tot / b['seconds']:.2f}× time, "
                  f"{g['padded_peak_mb'] / b['peak_rss_mb']:.2f}× peak RSS")
        else:
            print(f"    padded edge_attr (to_pyg)  : not written ({g['padded_mb'] / 1024:.1f} GB at "
                  f"{g['window'][0]}×{g['window'][1]}); edge_kernels() gives the features unpadded")
        print(f"    permute_hidden             : {p['seconds']:6.2f} s, peak RSS {p['peak_rss_mb']:6.0f} MB "
              f"({p['tensors_moved']}/{p['tensors']} tensors moved; outputs preserved {p['preserved']}, max |Δ| "
              f"{p['max_abs_diff']:.1e}) → {p['seconds'] / b['seconds']:.2f}× time, "
              f"{p['peak_rss_mb'] / b['peak_rss_mb']:.2f}× peak RSS")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nets", type=int, default=10_000)
    ap.add_argument("--naive", type=int, default=20, help="networks for the naive per-weight baseline")
    ap.add_argument("--minilm-dir", help="all-MiniLM-L6-v2 snapshot folder (default: fetched into the cache)")
    ap.add_argument("--only-minilm", action="store_true", help="only the MiniLM figures")
    ap.add_argument("--big", choices=["graph", "vector"], help=argparse.SUPPRESS)
    ap.add_argument("--minilm", choices=["graph", "vector"], help=argparse.SUPPRESS)
    ap.add_argument("--zoo", help=argparse.SUPPRESS)
    ap.add_argument("--recorded", action="store_true", help="only the recorded (any-module) figures")
    ap.add_argument("--arch", choices=["resnet", "vit"], default="resnet",
                    help="--recorded network: transformers ResNetModel, or the class-based ViT/16 of this file")
    ap.add_argument("--scales", type=float, nargs="+", default=None,
                    help="sizes: ResNet widths relative to ResNet-50 (default 0.25 0.5 1.0) or ViT widths "
                         "(default 192 384 768 = ViT-Ti/S/B)")
    ap.add_argument("--recorded-case", choices=["graph", "permute", "baseline"], help=argparse.SUPPRESS)
    ap.add_argument("--scale", type=float, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.recorded_case:
        recorded_case(args.arch, args.scale, args.recorded_case)
        return
    if args.recorded:
        default = [0.25, 0.5, 1.0] if args.arch == "resnet" else [192, 384, 768]
        recorded_figures(args.arch, args.scales or default)
        return
    if args.big:
        big_case(args.big)
        return
    if args.minilm:
        minilm_case(args.minilm, args.zoo)
        return
    if args.only_minilm:
        minilm_figures(args.minilm_dir)
        return
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = small_cnn()
    spec = spec_from_module(model)
    n_params = sum(p.numel() for p in model.parameters())
    g0 = torch.Generator().manual_seed(0)
    sds = [{k: torch.randn(v.shape, generator=g0) for k, v in model.state_dict().items()} for _ in range(args.nets)]

    t = time.perf_counter()
    graphs = [ParameterGraph.from_spec(spec, sd) for sd in sds]
    for g in graphs:
        g.edge_attr  # noqa: B018 - padded on first read: counted, as every graph used to be built padded
    t_graph = time.perf_counter() - t
    t = time.perf_counter()
    for sd in sds:
        torch.cat([v.reshape(-1) for v in sd.values()])
    t_copy = time.perf_counter() - t
    t = time.perf_counter()
    for sd in sds[: args.naive]:
        naive_graph(spec, sd)
    t_naive = (time.perf_counter() - t) / args.naive * args.nets
    # sanity: the graphs hold the weights
    assert all(torch.equal(graphs[-1].to_state_dict()[k], v) for k, v in sds[-1].items())
    print(f"small CNNs ({n_params} parameters, {graphs[0].num_nodes} nodes, {graphs[0].num_edges} edges each), "
          f"{args.nets} networks:")
    print(f"  from_spec + edge_attr    : {args.nets / t_graph:10.0f} graphs/s  ({t_graph:.2f} s)")
    print(f"  naive per-weight loop    : {args.nets / t_naive:10.0f} graphs/s  (extrapolated from {args.naive})"
          f"  → vectorised is {t_naive / t_graph:.0f}× faster")
    print(f"  parameter copy floor     : {args.nets / t_copy:10.0f} nets/s    → graph build = {t_graph / t_copy:.1f}× "
          "the cost of concatenating the parameters")
    res = {}
    for mode in ("graph", "vector"):
        out = subprocess.run([sys.executable, __file__, "--big", mode], capture_output=True, text=True, check=True)
        res[mode] = json.loads(out.stdout)
    g, v = res["graph"], res["vector"]
    print(f"one CNN with {g['params'] / 1e6:.1f}M parameters ({g['nodes']} nodes, {g['edges']} edges):")
    print(f"  ParameterGraph.from_spec : {g['seconds']:.2f} s, peak RSS {g['peak_rss_mb']:.0f} MB "
          f"(model alone {g['rss_before_mb']:.0f} MB; graph tensors {g['graph_mb']:.0f} MB)")
    print(f"  parameters_to_vector     : {v['seconds']:.3f} s, peak RSS {v['peak_rss_mb']:.0f} MB "
          f"→ graph/copy time {g['seconds'] / v['seconds']:.0f}×, peak RSS {g['peak_rss_mb'] / v['peak_rss_mb']:.2f}×")
    minilm_figures(args.minilm_dir)


if __name__ == "__main__":
    main()
