"""Backend selection and its errors."""

import logging

import pytest

import simcore as sc


def test_unknown_arch_and_precision():
    with pytest.raises(ValueError, match="unknown arch 'tpu'"):
        sc.init("tpu")
    with pytest.raises(ValueError, match="unknown precision"):
        sc.init("cpu", "f16")


def test_cuda_without_gpu_is_a_clear_error():
    try:
        backend = sc.init("cuda")
    except sc.BackendError as err:
        assert "arch='cuda' is not available" in str(err)
        assert sc.backend.active().arch == "cpu"
    else:
        assert backend.arch == "cuda"  # a GPU machine: the request was honoured
    sc.init("cpu")


def test_auto_reports_its_choice(caplog):
    with caplog.at_level(logging.WARNING, logger="simcore"):
        backend = sc.init("auto")
    assert backend.arch in ("cpu", "cuda", "vulkan")
    assert f"chose {backend.arch}" in caplog.text
    sc.init("cpu")


def test_vulkan_f64_refused_or_works(vulkan_ok):
    """f64 on Vulkan: either the device runs 64-bit log/exp, or init raises a clear error."""
    if not vulkan_ok:
        pytest.skip("no Vulkan device (install mesa-vulkan-drivers)")
    try:
        backend = sc.init("vulkan", "f64")
        assert backend.precision == "f64"
    except sc.BackendError as err:
        assert "precision='f64' is not available on this Vulkan device" in str(err)
    finally:
        sc.init("cpu")


@pytest.mark.cuda
def test_cuda_runs_a_scene():
    try:
        sc.init("cuda")
    except sc.BackendError:
        pytest.skip("no CUDA GPU on this machine")
    scene = sc.Scene(dim=2, grid=24)
    scene.add_body(sc.shapes.Box(center=(0.5, 0.5), size=(0.2, 0.2)), sc.materials.NeoHookean())
    traj = scene.run(frames=3, frame_dt=0.01)
    sc.init("cpu")
    assert traj.meta["arch"] == "cuda" and (traj.x[-1, :, 1] < traj.x[0, :, 1]).all()


def test_kernel_cache_keeps_what_a_session_compiles(monkeypatch):
    """Taichi's default cache limit (100 MB, least recently used quarter evicted) is below what the test
    suite compiles, so each run evicted the next one's kernels: init raises it, unless the user set
    TI_OFFLINE_CACHE_MAX_SIZE_OF_FILES, which wins."""
    ti = sc.backend.ti
    try:
        sc.init("cpu")
        assert ti.lang.impl.current_cfg().offline_cache_max_size_of_files == sc.backend.KERNEL_CACHE_BYTES
        assert sc.backend.KERNEL_CACHE_BYTES >= 10 * 100 * 2**20
        monkeypatch.setenv("TI_OFFLINE_CACHE_MAX_SIZE_OF_FILES", "123456789")
        sc.init("cpu")
        assert ti.lang.impl.current_cfg().offline_cache_max_size_of_files == 123456789
    finally:
        monkeypatch.delenv("TI_OFFLINE_CACHE_MAX_SIZE_OF_FILES")
        sc.init("cpu")


def test_taichi_errors_still_point_at_the_source_line():
    """backend memoizes Taichi's source-position messages (its front end formatted one per AST node, most
    of a large kernel's time in every process): a compile error still names the file, the line and the
    offending expression with Taichi's ^^^ hint, twice in a row (the second from the memo)."""
    from taichi.lang.ast.ast_transformer_utils import ASTTransformerContext

    ti = sc.backend.ti
    assert getattr(ASTTransformerContext.get_pos_info, "memoized", False)
    sc.init("cpu")

    @ti.kernel
    def broken() -> ti.f32:
        return undefined_name * 2.0  # noqa: F821

    with open(__file__) as source:
        line = 1 + next(i for i, text in enumerate(source) if "return undefined_name * 2.0" in text)
    for _ in range(2):
        with pytest.raises(Exception) as err:
            broken()
        text = str(err.value)
        assert __file__ in text and f"line {line}" in text and "undefined_name" in text and "^^^" in text
