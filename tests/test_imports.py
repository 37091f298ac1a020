"""Importing any module of the package changes nothing (threads, files, logging, env vars, torch settings), no module
imports one that imports it back, and each layer imports only the layers below it."""

from __future__ import annotations

import ast
import functools
import json
import os
import subprocess
import sys

import pytest
from conftest import HANG_S, REPO

PROBE = r"""
import json, logging, os, pkgutil, threading, importlib, warnings
import torch, transformers
# Third-party imports set env vars and warning filters of their own (torch inductor's cache dir, scikit-learn's
# KMP_* vars): import them first so that only the package's own effects are compared.
import accelerate, gradio, gradio_client, numpy, pandas, safetensors, sklearn.metrics, tokenizers
import torch._inductor.config
before = {
    "threads": threading.active_count(), "env": dict(os.environ), "files": sorted(os.listdir(".")),
    "torch_threads": torch.get_num_threads(), "hf_verbosity": transformers.logging.get_verbosity(),
    "root_level": logging.getLogger().level, "root_handlers": len(logging.getLogger().handlers),
    "filters": len(warnings.filters),
}
import kobert_demo
names = [m.name for m in pkgutil.walk_packages(kobert_demo.__path__, "kobert_demo.")]
names = [name for name in names if name != "kobert_demo.__main__"]
for name in names:
    importlib.import_module(name)
after = {
    "threads": threading.active_count(), "env": dict(os.environ), "files": sorted(os.listdir(".")),
    "torch_threads": torch.get_num_threads(), "hf_verbosity": transformers.logging.get_verbosity(),
    "root_level": logging.getLogger().level, "root_handlers": len(logging.getLogger().handlers),
    "filters": len(warnings.filters),
}
print(json.dumps({"modules": names, "changed": {k: [before[k], after[k]] for k in before if before[k] != after[k]}}))
"""


@pytest.mark.slow
def test_importing_every_module_has_no_side_effects(tmp_path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=tmp_path, capture_output=True, text=True, timeout=HANG_S,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.splitlines()[-1])
    assert len(report["modules"]) > 25 and "kobert_demo.app.ui.logs_tab" in report["modules"]
    assert report["changed"] == {}


@functools.cache
def import_graph() -> dict[str, set[str]]:
    """Each module of the package -> the package's modules it names in any import: module-level, TYPE_CHECKING and
    inside functions alike (a lazy import still makes a circle for whoever reads the code)."""
    files = {}
    for path in (REPO / "kobert_demo").rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for module, path in files.items():
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        named = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                named.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = ".".join(package[: len(package) - node.level + 1] if node.level else [])
                base = ".".join(filter(None, [base, node.module]))
                # `from package import name`: the submodule when name is one, else the package itself.
                for alias in node.names:
                    named.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else base)
        graph[module] = {name for name in named if name in files and name != module}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each import circle once, as the path from a module back to itself."""
    found, done = [], set()

    def visit(module: str, path: list[str]) -> None:
        for other in sorted(graph[module]):
            if other in path:
                found.append(path[path.index(other) :] + [other])
            elif other not in done:
                visit(other, [*path, other])
        done.add(module)

    for module in sorted(graph):
        if module not in done:
            visit(module, [module])
    return found


def test_the_package_has_no_import_circle() -> None:
    """No module imports one that imports it back. There were two: explain.py <-> predict.py (the deletion check,
    which takes a Predictor, now lives in faithfulness.py) and ui/logs_tab.py <-> ui/predict_tab.py (what both use
    now lives in ui/shared.py). The graph counts every import, lazy and TYPE_CHECKING ones too: a module that does
    not name the other, even through a third, cannot load it when it runs."""
    graph = import_graph()
    assert "kobert_demo.app.ui.shared" in graph["kobert_demo.app.ui.logs_tab"]  # the graph sees relative imports
    assert circles(graph) == []


# --- layers: each folder of the package imports only the folders below it --------------------------------------------
LAYERS = ("basics", "engine", "serving", "app", "tools")
# The one way up: the CLI's `bench` sub-command runs the benchmark, imported when that sub-command runs.
LAZY_TOOL_IMPORTS = {("kobert_demo.app.cli", "kobert_demo.tools.bench")}


def layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else None


def test_every_module_lives_in_a_layer() -> None:
    """Nothing but the package's entry points sits outside the five folders."""
    outside = {module for module in import_graph() if layer(module) is None}
    assert outside == {"kobert_demo", "kobert_demo.__main__"}


def test_each_layer_imports_only_the_layers_below_it() -> None:
    """basics (torch-free) <- engine <- serving <- app; tools may use all of them and the product never uses tools,
    except the CLI's bench sub-command."""
    upward = {
        (module, other)
        for module, named in import_graph().items()
        for other in named
        if layer(module) is not None and layer(other) is not None and layer(other) > layer(module)
    }
    assert upward == LAZY_TOOL_IMPORTS


def test_the_cli_imports_the_bench_only_when_its_sub_command_runs() -> None:
    """A tool the product names is imported inside a function, never when the CLI or the app is imported."""
    for module, tool in LAZY_TOOL_IMPORTS:
        tree = ast.parse((REPO / (module.replace(".", "/") + ".py")).read_text(encoding="utf-8"))
        top_level = {node.module for node in tree.body if isinstance(node, ast.ImportFrom)}
        top_level |= {alias.name for node in tree.body if isinstance(node, ast.Import) for alias in node.names}
        assert tool not in top_level and tool.rpartition(".")[0] not in top_level


@pytest.mark.slow
def test_a_layer_loads_nothing_it_does_not_need() -> None:
    """In one fresh interpreter: every module of basics imports without torch, transformers or Gradio; then every
    module of the engine and serving, without Gradio (the training core is plain Python for every front-end)."""
    probe = """
import importlib, json, pkgutil, sys

def load(layer):
    package = importlib.import_module("kobert_demo." + layer)
    for found in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        importlib.import_module(found.name)

loaded = {}
for layers, absent in [
    (["basics"], ["torch", "transformers", "gradio", "kobert_demo.engine", "kobert_demo.tools"]),
    (["engine", "serving"], ["gradio", "kobert_demo.app", "kobert_demo.tools"]),
]:
    for layer in layers:
        load(layer)
    loaded["+".join(layers)] = sorted(name for name in absent if name in sys.modules)
print(json.dumps(loaded))
"""
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=HANG_S,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.splitlines()[-1]) == {"basics": [], "engine+serving": []}
