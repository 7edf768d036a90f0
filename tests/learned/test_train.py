"""The training toolkit (simcore.learned.train): resume reproduces an uninterrupted run bit for bit on CPU,
checkpoint writes are atomic, metrics are one CSV row per logged step, and data-parallel training over 2
torchrun processes follows the same parameters as 1 process with the doubled batch (gradient of a mean
over a batch = mean over ranks of the gradients over its halves)."""

import os
import shutil
import subprocess
import sys

import pytest
import torch
from simcore.learned.train import ResumableSampler, checkpoint, demo, read_metrics
from simcore.learned.train.metrics import MetricsLogger
from simcore.learned.train.sampler import batches


def _model_state(run_dir):
    path = checkpoint.latest_checkpoint(os.path.join(run_dir, "checkpoints"))
    return checkpoint.load_checkpoint(path)["model"]


def _demo(out, *extra):
    return demo.train(["--out", str(out), "--no-progress", "--no-tensorboard", *extra])


# Dropout consumes torch's generator: a resume that did not restore the generator state would draw other
# masks. 96 points in batches of 8 are 12 batches an epoch: the checkpoint at step 20 is mid-epoch (epoch 1,
# batch 8), so the resumed run must also start the data order mid-epoch.
RESUME_ARGS = ("--steps", "40", "--checkpoint-every", "10", "--dropout", "0.2", "--batch", "8")


