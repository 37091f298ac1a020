"""The job queue: one job at a time in child processes, failures contained, kills survived, stops honoured.

The queue's children are tests/stub_job.py (the real run_job with a torch-free training) unless a test needs the
real child: a real training end to end (test_queued_runs_survive_a_restart) and a real child's stop between steps
and lower priority (test_stop_a_running_job_keeps_a_clean_state).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, reap_when_it_ends, sample_rows, write_tsv
from conftest import wait_until as wait_for
from stub_job import stub_queue

from kobert_demo.app.queue import JobQueue, is_owner, owner_id, request_stop
from kobert_demo.app.training_child import (
    DATA_DIR,
    JOB_NICE,
    SERVING_FRESH_S,
    SERVING_MARK,
    ServingYield,
    read_job,
    training_threads,
)
from kobert_demo.basics.config import TrainConfig
from kobert_demo.basics.data import DataError
from kobert_demo.basics.errors import UserFacingError
from kobert_demo.basics.events import DoneEvent, NoticeEvent, StepEvent
from kobert_demo.basics.runs import Run, is_resumable, new_run_id
from kobert_demo.serving.predict import Predictor

FINISHED = {"done", "stopped", "failed", "interrupted"}


@pytest.fixture
def small_file(tmp_path) -> Path:
    return write_tsv(tmp_path / "small.tsv", sample_rows("nsmc/train.tsv", 60))


@pytest.fixture
def queue(tmp_path):
    """A started queue whose children are the stub, each step 0.1 s: a job of small_file lasts about a second, so
    that a second job started beside it would be seen running."""
    jobs = stub_queue(tmp_path / "runs", step_s=0.1).start()
    yield jobs
    jobs.close()


@pytest.fixture
def real_queue(tmp_path):
    """A started queue whose children are real (`python -m kobert_demo job`): about 6 s of imports each."""
    jobs = JobQueue(tmp_path / "runs", poll_s=0.1).start()
    yield jobs
    jobs.close()


def test_jobs_run_one_at_a_time_in_order(queue, small_file):
    config = TrainConfig(model="tiny", epochs=1, batch_size=16)
    first = queue.submit(config, small_file, owner=owner_id("alice"))
    second = queue.submit(config, small_file, owner=owner_id("bob"))
    assert queue.position(second) in (1, 2)
    seen_running = set()

    def both_finished():
        states = {first.status().state, second.status().state}
        seen_running.add(tuple(sorted(r.name for r in (first, second) if r.status().state == "running")))
        return states <= FINISHED

    wait_for(both_finished)
    assert all(len(names) <= 1 for names in seen_running), "two jobs ran at once"
    assert first.status().state == second.status().state == "done"
    assert first.config()["created"] < second.config()["created"]


def test_a_failing_job_is_reported_and_the_next_one_runs(queue, small_file):
    broken = queue.submit(TrainConfig(model="no/such-model-offline", epochs=1), small_file)
    fine = queue.submit(TrainConfig(model="tiny", epochs=1, batch_size=16), small_file)
    wait_for(lambda: fine.status().state in FINISHED)
    status = broken.status()
    assert status.state == "failed"
    assert "no/such-model-offline" in status.reason("en") and "no/such-model-offline" in status.reason("ko")
    assert fine.status().state == "done"


def test_bad_data_is_refused_before_a_run_exists(queue, tmp_path):
    one_class = tmp_path / "one.tsv"
    one_class.write_text("document\tlabel\n좋다\t1\n최고\t1\n", encoding="utf-8")
    with pytest.raises(DataError, match="only one class"):
        queue.submit(TrainConfig(model="tiny"), one_class)
    assert not any((tmp_path / "runs").glob("*/status.json"))


def test_stop_a_queued_job(tmp_path, small_file):
    jobs = JobQueue(tmp_path / "runs")  # not started: everything stays queued
    run = jobs.submit(TrainConfig(model="tiny"), small_file)
    request_stop(run)
    status = run.status()
    assert (status.state, status.reason("en")) == ("stopped", "stopped before it started")
    assert status.reason("ko") == "시작하기 전에 중지되었습니다"  # what a Korean visitor reads, not English
    assert jobs.position(run) is None


def test_submit_leaves_the_callers_config_alone(tmp_path, small_file):
    config = TrainConfig(model="tiny")
    run = JobQueue(tmp_path / "runs").submit(config, small_file)
    assert (config.text_col, config.label_col) == (None, None)
    assert (run.config()["text_col"], run.config()["label_col"]) == ("document", "label")  # the columns detected


def test_a_validation_file_goes_into_the_job(tmp_path, small_file):
    """Copied beside the training file (job.json's "valid"), checked at once, and what the child validates on:
    none of the training file's rows are held out for validation then."""
    valid = write_tsv(tmp_path / "my valid.tsv", sample_rows("nsmc/test.tsv", 5))
    config = TrainConfig(model="tiny", epochs=1, batch_size=16)
    run = JobQueue(tmp_path / "runs").submit(config, small_file, None, valid)  # positional: test, then validation
    job = read_job(run)
    assert job["valid"] == "valid.tsv" and "test" not in job
    assert (run.path / DATA_DIR / "valid.tsv").read_bytes() == valid.read_bytes()
    stored = run.config()
    assert (stored["valid_file"], stored["valid_rows"], stored["train_rows"]) == ("my valid.tsv", 10, 108)
    jobs = stub_queue(tmp_path / "runs").start()
    try:
        wait_for(lambda: run.status().state in FINISHED)
    finally:
        jobs.close()
    assert run.status().state == "done"
    assert run.events()[0].train_rows == 108  # 120 rows less the test split; 97 had validation been split off too


def test_a_validation_file_with_an_unknown_class_is_refused_at_submit(tmp_path, small_file):
    valid = write_tsv(tmp_path / "valid.tsv", [("좋다", "1"), ("몰라", "2")])
    with pytest.raises(DataError, match=r"valid\.tsv has labels the training file lacks: '2'"):
        JobQueue(tmp_path / "runs").submit(TrainConfig(model="tiny"), small_file, valid_file=valid)
    assert not any((tmp_path / "runs").glob("*/status.json"))


@pytest.mark.slow
def test_stop_a_running_job_keeps_a_clean_state(real_queue, tmp_path):
    big = write_tsv(tmp_path / "big.tsv", sample_rows("nsmc/train.tsv", 1000))
    run = real_queue.submit(TrainConfig(model="tiny", epochs=3, batch_size=8), big)
    wait_for(lambda: run.summary().last_step)
    niceness = os.getpriority(os.PRIO_PROCESS, run.status().pid) - os.getpriority(os.PRIO_PROCESS, 0)
    request_stop(run)
    wait_for(lambda: run.status().state in FINISHED)
    assert niceness == JOB_NICE  # the training child yields the CPU to the server's visitors
    status = run.status()
    assert status.state == "stopped"
    assert not run.has_model and "no model" in status.reason("en")
    assert isinstance(run.events()[-1], DoneEvent)


def test_killed_child_is_marked_failed(queue, tmp_path):
    big = write_tsv(tmp_path / "big.tsv", sample_rows("nsmc/train.tsv", 1000))
    run = queue.submit(TrainConfig(model="tiny", epochs=3, batch_size=8), big)
    wait_for(lambda: any(isinstance(e, StepEvent) for e in run.events()))
    os.kill(run.status().pid, signal.SIGKILL)
    wait_for(lambda: run.status().state in FINISHED)
    assert run.status().state == "failed"
    assert "killed" in run.status().reason("en")
    assert "메모리" in run.status().reason("ko")  # what the Korean Logs tab shows


@pytest.mark.slow
def test_kill_9_mid_training_leaves_the_last_epoch_usable(tmp_path):
    """A server-less training process killed after its first epoch: the run reads `interrupted`, model usable."""
    data = write_tsv(tmp_path / "data.tsv", sample_rows("nsmc/train.tsv", 400))
    out = tmp_path / "run"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "kobert_demo", "train", str(data), "--model", "tiny", "--epochs", "50"]
    process = subprocess.Popen(
        [*command, "--batch-size", "8", "--quiet", "--out", str(out)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: (out / "model" / "model.safetensors").exists() and Run(out).final_metrics())
    finally:
        process.kill()
        process.wait()
    status = Run(out).status()
    assert status.state == "interrupted"
    assert "kept" in status.reason("en")
    assert len(Predictor.load(out).predict(["최고의 영화"])) == 1


def test_a_starting_queue_marks_runs_left_running_interrupted(tmp_path, small_file):
    """Reading a status never writes it; taking up a runs home does, once, for runs whose process is gone."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    run = JobQueue(tmp_path / "runs").submit(TrainConfig(model="tiny"), small_file)
    run.set_status("running", pid=gone.pid)
    assert run.status().state == "interrupted"
    assert '"running"' in (run.path / "status.json").read_text(encoding="utf-8")
    queue = JobQueue(tmp_path / "runs", poll_s=0.1).start()
    queue.close()
    assert '"interrupted"' in (run.path / "status.json").read_text(encoding="utf-8")
    assert not (run.path / "data").exists()  # a finished run's copy of its data goes


def test_owner_is_a_hash_and_checked(tmp_path, small_file):
    jobs = JobQueue(tmp_path / "runs")
    run = jobs.submit(TrainConfig(model="tiny"), small_file, owner=owner_id("alice-token"))
    assert "alice-token" not in (run.path / "config.json").read_text(encoding="utf-8")
    assert is_owner(run, "alice-token")
    assert not is_owner(run, "bob-token")
    assert not is_owner(run, "")


def test_unguessable_run_names(tmp_path, small_file):
    jobs = JobQueue(tmp_path / "runs")
    names = {jobs.submit(TrainConfig(model="tiny"), small_file).name for _ in range(3)}
    assert len(names) == 3
    assert all(len(name.split("-")[-1]) >= 16 for name in names)


@pytest.mark.slow
def test_queued_runs_survive_a_restart(tmp_path, small_file):
    """Also the queue's one real training end to end: the real child trains and keeps a model that predicts."""
    waiting = JobQueue(tmp_path / "runs").submit(TrainConfig(model="tiny", epochs=1, batch_size=16), small_file)
    restarted = JobQueue(tmp_path / "runs", poll_s=0.1).start()
    try:
        wait_for(lambda: waiting.status().state in FINISHED)
    finally:
        restarted.close()
    assert waiting.status().state == "done"
    assert Predictor.load(waiting.path).predict(["재밌다"])[0].keys() == {"0", "1"}


@pytest.mark.slow
def test_full_disk_is_one_clear_sentence(tmp_path, monkeypatch, small_splits):
    import errno

    from kobert_demo.engine import train as train_module

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "run" / "model" / "model.safetensors"))

    monkeypatch.setattr(train_module, "save_classifier", full_disk)
    events = list(train_module.train(TrainConfig(model="tiny", epochs=1), small_splits, tmp_path / "run"))
    assert events[-1].type == "error"
    assert events[-1].message.startswith("the disk is full while writing")
    assert "KOBERT_DEMO_RUNS" in events[-1].message
    assert Run(tmp_path / "run").status().state == "failed"
    assert "디스크가 가득 찼습니다" in Run(tmp_path / "run").status().reason("ko")


