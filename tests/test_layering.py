"""Imports flow one way: the layering rules of DEVELOPERS.md, checked by parsing every module's imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "rtmprune"

# Every module and package directly under rtmprune/; a new one must take its place in the tables below.
UNITS = {
    "errors", "files", "jsonlog", "keypoints", "models", "data", "evaluation", "complexity", "pruning",
    "engine", "deploy", "commands", "cli", "tracebacks",
}
ENTRY = {"commands", "cli"}  # only the CLI wires everything together

# unit -> our units it must never import
FORBIDDEN: dict[str, set[str]] = {
    "errors": UNITS - {"errors"},
    "files": UNITS - {"files", "errors"},
    "jsonlog": UNITS - {"jsonlog", "files", "errors"},
    "keypoints": UNITS - {"keypoints", "errors", "files"},
    "models": {"data", "evaluation", "engine", "pruning", "deploy"} | ENTRY,
    "data": {"models", "engine", "pruning", "deploy", "evaluation"} | ENTRY,
    "evaluation": {"engine", "pruning", "deploy"} | ENTRY,
    "complexity": {"models", "data", "evaluation", "engine", "pruning", "deploy"} | ENTRY,
    "pruning": {"models", "data", "evaluation", "engine", "deploy"} | ENTRY,
    # deploy exports, times and compares whatever model it is handed; the engine's recipes call it, not back
    "deploy": {"engine"} | ENTRY,
    "engine": ENTRY,
}

# unit -> third-party modules it must never import: the ONNX Runtime path runs where torch is not installed
FORBIDDEN_LIBRARIES: dict[str, set[str]] = {
    "keypoints": {"torch"},
    "deploy/ort_predict": {"torch"},
    "deploy/latency": {"torch"},  # timing runs on any machine with onnxruntime
    "deploy/compare": {"torch"},
    "deploy/machine": {"torch"},  # ort_predict imports it
}


def _our_imports(source: str, where: tuple[str, ...]) -> set[str]:
    """Top-level rtmprune subpackages imported by a file at rtmprune/<where...> (absolute or relative)."""
    tree = ast.parse(source)
    depth = len(where) - 1  # how deep below rtmprune/ the file sits
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(where[:-1])[: depth - node.level + 1]
                module = ".".join(["rtmprune", *base, *(node.module.split(".") if node.module else [])])
                names = [module] if node.module or base else [f"rtmprune.{a.name}" for a in node.names]
            else:
                names = [node.module or ""]
                if node.module == "rtmprune":
                    names = [f"rtmprune.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "rtmprune" and len(parts) > 1:
                found.add(parts[1])
    return found


def _library_imports(source: str) -> set[str]:
    """Top-level names of the absolute imports of a file (``import torch.nn`` -> ``torch``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module.split(".")[0])
    return found


def _files_of(unit: str) -> list[Path]:
    if (PACKAGE / unit).is_dir():
        return sorted((PACKAGE / unit).rglob("*.py"))
    return [PACKAGE / f"{unit}.py"]


def test_every_unit_is_in_the_table() -> None:
    """A new package or top-level module must be given its place in the layers."""
    present = {p.stem for p in PACKAGE.iterdir() if p.suffix == ".py" or (p / "__init__.py").is_file()}
    assert present - {"__init__", "__main__"} == UNITS


@pytest.mark.parametrize("unit", sorted(FORBIDDEN))
def test_imports_flow_one_way(unit: str) -> None:
    files = _files_of(unit)
    assert files and all(f.exists() for f in files), f"rtmprune.{unit} is missing"
    bad = {
        f"{f.relative_to(PACKAGE)} imports rtmprune.{dep}"
        for f in files
        for dep in _our_imports(f.read_text(encoding="utf-8"), f.relative_to(PACKAGE).parts) & FORBIDDEN[unit]
    }
    assert not bad, sorted(bad)


@pytest.mark.parametrize("unit", sorted(FORBIDDEN_LIBRARIES))
def test_forbidden_libraries(unit: str) -> None:
    files = _files_of(unit)
    assert files and all(f.exists() for f in files), f"rtmprune.{unit} is missing"
    bad = {
        f"{f.relative_to(PACKAGE)} imports {lib}"
        for f in files
        for lib in _library_imports(f.read_text(encoding="utf-8")) & FORBIDDEN_LIBRARIES[unit]
    }
    assert not bad, sorted(bad)


def test_checker_sees_relative_and_absolute_imports() -> None:
    # Guard the guard: each import form must be resolved to the subpackage it reaches.
    source = "from ..models import build_model\nimport rtmprune.engine.train\nfrom rtmprune import deploy\n"
    assert _our_imports(source, ("pruning", "probe.py")) == {"models", "engine", "deploy"}
    assert _our_imports("from . import masks\n", ("pruning", "probe.py")) == {"pruning"}
    source = "import torch.nn as nn\nfrom onnx import helper\nfrom . import x\n"
    assert _library_imports(source) == {"torch", "onnx"}
