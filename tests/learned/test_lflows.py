"""LFlows' construction (learned/lflows/model.py, continuity.py, data.py), no training:

- change of variables: the flow's log-determinant equals log|det| of its autograd Jacobian ∂T/∂x, and
  the inverse undoes the map (2D and 3D);
- the continuity equation ∂ρ/∂t + ∇·(ρv) = 0 holds to float64 round-off for ρ = M p(T)|det ∂T/∂x|,
  v = −(∂T/∂x)⁻¹ ∂T/∂t, whatever the parameters (here random ones), in 2D and 3D;
- conservation of mass: ∫ρ dx by quadrature (in x, and over the labels z) is M at every time, to round-off;
- the velocity is the particles' velocity: d/dt T⁻¹(z, t) at fixed label z (central differences);
- the training loss's one-pass density_and_velocity is the same function (values and parameter gradients)
  as density and velocity;
- the analytic moving Gaussian mixtures satisfy continuity themselves (autograd), and their
  observations hold the mass M in the box;
- bad input raises ValueError saying what to do.
"""

import numpy as np
import pytest
import torch
from simcore.learned.lflows import continuity, data
from simcore.learned.lflows import evaluate as ev
from simcore.learned.lflows import train as lftrain
from simcore.learned.lflows.model import LagrangianFlow


def random_flow(dim: int, seed: int = 0, spread: float = 0.1) -> LagrangianFlow:
    """A float64 flow with every parameter perturbed away from the identity start (a generic bijection)."""
    torch.manual_seed(seed)
    flow = LagrangianFlow(dim, mass=2.5, blocks=2, hidden=24, time_range=(0.0, 2.0)).double()
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(spread * torch.randn_like(p))
    return flow


def points(dim: int, n: int = 128, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, dim, generator=g, dtype=torch.float64),
            2.0 * torch.rand(n, generator=g, dtype=torch.float64))


@pytest.mark.parametrize("dim", [2, 3])
def test_log_det_is_log_abs_det_of_the_autograd_jacobian(dim):
    flow = random_flow(dim)
    x, t = points(dim)
    z, log_det = flow.transform(x, t)
    J, _ = flow.jacobians(x, t)
    assert log_det.abs().max() > 0.1  # the perturbed flow is not volume-preserving: the check has teeth
    torch.testing.assert_close(log_det, torch.linalg.slogdet(J)[1], rtol=0, atol=1e-12)
    torch.testing.assert_close(flow.inverse(z, t), x, rtol=0, atol=1e-12)


@pytest.mark.parametrize("dim", [2, 3])
def test_continuity_holds_to_round_off_for_any_parameters(dim):
    flow = random_flow(dim, seed=dim)
    x, t = points(dim)
    res = continuity.residual(flow.density, flow.velocity, x, t).detach()
    # the size of the terms that cancel: ∂ρ/∂t alone
    rho_t = continuity.residual(flow.density, lambda x_, t_: torch.zeros_like(x_), x, t).detach()
    assert rho_t.abs().max() > 1e-2
    assert res.abs().max() < 1e-12 * max(1.0, float(rho_t.abs().max()))


def test_velocity_is_the_time_derivative_of_a_labelled_particle():
    flow = random_flow(2, seed=3)
    x, t = points(2, 16)
    z, _ = flow.transform(x, t)
    h = 1e-5
    dx_dt = (flow.inverse(z, t + h) - flow.inverse(z, t - h)) / (2 * h)
    torch.testing.assert_close(flow.velocity(x, t).detach(), dx_dt.detach(), rtol=0, atol=1e-7)


@pytest.mark.parametrize("dim", [2, 3])
def test_training_path_gives_the_same_density_velocity_and_gradients(dim):
    """density_and_velocity (the training loss's one-pass path, batched Jacobian rows) is the same function
    as density and velocity: equal values and equal parameter gradients of a loss of both, to round-off."""
    flow = random_flow(dim, seed=7)
    x, t = points(dim, 64)

    def grads(rho, v):
        loss = (rho ** 2).sum() + (v ** 2).sum()
        return torch.autograd.grad(loss, list(flow.parameters()), allow_unused=True)

    rho, v = flow.density_and_velocity(x, t)
    rho_ref, v_ref = flow.density(x, t), flow.velocity(x, t)
    torch.testing.assert_close(rho, rho_ref, rtol=1e-12, atol=0)
    torch.testing.assert_close(v, v_ref, rtol=1e-12, atol=1e-12)
    for g, g_ref in zip(grads(rho, v), grads(rho_ref, v_ref)):
        if g_ref is None:
            assert g is None
        else:
            torch.testing.assert_close(g, g_ref, rtol=1e-10, atol=1e-12)
    where = torch.arange(len(t)) % 3 == 0  # the velocity only where it was observed
    torch.testing.assert_close(flow.density_and_velocity(x, t, where)[1], v_ref[where], rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="bool mask"):
        flow.density_and_velocity(x, t, where.double())


