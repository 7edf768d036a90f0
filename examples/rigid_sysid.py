"""Recover a friction coefficient from an observed sliding trajectory.

An "observed" trajectory of a box launched across a plane is simulated with hard contact at the true
μ (`--true-mu`). Starting from a wrong guess (`--guess`), we fit μ by minimizing the squared position
error of a differentiable rollout (World.rollout, gradients by the implicit function theorem) with a
few L-BFGS iterations over log μ.

    python examples/rigid_sysid.py --true-mu 0.35 --guess 0.6
"""

import argparse

import torch

import simcore.rigid as rigid


def make_world(mu, dt):
    world = rigid.World(dt=dt, gravity=(0, -9.81, 0), kappa=1e-6, kappa_grad=1e-5)
    world.add(rigid.Plane(point=(0, 0, 0), normal=(0, 1, 0), friction=mu))
    world.add(rigid.Box(size=(0.4, 0.4, 0.4), density=500.0, position=(0, 0.2, 0), velocity=(3.0, 0, 1.0)))
    return world


def observe(true_mu, steps, dt):
    """Positions (steps + 1, 3) m of the box under hard contact (World.run) at the true μ."""
    return torch.tensor(make_world(true_mu, dt).run(steps=steps).position[:, 0])


def fit(true_mu=0.35, guess=0.6, iters=15, steps=40, dt=0.02, verbose=True):
    """Returns (estimated μ, initial loss, final loss)."""
    observed = observe(true_mu, steps, dt)
    # Fit log μ: keeps μ positive whatever step the line search tries.
    log_mu = torch.tensor(guess, dtype=torch.float64).log().requires_grad_(True)
    opt = torch.optim.LBFGS([log_mu], lr=1.0, max_iter=iters, line_search_fn="strong_wolfe")
    history = []

    def closure():
        opt.zero_grad()
        mu = log_mu.exp()
        out = make_world(mu, dt).rollout(steps=steps)
        loss = ((out.position[:, 0] - observed) ** 2).sum()
        loss.backward()
        history.append(float(loss.detach()))
        if verbose:
            print(f"μ = {float(mu):.5f}  loss {history[-1]:.3e}")
        return loss

    opt.step(closure)
    return float(log_mu.detach().exp()), history[0], min(history)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--true-mu", type=float, default=0.35)
    parser.add_argument("--guess", type=float, default=0.6)
    parser.add_argument("--iters", type=int, default=15, help="L-BFGS iterations")
    parser.add_argument("--steps", type=int, default=40, help="observed steps (dt = 0.02 s)")
    args = parser.parse_args()
    mu, first, last = fit(args.true_mu, args.guess, args.iters, args.steps)
    print(f"estimated μ = {mu:.4f} (true {args.true_mu}, error {100 * abs(mu / args.true_mu - 1):.2f} %); "
          f"loss {first:.3e} → {last:.3e}")


if __name__ == "__main__":
    main()
