"""Stress and plasticity of every material, as Taichi functions the P2G kernel inlines.

`update_and_stress` takes the trial deformation gradient F_trial = (I + dt C) F and returns the
(projected) new F, the new plastic scalar Jp, and the Kirchhoff stress τ = P Fᵀ = J σ. Only the
material kinds present in a scene are compiled (`kinds` is static).

Taichi functions live here rather than in simcore.materials so that every Taichi-specific call stays
inside simcore.mpm / simcore.backend (see DESIGN.md: a move to a Taichi fork stays contained).
"""


import math

import taichi as ti

from ..materials import FIXED_COROTATED, FLUID, MATSUOKA_NAKAI, MU_I, NEO_HOOKEAN, PLASTICINE, SAND, SNOW

SQRT_2_3 = math.sqrt(2 / 3)
SQRT_2 = math.sqrt(2)
# Materials whose update needs the SVD of F_trial. Fixed corotated needs only its closest rotation,
# found without an SVD (`closest_rotation`): in 3D that is five times cheaper than Taichi's SVD.
SVD_KINDS = (SNOW, SAND, PLASTICINE, MU_I)
ROTATION_KINDS = (FIXED_COROTATED,)


def _any_of(kinds, group):
    return any(k in group for k in kinds)


@ti.func
def _diag(vec):
    """Diagonal matrix of a vector."""
    dim = ti.static(vec.get_shape()[0])
    out = ti.Matrix.zero(float, dim, dim)
    for d in ti.static(range(dim)):
        out[d, d] = vec[d]
    return out


@ti.func
def _singular_values(sig):
    dim = ti.static(sig.get_shape()[0])
    out = ti.Vector.zero(float, dim)
    for d in ti.static(range(dim)):
        out[d] = sig[d, d]
    return out


@ti.func
def _product(vec):
    out = vec[0]
    for d in ti.static(range(1, vec.get_shape()[0])):
        out *= vec[d]
    return out


@ti.func
def corotated_stress(F, R, J, mu, lam):
    """Fixed corotated Kirchhoff stress: 2μ(F − R)Fᵀ + λ(J − 1)J I, R the rotation closest to F."""
    I = ti.Matrix.identity(float, F.get_shape()[0])
    return 2 * mu * (F - R) @ F.transpose() + lam * (J - 1) * J * I


@ti.func
def _log_divided_difference(x, y):
    """(log x − log y) / (x − y) for x, y > 0, with its limit 1/y (as a series) when x ≈ y."""
    r = x / y - 1
    out = 0.0
    if ti.abs(r) < 1e-3:
        out = (1 - r / 2 + r * r / 3 - r * r * r / 4) / y
    else:
        out = (ti.log(x) - ti.log(y)) / (x - y)
    return out


@ti.func
def hencky_stress(F, eps, mu, lam):
    """St. Venant–Kirchhoff on Hencky strain, for F = U exp(ε) Vᵀ: τ = U diag(2μ ε + λ tr ε) Uᵀ.

    Written without U: with b = F Fᵀ (eigenvalues β_i = exp(2 ε_i)), U diag(μ log β) Uᵀ is the Newton
    interpolation polynomial of μ log at the β_i evaluated at b (Sylvester):
        μ [log β₀ I + f[β₀, β₁] (b − β₀ I) + f[β₀, β₁, β₂] (b − β₀ I)(b − β₁ I)]   (3D; 2D stops at the
    second term), with divided differences of log and their confluent limits. Its derivative then needs
    only F and ε — not the singular vectors, whose derivative is singular at equal singular values
    (F = I at rest), where it silently lost the shear stiffness (gradients 1e-3 off)."""
    dim = ti.static(F.get_shape()[0])
    I = ti.Matrix.identity(float, dim)
    b = F @ F.transpose()
    beta = ti.exp(2 * eps)
    tau = ti.Matrix.zero(float, dim, dim)
    if ti.static(dim == 2):
        tau = 2 * mu * eps[0] * I + mu * _log_divided_difference(beta[0], beta[1]) * (b - beta[0] * I)
    else:
        lo = ti.min(ti.min(beta[0], beta[1]), beta[2])
        hi = ti.max(ti.max(beta[0], beta[1]), beta[2])
        mid = beta.sum() - lo - hi
        d_lo_mid = _log_divided_difference(mid, lo)
        d_mid_hi = _log_divided_difference(hi, mid)
        d2 = -0.5 / (mid * mid)  # f''/2 of log: the confluent limit of the second divided difference
        if hi - lo > 1e-3 * mid:
            d2 = (d_mid_hi - d_lo_mid) / (hi - lo)
        tau = mu * (ti.log(lo) * I + d_lo_mid * (b - lo * I) + d2 * (b - lo * I) @ (b - mid * I))
    return tau + lam * eps.sum() * I


