"""The store: a zoo folder with a SQLite catalogue (models, tensors, lineage, metadata, crawl state) and
content-addressed HDF5 packs; one writer at a time, lazy reads, ``rm``/``gc``/``verify``; the executors every
heavy job runs on (in-process, processes, Ray) and the staging that lets workers write packs."""

from .catalog import ModelRecord, TensorRecord
from .detached import DetachedModel
from .executors import Executor, ProcessExecutor, RayExecutor, SerialExecutor, make_executor
from .maintenance import VerifyReport
from .resolve import classify_ref, load_state_dict, resolve_spec
from .staging import StagedPack, ingest_parallel, stage_pack
from .zoo import CATALOG, PACKS, Zoo, ZooLike, using_zoo

__all__ = ["CATALOG", "PACKS", "DetachedModel", "Executor", "ModelRecord", "ProcessExecutor", "RayExecutor",
           "SerialExecutor", "StagedPack", "TensorRecord", "VerifyReport", "Zoo", "classify_ref", "ingest_parallel",
           "load_state_dict", "make_executor", "resolve_spec", "stage_pack", "using_zoo", "ZooLike"]
