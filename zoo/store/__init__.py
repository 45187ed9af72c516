"""The store: a zoo folder with a SQLite catalogue (models, tensors, lineage, metadata, crawl state) and
content-addressed HDF5 packs; one writer at a time, lazy reads, ``rm``/``gc``/``verify``."""

from .catalog import ModelRecord, TensorRecord
from .maintenance import VerifyReport
from .resolve import classify_ref, load_state_dict, resolve_spec
from .zoo import CATALOG, PACKS, Zoo, ZooLike, using_zoo

__all__ = ["CATALOG", "PACKS", "ModelRecord", "TensorRecord", "VerifyReport", "Zoo", "classify_ref", "load_state_dict",
           "resolve_spec", "using_zoo", "ZooLike"]
