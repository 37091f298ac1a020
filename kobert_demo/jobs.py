"""The training queue: one job at a time per server, each in a child process that writes its own run folder.

A job never runs inside a web request: the web app submits it and follows its run folder's `log.jsonl`, so page
reloads, second tabs and many visitors just work, and a crash or an out-of-memory kill cannot take the server down.
Queued runs live on disk too, so a restarted server picks them up again.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

from .config import TrainConfig
from .data import make_splits, read_table
from .errors import UserFacingError
from .runs import Run, list_runs, new_run_id, open_run

JOB_FILE = "job.json"
STOP_FILE = "stop"
PROCESS_LOG = "process.log"


def owner_id(visitor_token: str) -> str:
    """What a run stores about its owner: a hash of the visitor's browser token, never the token itself."""
    return hashlib.sha256(visitor_token.encode("utf-8")).hexdigest()[:32]


def is_owner(run: Run, visitor_token: str) -> bool:
    return bool(visitor_token) and run.config().get("owner") == owner_id(visitor_token)


def request_stop(run: Run) -> None:
    """Ask a job to stop: a queued one stops now, a running one after its current step."""
    (run.path / STOP_FILE).touch()
    if run.status()["state"] == "queued":
        run.set_status("stopped", "stopped before it started")


def stop_requested(run: Run) -> bool:
    return (run.path / STOP_FILE).exists()


class JobQueue:
    """Runs queued jobs one after another in child processes (`python -m kobert_demo job RUN`)."""

    def __init__(self, home: str | Path, poll_s: float = 0.5) -> None:
        self.home = Path(home)
        self.poll_s = poll_s
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self._process: subprocess.Popen | None = None

    # --- submitting -------------------------------------------------------------------------------------------
    def submit(
        self, config: TrainConfig, train_file: str | Path, test_file: str | Path | None = None, owner: str = ""
    ) -> Run:
        """Check the data (raising DataError/ValueError before anything is created), then queue a run."""
        config.check()
        train = read_table(train_file, config.text_col, config.label_col)
        test = read_table(test_file, config.text_col, config.label_col) if test_file else None
        splits = make_splits(train, test, config.test_size, config.seed)
        config.text_col, config.label_col = train.text_col, train.label_col
        meta = {
            "owner": owner,
            "train_file": train.name,
            "test_file": test.name if test else None,
            "train_rows": len(splits.train_texts),
            "test_rows": len(splits.test_texts),
            "label_names": splits.label_names,
        }
        self.home.mkdir(parents=True, exist_ok=True)
        run = Run.queue(self.home / new_run_id(), config, meta)
        data = run.path / "data"
        data.mkdir()
        job = {"train": str(shutil.copy(train_file, data / f"train{Path(train_file).suffix}"))}
        if test_file:
            job["test"] = str(shutil.copy(test_file, data / f"test{Path(test_file).suffix}"))
        (run.path / JOB_FILE).write_text(json.dumps(job), encoding="utf-8")
        self._wake.set()
        return run

    def queued(self) -> list[Run]:
        """Runs waiting for their turn, next first."""
        waiting = [r for r in list_runs(self.home) if r.status()["state"] == "queued"]
        return sorted(waiting, key=lambda r: r.config().get("created", 0))

    def position(self, run: Run) -> int | None:
        """1 when the run starts next, None when it is not waiting."""
        names = [r.name for r in self.queued()]
        return names.index(run.name) + 1 if run.name in names else None

    def running(self) -> Run | None:
        return next((r for r in list_runs(self.home) if r.status()["state"] == "running"), None)

    def wait_estimate(self, run: Run) -> float | None:
        """Seconds until this queued run may start: the running job's ETA plus the jobs ahead, by measured speed."""
        position = self.position(run)
        if position is None:
            return None
        total = 0.0
        current = self.running()
        if current:
            steps = [e for e in current.events() if e["type"] == "step"]
            total += steps[-1]["eta"] if steps else 0.0
        speed = self._measured_speed()
        if speed is None:
            return total or None
        for ahead in self.queued()[: position - 1]:
            cfg = ahead.config()
            total += cfg.get("train_rows", 0) * cfg.get("epochs", 1) / speed
        return total

    def _measured_speed(self) -> float | None:
        """Training sentences per second of the latest run that logged steps."""
        for run in list_runs(self.home):
            steps = [e for e in run.events() if e["type"] == "step"]
            if steps:
                return steps[-1]["sentences_per_s"]
        return None

    # --- working ----------------------------------------------------------------------------------------------
    def start(self) -> JobQueue:
        if self._thread is None:
            for run in list_runs(self.home):
                run.status()  # a run left `running` by a dead process becomes `interrupted`
            self._thread = threading.Thread(target=self._work, name="kobert-demo-jobs", daemon=True)
            self._thread.start()
        return self

    def close(self, timeout: float = 10.0) -> None:
        """Stop taking jobs; the running child is asked to stop and waited for."""
        self._closed.set()
        self._wake.set()
        if self._process and self._process.poll() is None:
            current = self.running()
            if current:
                request_stop(current)
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
        if self._thread:
            self._thread.join(timeout)

    def _work(self) -> None:
        while not self._closed.is_set():
            waiting = self.queued()
            if not waiting:
                self._wake.wait(self.poll_s)
                self._wake.clear()
                continue
            self._run_child(waiting[0])

    def _run_child(self, run: Run) -> None:
        with (run.path / PROCESS_LOG).open("ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "kobert_demo", "job", str(run.path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
            code = self._process.wait()
        if not (run.path / "status.json").is_file():
            return  # deleted as soon as it stopped
        state = json.loads((run.path / "status.json").read_text(encoding="utf-8"))["state"]
        if state in ("queued", "running", "interrupted"):  # a reader may have seen the dead pid first
            ended = (
                UserFacingError("process_killed") if code in (-9, 137) else UserFacingError("process_exit", code=code)
            )
            run.set_status("failed", str(ended), reason_ko=ended.text("ko"))


def run_job(run_path: str | Path) -> int:
    """The child process: train the queued run at run_path (its events go to its log)."""
    from .train import train

    run = open_run(run_path)
    job = json.loads((run.path / JOB_FILE).read_text(encoding="utf-8"))
    config = TrainConfig.from_dict(run.config())
    try:
        train_data = read_table(job["train"], config.text_col, config.label_col)
        test_data = read_table(job["test"], config.text_col, config.label_col) if job.get("test") else None
        splits = make_splits(train_data, test_data, config.test_size, config.seed)
    except Exception as error:  # checked when queued; this only guards against files changed since
        korean = error.text("ko") if isinstance(error, UserFacingError) else None
        run.set_status("failed", str(error), reason_ko=korean)
        return 1
    failed = False
    for event in train(config, splits, run.path, should_stop=lambda: stop_requested(run)):
        failed = failed or event.type == "error"
    return 1 if failed else 0
