"""Transfer: a digits-cnn graph metanetwork run (3 seeds) scored on every final network of a digits-cnn-wild zoo.

Usage: python docs/experiments/metanets_digits/transfer.py RUN WILD_ZOO
"""
import json
import sys

import numpy as np
import torch

from weightzoo.metanets.metrics import kendall_tau
from weightzoo.metanets.train import TrainedMetanet, graphs_for
from weightzoo.zoo.store import Zoo

torch.set_num_threads(1)
run, wild = sys.argv[1], sys.argv[2]
with Zoo.open(wild, create=False) as z:
    finals = list(z.models(final=True))
    taus = []
    for seed in (0, 1, 2):
        tm = TrainedMetanet.load(run, seed)
        g, recs, t = graphs_for([r.ref for r in finals], zoo=z, target="test_accuracy")
        taus.append(kendall_tau(np.array(tm.predict(g, recs)), np.array(t, dtype=float)))
print(json.dumps({"networks": len(finals), "tau_per_seed": taus, "mean": float(np.mean(taus)),
                  "std": float(np.std(taus, ddof=1))}, indent=1))
