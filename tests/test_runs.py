"""Tests for kobert_demo.runs: creating, listing, deleting, following the log, interrupted runs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kobert_demo.config import TrainConfig
from kobert_demo.runs import STATES, Run, RunError, delete_run, list_runs, new_run_id, open_run


def create(path: Path, **meta) -> Run:
    return Run.create(path, TrainConfig(model="tiny", epochs=1), ["긍정", "부정"], meta)


def dead_pid() -> int:
    """The pid of a process that has already ended."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_create(tmp_path: Path) -> None:
    run = create(tmp_path / "runs" / "first", train_file="train.tsv")
    assert run.name == "first"
    assert sorted(p.name for p in run.path.iterdir()) == ["config.json", "labels.json", "log.jsonl", "status.json"]
    config = run.config()
    assert config["model"] == "tiny" and config["epochs"] == 1 and config["train_file"] == "train.tsv"
    assert TrainConfig.from_dict(config) == TrainConfig(model="tiny", epochs=1)
    assert run.labels() == ["긍정", "부정"]
    assert run.events() == []
    status = run.status()
    assert (status["state"], status["reason"], status["pid"]) == ("running", None, os.getpid())
    assert not run.has_model
    assert run.model_dir == run.path / "model"
    assert run.final_metrics() is None


def test_create_in_an_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    assert create(tmp_path / "run").status()["state"] == "running"


def test_create_refuses_an_existing_run(tmp_path: Path) -> None:
    run = create(tmp_path / "run")
    run.append({"type": "start"})
    run.set_status("done")
    with pytest.raises(RunError, match="already holds a run; choose another --out folder or delete that run"):
        create(tmp_path / "run")
    assert run.status()["state"] == "done"
    assert run.events() == [{"type": "start"}]


def test_create_takes_over_a_queued_run(tmp_path: Path) -> None:
    queued = Run.queue(tmp_path / "run", TrainConfig(model="tiny"), {"owner": "visitor-hash"})
    assert queued.status() == {**queued.status(), "state": "queued", "pid": None}
    created = queued.config()["created"]
    run = create(tmp_path / "run", train_file="train.tsv")
    config = run.config()
    assert (config["created"], config["owner"], config["train_file"]) == (created, "visitor-hash", "train.tsv")
    assert run.status()["state"] == "running"
    assert run.labels() == ["긍정", "부정"]
    with pytest.raises(FileExistsError):
        Run.queue(tmp_path / "run", TrainConfig(model="tiny"), {})


def test_set_status(tmp_path: Path) -> None:
    run = create(tmp_path / "run")
    for state in STATES:
        if state != "running":
            run.set_status(state, f"because {state}")
            assert run.status()["state"] == state
            assert run.status()["reason"] == f"because {state}"
    with pytest.raises(ValueError, match="unknown run state 'finished'"):
        run.set_status("finished")
    assert not list(run.path.glob("*.tmp"))  # written through a temporary file, then replaced


def test_list_runs_newest_first(tmp_path: Path) -> None:
    runs = {name: create(tmp_path / name) for name in ("a", "b", "c")}
    for name, when in (("a", 1_000_000), ("b", 3_000_000), ("c", 2_000_000)):
        config_path = runs[name].path / "config.json"
        config = json.loads(config_path.read_text(encoding="utf-8"))
        assert abs(config["created"] - time.time()) < 600
        config_path.write_text(json.dumps({**config, "created": when}), encoding="utf-8")
    (tmp_path / "not-a-run").mkdir()
    (tmp_path / "stray.txt").write_text("x", encoding="utf-8")
    assert [r.name for r in list_runs(tmp_path)] == ["b", "c", "a"]
    assert list_runs(tmp_path / "missing") == []


def test_delete_run(tmp_path: Path) -> None:
    run = create(tmp_path / "run")
    with pytest.raises(RunError, match="still running; stop it first"):
        delete_run(run)
    run.set_status("queued")
    with pytest.raises(RunError, match="still queued"):
        delete_run(run)
    assert run.path.is_dir()
    run.set_status("done")
    delete_run(run)
    assert not run.path.exists()
    assert list_runs(tmp_path) == []


