"""The MPM solver: the fields and kernels of one `Configuration`, shared by every scene that has it.

A solver is compiled once per configuration (simcore.mpm.cache) and serves any model of that
configuration that fits its capacity: `load(model)` uploads the model's constants, `import_slot` /
`export_slot` move particle state between host and device, and `substep` runs one MLS-MPM substep
(simcore.mpm.step). Gradient solvers add the adjoint kernels (simcore.mpm.adjoint).

Particle state lives in `slots` copies (x[s, p], ...): forward simulation ping-pongs between slots 0 and 1
(simcore.simulate); a differentiable rollout uses one slot per stored substep (simcore.diff.rollout).
"""


import numpy as np
import taichi as ti

from . import constitutive
from .adjoint import AdjointKernels
from .config import BOUND, PARTITION_MIN_PARTICLES, Capacity, Configuration
from .fields import FieldLayout
from .model import Model
from .state import STATE, State
from .step import ForwardKernels

__all__ = ["MPMSolver", "BOUND"]


@ti.data_oriented
class MPMSolver(FieldLayout, ForwardKernels, AdjointKernels):
    """Fields and kernels for one configuration, with room for `capacity` particles and slots.

    The configuration's static choices are copied to attributes (`kinds`, `split_deform`, ...) that
    the kernels read with `ti.static`; see simcore.mpm.config for what each means.
    """

    def __init__(self, config: Configuration, capacity: Capacity):
        cfg = self.config = config
        self.capacity = capacity
        self.dim, self.n_grid, self.slots = cfg.dim, cfg.grid, capacity.slots
        self.dx, self.inv_dx = 1.0 / cfg.grid, float(cfg.grid)
        self.kinds, self.wall_modes, self.colliders = cfg.kinds, cfg.wall_modes, cfg.colliders
        self.n_actuators, self.needs_grad, self.flip = cfg.n_actuators, cfg.needs_grad, cfg.flip
        self.real = ti.f64 if cfg.precision == "f64" else ti.f32
        self._np_real = np.float64 if cfg.precision == "f64" else np.float32
        self.serial_scatter = self.serial_adjoint = cfg.serial_scatter
        self.serial_grid = cfg.serial_grid
        self.max_parts = cfg.scatter_parts(ti.lang.impl.current_cfg().cpu_max_num_threads)
        self.parts = 1  # runs of the partitioned scatter for the loaded scene (1: not partitioned)
        self.has_solids, self.has_neural, self.uses_Jp = cfg.has_solids, cfg.has_neural, cfg.uses_Jp
        self.uses_svd, self.uses_rotation = cfg.uses_svd, cfg.uses_rotation
        self.split_deform, self.split_p2g, self.p2g_mode = cfg.split_deform, cfg.split_p2g, cfg.p2g_mode
        self.closed_stress_adjoint = cfg.closed_stress_adjoint
        # State adjoints in two slots (simcore.mpm.adjoint `_adj`) where no autodiff kernel reads them.
        self.ring_adjoints = cfg.closed_stress_adjoint
        # Newton's iteration for the closest rotation stops at a step δ with |δ|² below this (its error
        # is then about |δ|²/2, below the precision's round-off).
        self.rotation_tol = 1e-16 if cfg.precision == "f64" else 1e-7
        self.allocate(cfg, capacity)
        self.box_lo[None] = [0] * cfg.dim  # the whole grid, until the first scatter
        self.box_hi[None] = [cfg.grid] * cfg.dim
        self.model: Model | None = None  # the model whose constants are uploaded
        self.n_particles = 0
        self.stress_hook = None
        self.resident = None  # what a differentiable segment left in the slots (simcore.diff.rollout)
        self._host_inputs = {}  # numpy mirrors of the per-slot input fields
        self._constants = {}  # name -> the array `set_constants` last uploaded

    # ------------------------------------------------------------------------------------------
    # Uploading a model and its inputs
    # ------------------------------------------------------------------------------------------
    def load(self, model: Model) -> None:
        """Make `model` the solver's scene: upload its constants, walls, gravity and colliders (at
        their initial positions). Nothing is uploaded when it is loaded already."""
        if self.model is model:
            return
        if model.configuration(self.config.precision, self.config.arch, self.needs_grad) != self.config:
            raise ValueError("this model's configuration differs from the solver's")
        if model.n_particles > self.capacity.particles:
            raise ValueError(f"{model.n_particles} particles do not fit a solver built for "
                             f"{self.capacity.particles}")
        self.model = None  # a failed upload leaves no model loaded
        self.resident = None
        self.n_particles = model.n_particles
        self.n_active[None] = model.n_particles
        self.parts = self.max_parts if model.n_particles >= PARTITION_MIN_PARTICLES else 1
        self._constants = {}
        self.set_constants(mass=model.mass, volume=model.volume, mu=model.mu, lam=model.lam,
                           plastic=model.plastic, wave_speed=model.wave_speed, kind=model.kind,
                           collider_friction=model.collider_friction if model.colliders else None)
        if self.n_actuators:
            self._upload(self.actuator_group, model.actuator_group)
            self._upload(self.fibre, model.fibre)
        self.gravity.from_numpy(model.gravity[None].astype(self._np_real))
        self.wall_friction[None] = model.wall_friction
        self.flip_damping[None] = model.flip_damping
        self.stress_hook = model.stress_hook
        if model.colliders:
            self.collider_params.from_numpy(model.collider_params.astype(self._np_real))
            self.set_collider_path(model.collider_origin, np.stack([c.velocity_at(0.0, self.dim)
                                                                     for c in model.colliders]))
        self.model = model

    def _upload(self, field, values: np.ndarray) -> None:
        """Write per-particle values (n, ...) into a capacity-sized field (the rest is left zero)."""
        dtype = np.int32 if field.dtype == ti.i32 else self._np_real
        padded = np.zeros((self.capacity.particles,) + values.shape[1:], dtype)
        padded[:len(values)] = values
        field.from_numpy(padded)

    # Relative grid-mass floor. A node at the edge of a body can receive a mass that is a product of
    # three tiny B-spline weights; v = p / m is fine there, but its adjoint −(∂L/∂v)·p / m² overflows
    # in f32 and turns every gradient into NaN. Nodes lighter than this fraction of the lightest
    # particle are dropped: their weight in any particle's gather is below the fraction too, so the
    # change is below round-off (1e-9 vs f32's 6e-8; 1e-15 vs f64's 1e-16 · stencil sums).
    MASS_FLOOR = {"f32": 1e-9, "f64": 1e-15}

    PER_PARTICLE = ("mass", "volume", "mu", "lam", "plastic", "wave_speed", "kind")

    def set_constants(self, **arrays) -> None:
        """Upload per-particle constants by field name (mass (n,) kg, volume (n,) m^dim, mu and lam (n,)
        Pa, plastic (n, 3), wave_speed (n,) m/s, kind (n,) int; collider_friction (nc,); None skips one),
        only if they differ from the arrays last uploaded here: a differentiable rollout loads them for
        every segment. The per-particle ones go up together in one kernel (`_load_constants`: one
        compiled kernel per solver, where a field's from_numpy compiles one per field); `load` gives
        them all first. The mass also sets the grid-mass floor (`MASS_FLOOR`)."""
        last = self._constants
        changed = {name: value for name, value in arrays.items() if value is not None and not (
            name in last and last[name].shape == value.shape and np.array_equal(last[name], value))}
        for name, value in changed.items():
            last[name] = np.array(value, copy=True)
        if "collider_friction" in changed:
            self.collider_friction.from_numpy(np.asarray(changed["collider_friction"], self._np_real))
        if any(name in changed for name in self.PER_PARTICLE):
            real = [np.ascontiguousarray(last[name], self._np_real) for name in self.PER_PARTICLE[:-1]]
            self._load_constants(*real, np.ascontiguousarray(last["kind"], np.int32))
        if "mass" in changed:
            positive = last["mass"][last["mass"] > 0]
            floor = float(positive.min()) if positive.size else 0.0
            self.mass_floor[None] = self.MASS_FLOOR[self.config.precision] * floor

    @ti.kernel
    def _load_constants(self, mass: ti.types.ndarray(), volume: ti.types.ndarray(), mu: ti.types.ndarray(),
                        lam: ti.types.ndarray(), plastic: ti.types.ndarray(), wave_speed: ti.types.ndarray(),
                        kind: ti.types.ndarray()):
        for p in range(self.n_active[None]):
            self.mass[p], self.volume[p], self.mu[p], self.lam[p] = mass[p], volume[p], mu[p], lam[p]
            for i in ti.static(range(3)):
                self.plastic[p][i] = plastic[p, i]
            self.wave_speed[p], self.kind[p] = wave_speed[p], kind[p]

    def set_dt(self, dt: float) -> None:
        """The substep (s). Writing a field from Python launches a kernel: skipped when unchanged."""
        if dt != getattr(self, "_dt_host", None):
            self.dt[None] = dt
            self._dt_host = dt

    def set_substep_inputs(self, first: int, origin=None, velocity=None, activation=None) -> None:
        """Collider origins (L, nc, dim) m, velocities (L, nc, dim) m/s and activations (L, groups) Pa
        for the substeps starting from slots first .. first + L − 1 (one upload per field)."""
        for field, value in ((self.collider_origin, origin), (self.collider_velocity, velocity),
                             (getattr(self, "activation", None), activation)):
            if value is None or field is None:
                continue
            shape = field.shape + ((field.n,) if hasattr(field, "n") else ())
            host = self._host_inputs.setdefault(id(field), np.zeros(shape, self._np_real))
            host[first:first + len(value)] = value
            field.from_numpy(host)

    def set_collider_path(self, origin: np.ndarray, velocity: np.ndarray) -> None:
        """Colliders at `origin` (nc, dim) m moving at `velocity` (nc, dim) m/s, in every slot."""
        shape = (self.slots,) + origin.shape
        self.set_substep_inputs(0, origin=np.broadcast_to(origin, shape), velocity=np.broadcast_to(velocity, shape))

    def substep(self, s_in: int, s_out: int, keep: bool = False):
        """One MLS-MPM substep of length `self.dt[None]` (s) from slot s_in to slot s_out; with `keep`
        (gradient solvers that keep temporaries), save its temporaries to slot s_in."""
        if self.p2g_mode == "deform":
            self.deform_and_stress(s_in, s_out)
        else:
            if self.split_deform:  # Neural materials: torch's stress reads F_trial
                self.deform(s_in)
            if self.has_neural:  # its graph is recorded for the reverse sweep that keeping announces
                self.stress_hook.stress(self, s_in if keep else None)
            if self.p2g_mode == "split":
                self.p2g_stress(s_in, s_out)
        if self.p2g_mode == "fused":
            self.p2g(s_in, s_out, self.serial_scatter, self.parts)
        else:
            self.p2g_scatter(s_in, self.serial_scatter, self.parts)
        self.g2p(s_in, s_out, keep)

    @property
    def fuses_transfers(self) -> bool:
        """Whether `fused_substeps` may run: a forward solver whose P2G is one kernel ("fused" mode),
        scattering in parallel (a serial scatter would serialize the fused gather too)."""
        return not self.needs_grad and self.p2g_mode == "fused" and (self.parts > 1 or not self.serial_scatter)

    def fused_substeps(self, s: int, n: int, inputs) -> int:
        """n substeps of length `self.dt[None]` from slot s on a forward solver's two slots, each
        substep's g2p fused with the next one's p2g (`g2p_p2g`: n + 1 launches instead of 2n); the same
        arithmetic as n calls of `substep` (equal to round-off: the compiler may contract the fused
        loop's operations differently; tests/mpm/test_partitioned_scatter.py). inputs(k, slot) sets substep k's per-substep
        inputs (colliders) in `slot` before it runs. Returns the slot holding the result."""
        inputs(0, s)
        self.p2g(s, 1 - s, self.serial_scatter, self.parts)
        for k in range(1, n):
            inputs(k, 1 - s)
            self.g2p_p2g(s, 1 - s, self.serial_scatter, self.parts)
            s = 1 - s
        self.g2p(s, 1 - s, False)
        return 1 - s

    # ------------------------------------------------------------------------------------------
    # Bookkeeping kernels
    # ------------------------------------------------------------------------------------------
    @ti.kernel
    def diagnose(self, s: ti.i32, lo: ti.f32, hi: ti.f32):
        """Max signal speed (wave speed + |v|) and particles whose state is non-finite or outside
        [lo, hi] (the region where the quadratic stencil stays on the grid)."""
        self.max_signal_speed[0] = 0
        self.bad_count[0] = 0
        self.first_bad[0] = self.n_active[None]
        for p in range(self.n_active[None]):
            x, v = self.x[s, p], self.v[s, p]
            total = x.sum() + v.sum() + self.F[s, p].sum() + self.C[s, p].sum() + self.Jp[s, p]
            finite = total == total and ti.abs(total) < 1e30
            inside = (x >= lo).all() and (x <= hi).all()
            if not (finite and inside):
                ti.atomic_add(self.bad_count[0], 1)
                ti.atomic_min(self.first_bad[0], p)
            else:
                Jp = 1.0
                if ti.static(self.uses_Jp):
                    Jp = self.Jp[s, p]
                factor = constitutive.wave_speed_factor(self.kinds, self.kind[p], Jp, self.plastic[p])
                ti.atomic_max(self.max_signal_speed[0], self.wave_speed[p] * factor + v.norm())

    @ti.kernel
    def total_grid_mass(self) -> ti.f64:
        total = ti.cast(0.0, ti.f64)
        for I in ti.grouped(self.grid_mass):
            total += self.grid_mass[I]
        return total

    # ------------------------------------------------------------------------------------------
    # Host transfers
    # ------------------------------------------------------------------------------------------
    @ti.kernel
    def _export_slot(self, s: ti.i32, x: ti.types.ndarray(), v: ti.types.ndarray(), C: ti.types.ndarray(),
                     F: ti.types.ndarray(), Jp: ti.types.ndarray()):
        for p in range(self.n_active[None]):
            for i in ti.static(range(self.dim)):
                x[p, i] = self.x[s, p][i]
                v[p, i] = self.v[s, p][i]
                for j in ti.static(range(self.dim)):
                    C[p, i, j] = self.C[s, p][i, j]
                    F[p, i, j] = self.F[s, p][i, j]
            Jp[p] = self.Jp[s, p]

    @ti.kernel
    def _import_slot(self, s: ti.i32, x: ti.types.ndarray(), v: ti.types.ndarray(), C: ti.types.ndarray(),
                     F: ti.types.ndarray(), Jp: ti.types.ndarray()):
        for p in range(self.n_active[None]):
            for i in ti.static(range(self.dim)):
                self.x[s, p][i] = x[p, i]
                self.v[s, p][i] = v[p, i]
                for j in ti.static(range(self.dim)):
                    self.C[s, p][i, j] = C[p, i, j]
                    self.F[s, p][i, j] = F[p, i, j]
            self.Jp[s, p] = Jp[p]

    def empty_state(self) -> dict:
        """Uninitialised arrays {x, v, C, F, Jp} shaped for the loaded model, in the solver's precision."""
        n, d, dtype = self.n_particles, self.dim, self._np_real
        return {"x": np.empty((n, d), dtype), "v": np.empty((n, d), dtype), "C": np.empty((n, d, d), dtype),
                "F": np.empty((n, d, d), dtype), "Jp": np.empty(n, dtype)}

    def export_slot(self, s: int) -> dict:
        """State of slot s as numpy arrays {x, v, C, F, Jp} in the solver's precision (raw: a fluid's
        F is not expanded from J here; see simcore.mpm.state.output_conventions)."""
        out = self.empty_state()
        self._export_slot(s, *(out[k] for k in STATE))
        return out

    def import_slot(self, s: int, state: dict | State) -> None:
        """Write slot s from arrays {x, v, C, F, Jp} (a dict as `export_slot` returns, or a State)."""
        get = state.__getitem__ if isinstance(state, dict) else lambda k: getattr(state, k)
        self._import_slot(s, *(np.ascontiguousarray(get(k), dtype=self._np_real) for k in STATE))

    def per_particle(self, field) -> np.ndarray:
        """A per-particle field's values for the loaded model's particles: (n, ...)."""
        return field.to_numpy()[:self.n_particles]
