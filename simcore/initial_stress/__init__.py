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

How the state is built (`equilibrium`), in three steps, a module each (columns.py, laws.py, balance.py):

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

import numpy as np

from ..body import _same, _snapshot
from ..materials import FIXED_COROTATED, FLUID, NEO_HOOKEAN, NEURAL, PLASTICINE, SAND, SNOW
from .balance import Boundaries, Equilibrium, collider_distance, solve, stencils
from .columns import overburden, vertical
from .laws import AtRest, Law

__all__ = ["OPTIONS", "SUPPORTED", "AtRest", "BodyAtRest", "Boundaries", "Equilibrium", "Law", "SceneAtRest",
           "check_option", "check_scene_option", "collider_distance", "equilibrium", "overburden", "solve",
           "stencils", "vertical"]

OPTIONS = ("hydrostatic", "geostatic", "uniaxial_stress")
SUPPORTED = {FLUID: "Fluid", NEO_HOOKEAN: "NeoHookean", FIXED_COROTATED: "FixedCorotated", SAND: "Sand",
             PLASTICINE: "Plasticine", SNOW: "Snow"}


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
        return (tuple((b.name, b.initial_stress, b.n_particles, id(b.material)) for b in scene.bodies),
                scene._model_inputs(), scene.grid, scene.gravity.tobytes(), scene.wall_modes, scene.wall_friction,
                tuple(_snapshot(b.shape.tensor) for b in scene.bodies
                      if b.at_rest is not None and getattr(b.shape, "tensor", None) is not None))

    def equilibrium(self) -> Equilibrium:
        """The Equilibrium of the stressed particles (`particles`: their indices in the scene), computed
        anew if the scene changed."""
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

