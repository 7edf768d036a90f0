"""NCLaw's baselines and evaluation (learned/nclaw/baselines.py, evaluate.py), reduced to CI size.

- System identification through the differentiable MPM: the oracle (fixed corotated, the ground truth's
  own family) trained by the NCLaw loop from E 3× too small and ν 0.1 too large recovers the jelly's
  Young's modulus within 10 % and ν within 0.03 from a short trajectory.
- Frame indifference (objectivity, P(QF) = Q P(F)) holds for NCLaw by construction and not for the plain
  MLP baseline, which also has a non-zero stress at rest (P(I) ≠ 0): the priors are what separates them.
- The evaluation measures the right thing: the true law scores an MSE of zero to round-off on every
  test (including the multi-material scene), an untrained network does not, the reconstruction test is
  the training trajectory itself, and a rollout that blows up is reported as such.
"""

from pathlib import Path

import numpy as np
import pytest
import torch
from simcore.learned.nclaw import baselines as bl
from simcore.learned.nclaw import evaluate as ev
from simcore.learned.nclaw import ground_truth as gt
from simcore.learned.nclaw import train as nt
from simcore.learned.train import read_metrics

import simcore as sc

SMALL = {"size": 0.3, "center": (0.5, 0.35, 0.5)}  # reaches the floor after ~30 steps


@pytest.fixture(scope="module")
def cpu():
    sc.init("cpu", "f32", verbose=False)


def test_oracle_recovers_youngs_modulus(cpu, tmp_path):
    law = nt.train("jelly", tmp_path, epochs=40, steps=150, model="oracle", teacher=(50, 50), oracle_lr=0.1,
                   progress=False, tensorboard=False, ground_truth_options=SMALL)
    rows = read_metrics(tmp_path / "metrics.csv")
    assert rows[0]["err_E"] > 0.5  # it started far off (E / 3 after one step of at most ~10 %)
    E, nu = (float(v.detach()) for v in law.values().values())
    assert abs(E / 1e5 - 1) < 0.10, E
    assert abs(nu - 0.2) < 0.03, nu
    assert rows[-1]["loss"] < 0.01 * rows[0]["loss"]
    assert isinstance(nt.load(tmp_path), bl.OracleLaw)  # law.json rebuilds the kind of law


def test_mlp_breaks_objectivity_nclaw_keeps_it():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    Q = torch.linalg.qr(torch.randn(32, 3, 3, generator=g, dtype=torch.float64))[0]
    Q = Q * torch.linalg.det(Q).sign()[:, None, None]
    F = torch.eye(3, dtype=torch.float64) + 0.3 * torch.randn(32, 3, 3, generator=g, dtype=torch.float64)
    nclaw = nt.make_law("nclaw", dtype=torch.float64)
    mlp = nt.make_law("mlp", dtype=torch.float64)
    eye = torch.eye(3, dtype=torch.float64)[None]
    with torch.no_grad():
        for law, objective in ((nclaw, True), (mlp, False)):
            P = law.elastic(F)
            gap = float((law.elastic(Q @ F) - Q @ P).abs().max() / P.abs().max())
            plastic_gap = float((law.plastic(Q @ F) - Q @ law.plastic(F)).abs().max())
            if objective:
                assert gap < 1e-12 and plastic_gap < 1e-13
                assert float(law.elastic(eye).abs().max()) == 0.0
            else:
                assert gap > 1e-2, gap
                assert plastic_gap > 1e-6, plastic_gap
                assert float(law.elastic(eye).abs().max()) > 1e-3  # its biases: a stress at rest


