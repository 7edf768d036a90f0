"""The rigid step kernel and the adjoint kernel on Vulkan (Mesa's lavapipe in CI: 64-bit floats on the
CPU through the SPIR-V path) and on CUDA (skipped without a GPU).

Law checked: the same discrete equations and interior-point iteration as the torch reference, so the
Vulkan kernel reproduces the reference's trajectories to round-off (1e-10 m, 1e-9 m/s) with the same
iteration counts, and rollout gradients through it (the adjoint kernel) equal the all-torch rollout's to
1e-8 relative. A step the
driver cuts short (lavapipe caps a shader invocation at 65,535 loop iterations in all) raises a
BackendError: it never returns incomplete numbers.
"""

import numpy as np
import pytest
from test_rigid_kernel import MECHANISMS, SCENES, reference_run

import simcore as sc
from simcore.rigid.step import State


@pytest.fixture(scope="module")
def vulkan(vulkan_ok):
    if not vulkan_ok:
        pytest.skip("no Vulkan device (install mesa-vulkan-drivers)")
    sc.init("vulkan", "f32", verbose=False)
    yield
    sc.init("cpu", "f32", verbose=False)


def _velocity_gradient(world, steps):
    state = world.initial_state()
    v = state.velocity.clone().requires_grad_(True)
    out = world.rollout(steps, state=State(state.position, state.orientation, v, state.body_angular_velocity))
    (out.position[-1] ** 2).sum().backward()
    return v.grad


@pytest.mark.vulkan
def test_vulkan_kernel_reproduces_the_reference(vulkan):
    """A sliding box (contact with friction) and an actuated hinge and slider that hit their limits."""
    from simcore import backend

    assert backend.active().arch == "vulkan" and backend.has_f64_arithmetic()
    for world, state, actuation, steps in [(SCENES["sliding_box_pushed"]()[0], None, None, 8),
                                           (*MECHANISMS["actuated_arm"](), 8)]:
        if actuation is not None:
            actuation = actuation[:steps]
        assert world.stepper == "kernel"
        traj = world.run(steps, state=state, actuation=actuation)
        x, v, w, its = reference_run(world, steps, state=state, actuation=actuation)
        ours = (lambda a: a[:, 0]) if state is not None else (lambda a: a)
        assert np.abs(ours(traj.position) - x[:, 0]).max() < 1e-10
        assert np.abs(ours(traj.velocity) - v[:, 0]).max() < 1e-9
        assert np.abs(ours(traj.angular_velocity) - w[:, 0]).max() < 1e-9
        np.testing.assert_array_equal(ours(traj.iterations), its[:, 0])


@pytest.mark.vulkan
def test_vulkan_rollout_gradients_equal_the_reference(vulkan):
    """The adjoint kernel on Vulkan: ∂|x_T|²/∂v₀ of a sliding box equals the all-torch rollout's."""
    from simcore.rigid import kernel_step

    world = SCENES["sliding_box_pushed"]()[0]
    assert world.stepper == "kernel"
    on_vulkan = _velocity_gradient(world, 6)
    with kernel_step.reference_stepper():
        assert world.stepper == "torch"
        reference = _velocity_gradient(world, 6)
    assert float(reference.norm()) > 0.01
    assert float((on_vulkan - reference).norm() / reference.norm()) < 1e-8


@pytest.mark.vulkan
def test_a_step_the_driver_cuts_short_raises(vulkan):
    """A pile of four spheres: on lavapipe its steps exceed the loop cap and the run raises, naming the
    cap and the CPU backend; on a device without the cap it reproduces the reference."""
    world, _ = SCENES["sphere_pile"]()
    try:
        traj = world.run(6)
    except sc.BackendError as exc:
        assert "65,535 loop iterations" in str(exc) and "cpu" in str(exc)
        return
    x, _, _, _ = reference_run(world, 6)
    assert np.abs(traj.position - x[:, 0]).max() < 1e-10


@pytest.fixture(scope="module")
def cuda():
    try:
        sc.init("cuda", "f32", verbose=False)
    except sc.BackendError:
        sc.init("cpu", "f32", verbose=False)
        pytest.skip("no CUDA GPU on this machine")
    yield
    sc.init("cpu", "f32", verbose=False)


def test_cuda_kernel_reproduces_the_reference_and_its_gradients(cuda):
    """On CUDA: the twelve equivalence scenes' trajectories equal the torch reference's to 1e-10 m with
    the same iteration counts, and a rollout gradient through the adjoint kernel equals the all-torch
    rollout's to 1e-8 relative."""
    from simcore.rigid import kernel_step

    cases = []
    for make in SCENES.values():
        world, steps = make()
        cases.append((world, None, None, steps))
    for make in MECHANISMS.values():
        world, state, actuation = make()
        cases.append((world, state, actuation, 40 if actuation is None else actuation.shape[0]))
    for world, state, actuation, steps in cases:
        assert world.stepper == "kernel"
        traj = world.run(steps, state=state, actuation=actuation)
        x, _, _, its = reference_run(world, steps, state=state, actuation=actuation)
        ours = (lambda a: a[:, 0]) if state is not None else (lambda a: a)
        assert np.abs(ours(traj.position) - x[:, 0]).max() < 1e-10
        np.testing.assert_array_equal(ours(traj.iterations), its[:, 0])
    world = SCENES["sliding_box_pushed"]()[0]
    on_cuda = _velocity_gradient(world, 10)
    with kernel_step.reference_stepper():
        reference = _velocity_gradient(world, 10)
    assert float((on_cuda - reference).norm() / reference.norm()) < 1e-8
