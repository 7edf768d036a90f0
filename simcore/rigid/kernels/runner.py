"""Packing a World for the step kernel (solve.rollout) and running it: tables of bodies and contact
candidates, per-world workspaces (kept between runs of the same batch size), numpy out."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ... import backend
from .. import joint_outputs
from .adjoint import adjoint
from .common import CPU_TASK_ITEMS
from .contact import (
    BALL_BOX,
    BOX_FACE,
    CF,
    CF_WIDTH,
    CT_WIDTH,
    DECISIONS,
    EDGE_EDGE,
    PLANE_POINT,
    SEGMENT_FACE,
    SEGMENT_SEGMENT,
    SPHERE_SPHERE,
)
from .joints import JC_WIDTH, JO_WIDTH, LW_WIDTH, RW_WIDTH
from .solve import BW_WIDTH, EL_WIDTH, INFO, INFO_WIDTH, SLOTS, rollout
from .vjp import contact_lagrangian, dynamics_lagrangian, joint_lagrangian

ti = backend.ti

# Contact models the kernel evaluates (collision.CONTACT_MODELS names), in candidate order.
KERNEL_MODELS = {"plane": PLANE_POINT, "sphere-sphere": SPHERE_SPHERE, "ball-box": BALL_BOX,
                 "box-face": BOX_FACE, "segment-segment": SEGMENT_SEGMENT, "edge-edge": EDGE_EDGE,
                 "segment-face": SEGMENT_FACE}
# Candidates per pair (collision.CONTACT_MODELS slots): the box–box face manifold has 24, the capsule–box
# face contact two.
SLOTS_PER_PAIR = {"box-face": 24, "segment-face": 2}


# Backends the kernel runs on: everywhere Taichi runs, given 64-bit floats (the interior-point solve needs
# them; on a Vulkan device without shaderFloat64 World.stepper raises BackendError). On Vulkan each step is
# one launch, and a step that Mesa's lavapipe cuts short (its cap of 65,535 loop iterations per shader
# invocation, see solve.canary) raises instead of returning incomplete numbers.
KERNEL_ARCHS = ("cpu", "cuda", "vulkan")


def unsupported(world) -> str | None:
    """Why the kernel cannot step this world (None when it can)."""
    arch = backend.active().arch
    if arch not in KERNEL_ARCHS:
        return f"the {arch} backend"
    if not backend.has_f64_arithmetic():
        return f"a {arch} device without 64-bit floats"
    for name, pairs in world.candidates.by_model.items():
        if len(pairs) and name not in KERNEL_MODELS:
            return f"{name} contacts"
    return None


@dataclass
class KernelRun:
    """What a run returns (numpy): frames (T+1, B, bodies, 13: x, q, v, ω body frame); info (T, B,
    solve.INFO columns); flags (T, B, 2C + L) candidates' active then impact flags, then the joint limits'
    active flags; solution (T, B, N) the step solutions in the kernel's layout followed by each candidate's 8 decision numbers
    (only when asked)."""
    frames: np.ndarray
    info: np.ndarray
    flags: np.ndarray
    solution: np.ndarray | None

    def converged(self):
        return self.info[..., INFO["converged"]] > 0

    def advanced(self):
        return self.info[..., INFO["advanced"]] > 0


class KernelRunner:
    """The World's tables and a workspace for B worlds."""

    def __init__(self, world, worlds: int):
        backend.active()  # Taichi must be running (CPU f32 unless the user chose otherwise; rigid is f64)
        self.generation = backend.generation()
        self.B = int(worlds)
        self.nb = len(world.bodies)
        cand = world.candidates
        self.C = sum(len(p) * SLOTS_PER_PAIR.get(name, 1) for name, p in cand.by_model.items()
                     if name in KERNEL_MODELS)
        js = world.joint_set
        self.J, self.m, self.n1, self.L = (0, 0, 0, 0) if js is None else (js.count, js.rows, len(js.coord_joint),
                                                                          js.limits)
        self.N = 6 * self.nb + 8 * self.C + self.m + 2 * self.L
        B, nb, C, N = self.B, self.nb, self.C, self.N
        nK = 6 * nb + self.m   # the reduced system: velocities, then the joint impulses
        Cw, Jw, Rw = max(C, 1), max(self.J, 1), max(self.m + self.n1, 1)
        f64 = ti.f64
        self.ct = ti.ndarray(f64, (B, Cw, CT_WIDTH))
        self.wv = ti.ndarray(f64, (B, SLOTS, max(N, 1)))
        self.G = ti.ndarray(f64, (B, Cw, 3, 12))
        self.bw = ti.ndarray(f64, (B, nb, BW_WIDTH))
        self.H = ti.ndarray(f64, (B, nK, nK))
        self.xr = ti.ndarray(f64, (B, nK))
        self.piv = ti.ndarray(ti.i32, (B, 2 * nK + 1))  # pivots, lu_factor's scratch, the fallback flag
        self.el = ti.ndarray(f64, (B, Cw, EL_WIDTH))
        self.jo = ti.ndarray(f64, (B, Jw, JO_WIDTH))
        self.jd = ti.ndarray(f64, (B, Rw, 12))
        self.je = ti.ndarray(f64, (B, Rw, 12))
        self.jc = ti.ndarray(f64, (B, max(self.n1, 1), JC_WIDTH))
        self.lw = ti.ndarray(f64, (B, max(self.L, 1), LW_WIDTH))
        self.tables(world)

    def tables(self, world):
        """Body, candidate and joint tables from the World's current parameters."""
        prm = world.params()
        nb, C = self.nb, self.C
        cand_i = np.zeros((max(C, 1), 5), np.int32)  # model, body a, body b, slot, in the LU pattern
        row = 0
        self.model_rows = {}
        for name, pairs in world.candidates.by_model.items():
            if name not in KERNEL_MODELS or not len(pairs):
                continue
            self.model_rows[name] = (row, len(pairs))
            slots = SLOTS_PER_PAIR.get(name, 1)
            a, b = pairs.a.numpy().repeat(slots), pairs.b.numpy().repeat(slots)
            rows = slice(row, row + len(a))
            cand_i[rows, 0], cand_i[rows, 1] = KERNEL_MODELS[name], a
            cand_i[rows, 2] = np.where((name == "plane") | (b >= nb), nb, b)
            cand_i[rows, 3] = np.tile(np.arange(slots), len(pairs))
            row += len(a)
        body, cf, jt_f, rw_f = (t.detach().numpy() for t in float_tables(world, prm))
        body[:, 10] = np.linalg.eigvalsh(prm.inertia.detach().numpy()).max(-1)  # row scale (not in r)
        self.mean_mass = float(body[:, 0].mean())
        self.body, self.cand, self.cf = body, cand_i, cf
        self.joint_tables(world)
        self.jt_f, self.rw_f = jt_f, rw_f
        self.sym, coupled = symbolic_lu(nb, self.jt_i, self.rw_i, self.m, self.n1)
        # a contact between two bodies is in the LU pattern when a joint already couples them (else a
        # step where it is active factorizes with partial pivoting: solve.assemble)
        a, b = cand_i[:C, 1], cand_i[:C, 2]
        cand_i[:C, 4] = (a >= nb) | (b >= nb) | (a == b) | coupled[np.minimum(a, nb - 1), np.minimum(b, nb - 1)]
        self.fingerprint = fingerprint(world)

    def joint_tables(self, world):
        """jt_i (per joint: parent and child rows) and rw_i (equality, coordinate and limit rows: their
        joint or coordinate), kernels/joints.py; the float columns come from float_tables."""
        js = world.joint_set
        J, m, n1, L = self.J, self.m, self.n1, self.L
        self.jt_i = np.zeros((max(J, 1), 2), np.int32)
        self.rw_i = np.zeros((max(m + n1 + L, 1), 1), np.int32)
        self.actuated = np.zeros(0, np.int64)
        if js is None:
            return
        self.jt_i[:J, 0], self.jt_i[:J, 1] = js.parent.numpy(), js.child.numpy()
        self.rw_i[:m, 0] = js.eq_joint.numpy()
        self.rw_i[m:m + n1, 0] = js.coord_joint.numpy()
        self.rw_i[m + n1:m + n1 + L, 0] = js.limit_coord.numpy()
        self.actuated = js.actuated_coord.numpy()

    def run(self, world, state, controls, *, kappa, stop_on_failure=True, keep_solution=False, warm=False,
            actuation=None):
        """Steps of every world from `state` (x, q, v, ω body frame; torch (B, bodies, ·)) under controls
        (T, B, bodies, 6), or an int T (no forces). warm: start the first step from the previous run's
        last contact solution (a run continued step by step). actuation: (T, B, actuators) N·m or N per
        actuated joint, or None. Returns a KernelRun.

        Inputs and outputs are numpy arrays, which Taichi reads and writes in place on the CPU (copied
        to and from the device on a GPU); the workspaces stay on the device."""
        if isinstance(controls, int):
            T, ctrl, has_ctrl = controls, np.zeros((1, 1, 1, 1)), 0
        else:
            T, has_ctrl = int(controls.shape[0]), 1
            ctrl = np.ascontiguousarray(controls.detach().numpy(), dtype=np.float64)
        B, nb, C, N = self.B, self.nb, self.C, self.N
        tau, has_tau = np.zeros((1, 1, 1)), 0
        if actuation is not None and len(self.actuated):
            tau, has_tau = np.zeros((T, B, self.n1)), 1
            tau[..., self.actuated] = actuation.detach().numpy()
        s0 = np.ascontiguousarray(torch.cat([t.detach() for t in state], -1).numpy(), dtype=np.float64)
        frames = np.zeros((T + 1, B, nb, 13))
        frames[0] = s0
        info = np.zeros((max(T, 1), B, INFO_WIDTH))
        flags = np.zeros((max(T, 1), B, max(2 * C + self.L, 1)))
        sol = np.zeros((max(T, 1), B, N + DECISIONS * C) if keep_solution else (1, 1, 1))
        g = world.gravity.detach().numpy()
        # On Vulkan one launch per step: Mesa's lavapipe caps a shader invocation at 65,535 loop
        # iterations in all (see solve.canary), which a run of many steps exceeds.
        per_launch = 1 if backend.active().arch == "vulkan" else max(T, 1)
        t = 0
        with backend.quick_compile():
            while t < T:
                t1 = min(T, t + per_launch)
                steps = slice(t, t1)
                rollout(frames[t], frames[t:t1 + 1], ctrl[steps] if has_ctrl else ctrl, has_ctrl,
                        tau[steps] if has_tau else tau, has_tau, self.body, self.cand, self.cf, self.jt_i, self.jt_f,
                        self.rw_i, self.rw_f, self.ct, self.wv, self.G, self.bw, self.H, self.xr, self.piv, self.sym, self.el,
                        self.jo, self.jd, self.je, self.jc, self.lw, info[steps], sol[steps] if keep_solution else sol,
                        flags[steps], 0, t1 - t, nb, C, self.J, self.m, self.n1, self.L, world.dt, float(g[0]),
                        float(g[1]), float(g[2]), float(kappa), world.rtol, world.contact_margin, self.mean_mass,
                        world.max_iterations, int(stop_on_failure), int(keep_solution), int(warm or t > 0), 2,
                        *spread(B))
                _check_complete(info[steps])
                if t1 < T and not info[t1 - 1, :, INFO["advanced"]].all():
                    break  # a world stopped: so do the others (the caller reports the first failure)
                t = t1
        return KernelRun(frames, info[:T], flags[:T, :, :2 * C + self.L], sol[:T] if keep_solution else None)

    def table_arrays(self):
        """The current tables (numpy; `tables` replaces rather than edits them, so a copy of this tuple
        keeps describing the World as it was)."""
        return (self.body, self.cand, self.cf, self.jt_i, self.jt_f, self.rw_i, self.rw_f)

    def adjoint(self, tables, dt, margin, state, solution, gbar):
        """λ = (∂r/∂w)⁻ᵀ gbar of one step of every world (kernels/adjoint.py) for the World described by
        `tables` (table_arrays() at the step) with step dt s and contact margin m: state the
        start-of-step state (x, q, v, ω body frame; torch (B, bodies, ·)), solution and gbar (B, N) numpy
        in the kernel's layout (KernelRun.solution without the decisions). Returns λ (B, N) numpy, rows
        in the kernel's layout. Uses the workspaces of `run`, not its warm start."""
        B, nb, N = self.B, self.nb, self.N
        body, cand, cf, jt_i, jt_f, rw_i, rw_f = tables
        s0 = np.ascontiguousarray(torch.cat([t.detach() for t in state], -1).numpy(), dtype=np.float64)
        lam = np.zeros((B, N + 1))
        with backend.quick_compile():
            adjoint(s0, np.zeros((1, B, nb, 13)), np.zeros((1, 1, 1, 1)), np.zeros((1, 1, 1)), body, cand, cf, jt_i,
                    jt_f, rw_i, rw_f, self.ct, self.wv, self.G, self.bw, self.H, self.xr, self.piv, self.sym, self.el, self.jo,
                    self.jd, self.je, self.jc, self.lw, np.ascontiguousarray(solution, dtype=np.float64),
                    np.ascontiguousarray(gbar, dtype=np.float64), lam, nb, self.C, self.J, self.m, self.n1, self.L,
                    dt, margin, 2, *spread(B))
        if not lam[:, N].all():
            raise _cut_short("adjoint")
        return lam[:, :N]


    def vjp(self, tables, dt, margin, state, controls, tau, gravity, solution, lam, limit_on, contact_on=None):
        """∂(Σ_b λ_bᵀ r_b)/∂θ of one step of every world (kernels/vjp.py, Taichi's reverse mode): tables
        (body, cf, jt_f, rw_f; numpy, as float_tables), step dt s, contact margin m, state the start-of-step
        state (x, q, v, ω body frame; torch (B, bodies, ·)), controls (B, bodies, 6) or None, tau (B, n1)
        coordinate actuation or None, gravity (3,) m/s², solution and lam (B, N) numpy in the kernel's
        layout (λ from `adjoint`), limit_on (B, L) the step's active limits, contact_on (B, C) its active
        contacts or None (then every pair model present is evaluated). Returns the gradients (numpy)
        with respect to the state (1, B, bodies, 13), controls (B, bodies, 6), tau (B, n1), gravity (3,),
        body, cf, jt_f and rw_f."""
        B, nb, n1 = self.B, self.nb, self.n1
        body, cf, jt_f, rw_f = tables
        s0 = torch.cat([t.detach() for t in state], -1)[None]
        inputs = dict(st=s0, ctrl=np.zeros((B, nb, 6)) if controls is None else controls,
                      tau=np.zeros((B, max(n1, 1))) if tau is None else tau, grav=gravity, body=body, cf=cf,
                      jt_f=jt_f, rw_f=rw_f)
        # torch tensors as the kernels' arguments: Taichi's reverse mode accumulates into their .grad in place
        # (no copies through Taichi ndarrays).
        a = {}
        for k, v in inputs.items():
            a[k] = torch.as_tensor(np.asarray(v, dtype=np.float64)).contiguous().requires_grad_(True)
            a[k].grad = torch.zeros_like(a[k])
        a["out"] = torch.zeros(B, dtype=torch.float64, requires_grad=True)
        a["out"].grad = torch.ones(B, dtype=torch.float64)
        w = np.ascontiguousarray(solution, dtype=np.float64)
        lam = np.ascontiguousarray(lam, dtype=np.float64)
        on = np.ascontiguousarray(limit_on if self.L else np.zeros((B, 1)), dtype=np.float64)
        with backend.quick_compile():
            dynamics_lagrangian.grad(a["st"], a["ctrl"], int(controls is not None), a["grav"], a["body"], w, lam,
                                     a["out"], nb, dt)
            # One kernel per pair model with a contact active in some world: an inactive one adds nothing.
            present = self.cand[: self.C, 0]
            if contact_on is not None:
                present = present[np.asarray(contact_on).any(0)]
            for kind in np.unique(present):
                contact_lagrangian.grad(a["st"], self.cand, a["cf"], w, lam, a["out"], nb, self.C, dt, margin,
                                        int(kind))
            if self.m + n1 + self.L:
                joint_lagrangian.grad(a["st"], a["tau"], int(tau is not None), self.jt_i, a["jt_f"], self.rw_i,
                                      a["rw_f"], on, w, lam, a["out"], nb, self.C, self.m, n1, self.L, dt)
        return {k: a[k].grad.numpy() for k in inputs}

