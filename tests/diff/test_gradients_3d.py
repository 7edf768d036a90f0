"""The 3D cases of test_gradients.py (the same checks against central finite differences, CPU, float64).

Apart because of how Taichi's disk cache keys a kernel: by its source and by the ids of the fields it
touches, and field ids count every field made since the last `ti.init`. A solver's kernels compiled in
one process load from the cache in another only when both made the same fields before it. This module
starts Taichi afresh (sc.init) and builds the 3D neo-Hookean scene first, as examples/sysid_jelly.py
does in its own process (same configuration and capacity: 24³ grid, one plane, f64, 1,024 particles,
256 slots), so that tests/test_examples_diff.py's run of that example loads these kernels instead of
compiling them again (about 40 s on a 2-core CPU; measured with an empty cache: 47 s → 10 s)."""

import pytest
from test_gradients import (
    check,
    check_fixed_corotated,
    check_free_flight,
    check_neo_hookean,
    flip_case,
    neo_hookean_scene,
)

import simcore as sc


@pytest.fixture(scope="module", autouse=True)
def fresh_cpu64():
    sc.init("cpu", "f64", verbose=False)  # fresh field ids: see the module's docstring
    yield
    sc.init("cpu", "f32", verbose=False)


@pytest.fixture(scope="module")
def neo_hookean(fresh_cpu64):
    return neo_hookean_scene(3)


def test_neo_hookean_moduli_and_initial_velocity(neo_hookean):
    """dL/dE, dL/dν and dL/dv0 of a neo-Hookean body bouncing on a frictional plane, 3D."""
    scene, (E, nu, v0) = neo_hookean
    check_neo_hookean(scene, E, nu, v0)


def test_free_flight_dx_dv0_is_T(neo_hookean):
    """Free flight (no contact; gravity is additive): d mean(x_T) / d v0 = T·I exactly, 3D."""
    check_free_flight(*neo_hookean)


def test_fixed_corotated_moduli():
    """dL/dE and dL/dν through the hand-written adjoint of the closest rotation (fixed corotated), 3D."""
    check_fixed_corotated(3)


def test_flip_transfer_gradients_3d():
    """dL/dE, dL/dν, dL/dρ and dL/dv0 through the FLIP transfer in 3D (its adjoint's node-by-node weight
    gradients in three axes; the 2D cases, on every stress path: test_gradients.py)."""
    check(*flip_case("NeoHookean", 3))
