"""A quadruped loaded from URDF (assets/quadruped.urdf) stands on a plane under PD joint control, then trots.

The robot (a 2 kg box torso, four legs of two cylinders on hip and knee pitch hinges, sphere feet; 4.2 kg)
is read with simcore.rigid.load_urdf onto a floating base. Each step the controller reads the minimal
coordinates (World.joint_positions: hip and knee angles) and applies the PD law τ = kp (θ* − θ) − kd θ̇:
the P torque, clipped to the URDF's effort limits, is the actuation of the step; the D part is the joints'
damper, which the step treats implicitly (see `simulate`). It first holds a crouched stance (hips 0.6 rad,
knees −1.2 rad: each foot under its hip), then follows an open-loop trot: diagonal leg pairs swing in
antiphase, hip θ* = 0.6 − A sin(2πft + φ), the knee bent further while its foot swings forward. Printed:
torso height (m), forward distance (m), joint constraint violation (m).

    python examples/rigid_quadruped.py
    python examples/rigid_quadruped.py --quick
"""

import argparse
import math

import numpy as np
import simcore.assets
import torch

import simcore.rigid as rigid
from simcore.rigid import quaternion as quat

G = 9.81
HIP, KNEE = 0.6, -1.2          # rad, stance: the shin returns under the hip (thigh and shin both 0.15 m)
FOOT_RADIUS, LEG = 0.02, 0.15  # m (assets/quadruped.urdf)
STANCE_HEIGHT = 2 * LEG * math.cos(HIP) + FOOT_RADIUS   # torso frame above the ground, m


def build(dt=0.01, kd=0.3):
    """World (z up, ground plane z = 0, friction 0.8 against the feet's 1.0) and the loaded Mechanism,
    the torso 1 mm above the stance height, joints at the stance angles (state returned, batch 1).
    kd: N·m·s/rad, the derivative gain, set as each actuated joint's damper (see `simulate`)."""
    world = rigid.World(dt=dt, gravity=(0, 0, -G))
    world.add(rigid.Plane(point=(0, 0, 0), normal=(0, 0, 1), friction=0.8))
    robot = rigid.load_urdf(simcore.assets.path("quadruped.urdf"), world, base_position=(0, 0, STANCE_HEIGHT + 1e-3))
    for name in robot.actuated_joints:
        robot.joints[name].damping = torch.tensor(kd, dtype=torch.float64)
    q = world.joint_positions().clone()
    for name in robot.actuated_joints:
        q[robot.joints[name].dof_index] = HIP if name.endswith("hip") else KNEE
    return world, robot, world.state_from_joints(q)


def stance(robot, t):
    """Joint targets (actuators,) rad of the still stance (t unused)."""
    return torch.tensor([HIP if n.endswith("hip") else KNEE for n in robot.actuated_joints], dtype=torch.float64)


def trot(robot, t, frequency=2.0, hip_amplitude=0.15, knee_lift=0.3):
    """Open-loop trot targets (actuators,) rad at time t s: diagonal pairs (fl, hr) and (fr, hl) in
    antiphase; each hip swings by ±hip_amplitude about the stance and its knee bends by up to knee_lift
    while the hip swings forward (the foot clears the ground on the way forward)."""
    out = []
    for n in robot.actuated_joints:
        phase = 2 * math.pi * frequency * t + (0.0 if n[:2] in ("fl", "hr") else math.pi)
        if n.endswith("hip"):
            # Negative hip rotation about +y swings the foot forward (+x).
            out.append(HIP - hip_amplitude * math.sin(phase))
        else:
            out.append(KNEE - knee_lift * max(0.0, math.cos(phase)))
    return torch.tensor(out, dtype=torch.float64)


def joint_violation(world, state):
    """Largest distance (m) between the two bodies' copies of any joint anchor (0 for an exact joint)."""
    prm = world.params()
    x, q = state.position[0], state.orientation[0]
    worst = 0.0
    for joint in world.joints:
        if joint.kind == "floating":
            continue
        j = joint.index
        c = joint.child.index
        child = x[c] + quat.to_matrix(q[c]) @ prm.joint_anchor_child[j]
        if joint.parent is None:
            parent = prm.joint_anchor_parent[j]
        else:
            p = joint.parent.index
            parent = x[p] + quat.to_matrix(q[p]) @ prm.joint_anchor_parent[j]
        worst = max(worst, float((child - parent).norm()))
    return worst


def simulate(world, robot, state, seconds, targets, kp=40.0):
    """Run `seconds` s under PD control toward targets(robot, t) (actuators,) rad. Returns (final state,
    times (n,) s, torso positions (n, 3) m, largest joint violation (m) over the run).

    The proportional torque kp (θ* − θ) (kp N·m/rad) is the actuation, explicit at the start of each step;
    the derivative part −kd θ̇ is the joints' damper (`build`), which the step treats implicitly: an
    explicit −kd θ̇ diverges once kd·dt/I > 2, and a 0.2 kg shin has I ≈ 1.5e-3 kg·m² about its knee.
    The explicit P term is stable while kp·dt²/I < 4."""
    cols = robot.coordinate_columns()
    effort = robot.effort_limits()
    torso = robot.base.index
    times, torso_x, violation = [0.0], [state.position[0, torso].numpy().copy()], 0.0
    for k in range(int(round(seconds / world.dt))):
        t = k * world.dt
        theta = world.joint_positions(state)[:, cols]
        tau = kp * (targets(robot, t) - theta)
        tau = torch.maximum(torch.minimum(tau, effort), -effort)
        # one step at a time (closed loop): World.run raises ContactSolveError if a step does not converge
        state = world.run(steps=1, state=state, actuation=tau[None]).state()
        times.append(t + world.dt)
        torso_x.append(state.position[0, torso].numpy().copy())
        violation = max(violation, joint_violation(world, state))
    return state, np.array(times), np.array(torso_x), violation


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="0.1 s of standing and 0.2 s of trot (tests)")
    parser.add_argument("--stand", type=float, default=1.0, help="seconds of standing")
    parser.add_argument("--walk", type=float, default=3.0, help="seconds of trot")
    parser.add_argument("--dt", type=float, default=0.01)
    args = parser.parse_args()
    if args.quick:
        args.stand, args.walk = 0.1, 0.2
    world, robot, state = build(args.dt)
    print(f"loaded {robot.name!r}: {len(robot.links)} links, {len(robot.joints)} joints, "
          f"{len(robot.actuators)} actuated, {sum(float(b.mass) for b in robot.links.values()):.2f} kg")
    state, t, torso, gap = simulate(world, robot, state, args.stand, stance)
    print(f"stand {args.stand:g} s: torso height {torso[-1, 2]:.4f} m (stance {STANCE_HEIGHT:.4f} m), "
          f"range over the last half {np.ptp(torso[len(t) // 2:, 2]) * 1e3:.2f} mm, joint violation {gap:.2e} m")
    start = torso[-1].copy()
    state, t, torso, gap = simulate(world, robot, state, args.walk, trot)
    print(f"trot {args.walk:g} s: torso height {torso[:, 2].min():.4f}–{torso[:, 2].max():.4f} m, forward "
          f"distance {torso[-1, 0] - start[0]:+.3f} m (sideways {torso[-1, 1] - start[1]:+.3f} m), joint "
          f"violation {gap:.2e} m")


if __name__ == "__main__":
    main()
