"""Training events, both ways: what `train()` yields, what a run's `log.jsonl` holds (one JSON object per line, its
kind in "type"), and what every reader (jobs, the API, the web app, the CLI) gets back.

Each event's `to_json()` writes it; `event_from_json()` reads one back as the same class, so readers use
attributes and a renamed field fails in one place. `Summary` folds events into what a refresh needs (last step,
kept epoch, final state) so that no reader rereads a whole log. `tutorial_line()` is the one formatter of the
tutorial's log lines.

No torch and no Gradio here: the CLI, the job queue and the web app's readers import this.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, ClassVar, get_args

from kobert_demo.basics.errors import UserFacingError
from kobert_demo.basics.messages import Term


class EventError(UserFacingError, ValueError):
    """A log line that is not an event this version knows."""


class StoredMessage(UserFacingError):
    """A message read back from a run's log or status: its key comes from there (it was a known key when stored)."""


# --- message parameters as JSON -----------------------------------------------------------------------------------
# A stored message (an error event, a run's status reason) is a key plus parameters. Parameters that are themselves
# messages (an error another one wraps) or Terms are tagged so that they come back as such and show in any language.
_ERROR_TAG, _TERM_TAG = "$error", "$term"


def params_to_json(params: dict[str, Any]) -> dict[str, Any]:
    """JSON-safe parameters: nested errors and Terms tagged, non-finite floats and other objects (paths) as text."""
    return {name: _value_to_json(value) for name, value in params.items()}


def _value_to_json(value: Any) -> Any:
    if isinstance(value, UserFacingError):
        return {_ERROR_TAG: value.key, "params": params_to_json(value.params)}
    if isinstance(value, Term):
        return {_TERM_TAG: str(value)}
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # "nan", "inf": what str.format shows for them anyway
    if value is None or isinstance(value, (str, int, float)):
        return value
    return str(value)


def params_from_json(params: dict[str, Any]) -> dict[str, Any]:
    """The parameters `params_to_json` stored, with nested errors and Terms rebuilt."""
    return {name: _value_from_json(value) for name, value in params.items()}


def _value_from_json(value: Any) -> Any:
    if isinstance(value, dict) and _ERROR_TAG in value:
        return StoredMessage(value[_ERROR_TAG], **params_from_json(value.get("params") or {}))
    if isinstance(value, dict) and _TERM_TAG in value:
        return Term(value[_TERM_TAG])
    return value


# --- the events ---------------------------------------------------------------------------------------------------
class _Event:
    """What every event has: its kind (`type`, also the JSON's "type") and its JSON form."""

    type: ClassVar[str]

    def to_json(self) -> dict[str, Any]:
        """The event as one log line holds it: its fields, then "type"."""
        return {**asdict(self), "type": self.type}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> _Event:
        names = {f.name for f in fields(cls)}
        required = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
        missing = [name for name in required if name not in data]
        if missing:
            raise EventError("event_missing_fields", kind=cls.type, fields=", ".join(missing))
        return cls(**{name: value for name, value in data.items() if name in names})


@dataclass
class StartEvent(_Event):
    model: str
    device: str
    precision: str
    processes: int
    train_rows: int
    test_rows: int
    labels: list[str]
    steps_per_epoch: int
    total_steps: int
    parameters: int
    forward: str = "padding-free"  # or "padded (why)": model.training_forward
    valid_rows: int = 0  # the validation data's rows (0: none, the last completed epoch is kept)
    type: ClassVar[str] = "start"


@dataclass
class StepEvent(_Event):
    epoch: int
    batch: int  # 1-based within the epoch, as the tutorial prints it
    step: int  # 1-based over the whole run
    steps_per_epoch: int
    total_steps: int
    loss: float
    train_acc: float  # running accuracy of this epoch so far
    lr: float
    elapsed: float
    eta: float
    sentences_per_s: float
    logged: bool  # one of the tutorial's log lines (every log_interval batches)
    type: ClassVar[str] = "step"


@dataclass
class EpochEvent(_Event):
    epoch: int
    train_loss: float
    train_acc: float
    test: dict  # classification_metrics of the test data for this epoch's weights: reported, never used to choose
    elapsed: float
    mistakes: list[dict] = field(default_factory=list)
    valid: dict | None = None  # classification_metrics (and "loss") of the validation data for this epoch's weights
    type: ClassVar[str] = "epoch"


@dataclass
class EvalEvent(_Event):
    """One evaluation on the validation data (at each epoch's end, and every eval_steps steps if set), and the best
    so far: whether this one improved on it by more than early_stopping_min_delta, and which evaluation is kept."""

    epoch: int
    step: int
    valid: dict  # classification_metrics of the validation data, with "loss"
    metric: str  # config.best_metric
    value: float  # valid[metric]
    improved: bool  # this evaluation's model is now the kept one
    best_epoch: int
    best_step: int
    best_value: float
    elapsed: float
    type: ClassVar[str] = "eval"


