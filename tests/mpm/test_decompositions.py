"""The decompositions of F the materials read, and their hand-written adjoints (simcore.mpm.constitutive).

Laws: fixed corotated's R is the rotation (RᵀR = I, det R = +1) that minimises ‖F − R‖ — for
F = U Σ Vᵀ (numpy's SVD, float64) it is U diag(1, …, det(U Vᵀ)) Vᵀ, inverted F included — and its
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


def run(dim, real, F, G, tol):
    F_field = ti.Matrix.field(dim, dim, real, N)
    G_field = ti.Matrix.field(dim, dim, real, N)
    R_field = ti.Matrix.field(dim, dim, real, N)
    dF_field = ti.Matrix.field(dim, dim, real, N)

    @ti.kernel
    def kernel():
        for p in range(N):
            R = constitutive.closest_rotation(F_field[p], tol)
            R_field[p] = R
            dF_field[p] = constitutive.closest_rotation_adjoint(F_field[p], R, G_field[p], 1e-30)

    F_field.from_numpy(F)
    G_field.from_numpy(G)
    kernel()
    return R_field.to_numpy(), dF_field.to_numpy()


@pytest.mark.parametrize("dim", [2, 3])
def test_closest_rotation_and_its_adjoint_f64(dim):
    sc.init("cpu", "f64")
    rng = np.random.default_rng(dim)
    F, G = deformation_gradients(dim, rng), rng.standard_normal((N, dim, dim))
    R, dF = run(dim, ti.f64, F, G, 1e-16)
    np.testing.assert_allclose(R, reference_rotation(F), atol=1e-12)
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


def hencky_and_adjoint(F, G):
    """H = U diag(log s) Vᵀ via constitutive.svd, and dL/dF for L = ⟨G, H⟩ via constitutive.svd_adjoint
    (Ū = G V diag(log s), V̄ = Gᵀ U diag(log s), s̄_i = (Uᵀ G V)_ii / s_i)."""
    F_field = ti.Matrix.field(3, 3, ti.f64, N)
    G_field = ti.Matrix.field(3, 3, ti.f64, N)
    H_field = ti.Matrix.field(3, 3, ti.f64, N)
    dF_field = ti.Matrix.field(3, 3, ti.f64, N)

    @ti.kernel
    def kernel():
        for p in range(N):
            U, s, V = constitutive.svd(F_field[p])
            G = G_field[p]
            D = ti.Matrix.zero(float, 3, 3)
            for i in ti.static(range(3)):
                D[i, i] = ti.log(s[i])
            H_field[p] = U @ D @ V.transpose()
            inner = U.transpose() @ G @ V
            gs = ti.Vector([inner[i, i] / s[i] for i in ti.static(range(3))])
            dF_field[p] = constitutive.svd_adjoint(U, s, V, G @ V @ D, gs, G.transpose() @ U @ D, 1e-12)

    F_field.from_numpy(F)
    G_field.from_numpy(G)
    kernel()
    return H_field.to_numpy(), dF_field.to_numpy()


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
