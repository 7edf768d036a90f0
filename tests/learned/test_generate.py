"""Dataset generation (simcore.learned.data.generate) and its store: the same seed gives bit-identical data
whatever the executor (process pool of 1 or 2 workers, Ray); a job killed with SIGKILL and re-run ends with
what an uninterrupted run wrote; a trajectory that raises SimulationError is recorded and the job goes on;
a foreign or corrupted directory gives an error naming the path; the `simcore dataset` commands.

All on `tiny_drop` (conftest.py): 2D, 32-cell grid, ~150 particles, 6 trajectories of 4 frames, two of which
(indices 2 and 5 for seed 3) start with a NaN particle and fail.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr
from simcore.learned.data import families, store
from simcore.learned.data.generate import generate
from simcore.learned.data.store import DatasetError, open_dataset

from simcore.cli import main

TINY = "tiny_drop"  # conftest.py
SETTINGS = dict(count=6, frames=4, seed=3, options={"poison": 0.3})
FAILING = [2, 5]  # the poisoned samples of seed 3 (checked against the family in test_failures_are_recorded)
GRAVITY = 9.8  # m/s², simcore.Scene's default


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run every other run is compared with: one worker of the local pool."""
    out = tmp_path_factory.mktemp("datasets") / "reference"
    report = generate(TINY, out=out, workers=1, progress=False, **SETTINGS)
    assert report.written == [i for i in range(6) if i not in FAILING] and report.skipped == 0
    return out


def assert_same_dataset(a, b):
    """Bit-identical arrays and equal attrs for every trajectory, the same failures."""
    a, b = open_dataset(a), open_dataset(b)
    assert a.indices == b.indices
    assert a.failures == b.failures
    for i in a.indices:
        ta, tb = a[i], b[i]
        assert ta.attrs == tb.attrs
        for name in ("x", "v"):
            assert np.array_equal(getattr(ta, name)[...], getattr(tb, name)[...]), (i, name)
        for name in ("material_id", "body_id", "kind", "particle_params"):
            assert np.array_equal(getattr(ta, name), getattr(tb, name)), (i, name)


def test_stored_data_are_the_family_samples_run_forward(reference):
    """Frame 0 is the sampled scene's initial state; the centre of mass of a free-falling body gains
    g·Δt of downward speed in the first frame (Newton's second law: internal elastic forces cancel),
    and keeps its horizontal speed; the stored parameters are the material's."""
    ds = open_dataset(reference)
    assert ds.attrs["count"] == 6 and ds.attrs["frames"] == 4 and ds.attrs["dim"] == 2
    assert ds.attrs["options"]["poison"] == 0.3 and set(ds.attrs["engine"]) == {"simcore", "taichi", "torch", "numpy"}
    family = families.get(TINY)
    for i in ds.indices:
        t = ds[i]
        sample = family.sample(np.random.default_rng([3, i]), poison=0.3)
        x0 = sample.scene.initial_state()["x"]
        assert t.x.shape == (5, len(x0), 2) and t.x.dtype == np.float32
        np.testing.assert_array_equal(t.x[0], x0.astype(np.float32))
        assert t.attrs["params"] == sample.params and t.attrs["seed"] == [3, i]
        assert t.attrs["substeps_per_frame"] == sample.substeps_per_frame
        v = t.v[0:2].astype(np.float64).mean(axis=1)  # equal masses: the mean is the centre of mass's
        dt = t.attrs["frame_dt"]
        assert abs((v[1, 1] - v[0, 1]) / (-GRAVITY * dt) - 1) < 1e-3, (i, v)
        assert abs(v[1, 0] - v[0, 0]) < 1e-3 * (abs(v[0, 0]) + GRAVITY * dt), (i, v)  # f32 round-off
        density, mu = t.particle_params[:, t.param_names.index("density")], t.particle_params[:, 1]
        np.testing.assert_allclose(density, 1e3, rtol=1e-6)
        E = sample.params["E"]
        np.testing.assert_allclose(mu, E / (2 * 1.3), rtol=1e-6)  # mu = E / 2(1 + nu), nu = 0.3
        assert (t.material_id == 0).all() and (t.body_id == 0).all()


