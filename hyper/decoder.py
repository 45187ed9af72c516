r"""A shape-aware low-rank decoder: one embedding per parameter → a tensor of any shape (LoGAH-style).

For a target of shape :math:`(O, I, k_1, \dots)` with embedding :math:`z` the decoder emits CP factors

.. math::
    W_{o,i,p} = \sum_{r=1}^{R} A_{o r}\, B_{i r}\, K_{p r},\qquad
    A = \Phi_{row}(o)\, P_{row}(z)^\top,\ B = \Phi_{col}(i)\, P_{col}(z)^\top,\ K = \Psi(p)\, P_{ker}(z)^\top

where :math:`\Phi(o)` are index features (a learned embedding of :math:`o \bmod M` plus Fourier features
of :math:`o`, so indices beyond :math:`M` stay distinct instead of repeating a tiled block), :math:`\Psi(p)`
embeds the kernel offset from the centre (clipped to ±``kernel_radius``: larger kernels share their rim),
and :math:`P(z)` are linear maps of :math:`z`. Decoder parameters grow as :math:`O(d \cdot R \cdot F)`,
not with the largest shape (GHN-2 emits a fixed max-shape block and tiles it; LoGAH predicts low-rank
factors). A 1-D target is :math:`v_o = A_o \cdot c(z)`; a 2-D one is :math:`A B^\top`; anything with more
than two axes flattens its trailing axes into kernel positions (3-D convs share depth offsets).

Targets of one shape are decoded together (one batched ``einsum`` per shape group). The raw output is
scaled by :func:`scale_prediction` (fan-in and gain, see :mod:`.targets`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from .targets import ParameterTarget


class ShapeDecoder(nn.Module):
    r"""Decode parameter embeddings into raw tensors of the targets' shapes (see the module docstring).

    Args:
        hidden (int): embedding size of a target.
        rank (int): CP rank :math:`R` (default 16).
        features (int): index feature size :math:`F` (default 32).
        table (int): learned index embeddings :math:`M` per axis (default 64).
        kernel_radius (int): kernel offsets embedded exactly up to this distance from the centre (default 3).
        init_std (float): initial scale of the index and kernel tables (default 0.1).

    Shapes: ``z`` (T, hidden) for T targets → a list of T tensors of the targets' shapes.
    """

    def __init__(self, hidden: int, *, rank: int = 16, features: int = 32, table: int = 64,
                 kernel_radius: int = 3, init_std: float = 0.1) -> None:
        super().__init__()
        if min(hidden, rank, features, table) < 1 or kernel_radius < 0 or features % 2:
            raise ValueError(f"ShapeDecoder: hidden, rank, features (even) and table must be >= 1, got "
                             f"{hidden}, {rank}, {features}, {table}")
        self.hidden, self.rank, self.features, self.table, self.radius = hidden, rank, features, table, kernel_radius
        self.row_table = nn.Embedding(table, features)
        self.col_table = nn.Embedding(table, features)
        side = 2 * kernel_radius + 1
        self.kernel_table = nn.Embedding(side * side, features)
        self.fourier = nn.Linear(features, features, bias=False)
        self.p_row = nn.Linear(hidden, rank * features)
        self.p_col = nn.Linear(hidden, rank * features)
        self.p_ker = nn.Linear(hidden, rank * features)
        self.p_vec = nn.Linear(hidden, rank)
        self.p_scalar = nn.Linear(hidden, 1)
        freqs = torch.exp(torch.linspace(0.0, math.log(table), features // 2))
        self.register_buffer("freqs", 2 * math.pi / freqs, persistent=False)
        # small tables: Adam moves every entry by ~lr per step, so entries of size 0.1 (not 1) learn 10x
        # faster relative to their size; the scale itself is normalised away (scale_prediction)
        for table_ in (self.row_table, self.col_table, self.kernel_table):
            nn.init.normal_(table_.weight, std=init_std)
        nn.init.normal_(self.fourier.weight, std=init_std / math.sqrt(features))

    def _index_features(self, n: int, table: nn.Embedding) -> torch.Tensor:
        idx = torch.arange(n, device=table.weight.device)
        freqs: torch.Tensor = self.freqs  # type: ignore[assignment]  # a registered buffer
        angle = idx.unsqueeze(1).to(freqs.dtype) * freqs
        fourier = torch.cat([angle.sin(), angle.cos()], 1)
        return (table(idx % self.table) + self.fourier(fourier)) / math.sqrt(2.0 * self.features)

    def _kernel_features(self, kernel: tuple[int, ...]) -> torch.Tensor:
        if len(kernel) == 1:
            kernel = (1, kernel[0])
        kh, kw = math.prod(kernel[:-1]), kernel[-1]
        dev = self.kernel_table.weight.device
        dy = (torch.arange(kh, device=dev) - kh // 2).clamp(-self.radius, self.radius) + self.radius
        dx = (torch.arange(kw, device=dev) - kw // 2).clamp(-self.radius, self.radius) + self.radius
        side = 2 * self.radius + 1
        return self.kernel_table((dy.unsqueeze(1) * side + dx.unsqueeze(0)).reshape(-1)) / math.sqrt(self.features)

    def forward(self, z: torch.Tensor, targets: Sequence[ParameterTarget],
                log_scale: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Decoded tensors, scaled for their kinds by :func:`scale_prediction` (``log_scale`` (T,), default 0)."""
        if z.shape[0] != len(targets):
            raise ValueError(f"ShapeDecoder: {z.shape[0]} embeddings for {len(targets)} targets")
        if log_scale is None:
            log_scale = torch.zeros(len(targets), dtype=z.dtype, device=z.device)
        groups: dict[tuple[tuple[int, ...], str], list[int]] = {}
        for t, target in enumerate(targets):
            groups.setdefault((_layout(target), target.kind), []).append(t)
        out: list[torch.Tensor | None] = [None] * len(targets)
        r, f = self.rank, self.features
        for (layout, kind), members in groups.items():
            zg = z[members]
            g = len(members)
            index = torch.tensor(members, device=z.device)
            if not layout:  # a scalar
                w = self.p_scalar(zg).reshape(g)
                w = scale_prediction(w, kind, [targets[t] for t in members], log_scale[index])
                for j, t in enumerate(members):
                    out[t] = w[j].reshape(targets[t].shape)
                continue
            a = torch.einsum("of,grf->gor", self._index_features(layout[0], self.row_table),
                             self.p_row(zg).view(g, r, f)) / math.sqrt(r)  # on the small factor, not the output
            if len(layout) == 1:
                w = torch.einsum("gor,gr->go", a, self.p_vec(zg))
            else:
                b = torch.einsum("if,grf->gir", self._index_features(layout[1], self.col_table),
                                 self.p_col(zg).view(g, r, f))
                if len(layout) == 2:
                    w = torch.bmm(a, b.transpose(1, 2))
                else:
                    k = torch.einsum("pf,grf->gpr", self._kernel_features(layout[2:]), self.p_ker(zg).view(g, r, f))
                    # (b ⊙ k) first, then one batched matmul: never an (o, i, p, r) intermediate
                    bk = (b.unsqueeze(2) * k.unsqueeze(1)).reshape(g, -1, r)
                    w = torch.bmm(a, bk.transpose(1, 2)).view(g, layout[0], layout[1], -1)
            w = scale_prediction(w, kind, [targets[t] for t in members], log_scale[index])
            for j, t in enumerate(members):
                out[t] = w[j].reshape(targets[t].shape)
        return [o for o in out if o is not None]

    def extra_repr(self) -> str:
        return (f"hidden={self.hidden}, rank={self.rank}, features={self.features}, table={self.table}, "
                f"kernel_radius={self.radius}")


