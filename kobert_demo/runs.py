"""The run folder: config, labels, status, an append-only event log, the kept model and its model card.

```
RUN/
  config.json   labels.json   status.json   log.jsonl   README.md   model/
```
Another process follows a run by reading `log.jsonl` from an offset; a run whose status says `running` while its
process is gone reads as `interrupted`, with the model of its last completed epoch still usable.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from pathlib import Path

from .config import TrainConfig
from .errors import UserFacingError
from .messages import Term

STATES = ("queued", "running", "done", "stopped", "failed", "interrupted")
FINISHED = ("done", "stopped", "failed", "interrupted")


class RunError(UserFacingError, ValueError):
    """A folder that is not a run, or a run that lacks what was asked of it."""


def new_run_id() -> str:
    """Unguessable, sortable by time: a shared link to a run is a capability."""
    return time.strftime("%Y%m%d-%H%M%S-") + secrets.token_urlsafe(12).replace("_", "x").replace("-", "x")


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid runs. A zombie (dead, not reaped) counts only when this process is its
    parent, which reaps it and then records how it ended; another's may never be reaped (an init that does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        # /proc/PID/stat: "pid (name) STATE PPID ..."; the name may hold spaces or ")", so split after the last ")"
        state, parent = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[:2]
    except (FileNotFoundError, IndexError, ValueError):
        return True
    return state != "Z" or int(parent) == os.getpid()


class Run:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def model_dir(self) -> Path:
        return self.path / "model"

    @property
    def log_path(self) -> Path:
        return self.path / "log.jsonl"

    @property
    def has_model(self) -> bool:
        return (self.model_dir / "model.safetensors").is_file()

    # --- creating ---------------------------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, config: TrainConfig, label_names: list[str], meta: dict) -> Run:
        """A new run folder, or a queued one taken over; never overwrites a run that started (finished work)."""
        run = cls(path)
        status_file = run.path / "status.json"
        if status_file.exists() and json.loads(status_file.read_text(encoding="utf-8"))["state"] != "queued":
            raise RunError("run_folder_taken", path=run.path)
        run.path.mkdir(parents=True, exist_ok=True)
        previous = _read_json(run.path / "config.json") if (run.path / "config.json").is_file() else {}
        created = previous.get("created", time.time())
        _write_json(run.path / "config.json", {**previous, **config.to_dict(), **meta, "created": created})
        _write_json(run.path / "labels.json", label_names)
        run.log_path.touch()
        run.set_status("running", pid=os.getpid())
        return run

    @classmethod
    def queue(cls, path: str | Path, config: TrainConfig, meta: dict) -> Run:
        """A run folder waiting for its turn (status `queued`)."""
        run = cls(path)
        run.path.mkdir(parents=True, exist_ok=False)
        _write_json(run.path / "config.json", {**config.to_dict(), **meta, "created": time.time()})
        run.log_path.touch()
        run.set_status("queued")
        return run

    def set_status(
        self,
        state: str,
        reason: str | None = None,
        pid: int | None = None,
        reason_ko: str | None = None,
        reason_key: str | None = None,
    ) -> None:
        """Store the state; reason_ko (the reason in Korean, for the web app) and reason_key (its message key, for
        API clients to test) are kept only when given."""
        if state not in STATES:
            raise ValueError(f"unknown run state {state!r}")
        status = {"state": state, "reason": reason, "pid": pid, "updated": time.time()}
        if reason_ko:
            status["reason_ko"] = reason_ko
        if reason_key:
            status["reason_key"] = reason_key
        _write_json(self.path / "status.json", status)

    def end(self, state: str, error: UserFacingError) -> None:
        """Store a finished state whose reason is a message, in English and Korean, with its key."""
        self.set_status(state, str(error), reason_ko=error.text("ko"), reason_key=error.key)

    def append(self, event: dict) -> None:
        """Add one event to the log, flushed at once for whoever follows it."""
        with self.log_path.open("a", encoding="utf-8") as log:
            log.write(json.dumps(event, ensure_ascii=False) + "\n")

    def write_card(self, text: str) -> None:
        (self.path / "README.md").write_text(text, encoding="utf-8")

    # --- reading ----------------------------------------------------------------------------------------------
    def config(self) -> dict:
        return _read_json(self.path / "config.json")

    def labels(self) -> list[str]:
        return _read_json(self.path / "labels.json")

    def status(self) -> dict:
        """The stored status; `running` with a dead process is reported (and stored) as `interrupted`."""
        status = _read_json(self.path / "status.json")
        if status["state"] == "running" and status.get("pid") and not pid_alive(status["pid"]):
            reason = "the training process ended without finishing"
            if self.has_model:
                reason += "; the model of the last completed epoch is kept"
            self.set_status("interrupted", reason)
            status = _read_json(self.path / "status.json")
        return status

    def read_events(self, offset: int = 0) -> tuple[list[dict], int]:
        """Events appended since byte offset, and the offset to continue from (partial last lines wait)."""
        if not self.log_path.is_file():
            return [], offset
        with self.log_path.open("rb") as log:
            log.seek(offset)
            data = log.read()
        end = data.rfind(b"\n") + 1
        events = [json.loads(line) for line in data[:end].splitlines() if line.strip()]
        return events, offset + end

    def events(self) -> list[dict]:
        return self.read_events()[0]

    def final_metrics(self) -> dict | None:
        """Test metrics of the kept epoch (the last completed one), if any epoch completed."""
        epochs = [e for e in self.events() if e["type"] == "epoch"]
        return epochs[-1]["test"] if epochs else None


def open_run(path: str | Path) -> Run:
    run = Run(path)
    if not (run.path / "status.json").is_file() or not (run.path / "config.json").is_file():
        raise RunError("run_not_a_run", path=run.path)
    return run


def list_runs(home: str | Path) -> list[Run]:
    """The runs under home, newest first."""
    home = Path(home)
    if not home.is_dir():
        return []
    runs = [Run(p) for p in home.iterdir() if (p / "status.json").is_file() and (p / "config.json").is_file()]
    return sorted(runs, key=lambda r: r.config().get("created", 0), reverse=True)


def folder_bytes(path: str | Path) -> int:
    """Bytes of the files under path (0 when it is gone, even half way through)."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
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
        if run.status()["state"] in FINISHED:
            shutil.rmtree(run.path, ignore_errors=True)
            total -= sizes[run.name]
            removed.append(run.name)
    return removed


def delete_run(run: Run) -> None:
    if run.status()["state"] in ("running", "queued"):
        raise RunError("run_still_active", run=run.name, state=Term(run.status()["state"]))
    shutil.rmtree(run.path)


def _write_json(path: Path, data: object) -> None:
    """Write through a temporary file so a reader never sees half a file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunError("run_missing_file", folder=path.parent, file=path.name) from None