def test_measured_speeds_are_each_models_latest(tmp_path):
    """The speed the Train tab's estimates and the queue's ETA use: each model's newest run that logged a step."""
    from conftest import step

    home = tmp_path / "runs"
    for name, model, speed in [  # oldest first
        ("old-tiny", "tiny", 100.0), ("klue", "klue/bert-base", 12.5), ("new-tiny", "tiny", 250.0),
        ("newest-tiny-no-steps", "tiny", None),
    ]:  # fmt: skip
        run = Run.create(home / name, TrainConfig(model=model), ["0", "1"], {})
        if speed is not None:
            run.append(step(sentences_per_s=speed))
    queue = JobQueue(home)
    assert queue.measured_speeds() == {"tiny": 250.0, "klue/bert-base": 12.5}
    assert queue._measured_speed("tiny") == queue.measured_speeds()["tiny"]  # the queue's ETA agrees
    assert JobQueue(tmp_path / "nothing").measured_speeds() == {}


def test_training_leaves_a_core_while_visitors_wait():
    assert training_threads(4, None) == 4  # no serving mark yet
    assert training_threads(4, 0.1) == 3
    assert training_threads(4, SERVING_FRESH_S + 0.1) == 4  # the visitors are gone
    assert training_threads(2, 0.0) == 1
    assert training_threads(1, 0.0) == 1  # never none


