"""A pendulum and a double pendulum built from joints (simcore.rigid.Revolute), measured against their laws.

The pendulum is a point-like bob (radius 5 mm) on a hinge at distance L from it, released from rest at
each amplitude; its period (from the zero crossings of the hinge angle) is printed next to the small-
amplitude law 2π√(L/g) and the exact period 4√(L/g)·K(sin²(θ₀/2)). All amplitudes run as one batch of
worlds, set from joint angles with World.state_from_joints. The double pendulum (two rods of 0.5 m on two
hinges) prints its energy error: bounded, shrinking as dt².

    python examples/rigid_pendulum.py
    python examples/rigid_pendulum.py --amplitudes 0.05 1 2 3 --length 1 --dt 0.005
"""

import argparse
import math

import numpy as np
import torch
from scipy.special import ellipk

import simcore.rigid as rigid
from simcore.rigid import quaternion as quat

G = 9.81


def pendulum(length=1.0, dt=0.01):
    """A World with a 1 kg point-like bob hanging `length` m below a hinge about z at the origin."""
    world = rigid.World(dt=dt, gravity=(0, -G, 0), rtol=1e-10)
    bob = world.add(rigid.Sphere(radius=0.005, mass=1.0, position=(0, -length, 0)))
    world.add(rigid.Revolute(parent=None, child=bob, anchor=(0, 0, 0), axis=(0, 0, 1)))
    return world


def period(time, angle):
    """Twice the mean interval between successive zero crossings (linear interpolation), s."""
    s = np.sign(angle)
    i = np.nonzero(s[:-1] != s[1:])[0]
    crossings = time[i] - angle[i] * (time[i + 1] - time[i]) / (angle[i + 1] - angle[i])
    return 2 * np.diff(crossings).mean() if len(crossings) > 1 else float("nan")


def exact_period(amplitude, length):
    """4√(L/g)·K(m), m = sin²(θ₀/2) (scipy's ellipk takes the parameter m = k²)."""
    return 4 * math.sqrt(length / G) * ellipk(math.sin(amplitude / 2) ** 2)


def measure_periods(amplitudes, length=1.0, dt=0.01):
    """Measured and exact periods (s) for each amplitude (rad), one batched run covering 0.8 of the
    longest exact period (enough for two zero crossings)."""
    world = pendulum(length, dt)
    state = world.state_from_joints(torch.tensor(amplitudes, dtype=torch.float64)[:, None])
    steps = int(math.ceil(0.8 * max(exact_period(a, length) for a in amplitudes) / dt)) + 2
    traj = world.run(steps=steps, state=state)
    measured = [period(traj.time, traj.joint_position[:, b, 0]) for b in range(len(amplitudes))]
    return np.array(measured), np.array([exact_period(a, length) for a in amplitudes])


def double_pendulum(dt=0.01, seconds=2.0, angles=(1.0, -0.5)):
    """Run two 1 kg rods (0.05 × 0.5 × 0.05 m) hinged to the world and to each other from joint angles
    (rad) at rest. Returns (times (n,), energy (n,) J with velocities averaged over the steps around each
    pose, largest gap between the rods' hinge points m)."""
    world = rigid.World(dt=dt, gravity=(0, -G, 0), rtol=1e-10)
    rod = 0.5
    a = world.add(rigid.Box(size=(0.05, rod, 0.05), mass=1.0, position=(0, -rod / 2, 0)))
    b = world.add(rigid.Box(size=(0.05, rod, 0.05), mass=1.0, position=(0, -1.5 * rod, 0)))
    world.add(rigid.Revolute(parent=None, child=a, anchor=(0, 0, 0), axis=(0, 0, 1)))
    world.add(rigid.Revolute(parent=a, child=b, anchor=(0, -rod, 0), axis=(0, 0, 1)))
    traj = world.run(steps=int(round(seconds / dt)), state=world.state_from_joints(list(angles)))
    x, q = traj.position[:, 0], traj.orientation[:, 0]
    R = quat.to_matrix(torch.tensor(q)).numpy()
    energy = world.mechanical_energy(traj, world=0)  # velocities averaged around each pose: second order
    hinge_a = x[:, 0] + R[:, 0] @ np.array([0, -rod / 2, 0])
    hinge_b = x[:, 1] + R[:, 1] @ np.array([0, rod / 2, 0])
    return traj.time[:-1], energy, float(np.linalg.norm(hinge_a - hinge_b, axis=-1).max())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--amplitudes", type=float, nargs="+", default=[0.05, 0.5, 1.0, 2.0, 3.0], help="rad")
    parser.add_argument("--length", type=float, default=1.0, help="m")
    parser.add_argument("--dt", type=float, default=0.01, help="s")
    parser.add_argument("--seconds", type=float, default=10.0, help="double pendulum run, s")
    parser.add_argument("--reduced", action="store_true", help="short runs (tests)")
    args = parser.parse_args()
    if args.reduced:
        args.amplitudes, args.length, args.seconds = [0.05], 0.25, 0.2
    small = 2 * math.pi * math.sqrt(args.length / G)
    measured, exact = measure_periods(args.amplitudes, args.length, args.dt)
    print(f"pendulum, L = {args.length} m, dt = {args.dt} s; small-amplitude law 2π√(L/g) = {small:.5f} s")
    print(" amplitude (rad)   measured (s)   exact (s)   error vs exact   error vs 2π√(L/g)")
    for a, p, e in zip(args.amplitudes, measured, exact):
        print(f" {a:14.3f}   {p:12.5f}   {e:9.5f}   {p / e - 1:+14.2e}   {p / small - 1:+17.2e}")
    print(f"double pendulum, {args.seconds} s (energy error relative to |E0|, velocities averaged around each pose):")
    for dt in (2 * args.dt, args.dt):
        _, energy, gap = double_pendulum(dt, args.seconds)
        error = np.abs(energy - energy[0]).max() / abs(energy[0])
        window = max(1, int(round(1.0 / dt)))
        drift = (energy[-window:].mean() - energy[:window].mean()) / abs(energy[0])
        print(f"  dt = {dt:.4f} s: max |E − E0| / |E0| = {error:.2e}; mean of the last second − mean of the "
              f"first = {drift:+.1e}; hinge gap {gap:.1e} m")


if __name__ == "__main__":
    main()
