"""Every Python code block of README.md runs as pasted (issue 12, defect 2).

Each ```python block is executed on its own, in a fresh namespace, with a temporary working directory (so
the `out/...` files it writes land there). A block that calls `.backward()` must leave a finite gradient
on every leaf tensor and module parameter it defines (the README says "E.grad is filled"), and at least
one of them non-zero; every out/ path it names as a string must exist afterwards. Blocks fenced as bash (or any other language) are not Python and are not run."""

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest
import torch

import simcore as sc

README = Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(r"^```([\w+-]*)[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
PYTHON = {"python", "py", "python3"}


def code_blocks() -> list[tuple[str, int, str]]:
    """(language, line number of the opening fence, code) of every fenced block of README.md."""
    text = README.read_text(encoding="utf-8")
    return [(m.group(1).lower(), text.count("\n", 0, m.start()) + 1, m.group(2)) for m in FENCE.finditer(text)]


PYTHON_BLOCKS = [(line, code) for lang, line, code in code_blocks() if lang in PYTHON]


@pytest.fixture(scope="module", autouse=True)
def restore_backend():
    """The blocks call sc.init with their own precision; later test modules start from CPU f32."""
    yield
    sc.init("cpu", "f32")


def test_readme_has_python_blocks_and_none_unlabelled():
    """The extraction finds the README's snippets (so the test below cannot pass on nothing), and no
    unlabelled block holds Python (it would escape the test)."""
    assert len(PYTHON_BLOCKS) >= 5
    for lang, line, code in code_blocks():
        if lang == "":
            with pytest.raises(SyntaxError):
                compile(code, f"README.md:{line}", "exec")


def _leaves(namespace: dict) -> dict[str, torch.Tensor]:
    """Leaf tensors that require grad, and the parameters of modules, named as the block named them."""
    found = {}
    for name, value in namespace.items():
        if isinstance(value, torch.Tensor) and value.requires_grad and value.is_leaf:
            found[name] = value
        elif isinstance(value, torch.nn.Module):
            found.update({f"{name}.{p}": t for p, t in value.named_parameters()})
    return found


@pytest.mark.parametrize("line, code", PYTHON_BLOCKS, ids=[f"README.md:{line}" for line, _ in PYTHON_BLOCKS])
def test_readme_block_runs_as_pasted(line, code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__main__"}
    exec(compile(code, f"README.md:{line}", "exec"), namespace)
    if ".backward()" in code:
        leaves = _leaves(namespace)
        assert leaves, "the block calls backward() but defines no tensor or module with gradients"
        for name, tensor in leaves.items():
            assert tensor.grad is not None, f"{name}.grad is None after backward()"
            assert torch.isfinite(tensor.grad).all(), f"{name}.grad is not finite"
        assert any(float(t.grad.abs().max()) > 0 for t in leaves.values()), "every gradient is zero"
    for path in _output_paths(code):  # every file the block names was written (a directory: non-empty)
        target = tmp_path / path
        assert target.exists() and (target.is_file() or any(target.iterdir())), f"{path} was not written"


def _output_paths(code: str) -> list[str]:
    """String literals (not comments) naming files under out/, e.g. "out/jelly.npz"."""
    strings = [t.string for t in tokenize.generate_tokens(io.StringIO(code).readline) if t.type == tokenize.STRING]
    return [ast.literal_eval(s) for s in strings if re.match(r"^[\"']out/", s)]