def test_the_child_follows_the_servers_mark_between_steps(tmp_path):
    import torch

    home, other = tmp_path / "runs", tmp_path / "other-server"
    home.mkdir(), other.mkdir()
    queue = JobQueue(home)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        yielding = ServingYield(home, cores=2)
        yielding.between_steps()
        assert torch.get_num_threads() == 2  # no visitors yet
        JobQueue(other).mark_serving()  # another server's visitors are not this one's
        yielding.between_steps()
        assert torch.get_num_threads() == 2
        queue.mark_serving()
        yielding.between_steps()
        assert torch.get_num_threads() == 1
        old = (home / SERVING_MARK).stat().st_mtime - SERVING_FRESH_S - 1
        os.utime(home / SERVING_MARK, (old, old))
        queue.mark_serving()  # within its touch interval: the mark stays as it was
        yielding.between_steps()
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


# --- faults: the queue never stops, one server per home, fair against minted tokens (#23) -----------------------
class _Recorder:
    """A stand-in for JobQueue._run_child: fails the runs named in `broken` with an exception, marks others done."""

    def __init__(self, broken: set[str]) -> None:
        self.broken, self.ran = broken, []

    def __call__(self, run: Run) -> None:
        self.ran.append(run.name)
        if run.name in self.broken:
            raise RuntimeError("a fault inside one job")
        run.set_status("done")


