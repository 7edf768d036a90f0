"""What a compiled MPM solver depends on, as plain data (no Taichi): its `Configuration`, the key
under which compiled solvers are shared (simcore.mpm.cache), and its `Capacity`, which may grow.

Two scenes with equal configurations run on the same compiled kernels, whatever their shapes, particle
counts (up to the capacity), material values, gravity, wall friction or collider positions: those
are data uploaded to the solver's fields, not constants compiled into its kernels.
"""

from __future__ import annotations

import dataclasses

from ..materials import FIXED_COROTATED, FLUID, MU_I, NEO_HOOKEAN, NEURAL, PLASTICINE, SAND, SNOW

# Materials whose update needs the SVD of F_trial. Fixed corotated needs only its closest rotation,
# found without an SVD (simcore.mpm.constitutive.closest_rotation): in 3D five times cheaper.
SVD_KINDS = (SNOW, SAND, PLASTICINE, MU_I)
ROTATION_KINDS = (FIXED_COROTATED,)

# Wall thickness in grid cells: particles stay in [BOUND dx, 1 − BOUND dx], and the nodes with index
# <= BOUND or >= grid − BOUND are wall nodes, the nodes on the walls' faces included, so that a body
# lying against a wall (a pool filling the domain's floor) is held there and can start at rest.
BOUND = 3

# A parallel loop on the CPU costs tens of microseconds before its first iteration (its thread-pool
# round trip), more than a serial pass over a small grid's active box takes. Grids of at most this
# many nodes run their passes (clearing, grid update, saving and restoring) serially on the CPU: on
# 2 cores a whole 32³ grid update was faster serially than in parallel, and the active box is usually
# much smaller. `python benchmarks/cpu_loops.py` measures both (docs/benchmarks.md).
SERIAL_GRID_NODES = 32 ** 3

# The partitioned scatter (simcore.mpm.step) on the CPU: one run of particles per thread, at most
# MAX_PARTS, each into its own copy of the grid while the copies fit PARTS_BYTES; only for scenes of at
# least PARTITION_MIN_PARTICLES particles (below, the serial loop is as fast: measured by
# `python benchmarks/scatter_modes.py`, docs/benchmarks.md).
MAX_PARTS = 8
PARTS_BYTES = 256 << 20
PARTITION_MIN_PARTICLES = 8_000


