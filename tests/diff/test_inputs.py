"""Differentiable inputs beyond material constants (CPU, float64, against central differences):
neural materials (a torch module as the stress), closed-loop controllers, kinematic colliders'
velocities and friction, per-particle parameter tensors and initial positions.

Every scene is 2D (24² grid, 6 frames) so the adjoint kernels compile in seconds; each check compares
dL/dθ from `loss.backward()` with (L(θ + h d) − L(θ − h d)) / 2h of the same rollout along a
direction d, to a relative 1e-4."""

import gc
import weakref

import numpy as np
import pytest
import torch

import simcore as sc
import simcore.neural  # noqa: F401 (sc.neural, patched below; imported by the first Neural scene otherwise)

M = sc.materials
TOL = 1e-4
FRAMES = 6


@pytest.fixture(scope="module", autouse=True)
def cpu64_module():
    sc.init("cpu", "f64")
    yield
    sc.init("cpu", "f32")


def directional_check(loss_fn, params, h, seed=0):
    """Compare Σ_i ∂L/∂θ_i · d_i (autograd) with the central difference of L along a random d."""
    gen = torch.Generator().manual_seed(seed)
    directions = [torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in params]
    for p in params:
        p.grad = None
    loss_fn().backward()
    analytic = sum((p.grad * d).sum().item() for p, d in zip(params, directions))
    with torch.no_grad():
        for p, d in zip(params, directions):
            p += h * d
        plus = loss_fn().item()
        for p, d in zip(params, directions):
            p -= 2 * h * d
        minus = loss_fn().item()
        for p, d in zip(params, directions):
            p += h * d
    numeric = (plus - minus) / (2 * h)
    assert analytic == pytest.approx(numeric, rel=TOL, abs=1e-12)
    return analytic


def jelly_scene(material, velocity=(0.5, -2.0), **body):
    scene = sc.Scene(dim=2, grid=24, dt=5e-4)
    scene.add_body(sc.shapes.Box(center=(0.45, 0.3), size=(0.15, 0.15)), material, velocity=velocity, **body)
    scene.add_collider(sc.colliders.Plane(point=(0, 0.2), normal=(0, 1), friction=0.3))
    return scene


def spread_loss(out):
    """Depends on shape and place: mean squared position at the last frame."""
    return (out.x[-1] ** 2).sum(1).mean() + out.x[-1, :, 0].mean()


# -- neural materials ------------------------------------------------------------------------------
class TorchNeoHookean(torch.nn.Module):
    """Neo-Hookean P = μ(F − F⁻ᵀ) + λ log(J) F⁻ᵀ in torch, plus a small learned correction
    P += W₂ tanh(W₁ vec(F − I)) (zero-initialised scale `gain`)."""

    def __init__(self, E, nu, dim=2, hidden=4, gain=0.0):
        super().__init__()
        mu, lam = E / (2 * (1 + nu)), E * nu / ((1 + nu) * (1 - 2 * nu))
        self.log_mu = torch.nn.Parameter(torch.tensor(np.log(mu), dtype=torch.float64))
        self.log_lam = torch.nn.Parameter(torch.tensor(np.log(lam), dtype=torch.float64))
        gen = torch.Generator().manual_seed(1)
        self.W1 = torch.nn.Parameter(torch.randn(hidden, dim * dim, generator=gen, dtype=torch.float64))
        self.W2 = torch.nn.Parameter(gain * torch.randn(dim * dim, hidden, generator=gen, dtype=torch.float64))
        self.dim = dim

    def forward(self, F):
        d = self.dim
        F_inv_T = torch.linalg.inv(F).transpose(1, 2)
        J = torch.linalg.det(F)
        P = self.log_mu.exp() * (F - F_inv_T) + self.log_lam.exp() * torch.log(J)[:, None, None] * F_inv_T
        correction = torch.tanh((F - torch.eye(d, dtype=F.dtype)).reshape(-1, d * d) @ self.W1.T) @ self.W2.T
        return P + correction.reshape(-1, d, d)