def _work_until(jobs: JobQueue, done) -> None:
    """Start the queue, wait until done() holds, close it."""
    jobs.start()
    try:
        wait_for(done)
    finally:
        jobs.close()


def test_the_worker_survives_a_job_that_raises_and_runs_the_next(tmp_path, small_file, monkeypatch):
    jobs = JobQueue(tmp_path / "runs", poll_s=0.05)
    first = jobs.submit(TrainConfig(model="tiny"), small_file, owner=owner_id("a"))
    second = jobs.submit(TrainConfig(model="tiny"), small_file, owner=owner_id("b"))
    recorder = _Recorder({first.name})
    monkeypatch.setattr(jobs, "_run_child", recorder)
    _work_until(jobs, lambda: second.status().state == "done")
    status = first.status()
    assert status.state == "failed" and "RuntimeError" in status.reason("en") and "RuntimeError" in status.reason("ko")
    assert recorder.ran == [first.name, second.name]
    assert not (first.path / "data").exists()


def test_a_damaged_run_folder_stops_neither_the_start_nor_the_queue(tmp_path, small_file, monkeypatch):
    home = tmp_path / "runs"
    jobs = JobQueue(home, poll_s=0.05)
    damaged = jobs.submit(TrainConfig(model="tiny"), small_file)
    (damaged.path / "status.json").write_text('{"state": "que', encoding="utf-8")  # torn by a hand or a copy
    no_job = jobs.submit(TrainConfig(model="tiny"), small_file)
    (no_job.path / "job.json").unlink()  # a queued run without its job file
    fine = jobs.submit(TrainConfig(model="tiny"), small_file)
    recorder = _Recorder(set())
    real = JobQueue._run_child.__get__(jobs)

    def run_child(run: Run) -> None:  # the real one for the run without job.json: it must fail, not kill the worker
        if run.name == no_job.name:
            monkeypatch.setattr(subprocess, "Popen", _no_process)
            return real(run)
        return recorder(run)

    monkeypatch.setattr(jobs, "_run_child", run_child)
    _work_until(jobs, lambda: fine.status().state == "done")
    assert no_job.status().state == "failed"
    assert damaged.path.is_dir() and damaged.name not in recorder.ran  # left as it is, for its owner to see


def _no_process(*args, **kwargs):
    raise AssertionError("a run without job.json must not start a process")