@ti.func
def drucker_prager_alpha(sin_phi, dim: ti.template()):
    """The cone ‖dev τ‖ ≤ −α tr τ of friction angle φ (see simcore.materials.Sand): Mohr–Coulomb
    exactly in 2D, Klár et al. 2016's compression cone in 3D."""
    alpha = sin_phi / ti.sqrt(2.0)
    if ti.static(dim == 3):
        alpha = SQRT_2_3 * 2 * sin_phi / (3 - sin_phi)
    return alpha


@ti.func
def matsuoka_nakai_alpha(sin_phi, direction):
    """Radius α of the Matsuoka–Nakai surface (Matsuoka & Nakai 1974) of friction angle φ along a
    deviatoric direction, in the form ‖dev τ‖ ≤ −α tr τ of simcore.materials.Sand's return map.

    direction: (3,) unit deviatoric principal values (tension positive; the Hencky strain's dev ε /
    ‖dev ε‖, which is dev τ's direction). The surface I1 I2 / I3 = K = 9 + 8 tan²φ (principal stresses
    compression positive) passes through Mohr–Coulomb's corners in triaxial compression (α = √(2/3) ·
    2 sin φ / (3 − sin φ), Klár's cone: `drucker_prager_alpha`) and triaxial extension (the same with
    3 + sin φ), and is smooth between them; in plane strain it is 8–13 % wider than Mohr–Coulomb for
    φ = 20–40°, as sand's plane-strain friction angle is larger than its triaxial one.
    With σ_i = p (1 + t u_i) (u = −direction, D = u1 u2 u3) the surface is
        K D t³ + (3 − K) t² / 2 + (K − 9) = 0,
    and α = t / 3 for its smallest positive root. Newton's method from the compression corner's root,
    which bounds it from above, converges to 3e-10 relative in 6 steps at every Lode angle for φ ≤ 85°
    (checked against numpy.roots on a grid of Lode angles)."""
    K = 9 + 8 * sin_phi * sin_phi / (1 - sin_phi * sin_phi)
    D = -direction[0] * direction[1] * direction[2]
    t = 3 * drucker_prager_alpha(sin_phi, 3)
    for _ in ti.static(range(6)):
        t -= (K * D * t * t * t + (3 - K) * t * t / 2 + (K - 9)) / (3 * K * D * t * t + (3 - K) * t)
    return t / 3


@ti.func
def neo_hookean_stress(F, mu, lam):
    """Kirchhoff stress of the neo-Hookean solid: μ (F Fᵀ − I) + λ ln(det F) I (Pa)."""
    I = ti.Matrix.identity(float, F.get_shape()[0])
    return mu * (F @ F.transpose() - I) + lam * ti.log(F.determinant()) * I


@ti.func
def fluid_stress(J, mu, lam, plastic, C):
    """Weakly compressible fluid (Tait): Kirchhoff stress −p J I + viscous J·μ(C + Cᵀ).

    A fluid's deformation state is its volume ratio J alone (shear has no memory), so the caller keeps
    J, not F. lam = bulk modulus K (Pa), plastic[0] = γ, mu = viscosity (Pa·s), C ≈ ∇v (1/s).
    """
    dim = ti.static(C.get_shape()[0])
    gamma = plastic[0]
    minus_p_J = -(lam / gamma) * (ti.pow(J, 1.0 - gamma) - J)  # p = K/γ (J^−γ − 1)
    return minus_p_J * ti.Matrix.identity(float, dim) + mu * J * (C + C.transpose())


