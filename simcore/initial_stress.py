"""Initial stress: bodies that start at rest under gravity instead of unstressed.

`Scene.add_body(..., initial_stress=...)` chooses the stress that carries a body's own weight:

    "hydrostatic"      Fluid: the pressure of its Tait law p = K/γ (J^−γ − 1) solving dp/dz = ρ(p) g with
                       ρ = ρ0 / J; isotropic (a fluid at rest carries no shear).
    "geostatic"        any supported material: the overburden carried in uniaxial strain (zero lateral
                       strain; the vertical stretch solves the material's own law, return map included,
                       for σ_vv = −overburden; the lateral stress is what the law then gives: K0 = ν/(1 − ν)
                       for small strains). A laterally confined body: the ground, a layer filling a tank.
                       For a Fluid it is the hydrostatic state.
    "uniaxial_stress"  solids: the overburden carried by the vertical stress alone (σ_hh = 0, the lateral
                       stretch free): a free-standing body, such as a block on a floor with free sides,
                       which uniaxial strain would push outwards with K0 σ_vv. Sand cannot stand so.

Supported: Fluid, NeoHookean, FixedCorotated, Sand, Plasticine, Snow. Neural materials are not (their
law is a torch module, not invertible here). "Vertical" is along −gravity, whatever its direction.

How the state is built (`equilibrium`), in three steps:

1. Overburden. Particles are grouped into columns along gravity (bins one particle spacing wide across
   it: a lattice body's particle columns). In a column, particles at most 1.5 spacings apart rest on each
   other; a larger gap is air. A particle's overburden q (Pa) is g times the mass per unit area above it
   in its run, plus half its own (mass per area m / s^(d−1), s its spacing). So the free surface of a
   column is its top particle + half a spacing, for any body shape, and a stressed body stacked on
   another stressed body loads it.
2. Continuum state. q fixes each particle's state through its law (`Law`): J for a fluid, the stretches
   for a solid. The masses follow, consistently with the solver (mass = density × rest volume): a particle
   placed at spacing s fills s^d now, so its rest volume is s^d / J and its mass ρ0 s^d / J (what
   `Body.volume` holds for a stressed body). The mass depends on J, so steps 1–2 are iterated.
3. Discrete equilibrium. The continuum state balances every grid node whose stencil is full of particles
   (quadratic B-splines at two particles per cell integrate a linear stress exactly), but not the nodes at
   a body's edges, where the stencil is cut: there it leaves a force that moves water at ~0.1 m/s. So q is
   corrected, by Newton steps on the least change that balances every grid node as the solver's first
   substep from rest computes it: the MLS-MPM stress impulse −V0 τ (4/dx²) w (x_i − x_p) (V0 the rest
   volume, τ the Kirchhoff stress) against the weight Σ w m g, in the directions the boundaries leave
   free (`Boundaries`), to 1e-6 g. Least change weighted by each particle's leverage on the grid (LSQR on
   unit columns, `_least_change`): particles that reach few free nodes, next to a boundary, change most.
   Only the particles reaching an unbalanced node change: a shell along the boundaries. The change is
   ~10 % of the pressure in the two particle layers next to a floor (+3 % and +19 % in a 2D pool) and
   ~1 % in the columns next to a wall.

What cannot be balanced, and is left out of step 3 (`Equilibrium.unbalanced`, `.residual`):
- A free grid node with particles on one side only along a direction in which gravity does not pull it
  back: the face of a fluid column without a wall (it flows: a dam break), and a body's face lying on a
  grid node the boundaries leave free. The domain walls hold the nodes i <= 3 (and i >= grid − 3),
  the nodes on their faces included, so a body placed against a domain wall is held there (until
  issue 13 they held i < 3, leaving the face node free: such a body sank into the wall by a fraction
  of a cell). A collider holds the nodes strictly inside it: a body resting on it is balanced when the
  node at its face is inside (e.g. a Plane at 0.1 m on a
  32-cell grid holds the node at 3 dx, the face of a body sampled from 0.1 m).
- A fluid (or a geostatically confined solid) against a frictionless vertical wall: the cut stencil at the
  wall asks for more lateral pressure in the columns next to it than their weight allows. Sticky walls,
  or friction at least `Equilibrium.friction_needed`, hold it (the no-slip wall of a viscous fluid).

Tested for lattice-sampled bodies resting on boundaries across gravity (floors) and along it (walls),
gravity along a grid axis. A randomly sampled body is not at rest on the grid with or without an
initial stress (its particles rearrange: 0.34 m/s unstressed, 0.36 m/s stressed for the pool of
tests/mpm/test_hydrostatic.py). A floor not across gravity calls for shear stress, which none of the
states above has.

The state is computed on the host (numpy, scipy) and carries no gradient to material parameters.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .colliders import BOX, CYLINDER, MODES, PLANE, SPHERE
from .materials import FIXED_COROTATED, FLUID, NEO_HOOKEAN, NEURAL, PLASTICINE, SAND, SNOW
from .mpm.config import BOUND

OPTIONS = ("hydrostatic", "geostatic", "uniaxial_stress")
SUPPORTED = {FLUID: "Fluid", NEO_HOOKEAN: "NeoHookean", FIXED_COROTATED: "FixedCorotated", SAND: "Sand",
             PLASTICINE: "Plasticine", SNOW: "Snow"}
STICKY = MODES["sticky"]
# Step 3 balances the free nodes to this fraction of g. The continuum state's own imbalance inside a
# body, from the curvature of p(z) that compressibility gives (p'' dx² against quadratic B-splines), is
# below it for the fluids the CFL bound lets one run (2e-8 g for water at K = 4e5 Pa, dx = 1/32 m), so
# the correction stays in a shell along the boundaries.
TOLERANCE = 1e-6
# Tikhonov damping of each least-squares correction, relative to accelerations of g per overburden of
# the deepest particle's.
DAMPING = 1e-3
# LSQR iterations per correction (`_least_change`).
LSQR_STEPS = 2000
# Newton steps of the correction, and the tolerances of their least-squares solves: loose first (cheap
# steps, and a balance that cannot be met stops early), tightened whenever a step stops helping.
ITERATIONS = 20
INNER = (1e-4, 1e-6, 1e-8)


def check_option(option, material, body: str) -> str | None:
    """`option` checked for a body of `material` (None: unstressed).

    Raises:
        ValueError: an unknown option, a material without an at-rest law (Neural), "hydrostatic" for a
            solid or "uniaxial_stress" for a fluid or sand.
    """
    if option is None:
        return None
    if option not in OPTIONS:
        raise ValueError(f"body {body!r}: initial_stress must be None, 'hydrostatic' (fluids), 'geostatic' "
                         f"(confined: fluids and solids) or 'uniaxial_stress' (free-standing solids), got {option!r}")
    kind, name = material.kind, type(material).__name__
    if kind == NEURAL:
        raise ValueError(f"body {body!r}: initial_stress={option!r} solves the material's own stress law for the "
                         "stress that carries its weight; a Neural material's law is a torch module, which this "
                         "cannot invert: start the body unstressed (initial_stress=None)")
    if kind not in SUPPORTED:
        raise ValueError(f"body {body!r}: initial_stress is not supported for {name}; supported: "
                         f"{', '.join(SUPPORTED.values())}")
    if option == "hydrostatic" and kind != FLUID:
        raise ValueError(f"body {body!r}: initial_stress='hydrostatic' is a fluid's isotropic pressure; a {name} "
                         "carries its weight in uniaxial strain ('geostatic', confined by walls or ground) or "
                         "uniaxial stress ('uniaxial_stress', free sides)")
    if option == "uniaxial_stress" and kind in (FLUID, SAND):
        raise ValueError(f"body {body!r}: a {name} cannot carry its weight without lateral support "
                         f"(initial_stress='uniaxial_stress'); use '{'hydrostatic' if kind == FLUID else 'geostatic'}'"
                         " with walls beside it")
    return option


# ----------------------------------------------------------------------------------------------
# The laws along and across gravity: numpy mirrors of simcore.mpm.constitutive for deformation
# gradients F = s_h (I − n nᵀ) + s_v n nᵀ (n the vertical), whose stress has the same form.
# ----------------------------------------------------------------------------------------------
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


def _least_change(A, b: np.ndarray, tol: float) -> np.ndarray:
    """y ≈ argmin ‖A y − b‖² + DAMPING² ‖y‖² for sparse A (rows, n): LSQR on unit-norm columns (at most
    LSQR_STEPS iterations). The system is ill-conditioned (singular values over four decades, from
    modes smooth along the boundaries): plain LSQR took thousands of iterations for a 2D pool, with unit
    columns a few hundred; a sparse direct solve of its normal equations fills in at 3D sizes (a pool of
    43,000 particles did not finish in 10 minutes, against 2 minutes here)."""
    from scipy.sparse import diags
    from scipy.sparse.linalg import lsqr

    norms = np.sqrt(np.asarray(A.multiply(A).sum(0)).reshape(-1)) + 1e-300
    return lsqr(A.tocsc() @ diags(1 / norms), b, damp=DAMPING, atol=tol, btol=tol, iter_lim=LSQR_STEPS)[0] / norms


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
        if self.kind == SAND:  # Klár et al. 2016, Alg. 2, with constitutive.drucker_prager_alpha's cone
            sin_phi = plastic[:, 0]
            alpha = sin_phi / math.sqrt(2) if d == 2 else math.sqrt(2 / 3) * 2 * sin_phi / (3 - sin_phi)
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


# ----------------------------------------------------------------------------------------------
# Step 1: the overburden along columns
# ----------------------------------------------------------------------------------------------
def vertical(gravity: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(n, across, g): the unit vertical n = −g/|g|, an orthonormal basis (d − 1, d) across it, |g|."""
    g = float(np.linalg.norm(gravity))
    n = -np.asarray(gravity, dtype=np.float64) / g
    across = np.linalg.svd(np.eye(len(n)) - np.outer(n, n))[0][:, : len(n) - 1].T
    return n, across, g


