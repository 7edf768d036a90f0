"""Errors a user can cause, with what went wrong, where, and what to do."""

from __future__ import annotations


class SimulationError(RuntimeError):
    """A simulation that could not continue (non-finite state, unstable step, bad set-up found mid-run).

    Attributes:
        problem: what went wrong and where (the message without `advice`).
        advice: what to do about it, in terms of the Python API, or None (`str(error)` is
            `problem` followed by `advice`; a front end with other knobs, like the CLI, shows
            `problem` with its own advice).
        frame: index of the frame being computed when the failure happened (1-based: frame 0 is the
            initial state), or None.
        substep: substep within that frame (0-based), or None.
        body: name of the first body whose particles went bad, or None.
        trajectory: everything computed before the failure (a Trajectory holding frames 0..frame-1),
            or None when nothing was computed.
    """

    def __init__(self, message: str, *, frame=None, substep=None, body=None, trajectory=None,
                 advice: str | None = None):
        super().__init__(message if not advice else f"{message}. {advice}")
        self.problem = message
        self.advice = advice
        self.frame = frame
        self.substep = substep
        self.body = body
        self.trajectory = trajectory


class BackendError(RuntimeError):
    """A backend (arch / precision) that was asked for and cannot be had on this machine."""
