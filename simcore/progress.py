"""Progress of long work, wherever the output goes.

On a terminal or in a Jupyter notebook a loop shows a tqdm bar (tqdm.auto: a widget where ipywidgets is
installed). Anywhere else (CI logs, `nohup`, output redirected to a file) a bar would be silent or a
mess of carriage returns, so a line goes to stderr every `period` seconds instead:

    simcore: frame 12/30, 4.1 s/frame, ETA 1m14s

the first after 2 s (`delay`, or one period if that is shorter), and one at the end
(`simcore: 30 frames in 2m03s`); runs shorter than that report nothing. The period is 10 s, or
$SIMCORE_PROGRESS_PERIOD seconds.

Building a solver compiles its kernels on their first launch (seconds in 2D, up to a minute for a 3D
adjoint), which would look like a hang; `compiling(config)` says so first. Inside `quiet()` (what
`Scene.run(progress=False)` and `simcore run --no-progress` use) nothing is reported.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import sys
import time

PERIOD_ENV = "SIMCORE_PROGRESS_PERIOD"
PERIOD = 10.0  # s between progress lines without a terminal
DELAY = 2.0  # s of work before the first report

_quiet = contextvars.ContextVar("simcore_progress_quiet", default=False)


def default_period() -> float:
    """Seconds between progress lines: $SIMCORE_PROGRESS_PERIOD if set (> 0), else 10."""
    text = os.environ.get(PERIOD_ENV)
    if not text:
        return PERIOD
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ValueError(f"${PERIOD_ENV}={text!r} must be a number of seconds > 0 (e.g. 10), or unset")
    return value


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (its output is shown, but is not a terminal)."""
    ipython = sys.modules.get("IPython")
    try:
        shell = ipython.get_ipython() if ipython is not None else None
        return shell is not None and "IPKernelApp" in shell.config
    except Exception:  # an IPython without a shell or config: not a notebook
        return False


def interactive(stream=None) -> bool:
    """Whether `stream` (default stderr) redraws a progress bar for someone: a terminal or a notebook."""
    stream = sys.stderr if stream is None else stream
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        tty = False
    return tty or in_notebook()


@contextlib.contextmanager
def quiet(on: bool = True):
    """Within the block, `Progress` and `compiling` report nothing (when `on`)."""
    token = _quiet.set(on or _quiet.get())
    try:
        yield
    finally:
        _quiet.reset(token)


def is_quiet() -> bool:
    return _quiet.get()


def duration(seconds: float) -> str:
    """A short duration: '42s', '1m14s', '2h05m'."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class Progress:
    """Counts the steps of a loop of `total` `unit`s and reports them (see the module docstring).

    Args:
        total: steps expected.
        unit: what a step is, singular ("frame").
        show: False: report nothing; None: report once the loop has run `delay` seconds (or one
            `period`, if shorter); True: report from the first step. Nothing is reported inside `quiet()`.
        period: seconds between lines when the output is not interactive (default `default_period()`).
        delay: seconds before the first report when `show` is None (a bar waits that long too).
        stream: where to report (default sys.stderr).
    Use as a context manager, calling `update()` after each step.
    """

    def __init__(self, total: int, unit: str = "frame", *, show: bool | None = None, period: float | None = None,
                 delay: float = DELAY, stream=None):
        self.total, self.unit = int(total), unit
        self.stream = sys.stderr if stream is None else stream
        self.period = default_period() if period is None else float(period)
        if not self.period > 0:
            raise ValueError(f"period must be > 0 s, got {period!r}")
        self.delay = 0.0 if show else float(delay)
        self.done = 0
        self.lines = 0
        self.start = time.monotonic()
        self._next_line = self.start + min(self.delay, self.period)  # then one each period
        self._mark = (self.start, 0)  # (time, steps done) at the previous line: the rate is a recent one
        self._bar = None
        self._closed = False
        if show is False or is_quiet() or self.total <= 0:
            self.mode = "off"
        elif interactive(self.stream):
            from tqdm.auto import tqdm

            self.mode = "bar"
            self._bar = tqdm(total=self.total, unit=unit, delay=self.delay, leave=False, file=self.stream)
        else:
            self.mode = "lines"

    def update(self, n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
        elif self.mode == "lines":
            now = time.monotonic()
            if now >= self._next_line and self.done < self.total:
                per = (now - self._mark[0]) / max(self.done - self._mark[1], 1)
                self._say(self.line(per))
                self._mark, self._next_line = (now, self.done), now + self.period

    def line(self, per: float) -> str:
        """The progress line at `per` seconds a step since the previous line (the first includes any
        compilation), e.g. 'frame 12/30, 4.1 s/frame, ETA 1m14s'."""
        return (f"{self.unit} {self.done}/{self.total}, {per:.2g} s/{self.unit}, "
                f"ETA {duration(per * (self.total - self.done))}")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.mode == "lines" and self.lines and not self._closed:  # a log that showed progress shows the end
            self._say(f"{self.done} {self.unit}s in {duration(time.monotonic() - self.start)}")
        self._closed = True

    def _say(self, text: str) -> None:
        print(f"simcore: {text}", file=self.stream, flush=True)
        self.lines += 1

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def describe(config) -> str:
    """A solver configuration in a few words, e.g. '2D Snow on a 64-cell grid, f32 on cpu'."""
    from . import materials

    names = {cls.kind: cls.__name__ for cls in (*materials.ALL, materials.Neural)}
    kinds = " + ".join(names.get(k, str(k)) for k in config.kinds) or "no material"
    grad = ", with gradients" if config.needs_grad else ""
    return f"{config.dim}D {kinds} on a {config.grid}-cell grid, {config.precision} on {config.arch}{grad}"


def compiling(config) -> None:
    """Say on stderr that the kernels of a new solver of `config` (simcore.mpm.config.Configuration)
    compile now, so that the pause that follows is not taken for a hang (silent inside `quiet()`)."""
    if not is_quiet():
        print(f"simcore: compiling kernels for {describe(config)} (on first use; cached on disk afterwards)…",
              file=sys.stderr, flush=True)