@ti.func
def solid_update_and_stress(kinds: ti.template(), kind, F_trial, U, s, V, R, Jp, mu, lam, plastic, dt):
    """Project F_trial onto the solid material's admissible set and compute the Kirchhoff stress.

    Args:
        kinds: static tuple of material kind codes present in the scene.
        kind: this particle's kind code (not FLUID). F_trial = (I + dt C) F: (d, d).
        U, s, V: F_trial = U diag(s) Vᵀ (only read by the SVD-based materials; see `uses_svd`).
        R: the rotation closest to F_trial (only read by fixed corotated; see `uses_rotation`).
        Jp: plastic volume ratio (snow). mu, lam: Lamé parameters (Pa).
        plastic: (3,) material constants (see simcore.materials).
        dt: the substep (s); rate-dependent plasticity (μ(I)) reads it.
    Returns:
        F_new (d, d), Jp_new, tau (d, d) Pa.
    """
    dim = ti.static(F_trial.get_shape()[0])
    F_new = F_trial
    Jp_new = Jp
    tau = ti.Matrix.zero(float, dim, dim)
    if ti.static(NEO_HOOKEAN in kinds):
        if kind == NEO_HOOKEAN:
            tau = neo_hookean_stress(F_trial, mu, lam)
    if ti.static(FIXED_COROTATED in kinds):
        if kind == FIXED_COROTATED:
            tau = corotated_stress(F_trial, R, F_trial.determinant(), mu, lam)
    if ti.static(_any_of(kinds, SVD_KINDS)):
        if kind != NEO_HOOKEAN and kind != FIXED_COROTATED:
            if ti.static(SNOW in kinds):
                if kind == SNOW:
                    # Stomakhin et al. 2013, §5: clamp singular values, move the rest into Jp.
                    s_new = ti.min(ti.max(s, 1 - plastic[0]), 1 + plastic[1])
                    Jp_new = Jp * _product(s) / _product(s_new)
                    # Unclamped: F_new is F_trial itself, not its reconstruction U diag(s) Vᵀ: the same
                    # value, but the derivative then does not pass through the SVD's, whose singular
                    # part is lost at equal singular values (F = I at rest; see svd_adjoint).
                    if (s_new != s).any():
                        F_new = U @ _diag(s_new) @ V.transpose()
                    hardening = ti.exp(plastic[2] * (1 - Jp_new))
                    tau = corotated_stress(F_new, U @ V.transpose(), _product(s_new), mu * hardening,
                                           lam * hardening)
            if ti.static(_any_of(kinds, (SAND, PLASTICINE))):
                if kind == SAND or kind == PLASTICINE:
                    eps = ti.log(s)
                    projected = 0  # whether the return map moved ε (else F_new = F_trial, as for snow)
                    trace = eps.sum()
                    eps_dev = eps - trace / dim
                    # ‖dev ε‖ with its square floored: at rest (ε = 0) the norm's derivative is infinite,
                    # and reverse-mode autodiff multiplies it by a zero adjoint (NaN in dL/dE, dL/dν).
                    dev_norm = ti.sqrt(ti.max(eps_dev.norm_sqr(), 1e-30))
                    if ti.static(SAND in kinds):
                        if kind == SAND:
                            # Klár et al. 2016, Alg. 2: Drucker–Prager return map in Hencky strain.
                            if trace >= 0:  # expansion: cohesionless sand carries no stress
                                eps = ti.Vector.zero(float, dim)
                                projected = 1
                            else:
                                alpha = drucker_prager_alpha(plastic[0], dim)
                                if ti.static(dim == 3):
                                    if plastic[1] == MATSUOKA_NAKAI:
                                        alpha = matsuoka_nakai_alpha(plastic[0], eps_dev / dev_norm)
                                dgamma = dev_norm + (dim * lam + 2 * mu) / (2 * mu) * trace * alpha
                                if dgamma > 0:
                                    eps = eps - dgamma / dev_norm * eps_dev
                                    projected = 1
                    if ti.static(PLASTICINE in kinds):
                        if kind == PLASTICINE:
                            # von Mises: ‖dev τ‖ = 2μ‖dev ε‖ ≤ √(2/3) σ_y.
                            excess = dev_norm - SQRT_2_3 * plastic[0] / (2 * mu)
                            if excess > 0:
                                eps = eps - excess / dev_norm * eps_dev
                                projected = 1
                    if projected:
                        F_new = U @ _diag(ti.exp(eps)) @ V.transpose()
                    tau = hencky_stress(F_new, eps, mu, lam)
            if ti.static(MU_I in kinds):
                if kind == MU_I:
                    eps, projected = mu_i_return_map(ti.log(s), mu, lam, plastic, dt)
                    if projected:  # else F_new = F_trial itself (see snow)
                        F_new = U @ _diag(ti.exp(eps)) @ V.transpose()
                    tau = hencky_stress(F_new, eps, mu, lam)
    return F_new, Jp_new, tau


