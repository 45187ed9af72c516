"""The named benchmark zoos: ``get_builder(name, **options)`` and ``build(name, zoo, ...)``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .builder import BuildReport, DatasetBuilder, DatasetError, Executor, build_dataset

if TYPE_CHECKING:
    from weightzoo.zoo.store import ZooLike


def _classes() -> dict[str, type[DatasetBuilder]]:
    from .archs import ArchsBuilder
    from .cnn_zoo import DigitsCNNBuilder, DigitsCNNWildBuilder
    from .inr import DigitsINRBuilder
    from .lineage import DigitsLineageBuilder
    from .mlp_zoo import DigitsMLPBuilder

    return {c.name: c for c in (DigitsCNNBuilder, DigitsCNNWildBuilder, DigitsMLPBuilder, DigitsINRBuilder,
                                DigitsLineageBuilder, ArchsBuilder)}


DATASETS: tuple[str, ...] = ("digits-cnn", "digits-cnn-wild", "digits-mlp", "digits-inr", "digits-lineage", "archs")


def get_builder(name: str, **options: Any) -> DatasetBuilder:
    """The builder of dataset ``name`` with recipe ``options`` (e.g. ``shared_init=True`` for digits-inr)."""
    classes = _classes()
    if name not in classes:
        raise DatasetError(f"unknown dataset {name!r}; valid: {', '.join(DATASETS)}")
    try:
        return classes[name](**options)
    except (TypeError, ValueError) as exc:
        raise DatasetError(f"{name}: bad options {options}: {exc}") from exc


def build(name: str, zoo: ZooLike, *, size: int | None = None, seed: int = 0, workers: int | None = None,
          executor: Executor | None = None, batch_models: int = 512, progress: bool = True,
          ray: bool | str | None = None, **options: Any) -> BuildReport:
    """Build (or resume) dataset ``name`` into ``zoo`` (a ``Zoo`` or a folder); see :func:`build_dataset`."""
    return build_dataset(get_builder(name, **options), zoo, size=size, seed=seed, workers=workers,
                         executor=executor, batch_models=batch_models, progress=progress, ray=ray)


def describe() -> list[dict[str, Any]]:
    """One row per dataset: name, default size and its unit, recipe version, one-line description."""
    rows = []
    for name, cls in _classes().items():
        doc = (cls.__doc__ or "").strip().splitlines()[0]
        rows.append({"name": name, "default_size": cls.default_size, "size_unit": cls.size_unit,
                     "recipe_version": cls.recipe_version, "description": doc})
    return rows


__all__ = ["DATASETS", "build", "describe", "get_builder"]