def test_neural_neo_hookean_reproduces_the_builtin_law():
    """A Neural material whose module is the neo-Hookean law gives the built-in NeoHookean trajectory
    (same constitutive law, computed by torch between the kernels), in `run` and in `rollout`; its CFL
    wave modulus taken from the module at rest is λ + 2μ."""
    E, nu = 2e4, 0.3
    builtin = jelly_scene(M.NeoHookean(E=E, nu=nu)).run(frames=FRAMES, frame_dt=1 / 60)
    scene = jelly_scene(M.Neural(model=TorchNeoHookean(E, nu), density=1e3))
    neural = scene.run(frames=FRAMES, frame_dt=1 / 60)
    assert np.abs(neural.x - builtin.x).max() < 1e-10
    with torch.no_grad():
        out = scene.rollout(frames=FRAMES, frame_dt=1 / 60)
    assert np.abs(out.x.numpy() - builtin.x).max() < 1e-10
    mu, lam = E / (2 * (1 + nu)), E * nu / ((1 + nu) * (1 - 2 * nu))
    assert scene.bodies[0].params["wave_speed"][0] == pytest.approx(np.sqrt((lam + 2 * mu) / 1e3), rel=1e-12)


@pytest.fixture(scope="module")
def neural_scene():
    model = TorchNeoHookean(2e4, 0.3, gain=200.0)
    return jelly_scene(M.Neural(model=model, density=1e3)), model


def test_neural_material_weight_gradients(neural_scene):
    """dL/d(every weight of a neural material): log μ, log λ and an MLP correction."""
    scene, model = neural_scene
    directional_check(lambda: spread_loss(scene.rollout(frames=FRAMES, frame_dt=1 / 60)),
                      list(model.parameters()), 1e-5)


def test_neural_material_weight_gradients_through_flip():
    """The same check with the FLIP transfer (`Scene(transfer="flip")`): torch's stress between the
    kernels and the blend's adjoint together."""
    model = TorchNeoHookean(2e4, 0.3, gain=200.0)
    scene = jelly_scene(M.Neural(model=model, density=1e3))
    scene.transfer = "flip"
    directional_check(lambda: spread_loss(scene.rollout(frames=FRAMES, frame_dt=1 / 60)),
                      list(model.parameters()), 1e-5)


@pytest.mark.parametrize("budget", [0, 300_000], ids=["recompute-all", "record-some"])
def test_neural_adjoint_through_recorded_graphs_equals_recomputing(budget, monkeypatch):
    """The adjoint back-propagates through the autograd graphs recorded in the forward (up to
    neural.GRAPH_BUDGET bytes per segment) instead of recomputing the module at the same F_trial: the
    weight gradients are the same to round-off whether every substep, some (a budget that runs out
    mid-segment) or none was recorded, and with every substep recorded the module runs once per substep
    instead of twice."""
    def gradients_and_calls(graph_budget):
        monkeypatch.setattr(sc.neural, "GRAPH_BUDGET", graph_budget)
        model = TorchNeoHookean(2e4, 0.3, gain=200.0)
        calls, evaluate = [0], sc.neural._evaluate

        def counted(*args):  # the module's evaluations by the stress hook (forward and adjoint)
            calls[0] += 1
            return evaluate(*args)

        monkeypatch.setattr(sc.neural, "_evaluate", counted)
        scene = jelly_scene(M.Neural(model=model, density=1e3))
        spread_loss(scene.rollout(frames=FRAMES, frame_dt=1 / 60)).backward()
        return [p.grad.clone() for p in model.parameters()], calls[0]

    recorded, recorded_calls = gradients_and_calls(1 << 30)
    other, other_calls = gradients_and_calls(budget)
    for a, b in zip(recorded, other):
        assert torch.allclose(a, b, rtol=1e-12, atol=0), (a, b)
    assert other_calls == 2 * recorded_calls if budget == 0 else recorded_calls < other_calls < 2 * recorded_calls


