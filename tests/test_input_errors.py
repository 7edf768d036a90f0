"""Bad numeric input to materials, shapes and colliders: the error names the parameter, says what was
given and what is expected (issue 12, defect 6: `NeoHookean(E="soft")` used to say only "could not
convert string to float: 'soft'")."""

import numpy as np
import pytest

import simcore as sc

M, S, C = sc.materials, sc.shapes, sc.colliders


@pytest.mark.parametrize("make, names", [
    (lambda: M.NeoHookean(E="soft"), ["NeoHookean", "E='soft'", "not numeric", "Young's modulus", "> 0 Pa"]),
    (lambda: M.FixedCorotated(nu=[0.3, "x"]), ["FixedCorotated", "nu=", "Poisson's ratio"]),
    (lambda: M.Fluid(viscosity="thick"), ["Fluid", "viscosity='thick'", ">= 0 Pa·s"]),
    (lambda: M.Snow(hardening="lots"), ["Snow", "hardening='lots'", ">= 0"]),
    (lambda: M.Sand(friction_angle="steep"), ["Sand", "friction_angle='steep'", "(0, 90) degrees"]),
    (lambda: M.Sand(yield_surface="drucker-prager"), ["Sand", "yield_surface='drucker-prager'", "'matsuoka-nakai'",
                                                     "'compression-cone'"]),
    (lambda: M.Plasticine(yield_stress=object()), ["Plasticine", "yield_stress=", "> 0 Pa"]),
    (lambda: M.NeoHookean(density={"value": 1e3}), ["NeoHookean", "density=", "kg/m³"]),
    (lambda: M.NeoHookean(E=None), ["NeoHookean", "E=None", "Young's modulus"]),
])
def test_material_parameter_named(make, names):
    with pytest.raises(ValueError) as info:
        make()
    message = str(info.value)
    assert "could not convert" not in message
    for part in names:
        assert part in message, (part, message)


def test_callable_material_parameter_named_when_evaluated():
    """A per-particle callable is checked when the body is sampled; its bad result names it too."""
    material = M.NeoHookean(E=lambda x: np.array(["soft"] * len(x)))
    with pytest.raises(ValueError, match=r"NeoHookean: E \(a callable\) returned .* not numeric"):
        material.particle_parameters(np.zeros((3, 2)))


@pytest.mark.parametrize("make, expected", [
    (lambda: S.Sphere(radius="big"), "Sphere.radius must be a number > 0 m, got 'big'"),
    (lambda: S.Sphere(center="middle"), "Sphere.center must be numbers (m), got 'middle'"),
    (lambda: S.Box(size=("a", "b")), "Box.size must be numbers (m), got ('a', 'b')"),
    (lambda: S.Box(center=None), "Box.center must be finite"),
    (lambda: S.Cylinder(height="tall"), "Cylinder.height must be a number > 0 m, got 'tall'"),
    (lambda: S.Points(points=[["a", "b"]]), "Points.points must be a numeric (n, 2) or (n, 3) array"),
    (lambda: S.Mesh("assets/torus.obj", size="x"), "Mesh.size must be a number > 0 m, got 'x'"),
    (lambda: S.Mesh("assets/torus.obj", scale="x"), "Mesh.scale must be numbers, got 'x'"),
    (lambda: C.Plane(friction="rough"), "Plane.friction must be a Coulomb coefficient, a number >= 0"),
    (lambda: C.Sphere(radius="big"), "collider Sphere.radius must be a number > 0 m, got 'big'"),
    (lambda: C.Cylinder(height=None), "collider Cylinder.height must be a number > 0 m, got None"),
    (lambda: C.Box(size="x"), "collider Box.size must be numbers (m), got 'x'"),
    (lambda: C.Plane(normal=("a", 1)), "Plane.normal must be numbers, got ('a', 1)"),
])
def test_shape_and_collider_parameter_named(make, expected):
    with pytest.raises(ValueError) as info:
        make()
    assert expected in str(info.value)


def test_valid_values_still_accepted():
    """The checks do not reject what was valid: numbers as ints, numpy scalars, numeric strings of numpy."""
    M.NeoHookean(E=np.float32(2e4), nu=0, density=500)
    assert S.Sphere(radius=np.float64(0.1)).radius == 0.1
    assert C.Sphere(radius=1).radius == 1.0
    C.Plane(point=(0, 0.1), normal=(0, 1), friction=0)


@pytest.mark.parametrize("make, expected", [
    (lambda: sc.Scene(dim=2, transfer="pic"), "transfer must be one of ('apic', 'flip'), got 'pic'"),
    (lambda: sc.Scene(dim=2, transfer="flip", flip_damping=-1.0), "flip_damping must be a finite rate >= 0 in 1/s"),
    (lambda: sc.Scene(dim=2, flip_damping=True), "flip_damping must be a finite rate >= 0 in 1/s"),
    (lambda: sc.Scene(dim=2, flip_damping="lots"), "flip_damping must be a finite rate >= 0 in 1/s (0: pure FLIP), "
                                                   "got 'lots'"),
])
def test_scene_transfer_option_named(make, expected):
    with pytest.raises(ValueError) as info:
        make()
    assert expected in str(info.value)
