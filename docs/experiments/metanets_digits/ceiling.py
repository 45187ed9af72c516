"""Label-reliability ceiling of a digits-cnn zoo: split-half Kendall tau between the two halves of the test images.

Usage: python docs/experiments/metanets_digits/ceiling.py ZOO
"""
import json
import sys

import numpy as np

from weightzoo.metanets.data import load_records
from weightzoo.metanets.metrics import bootstrap_interval, kendall_tau
from weightzoo.zoo.store import Zoo

with Zoo.open(sys.argv[1], create=False) as z:
    recs = load_records(z, target="test_accuracy", dataset="digits-cnn")
out = {}
for split in ("test", "all"):
    rs = [r for r in recs if split == "all" or r.split == split]
    a = np.array([r.metadata["test_accuracy_a"] for r in rs])
    b = np.array([r.metadata["test_accuracy_b"] for r in rs])
    out[split] = {"n": len(rs), "split_half_tau": kendall_tau(a, b),
                  "ci95": bootstrap_interval(lambda i: kendall_tau(a[i], b[i]), len(rs))}
print(json.dumps(out, indent=1))
