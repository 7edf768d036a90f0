"""The torch Dataset over a generated set (simcore.learned.data.torch_dataset): windows against the raw
arrays, splits by trajectory, normalisation statistics against numpy's, DataLoader workers.

The fixture writes a dataset through the store's own writer (simcore.learned.data.store) in the contract's
layout, with ballistic particles: x(t) = x0 + v0 t + g t²/2, v(t) = v0 + g t, so every window's target
acceleration must be g (constant acceleration: Δv / Δt = g), a value the test knows without the simulator.
"""

import numpy as np
import pytest
import torch
from simcore.learned.data import store, torch_dataset
from simcore.learned.data.torch_dataset import WindowDataset, collate_particles

COUNT, FRAMES, DIM, FRAME_DT = 10, 8, 2, 0.01
GRAVITY = np.array([0.0, -9.8])


@pytest.fixture(scope="module")
def ballistic(tmp_path_factory):
    """A 10-trajectory, 8-frame 2D dataset; trajectory i has 20 + 3 i particles (so samples differ in size)."""
    path = tmp_path_factory.mktemp("data") / "ballistic"
    store.prepare(path, {"family": "ballistic_test", "options": {}, "seed": 0, "count": COUNT, "frames": FRAMES,
                         "dim": DIM, "precision": "f32", "arch": "cpu", "engine": store.engine_versions()})
    t = np.arange(FRAMES + 1)[:, None, None] * FRAME_DT
    for i in range(COUNT):
        rng = np.random.default_rng([7, i])
        n = 20 + 3 * i
        x0, v0 = rng.uniform(0.2, 0.8, (n, DIM)), rng.normal(0, 1, (n, DIM))
        x, v = x0 + v0 * t + 0.5 * GRAVITY * t**2, v0 + GRAVITY * t
        params = np.column_stack([np.full(n, 1e3), rng.uniform(1e3, 1e4, n), np.full(n, 2e3), np.zeros((n, 3))])
        store.write_trajectory(path, i, x=x, v=v, material_id=np.zeros(n), body_id=np.arange(n) % 2, kind=np.ones(n),
                               particle_params=params, attrs={"seed": [0, i], "params": {}, "frame_dt": FRAME_DT,
                                                               "substeps_per_frame": 10})
    return path


def test_windows_match_raw_arrays(ballistic):
    """Sample k is frames t-H+1..t of its trajectory and frame t+1, read straight from the Zarr arrays;
    the target acceleration of ballistic motion is g (to float32 rounding of v over frame_dt)."""
    H = 3
    ds = WindowDataset(ballistic, "train", history=H)
    raw = store.open_dataset(ballistic)
    assert len(ds) == len(ds.trajectories) * (FRAMES - H + 1)
    seen = set()
    for item in range(len(ds)):
        s = ds[item]
        i, t = int(s["trajectory"]), int(s["frame"])
        seen.add((i, t))
        traj = raw[i]
        n = traj.n_particles
        assert s["x"].shape == (H, n, DIM) and s["v"].shape == (H, n, DIM) and s["next_a"].shape == (n, DIM)
        np.testing.assert_array_equal(s["x"].numpy(), traj.x[t - H + 1: t + 1])
        np.testing.assert_array_equal(s["v"].numpy(), traj.v[t - H + 1: t + 1])
        np.testing.assert_array_equal(s["next_x"].numpy(), traj.x[t + 1])
        np.testing.assert_array_equal(s["next_v"].numpy(), traj.v[t + 1])
        np.testing.assert_allclose(s["next_a"].numpy(), GRAVITY[None].repeat(n, 0), atol=2e-3)
        np.testing.assert_array_equal(s["body_id"].numpy(), np.arange(n) % 2)
        assert s["particle_params"].shape == (n, len(ds.param_names))
    assert seen == {(i, t) for i in ds.trajectories for t in range(H - 1, FRAMES)}  # every window once


