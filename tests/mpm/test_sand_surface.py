"""Sand's 3D yield surface, Matsuoka–Nakai (simcore.mpm.constitutive.matsuoka_nakai_alpha), checked
against the law it solves, I1 I2 / I3 = 9 + 8 tan²φ, and against Mohr–Coulomb at the two corners where
the surface is built to touch it. CPU, float64."""

import math

import numpy as np
import pytest
import taichi as ti

from simcore.initial_stress import laws
from simcore.mpm import constitutive


@pytest.fixture(scope="module", autouse=True)
def cpu64_module(cpu64):
    return cpu64


@ti.kernel
def _alpha_kernel(sin_phi: ti.types.ndarray(), direction: ti.types.ndarray(), out: ti.types.ndarray()):
    for n in range(sin_phi.shape[0]):
        u = ti.Vector([direction[n, 0], direction[n, 1], direction[n, 2]], dt=ti.f64)
        out[n] = constitutive.matsuoka_nakai_alpha(sin_phi[n], u)


def alpha(phi_deg, direction):
    """The kernel's α for friction angles phi_deg (n,) degrees along unit deviatoric directions (n, 3)."""
    out = np.zeros(len(phi_deg))
    _alpha_kernel(np.sin(np.radians(phi_deg)), np.ascontiguousarray(direction, dtype=np.float64), out)
    return out


def deviatoric_directions(n, rng):
    """n random unit vectors with zero sum (principal strains' deviatoric directions), (n, 3)."""
    v = rng.normal(size=(n, 3))
    v -= v.mean(1, keepdims=True)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_matsuoka_nakai_alpha_solves_its_law_at_every_lode_angle():
    """Along a direction u (tension positive), the principal stresses at the surface are
    σ_i = p (1 − 3α u_i) (compression positive, α = the returned radius over −tr τ); there
    I1 I2 / I3 = 9 + 8 tan²φ to 1e-10, and α is the smallest such radius (numpy.roots on the cubic)."""
    rng = np.random.default_rng(7)
    phi = rng.uniform(5, 60, 400)
    u = deviatoric_directions(400, rng)
    a = alpha(phi, u)
    sigma = 1 - 3 * a[:, None] * u  # p = 1
    I1, I2, I3 = sigma.sum(1), (sigma[:, 0] * sigma[:, 1] + sigma[:, 1] * sigma[:, 2] + sigma[:, 2] * sigma[:, 0]), sigma.prod(1)
    K = 9 + 8 * np.tan(np.radians(phi)) ** 2
    np.testing.assert_allclose(I1 * I2 / I3, K, rtol=1e-10)
    for k in range(0, 400, 20):  # the smallest positive root of K D t³ + (3 − K) t² / 2 + (K − 9) = 0
        D = -np.prod(u[k])
        roots = np.roots([K[k] * D, (3 - K[k]) / 2, 0, K[k] - 9])
        real = roots[np.abs(roots.imag) < 1e-9].real
        assert 3 * a[k] == pytest.approx(real[real > 0].min(), rel=1e-9)


@pytest.mark.parametrize("phi", [20.0, 30.0, 40.0])
def test_matsuoka_nakai_meets_mohr_coulomb_at_its_corners(phi):
    """In triaxial compression (one principal strain most compressive, two equal) the surface is
    Klár's compression cone, α = √(2/3) · 2 sin φ / (3 − sin φ); in triaxial extension it is the cone
    through the extension corners, 3 + sin φ below. Between them it is wider than Mohr–Coulomb's
    radius at the same Lode angle (plane strain: sin φ · √2 / 3)."""
    s = math.sin(math.radians(phi))
    compression = np.array([[1.0, 1.0, -2.0]]) / math.sqrt(6)
    a_c, a_e, a_ps = alpha(np.full(3, phi), np.concatenate([compression, -compression, [[1 / math.sqrt(2), 0, -1 / math.sqrt(2)]]]))
    assert a_c == pytest.approx(math.sqrt(2 / 3) * 2 * s / (3 - s), rel=1e-12)
    assert a_e == pytest.approx(math.sqrt(2 / 3) * 2 * s / (3 + s), rel=1e-12)
    assert math.sqrt(2) * s / 3 < a_ps < a_c


def test_initial_stress_twin_equals_the_kernel():
    """simcore.initial_stress.laws.matsuoka_nakai_alpha (numpy, for the geostatic state) is the same
    function as the kernels' (to round-off)."""
    rng = np.random.default_rng(3)
    phi = rng.uniform(5, 60, 200)
    u = deviatoric_directions(200, rng)
    np.testing.assert_allclose(laws.matsuoka_nakai_alpha(np.sin(np.radians(phi)), u), alpha(phi, u), rtol=1e-13)
