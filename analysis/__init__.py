"""Analyses over zoos: task vectors and merging, filter and weight statistics, retrieval, lineage."""
