"""Gradients of differentiable rollouts against central finite differences (CPU, float64).

Each case runs a short rollout with contact (a plane with friction) and compares dL/dθ from
`loss.backward()` with (L(θ + h) − L(θ − h)) / 2h of the same rollout. One scene per material
configuration is shared by its checks: gradient kernels compile once per scene, and a 3D
configuration's adjoint kernels take most of a minute to compile on a 2-core CPU, so the plastic
return maps are checked in 2D (the 3D SVD adjoint they share is checked on its own in
tests/mpm/test_decompositions.py)."""

import numpy as np
import pytest
import torch

import simcore as sc
from simcore.mpm import cache
from simcore.mpm.config import Configuration
from simcore.mpm.solver import MPMSolver

M = sc.materials
TOL = 1e-4  # relative


@pytest.fixture(scope="module", autouse=True)
def cpu64_module():
    sc.init("cpu", "f64")
    yield
    sc.init("cpu", "f32")


def t(value):
    return torch.tensor(value, dtype=torch.float64, requires_grad=True)


def make_scene(dim, material, velocity, transfer="apic"):
    scene = sc.Scene(dim=dim, grid=24, dt=5e-4, transfer=transfer)
    scene.add_body(sc.shapes.Box(center=(0.5, 0.3, 0.5)[:dim], size=(0.15,) * dim), material, velocity=velocity)
    scene.add_collider(sc.colliders.Plane(point=(0, 0.2, 0)[:dim], normal=(0, 1, 0)[:dim], friction=0.3))
    return scene


def loss_of(scene, frames=6):
    out = scene.rollout(frames=frames, frame_dt=1 / 60)
    return (out.x[-1, :, 0] ** 2).mean() + (out.x[-1, :, 1] ** 2).mean()


def central_difference(scene, param, h, index=None):
    with torch.no_grad():
        view = param if index is None else param[index]
        view += h
        plus = loss_of(scene).item()
        view -= 2 * h
        minus = loss_of(scene).item()
        view += h
    return (plus - minus) / (2 * h)


def check(scene, params, steps):
    for p in params:
        p.grad = None
    loss_of(scene).backward()
    for param, h in zip(params, steps):
        for index in ([None] if param.dim() == 0 else range(param.numel())):
            analytic = (param.grad if index is None else param.grad[index]).item()
            numeric = central_difference(scene, param, h, index)
            assert analytic == pytest.approx(numeric, rel=TOL, abs=1e-12), (param, index)


def neo_hookean_scene(dim):
    """A neo-Hookean body bouncing on the plane, and its leaves (E, ν, v0)."""
    E, nu, v0 = t(2e4), t(0.3), t([0.5, -2.0, 0.2][:dim])
    return make_scene(dim, M.NeoHookean(E=E, nu=nu), v0), (E, nu, v0)


@pytest.fixture(scope="module")
def neo_hookean():
    """The 2D body (the 3D one is in test_gradients_3d.py)."""
    return neo_hookean_scene(2)


def check_neo_hookean(scene, E, nu, v0):
    check(scene, [E, nu, v0], [1.0, 1e-5, 1e-5])


def test_neo_hookean_moduli_and_initial_velocity(neo_hookean):
    """dL/dE, dL/dν and dL/dv0 of a neo-Hookean body bouncing on a frictional plane."""
    scene, (E, nu, v0) = neo_hookean
    check_neo_hookean(scene, E, nu, v0)


def test_free_flight_dx_dv0_is_T(neo_hookean):
    """Free flight (no contact; gravity is additive): d mean(x_T) / d v0 = T·I exactly."""
    check_free_flight(*neo_hookean)


