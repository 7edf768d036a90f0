"""The baselines NCLaw is compared with (Ma et al., ICML 2023, §5), trained by the same loop (train.py):

- `MLPLaw`: a plain MLP from F to P without the priors: the 9 numbers of F in, 9 numbers of P out,
  biases allowed, the same hidden widths and activation (GELU) as NCLaw's networks; and, where NCLaw has
  a plastic network, a plain-MLP return map F ← F + α MLP(F) (same α). Nothing makes it objective
  (P(QF) ≠ Q P(F) in general) or at rest at F = I (P(I) = the last layers' biases ≠ 0).
- `OracleLaw`: the true material family of the ground truth (FixedCorotated for jelly, Plasticine,
  Sand, Fluid for water) with its parameters as torch tensors, identified by gradient descent from a
  wrong start. simcore differentiates rollouts with respect to E, ν, the yield stress, the friction
  angle and the bulk modulus (docs/differentiable.md); the start is E (or the bulk modulus) 3× too
  small, ν 0.1 too large, the yield stress 3× too large, the friction angle 10° too large. The
  parameters are optimised in unconstrained coordinates (log for moduli and the yield stress, a scaled
  tanh for ν and a scaled sigmoid for the friction angle), so that no optimiser step leaves the range
  simcore accepts.

Every law here and train.NCLaw answers the same three calls: `material(name=...)` (a simcore material
whose tensors are this law's), `refresh()` (re-derive those tensors from the parameters: needed before
every rollout that is back-propagated, as a tensor derived once would be freed by the first backward),
and `parameter_groups(...)` (the optimiser's groups, each clipped on its own).
"""

from __future__ import annotations

import math

import torch
from torch import nn

import simcore as sc

from . import ground_truth as gt
from .models import ALPHA, HIDDEN

WAVE_MODULUS = 1e5  # Pa: a network's P-wave modulus for simcore's CFL guard (dt is fixed at gt.DT anyway)