def float_tables(world, prm):
    """The kernels' float tables from the parameters prm (a step.Params; torch, differentiable, so that
    the gradients the VJP kernel gives for the tables reach the World's parameters):
    body (bodies, 12): mass, inertia (9), [row scale: filled by KernelRunner.tables], 0;
    cf (candidates, CF_WIDTH): each candidate's constants (contact.py, CF_WIDTH columns);
    jt_f (joints, 13): anchors in the parent and child frames, rest rotation, revolute axis;
    rw_f (rows, RW_WIDTH): selectors, stiffness, damping, rest of coordinate rows; sign, bound of limits."""
    nb = prm.mass.shape[0]
    dtype = prm.mass.dtype
    body = torch.cat([prm.mass[:, None], prm.inertia.reshape(nb, 9), torch.zeros(nb, 2, dtype=dtype)], -1)
    sizes, fr, rest = prm.sizes, prm.frictions, prm.restitutions
    blocks = []
    for name, pairs in world.candidates.by_model.items():
        if name not in KERNEL_MODELS or not len(pairs):
            continue
        K = len(pairs)
        a, b = pairs.a, pairs.b
        cf = torch.zeros(K, CF_WIDTH, dtype=dtype)
        if name == "plane":
            cf[:, 0:3] = torch.einsum("kij,kj->ki", pairs.point.to(dtype), sizes[a])
            cf[:, 3] = torch.einsum("kj,kj->k", pairs.radius.to(dtype), sizes[a])
            cf[:, 4:7], cf[:, 7:10] = prm.plane_point[b], prm.plane_normal[b]
            cf[:, 10] = fr[a] * prm.plane_friction[b]
            cf[:, 11] = torch.maximum(rest[a], prm.plane_restitution[b])
        else:
            cf[:, 10], cf[:, 11] = fr[a] * fr[b], torch.maximum(rest[a], rest[b])
        if name in ("sphere-sphere", "segment-segment"):
            cf[:, 0:4] = torch.stack([sizes[a, 0], sizes[b, 0], sizes[a, 1], sizes[b, 1]], -1)
        elif name in ("box-face", "edge-edge"):
            cf[:, 0:3], cf[:, 3:6] = sizes[a], sizes[b]
        elif name in ("ball-box", "segment-face"):
            along = pairs.end.to(dtype) * sizes[a, 1] if name == "ball-box" else sizes[a, 1]
            cf[:, 0:5] = torch.cat([sizes[a, :1], along[:, None], sizes[b]], -1)
        static = (b >= nb) & (name != "plane")
        if bool(static.any()):  # a static box: its pose
            k = (b - nb).clamp_min(0)
            cf[:, CF["box_x"]:CF["box_x"] + 3] = torch.where(static[:, None], prm.static_position[k], 0.0)
            cf[:, CF["box_q"]:CF["box_q"] + 4] = torch.where(static[:, None], prm.static_orientation[k], 0.0)
        blocks.append(cf.repeat_interleave(SLOTS_PER_PAIR.get(name, 1), 0))
    cf = torch.cat(blocks) if blocks else torch.zeros(0, CF_WIDTH, dtype=dtype)
    if len(cf) == 0:
        cf = torch.zeros(1, CF_WIDTH, dtype=dtype)
    js = world.joint_set
    if js is None:
        return body, cf, torch.zeros(1, 13, dtype=dtype), torch.zeros(1, RW_WIDTH, dtype=dtype)
    jp = prm.joint_params()
    m, n1, L = js.rows, len(js.coord_joint), js.limits
    axis = joint_outputs._angle_axis(js, jp)
    jt_f = torch.cat([jp.anchor_parent, jp.anchor_child, jp.rest_rotation, axis], -1)
    sel_eq, sel_coord = joint_outputs._selectors(js.kinds, jp.axis)
    rw_f = torch.zeros(max(m + n1 + L, 1), RW_WIDTH, dtype=dtype)
    rw_f[:m, :7] = sel_eq[js.eq_joint, js.eq_slot]
    rw_f[m:m + n1, :7] = sel_coord[js.coord_joint]
    rw_f[m:m + n1, 7], rw_f[m:m + n1, 8], rw_f[m:m + n1, 9] = jp.stiffness, jp.damping, jp.rest
    rw_f[m + n1:m + n1 + L, 0] = js.limit_sign.to(dtype)
    rw_f[m + n1:m + n1 + L, 1] = jp.bound
    return body, cf, jt_f if len(jt_f) else torch.zeros(1, 13, dtype=dtype), rw_f


