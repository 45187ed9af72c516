"""The Hugging Face Hub: a resumable, header-first crawler with declared lineage and owned retries, and a
Hub-compatible mirror server (with fault injection) for offline tests and demos."""

from .crawler import CrawlQuery, CrawlSummary, crawl
from .faults import FAULT_KINDS, Fault, FaultPlan
from .headers import HeaderReader, WeightPlan, select_weights
from .lineage import LineageEdge, declared_lineage
from .mirror import HubMirror, RequestRecord
from .retry import Retrier, RetryPolicy

__all__ = ["FAULT_KINDS", "CrawlQuery", "CrawlSummary", "Fault", "FaultPlan", "HeaderReader", "HubMirror", "LineageEdge", "RequestRecord",
           "Retrier", "RetryPolicy", "WeightPlan", "crawl", "declared_lineage", "select_weights"]
