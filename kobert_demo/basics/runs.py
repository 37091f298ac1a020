"""The run folder: config, labels, status, an append-only event log and its summary, the kept model and its card.

```
RUN/
  config.json   labels.json   status.json   log.jsonl   summary.json   README.md   model/   checkpoint/
```
`model/` is the kept model; `checkpoint/` the training state of the last validation evaluation (engine/resume.py),
from which an interrupted, stopped or failed run resumes (`Run.reopen`).
Another process follows a run by reading `log.jsonl` from an offset (`read_events`), or reads `summary.json` (last
step, kept epoch, final state) to show it without rereading the log. A run whose status says `running` while its
process is gone reads as `interrupted` (computed, not stored: reading never writes; `mark_interrupted` stores it),
with its kept model (the best on the validation data so far) still usable. Reasons are stored as message keys plus
parameters and rendered in the reader's language (`RunStatus.reason`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from kobert_demo.basics import files
from kobert_demo.basics.config import METRICS_FILE, WEIGHTS_FILE, TrainConfig
from kobert_demo.basics.errors import UserFacingError
from kobert_demo.basics.events import (
    DoneEvent,
    EpochEvent,
    Event,
    StepEvent,
    StoredMessage,
    Summary,
    event_from_json,
    params_from_json,
    params_to_json,
)
from kobert_demo.basics.messages import Term

STATES = ("queued", "running", "done", "stopped", "failed", "interrupted")
FINISHED = ("done", "stopped", "failed", "interrupted")
RESUMABLE = ("interrupted", "stopped", "failed")  # with a checkpoint: the states a run may be resumed from
CHECKPOINT_DIR = "checkpoint"
POSITION_FILE = "position.json"  # in CHECKPOINT_DIR, written last of its files (the folder is swapped in whole)
# How often a step rewrites summary.json (every other event rewrites it at once). Measured on the 2-core dev machine:
# one append plus an atomic summary write takes 0.3 ms with 2 classes and 27 ms with 200 (the kept epoch's 200x200
# confusion matrix), against about 40 ms for a tiny step on its CPU (less on a GPU). Throttled, a step's append
# takes 0.04-0.05 ms either way; readers poll once a second.
SUMMARY_EVERY_S = 0.5
# psutil derives a start time from the boot time and the process's start tick, both read afresh each call: two
# readings of one process agree to the tick (0.01 s), so a second of slack never takes one process for another.
START_SLACK_S = 1.0
DELETING = ".deleting"
HIDDEN = "."  # names under a runs home that are not runs: the lock, marks, runs being prepared or deleted
log = logging.getLogger(__name__)


class RunError(UserFacingError, ValueError):
    """A folder that is not a run, or a run that lacks what was asked of it."""


def new_run_id() -> str:
    """Unguessable, sortable by time: a shared link to a run is a capability."""
    return time.strftime("%Y%m%d-%H%M%S-") + secrets.token_urlsafe(12).replace("_", "x").replace("-", "x")


def process_started(pid: int) -> float | None:
    """When process pid started (seconds since the epoch, as psutil reads it), None when it is gone."""
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def pid_alive(pid: int, started: float | None = None) -> bool:
    """Whether the process pid (started at `started`, when known) runs.

    The start time tells a pid reused by another process since (a restarted container counts pids from 1 again).
    A zombie (dead, not reaped) counts only when this process is its parent, which reaps it and then records how it
    ended; another's may never be reaped (an init that does not).
    """
    try:
        process = psutil.Process(pid)
        if started is not None and abs(process.create_time() - started) > START_SLACK_S:
            return False
        return process.status() != psutil.STATUS_ZOMBIE or process.ppid() == os.getpid()
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:  # someone else's process: it exists, and nothing more is known
        return True


@dataclass(frozen=True)
class RunStatus:
    """A run's state and why it is in it (a message key and its parameters, rendered when shown)."""

    state: str
    reason_key: str | None = None
    reason_params: dict[str, Any] = field(default_factory=dict)  # JSON-safe (events.params_to_json)
    pid: int | None = None  # the training process, while it runs
    pid_started: float | None = None  # when that process started (psutil), so that a reused pid is not taken for it
    updated: float = 0.0

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    def reason(self, lang: str) -> str | None:
        """Why the run is in its state, in lang ("ko" Korean, anything else English); None when nothing says."""
        if not self.reason_key:
            return None
        return StoredMessage(self.reason_key, **params_from_json(self.reason_params)).text(lang)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunStatus:
        return cls(
            state=data["state"],
            reason_key=data.get("reason_key"),
            reason_params=data.get("reason_params") or {},
            pid=data.get("pid"),
            pid_started=data.get("pid_started"),
            updated=data.get("updated", 0.0),
        )