def test_read_events_with_offsets(tmp_path: Path) -> None:
    run = create(tmp_path / "run")
    assert run.read_events() == ([], 0)
    run.append({"type": "start", "text": "한국어 문장"})
    run.append({"type": "step", "step": 1})
    events, offset = run.read_events()
    assert events == [{"type": "start", "text": "한국어 문장"}, {"type": "step", "step": 1}]
    assert offset == run.log_path.stat().st_size  # bytes, not characters
    assert run.read_events(offset) == ([], offset)

    # A writer caught mid-line: the partial line waits until it is complete.
    line = json.dumps({"type": "step", "step": 2, "text": "반쯤 쓴 줄"}, ensure_ascii=False) + "\n"
    data = line.encode("utf-8")
    with run.log_path.open("ab") as log:
        log.write(data[:20])
    assert run.read_events(offset) == ([], offset)
    with run.log_path.open("ab") as log:
        log.write(data[20:])
    events, end = run.read_events(offset)
    assert events == [{"type": "step", "step": 2, "text": "반쯤 쓴 줄"}]
    assert end == offset + len(data)
    # From the middle of the file, only what follows.
    first_line_end = len((json.dumps({"type": "start", "text": "한국어 문장"}, ensure_ascii=False) + "\n").encode())
    assert [e["type"] for e in run.read_events(first_line_end)[0]] == ["step", "step"]
    assert len(run.events()) == 3


def test_read_events_without_log(tmp_path: Path) -> None:
    run = create(tmp_path / "run")
    run.log_path.unlink()
    assert run.read_events(7) == ([], 7)


def test_final_metrics_are_the_last_epochs(tmp_path: Path) -> None:
    run = create(tmp_path / "run")
    assert run.final_metrics() is None
    for epoch, accuracy in ((1, 0.6), (2, 0.7), (3, 0.65)):
        run.append({"type": "epoch", "epoch": epoch, "test": {"accuracy": accuracy}})
    assert run.final_metrics() == {"accuracy": 0.65}


def test_running_with_dead_process_reads_as_interrupted(tmp_path: Path) -> None:
    run = create(tmp_path / "run")
    run.set_status("running", pid=dead_pid())
    status = run.status()
    assert status["state"] == "interrupted"
    assert status["reason"] == "the training process ended without finishing"
    assert json.loads((run.path / "status.json").read_text(encoding="utf-8"))["state"] == "interrupted"
    delete_run(run)  # an interrupted run can be deleted
    assert not run.path.exists()


def test_interrupted_run_mentions_kept_model(tmp_path: Path) -> None:
    run = create(tmp_path / "run")
    run.model_dir.mkdir()
    (run.model_dir / "model.safetensors").write_bytes(b"weights")
    assert run.has_model
    run.set_status("running", pid=dead_pid())
    assert run.status()["reason"] == (
        "the training process ended without finishing; the model of the last completed epoch is kept"
    )


def test_running_with_live_process_stays_running(tmp_path: Path) -> None:
    run = create(tmp_path / "run")
    assert run.status()["state"] == "running"  # this process
    run.set_status("running")  # no pid (e.g. not started yet): nothing to check
    assert run.status()["state"] == "running"


def test_open_run(tmp_path: Path) -> None:
    created = create(tmp_path / "run")
    assert open_run(tmp_path / "run").path == created.path
    with pytest.raises(RunError, match="is not a run folder"):
        open_run(tmp_path)
    with pytest.raises(RunError, match="is not a run folder"):
        open_run(tmp_path / "missing")
    (created.path / "config.json").unlink()
    with pytest.raises(RunError, match="is not a run folder"):
        open_run(created.path)


def test_missing_files_are_run_errors(tmp_path: Path) -> None:
    run = create(tmp_path / "run")
    (run.path / "labels.json").unlink()
    with pytest.raises(RunError, match=r"has no labels\.json"):
        run.labels()


def test_new_run_id() -> None:
    ids = {new_run_id() for _ in range(50)}
    assert len(ids) == 50
    for run_id in ids:
        assert re.fullmatch(r"\d{8}-\d{6}-[A-Za-z0-9]{16}", run_id)
