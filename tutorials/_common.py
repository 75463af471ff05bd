"""Shared setup of the tutorials: small settings for the test suite on CPU (`INVVIZ_SMALL=1`), full ones (meant
for a GPU) otherwise."""

import os

import torch

SMALL = os.environ.get("INVVIZ_SMALL") == "1"
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def pick(small, full):
    """`small` under `INVVIZ_SMALL=1`, else `full`."""
    return small if SMALL else full


torch.manual_seed(0)
print(f"{'small' if SMALL else 'full'} settings on {DEVICE}")
