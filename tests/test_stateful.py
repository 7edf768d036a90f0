"""The Scene API under random sequences of valid and invalid calls (issue 12: defect 1 came from an
order of valid calls no test had tried, rollout → add_body → rollout).

Hypothesis's `RuleBasedStateMachine` drives one small 2D scene through add_body / add_collider / run /
rollout / backward / parameter updates (an optimiser's in-place step) / reset / save and checks these
contracts after each step:

1. Only documented errors. A call raises only what the API documents (`DOCUMENTED`: the ValueErrors
   of bad input, named by their messages, and SimulationError), only where the machine expects it, and
   a refused call leaves the scene as it was.
2. `run` and `rollout` agree. From the same state, with the same values, they give the same positions
   and velocities (to 1e-10 m, m/s in float64) for the same frames, whatever ran before (on this
   scene, or on another scene sharing its solvers), checkpointed or not; a `run` continued in pieces
   agrees with one in a go.
3. A rollout's gradient does not depend on what happens between its forward and its backward (other
   rollouts and runs, of this scene or another, bodies and colliders added). (The solver being
   replaced in between is tests/mpm/test_shared_solver.py's: it costs a compilation.)
4. `save` then `Trajectory.load` gives the trajectory back; frame 0 of a run is the state before it;
   the clock advances by frames × frame_dt.

Every scene has one configuration family (2D, 32 cells, neo-Hookean, walls "separate", at most one
Plane collider, float64), the one of tests/mpm/test_shared_solver.py, so its four solvers (forward and
gradient, with and without the plane) compile once.
"""

import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

import simcore as sc

M, S = sc.materials, sc.shapes

DT = 1e-3         # s, fixed: run and rollout then take the same substeps
FRAME_DT = 0.006  # s: 6 substeps a frame, so that a rollout of 2 frames fits a 16-slot gradient solver
TOLERANCE = 1e-10  # m and m/s, run against rollout in float64 (different kernels: round-off only)

# The errors the API documents (Scene.add_body, Scene.run, Scene.rollout docstrings; the planner's
# CFL check), by the name a rule gives for the ones it may raise: (type, message pattern).
DOCUMENTED = {
    "no bodies": (ValueError, r"the scene has no bodies: add one with scene\.add_body"),
    "outside": (ValueError, r"body '.+' (reaches outside the domain|overlaps the wall layer)"),
    "frames": (ValueError, r"frames must be a (positive|non-negative) integer"),
    "frame_dt": (ValueError, r"frame_dt must be a positive number of seconds"),
    "unstable dt": (ValueError, r"dt=\S+ s exceeds the CFL stability bound"),
    "simulation": (sc.SimulationError, r"simulation failed at frame \d+, substep \d+"),
}


class Refused(Exception):
    """A documented error was raised (the call did nothing, or failed as documented)."""

    def __init__(self, name, error):
        super().__init__(name)
        self.name, self.error = name, error


def documented(call, *allowed):
    """Run call(); return its result, or raise Refused if it raised one of the `allowed` documented
    errors (names in DOCUMENTED). Anything else fails the test, naming the error."""
    try:
        return call()
    except Exception as error:
        for name in allowed:
            kind, pattern = DOCUMENTED[name]
            if isinstance(error, kind) and re.search(pattern, str(error)):
                raise Refused(name, error) from error
        raise AssertionError(f"undocumented error (allowed here: {allowed}): {type(error).__name__}: "
                             f"{error}") from error


def loss_of(x: torch.Tensor) -> torch.Tensor:
    """A scalar of the final positions that moves with every input: spread and mean position."""
    return (x[-1] ** 2).sum() + x[-1][:, 0].mean()


