"""Implicit-function-theorem gradients of World.rollout against central finite differences of the same
relaxed (κ_grad) dynamics, float64."""

import ast
from pathlib import Path

import numpy as np
import pytest
import torch

import simcore.rigid as rigid
from simcore.rigid import grad

T64 = dict(dtype=torch.float64)
STEPS = 20


def test_free_flight_position_gradient_is_elapsed_time_identity():
    """Law: in free flight x_T = x_0 + T v_0, so ∂x_T/∂v_0 = T·I (T = steps·dt)."""
    v0 = torch.tensor([1.0, -2.0, 0.5], **T64, requires_grad=True)
    world = rigid.World(dt=0.01, gravity=(0, 0, 0), rtol=1e-12)
    world.add(rigid.Box(size=(0.2, 0.3, 0.4), velocity=v0, angular_velocity=(1.0, 2.0, 0.5)))
    out = world.rollout(steps=50)
    rows = [torch.autograd.grad(out.position[-1, 0, i], v0, retain_graph=True)[0] for i in range(3)]
    jac = torch.stack(rows)
    assert torch.allclose(jac, 0.5 * torch.eye(3, **T64), atol=1e-12)


def pushed_box_loss(params):
    """A box sliding on a plane under a push and a yaw torque; loss mixes final pose and velocities."""
    size = params["size"]
    world = rigid.World(dt=0.01, gravity=(0, -9.81, 0), kappa_grad=1e-4, rtol=1e-12)
    world.add(rigid.Plane(friction=params["friction"]))
    world.add(rigid.Box(size=size, mass=params["mass"], inertia=params["inertia"],
                        position=torch.stack([torch.zeros((), **T64), 0.5 * size[1], torch.zeros((), **T64)]),
                        velocity=params["velocity"], angular_velocity=params["angular_velocity"]))
    out = world.rollout(steps=STEPS, controls=params["controls"])
    weights = torch.tensor([1.0, 0.3, 0.7], **T64)
    return ((out.position[-1, 0] * weights).sum() + out.velocity[-1, 0].sum()
            + out.angular_velocity[-1, 0].sum()
            + (out.orientation[-1, 0] * torch.tensor([0.1, 0.2, 0.3, 0.4], **T64)).sum())


def base_params():
    controls = torch.zeros(STEPS, 1, 6, **T64)
    controls[:, 0, 0] = 40.0
    controls[:, 0, 2] = -10.0
    controls[:, 0, 4] = 3.0
    return dict(size=torch.tensor([0.5, 0.4, 0.3], **T64), mass=torch.tensor(50.0, **T64),
                inertia=torch.tensor([1.2, 1.5, 1.7], **T64), friction=torch.tensor(0.4, **T64),
                velocity=torch.tensor([2.0, 0.0, 1.0], **T64), angular_velocity=torch.tensor([0.0, 1.0, 0.0], **T64),
                controls=controls)


@pytest.fixture(scope="module")
def analytic():
    params = {k: v.clone().requires_grad_(True) for k, v in base_params().items()}
    pushed_box_loss(params).backward()
    return {k: v.grad.clone() for k, v in params.items()}


CHECKS = [("velocity", [0, 1, 2]), ("angular_velocity", [1]), ("mass", [0]), ("inertia", [1]),
          ("friction", [0]), ("size", [0, 1, 2]), ("controls", [0, 2, 4, 6 * (STEPS - 1)])]


@pytest.mark.parametrize("name,indices", CHECKS)
def test_rollout_gradient_matches_central_differences(analytic, name, indices):
    """Implicit function theorem: the adjoint gradient equals the derivative of the relaxed dynamics,
    checked against central differences to 1e-5 relative (per parameter group)."""
    base = base_params()
    fd, ad = [], []
    for i in indices:
        value = base[name].view(-1)[i]
        eps = 1e-6 * max(abs(float(value)), 1.0)
        losses = []
        for sign in (1, -1):
            p = {k: v.clone() for k, v in base.items()}
            p[name].view(-1)[i] += sign * eps
            with torch.no_grad():
                losses.append(float(pushed_box_loss(p)))
        fd.append((losses[0] - losses[1]) / (2 * eps))
        ad.append(float(analytic[name].view(-1)[i]))
    fd, ad = np.array(fd), np.array(ad)
    assert np.linalg.norm(fd) > 1e-3, "the check needs a non-trivial gradient"
    assert np.linalg.norm(ad - fd) <= 1e-5 * np.linalg.norm(fd), (ad, fd)


