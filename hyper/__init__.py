"""Networks that write networks: graph hypernetworks that predict parameters from ComputeGraphs."""
