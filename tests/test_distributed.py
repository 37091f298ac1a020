"""`torchrun --nproc_per_node 2 -m kobert_demo train`: two CPU processes (gloo) that really cooperate."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import DATA, HANG_S, REPO

from kobert_demo.basics.runs import Run

# Two torchrun processes per test, 18 to 36 s each on 2 cores: behind `extra` (CI runs them with -m extra), whole.
pytestmark = pytest.mark.extra

TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]  # what `torchrun` runs


def train(tmp_path, name: str, launcher: list[str], model: str = "tiny", extra: tuple[str, ...] = ()) -> Run:
    out = tmp_path / name
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    args = ["train", str(DATA / "nsmc/train.tsv"), "--test", str(DATA / "nsmc/test.tsv")]
    args += ["--model", model, "--epochs", "3", "--seed", "7", "--quiet", "--out", str(out), *extra]
    done = subprocess.run([*launcher, *args], env=env, capture_output=True, text=True, timeout=HANG_S)
    assert done.returncode == 0, done.stderr[-3000:]
    return Run(out)


def test_two_processes_cooperate_and_match_one(tmp_path):
    two = train(tmp_path, "two", [*TORCHRUN, "--nproc_per_node", "2", "--master_port", "29533", "-m", "kobert_demo"])
    one = train(tmp_path, "one", [sys.executable, "-m", "kobert_demo"])

    events = two.events()
    starts = [e for e in events if e.type == "start"]
    assert len(starts) == 1 and starts[0].processes == 2  # one writer, and both joined the process group
    assert two.config()["processes"] == 2
    assert "processes: 2" in (two.path / "README.md").read_text(encoding="utf-8")
    assert two.status().state == "done" and two.has_model

    # The global batch stays 64: both runs take the same number of steps, and every test row counts once.
    steps = lambda run: [e for e in run.events() if e.type == "step"]  # noqa: E731
    assert len(steps(two)) == len(steps(one))
    assert steps(two)[-1].step == steps(one)[-1].step
    for epoch in (e for e in events if e.type == "epoch"):
        assert epoch.test["n"] == 300
        assert sum(map(sum, epoch.test["confusion_matrix"])) == 300
    assert abs(two.final_metrics()["accuracy"] - one.final_metrics()["accuracy"]) < 0.08


def test_two_processes_train_a_roberta(tmp_path, family_folders):
    """A non-BERT family under torchrun: both processes train the same padding-free RoBERTa, one writes the run."""
    from kobert_demo.serving.predict import Predictor

    folder = str(family_folders["roberta"])
    launcher = [*TORCHRUN, "--nproc_per_node", "2", "--master_port", "29534", "-m", "kobert_demo"]
    # Five epochs: after three, whether this tiny RoBERTa left chance hung on the seed and the dropout masks.
    two = train(tmp_path, "two", launcher, folder, ("--lr", "2e-3", "--precision", "fp32", "--epochs", "5"))
    starts = [e for e in two.events() if e.type == "start"]
    assert len(starts) == 1 and starts[0].processes == 2 and starts[0].forward == "padding-free"
    assert two.status().state == "done" and two.has_model
    for epoch in (e for e in two.events() if e.type == "epoch"):
        assert epoch.test["n"] == 300  # every test row counted once across the two processes
    assert two.final_metrics()["accuracy"] > 0.55  # chance: 0.50
    assert Predictor.load(two.path).predict(["정말 재미있는 영화였어요"])[0].keys() == {"0", "1"}
