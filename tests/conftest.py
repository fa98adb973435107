"""Shared test set-up: small-tensor work runs fastest single-threaded on 2 cores."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

try:  # torch is an optional extra; parts that do not use it must not need it
    import torch
except ImportError:
    torch = None
else:
    torch.set_num_threads(1)
