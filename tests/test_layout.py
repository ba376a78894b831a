"""The package's import graph is the data flow: data → vision → generation → training / evaluation →
pipeline → apps (generation, the batched decoding engine, serves both training and evaluation).

One refinement: the clip decoder (`videokr.vision.decode`, with the frame settings it defaults to) sits
below the data layer, because building a dataset probes and test-decodes every clip; it imports nothing
of the project but the foundation, so the data layer still needs no model, processor or torch.

Read from the source with `ast` (every import, including those inside functions), so a lazy import that
hides a cycle or an upward dependency is caught as well as a top-level one.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Each layer and the layers it may import (its own included). Anything not listed may not be imported.
LAYERS: dict[str, set[str]] = {
    "foundation": {"foundation"},  # videokr, videokr.errors, videokr.atomic
    "decode": {"foundation", "decode"},  # videokr.vision.decode, videokr.vision.sampling
    "data": {"foundation", "decode", "data"},
    "vision": {"foundation", "decode", "data", "vision"},
    "models": {"foundation", "data", "models"},
    "sample": {"foundation", "decode", "data", "sample"},
    "generation": {"foundation", "decode", "data", "vision", "generation"},
    "training": {"foundation", "decode", "data", "vision", "generation", "training"},
    "evaluation": {"foundation", "decode", "data", "vision", "generation", "evaluation"},
    "pipeline": {"foundation", "decode", "data", "vision", "generation", "evaluation", "pipeline"},
    "app": set(),  # filled below: everything
}

LAYERS["app"] = set(LAYERS) | {"app"}


def layer(module: str) -> str:
    parts = module.split(".")
    if parts[0] in ("videokr_sft", "videokr_rl", "videokr_eval"):
        return "data"  # the dataset packages are specs over the data layer
    if len(parts) == 1 or parts[1] in ("errors", "atomic"):
        return "foundation"
    if parts[1] in ("cli", "demo"):
        return "app"
    if module in ("videokr.vision.decode", "videokr.vision.sampling"):
        return "decode"
    return parts[1]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_imports(path: Path) -> set[str]:
    """Every ``videokr…`` module `path` imports, resolving ``from package import module``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            for alias in node.names:  # `from videokr.data import prompts` imports a module
                candidate = ROOT / Path(*node.module.split("."), alias.name)
                if candidate.with_suffix(".py").exists() or (candidate / "__init__.py").exists():
                    found.add(f"{node.module}.{alias.name}")
    return {name for name in found if name.split(".")[0].startswith("videokr")}


def graph() -> dict[str, set[str]]:
    files = [
        p
        for package in ("videokr", "videokr_sft", "videokr_rl", "videokr_eval")
        for p in (ROOT / package).rglob("*.py")
    ]
    return {module_name(path): project_imports(path) for path in files}


def test_no_module_imports_a_layer_above_its_own() -> None:
    upward = [
        f"{module} ({layer(module)}) imports {target} ({layer(target)})"
        for module, targets in graph().items()
        for target in targets
        if layer(target) not in LAYERS[layer(module)]
    ]
    assert not upward, "\n".join(upward)


def test_evaluation_does_not_import_training() -> None:
    evaluation = {m: t for m, t in graph().items() if m.startswith("videokr.evaluation")}
    assert evaluation, "no evaluation modules found"
    assert not [
        m for m, targets in evaluation.items() if any(t.startswith("videokr.training") for t in targets)
    ]


def test_the_module_graph_has_no_cycle() -> None:
    edges = graph()
    modules = set(edges)
    state: dict[str, int] = defaultdict(int)  # 0 new, 1 on the path, 2 done
    cycles: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(edges.get(module, ())):
            if target not in modules or target == module:
                continue
            if state[target] == 1:
                cycles.append([*path[path.index(target) :], target])
            elif state[target] == 0:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(modules):
        if state[module] == 0:
            visit(module, [module])
    # A package's __init__ re-exporting its modules is not a cycle of dependencies.
    real = [c for c in cycles if not any(c[i] == c[i + 1].rsplit(".", 1)[0] for i in range(len(c) - 1))]
    assert not real, "\n".join(" → ".join(c) for c in real)


@pytest.mark.parametrize("pattern", ["DESIGN.md"])
def test_code_names_no_document_outside_the_repository(pattern: str) -> None:
    files = [p for p in ROOT.rglob("*") if p.suffix in (".py", ".md", ".yaml") and ".venv" not in p.parts]
    files = [p for p in files if p != Path(__file__).resolve()]
    assert not [str(p.relative_to(ROOT)) for p in files if pattern in p.read_text(encoding="utf-8")]


def test_the_data_layer_and_the_decoder_import_no_model_stack() -> None:
    """A dataset can be built and published on a machine without the training stack's weight: the data
    layer and the clip decoder (which the build uses) import neither torch nor transformers."""
    import subprocess
    import sys

    code = (
        "import importlib, pkgutil, sys, videokr.data as d, videokr.vision.decode; "
        "[importlib.import_module('videokr.data.' + m.name) for m in pkgutil.iter_modules(d.__path__)]; "
        "print(sorted(m for m in ('torch', 'transformers', 'trl', 'lighteval') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