@dataclass
class NoticeEvent(_Event):
    """Something the user should know that is no failure (an early stop, a model that has not learned, a resumed
    run): a catalogue key and its parameters, shown in the reader's language with `text`."""

    key: str
    params: dict[str, Any] = field(default_factory=dict)  # JSON-safe (params_to_json)
    type: ClassVar[str] = "notice"

    def text(self, lang: str) -> str:
        """The notice in lang ("ko" Korean, anything else English)."""
        return StoredMessage(self.key, **params_from_json(self.params)).text(lang)


@dataclass
class DoneEvent(_Event):
    state: str  # "done" or "stopped"
    kept_epoch: int | None  # the epoch of the kept model: the best evaluation on the validation data
    test: dict | None  # the kept model's test metrics
    elapsed: float
    run: str | None
    kept_step: int | None = None  # the step of the kept model's evaluation
    metric: str | None = None  # what chose it (config.best_metric) ...
    best_value: float | None = None  # ... and its value on the validation data
    stop_reason: str | None = None  # "early_stopping", "stopped" (asked to) or None (all epochs ran)
    valid: dict | None = None  # the kept model's validation metrics
    mistakes: list[dict] = field(default_factory=list)  # the kept model's most confident test mistakes
    type: ClassVar[str] = "done"


@dataclass
class ErrorEvent(_Event):
    """Training failed: the failure as its message key and parameters, shown in any language with `text`.

    Its JSON also holds the English sentence as "message", for API clients that show it as it is.
    """

    key: str
    params: dict[str, Any] = field(default_factory=dict)  # JSON-safe (params_to_json)
    type: ClassVar[str] = "error"

    @classmethod
    def of(cls, error: UserFacingError) -> ErrorEvent:
        return cls(error.key, params_to_json(error.params))

    @property
    def error(self) -> UserFacingError:
        """The failure as an error again (what the CLI raises)."""
        return StoredMessage(self.key, **params_from_json(self.params))

    def text(self, lang: str) -> str:
        """The failure in lang ("ko" Korean, anything else English)."""
        return self.error.text(lang)

    @property
    def message(self) -> str:
        """The failure in English."""
        return self.text("en")

    def to_json(self) -> dict[str, Any]:
        return {"message": self.message, "key": self.key, "params": self.params, "type": self.type}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ErrorEvent:
        if "key" not in data:  # written before errors kept their key: only the English sentence is known
            return cls("train_failed_detail", {"detail": data.get("message", "")})
        return cls(data["key"], data.get("params") or {})


Event = StartEvent | StepEvent | EpochEvent | EvalEvent | NoticeEvent | DoneEvent | ErrorEvent
EVENT_TYPES: dict[str, type[_Event]] = {cls.type: cls for cls in get_args(Event)}  # one registry, keyed by "type"


def event_from_json(data: dict[str, Any]) -> Event:
    """The event a log line holds, as its class; EventError for a kind this version does not know."""
    kind = data.get("type") if isinstance(data, dict) else None
    if kind not in EVENT_TYPES:
        raise EventError("event_unknown_type", kind=str(kind))
    return EVENT_TYPES[kind].from_json(data)