def test_batched_worlds_match_single_worlds():
    """Batched worlds are independent: each world of a batch of tossed boxes (impacts, different
    contact sets per world) follows its single-world run to 1e-9 m."""
    world = rigid.World(dt=0.05)
    world.add(rigid.Plane(friction=0.5))
    world.add(rigid.Box(size=(0.5, 0.5, 0.5), position=(0, 1.0, 0), orientation=(0.95, 0.2, 0.1, 0.2),
                        angular_velocity=(2, 1, 0)))
    state = world.initial_state(batch=3)
    state.velocity = torch.tensor([[[1.0, 0, 0.5]], [[0.0, 0, 0]], [[2.0, -1, 0]]], **T64)
    batched = world.run(steps=40, state=state)
    assert batched.position.shape == (41, 3, 1, 3)
    for b in range(3):
        single = world.initial_state(batch=1)
        single.velocity = state.velocity[b:b + 1]
        one = world.run(steps=40, state=single)
        assert np.abs(one.position[:, 0] - batched.position[:, b]).max() < 1e-9


def two_box_loss(params):
    """Box A pushes box B (dynamic box–box corner–face contact) across a plane; B's size and mass and
    the push enter the loss through the contact."""
    size_b = params["size_b"]
    world = rigid.World(dt=0.01, gravity=(0, -9.81, 0), kappa_grad=1e-4, rtol=1e-12)
    world.add(rigid.Plane(friction=0.3))
    world.add(rigid.Box(size=(0.4, 0.4, 0.4), mass=20.0, position=(0, 0.2, 0), velocity=(1.0, 0, 0)))
    world.add(rigid.Box(size=size_b, mass=params["mass_b"],
                        position=torch.stack([0.2 + 0.5 * size_b[0] + 0.002, 0.5 * size_b[1], torch.zeros((), **T64)]),
                        friction=params["friction_b"]))
    controls = torch.zeros(15, 2, 6, **T64)
    controls[:, 0, 0] = params["push"]
    out = world.rollout(steps=15, controls=controls)
    return out.position[-1, 1, 0] + 0.5 * out.velocity[-1, 1, 0] + out.position[-1, 0, 0]


def assert_matches_central_differences(loss, base, entries):
    """Gradients of loss(params) at `base` (a dict of tensors) against central differences, entry by
    entry ((name, flat index) pairs), to 1e-5 of the largest; each difference must be resolvable."""
    params = {k: v.clone().requires_grad_(True) for k, v in base.items()}
    loss(params).backward()
    ad, fd = [], []
    for name, i in entries:
        eps = 1e-6 * max(abs(float(base[name].view(-1)[i])), 1.0)
        losses = []
        for sign in (1, -1):
            p = {k: v.clone() for k, v in base.items()}
            p[name].view(-1)[i] += sign * eps
            with torch.no_grad():
                losses.append(float(loss(p)))
        fd.append((losses[0] - losses[1]) / (2 * eps))
        ad.append(float(params[name].grad.view(-1)[i]))
    fd, ad = np.array(fd), np.array(ad)
    assert np.abs(fd).min() > 1e-4, fd
    assert np.abs(ad - fd).max() <= 1e-5 * np.abs(fd).max(), (ad, fd)


def test_two_body_contact_gradient_matches_central_differences():
    """Implicit function theorem through a contact between two dynamic bodies (the contact geometry
    depends on both poses and on B's size): gradients match central differences to 1e-5 relative."""
    base = dict(size_b=torch.tensor([0.3, 0.3, 0.3], **T64), mass_b=torch.tensor(10.0, **T64),
                friction_b=torch.tensor(0.8, **T64), push=torch.tensor(150.0, **T64))
    assert_matches_central_differences(two_box_loss, base, [("size_b", 0), ("size_b", 1), ("mass_b", 0),
                                                            ("friction_b", 0), ("push", 0)])


