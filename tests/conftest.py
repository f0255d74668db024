"""Shared test set-up: CPU only, one thread per test process, no network, deterministic."""

import os

# Nothing may be downloaded at run time; make any accidental hub access fail fast.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
# Tests run two workers on two cores (pytest -n 2); more threads per worker only fight over the cores
# (a tiny forward went from ~50 ms to seconds under contention). Subprocesses inherit these too.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
# Rendered shapes sets (`t2iscale.data.shapes.cache`) go to one folder per test session, never the user's cache.
if "T2ISCALE_CACHE_DIR" not in os.environ:
    import tempfile

    os.environ["T2ISCALE_CACHE_DIR"] = tempfile.mkdtemp(prefix="t2iscale-test-cache-")

import torch  # noqa: E402

torch.set_num_threads(1)