def test_resume_after_interruption_equals_uninterrupted_run(tmp_path):
    """Determinism: run A goes 40 steps in one go; run B is interrupted after step 24 (its newest checkpoint
    is at 20, so steps 20-24 are lost and redone) and resumed with --resume. Both end with bit-equal
    parameters, and B's metrics CSV has exactly one row for each step 0..39."""
    whole = _demo(tmp_path / "whole", *RESUME_ARGS)
    with pytest.raises(KeyboardInterrupt):
        _demo(tmp_path / "split", *RESUME_ARGS, "--stop-at", "24")
    steps_done = [s for s, _ in checkpoint.list_checkpoints(tmp_path / "split" / "checkpoints")]
    assert steps_done == [10, 20]  # keep 2: the interrupted run got as far as step 20's checkpoint
    assert [r["step"] for r in read_metrics(tmp_path / "split" / "metrics.csv")] == list(range(25))
    with pytest.raises(ValueError, match="already holds checkpoints"):  # a second run never mixes in silently
        _demo(tmp_path / "split", *RESUME_ARGS)
    resumed = _demo(tmp_path / "split", *RESUME_ARGS, "--resume")
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), f"{name} differs after resume by {(a - b).abs().max():.3g}"
    rows = read_metrics(tmp_path / "split" / "metrics.csv")
    assert [r["step"] for r in rows] == list(range(40))
    assert [r["loss"] for r in rows] == [r["loss"] for r in read_metrics(tmp_path / "whole" / "metrics.csv")]
    assert torch.equal(_model_state(tmp_path / "split")["0.weight"], whole.state_dict()["0.weight"])


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    """A crash half-way through writing a checkpoint over an older one leaves the older one loadable under
    its name; a temporary file left by a killed writer is neither listed nor loaded."""
    path = checkpoint.checkpoint_path(tmp_path, 10)
    checkpoint.save_checkpoint(path, {"step": 10, "model": {"w": torch.arange(1000.0)}})

    def crash_half_way(f, data):
        f.write(data[: len(data) // 2])
        raise SystemExit("killed while writing")

    monkeypatch.setattr(checkpoint, "_write", crash_half_way)
    with pytest.raises(SystemExit):
        checkpoint.save_checkpoint(path, {"step": 20, "model": {"w": torch.zeros(1000)}})
    monkeypatch.undo()
    state = checkpoint.load_checkpoint(path)
    assert state["step"] == 10 and torch.equal(state["model"]["w"], torch.arange(1000.0))
    assert os.listdir(tmp_path) == [path.name]  # the interrupted write's temporary file was removed

    # A writer killed by SIGKILL cleans nothing: its truncated temporary file stays until the next prune.
    full = path.read_bytes()
    (tmp_path / ".step_00000020.pt.tmp-4242").write_bytes(full[: len(full) // 3])
    assert checkpoint.latest_checkpoint(tmp_path) == path
    checkpoint.prune_checkpoints(tmp_path, keep=2)
    assert os.listdir(tmp_path) == [path.name]


def test_damaged_or_foreign_checkpoint_is_a_clear_error(tmp_path):
    path = checkpoint.checkpoint_path(tmp_path, 5)
    checkpoint.save_checkpoint(path, {"step": 5})
    path.write_bytes(path.read_bytes()[:100])  # damaged outside the toolkit (a full disk, a bad copy)
    with pytest.raises(ValueError, match=str(path)):
        checkpoint.load_checkpoint(path)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(ValueError, match="not a simcore.learned.train checkpoint"):
        checkpoint.load_checkpoint(foreign)


def test_metrics_csv_one_row_per_logged_step(tmp_path):
    """Rows follow log calls one to one; a metric first seen later widens the table (earlier rows empty);
    reopening with resume_step drops the rows a resumed run will redo."""
    csv_path = tmp_path / "metrics.csv"
    logger = MetricsLogger(csv_path)
    for step in range(5):
        logger.log(step, {"loss": 1.0 / (step + 1), **({"val": 2.0 * step} if step >= 3 else {})})
    logger.close()
    rows = read_metrics(csv_path)
    assert [r["step"] for r in rows] == [0, 1, 2, 3, 4]
    assert [r["loss"] for r in rows] == [1.0, 0.5, 1 / 3, 0.25, 0.2]
    assert ["val" in r for r in rows] == [False, False, False, True, True] and rows[4]["val"] == 8.0
    MetricsLogger(csv_path, resume_step=3).close()
    assert [r["step"] for r in read_metrics(csv_path)] == [0, 1, 2]
    with pytest.raises(ValueError, match="loss"):
        MetricsLogger(csv_path).log(3, {"loss": "nan-ish"})


def test_resumable_sampler_shards_and_restarts_mid_epoch():
    """Epoch order is fixed by (seed, epoch); 2 ranks' shards partition it; a loader restarted at step s gives
    the batches an uninterrupted one gives from step s on (across an epoch boundary)."""
    shards = [ResumableSampler(10, seed=4, rank=r, world_size=2).shard(3) for r in range(2)]
    assert sorted(shards[0] + shards[1]) == list(range(10))
    assert ResumableSampler(10, seed=4).shard(3) != ResumableSampler(10, seed=4).shard(4)
    assert ResumableSampler(10, seed=4).shard(3) == ResumableSampler(10, seed=4).shard(3)
    assert len(ResumableSampler(11, world_size=2, rank=1).shard(0)) == 6  # padded: every rank the same count
    data = torch.utils.data.TensorDataset(torch.arange(10))

    def stream(start, count):
        loader = torch.utils.data.DataLoader(data, batch_size=3, sampler=ResumableSampler(10, seed=1))
        it = batches(loader, start)
        return [next(it)[0].tolist() for _ in range(count)]

    whole = stream(0, 9)  # 4 batches an epoch (3, 3, 3, 1)
    assert stream(5, 4) == whole[5:]
    assert sorted(sum(whole[:4], [])) == list(range(10))


def _torchrun(*args, module="simcore.learned.train.demo"):
    launcher = [shutil.which("torchrun")] if shutil.which("torchrun") else [sys.executable, "-m", "torch.distributed.run"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONFAULTHANDLER="1")  # a crashing rank prints its stack
    env.pop("WORLD_SIZE", None)
    target = ["-m", module] if module else []
    done = subprocess.run([*launcher, "--standalone", "--nproc_per_node", "2", *target, *args], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


DDP_ARGS = ("--steps", "20", "--dtype", "float64", "--lr", "1e-2")


@pytest.mark.parametrize("sync", ["ddp", "allreduce"])
def test_two_processes_match_one_with_doubled_batch(tmp_path, sync):
    """Data parallelism: 2 gloo processes with batch 8 each reach the parameters of 1 process with batch 16
    after 20 Adam steps, to 1e-12 absolute in float64 (parameters are O(1); only summation order differs,
    measured 1e-16). With DDP's reducer (`ddp`) and with the explicit all-reduce of simulator loops
    (`allreduce`). Control: 1 process with the undoubled batch ends > 1e-4 away."""
    _torchrun("--out", str(tmp_path / "two"), "--no-progress", "--no-tensorboard", "--batch", "8", "--sync", sync,
              *DDP_ARGS)
    two = _model_state(tmp_path / "two")
    one = _demo(tmp_path / "one", "--batch", "16", *DDP_ARGS).state_dict()
    half = _demo(tmp_path / "half", "--batch", "8", *DDP_ARGS).state_dict()
    for name in one:
        assert two[name].dtype == torch.float64
        torch.testing.assert_close(two[name], one[name], rtol=0, atol=1e-12)
    assert max((one[k] - half[k]).abs().max() for k in one) > 1e-4
    rows = read_metrics(tmp_path / "two" / "metrics.csv")
    assert [r["step"] for r in rows] == list(range(20))  # rank 0 alone writes, one row a step
    # The logged loss is the mean over ranks of each half's mean: the doubled batch's mean.
    one_rows = read_metrics(tmp_path / "one" / "metrics.csv")
    assert [r["loss"] for r in rows] == pytest.approx([r["loss"] for r in one_rows], rel=1e-12)


# NCLaw's loop: the loss is a differentiable rollout whose Neural material calls the module inside simcore's
# autograd Functions (in their forward and again in their backward), which DDP's reducer never sees.
ROLLOUT_SCRIPT = """
import sys

import torch

import simcore as sc
from simcore.learned.train import Run


class Stress(torch.nn.Module):  # neo-Hookean with learnable moduli (the README's Neural example)
    def __init__(self):
        super().__init__()
        self.mu, self.lam = torch.nn.Parameter(torch.tensor(7e3)), torch.nn.Parameter(torch.tensor(1e4))

    def forward(self, F):
        F_inv_T = torch.linalg.inv(F).transpose(1, 2)
        return self.mu * (F - F_inv_T) + self.lam * torch.log(torch.linalg.det(F))[:, None, None] * F_inv_T


def rollout_loss(model, vy):
    scene = sc.Scene(dim=2, grid=16, dt=2e-3)
    scene.add_body(sc.shapes.Box(center=(0.45, 0.3), size=(0.15, 0.15)),
                   sc.materials.Neural(model=model, density=1e3), velocity=(0.5, vy))
    scene.add_collider(sc.colliders.Plane(point=(0, 0.2), normal=(0, 1), friction=0.3))
    return scene.rollout(frames=2, frame_dt=1 / 60).x[-1, :, 1].mean()


sc.init("cpu", "f64")
SCENES = [-2.0, -1.0]  # each rank's "data": the initial downward speed of its scene, m/s
with Run(sys.argv[1], seed=0, progress=False, tensorboard=False) as run:
    model = Stress().double()
    run.prepare(model, ddp=False)
    rollout_loss(model, SCENES[run.rank]).backward()
    own = [p.grad.clone() for p in model.parameters()]
    run.sync_gradients()
    if run.is_main:  # the single-process reference, without any collective: the mean over both scenes
        reference = Stress().double()
        (sum(rollout_loss(reference, vy) for vy in SCENES) / len(SCENES)).backward()
        torch.save({"ranks": [p.grad for p in model.parameters()], "rank0": own,
                    "one": [p.grad for p in reference.parameters()]}, sys.argv[1] + "/grads.pt")
"""


def test_two_processes_average_rollout_gradients(tmp_path):
    """Data parallelism through a differentiable simulator: 2 ranks each roll out one scene through a Neural
    material and average gradients with run.sync_gradients(); the result equals one process's gradient of
    the mean loss over both scenes to 1e-12 relative (float64; measured exactly equal). Control: each scene's
    gradient alone differs from the mean."""
    script = tmp_path / "rollout.py"
    script.write_text(ROLLOUT_SCRIPT)
    _torchrun(str(script), str(tmp_path), module=None)
    grads = torch.load(tmp_path / "grads.pt")
    for ranks, one, rank0 in zip(grads["ranks"], grads["one"], grads["rank0"]):
        assert abs(float(one)) > 0
        torch.testing.assert_close(ranks, one, rtol=1e-12, atol=0)
        assert abs(float(rank0 - one)) > 1e-3 * abs(float(one))


THREADS_SCRIPT = """
import os
import sys

import torch

from simcore.learned.train import Run


def native_threads():
    return [open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task")]


with Run(sys.argv[1], progress=False, tensorboard=False) as run:
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.Adam(model.parameters())  # the first optimizer imports torch._dynamo
    run.prepare(model, optimizer, ddp=False)
    during = native_threads()
after = native_threads()
assert any("gloo" in t for t in during), during  # the probe sees gloo's threads while the group lives
assert not any("gloo" in t for t in after), f"gloo threads outlive the process group: {after}"
"""


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux's /proc to list native threads")
def test_leaving_the_run_joins_the_process_groups_threads(tmp_path):
    """Clean exit: after `with Run(...)` ends, no gloo thread is left to be torn down at interpreter exit,
    where their destruction aborted about 1 two-process run in 80 (SIGABRT, "terminate called without an
    active exception"). The cause was torch._dynamo, imported by the first optimizer after the group existed,
    keeping the group alive past destroy_process_group."""
    script = tmp_path / "threads.py"
    script.write_text(THREADS_SCRIPT)
    _torchrun(str(script), str(tmp_path / "run"), module=None)