def spread(B: int) -> tuple[int, int]:
    """(loop iterations, tasks) of the kernels' world loop for B worlds. On the CPU, Taichi 1.7 puts at
    least CPU_TASK_ITEMS = 512 iterations in each task of a parallel loop, so fewer than 1,024 worlds on
    two threads ran on one core (8 heavy iterations: no speed-up from a second thread; 1,024: 2×). For
    B < 512 × threads the loop is padded to 512 × min(threads, B) iterations, which Taichi splits into
    that many tasks, and common.world_of deals the worlds out across them. Elsewhere (GPU): (B, 1)."""
    if backend.active().arch != "cpu":
        return B, 1
    threads = max(1, int(ti.lang.impl.current_cfg().cpu_max_num_threads))
    tasks = min(threads, B)
    if tasks <= 1 or B >= CPU_TASK_ITEMS * threads:
        return B, 1
    return CPU_TASK_ITEMS * tasks, tasks


def _cut_short(kernel):
    return backend.BackendError(
        f"The {backend.active().arch} driver stopped the rigid {kernel} kernel partway through a step, so its "
        "results are incomplete (Mesa's lavapipe, the Vulkan driver on CPUs, caps a shader invocation at 65,535 "
        "loop iterations in all; this world's step needs more). Run this world with simcore.init('cpu', ...) or on "
        "a GPU.")


