"""World: the user-facing rigid-body simulator (add shapes, run, rollout)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import SimulationError
from . import collision, grad, ipm, kernel_step
from . import joints as jnt
from . import quaternion as quat
from .bodies import DTYPE, Body, Box, Plane, Shape, as_tensor
from .step import Params, State, solve_step


class ContactSolveError(SimulationError):
    """The interior-point contact solve of a step did not converge (residual above tolerance)."""


@dataclass
class Trajectory:
    """A simulated run (numpy). Shapes without a batch axis unless run(state=...) was batched:
    position (steps + 1, [B,] bodies, 3) m; orientation (…, 4) (w, x, y, z); velocity (…, 3) m/s;
    angular_velocity (…, 3) rad/s world frame; time (steps + 1,) s; iterations (steps, [B]) interior-point
    iterations; residual (steps, [B]) scaled equality residual (m/s); complementarity (steps, [B]) relative
    distance to the central path; contacts (steps,) number of contact candidates in the solve."""
    position: np.ndarray
    orientation: np.ndarray
    velocity: np.ndarray
    angular_velocity: np.ndarray
    time: np.ndarray
    iterations: np.ndarray
    residual: np.ndarray
    complementarity: np.ndarray
    contacts: np.ndarray
    joint_position: np.ndarray | None = None  # (steps + 1, [B,] dofs) minimal coordinates (World.joint_positions)
    joint_velocity: np.ndarray | None = None  # (steps + 1, [B,] dofs) their rates

    def state(self, frame: int = -1) -> State:
        """The State at `frame` (default: the last), batched (worlds, bodies, ·) like
        World.initial_state: pass it to run/rollout to continue from there (for feedback control, one
        step at a time)."""
        take = lambda a: torch.as_tensor(a[frame]).reshape((-1,) + a.shape[-2:])  # noqa: E731
        x, q, v, w = (take(getattr(self, name)) for name in ("position", "orientation", "velocity",
                                                                 "angular_velocity"))
        return State(x, q, v, (quat.to_matrix(q).transpose(-1, -2) @ w[..., None])[..., 0])


class World:
    """Rigid bodies with hard contact and Coulomb friction (Dojo-style interior-point solve).

    dt: s, time step. gravity: (3,) m/s² (any direction; no up axis is assumed). kappa: central-path
    parameter of the forward solve (N·s·m: γ·s = κ at convergence; smaller is harder contact).
    kappa_grad: larger κ used by `rollout`, whose relaxed dynamics have smooth gradients. rtol: solver
    tolerance (scaled residual in m/s and relative distance to the central path). max_iterations: per
    step. on_failure: "raise" (ContactSolveError) or "warn" when a step does not converge.
    contact_margin: m, candidates farther than this (plus twice the distance covered in a step) are
    left out of the step.
    """

    def __init__(self, dt=0.01, gravity=(0.0, -9.81, 0.0), kappa=1e-6, kappa_grad=1e-4, rtol=1e-6,
                 max_iterations=50, on_failure="raise", contact_margin=0.01):
        if not dt > 0:
            raise ValueError(f"dt must be > 0 s, got {dt}")
        if not (kappa > 0 and kappa_grad > 0):
            raise ValueError(f"kappa and kappa_grad must be > 0, got {kappa}, {kappa_grad}")
        if on_failure not in ("raise", "warn"):
            raise ValueError(f"on_failure must be 'raise' or 'warn', got {on_failure!r}")
        self.dt = float(dt)
        self.gravity = as_tensor(gravity, (3,), "gravity")
        self.kappa, self.kappa_grad = float(kappa), float(kappa_grad)
        self.rtol, self.max_iterations = float(rtol), int(max_iterations)
        self.on_failure = on_failure
        self.contact_margin = float(contact_margin)
        self.bodies: list[Body] = []
        self.static_boxes: list[Box] = []
        self.planes: list[Plane] = []
        self.joints: list[jnt.Joint] = []
        self._candidates = None
        self._joint_set = None

    # --- building ---------------------------------------------------------------------------------
    def add(self, shape: Shape) -> Shape:
        """Add a Sphere, Box, Capsule, Plane or Box(static=True), or a joint (Fixed, Revolute, Prismatic,
        Spherical, Floating) between bodies already added; returns it (shape.index is its row in the
        trajectory arrays for dynamic bodies; joint.dof_index its first column in joint_positions,
        joint.actuator_index its column in `actuation` if actuated)."""
        if isinstance(shape, jnt.Joint):
            return self._add_joint(shape)
        if not isinstance(shape, Shape):
            raise ValueError(f"World.add takes a simcore.rigid shape or joint, got {type(shape).__name__}")
        if isinstance(shape, Plane):
            shape.index = len(self.planes)
            self.planes.append(shape)
        elif shape.static:
            shape.index = len(self.static_boxes)
            self.static_boxes.append(shape)
        else:
            shape.index = len(self.bodies)
            self.bodies.append(shape)
        if shape.name is None:
            shape.name = f"{'static_' if shape.static and shape.kind != 'plane' else ''}{shape.kind}{shape.index}"
        self._candidates = None
        return shape

    def _add_joint(self, joint: jnt.Joint) -> jnt.Joint:
        for role, body in (("child", joint.child), ("parent", joint.parent)):
            if body is not None and (body.index is None or body.index >= len(self.bodies)
                                     or self.bodies[body.index] is not body):
                raise ValueError(f"{type(joint).__name__} {role} {body!r} is not a body of this world: add the "
                                 "bodies with world.add(...) before the joint")
        for other in self.joints:
            if other.child is joint.child:
                raise ValueError(f"{joint.child!r} is already the child of {other!r}; a body can be the child of "
                                 "one joint only (mechanisms are trees; closed loops are not supported yet)")
        joint.index = len(self.joints)
        joint.dof_index = sum(j.dofs for j in self.joints)
        if joint.actuated:
            joint.actuator_index = sum(j.actuated for j in self.joints)
        if joint.name is None:
            joint.name = f"{joint.kind}{joint.index}"
        self.joints.append(joint)
        self._candidates = None
        self._joint_set = None
        return joint

    @property
    def candidates(self):
        if self._candidates is None:
            # Bodies joined to each other do not collide (their shapes usually overlap at the joint).
            joined = {(j.parent.index, j.child.index) for j in self.joints if j.parent is not None}
            self._candidates = collision.build_candidates(self.bodies, self.static_boxes, self.planes, joined)
        return self._candidates

    @property
    def joint_set(self) -> jnt.JointSet | None:
        """Index arrays of the joints (None without joints)."""
        if not self.joints:
            return None
        if self._joint_set is None:
            self._joint_set = jnt.build(self.joints, len(self.bodies))
        return self._joint_set

    @property
    def stepper(self) -> str:
        """How steps are solved: "kernel", the Taichi step kernel (simcore.rigid.kernels: every joint kind
        and contact model, on the CPU, CUDA and Vulkan backends with 64-bit floats). "torch" (the reference
        implementation) only inside the tests' `kernel_step.reference_stepper()`. Raises BackendError
        where the kernel cannot run (a Vulkan device without 64-bit floats): there is one production
        path."""
        return kernel_step.stepper(self)

    @property
    def actuators(self) -> int:
        """Number of actuated joints (columns of `actuation`)."""
        return sum(j.actuated for j in self.joints)

    def params(self) -> Params:
        """Shared parameters as torch tensors (on the graph of any tensor given to the shapes)."""
        z3 = torch.zeros(0, 3, dtype=DTYPE)
        statics = self.static_boxes
        stack = lambda xs, empty: torch.stack(xs) if xs else empty  # noqa: E731
        return Params(
            mass=stack([b.mass for b in self.bodies], torch.zeros(0, dtype=DTYPE)),
            inertia=stack([b.inertia for b in self.bodies], torch.zeros(0, 3, 3, dtype=DTYPE)),
            gravity=self.gravity,
            sizes=stack([b.size_vector() for b in self.bodies + statics], z3),
            frictions=stack([b.friction for b in self.bodies + statics], torch.zeros(0, dtype=DTYPE)),
            plane_point=stack([p.point for p in self.planes], z3),
            plane_normal=stack([p.normal for p in self.planes], z3),
            plane_friction=stack([p.friction for p in self.planes], torch.zeros(0, dtype=DTYPE)),
            static_position=stack([s.position for s in statics], z3),
            static_orientation=stack([s.orientation for s in statics], torch.zeros(0, 4, dtype=DTYPE)),
            restitutions=stack([b.restitution for b in self.bodies + statics], torch.zeros(0, dtype=DTYPE)),
            plane_restitution=stack([p.restitution for p in self.planes], torch.zeros(0, dtype=DTYPE)),
            **self._joint_fields(),
        )

    def _joint_fields(self) -> dict:
        jp = jnt.parameters(self.joints, self.bodies)
        return dict(joint_anchor_parent=jp.anchor_parent, joint_anchor_child=jp.anchor_child, joint_axis=jp.axis,
                    joint_rest_rotation=jp.rest_rotation, joint_stiffness=jp.stiffness, joint_damping=jp.damping,
                    joint_rest=jp.rest, joint_bound=jp.bound)

    # --- minimal coordinates ----------------------------------------------------------------------
    def mechanical_energy(self, traj: Trajectory, world: int | None = None) -> np.ndarray:
        """Kinetic + gravitational energy (J) of the bodies at poses 0 … steps − 1: (steps,).

        The step's velocities live between poses (v_{k+1} takes q_k to q_{k+1}), so each pose's velocity
        is the mean of the two around it: second-order accurate, which makes the energy of this
        variational integrator oscillate without drift. world: the batch index of a batched run (None
        for an unbatched one). Gravitational energy is −m g·x, for gravity in any direction.
        """
        pick = (lambda a: a) if world is None else (lambda a: a[:, world])
        x, q, v, w = (pick(getattr(traj, name)) for name in ("position", "orientation", "velocity", "angular_velocity"))
        mass = np.array([float(b.mass) for b in self.bodies])
        inertia = np.stack([b.inertia.detach().numpy() for b in self.bodies])  # (bodies, 3, 3) kg·m², body frame
        R = quat.to_matrix(torch.as_tensor(q)).numpy()
        w_body = np.einsum("tbji,tbj->tbi", R, w)
        v_mid, w_mid = 0.5 * (v[1:] + v[:-1]), 0.5 * (w_body[1:] + w_body[:-1])
        kinetic = (0.5 * (mass * (v_mid**2).sum(-1)).sum(-1)
                   + 0.5 * np.einsum("tbi,bij,tbj->t", w_mid, inertia, w_mid))
        return kinetic - (mass * (x[:-1] @ self.gravity.numpy())).sum(-1)

    def joint_positions(self, state: State | None = None) -> torch.Tensor:
        """Minimal coordinates of every joint, (dofs,) or (B, dofs) for a batched `state` (default: the
        initial state), joint order, joint.dof_index the first column of each: revolute angle (rad),
        prismatic displacement (m), spherical rotation vector (3, rad), floating anchor displacement in
        the parent frame (3, m) then rotation vector (3, rad); fixed none. Zero at the initial pose."""
        return self._coordinates(state)[0]

    def joint_velocities(self, state: State | None = None) -> torch.Tensor:
        """Rates of joint_positions, same layout: rad/s, m/s; spherical and floating rotation rates are the
        child's angular velocity relative to the parent, parent frame."""
        return self._coordinates(state)[1]

    def _coordinates(self, state, joint_params=None):
        s, batched = (self.initial_state(), False) if state is None else (state, True)
        jp = jnt.parameters(self.joints, self.bodies) if joint_params is None else joint_params
        pos, vel = jnt.coordinates(self.joints, self.joint_set or jnt.build([], len(self.bodies)), jp, s)
        return (pos, vel) if batched else (pos[0], vel[0])

    def state_from_joints(self, positions, velocities=None, state: State | None = None) -> State:
        """The State with the joints at `positions` and rates `velocities` ((dofs,) or (B, dofs), layout of
        joint_positions; default rates 0), each child placed relative to its parent; bodies that are no
        joint's child keep their pose and velocity from `state` (default: initial_state(B)). Torch in
        and out (differentiable)."""
        dofs = sum(j.dofs for j in self.joints)
        pos = positions if isinstance(positions, torch.Tensor) else torch.as_tensor(np.asarray(positions), dtype=DTYPE)
        pos = pos.to(DTYPE)
        if pos.dim() == 1:
            pos = pos[None]
        if pos.dim() != 2 or pos.shape[1] != dofs:
            raise ValueError(f"joint positions must have shape (dofs,) or (worlds, dofs) with dofs = {dofs} "
                             f"(World.joint_positions layout), got {tuple(pos.shape)}")
        vel = torch.zeros_like(pos) if velocities is None else (
            velocities if isinstance(velocities, torch.Tensor)
            else torch.as_tensor(np.asarray(velocities), dtype=DTYPE)).to(DTYPE)
        if vel.numel() != pos.numel():
            raise ValueError(f"joint velocities must have the shape of the positions {tuple(pos.shape)}, got "
                             f"{tuple(vel.shape)}")
        vel = vel.reshape(pos.shape)
        base = self.initial_state(batch=pos.shape[0]) if state is None else state
        return State(*jnt.state_from_coordinates(self.joints, self.params().joint_params(), base, pos, vel))

    def initial_state(self, batch: int = 1) -> State:
        """The bodies' initial state repeated over `batch` worlds (torch, on the graph of the shapes'
        tensors). Edit it and pass it to run/rollout to simulate different worlds together."""
        if not self.bodies:
            raise ValueError("the world has no dynamic bodies; add a Sphere, Box or Capsule first")
        x = torch.stack([b.position for b in self.bodies])
        q = torch.stack([b.orientation for b in self.bodies])
        v = torch.stack([b.velocity for b in self.bodies])
        w_world = torch.stack([b.angular_velocity for b in self.bodies])
        om = (quat.to_matrix(q).transpose(-1, -2) @ w_world[..., None])[..., 0]
        rep = lambda t: t.unsqueeze(0).expand((batch,) + t.shape)  # noqa: E731
        return State(rep(x), rep(q), rep(v), rep(om))

    # --- simulation -------------------------------------------------------------------------------
    def _controls(self, controls, steps, B, torch_ok):
        nb = len(self.bodies)
        if controls is None:
            return torch.zeros(steps, B, nb, 6, dtype=DTYPE)
        u = controls if isinstance(controls, torch.Tensor) else torch.as_tensor(np.asarray(controls), dtype=DTYPE)
        u = u.to(DTYPE)
        if not torch_ok:
            u = u.detach()
        if u.shape == (steps, nb, 6):
            return u.unsqueeze(1).expand(steps, B, nb, 6)
        if u.shape == (steps, B, nb, 6):
            return u
        raise ValueError(f"controls must have shape (steps, bodies, 6) = {(steps, nb, 6)} or "
                         f"(steps, worlds, bodies, 6) = {(steps, B, nb, 6)}: force (N) then torque (N·m) per "
                         f"body, world frame; got {tuple(u.shape)}")

    def _check_state(self, state):
        if state is None:
            return self.initial_state(), False
        if not isinstance(state, State) or state.position.dim() != 3:
            raise ValueError("state must be a simcore.rigid State with (worlds, bodies, ·) tensors, "
                             "e.g. world.initial_state(batch=8)")
        return state, True

    def _failure(self, info, step, traj_fn):
        rep = info.report
        bad = (~rep.converged).nonzero()[:, 0]
        if len(bad) == 0 and torch.isfinite(info.w).all():
            return
        b = int(bad[0]) if len(bad) else 0
        msg = (f"contact solve did not converge at step {step + 1} (t = {(step + 1) * self.dt:.4g} s, world "
               f"{b}): scaled residual {float(rep.residual[b]):.3e} m/s, central-path error "
               f"{float(rep.complementarity[b]):.3e} after {self.max_iterations} iterations (rtol "
               f"{self.rtol:g}). Try a smaller dt, a larger kappa, a larger max_iterations or rtol.")
        if self.on_failure == "warn" and torch.isfinite(info.w).all():
            warnings.warn(msg, RuntimeWarning, stacklevel=3)
            return
        raise ContactSolveError(msg, frame=step + 1, substep=None, trajectory=traj_fn())

    def _actuation(self, actuation, steps, B, torch_ok):
        na = self.actuators
        if actuation is None:
            return torch.zeros(steps, B, na, dtype=DTYPE)
        a = actuation if isinstance(actuation, torch.Tensor) else torch.as_tensor(np.asarray(actuation), dtype=DTYPE)
        a = a.to(DTYPE)
        if not torch_ok:
            a = a.detach()
        if a.shape == (steps, na):
            return a.unsqueeze(1).expand(steps, B, na)
        if a.shape == (steps, B, na):
            return a
        raise ValueError(f"actuation must have shape (steps, actuated joints) = {(steps, na)} or (steps, worlds, "
                         f"actuated joints) = {(steps, B, na)}: torque (N·m, revolute) or force (N, prismatic) per "
                         f"actuated joint (Revolute(..., actuated=True)); got {tuple(a.shape)}")

    def run(self, steps: int, controls=None, state: State | None = None, actuation=None) -> Trajectory:
        """Simulate `steps` steps at κ = kappa. controls: (steps, bodies, 6) or (steps, worlds, bodies, 6)
        force N and torque N·m per body, world frame, constant over each step. actuation: (steps,
        actuators) or (steps, worlds, actuators), torque N·m (revolute) or force N (prismatic) of each
        actuated joint, on the child and its reaction on the parent, constant over each step. state: a
        batched State (from initial_state(batch=B)); then every array of the Trajectory has a worlds axis
        after time."""
        steps = int(steps)
        state, batched = self._check_state(state)
        state = State(*(t.detach() for t in state.tensors()))
        B = state.position.shape[0]
        u = self._controls(controls, steps, B, torch_ok=False)
        act = self._actuation(actuation, steps, B, torch_ok=False)
        if self.stepper == "kernel":
            return self._run_kernel(steps, steps if controls is None else u, state, batched,
                                    None if actuation is None else act)
        params = self.params()
        frames = [state]
        its, res, comp, ncont = [], [], [], []

        def build():
            return self._trajectory(frames, its, res, comp, ncont, batched)

        warm = None
        for k in range(steps):
            state, info = solve_step(self.candidates, state, u[k], params, dt=self.dt, kappa=self.kappa,
                                     rtol=self.rtol, max_iterations=self.max_iterations,
                                     margin=self.contact_margin, warm=warm, joints=self.joint_set,
                                     actuation=act[k])
            warm = info.warm()
            self._failure(info, k, build)
            frames.append(state)
            its.append(info.report.iterations), res.append(info.report.residual)
            comp.append(info.report.complementarity), ncont.append(len(info.selected))
        return build()

    def _run_kernel(self, steps, u, state, batched, actuation=None) -> Trajectory:
        """`run` through the step kernel: all steps of all worlds in one launch (u: controls, or the
        number of steps when there are none). A world whose step fails stops there (on_failure="raise");
        the error carries the trajectory up to the first failure."""
        runner = kernel_step.runner_for(self, state.position.shape[0])
        out = runner.run(self, state.tensors(), u, kappa=self.kappa, stop_on_failure=self.on_failure == "raise",
                         actuation=actuation)
        C, I = runner.C, kernel_step.INFO
        info = torch.as_tensor(out.info)
        its, res = info[..., I["iterations"]].long(), info[..., I["residual"]]
        comp, conv = info[..., I["complementarity"]], info[..., I["converged"]] > 0
        finite = info[..., I["finite"]] > 0
        ncont = (out.flags[..., :C] > 0).any(1).sum(-1)

        def build(k):
            f = out.frames[:k + 1]
            R = quat.to_matrix(torch.as_tensor(f[..., 3:7])).numpy()
            sq = (lambda a: a) if batched else (lambda a: a[:, 0])
            joint = {}
            if self.joints:  # all frames of all worlds as one batch
                g = torch.as_tensor(f).reshape(-1, f.shape[2], 13)
                pos, vel = self._coordinates(State(g[..., :3], g[..., 3:7], g[..., 7:10], g[..., 10:13]))
                joint = dict(joint_position=sq(pos.detach().reshape(f.shape[:2] + (-1,)).numpy()),
                             joint_velocity=sq(vel.detach().reshape(f.shape[:2] + (-1,)).numpy()))
            return Trajectory(
                position=sq(f[..., :3]), orientation=sq(f[..., 3:7]), velocity=sq(f[..., 7:10]),
                angular_velocity=sq(np.einsum("...ij,...j->...i", R, f[..., 10:13])),
                time=np.arange(k + 1) * self.dt, iterations=sq(its[:k].numpy()), residual=sq(res[:k].numpy()),
                complementarity=sq(comp[:k].numpy()), contacts=np.asarray(ncont[:k], dtype=np.int64), **joint)
        if not bool(conv.all()):
            for k in range(steps):
                if bool(conv[k].all()):
                    continue
                report = ipm.SolveReport(its[k], res[k], comp[k], conv[k])
                w = torch.zeros(1) if bool(finite[k].all()) else torch.full((1,), float("nan"))
                self._failure(grad.FailedStep(report, w), k, lambda k=k: build(k))
        return build(steps)

    def _trajectory(self, frames, its, res, comp, ncont, batched):
        sq = (lambda a: a) if batched else (lambda a: a[:, 0] if a.ndim >= 2 else a)
        st = lambda f: np.stack([f(s).detach().numpy() for s in frames])  # noqa: E731
        B = frames[0].position.shape[0]
        seq = lambda xs, dt: np.stack([x.numpy() for x in xs]) if xs else np.zeros((0, B), dt)  # noqa: E731
        return Trajectory(
            position=sq(st(lambda s: s.position)), orientation=sq(st(lambda s: s.orientation)),
            velocity=sq(st(lambda s: s.velocity)), angular_velocity=sq(st(lambda s: s.angular_velocity)),
            time=np.arange(len(frames)) * self.dt, iterations=sq(seq(its, np.int64)),
            residual=sq(seq(res, np.float64)), complementarity=sq(seq(comp, np.float64)),
            contacts=np.asarray(ncont, dtype=np.int64), **self._joint_trajectory(frames, sq))

    def _joint_trajectory(self, frames, sq):
        if not self.joints:
            return {}
        jp = self.params().joint_params()
        coords = [self._coordinates(s, jp) for s in frames]
        return dict(joint_position=sq(np.stack([p.detach().numpy() for p, _ in coords])),
                    joint_velocity=sq(np.stack([v.detach().numpy() for _, v in coords])))

    def rollout(self, steps: int, controls=None, state: State | None = None,
                kappa: float | None = None, actuation=None) -> grad.Rollout:
        """Differentiable simulation at κ = kappa_grad (default): returns a Rollout of torch tensors on
        the autograd graph of controls, state and any tensor-valued shape parameter (mass, inertia, size,
        density, friction, initial state). Gradients come from the implicit function theorem at each
        step's solution (one linear solve per step, reusing the step's factorization). Arguments as for
        run; `actuation` and joint parameters (anchor, axis, stiffness, damping, rest, limits) may be on
        the graph too."""
        steps = int(steps)
        state, batched = self._check_state(state)
        u = self._controls(controls, steps, state.position.shape[0], torch_ok=True)
        act = self._actuation(actuation, steps, state.position.shape[0], torch_ok=True)
        return grad.rollout(self, steps, u, state, batched, self.kappa_grad if kappa is None else float(kappa), act)
