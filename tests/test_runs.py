"""Tests for basics.runs: creating, listing, deleting, following the log, interrupted runs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import TEST, epoch, start, step

from kobert_demo.basics import runs as runs_module
from kobert_demo.basics.config import TrainConfig
from kobert_demo.basics.errors import UserFacingError
from kobert_demo.basics.events import DoneEvent, EventError
from kobert_demo.basics.runs import (
    STATES,
    Run,
    RunError,
    check_resumable,
    check_same_classes,
    delete_run,
    init_source,
    is_resumable,
    list_runs,
    new_run_id,
    open_run,
)

HANGUL = re.compile(r"[\uac00-\ud7a3]")


def create(path: Path, **meta) -> Run:
    return Run.create(path, TrainConfig(model="tiny", epochs=1), ["긍정", "부정"], meta)


def stored(run: Run, name: str = "status.json") -> dict:
    """A file of the run folder as it is on disk."""
    return json.loads((run.path / name).read_text(encoding="utf-8"))


def dead_pid() -> int:
    """The pid of a process that has already ended."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_create(tmp_path: Path) -> None:
    run = create(tmp_path / "runs" / "first", train_file="train.tsv")
    assert run.name == "first"
    assert sorted(p.name for p in run.path.iterdir()) == [
        "config.json", "labels.json", "log.jsonl", "status.json", "summary.json",
    ]  # fmt: skip
    config = run.config()
    assert config["model"] == "tiny" and config["epochs"] == 1 and config["train_file"] == "train.tsv"
    assert TrainConfig.from_dict(config) == TrainConfig(model="tiny", epochs=1)
    assert run.labels() == ["긍정", "부정"]
    assert run.events() == []
    status = run.status()
    assert (status.state, status.reason_key, status.reason("en"), status.pid) == ("running", None, None, os.getpid())
    assert run.summary().last_step is None and run.summary().state is None
    assert not run.has_model
    assert run.model_dir == run.path / "model"
    assert run.final_metrics() is None


def test_create_in_an_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    assert create(tmp_path / "run").status().state == "running"


def test_create_refuses_an_existing_run(tmp_path: Path) -> None:
    run = create(tmp_path / "run")
    run.append(start())
    run.set_status("done")
    with pytest.raises(RunError, match="already holds a run; choose another --out folder or delete that run"):
        create(tmp_path / "run")
    assert run.status().state == "done"
    assert run.events() == [start()]


def test_create_takes_over_a_queued_run(tmp_path: Path) -> None:
    queued = Run.queue(tmp_path / "run", TrainConfig(model="tiny"), {"owner": "visitor-hash"})
    assert (queued.status().state, queued.status().pid) == ("queued", None)
    created = queued.config()["created"]
    run = create(tmp_path / "run", train_file="train.tsv")
    config = run.config()
    assert (config["created"], config["owner"], config["train_file"]) == (created, "visitor-hash", "train.tsv")
    assert run.status().state == "running"
    assert run.labels() == ["긍정", "부정"]
    with pytest.raises(FileExistsError):
        Run.queue(tmp_path / "run", TrainConfig(model="tiny"), {})


def test_set_status(tmp_path: Path) -> None:
    run = create(tmp_path / "run")
    for state in STATES:
        run.set_status(state)
        assert (run.status().state, run.status().reason("en")) == (state, None)
    with pytest.raises(ValueError, match="unknown run state 'finished'"):
        run.set_status("finished")
    assert not list(run.path.glob("*.tmp"))  # written through a temporary file, then replaced