class Run:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._config: dict | None = None  # as list_runs read it (a run's config is written when it is queued, and
        # once more, with the same settings, when its job starts)
        self._summary: Summary | None = None  # what this writer has appended, kept to update summary.json
        self._summary_written = 0.0

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def model_dir(self) -> Path:
        return self.path / "model"

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / CHECKPOINT_DIR

    @property
    def has_checkpoint(self) -> bool:
        """Whether the run kept a resumable training state (its folder is swapped in whole, engine/resume.py)."""
        return (self.checkpoint_dir / POSITION_FILE).is_file()

    @property
    def log_path(self) -> Path:
        return self.path / "log.jsonl"

    @property
    def summary_path(self) -> Path:
        return self.path / "summary.json"

    @property
    def status_path(self) -> Path:
        return self.path / "status.json"

    @property
    def has_model(self) -> bool:
        """Whether the run keeps a model: its folder is swapped in whole (model.save_classifier), so weights there
        come with their config, tokenizer, card and figures."""
        return (self.model_dir / WEIGHTS_FILE).is_file()

    # --- creating ---------------------------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, config: TrainConfig, label_names: list[str], meta: dict) -> Run:
        """A new run folder, or a queued one taken over; never overwrites a run that started (finished work)."""
        run = cls(path)
        if run.status_path.exists() and run._stored_status().state != "queued":
            raise RunError("run_folder_taken", path=run.path)
        run.path.mkdir(parents=True, exist_ok=True)
        previous = _read_json(run.path / "config.json") if (run.path / "config.json").is_file() else {}
        _write_json(run.path / "labels.json", label_names)
        run._start({**previous, **config.to_dict(), **meta}, previous.get("created", time.time()), "running")
        return run

    @classmethod
    def reopen(cls, path: str | Path) -> tuple[Run, dict[str, Any]]:
        """A run taken up again from its checkpoint (queued for it, or resumable), and the checkpoint's position.

        Its log and summary go back to what they were when the checkpoint was saved (the position's `log_bytes`),
        so that the resumed run's log reads as one run: what was logged after the checkpoint is done again.
        """
        run = open_run(path)
        state = run.status().state
        if state != "queued":
            check_resumable(run)
        elif not run.has_checkpoint:
            raise RunError("run_no_checkpoint", run=run.name)
        position = _read_json(run.checkpoint_dir / POSITION_FILE)
        run.rewind(int(position["log_bytes"]))
        run.set_status("running", pid=os.getpid())
        return run, position

    def rewind(self, log_bytes: int) -> None:
        """Cut the log back to its first log_bytes bytes and its summary to match, each replaced whole."""
        with self.log_path.open("rb") as log:
            kept = log.read(log_bytes)
        files.write_bytes(self.log_path, kept)
        self._write_summary(Summary.of(self.events()))

    @classmethod
    def queue(cls, path: str | Path, config: TrainConfig, meta: dict) -> Run:
        """A run folder waiting for its turn (status `queued`)."""
        run = cls(path)
        run.path.mkdir(parents=True, exist_ok=False)
        run._start({**config.to_dict(), **meta}, time.time(), "queued")
        return run

    def _start(self, config: dict, created: float, state: str) -> None:
        """The files every run begins with: its config, an empty log and summary, and its first state."""
        _write_json(self.path / "config.json", {**config, "created": created})
        self.log_path.touch()
        self._write_summary(Summary())
        self.set_status(state, pid=os.getpid() if state == "running" else None)

    def set_status(self, state: str, reason: UserFacingError | None = None, pid: int | None = None) -> None:
        """Store the state, and why (a message: its key and parameters are kept, not its sentence)."""
        if state not in STATES:
            raise ValueError(f"unknown run state {state!r}")
        status = RunStatus(
            state,
            reason_key=reason.key if reason else None,
            reason_params=params_to_json(reason.params) if reason else {},
            pid=pid,
            pid_started=process_started(pid) if pid else None,
            updated=time.time(),
        )
        _write_json(self.status_path, status.to_json())

    def mark_interrupted(self) -> bool:
        """Store `interrupted` for a run whose status says running while its process is gone; whether it did.

        The one write of what `status()` only reports: the job queue calls it when it takes up the runs home.
        """
        stored = self._stored_status()
        status = self._interpret(stored)
        if status.state == stored.state:
            return False
        _write_json(self.status_path, status.to_json())
        return True

    def append(self, event: Event) -> None:
        """Add one event to the log, flushed at once for whoever follows it, and bring summary.json up to date
        (the first step and every other event at once, later steps at most every SUMMARY_EVERY_S)."""
        with self.log_path.open("a", encoding="utf-8") as log:
            log.write(json.dumps(event.to_json(), ensure_ascii=False) + "\n")
        if self._summary is None:
            self._summary = self.summary()
        throttled = isinstance(event, StepEvent) and self._summary.last_step is not None
        self._summary.absorb(event)
        if not throttled or time.monotonic() - self._summary_written >= SUMMARY_EVERY_S:
            self._write_summary(self._summary)

    def _write_summary(self, summary: Summary) -> None:
        _write_json(self.summary_path, summary.to_json())
        self._summary, self._summary_written = summary, time.monotonic()

    def write_card(self, text: str) -> None:
        files.write_text(self.path / "README.md", text)

    # --- reading ----------------------------------------------------------------------------------------------
    def config(self) -> dict:
        if self._config is not None:
            return self._config
        config = _read_json(self.path / "config.json")
        if not isinstance(config, dict):
            raise ValueError("config.json does not hold settings")
        return config

    def labels(self) -> list[str]:
        return _read_json(self.path / "labels.json")

    def status(self) -> RunStatus:
        """The stored status; `running` with a dead process is reported as `interrupted` (and not stored)."""
        return self._interpret(self._stored_status())

    def _stored_status(self) -> RunStatus:
        return RunStatus.from_json(_read_json(self.status_path))

    def _interpret(self, status: RunStatus) -> RunStatus:
        if status.state != "running" or not status.pid or pid_alive(status.pid, status.pid_started):
            return status
        key = "reason_process_gone_kept" if self.has_model else "reason_process_gone"
        return RunStatus("interrupted", reason_key=key, updated=status.updated)

    def read_events(self, offset: int = 0) -> tuple[list[Event], int]:
        """Events appended since byte offset, and the offset to continue from (partial last lines wait)."""
        if not self.log_path.is_file():
            return [], offset
        with self.log_path.open("rb") as log:
            log.seek(offset)
            data = log.read()
        end = data.rfind(b"\n") + 1
        events = [event_from_json(json.loads(line)) for line in data[:end].splitlines() if line.strip()]
        return events, offset + end

    def events(self) -> list[Event]:
        return self.read_events()[0]

    def summary(self) -> Summary:
        """The last step, the kept epoch and its test metrics, and how the run ended, without reading the log
        (a folder from a version that kept no summary.json: folded from its log).

        Until the log has an end, the kept epoch and its figures are the model folder's own (`kept`): training logs
        an evaluation just after saving the model it keeps, and a kill in between leaves the log behind the weights. A
        log that ended (done, stopped, failed) was written by a process that lived to log every epoch it saved.
        """
        if not self.summary_path.is_file():
            summary = Summary.of(self.events())
        else:
            summary = Summary.from_json(_read_json(self.summary_path))
        kept = self.kept() if summary.state is None else None
        if kept is not None:
            summary.kept_epoch, summary.kept_step, summary.test = kept.kept_epoch, kept.kept_step, kept.test
        return summary

    def kept(self) -> DoneEvent | None:
        """The kept model's figures, saved with its weights (state "running" while the run goes on: its test figures
        are there when it was kept at an epoch's end); None without a model (or one saved before figures were)."""
        try:
            data = files.read_json(self.model_dir / METRICS_FILE)
        except FileNotFoundError:
            return None
        if data.get("type") == "epoch":  # saved before #25: the last completed epoch's figures
            epoch = EpochEvent.from_json(data)
            return DoneEvent("running", epoch.epoch, epoch.test, epoch.elapsed, None, mistakes=epoch.mistakes)
        return DoneEvent.from_json(data)

    def final_metrics(self) -> dict | None:
        """The kept model's test metrics, once known."""
        return self.summary().test


