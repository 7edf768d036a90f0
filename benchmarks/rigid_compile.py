"""Cold compile time of the rigid kernels: the step, the adjoint solve and the reverse-mode VJP kernels
(one contact kernel per pair model present), each timed at its first call in a rollout and its backward
with Taichi's offline cache pointed at an empty folder. Compile time is what a fresh machine (CI) pays
once per kernel; the second call of each kernel shows the run time left after compilation.

    python benchmarks/rigid_compile.py                       # the ball-and-capsule scene of the kernel tests
    python benchmarks/rigid_compile.py --scene boxes_on_boxes

The scenes are tests/rigid/test_rigid_kernel.py's SCENES.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "rigid"))
sys.path.insert(0, str(ROOT))  # this checkout's simcore, whatever is installed (to time another commit)


def timed(name, fn, log):
    """fn, recording the wall time of each call under `name` in log."""
    def call(*args, **kwargs):
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        log[name].append(time.perf_counter() - start)
        return result
    return call


MODEL_NAMES = {}  # contact.PLANE_POINT ... by number, filled in main() once simcore is imported


class GradTimer:
    """A Taichi kernel whose .grad calls are timed, one entry per pair model for the contact kernel."""

    def __init__(self, kernel, name, log):
        self.kernel, self.name, self.log = kernel, name, log

    def __call__(self, *args, **kwargs):
        return self.kernel(*args, **kwargs)

    def grad(self, *args):
        name = self.name
        if name == "contact_lagrangian":  # one kernel per pair model (its last argument); before f907427, one
            name += f"[{MODEL_NAMES[args[-1]]}]" if isinstance(args[-1], int) else "[all models]"  # for all
        return timed(name, self.kernel.grad, self.log)(*args)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scene", default="ball_and_capsule_on_a_static_box")
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    cache = tempfile.mkdtemp(prefix="simcore-cold-cache-")
    os.environ["TI_OFFLINE_CACHE_FILE_PATH"] = cache  # read by ti.init: nothing compiled before is reused

    import simcore as sc
    sc.init("cpu", "f64", verbose=False)
    from simcore.rigid import State
    from simcore.rigid.kernels import contact, runner, vjp
    MODEL_NAMES.update({getattr(contact, n): n.lower() for n in ("PLANE_POINT", "SPHERE_SPHERE", "BALL_BOX",
                                                                 "SEGMENT_SEGMENT", "SEGMENT_FACE", "BOX_FACE",
                                                                 "EDGE_EDGE")})
    from test_rigid_kernel import SCENES

    log = defaultdict(list)
    runner.rollout = timed("step (rollout kernel)", runner.rollout, log)
    runner.adjoint = timed("adjoint", runner.adjoint, log)
    for name in ("dynamics_lagrangian", "contact_lagrangian", "joint_lagrangian"):
        setattr(runner, name, GradTimer(getattr(vjp, name), name, log))

    world, _ = SCENES[args.scene]()
    state = world.initial_state()
    v = state.velocity.clone().requires_grad_(True)
    start = time.perf_counter()
    out = world.rollout(args.steps, state=State(state.position, state.orientation, v, state.body_angular_velocity))
    (out.position[-1] ** 2).sum().backward()
    total = time.perf_counter() - start
    print(f"scene {args.scene}, {args.steps} steps, cold cache {cache}")
    print("| kernel | first call (compile + run), s | later calls, s each (median) | calls |")
    print("|---|---|---|---|")
    for name, times in log.items():
        later = sorted(times[1:])
        median = f"{later[len(later) // 2]:.4f}" if later else "—"
        print(f"| {name} | {times[0]:.1f} | {median} | {len(times)} |")
    print(f"rollout and backward in all: {total:.1f} s")
    shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()
