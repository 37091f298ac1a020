"""Importing any module of the package changes nothing: threads, files, logging, env vars, torch settings."""

from __future__ import annotations

import ast
import json
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
    assert len(report["modules"]) > 25 and "kobert_demo.ui.logs_tab" in report["modules"]
    assert report["changed"] == {}


def imports_of(module: str) -> set[str]:
    """The package's modules that `module` names in any import: module-level, TYPE_CHECKING and inside functions."""
    path = REPO / (module.replace(".", "/") + ".py")
    package = module.split(".")[:-1]
    named = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            named.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1] + [node.module or ""]).strip(".")
            named.update(f"{base}.{alias.name}" for alias in node.names)
            named.add(base)
    return {name for name in named if name.startswith("kobert_demo.")}


def test_explain_never_imports_predict() -> None:
    """explain.py <-> predict.py was a circle: `Predictor.explain` imports explain.py, and the deletion check, which
    takes a Predictor, lives in faithfulness.py."""
    assert not {name for name in imports_of("kobert_demo.explain") if name.startswith("kobert_demo.predict")}
    assert not {name for name in imports_of("kobert_demo.predict") if name.startswith("kobert_demo.faithfulness")}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("module", "absent"),
    [("kobert_demo.explain", "kobert_demo.predict")],
)
def test_importing_a_module_loads_none_that_imports_it(module: str, absent: str) -> None:
    """A fresh interpreter importing `module` does not load `absent` (which imports `module`)."""
    probe = f"import sys, {module}; print({absent!r} in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=HANG_S, env={"PYTHONPATH": str(REPO)}
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-1] == "False"
