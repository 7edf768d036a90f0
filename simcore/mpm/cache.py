"""Compiled solvers, shared: one per `Configuration`, reused by every scene that has it.

Taichi compiles a solver's kernels on their first launch (seconds in 2D, tens of seconds for a 3D
adjoint); a solver built for one scene runs any other scene of the same configuration that fits its
capacity, with no compilation. A scene that needs more room (particles, slots) replaces the solver of
its configuration by a larger one (compiled again); capacities are rounded up to powers of two so
that this is rare. Taichi's offline cache (on by default, simcore.backend) also lets a second process
load compiled kernels from disk instead of compiling them.
"""

from __future__ import annotations

import dataclasses

from .. import backend, progress
from .config import Capacity, Configuration


@dataclasses.dataclass
class CacheInfo:
    """built: solvers built (each compiles its kernels on first use); reused: requests served by an
    existing solver; solvers: how many are held now."""

    built: int = 0
    reused: int = 0
    solvers: int = 0


_solvers: dict[Configuration, object] = {}
_generation = None
_info = CacheInfo()


def solver_for(config: Configuration, particles: int, slots: int):
    """A solver of `config` with room for `particles` particles and `slots` slots: the cached one when
    it fits, else a new one (replacing it) with capacity for both."""
    from .solver import MPMSolver

    global _generation
    if _generation != backend.generation():  # Taichi was restarted: its fields are gone
        _solvers.clear()
        _generation = backend.generation()
    need = Capacity.for_particles(particles, slots, config.needs_grad)
    cached = _solvers.get(config)
    if cached is not None and cached.capacity.holds(Capacity(particles, slots)):
        _info.reused += 1
        return cached
    if cached is not None:  # grow: keep the larger of each size
        need = Capacity(max(need.particles, cached.capacity.particles), max(need.slots, cached.capacity.slots))
        cached.destroy()
    progress.compiling(config)  # its kernels compile on first launch: seconds to a minute of silence
    solver = MPMSolver(config, need)
    _solvers[config] = solver
    _info.built += 1
    return solver


def is_current(solver) -> bool:
    """Whether `solver` is still the cached solver of its configuration: False once it was replaced by
    a larger one or freed (`clear`, a Taichi restart), after which its fields must not be touched. A
    holder of a solver across calls (a rollout's autograd graph, until its backward) checks this and
    asks `solver_for` again when it is False."""
    return _generation == backend.generation() and _solvers.get(solver.config) is solver


def solvers() -> list:
    """The solvers held now."""
    return list(_solvers.values()) if _generation == backend.generation() else []


def info() -> CacheInfo:
    """Counts since the process started (or since `clear`)."""
    return dataclasses.replace(_info, solvers=len(_solvers))


def clear() -> None:
    """Free every cached solver's device memory (scenes build new ones when they next run)."""
    global _info
    if _generation == backend.generation():
        for solver in _solvers.values():
            solver.destroy()
    _solvers.clear()
    _info = CacheInfo()