def test_restitution_gradient_matches_central_differences():
    """Implicit function theorem through an impact with restitution: d(height after the bounce)/de
    matches central differences to 1e-5 relative."""
    def height(e):
        world = rigid.World(dt=0.005, gravity=(0, -9.81, 0), rtol=1e-12)
        world.add(rigid.Plane(friction=0.5, restitution=e))
        world.add(rigid.Sphere(radius=0.1, density=1e3, position=(0, 0.35, 0)))
        return world.rollout(steps=80).position[-1, 0, 1]

    e = torch.tensor(0.6, **T64, requires_grad=True)
    (grad,) = torch.autograd.grad(height(e), e)
    with torch.no_grad():
        fd = (float(height(torch.tensor(0.6 + 1e-6, **T64))) - float(height(torch.tensor(0.6 - 1e-6, **T64)))) / 2e-6
    assert abs(fd) > 1e-2
    assert abs(float(grad) - fd) <= 1e-5 * abs(fd)


def manifold_loss(params):
    """A box turned 45° sliding and spinning on an equal static box (edge-crossing contacts) and a
    capsule sliding across a static box (segment–face contacts); the loss mixes both final states."""
    c, s = np.cos(np.pi / 8), np.sin(np.pi / 8)
    r = np.sqrt(0.5)
    world = rigid.World(dt=0.01, gravity=(0, -9.81, 0), kappa_grad=1e-4, rtol=1e-12)
    world.add(rigid.Box(size=(0.4, 0.4, 0.4), static=True, friction=params["friction"]))
    world.add(rigid.Box(size=params["size"], density=1e3, position=torch.stack(
        [torch.zeros((), **T64), 0.2 + 0.5 * params["size"][1], torch.zeros((), **T64)]),
        orientation=(c, 0, s, 0), velocity=params["box_velocity"], angular_velocity=(0, 0.5, 0)))
    world.add(rigid.Box(size=(0.4, 0.2, 0.4), static=True, position=(2.0, -0.1, 0)))
    world.add(rigid.Capsule(radius=params["radius"], length=0.8, density=1e3,
                            position=torch.stack([torch.tensor(2.0, **T64), params["radius"], torch.zeros((), **T64)]),
                            orientation=(r, 0, r, 0), velocity=params["capsule_velocity"]))
    out = world.rollout(steps=12)
    w = torch.tensor([1.0, 0.4, 0.7], **T64)
    return ((out.position[-1] * w).sum() + out.velocity[-1].sum() + out.angular_velocity[-1].sum()
            + out.orientation[-1, :, 1:].sum())


def test_manifold_and_segment_face_gradients_match_central_differences():
    """Implicit function theorem through the box–box manifold (edge crossings of a turned box) and the
    capsule segment–face contacts, with their discrete choices held fixed: gradients with respect to
    initial velocities, the box size, the capsule radius and the friction match central differences to
    1e-5 relative."""
    base = dict(size=torch.tensor([0.4, 0.4, 0.4], **T64), radius=torch.tensor(0.05, **T64),
                friction=torch.tensor(0.5, **T64), box_velocity=torch.tensor([0.3, 0.0, 0.1], **T64),
                capsule_velocity=torch.tensor([0.1, 0.0, 0.2], **T64))
    assert_matches_central_differences(manifold_loss, base, [("size", 0), ("size", 1), ("radius", 0),
                                                             ("friction", 0), ("box_velocity", 0),
                                                             ("box_velocity", 2), ("capsule_velocity", 2)])


def test_grad_does_not_import_world():
    """Layering: World.rollout calls into grad, so grad must not import world (an import cycle)."""
    tree = ast.parse(Path(grad.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
                 for alias in node.names}
    assert not {"world", "simcore.rigid.world"} & imported
