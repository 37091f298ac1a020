"""The training child: `python -m kobert_demo job RUN`, which the job queue starts for each queued run.

It trains the run from its run folder (job.json, the copy of its data) and stops between steps when asked (the stop
file), at its time limit, or when the server that started it ends. The run-folder protocol that the queue and the
child share lives here, so that the child never imports the queue (nor its locks).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from kobert_demo.basics import files
from kobert_demo.basics.config import TrainConfig
from kobert_demo.basics.data import Splits, make_splits, read_table
from kobert_demo.basics.errors import UserFacingError
from kobert_demo.basics.events import ErrorEvent, Event
from kobert_demo.basics.messages import fmt_duration
from kobert_demo.basics.runs import Run, is_resumable, open_run

# engine.train.train's signature: (config, splits, out, should_stop, resume) -> the events, which it also writes to out
Trainer = Callable[..., Iterator[Event]]

JOB_FILE = "job.json"
STOP_FILE = "stop"
DATA_DIR = "data"
PARENT_ENV = "KOBERT_DEMO_JOB_PARENT"  # the server's pid, which the job watches
PR_SET_PDEATHSIG = 1  # linux/prctl.h
# Visitors come first: the training child runs at a lower priority, and while the server's serving mark (a file in
# the runs home, touched at most every SERVING_TOUCH_S while predictions run) is under SERVING_FRESH_S old, it
# trains on one core fewer, leaving that core to the predictions. A change of torch threads is cheap itself
# (0.3 us) but slows the next step: switching at every step took tiny steps from 8-22 ms to 325 ms (median, 2-core
# Intel AMX machine, shared). So the mark stays fresh for 10 s: visitors who keep coming hold the job on one core
# without switching, and a sporadic visitor costs at most two switches per 10 s.
JOB_NICE = 10
SERVING_MARK = ".serving"
SERVING_FRESH_S = 10.0
YIELD_ENV = "KOBERT_DEMO_JOB_YIELD"  # "0": the child neither lowers its priority nor gives a core (to measure)


def drop_data(run: Run) -> None:
    """Remove the run's copy of its data: a finished run needs none (its mistakes are in its event log), except
    one that can be resumed, which trains on it again."""
    if is_resumable(run):
        return
    shutil.rmtree(run.path / DATA_DIR, ignore_errors=True)


def stop_requested(run: Run) -> bool:
    """Whether the run's stop file is there (the queue's request_stop)."""
    return (run.path / STOP_FILE).exists()


def read_job(run: Run) -> dict:
    """The run's job.json (its data files, time limit and address), {} when there is none or it cannot be read."""
    try:
        job = files.read_json(run.path / JOB_FILE)
    except (OSError, ValueError):
        return {}
    return job if isinstance(job, dict) else {}


class _Watch:
    """What stops a job besides a stop request: its time limit, and the end of the server that started it."""

    def __init__(self, time_limit_s: float | None) -> None:
        self.deadline = time.monotonic() + time_limit_s if time_limit_s else None
        self.parent = int(os.environ.get(PARENT_ENV) or 0) or None
        self.timed_out = self.parent_gone = False
        if self.parent:
            _die_with_parent()
            signal.signal(signal.SIGTERM, lambda *_: setattr(self, "parent_gone", True))
            self.parent_gone = os.getppid() != self.parent  # it ended before the signal was set up

    def should_stop(self) -> bool:
        # getppid changes when the server dies: the check where no parent-death signal exists (not Linux)
        self.parent_gone = self.parent_gone or (self.parent is not None and os.getppid() != self.parent)
        self.timed_out = self.timed_out or (self.deadline is not None and time.monotonic() > self.deadline)
        return self.parent_gone or self.timed_out


def training_threads(cores: int, serving_age_s: float | None) -> int:
    """Torch threads for the next training step: one core left to the visitors while the serving mark is fresh
    (serving_age_s seconds old, None when there is none), every core otherwise."""
    if serving_age_s is not None and serving_age_s <= SERVING_FRESH_S:
        return max(1, cores - 1)
    return cores


class ServingYield:
    """The training child's side of the serving mark: between steps, its torch threads follow the mark."""

    def __init__(self, home: Path, cores: int | None = None) -> None:
        import torch

        self.mark = home / SERVING_MARK
        self.cores = cores or torch.get_num_threads()
        self.threads = torch.get_num_threads()

    def between_steps(self) -> None:
        """Set the torch threads for the next step (only when they change)."""
        import torch

        try:
            age = time.time() - self.mark.stat().st_mtime
        except OSError:
            age = None
        threads = training_threads(self.cores, age)
        if threads != self.threads:
            torch.set_num_threads(threads)
            self.threads = threads


def _die_with_parent() -> None:
    """Ask Linux to send this process SIGTERM when its parent (the server) dies; elsewhere nothing."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def job_splits(run: Run, config: TrainConfig, job: dict) -> Splits:
    """The splits of a queued run, from its copy of the data (job.json names the files)."""
    data = run.path / DATA_DIR  # older servers wrote whole paths: kept as they are
    train_data = read_table(data / job["train"], config.text_col, config.label_col)
    test_data = read_table(data / job["test"], config.text_col, config.label_col) if job.get("test") else None
    valid_data = read_table(data / job["valid"], config.text_col, config.label_col) if job.get("valid") else None
    return make_splits(train_data, test_data, config.test_size, config.seed, valid_data, config.validation_size)


def run_job(run_path: str | Path, train: Trainer | None = None) -> int:
    """The child process: train the queued run at run_path (its events go to its log); its exit status.

    train: engine.train.train unless given (tests/stub_job.py gives a torch-free one, so that the queue's tests
    start a child without torch).
    """
    if train is None:
        from kobert_demo.engine.train import train

    run = open_run(run_path)
    job = read_job(run)
    watch = _Watch(job.get("time_limit_s"))
    try:
        config = TrainConfig.from_dict(run.config())  # a config stored by an older version may not pass today's schema
        splits = job_splits(run, config, job)
    except Exception as error:  # checked when queued; this only guards against what changed since
        if not isinstance(error, UserFacingError):
            error = UserFacingError("train_unexpected", kind=type(error).__name__, detail=str(error))
        run.set_status("failed", error)
        drop_data(run)
        return 1
    yielding = ServingYield(run.path.parent) if os.environ.get(YIELD_ENV, "1") != "0" else None
    if yielding:
        os.nice(JOB_NICE)

    def should_stop() -> bool:
        """Called before each step: the stop checks, and the threads for the step."""
        if yielding:
            yielding.between_steps()
        return stop_requested(run) or watch.should_stop()

    failed = False
    resume = bool(job.get("resume"))  # JobQueue.resume: go on from the run's checkpoint
    for event in train(config, splits, run.path, should_stop=should_stop, resume=resume):
        failed = failed or isinstance(event, ErrorEvent)
    drop_data(run)
    if not failed and watch.parent_gone:
        run.set_status("stopped", UserFacingError("job_server_gone"))
    elif not failed and watch.timed_out:
        run.set_status("stopped", UserFacingError("job_time_limit", limit=fmt_duration(job["time_limit_s"])))
    return 1 if failed else 0
