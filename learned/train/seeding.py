"""Seeded runs: one seed for Python's, NumPy's and torch's generators, and their states as plain data
so that a checkpoint can carry them and a resumed run draws the same numbers an uninterrupted one would."""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python's `random`, NumPy's legacy global generator and torch's CPU and CUDA generators.

    Every rank of a data-parallel run takes the same seed, so that models built after this call start
    identical on every rank (DDP broadcasts rank 0's parameters anyway; `sync_gradients` loops rely on it).
    DataLoader workers are seeded by torch from this state (torch seeds `random`, NumPy and torch in each
    worker), so a loader's random draws follow from the seed too.
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)
    torch.manual_seed(int(seed))  # also seeds every CUDA device


def rng_state() -> dict:
    """The state of Python's, NumPy's (legacy global) and torch's CPU (and CUDA) generators, as plain data
    (ints, lists and uint8 tensors) that `torch.load(weights_only=True)` can read back."""
    py_version, py_internal, py_gauss = random.getstate()
    np_state = np.random.get_state(legacy=False)
    state = {
        "python": [py_version, list(py_internal), py_gauss],
        "numpy": {"bit_generator": np_state["bit_generator"],
                  "key": np_state["state"]["key"].tolist(), "pos": int(np_state["state"]["pos"]),
                  "has_gauss": int(np_state["has_gauss"]), "gauss": float(np_state["gauss"])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore generators from `rng_state()`'s output (a CUDA state is restored only where CUDA is present)."""
    try:
        py_version, py_internal, py_gauss = state["python"]
        random.setstate((py_version, tuple(py_internal), py_gauss))
        np_state = state["numpy"]
        np.random.set_state({"bit_generator": np_state["bit_generator"],
                             "state": {"key": np.asarray(np_state["key"], dtype=np.uint32), "pos": np_state["pos"]},
                             "has_gauss": np_state["has_gauss"], "gauss": np_state["gauss"]})
        torch.set_rng_state(state["torch"])
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"not a random-generator state written by rng_state(): {error}") from error
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
