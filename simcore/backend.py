"""Backend selection: `init(arch, precision)`, capability checks, and the active configuration.

All `ti.init` calls go through here so that a move to a maintained Taichi fork stays contained.
"""

from __future__ import annotations

import dataclasses
import logging
import os

import numpy as np
import taichi as ti

from .errors import BackendError

log = logging.getLogger("simcore")

ARCHS = ("auto", "cpu", "cuda", "vulkan")
PRECISIONS = ("f32", "f64")


@dataclasses.dataclass(frozen=True)
class Backend:
    """The active backend: `arch` is what Taichi actually runs on (never 'auto')."""

    arch: str
    precision: str

    @property
    def real(self):
        """The Taichi float type of this precision."""
        return ti.f64 if self.precision == "f64" else ti.f32

    @property
    def np_real(self):
        return np.float64 if self.precision == "f64" else np.float32


_active: Backend | None = None
_generation = 0  # bumped on every init: compiled scenes from an earlier init are invalid


def _taichi_arch(name: str):
    return {"cpu": ti.cpu, "cuda": ti.cuda, "vulkan": ti.vulkan}[name]


def _running_arch() -> str:
    arch = ti.lang.impl.current_cfg().arch
    return {ti.x64: "cpu", ti.arm64: "cpu", ti.cuda: "cuda", ti.vulkan: "vulkan"}.get(arch, str(arch))


def _try_init(arch: str, precision: str, **kwargs) -> bool:
    """Start Taichi on `arch`; True when Taichi really runs there (it silently falls back to CPU)."""
    real = ti.f64 if precision == "f64" else ti.f32
    ti.init(arch=_taichi_arch(arch), default_fp=real, default_ip=ti.i32, offline_cache=True,
            log_level=ti.ERROR, **kwargs)
    return _running_arch() == arch


def _check_f64_transcendentals() -> None:
    """Raise BackendError when the device cannot run 64-bit log/exp (SPIR-V GLSL.std.450 has no f64
    Log/Exp/Pow, so Taichi's Vulkan backend rejects them on most devices)."""
    probe = ti.field(ti.f64, 2)

    @ti.kernel
    def _probe():
        for i in probe:
            probe[i] = ti.log(ti.exp(ti.cast(i + 1, ti.f64)))

    try:
        _probe()
        ok = np.allclose(probe.to_numpy(), [1.0, 2.0])
    except RuntimeError as exc:  # Taichi raises RuntimeError from its SPIR-V code generator
        raise BackendError(
            "precision='f64' is not available on this Vulkan device: its shaders cannot run 64-bit "
            f"transcendental functions (log/exp), which the materials need ({exc}). "
            "Use precision='f32' on Vulkan, or arch='cpu' / 'cuda' for f64.") from None
    if not ok:
        raise BackendError("precision='f64' gave wrong 64-bit log/exp results on this Vulkan device; "
                           "use precision='f32' on Vulkan, or arch='cpu' / 'cuda' for f64.")


def init(arch: str = "auto", precision: str = "f32", *, threads: int | None = None,
         verbose: bool = True) -> Backend:
    """Start the compute backend. Call once before building scenes; calling again restarts Taichi and
    invalidates scenes built before.

    Args:
        arch: "cpu", "cuda", "vulkan", or "auto" (CUDA if present, else Vulkan, else CPU; the choice
            is logged and returned).
        precision: "f32" or "f64" for all particle and grid floats.
        threads: CPU threads (default: all cores).
    Returns:
        The active `Backend` (its `arch` is the one really in use).
    Raises:
        ValueError: unknown arch or precision.
        BackendError: the arch or precision asked for is not available here.
    """
    global _active, _generation
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}: choose one of {', '.join(ARCHS)}")
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: choose 'f32' or 'f64'")
    kwargs = {}
    if threads is not None:
        kwargs["cpu_max_num_threads"] = int(threads)
    if arch == "auto":
        for candidate in ("cuda", "vulkan", "cpu"):
            if candidate != "cpu" and not _try_init(candidate, precision, **kwargs):
                continue
            if candidate == "cpu":
                _try_init("cpu", precision, **kwargs)
            if candidate == "vulkan" and precision == "f64":
                try:
                    _check_f64_transcendentals()
                except BackendError:
                    continue
            chosen = candidate
            break
        if verbose:
            log.warning("simcore: arch='auto' chose %s (%s)", chosen, precision)
    else:
        if not _try_init(arch, precision, **kwargs):
            running = _running_arch()
            _try_init("cpu", precision, **kwargs)  # leave Taichi in a defined state
            _active = Backend("cpu", precision)
            _generation += 1
            hint = {"cuda": "no CUDA GPU/driver was found; use arch='cpu' or 'vulkan', or 'auto'",
                    "vulkan": "no Vulkan device was found (on Debian/Ubuntu: apt-get install "
                              "mesa-vulkan-drivers for a CPU software device); use arch='cpu' or 'auto'"}
            raise BackendError(f"arch={arch!r} is not available (Taichi fell back to {running}): "
                               f"{hint.get(arch, '')}")
        if arch == "vulkan" and precision == "f64":
            try:
                _check_f64_transcendentals()
            except BackendError:
                _try_init("cpu", precision, **kwargs)
                _active = Backend("cpu", precision)
                _generation += 1
                raise
        chosen = arch
    _active = Backend(chosen, precision)
    _generation += 1
    return _active


def active() -> Backend:
    """The active backend; starts CPU f32 (or $SIMCORE_ARCH / $SIMCORE_PRECISION) when none was chosen."""
    if _active is None:
        init(os.environ.get("SIMCORE_ARCH", "cpu"), os.environ.get("SIMCORE_PRECISION", "f32"),
             verbose=False)
    return _active


def generation() -> int:
    """Counts `init` calls; a scene compiled under another generation must be rebuilt."""
    return _generation

