"""The Taichi step kernel (simcore.rigid.kernels) against the torch reference (step.solve_step).

Law checked: both implement the same discrete equations and the same interior-point iteration, so the
kernel must reproduce the reference's trajectories to round-off (1e-10 m, 1e-9 m/s over the run) with
the same iteration counts, on every contact model and joint kind it covers (with limits, springs,
dampers and actuation); worlds of a batch are independent.
"""

import numpy as np
import pytest
import torch

import simcore.rigid as rigid
from simcore.rigid import kernel_step
from simcore.rigid.step import State, solve_step


def reference_run(world, steps, state=None, controls=None, actuation=None):
    """The torch reference: step.solve_step in a loop, warm-started like World.run."""
    state = world.initial_state() if state is None else state
    B = state.position.shape[0]
    u = world._controls(controls, steps, B, torch_ok=False)
    act = world._actuation(actuation, steps, B, torch_ok=False)
    params = world.params()
    frames, its, warm = [state], [], None
    for k in range(steps):
        state, info = solve_step(world.candidates, state, u[k], params, dt=world.dt, kappa=world.kappa,
                                 rtol=world.rtol, max_iterations=world.max_iterations, margin=world.contact_margin,
                                 warm=warm, joints=world.joint_set, actuation=act[k])
        warm = info.warm()
        assert bool(info.report.converged.all())
        frames.append(state)
        its.append(info.report.iterations)
    stack = lambda f: np.stack([f(s).numpy() for s in frames])  # noqa: E731
    return (stack(lambda s: s.position), stack(lambda s: s.velocity), stack(lambda s: s.angular_velocity),
            np.stack([i.numpy() for i in its]))


def tossed_box():
    w = rigid.World(dt=0.01)
    w.add(rigid.Plane(friction=0.5))
    w.add(rigid.Box(size=(0.5, 0.5, 0.5), density=1e3, position=(0, 1.0, 0), orientation=(0.95, 0.2, 0.1, 0.2),
                    angular_velocity=(1, 2, 0)))
    return w, 60  # lands at step 34, a hard step (the direct solve fails, the continuation solves it)


def sliding_box_pushed():
    w = rigid.World(dt=0.01)
    w.add(rigid.Plane(friction=0.5))
    w.add(rigid.Box(size=(0.5, 0.5, 0.5), density=1e3, position=(0, 0.25, 0), velocity=(4, 0, 0)))
    return w, 40


def sphere_pile():
    w = rigid.World(dt=0.01)
    w.add(rigid.Plane(friction=0.4))
    for i in range(4):
        w.add(rigid.Sphere(radius=0.1, density=1e3, position=(0.15 * i, 0.1 + 0.25 * i, 0.01 * i),
                           velocity=(0.5 - 0.3 * i, 0, 0)))
    return w, 50


def bouncing_sphere():
    w = rigid.World(dt=0.01)
    w.add(rigid.Plane(friction=0.0, restitution=0.8))
    w.add(rigid.Sphere(radius=0.1, density=1e3, position=(0, 0.5, 0), restitution=1.0))
    return w, 60


def capsule_on_tilted_plane():
    w = rigid.World(dt=0.01)
    w.add(rigid.Plane(normal=(0.3, 1, 0), friction=0.6))
    w.add(rigid.Capsule(radius=0.05, length=0.4, density=1e3, position=(0, 0.3, 0), orientation=(0.9, 0.3, 0.1, 0.3)))
    return w, 50


def ball_and_capsules_on_a_box():
    """Sphere–box, capsule–box (end caps and the axis on a face) and capsule–capsule contacts on a
    dynamic box resting on a plane."""
    w = rigid.World(dt=0.01)
    w.add(rigid.Plane(friction=0.5))
    w.add(rigid.Box(size=(0.6, 0.2, 0.6), position=(0, 0.1, 0), density=500))
    w.add(rigid.Sphere(radius=0.1, density=800, position=(0.1, 0.45, 0.05), velocity=(0.3, 0, 0)))
    w.add(rigid.Capsule(radius=0.05, length=0.3, density=800, position=(-0.05, 0.5, 0.1),
                        orientation=(0.7071, 0.7071, 0, 0)))
    w.add(rigid.Capsule(radius=0.04, length=0.2, density=800, position=(0.1, 0.7, 0.05), orientation=(0.8, 0.1, 0.5, 0.2)))
    return w, 60


