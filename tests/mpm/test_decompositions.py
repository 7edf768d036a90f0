"""The decompositions of F the materials read, and their hand-written adjoints (simcore.mpm.constitutive).

Laws: fixed corotated's R is the rotation (RᵀR = I, det R = +1) that minimises ‖F − R‖ — for
F = U Σ Vᵀ (numpy's SVD, float64) it is U diag(1, …, det(U Vᵀ)) Vᵀ (to 2e-10 in float64), inverted F included — and its
adjoint is the derivative of ⟨Ḡ, R(F)⟩, at F = I (equal singular values) too. The SVD's adjoint, fed
the adjoints of U, s, V of an isotropic tensor function H(F) = U diag(log s) Vᵀ (the Hencky strain the
plastic materials use), is the derivative of ⟨Ḡ, H(F)⟩ at distinct singular values (at equal ones
its symmetric part is 0/0 and comes out 0: the materials keep F = I off that path, see
constitutive.svd_adjoint). Both against central differences in float64."""

import numpy as np
import pytest
import taichi as ti

import simcore as sc
from simcore.mpm import constitutive

N = 64


def reference_rotation(F):
    U, _, Vt = np.linalg.svd(F)
    D = np.ones(F.shape[:-1])
    D[:, -1] = np.linalg.det(U @ Vt)
    return (U * D[:, None, :]) @ Vt


def deformation_gradients(dim, rng):
    """Random F near and far from rotations: at rest, isotropically squashed, sheared, inverted."""
    F = np.eye(dim) + 0.4 * rng.standard_normal((N, dim, dim))
    F[:4] = np.eye(dim)
    F[4:8] = 0.6 * np.eye(dim)
    F[8:16, 0, :] *= -1  # det F < 0
    return F


@ti.func
def _matrix(A: ti.template(), p, dim: ti.template()):
    return ti.Matrix([[A[p, i, j] for j in ti.static(range(dim))] for i in ti.static(range(dim))])


@ti.func
def _store(A: ti.template(), p, M, dim: ti.template()):
    for i, j in ti.static(ti.ndrange(dim, dim)):
        A[p, i, j] = M[i, j]


# Module-level kernels on numpy arrays: each compiles once per dimension and dtype (a kernel defined
# inside a helper compiled again at every call, 19 times per test).
@ti.kernel
def _rotation_kernel(F: ti.types.ndarray(), G: ti.types.ndarray(), R: ti.types.ndarray(), dF: ti.types.ndarray(),
                     tol: ti.f64, dim: ti.template()):
    for p in range(F.shape[0]):
        Rp = constitutive.closest_rotation(_matrix(F, p, dim), tol)
        _store(R, p, Rp, dim)
        _store(dF, p, constitutive.closest_rotation_adjoint(_matrix(F, p, dim), Rp, _matrix(G, p, dim), 1e-30), dim)


def run(dim, real, F, G, tol):
    """R(F) and the adjoint dF of ⟨G, R(F)⟩, in the precision of `real` (ti.f32 or ti.f64)."""
    dtype = np.float64 if real == ti.f64 else np.float32
    F, G = np.ascontiguousarray(F, dtype), np.ascontiguousarray(G, dtype)
    R, dF = np.zeros_like(F), np.zeros_like(F)
    _rotation_kernel(F, G, R, dF, tol, dim)
    return R.astype(np.float64), dF.astype(np.float64)


@pytest.mark.parametrize("dim", [2, 3])
def test_closest_rotation_and_its_adjoint_f64(dim):
    sc.init("cpu", "f64")
    rng = np.random.default_rng(dim)
    F, G = deformation_gradients(dim, rng), rng.standard_normal((N, dim, dim))
    R, dF = run(dim, ti.f64, F, G, 1e-16)
    np.testing.assert_allclose(R, reference_rotation(F), rtol=0, atol=2e-10)  # 3D: 8e-11 from numpy's
    h = 1e-6
    numeric = np.zeros_like(dF)
    for i in range(dim):
        for j in range(dim):
            E = np.zeros((dim, dim))
            E[i, j] = h
            plus, _ = run(dim, ti.f64, F + E, G, 1e-16)
            minus, _ = run(dim, ti.f64, F - E, G, 1e-16)
            numeric[:, i, j] = ((plus - minus) * G).sum((1, 2)) / (2 * h)
    np.testing.assert_allclose(dF, numeric, atol=1e-6 * np.abs(numeric).max())
    assert np.abs(dF[:4] - numeric[:4]).max() < 1e-8  # at rest (equal singular values)


