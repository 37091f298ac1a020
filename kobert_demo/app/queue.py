"""The training queue: one job at a time per server, each in a child process that writes its own run folder.

A job never runs inside a web request: the web app submits it and follows its run folder's `log.jsonl`, so page
reloads, second tabs and many visitors just work, and a crash or an out-of-memory kill cannot take the server down.
Queued runs live on disk too, so a restarted server picks them up again.

A public server shares one queue among visitors who may be hostile (settings.JobLimits): each visitor may have a
few jobs waiting or running, visitors take turns, a job that cannot end within the time limit is refused and one
that runs past it is stopped, a run's copy of its data goes when it ends, and the oldest finished runs go once the
runs home is too big. A job's process dies with its server, and a restarted server stops a job that outlived the
previous one before it starts anything: never two jobs at once.

The child's side (`python -m kobert_demo job RUN`) and the run-folder protocol both sides share are in
training_child; this module imports them from there, never the reverse, so that the child loads no queue.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import psutil
from filelock import FileLock, Timeout

from kobert_demo.app.training_child import (
    DATA_DIR,
    JOB_FILE,
    PARENT_ENV,
    SERVING_MARK,
    STOP_FILE,
    YIELD_ENV,
    drop_data,
    read_job,
    stop_requested,
)
from kobert_demo.basics import files
from kobert_demo.basics.config import TrainConfig
from kobert_demo.basics.data import make_splits, read_table
from kobert_demo.basics.errors import UserFacingError
from kobert_demo.basics.events import StepEvent
from kobert_demo.basics.messages import fmt_duration, t
from kobert_demo.basics.runs import (
    HIDDEN,
    Run,
    check_resumable,
    check_same_classes,
    clean_hidden,
    current_state,
    delete_run,
    folder_bytes,
    init_source,
    list_runs,
    new_run_id,
    pid_alive,
    prune_runs,
)
from kobert_demo.basics.settings import job_limits

PROCESS_LOG = "process.log"
# The child's command line, before its run folder: `job` and the run folder in it are what tells a job of this
# runs home from any other process (_is_job_of).
JOB_COMMAND = (sys.executable, "-m", "kobert_demo", "job")
# The child stops itself at its time limit, between steps; the server kills it only if it has not ended this much
# later (a step that hangs, or a model that takes forever to load).
KILL_GRACE_S = 60.0
ORPHAN_STOP_S = 30.0  # how long a restarted server lets a previous server's job stop before killing it
SERVING_TOUCH_S = 0.5  # how often at most the server touches the serving mark (training_child)
# One server per runs home: the server that holds this lock (an flock, released by the kernel when its process
# dies, even by kill -9) runs the queue; another one on the same home serves read-only until it gets the lock.
LOCK_FILE = ".lock"
log = logging.getLogger(__name__)


def owner_id(visitor_token: str) -> str:
    """What a run stores about its owner: a hash of the visitor's browser token, never the token itself."""
    return hashlib.sha256(visitor_token.encode("utf-8")).hexdigest()[:32]


def address_id(address: str) -> str:
    """What a queued job keeps of the network address it came from (to cap each address's share of the queue): a
    hash, kept in its private job.json only."""
    return hashlib.sha256(f"kobert-demo address {address}".encode()).hexdigest()[:32] if address else ""


def is_owner(run: Run, visitor_token: str) -> bool:
    return bool(visitor_token) and run.config().get("owner") == owner_id(visitor_token)


def request_stop(run: Run) -> None:
    """Ask a job to stop: a queued one stops now (and its copy of the data goes), a running one after its step."""
    (run.path / STOP_FILE).touch()
    if run.status().state == "queued":
        run.set_status("stopped", UserFacingError("reason_stopped_queued"))
        drop_data(run)