def test_recorded_graphs_are_freed_once_dropped():
    """The recorded graphs of a segment are freed when the next segment's forward drops them, including the
    tensors an op saves as its own output (linalg.inv's). Regression: the saved-tensor hook that measures
    them once kept those tensors in a reference cycle through C++ that Python's gc cannot break, and a
    full-recipe NCLaw training grew to 12 GB in 25 epochs."""
    class Watched(TorchNeoHookean):
        def __init__(self):
            super().__init__(2e4, 0.3, gain=200.0)
            self.inverses = []

        def forward(self, F):
            inverse = torch.linalg.inv(F)  # its backward saves this output
            self.inverses.append(weakref.ref(inverse))
            return super().forward(F) + 0 * inverse

    model = Watched()
    scene = jelly_scene(M.Neural(model=model, density=1e3))
    spread_loss(scene.rollout(frames=FRAMES, frame_dt=1 / 60))  # its graphs recorded, never back-propagated
    first = list(model.inverses)
    spread_loss(scene.rollout(frames=FRAMES, frame_dt=1 / 60))  # its forward drops them
    gc.collect()
    alive = sum(ref() is not None for ref in first)
    assert alive == 0, f"{alive} of the first rollout's {len(first)} saved tensors outlived their graphs"


def test_neural_material_bad_output():
    """A model that returns the wrong shape is named in the error."""
    bad = M.Neural(model=lambda F: F[:, 0], density=1e3, wave_modulus=1e4, name="broken")
    scene = jelly_scene(bad)
    with pytest.raises(ValueError, match="broken: model returned stress of shape"):
        scene.run(frames=1, frame_dt=1 / 60)
    with pytest.raises(TypeError, match="needs a torch.nn.Module"):
        M.Neural(model=None)
    # a finite but absurd stress (1e35 Pa) makes the state non-finite by the next substep; the model is then
    # not called on it (an eigensolver inside a learned law fails there with a vaguer error)
    absurd = M.Neural(model=lambda F: torch.full_like(F, 1e35), density=1e3, wave_modulus=1e4, name="absurd")
    with pytest.raises(FloatingPointError, match="deformation gradients reaching a Neural material are non-finite"):
        jelly_scene(absurd).run(frames=1, frame_dt=1 / 60)


# -- closed-loop control ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def walker():
    scene = sc.Scene(dim=2, grid=24, dt=5e-4)
    scene.add_body(sc.shapes.Box(center=(0.4, 0.2), size=(0.15, 0.08)), M.NeoHookean(E=2e4),
                   actuator=lambda x: (x[:, 0] > 0.4).astype(int), fibre=(1, 0))
    scene.add_collider(sc.colliders.Plane(point=(0, 0.15), normal=(0, 1), friction=0.5))
    return scene


def test_constant_controller_equals_open_loop(walker):
    """A controller that returns a fixed activation drives the same simulation as that open-loop signal."""
    a = torch.tensor([3e3, -2e3], dtype=torch.float64)
    closed = walker.rollout(frames=FRAMES, frame_dt=1 / 60, controller=lambda t, obs: a)
    with torch.no_grad():
        open_loop = walker.rollout(frames=FRAMES, frame_dt=1 / 60, actuation=a.expand(FRAMES, 2))
    assert torch.equal(closed.x, open_loop.x)
    assert closed.actuation.shape == (FRAMES, 2)


def test_controller_weight_gradients(walker):
    """dL/d(controller weights) through observations of the state (centre of mass and mean velocity),
    i.e. through the simulation both before and after each control decision."""
    net = torch.nn.Linear(4, 2).double()
    with torch.no_grad():
        net.weight.mul_(2e3)
        net.bias.copy_(torch.tensor([2e3, -1e3]))

    def controller(t, obs):
        features = torch.cat([obs["x"].mean(0) - torch.tensor([0.4, 0.2], dtype=torch.float64),
                              obs["v"].mean(0)])
        return net(features * 10)

    def loss():
        out = walker.rollout(frames=FRAMES, frame_dt=1 / 60, controller=controller)
        return out.x[-1, :, 0].mean()

    directional_check(loss, list(net.parameters()), 1e-3)


def test_controller_errors(walker):
    with pytest.raises(ValueError, match="controller returned shape"):
        walker.rollout(frames=1, frame_dt=1 / 60, controller=lambda t, obs: torch.zeros(3))
    with pytest.raises(ValueError, match="not both"):
        walker.rollout(frames=1, frame_dt=1 / 60, controller=lambda t, obs: torch.zeros(2),
                       actuation=torch.zeros(1, 2))


