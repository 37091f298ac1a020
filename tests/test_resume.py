"""engine.resume: checkpoints written whole, every random state kept, a killed run resumed to where an uninterrupted
one ends, and "Continue training" from a finished run's model."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from conftest import HANG_S, REPO
from safetensors.torch import load_file
from torch import nn

from kobert_demo.basics import files
from kobert_demo.basics.config import KOBERT_HUB_ID, KOBERT_LR, TINY_LR, TrainConfig
from kobert_demo.basics.data import Splits
from kobert_demo.basics.events import DoneEvent, ErrorEvent, NoticeEvent, StepEvent
from kobert_demo.basics.runs import CHECKPOINT_DIR, Run, is_resumable, open_run
from kobert_demo.engine import train as train_module
from kobert_demo.engine.classifier import dropout_generator, use_fast_dropout
from kobert_demo.engine.loading import load_classifier
from kobert_demo.engine.resume import rng_state, set_rng_state
from kobert_demo.engine.train import train
from kobert_demo.serving.predict import Predictor


def config(**changes) -> TrainConfig:
    """tiny, fp32, batches of 16: 10 steps an epoch on validated(), 3 epochs, evaluated every 4 steps too."""
    settings = {"model": "tiny", "epochs": 3, "batch_size": 16, "precision": "fp32", "seed": 5, "eval_steps": 4}
    return TrainConfig(**{**settings, **changes})


@pytest.fixture(scope="module")
def validated(small_splits) -> Splits:
    """small_splits with every fifth training row held out for validation: 160 rows to train on, 40 to validate."""
    rows = list(zip(small_splits.train_texts, small_splits.train_labels))
    train, valid = [r for i, r in enumerate(rows) if i % 5], rows[::5]
    held_out = {
        "train_texts": [t for t, _ in train], "train_labels": [y for _, y in train],
        "valid_texts": [t for t, _ in valid], "valid_labels": [y for _, y in valid], "valid_source": "split",
    }  # fmt: skip
    return Splits(**{**asdict(small_splits), **held_out})


# --- written whole ------------------------------------------------------------------------------------------------
KILL_POINTS = ("body", "sync", "exchange", "aside", "cleanup")


def _write_version(target: Path, version: str, kill_at: str | None) -> None:
    """In a forked child: write target as version through files.atomic_folder, dying (os._exit, no cleanup, as a
    kill) at kill_at."""
    die = lambda *_, **__: os._exit(9)  # noqa: E731
    real_replace = os.replace
    calls = []

    def replace_then_die(*args):
        calls.append(args)
        if len(calls) == 2:  # the target is aside, the new folder not yet in its place
            die()
        real_replace(*args)

    if kill_at == "sync":
        files.sync_folder = die
    elif kill_at == "exchange":
        files._exchange = die
    elif kill_at == "aside":
        files._exchange = lambda *_: False
        files.os.replace = replace_then_die
    elif kill_at == "cleanup":
        files.shutil.rmtree = die
    with files.atomic_folder(target) as folder:
        (folder / "a").write_text(version)
        if kill_at == "body":
            die()
        (folder / "b").write_text(version)


@pytest.mark.parametrize("kill_at", KILL_POINTS)
def test_a_kill_at_any_step_of_a_folder_write_leaves_the_old_or_the_new_folder(tmp_path: Path, kill_at: str) -> None:
    target = tmp_path / "checkpoint"
    _write_version(target, "old", None)
    pid = os.fork()
    if pid == 0:  # the child: nothing but file operations, then out without pytest's teardown
        try:
            _write_version(target, "new", kill_at)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 9, "the child was not killed where the test meant"
    files.recover_folder(target)  # what a reader of a checkpoint does first (resume.read_position, runs.open_run)
    versions = {(target / name).read_text() for name in ("a", "b")}
    assert len(versions) == 1 and versions <= {"old", "new"}, versions
    _write_version(target, "next", None)  # and the next write cleans up whatever the kill left
    assert (target / "a").read_text() == "next"
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint"]


# --- random states ------------------------------------------------------------------------------------------------
def test_every_random_state_is_kept_and_put_back() -> None:
    import random

    model = nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.5), nn.Linear(8, 2), nn.Dropout(0.5))
    use_fast_dropout(model)
    model.train()
    state = rng_state(model)
    json.dumps(state["numpy"])  # the dropout generator's state is plain ints

    def draws():
        return (torch.rand(3).tolist(), random.random(), model(torch.ones(4, 8)).tolist())

    first = draws()
    set_rng_state(model, state)
    assert draws() == first
    assert dropout_generator(model) is not None
    assert dropout_generator(nn.Linear(2, 2)) is None


# --- kill, resume, same end ---------------------------------------------------------------------------------------
KILLED_CHILD = """
import json, os, signal, sys
import torch
torch.set_num_threads(int(sys.argv[3]))
from kobert_demo.basics.config import TrainConfig
from kobert_demo.basics.data import Splits
from kobert_demo.engine.train import train
spec = json.loads(open(sys.argv[1]).read())
calls = 0
def should_stop():  # called before each step: SIGKILL itself before step kill_before
    global calls
    calls += 1
    if calls == spec["kill_before"]:
        os.kill(os.getpid(), signal.SIGKILL)
    return False