def open_run(path: str | Path) -> Run:
    run = Run(path)
    files.recover_folder(run.model_dir)  # a model swap killed half way (where renameat2 is missing)
    files.recover_folder(run.checkpoint_dir)
    if not (run.path / "status.json").is_file() or not (run.path / "config.json").is_file():
        raise RunError("run_not_a_run", path=run.path)
    return run


def is_resumable(run: Run) -> bool:
    """Whether run can be resumed: it was interrupted, stopped or failed, and it kept a checkpoint."""
    return current_state(run) in RESUMABLE and run.has_checkpoint


def check_resumable(run: Run) -> None:
    """Refuse (RunError, one sentence) a run that cannot be resumed, saying why."""
    state = current_state(run)
    if state not in RESUMABLE:
        raise RunError("run_not_resumable", run=run.name, state=Term(state or "damaged"))
    if not run.has_checkpoint:
        raise RunError("run_no_checkpoint", run=run.name)


def init_source(init_from: str, home: str | Path | None = None) -> Run:
    """The finished run with a model that "Continue training" (config.init_from) starts from: a bare run name is
    looked for in home (the runs home of the new run) first, anything else is a path."""
    path = Path(init_from).expanduser()
    candidates = [Path(home) / init_from] if home is not None and path.name == init_from else []
    for candidate in [*candidates, path]:
        if (candidate / "status.json").is_file():
            run = open_run(candidate)
            break
    else:
        raise RunError("run_not_a_run", path=init_from)
    if current_state(run) not in FINISHED or not run.has_model:
        raise RunError("init_from_no_model", run=run.name)
    return run


