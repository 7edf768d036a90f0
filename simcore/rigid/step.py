"""One time step of a World: detect contacts, solve the step equations with the interior-point method,
advance the state. Batched over B worlds of the same structure (shared shapes and parameters, per-world
state and controls)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch

from . import collision, integrator, ipm
from . import joints as jnt
from . import quaternion as quat

DTYPE = torch.float64

@dataclass
class State:
    """Batched state: position (B, nb, 3) m, orientation (B, nb, 4) (w, x, y, z), velocity (B, nb, 3) m/s,
    body_angular_velocity (B, nb, 3) rad/s in the body frame (the ω of the step that reached this pose)."""
    position: torch.Tensor
    orientation: torch.Tensor
    velocity: torch.Tensor
    body_angular_velocity: torch.Tensor

    @property
    def angular_velocity(self) -> torch.Tensor:
        """World-frame angular velocity (B, nb, 3) rad/s."""
        R = quat.to_matrix(self.orientation)
        return (R @ self.body_angular_velocity[..., None])[..., 0]

    def tensors(self):
        return self.position, self.orientation, self.velocity, self.body_angular_velocity


@dataclass
class Params:
    """Shared parameters (torch, possibly on an autograd graph). P = bodies + static boxes."""
    mass: torch.Tensor        # (nb,) kg
    inertia: torch.Tensor     # (nb, 3, 3) kg·m² body frame
    gravity: torch.Tensor     # (3,) m/s²
    sizes: torch.Tensor       # (P, 3) m
    frictions: torch.Tensor   # (P,)
    plane_point: torch.Tensor   # (Np, 3) m
    plane_normal: torch.Tensor  # (Np, 3)
    plane_friction: torch.Tensor  # (Np,)
    static_position: torch.Tensor     # (Ns, 3) m
    static_orientation: torch.Tensor  # (Ns, 4)
    restitutions: torch.Tensor        # (P,)
    plane_restitution: torch.Tensor   # (Np,)
    # Joints (joints.JointParams, flattened so that they travel as autograd inputs): J joints, n1
    # coordinates (revolute, prismatic), L limits.
    joint_anchor_parent: torch.Tensor = field(default_factory=lambda: torch.zeros(0, 3, dtype=DTYPE))  # (J, 3) m
    joint_anchor_child: torch.Tensor = field(default_factory=lambda: torch.zeros(0, 3, dtype=DTYPE))   # (J, 3) m
    joint_axis: torch.Tensor = field(default_factory=lambda: torch.zeros(0, 3, dtype=DTYPE))           # (J, 3)
    joint_rest_rotation: torch.Tensor = field(default_factory=lambda: torch.zeros(0, 4, dtype=DTYPE))  # (J, 4)
    joint_stiffness: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=DTYPE))  # (n1,) N·m/rad, N/m
    joint_damping: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=DTYPE))    # (n1,)
    joint_rest: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=DTYPE))       # (n1,) rad, m
    joint_bound: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=DTYPE))      # (L,) rad, m

    FIELDS = ("mass", "inertia", "gravity", "sizes", "frictions", "plane_point", "plane_normal",
              "plane_friction", "static_position", "static_orientation", "restitutions", "plane_restitution",
              "joint_anchor_parent", "joint_anchor_child", "joint_axis", "joint_rest_rotation",
              "joint_stiffness", "joint_damping", "joint_rest", "joint_bound")

    def tensors(self):
        return tuple(getattr(self, f) for f in self.FIELDS)

    def joint_params(self) -> jnt.JointParams:
        return jnt.JointParams(self.joint_anchor_parent, self.joint_anchor_child, self.joint_axis,
                               self.joint_rest_rotation, self.joint_stiffness, self.joint_damping,
                               self.joint_rest, self.joint_bound)


@dataclass
class StepInfo:
    """What the forward step keeps for reporting, warm starts and the backward pass."""
    report: ipm.SolveReport
    w: torch.Tensor          # (B, N) solution
    jacobian: object         # () → (B, N, N) ∂r/∂w at the solution (assembled on demand: `rollout` needs it)
    selected: torch.Tensor   # (C,) candidate indices in the system
    decisions: dict
    contacts: collision.Contacts
    kappa: float
    joints: object = None    # joints.JointStep of the step (None without joints)
    adjoint: object = None   # g (B, N) → λ = (∂r/∂w)⁻ᵀ g, when the stepper solves it (the kernel; else jacobian)
    vjp: object = None       # (g, inputs, needs) → the inputs' gradients, all in kernels (kernel_step.py)

    def warm(self):
        """What the next step's initial guess reuses."""
        joint_part = None
        if self.joints is not None:
            nb = self.joints.nb
            joint_part = jnt.warm_part(self.w, integrator.sizes(nb, len(self.selected))["total"], self.joints)
        return self.w, self.selected, self.contacts.active, joint_part