class JobQueue:
    """Runs queued jobs one after another in child processes (`python -m kobert_demo job RUN`)."""

    def __init__(
        self,
        home: str | Path,
        poll_s: float = 0.5,
        yield_cpu: bool = True,
        child_command: Sequence[str] = JOB_COMMAND,
    ) -> None:
        self.home = Path(home)
        self.poll_s = poll_s
        self.yield_cpu = yield_cpu  # whether jobs yield the CPU to visitors (False only to measure what it costs)
        # What starts a job, the run folder appended; another command (with `job` in it) only in tests: a stub child
        self.child_command = tuple(child_command)
        self._serving_touched = 0.0
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self._process: subprocess.Popen | None = None
        self._submit_lock = threading.Lock()
        self._lock: FileLock | None = None  # the runs home's, once taken
        self._current: str | None = None  # the run whose job this queue runs, until it has taken up its end

    # --- submitting -------------------------------------------------------------------------------------------
    def submit(
        self,
        config: TrainConfig,
        train_file: str | Path,
        test_file: str | Path | None = None,
        valid_file: str | Path | None = None,
        owner: str = "",
        address: str = "",
    ) -> Run:
        """Check the settings, the data, this visitor's and this address's share of the queue and the room left
        (raising a UserFacingError or a ValueError before anything is created), then queue a run (config itself is
        left as it was). address: the client's network address, where known (never stored as such).

        The run is prepared under a hidden name (its config, status, copy of the data and job.json) and renamed into
        place whole, so the queue never sees a run that is half there.
        """
        self.check_writable()
        config.check()
        train = read_table(train_file, config.text_col, config.label_col)
        test = read_table(test_file, config.text_col, config.label_col) if test_file else None
        valid = read_table(valid_file, config.text_col, config.label_col) if valid_file else None
        splits = make_splits(train, test, config.test_size, config.seed, valid, config.validation_size)
        config.check(train_rows=len(splits.train_texts))
        if config.init_from:  # the run continued decides the backbone: its memory, its estimate, its card
            source = self._check_init_from(config.init_from, splits.label_names, owner)
            config = replace(config, model=source.config()["model"])
        from kobert_demo.engine.memory import check_training_memory

        check_training_memory(config.model, splits.label_names, config.batch_size, config.max_len)
        config = replace(config, text_col=train.text_col, label_col=train.label_col)  # the columns detected
        meta = {
            "owner": owner,
            "train_file": train.name,
            "test_file": test.name if test else None,
            "valid_file": valid.name if valid else None,
            "train_rows": len(splits.train_texts),
            "valid_rows": len(splits.valid_texts),
            "test_rows": len(splits.test_texts),
            "label_names": splits.label_names,
        }
        limits = job_limits()
        upload = sum(Path(f).stat().st_size for f in (train_file, test_file, valid_file) if f)
        with self._submit_lock:  # two requests must not both pass the checks
            if owner:
                self._check_visitor(owner, upload)
            self._check_room(address_id(address), upload)
            self._check_time(config, len(splits.train_texts), limits.max_job_s)
            self.home.mkdir(parents=True, exist_ok=True)
            prune_runs(self.home, limits.runs_home_bytes)
            name = new_run_id()
            staging = files.temp_name(self.home / name)
            try:
                run = Run.queue(staging, config, meta)
                data = run.path / DATA_DIR
                data.mkdir()
                job = {"train": f"train{Path(train_file).suffix}", "time_limit_s": limits.max_job_s}
                shutil.copy(train_file, data / job["train"])
                if test_file:
                    job["test"] = f"test{Path(test_file).suffix}"
                    shutil.copy(test_file, data / job["test"])
                if valid_file:
                    job["valid"] = f"valid{Path(valid_file).suffix}"
                    shutil.copy(valid_file, data / job["valid"])
                job["address"] = address_id(address)
                files.write_json(run.path / JOB_FILE, job)
                os.rename(staging, self.home / name)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
        self._wake.set()
        return Run(self.home / name)

    def resume(self, name: str, owner: str = "", address: str = "") -> Run:
        """Queue the run named name again, to go on from its checkpoint (the child trains it with resume=True).

        Refused in one sentence (a UserFacingError) when there is no such run, when it is another visitor's (owner:
        as submit's), when it cannot be resumed (runs.check_resumable) or its copy of the data is gone, and by the
        limits submit applies to a visitor's and an address's jobs waiting or running. It keeps its place by when
        it was first queued, so visitors still take turns.
        """
        self.check_writable()
        if not name or Path(name).name != name or name.startswith(HIDDEN):
            raise UserFacingError("err_no_such_run", run=name[:80])
        run = Run(self.home / name)
        if not (run.path / "status.json").is_file():
            raise UserFacingError("err_no_such_run", run=name[:80])
        if owner and run.config().get("owner") != owner:
            raise UserFacingError("err_not_owner", run=name)
        # A job that has just stopped has stored its state, but the queue has yet to take up its end (its copy of
        # the data, its exit status): resuming meanwhile would be undone.
        deadline = time.monotonic() + KILL_GRACE_S
        while self._current == name and time.monotonic() < deadline:
            time.sleep(0.05)
        with self._submit_lock:
            check_resumable(run)
            job = read_job(run)
            if not job.get("train") or not (run.path / DATA_DIR / job["train"]).is_file():
                raise UserFacingError("resume_no_data", run=name)
            if owner:
                self._check_visitor_active(owner)
            self._check_room(address_id(address), 0)
            # No time check: the run's own time limit stops it again, and a run stopped by that limit is the one
            # most likely to be resumed.
            (run.path / STOP_FILE).unlink(missing_ok=True)
            files.write_json(run.path / JOB_FILE, {**job, "resume": True, "address": address_id(address)})
            run.set_status("queued")
        self._wake.set()
        return run

    def _check_init_from(self, init_from: str, label_names: list[str], owner: str) -> Run:
        """The run a "Continue training" starts from; refused when it names no finished run of this visitor in this
        runs home (a visitor never names a server path), or when its classes are not the data's."""
        if owner and (Path(init_from).name != init_from or init_from.startswith(HIDDEN)):
            raise UserFacingError("init_from_not_a_name", value=init_from[:80])
        source = init_source(init_from, self.home)
        if owner and source.config().get("owner") != owner:
            raise UserFacingError("err_not_owner", run=source.name)
        check_same_classes(source, label_names)
        return source

    def _check_room(self, address: str, upload: int) -> None:
        """Refuse a job when the queue is full, when this address holds its share of it, or when the runs waiting
        or running (their copies of the data included) would fill the runs home: minted visitor tokens pass the
        per-visitor checks, these they do not."""
        limits = job_limits()
        states = {run: current_state(run) for run in list_runs(self.home)}
        active = [run for run, state in states.items() if state in ("queued", "running")]
        waiting = sum(state == "queued" for state in states.values())
        if waiting >= limits.max_queued:
            raise UserFacingError("job_queue_full", count=waiting)
        if address:
            mine = sum(read_job(run).get("address") == address for run in active)
            if mine >= limits.jobs_per_address:
                raise UserFacingError("job_address_busy", count=mine)
        held = sum(folder_bytes(run.path) for run in active) + upload
        if held > limits.runs_home_bytes:
            raise UserFacingError("job_home_full", mb=-(-held // 2**20), limit=limits.runs_home_bytes // 2**20)

    def _check_visitor(self, owner: str, upload: int) -> None:
        """Refuse a visitor who has as many jobs waiting or running, runs or bytes as one visitor may have."""
        limits = job_limits()
        mine = self._check_visitor_active(owner)
        if len(mine) >= limits.visitor_runs:
            raise UserFacingError("job_visitor_runs", count=len(mine))
        total = sum(folder_bytes(run.path) for run in mine) + upload
        if total > limits.visitor_bytes:
            raise UserFacingError("job_visitor_bytes", mb=-(-total // (1024 * 1024)), limit=limits.visitor_mb)

    def _check_visitor_active(self, owner: str) -> list[Run]:
        """Refuse a visitor who has as many jobs waiting or running as one visitor may have; the visitor's runs."""
        mine = [run for run in list_runs(self.home) if run.config().get("owner") == owner]
        active = sum(current_state(run) in ("queued", "running") for run in mine)
        if active >= job_limits().jobs_per_visitor:
            raise UserFacingError("job_visitor_busy", count=active)
        return mine

    def _check_time(self, config: TrainConfig, train_rows: int, limit_s: int) -> None:
        """Refuse a job that the latest measured speed of its model says cannot end within limit_s.

        Without a measurement (the model's first run) it is queued: the running limit still stops it in time.
        """
        speed = self._measured_speed(config.model)
        if speed and train_rows * config.epochs / speed > limit_s:
            raise UserFacingError(
                "job_too_long", estimate=fmt_duration(train_rows * config.epochs / speed), speed=speed,
                limit=fmt_duration(limit_s),
            )  # fmt: skip

    def queued(self) -> list[Run]:
        """Runs waiting for their turn, next first: visitors take turns, each visitor's runs in the order queued.

        A run's turn is how many runs of its owner are running or ahead of it, so a visitor who queued many runs
        waits behind each other visitor's first one (round robin), whoever came first.
        """
        runs = list_runs(self.home)
        states = {run.name: current_state(run) for run in runs}
        turns = Counter(run.config().get("owner", "") for run in runs if states[run.name] == "running")
        order = []
        for run in sorted((r for r in runs if states[r.name] == "queued"), key=lambda r: r.config().get("created", 0)):
            config = run.config()
            owner = config.get("owner", "")
            order.append((turns[owner], config.get("created", 0), run))
            turns[owner] += 1
        return [run for _, _, run in sorted(order, key=lambda item: item[:2])]

    def position(self, run: Run) -> int | None:
        """1 when the run starts next, None when it is not waiting."""
        names = [r.name for r in self.queued()]
        return names.index(run.name) + 1 if run.name in names else None

    def running(self) -> Run | None:
        return next((r for r in list_runs(self.home) if current_state(r) == "running"), None)

    def wait_estimate(self, run: Run) -> float | None:
        """Seconds until this queued run may start: the running job's ETA plus the jobs ahead, by measured speed."""
        position = self.position(run)
        if position is None:
            return None
        total = 0.0
        current = self.running()
        last_step = _last_step(current) if current else None
        if last_step:
            total += last_step.eta
        fallback = self._measured_speed()
        if fallback is None:
            return total or None
        for ahead in self.queued()[: position - 1]:
            cfg = ahead.config()
            speed = self._measured_speed(cfg.get("model")) or fallback
            total += cfg.get("train_rows", 0) * cfg.get("epochs", 1) / speed
        return total

    def measured_speeds(self) -> dict[str, float]:
        """Each model's training sentences per second in its latest run that logged steps (the speed the queue's
        estimates use), by model name."""
        speeds: dict[str, float] = {}
        for run in list_runs(self.home):  # newest first
            model = run.config().get("model")
            if model is None or model in speeds:
                continue
            last_step = _last_step(run)
            if last_step:
                speeds[model] = last_step.sentences_per_s
        return speeds

    def _measured_speed(self, model: str | None = None) -> float | None:
        """Training sentences per second of the latest run (of model, if given) that logged steps."""
        for run in list_runs(self.home):
            if model is not None and run.config().get("model") != model:
                continue
            last_step = _last_step(run)
            if last_step:
                return last_step.sentences_per_s
        return None

    def mark_serving(self) -> None:
        """Tell the training child that visitors are waiting for predictions, so that it leaves them a core: touch
        the serving mark, at most once per SERVING_TOUCH_S."""
        now = time.monotonic()
        if now - self._serving_touched < SERVING_TOUCH_S:
            return
        self._serving_touched = now
        with contextlib.suppress(OSError):  # no runs home yet, or a read-only one: predictions go on regardless
            (self.home / SERVING_MARK).touch()

    # --- the runs home: one server at a time ---------------------------------------------------------------
    @property
    def holds_home(self) -> bool:
        """Whether this queue holds the runs home (it runs jobs); another server's queue does while this is False."""
        return self._lock is not None and self._lock.is_locked

    @property
    def read_only(self) -> bool:
        """Whether this started queue waits for another server to let the runs home go (it serves read-only)."""
        return self._thread is not None and not self.holds_home

    def check_writable(self) -> None:
        """Refuse (UserFacingError) what only the server holding the runs home may do: queue, stop or delete runs."""
        if self.read_only:
            raise UserFacingError("job_home_taken")

    def stop(self, run: Run) -> None:
        """Ask run's job to stop (request_stop), on the server that holds the runs home."""
        self.check_writable()
        request_stop(run)
        self._wake.set()

    def delete(self, run: Run) -> None:
        """Delete a finished run (runs.delete_run), on the server that holds the runs home."""
        self.check_writable()
        delete_run(run)

    def _take_home(self) -> bool:
        """Try to take the runs home's lock (never waiting); on success take up what a previous server left."""
        if self.holds_home:
            return True
        try:
            self.home.mkdir(parents=True, exist_ok=True)
            if self._lock is None:
                # thread_local=False: taken by the worker or start(), released by close() on another thread
                self._lock = FileLock(self.home / LOCK_FILE, thread_local=False)
            self._lock.acquire(timeout=0)
        except (Timeout, OSError):
            return False
        self._take_up()
        return True

    def _take_up(self) -> None:
        """Stop what a previous server left training, store what ended while no server was there, and remove what
        killed preparations and removals left; one damaged run folder never stops the rest."""
        clean_hidden(self.home)
        for run in list_runs(self.home):
            try:
                run.mark_interrupted()  # left `running` by a process that is gone
                status = run.status()
                if status.state == "running" and _is_job_of(status.pid, run, status.pid_started):
                    stop_orphan(run, status.pid, status.pid_started)  # others (a CLI run in this home) are waited for
                if run.status().finished:
                    drop_data(run)  # ended while no server was there to clean up
                    files.remove_temps(run.model_dir)  # a save killed half way: its writer is gone for good
            except Exception:
                log.exception("run %s could not be taken up; it is left as it is", run.name)

    # --- working ----------------------------------------------------------------------------------------------
    def start(self) -> JobQueue:
        """Take up the runs home (or, when another server holds it, serve read-only until it stops), then work
        through the queue."""
        if self._thread is None:
            if not self._take_home():
                log.warning("%s", t("en", "job_home_taken"))
            self._thread = threading.Thread(target=self._work, name="kobert-demo-jobs", daemon=True)
            self._thread.start()
        return self

    def close(self, timeout: float = 10.0) -> None:
        """Stop taking jobs; the running child is asked to stop and waited for, then the runs home is let go."""
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
        if self.holds_home:
            self._lock.release()

    def _work(self) -> None:
        """The worker thread: nothing that one job or one run folder does can end it."""
        while not self._closed.is_set():
            try:
                run = self._next() if self._take_home() else None
            except Exception:  # the runs home itself unreadable for a moment (a full disk, a removed volume)
                log.exception("the job queue could not read the runs home; it tries again")
                run = None
            if run is None:
                self._wake.wait(self.poll_s)
                self._wake.clear()
                continue
            self._current = run.name
            try:
                self._run_child(run)
            except Exception as error:
                log.exception("job %s failed in the queue", run.name)
                self._fail(run, error)
                self._wake.wait(self.poll_s)  # whatever broke may break again: never spin
            finally:
                self._current = None

    def _next(self) -> Run | None:
        """The next run to start, if it may start now.

        A run still `running` belongs to a process this queue did not start (one being stopped, or a CLI run in this
        home): its end comes first, so that one job trains at a time.
        """
        waiting = self.queued()
        if not waiting or self.running() is not None:
            return None
        return waiting[0]

    def _fail(self, run: Run, error: Exception) -> None:
        """Store that the queue could not run this job, and why, so that it stops waiting (and the next one goes)."""
        with contextlib.suppress(Exception):
            if self._process is not None and self._process.poll() is None:
                self._process.kill()
        try:
            if current_state(run) in ("queued", "running"):
                run.set_status("failed", UserFacingError("job_unexpected", kind=type(error).__name__))
            drop_data(run)
        except Exception:
            log.exception("run %s could not be marked failed", run.name)

    def _run_child(self, run: Run) -> None:
        limit_s = read_job(run).get("time_limit_s")
        if stop_requested(run) or current_state(run) != "queued":
            return  # stopped or deleted since it was picked
        timed_out = False
        with (run.path / PROCESS_LOG).open("ab") as log:
            self._process = subprocess.Popen(
                [*self.child_command, str(run.path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, PARENT_ENV: str(os.getpid()), YIELD_ENV: "1" if self.yield_cpu else "0"},
            )
            try:
                code = self._process.wait(limit_s + KILL_GRACE_S if limit_s else None)
            except subprocess.TimeoutExpired:
                self._process.kill()
                code, timed_out = self._process.wait(), True
        drop_data(run)
        prune_runs(self.home, job_limits().runs_home_bytes)
        if current_state(run) is None:
            return  # deleted as soon as it stopped
        if timed_out:
            run.set_status("stopped", UserFacingError("job_time_limit", limit=fmt_duration(limit_s)))
            return
        if current_state(run) in ("queued", "running", "interrupted"):  # it ended without saying how
            ended = (
                UserFacingError("process_killed") if code in (-9, 137) else UserFacingError("process_exit", code=code)
            )
            run.set_status("failed", ended)


def _last_step(run: Run) -> StepEvent | None:
    """The run's last logged step, None when it has none or its summary cannot be read now."""
    try:
        return run.summary().last_step
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _is_job_of(pid: int | None, run: Run, started: float | None = None) -> bool:
    """Whether pid (started at `started`, when known) is the job process of run, not another process that got its
    pid since."""
    if not pid or pid == os.getpid() or not pid_alive(pid, started):
        return False
    try:
        command = psutil.Process(pid).cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):  # gone, or another user's: not a job this server started
        return False
    return "job" in command and str(run.path) in command


def stop_orphan(run: Run, pid: int | None, started: float | None = None) -> None:
    """Stop a job that a previous server left training (asked, then killed), and mark its run interrupted."""
    if _is_job_of(pid, run, started):
        request_stop(run)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + ORPHAN_STOP_S
        while pid_alive(pid, started) and time.monotonic() < deadline:
            time.sleep(0.1)
        if pid_alive(pid, started):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    run.set_status("interrupted", UserFacingError("job_orphan_stopped"))
    drop_data(run)