@ti.func
def mu_i_return_map(eps, mu, lam, plastic, dt):
    """Return map of the μ(I) rheology (Jop et al. 2006) in Hencky strain, rate-dependent through dt.

    Args: eps: (d,) trial Hencky strain (log of F_trial's singular values); mu, lam: Lamé parameters
    (Pa); plastic = (μs, μ2 − μs, c = I0 / (d sqrt(ρs))) (see simcore.materials.GranularMuI); dt (s).
    Returns: the projected strain (d,) and whether it moved (0 / 1).

    Elastic trial state (Kirchhoff, principal): τ = 2μ ε + λ tr ε. Pressure p = −tr τ / d =
    −(λ + 2μ/d) tr ε; equivalent shear stress τ_tr = ‖dev τ‖ / √2 = √2 μ ‖dev ε‖ (the shear stress in
    simple shear). Separated grains (tr ε ≥ 0) carry no stress: ε = 0, as in Sand's return map.

    Otherwise the flow is radial (dev ε scaled, tr ε kept: no dilatancy) to τ ≤ τ_tr. The plastic
    shear rate over the substep is γ̇p = (τ_tr − τ) / (μ dt), and I = γ̇p d sqrt(ρs / p_c) with the
    Cauchy pressure p_c = p / J (J = exp tr ε). With I / I0 = (τ_tr − τ) / S, S = μ dt c sqrt(p_c) (the
    stress drop whose rate gives I = I0), the yield condition τ = p μ(I) = τs + (τ2 − τs) x / (1 + x),
    x = (τ_tr − τ) / S, τs = μs p, τ2 = μ2 p, becomes after multiplying by (S + τ_tr − τ) the quadratic

        τ² − (τ_tr + τ2 + S) τ + (τ2 τ_tr + τs S) = 0.

    Its value at τs is (τ_tr − τs)(τ2 − τs) ≥ 0 and at τ_tr is −S (τ_tr − τs) < 0, so (when yielding,
    τ_tr > τs) its smaller root is the one in [τs, min(τ_tr, τ2)]:

        τ = 2 (τ2 τ_tr + τs S) / (b + sqrt(b² − 4c)),  b = τ_tr + τ2 + S,
        b² − 4c = (τ_tr − τ2 + S)² + 4 S (τ2 − τs) ≥ 0

    (the division form, and the discriminant as a sum of non-negative terms, avoid cancellation).
    Limits: S → ∞ (I0 → ∞ or d → 0: every rate is slow) gives τ → τs, a rate-independent Drucker–Prager-
    like cone of friction μs; μ2 = μs gives τ = τs exactly; S → 0 (I0 → 0) gives τ = min(τ_tr, τ2)."""
    dim = ti.static(eps.get_shape()[0])
    out = eps
    projected = 0
    trace = eps.sum()
    if trace >= 0:  # separated: cohesionless grains carry no stress
        out = ti.Vector.zero(float, dim)
        projected = 1
    else:
        eps_dev = eps - trace / dim
        # Floored as in Sand's return map: the norm's derivative at ε_dev = 0 is infinite (NaN adjoints).
        dev_norm = ti.sqrt(ti.max(eps_dev.norm_sqr(), 1e-30))
        p = -(lam + 2 * mu / dim) * trace
        tau_trial = SQRT_2 * mu * dev_norm
        tau_s = plastic[0] * p
        if tau_trial > tau_s:
            tau_2 = tau_s + plastic[1] * p
            S = mu * dt * plastic[2] * ti.sqrt(p * ti.exp(-trace))
            b = tau_trial + tau_2 + S
            disc = (tau_trial - tau_2 + S) ** 2 + 4 * S * (tau_2 - tau_s)
            tau = 2 * (tau_2 * tau_trial + tau_s * S) / (b + ti.sqrt(disc))
            out = eps - (1 - tau / tau_trial) * eps_dev
            projected = 1
    return out, projected