def check_free_flight(scene, leaves):
    _, _, v0 = leaves
    dim = scene.dim
    with torch.no_grad():
        saved = v0.clone()
        v0.copy_(torch.tensor([0.3, 1.0, -0.2][:dim]))  # moving up: away from the plane
    try:
        out = scene.rollout(frames=2, frame_dt=0.01)
        for axis in range(dim):
            v0.grad = None
            out.x[-1, :, axis].mean().backward(retain_graph=True)
            expected = np.zeros(dim)
            expected[axis] = 0.02
            assert np.allclose(v0.grad.numpy(), expected, rtol=0, atol=1e-13)
    finally:
        with torch.no_grad():
            v0.copy_(saved)


def check_fixed_corotated(dim):
    E, nu = t(2e4), t(0.3)
    check(make_scene(dim, M.FixedCorotated(E=E, nu=nu), (0.5, -2.0, 0.2)[:dim]), [E, nu], [1.0, 1e-5])


def test_fixed_corotated_moduli():
    """dL/dE and dL/dν through the hand-written adjoint of the closest rotation (fixed corotated), 2D
    (3D: test_gradients_3d.py)."""
    check_fixed_corotated(2)


@pytest.mark.parametrize("transfer", ["apic", "flip"])
def test_kept_temporaries_equal_recomputation(monkeypatch, transfer):
    """A reverse sweep reads each substep's grid and per-particle temporaries from the copies its
    forward sweep saved (MPMSolver.KEEP_BUDGET); recomputing them instead gives the same gradients
    (with the FLIP transfer, its second grid velocity is among them)."""
    grads = []
    for budget in (MPMSolver.KEEP_BUDGET, 0):
        monkeypatch.setattr(MPMSolver, "KEEP_BUDGET", budget)
        cache.clear()  # solvers are shared: build one under this budget
        E, v0 = t(3e4), t([0.5, -2.0])
        scene = make_scene(2, M.FixedCorotated(E=E, nu=0.3), v0, transfer)
        loss_of(scene).backward()
        assert [s.keeps_temporaries for s in cache.solvers() if s.needs_grad] == [budget > 0]
        grads.append([E.grad.item(), *v0.grad.tolist()])
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-12)


FLIP_MATERIALS = ("NeoHookean", "FixedCorotated", "Sand")


def flip_case(material, dim=2):
    """test_flip_transfer_gradients' scene of `material` with the FLIP transfer, its leaves and their
    finite-difference steps: E, ν, ρ, v0 (sand: E, φ, v0)."""
    E, nu, rho, v0 = t(2e4), t(0.3), t(1000.0), t([0.5, -2.0, 0.2][:dim])
    if material == "Sand":
        phi = t(30.0)
        return make_scene(dim, M.Sand(E=E, friction_angle=phi), v0, "flip"), [E, phi, v0], [1.0, 1e-3, 1e-5]
    return (make_scene(dim, getattr(M, material)(E=E, nu=nu, density=rho), v0, "flip"), [E, nu, rho, v0],
            [1.0, 1e-5, 1e-3, 1e-5])


@pytest.mark.parametrize("material", FLIP_MATERIALS)
def test_flip_transfer_gradients(material):
    """Gradients through the FLIP transfer (`Scene(transfer="flip")`, κ = 20/s: the blend's own adjoint
    terms, its grid velocity before forces and the particle's velocity carried across substeps) against
    central differences: dL/dE, dL/dν, dL/dρ and dL/dv0 on each path of the stress adjoint (neo-Hookean:
    closed form inside the gather; fixed corotated: Taichi's autodiff and the rotation's adjoint; sand:
    the SVD path, and dL/dφ)."""
    check(*flip_case(material))


@pytest.mark.parametrize("dim", [2])
def test_plasticine_yield_stress(dim):
    """dL/dσ_y and dL/dE through the von Mises return map, with particles yielding. (dL/dE was 1e-3 off
    while Taichi's 2D SVD left U diag(s) Vᵀ up to 1e-5 from F; constitutive.svd now decomposes 2D F
    itself.)"""
    sigma_y, E = t(800.0), t(2e4)
    check(make_scene(dim, M.Plasticine(E=E, yield_stress=sigma_y), (0.5, -2.0, 0.2)[:dim]), [sigma_y, E], [0.05, 1.0])


