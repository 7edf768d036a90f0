"""simcore.learned: learned components trained on simcore's own trajectories (installed from the
repository's learned/ directory as simcore.learned).

- simcore.learned.data: scene families, dataset generation (local pool or Ray) into Zarr, and a torch
  Dataset over a generated set.
- simcore.learned.train: the training toolkit the models share (checkpoints, metrics, DDP via torchrun).
"""