def test_true_law_scores_zero_and_failures_are_reported(cpu, tmp_path):
    steps = 12
    laws = {("jelly", "oracle"): bl.OracleLaw("jelly", start="true"),
            ("water", "oracle"): bl.OracleLaw("water", start="true"),
            ("jelly", "nclaw"): nt.make_law("nclaw", stress_scale=1e3),  # untrained
            ("jelly", "mlp"): nt.make_law("mlp", stress_scale=1e9),  # biases of GPa: it must blow up
            ("water", "mlp"): "training failed at epoch 3 (FloatingPointError)"}
    keep = {}
    results = ev.evaluate(laws, steps, materials=("jelly",), tests=("reconstruction", "shape", "multi"), keep=keep)
    for test in ("reconstruction", "shape"):
        oracle, untrained = results[("jelly", test, "oracle")]["mse"], results[("jelly", test, "nclaw")]["mse"]
        assert oracle < 1e-14, (test, oracle)  # f32 round-off of the same law (ν through tanh)
        assert untrained > 1e3 * max(oracle, 1e-16), (test, untrained)
        assert results[("jelly", test, "mlp")]["blew_up"] is not None
        assert "blew up at frame" in results[("jelly", test, "mlp")].text()
    assert results[("jelly+water", "multi", "oracle")]["mse"] < 1e-14
    assert results[("jelly+water", "multi", "nclaw")].text() == "not trained"  # no learned water
    assert results[("jelly+water", "multi", "mlp")].text() == laws[("water", "mlp")]  # its failure, reported
    # the reconstruction test is the training trajectory
    truth = np.asarray(gt.trajectory("jelly", steps).x)
    assert np.array_equal(keep[("jelly", "reconstruction", "truth")], truth.astype(np.float64))
    markdown = ev.table(results)
    assert markdown.count("\n") == 1 + 3 and "blew up at frame" in markdown and "not trained" in markdown
    png = ev.plot(keep, results, tmp_path / "rollouts.png", panels=(("jelly", "shape"), ("jelly+water", "multi")))
    assert png.stat().st_size > 10_000


def test_ratio_over_the_frames_before_a_blow_up():
    """Where one model blew up, its ratio to the other is taken over the frames both rolled out, as a
    bound: the blown-up model's full-horizon error is unbounded."""
    nan = float("nan")
    fine = ev.Cell(mse=2.0, blew_up=None, note="", frame_mse=[1.0, 1.0, 2.0, 4.0])
    broke = ev.Cell(mse=None, blew_up=3, note="", frame_mse=[3.0, 5.0, nan, nan])
    assert ev.mse_ratio(broke, fine) == "≥ 4"  # (3 + 5) / (1 + 1), frames 1 and 2
    assert ev.mse_ratio(fine, broke) == "≤ 0.25"
    assert ev.mse_ratio(fine, ev.Cell(mse=0.5, blew_up=None, note="")) == "4"
    assert ev.mse_ratio(broke, broke) == "—"  # both blew up: no bound
    assert ev.mse_ratio(ev.Cell(note="not trained"), fine) == "—"
    first = ev.Cell(mse=None, blew_up=1, note="", frame_mse=[nan, nan, nan, nan])
    assert ev.mse_ratio(first, fine) == "—"  # no frame before the blow-up


def test_failed_run_is_evaluated_with_its_last_finite_weights(tmp_path):
    """A run whose training failed at epoch k is evaluated with the weights epoch k − 1 ran with
    (checkpoint step_{k−1}), and every cell it fills says so; without that checkpoint, only the note."""
    import json

    from simcore.learned.train import save_checkpoint
    from simcore.learned.train.checkpoint import checkpoint_path

    out = tmp_path / "jelly_mlp"
    (out / "checkpoints").mkdir(parents=True)
    (out / "law.json").write_text(json.dumps({"model": "mlp", "material": "jelly", "plastic": True,
                                              "hidden": [8], "stress_scale": 1e3}))
    (out / "metrics.csv").write_text("step,loss\n0,0.5\n1,0.4\n")  # epochs 0, 1 done; epoch 2 failed
    laws = {}
    for step in (1, 2):
        laws[step] = nt.make_law("mlp", hidden=(8,), stress_scale=1e3)
        save_checkpoint(checkpoint_path(out / "checkpoints", step), {"model": laws[step].state_dict()})
    note = "training failed at epoch 2 (FloatingPointError)"
    fallback = ev._failed_run(out, note)
    assert isinstance(fallback, ev.Fallback)
    assert fallback.caveat == "failed at epoch 2 (FloatingPointError); weights of epoch 1"
    for a, b in zip(fallback.law.state_dict().values(), laws[1].state_dict().values()):
        assert torch.equal(a, b)
    cell = ev.Cell(mse=3e-4, blew_up=None, note="", caveat=fallback.caveat)
    assert cell.text() == "3.00e-04 (failed at epoch 2 (FloatingPointError); weights of epoch 1)"
    checkpoint_path(out / "checkpoints", 1).unlink()
    assert ev._failed_run(out, note) == note


