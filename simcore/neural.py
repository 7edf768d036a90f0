"""Torch-computed stress for Neural materials, between the MPM kernels.

Each substep, `deform` writes the trial deformation gradient F_trial = (I + dt C) F of every
particle; `NeuralStress.stress` evaluates each Neural material's modules on its particles' F_trial,

    F_new = plasticity(F_trial) (or F_trial),   P = model(F_new),   τ = P F_newᵀ,

and writes F_new and τ (Pa) to the solver's ext_F, ext_tau fields, which `p2g` reads. In the reverse
sweep, `adjoint` takes the adjoints of ext_F and ext_tau left by `p2g.grad`, back-propagates them
through the same torch computation, adds the result to F_trial's adjoint and accumulates the gradients
of the modules' parameters (and of tensor features).

The torch computation of a substep whose reverse sweep will come (a gradient solver keeping its
temporaries) is recorded with its autograd graph, up to GRAPH_BUDGET bytes of saved tensors per
segment, and its adjoint back-propagates through that graph; beyond the budget, and for every other
substep, the forward runs without a graph and the adjoint recomputes it at the same F_trial. The
recomputation was a fifth to a quarter of a learned law's training step (benchmarks/nclaw_epoch.py).
"""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import torch


def _dtype_of(module, default):
    for p in getattr(module, "parameters", lambda: [])():
        return p.dtype
    return default


def _evaluate(material, F_trial: torch.Tensor, features):
    """F_new, τ (n, d, d) for a Neural material at F_trial (n, d, d), in the model's dtype."""
    args = () if features is None else (features,)
    F_new = F_trial if material.plasticity is None else material.plasticity(F_trial, *args)
    P = material.model(F_new, *args)
    if P.shape != F_new.shape:
        raise ValueError(f"{material.label}: model returned stress of shape {tuple(P.shape)}, expected "
                         f"{tuple(F_new.shape)} (first Piola–Kirchhoff, one (d, d) matrix per particle)")
    return F_new, P @ F_new.transpose(1, 2)


def rest_wave_modulus(material, x: np.ndarray) -> float:
    """max over particles and axes of ∂P_ii/∂F_ii at F = I (Pa): λ + 2μ for an isotropic law."""
    n, d = x.shape
    dtype = _dtype_of(material.model, torch.float64)
    features = material.particle_features(x)
    features = None if features is None else features.detach().to(dtype)
    best = 0.0
    for i in range(d):
        h = torch.zeros(n, dtype=dtype, requires_grad=True)
        E = torch.zeros(d, d, dtype=dtype)
        E[i, i] = 1.0
        with torch.enable_grad():
            F = torch.eye(d, dtype=dtype) + h[:, None, None] * E
        args = () if features is None else (features,)
        with torch.enable_grad():  # also when the rollout runs under no_grad
            P = material.model(F, *args)
            (grad,) = torch.autograd.grad(P[:, i, i].sum(), h)
        best = max(best, float(grad.max()))
    if not (np.isfinite(best) and best > 0):
        raise ValueError(f"{material.label}: the model's stiffness at rest (∂P_ii/∂F_ii at F = I) is {best!r}; "
                         "give Neural(wave_modulus=...) in Pa for the time step")
    return best


GRAPH_BUDGET = 1 << 30  # bytes of saved tensors of the recorded substeps' graphs, per segment


