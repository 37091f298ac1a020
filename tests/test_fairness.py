"""A public server that hostile visitors cannot take down (issue #12): fair, bounded jobs; safe CSVs and text; one
job at a time even after a crash. API behaviour is checked through the real server with gradio_client."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import ALICE, BOB, HANG_S, REPO, reap_when_it_ends, run_cli, sample_rows, write_tsv
from conftest import wait_until as wait_for
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from stub_job import stub_command, stub_queue

from kobert_demo.app.queue import JobQueue, owner_id
from kobert_demo.app.training_child import DATA_DIR
from kobert_demo.app.ui import build_app
from kobert_demo.basics.config import MAX_STEPS, ConfigError, TrainConfig
from kobert_demo.basics.csv_out import csv_text, safe_cell
from kobert_demo.basics.events import DoneEvent, StepEvent
from kobert_demo.basics.runs import FINISHED, Run, list_runs, pid_alive, prune_runs
from kobert_demo.tools.driving import free_port

pytestmark = pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning")  # raised inside gradio's queue
DATA = Path(__file__).resolve().parent / "data"
EVIL_CLASS = '=HYPERLINK("http://evil.example","click")'


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The app on a fresh runs home with a queue that is not started: submitted jobs stay queued."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    home = tmp_path / "runs"
    queue = JobQueue(home)
    demo = build_app(home, queue=queue)
    _, url, _ = demo.launch(server_port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        yield SimpleNamespace(demo=demo, home=home, queue=queue, client=Client(url, verbose=False))
    finally:
        demo.close()


@pytest.fixture
def small_file(tmp_path: Path) -> Path:
    return write_tsv(tmp_path / "small.tsv", sample_rows("nsmc/train.tsv", 30))


def fake_speed(home: Path, model: str, sentences_per_s: float) -> None:
    """A finished run of model that logged one step at the given speed (what the queue measures from)."""
    run = Run.queue(home / f"measured-{model}", TrainConfig(model=model), {"owner": ""})
    run.append(
        StepEvent(epoch=1, batch=1, step=1, steps_per_epoch=1, total_steps=1, loss=0.7, train_acc=0.5, lr=1e-3,
                  elapsed=1.0, eta=0.0, sentences_per_s=sentences_per_s, logged=True)
    )  # fmt: skip
    run.set_status("done")


# --- fair, bounded jobs -------------------------------------------------------------------------------------------
def test_a_flood_is_capped_and_the_next_visitor_goes_next(server: SimpleNamespace, small_file: Path) -> None:
    train = handle_file(small_file)
    accepted, refused = [], []
    for _ in range(30):
        try:
            accepted.append(server.client.predict(train, None, "tiny", {"epochs": 1}, ALICE, api_name="/train"))
        except AppError as error:
            refused.append(str(error))
    assert len(accepted) == 2 and len(refused) == 28
    assert "2 jobs queued or running" in refused[0]
    Run(server.home / accepted[0]).set_status("running", pid=os.getpid())  # Alice's first job trains
    bob = server.client.predict(train, None, "tiny", {"epochs": 1}, BOB, api_name="/train")
    assert server.client.predict(bob, BOB, api_name="/status")["queue_position"] == 1
    assert server.client.predict(accepted[1], ALICE, api_name="/status")["queue_position"] == 2
    server.client.predict(accepted[1], ALICE, api_name="/stop")  # a stopped job frees a place
    assert server.client.predict(train, None, "tiny", {"epochs": 1}, ALICE, api_name="/train")


def test_visitors_take_turns(tmp_path: Path, small_file: Path) -> None:
    queue = JobQueue(tmp_path / "runs")
    config = TrainConfig(model="tiny", epochs=1)
    a1, a2 = (queue.submit(config, small_file, owner=owner_id(ALICE)) for _ in range(2))
    b1, b2 = (queue.submit(config, small_file, owner=owner_id(BOB)) for _ in range(2))
    assert [run.name for run in queue.queued()] == [a1.name, b1.name, a2.name, b2.name]


def test_an_over_long_job_is_refused_up_front(
    server: SimpleNamespace, small_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 60 rows less 6 for the test split and 6 for validation: 48 training rows x 100 epochs at 10 sentences/s, 8 minutes
    fake_speed(server.home, "tiny", 10.0)
    monkeypatch.setenv("KOBERT_DEMO_MAX_JOB_SECONDS", "300")
    with pytest.raises(AppError, match=r"would take about 8:0\d at the measured 10 sentences/s, over .* 5:00"):
        server.client.predict(handle_file(small_file), None, "tiny", {"epochs": 100}, ALICE, api_name="/train")
    assert server.client.predict(handle_file(small_file), None, "tiny", {"epochs": 2}, ALICE, api_name="/train")


@pytest.mark.slow
def test_a_job_over_its_time_limit_is_stopped_with_the_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The child's own watch stops it at the limit (the stub child runs the real run_job and its watch).

    The limit counts from the child's start, so the job comes with a test file: holding out a test split imports
    scikit-learn first (2 s at a load of 5 on the 2-core dev machine), and at a load of 11 the job reached its 4 s
    limit before its first step. The log ends with the child's own DoneEvent: the queue's kill at the limit plus
    KILL_GRACE_S (which leaves none) does not pass for the child's watch.
    """
    monkeypatch.setenv("KOBERT_DEMO_MAX_JOB_SECONDS", "4")
    big = write_tsv(tmp_path / "big.tsv", sample_rows("nsmc/train.tsv", 1000))
    test = write_tsv(tmp_path / "test.tsv", sample_rows("nsmc/test.tsv", 10))
    queue = stub_queue(tmp_path / "runs", step_s=0.05).start()
    try:
        config = TrainConfig(model="tiny", epochs=50, batch_size=8)
        run = queue.submit(config, big, test, owner=owner_id(ALICE))
        wait_for(lambda: run.status().state in FINISHED)
    finally:
        queue.close()
    status = run.status()
    assert status.state == "stopped" and status.reason_key == "job_time_limit"
    assert "time limit of 0:04" in status.reason("en") and "0:04" in status.reason("ko")
    assert "time limit" not in status.reason("ko")
    assert not (run.path / DATA_DIR).exists()  # the copy of the upload went with the job
    events = run.events()
    assert any(isinstance(event, StepEvent) for event in events)
    assert isinstance(events[-1], DoneEvent) and events[-1].state == "stopped"