class SceneMachine(RuleBasedStateMachine):
    """One scene, and what the machine knows about it: `reference` holds positions and velocities from
    the initial state, frame by frame, for the scene's current contents and values (`version`);
    `frames_done` counts the frames runs have advanced the scene since its initial state (None when a
    value changed after a run advanced it, or a run failed: the state then has no reference)."""

    def __init__(self):
        super().__init__()
        self.scene = sc.Scene(dim=2, grid=32, dt=DT)
        self.E = torch.tensor(2e4, dtype=torch.float64, requires_grad=True)            # Pa
        self.v0 = torch.tensor([0.3, -0.5], dtype=torch.float64, requires_grad=True)   # m/s
        self.friction = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
        self.used = {}          # name -> the tensors above that the scene uses
        self.version = 0
        self.reference = None   # (frames + 1, n, 4): x (m) and v (m/s) from the initial state, for `version`
        self.frames_done = 0
        self.pending = []       # (loss, inputs, gradients at forward time) of rollouts not yet differentiated
        self.last = None        # the last Trajectory
        self.dir = tempfile.TemporaryDirectory()

    def teardown(self):
        self.dir.cleanup()

    # -- bookkeeping ------------------------------------------------------------------------------
    def changed(self, restart: bool):
        """The scene simulates something else now: no reference; with `restart`, its state went back
        to the initial state (add_body and add_collider do that)."""
        self.version += 1
        self.reference = None
        if restart:
            self.frames_done = 0
        elif self.frames_done:
            self.frames_done = None

    def agree(self, first: int, x: np.ndarray, source: str):
        """Contract 2: x (frames + 1, n, 4), positions and velocities of frames first, first + 1, ...
        from the initial state, equal the reference where both exist; then extend the reference."""
        if self.reference is not None:
            overlap = min(len(self.reference) - first, len(x))
            if overlap > 0:
                np.testing.assert_allclose(x[:overlap], self.reference[first:first + overlap], rtol=0,
                                           atol=TOLERANCE, err_msg=f"{source} disagrees with the reference")
            if first + len(x) > len(self.reference) and first < len(self.reference):
                self.reference = np.concatenate([self.reference, x[len(self.reference) - first:]])
        elif first == 0:
            self.reference = x.copy()

    def use(self, name: str):
        """The shared tensor `name` ("E", "v0", "friction"), now one the scene depends on."""
        self.used[name] = getattr(self, name)
        return self.used[name]

    # -- building ---------------------------------------------------------------------------------
    BODY = dict(cx=st.floats(0.3, 0.7), cy=st.floats(0.4, 0.7), size=st.sampled_from([0.06, 0.1, 0.14]),
                tensor_E=st.booleans(), velocity=st.sampled_from(["rest", "numbers", "tensor"]),
                spin=st.booleans(), in_wall=st.integers(0, 4).map(lambda k: k == 4))

    @initialize(empty=st.integers(0, 4).map(lambda k: k == 4), **BODY)
    def first_body(self, empty, **body):
        """Most sequences start with a body; the others start with an empty scene."""
        if not empty:
            self.add_body(**body)

    @precondition(lambda self: len(self.scene.bodies) < 3)
    @rule(**BODY)
    def add_body(self, cx, cy, size, tensor_E, velocity, spin, in_wall):
        """A box of neo-Hookean jelly: its modulus a number or the shared tensor E, its velocity none,
        numbers or the shared tensor v0, optionally spinning; `in_wall` puts it in the wall layer,
        which add_body refuses without changing the scene."""
        before = (len(self.scene.bodies), self.scene.n_particles)
        center = (0.06, cy) if in_wall else (cx, cy)
        material = M.NeoHookean(E=self.E if tensor_E else 2e4, nu=0.3)
        v = {"rest": None, "numbers": (-0.2, 0.4), "tensor": self.v0}[velocity]
        try:
            documented(lambda: self.scene.add_body(S.Box(center=center, size=(size, size)), material,
                                                   velocity=v, angular_velocity=3.0 if spin else None),
                       *(["outside"] if in_wall else []))
        except Refused:
            assert (len(self.scene.bodies), self.scene.n_particles) == before
            return
        assert not in_wall
        if tensor_E:
            self.use("E")
        if velocity == "tensor":
            self.use("v0")
        self.changed(restart=True)

    @precondition(lambda self: not self.scene.colliders)
    @rule(height=st.floats(0.15, 0.3), tensor_friction=st.booleans(), moving=st.booleans())
    def add_collider(self, height, tensor_friction, moving):
        """A floor, static or rising at 0.2 m/s, its friction a number or the shared tensor."""
        friction = self.use("friction") if tensor_friction else 0.3
        self.scene.add_collider(sc.colliders.Plane(point=(0, height), normal=(0, 1), friction=friction,
                                                   velocity=(0.0, 0.2) if moving else None))
        self.changed(restart=True)

    @precondition(lambda self: not self.pending)
    @rule(factor=st.floats(0.7, 1.4), push=st.floats(-0.3, 0.3))
    def update_parameters(self, factor, push):
        """An optimiser's step, after the backward of every kept rollout (torch refuses to
        differentiate a graph whose inputs changed in place since): E, v0 and the friction change."""
        with torch.no_grad():
            self.E.mul_(factor).clamp_(1e4, 4e4)
            self.v0.add_(push)
            self.friction.mul_(factor).clamp_(0.0, 1.0)
        if self.used:
            self.changed(restart=False)

    # -- driving ----------------------------------------------------------------------------------
    @rule(frames=st.integers(-1, 2), bad_frame_dt=st.integers(0, 5).map(lambda k: k == 5))
    def run(self, frames, bad_frame_dt=False):
        """Contract 1, 2, 4 for Scene.run (frames=-1 or frame_dt=0: refused)."""
        scene = self.scene
        before = (scene.state.x.copy() if scene.bodies else None), scene.time
        allowed = (("frames",) if frames < 0 else ("frame_dt",) if bad_frame_dt else
                   ("no bodies",) if not scene.bodies else ("unstable dt", "simulation"))
        frame_dt = 0.0 if bad_frame_dt else FRAME_DT
        try:
            traj = documented(lambda: scene.run(frames=frames, frame_dt=frame_dt, record=("x", "v")), *allowed)
        except Refused as refused:
            if refused.name == "simulation":  # documented: frames before the failure, scene left there
                kept = refused.error.trajectory
                assert kept.frames == refused.error.frame - 1 and np.array_equal(scene.state.x, kept.x[-1])
                self.frames_done = None
            else:
                assert scene.time == before[1]
            return
        assert frames >= 0 and not bad_frame_dt and scene.bodies
        np.testing.assert_array_equal(traj.x[0], before[0])
        assert scene.time == pytest.approx(before[1] + frames * FRAME_DT, abs=1e-12)
        if self.frames_done is not None:
            self.agree(self.frames_done, np.concatenate([traj.x, traj.v], -1), "run")
            self.frames_done += frames
        self.last = traj

    @rule(frames=st.integers(0, 2), graph=st.booleans(), checkpoint_every=st.sampled_from([None, 1, 5]))
    def rollout(self, frames, graph, checkpoint_every):
        """Contract 1, 2 for Scene.rollout (which starts from the initial state; frames=0: refused),
        in one segment or checkpointed; with `graph`, keep it for a later backward (contract 3), with
        the gradients it gives now."""
        scene = self.scene
        allowed = ("frames",) if frames < 1 else ("no bodies",) if not scene.bodies else ("unstable dt",)
        time = scene.time
        with torch.set_grad_enabled(graph):
            try:
                out = documented(lambda: scene.rollout(frames=frames, frame_dt=FRAME_DT, record=("x", "v"),
                                                       checkpoint_every=checkpoint_every), *allowed)
            except Refused:
                return
        assert frames >= 1 and scene.time == time  # a rollout leaves the scene's state alone
        assert out.x.shape == (frames + 1, scene.n_particles, 2)
        np.testing.assert_array_equal(out.x[0].detach().numpy(), scene.initial_state()["x"])
        self.agree(0, torch.cat([out.x, out.v], -1).detach().numpy(), "rollout")
        if graph and out.x.requires_grad and self.used:
            loss = loss_of(out.x)
            inputs = dict(self.used)
            now = torch.autograd.grad(loss, list(inputs.values()), retain_graph=True)
            self.pending.append((loss, inputs, now))

    @precondition(lambda self: self.scene.bodies and self.frames_done == 0)
    @rule(frames=st.integers(1, 2))
    def run_against_rollout(self, frames):
        """Contract 2 directly: from the initial state, a rollout and then a run of the same frames."""
        try:
            out = documented(lambda: self.scene.rollout(frames=frames, frame_dt=FRAME_DT, record=("x", "v")),
                             "unstable dt")
        except Refused:
            return
        x = torch.cat([out.x, out.v], -1).detach().numpy()
        self.agree(0, x, "rollout")
        self.reference = x  # what the run must give, whatever the reference said
        self.run(frames)

    @rule(plane=st.booleans(), gradient=st.booleans())
    def another_scene(self, plane, gradient):
        """Another scene of a configuration the machine's scene may have runs or rolls out on the shared
        solvers in between: it must not change what the machine's scene computes (contract 2, 3)."""
        other = sc.Scene(dim=2, grid=32, dt=DT)
        other.add_body(S.Box(center=(0.45, 0.6), size=(0.12, 0.08)), M.NeoHookean(E=3e4), velocity=(0.4, 0.3))
        if plane:
            other.add_collider(sc.colliders.Plane(point=(0, 0.2), normal=(0, 1), friction=0.5))
        if gradient:
            other.rollout(frames=1, frame_dt=FRAME_DT)
        else:
            other.run(frames=1, frame_dt=FRAME_DT)

    @precondition(lambda self: self.pending)
    @rule(which=st.integers(0, 3))
    def backward(self, which):
        """Contract 3: a kept rollout differentiated now gives the gradients it gave at its forward."""
        loss, inputs, then = self.pending.pop(which % len(self.pending))
        later = torch.autograd.grad(loss, list(inputs.values()))
        for name, a, b in zip(inputs, then, later):
            assert torch.isfinite(b).all()
            torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-12 * float(a.abs().max()), msg=name)

    @precondition(lambda self: self.frames_done != 0)
    @rule()
    def reset(self):
        """Back to the initial state and time 0."""
        self.scene.reset()
        assert self.scene.time == 0.0
        self.frames_done = 0

    @precondition(lambda self: self.last is not None)
    @rule()
    def save(self):
        """Contract 4: save then load gives the trajectory back."""
        path = self.last.save(Path(self.dir.name) / "trajectory.npz")
        loaded = sc.Trajectory.load(path)
        for name in ("x", "v", "t", "body_id", "material_id", "mass", "volume"):
            np.testing.assert_array_equal(getattr(loaded, name), getattr(self.last, name), err_msg=name)
        assert loaded.body_names == self.last.body_names

    @invariant()
    def clock(self):
        """The clock counts the frames run since the initial state."""
        if self.frames_done is not None:
            assert self.scene.time == pytest.approx(self.frames_done * FRAME_DT, abs=1e-12)


