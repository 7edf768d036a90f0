"""simcore.rigid against MuJoCo on the same scenes and time step, plus gradient costs.

Scenes (dt = 0.01 s, gravity 9.81 m/s²):
  box    0.5 m cube, 1000 kg/m³, sliding at 4 m/s on a plane with μ = 0.5: analytic stop v0²/(2μg).
  sphere 0.1 m sphere, 1000 kg/m³, sliding without spin at 2 m/s, μ = 0.3: rolls at 5/7 v0.

Measures: interior-point iterations per step on the issue's scenes, world-steps per second for 1, 64
and 1,024 worlds over the same number of steps in both engines (simcore: World.run on a batched state,
the Taichi step kernel on all CPU cores for the box and sphere; MuJoCo: mujoco.rollout with as many
threads), the stop distance / rolling speed each engine gives
against the analytic value, the backward cost per step of World.rollout relative to its forward, and the
cost of one adjoint gradient against central finite differences over a 12-dimensional initial state.

Mechanisms (benchmarks/rigid_mechanisms.py: a pendulum, a cartpole and the URDF quadruped standing on a
plane, built the same way in both engines): world-steps per second for the same batch sizes, the median
interior-point iterations, and each mechanism's state after 1 s in both engines (the pendulum's also
against the exact solution of its ODE), which says the two models are the same mechanism.

    python benchmarks/rigid_bench.py                # full table (a few minutes on 2 cores)
    python benchmarks/rigid_bench.py --worlds 1 64  # fewer batch sizes
    python benchmarks/rigid_bench.py --only gradients   # the gradient costs only
    python benchmarks/rigid_bench.py --only mechanisms  # pendulum, cartpole, quadruped against MuJoCo
Needs `pip install mujoco` for the MuJoCo columns (skipped with a note otherwise).
"""

import argparse
import json
import os
import time

import numpy as np
import torch

import simcore.rigid as rigid
from simcore.rigid import quaternion as quat

try:  # the mechanisms' models, beside this file
    import rigid_mechanisms as mechanisms
except ImportError:
    from benchmarks import rigid_mechanisms as mechanisms

DT, G = 0.01, 9.81
# Timings are the best of this many runs (both engines): single short runs on a shared 2-core machine
# vary by 2-5× from one to the next.
REPEATS = 3
SCENES = {
    "box": dict(v0=4.0, mu=0.5, analytic=lambda v0, mu: v0**2 / (2 * mu * G), what="stop distance (m)"),
    "sphere": dict(v0=2.0, mu=0.3, analytic=lambda v0, mu: 5 / 7 * v0, what="rolling speed (m/s)"),
}


def simcore_world(scene):
    s = SCENES[scene]
    world = rigid.World(dt=DT, gravity=(0, -G, 0))
    world.add(rigid.Plane(friction=s["mu"]))
    if scene == "box":
        world.add(rigid.Box(size=(0.5, 0.5, 0.5), density=1e3, position=(0, 0.25, 0), velocity=(s["v0"], 0, 0)))
    else:
        world.add(rigid.Sphere(radius=0.1, density=1e3, position=(0, 0.1, 0), velocity=(s["v0"], 0, 0)))
    return world


def mujoco_model(scene, cone="elliptic"):
    import mujoco

    s = SCENES[scene]
    geom = ('<geom type="box" size="0.25 0.25 0.25" density="1000"/>' if scene == "box"
            else '<geom type="sphere" size="0.1" density="1000"/>')
    z = 0.25 if scene == "box" else 0.1
    xml = f"""<mujoco><option timestep="{DT}" gravity="0 0 -{G}" cone="{cone}"/>
      <default><geom friction="{s['mu']} 0 0" condim="3"/></default>
      <worldbody><geom type="plane" size="10 10 0.1"/>
        <body pos="0 0 {z}"><freejoint/>{geom}</body></worldbody></mujoco>"""
    model = mujoco.MjModel.from_xml_string(xml)
    data = mujoco.MjData(model)
    data.qvel[0] = s["v0"]
    return model, data


def time_simcore(scene, worlds, steps):
    world = simcore_world(scene)
    return time_simcore_world(world, world.initial_state(batch=worlds), steps)