def ball_and_capsule_on_a_static_box():
    """The same models against a static (tilted) box, whose witnesses are world-frame points."""
    w = rigid.World(dt=0.01)
    w.add(rigid.Plane(friction=0.5))
    w.add(rigid.Box(size=(0.4, 0.2, 0.4), position=(0, 0.1, 0), orientation=(0.98, 0, 0.2, 0), static=True))
    w.add(rigid.Sphere(radius=0.08, density=800, position=(-0.05, 0.4, 0.02)))
    w.add(rigid.Capsule(radius=0.05, length=0.3, density=800, position=(0.05, 0.6, 0.1),
                        orientation=(0.7071, 0.7071, 0, 0)))
    return w, 60


def boxes_on_boxes():
    """Box–box face manifolds and edge–edge contacts: a turned cube and a tumbling bar dropped on a box
    resting on a plane, and a tilted cube dropped on a static box."""
    w = rigid.World(dt=0.01)
    w.add(rigid.Plane(friction=0.5))
    w.add(rigid.Box(size=(0.6, 0.2, 0.6), position=(0, 0.1, 0), density=500))
    w.add(rigid.Box(size=(0.2, 0.2, 0.2), position=(0.05, 0.45, 0.02), orientation=(0.92, 0.0, 0.38, 0.0), density=500))
    w.add(rigid.Box(size=(0.3, 0.1, 0.1), position=(0.0, 0.8, 0.0), orientation=(0.9, 0.3, 0.1, 0.3), density=500,
                    angular_velocity=(1, 2, 0)))
    w.add(rigid.Box(size=(0.4, 0.2, 0.4), position=(1.5, 0.1, 0), static=True))
    w.add(rigid.Box(size=(0.2, 0.2, 0.2), position=(1.5, 0.5, 0), orientation=(0.9, 0.2, 0.3, 0.2), density=500))
    return w, 60


SCENES = {f.__name__: f for f in (tossed_box, sliding_box_pushed, sphere_pile, bouncing_sphere,
                                  capsule_on_tilted_plane, ball_and_capsules_on_a_box,
                                  ball_and_capsule_on_a_static_box, boxes_on_boxes)}


@pytest.mark.parametrize("name", SCENES)
def test_kernel_reproduces_the_reference_to_round_off(name):
    world, steps = SCENES[name]()
    assert world.stepper == "kernel"
    controls = None
    if name == "sliding_box_pushed":  # a force and a torque on the box (world frame)
        controls = torch.zeros(steps, 1, 6, dtype=torch.float64)
        controls[:, 0, 0], controls[:, 0, 4] = 30.0, 5.0
    traj = world.run(steps, controls=controls)
    x, v, w, its = reference_run(world, steps, controls=controls)
    assert np.abs(traj.position - x[:, 0]).max() < 1e-10
    assert np.abs(traj.velocity - v[:, 0]).max() < 1e-9
    assert np.abs(traj.angular_velocity - w[:, 0]).max() < 1e-9
    np.testing.assert_array_equal(traj.iterations, its[:, 0])


def test_batched_worlds_are_independent():
    """Each world of a batch follows the trajectory it has alone (one thread per world, no shared state)."""
    world, steps = tossed_box()
    B = 5
    st = world.initial_state(batch=B)
    x = st.position.clone()
    x[:, 0, 1] += torch.linspace(0.0, 0.4, B)
    v = st.velocity.clone()
    v[:, 0, 0] += torch.linspace(-1.0, 1.0, B)
    batch = State(x, st.orientation, v, st.body_angular_velocity)
    together = world.run(steps, state=batch)
    for b in (0, 3):
        alone = world.run(steps, state=State(*(t[b:b + 1] for t in batch.tensors())))
        assert np.abs(together.position[:, b] - alone.position[:, 0]).max() < 1e-12
        np.testing.assert_array_equal(together.iterations[:, b], alone.iterations[:, 0])


