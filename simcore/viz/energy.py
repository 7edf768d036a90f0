"""Energy diagnostics of a trajectory: the numbers (kinetic, gravitational potential, their sum) and a
matplotlib plot of them against time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..export import check_trajectory
from ..io import atomic_write
from .colors import require_velocity
from .figure import DPI


def _gravity(traj, gravity) -> np.ndarray:
    if gravity is None:
        gravity = traj.meta.get("gravity")
        if gravity is None:
            raise ValueError("the trajectory's meta has no gravity; pass gravity=(0, -9.8) in m/s² "
                             "(one component per dimension)")
    g = np.asarray(gravity, dtype=float).reshape(-1)
    if g.shape != (traj.dim,) or not np.all(np.isfinite(g)):
        raise ValueError(f"gravity must be {traj.dim} finite numbers in m/s², got {gravity!r}")
    return g


def energy(traj, gravity=None) -> dict[str, np.ndarray]:
    """Per-frame energies, each (frames + 1,) J:
        kinetic   = ½ Σ_p m_p |v_p|²   (particle velocities; the APIC affine part is not included)
        potential = −Σ_p m_p g·x_p     (gravitational, zero at x = 0)
        total     = kinetic + potential (elastic strain energy is not included).
    gravity: (dim,) m/s²; default traj.meta["gravity"]. Needs traj.v."""
    v = require_velocity(traj, "energy")
    g = _gravity(traj, gravity)
    kinetic = 0.5 * np.einsum("p,fpd,fpd->f", traj.mass, v, v)
    potential = -np.einsum("p,fpd,d->f", traj.mass, traj.x, g)
    return {"kinetic": kinetic, "potential": potential, "total": kinetic + potential}


def plot_energy(traj, path=None, gravity=None) -> Figure:
    """Kinetic, gravitational potential and their sum (J) against time (s); see `energy`.

    Args:
        path: if given, the figure is saved there (PNG, or another format matplotlib knows by suffix).
        gravity: (dim,) m/s²; default traj.meta["gravity"].
    Returns:
        The matplotlib Figure (lines in the order kinetic, potential, total).
    """
    check_trajectory(traj)
    e = energy(traj, gravity)
    fig = Figure(figsize=(6.4, 4.0), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(traj.t, e["kinetic"], label="kinetic ½Σm|v|²")
    ax.plot(traj.t, e["potential"], label="gravitational −Σm g·x")
    ax.plot(traj.t, e["total"], "k--", label="kinetic + gravitational")
    ax.set(xlabel="time (s)", ylabel="energy (J)")
    ax.legend()
    if path is not None:
        save_figure(fig, path)
    return fig


def save_figure(fig: Figure, path) -> Path:
    """Save `fig` atomically; the format comes from the suffix (PNG when there is none)."""
    path = Path(path)
    fmt = path.suffix[1:].lower() or "png"
    supported = fig.canvas.get_supported_filetypes()
    if fmt not in supported:
        raise ValueError(f"cannot save a figure as .{fmt}: use one of {', '.join('.' + k for k in supported)}")
    with atomic_write(path) as handle:
        fig.savefig(handle, format=fmt)
    return path
