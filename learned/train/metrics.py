"""Metrics to CSV (one row per logged step) and to TensorBoard when it is installed.

The CSV is plain text any tool reads: a `step` column, a `time_s` column (seconds since the run's
start, wall clock) and one column per metric in the order they first appear. A metric that first appears
after some rows were written widens the table (the file is rewritten with the new header; earlier rows
leave that column empty). A resumed run first drops the rows of steps after its checkpoint, so that the
steps replayed after a crash are not counted twice.
"""

from __future__ import annotations

import csv
import io
import math
import os
import time
from pathlib import Path

from .checkpoint import atomic_write_bytes


class MetricsLogger:
    """Appends metrics rows to `csv_path`; mirrors them to TensorBoard under `tensorboard_dir`.

    Args:
        csv_path: the CSV file (created with its directory; an existing one is appended to).
        tensorboard_dir: a directory for TensorBoard event files, or None for none. TensorBoard is used
            only when the `tensorboard` package is installed; `require_tensorboard=True` makes its absence
            an error instead of a silent skip.
        resume_step: drop existing rows whose step is >= this (the steps a resumed run will redo);
            None keeps every row.
    """

    def __init__(self, csv_path: str | os.PathLike, *, tensorboard_dir: str | os.PathLike | None = None,
                 require_tensorboard: bool = False, resume_step: int | None = None):
        self.path = Path(csv_path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.start = time.monotonic()
        self.columns: list[str] = ["step", "time_s"]
        rows: list[dict] = []
        if self.path.exists() and self.path.stat().st_size > 0:
            with open(self.path, newline="") as f:
                reader = csv.DictReader(f)
                if not reader.fieldnames or reader.fieldnames[0] != "step":
                    raise ValueError(f"{self.path} is not a metrics CSV written by MetricsLogger (its first "
                                     f"column is not 'step'): choose another output directory or delete it")
                self.columns = list(reader.fieldnames)
                rows = [row for row in reader if row.get("step")]
            if resume_step is not None:
                kept = [row for row in rows if int(row["step"]) < resume_step]
                if len(kept) != len(rows):
                    self._rewrite(kept)
                rows = kept
            if rows and rows[-1].get("time_s"):
                self.start -= float(rows[-1]["time_s"])  # time_s goes on from where the previous run stopped
        else:
            self._rewrite([])
        self.tensorboard = None
        if tensorboard_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as error:  # torch's writer needs the tensorboard package
                if require_tensorboard:
                    raise ValueError("TensorBoard logging was asked for but the tensorboard package is not "
                                     "installed: pip install tensorboard, or log to CSV only") from error
            else:
                self.tensorboard = SummaryWriter(log_dir=str(tensorboard_dir), purge_step=resume_step)

    def log(self, step: int, metrics: dict) -> None:
        """Write one row: `step` (an int) and `metrics` (name -> number or 0-d tensor)."""
        values = {}
        for name, value in metrics.items():
            if name in ("step", "time_s"):
                raise ValueError(f"metric name {name!r} is reserved for the CSV's own column; rename it")
            try:
                values[name] = float(value)
            except (TypeError, ValueError) as error:
                raise ValueError(f"metric {name!r} must be a number or a 0-d tensor, got {value!r}") from error
        new = [name for name in values if name not in self.columns]
        if new:
            with open(self.path, newline="") as f:
                rows = list(csv.DictReader(f))
            self.columns += new
            self._rewrite(rows)
        row = {"step": int(step), "time_s": f"{time.monotonic() - self.start:.3f}"}
        row.update({name: repr(v) if math.isfinite(v) else str(v) for name, v in values.items()})
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=self.columns, lineterminator="\n").writerow(row)
        if self.tensorboard is not None:
            for name, value in values.items():
                self.tensorboard.add_scalar(name, value, int(step))

    def _rewrite(self, rows: list[dict]) -> None:
        # The whole table at once and atomically, so that an interrupted rewrite never loses the rows.
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=self.columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: row.get(k, "") for k in self.columns} for row in rows)
        atomic_write_bytes(self.path, text.getvalue().encode())

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()
            self.tensorboard = None


def read_metrics(csv_path: str | os.PathLike) -> list[dict]:
    """The rows of a metrics CSV as dicts of floats (`step` as int; empty cells left out)."""
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [{k: (int(v) if k == "step" else float(v)) for k, v in row.items() if v != ""} for row in rows]
