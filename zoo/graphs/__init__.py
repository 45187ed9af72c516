"""Graphs of networks: ParameterGraph (neurons and weights) and ComputeGraph (operations)."""
