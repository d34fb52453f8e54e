"""House rules read from the package's source (ast): library code raises only the kit's errors,
and no function is over 60 lines."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "sellakit"
#: Built-in errors a person gets as a traceback; the kit's own (sellakit/errors.py) subclass them.
BUILTIN_ERRORS = ("ValueError", "KeyError", "RuntimeError")
MAX_LINES = 60


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path.relative_to(PACKAGE.parent), ast.parse(path.read_text(), filename=str(path))


def _raised_name(node: ast.Raise) -> str | None:
    exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
    return exc.id if isinstance(exc, ast.Name) else None


def test_library_code_raises_only_the_kits_errors():
    offenders = [f"{path}:{node.lineno} raises {_raised_name(node)}"
                 for path, tree in _modules() if path.name != "errors.py"
                 for node in ast.walk(tree)
                 if isinstance(node, ast.Raise) and _raised_name(node) in BUILTIN_ERRORS]
    assert not offenders, "raise a sellakit.errors class instead:\n" + "\n".join(offenders)


def test_no_function_is_over_60_lines():
    offenders = [f"{path}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
                 for path, tree in _modules() for node in ast.walk(tree)
                 if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                 and node.end_lineno - node.lineno + 1 > MAX_LINES]
    assert not offenders, "split these:\n" + "\n".join(offenders)