def _check_complete(info):
    """Raise when a step of `info` (T, B, INFO_WIDTH) was cut short by the driver (solve.canary)."""
    if info[..., INFO["cut_short"]].any():
        raise _cut_short("step")


def symbolic_lu(nb: int, jt_i: np.ndarray, rw_i: np.ndarray, m: int, n1: int):
    """The symbolic LU of the reduced Newton system (6·bodies velocities, then m joint impulses) for
    common.sparse_lu_factor: its structure, an elimination order, and the fill-in, as one int32 table
    (layout at common.SYM_ORDER); and which bodies it couples ((bodies, bodies) bool).

    Structure: body i's velocities couple to each other, to the other body of each joint coordinate
    (dampers and limits), and to the impulses of its joints' equality rows. Contacts between two bodies
    are left out (the quadruped's legs can touch each other and the trunk, which would fill the system
    in; while such a contact is active the step factorizes densely). The impulses have no diagonal entry:
    each is eliminated only after one of its bodies (whose elimination fills it), and among the eligible
    unknowns the one of least degree goes first (greedy minimum degree)."""
    nz = 6 * nb
    n = nz + m
    pattern = np.zeros((n, n), bool)
    coupled = np.eye(max(nb, 1), dtype=bool)

    def couple(rows, cols):
        pattern[np.ix_(rows, cols)] = True
        pattern[np.ix_(cols, rows)] = True

    body = [np.arange(6 * i, 6 * i + 6) for i in range(nb)]
    for i in range(nb):
        couple(body[i], body[i])
    for a, b in [tuple(jt_i[rw_i[r, 0]]) for r in range(m, m + n1)]:
        if a < nb and b < nb:
            couple(body[a], body[b])
            coupled[a, b] = coupled[b, a] = True
    for r in range(m):
        for i in jt_i[rw_i[r, 0]]:
            if i < nb:
                couple(np.array([nz + r]), body[i])
    # greedy minimum degree; an impulse becomes eligible once a body unknown it couples to is gone
    graph = pattern.copy()
    alive = np.ones(n, bool)
    eligible = np.arange(n) < nz
    order = []
    for _ in range(n):
        degree = np.where(alive & eligible, (graph & alive).sum(1), n + 1)
        v = int(np.argmin(degree))
        if degree[v] > n:
            raise ValueError("a joint's equality rows touch no body: the reduced system is singular")
        order.append(v)
        alive[v] = False
        near = np.flatnonzero(graph[v] & alive)
        graph[np.ix_(near, near)] = True
        eligible[near] = True
    # symbolic elimination without pivoting, in that order
    done = np.zeros(n, bool)
    l_lists, u_lists = [], []
    for k in order:
        done[k] = True
        rows = np.flatnonzero(pattern[:, k] & ~done)
        cols = np.flatnonzero(pattern[k] & ~done)
        pattern[np.ix_(rows, cols)] = True
        l_lists.append(rows)
        u_lists.append(cols)
    cat = lambda lists: np.concatenate(lists) if lists else np.zeros(0, np.int64)  # noqa: E731
    lptr = np.concatenate([[0], np.cumsum([len(x) for x in l_lists])])
    uptr = np.concatenate([[0], np.cumsum([len(x) for x in u_lists])])
    entries = np.flatnonzero(pattern.ravel())
    header = [n, lptr[-1], uptr[-1], len(entries)]
    table = np.concatenate([header, order, lptr, uptr, cat(l_lists), cat(u_lists), entries])
    return np.ascontiguousarray(table, dtype=np.int32), coupled