def overburden(x: np.ndarray, spacing: np.ndarray, mass: np.ndarray, gravity: np.ndarray) -> np.ndarray:
    """q (n,) Pa: g times the mass per unit area resting on each particle, half its own included.

    x: (n, dim) m; spacing: (n,) m, each particle's spacing (the width of its column); mass: (n,) kg;
    gravity: (dim,) m/s². Columns are bins of the smallest spacing across gravity; in a column, particles
    more than 1.5 spacings apart along gravity do not rest on each other (air between them)."""
    up, across, g = vertical(gravity)
    height = x @ up
    cell = np.floor(x @ across.T / spacing.min() + 0.5).astype(np.int64)
    column = np.unique(cell, axis=0, return_inverse=True)[1].reshape(-1)
    per_area = mass / spacing ** (x.shape[1] - 1)
    order = np.lexsort((-height, column))  # column by column, from the top down
    col, h, s, w = column[order], height[order], spacing[order], per_area[order]
    top = np.ones(len(order), bool)  # the first particle of each run
    top[1:] = (col[1:] != col[:-1]) | (h[:-1] - h[1:] > 1.5 * 0.5 * (s[1:] + s[:-1]))
    run_start = np.maximum.accumulate(np.where(top, np.arange(len(order)), 0))
    total = np.cumsum(w) - w  # mass per area above, over the whole sorted order
    above = total - total[run_start]
    q = np.empty(len(x))
    q[order] = g * (above + 0.5 * w)
    return q


