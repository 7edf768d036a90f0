"""The rigid step through the Taichi kernel (`kernels/`), in the torch types of step.py.

`World.run` hands whole runs to `kernels.runner` (many steps per kernel launch). The differentiable
rollout solves one step per launch here and passes the solution, in the reference layout of
`integrator.sizes`, with the kernel's contact decisions, to the implicit-function-theorem backward of
`grad.py`. There the adjoint kernel (kernels/adjoint.py) solves (∂r/∂w)ᵀ λ = g, and Taichi's reverse mode
of the step equations (kernels/vjp.py) gives the vector–Jacobian product λᵀ ∂r/∂θ with respect to the
state, controls, actuation and parameters at that solution: no torch step runs in a kernel rollout.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from .. import backend
from ..errors import BackendError
from . import ipm
from .kernels.contact import DECISIONS
from .kernels.runner import (  # noqa: F401  (re-exported for grad.py and world.py)
    INFO,
    float_tables,
    from_reference_layout,
    rows_to_reference_layout,
    runner_for,
    to_reference_layout,
    unsupported,
)
from .step import DTYPE, Params, State, StepInfo

_reference_stepping = False


@contextmanager
def reference_stepper():
    """For tests only: inside this block World.run and World.rollout step through the torch reference
    (step.solve_step, and grad.py's all-torch backward) instead of the kernel. The tests check the kernel
    against it; it is a test oracle, not a production path (45–420× slower: docs/rigid.md, Measurements)."""
    global _reference_stepping
    prior, _reference_stepping = _reference_stepping, True
    try:
        yield
    finally:
        _reference_stepping = prior


def stepper(world) -> str:
    """"kernel", the one production stepper; "torch" only inside `reference_stepper()`. Raises
    BackendError where the kernel cannot step `world` (a Vulkan device without 64-bit floats)."""
    if _reference_stepping:
        return "torch"
    why = unsupported(world)
    if why is not None:
        raise BackendError(
            f"simcore.rigid steps worlds in a float64 Taichi kernel, which cannot step this world here: {why}. "
            f"Start simcore on the CPU (simcore.init(arch=\"cpu\")) or on a CUDA device for rigid-body "
            f"worlds; the interior-point solve needs float64, so a float32 kernel is no way round it "
            f"(docs/rigid.md).")
    return "kernel"


# Taichi 1.7's reverse mode of kernels with ndarray arguments (kernels/vjp.py) runs on the CPU and CUDA:
# on Vulkan (lavapipe) its gradients came back zero. There the product λᵀ ∂r/∂θ is torch autograd
# (grad.reference_vjp), after the adjoint kernel's solve.


@dataclass
class JointDecisions:
    """The joint part of a kernel step's StepInfo: the limits' active set (what grad.py holds fixed)."""
    decisions: dict


def step(world, state: State, controls, kappa: float, warm: bool, actuation=None):
    """One step of every world of the batched `state` under controls (B, bodies, 6) and actuation (B,
    actuators) at κ = kappa. warm: continue from the previous call's solution (consecutive steps of one
    rollout). Returns (next State, StepInfo) like step.solve_step; the StepInfo's `adjoint` solves the
    backward pass's (∂r/∂w)ᵀ λ = g in the adjoint kernel (no Jacobian is assembled in torch)."""
    runner = runner_for(world, state.position.shape[0])
    out = runner.run(world, state.tensors(), controls.detach()[None], kappa=kappa, stop_on_failure=False,
                     keep_solution=True, warm=warm, actuation=None if actuation is None else actuation.detach()[None])
    return _step_of(world, runner, out, 0, kappa)


def run(world, state: State, controls, kappa: float, actuation=None):
    """All steps of a rollout in one launch: controls (T, B, bodies, 6), actuation (T, B, actuators) or
    None, known in advance. Returns [(next State, StepInfo)] for each step, as `step` would one at a
    time (each step warm-started from the one before)."""
    runner = runner_for(world, state.position.shape[0])
    out = runner.run(world, state.tensors(), controls.detach(), kappa=kappa, stop_on_failure=False,
                     keep_solution=True, actuation=None if actuation is None else actuation.detach())
    return [_step_of(world, runner, out, t, kappa) for t in range(controls.shape[0])]