# -- kinematic colliders ---------------------------------------------------------------------------
def test_collider_velocity_and_friction_gradients():
    """dL/d(a kinematic box's velocity) as it pushes a jelly along a floor, and dL/d(floor friction);
    a callable velocity path of tensors differentiates too."""
    velocity = torch.tensor([0.6, -0.1], dtype=torch.float64, requires_grad=True)
    friction = torch.tensor(0.4, dtype=torch.float64, requires_grad=True)
    scene = sc.Scene(dim=2, grid=24, dt=5e-4)
    scene.add_body(sc.shapes.Box(center=(0.45, 0.26), size=(0.12, 0.1)), M.NeoHookean(E=2e4))
    scene.add_collider(sc.colliders.Plane(point=(0, 0.2), normal=(0, 1), friction=friction))
    # Placed so that no box face crosses a grid node exactly at a substep: node coverage is a step
    # function of the box's position, and a finite difference across a step measures the jump.
    pusher = scene.add_collider(sc.colliders.Box(center=(0.327, 0.263), size=(0.08, 0.08), velocity=velocity,
                                                 mode="sticky"))

    def loss():
        return spread_loss(scene.rollout(frames=FRAMES, frame_dt=1 / 60))

    directional_check(loss, [velocity, friction], 1e-5)
    # The same motion given as a function of time: v(t) = velocity · (1 + t).
    pusher.velocity = lambda t: velocity * (1 + t)
    directional_check(loss, [velocity], 1e-5)
    # A path that goes bad part-way (here NaN after 0.05 s) is named with the time.
    pusher.velocity = lambda t: velocity if t < 0.05 else torch.tensor([float("nan"), 0.0], dtype=torch.float64)
    with pytest.raises(ValueError, match=r"velocity\(0\.05.*must be 2 finite components"):
        loss()


# -- per-particle parameters and positions ---------------------------------------------------------
def test_per_particle_modulus_gradients_sum_to_the_scalar_one():
    """Chain rule: with E given per particle, Σ_p ∂L/∂E_p equals ∂L/∂E for a uniform E; and the
    per-particle gradient matches central differences."""
    E = torch.tensor(2e4, dtype=torch.float64, requires_grad=True)
    material = M.NeoHookean(E=E)
    scene = jelly_scene(material)
    spread_loss(scene.rollout(frames=FRAMES, frame_dt=1 / 60)).backward()
    E_p = torch.full((scene.n_particles,), 2e4, dtype=torch.float64, requires_grad=True)
    material.E = E_p
    spread_loss(scene.rollout(frames=FRAMES, frame_dt=1 / 60)).backward()
    assert E_p.grad.sum().item() == pytest.approx(E.grad.item(), rel=1e-10)
    directional_check(lambda: spread_loss(scene.rollout(frames=FRAMES, frame_dt=1 / 60)), [E_p], 1.0)


