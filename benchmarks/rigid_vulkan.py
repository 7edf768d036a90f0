"""The rigid step kernel on Vulkan, scene by scene: which of the equivalence scenes of
tests/rigid/test_rigid_kernel.py it reproduces (against the torch reference) and which raise because the
driver cut a step short (Mesa's lavapipe caps a shader invocation at 65,535 loop iterations), and the wall
time per launch (one step per launch on Vulkan).

    python benchmarks/rigid_vulkan.py            # needs a Vulkan device (apt-get install mesa-vulkan-drivers)
"""

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "rigid"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import simcore as sc  # noqa: E402


def main():
    sc.init("vulkan", "f32", verbose=False)
    from test_rigid_kernel import MECHANISMS, SCENES, reference_run  # noqa: E402

    print("| scene | steps | result | max position error (m) | iterations equal | s per launch |")
    print("|---|---|---|---|---|---|")
    cases = [(name, *make(), None, None) for name, make in SCENES.items()]
    for name, make in MECHANISMS.items():
        world, state, actuation = make()
        cases.append((name, world, 40 if actuation is None else actuation.shape[0], state, actuation))
    for name, world, steps, state, actuation in cases:
        t0 = time.perf_counter()
        try:
            world.run(1, state=state, actuation=None if actuation is None else actuation[:1])  # compile
            t0 = time.perf_counter()
            traj = world.run(steps, state=state, actuation=actuation)
        except sc.BackendError as exc:
            cut = "65,535" in str(exc)
            print(f"| {name} | {steps} | {'raises: loop cap' if cut else 'raises: ' + str(exc)[:60]} | — | — | — |")
            continue
        per_launch = (time.perf_counter() - t0) / steps
        x, _, _, its = reference_run(world, steps, state=state, actuation=actuation)
        ours = (lambda a: a[:, 0]) if state is not None else (lambda a: a)
        err = np.abs(ours(traj.position) - x[:, 0]).max()
        same = bool(np.array_equal(ours(traj.iterations), its[:, 0]))
        print(f"| {name} | {steps} | reproduces | {err:.1e} | {same} | {per_launch:.2f} |")


if __name__ == "__main__":
    main()
