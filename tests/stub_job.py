"""A stub training child for the job queue's tests: `python tests/stub_job.py [--step-s S] job RUN`.

It is the real child (training_child.run_job: job.json, the copy of the data, the stop file, the time limit and the
parent-death watch, the statuses it stores) with engine.train.train replaced by `stub_train`, which writes a run's
events as train() does but learns nothing and keeps no model. It imports no torch or transformers, so a job starts
in well under a second instead of about six (their imports) plus a real training: the queue's ordering, stop,
time-limit and orphan tests use it, and a few tests keep the real child (tests/test_jobs.py, tests/test_fairness.py).

What a job does is asked through its config and data, as with the real child: its steps are
ceil(training rows / batch size) x epochs, `--step-s` long each; a model other than `tiny` fails as an unknown
backbone does (an ErrorEvent, status `failed`, exit status 1). At each epoch's end it keeps a checkpoint as train()
does (only its position: there is no model), so that a stopped or killed stub job can be resumed.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

STUB = Path(__file__).resolve()
sys.path.insert(0, str(STUB.parents[1]))  # run as a script: this checkout's kobert_demo, as the tests import it

from kobert_demo.app.training_child import run_job  # noqa: E402
from kobert_demo.basics import files  # noqa: E402
from kobert_demo.basics.config import TrainConfig  # noqa: E402
from kobert_demo.basics.data import Splits  # noqa: E402
from kobert_demo.basics.errors import UserFacingError  # noqa: E402
from kobert_demo.basics.events import DoneEvent, ErrorEvent, Event, NoticeEvent, StartEvent, StepEvent  # noqa: E402
from kobert_demo.basics.runs import POSITION_FILE, Run  # noqa: E402


def stub_command(step_s: float = 0.0) -> tuple[str, ...]:
    """JobQueue's child_command for this stub, each step step_s long (the queue appends the run folder)."""
    return (sys.executable, str(STUB), "--step-s", str(step_s), "job")


def stub_queue(home: str | Path, step_s: float = 0.0, poll_s: float = 0.1):
    """A JobQueue on home whose jobs run this stub (not started). yield_cpu=False: the child's share of the CPU
    (ServingYield) needs torch; the real child's tests check it."""
    from kobert_demo.app.queue import JobQueue  # not at the top: the child itself never imports the queue

    return JobQueue(home, poll_s=poll_s, yield_cpu=False, child_command=stub_command(step_s))


def stub_train(
    config: TrainConfig,
    splits: Splits,
    out: str | Path,
    should_stop: Callable[[], bool] = lambda: False,
    meta: dict | None = None,
    resume: bool = False,
    step_s: float = 0.0,
) -> Iterator[Event]:
    """engine.train.train's run folder and events, without a model: start, steps until done or should_stop(), done;
    resume: from the run's checkpoint, its log cut back to it (Run.reopen) and a notice added."""
    if resume:
        run, position = Run.reopen(out)
    else:
        run, position = Run.create(out, config, splits.label_names, meta or {}), {"step": 0}
    if config.model != "tiny":
        error = UserFacingError("model_unknown_source", source=config.model, hub_id="skt/kobert-base-v1", tiny="tiny")
        event = ErrorEvent.of(error)
        run.append(event)
        run.set_status("failed", error)
        yield event
        return
    per_epoch = math.ceil(len(splits.train_texts) / config.batch_size)
    total = per_epoch * config.epochs
    events: list[Event] = [
        StartEvent(
            model=config.model, device="cpu", precision="fp32", processes=1, train_rows=len(splits.train_texts),
            test_rows=len(splits.test_texts), labels=splits.label_names, steps_per_epoch=per_epoch,
            total_steps=total, parameters=0,
        )
    ]  # fmt: skip
    if resume:
        events = [NoticeEvent("notice_resumed", {"epoch": position["epoch"], "step": position["step"]})]
    yield from _logged(run, events)
    start, stopped = time.monotonic(), False
    for step in range(position["step"] + 1, total + 1):
        if should_stop():
            stopped = True
            break
        time.sleep(step_s)
        elapsed = time.monotonic() - start
        event = StepEvent(
            epoch=(step - 1) // per_epoch + 1, batch=(step - 1) % per_epoch + 1, step=step, steps_per_epoch=per_epoch,
            total_steps=total, loss=0.69, train_acc=0.5, lr=config.learning_rate, elapsed=elapsed,
            eta=elapsed / step * (total - step), sentences_per_s=step * config.batch_size / max(elapsed, 1e-3),
            logged=True,
        )  # fmt: skip
        yield from _logged(run, [event])
        if step % per_epoch == 0:
            with files.atomic_folder(run.checkpoint_dir) as folder:
                position = {"epoch": event.epoch, "step": step, "log_bytes": run.log_path.stat().st_size}
                files.write_json(folder / POSITION_FILE, position)
    state = "stopped" if stopped else "done"
    yield from _logged(run, [DoneEvent(state, None, None, time.monotonic() - start, str(run.path))])
    run.set_status(state, UserFacingError("reason_stopped_no_model") if stopped else None)


def _logged(run: Run, events: list[Event]) -> Iterator[Event]:
    """Each event, appended to the run's log first (as train() does)."""
    for event in events:
        run.append(event)
        yield event


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--step-s", type=float, default=0.0, help="seconds each training step takes")
    parser.add_argument("command", choices=["job"])  # in the command line, as in the real one (queue._is_job_of)
    parser.add_argument("run")
    args = parser.parse_args(argv)

    def train(*positional, **keywords) -> Iterator[Event]:
        return stub_train(*positional, **keywords, step_s=args.step_s)

    return run_job(args.run, train=train)


if __name__ == "__main__":
    sys.exit(main())