def uses_svd(kinds) -> bool:
    """Whether any material present needs the SVD of F_trial."""
    return _any_of(kinds, SVD_KINDS)


@ti.func
def kind_in(kind, group: ti.template()) -> bool:
    """Whether a particle's kind code is one of `group` (a static tuple, e.g. SVD_KINDS)."""
    out = False
    for k in ti.static(group):
        out = out or kind == k
    return out


def uses_rotation(kinds) -> bool:
    """Whether any material present needs the rotation closest to F_trial (`closest_rotation`)."""
    return _any_of(kinds, ROTATION_KINDS)


@ti.func
def _cross_matrix(y):
    """[y]ₓ: the skew matrix of the axial vector y (3D), or y₀ J with J = [[0, −1], [1, 0]] (2D, y of size 1)."""
    dim = ti.static(2 if y.get_shape()[0] == 1 else 3)
    out = ti.Matrix.zero(float, dim, dim)
    if ti.static(dim == 2):
        out[0, 1], out[1, 0] = -y[0], y[0]
    else:
        out[0, 1], out[1, 0] = -y[2], y[2]
        out[0, 2], out[2, 0] = y[1], -y[1]
        out[1, 2], out[2, 1] = -y[0], y[0]
    return out


@ti.func
def _axial(A):
    """ax(A) with ⟨A, [y]ₓ⟩ = ax(A)·y: (A₂₁ − A₁₂, A₀₂ − A₂₀, A₁₀ − A₀₁) in 3D, (A₁₀ − A₀₁) in 2D."""
    dim = ti.static(A.get_shape()[0])
    out = ti.Vector.zero(float, 1 if dim == 2 else 3)
    if ti.static(dim == 2):
        out[0] = A[1, 0] - A[0, 1]
    else:
        out[0], out[1], out[2] = A[2, 1] - A[1, 2], A[0, 2] - A[2, 0], A[1, 0] - A[0, 1]
    return out


@ti.func
def closest_rotation(F, tol: ti.template()):
    """The rotation R (det R = +1) closest to F in the Frobenius norm: R = U Vᵀ for F = U diag(s) Vᵀ
    with U, V rotations (the sign of an inverted F on its smallest singular value), as fixed
    corotated elasticity defines it (Stomakhin et al. 2012).

    2D: closed form, R = rotation by atan2(F₁₀ − F₀₁, F₀₀ + F₁₁). 3D, det F > 0: R is the orthogonal
    polar factor, found by Newton's iteration X ← ½(γX + X⁻ᵀ/γ) with Frobenius scaling γ (Higham
    1986), which converges quadratically: the error after a step of size δ is about δ²/2, so it stops
    when δ² ≤ `tol` (about the precision's round-off). An elastic body's F is near a rotation, and two
    or three steps do (five times cheaper than Taichi's SVD on a CPU). Inverted or barely converging F
    (det F ≤ 0, 16 steps): from the SVD."""
    dim = ti.static(F.get_shape()[0])
    R = ti.Matrix.identity(float, dim)
    if ti.static(dim == 2):
        c, s = F[0, 0] + F[1, 1], F[1, 0] - F[0, 1]
        r = ti.sqrt(c * c + s * s)
        if r > 0:
            R = ti.Matrix([[c, -s], [s, c]]) / r
    else:
        converged = False
        if F.determinant() > 0:
            X = F
            for _ in range(16):
                X_inv = X.inverse()
                gamma = ti.sqrt(ti.sqrt(X_inv.norm_sqr() / X.norm_sqr()))
                X_next = 0.5 * (gamma * X + X_inv.transpose() / gamma)
                step = (X_next - X).norm_sqr()
                X = X_next
                if step <= tol:
                    converged = True
                    break
            R = X
        if not converged:
            U, s, V = svd(F)
            R = U @ V.transpose()
    return R