def test_scene_api_under_random_call_sequences(cpu64):
    """Contracts 1–4 (module docstring) over random sequences of calls."""
    run_state_machine_as_test(SceneMachine, settings=settings(
        max_examples=30, stateful_step_count=20, deadline=None, database=None,
        suppress_health_check=[HealthCheck.too_slow]))


# Regressions: each bug the machine found (or that was found while building it), as a plain test.

def floor_scene(E=2e4, friction=0.3, velocity=(0.5, -1.0), spin=3.0):
    """A spinning jelly box touching a floor: its motion depends on E, the friction and the velocity
    from the first substep."""
    scene = sc.Scene(dim=2, grid=32, dt=DT)
    scene.add_body(S.Box(center=(0.5, 0.4), size=(0.14, 0.14)), M.NeoHookean(E=E, nu=0.3), velocity=velocity,
                   angular_velocity=spin)
    scene.add_collider(sc.colliders.Plane(point=(0, 0.325), normal=(0, 1), friction=friction))
    return scene


def test_run_sees_parameters_updated_in_place(cpu64):
    """Found by the machine (add_body with tensor E, run, update_parameters, reset, run against
    rollout): `Scene.model` was built once, so after an optimiser's step on E and the friction a run
    still simulated the old values (rollout read the new ones). Now a run after the update equals (to
    round-off) a scene built with the new values."""
    E = torch.tensor(2e4, dtype=torch.float64, requires_grad=True)
    friction = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    scene = floor_scene(E=E, friction=friction)
    before = scene.run(frames=2, frame_dt=FRAME_DT).x
    with torch.no_grad():
        E.mul_(1.5)
        friction.mul_(0.5)
    scene.reset()
    after = scene.run(frames=2, frame_dt=FRAME_DT).x
    expected = floor_scene(E=3e4, friction=0.15).run(frames=2, frame_dt=FRAME_DT).x
    np.testing.assert_allclose(after, expected, rtol=0, atol=1e-14)
    assert np.abs(after - before).max() > 1e-6  # the update does change the motion