def _layout(target: ParameterTarget) -> tuple[int, ...]:
    """(rows,) / (rows, cols) / (rows, cols, *kernel) the decoder emits for a target."""
    shape = target.shape
    if len(shape) <= 1:
        return tuple(shape)
    if target.kind in ("embedding", "table"):  # a table: rows of vectors (class token (1, 1, D) → (1, D))
        return (math.prod(shape[:-1]), shape[-1])
    return tuple(shape)


def scale_prediction(raw: torch.Tensor, kind: str, targets: Sequence[ParameterTarget],
                     log_scale: torch.Tensor) -> torch.Tensor:
    r"""Give raw decoded tensors ``(G, ...)`` of one ``kind`` the scale of that kind (see :mod:`.targets`).

    Weights are normalised to unit RMS per tensor and scaled by :math:`e^{s}\sqrt{\beta/\text{fan-in}}`
    (``log_scale`` :math:`s` (G,) is predicted, clipped to [-3, 1]); biases become
    :math:`\tanh(\cdot)/\sqrt{\text{fan-in}}` (PyTorch's default range); norm γ :math:`1 + \tanh(\cdot)`
    and β :math:`\tanh(\cdot)`; embeddings get unit RMS and other tables RMS 0.02 (both exempt from fan-in).
    """
    g = raw.shape[0]
    view = (g,) + (1,) * (raw.dim() - 1)
    s = log_scale.clamp(-3.0, 1.0).exp().view(view)
    if kind in ("weight", "embedding", "table") and raw[0].numel() > 1:
        # one pass for the norm and one for the product (a ResNet-50 is 23.5 M values)
        rms = torch.linalg.vector_norm(raw.reshape(g, -1), dim=1) / math.sqrt(raw[0].numel())
        if kind == "weight":
            target_scale = raw.new_tensor([t.scale for t in targets])
        else:
            target_scale = raw.new_full((g,), 1.0 if kind == "embedding" else 0.02)
        return raw * (s.view(g) * target_scale / (rms + 1e-8)).view(view)
    if kind == "bias":
        return torch.tanh(raw) * raw.new_tensor([1.0 / math.sqrt(max(t.fan_in, 1)) for t in targets]).view(view)
    if kind == "norm_weight":
        return 1.0 + torch.tanh(raw)
    if kind == "norm_bias":
        return torch.tanh(raw)
    return 0.02 * torch.tanh(raw)  # a one-element weight or table


__all__ = ["ShapeDecoder", "scale_prediction"]
