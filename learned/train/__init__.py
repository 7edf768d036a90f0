"""simcore.learned.train: the training toolkit the learned models (NCLaw, GIOROM, LFlows) share.

- `Run` (run.py): one run in one directory — seeding, checkpoints with resume, metrics, progress bar,
  torchrun's process group — around a training loop the caller writes.
- seeding.py: `seed_everything`, `rng_state` / `set_rng_state` (Python, NumPy, torch, CUDA).
- checkpoint.py: atomic `save_checkpoint` / `load_checkpoint` (temporary file, fsync, os.replace).
- metrics.py: `MetricsLogger` — CSV, one row per logged step, plus TensorBoard when installed.
- sampler.py: `ResumableSampler` — epoch order fixed by (seed, epoch), sharded over ranks, able to start
  mid-epoch, so that `Run.batches(loader)` gives a resumed run the batches an uninterrupted one sees.
- distributed.py: `setup` (env:// under torchrun, gloo on CPU / NCCL on GPU; a single process otherwise),
  `wrap` (DDP), `sync_gradients` (explicit all-reduce for simulator-rollout losses).
- demo.py: the smallest complete training script (`python -m simcore.learned.train.demo`).

Why not Lightning (or lightning-fabric, Accelerate)? Lightning's Trainer owns the loop: a
`training_step(batch)` fed by a DataLoader. NCLaw's loss is a differentiable simcore rollout with no batch
of tensors, and its constitutive network is called by the simulator itself (a `sc.materials.Neural`
holds the plain module): under no_grad in the forward, and through torch.autograd.grad inside simcore's
autograd Function backward. A DDP wrapper's forward is never called there, so its reducer sees nothing;
the loop needs an explicit gradient all-reduce (`sync_gradients`, tested through a real rollout). Fabric
and Accelerate do leave the loop to the caller, but what they would add here is what torch provides in a
few lines (DDP wrapping, torchrun's env:// initialisation), while the parts this project needs most are
not theirs: checkpoints that carry every rank's RNG state and are written temp + fsync + rename, a data
order that resumes mid-epoch bit for bit, a metrics CSV that a resumed run trims to its checkpoint,
simcore's progress reporting. So the toolkit is about 800 lines (half of them docstrings) on
torch.distributed, with no dependency beyond torch (tensorboard optional). Revisit if mixed precision,
FSDP or multi-accelerator strategies are needed: that is where Fabric earns its weight.
"""

from .checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from .distributed import DistInfo, all_reduce_mean, broadcast_parameters, setup, sync_gradients, unwrap, wrap
from .metrics import MetricsLogger, read_metrics
from .run import Run, add_arguments
from .sampler import ResumableSampler
from .seeding import rng_state, seed_everything, set_rng_state

__all__ = ["Run", "add_arguments", "ResumableSampler", "seed_everything", "rng_state", "set_rng_state", "save_checkpoint",
           "load_checkpoint", "latest_checkpoint", "MetricsLogger", "read_metrics", "DistInfo", "setup", "wrap",
           "unwrap", "sync_gradients", "broadcast_parameters", "all_reduce_mean"]
