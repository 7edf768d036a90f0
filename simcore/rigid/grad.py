"""Differentiable rollouts: each step is a torch.autograd.Function whose backward applies the implicit
function theorem at the step's solution (Dojo §V).

At the solution w* of r(w; θ) = 0 (θ: start-of-step state, controls, masses, inertias, sizes,
frictions), dw*/dθ = −(∂r/∂w)⁻¹ ∂r/∂θ. Backward therefore needs one solve λ = (∂r/∂w)⁻ᵀ ḡ and one
vector–Jacobian product −λᵀ ∂r/∂θ. When the kernel stepped, both are kernels (StepInfo.vjp: the adjoint
kernel, kernels/adjoint.py, with the step kernel's block elimination; then Taichi's reverse mode of the
step equations, kernels/vjp.py). The torch step (where the kernel cannot run) solves with its own
Jacobian, factorized in forward, and takes the product from torch autograd through `integrator.equations`
and `collision.detect` with the forward's discrete contact decisions held fixed (`reference_vjp`, also
the kernels' test reference). The rollout solves at κ_grad, so the gradients are those of the relaxed,
smooth dynamics it returns.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import integrator, kernel_step
from . import joints as jnt
from .step import Params, State, contacts_for, equations, solve_step


@dataclass
class Rollout:
    """A differentiable run (torch, float64, on the autograd graph). Shapes without a batch axis unless
    the run was batched: position (steps + 1, [B,] bodies, 3) m; orientation (…, 4) (w, x, y, z); velocity
    (…, 3) m/s; angular_velocity (…, 3) rad/s world frame; iterations (steps, [B]) long interior-point
    iterations; joint_position, joint_velocity (steps + 1, [B,] dofs) minimal coordinates and rates of the
    joints (World.joint_positions layout; None without joints)."""
    position: torch.Tensor
    orientation: torch.Tensor
    velocity: torch.Tensor
    angular_velocity: torch.Tensor
    iterations: torch.Tensor
    joint_position: torch.Tensor | None = None
    joint_velocity: torch.Tensor | None = None


@dataclass
class FailedStep:
    """The part of a StepInfo that World._failure reads: the solve report and the solution (its finiteness)."""
    report: object
    w: torch.Tensor


class _Step(torch.autograd.Function):
    """(x, q, v, ω, controls, actuation, *params) → (v_{k+1}, ω_{k+1}) for all worlds."""

    @staticmethod
    def forward(ctx, world, kappa, memo, x, q, v, om, controls, actuation, *params):
        state, prm = State(x, q, v, om), Params(*params)
        if "plan" in memo:  # the kernel solved every step of the rollout in one launch (`rollout`)
            nxt, info = memo["plan"].pop(0)
        else:
            nxt, info = solve_step(world.candidates, state, controls, prm, dt=world.dt, kappa=kappa,
                                   rtol=world.rtol, max_iterations=world.max_iterations,
                                   margin=world.contact_margin, warm=memo.get("warm"), joints=world.joint_set,
                                   actuation=actuation)
            memo["warm"] = info.warm()
        memo["info"] = info
        ctx.world, ctx.kappa, ctx.info = world, kappa, info
        ctx.adjoint = info.adjoint
        if ctx.adjoint is None:  # the torch step: factorize its Jacobian now, solve with it in backward
            lu = torch.linalg.lu_factor(info.jacobian())
            ctx.adjoint = lambda g: torch.linalg.lu_solve(*lu, g[..., None], adjoint=True)[..., 0]
        ctx.save_for_backward(x, q, v, om, controls, actuation, *params)
        return nxt.velocity, nxt.body_angular_velocity

    @staticmethod
    def backward(ctx, g_v, g_om):
        world, info = ctx.world, ctx.info
        x, q, v, om, controls, actuation, *params = ctx.saved_tensors
        B, nb = x.shape[:2]
        N = info.w.shape[-1]
        g_w = torch.zeros(B, N, dtype=x.dtype)
        g_v = torch.zeros_like(v) if g_v is None else g_v
        g_om = torch.zeros_like(om) if g_om is None else g_om
        g_w[:, :6 * nb] = torch.cat([g_v, g_om], -1).reshape(B, -1)
        if info.vjp is not None:  # the kernel stepped: both halves in kernels
            return (None, None, None, *info.vjp(g_w, ctx.saved_tensors, ctx.needs_input_grad[3:]))
        lam = ctx.adjoint(g_w)
        return (None, None, None, *reference_vjp(world, info, ctx.kappa, lam, ctx.saved_tensors,
                                                 ctx.needs_input_grad[3:]))


def reference_vjp(world, info, kappa, lam, inputs, needs):
    """−λᵀ ∂r/∂θ by torch autograd through the torch step equations (`integrator.equations`,
    `collision.detect` with the forward's discrete decisions held fixed): the backward of the torch
    step, and the reference the kernels' VJP (kernels/vjp.py) is tested against. lam (B, N) reference
    layout; inputs (x, q, v, ω, controls, actuation, *Params tensors); needs: which want a gradient."""
    inputs = [t.detach().requires_grad_(need) for t, need in zip(inputs, needs)]
    with torch.enable_grad():
        st, u, act, prm = tuple(inputs[:4]), inputs[4], inputs[5], Params(*inputs[6:])
        contacts, _ = contacts_for(world.candidates, st, prm, world.dt, world.contact_margin,
                                   decisions=info.decisions)
        contacts = contacts.select(info.selected)
        joint_step = None if info.joints is None else jnt.prepare(
            world.joint_set, st, prm.joint_params(), act, world.dt, world.contact_margin,
            decisions=info.joints.decisions)
        r, _ = equations(info.w, kappa, st, u, prm, contacts, world.dt, jacobian=False, joint_step=joint_step)
        wanted = [t for t in inputs if t.requires_grad]
        grads = iter(torch.autograd.grad(-(lam * r).sum(), wanted, allow_unused=True)) if wanted else iter(())
    return [next(grads) if t.requires_grad else None for t in inputs]


def rollout(world, steps: int, controls, state: State, batched: bool, kappa: float, actuation=None) -> Rollout:
    """Differentiable run of `world` (a simcore.rigid World; see World.rollout) from `state`, a batched
    State of B worlds, under controls (steps, B, bodies, 6) (force N, torque N·m, world frame) and
    actuation (steps, B, actuators) (N·m or N per actuated joint), at κ = kappa. batched: keep the worlds
    axis in the Rollout (else world 0 only, without it)."""
    B = state.position.shape[0]
    params = world.params().tensors()
    x, q, v, om = state.tensors()
    frames, its = [State(x, q, v, om)], []
    memo = {}
    if actuation is None:
        actuation = torch.zeros(steps, B, world.actuators, dtype=x.dtype)
    if world.stepper == "kernel" and steps:
        # The controls are known in advance: the kernel solves all steps in one launch; each step's
        # autograd node then takes its solution from this plan.
        memo["plan"] = kernel_step.run(world, State(x, q, v, om), controls, kappa,
                                       actuation if world.actuators else None)
    for k in range(steps):
        v, om = _Step.apply(world, kappa, memo, x, q, v, om, controls[k], actuation[k], *params)
        world._failure(memo["info"], k, lambda: None)
        x, q = integrator.advance(x, q, v, om, world.dt)
        frames.append(State(x, q, v, om))
        its.append(memo["info"].report.iterations)
    sq = (lambda t: t) if batched else (lambda t: t[:, 0])
    stack = lambda f: sq(torch.stack([f(s) for s in frames]))  # noqa: E731
    iterations = torch.stack(its) if its else torch.zeros(0, B, dtype=torch.long)
    joint = {}
    if world.joints:
        jp = Params(*params).joint_params()
        coords = [jnt.coordinates(world.joints, world.joint_set, jp, s) for s in frames]
        joint = dict(joint_position=sq(torch.stack([p for p, _ in coords])),
                     joint_velocity=sq(torch.stack([v_ for _, v_ in coords])))
    return Rollout(position=stack(lambda s: s.position), orientation=stack(lambda s: s.orientation),
                   velocity=stack(lambda s: s.velocity), angular_velocity=stack(lambda s: s.angular_velocity),
                   iterations=iterations if batched else iterations[:, 0], **joint)
