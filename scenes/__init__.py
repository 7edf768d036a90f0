"""Scripted scenes. Each module defines:

    DESCRIPTION: one line for `simcore scenes`
    PARAMETERS:  {name: (default, one-line meaning)}, what `simcore scenes` shows
    DEFAULTS:    {name: default}, derived from PARAMETERS: the parameters `build` accepts (a small, fast
                 setting; each module's docstring names a larger one for quality), overridable with
                 `simcore run SCENE --set key=value`
    FRAMES, FRAME_DT: the default length of a run
    build(**overrides) -> simcore.Scene
"""

from __future__ import annotations

import ast
import importlib

NAMES = ("jelly_drop", "dam_break", "sand_collapse", "snowball", "plasticine_press", "mesh_drop")
DEFAULT = "jelly_drop"


def load(name: str):
    """The scene module called `name` (ValueError listing the scenes if there is none)."""
    if name not in NAMES:
        raise ValueError(f"unknown scene {name!r}; available: {', '.join(NAMES)}")
    return importlib.import_module(f"{__name__}.{name}")


def parameters(defaults: dict, overrides: dict, scene: str) -> dict:
    """`defaults` updated by `overrides`; unknown keys raise ValueError naming the valid ones."""
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        raise ValueError(f"scene {scene!r} has no parameter {', '.join(map(repr, unknown))}; "
                         f"its parameters are: {', '.join(sorted(defaults))}")
    return {**defaults, **overrides}


def parse_assignment(text: str) -> tuple[str, object]:
    """'key=value' → (key, value), value read as a Python literal when it is one (else a string)."""
    if "=" not in text:
        raise ValueError(f"--set expects key=value, got {text!r}")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key.isidentifier():
        raise ValueError(f"--set: {key!r} is not a parameter name")
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
    return key, value
