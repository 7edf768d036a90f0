"""NCLaw's priors (Ma et al., ICML 2023, §4), checked to round-off in float64:

- frame indifference (objectivity): P(QF) = Q P(F) and plastic(QF) = Q plastic(F) for rotations Q;
- rest states: P(I) = 0 and P(R) = 0 for every rotation R; the plastic map leaves every rotation (and
  F = I) unchanged, and is the identity on any F when the network's output is zero.

Both the paper's networks and simcore's isotropic variant (`isotropic=True`: a linear law plus a learned
second-order correction, and a dissipative return map)
are checked; the variant must in addition be isotropic, P(FQ) = P(F) Q, which the paper's is not.

Each law is also checked to be non-trivial: the same network gives stresses and plastic steps of order
one away from the rotations, so a test comparing zeros with zeros cannot pass by accident.
"""

import pytest
import torch
from simcore.learned.nclaw import models
from simcore.learned.nclaw.models import ElasticNet, PlasticNet, invariant_features, polar_rotation

DT = torch.float64
ROUND_OFF = 1e-12  # relative to the stress / plastic step of order one that the networks give here
N = 64


def random_rotations(n, dim, gen):
    """Haar-random rotations (det +1): QR of a Gaussian matrix with the sign convention fixed."""
    A = torch.randn(n, dim, dim, generator=gen, dtype=DT)
    Q, Rq = torch.linalg.qr(A)
    Q = Q * torch.sign(torch.diagonal(Rq, dim1=1, dim2=2))[:, None, :]
    flip = torch.linalg.det(Q) < 0
    Q[flip, :, 0] *= -1
    return Q


def random_deformations(n, dim, gen, inverted=False):
    """F = U diag(s) Vᵀ with stretches s in [0.6, 1.6] (one negated if `inverted`)."""
    s = 0.6 + torch.rand(n, dim, generator=gen, dtype=DT)
    if inverted:
        s[:, 0] *= -1
    return random_rotations(n, dim, gen) @ torch.diag_embed(s) @ random_rotations(n, dim, gen).transpose(1, 2)


@pytest.fixture(scope="module", params=[(2, False), (3, False), (2, True), (3, True)],
                ids=["2d", "3d", "2d-isotropic", "3d-isotropic"])
def nets(request):
    torch.manual_seed(1234)
    dim, isotropic = request.param
    elastic = ElasticNet(dim=dim, isotropic=isotropic).to(DT)
    # a plastic step of order one: the paper's α = 1; the isotropic network's flow fraction 0.5
    plastic = PlasticNet(dim=dim, alpha=0.5 if isotropic else 1.0, isotropic=isotropic).to(DT)
    if isotropic:  # every term nonzero, as training gives: the checks must hold with all of them
        with torch.no_grad():
            elastic.quadratic.normal_(generator=torch.Generator().manual_seed(5))
    return dim, elastic, plastic, torch.Generator().manual_seed(dim)


@pytest.mark.parametrize("inverted", [False, True], ids=["det>0", "det<0"])
def test_material_symmetry(nets, inverted):
    """Isotropy: P(FQ) = P(F) Q and plastic(FQ) = plastic(F) Q for rotations Q of the reference
    configuration, to round-off for the isotropic variant; the paper's networks are not isotropic (the
    same check fails by order one: they must learn isotropy from data)."""
    dim, elastic, plastic, gen = nets
    F = random_deformations(N, dim, gen, inverted)
    Q = random_rotations(N, dim, gen)
    with torch.no_grad():
        P, PQ = elastic(F), elastic(F @ Q)
        Fn, FnQ = plastic(F), plastic(F @ Q)
    scale = P.abs().amax()
    if elastic.isotropic:
        assert (PQ - P @ Q).abs().amax() <= ROUND_OFF * scale
        assert (FnQ - Fn @ Q).abs().amax() <= ROUND_OFF
    else:
        assert (PQ - P @ Q).abs().amax() > 1e-3 * scale
        assert (FnQ - Fn @ Q).abs().amax() > 1e-3


@pytest.mark.parametrize("inverted", [False, True], ids=["det>0", "det<0"])
def test_elastic_frame_indifference(nets, inverted):
    """Objectivity: P(QF) = Q P(F) for random rotations Q (also for inverted F)."""
    dim, elastic, _, gen = nets
    F = random_deformations(N, dim, gen, inverted)
    Q = random_rotations(N, dim, gen)
    with torch.no_grad():
        P, PQ = elastic(F), elastic(Q @ F)
    scale = P.abs().amax()
    assert scale > 1e-2  # a real stress, so the comparison below means something
    assert (PQ - Q @ P).abs().amax() <= ROUND_OFF * scale