def test_initial_position_gradients():
    """Free flight: with a uniform velocity the grid velocity is exactly uniform whatever the particle
    positions, so x_T = x_0 + T v + gravity terms and ∂(Σ c·x_T)/∂x_0 = c exactly. With contact and
    stress (a jiggled lattice), ∂L/∂x_0 matches central differences."""
    lattice = np.stack(np.meshgrid(np.linspace(0.4, 0.52, 8), np.linspace(0.5, 0.62, 8)), -1).reshape(-1, 2)
    x0 = torch.tensor(lattice, dtype=torch.float64, requires_grad=True)
    scene = sc.Scene(dim=2, grid=24, dt=5e-4)
    scene.add_body(sc.shapes.Points(points=x0, volume_per_particle=(0.12 / 7) ** 2), M.NeoHookean(E=2e4),
                   velocity=(0.3, 0.5))
    scene.add_collider(sc.colliders.Plane(point=(0, 0.2), normal=(0, 1), friction=0.3))
    c = torch.randn(x0.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    out = scene.rollout(frames=3, frame_dt=1 / 60)
    (c * out.x[-1]).sum().backward()
    assert torch.allclose(x0.grad, c, rtol=0, atol=1e-11)
    # Jiggle the lattice: internal stress.
    with torch.no_grad():
        x0 += 0.002 * torch.randn(x0.shape, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    directional_check(lambda: spread_loss(scene.rollout(frames=FRAMES, frame_dt=1 / 60)), [x0], 1e-6)
    # Positions moved out of the domain by an update are refused, naming the body, as in add_body.
    with torch.no_grad():
        saved = x0.clone()
        x0[0, 0] = 0.01
    with pytest.raises(ValueError, match="overlaps the wall layer"):
        scene.rollout(frames=1, frame_dt=1 / 60)
    with torch.no_grad():
        x0.copy_(saved)


def test_time_step_follows_the_current_parameters():
    """CFL: with an automatic dt, a rollout's substeps come from the material and velocity tensors'
    current values (an optimiser may have stiffened the material since add_body): 16× the modulus is
    4× the wave speed, so nearly 4× the substeps (less: the bound also counts |g|·frame_dt, and substeps
    are whole numbers — 21 against 6 here)."""
    E = torch.tensor(2e4, dtype=torch.float64, requires_grad=True)
    scene = sc.Scene(dim=2, grid=24)
    scene.add_body(sc.shapes.Box(center=(0.5, 0.5), size=(0.15, 0.15)), M.NeoHookean(E=E))
    with torch.no_grad():
        soft = scene.rollout(frames=1, frame_dt=1 / 60).meta["substeps"][0]
        E *= 16
        stiff = scene.rollout(frames=1, frame_dt=1 / 60).meta["substeps"][0]
    assert 3 * soft <= stiff <= 4 * soft


def test_backward_after_another_rollout_on_the_same_scene():
    """A rollout's gradient does not depend on what ran on the scene's solver between its forward and
    its backward: rollout A, then rollout B with another modulus (same compiled solver: its slots,
    kept temporaries and uploaded constants are overwritten), then A's backward, gives A's gradient
    alone to round-off. Checkpointed (4 segments), so A's last segment must be recomputed too."""
    E = torch.tensor(2e4, dtype=torch.float64, requires_grad=True)
    scene = jelly_scene(M.FixedCorotated(E=E, nu=0.3))

    def loss():
        return spread_loss(scene.rollout(frames=FRAMES, frame_dt=1 / 60, checkpoint_every=50))

    loss().backward()
    alone = E.grad.clone()
    E.grad = None
    loss_a = loss()
    with torch.no_grad():
        E *= 1.5
    loss_b = loss()  # a graph of its own, never differentiated
    with torch.no_grad():
        E /= 1.5
    loss_a.backward()
    assert loss_b.item() != pytest.approx(loss_a.item(), rel=1e-6)  # B really ran something else
    assert E.grad.item() == pytest.approx(alone.item(), rel=1e-12)


def test_rollout_from_a_recorded_state_continues_the_run():
    """Restarting (teacher forcing, simcore.learned.nclaw): a rollout started from frame 3 of a run, given
    its full state {x, v, C, F, Jp} (with particles resting in the wall layer allowed), continues that run:
    its next 3 frames equal the run's frames 4–6 to round-off (float64). A state of the wrong shape or
    with unknown fields is refused."""
    scene = sc.Scene(dim=2, grid=24, dt=5e-4)
    scene.add_body(sc.shapes.Box(center=(0.5, 0.2), size=(0.15, 0.15)), M.NeoHookean(E=torch.tensor(2e4, dtype=torch.float64, requires_grad=True)),
                   velocity=(0.3, -1.0))
    run = scene.run(frames=6, frame_dt=1 / 60, record=("x", "v", "C", "F", "Jp"))
    start = {name: getattr(run, name)[3] for name in ("x", "v", "C", "F", "Jp")}
    assert run.x[3, :, 1].min() < 4.5 / 24  # the body is on the floor: its lowest stencils reach the wall nodes
    out = scene.rollout(frames=3, frame_dt=1 / 60, start=start, record=("x", "v"))
    np.testing.assert_allclose(out.x.detach().numpy(), run.x[3:], rtol=0, atol=1e-12)
    np.testing.assert_allclose(out.v.detach().numpy(), run.v[3:], rtol=0, atol=1e-9)
    pressed = dict(start, x=start["x"].copy())
    pressed["x"][np.argmin(start["x"][:, 1]), 1] = 2 / 24  # a particle pressed into the floor's wall layer
    assert np.isfinite(scene.rollout(frames=1, frame_dt=1 / 60, start=pressed).x.detach().numpy()).all()
    with pytest.raises(ValueError, match="start=.*unknown fields"):
        scene.rollout(frames=1, frame_dt=1 / 60, start={"q": start["x"]})
    with pytest.raises(ValueError, match="start=.*x has shape"):
        scene.rollout(frames=1, frame_dt=1 / 60, start={"x": start["x"][:-1]})
