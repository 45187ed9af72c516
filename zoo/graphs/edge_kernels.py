r"""Edge features stored per kernel size, padded to the graph's window only on demand.

Format v1 gives every edge of a :class:`~weightzoo.zoo.graphs.ParameterGraph` a ``kh·kw`` feature: the
edge's kernel placed in the centre of the ``max_kernel`` window (offset ``((kh - kr) // 2, (kw - kc) // 2)``),
zeros around it. On a ResNet-50 (13.4 M edges, 7×7 window) that is 2.6 GB of mostly zeros — almost every
edge is a 1×1 conv or a Linear weight. :class:`EdgeKernels` keeps each tensor's edges as one *run* of
unpadded ``kr×kc`` kernels (a Linear weight or 1×1 conv is one value per edge; packed embedding/position
tables fill the whole window; parameter-free structural edges are a constant 1 and store nothing), so a
graph costs about one copy of its parameters. :meth:`EdgeKernels.padded` writes the format-v1 ``[E, kh·kw]``
tensor, bit-identical to placing every kernel directly; :meth:`EdgeKernels.by_kernel` gives the edges of
each kernel size with their unpadded values (what a batch of graphs whose largest kernel is small needs).

Memory: ``Σ_runs count·kr·kc`` values (≈ the number of weights) instead of ``E·kh·kw``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class KernelRun:
    """Edges ``start .. start + count - 1``, each carrying one ``kernel = (kr, kc)`` kernel.

    ``values`` is ``[count, kr·kc]`` (row-major kernels, float32 or float64); ``None`` means every value
    is 1 (residual identities, flatten fan-outs and other parameter-free edges; always ``kernel = (1, 1)``).
    """

    start: int
    count: int
    kernel: tuple[int, int]
    values: torch.Tensor | None

    def offset(self, window: tuple[int, int]) -> tuple[int, int]:
        """Row and column of the kernel's top-left pixel inside ``window`` (centred, as format v1 places it)."""
        return (window[0] - self.kernel[0]) // 2, (window[1] - self.kernel[1]) // 2


class EdgeKernels:
    """The edge features of one graph as :class:`KernelRun` s (see the module docstring).

    Args:
        num_edges: ``E``, the graph's edge count (edges no run covers have all-zero features).
        window: ``(kh, kw)``, the graph's ``max_kernel``; every run's kernel fits inside it.
        runs: non-overlapping runs.
        dtype: the dtype of the padded features (float64 when any tensor of the network was float64).
    """

    def __init__(self, num_edges: int, window: tuple[int, int], runs: list[KernelRun], dtype: torch.dtype) -> None:
        kh, kw = window
        for r in runs:
            if r.kernel[0] > kh or r.kernel[1] > kw or r.start < 0 or r.start + r.count > num_edges:
                raise ValueError(f"EdgeKernels: run {r.start}+{r.count} with kernel {r.kernel} does not fit "
                                 f"{num_edges} edges in a {window} window")
            if r.values is not None and tuple(r.values.shape) != (r.count, r.kernel[0] * r.kernel[1]):
                raise ValueError(f"EdgeKernels: run at edge {r.start} holds values {tuple(r.values.shape)}, "
                                 f"expected {(r.count, r.kernel[0] * r.kernel[1])}")
        self.num_edges = num_edges
        self.window = (kh, kw)
        self.runs = list(runs)
        self.dtype = dtype
        self._by_start = {r.start: r for r in self.runs}

    def run_at(self, start: int) -> KernelRun:
        """The run that begins at edge ``start`` (a tensor slot's ``edge_start``)."""
        return self._by_start[start]

    @property
    def nbytes(self) -> int:
        """Bytes held by the stored values."""
        return sum(r.values.nbytes for r in self.runs if r.values is not None)

    def padded(self) -> torch.Tensor:
        """The format-v1 edge features ``[E, kh·kw]`` (each kernel centred in the window, zeros around)."""
        kh, kw = self.window
        out = torch.zeros(self.num_edges, kh, kw, dtype=self.dtype)
        for r in self.runs:
            r0, c0 = r.offset(self.window)
            kr, kc = r.kernel
            dst = out[r.start: r.start + r.count, r0: r0 + kr, c0: c0 + kc]
            if r.values is None:
                dst.fill_(1)
            else:
                dst.copy_(r.values.view(r.count, kr, kc))
        return out.view(self.num_edges, kh * kw)

    def by_kernel(self) -> dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]]:
        """``{(kr, kc): (edge ids [n], values [n, kr·kc])}``: every covered edge once, unpadded, grouped by
        kernel size (sorted by size, edge ids ascending within a size)."""
        groups: dict[tuple[int, int], list[KernelRun]] = {}
        for r in sorted(self.runs, key=lambda r: r.start):
            groups.setdefault(r.kernel, []).append(r)
        out = {}
        for k in sorted(groups):
            runs = groups[k]
            ids = torch.cat([torch.arange(r.start, r.start + r.count) for r in runs])
            vals = torch.cat([r.values.to(self.dtype) if r.values is not None
                              else torch.ones(r.count, k[0] * k[1], dtype=self.dtype) for r in runs])
            out[k] = (ids, vals)
        return out

    @classmethod
    def from_padded(cls, padded: torch.Tensor, window: tuple[int, int], spans: list[tuple[int, int, tuple[int, int]]],
                    ) -> EdgeKernels:
        """The runs ``spans`` (start, count, kernel) cut out of padded features ``[E, kh·kw]`` (copies)."""
        kh, kw = window
        view = padded.view(padded.shape[0], kh, kw)
        runs = []
        for start, count, (kr, kc) in spans:
            r0, c0 = (kh - kr) // 2, (kw - kc) // 2
            vals = view[start: start + count, r0: r0 + kr, c0: c0 + kc].reshape(count, kr * kc).clone()
            runs.append(KernelRun(start, count, (kr, kc), vals))
        return cls(padded.shape[0], window, runs, padded.dtype)


__all__ = ["EdgeKernels", "KernelRun"]