class NeuralStress:
    """The stress hook of a solver whose scene has Neural materials.

    Args:
        parts: (material, particle indices (m,), features tensor (m, k) or None) per Neural body.
        graph_budget: bytes of saved tensors the recorded graphs of one segment may hold (0: record none,
            recompute every adjoint's forward; None: GRAPH_BUDGET).
    """

    def __init__(self, parts, graph_budget: int | None = None):
        self.parts = parts
        self.param_grads: dict[int, torch.Tensor] = {}
        self.graph_budget = int(GRAPH_BUDGET if graph_budget is None else graph_budget)
        self.graphs: dict[int, tuple] = {}  # slot → ([(F_trial leaf, F_new, τ) per part], bytes saved)
        self.graph_bytes = 0

    def parameters(self) -> list[torch.Tensor]:
        """Every tensor whose gradient the rollout returns: module parameters and tensor features."""
        seen, out = set(), []
        for material, _, features in self.parts:
            tensors = list(material.model.parameters()) if hasattr(material.model, "parameters") else []
            if material.plasticity is not None and hasattr(material.plasticity, "parameters"):
                tensors += list(material.plasticity.parameters())
            if features is not None and features.requires_grad:
                tensors.append(features)
            for t in tensors:
                if id(t) not in seen and t.requires_grad:
                    seen.add(id(t))
                    out.append(t)
        return out

    def stress(self, solver, slot: int | None = None):
        """Fill ext_F and ext_tau from F_trial (forward). `slot`: the slot this substep starts from, when
        its reverse sweep will come (the solver keeps its temporaries): its graph is then recorded, within
        the budget. A segment's forward starts at slot 0, which drops the graphs of the one before."""
        F_trial = solver.F_trial.to_numpy()
        if not np.isfinite(F_trial).all():  # else the model fails inside (e.g. an eigensolver) with a vaguer error
            raise FloatingPointError("the deformation gradients reaching a Neural material are non-finite: the "
                                     "rollout blew up before its model was called (a learned law that is unstable, "
                                     "or a time step too large for it)")
        if slot == 0:
            self.drop_graphs()
        record = slot is not None and self.graph_bytes < self.graph_budget
        saved = [0]

        def count(tensor):  # bytes of the tensors the graph saves for backward
            saved[0] += tensor.numel() * tensor.element_size()
            # Detached: a pack hook that keeps the tensor itself closes a reference cycle through C++ for
            # every tensor an op saves as its own output (its grad_fn owns the saved copy), which Python's
            # gc cannot see; the graphs of a dropped segment then leaked (12 GB after 25 full-recipe
            # epochs). Autograd re-attaches the grad_fn when it unpacks (pytorch/pytorch#189025).
            return tensor.detach()

        F_new = np.zeros_like(F_trial)
        tau = np.zeros_like(F_trial)
        graph = []
        with torch.enable_grad() if record else torch.no_grad(), \
                torch.autograd.graph.saved_tensors_hooks(count, lambda tensor: tensor) if record else nullcontext():
            for material, idx, features in self.parts:
                dtype = _dtype_of(material.model, torch.from_numpy(F_trial).dtype)
                F = torch.from_numpy(F_trial[idx]).to(dtype).requires_grad_(record)
                f = None if features is None else features.to(dtype)
                Fn, t = _evaluate(material, F, f)
                graph.append((F, Fn, t))
                F_new[idx] = Fn.detach().cpu().numpy()
                tau[idx] = t.detach().cpu().numpy()
        if record:
            self.graphs[slot] = (graph, saved[0])
            self.graph_bytes += saved[0]
        if not (np.isfinite(F_new).all() and np.isfinite(tau).all()):
            raise FloatingPointError("a Neural material's model returned non-finite stress or F")
        solver.ext_F.from_numpy(F_new)
        solver.ext_tau.from_numpy(tau)

    def drop_graphs(self):
        """Forget the recorded graphs (their adjoints then recompute the forward)."""
        self.graphs, self.graph_bytes = {}, 0

    def adjoint(self, solver, slot: int | None = None):
        """F_trial.grad += (∂(F_new, τ)/∂F_trial)ᵀ (ext_F.grad, ext_tau.grad); parameter gradients are
        accumulated in `param_grads` (by tensor id). `slot`: the slot the substep started from, whose
        recorded graph is used (and dropped) if there is one; else the forward is recomputed at F_trial."""
        F_trial = solver.F_trial.to_numpy()
        gF_new = solver.ext_F.grad.to_numpy()
        g_tau = solver.ext_tau.grad.to_numpy()
        g_trial = solver.F_trial.grad.to_numpy()
        params = self.parameters()
        graph, saved = self.graphs.pop(slot, (None, 0))
        self.graph_bytes -= saved
        for part, (material, idx, features) in enumerate(self.parts):
            dtype = _dtype_of(material.model, torch.from_numpy(F_trial).dtype)
            with torch.enable_grad():
                if graph is not None:
                    F, Fn, t = graph[part]
                else:
                    F = torch.from_numpy(F_trial[idx]).to(dtype).requires_grad_(True)
                    Fn, t = _evaluate(material, F, None if features is None else features.to(dtype))
                inputs = [F] + params
                grads = torch.autograd.grad(
                    (Fn, t), inputs,
                    (torch.from_numpy(gF_new[idx]).to(dtype), torch.from_numpy(g_tau[idx]).to(dtype)),
                    allow_unused=True)
            g_trial[idx] += grads[0].detach().cpu().numpy().astype(g_trial.dtype)
            for p, g in zip(params, grads[1:]):
                if g is not None:
                    self.param_grads[id(p)] = self.param_grads.get(id(p), 0) + g.detach()
        solver.F_trial.grad.from_numpy(g_trial)

    def take_param_grads(self) -> list[torch.Tensor]:
        """The accumulated parameter gradients (zeros where none), in `parameters()` order; resets them."""
        out = [self.param_grads.get(id(p), torch.zeros_like(p)) for p in self.parameters()]
        self.param_grads = {}
        return out
