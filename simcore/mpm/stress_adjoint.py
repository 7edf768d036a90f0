"""Closed-form adjoints of the per-particle stress update for the materials without a decomposition
(neo-Hookean solids and the weakly compressible fluid).

The reverse sweep otherwise runs Taichi's autodiff of `p2g_stress` as a kernel of its own, one more
pass over every particle per substep. For these two materials the adjoint is a few lines of algebra,
so `transfer_adjoint_gather` computes it where the affine matrix's adjoint Ā is already in registers
(`Configuration.closed_stress_adjoint` says when). tests/diff/test_stress_adjoint.py checks it
against the autodiff path to round-off in float64.

Notation (per particle, Kirchhoff stress τ in Pa, APIC affine matrix A in kg/s):
    A = c τ + m C,   c = −dt V 4/dx²           (simcore.mpm.step `_affine`)
so τ̄ = c Ā, C̄ += m Ā, m̄ += Ā : C, V̄ += −dt 4/dx² Ā : τ.
"""

import taichi as ti

from . import constitutive


@ti.func
def neo_hookean(F, mu, lam, g_tau):
    """Adjoint of τ = μ (F Fᵀ − I) + λ ln(det F) I (constitutive.solid_update_and_stress).

    Args: F (d, d) the trial deformation gradient; mu, lam (Pa); g_tau (d, d) = ∂L/∂τ.
    Returns: τ (d, d), ∂L/∂F (d, d), ∂L/∂μ, ∂L/∂λ.
    """
    J = F.determinant()
    log_J = ti.log(J)
    FFt = F @ F.transpose()
    tau = constitutive.neo_hookean_stress(F, mu, lam)
    trace = g_tau.trace()
    # ∂ ln det F / ∂F = F⁻ᵀ = cof(F) / J
    g_F = mu * (g_tau + g_tau.transpose()) @ F + (lam * trace / J) * constitutive.cofactor(F)
    g_mu = (g_tau * FFt).sum() - trace
    g_lam = log_J * trace
    return tau, g_F, g_mu, g_lam


@ti.func
def fluid(J, mu, lam, plastic, C, g_tau):
    """Adjoint of τ = −p J I + μ J (C + Cᵀ), −p J = −(K/γ)(J^(1−γ) − J) (constitutive.fluid_stress;
    lam = K the bulk modulus, mu the viscosity, γ = plastic[0]).

    Args: J the new volume ratio; plastic (3,); C (d, d) 1/s; g_tau (d, d) = ∂L/∂τ.
    Returns: τ (d, d), ∂L/∂J, ∂L/∂C (d, d), ∂L/∂μ, ∂L/∂K, ∂L/∂γ.
    """
    gamma = plastic[0]
    J_pow = ti.pow(J, 1.0 - gamma)
    S = C + C.transpose()
    tau = constitutive.fluid_stress(J, mu, lam, plastic, C)
    trace = g_tau.trace()
    tau_S = (g_tau * S).sum()
    g_J = trace * (-(lam / gamma) * ((1.0 - gamma) * J_pow / J - 1.0)) + mu * tau_S
    g_C = (mu * J) * (g_tau + g_tau.transpose())
    g_mu = J * tau_S
    g_lam = -trace * (J_pow - J) / gamma
    g_gamma = trace * lam * ((J_pow - J) / (gamma * gamma) + ti.log(J) * J_pow / gamma)
    return tau, g_J, g_C, g_mu, g_lam, g_gamma
