"""The package as a user installs it: `pip install .` builds a wheel with every module, the KoBERT files and the
`kobert-demo` command, and declares the same dependencies as requirements.txt (what a Space installs)."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest
import tomllib
from conftest import HANG_S, REPO, VECTORS
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from kobert_demo.tools.driving import free_port

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def requirement_lines(path: Path) -> list[str]:
    """requirements.txt's requirements, comments and blanks dropped, spaces removed."""
    lines = (line.split("#")[0].replace(" ", "") for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line]


def normalized(requirement: str) -> tuple[str, str]:
    """(name, specifiers) in one spelling: `gradio<7,>=6.31` and `gradio>=6.31,<7` are the same requirement."""
    parsed = Requirement(requirement)
    return parsed.name.lower().replace("_", "-"), str(SpecifierSet(str(parsed.specifier)))


def test_requirements_txt_is_pyprojects_dependency_list() -> None:
    assert requirement_lines(REPO / "requirements.txt") == PYPROJECT["project"]["dependencies"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel `pip install .` would install, built from a copy of the sources (the repo stays clean)."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md", "app.py"):
        shutil.copy(REPO / name, source)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    shutil.copytree(REPO / "kobert_demo", source / "kobert_demo", ignore=ignore)
    out = tmp_path_factory.mktemp("wheel")
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", out, source]
    done = subprocess.run(command, capture_output=True, text=True, timeout=HANG_S)
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = out.glob("kobert_demo-*.whl")
    return wheel