def test_hencky_elastic_moduli():
    """dL/dE and dL/dν of the Hencky (St. Venant–Kirchhoff on log strain) elasticity under sand and
    plasticine, kept elastic (a yield stress it never reaches). Both were NaN (the adjoint of ‖dev ε‖ at
    ε = 0), then 2e-4 off (the stress's derivative went through the singular vectors, singular at rest);
    the stress is now a polynomial in b = F Fᵀ with divided-difference coefficients."""
    E, nu = t(2e4), t(0.3)
    check(make_scene(2, M.Plasticine(E=E, nu=nu, yield_stress=1e7), (0.5, -2.0)), [E, nu], [1.0, 1e-5])


@pytest.mark.parametrize("dim", [2, 3])
def test_sand_friction_angle(dim):
    """dL/dφ through sand's return map: the Mohr–Coulomb cone in 2D, the Matsuoka–Nakai surface in 3D
    (its radius from six Newton steps, differentiated through them)."""
    phi = t(30.0)
    check(make_scene(dim, M.Sand(E=2e4, friction_angle=phi), (0.5, -2.0, 0.2)[:dim]), [phi], [1e-3])


def test_rollout_matches_run_and_no_grad_stores_nothing():
    """A rollout's forward is the same simulation as `run`; under no_grad no checkpoint is kept."""
    E = t(2e4)
    scene = make_scene(2, M.NeoHookean(E=E), (0.5, -2.0))
    traj = scene.run(frames=4, frame_dt=1 / 60)
    with torch.no_grad():
        out = scene.rollout(frames=4, frame_dt=1 / 60)
    assert not out.x.requires_grad
    assert np.allclose(out.x.numpy(), traj.x, atol=1e-12)
    out = scene.rollout(frames=4, frame_dt=1 / 60)
    assert out.x.requires_grad

    # Segment checkpointing recomputes exactly: the same gradient for k = 1, 7 and all-in-one.
    grads = []
    for k in (1, 7, 1000):
        E.grad = None
        out = scene.rollout(frames=3, frame_dt=1 / 60, checkpoint_every=k)
        (out.x[-1] ** 2).sum().backward()
        grads.append(E.grad.item())
    assert grads[0] == pytest.approx(grads[1], rel=1e-12) and grads[1] == pytest.approx(grads[2], rel=1e-12)


def test_actuation():
    """Open-loop actuation (ChainQueen fibre stress): the rollout equals `run` with the same signal,
    and dL/d(activation per frame and group) matches central differences."""
    scene = sc.Scene(dim=2, grid=24, dt=5e-4)
    scene.add_body(sc.shapes.Box(center=(0.4, 0.2), size=(0.15, 0.08)), M.NeoHookean(E=2e4),
                   actuator=lambda x: (x[:, 0] > 0.4).astype(int), fibre=(1, 0))
    scene.add_collider(sc.colliders.Plane(point=(0, 0.15), normal=(0, 1), friction=0.5))
    k = np.arange(6)
    A = t(np.stack([3e3 * np.sin(k), -2e3 * np.cos(k)], 1))
    traj = scene.run(frames=6, frame_dt=1 / 60, actuation=A.detach().numpy())

    def loss():
        return scene.rollout(frames=6, frame_dt=1 / 60, actuation=A).x[-1, :, 0].mean()

    out = scene.rollout(frames=6, frame_dt=1 / 60, actuation=A)
    assert np.abs(out.x.detach().numpy() - traj.x).max() < 1e-12
    loss().backward()
    for index in [(0, 1), (2, 0), (4, 1)]:
        with torch.no_grad():
            A[index] += 1.0
            plus = loss().item()
            A[index] -= 2.0
            minus = loss().item()
            A[index] += 1.0
        assert abs(plus - minus) > 1e-8  # the loss does depend on it (the strip slides on the plane)
        assert A.grad[index].item() == pytest.approx((plus - minus) / 2.0, rel=TOL)
    with pytest.raises(ValueError, match="actuation must have shape"):
        scene.run(frames=2, actuation=np.zeros((3, 2)))