def test_a_reason_is_stored_as_a_key_and_shown_in_either_language(tmp_path: Path) -> None:
    run = create(tmp_path / "run")
    run.set_status("stopped", UserFacingError("job_time_limit", limit="0:04"))
    on_disk = stored(run)
    assert (on_disk["reason_key"], on_disk["reason_params"]) == ("job_time_limit", {"limit": "0:04"})
    assert not any(isinstance(value, str) and " " in value for value in on_disk.values())  # no sentence stored
    status = run.status()
    assert status.reason("en").startswith("stopped at this server's time limit of 0:04 per job")
    korean = status.reason("ko")
    assert "0:04" in korean and HANGUL.search(korean) and "time limit" not in korean
    run.set_status("failed", UserFacingError("disk_full_writing", file=tmp_path / "model.safetensors", reason="x"))
    assert stored(run)["reason_params"]["file"] == str(tmp_path / "model.safetensors")  # JSON-safe
    assert str(tmp_path / "model.safetensors") in run.status().reason("ko")


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
    run.append(start())
    run.append(step(step=1))
    events, offset = run.read_events()
    assert events == [start(), step(step=1)]
    assert offset == run.log_path.stat().st_size  # bytes, not characters (the labels are Korean)
    assert run.read_events(offset) == ([], offset)

    # A writer caught mid-line: the partial line waits until it is complete.
    mistake = epoch(mistakes=[{"text": "반쯤 쓴 줄", "label": "부정", "predicted": "긍정", "confidence": 0.9}])
    data = (json.dumps(mistake.to_json(), ensure_ascii=False) + "\n").encode("utf-8")
    with run.log_path.open("ab") as log:
        log.write(data[:20])
    assert run.read_events(offset) == ([], offset)
    with run.log_path.open("ab") as log:
        log.write(data[20:])
    events, end = run.read_events(offset)
    assert events == [mistake]
    assert end == offset + len(data)
    # From the middle of the file, only what follows.
    first_line_end = len((json.dumps(start().to_json(), ensure_ascii=False) + "\n").encode())
    assert [e.type for e in run.read_events(first_line_end)[0]] == ["step", "epoch"]
    assert len(run.events()) == 3


def test_read_events_without_log(tmp_path: Path) -> None:
    run = create(tmp_path / "run")
    run.log_path.unlink()
    assert run.read_events(7) == ([], 7)


def test_an_unknown_line_in_the_log_is_a_clear_error(tmp_path: Path) -> None:
    run = create(tmp_path / "run")
    run.log_path.write_text('{"type": "checkpoint"}\n', encoding="utf-8")
    with pytest.raises(EventError, match="unknown type 'checkpoint'"):
        run.events()


def test_the_summary_follows_what_is_appended_without_the_log(tmp_path: Path) -> None:
    run = create(tmp_path / "run")
    run.append(start())
    for number in (1, 2):
        run.append(step(step=number, eta=10.0 - number))
    run.append(epoch(epoch=1, test={**TEST, "accuracy": 0.6}))
    run.append(epoch(epoch=2))
    run.append(DoneEvent("done", 2, TEST, 9.0, str(run.path)))
    run.log_path.unlink()  # readers of the summary never need the log
    summary = Run(run.path).summary()
    assert summary.start == start() and (summary.last_step.step, summary.last_step.eta) == (2, 8.0)
    assert (summary.kept_epoch, summary.test, summary.state, summary.elapsed) == (2, TEST, "done", 9.0)
    assert Run(run.path).final_metrics() == TEST
    assert not list(run.path.glob("*.tmp"))


