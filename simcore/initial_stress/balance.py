"""Step 3 of the at-rest state (simcore.initial_stress): the discrete equilibrium on the grid. The forces
of the solver's first substep from rest on the grid nodes the particles reach (`stencils`), the nodes
the boundaries hold (`Boundaries`, `collider_distance`), and the Newton iteration on the overburden that
balances the free ones (`_GridBalance`); `solve` runs steps 1 to 3."""

from __future__ import annotations

import dataclasses

import numpy as np

from ..colliders import BOX, CYLINDER, MODES, PLANE, SPHERE
from ..mpm.config import BOUND
from .columns import overburden, vertical
from .laws import _cat

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