def fingerprint(world):
    """Identity and in-place version of every tensor of the World's shapes and joints: the tables are
    rebuilt when this changes (a parameter replaced or edited in place)."""
    return tuple((id(v), v._version) for obj in world.bodies + world.planes + world.joints
                 for v in vars(obj).values() if isinstance(v, torch.Tensor)) + ((id(world.gravity), world.gravity._version),)


def runner_for(world, worlds: int) -> KernelRunner:
    """The World's cached runner for this batch size (rebuilt after a backend restart or a change of
    the World's structure; its tables are refreshed from the World's parameters on every call)."""
    cache = getattr(world, "_kernel_runner", None)
    if (cache is None or cache.B != worlds or cache.generation != backend.generation()
            or cache.nb != len(world.bodies) or cache.structure != id(world.candidates)):
        cache = KernelRunner(world, worlds)
        cache.structure = id(world.candidates)
        world._kernel_runner = cache
    elif cache.fingerprint != fingerprint(world):
        cache.tables(world)
    return cache


def to_reference_layout(w_kernel: np.ndarray, nb: int, C: int, selected: np.ndarray, m: int = 0,
                        L: int = 0) -> np.ndarray:
    """Kernel solution (B, 6 nb + 8 C + m + 2 L) → the reference layout (integrator.sizes over the
    candidates `selected`, then joint_equations.offsets): [z, γ, s, β (3 each), η (3 each), λ, γ_limit,
    s_limit]."""
    B = w_kernel.shape[0]
    z = w_kernel[:, :6 * nb]
    oj = 6 * nb + 8 * C
    local = w_kernel[:, 6 * nb:oj].reshape(B, C, 8)[:, selected]
    limits = w_kernel[:, oj + m:oj + m + 2 * L].reshape(B, L, 2)
    return np.concatenate([z, local[..., 0], local[..., 1], local[..., 2:5].reshape(B, -1),
                           local[..., 5:8].reshape(B, -1), w_kernel[:, oj:oj + m], limits[..., 0],
                           limits[..., 1]], -1)