def test_subsample_is_seeded_and_consistent(ballistic):
    """m particles per trajectory, the same in every window of it, the same for the same seed."""
    ds = WindowDataset(ballistic, "train", history=2, subsample=15, subsample_seed=3)
    s = ds[0]
    i, t = int(s["trajectory"]), int(s["frame"])
    keep = ds.particles(i, store.open_dataset(ballistic)[i].n_particles)
    assert len(keep) == 15 and len(set(keep.tolist())) == 15
    np.testing.assert_array_equal(s["next_x"].numpy(), store.open_dataset(ballistic)[i].x[t + 1][keep])
    np.testing.assert_array_equal(ds.particles(i, 100), WindowDataset(ballistic, history=2, subsample=15,
                                                                      subsample_seed=3).particles(i, 100))
    assert not np.array_equal(ds.particles(i, 100), WindowDataset(ballistic, history=2, subsample=15,
                                                                  subsample_seed=4).particles(i, 100))
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))  # equal sizes: the default collate stacks
    assert batch["x"].shape == (4, 2, 15, DIM)


def test_splits_disjoint_and_deterministic(ballistic):
    parts = {name: WindowDataset(ballistic, name, fractions=(0.6, 0.2, 0.2), split_seed=5).trajectories
             for name in torch_dataset.SPLITS}
    assert [len(parts[k]) for k in torch_dataset.SPLITS] == [6, 2, 2]
    assert sorted(sum(parts.values(), [])) == list(range(COUNT))  # disjoint and complete
    again = torch_dataset.split_indices(range(COUNT), (0.6, 0.2, 0.2), seed=5)
    assert again == parts
    assert torch_dataset.split_indices(range(COUNT), (0.6, 0.2, 0.2), seed=6) != parts
    with pytest.raises(ValueError, match="sum"):
        torch_dataset.split_indices(range(COUNT), (0.6, 0.2, 0.1))


