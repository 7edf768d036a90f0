"""Checks of user input shared by shapes and colliders: values turned into arrays, with errors that
name the parameter, what was given and what is expected."""

import numpy as np


def is_tensor(value) -> bool:
    """Whether `value` is a torch tensor (without importing torch)."""
    return type(value).__module__.startswith("torch")


def vector(value, name, dim=None, unit=""):
    """`value` (numbers, a numpy array or a torch tensor) as a flat float64 array (dim,) (any length
    when dim is None); ValueError naming the parameter `name` (in `unit`) when it is not numbers, not
    finite, or has the wrong length."""
    if is_tensor(value):
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        count = f"{dim} numbers" if dim is not None else "numbers"
        raise ValueError(f"{name} must be {count}{f' ({unit})' if unit else ''}, got {value!r}") from None
    if dim is not None and arr.shape != (dim,):
        raise ValueError(f"{name} must have {dim} components for a {dim}D scene, got {arr.shape[0]}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return arr
