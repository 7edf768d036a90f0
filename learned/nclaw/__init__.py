"""simcore.learned.nclaw: neural constitutive laws learned from motion (Ma et al., ICML 2023).

- models.py: the elastic and plastic networks with the paper's priors (rotation-invariant,
  rest-normalised features; bias-free MLP; P = R S; F ← F + α R sym(X)), and `nclaw_material`, which
  wires them into `simcore.materials.Neural`.
- ground_truth.py: the paper's set-up (a cube thrown spinning into the floor) for jelly, plasticine,
  sand and water, as the `nclaw_cube` dataset family (and with the full state, for teacher forcing).
- train.py: training from one trajectory through the differentiable MPM (teacher forcing, cosine λ,
  Adam + cosine annealing + clipping, checkpoints and resume through simcore.learned.train);
  `python -m simcore.learned.nclaw.train --material jelly --epochs N --out DIR`.
"""

from .models import ElasticNet, PlasticNet, invariant_features, nclaw_material, polar_rotation

__all__ = ["ElasticNet", "PlasticNet", "invariant_features", "nclaw_material", "polar_rotation"]