def test_failure_keeps_the_trajectory_before_it():
    """A step that does not converge raises ContactSolveError carrying every frame before it (on_failure
    "raise"), or warns and goes on ("warn")."""
    world, steps = tossed_box()
    world.max_iterations = 1   # free fall converges in one iteration, the landing (step 33) cannot
    with pytest.raises(rigid.ContactSolveError) as err:
        world.run(steps)
    traj = err.value.trajectory
    assert len(traj.time) == 33 and traj.iterations.shape == (32,)
    assert np.isfinite(traj.position).all()
    world.on_failure = "warn"
    with pytest.warns(RuntimeWarning, match="did not converge"):
        assert world.run(steps).position.shape[0] == steps + 1


def test_kernel_is_the_one_production_stepper(monkeypatch):
    """Every contact model and joint kind is in the kernel, and the kernel is the only production path:
    on a Vulkan device without 64-bit floats a world refuses to step (BackendError naming the device and
    what to do) instead of falling back to the torch reference, which only tests reach
    (kernel_step.reference_stepper)."""
    world, _ = boxes_on_boxes()
    assert world.stepper == "kernel" and kernel_step.unsupported(world) is None
    with kernel_step.reference_stepper():
        assert world.stepper == "torch"
    assert world.stepper == "kernel"
    from simcore import backend
    from simcore.errors import BackendError
    from simcore.rigid.kernels import runner

    monkeypatch.setattr(runner.backend, "active", lambda: backend.Backend("vulkan", "f32"))
    monkeypatch.setattr(runner.backend, "has_f64_arithmetic", lambda: False)
    assert kernel_step.unsupported(world) == "a vulkan device without 64-bit floats"
    for attempt in (lambda: world.stepper, lambda: world.run(2), lambda: world.rollout(2)):
        with pytest.raises(BackendError, match=r"vulkan device without 64-bit floats.*arch=\"cpu\""):
            attempt()


@pytest.mark.parametrize("scene", ["ball_and_capsule_on_a_static_box", "boxes_on_boxes"])
def test_rollout_gradients_through_the_kernel_equal_the_reference(scene):
    """The rollout's forward pass through the kernel hands its solution and its contact decisions
    (active set, impacts, the sphere–box, capsule–box and box–box choices) to the implicit-function-theorem
    backward: the gradients equal those of the all-torch rollout to 1e-8 relative."""
    def grad_of_initial_velocity():
        world, _ = SCENES[scene]()
        state = world.initial_state()
        v = state.velocity.clone().requires_grad_(True)
        out = world.rollout(20, state=State(state.position, state.orientation, v, state.body_angular_velocity))
        (out.position[-1] ** 2).sum().backward()
        # the first falling body landed: 20 steps of free fall would have taken it 0.206 m lower
        falling = 0 if scene == "ball_and_capsule_on_a_static_box" else 1
        assert float(out.position[-1, 0, falling, 1].detach()) > float(state.position[0, falling, 1]) - 0.206 + 0.05
        return world.stepper, v.grad.clone()

    stepper, kernel_grad = grad_of_initial_velocity()
    with kernel_step.reference_stepper():
        reference, torch_grad = grad_of_initial_velocity()
    assert (stepper, reference) == ("kernel", "torch")
    assert float((kernel_grad - torch_grad).norm() / torch_grad.norm()) < 1e-8


def test_vjp_launches_only_the_pair_models_in_contact(monkeypatch):
    """The backward pass's product λᵀ ∂r/∂θ runs one kernel per contact pair model with an active contact
    in some world: a model whose candidates are all apart contributes nothing (its rows are inactive),
    so skipping it is exact. A sphere resting on the plane and a second one falling far above it: the
    plane–sphere model is launched every step, the sphere–sphere model never, and the gradients equal
    the all-torch rollout's to 1e-8."""
    from simcore.rigid.kernels import contact, runner

    launched = []
    original = runner.contact_lagrangian

    class Recording:
        def grad(self, *args):
            launched.append(args[-1])   # the pair model (contact.PLANE_POINT ...)
            return original.grad(*args)

    def velocity_gradient():
        world = rigid.World(dt=0.01)
        world.add(rigid.Plane(friction=0.5))
        world.add(rigid.Sphere(radius=0.1, density=1e3, position=(0, 0.1, 0), velocity=(0.3, 0, 0)))
        world.add(rigid.Sphere(radius=0.1, density=1e3, position=(3, 2, 0)))
        assert {contact.PLANE_POINT, contact.SPHERE_SPHERE} <= set(runner.KernelRunner(world, 1).cand[:, 0].tolist())
        state = world.initial_state()
        v = state.velocity.clone().requires_grad_(True)
        out = world.rollout(5, state=State(state.position, state.orientation, v, state.body_angular_velocity))
        (out.position[-1] ** 2).sum().backward()
        return v.grad.clone()

    monkeypatch.setattr(runner, "contact_lagrangian", Recording())
    through_kernel = velocity_gradient()
    assert launched == [contact.PLANE_POINT] * 5
    with kernel_step.reference_stepper():
        reference = velocity_gradient()
    assert float((through_kernel - reference).norm() / reference.norm()) < 1e-8


