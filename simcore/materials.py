"""Materials: validated parameters in SI units, and their per-particle values.

Each material is a small dataclass: its parameters (Pa, kg/m³, degrees), a `kind` code that selects its
stress and plasticity functions in `simcore.mpm.constitutive`, and `wave_speed` for the CFL bound.
Any parameter may be a scalar, an array with one value per particle of the body, or a callable
`f(x) -> (n,)` of the particles' initial positions `x: (n, dim) m` (per-particle parameters).

Per-particle parameters are packed into three arrays the kernels read:
    mu, lam: (n,) Pa  — Lamé parameters (for Fluid: mu = dynamic viscosity Pa·s, lam = bulk modulus Pa)
    plastic: (n, 3)   — material-specific constants (see each class)
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, ClassVar

import numpy as np

from .checks import is_tensor

# Kind codes shared with simcore.mpm.constitutive.
FIXED_COROTATED, NEO_HOOKEAN, FLUID, SNOW, SAND, PLASTICINE, NEURAL, MU_I = range(8)

Param = Any  # float | array (n,) | Callable[[np.ndarray], np.ndarray]

# Sand's 3D yield surfaces (Sand.yield_surface), as packed in plastic[1].
SAND_SURFACES = {"matsuoka-nakai": 0, "compression-cone": 1}
MATSUOKA_NAKAI = SAND_SURFACES["matsuoka-nakai"]


def _as_numpy(value):
    """A torch tensor's values (detached) as numpy; anything else unchanged."""
    return value.detach().cpu().numpy() if is_tensor(value) else value


def _column3(first, second=None, third=None):
    """(n, 3) from up to three (n,) columns (numpy or torch; missing columns are zeros)."""
    zero = first * 0
    cols = [first, zero if second is None else second, zero if third is None else third]
    return (__import__("torch").stack(cols, 1) if is_tensor(first) else np.stack(cols, 1))


def _numbers(name: str, value, owner: str, rule: str, given=None) -> np.ndarray:
    """`value` as float64 numbers; a ValueError naming the parameter, its rule and the accepted forms
    when it is not numbers (a string, a nested list of mixed shapes, an object)."""
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        what = f"{name}={value!r}" if given is None else f"{name} ({given}) returned {value!r}, which"
        raise ValueError(f"{owner}: {what} is not numeric ({rule}); give a number, an array of one value "
                         "per particle, or a callable f(x) of the particles' positions (n, dim) m") from None


def _values(name: str, value: Param, x: np.ndarray, owner: str, rule: str = "") -> np.ndarray:
    """Per-particle values (n,) of parameter `name` for particles at `x: (n, dim)`."""
    n = len(x)
    value = _as_numpy(value)
    if callable(value):
        out = _numbers(name, value(x), owner, rule, given="a callable")
        if out.shape == ():
            out = np.full(n, float(out))
    else:
        out = _numbers(name, value, owner, rule)
        if out.ndim == 0:
            out = np.full(n, float(out))
    if out.shape != (n,):
        raise ValueError(f"{owner}.{name}: expected a scalar, a callable of positions, or one value per "
                         f"particle (shape ({n},)), got shape {out.shape}")
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{owner}.{name} has non-finite values")
    return out


def _check(name: str, value: Param, ok: Callable[[np.ndarray], np.ndarray], rule: str, owner: str):
    """Validate a scalar or array parameter now; callables are validated when evaluated."""
    if callable(value):
        return
    arr = _numbers(name, _as_numpy(value), owner, rule)
    if not np.all(np.isfinite(arr)) or not np.all(ok(arr)):
        raise ValueError(f"{owner}: {name}={value!r} is invalid: {rule}")


