"""Six materials side by side in one 2D scene, dropped on the floor: elastic (corotated and
neo-Hookean, with a stiffness gradient given per particle), fluid, snow, sand and plasticine.

    python examples/materials_gallery.py [--grid 96] [--frames 90] [--out out/gallery.npz]
"""

import argparse

import simcore as sc

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--grid", type=int, default=96)
parser.add_argument("--frames", type=int, default=90)
parser.add_argument("--out", default="out/gallery.npz")
parser.add_argument("--gif", default=None, help="also render an animation to this .gif / .mp4 path")
args = parser.parse_args()

sc.init("cpu")
M = sc.materials
scene = sc.Scene(dim=2, grid=args.grid)
materials = {
    "corotated": M.FixedCorotated(E=4e4, nu=0.3),
    "neo-Hookean": M.NeoHookean(E=lambda x: 2e4 + 2e5 * (x[:, 1] - 0.5), nu=0.3),  # stiffer at the top
    "water": M.Fluid(bulk_modulus=2e4, viscosity=0.1),
    "snow": M.Snow(),
    "sand": M.Sand(friction_angle=35),
    "plasticine": M.Plasticine(E=5e4, yield_stress=1.5e3),
}
for k, (name, material) in enumerate(materials.items()):
    scene.add_body(sc.shapes.Box(center=(0.15 + 0.14 * k, 0.6), size=(0.09, 0.14)), material,
                   velocity=(0.0, -1.0), name=name)
traj = scene.run(frames=args.frames, frame_dt=1 / 60, record=("x", "v"))
for name in traj.body_names:
    mask = traj.body(name)
    height = traj.x[-1, mask, 1].max() - traj.x[-1, mask, 1].min()
    print(f"{name:<12} final height {height:.3f} m (started 0.14 m)")
print("saved", traj.save(args.out))
if args.gif:
    print("rendered", sc.viz.render(traj, args.gif, color_by="material"))
