"""Generate a dataset: many seeded trajectories of one scene family, on a local process pool or Ray.

    from simcore.learned.data.generate import generate
    report = generate("fluid_drop", count=200, frames=100, out="data/drops", workers=4)
    print(report.summary())

Trajectory i is simulated from the scene `families.get(family).sample(numpy.random.default_rng([seed, i]),
**options)` and written on its own (simcore.learned.data.store), so the data depend only on (family, options,
seed, i): not on the executor, the worker count or the order in which workers finish. Re-running the same
call skips the trajectories already in `out` (finished or failed) and makes the rest, so a killed job
restarted ends with what an uninterrupted one would have written. A trajectory that raises
simcore.SimulationError is recorded under failures/ with its error, and the job goes on.

Executors:
- local (default): a process pool of `workers` processes (spawned: Taichi does not survive fork). Each
  process starts Taichi once and keeps its compiled solver across trajectories (every sample of a family
  shares one configuration), so a job compiles once per worker, or loads the kernels from Taichi's disk cache.
- Ray (`ray_address`): each trajectory is a Ray task (one CPU). "local" starts a Ray instance on this
  machine with `workers` CPUs; "auto" joins the cluster this machine belongs to (`ray start --head` /
  `ray start --address=...`); any other string is a cluster address. An already initialised Ray
  (`ray.init(...)` in the caller) is used as it is. Every Ray node needs simcore installed, the output
  directory on a shared file system, and the family's module importable.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import inspect
import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

import numpy as np

from . import store


@dataclasses.dataclass
class Report:
    """What a `generate` call did.

    Attributes:
        out: the dataset directory; family, count, frames: as asked.
        executor: "process pool" or "ray"; workers: processes (pool) or CPUs (Ray) used.
        written: indices of the trajectories written by this call; failed: the failure records (index, seed,
            params, error, ...) made by this call; skipped: trajectories already in `out` (finished or failed).
        wall_s: wall-clock seconds of the whole call.
        startup_s: seconds from the call's start until the first worker was ready to simulate (executor and
            worker processes started, simcore and Taichi imported and initialised; Ray's start-up included;
            read from the workers' clocks: on a cluster, as good as their synchronisation).
        compile_s: the longest of the workers' total compile times: their first run of each new solver, which
            compiles its kernels (or loads them from Taichi's disk cache). Workers compile at once, in parallel.
        simulate_s, write_s: worker-seconds spent simulating and writing, summed over trajectories.
        bytes_written: bytes on disk of the trajectories written; particle_frames: Σ n_particles · (frames + 1)
            over them.
    """

    out: Path
    family: str
    count: int
    frames: int
    executor: str
    workers: int
    written: list = dataclasses.field(default_factory=list)
    failed: list = dataclasses.field(default_factory=list)
    skipped: int = 0
    wall_s: float = 0.0
    startup_s: float = 0.0
    compile_s: float = 0.0
    simulate_s: float = 0.0
    write_s: float = 0.0
    bytes_written: int = 0
    particle_frames: int = 0

    @property
    def bytes_per_particle_frame(self) -> float:
        """Bytes on disk per particle per stored frame (x, v and the per-particle arrays; NaN if none written)."""
        return self.bytes_written / self.particle_frames if self.particle_frames else float("nan")

    def summary(self) -> str:
        """One paragraph for a person: counts, times and size."""
        return (f"{self.family}: {len(self.written)} trajectories written, {len(self.failed)} failed, {self.skipped} "
                f"already there ({self.count} asked, {self.frames} frames) in {self.wall_s:.1f} s on a {self.executor} "
                f"of {self.workers}: start-up {self.startup_s:.1f} s, compile {self.compile_s:.1f} s, simulate "
                f"{self.simulate_s:.1f} worker-s, write {self.write_s:.1f} worker-s; "
                f"{self.bytes_per_particle_frame:.2f} bytes per particle-frame -> {self.out}")


@dataclasses.dataclass(frozen=True)
class _Job:
    """What every task of one call shares (pickled to the workers)."""

    family: str
    source: tuple  # (module name, file) of the family's function, for workers that lack the family
    options: dict
    seed: int
    frames: int
    out: str
    arch: str
    precision: str
    threads: int | None


# ----------------------------------------------------------------------------------------------
# The worker side: one process (pool worker or Ray worker) runs many trajectories
# ----------------------------------------------------------------------------------------------
_worker: dict = {}  # per process: "key" (arch, precision, threads), "ready_at", "reported"


def _families():
    from . import families

    return families


def _family_source(family) -> tuple:
    """(module, file) of the function behind `family`, so that a worker process can import it."""
    function = family.function
    module = getattr(function, "__module__", None)
    try:
        file = inspect.getsourcefile(function) if function is not None else None
    except TypeError:  # a builtin or a C function: no file
        file = None
    return (module, file)


def _import_family(name: str, source: tuple):
    """The family `name`, importing its module in this process if it is not registered here yet: by name
    when importable (an installed package), else from its file (a script or a test's conftest)."""
    families = _families()
    if name in families.FAMILIES:
        return families.get(name)
    module, file = source
    if module and module not in ("__main__", "__mp_main__"):
        try:
            importlib.import_module(module)
        except ImportError:
            pass
    if name not in families.FAMILIES and file and os.path.isfile(file):
        spec = importlib.util.spec_from_file_location(f"_simcore_family_{abs(hash(file))}", file)
        loaded = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = loaded
        spec.loader.exec_module(loaded)
    if name not in families.FAMILIES:
        raise ValueError(f"scene family {name!r} is not registered in this worker process (pid {os.getpid()}), and "
                         f"importing its module {module!r} ({file}) did not register it: define the family in a .py "
                         "module the workers can import (not in a notebook cell), or install it on every Ray node")
    return families.get(name)


def _start_worker(job: _Job) -> None:
    """Start Taichi in this process (once: a worker keeps its solvers across trajectories)."""
    key = (job.arch, job.precision, job.threads)
    if _worker.get("key") == key:
        return
    import simcore as sc

    sc.init(job.arch, job.precision, threads=job.threads, verbose=False)
    _import_family(job.family, job.source)
    _worker.update(key=key, ready_at=time.time(), reported=False)


def _run_trajectory(job: _Job, index: int) -> dict:
    """Simulate trajectory `index` of `job` and write it (or its failure) into the dataset. Returns timings."""
    _start_worker(job)
    from simcore.errors import SimulationError
    from simcore.mpm import cache
    from simcore.progress import quiet

    family = _import_family(job.family, job.source)
    seed = [job.seed, int(index)]
    sample = family.sample(np.random.default_rng(seed), **job.options)
    scene = sample.scene
    result = {"index": int(index), "pid": os.getpid(), "compile_s": 0.0, "simulate_s": 0.0, "write_s": 0.0,
              "bytes": 0, "particle_frames": 0}
    if not _worker["reported"]:  # the first task of this process reports when it became ready
        result["ready_at"], _worker["reported"] = _worker["ready_at"], True
    begin = time.perf_counter()
    built = cache.info().built
    with quiet():
        scene.build()  # the solver of this configuration, shared; a new one if none yet or this scene outgrows it
    if cache.info().built > built:
        # A new solver's kernels compile on their first launch: run one frame and throw it away, so that
        # compilation is timed apart from simulation (a failure here shows again in the real run).
        try:
            scene.run(frames=1, frame_dt=sample.frame_dt, progress=False)
        except SimulationError:
            pass
        scene.reset()
        result["compile_s"] = time.perf_counter() - begin
    begin = time.perf_counter()
    try:
        trajectory = scene.run(frames=job.frames, frame_dt=sample.frame_dt, record=("x", "v"), progress=False)
    except SimulationError as error:
        result["simulate_s"] = time.perf_counter() - begin
        result["failure"] = {"index": int(index), "seed": seed, "params": sample.params, "error": str(error),
                             "error_type": type(error).__name__, "frame": error.frame, "substep": error.substep}
        store.write_failure(job.out, index, result["failure"])
        return result
    result["simulate_s"] = time.perf_counter() - begin
    begin = time.perf_counter()
    model = scene.model
    particle_params = np.column_stack([model.mass / model.volume, model.mu, model.lam, model.plastic])
    attrs = {"seed": seed, "params": sample.params, "frame_dt": float(sample.frame_dt),
             "substeps_per_frame": int(sample.substeps_per_frame), "body_names": list(model.body_names),
             "material_names": list(model.material_names)}
    result["bytes"] = store.write_trajectory(job.out, index, x=trajectory.x, v=trajectory.v,
                                             material_id=model.material_id, body_id=model.body_id, kind=model.kind,
                                             particle_params=particle_params, attrs=attrs)
    result["write_s"] = time.perf_counter() - begin
    result["particle_frames"] = model.n_particles * (job.frames + 1)
    return result


def _ray_trajectory(job: _Job, index: int) -> dict:
    return _run_trajectory(job, index)


# ----------------------------------------------------------------------------------------------
# The caller's side
# ----------------------------------------------------------------------------------------------
def _check(family, count, frames, seed, workers, threads):
    for name, value, low in (("count", count, 1), ("frames", frames, 1), ("workers", workers, 1)):
        if not (isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= low):
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if not (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0):
        raise ValueError(f"seed must be a non-negative integer (numpy.random.default_rng([seed, i])), got {seed!r}")
    if threads is not None and not (isinstance(threads, int) and threads >= 1):
        raise ValueError(f"threads must be None or an integer >= 1 (Taichi CPU threads per worker), got {threads!r}")
    if not isinstance(family, str):
        raise ValueError(f"family must be a family's name (see simcore.learned.data.families.FAMILIES), got {family!r}")


def generate(family: str, count: int, frames: int, out, seed: int = 0, workers: int = 1, ray_address: str | None = None,
             options: dict | None = None, progress: bool = True, *, arch: str = "cpu", precision: str = "f32",
             threads: int | None = None) -> Report:
    """Simulate `count` trajectories of `frames` frames of a family into the dataset directory `out`.

    Args:
        family: a registered family's name (simcore.learned.data.families).
        count: trajectories wanted (indices 0..count-1); frames: frames after the initial state, each the
            family's frame_dt s apart.
        out: the dataset directory: new, empty, or a dataset made by the same call (which resumes it).
        seed: trajectory i is sampled from numpy.random.default_rng([seed, i]).
        workers: processes of the local pool; with ray_address="local", the CPUs of the Ray instance started.
        ray_address: None for the local pool; "local", "auto" or a cluster address for Ray tasks.
        options: the family's options that differ from its defaults.
        progress: a progress bar (or a line every 10 s on a log) over the trajectories.
        arch, precision: the backend every worker starts (simcore.init); the dataset records them.
        threads: Taichi CPU threads per worker (default: cores / workers for the pool, 1 for Ray tasks).
    Returns:
        Report (counts, timings with start-up and compilation apart from simulation, bytes per particle-frame).
    Raises:
        ValueError: bad arguments, an unknown family or option (before any work starts);
            simcore.learned.data.store.DatasetError: `out` is foreign or made with other settings.
        Any error other than SimulationError raised while making a trajectory (a bug in a family) stops the job;
        what was finished stays written.
    """
    start = time.time()
    _check(family, count, frames, seed, workers, threads)
    families = _families()
    fam = families.get(family)
    options = dict(options or {})
    resolved = fam.resolve(**options)  # the options checked (ValueError before any work), with their defaults
    if ray_address is None and threads is None:
        threads = max(1, (os.cpu_count() or 1) // workers)
    elif threads is None:
        threads = 1
    out = Path(out)
    store.prepare(out, {"family": family, "options": resolved, "seed": int(seed), "count": int(count),
                        "frames": int(frames), "dim": int(resolved["dim"]), "precision": precision, "arch": arch,
                        "engine": store.engine_versions()})
    with store.writer_lock(out):
        return _generate(out, fam, count, frames, seed, workers, ray_address, options, progress, arch, precision,
                         threads, start)


def _generate(out, fam, count, frames, seed, workers, ray_address, options, progress, arch, precision, threads,
              start) -> Report:
    from simcore.progress import Progress

    family = fam.name
    done = store.finished_indices(out)
    todo = [i for i in range(count) if i not in done]
    report = Report(out=out, family=family, count=int(count), frames=int(frames),
                    executor="ray" if ray_address is not None else "process pool", workers=int(workers),
                    skipped=len(done & set(range(count))))
    job = _Job(family=family, source=_family_source(fam), options=options, seed=int(seed), frames=int(frames),
               out=str(out), arch=arch, precision=precision, threads=threads)
    compile_by_worker: dict = {}
    ready = []

    def collect(result: dict) -> None:
        if "failure" in result:
            report.failed.append(result["failure"])
        else:
            report.written.append(result["index"])
        if "ready_at" in result:
            ready.append(result["ready_at"] - start)
        compile_by_worker[result["pid"]] = compile_by_worker.get(result["pid"], 0.0) + result["compile_s"]
        report.simulate_s += result["simulate_s"]
        report.write_s += result["write_s"]
        report.bytes_written += result["bytes"]
        report.particle_frames += result["particle_frames"]

    if todo:
        with Progress(len(todo), "traj", show=None if progress else False) as bar:
            if ray_address is None:
                _run_pool(job, todo, workers, collect, bar)
            else:
                report.workers = _run_ray(job, todo, ray_address, workers, collect, bar)
    report.written.sort()
    report.failed.sort(key=lambda f: f["index"])
    report.startup_s = min(ready) if ready else 0.0
    report.compile_s = max(compile_by_worker.values(), default=0.0)
    report.wall_s = time.time() - start
    return report


def _run_pool(job: _Job, todo: list, workers: int, collect, bar) -> None:
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # Taichi's runtime does not survive fork
    with ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=context) as pool:
        pending = {pool.submit(_run_trajectory, job, i) for i in todo}
        try:
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    collect(future.result())  # a worker's exception (not a SimulationError) stops the job
                    bar.update(1)
        except BaseException:
            for future in pending:
                future.cancel()
            raise


def _run_ray(job: _Job, todo: list, address: str, workers: int, collect, bar) -> int:
    try:
        import ray
    except ImportError:
        raise ValueError("ray_address needs Ray: pip install 'simcore[ray]' (or pip install ray)") from None
    started = False
    if not ray.is_initialized():
        if address == "local":
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
        started = True
    pending = []
    try:
        task = ray.remote(num_cpus=1)(_ray_trajectory)
        pending = [task.remote(job, i) for i in todo]
        while pending:
            finished, pending = ray.wait(pending, num_returns=1)
            for ref in finished:
                collect(ray.get(ref))
                bar.update(1)
        return int(ray.cluster_resources().get("CPU", 0))
    except BaseException:
        for ref in pending:
            ray.cancel(ref)
        raise
    finally:
        if started:
            ray.shutdown()