def test_failures_are_recorded_and_the_job_goes_on(reference):
    """The poisoned samples raise SimulationError: each is recorded with its seed, parameters and error,
    and every other trajectory is written."""
    family = families.get(TINY)
    poisoned = [i for i in range(6) if family.sample(np.random.default_rng([3, i]), poison=0.3).params["poisoned"]]
    assert poisoned == FAILING
    ds = open_dataset(reference)
    assert ds.indices == [0, 1, 3, 4] and len(ds) == 4 and ds.missing == []
    assert [f["index"] for f in ds.failures] == FAILING
    for failure in ds.failures:
        assert failure["seed"] == [3, failure["index"]] and failure["params"]["poisoned"] is True
        assert failure["error_type"] == "SimulationError" and "non-finite" in failure["error"]
    with pytest.raises(KeyError, match="it failed"):
        ds[2]
    assert [row["status"] for row in ds.manifest()] == ["ok", "ok", "failed", "ok", "ok", "failed"]


def test_same_seed_same_data_with_two_workers_and_ray(reference, tmp_path):
    """Bit-identical datasets from 1 worker, 2 workers and Ray tasks on a local instance (num_cpus=2)."""
    two = generate(TINY, out=tmp_path / "two", workers=2, progress=False, **SETTINGS)
    assert two.workers == 2 and len(two.written) == 4 and len(two.failed) == 2
    assert_same_dataset(reference, tmp_path / "two")
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        on_ray = generate(TINY, out=tmp_path / "ray", ray_address="auto", progress=False, **SETTINGS)
    finally:
        ray.shutdown()
    assert on_ray.executor == "ray" and len(on_ray.written) == 4
    assert_same_dataset(reference, tmp_path / "ray")


