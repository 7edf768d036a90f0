"""Backend selection: `init(arch, precision)`, capability checks, and the active configuration.

All `ti.init` calls go through here so that a move to a maintained Taichi fork stays contained. So does
keeping Taichi quiet: its version banner on import and its "Starting on arch=..." line on every
`ti.init` are not printed (the chosen backend is returned, and logged at DEBUG on the "simcore"
logger; `simcore info` shows the versions), and the expected failure of the f64 capability probe on
Vulkan does not leak Taichi's own error line (the probe's result is a clean BackendError).
Set ENABLE_TAICHI_HEADER_PRINT=true to get the banner back.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import os
import sys

import numpy as np

from .errors import BackendError

log = logging.getLogger("simcore")

_BANNER = "ENABLE_TAICHI_HEADER_PRINT"  # read by taichi/_lib/utils.py when taichi is first imported


def _import_taichi():
    """`import taichi` without its version banner (unless the user set ENABLE_TAICHI_HEADER_PRINT);
    the environment is left as it was."""
    if "taichi" in sys.modules:
        return sys.modules["taichi"]
    saved = os.environ.get(_BANNER)
    os.environ.setdefault(_BANNER, "false")
    try:
        import taichi
    finally:
        if saved is None:
            os.environ.pop(_BANNER, None)
    return taichi


ti = _import_taichi()


def _memoize_source_positions() -> None:
    """Make Taichi's front end reuse its source-position messages.

    Turning a kernel's Python into Taichi IR (every process, cache or not: the offline cache is looked up
    after it) formats a "File ..., line ..." message with a ^^^ hint, through textwrap, for every AST
    node it visits, and every ti.func is visited again at each call site. For the rigid step kernel that
    was 300,000 messages and most of the 10–17 s its first call took in each process even with the
    compiled kernel on disk. The message depends only on the node's position, its function and its source
    lines, so equal positions get the same string back. Taichi 1.7's `ASTTransformerContext.get_pos_info`
    only; left alone if it is not there."""
    try:
        from taichi.lang.ast.ast_transformer_utils import ASTTransformerContext
    except ImportError:
        return
    format_position = getattr(ASTTransformerContext, "get_pos_info", None)
    if format_position is None or getattr(format_position, "memoized", False):
        return
    memo: dict = {}
    spans_body = ("For", "While", "FunctionDef", "If")

    def get_pos_info(self, node):
        kind = node.__class__.__name__
        body_line = node.body[0].lineno if kind in spans_body and getattr(node, "body", None) else None
        end = node.end_lineno if node.end_lineno is not None else node.lineno
        key = (self.file, self.lineno_offset, self.indent, self.func.func.__name__, kind, node.lineno, end,
               node.col_offset, node.end_col_offset, body_line, tuple(self.src[node.lineno - 1:end]))
        message = memo.get(key)
        if message is None:
            message = memo[key] = format_position(self, node)
        return message

    get_pos_info.memoized = True
    get_pos_info.original = format_position  # benchmarks/kernel_start.py --plain restores it
    ASTTransformerContext.get_pos_info = get_pos_info


_memoize_source_positions()


@contextlib.contextmanager
def _native_output_silenced():
    """Discard what Taichi's C++ core writes to the process's stdout and stderr (file descriptors 1
    and 2) inside the block. Its logger writes there directly, so neither Python's sys.stderr nor
    `ti.set_logging_level` catches all of it (an f64 SPIR-V failure also prints blank lines on fd 1)."""
    import ctypes

    try:  # C stdio buffers are flushed before the descriptors are swapped (and before they are restored)
        c_flush = ctypes.CDLL(None).fflush
    except (OSError, TypeError, AttributeError):  # no C library handle (Windows): nothing to flush
        c_flush = None
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    if c_flush is not None:
        c_flush(None)
    saved = []
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        yield
        return
    try:
        for fd in (1, 2):
            with contextlib.suppress(OSError):
                saved.append((fd, os.dup(fd)))
                os.dup2(devnull, fd)
        yield
    finally:
        if c_flush is not None:
            c_flush(None)
        for fd, copy in saved:
            os.dup2(copy, fd)
            os.close(copy)
        os.close(devnull)


@contextlib.contextmanager
def quick_compile():
    """Kernels compiled inside the block skip Taichi's advanced IR optimizations (LLVM still optimizes
    their code). Where a kernel is large and straight-line these passes take most of its compile time
    and buy nothing at run time: the rigid step kernel (167 s against 13 s cold on 2 cores, 1,024 box
    worlds at 150k world-steps/s either way) and the reverse mode of MPM's stress update
    (`p2g_stress.grad`: most of a 3D sand gradient's compile time, the backward pass as fast without
    them). The MPM forward kernels keep them: with all of them off (TI_ADVANCED_OPTIMIZATION=0
    python benchmarks/mpm_throughput.py) the 64³ fluid ran 30 % slower. Only kernels compiled in the
    block are affected (an already compiled one runs as it was built)."""
    cfg = ti.lang.impl.current_cfg()
    before = cfg.advanced_optimization
    cfg.advanced_optimization = False
    try:
        yield
    finally:
        cfg.advanced_optimization = before


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


# Taichi's on-disk kernel cache holds 100 MB by default and then evicts the least recently used quarter.
# simcore's kernels are large (a 3D configuration with gradients is tens of MB) and the test suite's set
# is several times that, so with the default every run evicted what the next one needed (a "warm" suite
# took as long as a cold one). TI_OFFLINE_CACHE_MAX_SIZE_OF_FILES still sets it. (Taichi keeps the limit in
# a 32-bit int: 2 GB is about the most it takes.)
KERNEL_CACHE_BYTES = 2_000_000_000
_CACHE_SIZE_VARIABLE = "TI_OFFLINE_CACHE_MAX_SIZE_OF_FILES"


def _try_init(arch: str, precision: str, **kwargs) -> bool:
    """Start Taichi on `arch`; True when Taichi really runs there (it silently falls back to CPU)."""
    real = ti.f64 if precision == "f64" else ti.f32
    if not os.environ.get(_CACHE_SIZE_VARIABLE):
        kwargs.setdefault("offline_cache_max_size_of_files", KERNEL_CACHE_BYTES)
    with contextlib.redirect_stdout(io.StringIO()) as said:  # "[Taichi] Starting on arch=..."
        ti.init(arch=_taichi_arch(arch), default_fp=real, default_ip=ti.i32, offline_cache=True,
                log_level=ti.ERROR, **kwargs)
    log.debug("%s", said.getvalue().strip())
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
        with _native_output_silenced():  # the failure is expected on most devices; we report it below
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


_f64_arithmetic: dict[int, bool] = {}


def has_f64_arithmetic() -> bool:
    """Whether the active device runs 64-bit float arithmetic and square roots (the rigid-body step
    kernel needs them): always on CPU and CUDA; on Vulkan only on devices with shaderFloat64 (Mesa's
    lavapipe has it; many laptop and mobile GPUs do not). Probed once per `init`."""
    arch = active().arch
    if arch != "vulkan":
        return True
    if _generation not in _f64_arithmetic:
        probe = ti.field(ti.f64, 4)

        @ti.kernel
        def _probe():
            probe[2] = (1.0 + probe[0]) - 1.0     # 2⁻⁴⁰ in f64, 0 in f32
            probe[3] = ti.sqrt(probe[1])

        try:
            with _native_output_silenced():
                probe.from_numpy(np.array([2.0 ** -40, 2.0, 0.0, 0.0]))
                _probe()
            got = probe.to_numpy()
            _f64_arithmetic[_generation] = bool(got[2] == 2.0 ** -40 and got[3] == np.sqrt(2.0))
        except RuntimeError:  # Taichi's SPIR-V code generator rejects f64 on the device
            _f64_arithmetic[_generation] = False
    return _f64_arithmetic[_generation]


def active() -> Backend:
    """The active backend; starts CPU f32 (or $SIMCORE_ARCH / $SIMCORE_PRECISION) when none was chosen."""
    if _active is None:
        init(os.environ.get("SIMCORE_ARCH", "cpu"), os.environ.get("SIMCORE_PRECISION", "f32"),
             verbose=False)
    return _active


def generation() -> int:
    """Counts `init` calls; a scene compiled under another generation must be rebuilt."""
    return _generation

