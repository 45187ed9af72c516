"""Networks that read networks: permutation-equivariant metanetworks over ParameterGraphs."""
