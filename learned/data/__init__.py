"""simcore.learned.data: training data from simcore's own scenes.

- families: scene families, seeded random scenes of one kind (`families.get(name).sample(rng)`).
- generate: many trajectories of a family into a dataset directory, on a local process pool or Ray
  (`generate(family, count, frames, out)`; `simcore dataset generate` on the command line).
- store: the dataset layout (a Zarr group per trajectory, written atomically) and its reader
  (`open_dataset(path)`).
- torch_dataset: a torch Dataset of frame windows over a generated set.

The submodules import on use: `from simcore.learned.data import store` does not load Taichi.
"""
