"""Scene: bodies, colliders and walls in the unit domain [0, 1]^dim; builds the particle set, owns the
MPM solver, and runs it frame by frame into a Trajectory.

    scene = Scene(dim=3, grid=64)
    scene.add_body(shapes.Box(...), materials.NeoHookean(...), velocity=(0, -1, 0))
    scene.add_collider(colliders.Plane(point=(0, 0.05, 0), normal=(0, 1, 0), friction=0.3))
    traj = scene.run(frames=100, frame_dt=1 / 60)
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time as _time
from typing import Any, Callable

import numpy as np
from tqdm.auto import tqdm

from . import backend
from .colliders import MODES, Collider
from .errors import SimulationError
from .materials import NEURAL, Fluid, Material
from .mpm.solver import BOUND, MPMSolver
from .shapes import Shape
from .trajectory import RECORDABLE, Trajectory

SIDES = ("-x", "+x", "-y", "+y", "-z", "+z")


@dataclasses.dataclass
class Body:
    """A body added to a scene: its particles' initial state and material (read-only after adding)."""

    name: str
    shape: Shape
    material: Material
    x: np.ndarray          # (n, dim) m
    v: np.ndarray          # (n, dim) m/s
    C: np.ndarray          # (n, dim, dim) 1/s, the initial velocity gradient (APIC)
    volume: np.ndarray     # (n,) m^dim
    params: dict           # per-particle material arrays (simcore.materials.Material.particle_parameters)
    velocity_tensor: Any = None  # the torch tensor given as velocity, if any: (dim,) or (n, dim) m/s
    actuator_group: np.ndarray | None = None  # (n,) int, −1 for passive particles
    fibre: np.ndarray | None = None           # (n, dim) unit fibre directions of actuated particles

    @property
    def n_particles(self) -> int:
        return len(self.x)


