"""Scene: the builder of an MPM model. Bodies, colliders and walls in the unit domain [0, 1]^dim become
a frozen `Model` (simcore.mpm.model) and an initial `State`; `run` (simcore.simulate) and `rollout`
(simcore.torch) drive them on the compiled solver shared by every scene of the same configuration.

    scene = Scene(dim=3, grid=64)
    scene.add_body(shapes.Box(...), materials.NeoHookean(...), velocity=(0, -1, 0))
    scene.add_collider(colliders.Plane(point=(0, 0.05, 0), normal=(0, 1, 0), friction=0.3))
    traj = scene.run(frames=100, frame_dt=1 / 60)
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from . import backend
from .body import Body, _same, _snapshot, actuator_groups, initial_velocity, rigid_spin
from .colliders import MODES, Collider
from .initial_stress import SceneAtRest
from .initial_stress import check_scene_option as initial_stress_check
from .materials import NEURAL, Material
from .mpm import cache
from .mpm.config import BOUND
from .mpm.model import Model, check_inside
from .mpm.state import State
from .shapes import Shape
from .simulate import SLOTS, simulate
from .trajectory import Trajectory

SIDES = ("-x", "+x", "-y", "+y", "-z", "+z")
TRANSFERS = ("apic", "flip")  # grid-to-particle velocity transfers (Scene(transfer=...))


def _material_kinds(materials) -> tuple[int, ...]:
    """The kind codes of `materials` (Material classes or instances), checked."""
    if isinstance(materials, (Material, type)):
        materials = (materials,)
    kinds = set()
    for m in materials:
        cls = m if isinstance(m, type) else type(m)
        if not (issubclass(cls, Material) and cls.kind >= 0):
            raise ValueError(f"compile_materials takes material types such as simcore.materials.Sand (the class "
                             f"or an instance), got {m!r}")
        if cls.kind == NEURAL:
            raise ValueError("compile_materials cannot list Neural: its stress is a torch module of the scene's "
                             "own; add a Neural body instead")
        kinds.add(cls.kind)
    return tuple(sorted(kinds))


class Scene:
    """An MPM scene in the unit domain [0, 1]^dim.

    Args:
        dim: 2 or 3.
        grid: grid cells per axis (dx = 1 / grid m).
        gravity: (dim,) m/s²; default (0, −9.8[, 0]).
        dt: largest substep (s); None chooses it each frame from the CFL bound.
        cfl: CFL number for the automatic substep: dt = cfl · dx / max(wave speed + |v| + |g|·frame_dt),
            re-chosen every frame from the current state. CFL = 1 is the stability bound a fixed `dt` is
            checked against (a necessary condition); 0.4 leaves room for stiffening within a frame
            (compressed Tait fluids went unstable at 0.9 in our sweep, every material was stable at 0.5).
        walls: boundary mode at the domain walls ("separate", "slip", "sticky"), one for all sides or a
            dict per side, e.g. {"-y": "sticky"} (unnamed sides stay "separate").
        wall_friction: Coulomb friction coefficient at the walls.
        particles_per_cell: default particles per grid cell for bodies (2^dim); with lattice sampling it
            must be k^dim.
        sampling: "lattice" (particles on a regular sub-grid) or "random" (seeded uniform).
        seed: random seed for "random" sampling.
        compile_materials: material types (classes or instances, e.g. `(materials.Sand, materials.Fluid)`)
            to compile the solver's kernels for besides those the bodies use. Scenes that list the same
            types share one compiled solver whatever subset their bodies use: for many scenes of random
            material mixes (datasets), one compilation instead of one per mix. The price is the path of
            the most demanding type (a jelly runs the SVD path if Sand is listed).
        transfer: the grid-to-particle velocity transfer. "apic" (the default; MLS-MPM's affine
            particle-in-cell, differentiable) replaces each particle's velocity by the grid's every
            substep, which damps the motions the grid cannot hold by a fixed factor per substep, so a
            flow loses more energy the smaller dt is (a granular collapse's run-out depends on dt as much
            as on the grid: docs/granular.md). "flip" keeps each particle's deviation from the grid's
            velocity, damped at `flip_damping` per second whatever dt is (Fei et al. 2021's APIC–FLIP
            blend, rate-based); differentiable too (`rollout`).
        flip_damping: κ, 1/s: with transfer="flip", a particle's deviation from the grid's velocity
            decays as e^(−κ t). 0 is pure FLIP (no transfer damping: a collapsed sand column's particles
            still move at 0.16 m/s after 2 s); with the default 20 its deposit is at rest by then
            (largest speed 3e-3 m/s; docs/granular.md).
    """

    def __init__(self, dim: int = 3, grid: int = 64, gravity=None, dt: float | None = None, cfl: float = 0.4,
                 walls: str | dict = "separate", wall_friction: float = 0.0,
                 particles_per_cell: int | None = None, sampling: str = "lattice", seed: int = 0,
                 compile_materials=(), transfer: str = "apic", flip_damping: float = 20.0):
        if dim not in (2, 3):
            raise ValueError(f"dim must be 2 or 3, got {dim!r}")
        if not (isinstance(grid, (int, np.integer)) and grid >= 2 * BOUND + 2):
            raise ValueError(f"grid must be an integer >= {2 * BOUND + 2} cells per axis, got {grid!r}")
        self.dim, self.grid = dim, int(grid)
        self.dx = 1.0 / self.grid
        self.gravity = (0.0, -9.8, 0.0)[:dim] if gravity is None else gravity
        if dt is not None and not (dt > 0 and math.isfinite(dt)):
            raise ValueError(f"dt must be a positive number of seconds or None, got {dt!r}")
        self.dt = dt
        if not 0 < cfl <= 1:
            raise ValueError(f"cfl must be in (0, 1], got {cfl!r}")
        self.cfl = float(cfl)
        self.wall_modes = self._parse_walls(walls)
        if not (math.isfinite(wall_friction) and wall_friction >= 0):
            raise ValueError(f"wall_friction must be >= 0, got {wall_friction!r}")
        self.wall_friction = float(wall_friction)
        self.particles_per_cell = particles_per_cell or 2**dim
        self.sampling = sampling
        self.seed = seed
        self.extra_kinds = _material_kinds(compile_materials)
        self.transfer = transfer
        self.flip_damping = flip_damping
        self.bodies: list[Body] = []
        self.colliders: list[Collider] = []
        self._model: Model | None = None
        self._model_key: tuple = ()  # Scene._model_inputs() when the model was built
        self._state: State | None = None  # None: at the initial state (made anew on each use)

    # ------------------------------------------------------------------------------------------
    # Building
    # ------------------------------------------------------------------------------------------
    @property
    def gravity(self) -> np.ndarray:
        """(dim,) m/s². May be reassigned between runs (the next run uses it), e.g. to tilt a table."""
        return self._gravity

    @gravity.setter
    def gravity(self, g):
        value = np.asarray(g, dtype=np.float64).reshape(-1)
        if value.shape != (self.dim,) or not np.all(np.isfinite(value)):
            raise ValueError(f"gravity must be {self.dim} finite numbers (m/s²), got {g!r}")
        self._gravity = value

    @property
    def transfer(self) -> str:
        """"apic" or "flip" (see the class docstring). May be reassigned between runs."""
        return self._transfer

    @transfer.setter
    def transfer(self, value: str):
        if value not in TRANSFERS:
            raise ValueError(f"transfer must be one of {TRANSFERS}, got {value!r}")
        self._transfer = value

    @property
    def flip_damping(self) -> float:
        """κ, 1/s: the FLIP blend's damping rate (transfer="flip"). May be reassigned between runs."""
        return self._flip_damping

    @flip_damping.setter
    def flip_damping(self, value: float):
        if isinstance(value, bool) or not (isinstance(value, (int, float, np.floating, np.integer))
                                           and math.isfinite(value) and value >= 0):
            raise ValueError(f"flip_damping must be a finite rate >= 0 in 1/s (0: pure FLIP), got {value!r}")
        self._flip_damping = float(value)

    def _parse_walls(self, walls):
        sides = SIDES[: 2 * self.dim]
        if isinstance(walls, str):
            walls = {side: walls for side in sides}
        elif isinstance(walls, dict):
            unknown = set(walls) - set(sides)
            if unknown:
                raise ValueError(f"unknown wall side(s) {sorted(unknown)}: sides are {', '.join(sides)}")
            walls = {side: walls.get(side, "separate") for side in sides}
        else:
            raise ValueError("walls must be a mode name or a dict {side: mode}")
        for side, mode in walls.items():
            if mode not in MODES:
                raise ValueError(f"wall {side}: unknown mode {mode!r}; choose one of {', '.join(MODES)}")
        return tuple((MODES[walls[f"-{a}"]], MODES[walls[f"+{a}"]]) for a in "xyz"[: self.dim])

    def _lattice_spacing(self, ppc: int) -> float:
        k = round(ppc ** (1 / self.dim))
        if self.sampling == "lattice" and k**self.dim != ppc:
            raise ValueError(f"particles_per_cell={ppc} is not a perfect {'square' if self.dim == 2 else 'cube'}"
                             f"; lattice sampling needs k^{self.dim} (e.g. {2**self.dim} or {3**self.dim}),"
                             " or use sampling='random'")
        return self.dx / (ppc ** (1 / self.dim))

    def add_body(self, shape: Shape, material: Material, velocity=None, angular_velocity=None,
                 name: str | None = None, particles_per_cell: int | None = None, actuator=None,
                 fibre=None, initial_stress: str | None = None) -> Body:
        """Fill `shape` with particles of `material`.

        Args:
            velocity: (dim,) m/s, or a callable f(x: (n, dim)) -> (n, dim) m/s; default at rest.
            angular_velocity: rad/s about the body's centroid, (3,) in 3D or a scalar in 2D; added to
                `velocity` (and the initial APIC velocity gradient is set to match).
            name: used in errors and trajectories; default "body<k>".
            particles_per_cell: overrides the scene's default.
            actuator: actuator group of the body's particles (ChainQueen-style muscles): an int >= 0
                for the whole body, or a callable f(x: (n, dim)) -> (n,) ints (−1: passive). Group g
                adds the active Kirchhoff stress a_g (F f)(F f)ᵀ, with a_g (Pa) given per frame to
                `run(actuation=...)` / `rollout(actuation=...)` as column g: a_g > 0 is tension along
                the fibre (the body contracts, like a muscle), a_g < 0 pushes it longer.
            fibre: (dim,) fibre direction f of the actuated particles (normalized here).
            initial_stress: None (default): unstressed (F = I, a fluid's J = 1), so a body at rest under
                gravity first falls and compresses. Or the stress that carries the body's weight, so that
                it starts at rest (simcore.initial_stress, docs/hydrostatic.md): "hydrostatic" (Fluid:
                the pressure of its equation of state, solving dp/dz = ρ(p) g from each column's free
                surface); "geostatic" (any supported material; uniaxial strain: a body confined
                laterally, by walls or ground); "uniaxial_stress" (solids with free sides: σ_hh = 0).
                Balanced on the grid as the solver computes it; not for Neural materials, and not
                differentiable with respect to the material's parameters.
        Raises:
            ValueError: a particle outside the domain or inside the wall layer, or bad parameters.
        """
        if not isinstance(shape, Shape):
            raise TypeError(f"shape must be a simcore.shapes shape, got {type(shape).__name__}")
        if not isinstance(material, Material):
            raise TypeError(f"material must be a simcore.materials material, got {type(material).__name__}")
        name = name or f"body{len(self.bodies)}"
        if any(b.name == name for b in self.bodies):
            raise ValueError(f"a body named {name!r} already exists")
        initial_stress = initial_stress_check(initial_stress, material, name, self.gravity)
        ppc = particles_per_cell or self.particles_per_cell
        spacing = self._lattice_spacing(ppc)
        x, volume = shape.sample(self.dim, spacing, sampling=self.sampling,
                                 seed=self.seed + len(self.bodies), particles_per_volume=ppc / self.dx**self.dim)
        if len(x) == 0:
            raise ValueError(f"body {name!r}: the shape holds no particle at this resolution "
                             f"(spacing {spacing:.4g} m); make it larger or raise grid / particles_per_cell")
        check_inside(name, x, self.grid)
        v, velocity_tensor = initial_velocity(self.dim, name, x, velocity)
        C = np.zeros((len(x), self.dim, self.dim))
        spin = None
        if angular_velocity is not None:
            spin, W = rigid_spin(self.dim, name, x, volume, angular_velocity)
            v = v + spin
            C += W
        if not np.all(np.isfinite(v)):
            raise ValueError(f"body {name!r}: initial velocity has non-finite values")
        params = material.particle_parameters(x)
        groups, fibres = actuator_groups(self.dim, name, material, x, actuator, fibre)
        body = Body(name, shape, material, x, v, C, volume, params, velocity_tensor, groups, fibres, spin,
                    initial_stress)
        if initial_stress is not None:  # one at-rest state for all the scene's stressed bodies
            others = [b.at_rest for b in self.bodies if b.at_rest is not None]
            body.at_rest = others[0] if others else SceneAtRest(self)
        self.bodies.append(body)
        self._model = self._state = None  # rebuilt on the next run, which starts from the initial state
        return body

    @property
    def n_actuators(self) -> int:
        """Number of actuator groups (columns of `actuation`)."""
        groups = [b.actuator_group.max() for b in self.bodies if b.actuator_group is not None]
        return int(max(groups) + 1) if groups else 0

    def add_collider(self, collider: Collider) -> Collider:
        """Add an analytic collider (simcore.colliders); returns it."""
        if not isinstance(collider, Collider):
            raise TypeError(f"expected a simcore.colliders collider, got {type(collider).__name__}")
        collider.pack(self.dim), collider.origin(self.dim)  # validate now, not mid-run
        self.colliders.append(collider)
        self._model = self._state = None
        return collider

    @property
    def n_particles(self) -> int:
        return sum(b.n_particles for b in self.bodies)

    @property
    def materials(self) -> list[Material]:
        """Distinct material objects, in order of first use (material_id indexes this list)."""
        out = []
        for b in self.bodies:
            if not any(m is b.material for m in out):
                out.append(b.material)
        return out

    def _concat(self, key):
        return np.concatenate([getattr(b, key) for b in self.bodies])

    # ------------------------------------------------------------------------------------------
    # The model and the state
    # ------------------------------------------------------------------------------------------
    @property
    def model(self) -> Model:
        """The frozen description of the scene (simcore.mpm.model), built on first use after a change:
        a body or collider added, or a value it is made from changed since (a material parameter or
        collider friction tensor updated in place by an optimiser, a parameter reassigned), so that
        `run` sees the values `rollout` sees. A callable parameter is compared by identity."""
        key = self._model_inputs()
        if self._model is None or not _same(key, self._model_key):
            self._model, self._model_key = self._build_model(), key
        return self._model

    def _model_inputs(self) -> tuple:
        """Gravity, wall friction and the field values of every material and collider as they are now
        (tensors and arrays copied): what tells a stale model. (Gravity reassigned between runs, e.g. a
        tilting-table experiment, was ignored once a model had been built.)"""
        return (_snapshot(self.gravity), self.wall_friction, self.transfer, self.flip_damping) + tuple(
            tuple(_snapshot(getattr(o, f.name)) for f in dataclasses.fields(o)) for o in self.materials + self.colliders)

    def _require_bodies(self):
        if not self.bodies:
            raise ValueError("the scene has no bodies: add one with scene.add_body(shape, material)")

    def _build_model(self) -> Model:
        self._require_bodies()
        materials = self.materials
        for b in self.bodies:  # re-read: a parameter tensor may have been updated in place since add_body
            b.params = b.material.particle_parameters(b.x)
        par = {k: np.concatenate([b.params[k] for b in self.bodies]) for k in self.bodies[0].params}
        volume = self._concat("volume")
        per_body = lambda f: np.concatenate([np.full(b.n_particles, f(i, b)) for i, b in enumerate(self.bodies)])  # noqa: E731
        actuated = self.n_actuators > 0
        d = self.dim
        return Model(
            dim=d, grid=self.grid, gravity=self.gravity.copy(), wall_modes=self.wall_modes,
            wall_friction=self.wall_friction, mass=par["density"] * volume, volume=volume, mu=par["mu"],
            lam=par["lam"], plastic=par["plastic"], wave_speed=par["wave_speed"],
            kind=per_body(lambda i, b: b.material.kind).astype(np.int32),
            body_id=per_body(lambda i, b: i),
            material_id=per_body(lambda i, b: next(k for k, m in enumerate(materials) if m is b.material)),
            body_names=tuple(b.name for b in self.bodies), material_names=tuple(m.label for m in materials),
            n_actuators=self.n_actuators,
            actuator_group=np.concatenate([b.actuator_group if b.actuator_group is not None
                                           else np.full(b.n_particles, -1, np.int32) for b in self.bodies])
            if actuated else None,
            fibre=np.concatenate([b.fibre if b.fibre is not None else np.zeros((b.n_particles, d))
                                  for b in self.bodies]) if actuated else None,
            colliders=tuple(self.colliders),
            collider_params=np.stack([c.pack(d) for c in self.colliders]) if self.colliders else None,
            collider_friction=np.array([c.friction_value for c in self.colliders]) if self.colliders else None,
            collider_origin=np.stack([c.origin(d) for c in self.colliders]) if self.colliders else None,
            stress_hook=self._neural_stress(), extra_kinds=self.extra_kinds, transfer=self.transfer,
            flip_damping=self.flip_damping)

    def _neural_stress(self):
        """The torch stress hook for the scene's Neural bodies (None if there are none)."""
        if not any(b.material.kind == NEURAL for b in self.bodies):
            return None
        from .neural import NeuralStress

        parts, start = [], 0
        for b in self.bodies:
            if b.material.kind == NEURAL:
                parts.append((b.material, np.arange(start, start + b.n_particles),
                              b.material.particle_features(b.x)))
            start += b.n_particles
        return NeuralStress(parts)

    @property
    def body_id(self) -> np.ndarray:
        """(n,) index of each particle's body in `bodies`."""
        return self.model.body_id

    @property
    def material_id(self) -> np.ndarray:
        """(n,) index of each particle's material in `materials`."""
        return self.model.material_id

    def initial_state(self) -> dict[str, np.ndarray]:
        """The bodies' initial particle state {x, v, C, F, Jp} (float64)."""
        return self._initial().particles()

    def _initial(self) -> State:
        """The initial state from the bodies as they are now (tensors given for positions or velocities
        read at their current values, like `rollout` reads them)."""
        self._require_bodies()
        origin = np.stack([c.origin(self.dim) for c in self.colliders]) if self.colliders else None
        x = np.concatenate([b.initial_positions(self.grid) for b in self.bodies])
        v = np.concatenate([b.initial_velocities() for b in self.bodies])
        state = State.at_rest_shape(x, v, self._concat("C"), origin)
        start = 0
        for b in self.bodies:  # stressed bodies start compressed (simcore.initial_stress)
            if b.at_rest is not None:
                part = b.at_rest.of(b)
                state.F[start:start + b.n_particles], state.Jp[start:start + b.n_particles] = part.F, part.Jp
            start += b.n_particles
        return state

    @property
    def state(self) -> State:
        """The current state (simcore.mpm.state.State): where the last `run` left it, or, until a run
        advances it (and after `reset`, `add_body`, `add_collider`), the initial state as the bodies
        give it now, made anew at each access (so that a tensor updated in place reaches the next
        run, as it reaches `rollout`): change the bodies, not this object, to change where a run
        starts."""
        return self._state if self._state is not None else self._initial()

    @property
    def time(self) -> float:
        """The current time, s."""
        return 0.0 if self._state is None else self._state.time

    def reset(self):
        """Return every particle and collider to its initial state and the clock to 0."""
        self._state = None

    def build(self):
        """The compiled solver (shared by every scene of this configuration: simcore.mpm.cache) with
        this scene loaded and its current state in slot 0. `run` and `rollout` need no call to it;
        it is for code that drives the kernels directly (benchmarks, kernel-level tests)."""
        be = backend.active()
        model = self.model
        solver = cache.solver_for(model.configuration(be.precision, be.arch), model.n_particles, SLOTS)
        solver.load(model)
        solver.import_slot(0, self.state)
        return solver

    # ------------------------------------------------------------------------------------------
    # Running
    # ------------------------------------------------------------------------------------------
    def stable_dt(self) -> float:
        """The CFL stability bound (s) for the current state: dx / max(wave speed + |v|)."""
        solver = self.build()
        solver.diagnose(0, 0.0, 1.0)
        return self.dx / max(float(solver.max_signal_speed[0]), 1e-30)

    def run(self, frames: int, frame_dt: float = 1 / 60, record=("x",), progress: bool | None = None,
            actuation=None) -> Trajectory:
        """Advance `frames` frames of `frame_dt` seconds from the current state.

        Args:
            record: fields to keep per frame, from ("x", "v", "F", "C", "Jp"); x is always kept.
            progress: None (default): once the run takes > 2 s, a bar on a terminal or in a notebook,
                else a line every 10 s on stderr (simcore.progress); True: from the start; False: nothing,
                not even the note that kernels are compiling.
            actuation: (frames, actuator groups) activations in Pa, held for each frame.
        Returns:
            Trajectory with frames + 1 states (frame 0 = the state before the run).
        Raises:
            SimulationError: non-finite state or a particle leaving the grid; `.trajectory` holds the
                frames computed before the failure, and the scene stays at the last good frame.
        """
        if not (isinstance(frames, (int, np.integer)) and frames >= 0):
            raise ValueError(f"frames must be a non-negative integer, got {frames!r}")
        if not (frame_dt > 0 and math.isfinite(frame_dt)):
            raise ValueError(f"frame_dt must be a positive number of seconds, got {frame_dt!r}")
        model, state = self.model, self.state
        try:
            return simulate(model, state, frames, frame_dt, dt=self.dt, cfl=self.cfl, record=record,
                            progress=progress, actuation=actuation)
        finally:  # once advanced, the scene holds the state where the run left it, also after a failure
            if state.time > 0:
                self._state = state

    # ------------------------------------------------------------------------------------------
    # Differentiable rollouts (simcore.torch)
    # ------------------------------------------------------------------------------------------
    def rollout(self, frames: int, frame_dt: float = 1 / 60, record=("x",), checkpoint_every: int | None = None,
                actuation=None, controller=None, start: dict | None = None):
        """Run `frames` frames from the initial state with gradients: returns a simcore.torch.Rollout
        whose x (and v, if recorded) are torch tensors on the autograd graph of every tensor the scene
        was given (material parameters, initial velocities).

        Under torch.no_grad() nothing is stored for backward. The substep schedule is fixed for the
        whole rollout: dt from `Scene(dt=...)`, or the CFL choice for the initial state.

        Args:
            record: ("x",) or ("x", "v").
            checkpoint_every: substeps per checkpointed segment, k. Default: every substep kept
                (k = T, nothing recomputed in backward) when they fit in
                simcore.torch.KEEP_ALL_BUDGET (1 GiB), else about √T: memory grows like n·(T/k + k).
            actuation: (frames, actuator groups) activations in Pa (a torch tensor for gradients).
            controller: closed-loop control, instead of `actuation`: a callable
                `controller(t, obs) -> (actuator groups,)` activations (Pa) for the frame starting at
                time t (s), given obs = {"x": (n, dim), "v": (n, dim)} tensors of the current state (on
                the autograd graph: a torch.nn.Module controller's parameters get gradients). Called
                once per frame; the rollout is checkpointed per frame.
            start: start from this particle state instead of the bodies' initial state: {x, v, C, F, Jp}
                (any subset; the rest from the bodies), (n, ...) tensors (on the graph, if they are) or
                arrays with `run`'s conventions, e.g. one frame of a recorded Trajectory (teacher forcing).

        Differentiable inputs (torch tensors given to the scene): material parameters (scalar or one
        per particle, Neural materials' modules and features), initial velocities, actuation or the
        controller, kinematic colliders' velocities and friction coefficients.
        """
        from . import torch as sctorch

        if not (isinstance(frames, (int, np.integer)) and frames >= 1):
            raise ValueError(f"frames must be a positive integer, got {frames!r}")
        if not (frame_dt > 0 and math.isfinite(frame_dt)):
            raise ValueError(f"frame_dt must be a positive number of seconds, got {frame_dt!r}")
        return sctorch.rollout(self, frames, frame_dt, record, checkpoint_every, actuation, controller, start)

    def close(self):
        """Forget the scene's model and state. Compiled solvers are shared between scenes and stay
        cached: `simcore.mpm.cache.clear()` frees them."""
        self._model = None
        self._state = None
