"""Drop a neo-Hookean jelly on a frictional plane and save the trajectory (the README's example).

    python examples/quickstart.py [--grid 32] [--frames 60] [--out out/quickstart.npz]
"""

import argparse

import simcore as sc

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--grid", type=int, default=32)
parser.add_argument("--frames", type=int, default=60)
parser.add_argument("--out", default="out/quickstart.npz")
args = parser.parse_args()

sc.init("cpu")
scene = sc.Scene(dim=3, grid=args.grid, gravity=(0, -9.8, 0))
jelly = scene.add_body(sc.shapes.Box(center=(0.5, 0.6, 0.5), size=(0.2, 0.2, 0.2)),
                       sc.materials.NeoHookean(E=5e4, nu=0.3, density=1e3),
                       velocity=(0.0, -1.0, 0.0), name="jelly")
scene.add_collider(sc.colliders.Plane(point=(0, 0.05, 0), normal=(0, 1, 0), friction=0.3))
traj = scene.run(frames=args.frames, frame_dt=1 / 60)

com = traj.center_of_mass()
print(f"{traj.n_particles} particles, {traj.frames} frames, {sum(traj.meta['substeps'])} substeps")
print(f"centre of mass height: start {com[0, 1]:.3f} m, lowest {com[:, 1].min():.3f} m, end {com[-1, 1]:.3f} m")
print("saved", traj.save(args.out))