def test_a_run_is_never_visible_before_it_is_whole(tmp_path, small_file, monkeypatch):
    """The worker once picked a run queued before its data copy and job.json were written."""
    from kobert_demo.app import queue as jobs_module

    home = tmp_path / "runs"
    seen: list[list[str]] = []
    copy = jobs_module.shutil.copy

    def copy_and_look(source, target):
        seen.append([run.name for run in JobQueue(home).queued()])
        return copy(source, target)

    monkeypatch.setattr(jobs_module.shutil, "copy", copy_and_look)
    run = JobQueue(home).submit(TrainConfig(model="tiny"), small_file)
    assert seen == [[]]
    assert (run.path / "job.json").is_file() and (run.path / "data" / "train.tsv").is_file()

    def no_room(source, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(jobs_module.shutil, "copy", no_room)
    with pytest.raises(OSError):
        JobQueue(home).submit(TrainConfig(model="tiny"), small_file)
    assert [path.name for path in home.iterdir() if path.name != ".lock"] == [run.name]  # nothing half made


def _stop_all_at_once(jobs: JobQueue, run: Run, callers: int) -> list[BaseException]:
    """callers threads stop run at once, then read its status; what any of them raised."""
    import threading

    errors: list[BaseException] = []

    def stop() -> None:
        try:
            jobs.stop(run)
            run.status()
        except BaseException as error:  # noqa: BLE001 - any failure is the finding
            errors.append(error)

    threads = [threading.Thread(target=stop) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_concurrent_stops_of_a_queued_run_all_succeed(tmp_path, small_file):
    jobs = JobQueue(tmp_path / "runs")
    for _ in range(5):
        run = jobs.submit(TrainConfig(model="tiny"), small_file)
        assert _stop_all_at_once(jobs, run, 8) == [] and run.status().state == "stopped"
        assert not list(run.path.glob(".*"))  # no temporary file left behind


def _fake_job(run: Run, code: str = "import time; time.sleep(600)") -> subprocess.Popen:
    """A live process running code that looks like run's job (`... job RUN_PATH`), as a previous server's child
    would; reaped when it ends, as a dead server's child is."""
    process = subprocess.Popen([sys.executable, "-c", code, "job", str(run.path)], stdout=subprocess.PIPE, text=True)
    run.set_status("running", pid=process.pid)
    return reap_when_it_ends(process)


def _running_run(home: Path) -> Run:
    """A run that is never `queued` (it starts `running`, as the test process's): a started queue that picked a
    queued one started a real child for it before _fake_job could claim it, and the test then saw `failed`."""
    return Run.create(home / new_run_id(), TrainConfig(model="tiny"), ["0", "1"], {})


def test_a_second_server_on_one_home_is_read_only_and_touches_nothing(tmp_path, small_file):
    home = tmp_path / "runs"
    first = JobQueue(home, poll_s=0.05).start()
    live = _running_run(home)
    child = _fake_job(live)
    second = JobQueue(home, poll_s=0.05).start()
    try:
        assert first.holds_home and not second.holds_home
        assert child.poll() is None and live.status().state == "running"  # the first server's job lives on
        for refused in (
            lambda: second.submit(TrainConfig(model="tiny"), small_file),
            lambda: second.stop(live),
            lambda: second.delete(live),
        ):
            with pytest.raises(UserFacingError, match="another server is using this runs folder") as caught:
                refused()
            assert "다른 서버가" in caught.value.text("ko")
        first.close()  # the first server stops: the second takes the home over, and the job it left behind
        wait_for(lambda: second.holds_home)
        wait_for(lambda: child.poll() is not None)
        assert live.status().state == "interrupted"
    finally:
        child.kill()
        first.close()
        second.close()


def test_an_orphan_that_will_not_stop_is_killed(tmp_path, small_file, monkeypatch):
    """A previous server's job that ignores its stop request and SIGTERM (a step that hangs) is killed."""
    from kobert_demo.app import queue as jobs_module

    monkeypatch.setattr(jobs_module, "ORPHAN_STOP_S", 0.5)  # not 30 s: the test waits for it
    run = JobQueue(tmp_path / "runs").submit(TrainConfig(model="tiny"), small_file)
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('deaf', flush=True); "
    code += "time.sleep(600)"
    child = _fake_job(run, code)
    try:
        assert child.stdout.readline() == "deaf\n"  # SIGTERM is ignored from here on
        JobQueue(tmp_path / "runs", poll_s=0.05).start().close()
        wait_for(lambda: child.returncode is not None)
        assert child.returncode == -signal.SIGKILL
        status = run.status()
        assert status.state == "interrupted" and status.reason_key == "job_orphan_stopped"
    finally:
        child.kill()


@pytest.mark.slow
def test_a_job_of_a_live_server_is_not_an_orphan_in_another_process(tmp_path):
    """The second server runs in its own process (as an overlapping restart would): the lock still holds."""
    home = tmp_path / "runs"
    first = JobQueue(home, poll_s=0.05).start()
    live = _running_run(home)
    child = _fake_job(live)
    script = (
        "import sys; from kobert_demo.app.queue import JobQueue; q = JobQueue(sys.argv[1]).start();"
        "print(q.holds_home); q.close()"
    )
    try:
        out = subprocess.run([sys.executable, "-c", script, str(home)], capture_output=True, text=True, cwd=REPO)
        assert out.stdout.strip() == "False", out.stderr
        assert child.poll() is None and live.status().state == "running"
    finally:
        child.kill()
        first.close()


def test_the_queue_and_each_address_have_a_cap(tmp_path, small_file, monkeypatch):
    monkeypatch.setenv("KOBERT_DEMO_MAX_QUEUED", "3")
    monkeypatch.setenv("KOBERT_DEMO_JOBS_PER_ADDRESS", "2")
    jobs = JobQueue(tmp_path / "runs")
    config = TrainConfig(model="tiny")
    for minted in ("token-1", "token-2"):
        jobs.submit(config, small_file, owner=owner_id(minted), address="203.0.113.7")
    with pytest.raises(UserFacingError, match="2 jobs from your network") as caught:
        jobs.submit(config, small_file, owner=owner_id("token-3"), address="203.0.113.7")
    assert "네트워크 주소" in caught.value.text("ko")
    jobs.submit(config, small_file, owner=owner_id("token-4"), address="198.51.100.1")
    with pytest.raises(UserFacingError, match="the training queue is full") as caught:
        jobs.submit(config, small_file, owner=owner_id("token-5"), address="198.51.100.2")
    assert "가득 찼습니다" in caught.value.text("ko")
    assert not any("203.0.113.7" in path.read_text(encoding="utf-8") for path in jobs.home.rglob("*.json"))


def test_queued_copies_of_data_count_in_the_runs_home_budget(tmp_path, monkeypatch):
    big = write_tsv(tmp_path / "big.tsv", sample_rows("nsmc/train.tsv", 60) * 40)  # about 0.45 MB
    assert 300_000 < big.stat().st_size < 1_000_000
    monkeypatch.setenv("KOBERT_DEMO_RUNS_HOME_MB", "1")
    jobs = JobQueue(tmp_path / "runs")
    jobs.submit(TrainConfig(model="tiny"), big, owner=owner_id("a"))
    with pytest.raises(UserFacingError, match="space for runs is full"):
        for minted in ("b", "c"):
            jobs.submit(TrainConfig(model="tiny"), big, owner=owner_id(minted))
    assert len(jobs.queued()) == 2


def test_the_client_address_is_the_peer_unless_the_deployment_trusts_a_proxy(monkeypatch):
    from types import SimpleNamespace

    from kobert_demo.app.ui.state import client_address

    request = SimpleNamespace(
        headers={"x-forwarded-for": "6.6.6.6, 203.0.113.7"}, client=SimpleNamespace(host="10.0.0.2")
    )
    monkeypatch.delenv("KOBERT_DEMO_TRUSTED_PROXIES", raising=False)
    assert client_address(request) == "10.0.0.2"  # the header is the visitor's own to forge
    monkeypatch.setenv("KOBERT_DEMO_TRUSTED_PROXIES", "1")
    assert client_address(request) == "203.0.113.7"  # what the one proxy saw, not what the visitor claimed
    monkeypatch.setenv("KOBERT_DEMO_TRUSTED_PROXIES", "2")
    assert client_address(request) == "6.6.6.6"
    assert client_address(SimpleNamespace(headers={}, client=SimpleNamespace(host="10.0.0.2"))) == "10.0.0.2"


def test_taking_up_a_home_removes_what_a_killed_save_left(tmp_path, small_file):
    run = JobQueue(tmp_path / "runs").submit(TrainConfig(model="tiny"), small_file)
    run.set_status("interrupted")
    left = run.path / ".model.tmp-123-4-abcd"  # a save killed before its swap
    left.mkdir()
    (left / "model.safetensors").write_bytes(b"half")
    JobQueue(tmp_path / "runs", poll_s=0.05).start().close()
    assert not left.exists()


# --- resume and continue (#25) ------------------------------------------------------------------------------------
def test_a_stopped_job_resumes_to_its_end_with_one_event_per_step(queue, small_file):
    alice = owner_id("alice")
    run = queue.submit(TrainConfig(model="tiny", epochs=3, batch_size=16), small_file, owner=alice)
    per_epoch = run.config()["train_rows"] // 16 + 1
    wait_for(lambda: any(isinstance(e, StepEvent) and e.epoch == 2 for e in run.events()))
    request_stop(run)
    wait_for(lambda: run.status().state in FINISHED)
    assert run.status().state == "stopped" and is_resumable(run)
    assert (run.path / DATA_DIR).is_dir()  # kept for the resume
    with pytest.raises(UserFacingError) as other:
        queue.resume(run.name, owner=owner_id("bob"))
    assert other.value.key == "err_not_owner"
    assert queue.resume(run.name, owner=alice).name == run.name
    wait_for(lambda: run.status().state in FINISHED)
    assert run.status().state == "done"
    events = run.events()
    assert [e.step for e in events if isinstance(e, StepEvent)] == list(range(1, 3 * per_epoch + 1))
    notices = [e for e in events if isinstance(e, NoticeEvent)]
    assert [(n.key, n.params["epoch"]) for n in notices] == [("notice_resumed", 1)]
    assert "1 에폭" in notices[0].text("ko")
    assert not (run.path / DATA_DIR).exists()  # done: nothing to resume any more


def test_resume_is_refused_in_one_sentence(tmp_path, small_file):
    jobs = JobQueue(tmp_path / "runs")
    run = jobs.submit(TrainConfig(model="tiny"), small_file)
    request_stop(run)  # stopped before it started: no checkpoint
    refusals = {}
    for name in (run.name, "no-such-run", "../x"):
        with pytest.raises(UserFacingError) as refused:
            jobs.resume(name)
        refusals[name] = refused.value
    assert refusals[run.name].key == "run_no_checkpoint"
    assert refusals["no-such-run"].key == refusals["../x"].key == "err_no_such_run"
    done = jobs.submit(TrainConfig(model="tiny"), small_file)
    (done.checkpoint_dir).mkdir()
    (done.checkpoint_dir / "position.json").write_text("{}")
    done.set_status("done")
    with pytest.raises(UserFacingError) as refused:
        jobs.resume(done.name)
    assert refused.value.key == "run_not_resumable"
    assert "done" in refused.value.text("en") and "완료" in refused.value.text("ko")
    assert done.status().state == "done"


def test_continuing_names_a_finished_run_of_the_visitor_with_the_same_classes(tmp_path, small_file):
    jobs = JobQueue(tmp_path / "runs")
    alice = owner_id("alice")
    first = Run.create(jobs.home / "first", TrainConfig(model="tiny"), ["0", "1", "2"], {"owner": alice})
    first.model_dir.mkdir()
    (first.model_dir / "model.safetensors").write_bytes(b"")
    first.set_status("done")
    refusals = {}
    for name, owner in (("first", alice), ("first", owner_id("bob")), (str(first.path), alice), ("none", alice)):
        with pytest.raises(UserFacingError) as refused:
            jobs.submit(TrainConfig(model="tiny", init_from=name), small_file, owner=owner)
        refusals[name, owner] = refused.value.key
    assert list(refusals.values()) == [
        "init_from_missing_classes",
        "err_not_owner",
        "init_from_not_a_name",
        "run_not_a_run",
    ]
    (first.path / "labels.json").write_text('["0", "1"]')
    run = jobs.submit(TrainConfig(model="tiny", init_from="first"), small_file, owner=alice)
    assert run.config()["init_from"] == "first"