# ----------------------------------------------------------------------------------------------
# Joints
# ----------------------------------------------------------------------------------------------
def actuated_arm():
    """A hinge (spring, damper, lower limit, actuated) carrying a slider (spring, damper, upper limit,
    actuated): both limits are hit."""
    w = rigid.World(dt=0.01, rtol=1e-10)
    arm = w.add(rigid.Box(size=(0.5, 0.08, 0.08), mass=1.0, position=(0.25, 0, 0)))
    slider = w.add(rigid.Box(size=(0.1, 0.1, 0.1), mass=0.5, position=(0.45, 0, 0)))
    w.add(rigid.Revolute(parent=None, child=arm, anchor=(0, 0, 0), axis=(0, 0, 1), lower=-0.1, stiffness=30.0,
                         damping=0.4, rest=-0.3, actuated=True))
    w.add(rigid.Prismatic(parent=arm, child=slider, anchor=(0.45, 0, 0), axis=(1, 0, 0), upper=0.04, stiffness=20.0,
                          damping=0.5, actuated=True))
    steps = 40
    actuation = torch.zeros(steps, 2, dtype=torch.float64)
    actuation[:, 0] = 0.5
    actuation[:, 1] = torch.linspace(0, 3, steps, dtype=torch.float64)
    return w, w.state_from_joints(torch.zeros(2, dtype=torch.float64), torch.tensor([-1.5, 0.5])), actuation


def welded_spinning_pair_and_slider():
    """Fixed, prismatic and spherical joints, a body joined to another and one to the world (spheres, so
    that the unjoined pairs are sphere–sphere candidates)."""
    w = rigid.World(dt=0.01, rtol=1e-10)
    slider = w.add(rigid.Sphere(radius=0.05, mass=1.0))
    w.add(rigid.Prismatic(parent=None, child=slider, anchor=(0, 0, 0), axis=(1, -1, 0)))
    base = w.add(rigid.Sphere(radius=0.1, mass=1.0, inertia=(0.01, 0.02, 0.03), position=(2, 0, 0),
                              angular_velocity=(0, 0.5, 1)))
    welded = w.add(rigid.Sphere(radius=0.1, mass=0.5, position=(2.3, 0, 0)))
    w.add(rigid.Fixed(parent=base, child=welded, anchor=(2.15, 0, 0)))
    bob = w.add(rigid.Sphere(radius=0.05, mass=1.0, position=(-1.7, -0.4, 0), velocity=(0, 0, 2.0)))
    w.add(rigid.Spherical(parent=None, child=bob, anchor=(-2, 0, 0)))
    return w, None, None


def hinged_plank_on_the_ground():
    """A joint and contacts in one system: a plank hinged above a plane falls onto it."""
    w = rigid.World(dt=0.01)
    w.add(rigid.Plane(friction=0.5))
    plank = w.add(rigid.Box(size=(1.0, 0.05, 0.2), density=500, position=(0.5, 0.3, 0)))
    w.add(rigid.Revolute(parent=None, child=plank, anchor=(0, 0.3, 0), axis=(0, 0, 1)))
    return w, None, None