def contacts_for(cand, state_tensors, params: Params, dt, margin, decisions=None):
    x, q, v, om = state_tensors
    poses = collision.pose_table(x, q, v, om, params.static_position, params.static_orientation)
    planes = dict(point=params.plane_point, normal=params.plane_normal, friction=params.plane_friction,
                  restitution=params.plane_restitution)
    return collision.detect(cand, poses, params.sizes, params.frictions, params.restitutions, planes, dt, margin,
                            decisions)


def equations(w, kappa, state_tensors, controls, params: Params, contacts: collision.Contacts, dt,
              jacobian=True, prepared=None, joint_step=None):
    """Step residual (B, N) and Jacobian (B, N, N) for every world: integrator.equations for bodies and
    contacts, plus joints.equations (joint impulses on the dynamics rows; joint and limit rows, and
    their unknowns λ, γ, s, after the contact ones) when the world has joints."""
    if joint_step is None:
        return integrator.equations(w, kappa, *state_tensors, controls[..., :3], controls[..., 3:], params.mass,
                                    params.inertia, params.gravity, contacts, dt, jacobian, prepared)
    nb = state_tensors[0].shape[1]
    nz, nc = 6 * nb, integrator.sizes(nb, contacts.normal.shape[1])["total"]
    r_c, jac_c = integrator.equations(w[:, :nc], kappa, *state_tensors, controls[..., :3], controls[..., 3:],
                                      params.mass, params.inertia, params.gravity, contacts, dt,
                                      "lazy" if jacobian else False, prepared)
    impulse, rows, add_jacobian = jnt.equations(w, nc, kappa, joint_step, bool(jacobian))
    r = torch.cat([r_c[:, :nz] - impulse, r_c[:, nz:], rows], -1)
    if not jacobian:
        return r, None

    def jac():
        N = w.shape[-1]
        Jm = torch.zeros(w.shape[0], N, N, dtype=w.dtype)
        Jm[:, :nc, :nc] = jac_c()
        return add_jacobian(Jm)
    return r, (jac if jacobian == "lazy" else jac())


def prepare(state_tensors, controls, params: Params, contacts: collision.Contacts, dt):
    """The w-independent part of `equations` for one step (integrator.prepare)."""
    return integrator.prepare(*state_tensors, controls[..., :3], controls[..., 3:], params.mass, params.inertia,
                              params.gravity, contacts, dt)


# Floors of the cold start (m, N·s, N·s, m/s): keep every pair strictly inside its cone.
GAP_FLOOR, IMPULSE_FLOOR, FRICTION_FLOOR, SLIP_FLOOR = 1e-3, 1e-3, 1e-3, 1e-3