def from_reference_layout(w_ref: np.ndarray, nb: int, C: int, selected: np.ndarray, m: int = 0,
                          L: int = 0) -> np.ndarray:
    """The inverse of to_reference_layout (candidates outside `selected` get zeros)."""
    B, S = w_ref.shape[0], len(selected)
    nz, oj = 6 * nb, 6 * nb + 8 * C
    out = np.zeros((B, oj + m + 2 * L))
    out[:, :nz] = w_ref[:, :nz]
    local = np.zeros((B, C, 8))
    local[:, selected, 0] = w_ref[:, nz:nz + S]
    local[:, selected, 1] = w_ref[:, nz + S:nz + 2 * S]
    local[:, selected, 2:5] = w_ref[:, nz + 2 * S:nz + 5 * S].reshape(B, S, 3)
    local[:, selected, 5:8] = w_ref[:, nz + 5 * S:nz + 8 * S].reshape(B, S, 3)
    out[:, nz:oj] = local.reshape(B, -1)
    o = nz + 8 * S
    out[:, oj:oj + m] = w_ref[:, o:o + m]
    limits = out[:, oj + m:].reshape(B, L, 2)
    limits[..., 0], limits[..., 1] = w_ref[:, o + m:o + m + L], w_ref[:, o + m + L:o + m + 2 * L]
    return out


def rows_to_reference_layout(r_kernel: np.ndarray, nb: int, C: int, selected: np.ndarray, m: int = 0,
                             L: int = 0) -> np.ndarray:
    """Values on the residual rows (B, N) in the kernel's layout (solve.py: per contact γ s, s − φ,
    β ∘ η (3), β₀ − μ γ, η₁₂ − v_t (2); per limit γ s, s − g) → the reference's row layout
    (integrator.row_blocks over the candidates `selected`, then the joint rows c_eq, s − g, γ s)."""
    B = r_kernel.shape[0]
    oj = 6 * nb + 8 * C
    local = r_kernel[:, 6 * nb:oj].reshape(B, C, 8)[:, selected]
    limits = r_kernel[:, oj + m:oj + m + 2 * L].reshape(B, L, 2)
    return np.concatenate([r_kernel[:, :6 * nb], local[..., 1], local[..., 6:8].reshape(B, -1), local[..., 5],
                           local[..., 0], local[..., 2:5].reshape(B, -1), r_kernel[:, oj:oj + m], limits[..., 1],
                           limits[..., 0]], -1)