@ti.func
def closest_rotation_adjoint(F, R, gR, eps):
    """dL/dF from dL/dR for R = closest_rotation(F).

    With F = R S (S = Rᵀ F symmetric), δR = R [ω]ₓ and the skew part of Rᵀ δF is [ω]ₓ S + S [ω]ₓ =
    [(tr S I − S) ω]ₓ, so ω = (tr S I − S)⁻¹ ax(Rᵀ δF) and dL/dF = R [y]ₓ with
    y = (tr S I − S)⁻¹ ax(Rᵀ Ḡ) (in 2D, tr S I − S becomes the scalar tr S). Regular at equal singular
    values (F = I at rest), unlike the SVD's adjoint; singular only where two singular values cancel
    (s_i + s_j = 0, a flat inverted F), where det(tr S I − S) is floored at `eps` (keeping its sign)."""
    dim = ti.static(F.get_shape()[0])
    S = R.transpose() @ F
    S = 0.5 * (S + S.transpose())
    g = _axial(R.transpose() @ gR)
    y = ti.zero(g)
    if ti.static(dim == 2):
        t = S.trace()
        if ti.abs(t) < eps:
            t = eps if t >= 0 else -eps
        y = g / t
    else:
        M = S.trace() * ti.Matrix.identity(float, 3) - S
        det = M.determinant()
        if ti.abs(det) < eps:
            det = eps if det >= 0 else -eps
        y = cofactor(M).transpose() @ g / det
    return R @ _cross_matrix(y)


@ti.func
def cofactor(M):
    """The cofactor matrix of a 2 × 2 or 3 × 3 matrix: ∂ det M / ∂M = det(M) M⁻ᵀ (its transpose is the
    adjugate, M⁻¹ det M)."""
    dim = ti.static(M.get_shape()[0])
    out = ti.Matrix.zero(float, dim, dim)
    if ti.static(dim == 2):
        out = ti.Matrix([[M[1, 1], -M[1, 0]], [-M[0, 1], M[0, 0]]])
    else:
        for i in ti.static(range(3)):
            for j in ti.static(range(3)):
                a, b = (i + 1) % 3, (i + 2) % 3
                c, d = (j + 1) % 3, (j + 2) % 3
                out[i, j] = M[a, c] * M[b, d] - M[a, d] * M[b, c]
    return out


@ti.func
def svd(F):
    """F = U diag(s) Vᵀ with U, V rotations: returns U, s (vector), V."""
    dim = ti.static(F.get_shape()[0])
    U = ti.Matrix.identity(float, dim)
    V = ti.Matrix.identity(float, dim)
    s = ti.Vector.one(float, dim)
    if ti.static(dim == 2):
        U, s, V = _svd_2d(F)
    else:
        U, sig, V = ti.svd(F)
        s = _singular_values(sig)
    return U, s, V