def initial_guess(state_tensors, contacts: collision.Contacts, selected, mass, gravity, dt, kappa, warm=None):
    """Interior starting point (B, N): velocities from the previous step; contact variables from the
    previous step's solution for candidates solved there too (warm start), else a cold start on the
    scale of the step (below)."""
    x, q, v, om = state_tensors
    B, nb = x.shape[:2]
    C = contacts.normal.shape[1]
    z = torch.cat([v, om], -1).reshape(B, -1)
    # Start well inside the cones, on the scale of the step: the gap the step would reach without
    # contact (absolute value, plus a floor) and the impulse that would stop the approach.
    g_norm = float(gravity.norm())
    vel = contacts.velocity.detach()
    v_n = (contacts.normal * vel).sum(-1)
    v_t = (vel - v_n[..., None] * contacts.normal).norm(dim=-1)
    predicted = contacts.distance.detach() + dt * (v_n - dt * g_norm)
    gap = predicted.abs() + GAP_FLOOR
    rows = torch.where(contacts.body_a < nb, contacts.body_a, contacts.body_b).clamp(max=nb - 1)
    share = (torch.nn.functional.one_hot(rows, nb).to(DTYPE) * contacts.active[..., None]).sum(1)  # (B, nb)
    per_body = share.gather(1, rows.expand(B, -1)).clamp_min(1)
    gamma = mass.detach()[rows] * ((-v_n).clamp_min(0) + dt * g_norm) / per_body + IMPULSE_FLOOR
    beta = torch.zeros(B, C, 3, dtype=DTYPE)
    beta[..., 0] = FRICTION_FLOOR + contacts.friction.detach() * gamma
    eta = torch.zeros(B, C, 3, dtype=DTYPE)
    eta[..., 0] = SLIP_FLOOR + v_t
    # Placeholder rows (inactive in this world) start at their exact solution: s = 1 m, γ = κ,
    # β = (μ_eff κ, 0, 0), η = (1/μ_eff, 0, 0) with μ_eff = 1 where friction is off (see equations).
    off = ~contacts.active
    mu_eff = torch.where(contacts.friction.detach() > 0, contacts.friction.detach(), torch.ones_like(gap))
    gap = torch.where(off, torch.ones_like(gap), gap)
    gamma = torch.where(off, torch.full_like(gamma, kappa), gamma)
    beta = torch.where(off[..., None], torch.stack([mu_eff * kappa, 0 * gap, 0 * gap], -1), beta)
    eta = torch.where(off[..., None], torch.stack([1 / mu_eff, 0 * gap, 0 * gap], -1), eta)
    if warm is not None and C and warm[0].shape[0] == B:
        # Warm start only where the candidate was a real contact of this world in the previous step and
        # still is; a former placeholder row (φ = 1 m) would be a poor start.
        prev_w, prev_sel, prev_active = warm[:3]
        pos = torch.full((int(max(selected.max(), prev_sel.max() if len(prev_sel) else 0)) + 1,), -1)
        pos[prev_sel] = torch.arange(len(prev_sel))
        here = pos[selected]
        if bool((here >= 0).any()):
            _, _, g0, s0, b0, e0 = integrator.unpack(prev_w, nb, len(prev_sel))
            src = here.clamp_min(0)
            keep = (here >= 0) & prev_active[:, src] & contacts.active          # (B, C)
            gamma = torch.where(keep, g0[:, src], gamma)
            gap = torch.where(keep, s0[:, src], gap)
            beta = torch.where(keep[..., None], b0[:, src], beta)
            eta = torch.where(keep[..., None], e0[:, src], eta)
    return torch.cat([z, gamma, gap, beta.reshape(B, -1), eta.reshape(B, -1)], -1)


def solve_step(cand, state: State, controls, params: Params, *, dt, kappa, rtol, max_iterations, margin,
               warm=None, joints: jnt.JointSet | None = None, actuation=None):
    """Solve one step for all worlds (no autograd). controls: (B, nb, 6) N and N·m, world frame; joints:
    the World's JointSet (None or empty: no joints); actuation: (B, actuators) N·m or N per actuated
    joint. warm: StepInfo.warm() of the previous step. Returns (next State, StepInfo)."""
    with torch.no_grad(), _threads():
        st = tuple(t.detach() for t in state.tensors())
        prm = Params(*(t.detach() for t in params.tensors()))
        controls = controls.detach()
        contacts, decisions = contacts_for(cand, st, prm, dt, margin)
        selected = contacts.active.any(0).nonzero()[:, 0]
        contacts = contacts.select(selected)
        B, nb = st[0].shape[:2]
        joint_step = None
        if joints is not None and joints.count:
            actuation = torch.zeros(B, 0, dtype=DTYPE) if actuation is None else actuation.detach()
            joint_step = jnt.prepare(joints, st, prm.joint_params(), actuation, dt, margin)
            lay = ipm.Layout(nb, len(selected), _row_scale(prm, contacts, B, joints, dt), contacts.active,
                             joints.rows, joints.limits, joint_step.active)
        else:
            lay = ipm.Layout(nb, len(selected), _row_scale(prm, contacts, B), contacts.active)

        prepared = prepare(st, controls, prm, contacts, dt)

        def evaluate(w):
            r, jacobian = equations(w, 0.0, st, controls, prm, contacts, dt, jacobian="lazy", prepared=prepared,
                                    joint_step=joint_step)
            return jacobian, r

        def guess(warm_start):
            w = initial_guess(st, contacts, selected, prm.mass, prm.gravity, dt, kappa, warm_start)
            if joint_step is None:
                return w
            joint_warm = warm_start[3] if warm_start is not None and len(warm_start) > 3 else None
            return torch.cat([w, jnt.initial_guess(joint_step, kappa, joint_warm)], -1)

        w0 = guess(warm)

        def omega_limit(w, d):
            # |ω + α dω| dt ≤ 1.9 < 2 keeps √(4/dt² − |ω|²) real; halve α until it holds.
            om, dom = w[:, :6 * nb].reshape(B, nb, 6)[..., 3:], d[:, :6 * nb].reshape(B, nb, 6)[..., 3:]
            alpha = torch.ones(B, dtype=DTYPE)
            for _ in range(40):
                bad = ((om + alpha[:, None, None] * dom).norm(dim=-1) * dt > 1.9).any(-1)
                if not bool(bad.any()):
                    break
                alpha = torch.where(bad, 0.5 * alpha, alpha)
            return alpha

        w, report = ipm.solve(evaluate, w0, lay, kappa, rtol, max_iterations, omega_limit)
        # Fallbacks for hard steps (landing impacts at large dt): central-path continuation from a cold
        # start, first with Nesterov–Todd scaling, then with plain Newton; each world keeps its first
        # converged solution. Neither strategy alone solved every scene of the tests.
        for scaling in (True, False):
            if bool(report.converged.all()) or not (len(selected) or lay.limits):
                break
            cold = guess(None)
            w2, report2 = _continuation(evaluate, cold, lay, kappa, rtol, max_iterations, omega_limit,
                                            report, scaling)
            ok = report.converged
            w = torch.where(ok[:, None], w, w2)
            report = ipm.SolveReport(*(torch.where(ok, a, b) for a, b in zip(
                (report.iterations, report.residual, report.complementarity, report.converged),
                (report2.iterations, report2.residual, report2.complementarity, report2.converged))))
        v2, om2 = integrator.unpack(w, nb, len(selected))[:2]
        x2, q2 = integrator.advance(st[0], st[1], v2, om2, dt)

    def jacobian():
        with torch.no_grad(), _threads():
            return equations(w, 0.0, st, controls, prm, contacts, dt, prepared=prepared, joint_step=joint_step)[1]
    info = StepInfo(report, w, jacobian, selected, decisions, contacts, kappa, joint_step)
    return State(x2, q2, v2, om2), info


