"""Typed exceptions of weightzoo.

Every error derives from :class:`WeightzooError` and also from the closest builtin, so callers can catch
either (a missing model is also a ``LookupError``; a busy zoo is also an ``OSError``). The offending path,
tensor, model or module travels in attributes as well as in the message. The CLI prints ``str(error)`` on
one line and exits non-zero for these; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from os import PathLike


class WeightzooError(Exception):
    """Root of all errors weightzoo raises on purpose."""


# --- checkpoints -------------------------------------------------------------------------------------


class CheckpointError(WeightzooError, ValueError):
    """A checkpoint is corrupt, truncated, inconsistent or lying about its contents."""

    def __init__(self, path: str | PathLike[str] | None, reason: str, *, tensor: str | None = None) -> None:
        self.path = None if path is None else str(path)
        self.reason = reason
        self.tensor = tensor
        where = f"{self.path}: " if self.path else ""
        what = f"tensor {tensor!r}: " if tensor else ""
        super().__init__(f"{where}{what}{reason}")


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint tries something dangerous (code in a pickle, a zip bomb, a path escaping its folder)."""


class UnsupportedFormatError(CheckpointError):
    """The file is not a checkpoint format weightzoo reads (or its content disagrees with its name)."""


class NoWeightsError(CheckpointError, FileNotFoundError):
    """A path (file or folder) holds no weights weightzoo can read."""


class CheckpointReadError(CheckpointError, OSError):
    """A checkpoint path exists but cannot be read (permission denied, a symlink loop, an I/O error)."""


# --- the zoo store -----------------------------------------------------------------------------------


class ZooError(WeightzooError):
    """Something about a zoo (the store) went wrong."""


class ModelNotFoundError(ZooError, LookupError):
    """No model of that name in the zoo."""

    def __init__(self, name: str, zoo: str | PathLike[str] | None = None) -> None:
        self.name = name
        self.zoo = None if zoo is None else str(zoo)
        where = f" in zoo {self.zoo}" if self.zoo else ""
        super().__init__(f"no model named {name!r}{where}")


class TensorNotFoundError(ZooError, LookupError):
    """The model has no tensor of that name (or is metadata-only and holds no bytes)."""

    def __init__(self, model: str, tensor: str, reason: str = "no such tensor") -> None:
        self.model = model
        self.tensor = tensor
        super().__init__(f"model {model!r}, tensor {tensor!r}: {reason}")


class ModelExistsError(ZooError, FileExistsError):
    """A model of that name is already in the zoo (pass ``replace=True`` or another name)."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"a model named {name!r} is already in the zoo (use another name or replace=True)")


class ZooNotFoundError(ZooError, FileNotFoundError):
    """The folder is not a zoo (no catalogue) and creating one was not asked for."""

    def __init__(self, path: str | PathLike[str], reason: str = "no zoo here") -> None:
        self.path = str(path)
        super().__init__(f"{self.path}: {reason}")


class ZooBusyError(ZooError, BlockingIOError):
    """Another process holds the zoo's writer lock."""

    def __init__(self, path: str | PathLike[str], holder: str = "") -> None:
        self.path = str(path)
        self.holder = holder
        extra = f" (held by {holder})" if holder else ""
        super().__init__(f"zoo busy: another process is writing to {self.path}{extra}; try again later")


class ZooCorruptError(ZooError, OSError):
    """The zoo's files disagree with its catalogue (run ``weightzoo verify --repair``)."""


class IncompatibleZooError(ZooError, OSError):
    """The zoo's catalogue was written by another (newer or pre-release) weightzoo and cannot be read."""


class AmbiguousRevisionError(ZooError, LookupError):
    """A revision prefix matches more than one stored revision of a model."""


class LineageError(ZooError, ValueError):
    """A lineage edge that cannot be (a model as its own parent, an unknown relation)."""


class StorageError(ZooError, OSError):
    """Writing to the zoo failed (disk full, permissions); the zoo is left as it was."""


class ZooReadOnlyError(StorageError, PermissionError):
    """The zoo is read-only for this user: reads work, writes (ingest, rm, gc, repair) are refused."""


class TensorCorruptError(ZooCorruptError):
    """A stored tensor's bytes do not match their content hash (a damaged pack); nothing was returned."""

    def __init__(self, model: str, tensor: str, pack: str, reason: str = "bytes do not match their hash") -> None:
        self.model = model
        self.tensor = tensor
        self.pack = pack
        super().__init__(f"model {model!r}, tensor {tensor!r} (pack {pack}): {reason}; the pack is damaged — "
                         "run `weightzoo verify --repair`, then re-ingest the model to restore it")


class AmbiguousModelError(WeightzooError, ValueError):
    """A MODEL argument names both an existing path and a zoo model."""

    def __init__(self, ref: str) -> None:
        self.ref = ref
        super().__init__(
            f"{ref!r} is both a path and a model in the zoo: write ./{ref} for the path or pass --zoo for the model"
        )


class InvalidNameError(WeightzooError, ValueError):
    """A model name that the zoo cannot store (empty, control characters, '@' misuse, too long)."""


# --- architectures, graphs and symmetries -----------------------------------------------------------


class SpecError(WeightzooError, ValueError):
    """An architecture spec is malformed or cannot be built."""


class UnsupportedLayerError(WeightzooError, TypeError):
    """A module (or spec entry) has a layer kind that this representation does not cover."""

    def __init__(self, path: str, kind: str, hint: str = "") -> None:
        self.path = path
        self.kind = kind
        extra = f"; {hint}" if hint else ""
        super().__init__(f"layer {path!r} of type {kind} is not supported{extra}")