def _step_of(world, runner, out, t, kappa):
    """(next State, StepInfo) of step t of the KernelRun `out` (kept solutions)."""
    B, nb = out.frames.shape[1:3]
    C, m, L = runner.C, runner.m, runner.L
    info, flags = out.info[t], out.flags[t]
    active = flags[:, :C] > 0
    impact = flags[:, C:2 * C] > 0
    selected = np.flatnonzero(active.any(0))
    solution = out.solution[t][:, :runner.N]
    w = torch.as_tensor(to_reference_layout(solution, nb, C, selected, m, L), dtype=DTYPE)
    report = ipm.SolveReport(torch.as_tensor(info[:, INFO["iterations"]]).long(),
                             torch.as_tensor(info[:, INFO["residual"]]), torch.as_tensor(info[:, INFO["complementarity"]]),
                             torch.as_tensor(info[:, INFO["converged"]] > 0))
    decisions = {"active": torch.as_tensor(active), "impact": torch.as_tensor(impact)}
    decisions.update(_model_decisions(runner, out.solution[t][:, runner.N:].reshape(B, C, DECISIONS)))
    joints = None
    if world.joints:
        joints = JointDecisions({"limit_active": torch.as_tensor(flags[:, 2 * C:2 * C + L] > 0)})
    start = _state(out.frames[t]).tensors()
    tables, dt, margin = runner.table_arrays(), world.dt, world.contact_margin

    def adjoint_kernel_layout(g):
        gk = from_reference_layout(g.detach().numpy(), nb, C, selected, m, L)
        return runner.adjoint(tables, dt, margin, start, solution, gk)

    def adjoint(g):
        """λ (B, N) = (∂r/∂w)⁻ᵀ g at this step's solution, both in the reference layout."""
        return torch.as_tensor(rows_to_reference_layout(adjoint_kernel_layout(g), nb, C, selected, m, L), dtype=DTYPE)

    def vjp(g, inputs, needs):
        """The step's implicit-function-theorem gradient, all in kernels: λ = (∂r/∂w)⁻ᵀ g (adjoint kernel),
        then −λᵀ ∂r/∂θ (kernels/vjp.py). g (B, N) reference layout; inputs the step's autograd inputs (x,
        q, v, ω, controls, actuation, *Params tensors); needs which of them want a gradient. Returns their
        gradients (None where not needed)."""
        lam = adjoint_kernel_layout(g)
        controls, actuation, params = inputs[4], inputs[5], inputs[6:]
        tau = None
        if actuation.shape[-1] and len(runner.actuated):
            tau = np.zeros((B, runner.n1))
            tau[:, runner.actuated] = actuation.detach().numpy()
        float_tabs = None
        if any(needs[6:]):
            with torch.enable_grad():
                wanted = [p.detach().requires_grad_(need) for p, need in zip(params, needs[6:])]
                float_tabs = float_tables(world, Params(*wanted))
            body = float_tabs[0].detach().numpy().copy()
            body[:, 10] = tables[0][:, 10]
            numeric = (body,) + tuple(t.detach().numpy() for t in float_tabs[1:])
        else:
            numeric = (tables[0], tables[2], tables[4], tables[6])
        gravity = params[Params.FIELDS.index("gravity")].detach().numpy()
        grads = runner.vjp(numeric, dt, margin, start, controls.detach().numpy(), tau, gravity, solution, lam,
                           flags[:, 2 * C:2 * C + L], active)
        st = -torch.as_tensor(grads["st"][0])
        out = [st[..., :3], st[..., 3:7], st[..., 7:10], st[..., 10:13], -torch.as_tensor(grads["ctrl"]),
               -torch.as_tensor(grads["tau"][:, runner.actuated]) if tau is not None else torch.zeros_like(actuation)]
        out += [None] * len(params)
        if float_tabs is not None:
            g_grav = torch.as_tensor(grads["grav"])
            targets = list(float_tabs) + [wanted[Params.FIELDS.index("gravity")]]
            cotangents = [-torch.as_tensor(grads[k]) for k in ("body", "cf", "jt_f", "rw_f")] + [-g_grav]
            keep = [k for k, t in enumerate(targets) if t.requires_grad]
            want = [p for p in wanted if p.requires_grad]
            got = torch.autograd.grad([targets[k] for k in keep], want, [cotangents[k] for k in keep],
                                      allow_unused=True)
            got = iter(got)
            for k, p in enumerate(wanted):
                if p.requires_grad:
                    grad = next(got)
                    out[6 + k] = torch.zeros_like(p) if grad is None else grad
        return [o if need else None for o, need in zip(out, needs)]

    return _state(out.frames[t + 1]), StepInfo(report, w, None, torch.as_tensor(selected, dtype=torch.long),
                                              decisions, None, kappa, joints, adjoint=adjoint,
                                              vjp=None if backend.active().arch == "vulkan" else vjp)


def _state(frame) -> State:
    """A State from a kernel frame (B, bodies, 13: x, q, v, ω body frame)."""
    f = torch.as_tensor(frame)
    return State(f[..., :3], f[..., 3:7], f[..., 7:10], f[..., 10:13])


def _model_decisions(runner, dec):
    """The discrete choices of the sphere–box, capsule–box and box–box models (pairs.ball_box,
    pairs.segment_face, box_box.face_manifold, box_box.edge_edge) from the kernel's per-candidate decision
    numbers dec (B, C, DECISIONS), in the reference's keys and shapes."""
    out = {}
    if "box-face" in runner.model_rows:
        r0, K = runner.model_rows["box-face"]
        d = torch.as_tensor(dec[:, r0:r0 + 24 * K]).reshape(dec.shape[0], K, 24, DECISIONS)
        first = d[:, :, 0]                                 # the pair's choices, in each of its 24 rows
        out.update(bb_ref_b=first[..., 0] > 0.5, bb_k=first[..., 1].long(), bb_sign=first[..., 2].clone(),
                   bb_j=first[..., 3].long(), bb_tau=first[..., 4].clone(), bb_valid=d[..., 5] > 0.5)
    if "edge-edge" in runner.model_rows:
        r0, K = runner.model_rows["edge-edge"]
        d = torch.as_tensor(dec[:, r0:r0 + K])
        out.update(ee_i=d[..., 0].long(), ee_j=d[..., 1].long(), ee_sign=d[..., 2].clone(),
                   ee_sgn_a=d[..., 3:6].clone(), ee_sgn_b=d[..., 6:9].clone(), ee_valid=d[..., 9] > 0.5)
    if "ball-box" in runner.model_rows:
        r0, K = runner.model_rows["ball-box"]
        d = torch.as_tensor(dec[:, r0:r0 + K])
        out.update(sb_clamp=d[..., 0:3] > 0.5, sb_sign=d[..., 3:6].clone(), sb_outside=d[..., 6] > 0.5)
    if "segment-face" in runner.model_rows:
        r0, K = runner.model_rows["segment-face"]
        d = torch.as_tensor(dec[:, r0:r0 + 2 * K:2])      # both slots of a pair carry the pair's choices
        out.update(cb_k=d[..., 0].long(), cb_sign=d[..., 1].clone(), cb_axis=d[..., 2:4].long(),
                   cb_bound=d[..., 4:6].clone(), cb_valid=d[..., 6:8] > 0.5)
    return out