@dataclasses.dataclass
class Material:
    """Base class: density (kg/m³) and the validation and packing shared by all materials."""

    kind: ClassVar[int] = -1
    name: str | None = dataclasses.field(default=None, kw_only=True)

    def __post_init__(self):
        self.validate(None)

    @property
    def label(self) -> str:
        return self.name or type(self).__name__

    # -- per subclass -------------------------------------------------------------------------
    def _rules(self):
        """(parameter name, predicate, human rule) triples."""
        return [("density", lambda a: a > 0, "density must be > 0 kg/m³")]

    def _pack(self, p: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _wave_modulus(self, p: dict[str, np.ndarray]) -> np.ndarray:
        """The P-wave (or bulk) modulus M (Pa): wave speed is sqrt(M / density)."""
        raise NotImplementedError

    # -- shared --------------------------------------------------------------------------------
    def validate(self, x: np.ndarray | None) -> dict[str, np.ndarray] | None:
        """Check every parameter; with particle positions `x`, return their per-particle values."""
        owner = self.label
        values = {}
        for name, ok, rule in self._rules():
            value = getattr(self, name)
            if x is None:
                _check(name, value, ok, rule, owner)
            else:
                arr = _values(name, value, x, owner, rule)
                if not np.all(ok(arr)):
                    bad = arr[~ok(arr)][0]
                    raise ValueError(f"{owner}: {name} has an invalid value {bad!r}: {rule}")
                values[name] = arr
        return values if x is not None else None

    def particle_parameters(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Per-particle arrays for particles at `x: (n, dim) m`:
        density (n,) kg/m³, mu (n,), lam (n,), plastic (n, 3), wave_speed (n,) m/s."""
        p = self.validate(x)
        mu, lam, plastic = self._pack(p)
        wave_speed = np.sqrt(self._wave_modulus(p) / p["density"])
        return {"density": p["density"], "mu": mu, "lam": lam, "plastic": plastic, "wave_speed": wave_speed}

    def torch_parameters(self, x: np.ndarray, dtype) -> dict:
        """Like `particle_parameters` but as torch tensors on the autograd graph of any parameter
        given as a tensor: density, mu, lam (n,), plastic (n, 3). Values are validated first."""
        import torch

        self.validate(x)
        n = len(x)
        p = {}
        for name, _, rule in self._rules():
            value = getattr(self, name)
            if is_tensor(value):
                t = value.to(dtype)
                p[name] = t.expand(n) if t.dim() == 0 else t.reshape(n)
            else:
                p[name] = torch.as_tensor(_values(name, value, x, self.label, rule), dtype=dtype)
        mu, lam, plastic = self._pack(p)
        return {"density": p["density"], "mu": mu, "lam": lam, "plastic": plastic}

    @property
    def differentiable(self) -> list[str]:
        """Names of parameters given as torch tensors that require gradients."""
        return [name for name, _, _ in self._rules()
                if is_tensor(getattr(self, name)) and getattr(self, name).requires_grad]


def _lame(E, nu):
    mu = E / (2 * (1 + nu))
    lam = E * nu / ((1 + nu) * (1 - 2 * nu))
    return mu, lam


@dataclasses.dataclass
class _Elastic(Material):
    """Young's modulus E (Pa), Poisson's ratio nu (−1 < nu < 0.5), density (kg/m³)."""

    E: Param = 1e5
    nu: Param = 0.3
    density: Param = 1e3

    def _rules(self):
        return super()._rules() + [
            ("E", lambda a: a > 0, "Young's modulus E must be > 0 Pa"),
            ("nu", lambda a: (a > -1) & (a < 0.5), "Poisson's ratio nu must satisfy -1 < nu < 0.5"),
        ]

    def _pack(self, p):
        mu, lam = _lame(p["E"], p["nu"])
        return mu, lam, _column3(mu * 0)

    def _wave_modulus(self, p):
        mu, lam = _lame(p["E"], p["nu"])
        return lam + 2 * mu


@dataclasses.dataclass
class FixedCorotated(_Elastic):
    """Fixed-corotated elasticity (Stomakhin et al. 2012): P = 2μ(F − R) + λ(J − 1)J F⁻ᵀ."""

    kind: ClassVar[int] = FIXED_COROTATED


@dataclasses.dataclass
class NeoHookean(_Elastic):
    """Compressible neo-Hookean elasticity: P = μ(F − F⁻ᵀ) + λ log(J) F⁻ᵀ."""

    kind: ClassVar[int] = NEO_HOOKEAN


@dataclasses.dataclass
class Fluid(Material):
    """Weakly compressible fluid (Tait equation of state) with optional Newtonian viscosity.

    bulk_modulus K (Pa): pressure p = K/γ (J^−γ − 1), so dp/dJ = −K at rest.
    gamma γ (> 0, dimensionless): stiffness exponent (7 for water-like liquids, 1 gives p = K(1/J − 1)).
    viscosity (Pa·s, ≥ 0): dynamic viscosity; deviatoric stress 2·viscosity·sym(∇v).
    Packed as mu = viscosity, lam = K, plastic[0] = γ.
    """

    kind: ClassVar[int] = FLUID
    bulk_modulus: Param = 1e5
    viscosity: Param = 0.0
    gamma: Param = 7.0
    density: Param = 1e3

    def _rules(self):
        return super()._rules() + [
            ("bulk_modulus", lambda a: a > 0, "bulk_modulus must be > 0 Pa"),
            ("viscosity", lambda a: a >= 0, "viscosity must be >= 0 Pa·s"),
            ("gamma", lambda a: a > 0, "gamma (Tait exponent) must be > 0"),
        ]

    def _pack(self, p):
        return p["viscosity"], p["bulk_modulus"], _column3(p["gamma"])

    def _wave_modulus(self, p):
        return p["bulk_modulus"]


@dataclasses.dataclass
class Snow(_Elastic):
    """Snow (Stomakhin et al. 2013): fixed-corotated elasticity on the elastic part of F, whose singular
    values are kept in [1 − critical_compression, 1 + critical_stretch]; the plastic volume change Jp
    hardens the Lamé parameters by exp(hardening · (1 − Jp)).
    Paper defaults: E = 1.4e5 Pa, nu = 0.2, θc = 2.5e-2, θs = 7.5e-3, ξ = 10, density 400 kg/m³.
    Packed as plastic = (θc, θs, ξ).
    """

    kind: ClassVar[int] = SNOW
    E: Param = 1.4e5
    nu: Param = 0.2
    density: Param = 400.0
    critical_compression: Param = 2.5e-2
    critical_stretch: Param = 7.5e-3
    hardening: Param = 10.0

    def _rules(self):
        return super()._rules() + [
            ("critical_compression", lambda a: (a >= 0) & (a < 1), "critical_compression must be in [0, 1)"),
            ("critical_stretch", lambda a: a >= 0, "critical_stretch must be >= 0"),
            ("hardening", lambda a: a >= 0, "hardening must be >= 0"),
        ]

    def _pack(self, p):
        mu, lam, _ = super()._pack(p)
        return mu, lam, _column3(p["critical_compression"], p["critical_stretch"], p["hardening"])

    def _wave_modulus(self, p):
        # Hardening raises the moduli by exp(ξ (1 − Jp)); the solver re-evaluates the wave speed each
        # frame from the current Jp (see simcore.mpm.solver), this is the rest value.
        return super()._wave_modulus(p)


@dataclasses.dataclass
class Sand(_Elastic):
    """Cohesionless sand (Klár et al. 2016's return map): Hencky-strain St. Venant–Kirchhoff elasticity
    with the strain returned radially, at constant volume, onto the yield surface of friction angle
    `friction_angle` (φ, degrees, in (0, 90)), ‖dev τ‖ ≤ −α tr τ; expansion beyond the surface's tip is
    free (cohesionless).
    In 2D, α = sin φ / √2, which is Mohr–Coulomb exactly (a 2D stress has two principal values, and the
    Mohr circle touching the line of slope tan φ is this cone).
    In 3D, `yield_surface` chooses α:
    - "matsuoka-nakai" (default): α depends on the Lode angle, from the Matsuoka–Nakai surface (1974),
      the smooth surface through Mohr–Coulomb's corners in triaxial compression and in extension
      (simcore.mpm.constitutive.matsuoka_nakai_alpha). 3D heaps, conical and plane-strain, built 3°
      steeper than φ then rest within 3° of it; built 10° steeper, cones avalanche 3.5–10.5° past φ
      (docs/granular.md).
    - "compression-cone": the Drucker–Prager cone through the compression corners only, α = √(2/3) ·
      2 sin φ / (3 − sin φ) (Klár et al. 2016, eq. 27; the graphics papers' sand). It is the same as
      Matsuoka–Nakai in triaxial compression and stronger everywhere else: in plane-strain flow it is
      Mohr–Coulomb of a friction angle asin(3α/√2), 44° for φ = 30° and 71° for φ = 40°, and 3D ridges
      and steep conical heaps rest several degrees steeper than φ (docs/granular.md).
    Packed as plastic[0] = sin φ, plastic[1] = SAND_SURFACES[yield_surface]; the kernels form α for
    their dimension.
    """

    kind: ClassVar[int] = SAND
    E: Param = 3.537e5
    nu: Param = 0.3
    density: Param = 2200.0
    friction_angle: Param = 30.0
    yield_surface: str = dataclasses.field(default="matsuoka-nakai", kw_only=True)

    def __post_init__(self):
        if self.yield_surface not in SAND_SURFACES:
            raise ValueError(f"{self.label}: yield_surface={self.yield_surface!r} is not one of Sand's: choose "
                             f"{' or '.join(repr(k) for k in SAND_SURFACES)}")
        super().__post_init__()

    def _rules(self):
        return super()._rules() + [
            ("friction_angle", lambda a: (a > 0) & (a < 90), "friction_angle must be in (0, 90) degrees"),
        ]

    def _pack(self, p):
        mu, lam, _ = super()._pack(p)
        s = (p["friction_angle"] * (math.pi / 180)).sin() if is_tensor(mu) else np.sin(np.radians(p["friction_angle"]))
        return mu, lam, _column3(s, s * 0 + SAND_SURFACES[self.yield_surface])


@dataclasses.dataclass
class Plasticine(_Elastic):
    """Elastoplastic solid: Hencky-strain St. Venant–Kirchhoff elasticity with von Mises plasticity.
    The deviatoric Hencky strain is returned to ‖dev ε‖ ≤ √(2/3) σ_y / (2μ), i.e. the von Mises
    equivalent stress never exceeds the yield stress σ_y (Pa, > 0).
    Packed as plastic[0] = σ_y.
    """

    kind: ClassVar[int] = PLASTICINE
    E: Param = 2e5
    nu: Param = 0.3
    density: Param = 1e3
    yield_stress: Param = 1e3

    def _rules(self):
        return super()._rules() + [("yield_stress", lambda a: a > 0, "yield_stress must be > 0 Pa")]

    def _pack(self, p):
        mu, lam, _ = super()._pack(p)
        return mu, lam, _column3(p["yield_stress"])


@dataclasses.dataclass
class GranularMuI(_Elastic):
    """Dense granular flow with the μ(I) rheology (Jop, Forterre & Pouliquen 2006, Nature 441), as an
    elastic-plastic solid in MPM (Dunatunga & Kamrin 2015, J. Fluid Mech. 779): Hencky-strain
    St. Venant–Kirchhoff elasticity whose shear stress obeys τ_eq ≤ μ(I) p, with
        μ(I) = μs + (μ2 − μs) / (I0 / I + 1),   I = γ̇p d / sqrt(p / ρs),
    τ_eq = ‖dev τ‖ / √2 (the shear stress in simple shear), p = −tr τ / dim, γ̇p the plastic shear rate
    (√2 ‖dev D_p‖, the shear rate in simple shear). Separated grains (tr ε ≥ 0) carry no stress, as for
    `Sand`. The rate enters the return map (simcore.mpm.constitutive.mu_i_return_map): friction rises
    from μs at rest towards μ2 in fast flow. As I0 → ∞ (or d → 0) the law becomes a rate-independent
    Drucker–Prager-like cone τ_eq ≤ μs p; with μ2 = μs it is that cone for any I0. A layer on a rough
    incline of slope θ flows steadily when μs < tan θ < μ2, at I = I0 (tan θ − μs) / (μ2 − tan θ) (the
    Bagnold profile; tests/mpm/test_mu_i.py), and comes to rest below atan μs.

    mu_s, mu_2: static and limiting friction coefficients (0 < μs ≤ μ2).
    I0: inertial-number constant (> 0, dimensionless).
    grain_diameter d (m, > 0); grain_density ρs (kg/m³, > 0): the density of the grains' material.
    density: the bulk density ρ = φ ρs (kg/m³, ≤ grain_density), φ the solid volume fraction.
    E (Pa), nu: the elastic moduli of the packing.
    Defaults: Jop et al.'s glass beads (μs = tan 20.9°, μ2 = tan 32.76°, I0 = 0.279, d = 0.5 mm,
    ρs = 2450 kg/m³, φ = 0.6) with Sand's elastic moduli.
    Packed as plastic = (μs, μ2 − μs, I0 / (d sqrt(ρs))).
    """

    kind: ClassVar[int] = MU_I
    E: Param = 3.537e5
    nu: Param = 0.3
    density: Param = 0.6 * 2450.0
    mu_s: Param = 0.382
    mu_2: Param = 0.643
    I0: Param = 0.279
    grain_diameter: Param = 5e-4
    grain_density: Param = 2450.0

    def _rules(self):
        return super()._rules() + [
            ("mu_s", lambda a: a > 0, "the static friction coefficient mu_s must be > 0"),
            ("mu_2", lambda a: a > 0, "the limiting friction coefficient mu_2 must be > 0 (and >= mu_s)"),
            ("I0", lambda a: a > 0, "the inertial-number constant I0 must be > 0"),
            ("grain_diameter", lambda a: a > 0, "grain_diameter must be > 0 m"),
            ("grain_density", lambda a: a > 0, "grain_density (of the grains' material) must be > 0 kg/m³"),
        ]

    def validate(self, x: np.ndarray | None) -> dict[str, np.ndarray] | None:
        values = super().validate(x)
        # Rules between two parameters: checked where both are known (per particle once positions are).
        pairs = [("mu_2", "mu_s", "mu_2 must be >= mu_s (friction rises with the inertial number from "
                  "mu_s to mu_2); give mu_2 = mu_s for a rate-independent friction"),
                 ("grain_density", "density", "density (the bulk density, φ × grain_density) must be <= "
                  "grain_density: a packing cannot be denser than its grains")]
        for big, small, rule in pairs:
            if values is not None:
                a, b = values[big], values[small]
            elif callable(getattr(self, big)) or callable(getattr(self, small)):
                continue
            else:
                a, b = (np.asarray(_as_numpy(getattr(self, n)), dtype=np.float64) for n in (big, small))
            if not np.all(a >= b):
                raise ValueError(f"{self.label}: {big}={_as_numpy(getattr(self, big))!r}, "
                                 f"{small}={_as_numpy(getattr(self, small))!r}: {rule}")
        return values

    def _pack(self, p):
        mu, lam, _ = super()._pack(p)
        rate = p["I0"] / (p["grain_diameter"] * p["grain_density"] ** 0.5)
        return mu, lam, _column3(p["mu_s"], p["mu_2"] - p["mu_s"], rate)


ALL = (FixedCorotated, NeoHookean, Fluid, Snow, Sand, Plasticine, GranularMuI)


@dataclasses.dataclass
class Neural(Material):
    """A learned (or any torch-defined) elastic material: the stress comes from a torch.nn.Module.

    model: module mapping deformation gradients F (n, d, d) — and, if `features` is given, per-particle
        features (n, k) as a second argument — to the first Piola–Kirchhoff stress P (n, d, d), Pa.
        Its parameters receive gradients through `Scene.rollout` (this is the interface of neural
        constitutive laws, NCLaw style). The kernels use the Kirchhoff stress τ = P Fᵀ.
    plasticity: optional module F_trial (n, d, d) [, features] -> F_new (n, d, d), a return map
        applied before the stress (elastic if None).
    features: optional per-particle inputs: a tensor (n, k) for the body's n particles, or a callable
        f(x: (n, dim)) -> (n, k) of their initial positions.
    density: kg/m³.
    wave_modulus: P-wave modulus (Pa) for the CFL time step; default ∂P_ii/∂F_ii at F = I, taken
        from the model by autograd (the exact λ + 2μ for an isotropic law), maximised over particles.

    The model runs in its own parameters' dtype; simcore converts F and the stress to and from it.
    """

    kind: ClassVar[int] = NEURAL
    model: Any = None
    plasticity: Any = None
    features: Any = None
    density: Param = 1e3
    wave_modulus: float | None = None

    def __post_init__(self):
        if not callable(self.model):
            raise TypeError("Neural(model=...) needs a torch.nn.Module (or callable) mapping F (n, d, d) to "
                            f"the first Piola–Kirchhoff stress (n, d, d); got {type(self.model).__name__}")
        if self.plasticity is not None and not callable(self.plasticity):
            raise TypeError("Neural(plasticity=...) must be a module F_trial (n, d, d) -> F_new (n, d, d)")
        if self.wave_modulus is not None:
            modulus = _numbers("wave_modulus", self.wave_modulus, self.label, "a P-wave modulus > 0 Pa, or None")
            if not (modulus.shape == () and np.isfinite(modulus) and modulus > 0):
                raise ValueError(f"Neural.wave_modulus must be a number > 0 Pa (or None: from the model), "
                                 f"got {self.wave_modulus!r}")
        super().__post_init__()

    def _pack(self, p):
        zero = p["density"] * 0
        return zero, zero, _column3(zero)

    def particle_features(self, x: np.ndarray):
        """The features tensor (n, k) for particles at x, or None."""
        if self.features is None:
            return None
        import torch

        value = self.features(x.copy()) if callable(self.features) else self.features
        value = torch.as_tensor(value)
        if value.dim() != 2 or value.shape[0] != len(x):
            raise ValueError(f"{self.label}.features must have shape (n particles = {len(x)}, k), got "
                             f"{tuple(value.shape)}")
        return value

    def _wave_modulus(self, p):
        if self.wave_modulus is not None:
            return np.full_like(p["density"], self.wave_modulus)
        return np.full_like(p["density"], self._rest_modulus)

    def particle_parameters(self, x):
        if self.wave_modulus is None:
            from .neural import rest_wave_modulus

            self._rest_modulus = rest_wave_modulus(self, x)
        return super().particle_parameters(x)