def test_rotation_helpers_are_equivariant(nets):
    """R(QF) = Q R(F) with det R = +1, and the features are invariant: features(QF) = features(F)."""
    dim, _, _, gen = nets
    F = random_deformations(N, dim, gen)
    Q = random_rotations(N, dim, gen)
    R = polar_rotation(F)
    assert torch.allclose(torch.linalg.det(R), torch.ones(N, dtype=DT), atol=1e-13)
    assert (polar_rotation(Q @ F) - Q @ R).abs().amax() <= ROUND_OFF
    assert (invariant_features(Q @ F) - invariant_features(F)).abs().amax() <= ROUND_OFF
    # the stretch RᵀF is symmetric (F = R S, the polar decomposition)
    S = R.transpose(1, 2) @ F
    assert (S - S.transpose(1, 2)).abs().amax() <= ROUND_OFF


def test_every_rotation_is_a_rest_state(nets):
    """P(I) = 0 exactly and P(R) = 0 to round-off for random rotations R, while P(F) is of order one."""
    dim, elastic, _, gen = nets
    R = random_rotations(N, dim, gen)
    eye = torch.eye(dim, dtype=DT).expand(N, dim, dim)
    with torch.no_grad():
        assert torch.equal(elastic(eye), torch.zeros(N, dim, dim, dtype=DT))
        assert torch.equal(invariant_features(eye), torch.zeros(N, models.feature_count(dim), dtype=DT))
        assert torch.equal(models.isotropic_basis(eye, eye)[0], torch.zeros(N, models.isotropic_invariant_count(dim), dtype=DT))
        scale = elastic(random_deformations(N, dim, gen)).abs().amax()
        assert scale > 1e-2
        assert elastic(R).abs().amax() <= ROUND_OFF * scale


@pytest.mark.parametrize("inverted", [False, True], ids=["det>0", "det<0"])
def test_plastic_frame_indifference(nets, inverted):
    """The return map is objective: plastic(QF) = Q plastic(F)."""
    dim, _, plastic, gen = nets
    F = random_deformations(N, dim, gen, inverted)
    Q = random_rotations(N, dim, gen)
    with torch.no_grad():
        Fn, FnQ = plastic(F), plastic(Q @ F)
    assert (Fn - F).abs().amax() > 1e-2  # the network does flow plastically here
    assert (FnQ - Q @ Fn).abs().amax() <= ROUND_OFF


def test_plastic_identity_at_rest(nets):
    """F = I and every rotation are fixed points of the plastic map, with any weights."""
    dim, _, plastic, gen = nets
    eye = torch.eye(dim, dtype=DT).expand(N, dim, dim)
    R = random_rotations(N, dim, gen)
    with torch.no_grad():
        assert torch.equal(plastic(eye), eye)
        assert (plastic(R) - R).abs().amax() <= ROUND_OFF


@pytest.mark.parametrize("isotropic", [False, True])
def test_plastic_zero_output_is_identity(isotropic):
    """A plastic network whose output is zero (last layer zeroed) returns F unchanged, for any F; for the
    isotropic network, zero flow (γ = 0: its offsets at −∞) does."""
    torch.manual_seed(0)
    plastic = PlasticNet(dim=3, isotropic=isotropic).to(DT)
    with torch.no_grad():
        plastic.mlp.layers[-1].weight.zero_()
        if isotropic:
            plastic.flow_offset.fill_(-torch.inf)
        F = random_deformations(N, 3, torch.Generator().manual_seed(5))
        assert torch.equal(plastic(F), F)


def test_isotropic_plastic_flow_is_dissipative():
    """The isotropic return map only removes elastic strain (simcore's prior: plastic flow cannot pump
    energy into the body): with E = U − I the stretch's strain, F_new keeps F's rotation and its strain's
    deviatoric and volumetric parts are F's scaled by factors in [0, 1], whatever the network's weights."""
    torch.manual_seed(4)
    plastic = PlasticNet(dim=3, alpha=0.3, isotropic=True).to(DT)
    with torch.no_grad():
        for layer in plastic.mlp.layers:
            layer.weight.mul_(5.0)
        F = random_deformations(N, 3, torch.Generator().manual_seed(6))
        F_new = plastic(F)
        R, R_new = polar_rotation(F), polar_rotation(F_new)
        assert (R_new - R).abs().amax() <= ROUND_OFF
        eye = torch.eye(3, dtype=DT)

        def parts(F, R):
            E = models._sym(R.transpose(1, 2) @ F) - eye
            mean = E.diagonal(dim1=1, dim2=2).mean(dim=1)
            return E - mean[:, None, None] * eye, mean

        (dev, mean), (dev_new, mean_new) = parts(F, R), parts(F_new, R_new)
        ratio_dev = torch.linalg.matrix_norm(dev_new) / torch.linalg.matrix_norm(dev)
        ratio_vol = mean_new / mean
        for ratio in (ratio_dev, ratio_vol):
            assert (ratio >= -ROUND_OFF).all() and (ratio <= 1 + ROUND_OFF).all()
        # dev_new is dev scaled (coaxial flow), and the network does flow: strains shrink by order one
        assert (dev_new - ratio_dev[:, None, None] * dev).abs().amax() <= ROUND_OFF
        assert ratio_dev.min() < 0.9 and ratio_vol.min() < 0.9


