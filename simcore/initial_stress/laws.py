"""Step 2 of the at-rest state (simcore.initial_stress): the laws along and across gravity, numpy mirrors
of simcore.mpm.constitutive for deformation gradients F = s_h (I − n nᵀ) + s_v n nᵀ (n the vertical),
whose stress has the same form: the state (`AtRest`) that carries a given overburden (`Law`)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..materials import FIXED_COROTATED, FLUID, MATSUOKA_NAKAI, NEO_HOOKEAN, SAND, SNOW


@dataclasses.dataclass
class AtRest:
    """The state of particles under overburdens q (n,) Pa: stretch_h, stretch_v (n,) the principal
    stretches of the stored F across and along gravity; Jp (n,) the state's Jp (a fluid's J, snow's plastic
    volume ratio, else 1); J (n,) the total volume ratio, placed / rest volume; tau_h, tau_v (n,) Pa the
    Kirchhoff stress the kernels compute from them; k (n,) dσ_hh/dσ_vv, how the lateral stress follows."""

    stretch_h: np.ndarray
    stretch_v: np.ndarray
    Jp: np.ndarray
    J: np.ndarray
    tau_h: np.ndarray
    tau_v: np.ndarray
    k: np.ndarray

    @property
    def sigma_h(self) -> np.ndarray:
        """Lateral stress per placed volume (Pa): V0 τ / V_placed = τ / J, what the solver's impulse reads."""
        return self.tau_h / self.J

    @property
    def sigma_v(self) -> np.ndarray:
        return self.tau_v / self.J


def _cat(parts: list[tuple[np.ndarray, AtRest]], n: int) -> AtRest:
    """One AtRest for n particles from (indices, AtRest) parts."""
    out = {}
    for f in dataclasses.fields(AtRest):
        arr = np.empty(n)
        for idx, st in parts:
            arr[idx] = getattr(st, f.name)
        out[f.name] = arr
    return AtRest(**out)