def time_simcore_world(world, state, steps):
    """(world-steps/s, median interior-point iterations) of `steps` steps of the batched `state`."""
    world.run(steps=2, state=state)  # warm-up (compiles the step kernel on first use)
    elapsed = []
    for _ in range(REPEATS):
        t = time.perf_counter()
        traj = world.run(steps=steps, state=state)
        elapsed.append(time.perf_counter() - t)
    return state.position.shape[0] * steps / min(elapsed), float(np.median(traj.iterations))


def time_mujoco(scene, worlds, steps, threads=1):
    return time_mujoco_model(*mujoco_model(scene), worlds, steps, threads)


def time_mujoco_model(model, data, worlds, steps, threads=1):
    """World-steps/s of `worlds` copies of `data`'s state rolled out `steps` steps by mujoco.rollout."""
    import mujoco
    from mujoco import rollout

    spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
    state0 = np.empty(mujoco.mj_stateSize(model, spec))
    mujoco.mj_getState(model, data, state0, spec)
    initial = np.tile(state0, (worlds, 1))
    datas = [mujoco.MjData(model) for _ in range(min(threads, worlds))]
    rollout.rollout(model, datas, initial, nstep=2)  # warm-up
    elapsed = []
    for _ in range(REPEATS):
        t = time.perf_counter()
        rollout.rollout(model, datas, initial, nstep=steps)
        elapsed.append(time.perf_counter() - t)
    return worlds * steps / min(elapsed)


def accuracy(scene):
    """(simcore, MuJoCo elliptic, MuJoCo pyramidal, analytic) for the scene's check quantity."""
    s = SCENES[scene]
    analytic = s["analytic"](s["v0"], s["mu"])
    traj = simcore_world(scene).run(steps=150)
    ours = traj.position[-1, 0, 0] if scene == "box" else traj.velocity[-1, 0, 0]
    out = [float(ours)]
    try:
        import mujoco

        for cone in ("elliptic", "pyramidal"):
            model, data = mujoco_model(scene, cone)
            for _ in range(150):
                mujoco.mj_step(model, data)
            out.append(float(data.qpos[0] if scene == "box" else data.qvel[0]))
    except ImportError:
        out += [float("nan")] * 2
    return out + [analytic]


def mechanism_agreement(name, seconds=1.0):
    """(simcore, MuJoCo, exact or nan) after `seconds`: the pendulum's angle (rad; exact: the ODE of the
    physical pendulum, I = m L² + 2/5 m r² about the hinge, by scipy's DOP853 at rtol 1e-12), the
    cartpole's pole angle (rad), the quadruped's torso height (m)."""
    steps = int(round(seconds / DT))
    world, state = mechanisms.simcore_mechanism(name, DT)
    traj = world.run(steps=steps, state=state)
    ours = float(traj.position[-1, 0, 0, 2] if name == "quadruped" else traj.joint_position[-1, 0, -1])
    exact = float("nan")
    if name == "pendulum":
        from scipy.integrate import solve_ivp

        length, radius = 1.0, 0.05
        w2 = G * length / (length**2 + 0.4 * radius**2)
        sol = solve_ivp(lambda t, y: [y[1], -w2 * np.sin(y[0])], (0, seconds), [0.5, 0.0], method="DOP853",
                        rtol=1e-12, atol=1e-14)
        exact = float(sol.y[0, -1])
    try:
        import mujoco

        model, data = mechanisms.mujoco_mechanism(name, DT)
        for _ in range(steps):
            mujoco.mj_step(model, data)
        theirs = float(data.qpos[2] if name == "quadruped" else data.qpos[model.njnt - 1])
    except ImportError:
        theirs = float("nan")
    return ours, theirs, exact