@pytest.mark.parametrize("isotropic", [False, True])
def test_gradients_finite_at_rest_and_exact_elsewhere(isotropic):
    """simcore back-propagates through the networks at every particle's F, which starts at I (equal
    singular values, where an SVD's backward divides by zero): the gradients there must be finite, and
    away from rest they must match central differences (torch.autograd.gradcheck)."""
    torch.manual_seed(3)
    elastic = ElasticNet(dim=3, hidden=(8, 8), isotropic=isotropic).to(DT)
    plastic = PlasticNet(dim=3, hidden=(8, 8), alpha=0.5 if isotropic else 1.0, isotropic=isotropic).to(DT)
    eye = torch.eye(3, dtype=DT).repeat(4, 1, 1).requires_grad_(True)
    for net in (elastic, plastic):
        (g,) = torch.autograd.grad(net(eye).pow(2).sum() + net(eye).sum(), eye)
        assert torch.isfinite(g).all()
        weight_grads = torch.autograd.grad(net(eye + 0.05 * torch.randn(4, 3, 3, dtype=DT)).sum(), list(net.parameters()))
        assert all(torch.isfinite(w).all() for w in weight_grads)
    F = random_deformations(3, 3, torch.Generator().manual_seed(9)).requires_grad_(True)
    assert torch.autograd.gradcheck(elastic, (F,), eps=1e-6, atol=1e-7, rtol=1e-5)
    assert torch.autograd.gradcheck(plastic, (F,), eps=1e-6, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("dim", [2, 3])
def test_isotropic_stiffness_at_rest_is_the_linear_laws(dim):
    """Stability at rest by construction (simcore's isotropic variant): dP/dF at F = I is the linear
    law's, 2μ sym(H) + λ tr(H) I with μ, λ > 0, whatever the network's weights, because every learned
    term is of second order in the strain. Checked on the exact Jacobian (autograd, float64) of a
    network with large random weights, whose finite-strain response is far from linear."""
    torch.manual_seed(7)
    elastic = ElasticNet(dim=dim, isotropic=True, correction_scale=1.0).to(DT)
    with torch.no_grad():
        for layer in elastic.mlp.layers:
            layer.weight.mul_(3.0)
        elastic.quadratic.normal_(generator=torch.Generator().manual_seed(1)).mul_(30.0)
        elastic.rest_moduli.copy_(torch.tensor([0.3, -1.2]))
    eye = torch.eye(dim, dtype=DT)
    jacobian = torch.autograd.functional.jacobian(lambda F: elastic(F[None])[0], eye)  # (d, d, d, d)
    mu, lam = (float(m) for m in elastic.moduli())
    assert mu > 0 and lam > 0
    linear = 2 * mu * 0.5 * (torch.einsum("ik,jl->ijkl", eye, eye) + torch.einsum("il,jk->ijkl", eye, eye)) \
        + lam * torch.einsum("ij,kl->ijkl", eye, eye)
    assert (jacobian - linear).abs().amax() <= ROUND_OFF * lam
    # and the network does matter at finite strain: 10 % stretch, response far from the linear law's
    F = torch.diag(torch.tensor([1.1] + [1.0] * (dim - 1), dtype=DT))[None]
    with torch.no_grad():
        H = F[0] - eye
        assert (elastic(F)[0] - torch.einsum("ijkl,kl->ij", linear, H)).abs().amax() > 0.1 * mu * 0.1  # 10 % of the stress


def test_bad_input_is_a_clear_error():
    # a singular F and one whose Newton iteration overflows get an error that says what happened
    for bad in (torch.zeros(1, 3, 3, dtype=DT), torch.full((1, 3, 3), 1e30, dtype=torch.float32) + torch.eye(3)):
        with pytest.raises(FloatingPointError, match="no rotation for 1 deformation gradient"):
            polar_rotation(bad)
    with pytest.raises(ValueError, match=r"\(n, 3, 3\)"):
        ElasticNet(dim=3).to(DT)(torch.eye(2, dtype=DT)[None])
    with pytest.raises(ValueError, match="dim must be 2 or 3"):
        PlasticNet(dim=4)
    with pytest.raises(ValueError, match="alpha"):
        PlasticNet(dim=3, alpha=0.0)
    with pytest.raises(ValueError, match="< 1 for the isotropic network"):  # a flow fraction, not a step
        PlasticNet(dim=3, alpha=1.0, isotropic=True)
    with pytest.raises(ValueError, match="strain_scale"):
        PlasticNet(dim=3, isotropic=True, strain_scale=0.0)
    with pytest.raises(ValueError, match="correction_scale"):
        ElasticNet(dim=3, isotropic=True, correction_scale=-1.0)
    with pytest.raises(ValueError, match="only the isotropic network"):
        ElasticNet(dim=3).moduli()
    with pytest.raises(ValueError, match="is 3D but the plastic one is 2D"):
        models.nclaw_material(ElasticNet(dim=3), PlasticNet(dim=2))


def test_wired_as_a_neural_material():
    """nclaw_material is a materials.Neural whose model and plasticity are the networks, in the order
    simcore applies them (F_new = plastic(F_trial), P = elastic(F_new))."""
    import simcore as sc
    from simcore.neural import _evaluate

    torch.manual_seed(0)
    elastic, plastic = ElasticNet(dim=3).to(DT), PlasticNet(dim=3, alpha=1.0).to(DT)
    material = models.nclaw_material(elastic, plastic, density=1e3, wave_modulus=1e5)
    assert isinstance(material, sc.materials.Neural)
    F = random_deformations(8, 3, torch.Generator().manual_seed(2))
    with torch.no_grad():
        F_new, tau = _evaluate(material, F, None)
        assert torch.equal(F_new, plastic(F))
        assert torch.allclose(tau, elastic(F_new) @ F_new.transpose(1, 2), rtol=0, atol=1e-14)


@pytest.mark.parametrize("dim", [2, 3])
def test_elastic_network_reads_the_plastic_steps_stretch(dim):
    """The isotropic plastic step is coaxial, so it knows F_new's rotation and stretch and hands them to
    the elastic network (`F_new.nclaw_stretch`), which then skips its own polar decomposition and
    eigensolve. That shortcut must be the same function: stress and every gradient (to F and to every
    weight) equal those of F_new decomposed afresh (a copy of F_new carries no stretch), to round-off,
    for stretches of 0.6–1.6. Where the step would leave U_new indefinite (R is then not F_new's rotation),
    no stretch is handed over, and the elastic network decomposes F_new itself."""
    torch.manual_seed(7)
    elastic = ElasticNet(dim=dim, isotropic=True).to(DT)
    plastic = PlasticNet(dim=dim, alpha=0.3, isotropic=True).to(DT)
    with torch.no_grad():
        elastic.quadratic.normal_(generator=torch.Generator().manual_seed(8))
        for layer in plastic.mlp.layers:  # flow fractions spread over (0, 1)
            layer.weight.mul_(5.0)
    gen = torch.Generator().manual_seed(11)
    F = random_deformations(N, dim, gen).requires_grad_(True)
    weights = torch.randn(N, dim, dim, generator=gen, dtype=DT)
    params = [F, *elastic.parameters(), *plastic.parameters()]

    def stress_and_grads(handover: bool):
        F_new = plastic(F)
        assert getattr(F_new, "nclaw_stretch", None) is not None
        P = elastic(F_new if handover else F_new.clone())
        return P, torch.autograd.grad((P * weights).sum(), params)

    (P, grads), (P_fresh, grads_fresh) = stress_and_grads(True), stress_and_grads(False)
    assert (P - P_fresh).abs().amax() <= ROUND_OFF * P_fresh.abs().amax()
    for g, g_fresh in zip(grads, grads_fresh):
        assert (g - g_fresh).abs().amax() <= 1e-10 * g_fresh.abs().amax().clamp(min=1.0)
    # volumetric flow only, on a state of strong shear: U_new = I + dev E has a negative eigenvalue
    with torch.no_grad():
        for layer in plastic.mlp.layers:
            layer.weight.zero_()
        plastic.flow_offset.copy_(torch.tensor([-30.0, 30.0]))
        sheared = torch.diag(torch.tensor([0.01] + [2.5] * (dim - 1), dtype=DT))[None]
        assert not hasattr(plastic(sheared), "nclaw_stretch")
