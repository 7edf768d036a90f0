"""Fixtures for the learned/ tests, and `tiny_drop`: a scene family small enough for tests (2D, a 32-cell
grid, one neo-Hookean box of about 150 particles) that can be told to fail.

Dataset workers are separate processes: they find this family by loading this file (its path travels
with the job, simcore.learned.data.generate), so it is registered at import, not inside a fixture.
"""

import numpy as np
from simcore.learned.data import families

import simcore as sc

TINY = "tiny_drop"


def _tiny_drop(rng, **o):
    """A neo-Hookean box dropped from a random height with a random sideways speed. With probability
    `poison` one particle starts at NaN: the run raises simcore.SimulationError (non-finite state), as a
    blown-up simulation would, and the dataset must record it as a failure."""
    scene = families.new_scene(o, materials=(sc.materials.NeoHookean,))
    E = families.log_uniform(rng, o["E"])
    size = families.uniform(rng, (0.15, 0.25))
    shape = families.place(rng, scene, lambda c: sc.shapes.Box(center=tuple(c), size=(size, size)), gap=(0.05, 0.3))
    velocity = (families.uniform(rng, (-1.0, 1.0)), 0.0)
    scene.add_body(shape, sc.materials.NeoHookean(E=E, nu=0.3, density=1e3), velocity=velocity, name="box")
    poisoned = bool(rng.random() < o["poison"])
    if poisoned:
        scene.bodies[0].x[0, 0] = np.nan  # after add_body's checks: what an exploding step leaves behind
    params = {"E": E, "size": size, "velocity": list(velocity), "poisoned": poisoned}
    return families.Sample(scene, params, o["frame_dt"], o["substeps_per_frame"])


if TINY not in families.FAMILIES:
    families.register(TINY, description="test family: one small neo-Hookean box dropped in 2D",
                      options={"grid": (32, "grid cells per axis"),
                               "E": ((2e3, 1e4), "Young's modulus, Pa, log-uniform"),
                               "poison": (0.0, "probability that a sample starts with a NaN particle")})(_tiny_drop)
