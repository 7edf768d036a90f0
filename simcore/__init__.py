"""simcore: a differentiable Lagrangian physics engine (MLS-MPM on Taichi, gradients into PyTorch)."""

from . import colliders, materials, shapes
from .backend import init
from .errors import BackendError, SimulationError
from .scene import Scene
from .trajectory import Trajectory

__version__ = "0.1.0"

__all__ = ["init", "Scene", "Trajectory", "SimulationError", "BackendError", "shapes", "materials",
           "colliders", "__version__"]


# Subpackages with heavier imports load on first use (`import simcore` stays fast); dir() lists them.
_LAZY = ("rigid", "viz", "export", "torch", "scenes", "assets")


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return importlib.import_module("." + name, __name__)
    raise AttributeError(f"module 'simcore' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