@pytest.mark.parametrize("dim, cells", [(2, 384), (3, 40)])
def test_total_mass_is_M_at_every_time_by_quadrature(dim, cells):
    """∫ρ dx by the midpoint rule over a box that holds the mass (the image of the base's 8σ sphere):
    M at t = 0 and 2 s to round-off, in 2D and 3D."""
    flow = random_flow(dim, seed=4)
    d = data.gaussians(dim, cells=4, frames=3)
    times, masses = ev.mass_over_time(flow, d, times=(0.0, 2.0), cells=cells)
    assert np.max(np.abs(masses - 2.5)) / 2.5 < 1e-10, masses


def test_mass_over_the_labels_is_M_however_far_the_tails_reach():
    """The same mass by the change of variables x = T⁻¹(z, t): ∫ρ(T⁻¹(z)) |det ∂T⁻¹/∂z| dz over the labels,
    with ρ from the forward log-determinant and the inverse's Jacobian by autograd (3D, a mixture base)."""
    torch.manual_seed(6)
    flow = LagrangianFlow(3, mass=2.5, blocks=1, hidden=16, components=3).double()
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.1 * torch.randn_like(p))
    for t in (0.0, 0.7):
        assert abs(ev.mass_from_labels(flow, t, cells=24) - 2.5) / 2.5 < 1e-10


@pytest.mark.parametrize("dim", [2, 3])
def test_analytic_mixtures_satisfy_continuity(dim):
    d = data.gaussians(dim, cells=8, frames=5)
    truth = d.truth
    x, t = points(dim, 64)
    x = 0.2 + 0.6 * x  # where the mass is
    t = t / 2
    res = continuity.residual(truth.density, truth.velocity, x, t).detach()
    rho_t = continuity.residual(truth.density, lambda x_, t_: torch.zeros_like(x_), x, t).detach()
    assert rho_t.abs().max() > 1.0  # the density does change
    assert res.abs().max() < 1e-10 * float(rho_t.abs().max())
    # a wrong velocity (a component's own, for all) breaks it: the test can fail
    wrong = continuity.residual(truth.density, lambda x_, t_: truth._components(x_, t_)[1][:, 0], x, t).detach()
    assert wrong.abs().max() > 1e-3 * float(rho_t.abs().max())


def test_observations_and_splits():
    d = data.gaussians(2)
    for k in (0, len(d.times) - 1):  # the box holds the mass: Σ ρ · cell volume = M
        assert abs(d.frame(d.rho, k).sum() * d.cell_volume - d.mass) < 1e-3
    counts = {s: int(d.mask(s).sum()) for s in ("train", "region", "future")}
    assert all(counts.values()) and sum(counts.values()) == len(d.t)
    assert np.all(d.t[d.mask("future")] > d.t_split) and np.all(d.t[d.mask("train")] <= d.t_split)
    # particle counts per cell: mass M = 1 in every frame, velocity = the cell's mean
    rng = np.random.default_rng(0)
    x = rng.uniform(0.1, 0.9, size=(3, 500, 2))
    v = np.broadcast_to(np.array([0.5, -1.0]), x.shape)
    obs = data.from_particles("toy", x, v, np.array([0.0, 0.1, 0.2]), cells=8, region=((0.0, 0.0), (0.5, 0.5)))
    for k in range(3):
        assert abs(obs.frame(obs.rho, k).sum() * obs.cell_volume - 1.0) < 1e-12
    np.testing.assert_allclose(obs.v[obs.v_seen], np.broadcast_to([0.5, -1.0], (int(obs.v_seen.sum()), 2)))


def test_bad_input_raises_value_error_saying_what_to_do():
    flow = LagrangianFlow(2)
    with pytest.raises(ValueError, match=r"x must be \(n, 2\)"):
        flow.density(torch.zeros(4, 3), torch.zeros(4))
    with pytest.raises(ValueError, match=r"t must be \(n,\)"):
        flow.velocity(torch.zeros(4, 2), torch.zeros(3))
    with pytest.raises(ValueError, match="mass must be"):
        LagrangianFlow(2, mass=0.0)
    with pytest.raises(ValueError, match="dim must be 2 or 3"):
        LagrangianFlow(4)
    with pytest.raises(ValueError, match="unknown data set 'water'; choose one of"):
        data.load("water")
    with pytest.raises(ValueError, match=r"x and v must both be \(T, n, dim\)"):
        data.from_particles("bad", np.zeros((2, 5, 2)), np.zeros((2, 5, 3)), np.zeros(2))
    with pytest.raises(ValueError, match="region must be"):
        data.from_particles("bad", np.zeros((2, 5, 2)), np.zeros((2, 5, 2)), np.zeros(2), region=((0.5, 0.5), (0.1, 0.9)))
    with pytest.raises(ValueError, match="unknown model 'gnn'; choose one of lflows, pinn, mlp"):
        lftrain.train("gaussians2d", "/nonexistent", model="gnn")
    with pytest.raises(ValueError, match="steps must be a whole number >= 1"):
        lftrain.train("gaussians2d", "/nonexistent", steps=0)
    with pytest.raises(ValueError, match="unknown settings"):
        lftrain.train("gaussians2d", "/nonexistent", learning_rate=1.0)