def _skew(omega, dim):
    """Velocity gradient of a rigid rotation: v = ω × r  ⇒  ∇v = [ω]×."""
    if dim == 2:
        w = float(np.asarray(omega).reshape(-1)[0])
        return np.array([[0.0, -w], [w, 0.0]])
    wx, wy, wz = np.asarray(omega, dtype=float).reshape(3)
    return np.array([[0.0, -wz, wy], [wz, 0.0, -wx], [-wy, wx, 0.0]])


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
    """

    def __init__(self, dim: int = 3, grid: int = 64, gravity=None, dt: float | None = None, cfl: float = 0.4,
                 walls: str | dict = "separate", wall_friction: float = 0.0,
                 particles_per_cell: int | None = None, sampling: str = "lattice", seed: int = 0):
        if dim not in (2, 3):
            raise ValueError(f"dim must be 2 or 3, got {dim!r}")
        if not (isinstance(grid, (int, np.integer)) and grid >= 2 * BOUND + 2):
            raise ValueError(f"grid must be an integer >= {2 * BOUND + 2} cells per axis, got {grid!r}")
        self.dim, self.grid = dim, int(grid)
        self.dx = 1.0 / self.grid
        g = (0.0, -9.8, 0.0)[:dim] if gravity is None else gravity
        self.gravity = np.asarray(g, dtype=np.float64).reshape(-1)
        if self.gravity.shape != (dim,) or not np.all(np.isfinite(self.gravity)):
            raise ValueError(f"gravity must be {dim} finite numbers (m/s²), got {g!r}")
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
        self.bodies: list[Body] = []
        self.colliders: list[Collider] = []
        self.solver: MPMSolver | None = None
        self.time = 0.0
        self._cur = 0
        self._built_generation = None

    # ------------------------------------------------------------------------------------------
    # Building
    # ------------------------------------------------------------------------------------------
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
                 fibre=None) -> Body:
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
        ppc = particles_per_cell or self.particles_per_cell
        spacing = self._lattice_spacing(ppc)
        x, volume = shape.sample(self.dim, spacing, sampling=self.sampling,
                                 seed=self.seed + len(self.bodies), particles_per_volume=ppc / self.dx**self.dim)
        if len(x) == 0:
            raise ValueError(f"body {name!r}: the shape holds no particle at this resolution "
                             f"(spacing {spacing:.4g} m); make it larger or raise grid / particles_per_cell")
        self._check_inside(name, x)
        v = np.zeros_like(x)
        C = np.zeros((len(x), self.dim, self.dim))
        velocity_tensor = None
        if type(velocity).__module__.startswith("torch"):
            velocity_tensor = velocity
            velocity = velocity.detach().cpu().numpy()
            if velocity.shape == x.shape:
                velocity = (lambda values: (lambda _x: values))(velocity)
        if velocity is not None:
            if callable(velocity):
                v = np.asarray(velocity(x.copy()), dtype=np.float64)
                if v.shape != x.shape:
                    raise ValueError(f"body {name!r}: velocity callable returned shape {v.shape}, expected {x.shape}")
            else:
                vel = np.asarray(velocity, dtype=np.float64).reshape(-1)
                if vel.shape != (self.dim,):
                    raise ValueError(f"body {name!r}: velocity must have {self.dim} components, got {velocity!r}")
                v = np.broadcast_to(vel, x.shape).copy()
        if angular_velocity is not None:
            omega = np.asarray(angular_velocity, dtype=np.float64).reshape(-1)
            if omega.shape != ((1,) if self.dim == 2 else (3,)):
                raise ValueError(f"body {name!r}: angular_velocity must be a scalar in 2D or (3,) in 3D (rad/s)")
            W = _skew(omega, self.dim)
            center = np.average(x, axis=0, weights=volume)
            v = v + (x - center) @ W.T
            C += W
        if not np.all(np.isfinite(v)):
            raise ValueError(f"body {name!r}: initial velocity has non-finite values")
        params = material.particle_parameters(x)
        groups, fibres = self._actuators(name, material, x, actuator, fibre)
        body = Body(name, shape, material, x, v, C, volume, params, velocity_tensor, groups, fibres)
        self.bodies.append(body)
        self.solver = None  # rebuilt on the next run
        return body

    def _actuators(self, name, material, x, actuator, fibre):
        if actuator is None:
            if fibre is not None:
                raise ValueError(f"body {name!r}: fibre given without actuator")
            return None, None
        groups = np.asarray(actuator(x.copy()) if callable(actuator) else np.full(len(x), actuator))
        if groups.shape != (len(x),) or not np.issubdtype(groups.dtype, np.integer) or groups.min() < -1:
            raise ValueError(f"body {name!r}: actuator must be an int >= 0 or a callable returning (n,) ints "
                             ">= -1 (-1: passive)")
        if material.kind == Fluid.kind:
            raise ValueError(f"body {name!r}: a Fluid cannot carry actuators (no fibre to pull)")
        f = np.asarray(fibre if fibre is not None else np.zeros(self.dim), dtype=np.float64).reshape(-1)
        if f.shape != (self.dim,) or not np.linalg.norm(f) > 0:
            raise ValueError(f"body {name!r}: an actuated body needs fibre=(dim,) non-zero direction")
        return groups.astype(np.int32), np.broadcast_to(f / np.linalg.norm(f), x.shape).copy()

    @property
    def n_actuators(self) -> int:
        """Number of actuator groups (columns of `actuation`)."""
        groups = [b.actuator_group.max() for b in self.bodies if b.actuator_group is not None]
        return int(max(groups) + 1) if groups else 0

    def _check_actuation(self, actuation, frames):
        """(frames, n_actuators) activations, Pa; zeros when the scene has actuators and none is given."""
        shape = (frames, self.n_actuators)
        if actuation is None:
            return np.zeros(shape)
        if self.n_actuators == 0:
            raise ValueError("actuation given but no body has an actuator (add_body(..., actuator=g, fibre=...))")
        if tuple(actuation.shape) != shape:
            raise ValueError(f"actuation must have shape (frames, actuator groups) = {shape}, got "
                             f"{tuple(actuation.shape)}")
        return actuation

    def _check_inside(self, name, x):
        lo, hi = BOUND * self.dx, 1 - BOUND * self.dx
        outside = (x < 0) | (x > 1)
        if outside.any():
            p = int(np.argmax(outside.any(1)))
            raise ValueError(f"body {name!r} reaches outside the domain [0, 1]^{self.dim} (particle at "
                             f"{np.round(x[p], 4).tolist()}); move or shrink it")
        in_wall = (x < lo) | (x > hi)
        if in_wall.any():
            p = int(np.argmax(in_wall.any(1)))
            raise ValueError(f"body {name!r} overlaps the wall layer (particle at {np.round(x[p], 4).tolist()}); "
                             f"particles must lie in [{lo:.4g}, {hi:.4g}] m on every axis ({BOUND} cells "
                             f"of {self.dx:.4g} m at each wall); move or shrink it")

    def add_collider(self, collider: Collider) -> Collider:
        """Add an analytic collider (simcore.colliders); returns it."""
        if not isinstance(collider, Collider):
            raise TypeError(f"expected a simcore.colliders collider, got {type(collider).__name__}")
        collider.pack(self.dim), collider.origin(self.dim)  # validate now, not mid-run
        self.colliders.append(collider)
        self.solver = None
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

    def build(self) -> MPMSolver:
        """Allocate fields and upload the initial state (done by `run` when needed)."""
        if self.solver is not None and self._built_generation == backend.generation():
            return self.solver
        if self.solver is not None:
            self.solver.destroy()
        self.solver = self.new_solver(slots=3)
        self._built_generation = backend.generation()
        self.reset()
        return self.solver

    def new_solver(self, slots: int, needs_grad: bool = False) -> MPMSolver:
        """A solver for this scene's particles with `slots` state copies, constants and colliders
        uploaded (state not uploaded). Used by `build` (3 slots) and differentiable rollouts."""
        if not self.bodies:
            raise ValueError("the scene has no bodies: add one with scene.add_body(shape, material)")
        be = backend.active()
        materials = self.materials
        kinds = sorted({b.material.kind for b in self.bodies})
        self.body_id = np.concatenate([np.full(b.n_particles, i) for i, b in enumerate(self.bodies)])
        self.material_id = np.concatenate(
            [np.full(b.n_particles, next(k for k, m in enumerate(materials) if m is b.material))
             for b in self.bodies])
        for b in self.bodies:  # re-read: a parameter tensor may have been updated in place since add_body
            b.params = b.material.particle_parameters(b.x)
        solver = MPMSolver(self.dim, self.grid, self.n_particles, slots, kinds, self.wall_modes,
                           self.wall_friction, [(c.kind, MODES[c.mode]) for c in self.colliders], be.real,
                           serial_scatter=be.arch == "cpu", serial_adjoint=be.arch == "cpu", needs_grad=needs_grad,
                           n_actuators=self.n_actuators, stress_hook=self._neural_stress())
        par = {k: np.concatenate([b.params[k] for b in self.bodies]) for k in self.bodies[0].params}
        volume = self._concat("volume")
        f = be.np_real
        solver.set_mass(par["density"] * volume)
        solver.volume.from_numpy(volume.astype(f))
        solver.mu.from_numpy(par["mu"].astype(f))
        solver.lam.from_numpy(par["lam"].astype(f))
        solver.plastic.from_numpy(par["plastic"].astype(f))
        solver.wave_speed.from_numpy(par["wave_speed"].astype(f))
        solver.kind.from_numpy(np.concatenate([np.full(b.n_particles, b.material.kind)
                                               for b in self.bodies]).astype(np.int32))
        solver.gravity.from_numpy(self.gravity[None].astype(f))
        if solver.n_actuators:
            solver.actuator_group.from_numpy(np.concatenate(
                [b.actuator_group if b.actuator_group is not None else np.full(b.n_particles, -1, np.int32)
                 for b in self.bodies]))
            fibres = [b.fibre if b.fibre is not None else np.zeros((b.n_particles, self.dim)) for b in self.bodies]
            solver.fibre.from_numpy(np.concatenate(fibres).astype(f))
        self._upload_colliders(solver)
        return solver

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

    def _upload_colliders(self, solver):
        """Colliders at their initial positions and time-0 velocities."""
        if not self.colliders:
            return
        d, f, slots = self.dim, backend.active().np_real, solver.slots
        origin = np.stack([c.origin(d) for c in self.colliders])
        velocity = np.stack([c.velocity_at(0.0, d) for c in self.colliders])
        solver.set_substep_inputs(0, origin=np.broadcast_to(origin, (slots,) + velocity.shape),
                                  velocity=np.broadcast_to(velocity, (slots,) + velocity.shape))
        solver.collider_params.from_numpy(np.stack([c.pack(d) for c in self.colliders]).astype(f))
        solver.collider_friction.from_numpy(np.array([c.friction_value for c in self.colliders], f))

    def initial_state(self) -> dict[str, np.ndarray]:
        """The bodies' initial particle state {x, v, C, F, Jp} (float64)."""
        n, d = self.n_particles, self.dim
        return {"x": self._concat("x"), "v": self._concat("v"), "C": self._concat("C"),
                "F": np.broadcast_to(np.eye(d), (n, d, d)).copy(), "Jp": np.ones(n)}

    def reset(self):
        """Return every particle and collider to its initial state and the clock to 0."""
        solver = self.solver or self.build()
        solver.import_slot(0, self.initial_state())
        self._cur = 0
        self.time = 0.0
        self._upload_colliders(solver)
        self._collider_origin = np.stack([c.origin(self.dim) for c in self.colliders]) if self.colliders else None

    # ------------------------------------------------------------------------------------------
    # Running
    # ------------------------------------------------------------------------------------------
    def stable_dt(self) -> float:
        """The CFL stability bound (s) for the current state: dx / max(wave speed + |v|)."""
        solver = self.solver or self.build()
        solver.diagnose(self._cur, 0.0, 1.0)
        return self.dx / max(float(solver.max_signal_speed[0]), 1e-30)

    def _plan_substeps(self, frame_dt, frame) -> tuple[int, float]:
        """Substeps for the next frame: equal steps of at most dt (or the CFL choice)."""
        speed = float(self.solver.max_signal_speed[0]) + float(np.linalg.norm(self.gravity)) * frame_dt
        bound = self.dx / max(speed, 1e-30)
        if self.dt is None:
            step = self.cfl * bound
        else:
            if self.dt > bound:
                msg = (f"dt={self.dt:.4g} s exceeds the CFL stability bound {bound:.4g} s "
                       f"(dx / (wave speed + |v| + |g|·frame_dt) = {self.dx:.4g} m / {speed:.4g} m/s)")
                if frame == 1:
                    raise ValueError(msg + "; lower dt, or pass dt=None to choose it automatically")
                raise SimulationError(msg + f" at frame {frame}: the motion became too fast for this dt; "
                                      "lower dt or use dt=None", frame=frame)
            step = self.dt
        n = max(1, math.ceil(frame_dt / step * (1 - 1e-12)))
        return n, frame_dt / n

    def _read(self, name):
        return self.solver.get(name, self._cur).astype(np.float64)

    def run(self, frames: int, frame_dt: float = 1 / 60, record=("x",), progress: bool | None = None,
            actuation=None) -> Trajectory:
        """Advance `frames` frames of `frame_dt` seconds from the current state.

        Args:
            record: fields to keep per frame, from ("x", "v", "F", "C", "Jp"); x is always kept.
            progress: show a progress bar (None: only on a terminal, and only if the run takes > 2 s).
            actuation: (frames, actuator groups) activations in Pa, held for each frame.
        Returns:
            Trajectory with frames + 1 states (frame 0 = the state before the run).
        Raises:
            SimulationError: non-finite state or a particle leaving the grid; `.trajectory` holds the
                frames computed before the failure.
        """
        if not (isinstance(frames, (int, np.integer)) and frames >= 0):
            raise ValueError(f"frames must be a non-negative integer, got {frames!r}")
        if not (frame_dt > 0 and math.isfinite(frame_dt)):
            raise ValueError(f"frame_dt must be a positive number of seconds, got {frame_dt!r}")
        record = tuple(dict.fromkeys(("x",) + tuple(record)))
        unknown = set(record) - set(RECORDABLE)
        if unknown:
            raise ValueError(f"cannot record {sorted(unknown)}: choose from {RECORDABLE}")
        stale = self.solver is None or self._built_generation != backend.generation()
        solver = self.build() if stale else self.solver
        actuation = np.asarray(self._check_actuation(actuation, frames), dtype=np.float64)
        lo, hi = 1.5 * self.dx, 1 - 1.5 * self.dx  # the stencil of a particle beyond these leaves the grid
        backup = solver.slots - 1
        history = {name: [self._read(name)] for name in record}
        times, substeps, dts = [self.time], [], []
        kinematic = [i for i, c in enumerate(self.colliders) if c.kinematic]
        solver.diagnose(self._cur, lo, hi)
        if solver.bad_count[0] > 0:
            raise SimulationError("the scene's current state is already non-finite or off the grid; "
                                  "call scene.reset()", frame=0)

        def partial():
            return self._trajectory(history, times, substeps, dts, frame_dt)

        show = progress if progress is not None else sys.stderr.isatty()
        bar = tqdm(total=frames, unit="frame", delay=2.0, disable=not show, leave=False)
        try:
            for frame in range(1, frames + 1):
                try:
                    n_sub, dt = self._plan_substeps(frame_dt, frame)
                except SimulationError as err:
                    err.trajectory = partial()
                    raise
                solver.set_dt(dt)
                if solver.n_actuators:  # held for the frame: every slot
                    solver.set_substep_inputs(0, activation=np.broadcast_to(actuation[frame - 1],
                                                                            (solver.slots, solver.n_actuators)))
                solver.copy_state(self._cur, backup)
                origins = self._collider_origin.copy() if kinematic else None
                t0 = self.time
                for k in range(n_sub):
                    self._substep(kinematic, t0 + k * dt, dt)
                solver.diagnose(self._cur, lo, hi)
                if solver.bad_count[0] > 0:
                    self._locate_failure(frame, n_sub, dt, t0, backup, origins, kinematic, lo, hi, partial)
                self.time = t0 + frame_dt
                for name in record:
                    history[name].append(self._read(name))
                times.append(self.time)
                substeps.append(n_sub)
                dts.append(dt)
                bar.update(1)
        finally:
            bar.close()
        return partial()

    def _substep(self, kinematic, t, dt):
        solver = self.solver
        if kinematic:  # colliders where they are now, moving at their velocity at time t
            vel = np.stack([c.velocity_at(t, self.dim) for c in self.colliders])
            solver.set_substep_inputs(self._cur, origin=self._collider_origin[None], velocity=vel[None])
        solver.substep(self._cur, 1 - self._cur)
        self._cur = 1 - self._cur
        if kinematic:
            self._collider_origin = self._collider_origin + dt * vel

    def _locate_failure(self, frame, n_sub, dt, t0, backup, origins, kinematic, lo, hi, partial):
        """Re-run the failed frame from its start, checking after every substep, and raise."""
        solver = self.solver
        solver.copy_state(backup, 0)
        self._cur = 0
        if origins is not None:
            self._collider_origin = origins.copy()
        bad_substep = n_sub - 1
        for k in range(n_sub):
            self._substep(kinematic, t0 + k * dt, dt)
            solver.diagnose(self._cur, lo, hi)
            if solver.bad_count[0] > 0:
                bad_substep = k
                break
        p = int(solver.first_bad[0])
        count = int(solver.bad_count[0])
        body = self.bodies[int(self.body_id[p])].name if p < self.n_particles else None
        x = self.solver.get("x", self._cur)[p] if p < self.n_particles else None
        # Leave the scene at the last good state (the start of the failed frame).
        solver.copy_state(backup, 0)
        self._cur = 0
        if origins is not None:
            self._collider_origin = origins
        raise SimulationError(
            f"simulation failed at frame {frame}, substep {bad_substep} of {n_sub} (dt={dt:.3g} s): "
            f"{count} particle(s) of body {body!r} became non-finite or left the grid (first: particle "
            f"{p}, x={np.round(x, 4).tolist() if x is not None else None}). Lower dt or cfl, check the "
            "material parameters (a stiff material needs smaller steps), or enlarge the domain. "
            "The frames before the failure are in error.trajectory.",
            frame=frame, substep=bad_substep, body=body, trajectory=partial())

    def _trajectory(self, history, times, substeps, dts, frame_dt) -> Trajectory:
        per_frame = {name: np.stack(values) for name, values in history.items()}
        meta = {"dim": self.dim, "grid": self.grid, "dx": self.dx, "frame_dt": frame_dt,
                "substeps": list(substeps), "dt": list(dts), "gravity": self.gravity.tolist(),
                "precision": backend.active().precision, "arch": backend.active().arch}
        return Trajectory(t=np.asarray(times), body_id=self.body_id.copy(), material_id=self.material_id.copy(),
                          mass=(self._concat("volume") * np.concatenate([b.params["density"] for b in self.bodies])),
                          volume=self._concat("volume"), body_names=[b.name for b in self.bodies],
                          material_names=[m.label for m in self.materials], meta=meta, **per_frame)

    # ------------------------------------------------------------------------------------------
    # Differentiable rollouts (simcore.torch)
    # ------------------------------------------------------------------------------------------
    def rollout(self, frames: int, frame_dt: float = 1 / 60, record=("x",), checkpoint_every: int | None = None,
                actuation=None, controller=None):
        """Run `frames` frames from the initial state with gradients: returns a simcore.torch.Rollout
        whose x (and v, if recorded) are torch tensors on the autograd graph of every tensor the scene
        was given (material parameters, initial velocities).

        Under torch.no_grad() nothing is stored for backward. The substep schedule is fixed for the
        whole rollout: dt from `Scene(dt=...)`, or the CFL choice for the initial state.

        Args:
            record: ("x",) or ("x", "v").
            checkpoint_every: substeps per checkpointed segment, k. Default: every substep kept
                (k = T, nothing recomputed in backward) when they fit in
                simcore.torch.KEEP_ALL_BUDGET (512 MiB), else about √T: memory grows like n·(T/k + k).
            actuation: (frames, actuator groups) activations in Pa (a torch tensor for gradients).
            controller: closed-loop control, instead of `actuation`: a callable
                `controller(t, obs) -> (actuator groups,)` activations (Pa) for the frame starting at
                time t (s), given obs = {"x": (n, dim), "v": (n, dim)} tensors of the current state (on
                the autograd graph: a torch.nn.Module controller's parameters get gradients). Called
                once per frame; the rollout is checkpointed per frame.

        Differentiable inputs (torch tensors given to the scene): material parameters (scalar or one
        per particle, Neural materials' modules and features), initial velocities, actuation or the
        controller, kinematic colliders' velocities and friction coefficients.
        """
        from . import torch as sctorch

        if not (isinstance(frames, (int, np.integer)) and frames >= 1):
            raise ValueError(f"frames must be a positive integer, got {frames!r}")
        if not (frame_dt > 0 and math.isfinite(frame_dt)):
            raise ValueError(f"frame_dt must be a positive number of seconds, got {frame_dt!r}")
        return sctorch.rollout(self, frames, frame_dt, record, checkpoint_every, actuation, controller)

    def _schedule(self, frames, frame_dt, velocity=None):
        """Fixed substeps for a rollout, from the CFL bound of the *current* parameters: a material
        tensor or initial velocity tensor may have changed since add_body (an optimiser step).
        velocity: (n, dim) current initial velocities (default: those given to add_body)."""
        from .diff.rollout import Schedule

        wave = np.concatenate([b.material.particle_parameters(b.x)["wave_speed"] for b in self.bodies])
        v = np.concatenate([b.v for b in self.bodies]) if velocity is None else velocity
        speeds = wave + np.linalg.norm(v, axis=1)
        speed = float(speeds.max()) + float(np.linalg.norm(self.gravity)) * frame_dt
        bound = self.dx / max(speed, 1e-30)
        if self.dt is not None and self.dt > bound:
            raise ValueError(f"dt={self.dt:.4g} s exceeds the CFL stability bound {bound:.4g} s; lower dt")
        step = self.dt if self.dt is not None else self.cfl * bound
        n = max(1, math.ceil(frame_dt / step * (1 - 1e-12)))
        return Schedule(substeps=[n] * frames, dts=[frame_dt / n] * frames)

    def _gradient_solver(self, slots: int) -> MPMSolver:
        # Reuse a solver with at least `slots` slots: its kernels are compiled (minutes in 3D).
        cached = getattr(self, "_grad_solver", None)
        if cached is not None and cached.slots >= slots and self._grad_generation == backend.generation():
            self._upload_colliders(cached)
            return cached
        if cached is not None and self._grad_generation == backend.generation():
            cached.destroy()
        self._grad_solver = self.new_solver(slots, needs_grad=True)
        self._grad_generation = backend.generation()
        return self._grad_solver

    def _torch_inputs(self, dtype):
        """x0, v0 (n, dim), mass, mu, lam (n,), plastic (n, 3) as torch tensors."""
        import torch

        xs, vs, masses, mus, lams, plastics = [], [], [], [], [], []
        for b in self.bodies:
            tensor = getattr(b.shape, "tensor", None)  # Points given as a tensor
            if tensor is not None:
                if tuple(tensor.shape) != b.x.shape:
                    raise ValueError(f"body {b.name!r}: its points tensor now has shape {tuple(tensor.shape)}, "
                                     f"but the body was built with {b.x.shape}; rebuild the scene to change "
                                     "the particle count")
                # The tensor may have moved since add_body (an optimiser step): check it again.
                self._check_inside(b.name, tensor.detach().cpu().numpy().astype(np.float64))
            xs.append(torch.as_tensor(b.x, dtype=dtype) if tensor is None else tensor.to(dtype))
            if b.velocity_tensor is not None:
                vt = b.velocity_tensor.to(dtype)
                v = vt.expand(b.n_particles, self.dim) if vt.dim() == 1 else vt
                if b.C.any():  # angular velocity given as numpy on top of a tensor velocity
                    v = v + torch.as_tensor(b.v - b.velocity_tensor.detach().cpu().numpy(), dtype=dtype)
            else:
                v = torch.as_tensor(b.v, dtype=dtype)
            vs.append(v)
            p = b.material.torch_parameters(b.x, dtype)
            masses.append(p["density"] * torch.as_tensor(b.volume, dtype=dtype))
            mus.append(p["mu"]), lams.append(p["lam"]), plastics.append(p["plastic"])
        cat = torch.cat
        return cat(xs), cat(vs), cat(masses), cat(mus), cat(lams), cat(plastics)

    def close(self):
        """Free the scene's device memory (it is rebuilt if run again)."""
        if self.solver is not None:
            self.solver.destroy()
            self.solver = None
