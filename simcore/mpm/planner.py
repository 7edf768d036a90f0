"""Substeps: how many per frame, and how long, from the CFL stability bound. One planner for every
driver (`Scene.run` re-plans each frame from the current state; `Scene.rollout` plans once)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..errors import SimulationError


def substeps_for_frame(frame_dt: float, signal_speed: float, gravity: float, dx: float, dt: float | None,
                       cfl: float, frame: int) -> tuple[int, float]:
    """Equal substeps for one frame: (count, length s).

    The CFL bound is dx / (signal speed + |g|·frame_dt), with signal speed the largest wave speed + |v|
    (m/s) and |g| (m/s²) the speed gravity may add within the frame. `dt` (s) fixes the largest
    substep, which must respect the bound; None takes cfl · bound.
    Raises:
        ValueError: a fixed dt above the bound at frame 1 (the scene as given is unstable).
        SimulationError: the same at a later frame (the motion became too fast for dt).
    """
    speed = signal_speed + gravity * frame_dt
    bound = dx / max(speed, 1e-30)
    if dt is None:
        step = cfl * bound
    else:
        if dt > bound:
            msg = (f"dt={dt:.4g} s exceeds the CFL stability bound {bound:.4g} s "
                   f"(dx / (wave speed + |v| + |g|·frame_dt) = {dx:.4g} m / {speed:.4g} m/s)")
            if frame == 1:
                raise ValueError(msg + "; lower dt, or pass dt=None to choose it automatically")
            raise SimulationError(msg + f" at frame {frame}: the motion became too fast for this dt; "
                                  "lower dt or use dt=None", frame=frame)
        step = dt
    n = max(1, math.ceil(frame_dt / step * (1 - 1e-12)))
    return n, frame_dt / n


@dataclasses.dataclass
class Schedule:
    """Substeps of a run: substeps per frame and their length (s) per frame."""

    substeps: list[int]
    dts: list[float]

    @staticmethod
    def uniform(frames: int, substeps: int, dt: float) -> Schedule:
        return Schedule(substeps=[substeps] * frames, dts=[dt] * frames)

    @property
    def total(self) -> int:
        return sum(self.substeps)

    def frame_ends(self) -> list[int]:
        """Global substep index after which each frame 1..F ends (frame f ends after frame_ends[f-1])."""
        return [int(g) for g in np.cumsum(self.substeps)]

    def frame_starts(self) -> list[int]:
        """Global substep index at which each frame 1..F starts."""
        return [0] + self.frame_ends()[:-1]

    def substep_dts(self) -> np.ndarray:
        """(T,) s: the length of every substep."""
        if getattr(self, "_per_substep", None) is None:
            self._per_substep = np.repeat(np.asarray(self.dts, dtype=np.float64), self.substeps)
        return self._per_substep

    def dt_of(self, g: int) -> float:
        """dt of global substep g."""
        if not 0 <= g < self.total:
            raise IndexError(g)
        return float(self.substep_dts()[g])

    def segments(self, k: int, at_frames: bool = False) -> list[tuple[int, int]]:
        """(first global substep, length) of each segment of at most k substeps; with at_frames,
        one segment per frame (a closed-loop controller acts at frame starts)."""
        if at_frames:
            return list(zip(self.frame_starts(), self.substeps))
        return [(g0, min(k, self.total - g0)) for g0 in range(0, self.total, k)]
