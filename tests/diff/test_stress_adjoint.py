"""The stress update's adjoint in closed form (simcore.mpm.stress_adjoint: neo-Hookean and fluid, in the
transfers' gather) against Taichi's autodiff of the same stress update (`p2g_stress.grad`), float64.

Law checked: the chain rule — both are the exact derivative of the same forward arithmetic, so they
agree to round-off (not to a finite-difference tolerance) for every leaf: moduli, viscosity, γ,
densities (through mass and volume) and the initial velocity, with a loss reading x, F and J."""

import numpy as np
import pytest
import torch

import simcore as sc
from simcore.mpm import cache
from simcore.mpm.config import Configuration

M = sc.materials
pytestmark = pytest.mark.usefixtures("cpu64")  # tests/conftest.py


def t(value):
    return torch.tensor(value, dtype=torch.float64, requires_grad=True)


def gradients(dim, material_kinds):
    """d loss / d leaves of a rollout of a neo-Hookean body and/or a fluid body bouncing on a plane."""
    leaves = {"E": t(2e4), "nu": t(0.3), "rho_s": t(900.0), "K": t(2e4), "viscosity": t(0.5),
              "gamma": t(4.0), "rho_f": t(1100.0), "v0": t([0.5, -2.0, 0.2][:dim])}
    scene = sc.Scene(dim=dim, grid=24, dt=5e-4)
    if "solid" in material_kinds:
        scene.add_body(sc.shapes.Box(center=(0.35, 0.3, 0.5)[:dim], size=(0.12,) * dim),
                       M.NeoHookean(E=leaves["E"], nu=leaves["nu"], density=leaves["rho_s"]), velocity=leaves["v0"])
    if "fluid" in material_kinds:
        scene.add_body(sc.shapes.Box(center=(0.65, 0.3, 0.5)[:dim], size=(0.12,) * dim),
                       M.Fluid(bulk_modulus=leaves["K"], viscosity=leaves["viscosity"], gamma=leaves["gamma"],
                               density=leaves["rho_f"]), velocity=(-0.5, -2.0, 0.1)[:dim])
    scene.add_collider(sc.colliders.Plane(point=(0, 0.2, 0)[:dim], normal=(0, 1, 0)[:dim], friction=0.3))
    out = scene.rollout(frames=4, frame_dt=1 / 60, record=("x", "F", "Jp"))
    loss = (out.x[-1] ** 2).mean() + (out.F[-1] ** 2).mean() + out.Jp[-1].mean() + (out.x[2] ** 2).mean()
    loss.backward()
    closed = [s.closed_stress_adjoint for s in cache.solvers() if s.needs_grad]
    return {k: v.grad.numpy().copy() for k, v in leaves.items() if v.grad is not None}, closed


@pytest.mark.parametrize("dim", [2, 3])
def test_closed_form_equals_autodiff(monkeypatch, dim):
    """One scene of both materials per dimension (each 3D gradient configuration compiles for ~20 s)."""
    kinds = ("solid", "fluid")
    cache.clear()
    closed, flags = gradients(dim, kinds)
    assert flags == [True]
    monkeypatch.setattr(Configuration, "closed_stress_adjoint", property(lambda self: False))
    cache.clear()  # solvers are shared: build one that runs p2g_stress.grad
    reference, flags = gradients(dim, kinds)
    assert flags == [False]
    assert closed.keys() == reference.keys() and len(closed) >= 4
    for name in closed:
        np.testing.assert_allclose(closed[name], reference[name], rtol=1e-11, atol=1e-300, err_msg=name)
    cache.clear()