def check_same_classes(run: Run, label_names: list[str]) -> None:
    """Refuse data whose classes are not those run's model was trained on, naming the extra or missing ones."""
    known = run.labels()
    extra = [name for name in label_names if name not in known]
    if extra:
        raise RunError("init_from_extra_classes", run=run.name, labels=", ".join(f"'{n}'" for n in extra))
    missing = [name for name in known if name not in label_names]
    if missing:
        raise RunError("init_from_missing_classes", run=run.name, labels=", ".join(f"'{n}'" for n in missing))


def list_runs(home: str | Path) -> list[Run]:
    """The runs under home, newest first.

    A folder that cannot be read as a run is left out: one being removed or prepared (they are renamed to hidden
    names first, but a listing may race the rename), or a damaged one (torn JSON from outside our writer, a hand
    edit), which is reported once in the server's log. Nothing one run folder holds can stop a listing.
    """
    home = Path(home)
    try:
        paths = [path for path in home.iterdir() if not path.name.startswith(HIDDEN)]
    except (FileNotFoundError, NotADirectoryError):
        return []
    runs = []
    for path in paths:
        run = Run(path)
        try:
            run._config = run.config()
            run._stored_status()
            created = float(run._config.get("created", 0))
        except FileNotFoundError:
            continue  # not a run, or one removed since the listing
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            if isinstance(error, RunError) and error.key == "run_missing_file":
                continue
            _report_damaged(path, error)
            continue
        runs.append((created, run))
    return [run for _, run in sorted(runs, key=lambda item: item[0], reverse=True)]


_damaged: set[str] = set()


def _report_damaged(path: Path, error: Exception) -> None:
    """Say once per folder, in the server's log, that a run folder could not be read (it is left out)."""
    if str(path) not in _damaged:
        _damaged.add(str(path))
        log.warning("run folder %s left out: it cannot be read (%s: %s)", path.name, type(error).__name__, error)


def folder_bytes(path: str | Path) -> int:
    """Bytes of the files under path (0 when it is gone, even half way through)."""
    total = 0
    for root, _, names in os.walk(path):
        for name in names:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                continue
    return total


def prune_runs(home: str | Path, max_bytes: int) -> list[str]:
    """Remove the oldest finished runs until the runs under home take at most max_bytes; the names removed."""
    runs = list_runs(home)
    sizes = {run.name: folder_bytes(run.path) for run in runs}
    total = sum(sizes.values())
    removed = []
    for run in reversed(runs):  # oldest first
        if total <= max_bytes:
            break
        if current_state(run) in FINISHED and remove_folder(run.path):  # not one gone or torn since listed
            total -= sizes[run.name]
            removed.append(run.name)
    return removed


def current_state(run: Run) -> str | None:
    """The run's state, None when it cannot be read now (deleted or torn since it was listed)."""
    try:
        return run.status().state
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def remove_folder(path: Path) -> bool:
    """Remove a run folder so that no reader ever sees half of it: renamed to a hidden name first (one atomic step,
    which only one of several concurrent removers wins), then deleted; whether this call removed it."""
    aside = files.temp_name(path.with_name(f"{path.name}{DELETING}"))
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return False
    shutil.rmtree(aside, ignore_errors=True)
    return True


def clean_hidden(home: str | Path) -> None:
    """Remove what killed removals and preparations left under home (hidden folders with a temporary name); only
    the server that holds the runs home calls this, as nothing else may be preparing a run there."""
    home = Path(home)
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        for path in home.iterdir():
            if files.is_temp(path) and path.is_dir():
                shutil.rmtree(path, ignore_errors=True)


def delete_run(run: Run) -> None:
    """Remove a finished run (or one whose status is damaged); a run already gone is not an error: a second delete
    of the same run, racing the first, gets what it asked for."""
    try:
        state = run.status().state
    except RunError as error:
        if error.key == "run_missing_file" and not run.path.exists():
            return
        if error.key != "run_damaged_file":
            raise
        state = "damaged"
    if state in ("running", "queued"):
        raise RunError("run_still_active", run=run.name, state=Term(state))
    remove_folder(run.path)


def _write_json(path: Path, data: object) -> None:
    files.write_json(path, data)


def _read_json(path: Path):
    try:
        return files.read_json(path)
    except FileNotFoundError:
        raise RunError("run_missing_file", run=path.parent.name, file=path.name) from None
    except ValueError:  # torn or hand-edited: files.write_json never leaves half a file
        raise RunError("run_damaged_file", run=path.parent.name, file=path.name) from None