@pytest.mark.parametrize(
    ("options", "expected"),
    [({"epochs": 10**9}, "epochs must be at most 100"), ({"batch_size": 4096}, "batch size must be at most 1024")],
)
def test_settings_are_bounded_in_the_api(server: SimpleNamespace, small_file: Path, options: dict, expected: str):
    with pytest.raises(AppError, match=expected):
        server.client.predict(handle_file(small_file), None, "tiny", options, ALICE, api_name="/train")


def test_total_steps_are_bounded() -> None:
    TrainConfig(epochs=100, batch_size=1).check(train_rows=MAX_STEPS // 100)
    with pytest.raises(ConfigError, match="training steps, over the limit"):
        TrainConfig(epochs=100, batch_size=1).check(train_rows=MAX_STEPS // 100 + 1)


def test_short_visitor_tokens_are_refused(server: SimpleNamespace, small_file: Path) -> None:
    name = server.client.predict(handle_file(small_file), None, "tiny", {}, ALICE, api_name="/train")
    for short in ("a", " ", "fifteen-chars-x"):
        with pytest.raises(AppError, match="at least 16 characters"):
            server.client.predict(handle_file(small_file), None, "tiny", {}, short, api_name="/train")
        with pytest.raises(AppError, match="at least 16 characters"):
            server.client.predict(short, api_name="/runs")
        with pytest.raises(AppError, match="at least 16 characters"):
            server.client.predict(name, short, api_name="/status")
        for endpoint in ("/stop", "/delete", "/export"):
            with pytest.raises(AppError, match="at least 16 characters"):
                server.client.predict(name, short, api_name=endpoint)
    assert server.client.predict(name, "", api_name="/status")["owner"] is False  # reading needs no token


def test_visitor_runs_and_bytes_are_bounded(tmp_path: Path, small_file: Path, monkeypatch: pytest.MonkeyPatch):
    queue = JobQueue(tmp_path / "runs")
    monkeypatch.setenv("KOBERT_DEMO_JOBS_PER_VISITOR", "10")
    monkeypatch.setenv("KOBERT_DEMO_VISITOR_RUNS", "3")
    for _ in range(3):
        queue.submit(TrainConfig(model="tiny"), small_file, owner=owner_id(ALICE))
    with pytest.raises(Exception, match="you keep 3 runs"):
        queue.submit(TrainConfig(model="tiny"), small_file, owner=owner_id(ALICE))
    monkeypatch.setenv("KOBERT_DEMO_VISITOR_MB", "0")
    with pytest.raises(Exception, match="over the 0 MB one visitor may keep"):
        queue.submit(TrainConfig(model="tiny"), small_file, owner=owner_id(BOB))


def test_the_oldest_finished_runs_go_when_the_home_is_too_big(tmp_path: Path, small_file: Path) -> None:
    queue = JobQueue(tmp_path / "runs")
    runs = [queue.submit(TrainConfig(model="tiny"), small_file) for _ in range(3)]
    for run in runs[:2]:
        run.set_status("done")
        (run.path / "model.bin").write_bytes(b"x" * 100_000)
    assert prune_runs(queue.home, 150_000) == [runs[0].name]  # the oldest finished one; queued ones stay
    assert [run.name for run in list_runs(queue.home)] == [runs[2].name, runs[1].name]


# --- safe outputs -------------------------------------------------------------------------------------------------
def test_formula_cells_are_escaped() -> None:
    assert [safe_cell(v) for v in ("=1+1", "+1", "-1", "@A1", "\tx", "\rx", "좋다", 0.5)] == [
        "'=1+1", "'+1", "'-1", "'@A1", "'\tx", "'\rx", "좋다", 0.5,
    ]  # fmt: skip
    assert csv_text([["p_=x", "=1", -1]]) == "p_=x,'=1,-1\n"  # a header too; numbers stay numbers


@pytest.fixture
def evil_run(tmp_path: Path) -> Path:
    """A tiny run (1 epoch) whose classes are a spreadsheet formula and an `@` name, in tmp_path/runs."""
    from kobert_demo.basics.data import Splits
    from kobert_demo.engine.train import train

    rows = sample_rows("nsmc/train.tsv", 20)
    names = [EVIL_CLASS, "@SUM(1,1)"]
    splits = Splits(
        train_texts=[text for text, _ in rows], train_labels=[int(label) for _, label in rows],
        test_texts=[text for text, _ in rows[:10]], test_labels=[int(label) for _, label in rows[:10]],
        label_names=names, test_source="file",
    )  # fmt: skip
    path = tmp_path / "runs" / "evil-run"
    events = list(train(TrainConfig(model="tiny", epochs=1, batch_size=16, precision="fp32"), splits, path))
    assert events[-1].type == "done"
    return path


def read_csv(path: str | Path) -> list[list[str]]:
    with open(path, encoding="utf-8-sig", newline="") as file:
        return list(csv.reader(file))


@pytest.mark.slow
def test_predictions_csvs_escape_formulas(evil_run: Path, tmp_path: Path) -> None:
    sentences = tmp_path / "sentences.txt"
    sentences.write_text("=1+2\n-3 별로\n@home 최고\n좋은 영화\n", encoding="utf-8")
    demo = build_app(evil_run.parent, queue=JobQueue(evil_run.parent))
    _, url, _ = demo.launch(server_port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        client = Client(url, verbose=False)
        web = read_csv(client.predict(evil_run.name, handle_file(sentences), api_name="/predict_file"))
    finally:
        demo.close()
    result = run_cli("predict", evil_run, "--file", sentences, "--out", tmp_path / "cli.csv", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    cli = read_csv(tmp_path / "cli.csv")
    for table in (web, cli):
        assert table[0][:3] == ["text", "label", "confidence"] and table[0][3:] == [f"p_{EVIL_CLASS}", "p_@SUM(1,1)"]
        assert [row[0] for row in table[1:]] == ["'=1+2", "'-3 별로", "'@home 최고", "좋은 영화"]
        assert {row[1] for row in table[1:]} <= {"'" + EVIL_CLASS, "'@SUM(1,1)"}
        assert all(not cell.startswith(("=", "+", "-", "@")) for row in table for cell in row)


def test_markup_in_a_shared_link_is_shown_as_text(server: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    from kobert_demo.app.ui import render

    toasts: list[str] = []
    monkeypatch.setattr(render.gr, "Warning", toasts.append)
    on_load = next(block.fn for block in server.demo.fns.values() if block.fn and block.fn.__name__ == "on_load")
    request = SimpleNamespace(
        query_params={"run": '<a href="http://evil.example">click</a>'}, headers={"accept-language": "en"}
    )
    on_load(None, request)
    assert toasts == ["There is no run &#x27;&lt;a href=&quot;http://evil.example&quot;&gt;click&lt;/a&gt;&#x27;."]


# --- one job at a time, even after a crash ------------------------------------------------------------------------
# A server (a process of its own, to be killed) whose queue starts the stub child: `python -c SERVER HOME STUB_ARGV`
SERVER = (
    "import json, sys, time; from kobert_demo.app.queue import JobQueue; "
    "JobQueue(sys.argv[1], poll_s=0.1, yield_cpu=False, child_command=json.loads(sys.argv[2])).start(); "
    "time.sleep(3600)"
)
STEP_S = 0.05  # the stub child's step: the long job lasts minutes, the short one a fraction of a second


def child_env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def queue_two(home: Path, tmp_path: Path) -> tuple[Run, Run]:
    """A long job and a short one, queued on disk."""
    big = write_tsv(tmp_path / "big.tsv", sample_rows("nsmc/train.tsv", 1000))
    small = write_tsv(tmp_path / "small.tsv", sample_rows("nsmc/train.tsv", 30))
    queue = JobQueue(home)
    return (
        queue.submit(TrainConfig(model="tiny", epochs=50, batch_size=8), big),
        queue.submit(TrainConfig(model="tiny", epochs=1, batch_size=16), small),
    )


def run_alone(home: Path, runs: list[Run]) -> None:
    """Start a queue (with the stub child) on home and watch until every run finished, never seeing two running at
    once."""
    queue = stub_queue(home, step_s=STEP_S).start()
    try:
        while not all(run.status().state in FINISHED for run in runs):
            assert sum(run.status().state == "running" for run in runs) <= 1, "two jobs ran at once"
            time.sleep(0.1)
    finally:
        queue.close()


@pytest.mark.slow
def test_a_killed_server_takes_its_job_along(tmp_path: Path) -> None:
    home = tmp_path / "runs"
    long, short = queue_two(home, tmp_path)
    command = [sys.executable, "-c", SERVER, str(home), json.dumps(stub_command(STEP_S))]
    server = subprocess.Popen(command, env=child_env())
    try:
        wait_for(lambda: any(isinstance(event, StepEvent) for event in long.events()), timeout=HANG_S)
        child = long.status().pid
        os.kill(server.pid, signal.SIGKILL)
    finally:
        server.kill()
        server.wait()
    wait_for(lambda: not pid_alive(child))  # the child saw its server die, and ended
    assert long.status().state == "stopped" and long.status().reason_key == "job_server_gone"
    run_alone(home, [long, short])
    assert short.status().state == "done" and long.status().reason_key == "job_server_gone"


@pytest.mark.slow
def test_a_restarted_server_stops_a_job_left_training(tmp_path: Path) -> None:
    """A job whose server did not take it along (no parent-death signal): the next server stops it first.

    The orphan is the real child (`python -m kobert_demo job RUN`), so that the command line the restarted server
    recognises a job by is the one the queue really starts; the short job after it is the stub's.
    """
    home = tmp_path / "runs"
    long, short = queue_two(home, tmp_path)
    env = child_env()  # started by this test, which lives on: the job outlives "its server"
    orphan = reap_when_it_ends(subprocess.Popen([sys.executable, "-m", "kobert_demo", "job", str(long.path)], env=env))
    try:
        wait_for(lambda: any(isinstance(event, StepEvent) for event in long.events()), timeout=HANG_S)
        run_alone(home, [long, short])
        assert orphan.wait(timeout=HANG_S) is not None
    finally:
        orphan.kill()
        orphan.wait()
    status = long.status()
    assert status.state == "interrupted" and status.reason_key == "job_orphan_stopped"
    assert "이전 서버" in status.reason("ko")
    assert short.status().state == "done"
    assert json.loads((long.path / "status.json").read_text())["state"] == "interrupted"