for event in train(TrainConfig(**spec["config"]), Splits(**spec["splits"]), sys.argv[2], should_stop=should_stop):
    pass
"""


@pytest.fixture(scope="module")
def killed_and_resumed(validated, tmp_path_factory):
    """A run SIGKILLed in the middle of epoch 2 (before step 16 of 30; its last checkpoint: step 12's evaluation)
    and resumed, and the same run uninterrupted."""
    home = tmp_path_factory.mktemp("resume")
    settings = config()
    spec = home / "spec.json"
    spec.write_text(json.dumps({"config": settings.to_dict(), "splits": asdict(validated), "kill_before": 16}))
    killed = home / "killed"
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    child = subprocess.run(
        [sys.executable, "-c", KILLED_CHILD, str(spec), str(killed), str(torch.get_num_threads())],
        env=env, capture_output=True, text=True, timeout=HANG_S,
    )  # fmt: skip
    assert child.returncode == -9, child.stderr[-3000:]
    before = open_run(killed).events()
    assert max(e.step for e in before if isinstance(e, StepEvent)) == 15
    assert is_resumable(open_run(killed))
    resumed = list(train(settings, validated, killed, resume=True))
    whole = home / "whole"
    uninterrupted = list(train(settings, validated, whole))
    return killed, resumed, whole, uninterrupted


@pytest.mark.slow
def test_a_run_killed_mid_epoch_resumes_to_the_uninterrupted_runs_end(killed_and_resumed, validated) -> None:
    killed, resumed, whole, uninterrupted = killed_and_resumed
    assert isinstance(resumed[-1], DoneEvent) and isinstance(uninterrupted[-1], DoneEvent), resumed[-1]
    assert resumed[1] == NoticeEvent("notice_resumed", {"epoch": 2, "step": 12})
    ours, theirs = resumed[-1], uninterrupted[-1]
    assert (ours.kept_epoch, ours.kept_step) == (theirs.kept_epoch, theirs.kept_step)
    assert ours.best_value == theirs.best_value
    assert ours.valid == theirs.valid and ours.mistakes == theirs.mistakes
    assert [e.epoch for e in uninterrupted if e.type == "epoch"] == [1, 2, 3]
    assert open_run(killed).status().state == "done"
    texts = validated.test_texts
    ours = Predictor.load(killed, backend="torch").predict_proba(texts)
    theirs = Predictor.load(whole, backend="torch").predict_proba(texts)
    assert abs(ours - theirs).max() <= 1e-4
    assert resumed[-1].test["accuracy"] == uninterrupted[-1].test["accuracy"]
    # The kept model may predate the kill: the last evaluation's weights (the last checkpoint) are trained after it
    ours, theirs = (load_file(path / CHECKPOINT_DIR / "model.safetensors") for path in (killed, whole))
    assert max((ours[name] - theirs[name]).abs().max().item() for name in theirs) <= 1e-6


@pytest.mark.slow
def test_the_resumed_log_reads_as_one_run_with_a_notice(killed_and_resumed) -> None:
    killed, _, whole, _ = killed_and_resumed
    log, reference = open_run(killed).events(), open_run(whole).events()
    steps = [e.step for e in log if isinstance(e, StepEvent)]
    assert steps == list(range(1, 31)), "a step logged twice or missing"
    resumed = [e for e in log if isinstance(e, NoticeEvent) and e.key == "notice_resumed"]
    before = log[log.index(resumed[0]) - 1]  # where the log was cut back to: the checkpoint's evaluation
    assert len(resumed) == 1 and (before.type, before.step) == ("eval", 12)
    assert [e.type for e in log if e is not resumed[0]] == [e.type for e in reference]  # otherwise the same events
    assert [e.key for e in log if e.type == "notice"][1:] == [e.key for e in reference if e.type == "notice"]
    resumed_losses = [e.loss for e in log if isinstance(e, StepEvent)]
    assert resumed_losses == pytest.approx([e.loss for e in reference if isinstance(e, StepEvent)], abs=1e-5)
    summary = open_run(killed).summary()
    assert summary.state == "done" and summary.last_step.step == 30


@pytest.mark.slow
def test_a_done_run_or_other_data_is_refused_in_one_sentence(killed_and_resumed, validated, tmp_path) -> None:
    _, _, whole, _ = killed_and_resumed
    refused = list(train(config(), validated, whole, resume=True))
    assert len(refused) == 1 and isinstance(refused[0], ErrorEvent)
    assert refused[0].key == "run_not_resumable" and "done" in refused[0].text("en") and "완료" in refused[0].text("ko")
    assert open_run(whole).status().state == "done"  # refused, and nothing changed
    # The same run stopped: resumable, but not on other rows
    copy = tmp_path / "copy"
    shutil.copytree(whole, copy)
    Run(copy).set_status("stopped")
    other = Splits(**{**asdict(validated), "train_texts": validated.train_texts[::-1]})
    events = list(train(config(), other, copy, resume=True))
    assert isinstance(events[-1], ErrorEvent) and events[-1].key == "resume_data_changed"


# --- continue training --------------------------------------------------------------------------------------------
def finished_run(path: Path, labels: list[str]) -> Run:
    """A done run folder with a (placeholder) model, for the checks made before any weights load."""
    run = Run.create(path, config(), labels, {})
    (run.model_dir).mkdir()
    (run.model_dir / "model.safetensors").write_bytes(b"")
    run.set_status("done")
    return run


def test_continuing_on_data_with_other_classes_is_refused(tmp_path: Path, validated) -> None:
    finished_run(tmp_path / "first", ["0", "1", "2"])
    events = list(train(config(init_from="first"), validated, tmp_path / "second"))
    assert isinstance(events[-1], ErrorEvent) and events[-1].key == "init_from_missing_classes"
    assert "'2'" in events[-1].text("en") and "'2'" in events[-1].text("ko")
    finished_run(tmp_path / "third", ["0"])
    events = list(train(config(init_from=str(tmp_path / "third")), validated, tmp_path / "fourth"))
    assert events[-1].key == "init_from_extra_classes" and "'1'" in events[-1].text("en")


def test_continuing_from_a_run_without_a_model_is_refused(tmp_path: Path, validated) -> None:
    run = Run.create(tmp_path / "first", config(), ["0", "1"], {})
    events = list(train(config(init_from="first"), validated, tmp_path / "second"))
    assert events[-1].key == "init_from_no_model"
    run.set_status("done")
    events = list(train(config(init_from="nowhere"), validated, tmp_path / "third"))
    assert events[-1].key == "run_not_a_run"


@pytest.mark.slow
def test_continuing_starts_from_the_runs_model(killed_and_resumed, validated, tmp_path, monkeypatch) -> None:
    _, _, whole, _ = killed_and_resumed
    started = {}
    real = train_module.initial_classifier

    def recording(*args, **kwargs):
        classifier = real(*args, **kwargs)
        started.update({k: v.clone() for k, v in classifier.model.state_dict().items()})
        return classifier

    monkeypatch.setattr(train_module, "initial_classifier", recording)
    events = list(train(config(epochs=1, init_from=str(whole)), validated, tmp_path / "next"))
    assert isinstance(events[-1], DoneEvent), events[-1]
    source = load_classifier(whole / "model").model.state_dict()
    assert started.keys() == source.keys()
    assert all(torch.equal(started[k], source[k]) for k in source)
    assert Run(tmp_path / "next").config()["init_from"] == str(whole)


@pytest.mark.slow
def test_a_continued_run_names_the_backbone_it_continues(killed_and_resumed, validated, tmp_path) -> None:
    """Continuing a tiny run with the default model setting (KoBERT's hub id, as `train --init-from RUN` gives it)
    records, trains at and cards the source run's backbone: nothing says KoBERT about a tiny model."""
    _, _, whole, _ = killed_and_resumed
    settings = TrainConfig(epochs=1, batch_size=8, init_from=str(whole), precision="fp32", seed=3)
    assert settings.model == KOBERT_HUB_ID
    events = list(train(settings, validated, tmp_path / "next"))
    assert isinstance(events[-1], DoneEvent), events[-1]
    stored = Run(tmp_path / "next").config()
    assert stored["model"] == "tiny"
    card = (tmp_path / "next" / "README.md").read_text(encoding="utf-8")
    assert "- Backbone: tiny" in card and f"continued from run {whole.name}" in card and "kobert-base" not in card
    peak = max(e.lr for e in events if isinstance(e, StepEvent))
    assert KOBERT_LR < peak <= TINY_LR  # tiny's default learning rate, not KoBERT's
