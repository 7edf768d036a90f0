"""Files: atomic writes and the canonical .npz trajectory format."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from pathlib import Path

import numpy as np


@contextlib.contextmanager
def atomic_path(path):
    """simcore.io.atomic_write for writers that need a file name (meshio, ffmpeg): yields a temporary
    path beside `path` with the same suffix, renamed onto `path` on success and removed on failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp{path.suffix}")
    # Mode 0o666 less the umask, as open() gives; mkstemp's 0600 would stay with the renamed file.
    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb"):
    """Open a temporary file beside `path`, yield it, and rename it onto `path` only on success,
    so a reader never sees a half-written file and a failed write leaves no file behind."""
    with atomic_path(path) as tmp, open(tmp, mode) as handle:
        yield handle


def save_npz(path, arrays: dict[str, np.ndarray], meta: dict, compress: bool = False) -> Path:
    """Write `arrays` and a JSON `meta` dict to a .npz, atomically; compress=True deflates each array
    (np.savez_compressed; np.load reads either kind). A path without the .npz suffix gets it."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_suffix(path.suffix + ".npz") if path.suffix else path.with_suffix(".npz")
    write = np.savez_compressed if compress else np.savez
    with atomic_write(path) as handle:
        write(handle, __meta__=np.array(json.dumps(meta)), **arrays)
    return path


def file_size(path) -> str:
    """The size of the file at `path` for people: "512 B", "3.4 kB", "377.1 MB", "1.2 GB" (powers of
    1000)."""
    size = float(Path(path).stat().st_size)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def load_npz(path) -> tuple[dict[str, np.ndarray], dict]:
    """Arrays and meta written by `save_npz`."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files if k != "__meta__"}
        meta = json.loads(str(data["__meta__"])) if "__meta__" in data.files else {}
    return arrays, meta