def quadruped():
    """The URDF quadruped standing on a plane (benchmarks/rigid_mechanisms.py): 13 bodies, 13 joints and
    104 contact candidates of four models."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    import rigid_mechanisms

    world, state = rigid_mechanisms.simcore_mechanism("quadruped", 0.01)
    return world, state, torch.zeros(20, world.actuators, dtype=torch.float64)


MECHANISMS = {f.__name__: f for f in (actuated_arm, welded_spinning_pair_and_slider, hinged_plank_on_the_ground,
                                      quadruped)}


@pytest.mark.parametrize("name", MECHANISMS)
def test_kernel_reproduces_the_reference_with_joints(name):
    world, state, actuation = MECHANISMS[name]()
    assert world.stepper == "kernel"
    steps = 40 if actuation is None else actuation.shape[0]
    traj = world.run(steps, state=state, actuation=actuation)
    x, v, w, its = reference_run(world, steps, state=state, actuation=actuation)
    ours = (lambda a: a[:, 0]) if state is not None else (lambda a: a)   # a batched state keeps its axis
    assert np.abs(ours(traj.position) - x[:, 0]).max() < 1e-10
    assert np.abs(ours(traj.velocity) - v[:, 0]).max() < 1e-9
    assert np.abs(ours(traj.angular_velocity) - w[:, 0]).max() < 1e-9
    np.testing.assert_array_equal(ours(traj.iterations), its[:, 0])


def test_trajectory_state_continues_a_run():
    """Trajectory.state(k) is the State at frame k: a run continued from it follows the original run (to
    the solver tolerance: the continued run starts its first contact solve cold), and ω converts back to
    the body frame exactly."""
    world, _ = sliding_box_pushed()
    whole = world.run(30)
    mid = whole.state(10)
    assert mid.position.shape == (1, 1, 3)
    np.testing.assert_allclose(mid.angular_velocity.numpy()[0], whole.angular_velocity[10], atol=1e-15)
    rest = world.run(20, state=mid)
    assert np.abs(rest.position[:, 0] - whole.position[10:]).max() < 1e-7


def _run_of(name):
    """(world, steps, actuation or None, its kernel Trajectory) of a scene or a mechanism above."""
    if name in SCENES:
        world, steps = SCENES[name]()
        state, actuation = world.initial_state(), None
    else:
        world, state, actuation = MECHANISMS[name]()
        steps = 40 if actuation is None else actuation.shape[0]
    return world, steps, actuation, world.run(steps, state=state, actuation=actuation)


def _reference_jacobian(world, state, controls, actuation, info):
    """∂r/∂w of the torch step equations at the kernel's solution, with the kernel's decisions."""
    from simcore.rigid import joints as jnt
    from simcore.rigid.step import contacts_for, equations

    st, prm = state.tensors(), world.params()
    contacts = contacts_for(world.candidates, st, prm, world.dt, world.contact_margin, info.decisions)[0]
    joint_step = None
    if world.joints:
        joint_step = jnt.prepare(world.joint_set, st, prm.joint_params(), actuation, world.dt, world.contact_margin,
                                 decisions=info.joints.decisions)
    return equations(info.w, 0.0, st, controls, prm, contacts.select(info.selected), world.dt,
                     joint_step=joint_step)[1]


@pytest.mark.parametrize("name", ["sphere_pile", "ball_and_capsules_on_a_box", "boxes_on_boxes", "actuated_arm",
                                  "quadruped"])
def test_adjoint_kernel_solves_the_transposed_step_jacobian(name):
    """The backward pass's linear solve in the adjoint kernel (kernels/adjoint.py: the step kernel's
    block elimination, transposed) solves the transposed Jacobian of the torch step equations,
    (∂r/∂w)ᵀ λ = g for g on the velocities (what a loss on the trajectory gives), at states along a run
    (contacts of every model, active joint limits): backward error ‖(∂r/∂w)ᵀ λ − g‖ / (‖∂r/∂w‖₂ ‖λ‖)
    below 1e-10, and within 1e-7 relative of a dense solve. (The contacts' local elimination divides by
    their gaps, s ≈ κ/γ at rest, so the reduced system is less well conditioned than the dense one: the
    backward error reaches 1e-11 on the sphere pile, against 1e-19 for the dense LU.)"""
    world, steps, actuation, traj = _run_of(name)
    B, nb = 1, len(world.bodies)
    generator = torch.Generator().manual_seed(0)
    exercised = 0
    for k in range(1, steps, 5):
        start = traj.state(k)
        u = torch.zeros(B, nb, 6, dtype=torch.float64)
        act = None if actuation is None else actuation[k].reshape(B, -1)
        _, info = kernel_step.step(world, start, u, world.kappa, warm=False, actuation=act)
        assert bool(info.report.converged.all())
        jac = _reference_jacobian(world, start, u, act if act is not None else torch.zeros(B, 0, dtype=torch.float64),
                                  info)
        g = torch.zeros(B, jac.shape[-1], dtype=torch.float64)
        g[:, :6 * nb] = torch.randn(B, 6 * nb, dtype=torch.float64, generator=generator)
        expected = torch.linalg.solve(jac.transpose(-1, -2), g[..., None])[..., 0]
        lam = info.adjoint(g)
        jt = jac.transpose(-1, -2)[0]
        backward_error = (jt @ lam[0] - g[0]).norm() / (torch.linalg.matrix_norm(jt, 2) * lam[0].norm())
        assert float(backward_error) < 1e-10
        assert float((lam - expected).abs().max() / expected.abs().max()) < 1e-7
        limits = info.joints is not None and bool(info.joints.decisions["limit_active"].any())
        exercised += int(bool(info.decisions["active"].any()) or limits)
    assert exercised >= 3   # the contacts or limits are in the system, not only free bodies


@pytest.mark.parametrize("name", list(SCENES) + ["actuated_arm", "welded_spinning_pair_and_slider",
                                                  "hinged_plank_on_the_ground", "quadruped"])
def test_vjp_kernel_equals_torch_autograd_of_the_step_equations(name):
    """The backward pass's vector–Jacobian product −λᵀ ∂r/∂θ from Taichi's reverse mode (kernels/vjp.py,
    detection re-run in the kernel) equals torch autograd through the torch step equations with the
    forward's decisions (grad.reference_vjp), for the start state, the controls, the actuation and every
    World parameter (masses, inertias, gravity, sizes, frictions, restitutions, planes, static poses,
    joint anchors, axes, rest rotations, springs, dampers, rest positions, limits), at states along runs
    covering all seven contact models and every joint kind: to 1e-9 relative per input."""
    from simcore.rigid.grad import reference_vjp
    from simcore.rigid.step import Params

    world, steps, actuation, traj = _run_of(name)
    nb = len(world.bodies)
    generator = torch.Generator().manual_seed(1)
    exercised = 0
    for k in range(1, steps, 2):
        start = traj.state(k)
        u = 0.1 * torch.randn(1, nb, 6, dtype=torch.float64, generator=generator)
        act = torch.zeros(1, world.actuators, dtype=torch.float64) if actuation is None else actuation[k][None]
        _, info = kernel_step.step(world, start, u, world.kappa, warm=False, actuation=act)
        g = torch.zeros(1, info.w.shape[-1], dtype=torch.float64)
        g[:, :6 * nb] = torch.randn(1, 6 * nb, dtype=torch.float64, generator=generator)
        params = world.params().tensors()
        inputs = (*start.tensors(), u, act, *params)
        needs = [True] * 5 + [act.numel() > 0] + [p.numel() > 0 for p in params]
        got = info.vjp(g, inputs, needs)
        expected = reference_vjp(world, info, world.kappa, info.adjoint(g), inputs, needs)
        for label, a, b in zip(["x", "q", "v", "ω", "controls", "actuation", *Params.FIELDS], got, expected):
            if b is None:
                assert a is None or not a.any(), label
                continue
            assert float((a - b).abs().max()) <= 1e-9 * max(float(b.abs().max()), 1e-6), label
        limits = info.joints is not None and bool(info.joints.decisions["limit_active"].any())
        exercised += int(bool(info.decisions["active"].any()) or limits or bool(world.joints))
    assert exercised >= 2   # (the bouncing sphere touches the plane in two of the sampled steps)


def test_sparse_lu_solves_the_reduced_system_over_its_pattern():
    """common.sparse_lu_factor / sparse_lu_solve with the quadruped's symbolic table (runner.symbolic_lu):
    a random matrix on its pattern (a dominant diagonal on the bodies, the impulses' block zero, as in
    the step) is solved, and transposed-solved, to 1e-12 relative of numpy; a matrix whose first pivot
    is zero is refused (the caller then refactorizes with partial pivoting)."""
    from simcore.backend import ti
    from simcore.rigid.kernels.common import SYM_ORDER, F, iarr1, sparse_lu_factor, sparse_lu_solve
    from simcore.rigid.kernels.runner import runner_for

    world, state, _ = quadruped()
    sym = runner_for(world, 1).sym
    n = int(sym[0])
    entries = sym[SYM_ORDER + 3 * n + 2 + sym[1] + sym[2]:]

    @ti.kernel
    def solve(A: ti.types.ndarray(dtype=F, ndim=3), x: ti.types.ndarray(dtype=F, ndim=2), s: iarr1,
              ok: ti.types.ndarray(dtype=ti.i32, ndim=1), transposed: ti.i32):
        for b in range(A.shape[0]):
            ok[b] = sparse_lu_factor(A, s, b, n)
            if ok[b] == 1:
                sparse_lu_solve(A, s, x, b, n, transposed)

    lp, up = sym[SYM_ORDER + n:SYM_ORDER + 2 * n + 1], sym[SYM_ORDER + 2 * n + 1:SYM_ORDER + 3 * n + 2]
    multiply_adds = int(np.sum(np.diff(lp) * np.diff(up)))
    assert sym[3] < 3_000 and multiply_adds < 20_000   # docs/rigid.md: 2,924 entries, about 15,000
    rng = np.random.default_rng(1)
    structure = np.zeros(n * n, bool)
    structure[entries] = True
    structure = structure.reshape(n, n)
    nz = 6 * len(world.bodies)
    A = np.where(structure, rng.normal(size=(n, n)), 0.0)
    A[nz:, nz:] = 0.0                                  # the equality rows' impulse block
    A[np.arange(nz), np.arange(nz)] += 10.0            # mass-like diagonal of the velocities
    singular = A.copy()
    first = int(sym[SYM_ORDER])
    singular[first, :] = singular[:, first] = 0.0      # zero pivot at the first step
    rhs = rng.normal(size=n)
    for transposed in (0, 1):
        mats = np.stack([A, singular])
        x = np.stack([rhs, rhs])
        ok = np.zeros(2, np.int32)
        solve(mats, x, sym, ok, transposed)
        expected = np.linalg.solve(A.T if transposed else A, rhs)
        assert ok.tolist() == [1, 0]
        assert np.abs(x[0] - expected).max() < 1e-12 * np.abs(expected).max()


def test_world_loop_spread_visits_every_world_once(monkeypatch):
    """runner.spread pads the kernels' world loop so that Taichi's CPU backend (at least 512 iterations
    per task) runs small batches on several threads; common.world_of must still step every world exactly
    once, for any batch size and thread count."""
    from simcore import backend
    from simcore.backend import ti
    from simcore.rigid.kernels import runner
    from simcore.rigid.kernels.common import world_of

    backend.active()

    @ti.kernel
    def visit(count: ti.types.ndarray(dtype=ti.i32, ndim=1), items: ti.i32, tasks: ti.i32):
        for item in range(items):
            b = world_of(item, tasks)
            if b < count.shape[0]:
                ti.atomic_add(count[b], 1)

    cfg = ti.lang.impl.current_cfg()
    for threads in (1, 2, 3, 16):
        monkeypatch.setattr(cfg, "cpu_max_num_threads", threads)
        for B in (1, 2, 3, 64, 511, 1000, 1500, 9000):
            items, tasks = runner.spread(B)
            assert tasks == (1 if B >= 512 * threads else min(threads, B))
            count = np.zeros(B, np.int32)
            visit(count, items, tasks)
            assert (count == 1).all(), (threads, B)


def test_atan2_from_square_roots_matches_numpy():
    """common.atan2 (arithmetic and square roots only, for Vulkan): within 2e-15 rad of numpy's arctan2 on
    10⁵ random points, tiny angles and the axes, with atan2(0, 0) = 0."""
    from simcore import backend
    from simcore.backend import ti
    from simcore.rigid.kernels.common import F, atan2

    backend.active()

    @ti.kernel
    def angles(y: ti.types.ndarray(dtype=F, ndim=1), x: ti.types.ndarray(dtype=F, ndim=1),
               out: ti.types.ndarray(dtype=F, ndim=1)):
        for i in range(y.shape[0]):
            out[i] = atan2(y[i], x[i])

    rng = np.random.default_rng(0)
    y = np.concatenate([rng.normal(size=100_000), 1e-8 * rng.normal(size=1_000), [0.0, 1.0, -1.0, 0.0, 3.0, -2.0]])
    x = np.concatenate([rng.normal(size=100_000), rng.normal(size=1_000), [0.0, 0.0, 0.0, -1.0, 3.0, -2.0]])
    out = np.zeros_like(y)
    angles(y, x, out)
    assert np.abs(out - np.arctan2(y, x)).max() < 2e-15
