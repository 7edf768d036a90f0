"""Backend agreement for gradients: Vulkan (f32) and CUDA (f32, where a GPU exists) against CPU f64.

Taichi's autodiff has had backend-specific bugs (ndarray adjoints are zeros on Vulkan); simcore's
adjoints use fields only, and this test is what allows us to claim gradients on a backend."""

import pytest
import torch

import simcore as sc


def gradients(arch, precision, model):
    sc.init(arch, precision)
    dtype = torch.float64 if precision == "f64" else torch.float32
    E = torch.tensor(2e4, dtype=dtype, requires_grad=True)
    nu = torch.tensor(0.3, dtype=dtype, requires_grad=True)
    v0 = torch.tensor([0.5, -2.0], dtype=dtype, requires_grad=True)
    scene = sc.Scene(dim=2, grid=24, dt=5e-4)
    scene.add_body(sc.shapes.Box(center=(0.5, 0.3), size=(0.15, 0.15)), getattr(sc.materials, model)(E=E, nu=nu),
                   velocity=v0)
    scene.add_collider(sc.colliders.Plane(point=(0, 0.2), normal=(0, 1), friction=0.3))
    out = scene.rollout(frames=6, frame_dt=1 / 60)
    ((out.x[-1, :, 0] ** 2).mean() + (out.x[-1, :, 1] ** 2).mean()).backward()
    return [E.grad.item(), nu.grad.item(), *v0.grad.tolist()]


@pytest.mark.parametrize("arch", ["vulkan", "cuda"])
@pytest.mark.parametrize("model", ["NeoHookean", "FixedCorotated"])
def test_gradients_match_cpu_f64(arch, model, vulkan_ok):
    """Gradients (E, ν, v0; contact with friction) on `arch` in f32 are within 1e-3 relative of CPU f64."""
    if arch == "vulkan" and not vulkan_ok:
        pytest.skip("no Vulkan device (install mesa-vulkan-drivers)")
    try:
        reference = gradients("cpu", "f64", model)
        try:
            on_device = gradients(arch, "f32", model)
        except sc.BackendError:
            pytest.skip(f"no {arch} device on this machine")
    finally:
        sc.init("cpu", "f32")
    for ref, got in zip(reference, on_device):
        assert got == pytest.approx(ref, rel=1e-3), (arch, model, reference, on_device)