# --- the run summary ----------------------------------------------------------------------------------------------
@dataclass
class Summary:
    """What a refresh needs from a run's events, kept beside its log (`summary.json`) as they are written."""

    start: StartEvent | None = None  # the model, precision, parameters, rows and classes
    last_step: StepEvent | None = None  # epoch, step, ETA, speed, elapsed
    kept_epoch: int | None = None  # the kept model's epoch: the best validation evaluation so far (without
    # validation data, the last completed epoch)
    test: dict | None = None  # the kept model's test metrics, once known (at its epoch's end, else at the run's)
    state: str | None = None  # how the log says the run ended: "done", "stopped" or "failed"
    elapsed: float | None = None  # the run's training time, once it ended
    kept_step: int | None = None  # the kept model's step
    metric: str | None = None  # the validation metric that chose it ...
    best_value: float | None = None  # ... and its value
    valid: dict | None = None  # the kept model's validation metrics
    stop_reason: str | None = None  # DoneEvent.stop_reason, once it ended
    evaluations: list[list] = field(default_factory=list)  # [epoch, step, valid accuracy, valid loss] per evaluation
    notices: list[NoticeEvent] = field(default_factory=list)

    def absorb(self, event: Event) -> None:
        """Take in one more event."""
        if isinstance(event, StartEvent):
            self.start = event
        elif isinstance(event, StepEvent):
            self.last_step = event
        elif isinstance(event, EvalEvent):
            self.evaluations.append([event.epoch, event.step, event.valid["accuracy"], event.valid.get("loss")])
            if event.improved:  # its test figures are not known yet
                self.kept_epoch, self.kept_step, self.test = event.epoch, event.step, None
                self.metric, self.best_value, self.valid = event.metric, event.value, event.valid
        elif isinstance(event, EpochEvent):
            if not (self.start and self.start.valid_rows):  # no validation data: the last completed epoch is kept
                self.kept_epoch, self.test = event.epoch, event.test
            elif self.kept_epoch == event.epoch and self.last_step and self.kept_step == self.last_step.step:
                self.test = event.test  # kept at this epoch's end: these are the kept weights' test figures
        elif isinstance(event, NoticeEvent):
            self.notices.append(event)
        elif isinstance(event, DoneEvent):
            self.state, self.elapsed, self.stop_reason = event.state, event.elapsed, event.stop_reason
            self.kept_epoch, self.kept_step, self.test = event.kept_epoch, event.kept_step, event.test
            self.metric, self.best_value, self.valid = event.metric, event.best_value, event.valid
        elif isinstance(event, ErrorEvent):
            self.state = "failed"

    @classmethod
    def of(cls, events: list[Event]) -> Summary:
        summary = cls()
        for event in events:
            summary.absorb(event)
        return summary

    def to_json(self) -> dict[str, Any]:
        return {
            "start": self.start.to_json() if self.start else None,
            "last_step": self.last_step.to_json() if self.last_step else None,
            "kept_epoch": self.kept_epoch,
            "test": self.test,
            "state": self.state,
            "elapsed": self.elapsed,
            "kept_step": self.kept_step,
            "metric": self.metric,
            "best_value": self.best_value,
            "valid": self.valid,
            "stop_reason": self.stop_reason,
            "evaluations": self.evaluations,
            "notices": [notice.to_json() for notice in self.notices],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Summary:
        return cls(
            start=StartEvent.from_json(data["start"]) if data.get("start") else None,
            last_step=StepEvent.from_json(data["last_step"]) if data.get("last_step") else None,
            kept_epoch=data.get("kept_epoch"),
            test=data.get("test"),
            state=data.get("state"),
            elapsed=data.get("elapsed"),
            kept_step=data.get("kept_step"),
            metric=data.get("metric"),
            best_value=data.get("best_value"),
            valid=data.get("valid"),
            stop_reason=data.get("stop_reason"),
            evaluations=data.get("evaluations") or [],
            notices=[NoticeEvent.from_json(notice) for notice in data.get("notices") or []],
        )


# --- the tutorial's log lines -------------------------------------------------------------------------------------
def tutorial_line(event: Event) -> str | None:
    """The event's line of the training log, as the CLI prints it and the web app's Logs tab shows it (an epoch
    gives two lines, a step one only every log_interval batches, otherwise None).

    English on purpose, in every language: the lines match the KoBERT tutorial's output (`epoch 1 batch id 1 loss
    0.693 train acc 0.500`), so that its readers can compare runs line by line.
    """
    if isinstance(event, StartEvent):
        valid = f" valid {event.valid_rows}" if event.valid_rows else ""
        return (
            f"model {event.model} | {event.device} {event.precision} | {event.processes} process(es) | "
            f"train {event.train_rows}{valid} test {event.test_rows} | classes {len(event.labels)} | "
            f"{event.parameters / 1e6:.2f}M parameters | {event.forward} forward"
        )
    if isinstance(event, StepEvent):
        if not event.logged:
            return None
        return f"epoch {event.epoch} batch id {event.batch} loss {event.loss:.3f} train acc {event.train_acc:.3f}"
    if isinstance(event, EpochEvent):
        test = event.test
        # With validation data, the test line of each epoch is the tutorial's report only: say that it chose nothing
        unused = " (not used to choose the model)" if event.valid else ""
        return (
            f"epoch {event.epoch} train acc {event.train_acc:.4f}\n"
            f"epoch {event.epoch} test acc {test['accuracy']:.4f} macro-F1 {test['macro_f1']:.4f}{unused}"
        )
    if isinstance(event, EvalEvent):
        valid, best = event.valid, " (best so far: kept)" if event.improved else ""
        loss = f" loss {valid['loss']:.4f}" if "loss" in valid else ""
        return (
            f"epoch {event.epoch} step {event.step} valid acc {valid['accuracy']:.4f} macro-F1 {valid['macro_f1']:.4f}"
            f"{loss}{best}"
        )
    if isinstance(event, NoticeEvent):
        return event.text("en")
    if isinstance(event, DoneEvent):
        return f"{event.state} in {event.elapsed:.0f} s, {kept_words(event)}"
    return f"error: {event.message}"


def kept_words(done: DoneEvent) -> str:
    """The kept model in words: its epoch, and with validation data its step, the metric and its value, why the run
    stopped early, and its test accuracy (English, as the tutorial's lines)."""
    if not done.kept_epoch:
        return "no completed epoch, no model kept"
    if not done.metric:
        return f"kept epoch {done.kept_epoch}"
    words = f"kept epoch {done.kept_epoch} step {done.kept_step} (validation {done.metric} {done.best_value:.4f})"
    if done.stop_reason == "early_stopping":
        words += ", stopped early"
    if done.test:
        words += f", its test acc {done.test['accuracy']:.4f}"
    return words
