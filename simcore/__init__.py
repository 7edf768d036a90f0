"""simcore: a differentiable Lagrangian physics engine (MLS-MPM on Taichi, gradients into PyTorch)."""

from . import colliders, materials, shapes
from .backend import init
from .errors import BackendError, SimulationError
from .scene import Scene
from .trajectory import Trajectory

__version__ = "0.1.0"

__all__ = ["init", "Scene", "Trajectory", "SimulationError", "BackendError", "shapes", "materials",
           "colliders", "__version__"]


def __getattr__(name):
    # Subsystems with heavier imports load on first use: simcore.rigid, simcore.viz, simcore.export.
    if name in ("rigid", "viz", "export", "torch"):
        import importlib

        return importlib.import_module("." + name, __name__)
    raise AttributeError(f"module 'simcore' has no attribute {name!r}")
