"""NCLaw's constitutive networks (Ma et al., ICML 2023, "Learning Neural Constitutive Laws From Motion
Observations for Generalizable PDE Dynamics", §4; reference code `nclaw/material/meta.py`,
`InvariantFullMetaElasticity` / `InvariantFullMetaPlasticity`), written for simcore's `materials.Neural`.

Both networks read the same rotation-invariant, rest-normalised features of a deformation gradient F:

    features(F) = [σ − 1 (d),  FᵀF − I (d², flattened),  det F − 1 (1)]        (d + d² + 1 numbers)

with σ the singular values of F (signed: the smallest is negative for an inverted F). FᵀF, σ and det F
are unchanged by F → QF for a rotation Q, and all of them vanish when F is a rotation. The MLP has no
biases and GELU(0) = 0, so a zero feature vector maps to a zero output. Hence, by construction:

- Elastic network:  P(F) = R(F) S(F),  S = sym(MLP(features(F))) (Pa),  R the rotation of F (polar).
  P(QF) = Q P(F) (frame indifference), and P(R) = 0 for every rotation R (every rotation is a rest
  state; P(I) = 0 in particular). τ = P Fᵀ = R S Fᵀ is then symmetric only approximately — the paper's
  choice too (it symmetrises S, not τ).
- Plastic network:  F_new = F + α R(F) sym(MLP(features(F))),  α = 1e-3. Equivariant in the same way,
  and the identity on every rotation (a body at rest never creeps).

Shapes: F (n, d, d) → P (n, d, d) Pa, or F_new (n, d, d). d = 2 or 3, fixed at construction. The modules
compute in their parameters' dtype (simcore converts F to it; tests use float64).

simcore adds one option the paper does not have, `isotropic=True` (the `nclaw_iso` model of train.py),
which adds three priors to the paper's:

- isotropy: the paper's S is a symmetrised free 3×3 output, objective but not isotropic, so a network
  trained on one trajectory only knows the stretch directions that trajectory visited. Both isotropic
  networks are functions of the stretch U = RᵀF through E = U − I and its invariants (principal
  stretches, det F), so P(FQ) = P(F) Q as well, for every rotation Q of the reference configuration;
- a positive stiffness at rest: the elastic S is a linear law 2μ E + λ tr(E) I with learned μ, λ > 0
  plus a learned correction of second order in the strain (ElasticNet);
- dissipative plastic flow: the return map removes a learned fraction γ ∈ (0, 1) of the elastic
  strain's deviatoric and volumetric parts (PlasticNet).

The rotation R comes from the scaled Newton iteration for the polar factor (Higham 1986) rather than an
SVD: torch's SVD backward divides by σ_i² − σ_j², which is 0/0 at F = I — exactly where every particle
starts — while the Newton iterate differentiates through matrix inverses only, finite at F = I.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

ALPHA = 1e-3  # the paper's plastic step size (configs/.../plasticity/meta.yaml: alpha: 1e-3)
HIDDEN = (64, 64)  # the paper's hidden widths (layer_widths: [64, 64])
_NEWTON_MAX_ITERATIONS = 30


def _check_F(F: torch.Tensor, dim: int, who: str) -> None:
    if not torch.is_tensor(F) or F.dim() != 3 or F.shape[1:] != (dim, dim):
        shape = tuple(F.shape) if torch.is_tensor(F) else type(F).__name__
        raise ValueError(f"{who}: expected deformation gradients of shape (n, {dim}, {dim}) for a {dim}D network, "
                         f"got {shape}; build the network with dim={dim} matching the scene")


def _sym(X: torch.Tensor) -> torch.Tensor:
    return 0.5 * (X + X.transpose(1, 2))


def polar_rotation(F: torch.Tensor) -> torch.Tensor:
    """The rotation R (det +1) of F = R S, S symmetric: (n, d, d) → (n, d, d).

    For det F > 0 this is the orthogonal polar factor, from the scaled Newton iteration
    X ← ½(ζX + (ζX)⁻ᵀ), ζ = (‖X⁻¹‖/‖X‖)^½ (Frobenius), which converges quadratically and is exactly
    equivariant (ζ is rotation-invariant), so R(QF) = Q R(F) to round-off. For an inverted F (det < 0)
    the polar factor is a reflection; it is turned into a rotation by flipping the axis of F's smallest
    singular value (then S has one negative eigenvalue: the signed SVD's convention).
    """
    X = F
    tol = 4 * torch.finfo(F.dtype).eps
    try:
        for _ in range(_NEWTON_MAX_ITERATIONS):
            inv = torch.linalg.inv(X)
            zeta = (torch.linalg.matrix_norm(inv) / torch.linalg.matrix_norm(X)).sqrt()[:, None, None]
            X_next = 0.5 * (zeta * X + inv.transpose(1, 2) / zeta)
            change = (X_next - X).abs().amax().item() if X.numel() else 0.0
            X = X_next
            if not change >= tol:  # converged, or not finite (reported below)
                break
    except torch.linalg.LinAlgError as error:  # an exactly singular F
        raise _singular(F) from error
    finite = torch.isfinite(X).all(dim=(1, 2))
    if not bool(finite.all()):
        raise _singular(F[~finite])
    inverted = torch.linalg.det(F) < 0
    if bool(inverted.any()):
        # X is a reflection there: R = X (I − 2 u uᵀ), u the eigenvector of S = XᵀF with the smallest
        # eigenvalue (the direction F inverts).
        S = _sym(X[inverted].transpose(1, 2) @ F[inverted])
        u = torch.linalg.eigh(S)[1][:, :, :1]
        eye = torch.eye(F.shape[-1], dtype=F.dtype, device=F.device)
        X = X.clone()
        X[inverted] = X[inverted] @ (eye - 2 * u @ u.transpose(1, 2))
    return X


def _singular(F: torch.Tensor) -> FloatingPointError:
    """The error for the deformation gradients `F` whose rotation cannot be computed (singular, or so
    large or small that the Newton iteration overflows): what happened and what to do."""
    det = torch.linalg.det(F).abs()
    return FloatingPointError(
        f"polar_rotation: no rotation for {F.shape[0]} deformation gradient(s) with |det F| from "
        f"{float(det.min()):.3g} to {float(det.max()):.3g} and |F| up to {float(F.abs().max()):.3g}: the material "
        "has collapsed or blown up (a learned law that became unstable: lower its learning rates)")


def invariant_features(F: torch.Tensor, R: torch.Tensor | None = None) -> torch.Tensor:
    """[σ − 1, FᵀF − I, det F − 1]: (n, d, d) → (n, d + d² + 1), zero exactly when F is a rotation.

    σ are the eigenvalues of the stretch S = RᵀF (ascending; the smallest is negative for det F < 0),
    i.e. F's signed singular values; their gradient (eigenvectors only, no 1/(σ_i − σ_j)) stays finite
    at equal singular values. R: F's rotation if already known (`polar_rotation(F)`).
    """
    n, d, _ = F.shape
    R = polar_rotation(F) if R is None else R
    sigma = torch.linalg.eigvalsh(_sym(R.transpose(1, 2) @ F))
    eye = torch.eye(d, dtype=F.dtype, device=F.device)
    right_cauchy_green = F.transpose(1, 2) @ F
    return torch.cat([sigma - 1.0, (right_cauchy_green - eye).reshape(n, d * d),
                      (torch.linalg.det(F) - 1.0)[:, None]], dim=1)


def isotropic_basis(F: torch.Tensor, R: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Invariants and tensor basis of an isotropic symmetric function of the stretch U = RᵀF.

    E = U − I (the Biot strain). Returns (invariants (n, d + 1) = [σ − 1 (ascending), det F − 1], all
    zero at rest; basis (n, 3, d, d) = [I, E, E²]). Every symmetric matrix function S(U) with
    S(QᵀUQ) = Qᵀ S(U) Q is φ0 I + φ1 E + φ2 E² with φ_k functions of the invariants (Rivlin–Ericksen; by
    Cayley–Hamilton higher powers reduce to these), so S built on this basis is isotropic by construction.
    The principal stretches σ (U's eigenvalues, F's signed singular values) rather than tr E, tr E², tr E³:
    they are of first order in the strain, as the paper's features are, where tr E² and tr E³ are of
    second and third order and need weights 10–100× larger to matter at strains of a few per cent.
    """
    d = F.shape[-1]
    eye = torch.eye(d, dtype=F.dtype, device=F.device).expand_as(F)
    U = _sym(R.transpose(1, 2) @ F)
    E = U - eye
    invariants = torch.cat([torch.linalg.eigvalsh(U) - 1.0, (torch.linalg.det(F) - 1.0)[:, None]], dim=1)
    return invariants, torch.stack([eye, E, E @ E], dim=1)


def _strain_parts(basis: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(dev E, vol E) (n, d, d) from `isotropic_basis`'s basis [I, E, E²]: vol E = (tr E / d) I."""
    eye, E = basis[:, 0], basis[:, 1]
    volumetric = E.diagonal(dim1=1, dim2=2).mean(dim=1)[:, None, None] * eye
    return E - volumetric, volumetric


class Stretch(NamedTuple):
    """F = R U known from a coaxial plastic step (PlasticNet, isotropic), attached to the F it returns
    as `F.nclaw_stretch`: the rotation R (n, d, d), the principal strains σ − 1 (n, d) ascending, and
    E = U − I (n, d, d). ElasticNet reads it instead of decomposing F; any other F has none."""

    R: torch.Tensor
    principal_strains: torch.Tensor
    E: torch.Tensor

    def isotropic_basis(self, F: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`isotropic_basis(F, R)` from the known stretch: (invariants (n, d + 1), basis (n, 3, d, d))."""
        eye = torch.eye(F.shape[-1], dtype=F.dtype, device=F.device).expand_as(F)
        det = (1 + self.principal_strains).prod(dim=1)  # det F = det U (det R = 1)
        invariants = torch.cat([self.principal_strains, (det - 1)[:, None]], dim=1)
        return invariants, torch.stack([eye, self.E, self.E @ self.E], dim=1)


def isotropic_invariant_count(dim: int) -> int:
    """d + 1: the width of `isotropic_basis`'s invariants."""
    return dim + 1


def _symmetric_output(mlp: nn.Module, F: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
    """sym(MLP(features)) (n, d, d): the paper's full 3×3 output."""
    n, d = F.shape[0], F.shape[-1]
    return _sym(mlp(invariant_features(F, R)).reshape(n, d, d))


def feature_count(dim: int) -> int:
    """d + d² + 1: the width of `invariant_features` for d = dim."""
    return dim + dim * dim + 1


class BiasFreeMLP(nn.Module):
    """Linear layers without biases and GELU between them: MLP(0) = 0 exactly. (in_width,) → (out_width,).

    Weights start Xavier-uniform (the reference's `init_weight`), the last layer scaled by `out_scale`.
    """

    def __init__(self, in_width: int, out_width: int, hidden=HIDDEN, out_scale: float = 1.0):
        super().__init__()
        widths = [in_width, *hidden, out_width]
        self.layers = nn.ModuleList(nn.Linear(a, b, bias=False) for a, b in zip(widths[:-1], widths[1:]))
        self.activation = nn.GELU()
        for layer in self.layers:
            nn.init.xavier_uniform_(layer.weight)
        with torch.no_grad():
            self.layers[-1].weight.mul_(out_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers[:-1]:
            x = self.activation(layer(x))
        return self.layers[-1](x)


def _check_dims(dim, hidden, who):
    if dim not in (2, 3):
        raise ValueError(f"{who}: dim must be 2 or 3 (the scene's dimension), got {dim!r}")
    if not (len(hidden) >= 1 and all(isinstance(h, int) and h > 0 for h in hidden)):
        raise ValueError(f"{who}: hidden must be a non-empty sequence of positive layer widths, got {hidden!r}")


class ElasticNet(nn.Module):
    """NCLaw's elastic network: F (n, d, d) → first Piola–Kirchhoff stress P = R S(F) (n, d, d), Pa.

    Args:
        dim: 2 or 3.
        hidden: hidden layer widths (the paper: (64, 64)).
        stress_scale: Pa per unit of network output (1.0: the paper's raw output in Pa). A larger
            value lets a freshly initialised network start near a plausible stiffness; it does not
            change any prior. Not used by the isotropic network, whose output is scaled by its moduli.
        isotropic: False (the paper): S is the symmetrised 3×3 output of the MLP of the full features,
            which is frame-indifferent but not isotropic (it must learn isotropy from the data). True
            (simcore's extra priors, `nclaw_iso`): S is an isotropic function of the stretch U whose
            stiffness at rest is positive definite by construction,

                S = 2μ E + λ tr(E) I  +  κ (λ + 2μ)(ψ0 I + φ1 E + φ2 E²),      E = U − I,

            a linear elastic law in the rotated frame with learned moduli μ = s·exp(a) > 0,
            λ = s·exp(b) > 0 (s = `stiffness_scale`), plus the learned correction: φ1, φ2 from the
            bias-free MLP of the invariants (principal stretches, det F), and ψ0 = c·(C c + h) with c the
            invariants, C a learned matrix and h more outputs of the same MLP. The correction is relative
            to the P-wave modulus λ + 2μ, so the network learns the shape of the nonlinearity and the
            moduli its scale (the ground truths' stiffnesses differ by 10×); κ = `correction_scale`.
            Every correction term is of second order in the strain, so the stiffness at rest is the
            linear law's, positive whatever the network learns: the network bends the law at finite
            strain, it cannot make a rest state unstable (docs/nclaw.md: the first version's first-order φ0 learned a negative shear stiffness
            on sand and the rollout exploded). Then also P(FQ) = P(F) Q for every rotation Q.
        stiffness_scale: s, Pa (isotropic only): the moduli start at s each. They are learned in log
            coordinates because Adam moves a parameter by about its learning rate per step: lr 0.1 then
            changes a modulus by about 10 % per epoch whatever its size, and the ground truths' moduli span
            two orders of magnitude (water's shear modulus is 0).
        correction_scale: κ, the correction's unit as a fraction of λ + 2μ (isotropic only). Adam
            moves each weight by about its learning rate per step, so κ sets how far one step moves the
            law: with κ = 1 (lr 0.1) jelly's training blew up in its second epoch; κ = 1e-2 (about
            1e3 Pa per unit for jelly, the other networks' stress scale) trains (docs/nclaw.md).
    """

    def __init__(self, dim: int = 3, hidden=HIDDEN, stress_scale: float = 1.0, isotropic: bool = False,
                 stiffness_scale: float = 1e5, correction_scale: float = 1e-2):
        super().__init__()
        _check_dims(dim, hidden, "ElasticNet")
        if not stress_scale > 0:
            raise ValueError(f"ElasticNet: stress_scale must be > 0 Pa, got {stress_scale!r}")
        if not stiffness_scale > 0:
            raise ValueError(f"ElasticNet: stiffness_scale must be > 0 Pa, got {stiffness_scale!r}")
        if not correction_scale > 0:
            raise ValueError(f"ElasticNet: correction_scale must be > 0, got {correction_scale!r}")
        self.dim, self.stress_scale, self.isotropic = dim, float(stress_scale), bool(isotropic)
        self.stiffness_scale, self.correction_scale = float(stiffness_scale), float(correction_scale)
        invariants = isotropic_invariant_count(dim)
        if isotropic:  # outputs: h (one per invariant), φ1, φ2
            self.mlp = BiasFreeMLP(invariants, invariants + 2, hidden)
            self.quadratic = nn.Parameter(torch.zeros(invariants, invariants))
            self.rest_moduli = nn.Parameter(torch.zeros(2))  # log of (μ, λ) / stiffness_scale
        else:
            self.mlp = BiasFreeMLP(feature_count(dim), dim * dim, hidden)

    def moduli(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The isotropic law's stiffness at rest (μ, λ) in Pa, both > 0 (Lamé's constants of the linear part)."""
        if not self.isotropic:
            raise ValueError("ElasticNet.moduli: only the isotropic network (isotropic=True) has moduli at rest")
        mu, lam = self.rest_moduli.exp() * self.stiffness_scale
        return mu, lam

    def forward(self, F: torch.Tensor, *features) -> torch.Tensor:
        _check_F(F, self.dim, "ElasticNet")
        stretch = getattr(F, "nclaw_stretch", None) if self.isotropic else None
        if stretch is not None:  # F from the isotropic plastic network, which knows its stretch
            R = stretch.R
            invariants, basis = stretch.isotropic_basis(F)
        else:
            R = polar_rotation(F)
            if not self.isotropic:
                return R @ (_symmetric_output(self.mlp, F, R) * self.stress_scale)
            invariants, basis = isotropic_basis(F, R)  # basis: I, E, E²
        out = self.mlp(invariants)
        count = invariants.shape[1]
        psi0 = (invariants * (invariants @ self.quadratic.to(F.dtype).T + out[:, :count])).sum(dim=1)
        correction = psi0[:, None, None] * basis[:, 0] + (out[:, count:, None, None] * basis[:, 1:]).sum(dim=1)
        mu, lam = (m.to(F.dtype) for m in self.moduli())
        E = basis[:, 1]
        trace = E.diagonal(dim1=1, dim2=2).sum(dim=1)
        linear = 2 * mu * E + lam * trace[:, None, None] * basis[:, 0]
        return R @ (linear + correction * ((lam + 2 * mu) * self.correction_scale))


class PlasticNet(nn.Module):
    """NCLaw's plastic network (a learned return map): F_trial (n, d, d) → F_new (n, d, d).

    Args:
        dim: 2 or 3.
        hidden: hidden layer widths (the paper: (64, 64)).
        alpha: the paper's step α (default 1e-3): F_new = F + α R sym(MLP(features)); it keeps the
            initial network's plastic flow small. For the isotropic network, the flow fraction γ at the
            start (1e-5 instead was tried: plasticine's training then found its plastic flow later and
            ended 2–4× further from the oracle, docs/nclaw.md).
        isotropic: False (the paper). True (simcore's extra priors, `nclaw_iso`): the return map is
            coaxial with the stretch and dissipative by construction: each step removes a learned
            fraction of the elastic strain E = U − I, separately for its deviatoric and volumetric parts,

                F_new = F − R (γ_dev dev E + γ_vol vol E),   vol E = (tr E / d) I,   γ = sigmoid(MLP(c / ε0) + b),

            with c the invariants of `isotropic_basis` (principal stretches, det F), ε0 = `strain_scale`
            and b learned offsets that start at logit(α). γ ∈ (0, 1), so plastic flow moves the stretch
            towards rest and never beyond it: it cannot create elastic strain (no learned return map can
            pump energy into the body), and every rotation is left unchanged (E = 0 there). Von Mises
            (plasticine: γ_vol = 0, γ_dev = max(0, 1 − r/|dev E|)), Drucker–Prager in tension (sand:
            γ = 1) and a fluid's loss of shear memory (γ_dev = 1) are all of this form. The paper's form
            needs its network's output near 1/α = 1000 × the strain for a full return; this one needs
            γ near 1, which is why the reduced-budget training could not reach plasticity with the
            paper's form and its elastic network learned a softening that blew up instead (docs/nclaw.md).
        strain_scale: ε0, the strain the isotropic network's inputs are measured in (so that yield
            strains of a few per cent are inputs of order one).
    """

    def __init__(self, dim: int = 3, hidden=HIDDEN, alpha: float = ALPHA, isotropic: bool = False,
                 strain_scale: float = 1e-2):
        super().__init__()
        _check_dims(dim, hidden, "PlasticNet")
        if not alpha > 0 or (isotropic and not alpha < 1):
            raise ValueError(f"PlasticNet: alpha must be > 0 (and < 1 for the isotropic network), got {alpha!r}")
        if not strain_scale > 0:
            raise ValueError(f"PlasticNet: strain_scale must be > 0, got {strain_scale!r}")
        self.dim, self.alpha, self.isotropic, self.strain_scale = dim, float(alpha), bool(isotropic), float(strain_scale)
        if isotropic:  # outputs: the logits of γ_dev, γ_vol (small weights: γ starts near α everywhere)
            self.mlp = BiasFreeMLP(isotropic_invariant_count(dim), 2, hidden, out_scale=0.1)
            self.flow_offset = nn.Parameter(torch.full((2,), math.log(alpha / (1 - alpha))))
        else:
            self.mlp = BiasFreeMLP(feature_count(dim), dim * dim, hidden)

    def flow_fractions(self, invariants: torch.Tensor) -> torch.Tensor:
        """(γ_dev, γ_vol) (n, 2) in (0, 1) for the isotropic invariants (n, d + 1)."""
        return torch.sigmoid(self.mlp(invariants / self.strain_scale) + self.flow_offset.to(invariants.dtype))

    def flow_inputs(self, F: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """For deformation gradients F (n, d, d): the invariants (n, d + 1) the isotropic network reads, and
        the sizes (n, 2) of the strain parts it removes a fraction of, (‖dev E‖, ‖vol E‖) (Frobenius)."""
        _check_F(F, self.dim, "PlasticNet")
        invariants, basis = isotropic_basis(F, polar_rotation(F))
        deviatoric, volumetric = _strain_parts(basis)
        return invariants, torch.stack([deviatoric.flatten(1).norm(dim=1), volumetric.flatten(1).norm(dim=1)], dim=1)

    def forward(self, F: torch.Tensor, *features) -> torch.Tensor:
        _check_F(F, self.dim, "PlasticNet")
        R = polar_rotation(F)
        if not self.isotropic:
            return F + self.alpha * (R @ _symmetric_output(self.mlp, F, R))
        invariants, basis = isotropic_basis(F, R)
        deviatoric, volumetric = _strain_parts(basis)
        gamma = self.flow_fractions(invariants)
        flow = gamma[:, 0, None, None] * deviatoric + gamma[:, 1, None, None] * volumetric
        F_new = F - R @ flow
        # The step is coaxial: F_new = R U_new with E_new = U_new − I = (1 − γ_dev) dev E + (1 − γ_vol) vol E,
        # whose eigenvalues follow from E's (in the same order, as 1 − γ_dev > 0). Where U_new stays positive
        # definite, R is F_new's rotation too, and the elastic network reads the stretch from here instead
        # of decomposing F_new again (a polar decomposition and an eigensolve, forward and backward: 30 % of
        # a training step, benchmarks/nclaw_epoch.py). The same function to round-off (tests/learned/test_nclaw_priors.py).
        strain = invariants[:, :-1]
        mean = strain.mean(dim=1, keepdim=True)
        strain_new = (1 - gamma[:, :1]) * (strain - mean) + (1 - gamma[:, 1:]) * mean
        if bool((strain_new > -1).all()):
            F_new.nclaw_stretch = Stretch(R, strain_new, basis[:, 1] - flow)
        return F_new


def nclaw_material(elastic: ElasticNet, plastic: PlasticNet | None = None, *, density: float = 1e3,
                   wave_modulus: float = 1e5, name: str | None = None):
    """The networks as a simcore material: `materials.Neural(model=elastic, plasticity=plastic)`.

    simcore evaluates, per substep and particle, F_new = plastic(F_trial), P = elastic(F_new), which is
    the reference's order (its step stores F ← plasticity(F_trial) and takes the next stress from it).

    Args:
        density: kg/m³.
        wave_modulus: P-wave modulus (Pa) for the CFL time step. Given explicitly because a network's
            stiffness at rest is not a bound on its stiffness along a rollout (and a fresh network's may
            be ≤ 0); the paper's set-up fixes dt = 5e-4 s anyway (Scene(dt=...) overrides the CFL choice).
    """
    import simcore as sc

    if not isinstance(elastic, ElasticNet):
        raise ValueError(f"nclaw_material: elastic must be an ElasticNet, got {type(elastic).__name__}")
    if plastic is not None and not isinstance(plastic, PlasticNet):
        raise ValueError(f"nclaw_material: plastic must be a PlasticNet or None, got {type(plastic).__name__}")
    if plastic is not None and plastic.dim != elastic.dim:
        raise ValueError(f"nclaw_material: the elastic network is {elastic.dim}D but the plastic one is {plastic.dim}D")
    return sc.materials.Neural(model=elastic, plasticity=plastic, density=density, wave_modulus=wave_modulus,
                               name=name)
