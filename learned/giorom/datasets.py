"""The GIOROM datasets: one per material, made by simcore's dataset generator from the built-in families.

    python -m simcore.learned.giorom.datasets --out /tmp/giorom_runs/data --dim 3 --count 14 --frames 60

writes OUT/<material>_<dim>d for each material of MATERIALS (elastic_toss, sand_collapse, fluid_drop,
plasticine_drop with the size options below) and prints each generator report (particles, k substeps per
frame, bytes on disk). Nothing here simulates: `simcore.learned.data.generate.generate` does, so the data
have that module's guarantees (seeded, atomic, resumable).

Resolution: a 32-cell grid with 27 particles per cell in 3D (3^3; spacing 1/96 m ≈ 1.04 cm, 884,736
particles per m³); 2D uses 9 per cell and the same extents (330–730 particles). The 3D bodies hold 5k–20k particles
(the issue's range; `test_3d_bodies_hold_5k_to_20k_particles` samples each material): boxes, spheres and
upright-or-tilted cylinders of extent 0.225–0.28 m (a 0.225 m sphere holds 5.3k, a 0.28 m cube 19.4k),
sand columns 0.225–0.28 m wide and 0.15–0.28 m high (a 0.225 × 0.15 m cylinder holds 5.3k). simcore's
meshes are left out in 3D: they fill 13–25 % of their bounding cube, so at a 0.28 m largest edge the
capsule holds 2.5k particles, and the 5k it would need take a 0.35 m capsule.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

# material -> (family, options besides dim); the sizes put a 3D body at 5k–20k particles (module docstring).
SOLID_SHAPES = {"size": (0.225, 0.28), "shapes": ["box", "sphere", "cylinder"]}
MATERIALS = {
    "elastic": ("elastic_toss", SOLID_SHAPES),
    "sand": ("sand_collapse", {"width": (0.225, 0.28), "height": (0.15, 0.28)}),
    "water": ("fluid_drop", SOLID_SHAPES),
    "plasticine": ("plasticine_drop", SOLID_SHAPES),
}
PARTICLES_3D = (5_000, 20_000)  # what the sizes above hold in 3D
GRID = 32  # cells per axis: every family shares it, so one compiled solver serves a material's dataset


def options(material: str, dim: int, grid: int = GRID) -> tuple[str, dict]:
    """(family name, generator options) of `material` (a key of MATERIALS) in `dim` dimensions."""
    if material not in MATERIALS:
        raise ValueError(f"unknown material {material!r}; choose among {', '.join(MATERIALS)}")
    if dim not in (2, 3):
        raise ValueError(f"dim must be 2 or 3, got {dim!r}")
    family, extra = MATERIALS[material]
    return family, dict(extra, dim=dim, grid=grid, particles_per_cell=27 if dim == 3 else 9)


def dataset_path(out, material: str, dim: int) -> Path:
    """Where `make` writes a material's dataset: OUT/<material>_<dim>d."""
    return Path(out) / f"{material}_{dim}d"


def make(out, material: str, *, dim: int = 3, count: int = 14, frames: int = 60, seed: int = 0,
         workers: int = 1, threads: int | None = 1, progress: bool = False):
    """Generate (or resume) one material's dataset under `out`; returns the generator's Report."""
    from simcore.learned.data.generate import generate

    family, opts = options(material, dim)
    return generate(family, count=count, frames=frames, out=dataset_path(out, material, dim), seed=seed,
                    workers=workers, options=opts, progress=progress, threads=threads)


def describe(path) -> dict:
    """Particles (min, max), substeps per frame, frames, trajectories and MB on disk of a dataset."""
    from simcore.learned.data.store import open_dataset

    ds = open_dataset(path)
    counts = [ds[i].n_particles for i in ds.indices]
    substeps = sorted({int(ds[i].attrs["substeps_per_frame"]) for i in ds.indices})
    return {"path": str(path), "family": ds.attrs["family"], "trajectories": len(ds), "failed": len(ds.failures),
            "frames": int(ds.attrs["frames"]), "particles": (min(counts), max(counts)), "substeps_per_frame": substeps,
            "frame_dt": float(ds[ds.indices[0]].frame_dt), "megabytes": ds.nbytes() / 1e6}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--dim", type=int, default=3)
    parser.add_argument("--count", type=int, default=14)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--materials", nargs="+", default=list(MATERIALS), choices=list(MATERIALS))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for material in args.materials:
        start = time.perf_counter()
        report = make(args.out, material, dim=args.dim, count=args.count, frames=args.frames, seed=args.seed)
        print(report.summary(), flush=True)
        print(describe(dataset_path(args.out, material, args.dim)), f"wall {time.perf_counter() - start:.1f} s",
              flush=True)


if __name__ == "__main__":
    main()
