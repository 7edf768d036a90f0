"""LFlows' training loop and evaluation (learned/lflows/train.py, evaluate.py), reduced to CI size:

- a reduced configuration (a small flow, float64, 12² cells × 7 times of the 2D moving Gaussians) trains:
  its loss falls, while its continuity residual ∂ρ/∂t + ∇·(ρv) stays at round-off and its total mass
  stays M (by quadrature) — conservation is built in, not learned;
- the PINN trained by the same loop on the same data and budget has a residual ≥ 10⁴× larger (it only
  penalises it);
- the same holds on simcore data: a small dam break (grid 32) turned into particle-count densities;
- `--resume` continues a run killed half-way to the parameters of an uninterrupted run, bit for bit;
- the training and evaluation CLIs run end to end (table, plots, doc markers).
"""

import numpy as np
import pytest
import torch
from simcore.learned.lflows import data
from simcore.learned.lflows import evaluate as ev
from simcore.learned.lflows import train as lftrain
from simcore.learned.train import read_metrics, seed_everything

import simcore as sc

SMALL = dict(data_options={"cells": 12, "frames": 7}, steps=80, batch=128, hidden=16, blocks=1, components=2,
             precision="f64", lr=1e-2, depth=2)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The reduced LFlows and PINN runs on the 2D Gaussians: {model: (module, data, out dir)}."""
    root = tmp_path_factory.mktemp("lflows")
    runs = {}
    for model in ("lflows", "pinn"):
        out = root / model
        module = lftrain.train("gaussians2d", out, model=model, progress=False, tensorboard=False, log_every=5, **SMALL)
        runs[model] = (module, data.load("gaussians2d", **SMALL["data_options"]), out)
    return runs


def training_loss(model, d) -> float:
    """The density loss over every training point (a batch's is noisy)."""
    x, t, rho, _, _ = d.tensors("train", torch.float64)
    with torch.no_grad():
        return float(((model.density(x, t) - rho) ** 2).mean()) / d.density_scale ** 2


def test_reduced_lflows_trains_with_the_residual_at_round_off(trained):
    flow, d, out = trained["lflows"]
    seed_everything(0)  # the run's seed: the flow it started from
    start = lftrain.make_model(lftrain.Settings(**{k: v for k, v in SMALL.items()}), d)
    assert training_loss(flow, d) < 0.5 * training_loss(start, d)
    assert ev.residual_rms(flow, d, points=300) < 1e-11  # relative to ρ_s / T
    _, masses = ev.mass_over_time(flow, d, times=d.time_range, cells=256)  # first and last time
    assert np.max(np.abs(masses - d.mass)) / d.mass < 1e-8, masses


def test_pinn_residual_is_at_least_1e4_times_larger(trained):
    flow, d, _ = trained["lflows"]
    pinn, _, out = trained["pinn"]
    assert "residual" in read_metrics(out / "metrics.csv")[-1]  # the PINN was penalised for it
    lflows_res, pinn_res = ev.residual_rms(flow, d, points=300), ev.residual_rms(pinn, d, points=300)
    assert pinn_res > 1e4 * lflows_res, (pinn_res, lflows_res)
    assert pinn_res > 1e-6  # not at round-off itself


def test_lflows_on_a_simcore_dam_break_conserves_exactly(tmp_path):
    sc.init("cpu", "f32", verbose=False)
    options = {"grid": 32, "frames": 8, "cells": 12}
    d = data.load("dam_break", cache=tmp_path / "cache", **options)
    for k in range(len(d.times)):  # every particle counted once: the observations hold M = 1
        assert abs(d.frame(d.rho, k).sum() * d.cell_volume - 1.0) < 1e-9
    assert d.mask("region").any() and d.mask("future").any()
    flow = lftrain.train("dam_break", tmp_path / "run", cache=tmp_path / "cache", progress=False, tensorboard=False,
                         log_every=5, **dict(SMALL, steps=40, data_options=options))
    rows = read_metrics(tmp_path / "run" / "metrics.csv")
    assert rows[-1]["density"] < rows[0]["density"]
    assert ev.residual_rms(flow, d, points=200) < 1e-11
    _, masses = ev.mass_over_time(flow, d, times=d.time_range, cells=256)
    assert np.max(np.abs(masses - 1.0)) < 1e-8, masses


def test_resume_reaches_the_uninterrupted_parameters(tmp_path):
    tiny = dict(data_options={"cells": 8, "frames": 5}, steps=10, batch=32, hidden=8, blocks=1, components=2,
                precision="f64", checkpoint_every=5, progress=False, tensorboard=False, log_every=1)
    whole = lftrain.train("gaussians2d", tmp_path / "whole", **tiny)
    lftrain.train("gaussians2d", tmp_path / "cut", stop_after=7, **tiny)  # killed after step 7, checkpoint at 5
    resumed = lftrain.train("gaussians2d", tmp_path / "cut", resume=True, **tiny)
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    assert [r["step"] for r in read_metrics(tmp_path / "cut" / "metrics.csv")] == list(range(10))
    with pytest.raises(ValueError, match="other settings"):
        lftrain.train("gaussians2d", tmp_path / "cut", resume=True, **dict(tiny, hidden=9))


def test_train_and_evaluate_command_lines(tmp_path, capsys):
    common = ["--set", "cells=8", "--set", "frames=5", "--batch", "32", "--hidden", "8", "--blocks", "1"]
    out = tmp_path / "cli"
    assert lftrain.main(["--data", "gaussians2d", "--steps", "3", "--out", str(out), "--no-progress",
                         "--no-tensorboard", *common]) == 0
    assert (out / "run.json").exists() and [r["step"] for r in read_metrics(out / "metrics.csv")] == [0, 2]
    assert lftrain.main(["--data", "gaussians2d", "--steps", "5", "--out", str(out), "--resume", "--no-progress",
                         "--no-tensorboard", *common]) == 0
    assert read_metrics(out / "metrics.csv")[-1]["step"] == 4
    doc = tmp_path / "lflows.md"
    assert ev.main(["--runs", str(tmp_path / "runs"), "--data", "gaussians2d", "--models", "lflows", "mlp",
                    "--steps", "3", *common, "--mass-cells", "64", "--residual-points", "50", "--doc", str(doc),
                    "--plots", str(tmp_path)]) == 0
    text = doc.read_text()
    assert f"<!-- lflows-table {tmp_path / 'runs'} 3:begin -->" in text and "| gaussians2d | lflows |" in text and "| gaussians2d | mlp |" in text
    assert "Budget: 3 Adam steps" in text
    assert (tmp_path / "lflows_density.png").exists() and (tmp_path / "lflows_residual.png").exists()
    with pytest.raises(SystemExit):
        lftrain.main(["--data", "gaussians2d", "--out", str(out), "--set", "cells"])
