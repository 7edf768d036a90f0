"""NCLaw's ground truth (learned/nclaw/ground_truth.py): the paper's cube generated through the dataset
tooling and read back. Checked against the set-up and against Newton's laws in free flight:

- the initial state is the reference's: 10³ particles filling the 0.5 m cube, v = v₀ + ω × (x − c);
- until the cube reaches the wall nodes the only external force is gravity, so the mean particle velocity
  (the momentum over the total mass, equal masses) is v₀ + g t (MLS-MPM conserves momentum exactly).
"""

import numpy as np
import pytest
from simcore.learned.data.families import margin
from simcore.learned.nclaw import ground_truth as gt

import simcore as sc

STEPS = 50  # 0.025 s: the cube's lowest particle reaches the floor's wall nodes after ~27 steps


@pytest.fixture(scope="module")
def jelly(tmp_path_factory):
    sc.init("cpu", "f32", verbose=False)  # the dataset's precision, for the bit-for-bit comparison
    out = tmp_path_factory.mktemp("nclaw_gt")
    return gt.generate("jelly", out, steps=STEPS)


def test_generates_and_reads_back(jelly):
    assert len(jelly) == 1 and not jelly.failures
    assert jelly.attrs["family"] == gt.FAMILY and jelly.attrs["frames"] == STEPS
    t = jelly[jelly.indices[0]]
    assert t.x.shape == (STEPS + 1, 1000, 3) and t.v.shape == (STEPS + 1, 1000, 3)
    assert t.frame_dt == pytest.approx(gt.DT) and t.attrs["substeps_per_frame"] == 1
    assert t.attrs["params"] == {"material": "jelly", "velocity": list(gt.VELOCITY),
                                 "angular_velocity": list(gt.ANGULAR_VELOCITY)}
    assert t.attrs["material_names"] == ["jelly"]
    mu, lam = t.particle_params[0, 1:3]  # E = 1e5 Pa, ν = 0.2
    assert mu == pytest.approx(1e5 / 2.4, rel=1e-6) and lam == pytest.approx(1e5 * 0.2 / (1.2 * 0.6), rel=1e-6)


def test_initial_state_is_the_reference_set_up(jelly):
    """10 particles per edge at the cell centres of the 0.5 m cube; rigid motion v₀ + ω × (x − c)."""
    t = jelly[jelly.indices[0]]
    x0, v0 = t.x[0].astype(np.float64), t.v[0].astype(np.float64)
    for axis in range(3):
        assert np.allclose(np.unique(np.round(x0[:, axis], 6)), 0.275 + 0.05 * np.arange(10), atol=1e-6)
    center = x0.mean(0)
    assert np.allclose(center, gt.CUBE_CENTER, atol=1e-6)
    expected = np.array(gt.VELOCITY) + np.cross(np.array(gt.ANGULAR_VELOCITY), x0 - center)
    assert np.abs(v0 - expected).max() < 1e-5


def test_momentum_in_free_flight(jelly):
    """Mean velocity = v₀ + g t while nothing but gravity acts (to f32 round-off)."""
    t = jelly[jelly.indices[0]]
    x, v = t.x[:], t.v[:].astype(np.float64)
    edge = margin(gt.GRID)  # closer than this to the domain's edge, a particle reaches the wall nodes
    touching = (x.min(axis=(1, 2)) < edge) | (x.max(axis=(1, 2)) > 1 - edge)
    free = int(np.argmax(touching)) if touching.any() else STEPS + 1  # frames before the first contact
    assert free >= 20
    times = np.arange(free) * gt.DT
    predicted = np.array(gt.VELOCITY) + np.array([0.0, -9.8, 0.0]) * times[:, None]
    assert np.abs(v[:free].mean(1) - predicted).max() < 1e-5
    assert np.abs(v - v[0]).max() > 0.1  # the jelly does deform and spin: velocities change


def test_bad_options_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown NCLaw material 'honey'"):
        gt.generate("honey", tmp_path)
    with pytest.raises(ValueError, match="three numbers"):
        gt.sample("jelly", velocity=(1.0, 2.0, 3.0, 4.0))
    with pytest.raises(ValueError, match="3D only"):
        gt.sample("jelly", dim=2)


def test_full_state_trajectory_is_the_datasets(jelly):
    """ground_truth.trajectory (x, v, C, F for teacher forcing) simulates the very dataset trajectory:
    the same positions bit for bit (same scene, same backend), and F = I at the start (unstressed)."""
    t = jelly[jelly.indices[0]]
    full = gt.trajectory("jelly", STEPS)
    assert np.array_equal(full.x.astype(np.float32), t.x[:])
    assert full.F.shape == (STEPS + 1, 1000, 3, 3) and full.C.shape == (STEPS + 1, 1000, 3, 3)
    assert np.array_equal(full.F[0], np.broadcast_to(np.eye(3), (1000, 3, 3)))
    assert np.abs(full.F[-1] - np.eye(3)).max() > 1e-4  # the jelly deforms in flight (it spins)