def test_steps_rewrite_the_summary_at_most_every_interval(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = create(tmp_path / "run")
    monkeypatch.setattr(runs_module, "SUMMARY_EVERY_S", 3600.0)
    run.append(start())  # not a step: written at once
    run.append(step(step=1))  # the first step too: progress shows from the start
    assert stored(run, "summary.json")["last_step"]["step"] == 1
    for number in range(2, 51):
        run.append(step(step=number))
    assert stored(run, "summary.json")["last_step"]["step"] == 1  # 49 more steps inside the interval: not rewritten
    assert run.events()[-1].step == 50  # the log has every one
    run.append(epoch())
    assert stored(run, "summary.json")["last_step"]["step"] == 50  # the next other event brings it up to date
    monkeypatch.setattr(runs_module, "SUMMARY_EVERY_S", 0.0)
    run.append(step(step=51))
    assert run.summary().last_step.step == 51


def test_a_folder_without_summary_is_summarised_from_its_log(tmp_path: Path) -> None:
    """Run folders written before summary.json existed still show their progress and results."""
    run = create(tmp_path / "run")
    for event in (start(), step(step=5), epoch(epoch=1)):
        run.append(event)
    (run.path / "summary.json").unlink()
    summary = Run(run.path).summary()
    assert (summary.last_step.step, summary.kept_epoch, summary.test) == (5, 1, TEST)


def test_final_metrics_are_the_last_epochs(tmp_path: Path) -> None:
    run = create(tmp_path / "run")
    assert run.final_metrics() is None
    for number, accuracy in ((1, 0.6), (2, 0.7), (3, 0.65)):
        run.append(epoch(epoch=number, test={**TEST, "accuracy": accuracy}))
    assert Run(run.path).final_metrics()["accuracy"] == 0.65


def test_running_with_dead_process_reads_as_interrupted_without_writing(tmp_path: Path) -> None:
    run = create(tmp_path / "run")
    run.set_status("running", pid=dead_pid())
    before = (run.path / "status.json").read_bytes()
    status = run.status()
    assert status.state == "interrupted" and status.finished
    assert status.reason("en") == "the training process ended without finishing"
    assert HANGUL.search(status.reason("ko"))
    assert (run.path / "status.json").read_bytes() == before  # reading never writes
    assert run.mark_interrupted()  # the explicit write
    assert stored(run)["state"] == "interrupted" and stored(run)["reason_key"] == status.reason_key
    assert not run.mark_interrupted()  # nothing left to mark
    delete_run(run)  # an interrupted run can be deleted
    assert not run.path.exists()


def test_interrupted_run_mentions_kept_model(tmp_path: Path) -> None:
    run = create(tmp_path / "run")
    run.model_dir.mkdir()
    (run.model_dir / "model.safetensors").write_bytes(b"weights")
    assert run.has_model
    run.set_status("running", pid=dead_pid())
    assert run.status().reason("en") == (
        "the training process ended without finishing; the best model so far on the validation data is kept"
    )


def test_running_with_live_process_stays_running(tmp_path: Path) -> None:
    run = create(tmp_path / "run")
    assert run.status().state == "running"  # this process
    assert not run.mark_interrupted()
    run.set_status("running")  # no pid (e.g. not started yet): nothing to check
    assert run.status().state == "running"
    assert not run.mark_interrupted()
    assert stored(run)["state"] == "running"


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


# --- faults: torn files, concurrent deletes, reused pids (#23) ---------------------------------------------------
def test_a_torn_or_damaged_run_is_left_out_of_the_listing_and_reported_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = create(tmp_path / "good")
    for name, torn in (("torn-status", "status.json"), ("torn-config", "config.json")):
        (create(tmp_path / name).path / torn).write_text('{"state": "run', encoding="utf-8")
    (create(tmp_path / "list-status").path / "status.json").write_text("[1, 2]", encoding="utf-8")
    with caplog.at_level("WARNING", logger="kobert_demo.basics.runs"):
        assert [run.name for run in list_runs(tmp_path)] == [good.name]
        assert [run.name for run in list_runs(tmp_path)] == [good.name]
    reports = [record.getMessage() for record in caplog.records]
    assert len(reports) == 3 and all("cannot be read" in report for report in reports)
    with pytest.raises(RunError, match=r"status\.json is damaged"):
        Run(tmp_path / "torn-status").status()  # one sentence, no parser message and no server path
    assert str(tmp_path) not in UserFacingError.__str__(RunError("run_damaged_file", run="x", file="status.json"))


def test_listing_never_fails_while_runs_are_deleted(tmp_path: Path) -> None:
    """300 concurrent deletes once killed the queue: a listing found status.json, then rmtree took config.json."""
    import threading

    runs = [create(tmp_path / f"run-{i:03d}") for i in range(120)]
    for run in runs:
        run.set_status("done")
    errors: list[BaseException] = []
    done = threading.Event()

    def keep_listing() -> None:
        while not done.is_set():
            try:
                for run in list_runs(tmp_path):
                    run.config().get("owner")
            except BaseException as error:  # noqa: BLE001 - any failure is the finding
                errors.append(error)
                return

    def delete_each(chunk: list[Run]) -> None:
        for run in chunk:
            try:
                delete_run(run)
            except BaseException as error:  # noqa: BLE001
                errors.append(error)

    listers = [threading.Thread(target=keep_listing) for _ in range(2)]
    # two deleters per run: a second delete of one run finds it gone, which is what it asked for
    deleters = [threading.Thread(target=delete_each, args=(runs[i::4] * 2,)) for i in range(4)]
    for thread in listers + deleters:
        thread.start()
    for thread in deleters:
        thread.join()
    done.set()
    for thread in listers:
        thread.join()
    assert errors == []
    assert list_runs(tmp_path) == [] and list(tmp_path.iterdir()) == []


def test_a_reused_pid_is_not_taken_for_the_training_process(tmp_path: Path) -> None:
    """A restarted container counts pids from 1 again: a live process with the stored pid but another start time
    is someone else, and the run was interrupted."""
    run = create(tmp_path / "run")  # running, with this process's pid and start time
    assert run.status().state == "running"
    status = stored(run)
    status["pid_started"] -= 3600  # the pid's first owner started an hour before this process
    (run.path / "status.json").write_text(json.dumps(status), encoding="utf-8")
    assert run.status().state == "interrupted"
    assert runs_module.pid_alive(os.getpid(), runs_module.process_started(os.getpid()))


# --- resuming and continuing (#25) --------------------------------------------------------------------------------
def checkpointed(run: Run, **position) -> None:
    """A checkpoint folder as engine.resume writes it, reduced to its position."""
    run.checkpoint_dir.mkdir()
    (run.checkpoint_dir / runs_module.POSITION_FILE).write_text(json.dumps(position), encoding="utf-8")


@pytest.mark.parametrize("state", ["interrupted", "stopped", "failed"])
def test_a_run_is_resumable_when_it_ended_early_with_a_checkpoint(tmp_path: Path, state: str) -> None:
    run = create(tmp_path / "run")
    run.set_status(state)
    assert not is_resumable(run)
    with pytest.raises(RunError) as refused:
        check_resumable(run)
    assert refused.value.key == "run_no_checkpoint" and HANGUL.search(refused.value.text("ko"))
    checkpointed(run, log_bytes=0)
    assert is_resumable(run)
    check_resumable(run)


@pytest.mark.parametrize("state", ["done", "running", "queued"])
def test_a_done_or_active_run_is_not_resumable(tmp_path: Path, state: str) -> None:
    run = create(tmp_path / "run")
    checkpointed(run, log_bytes=0)
    run.set_status(state, pid=os.getpid() if state == "running" else None)
    assert not is_resumable(run)
    with pytest.raises(RunError) as refused:
        check_resumable(run)
    assert refused.value.key == "run_not_resumable"
    assert refused.value.text("en").count(".") == 1  # one sentence
    assert "only an interrupted, stopped or failed run" in refused.value.text("en")


def test_reopen_cuts_the_log_and_summary_back_to_the_checkpoint(tmp_path: Path) -> None:
    run = create(tmp_path / "run")
    run.append(start())
    run.append(step(step=1))
    run.append(epoch(epoch=1))
    checkpointed(run, log_bytes=run.log_path.stat().st_size, step=1)
    run.append(step(step=2))
    run.append(DoneEvent("stopped", 1, TEST, 3.0, str(run.path)))
    run.set_status("stopped")
    reopened, position = Run.reopen(run.path)
    assert position == {"log_bytes": position["log_bytes"], "step": 1}
    assert [e.type for e in reopened.events()] == ["start", "step", "epoch"]
    summary = reopened.summary()
    assert (summary.last_step.step, summary.state) == (1, None)
    status = reopened.status()
    assert (status.state, status.pid) == ("running", os.getpid())
    with pytest.raises(RunError):  # running now: not to be reopened twice
        Run.reopen(run.path)
    assert not [p for p in run.path.iterdir() if p.name.startswith(".")]


def test_continue_names_a_finished_run_with_a_model_and_its_classes(tmp_path: Path) -> None:
    first = create(tmp_path / "home" / "first")
    with pytest.raises(RunError) as refused:  # running, no model
        init_source("first", tmp_path / "home")
    assert refused.value.key == "init_from_no_model"
    first.set_status("done")
    first.model_dir.mkdir()
    (first.model_dir / "model.safetensors").write_bytes(b"")
    assert init_source("first", tmp_path / "home").path == first.path  # a bare name: in the runs home
    assert init_source(str(first.path)).path == first.path  # or a path
    with pytest.raises(RunError) as refused:
        init_source("first", tmp_path)  # not in that home, nor in the working folder
    assert refused.value.key == "run_not_a_run"
    check_same_classes(first, ["긍정", "부정"])
    with pytest.raises(RunError) as extra:
        check_same_classes(first, ["긍정", "부정", "중립"])
    with pytest.raises(RunError) as missing:
        check_same_classes(first, ["긍정"])
    assert extra.value.key == "init_from_extra_classes" and "'중립'" in extra.value.text("ko")
    assert missing.value.key == "init_from_missing_classes" and "'부정'" in missing.value.text("en")
