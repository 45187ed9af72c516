r"""Candidate pairs and families: which models could be related, without comparing everything with everything.

1. Models are grouped by **architecture signature** (the names and shapes of their floating-point
   tensors, after dequantising): only models of one group are compared on all their tensors.
2. Inside a group, **random-hyperplane LSH** (SimHash) proposes pairs: each model's sketch is folded
   into a fixed-size fingerprint, projected on ``bands × bits`` random hyperplanes, and two models are
   compared only when all ``bits`` signs of at least one band agree. For two models at angle
   :math:`\theta` that happens with probability :math:`1 - (1 - (1 - \theta/\pi)^{b})^{L}`: ≈ 1 for a
   fine-tune and its parent (:math:`\cos \ge 0.9`), ≈ ``L · 2^{-b}`` for unrelated networks
   (:math:`\cos \approx 0`). Small groups (≤ ``exhaustive_below``) are compared exhaustively.
3. Across groups, models that share a stored tensor (same content hash: a frozen layer, a shared
   embedding) are compared on the tensors they have in common.

A proposed pair is *related* when its relative distance
:math:`\|a-b\| / \sqrt{(\|a\|^2+\|b\|^2)/2}` on their shared tensors is at most ``threshold``
(independently trained networks sit near :math:`\sqrt 2`; a fine-tune within a few percent of its parent).
Families are the connected components of the related pairs.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .sketch import ModelSketch

_FINGERPRINT = 512


@dataclass(frozen=True)
class PairDistance:
    """Distance between two models on the tensors they share (same name and shape)."""

    distance: float  # ‖a − b‖ (on sketches)
    relative: float  # distance / sqrt((‖a‖² + ‖b‖²) / 2)
    shared_tensors: int
    shared_hashes: int  # tensors whose stored bytes are identical (frozen or copied)


def pair_distance(a: ModelSketch, b: ModelSketch) -> PairDistance:
    """Distance of two sketched models over the tensors they share (no normalisation over any set)."""
    sq = na = nb = 0.0
    shared = same = 0
    for name, ta in a.tensors.items():
        tb = b.tensors.get(name)
        if tb is None or tb.shape != ta.shape:
            continue
        shared += 1
        if ta.hash is not None and ta.hash == tb.hash:
            same += 1
        else:
            d = ta.values - tb.values
            sq += float(d @ d) * ta.weight ** 2
        na += ta.sq_norm
        nb += tb.sq_norm
    dist = float(np.sqrt(max(sq, 0.0)))
    scale = float(np.sqrt((na + nb) / 2))
    return PairDistance(dist, dist / scale if scale > 0 else (0.0 if dist == 0 else float("inf")), shared, same)


def _fingerprint(s: ModelSketch, names: Sequence[str]) -> np.ndarray:
    """A fixed-size CountSketch of the whole model (its tensor sketches, folded once more)."""
    out = np.zeros(_FINGERPRINT)
    for name in names:
        v = s.tensors[name].values * s.tensors[name].weight
        rng = np.random.default_rng(zlib.crc32(f"fp|{name}|{v.size}".encode()))
        idx = rng.integers(0, _FINGERPRINT, size=v.size)
        sign = rng.integers(0, 2, size=v.size) * 2 - 1
        out += np.bincount(idx, weights=v * sign, minlength=_FINGERPRINT)
    return out


def lsh_pairs(sketches: Sequence[ModelSketch], *, bands: int = 32, bits: int = 10, seed: int = 0) -> set[tuple[int, int]]:
    """Index pairs ``(i, j)``, ``i < j``, whose SimHash signatures agree on at least one band."""
    if len(sketches) < 2:
        return set()
    names = sorted(sketches[0].tensors)
    fps = np.stack([_fingerprint(s, names) for s in sketches])
    planes = np.random.default_rng(seed).standard_normal((_FINGERPRINT, bands * bits))
    signs = (fps @ planes > 0).reshape(len(sketches), bands, bits)
    weights = 1 << np.arange(bits, dtype=np.int64)
    codes = (signs * weights).sum(axis=2)  # (models, bands)
    pairs: set[tuple[int, int]] = set()
    for band in range(bands):
        buckets: dict[int, list[int]] = defaultdict(list)
        for i, code in enumerate(codes[:, band]):
            buckets[int(code)].append(i)
        for members in buckets.values():
            for x in range(len(members)):
                for y in range(x + 1, len(members)):
                    pairs.add((members[x], members[y]))
    return pairs


@dataclass(frozen=True)
class Candidates:
    """The pairs compared, the related ones, and the families they form."""

    families: list[list[int]]  # indices into the sketch list; singletons included
    related: dict[tuple[int, int], PairDistance]
    pairs_compared: int
    groups: int  # architecture signatures


def find_families(sketches: Sequence[ModelSketch], *, threshold: float = 0.5, bands: int = 32, bits: int = 10,
                  exhaustive_below: int = 32, seed: int = 0) -> Candidates:
    """Group, propose, verify: the families of related models (see the module docstring)."""
    groups: dict[tuple[tuple[str, tuple[int, ...]], ...], list[int]] = defaultdict(list)
    for i, s in enumerate(sketches):
        groups[s.signature].append(i)
    proposed: set[tuple[int, int]] = set()
    for members in groups.values():
        if len(members) <= exhaustive_below:
            proposed |= {(members[x], members[y]) for x in range(len(members)) for y in range(x + 1, len(members))}
        else:
            sub = lsh_pairs([sketches[i] for i in members], bands=bands, bits=bits, seed=seed)
            proposed |= {(min(members[x], members[y]), max(members[x], members[y])) for x, y in sub}
    if len(groups) > 1:  # shared stored tensors link models across architectures
        by_hash: dict[str, set[int]] = defaultdict(set)
        for i, s in enumerate(sketches):
            for t in s.tensors.values():
                if t.hash is not None and len(t.shape) >= 2:
                    by_hash[t.hash].add(i)
        for holders in by_hash.values():
            hs = sorted(holders)
            proposed |= {(hs[x], hs[y]) for x in range(len(hs)) for y in range(x + 1, len(hs))
                         if sketches[hs[x]].signature != sketches[hs[y]].signature}
    related: dict[tuple[int, int], PairDistance] = {}
    parent = list(range(len(sketches)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, j in sorted(proposed):
        d = pair_distance(sketches[i], sketches[j])
        if d.shared_tensors and d.relative <= threshold:
            related[(i, j)] = d
            parent[find(i)] = find(j)
    comps: dict[int, list[int]] = defaultdict(list)
    for i in range(len(sketches)):
        comps[find(i)].append(i)
    families = sorted(comps.values(), key=lambda m: m[0])
    return Candidates(families=families, related=related, pairs_compared=len(proposed), groups=len(groups))


__all__ = ["Candidates", "PairDistance", "find_families", "lsh_pairs", "pair_distance"]