@pytest.mark.parametrize("dim", [2, 3])
def test_closest_rotation_f32(dim):
    """In float32, Newton's iteration stops within round-off of the exact rotation."""
    sc.init("cpu", "f32")
    rng = np.random.default_rng(10 + dim)
    F = deformation_gradients(dim, rng)
    R, _ = run(dim, ti.f32, F.astype(np.float32), np.zeros_like(F, np.float32), 1e-7)
    np.testing.assert_allclose(R, reference_rotation(F), atol=2e-6)


@ti.kernel
def _hencky_kernel(F: ti.types.ndarray(), G: ti.types.ndarray(), H: ti.types.ndarray(), dF: ti.types.ndarray()):
    for p in range(F.shape[0]):
        U, s, V = constitutive.svd(_matrix(F, p, 3))
        Gp = _matrix(G, p, 3)
        D = ti.Matrix.zero(float, 3, 3)
        for i in ti.static(range(3)):
            D[i, i] = ti.log(s[i])
        _store(H, p, U @ D @ V.transpose(), 3)
        inner = U.transpose() @ Gp @ V
        gs = ti.Vector([inner[i, i] / s[i] for i in ti.static(range(3))])
        _store(dF, p, constitutive.svd_adjoint(U, s, V, Gp @ V @ D, gs, Gp.transpose() @ U @ D, 1e-12), 3)


def hencky_and_adjoint(F, G):
    """H = U diag(log s) Vᵀ via constitutive.svd, and dL/dF for L = ⟨G, H⟩ via constitutive.svd_adjoint
    (Ū = G V diag(log s), V̄ = Gᵀ U diag(log s), s̄_i = (Uᵀ G V)_ii / s_i)."""
    F, G = np.ascontiguousarray(F, np.float64), np.ascontiguousarray(G, np.float64)
    H, dF = np.zeros_like(F), np.zeros_like(F)
    _hencky_kernel(F, G, H, dF)
    return H, dF


def test_svd_adjoint_3d_f64():
    sc.init("cpu", "f64")
    rng = np.random.default_rng(7)
    F = np.eye(3) + 0.2 * rng.standard_normal((N, 3, 3))
    assert (np.linalg.det(F) > 0).all()
    G = rng.standard_normal((N, 3, 3))
    _, dF = hencky_and_adjoint(F, G)
    h = 1e-6
    numeric = np.zeros_like(dF)
    for i in range(3):
        for j in range(3):
            E = np.zeros((3, 3))
            E[i, j] = h
            plus, _ = hencky_and_adjoint(F + E, G)
            minus, _ = hencky_and_adjoint(F - E, G)
            numeric[:, i, j] = ((plus - minus) * G).sum((1, 2)) / (2 * h)
    np.testing.assert_allclose(dF, numeric, atol=1e-6 * np.abs(numeric).max())


@ti.kernel
def _svd_2d_kernel(F: ti.types.ndarray(), out: ti.types.ndarray()):
    for p in range(F.shape[0]):
        U, s, V = constitutive.svd(_matrix(F, p, 2))
        _store(out, p, U @ ti.Matrix([[s[0], 0.0], [0.0, s[1]]]) @ V.transpose(), 2)


@pytest.mark.parametrize("precision", ["f32", "f64"])
def test_svd_2d_reconstructs_F_near_identity(precision):
    """F = U diag(s) Vᵀ for 2D F at and near rest: equal diagonals with off-diagonals from 0 to 1e-20
    (whose square underflows in f32: the Jacobi root was 0 and the SVD NaN, so snow and μ(I) sand failed
    in free fall) up to 1e-2, and random F; to round-off (Taichi's own 2D SVD was up to 1e-5 off)."""
    sc.init("cpu", precision)
    dtype = np.float64 if precision == "f64" else np.float32
    rng = np.random.default_rng(3)
    F = [np.eye(2) + np.array([[0.0, a], [b, 0.0]]) for a in (0.0, 1e-20, -1e-12, 1e-8, 1e-2) for b in (0.0, 1e-20, 3e-7)]
    F = np.stack(F + list(np.eye(2) + 0.3 * rng.standard_normal((16, 2, 2)))).astype(dtype)
    out = np.zeros_like(F)
    _svd_2d_kernel(F, out)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, F, rtol=0, atol=1e-14 if precision == "f64" else 1e-6)
