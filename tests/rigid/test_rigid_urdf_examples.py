"""The URDF quadruped and Dzhanibekov examples run from the command line (--quick) and print what their
laws and goals say they should."""

import importlib.util
import pathlib
import re
import sys

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"


def run_main(name, monkeypatch, capsys):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(sys, "argv", [f"{name}.py", "--quick"])
    module.main()
    return capsys.readouterr().out


def number(pattern, text):
    match = re.search(pattern, text)
    assert match, (pattern, text)
    return float(match.group(1))


def test_quadruped_example_stands_and_trots_forward(monkeypatch, capsys):
    """The loaded quadruped stands (torso within 4 mm of the stance height) and its open-loop trot carries
    the torso forward (+x) by more than 1 cm in 0.2 s without falling (torso above 0.2 m), the joints held
    together to < 1e-8 m throughout."""
    out = run_main("rigid_quadruped", monkeypatch, capsys)
    assert "13 links, 12 joints, 8 actuated, 4.20 kg" in out
    height = number(r"stand .*?torso height ([\d.]+) m", out)
    stance = number(r"\(stance ([\d.]+) m\)", out)
    assert abs(height - stance) < 4e-3
    assert number(r"trot .*?torso height ([\d.]+)–", out) > 0.2
    assert number(r"forward distance ([+-][\d.]+) m", out) > 0.01
    violations = [float(v) for v in re.findall(r"joint violation ([\d.e+-]+) m", out)]
    assert len(violations) == 2 and max(violations) < 1e-8


def test_dzhanibekov_example_flips_and_conserves(monkeypatch, capsys):
    """The intermediate-axis spin reverses within 1.2 s (Ω = 20 rad/s: first flip at 0.99 s) while E and L
    stay constant to round-off; the minor- and major-axis spins keep their sign."""
    out = run_main("rigid_dzhanibekov", monkeypatch, capsys)
    flips = re.search(r"sign changes at t = \[([^\]]*)\]", out).group(1)
    assert flips.strip(), out
    assert 0.95 < float(flips.split(",")[0]) < 1.05
    assert number(r"energy drift ([\d.e+-]+) relative", out) < 1e-9
    assert number(r"\|L − L₀\| / \|L₀\| ([\d.e+-]+)", out) < 1e-9
    assert out.count("keeps its sign: True") == 2