class Law:
    """A body's at-rest law. kind: material kind code; params: Material.particle_parameters (mu, lam (n,),
    plastic (n, 3)); dim; option: "hydrostatic" | "geostatic" | "uniaxial_stress"."""

    def __init__(self, kind: int, params: dict, dim: int, option: str, body: str = ""):
        self.kind, self.dim, self.option, self.body = kind, dim, option, body
        self.mu, self.lam, self.plastic = params["mu"], params["lam"], params["plastic"]

    def state(self, q: np.ndarray) -> AtRest:
        """The state carrying overburdens q (n,) Pa (σ_vv = −q)."""
        if self.kind == FLUID:
            K, gamma = self.lam, self.plastic[:, 0]
            with np.errstate(invalid="ignore"):  # NaN past the pole, 1 + γ q/K <= 0: `solve` rejects it
                J = (1 + gamma * q / K) ** (-1 / gamma)  # p = K/γ (J^−γ − 1) = q
            one = np.ones_like(q)
            return AtRest(one, one, J, J, -q * J, -q * J, one)
        e_v = self._bisect(lambda e, sel: self._lateral(e, sel).sigma_v + q[sel], len(q))
        out = self._lateral(e_v, slice(None))
        miss = np.abs(out.sigma_v + q) > 1e-6 * np.maximum(q, 1.0)
        if self.option == "uniaxial_stress":
            miss |= np.abs(out.sigma_h) > 1e-6 * np.maximum(q, 1.0)
        if miss.any():
            raise ValueError(f"body {self.body!r}: the material cannot carry an overburden of {q[miss].max():.4g} Pa "
                             f"in {self.option.replace('_', ' ')} (it yields, or would be compressed by more than "
                             "86 %); lower the body or stiffen the material, or confine it (walls beside it)")
        ahead = self._lateral(e_v + 1e-7, slice(None))
        dv = ahead.sigma_v - out.sigma_v
        out.k = np.where(dv != 0, (ahead.sigma_h - out.sigma_h) / np.where(dv != 0, dv, 1.0), 0.0)
        return out

    def _lateral(self, e_v: np.ndarray, sel) -> AtRest:
        """The state at vertical log stretches e_v of the particles `sel`: lateral log stretch 0 (geostatic)
        or the one with σ_hh = 0 (uniaxial stress)."""
        if self.option != "uniaxial_stress":
            return self._solid(np.zeros_like(e_v), e_v, sel)
        e_h = self._bisect(lambda e, inner: self._solid(e, e_v[inner], _compose(sel, inner)).sigma_h, len(e_v),
                           lo=-1.0, hi=1.0)
        return self._solid(e_h, e_v, sel)

    @staticmethod
    def _bisect(f, n: int, lo: float = -2.0, hi: float = 0.5, steps: int = 64) -> np.ndarray:
        """The root in [lo, hi] of f(e, sel) (increasing in e), per particle, to round-off."""
        a, b = np.full(n, lo), np.full(n, hi)
        everyone = np.arange(n)
        for _ in range(steps):
            mid = 0.5 * (a + b)
            below = f(mid, everyone) < 0
            a, b = np.where(below, mid, a), np.where(below, b, mid)
        return 0.5 * (a + b)

    def _solid(self, e_h: np.ndarray, e_v: np.ndarray, sel) -> AtRest:
        """Trial log strains e_h across, e_v along gravity, through the material's return map and stress,
        for particles `sel` (as constitutive.solid_update_and_stress; R = I for a symmetric positive F)."""
        d = self.dim
        mu, lam, plastic = self.mu[sel], self.lam[sel], self.plastic[sel]
        eps = np.repeat(e_h[:, None], d, 1)
        eps[:, -1] = e_v
        one = np.ones_like(e_v)
        if self.kind in (NEO_HOOKEAN, FIXED_COROTATED):
            s = np.exp(eps)
            J = np.prod(s, 1)
            if self.kind == NEO_HOOKEAN:  # τ = μ(F Fᵀ − I) + λ log J I
                tau = mu[:, None] * (s**2 - 1) + (lam * np.log(J))[:, None]
            else:  # τ = 2μ(F − R)Fᵀ + λ(J − 1)J I
                tau = 2 * mu[:, None] * (s - 1) * s + (lam * (J - 1) * J)[:, None]
            return AtRest(s[:, 0], s[:, -1], one, J, tau[:, 0], tau[:, -1], one)
        if self.kind == SNOW:  # Stomakhin et al. 2013: clamp the stretches, the rest into Jp, harden
            s = np.exp(eps)
            clamped = np.clip(s, (1 - plastic[:, 0])[:, None], (1 + plastic[:, 1])[:, None])
            Je = np.prod(clamped, 1)
            Jp = np.prod(s, 1) / Je
            hard = np.exp(plastic[:, 2] * (1 - Jp))
            tau = 2 * (mu * hard)[:, None] * (clamped - 1) * clamped + (lam * hard * (Je - 1) * Je)[:, None]
            return AtRest(clamped[:, 0], clamped[:, -1], Jp, Je * Jp, tau[:, 0], tau[:, -1], one)
        trace = eps.sum(1)  # Sand, Plasticine: Hencky strain and its return map
        dev = eps - trace[:, None] / d
        dev_norm = np.sqrt(np.maximum((dev**2).sum(1), 1e-30))
        if self.kind == SAND:  # Klár et al. 2016, Alg. 2, with the kernels' cone radius α (constitutive)
            sin_phi = plastic[:, 0]
            alpha = sin_phi / math.sqrt(2) if d == 2 else math.sqrt(2 / 3) * 2 * sin_phi / (3 - sin_phi)
            if d == 3:
                nakai = plastic[:, 1] == MATSUOKA_NAKAI
                alpha = np.where(nakai, matsuoka_nakai_alpha(sin_phi, dev / dev_norm[:, None]), alpha)
            dgamma = dev_norm + (d * lam + 2 * mu) / (2 * mu) * trace * alpha
            eps = np.where((trace >= 0)[:, None], 0.0,
                           eps - np.where(dgamma > 0, dgamma / dev_norm, 0.0)[:, None] * dev)
        else:  # von Mises
            excess = dev_norm - math.sqrt(2 / 3) * plastic[:, 0] / (2 * mu)
            eps = eps - np.where(excess > 0, excess / dev_norm, 0.0)[:, None] * dev
        tau = 2 * mu[:, None] * eps + (lam * eps.sum(1))[:, None]
        s = np.exp(eps)
        return AtRest(s[:, 0], s[:, -1], one, np.prod(s, 1), tau[:, 0], tau[:, -1], one)


def _compose(outer, inner):
    """Index `inner` into the selection `outer` (a slice of everything or an index array)."""
    return inner if isinstance(outer, slice) else outer[inner]


def matsuoka_nakai_alpha(sin_phi: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """numpy twin of simcore.mpm.constitutive.matsuoka_nakai_alpha (the same six Newton steps):
    sin_phi (n,), direction (n, 3) unit deviatoric principal strains → α (n,)."""
    K = 9 + 8 * sin_phi**2 / (1 - sin_phi**2)
    D = -np.prod(direction, 1)
    t = 3 * math.sqrt(2 / 3) * 2 * sin_phi / (3 - sin_phi)
    for _ in range(6):
        t = t - (K * D * t**3 + (3 - K) * t**2 / 2 + (K - 9)) / (3 * K * D * t**2 + (3 - K) * t)
    return t / 3
