"""Shared fixtures. Taichi has one runtime per process: each test module starts the backend it needs
once (module scope), so kernels compile once per module and scenes are shared between its tests."""

import os

import numpy as np
import pytest

import simcore as sc


def pytest_xdist_auto_num_workers(config) -> int:
    """`-n auto` (pyproject.toml's addopts): one worker per core this process may run on. xdist's own
    count can be the host's physical cores (through psutil), far more than a CI container's two."""
    return max(1, len(os.sched_getaffinity(0))) if hasattr(os, "sched_getaffinity") else max(1, os.cpu_count() or 1)


def _vulkan_available() -> bool:
    try:
        sc.init("vulkan", "f32", verbose=False)
        return True
    except sc.BackendError:
        return False


@pytest.fixture(scope="module")
def cpu64():
    """CPU, float64: for laws checked to round-off."""
    return sc.init("cpu", "f64")


@pytest.fixture(scope="module")
def cpu32():
    return sc.init("cpu", "f32")


@pytest.fixture(scope="session")
def vulkan_ok():
    ok = _vulkan_available()
    sc.init("cpu", "f32", verbose=False)
    return ok


def momentum(mass, v):
    """Total linear momentum Σ m v: (dim,)."""
    return np.einsum("p,pd->d", mass, v)


def angular_momentum(mass, x, v, C, dx):
    """APIC total angular momentum about the origin (Jiang et al. 2015, §5.3): Σ m (x × v) plus the
    affine part m dx²/4 ε:Cᵀ (quadratic B-splines have inertia-like tensor D = dx²/4 I)."""
    dim = x.shape[1]
    if dim == 2:
        particle = x[:, 0] * v[:, 1] - x[:, 1] * v[:, 0]
        affine = dx**2 / 4 * (C[:, 1, 0] - C[:, 0, 1])
        return np.sum(mass * (particle + affine))
    particle = np.cross(x, v)
    affine = dx**2 / 4 * np.stack([C[:, 2, 1] - C[:, 1, 2], C[:, 0, 2] - C[:, 2, 0], C[:, 1, 0] - C[:, 0, 1]], 1)
    return np.einsum("p,pd->d", mass, particle + affine)
