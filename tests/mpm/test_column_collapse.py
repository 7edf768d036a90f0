"""Granular column collapse against the planar laws of Lube et al. 2005 (J. Fluid Mech. 540), in the
configuration whose run-outs converge with the grid and the time step (docs/granular.md, "Converged
collapses"): the μ(I) material with μs = tan φ (φ = 30°: layers stop flowing below 30°) and the FLIP
transfer (`sand_collapse` with rheology="mu_i", transfer="flip"; examples/column_collapse_lube.py).
2D, grid 64, float32, 1.5 s (the deposits rest by then: largest speed at the end ≈ 2e-3 m/s)."""

import sys
from pathlib import Path

import pytest

import simcore as sc

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def example():
    sc.init("cpu", "f32", verbose=False)
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import column_collapse_lube
    finally:
        sys.path.remove(str(ROOT / "examples"))
    return column_collapse_lube


def converged_collapse(example, width, height):
    """(ΔL/L0, H∞/L0, Lube's ΔL/L0, Lube's H∞/L0) of a column of `width` × `height` m."""
    run_out, top, speed = example.collapse(width, height, 64, 1.0, 30.0, 1.5, rheology="mu_i", transfer="flip")
    assert speed < 0.02  # at rest
    return (run_out, top, *example.lube(height / (width / 2)))


def test_short_column_keeps_its_top_and_runs_out_as_lube_measured(example):
    """Lube et al.'s laws for a = 0.8 < 1.15: ΔL/L0 = 1.2 a = 0.96, and the top does not come down,
    H∞ = H0. Asserted: run-out within 15 %, height within 5 % of H0 (measured −12 % and −3 % at grid 64;
    at grid 256 +3 % and −1 % after 2 s, docs/granular.md)."""
    run_out, top, lube_run_out, lube_top = converged_collapse(example, 0.3, 0.12)
    assert abs(run_out / lube_run_out - 1) < 0.15, run_out
    assert abs(top / lube_top - 1) < 0.05, top


def test_column_of_aspect_two_runs_out_as_lube_measured(example):
    """Lube et al.'s laws at a = 2: ΔL/L0 = 1.2 a = 2.40, H∞/L0 = a^0.4 = 1.32. Asserted: run-out within
    15 %, height within 20 % (measured −1 % and −15 % at grid 64). The deposits of taller columns are
    still too flat (a = 5: −22 % to −32 % at grids 64–256), which this does not assert."""
    run_out, top, lube_run_out, lube_top = converged_collapse(example, 0.2, 0.2)
    assert abs(run_out / lube_run_out - 1) < 0.15, run_out
    assert abs(top / lube_top - 1) < 0.2, top