class PlainMLP(nn.Module):
    """Linear layers with biases and GELU between them: (n, in_width) → (n, out_width)."""

    def __init__(self, in_width: int, out_width: int, hidden=HIDDEN):
        super().__init__()
        widths = [in_width, *hidden, out_width]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.activation = nn.GELU()
        for layer in self.layers:  # the same start as NCLaw's networks (models.BiasFreeMLP)
            nn.init.xavier_uniform_(layer.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers[:-1]:
            x = self.activation(layer(x))
        return self.layers[-1](x)


def _check_F(F: torch.Tensor, dim: int, who: str) -> None:
    if not torch.is_tensor(F) or F.dim() != 3 or F.shape[1:] != (dim, dim):
        shape = tuple(F.shape) if torch.is_tensor(F) else type(F).__name__
        raise ValueError(f"{who}: expected deformation gradients of shape (n, {dim}, {dim}), got {shape}")


class MLPElastic(nn.Module):
    """F (n, d, d) → P = stress_scale · MLP(flatten F) (n, d, d), Pa: no priors."""

    def __init__(self, dim: int = 3, hidden=HIDDEN, stress_scale: float = 1.0):
        super().__init__()
        if not stress_scale > 0:
            raise ValueError(f"MLPElastic: stress_scale must be > 0 Pa, got {stress_scale!r}")
        self.dim, self.stress_scale = dim, float(stress_scale)
        self.mlp = PlainMLP(dim * dim, dim * dim, hidden)

    def forward(self, F: torch.Tensor, *features) -> torch.Tensor:
        _check_F(F, self.dim, "MLPElastic")
        n, d = F.shape[0], self.dim
        return self.mlp(F.reshape(n, d * d)).reshape(n, d, d) * self.stress_scale


class MLPPlastic(nn.Module):
    """F_trial (n, d, d) → F_trial + α MLP(flatten F_trial) (n, d, d): a return map without priors."""

    def __init__(self, dim: int = 3, hidden=HIDDEN, alpha: float = ALPHA):
        super().__init__()
        self.dim, self.alpha = dim, float(alpha)
        self.mlp = PlainMLP(dim * dim, dim * dim, hidden)

    def forward(self, F: torch.Tensor, *features) -> torch.Tensor:
        _check_F(F, self.dim, "MLPPlastic")
        n, d = F.shape[0], self.dim
        return F + self.alpha * self.mlp(F.reshape(n, d * d)).reshape(n, d, d)


class NetworkLaw(nn.Module):
    """A law made of an elastic network `elastic` and an optional plastic one `plastic` (NCLaw, the plain
    MLP): what the training loop asks of every law besides `material()`."""

    def refresh(self) -> None:
        """Nothing to re-derive: simcore reads the modules' parameters at every rollout."""

    def parameter_groups(self, elastic_lr: float, plastic_lr: float, oracle_lr: float,
                         flow_lr: float | None = None) -> list[dict]:
        """One Adam group per network (each clipped on its own, as the reference does). flow_lr: the step
        of the isotropic plastic network's flow offsets (its own group, "flow"; None: plastic_lr). Adam
        moves a parameter by about its lr per step whatever the gradient's size, so with one optimiser
        step per epoch the offsets' lr bounds how far the flow at rest can move (~0.3 in logit over 60
        epochs at lr 0.01). At lr 0.1 a jelly's offsets still stopped near their start (docs/nclaw.md,
        variant 11): the position loss does not ask for less flow, hence nclaw_iso's flow penalty (train.py)."""
        groups = [{"params": list(self.elastic.parameters()), "lr": elastic_lr, "name": "elastic"}]
        if self.plastic is None:
            return groups
        offset = getattr(self.plastic, "flow_offset", None)
        if offset is None or flow_lr is None:
            groups.append({"params": list(self.plastic.parameters()), "lr": plastic_lr, "name": "plastic"})
            return groups
        weights = [p for p in self.plastic.parameters() if p is not offset]
        groups.append({"params": weights, "lr": plastic_lr, "name": "plastic"})
        groups.append({"params": [offset], "lr": flow_lr, "name": "flow"})
        return groups


class MLPLaw(NetworkLaw):
    """The plain-MLP baseline: `elastic` (F → P) and, if `plastic`, a plain-MLP return map."""

    def __init__(self, dim: int = 3, hidden=HIDDEN, alpha: float = ALPHA, plastic: bool = True,
                 stress_scale: float = 1.0):
        super().__init__()
        self.elastic = MLPElastic(dim, hidden, stress_scale)
        self.plastic = MLPPlastic(dim, hidden, alpha) if plastic else None

    def material(self, density: float = gt.DENSITY, wave_modulus: float = WAVE_MODULUS, name: str | None = None):
        """The law as a materials.Neural (the modules shared, not copied)."""
        return sc.materials.Neural(model=self.elastic, plasticity=self.plastic, density=density,
                                   wave_modulus=wave_modulus, name=name)



# name: (simcore class, {parameter: (true value, wrong start, kind of coordinate)})
def _oracle_table() -> dict:
    jelly, plasticine, sand, water = (gt.material(m) for m in ("jelly", "plasticine", "sand", "water"))
    return {
        "jelly": (sc.materials.FixedCorotated, {"E": (jelly.E, jelly.E / 3, "log"),
                                                "nu": (jelly.nu, jelly.nu + 0.1, "poisson")}),
        "plasticine": (sc.materials.Plasticine, {"E": (plasticine.E, plasticine.E / 3, "log"),
                                                 "nu": (plasticine.nu, plasticine.nu + 0.1, "poisson"),
                                                 "yield_stress": (plasticine.yield_stress,
                                                                  3 * plasticine.yield_stress, "log")}),
        "sand": (sc.materials.Sand, {"E": (sand.E, sand.E / 3, "log"), "nu": (sand.nu, sand.nu + 0.1, "poisson"),
                                     "friction_angle": (sand.friction_angle, sand.friction_angle + 10, "angle")}),
        "water": (sc.materials.Fluid, {"bulk_modulus": (water.bulk_modulus, water.bulk_modulus / 3, "log")}),
    }


# Unconstrained coordinate z ↔ parameter value, per kind: the value stays where simcore accepts it.
_NU_MAX, _ANGLE_MAX = 0.49, 89.0
_TO_VALUE = {"log": torch.exp, "poisson": lambda z: _NU_MAX * torch.tanh(z),
             "angle": lambda z: _ANGLE_MAX * torch.sigmoid(z)}
_TO_Z = {"log": math.log, "poisson": lambda v: math.atanh(v / _NU_MAX),
         "angle": lambda v: math.log(v / (_ANGLE_MAX - v))}


class OracleLaw(nn.Module):
    """The ground truth's own material family with learnable parameters (one scalar each).

    Args:
        material: one of ground_truth.MATERIALS.
        start: parameter → starting value; default the wrong start above. `OracleLaw(m, start="true")`
            starts at the true values (its rollouts are then the ground truth's).
    """

    def __init__(self, material: str = "jelly", start: dict | str | None = None):
        super().__init__()
        gt.material(material)  # a clear error for an unknown name
        self.material_name = material
        self.family, table = _oracle_table()[material]
        self.kinds = {name: kind for name, (_, _, kind) in table.items()}
        self.true_values = {name: float(true) for name, (true, _, _) in table.items()}
        if start == "true":
            start = self.true_values
        start = {name: float(wrong) for name, (_, wrong, _) in table.items()} | dict(start or {})
        unknown = set(start) - set(table)
        if unknown:
            raise ValueError(f"OracleLaw({material!r}): {sorted(unknown)} are not identified parameters; "
                             f"choose from {sorted(table)}")
        self.z = nn.ParameterDict({name: nn.Parameter(torch.tensor(_TO_Z[self.kinds[name]](value)))
                                   for name, value in start.items()})
        self._material = None

    def values(self) -> dict[str, torch.Tensor]:
        """The current parameter values (0-d tensors on the graph of `z`): Pa, dimensionless ν, degrees."""
        return {name: _TO_VALUE[self.kinds[name]](z) for name, z in self.z.items()}

    def material(self, density: float = gt.DENSITY, name: str | None = None, **_):
        """The ground truth's material (same fixed constants: density, γ, viscosity) with this law's
        parameters as tensors. The material is remembered so that `refresh` can update it."""
        fixed = gt.material(self.material_name)
        kwargs = {"density": density, "name": name}
        if self.family is sc.materials.Fluid:
            kwargs.update(gamma=fixed.gamma, viscosity=fixed.viscosity)
        self._material = self.family(**kwargs, **self.values())
        return self._material

    def refresh(self) -> None:
        """Put fresh tensors of the current parameters on the material (one autograd graph per rollout)."""
        if self._material is not None:
            for name, value in self.values().items():
                setattr(self._material, name, value)

    def parameter_groups(self, elastic_lr: float, plastic_lr: float, oracle_lr: float,
                         flow_lr: float | None = None) -> list[dict]:
        return [{"params": list(self.z.values()), "lr": oracle_lr, "name": "elastic"}]

    def relative_errors(self) -> dict[str, float]:
        """|value / true − 1| of each identified parameter."""
        return {name: abs(float(v.detach()) / self.true_values[name] - 1.0) for name, v in self.values().items()}
