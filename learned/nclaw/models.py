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

The rotation R comes from the scaled Newton iteration for the polar factor (Higham 1986) rather than an
SVD: torch's SVD backward divides by σ_i² − σ_j², which is 0/0 at F = I — exactly where every particle
starts — while the Newton iterate differentiates through matrix inverses only, finite at F = I.
"""

from __future__ import annotations

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
    for _ in range(_NEWTON_MAX_ITERATIONS):
        inv = torch.linalg.inv(X)
        zeta = (torch.linalg.matrix_norm(inv) / torch.linalg.matrix_norm(X)).sqrt()[:, None, None]
        X_next = 0.5 * (zeta * X + inv.transpose(1, 2) / zeta)
        change = (X_next - X).abs().amax().item() if X.numel() else 0.0
        X = X_next
        if change < tol:
            break
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
    """NCLaw's elastic network: F (n, d, d) → first Piola–Kirchhoff stress P = R sym(MLP(features)) (n, d, d), Pa.

    Args:
        dim: 2 or 3.
        hidden: hidden layer widths (the paper: (64, 64)).
        stress_scale: Pa per unit of network output (1.0: the paper's raw output in Pa). A larger
            value lets a freshly initialised network start near a plausible stiffness; it does not
            change any prior.
    """

    def __init__(self, dim: int = 3, hidden=HIDDEN, stress_scale: float = 1.0):
        super().__init__()
        _check_dims(dim, hidden, "ElasticNet")
        if not stress_scale > 0:
            raise ValueError(f"ElasticNet: stress_scale must be > 0 Pa, got {stress_scale!r}")
        self.dim, self.stress_scale = dim, float(stress_scale)
        self.mlp = BiasFreeMLP(feature_count(dim), dim * dim, hidden)

    def forward(self, F: torch.Tensor, *features) -> torch.Tensor:
        _check_F(F, self.dim, "ElasticNet")
        n, d = F.shape[0], self.dim
        R = polar_rotation(F)
        S = _sym(self.mlp(invariant_features(F, R)).reshape(n, d, d)) * self.stress_scale
        return R @ S


class PlasticNet(nn.Module):
    """NCLaw's plastic network (a learned return map): F_trial (n, d, d) → F_trial + α R sym(MLP(features)).

    Args:
        dim: 2 or 3.
        hidden: hidden layer widths (the paper: (64, 64)).
        alpha: the step α (the paper: 1e-3); it keeps the initial network's plastic flow small.
    """

    def __init__(self, dim: int = 3, hidden=HIDDEN, alpha: float = ALPHA):
        super().__init__()
        _check_dims(dim, hidden, "PlasticNet")
        if not alpha > 0:
            raise ValueError(f"PlasticNet: alpha must be > 0, got {alpha!r}")
        self.dim, self.alpha = dim, float(alpha)
        self.mlp = BiasFreeMLP(feature_count(dim), dim * dim, hidden)

    def forward(self, F: torch.Tensor, *features) -> torch.Tensor:
        _check_F(F, self.dim, "PlasticNet")
        n, d = F.shape[0], self.dim
        R = polar_rotation(F)
        X = _sym(self.mlp(invariant_features(F, R)).reshape(n, d, d))
        return F + self.alpha * (R @ X)


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