def _continuation(evaluate, w0, lay, kappa, rtol, max_iterations, omega_limit, first, scaling):
    """Fallback when the direct solve fails: follow the central path from a cold start, solving at
    κ_i = μ₀·10⁻ⁱ down to κ (each stage warm-starts the next; Dojo's outer loop), intermediate stages to
    a loose 1e-3. Reported iterations add up over the attempts; the caller keeps the first solution of
    worlds that had converged."""
    w = w0
    total = first.iterations.clone()
    k = float(ipm.duality_measure(w0, lay).max())
    while True:
        k = max(k * 0.1, kappa)
        last = k <= kappa
        w, report = ipm.solve(evaluate, w, lay, k, rtol if last else 1e-3, max_iterations,
                                 omega_limit, scaling)
        total += report.iterations
        if last:
            report.iterations = total
            return w, report


# torch intra-op threads while a step is solved. The systems are small dense blocks, and torch's thread
# pool behaves badly when the cores are shared: on the 2-core development machine with other jobs
# running, 1,024 sliding-box worlds ran 3,059 world-steps/s on 1 thread and 202 on 2, and a stack of
# three boxes 51 ms/step on 1 thread against 212 ms on 2.
SOLVER_THREADS = 1


@contextlib.contextmanager
def _threads():
    before = torch.get_num_threads()
    if before != SOLVER_THREADS:
        torch.set_num_threads(SOLVER_THREADS)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def _row_scale(prm: Params, contacts, B, joints=None, dt=None):
    """(B, equality rows): dynamics rows by mass or largest principal inertia, friction-magnitude rows
    by the mean mass, contact gap and slip rows by 1; joint and limit rows (m or rad) by dt, so that
    they too read in m/s or rad/s (rtol 1e-6 at dt = 0.01 s holds a joint to 1e-8 m)."""
    nb = prm.mass.shape[0]
    C = contacts.normal.shape[1]
    lin = prm.mass[:, None].expand(nb, 3)
    ang = torch.linalg.eigvalsh(prm.inertia).amax(-1)[:, None].expand(nb, 3)
    dyn = torch.cat([lin, ang], -1).reshape(-1)
    mean_mass = prm.mass.mean() if nb else torch.ones((), dtype=DTYPE)
    scale = torch.cat([dyn, torch.ones(3 * C, dtype=DTYPE), mean_mass.expand(C)])
    if joints is not None:
        scale = torch.cat([scale, torch.full((joints.rows + joints.limits,), float(dt), dtype=DTYPE)])
    return scale.expand(B, -1)