def iteration_report(rtol=1e-6):
    """Interior-point iterations per step (median, max, mean) on the scenes of the issue's checks, the
    contact candidates in the last step's solve, and the time per step (ms, one world)."""
    def timed(world, steps):
        t = time.perf_counter()
        traj = world.run(steps=steps)
        return traj, 1e3 * (time.perf_counter() - t) / steps

    rows = []
    for dt in (0.1, 0.05, 0.01):
        world = rigid.World(dt=dt, gravity=(0, -G, 0), rtol=rtol)
        world.add(rigid.Plane(friction=0.5))
        world.add(rigid.Box(size=(0.5, 0.5, 0.5), density=1e3, position=(0, 1.0, 0), orientation=(0.95, 0.2, 0.1, 0.2),
                            velocity=(1, 0, 0.5), angular_velocity=(2, 1, 0)))
        rows.append((f"tossed box, dt = {dt}", *timed(world, int(round(3 / dt)))))
    rows.append(("sliding box, dt = 0.01", *timed(simcore_world("box"), 150)))
    rows.append(("sliding → rolling sphere, dt = 0.01", *timed(simcore_world("sphere"), 100)))
    world = rigid.World(dt=DT, gravity=(0, -G, 0), rtol=rtol)
    world.add(rigid.Plane(friction=0.5))
    for i in range(3):
        world.add(rigid.Box(size=(0.5, 0.5, 0.5), density=1e3, position=(0, 0.25 + 0.5 * i, 0)))
    rows.append(("stack of 3 boxes, 1,000 steps", *timed(world, 1000)))
    return [(name, float(np.median(t.iterations)), int(t.iterations.max()), float(np.mean(t.iterations)),
             int(t.contacts[-1]), ms) for name, t, ms in rows]