@dataclasses.dataclass(frozen=True)
class Configuration:
    """Everything compiled into a solver's kernels.

    dim: 2 or 3. grid: cells per axis over the unit domain. kinds: sorted material kind codes present.
    wall_modes: ((lo, hi) per axis) boundary mode codes (simcore.colliders.MODES).
    colliders: ((kind, mode) per collider). n_actuators: actuator groups.
    precision: "f32" | "f64". arch: "cpu" | "cuda" | "vulkan". needs_grad: adjoint fields and kernels.
    flip: the FLIP-blended transfer (`Scene(transfer="flip")`).
    """

    dim: int
    grid: int
    kinds: tuple[int, ...]
    wall_modes: tuple[tuple[int, int], ...]
    colliders: tuple[tuple[int, int], ...]
    n_actuators: int
    precision: str
    arch: str
    needs_grad: bool = False
    flip: bool = False

    def with_grad(self, needs_grad: bool) -> Configuration:
        return dataclasses.replace(self, needs_grad=needs_grad)

    def slot_bytes(self, particles: int) -> int:
        """Bytes per slot of a gradient solver of this configuration with room for `particles`: the
        particle state and its adjoint, the kept per-particle temporaries (the APIC affine matrix, and
        F_trial with the decompositions the materials need) and the kept grid ((2d + 1) floats a node, 4d + 1
        with the FLIP transfer)."""
        d = self.dim
        state = 2 * d + 2 * d * d + 1
        kept = d * d
        if self.split_deform:
            kept += d * d + (2 * d * d + d if self.uses_svd else 0) + (d * d if self.uses_rotation else 0)
            kept += 2 * d * d if self.has_neural else 0
        node = 2 * d + 1 + (2 * d if self.flip else 0)
        return self.itemsize * (particles * (2 * state + kept) + self.grid ** d * node)

    @property
    def itemsize(self) -> int:
        return 8 if self.precision == "f64" else 4

    # -- material-dependent code paths ------------------------------------------------------
    @property
    def has_solids(self) -> bool:
        return any(k != FLUID for k in self.kinds)

    @property
    def has_neural(self) -> bool:
        return NEURAL in self.kinds

    @property
    def uses_svd(self) -> bool:
        """Whether any material present needs the SVD of F_trial."""
        return any(k in SVD_KINDS for k in self.kinds)

    @property
    def uses_rotation(self) -> bool:
        """Whether any material present needs the rotation closest to F_trial."""
        return any(k in ROTATION_KINDS for k in self.kinds)

    @property
    def uses_Jp(self) -> bool:
        """Jp is state only for snow (plastic J) and fluid (J); other materials never touch it."""
        return SNOW in self.kinds or FLUID in self.kinds

    # -- how the kernels run ------------------------------------------------------------------
    @property
    def serial_scatter(self) -> bool:
        """Run P2G (and the transfers' adjoints) as serial loops on the CPU: a serial scatter's atomic
        adds become plain adds (Taichi demotes them), while parallel float atomics are
        compare-and-swap loops, several times slower (docs/benchmarks.md)."""
        return self.arch == "cpu"

    def scatter_parts(self, threads: int) -> int:
        """Grid copies of the partitioned scatter for a CPU of `threads` threads: one per thread (at
        most MAX_PARTS) while they fit PARTS_BYTES; 1 (no partitioning) off the CPU or on one thread."""
        if not self.serial_scatter or threads < 2:
            return 1
        node_bytes = (self.dim + 1) * (8 if self.precision == "f64" else 4)
        fit = PARTS_BYTES // (node_bytes * self.grid ** self.dim)
        parts = min(threads, MAX_PARTS, fit)
        return parts if parts >= 2 else 1

    @property
    def serial_grid(self) -> bool:
        """Passes over the grid run serially (see SERIAL_GRID_NODES)."""
        return self.serial_scatter and self.grid ** self.dim <= SERIAL_GRID_NODES

    @property
    def split_deform(self) -> bool:
        """F_trial and its decomposition are kept per particle, between kernels: on the
        differentiable path (Taichi cannot differentiate ti.svd or an iteration, so `deform` has a
        hand-written adjoint) and whenever a Neural material's stress is computed by torch."""
        return (self.needs_grad and (self.uses_svd or self.uses_rotation)) or self.has_neural

    @property
    def closed_stress_adjoint(self) -> bool:
        """The reverse sweep computes the stress update's adjoint in closed form inside the transfers'
        gather (simcore.mpm.stress_adjoint) instead of by Taichi's autodiff of `p2g_stress`, one pass
        over the particles fewer: gradient solvers whose materials are neo-Hookean and fluid only,
        without actuators (their activations' adjoints sum over particles) or Neural materials."""
        return (self.needs_grad and set(self.kinds) <= {NEO_HOOKEAN, FLUID} and self.n_actuators == 0)

    @property
    def split_p2g(self) -> bool:
        """P2G in two halves (per-particle stress into `affine`, then the scatter): always in
        gradient solvers (the scatter has a hand-written adjoint), and in serial-scatter forward
        solvers whose materials need a decomposition, so that the costly half runs in parallel."""
        return self.needs_grad or (self.serial_scatter and (self.uses_svd or self.uses_rotation))

    @property
    def p2g_mode(self) -> str:
        """How a substep runs P2G. A gradient solver's forward takes a forward solver's path where it
        can, so that a rollout costs what `run` costs: "fused" (`p2g`, which also stores `affine` in
        gradient solvers), "split" (`p2g_stress`, `p2g_scatter`), or "deform" (`deform_and_stress`,
        `p2g_scatter`: gradient solvers with decompositions)."""
        decomposes = self.uses_svd or self.uses_rotation
        if self.has_neural:
            return "split" if self.split_p2g else "fused"
        if self.split_deform:
            return "deform"
        if decomposes and self.serial_scatter:
            return "split"
        return "fused"


@dataclasses.dataclass(frozen=True)
class Capacity:
    """Sizes a solver's fields are allocated for: particles (a scene may use fewer) and particle
    state slots (3 for `run`; one per stored substep plus one for a differentiable segment)."""

    particles: int
    slots: int

    def holds(self, other: Capacity) -> bool:
        return self.particles >= other.particles and self.slots >= other.slots

    @staticmethod
    def for_particles(n: int, slots: int, needs_grad: bool) -> Capacity:
        """Room for n particles, rounded up to a power of two so that scenes of similar sizes share one
        compiled solver. A forward solver (3 slots, about 0.5 kB per particle in 3D) gets twice that,
        and at least 4,096; a gradient solver's memory grows with its slots, so it gets what n needs
        (at least 1,024): the keep-every-substep choice (simcore.torch) is made on this size."""
        if needs_grad:
            return Capacity(max(1024, _power_of_two(n)), slots)
        return Capacity(max(4096, _power_of_two(2 * n)), slots)


def _power_of_two(n: int) -> int:
    """The smallest power of two >= n."""
    return 1 << max(n - 1, 0).bit_length()