class KernelTooLargeError(WeightzooError, ValueError):
    """A convolution kernel is larger than the graph's ``max_kernel``."""

    def __init__(self, path: str, kernel: tuple[int, ...], max_kernel: tuple[int, ...]) -> None:
        self.path = path
        self.kernel = kernel
        self.max_kernel = max_kernel
        super().__init__(
            f"layer {path!r} has kernel {kernel}, larger than max_kernel={max_kernel}; "
            f"pass max_kernel={tuple(max(a, b) for a, b in zip(kernel, max_kernel))} (or larger) to build its graph"
        )


class ComputeGraphError(WeightzooError, ValueError):
    """Recording a ComputeGraph failed: the forward pass raised (the module path and type say where), no
    example input could be derived, or (``strict=True``) some parameters are owned by no node."""

    def __init__(self, reason: str, *, path: str | None = None, kind: str | None = None,
                 unowned: list[str] | None = None) -> None:
        self.path = path
        self.kind = kind
        self.unowned = list(unowned or [])
        super().__init__(reason)


class HyperNetworkError(WeightzooError, ValueError):
    """A graph hypernetwork cannot predict (part of) a module: the modules it cannot cover are named in
    ``modules`` (path → reason), or a GHN checkpoint/run folder is not one."""

    def __init__(self, reason: str, *, modules: dict[str, str] | None = None) -> None:
        self.modules = dict(modules or {})
        super().__init__(reason)


class GraphTooLargeError(WeightzooError, ValueError):
    """A graph is too large for the requested representation (e.g. networkx) without ``force=True``."""


class ShapeMismatchError(WeightzooError, ValueError):
    """Tensors that must agree in shape (merging, task vectors, alignment) do not."""

    def __init__(self, message: str, mismatches: list[tuple[str, tuple[int, ...], tuple[int, ...]]] | None = None):
        self.mismatches = mismatches or []
        super().__init__(message)


class AnalysisError(WeightzooError, ValueError):
    """An analysis was asked something it cannot answer (no filters, no tensors, unknown grouping, bad option)."""


class FilterAnalysisError(AnalysisError):
    """A filter analysis cannot run on this selection (no conv filters, unknown grouping, bad option)."""


class StatsError(AnalysisError):
    """Weight statistics were asked of something that has none (no tensors, bad option)."""


class RetrievalError(AnalysisError):
    """Architecture retrieval cannot answer: an index built by another encoder, a missing index, a bad query."""


class DatasetError(WeightzooError, ValueError):
    """A dataset build or import was asked for something inconsistent (unknown dataset, seed/recipe mismatch)."""


class HubError(WeightzooError, OSError):
    """A Hugging Face Hub (or mirror) request failed after the retries weightzoo owns."""


class InvalidOptionError(WeightzooError, ValueError):
    """An option value is out of range or not one of the valid choices (the message lists them)."""


class ConfigError(InvalidOptionError):
    """A configuration file (a merge YAML, a mirror's repo.json) is unreadable or malformed."""


class ExecutorError(WeightzooError, RuntimeError):
    """A heavy job's executor (process pool, Ray) could not run it."""


class ExecutorUnavailableError(ExecutorError, ImportError):
    """The chosen backend cannot be used here (Ray not installed, cluster unreachable)."""

    def __init__(self, backend: str, reason: str) -> None:
        self.backend = backend
        self.reason = reason
        super().__init__(f"executor {backend}: {reason}")


class TaskFailedError(ExecutorError):
    """One item of a job lost its worker more often than the executor retries (killed, out of memory, node lost)."""

    def __init__(self, item: object, attempts: int, reason: str) -> None:
        self.item = item
        self.attempts = attempts
        self.reason = reason
        text = repr(item)
        super().__init__(f"task {text[:120]}{'...' if len(text) > 120 else ''} failed after {attempts} "
                         f"attempt(s): {reason}")


class HeaderTooLargeError(CheckpointError):
    """A safetensors header announces more bytes than the limit (refused before fetching them)."""


class TruncatedResponseError(HubError):
    """A response body ended before the length it announced (or the range asked for)."""


__all__ = [
    "ExecutorError",
    "ExecutorUnavailableError",
    "TaskFailedError",
    "AmbiguousModelError",
    "AmbiguousRevisionError",
    "IncompatibleZooError",
    "LineageError",
    "AnalysisError",
    "DatasetError",
    "FilterAnalysisError",
    "StatsError",
    "CheckpointError",
    "CheckpointReadError",
    "ComputeGraphError",
    "ConfigError",
    "HeaderTooLargeError",
    "TruncatedResponseError",
    "HubError",
    "GraphTooLargeError",
    "HyperNetworkError",
    "InvalidNameError",
    "InvalidOptionError",
    "KernelTooLargeError",
    "ModelExistsError",
    "ModelNotFoundError",
    "NoWeightsError",
    "RetrievalError",
    "ShapeMismatchError",
    "SpecError",
    "StorageError",
    "TensorCorruptError",
    "TensorNotFoundError",
    "UnsafeCheckpointError",
    "UnsupportedFormatError",
    "UnsupportedLayerError",
    "WeightzooError",
    "ZooBusyError",
    "ZooCorruptError",
    "ZooError",
    "ZooNotFoundError",
    "ZooReadOnlyError",
]