def test_stats_equal_numpy_over_training_split_and_are_stored(ballistic, monkeypatch):
    """mean and std per component of x, v, a, particle_params = numpy's over the training split's frames and
    particles; stored in DIR/normalization and read back (not recomputed) by every split."""
    ds = WindowDataset(ballistic, "train", fractions=(0.7, 0.2, 0.1), split_seed=1)
    raw = store.open_dataset(ballistic)
    x = np.concatenate([raw[i].x[...].reshape(-1, DIM) for i in ds.trajectories]).astype(np.float64)
    v = [raw[i].v[...].astype(np.float64) for i in ds.trajectories]
    a = np.concatenate([((w[1:] - w[:-1]) / FRAME_DT).reshape(-1, DIM) for w in v])
    v = np.concatenate([w.reshape(-1, DIM) for w in v])
    p = np.concatenate([raw[i].particle_params for i in ds.trajectories]).astype(np.float64)
    for name, values in {"x": x, "v": v, "a": a, "particle_params": p}.items():
        np.testing.assert_allclose(ds.stats.mean[name].numpy(), values.mean(0), rtol=1e-6, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(ds.stats.std[name].numpy(), values.std(0), rtol=1e-6, atol=1e-6, err_msg=name)
        assert ds.stats.count[name] == values.shape[0]
    assert (ballistic / "normalization" / ds.stats.key).is_dir()
    # Read in blocks of 3 frames (as a trajectory too large for memory is): the same statistics.
    monkeypatch.setattr(torch_dataset, "_STATS_BLOCK_BYTES", 3 * 8 * 47 * DIM)
    blocked = torch_dataset.compute_stats(raw, ds.trajectories)
    for name in torch_dataset.STATS_FIELDS:
        np.testing.assert_allclose(blocked["std"][name], ds.stats.std[name].numpy(), rtol=1e-6, err_msg=name)
        assert blocked["count"][name] == ds.stats.count[name]

    def no_recompute(*args):
        raise AssertionError("statistics were computed again instead of read from the dataset")

    monkeypatch.setattr(torch_dataset, "compute_stats", no_recompute)
    test = WindowDataset(ballistic, "test", fractions=(0.7, 0.2, 0.1), split_seed=1)
    assert test.stats.key == ds.stats.key
    torch.testing.assert_close(test.stats.std["a"], ds.stats.std["a"])
    z = ds.stats.normalize("v", torch.from_numpy(v).float())
    torch.testing.assert_close(z.mean(0), torch.zeros(DIM), atol=1e-4, rtol=0)
    torch.testing.assert_close(ds.stats.denormalize("v", z), torch.from_numpy(v).float(), atol=1e-4, rtol=1e-5)


def test_dataloader_with_two_workers_gives_the_same_samples(ballistic):
    ds = WindowDataset(ballistic, "all", history=2)

    def batches(workers):
        loader = torch.utils.data.DataLoader(ds, batch_size=5, num_workers=workers, collate_fn=collate_particles)
        return list(loader)

    serial, parallel = batches(0), batches(2)
    assert len(serial) == len(parallel) == -(-len(ds) // 5)
    for a, b in zip(serial, parallel):
        assert a.keys() == b.keys()
        for name in a:
            assert torch.equal(a[name], b[name]), name
    first = serial[0]
    assert first["x"].shape[1] == first["batch"].shape[0] == int(first["n_particles"].sum())


def test_bad_input_is_a_clear_error(ballistic, tmp_path):
    with pytest.raises(ValueError, match="history"):
        WindowDataset(ballistic, history=FRAMES + 1)
    with pytest.raises(ValueError, match="split"):
        WindowDataset(ballistic, "val")
    with pytest.raises(ValueError, match="subsample"):
        WindowDataset(ballistic, subsample=0)
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("not a dataset")
    with pytest.raises(ValueError, match=str(tmp_path / "foreign")):
        WindowDataset(tmp_path / "foreign")


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """3 trajectories of 6 frames of the conftest's tiny_drop family, made by the dataset generator."""
    from simcore.learned.data.generate import generate

    out = tmp_path_factory.mktemp("generated") / "tiny"
    report = generate("tiny_drop", count=3, frames=6, out=out, seed=0, workers=1, progress=False)
    assert report.written == [0, 1, 2]
    return out


def test_generated_set_obeys_newton_and_trains(generated, tmp_path):
    """generate -> WindowDataset -> train. Newton's second law for a body in flight: internal forces cancel,
    so the mean acceleration over a uniform body's (equal-mass) particles is g = (0, -9.8) m/s² while no
    particle is near the floor (1e-3 relative). Then a per-particle MLP trained with the toolkit's Run on
    these windows predicts that acceleration: its loss falls by 10x within 60 steps."""
    from simcore.learned.train import Run

    ds = WindowDataset(generated, "all", history=2)
    airborne = 0
    for item in range(len(ds)):
        s = ds[item]
        if s["next_x"][:, 1].min() > 0.15 and s["x"][:, :, 1].min() > 0.15:  # 5 cells clear of the floor
            airborne += 1
            torch.testing.assert_close(s["next_a"].double().mean(0), torch.tensor([0.0, -9.8], dtype=torch.float64),
                                       atol=1e-2, rtol=0)
    assert airborne >= len(ds) // 2

    loader = torch.utils.data.DataLoader(ds, batch_size=4, shuffle=True, collate_fn=collate_particles,
                                         generator=torch.Generator().manual_seed(0))
    with Run(tmp_path / "run", seed=0, progress=False, tensorboard=False) as run:
        model = torch.nn.Sequential(torch.nn.Linear(2 * DIM, 16), torch.nn.Tanh(), torch.nn.Linear(16, DIM))
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-2)
        net = run.prepare(model, optimizer)
        losses = []
        batches = iter(())
        for step in run.steps(60):
            batch = next(batches, None)
            if batch is None:
                batches = iter(loader)
                batch = next(batches)
            v = ds.stats.normalize("v", batch["v"])  # (H, Σn, d) -> per particle (Σn, H·d)
            predicted = net(v.permute(1, 0, 2).reshape(v.shape[1], -1))
            loss = torch.mean((predicted - batch["next_a"]) ** 2) / 9.8**2
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            run.log(step, loss=loss.detach())
            losses.append(float(loss.detach()))
    assert np.mean(losses[-5:]) < 0.1 * losses[0]