def test_wheel_holds_every_module_and_the_kobert_files(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {str(p.relative_to(REPO).as_posix()) for p in (REPO / "kobert_demo").rglob("*.py")}
    assert modules and modules <= names, sorted(modules - names)
    for folder in ("basics", "engine", "serving", "app", "app/ui", "tools"):  # `packages = ["kobert_demo"]` left ui out
        assert f"kobert_demo/{folder}/__init__.py" in names
    kobert_files = {f"kobert_demo/kobert_files/{p.name}" for p in (REPO / "kobert_demo" / "kobert_files").iterdir()}
    assert (
        {
            "kobert_demo/kobert_files/tokenizer_78b3253a26.model",
            "kobert_demo/kobert_files/kobertvocab_f38b8a4d6d.json",
            "kobert_demo/kobert_files/test_vectors.json",
            "kobert_demo/kobert_files/LICENSE",
        }
        <= kobert_files
        <= names
    )


def test_wheel_declares_the_dependencies_and_the_command(wheel: Path) -> None:
    archive = zipfile.ZipFile(wheel)
    info = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
    metadata = archive.read(info).decode()
    requires = [line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    runtime = {normalized(r) for r in requires if "extra ==" not in r}
    assert runtime == {normalized(r) for r in PYPROJECT["project"]["dependencies"]}
    assert any(r.startswith("pytest") and 'extra == "dev"' in r for r in requires)
    entry_points = archive.read(info.replace("METADATA", "entry_points.txt")).decode()
    assert re.search(r"^kobert-demo = kobert_demo\.app\.cli:main$", entry_points, re.M)


# The wheel installed in a fresh venv, and its command run as a user runs it: -m extra (CI), not the README's command.
@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory) -> Path:
    """A new venv with the wheel installed; its dependencies come from this environment (no network)."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", venv], check=True, timeout=HANG_S)
    python = venv / "bin" / "python"
    install = [python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel]
    # Without PYTHONPATH: pip would take a checkout on it (with its egg-info) for the package already installed.
    done = subprocess.run(install, capture_output=True, text=True, timeout=HANG_S, env=installed_env())
    assert done.returncode == 0, done.stderr[-2000:]
    return venv / "bin"


def installed_env() -> dict[str, str]:
    """No PYTHONPATH: the command must run from the installed wheel, not from this checkout."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return {**env, "HF_HUB_OFFLINE": "1", "PYTHONIOENCODING": "utf-8"}


@pytest.mark.extra
def test_installed_command_tokenizes_offline_from_the_wheel(installed: Path, tmp_path: Path) -> None:
    where = subprocess.run(
        [installed / "python", "-c", "import kobert_demo; print(kobert_demo.__file__)"],
        cwd=tmp_path, env=installed_env(), capture_output=True, text=True, timeout=HANG_S,
    )  # fmt: skip
    assert where.stdout.startswith(str(installed.parent)), where.stdout + where.stderr
    vector = next(v for v in VECTORS if v["mode"] == "gluonnlp")
    done = subprocess.run(
        [installed / "kobert-demo", "tokenize", "--json", vector["text"]],
        cwd=tmp_path, env=installed_env(), capture_output=True, text=True, timeout=HANG_S,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["ids"] == [vector["ids"]]


@pytest.mark.extra
def test_installed_command_trains_and_predicts(installed: Path, tmp_path: Path) -> None:
    train = REPO / "tests" / "data" / "movie_ratings" / "train.tsv"
    test = REPO / "tests" / "data" / "movie_ratings" / "test.tsv"
    command = [installed / "kobert-demo", "train", train, "--test", test, "--model", "tiny", "--epochs", "1", "--quiet"]
    done = subprocess.run(
        [*command, "--out", "run"], cwd=tmp_path, env=installed_env(), capture_output=True, text=True, timeout=HANG_S
    )
    assert done.returncode == 0, done.stderr[-2000:]
    predicted = subprocess.run(
        [installed / "kobert-demo", "predict", "run", "--json", "--", "-_- 별로"],
        cwd=tmp_path, env=installed_env(), capture_output=True, text=True, timeout=HANG_S,
    )  # fmt: skip
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    assert json.loads(predicted.stdout)["labels"] == ["긍정", "부정", "중립"]


@pytest.mark.extra
def test_installed_command_serves_the_app(installed: Path, tmp_path: Path) -> None:
    port = free_port()
    env = {**installed_env(), "KOBERT_DEMO_RUNS": str(tmp_path / "runs")}
    server = subprocess.Popen(
        [installed / "kobert-demo", "app", "--port", str(port)],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline, status = time.time() + HANG_S, None
        while time.time() < deadline and server.poll() is None:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/", timeout=HANG_S).status_code
                break
            except httpx.TransportError:
                time.sleep(0.5)
        assert status == 200, server.stderr.read() if server.poll() is not None else "no answer"
        assert "KoBERT" in httpx.get(f"http://127.0.0.1:{port}/config", timeout=HANG_S).text
    finally:
        server.terminate()
        server.wait(timeout=HANG_S)


@pytest.mark.extra
def test_installed_command_has_every_sub_command_and_benches_a_users_file(installed: Path, tmp_path: Path) -> None:
    """Every sub-command answers --help from the wheel, and bench (tooling that ships) runs on a data file the user
    names: an installed package has no tests/data to fall back on."""
    from kobert_demo.app.cli import build_parser

    commands = sorted(build_parser()[1])
    assert {"train", "predict", "bench", "app", "job"} <= set(commands)
    for command in commands:
        done = subprocess.run(
            [installed / "kobert-demo", command, "--help"],
            cwd=tmp_path, env=installed_env(), capture_output=True, text=True, timeout=HANG_S,
        )  # fmt: skip
        assert done.returncode == 0 and "usage:" in done.stdout, (command, done.stderr[-2000:])
    rows = tmp_path / "mine.tsv"
    rows.write_text(
        "text\tlabel\n" + "".join(f"{t}\t{i % 2}\n" for i, t in enumerate(["좋아요", "별로", "최고", "싫다"] * 4)),
        encoding="utf-8",
    )
    done = subprocess.run(
        [installed / "kobert-demo", "bench", "--json", "--size", "tiny", "--paths", "predict_fp32", "--data", rows,
         "--train-rows", "4", "--batch-size", "4", "--latency-sentences", "3", "--predict-rows", "4"],
        cwd=tmp_path, env=installed_env(), capture_output=True, text=True, timeout=HANG_S,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["ours"]["predict_fp32"]["backend"] == "torch"


README = (REPO / "README.md").read_text(encoding="utf-8")


def test_every_module_the_readme_runs_or_imports_exists() -> None:
    """`python -m kobert_demo.X` and `from kobert_demo.X import Y` in the README name modules and names that exist:
    a move of a module (the #24 layout) updates the README too."""
    import importlib

    modules = re.findall(r"python -m (kobert_demo(?:\.\w+)+)", README)
    imports = re.findall(r"from (kobert_demo(?:\.\w+)+) import ([\w, ]+)", README)
    assert modules and imports
    for module in modules:
        assert importlib.util.find_spec(module) is not None, f"README runs {module}, which does not exist"
    for module, names in imports:
        loaded = importlib.import_module(module)
        for name in names.split(","):
            assert hasattr(loaded, name.strip()), f"README imports {name.strip()} from {module}, which has none"


@pytest.mark.slow
def test_the_readmes_python_example_runs(tmp_path, monkeypatch, capsys) -> None:
    """The README's "Python" section, run as written in a folder holding the train.tsv and test.tsv it reads."""
    block = re.search(r"## Python\n\n```python\n(.*?)```", README, re.S)
    assert block, "the README has no Python section with a code block"
    for name in ("train.tsv", "test.tsv"):
        shutil.copy(REPO / "tests" / "data" / "nsmc" / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    exec(compile(block.group(1), "README.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("1 ")  # the epoch and its test accuracy
    (probabilities,) = ast.literal_eval(printed[-1])  # one sentence's probability per class
    assert set(probabilities) == {"0", "1"} and abs(sum(probabilities.values()) - 1) < 1e-5
    assert (tmp_path / "runs" / "demo" / "model").is_dir()
