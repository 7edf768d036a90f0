"""Soft-robot control: a 2D soft walker (DiffTaichi-style) learns a gait through differentiable
rollouts, open loop (a learnt periodic signal) or closed loop (a neural controller).

The walker is a neo-Hookean slab on two legs; each leg is split lengthwise into two actuator groups
with a vertical fibre (activation a > 0 shortens a half-leg, a < 0 lengthens it, so opposite signs bend
the leg). The actuation (frames × 4 groups, Pa) is a sum of sinusoids at a fixed gait frequency and
its harmonics,
    a_g(t) = a_max · tanh(Σ_k s_gk sin(2π k f t) + c_gk cos(2π k f t) + b_g),
whose coefficients s, c, b are learnt with Adam (loss: −mean x of the particles at the last frame).

With --controller mlp the activations come instead from a small neural network called at every frame
(DiffTaichi's walker): a_g = a_max · tanh(MLP(clock sin/cos, centre-of-mass velocity, each body's
centre relative to the walker's centre)); the network's weights are learnt through the rollout.

    python examples/control_walker.py [--iters 100] [--grid 64] [--frames 120] [--gif out/walker.gif]
                                      [--controller open|mlp]

Prints the loss and distance walked each iteration, and a summary line with the distance walked
before and after training, in body lengths.
"""

import argparse
import math

import numpy as np
import torch

import simcore as sc

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--iters", type=int, default=100)
parser.add_argument("--grid", type=int, default=64)
parser.add_argument("--frames", type=int, default=120, help="frames of 1/60 s")
parser.add_argument("--harmonics", type=int, default=2)
parser.add_argument("--frequency", type=float, default=2.0, help="gait frequency (Hz)")
parser.add_argument("--lr", type=float, default=0.3)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--gif", default=None, help="write a GIF of the walker before and after training")
parser.add_argument("--controller", default="open", choices=["open", "mlp"],
                    help="open-loop periodic signal, or a closed-loop neural controller")
parser.add_argument("--hidden", type=int, default=32, help="hidden units of the mlp controller")
args = parser.parse_args()

sc.init("cpu", "f64")
torch.manual_seed(args.seed)
E = 1e4                              # Pa
A_MAX = 0.25 * E                     # largest activation, Pa
LENGTH, HEIGHT, FLOOR = 0.2, 0.1, 0.1  # body length and height, floor height (m)
GROUPS = 4                           # actuator groups: two halves of each of two legs

# A slab on two legs, each leg split lengthwise into two actuated halves (groups 0, 1 at the back,
# 2, 3 at the front): contracting one half and lengthening the other bends the leg.
# dt = dx / 16, below the CFL choice for the passive material: the active stress stiffens the legs.
scene = sc.Scene(dim=2, grid=args.grid, dt=0.5 / args.grid / 8, particles_per_cell=16)
material = sc.materials.NeoHookean(E=E, nu=0.3, density=1e3)
X0 = 0.1                                                     # the walker's left end at rest (m)
scene.add_body(sc.shapes.Box(center=(X0 + LENGTH / 2, FLOOR + 1.5 * HEIGHT / 2), size=(LENGTH, HEIGHT / 2)),
               material, name="slab")
for g, left in enumerate([0, 1 / 6, 4 / 6, 5 / 6]):
    scene.add_body(sc.shapes.Box(center=(X0 + (left + 1 / 12) * LENGTH, FLOOR + HEIGHT / 4),
                                 size=(LENGTH / 6, HEIGHT / 2)), material, name=f"leg{g}", actuator=g, fibre=(0, 1))
scene.add_collider(sc.colliders.Plane(point=(0, FLOOR), normal=(0, 1), friction=1.0))