def test_initial_velocity_tensor_updated_in_place(cpu64):
    """The initial state was made from the velocity as given to add_body, so after an in-place update of
    the velocity tensor a run started from the old velocity (rollout read the new one); and a rollout
    of a tensor velocity with an angular velocity kept the tensor's add_body value (its spin was
    taken as the difference from the tensor's current value). Now both start from the velocity as it
    is, equal to a scene given those numbers."""
    v0 = torch.tensor([0.5, -1.0], dtype=torch.float64, requires_grad=True)
    scene = floor_scene(velocity=v0)
    with torch.no_grad():
        v0.add_(torch.tensor([-1.0, 0.5], dtype=torch.float64))
    moved = floor_scene(velocity=(-0.5, -0.5))
    np.testing.assert_array_equal(scene.state.v, moved.state.v)
    rollout = scene.rollout(frames=2, frame_dt=FRAME_DT).x.detach().numpy()
    np.testing.assert_allclose(rollout, moved.rollout(frames=2, frame_dt=FRAME_DT).x.numpy(), rtol=0, atol=1e-14)
    np.testing.assert_allclose(scene.run(frames=2, frame_dt=FRAME_DT).x, rollout, rtol=0, atol=TOLERANCE)


def test_empty_scene(cpu64):
    """Found by the machine (an invariant reading the clock of a scene whose only add_body was
    refused): `time` and `state` of a scene without bodies failed inside numpy ("need at least one
    array to concatenate"). Its clock reads 0; its state, run and rollout say what to do."""
    scene = sc.Scene(dim=2, grid=32, dt=DT)
    assert scene.time == 0.0
    for call in (lambda: scene.state, lambda: scene.run(frames=1), lambda: scene.rollout(frames=1)):
        with pytest.raises(ValueError, match="the scene has no bodies: add one with scene.add_body"):
            call()


def test_a_run_that_does_not_advance_leaves_the_initial_state_live(cpu64):
    """Found by the machine (run of 0 frames, update_parameters, run against rollout): the scene held
    the state of any run, so after a run of 0 frames (or one refused at its first frame) a velocity
    tensor's update no longer reached the next run. The scene holds a state once a run has advanced it;
    until then its state is the initial one as the bodies give it now."""
    v0 = torch.tensor([0.5, -1.0], dtype=torch.float64, requires_grad=True)
    scene = floor_scene(velocity=v0)
    scene.run(frames=0, frame_dt=FRAME_DT)
    scene.dt = 0.05  # above the CFL bound: the run is refused at its first frame
    with pytest.raises(ValueError, match="exceeds the CFL stability bound"):
        scene.run(frames=1, frame_dt=FRAME_DT)
    scene.dt = DT
    with torch.no_grad():
        v0.mul_(-1)
    np.testing.assert_array_equal(scene.state.v, floor_scene(velocity=(-0.5, 1.0)).state.v)
    scene.run(frames=1, frame_dt=FRAME_DT)
    with torch.no_grad():
        v0.mul_(-1)
    assert scene.time == pytest.approx(FRAME_DT) and scene.state.v[:, 1].mean() > 0  # held from here