def test_ratio_columns_follow_the_models():
    """A ratio column appears when both of its models are columns: the NCLaw-iso ones only with nclaw_iso."""
    results = {("jelly", "shape", m): ev.Cell(mse=v, blew_up=None, note="")
               for m, v in (("nclaw", 4e-6), ("nclaw_iso", 2e-8), ("mlp", 4e-4), ("oracle", 1e-8))}
    header, _, row = ev.table(results, ("nclaw", "nclaw_iso", "mlp", "oracle")).splitlines()
    assert header.endswith("| MLP / NCLaw | MLP / NCLaw-iso | NCLaw / oracle | NCLaw-iso / oracle |")
    assert row.endswith("| 100 | 2e+04 | 400 | 2 |")
    header = ev.table(results, ("nclaw", "oracle")).splitlines()[0]
    assert header.endswith("| oracle MSE (m²) | NCLaw / oracle |")


def test_bad_choices_are_clear_errors():
    with pytest.raises(ValueError, match="unknown model 'gnn'"):
        nt.make_law("gnn")
    with pytest.raises(ValueError, match="not identified parameters"):
        bl.OracleLaw("jelly", start={"yield_stress": 1e3})
    with pytest.raises(ValueError, match="unknown test"):
        ev.test_scene("bounce", {"jelly": gt.material("jelly")})
    with pytest.raises(ValueError, match="needs laws for jelly, water"):
        ev.test_scene("multi", {"jelly": gt.material("jelly")})


def test_doc_table_is_replaced_in_place(tmp_path):
    """Re-running the evaluation replaces its own table (same budget) and keeps the rest of the page."""
    from argparse import Namespace

    doc = tmp_path / "nclaw.md"
    doc.write_text("# NCLaw\n\nText before.\n")
    args = Namespace(runs="/tmp/runs", materials=["jelly"], models=["nclaw"], steps=250, epochs=60, plot=None,
                     doc=str(doc), **ev.BUDGET)
    ev.write_doc(doc, "| table one |", args, {("jelly", "nclaw"): 5.0})
    ev.write_doc(doc, "| table two |", args, {("jelly", "nclaw"): 5.0})
    ev.write_doc(doc, "| other budget |", Namespace(**{**vars(args), "epochs": 120, "elastic_lr": 0.01}), {})
    text = doc.read_text()
    assert text.startswith("# NCLaw\n\nText before.\n") and "table one" not in text
    assert text.count("table two") == 1 and text.count("other budget") == 1
    assert "REDUCED" in text and "--steps 250 --epochs 60 --doc" in text and "--epochs 120 --elastic-lr 0.01 --doc" in text