frame_dt = 1 / 60
t = torch.arange(args.frames, dtype=torch.float64) * frame_dt                 # (frames,) s
k = torch.arange(1, args.harmonics + 1, dtype=torch.float64)
phase = 2 * math.pi * args.frequency * t[:, None] * k                        # (frames, harmonics)
basis = torch.cat([phase.sin(), phase.cos(), torch.ones(args.frames, 1, dtype=torch.float64)], 1)
coeffs = (0.1 * torch.randn(basis.shape[1], GROUPS, dtype=torch.float64)).requires_grad_()  # near rest


def actuation():
    """(frames, groups) activations, Pa."""
    return A_MAX * torch.tanh(basis @ coeffs)


# The closed-loop controller sees a clock and the walker's state: which particles belong to which body.
body_of = torch.as_tensor(np.repeat(np.arange(len(scene.bodies)), [b.n_particles for b in scene.bodies]))
n_bodies = len(scene.bodies)
net = torch.nn.Sequential(torch.nn.Linear(2 * args.harmonics + 2 + 2 * n_bodies, args.hidden), torch.nn.Tanh(),
                          torch.nn.Linear(args.hidden, GROUPS)).double()
with torch.no_grad():
    net[2].weight.mul_(0.1)  # start near rest, like the open-loop coefficients


def controller(t, obs):
    """(groups,) activations, Pa, for the frame starting at time t (s), from the current state."""
    x, v = obs["x"], obs["v"]
    centre = x.mean(0)
    bodies = torch.stack([x[body_of == b].mean(0) for b in range(n_bodies)]) - centre   # (bodies, 2) m
    clock = 2 * math.pi * args.frequency * t * k                                         # (harmonics,)
    features = torch.cat([clock.sin(), clock.cos(), v.mean(0), 10 * bodies.reshape(-1)])
    return A_MAX * torch.tanh(net(features))


def rollout():
    if args.controller == "mlp":
        return scene.rollout(frames=args.frames, frame_dt=frame_dt, controller=controller)
    return scene.rollout(frames=args.frames, frame_dt=frame_dt, actuation=actuation())


def walked(x):
    """Distance (body lengths) the particles' mean x moved from the first frame to the last."""
    return (x[-1, :, 0].mean() - x[0, :, 0].mean()).item() / LENGTH


with torch.no_grad():
    before = rollout().x
optimizer = torch.optim.Adam([coeffs] if args.controller == "open" else net.parameters(),
                             lr=args.lr if args.controller == "open" else args.lr / 10)
for it in range(args.iters):
    optimizer.zero_grad()
    x = rollout().x
    loss = -x[-1, :, 0].mean()  # walk right: the mean x at the last frame, negated
    loss.backward()
    optimizer.step()
    print(f"iter {it:3d}  loss {loss.item():+.4f} m  walked {walked(x.detach()):+.3f} body lengths", flush=True)
with torch.no_grad():
    after = rollout().x

print(f"after {args.iters} iterations: walked {walked(after):+.3f} body lengths in {args.frames * frame_dt:g} s "
      f"(before training {walked(before):+.3f}); loss {-before[-1, :, 0].mean().item():+.4f} -> "
      f"{-after[-1, :, 0].mean().item():+.4f} m")

if args.gif:
    # Both walkers in one picture, one colour each (the legend says which is which).
    n = before.shape[1]
    both = sc.Trajectory(x=torch.cat([before, after], 1).numpy(), t=np.arange(args.frames + 1) * frame_dt,
                         body_id=np.repeat([0, 1], n), material_id=np.zeros(2 * n, int), mass=np.ones(2 * n),
                         volume=np.full(2 * n, scene.dx**2 / 16), body_names=["before training", "after training"],
                         material_names=["walker"], meta={"dim": 2, "grid": args.grid, "frame_dt": frame_dt})
    sc.viz.render(both, args.gif, colliders=scene.colliders, frames=range(0, args.frames + 1, 2), fps=30,
                  title=f"soft walker, {'open-loop gait' if args.controller == 'open' else 'neural controller'}")
    print(f"wrote {args.gif}")