# ----------------------------------------------------------------------------------------------
# Step 3: the discrete equilibrium on the grid
# ----------------------------------------------------------------------------------------------
def stencils(x: np.ndarray, grid: int) -> tuple[np.ndarray, np.ndarray]:
    """Per particle, its 3^d stencil nodes (n, 3^d, d) int and their weights (n, 3^d): quadratic B-splines
    with the base clamped into the grid, as the kernels' `_stencil`."""
    n, d = x.shape
    X = x * grid
    base = np.clip(np.floor(X - 0.5).astype(np.int64), 0, grid - 3)
    fx = X - base
    w = np.stack([0.5 * (1.5 - fx) ** 2, 0.75 - (fx - 1) ** 2, 0.5 * (fx - 0.5) ** 2])  # (3, n, d)
    offsets = np.stack(np.meshgrid(*[np.arange(3)] * d, indexing="ij"), -1).reshape(-1, d)
    weight = np.prod(w[offsets, np.arange(n)[:, None, None], np.arange(d)], axis=-1)
    return base[:, None, :] + offsets[None], weight


def collider_distance(kind: int, r: np.ndarray, params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Signed distance (m,) m and unit normal (m, d) at points r = x − origin (m, d) of a collider: a numpy
    mirror of simcore.mpm.boundary.signed_distance (which decides the nodes a collider holds)."""
    m, d = r.shape
    safe = lambda a: np.where(a > 0, a, 1.0)  # noqa: E731
    if kind == PLANE:
        return r @ params[:d], np.broadcast_to(params[:d], (m, d)).copy()
    if kind == SPHERE:
        dist = np.linalg.norm(r, axis=1)
        return dist - params[0], np.where(dist[:, None] > 0, r / safe(dist)[:, None], 0.0)
    if kind == BOX:
        q = np.abs(r) - params[:d]
        outside = np.maximum(q, 0)
        norm = np.linalg.norm(outside, axis=1)
        sign = np.where(r >= 0, 1.0, -1.0)
        face = sign * (np.arange(d)[None] == np.argmax(q, 1)[:, None])
        normal = np.where((q.max(1) > 0)[:, None], sign * outside / safe(norm)[:, None], face)
        return norm + np.minimum(q.max(1), 0), normal
    if kind == CYLINDER:
        axis = params[:3]
        along = r @ axis
        radial_vec = r - along[:, None] * axis
        radial = np.linalg.norm(radial_vec, axis=1)
        radial_dir = np.where(radial[:, None] > 0, radial_vec / safe(radial)[:, None], 0.0)
        q = np.stack([radial - params[3], np.abs(along) - params[4]], 1)
        outside = np.maximum(q, 0)
        norm = np.linalg.norm(outside, axis=1)
        cap = axis[None] * np.where(along >= 0, 1.0, -1.0)[:, None]
        inner = np.where((q[:, 0] > q[:, 1])[:, None], radial_dir, cap)
        normal = np.where((q.max(1) > 0)[:, None], (outside[:, :1] * radial_dir + outside[:, 1:] * cap)
                          / safe(norm)[:, None], inner)
        return norm + np.minimum(q.max(1), 0), normal
    raise ValueError(f"unknown collider kind {kind}")


@dataclasses.dataclass
class Boundaries:
    """What holds grid nodes at time 0: the domain walls (grid cells per axis, wall_modes ((lo, hi) per
    axis) codes, wall_friction) and the colliders ((kind, mode code) each, frictions (nc,), origins
    (nc, dim) m, packed params (nc, 8))."""

    grid: int
    wall_modes: tuple
    wall_friction: float = 0.0
    colliders: tuple = ()
    collider_friction: np.ndarray | None = None
    collider_origin: np.ndarray | None = None
    collider_params: np.ndarray | None = None

    @staticmethod
    def of(model) -> Boundaries:
        """The boundaries of a simcore.mpm.model.Model."""
        return Boundaries(model.grid, model.wall_modes, model.wall_friction,
                          tuple((c.kind, c.mode_code) for c in model.colliders), model.collider_friction,
                          model.collider_origin, model.collider_params)

    def free_directions(self, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For nodes (m, d) int: (free, tangent), each (m, d, d) with rows an orthonormal basis (zero rows
        pad). free: the directions in which the solver lets the node's velocity change from rest: all d
        where no boundary holds the node; the tangential ones where a frictionless separating or slipping
        boundary holds it (the normal one is held while the body presses on it); none where a sticky or
        frictional boundary holds it (friction holds the tangential force up to μ times the normal one:
        `Equilibrium.friction_needed` says how much it takes). tangent: the tangential directions of held
        nodes, friction or not (the whole space where nothing holds the node)."""
        m, d = nodes.shape
        normals, held_fully = [], np.zeros(m, bool)
        for a in range(d):  # simcore.mpm.boundary.wall_velocity's rule: BOUND nodes at each wall
            for side, held in ((0, nodes[:, a] <= BOUND), (1, nodes[:, a] >= self.grid - BOUND)):
                e = np.zeros(d)
                e[a] = 1.0 if side == 0 else -1.0
                normals.append(held[:, None] * e)
                held_fully |= held & ((self.wall_modes[a][side] == STICKY) | (self.wall_friction > 0))
        for c, (kind, mode) in enumerate(self.colliders):
            phi, normal = collider_distance(kind, nodes / self.grid - self.collider_origin[c], self.collider_params[c])
            held = phi < 0
            normals.append(held[:, None] * normal)
            held_fully |= held & ((mode == STICKY) | (self.collider_friction[c] > 0))
        N = np.stack(normals, 2)  # (m, d, k)
        # The tangential directions: the null space of the held normals.
        u, s, _ = np.linalg.svd(N)
        rank = (s > 1e-9).sum(1)
        tangent = np.swapaxes(u, 1, 2) * (np.arange(d)[None, :] >= rank[:, None])[..., None]
        return np.where(held_fully[:, None, None], 0.0, tangent), tangent


@dataclasses.dataclass
class Equilibrium:
    """The at-rest state of the stressed particles (n of them, in the order given to `solve`).

    F (n, d, d), Jp (n,): the solver's state; J (n,): the volume ratio, placed / rest volume; q (n,) Pa:
    the overburden (σ_vv = −q) after the grid correction, q_continuum (n,) before it. residual: the
    largest acceleration (m/s²) of a balanced free node at t = 0 (round-off when balanced: it is not
    when a frictionless wall stands beside a confined body). unbalanced: (k, d) positions (m) of the free
    nodes left out (see the module docstring). friction_needed: the largest |tangential| / |normal| force
    ratio at nodes held by a boundary (the friction coefficient that holds them). particles: (n,) the
    particles' indices in the scene (from `equilibrium`)."""

    F: np.ndarray
    Jp: np.ndarray
    J: np.ndarray
    q: np.ndarray
    q_continuum: np.ndarray
    residual: float
    unbalanced: np.ndarray
    friction_needed: float
    particles: np.ndarray | None = None


def solve(x: np.ndarray, placed_volume: np.ndarray, density: np.ndarray, laws, gravity: np.ndarray,
          boundaries: Boundaries, iterations: int = ITERATIONS) -> Equilibrium:
    """The at-rest state of particles x (n, d) m placed with volumes placed_volume (n,) m^d (at spacing
    placed_volume^(1/d)), rest densities density (n,) kg/m³, under gravity (d,) m/s² in `boundaries`.
    laws: [(indices, Law)] covering every particle once."""
    n, d = x.shape

    def at_rest(q):
        return _cat([(idx, law.state(q[idx])) for idx, law in laws], n)

    # Steps 1–2: overburden and continuum state; the mass depends on J, so iterate.
    spacing = placed_volume ** (1 / d)
    J = np.ones(n)
    for _ in range(6):
        q = overburden(x, spacing, density * placed_volume / J, gravity)
        J, J_old = at_rest(q).J, J
        if np.max(np.abs(J - J_old)) < 1e-15:
            break
    # Step 3: the grid balance of the first substep from rest.
    balance = _GridBalance(x, placed_volume, density, gravity, boundaries, at_rest, q)
    return balance.result(balance.newton(q, iterations), q_continuum=q)


class _GridBalance:
    """`solve`'s step 3: the forces of the first substep from rest on the grid nodes the particles reach,
    and Newton's iteration on the overburden q (n,) Pa that balances the free ones."""

    def __init__(self, x, placed_volume, density, gravity, boundaries: Boundaries, at_rest, q):
        n, d = x.shape
        self.d, self.placed_volume, self.density, self.gravity, self.at_rest = d, placed_volume, density, gravity, at_rest
        self.up, _, self.g = vertical(gravity)
        grid = self.grid = boundaries.grid
        nodes, self.weight = stencils(x, grid)
        flat = np.ravel_multi_index(tuple(np.moveaxis(nodes, -1, 0)), (grid + 1,) * d)
        ids, node_of = np.unique(flat, return_inverse=True)
        self.node_of = node_of = node_of.reshape(self.weight.shape)
        self.m_nodes = m_nodes = len(ids)
        self.node_xyz = np.stack(np.unravel_index(ids, (grid + 1,) * d), -1)
        self.grad = 4 * grid**2 * self.weight[..., None] * (nodes / grid - x[:, None, :])  # MLS ∇w, (n, 3^d, d)
        self.free, self.tangent = boundaries.free_directions(self.node_xyz)
        state = at_rest(q)
        m_node, _ = self.forces(state)
        self.light = m_node <= 1e-9 * (density * placed_volume / state.J).min()  # below the solver's mass floor
        # Rows that no q >= 0 can balance: every particle pushes the node one way along a free direction
        # and gravity does not pull it back (the face of a fluid column, a face on a free node next to a wall).
        P = self.tensor(state.k, np.ones(n))  # −dσ/dq
        reach = np.einsum("pab,pkb->pka", P, self.grad)  # direction each particle pushes each of its nodes, per unit q
        coef = np.einsum("pkna,pka->pkn", self.free[node_of], reach)  # in each node's free basis
        pos, neg = np.zeros((m_nodes, d)), np.zeros((m_nodes, d))
        np.add.at(pos, node_of, np.maximum(coef, 0) * (self.weight[..., None] > 0))
        np.add.at(neg, node_of, np.maximum(-coef, 0) * (self.weight[..., None] > 0))
        pull = np.einsum("mna,a->mn", self.free, gravity)
        scale = 1e-12 * (pos + neg).max()
        self.one_way = ((pos <= scale) & (pull <= 0) & ((neg > scale) | (pull < 0))) | \
                       ((neg <= scale) & (pull >= 0) & ((pos > scale) | (pull > 0)))
        self.active_row = ~self.one_way & ~self.light[:, None] & (np.abs(self.free).sum(2) > 0)
        self.rows = np.arange(m_nodes * d).reshape(m_nodes, d)  # (node, free direction) -> row

    def node_sum(self, values):
        """Σ over (particle, stencil node) pairs into nodes: (m, ...) from (n, 3^d, ...)."""
        out = np.zeros((self.m_nodes,) + values.shape[2:])
        np.add.at(out, self.node_of, values)
        return out

    def tensor(self, across, along):
        vertical_proj = np.outer(self.up, self.up)
        return across[:, None, None] * (np.eye(self.d) - vertical_proj) + along[:, None, None] * vertical_proj

    def forces(self, state):
        """Node masses (m,) kg and forces (m, d) N of the first substep from `state`."""
        mass = self.density * self.placed_volume / state.J
        sigma = self.tensor(state.sigma_h, state.sigma_v)
        f = self.node_sum(-np.einsum("p,pab,pkb->pka", self.placed_volume, sigma, self.grad)
                          + self.weight[..., None] * mass[:, None, None] * self.gravity)
        return self.node_sum(self.weight * mass[:, None]), f

    def imbalance(self, q):
        """Accelerations of the free directions of the balanced nodes (m, d), m/s², and (state, node
        masses); (None, None) where q leaves the law's range (a fluid stretched past J's pole, a solid
        beyond what it carries)."""
        try:
            state = self.at_rest(q)
        except ValueError:
            return None, None
        m_node, f = self.forces(state)
        acc = np.where(self.active_row, np.einsum("mna,ma->mn", self.free, f / np.maximum(m_node, 1e-300)[:, None]), 0.0)
        return (acc, (state, m_node)) if np.all(np.isfinite(acc)) else (None, None)

    def newton(self, q, iterations):
        """The overburden (n,) Pa that balances the free nodes, from the continuum one q, by damped
        Gauss–Newton steps on the particles near unbalanced nodes."""
        from scipy.sparse import csr_matrix

        g, node_of, q_scale = self.g, self.node_of, q.max()
        acc, (state, m_node) = self.imbalance(q)
        inner = 0
        for _ in range(iterations):
            off = np.abs(acc) > TOLERANCE * g
            if not off.any():
                break
            # Only the particles whose stencil reaches an unbalanced node change; every node they reach
            # stays in the system (balanced ones with target 0): a shell along the body's boundary.
            movers = np.flatnonzero((np.abs(acc) > 0.1 * TOLERANCE * g).any(1)[node_of].any(1))
            reached = np.zeros(self.m_nodes, bool)
            reached[node_of[movers]] = True
            row_ids = np.flatnonzero((self.active_row & reached[:, None]).reshape(-1))
            P = self.tensor(state.k[movers], np.ones(len(movers)))
            col = np.einsum("pkna,pab,pkb->pkn", self.free[node_of[movers]], P, self.grad[movers]) \
                * (self.placed_volume[movers, None, None] / np.maximum(m_node, 1e-300)[node_of[movers]][..., None])
            row_of = np.searchsorted(row_ids, self.rows[node_of[movers]])  # (movers, 3^d, d) into row_ids
            kept = (row_of < len(row_ids)) & (row_ids[np.minimum(row_of, len(row_ids) - 1)] == self.rows[node_of[movers]])
            A = csr_matrix((col[kept], (row_of[kept], np.broadcast_to(np.arange(len(movers))[:, None, None],
                                                                        kept.shape)[kept])),
                           shape=(len(row_ids), len(movers)))
            # In units of g (rows) and of the deepest overburden (columns), damped: a balance that no q
            # reaches (a frictionless wall beside a confined body, the nodes next to a fluid's free face)
            # is met in the least-squares sense, and each Newton step is halved until it lowers the
            # imbalance and stays in the laws' range.
            dq = q_scale * _least_change(A * (q_scale / g), -acc.reshape(-1)[row_ids] / g, INNER[inner])
            for _ in range(20):
                trial = q.copy()
                trial[movers] += dq
                trial_acc, trial_state = self.imbalance(trial)
                if trial_acc is not None and np.square(trial_acc).sum() < np.square(acc).sum():
                    break
                dq = dq / 2
            else:
                trial = None  # no step lowers the imbalance
            stalled = trial is None or np.square(trial_acc).sum() > 0.99 * np.square(acc).sum()
            if trial is not None:
                q, acc, (state, m_node) = trial, trial_acc, trial_state
            if stalled:
                if inner == len(INNER) - 1:
                    break  # what is left cannot be balanced
                inner += 1
        return q

    def result(self, q, q_continuum) -> Equilibrium:
        """The Equilibrium of overburden q: the state, the balance left and the friction it takes."""
        d = self.d
        state = self.at_rest(q)
        m_node, f = self.forces(state)
        acc = np.einsum("mna,ma->mn", self.free, f / np.maximum(m_node, 1e-300)[:, None])
        residual = float(np.abs(np.where(self.active_row, acc, 0)).max(initial=0))
        # The friction a held node needs to stay: its tangential over its normal force.
        tangent = self.tangent
        held = ((np.abs(tangent).sum(2) > 0).sum(1) < d) & ~self.light
        f_t = np.einsum("mna,mn->ma", tangent, np.einsum("mna,ma->mn", tangent, f))
        needed = np.linalg.norm(f_t, axis=1)[held] / np.maximum(np.linalg.norm(f - f_t, axis=1)[held], 1e-300)
        unbalanced = self.node_xyz[(self.one_way & (np.abs(self.free).sum(2) > 0)).any(1) & ~self.light] / self.grid
        return Equilibrium(F=self.tensor(state.stretch_h, state.stretch_v), Jp=state.Jp, J=state.J, q=q,
                           q_continuum=q_continuum, residual=residual, unbalanced=unbalanced,
                           friction_needed=float(needed.max(initial=0.0)))


# ----------------------------------------------------------------------------------------------
# A scene's stressed bodies
# ----------------------------------------------------------------------------------------------
def check_scene_option(option, material, body: str, gravity: np.ndarray) -> str | None:
    """`check_option`, and gravity to carry: a ValueError when the scene's gravity is zero."""
    option = check_option(option, material, body)
    if option is not None and not np.linalg.norm(gravity) > 0:
        raise ValueError(f"body {body!r}: initial_stress={option!r} carries the body's weight, but the scene's "
                         "gravity is zero (an unstressed body is at rest): use initial_stress=None")
    return option


@dataclasses.dataclass
class BodyAtRest:
    """One body's part of an Equilibrium: F (n, d, d), Jp (n,), J (n,) placed / rest volume."""

    F: np.ndarray
    Jp: np.ndarray
    J: np.ndarray


class SceneAtRest:
    """The at-rest state of a scene's stressed bodies (all solved together: they may rest on each other),
    recomputed when anything it depends on has changed since: the bodies, a material parameter or a
    collider (Scene._model_inputs, which also tells a stale model), a points tensor's positions."""

    def __init__(self, scene):
        import weakref

        self._scene = weakref.ref(scene)  # the scene holds this through its bodies
        self._key = None
        self._result: Equilibrium | None = None
        self._parts: dict[str, BodyAtRest] = {}

    def _inputs(self, scene) -> tuple:
        from .body import _snapshot

        return (tuple((b.name, b.initial_stress, b.n_particles, id(b.material)) for b in scene.bodies),
                scene._model_inputs(), scene.grid, scene.gravity.tobytes(), scene.wall_modes, scene.wall_friction,
                tuple(_snapshot(b.shape.tensor) for b in scene.bodies
                      if b.at_rest is not None and getattr(b.shape, "tensor", None) is not None))

    def equilibrium(self) -> Equilibrium:
        """The Equilibrium of the stressed particles (`particles`: their indices in the scene), computed
        anew if the scene changed."""
        from .body import _same

        scene = self._scene()
        key = self._inputs(scene)
        if self._result is None or not _same(key, self._key):
            self._result, self._parts = self._solve(scene)
            self._key = key
        return self._result

    def of(self, body) -> BodyAtRest:
        """The at-rest state of one of the scene's stressed bodies."""
        self.equilibrium()
        return self._parts[body.name]

    @staticmethod
    def _solve(scene):
        stressed, start, index = [], 0, []
        for b in scene.bodies:
            if b.at_rest is not None:
                stressed.append(b)
                index.append(np.arange(start, start + b.n_particles))
            start += b.n_particles
        laws, first = [], 0
        for b in stressed:
            x = b.initial_positions(scene.grid)
            laws.append((np.arange(first, first + b.n_particles),
                         Law(b.material.kind, b.material.particle_parameters(x), scene.dim, b.initial_stress, b.name)))
            first += b.n_particles
        x = np.concatenate([b.initial_positions(scene.grid) for b in stressed])
        density = np.concatenate([b.material.particle_parameters(b.x)["density"] for b in stressed])
        placed = np.concatenate([b.placed_volume for b in stressed])
        d = scene.dim
        colliders = scene.colliders
        boundaries = Boundaries(scene.grid, scene.wall_modes, scene.wall_friction,
                                tuple((c.kind, c.mode_code) for c in colliders),
                                np.array([c.friction_value for c in colliders]) if colliders else None,
                                np.stack([c.origin(d) for c in colliders]) if colliders else None,
                                np.stack([c.pack(d) for c in colliders]) if colliders else None)
        result = solve(x, placed, density, laws, scene.gravity, boundaries)
        result.particles = np.concatenate(index)
        parts = {b.name: BodyAtRest(result.F[idx], result.Jp[idx], result.J[idx])
                 for b, (idx, _) in zip(stressed, laws)}
        return result, parts


def equilibrium(scene) -> Equilibrium:
    """The at-rest state of `scene`'s stressed bodies, with its diagnostics (`Equilibrium`): whether every
    grid node is balanced (`residual`, `unbalanced`) and the friction the boundaries must supply.

    Raises:
        ValueError: the scene has no body with an initial stress.
    """
    for b in scene.bodies:
        if b.at_rest is not None:
            return b.at_rest.equilibrium()
    raise ValueError("the scene has no body with an initial stress: add one with "
                     "scene.add_body(shape, material, initial_stress='hydrostatic' or 'geostatic')")