def test_seed_table_reports_every_seed_and_the_worst():
    """With several training seeds, every ratio is given per seed, the worst seed's for the learned law
    (largest model / oracle, smallest MLP / model; a seed with no number is worst of all), and the count
    of seeds meeting both acceptance bars (≤ 3× the oracle, ≥ 10× better than the MLP) on every
    new-velocity and new-shape test."""
    def results(iso):
        out = {}
        for test in ev.BAR_TESTS:
            out[("jelly", test, "oracle")] = ev.Cell(mse=1e-8, blew_up=None, note="")
            out[("jelly", test, "mlp")] = ev.Cell(mse=1e-4, blew_up=None, note="")
            out[("jelly", test, "nclaw_iso")] = ev.Cell(mse=iso.get(test, 2e-8), blew_up=None, note="")
        return out

    by_seed = {0: results({}), 1: results({"velocity_b": 3.8e-8}), 4: results({"shape": 2e-5})}
    by_seed[4][("jelly", "velocity_c", "nclaw_iso")] = ev.Cell(note="not trained")
    text = ev.seed_table(by_seed, ("nclaw_iso", "mlp", "oracle"))
    lines = text.splitlines()
    assert lines[0] == ("| material | test | MLP / NCLaw-iso: seed 0 | seed 1 | seed 4 | worst | "
                        "NCLaw-iso / oracle: seed 0 | seed 1 | seed 4 | worst |")
    rows = {line.split(" | ")[1]: line for line in lines[2:6]}
    assert rows["velocity_b"].endswith("| 5e+03 | 2.63e+03 | 5e+03 | 2.63e+03 (seed 1) | 2 | 3.8 | 2 | 3.8 (seed 1) |")
    assert rows["shape"].endswith("| 5e+03 | 5e+03 | 5 | 5 (seed 4) | 2 | 2 | 2e+03 | 2e+03 (seed 4) |")
    assert rows["velocity_c"].endswith("| — (seed 4) | 2 | 2 | — | — (seed 4) |")
    assert "nclaw_iso on jelly: within 3× of the oracle and ≥ 10× better than the MLP on all of " \
           "velocity_a, velocity_b, velocity_c, shape in **1 of 3 seeds** (0)" in text
    assert ev.seed_runs("/r", 0) == Path("/r") and ev.seed_runs("/r", 2) == Path("/r/seed2")


def test_cli_trains_and_tables_each_seed(monkeypatch, tmp_path):
    """`evaluate --seeds 0 3` trains seed 0's runs in RUNS and seed 3's in RUNS/seed3, each with its
    seed; the table and the per-epoch seconds are seed 0's, the seed table follows, and the command in the
    page names the seeds. Repeated or negative seeds are refused."""
    calls = []
    monkeypatch.setattr(ev.sc, "init", lambda *args, **kwargs: None)

    def train_missing(runs, materials, models, steps, epochs, budget, seed=0):
        calls.append((Path(runs), seed))
        return {("jelly", m): f"law {seed}" for m in models}

    def evaluate(laws, steps, materials, keep=None):
        scale = 1 + list(laws.values())[0].endswith("3")  # seed 3's law is twice as far from the oracle
        return {("jelly", "shape", "nclaw_iso"): ev.Cell(mse=2e-8 * scale, blew_up=None, note=""),
                ("jelly", "shape", "oracle"): ev.Cell(mse=1e-8, blew_up=None, note="")}

    monkeypatch.setattr(ev, "train_missing", train_missing)
    monkeypatch.setattr(ev, "evaluate", evaluate)
    doc = tmp_path / "nclaw.md"
    assert ev.main(["--runs", str(tmp_path), "--materials", "jelly", "--models", "nclaw_iso", "oracle", "--steps",
                    "8", "--epochs", "1", "--seeds", "0", "3", "--doc", str(doc)]) == 0
    assert calls == [(tmp_path, 0), (tmp_path / "seed3", 3)]
    text = doc.read_text()
    assert "--epochs 1 --seeds 0 3 --doc" in text
    assert "| jelly | shape | 2.00e-08 | 1.00e-08 | 2 |" in text  # seed 0's table
    assert "| jelly | shape | 2 | 4 | 4 (seed 3) |" in text
    assert "nclaw_iso on jelly: within 3× of the oracle on all of" in text  # no MLP: its bar is not named
    assert "in **0 of 2 seeds**" in text  # the new-velocity tests were not evaluated: not met
    for bad in (["3", "3"], ["-1"]):
        with pytest.raises(SystemExit):
            ev.main(["--runs", str(tmp_path), "--seeds", *bad])
