"""Reverse-mode differentiation of MPM rollouts: checkpointed segments, recomputed grids."""

from .rollout import DiffRollout

__all__ = ["DiffRollout"]