def torch_calls_per_step(scene, steps=20):
    """ATen operations dispatched per step of one world (the first `steps` steps of the scene), with the
    mean interior-point iterations: a load-independent measure of the per-step overhead, which dominates
    small batches."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        calls = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            Count.calls += 1
            return func(*args, **(kwargs or {}))

    world = simcore_world(scene)
    start = world.initial_state(batch=1)
    world.run(steps=5, state=start)  # warm-up
    with Count():
        traj = world.run(steps=steps, state=start)
    return Count.calls / steps, float(traj.iterations.mean())


def gradient_costs(steps=50):
    """Costs of one gradient of a scalar loss of a 50-step sliding-box rollout with respect to the
    12-dimensional initial state (position, rotation vector, velocity, angular velocity):

    - forward / backward time of World.rollout (backward per step relative to forward per step);
    - central finite differences, 24 rollouts one after the other (the usual baseline), and the same 24
      perturbed initial states as one batched rollout of 24 worlds (a cheaper way to run them);
      times are medians (adjoint: 3 runs; finite differences: 24 × the median rollout);
    - the adjoint: one rollout plus its backward pass.
    With the same solver in both, the adjoint can be at most 24× cheaper than the 24 sequential rollouts
    (if its backward cost nothing): fd / adjoint = 24 / (1 + backward/forward)."""
    def build(x12):
        world = rigid.World(dt=DT, gravity=(0, -G, 0), rtol=1e-10)
        world.add(rigid.Plane(friction=0.5))
        rot = x12[3:6]
        q0 = quat.multiply(torch.tensor([1.0, 0, 0, 0], dtype=torch.float64),
                           torch.cat([torch.ones(1, dtype=torch.float64), 0.5 * rot]))
        world.add(rigid.Box(size=(0.5, 0.5, 0.5), density=1e3, position=x12[:3], orientation=q0,
                            velocity=x12[6:9], angular_velocity=x12[9:12]))
        return world

    def loss_of(out):
        return out.position[-1, ..., 0, :].sum(-1) + out.velocity[-1, ..., 0, :].sum(-1)

    def rollout_loss(x12, grad):
        world = build(x12)
        t0 = time.perf_counter()
        loss = loss_of(world.rollout(steps=steps))
        t1 = time.perf_counter()
        if grad:
            loss.backward()
        return float(loss.detach()), t1 - t0, time.perf_counter() - t1

    h = 1e-6
    x12 = torch.tensor([0, 0.25, 0, 0, 0, 0, 4.0, 0, 1.0, 0, 0.5, 0], dtype=torch.float64, requires_grad=True)
    rollout_loss(x12.detach(), False)  # warm-up
    # The shared machine's load changes from second to second: the adjoint is timed three times and
    # every time is a median (finite differences: 24 × the median of its 24 rollouts).
    adjoint_runs = []
    for _ in range(3):
        x12.grad = None
        adjoint_runs.append(rollout_loss(x12, True)[1:])
    fwd, bwd = (float(np.median(t)) for t in zip(*adjoint_runs))
    perturbed = []
    for i in range(12):
        for sign in (1, -1):
            x = x12.detach().clone()
            x[i] += sign * h
            perturbed.append(x)
    with torch.no_grad():   # timed like the adjoint: the rollouts, not the building of the worlds
        runs = [rollout_loss(x, False) for x in perturbed]
    losses, fd_time = [r[0] for r in runs], 24 * float(np.median([r[1] for r in runs]))
    fd = (np.array(losses[0::2]) - np.array(losses[1::2])) / (2 * h)
    # The same 24 rollouts as one batch of worlds (states built as each world's initial state).
    states = [build(x).initial_state() for x in perturbed]
    batch = rigid.State(*(torch.cat(parts) for parts in zip(*(s.tensors() for s in states))))
    world = build(x12.detach())
    t = time.perf_counter()
    with torch.no_grad():
        batched = loss_of(world.rollout(steps=steps, state=batch)).numpy()
    fd_batched_time = time.perf_counter() - t
    fd_batched = (batched[0::2] - batched[1::2]) / (2 * h)
    g = x12.grad.numpy()
    rel = lambda a: float(np.linalg.norm(a - g) / np.linalg.norm(a))  # noqa: E731
    adjoint = fwd + bwd
    return dict(steps=steps, forward_s=fwd, backward_s=bwd, forward_ms_per_step=1e3 * fwd / steps,
                backward_ms_per_step=1e3 * bwd / steps, backward_over_forward=bwd / fwd,
                fd_s=fd_time, adjoint_s=adjoint, fd_over_adjoint=fd_time / adjoint,
                bound_over_adjoint=24 / (1 + bwd / fwd), fd_over_backward=fd_time / bwd,
                fd_batched_s=fd_batched_time, fd_batched_over_adjoint=fd_batched_time / adjoint,
                fd_rel_diff=rel(fd), fd_batched_rel_diff=rel(fd_batched))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worlds", type=int, nargs="+", default=[1, 64, 1024])
    parser.add_argument("--steps", type=int, default=100, help="timed steps per measurement (both engines)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="MuJoCo rollout threads (default: all cores, as the simcore step kernel)")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    parser.add_argument("--only", choices=("throughput", "mechanisms", "calls", "accuracy", "gradients"),
                        default=None,
                        help="run one part only (throughput: world-steps/s against MuJoCo; mechanisms: the same "
                             "for the pendulum, cartpole and quadruped, and their states after 1 s in both "
                             "engines; calls: torch operations "
                             "per step; accuracy: stop distance, rolling speed and interior-point iterations; "
                             "gradients: the gradient costs)")
    args = parser.parse_args()
    results = dict(throughput=[], accuracy={}, gradients=None, threads=torch.get_num_threads())
    try:
        import mujoco  # noqa: F401

        have_mujoco = True
    except ImportError:
        have_mujoco = False
        print("mujoco not installed: MuJoCo columns skipped (pip install mujoco)")
    if args.only in (None, "throughput"):
        print(f"{args.steps} steps per measurement; MuJoCo on {args.threads} thread(s)\n")
        print("| scene | worlds | simcore world-steps/s | median IPM iterations "
              "| MuJoCo world-steps/s | MuJoCo / simcore |")
        print("|---|---|---|---|---|---|")
        for scene in SCENES:
            for B in args.worlds:
                ours, its = time_simcore(scene, B, args.steps)
                theirs = time_mujoco(scene, B, args.steps, args.threads) if have_mujoco else float("nan")
                results["throughput"].append(dict(scene=scene, worlds=B, simcore=ours,
                                                  iterations=its, mujoco=theirs, steps=args.steps,
                                                  mujoco_threads=args.threads))
                print(f"| {scene} | {B} | {ours:,.0f} | {its:g} | {theirs:,.0f} "
                      f"| {theirs / ours:,.1f}× |")
    if args.only in (None, "mechanisms"):
        print("\n| mechanism | worlds | simcore world-steps/s | median IPM iterations "
              "| MuJoCo world-steps/s | MuJoCo threads | MuJoCo / simcore |")
        print("|---|---|---|---|---|---|---|")
        results["mechanisms"] = []
        for name in mechanisms.MECHANISMS:
            for B in args.worlds:
                world, state = mechanisms.simcore_mechanism(name, DT, worlds=B)
                # Above 64 worlds a tenth of the steps, in both engines (1,024 quadruped worlds are slow).
                steps = max(5, args.steps if B <= 64 else args.steps // 10)
                threads = args.threads
                ours, its = time_simcore_world(world, state, steps)
                theirs = (time_mujoco_model(*mechanisms.mujoco_mechanism(name, DT), B, steps, threads)
                          if have_mujoco else float("nan"))
                results["mechanisms"].append(dict(mechanism=name, worlds=B, simcore=ours,
                                                  iterations=its, mujoco=theirs, steps=steps,
                                                  mujoco_threads=threads))
                print(f"| {name} | {B} | {ours:,.0f} | {its:g} | {theirs:,.0f} | {threads} "
                      f"| {theirs / ours:,.1f}× |")
        print("\n| mechanism, after 1 s | quantity | simcore | MuJoCo | exact |")
        print("|---|---|---|---|---|")
        results["mechanism_agreement"] = {}
        what = {"pendulum": "angle (rad)", "cartpole": "pole angle (rad)", "quadruped": "torso height (m)"}
        for name in mechanisms.MECHANISMS:
            agree = mechanism_agreement(name)
            results["mechanism_agreement"][name] = agree
            print(f"| {name} | {what[name]} | {agree[0]:.6f} | {agree[1]:.6f} | {agree[2]:.6f} |")
    if args.only in (None, "calls"):
        print("\n| scene, one world | torch operations per step | mean interior-point iterations |")
        print("|---|---|---|")
        results["calls"] = {}
        for scene in SCENES:
            calls, its = torch_calls_per_step(scene)
            results["calls"][scene] = dict(per_step=calls, iterations=its)
            print(f"| {scene} | {calls:,.0f} | {its:.2f} |")
    if args.only in (None, "accuracy"):
        print("\n| scene | quantity | simcore | MuJoCo elliptic | MuJoCo pyramidal | analytic |")
        print("|---|---|---|---|---|---|")
        for scene in SCENES:
            acc = accuracy(scene)
            results["accuracy"][scene] = acc
            print(f"| {scene} | {SCENES[scene]['what']} | {acc[0]:.4f} | {acc[1]:.4f} | {acc[2]:.4f} | {acc[3]:.4f} |")
        print("\n| scene (rtol 1e-6) | median iterations | max | mean | contacts (last step) | ms/step |")
        print("|---|---|---|---|---|---|")
        results["iterations"] = iteration_report()
        for name, med, mx, mean, contacts, ms in results["iterations"]:
            print(f"| {name} | {med:g} | {mx} | {mean:.1f} | {contacts} | {ms:.1f} |")
    if args.only in (None, "gradients"):
        g = gradient_costs()
        results["gradients"] = g
        print(f"\nrollout of {g['steps']} steps (sliding box): forward {g['forward_s']:.3f} s "
              f"({g['forward_ms_per_step']:.2f} ms/step), backward {g['backward_s']:.3f} s "
              f"({g['backward_ms_per_step']:.2f} ms/step) → backward/forward = {g['backward_over_forward']:.2f}")
        print(f"12-dim initial-state gradient: adjoint {g['adjoint_s']:.3f} s (forward + backward); central "
              f"differences {g['fd_s']:.2f} s (24 rollouts in sequence) → {g['fd_over_adjoint']:.1f}× cheaper "
              f"(bound with this backward/forward: {g['bound_over_adjoint']:.1f}×; against the backward pass "
              f"alone {g['fd_over_backward']:.0f}×); relative difference {g['fd_rel_diff']:.1e}")
        print(f"  the 24 finite-difference rollouts as one batch of 24 worlds: {g['fd_batched_s']:.3f} s → "
              f"{g['fd_batched_over_adjoint']:.2f}× the adjoint's time; relative difference "
              f"{g['fd_batched_rel_diff']:.1e}")
    if args.out:
        tmp = args.out + ".tmp"
        with open(tmp, "w") as f:
            json.dump(results, f, indent=1)
        os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