def test_snow_and_fluid_gradients_and_recorded_fields():
    """Snow (clamped singular values, hardening) and a weakly compressible viscous fluid in one scene:
    the rollout records every field `run` records (x, v, C, F, Jp, with run's conventions) with the same
    values, and dL/d(snow E, hardening, fluid bulk modulus, viscosity) — the loss reading recorded F and
    Jp too — matches central differences."""
    E, hardening, K, viscosity = t(3e4), t(10.0), t(2e4), t(0.5)
    scene = sc.Scene(dim=2, grid=24, dt=5e-4)
    scene.add_body(sc.shapes.Box(center=(0.35, 0.3), size=(0.12, 0.12)),
                   M.Snow(E=E, hardening=hardening, density=1e3), velocity=(0.5, -2.0))
    scene.add_body(sc.shapes.Box(center=(0.65, 0.3), size=(0.12, 0.12)),
                   M.Fluid(bulk_modulus=K, viscosity=viscosity, gamma=1.0), velocity=(-0.5, -2.0))
    scene.add_collider(sc.colliders.Plane(point=(0, 0.2), normal=(0, 1), friction=0.3))
    fields = ("x", "v", "C", "F", "Jp")
    traj = scene.run(frames=4, frame_dt=1 / 60, record=fields)
    with torch.no_grad():
        out = scene.rollout(frames=4, frame_dt=1 / 60, record=fields)
    for name in fields:
        assert np.abs(getattr(out, name).numpy() - getattr(traj, name)).max() < 1e-9, name

    def loss():
        out = scene.rollout(frames=6, frame_dt=1 / 60, record=fields)
        return (out.x[-1] ** 2).mean() + (out.F[-1] ** 2).mean() + out.Jp[-1].mean()

    for param, h in ((E, 1.0), (hardening, 1e-4), (K, 1.0), (viscosity, 1e-5)):
        param.grad = None
        loss().backward()
        with torch.no_grad():
            param += h
            plus = loss().item()
            param -= 2 * h
            minus = loss().item()
            param += h
        assert param.grad.item() == pytest.approx((plus - minus) / (2 * h), rel=TOL, abs=1e-12), param


def test_default_checkpoint_interval():
    """Every substep is kept when the slots fit in KEEP_ALL_BUDGET, else k = ⌈√T⌉; slot counts are
    powers of two (k + 1 at least), so rollouts of similar lengths share one compiled solver."""
    from simcore.torch import KEEP_ALL_BUDGET, default_checkpoint_interval, solver_slots

    assert [solver_slots(k) for k in (1, 15, 16, 100, 127, 128)] == [16, 16, 32, 128, 128, 256]

    def slot_bytes(particles, dim, grid, precision):
        return Configuration(dim, grid, (M.NeoHookean.kind,), ((0, 0),) * dim, (), 0, precision, "cpu",
                             needs_grad=True).slot_bytes(particles)

    small = slot_bytes(1024, 2, 32, "f64")  # a 2D f64 test scene: about 0.3 MB per slot
    assert default_checkpoint_interval(200, small) == 200
    big = slot_bytes(32768, 3, 64, "f32")  # benchmarks/diff_memory.py: about 15 MB per slot
    assert solver_slots(2000) * big > KEEP_ALL_BUDGET
    assert default_checkpoint_interval(2000, big) == 45
    assert default_checkpoint_interval(2000) == 45


def test_mu_i_friction_and_modulus():
    """dL/dμs, dL/dμ2 and dL/dE through the μ(I) return map (rate-dependent: it reads the substep), a
    body yielding on impact."""
    mu_s, mu_2, E = t(0.4), t(0.7), t(2e4)
    material = M.GranularMuI(E=E, mu_s=mu_s, mu_2=mu_2, grain_diameter=0.01)
    check(make_scene(2, material, (0.5, -2.0)), [mu_s, mu_2, E], [1e-5, 1e-5, 1.0])