@ti.func
def _svd_2d(F):
    """Taichi's 2D SVD (`ti.svd`: the polar decomposition F = R S, then the Jacobi rotation that
    diagonalises the symmetric S; same conventions) without its shortcut that takes S as diagonal when
    |S₀₁| < 1e-5. That shortcut left U diag(s) Vᵀ up to 1e-5 away from F (in f64 too) for the nearly
    isotropic F of granular and plastic materials, and made it jump as S₀₁ crossed 1e-5: a projected F
    moved by a rotation of that size, and the loss of a rollout jumped (finite differences of the
    μ(I) friction were 10 % off). The rotation here is exact for any S₀₁ ≠ 0 (tan of the Jacobi angle
    from the stable root t = S₀₁ / (g ± √(g² + S₀₁²)), g = (S₀₀ − S₁₁) / 2)."""
    R, S = ti.polar_decompose(F)
    c, s = 1.0, 0.0
    s1, s2 = S[0, 0], S[1, 1]
    if S[0, 1] != 0:
        # Scaled by the larger of the two before squaring: in f32 a tiny S₀₁ (1e-20, from round-off near
        # F = I) squared underflows to 0, and with S₀₀ = S₁₁ the root w was 0 and t = S₀₁ / 0 (NaN).
        half_gap = 0.5 * (S[0, 0] - S[1, 1])
        scale = ti.max(ti.abs(half_gap), ti.abs(S[0, 1]))
        g, o = half_gap / scale, S[0, 1] / scale
        w = ti.sqrt(g * g + o * o)  # >= 1
        t = 0.0
        if g > 0:
            t = o / (g + w)
        else:
            t = o / (g - w)
        c = 1 / ti.sqrt(t * t + 1)
        s = -t * c
        s1 = c * c * S[0, 0] - 2 * c * s * S[0, 1] + s * s * S[1, 1]
        s2 = s * s * S[0, 0] + 2 * c * s * S[0, 1] + c * c * S[1, 1]
    V = ti.Matrix([[c, s], [-s, c]])
    if s1 < s2:
        s1, s2 = s2, s1
        V = ti.Matrix([[-s, c], [-c, -s]])
    return R @ V, ti.Vector([s1, s2]), V


@ti.func
def svd_adjoint(U, s, V, gU, gs, gV, eps):
    """dL/dF from dL/dU, dL/ds, dL/dV for F = U diag(s) Vᵀ (Townsend 2016, square case):

        F̄ = U [ (K_U ∘ X) S + diag(s̄) + S (K_V ∘ X) ] Vᵀ,  X_ij = 1 / (s_j² − s_i²) (i ≠ j),
        K_U = Uᵀ Ū − Ūᵀ U,  K_V = Vᵀ V̄ − V̄ᵀ V.

    Off the diagonal, (a s_j + s_i b) / (s_j² − s_i²) with a = K_U,ij, b = K_V,ij is evaluated as
    ½ (a + b) / (s_j − s_i) + ½ (a − b) / (s_j + s_i): only the first part is singular at equal singular
    values (F = I at rest, isotropic compression), and its numerator vanishes there for the isotropic
    functions of elasticity and plasticity, while the second part — the rotation's own derivative —
    stays. |s_j − s_i| is floored at `eps` (keeping its sign). (Flooring s_j² − s_i² instead, as this
    function first did, dropped the second part at equal singular values: snow gradients were 0.5 % off.)"""
    dim = ti.static(s.get_shape()[0])
    KU = U.transpose() @ gU
    KU = KU - KU.transpose()
    KV = V.transpose() @ gV
    KV = KV - KV.transpose()
    inner = ti.Matrix.zero(float, dim, dim)
    for i in ti.static(range(dim)):
        for j in ti.static(range(dim)):
            if ti.static(i == j):
                inner[i, i] = gs[i]
            else:
                a, b = KU[i, j], KV[i, j]
                gap = s[j] - s[i]
                if ti.abs(gap) < eps:
                    gap = eps if gap >= 0 else -eps
                inner[i, j] = 0.5 * (a + b) / gap + 0.5 * (a - b) / (s[j] + s[i])
    return U @ inner @ V.transpose()


@ti.func
def wave_speed_factor(kinds: ti.template(), kind, Jp, plastic):
    """Factor on the rest wave speed from the current state: snow hardening stiffens by
    exp(ξ(1 − Jp)); a compressed Tait fluid (J = Jp) has bulk modulus K J^−γ at density ρ0 / J."""
    factor = 1.0
    if ti.static(FLUID in kinds):
        if kind == FLUID:
            factor = ti.sqrt(ti.pow(Jp, 1.0 - plastic[0]))
    if ti.static(SNOW in kinds):
        if kind == SNOW:
            factor = ti.sqrt(ti.exp(plastic[2] * (1 - Jp)))
    return factor
