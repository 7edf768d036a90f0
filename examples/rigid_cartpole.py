"""Cartpole swing-up by trajectory optimisation through the simulator's gradients.

A cart slides on a frictionless rail (Prismatic joint to the world, actuated: a horizontal force) and
carries a pole on a hinge (Revolute joint, not actuated) that hangs down at rest. The per-step forces
u (steps,) N are optimised with L-BFGS on
    (θ_T − π)² + 0.1 θ̇_T² + 0.1 x_T² + 0.01 ẋ_T² + effort · Σ u² dt
(θ the hinge angle, x the cart displacement, at the final step T) through World.rollout, whose
gradients come from the implicit function theorem at every step. The optimised forces are then replayed
with World.run and the final state printed.

    python examples/rigid_cartpole.py
    python examples/rigid_cartpole.py --steps 30 --iters 40
"""

import argparse
import math

import torch

import simcore.rigid as rigid

DT = 0.05


def cartpole(dt=DT):
    """World with a 1 kg cart (prismatic along x, actuated) and a 0.2 kg, 0.6 m pole hinged on it."""
    world = rigid.World(dt=dt, gravity=(0, -9.81, 0), rtol=1e-10)
    cart = world.add(rigid.Box(size=(0.3, 0.15, 0.15), mass=1.0))
    pole = world.add(rigid.Box(size=(0.04, 0.6, 0.04), mass=0.2, position=(0, -0.3, 0)))
    world.add(rigid.Prismatic(parent=None, child=cart, anchor=(0, 0, 0), axis=(1, 0, 0), actuated=True))
    world.add(rigid.Revolute(parent=cart, child=pole, anchor=(0, 0, 0), axis=(0, 0, 1)))
    return world


def objective(joint_position, joint_velocity, force, dt, effort):
    """The swing-up loss from final joint coordinates [x, θ] and rates (2,), and forces (steps,)."""
    x, theta = joint_position[0], joint_position[1]
    xd, thetad = joint_velocity[0], joint_velocity[1]
    return (theta - math.pi) ** 2 + 0.1 * thetad**2 + 0.1 * x**2 + 0.01 * xd**2 + effort * dt * (force**2).sum()


def optimize(steps=40, iters=30, effort=1e-4, verbose=True):
    """Returns (forces (steps,) N, first loss, best loss, replayed final [x, θ], [ẋ, θ̇])."""
    world = cartpole()
    force = torch.zeros(steps, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([force], lr=1.0, max_iter=iters, line_search_fn="strong_wolfe")
    history = []

    def closure():
        opt.zero_grad()
        out = world.rollout(steps=steps, actuation=force[:, None])
        loss = objective(out.joint_position[-1], out.joint_velocity[-1], force, world.dt, effort)
        loss.backward()
        history.append(float(loss.detach()))
        if verbose:
            print(f"evaluation {len(history):3d}: loss {history[-1]:.4e}  θ_T = {float(out.joint_position[-1, 1]):+.4f} rad")
        return loss

    opt.step(closure)
    traj = world.run(steps=steps, actuation=force.detach()[:, None])
    return force.detach(), history[0], min(history), traj.joint_position[-1], traj.joint_velocity[-1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=40, help=f"horizon in steps of {DT} s")
    parser.add_argument("--iters", type=int, default=30, help="L-BFGS iterations")
    parser.add_argument("--effort", type=float, default=1e-4, help="weight of Σ u² dt")
    parser.add_argument("--reduced", action="store_true", help="short run (tests)")
    args = parser.parse_args()
    if args.reduced:
        args.steps, args.iters = 20, 6
    force, first, best, q, qd = optimize(args.steps, args.iters, args.effort)
    print(f"loss {first:.3e} → {best:.3e}; replay with World.run: θ_T = {q[1]:+.4f} rad (upright π), "
          f"θ̇_T = {qd[1]:+.3f} rad/s, x_T = {q[0]:+.4f} m, ẋ_T = {qd[0]:+.3f} m/s; "
          f"peak force {float(force.abs().max()):.1f} N")


if __name__ == "__main__":
    main()
