"""Atomic checkpoints: model, optimiser, scheduler, step and random-generator states in one file.

A checkpoint is written to a temporary file in the same directory, flushed to disk, then renamed over its
final name (`os.replace`, atomic on POSIX and Windows): a crash at any moment leaves either the previous
checkpoint or the new one, never a truncated file under a checkpoint's name. Files are
`DIR/step_00001000.pt` (the number counts optimiser steps done); the newest `keep` are kept.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import torch

FORMAT = "simcore.learned.train checkpoint"
VERSION = 1
_NAME = re.compile(r"^step_(\d{8,})\.pt$")


def checkpoint_path(directory: str | os.PathLike, step: int) -> Path:
    """Where the checkpoint after `step` optimiser steps lives: DIR/step_%08d.pt."""
    return Path(directory) / f"step_{int(step):08d}.pt"


def list_checkpoints(directory: str | os.PathLike) -> list[tuple[int, Path]]:
    """(step, path) of every complete checkpoint in `directory`, oldest first (temporary files of an
    interrupted write are not listed)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), directory / name) for name in os.listdir(directory) if (m := _NAME.match(name))]
    return sorted(found)


def latest_checkpoint(directory: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint in `directory`, or None if there is none."""
    found = list_checkpoints(directory)
    return found[-1][1] if found else None


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` atomically: a temporary file beside it, fsync, then os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            _write(f, data)
            f.flush()
            os.fsync(f.fileno())  # the bytes reach the disk before the name does
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def _write(f, data: bytes) -> None:
    # One function for the payload write, so that a test can make it fail half-way (a simulated crash).
    f.write(data)


def _fsync_directory(directory: Path) -> None:
    # The rename itself is durable only once the directory entry is on disk (POSIX); Windows has no
    # directory file descriptors, where os.replace is already durable enough.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(path: str | os.PathLike, state: dict) -> Path:
    """Serialise `state` (a dict of state_dicts, tensors and plain data) with torch.save, atomically.

    `state` usually comes from `training_state(...)`. Returns the path written.
    """
    payload = {"format": FORMAT, "version": VERSION, **state}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


def load_checkpoint(path: str | os.PathLike, *, map_location="cpu", weights_only: bool = True) -> dict:
    """Read a checkpoint written by `save_checkpoint`.

    Raises ValueError naming `path` if it is missing, truncated or not such a checkpoint.
    `weights_only=True` (torch's safe loader) reads tensors and plain Python data; pass False only for
    checkpoints you trust whose `extra` holds other objects.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no checkpoint at {path}: give the path of a step_*.pt file written by save_checkpoint")
    try:
        state = torch.load(path, map_location=map_location, weights_only=weights_only)
    except Exception as error:  # torch raises RuntimeError, EOFError, pickle errors... for damaged files
        raise ValueError(f"checkpoint {path} cannot be read ({type(error).__name__}: {error}); it is damaged "
                         f"or not a simcore.learned.train checkpoint: delete it to resume from an older one") from error
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path} is not a simcore.learned.train checkpoint (no format marker {FORMAT!r})")
    if state.get("version", 0) > VERSION:
        raise ValueError(f"checkpoint {path} has format version {state['version']}, newer than this simcore "
                         f"reads ({VERSION}): update simcore")
    return state


def prune_checkpoints(directory: str | os.PathLike, keep: int) -> None:
    """Delete all but the newest `keep` checkpoints in `directory` (keep <= 0 keeps every one), and
    temporary files left by writes that a crash interrupted."""
    directory = Path(directory)
    if keep > 0:
        for _, path in list_checkpoints(directory)[:-keep]:
            path.unlink(missing_ok=True)
    if directory.is_dir():
        for name in os.listdir(directory):
            if name.startswith(".step_") and ".tmp-" in name:
                (directory / name).unlink(missing_ok=True)