KILLED_JOB = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("tiny_conftest", sys.argv[2])
spec.loader.exec_module(importlib.util.module_from_spec(spec))
from simcore.learned.data.generate import generate
generate("tiny_drop", count=6, frames=4, out=sys.argv[1], seed=3, workers=1, options={"poison": 0.3}, progress=False)
"""


def test_resume_after_sigkill_gives_the_uninterrupted_dataset(reference, tmp_path):
    """SIGKILL the job (its whole process group: the parent and its worker) once it has written a trajectory,
    then run it again: the result is the uninterrupted run's, and nothing finished was made twice."""
    out = tmp_path / "killed"
    job = subprocess.Popen([sys.executable, "-c", KILLED_JOB, str(out), str(Path(__file__).with_name("conftest.py"))],
                           start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    try:
        while not any(out.glob("traj_*")) and job.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        os.killpg(job.pid, signal.SIGKILL)
        _, err = job.communicate()
    assert any(out.glob("traj_*")), f"the job wrote nothing before the deadline: {err.decode()[-2000:]}"
    before = open_dataset(out)
    finished = len(before.indices) + len(before.failures)
    assert finished < 6, "the job finished before it was killed: nothing was resumed"
    (out / ".tmp-traj_000004-stale").mkdir()  # what a worker killed mid-write leaves: ignored, then removed
    (out / ".tmp-traj_000004-stale" / "zarr.json").write_text("{trunc")
    assert open_dataset(out).indices == before.indices
    report = generate(TINY, out=out, workers=1, progress=False, **SETTINGS)
    assert report.skipped == finished and len(report.written) + len(report.failed) == 6 - finished
    assert not list(out.glob(".tmp-*"))
    assert_same_dataset(reference, out)
    with pytest.raises(DatasetError, match="ask for count >= 6"):
        generate(TINY, out=out, progress=False, **dict(SETTINGS, count=5))
    more = generate(TINY, out=out, progress=False, **dict(SETTINGS, count=7))  # a larger count extends it
    assert more.skipped == 6 and more.written + [f["index"] for f in more.failed] == [6]
    assert open_dataset(out).attrs["count"] == 7


def test_foreign_or_corrupted_directory_gives_an_error_naming_the_path(reference, tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing there"):
        open_dataset(tmp_path / "absent")
    loose = tmp_path / "loose"
    loose.mkdir()
    (loose / "notes.txt").write_text("not a dataset")
    with pytest.raises(DatasetError, match=f"{loose}.*no Zarr group"):
        open_dataset(loose)
    with pytest.raises(DatasetError, match="choose a new or empty output directory"):
        generate(TINY, out=loose, progress=False, **SETTINGS)
    foreign = tmp_path / "foreign"
    zarr.open_group(str(foreign), mode="w").attrs.update({"made_by": "someone else"})
    with pytest.raises(DatasetError, match=f"{foreign} is a Zarr group but not a simcore dataset"):
        open_dataset(foreign)

    broken = tmp_path / "broken"
    shutil.copytree(reference, broken)
    with pytest.raises(DatasetError, match="seed=3.*seed=4"):  # resuming with other settings is refused
        generate(TINY, out=broken, progress=False, **dict(SETTINGS, seed=4))
    with store.writer_lock(broken):  # so is a second writer while one is alive
        with pytest.raises(DatasetError, match=f"another job is writing {broken} \\(process {os.getpid()}\\)"):
            generate(TINY, out=broken, progress=False, **SETTINGS)
    shutil.rmtree(broken / "traj_000001" / "x")
    ds = open_dataset(broken)
    with pytest.raises(DatasetError, match=f"{broken / 'traj_000001'} is corrupted: array 'x' is missing"):
        ds[1]
    for chunk in (broken / "traj_000003" / "v").rglob("*"):
        if chunk.is_file() and chunk.name not in ("zarr.json", ".zarray", ".zattrs"):
            chunk.unlink()  # lost chunks read as NaN, never as zeros
    with pytest.raises(DatasetError, match=f"{broken / 'traj_000001'}"):
        ds.verify()
    shutil.rmtree(broken / "traj_000001")
    with pytest.raises(DatasetError, match=f"{broken / 'traj_000003'} is corrupted: array 'v' has missing chunks"):
        open_dataset(broken).verify()
    root = broken / ("zarr.json" if (broken / "zarr.json").is_file() else ".zgroup")  # Zarr 3 or 2
    root.write_text(root.read_text()[:20])  # a truncated root record
    with pytest.raises(DatasetError, match=f"{broken} is not a simcore dataset: its Zarr metadata cannot be read"):
        open_dataset(broken)


def test_cli_families_info_and_generate(reference, tmp_path, capsys):
    """`simcore dataset families` lists every registered family with its options; `info` the counts,
    failures, size and options; `generate` resumes a dataset whose trajectories were deleted, rewriting them
    as they were; a bad --set is one line and exit status 2."""
    assert main(["dataset", "families"]) == 0
    out = capsys.readouterr().out
    for name in families.FAMILIES:
        assert f"\n{name}: " in out
    assert "poison=0" in out

    assert main(["dataset", "info", str(reference)]) == 0
    out = capsys.readouterr().out
    assert "tiny_drop" in out and "4 of 6 finished, 2 failed, 0 missing" in out
    assert "traj 2 (seed [3, 2])" in out and "poison=0.3" in out and "bytes" in out
    assert "E: 2.0" in out or "E:" in out  # the sampled parameters' observed ranges

    partial = tmp_path / "partial"
    shutil.copytree(reference, partial)
    shutil.rmtree(partial / "traj_000000")
    shutil.rmtree(partial / "failures" / "traj_000005")
    code = main(["dataset", "generate", TINY, "--count", "6", "--frames", "4", "--seed", "3", "--set", "poison=0.3",
                 "--out", str(partial), "--workers", "1", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0 and "1 trajectories written, 1 failed, 4 already there" in out
    assert_same_dataset(reference, partial)

    code = main(["dataset", "generate", TINY, "--count", "2", "--frames", "1", "--out", str(tmp_path / "x"),
                 "--set", "poision=0.3"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "has no option 'poision'" in err and len(err.splitlines()) == 1
    assert main(["dataset", "info", str(tmp_path)]) == 2
    assert "not a simcore dataset" in capsys.readouterr().err
