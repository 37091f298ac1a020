"""What the Logs tab shows, drawn from what it has read: `Follow` (one browser tab's reading of one run) and pure
renderers (status line, progress bar, plots' frames, metrics, per-class scores, confusion matrix, mistakes).

No Gradio wiring and no file reading here (`logs_tab.py` does both), so each renderer is tested on its own. Every
word comes from the message catalogue in the visitor's language, except the training log's lines, which stay in
the tutorial's English (`events.tutorial_line`).
"""

from __future__ import annotations

import html
import math
import time
from dataclasses import dataclass, field

import pandas as pd

from kobert_demo.basics.events import (
    DoneEvent,
    EpochEvent,
    ErrorEvent,
    EvalEvent,
    Event,
    NoticeEvent,
    StartEvent,
    StepEvent,
    tutorial_line,
)
from kobert_demo.basics.messages import fmt_duration, t
from kobert_demo.basics.runs import RunStatus

from .render import md_text

MAX_LOG_LINES = 500
MAX_PLOT_POINTS = 600
MAX_MISTAKES = 20


@dataclass(frozen=True)
class Kept:
    """The kept model as the Logs tab shows it: its epoch, its test figures and mistakes, and (when validation chose
    it) the step, metric and validation value that did."""

    epoch: int
    test: dict
    mistakes: list[dict] = field(default_factory=list)
    step: int | None = None
    metric: str | None = None
    value: float | None = None

    @classmethod
    def of_epoch(cls, event: EpochEvent) -> Kept:
        return cls(event.epoch, event.test, event.mistakes)

    @classmethod
    def saved(cls, event: EpochEvent | DoneEvent) -> Kept | None:
        """The kept model from figures saved with it: a DoneEvent (the log's end, or the model folder's since #25),
        or an EpochEvent (a model folder from before); None when its test figures are not known yet."""
        if isinstance(event, EpochEvent):
            return cls.of_epoch(event)
        if event.kept_epoch is None or event.test is None:
            return None
        return cls(event.kept_epoch, event.test, event.mistakes, event.kept_step, event.metric, event.best_value)


@dataclass
class Follow:
    """What one browser tab has read of the run it follows (kept in gr.State, so reloads start from zero)."""

    run: str | None = None
    offset: int = 0
    start: StartEvent | None = None
    steps: list[tuple[int, float, float]] = field(default_factory=list)  # (step, loss, running train acc)
    last_step: StepEvent | None = None
    epochs: list[EpochEvent] = field(default_factory=list)
    epoch_ends: dict[int, int] = field(default_factory=dict)  # epoch -> the last step read when it ended
    evals: list[EvalEvent] = field(default_factory=list)
    notices: list[NoticeEvent] = field(default_factory=list)
    done: DoneEvent | None = None
    error: ErrorEvent | None = None
    lines: list[str] = field(default_factory=list)  # the training log's last MAX_LOG_LINES lines
    drawn: tuple = ()  # the situation on screen: (state, reason key and parameters, queue position)
    model: EpochEvent | DoneEvent | None = None  # a run that ended without logging its end (killed): its model
    # folder's figures (Run.kept)
    log_id: int | None = None  # the log file read from: a resumed run's log is cut back, replaced whole
    settling: int = 0  # polls since the run finished (its last events may land just after its status)

    def absorb(self, events: list[Event]) -> None:
        """Add newly read events, with their log lines.

        A resumed run's log is cut back to its checkpoint and replaced whole (the Logs tab then reads it again from
        its start, by its inode); should a step, evaluation or epoch come again all the same, it replaces the one
        before, so that each is drawn once.
        """
        for event in events:
            if isinstance(event, StartEvent):
                self.start, self.done, self.error = event, None, None
            elif isinstance(event, StepEvent):
                self.last_step = event
                while self.steps and self.steps[-1][0] >= event.step:
                    self.steps.pop()
                self.steps.append((event.step, event.loss, event.train_acc))
            elif isinstance(event, EpochEvent):
                self.epochs = [e for e in self.epochs if e.epoch < event.epoch] + [event]
                if self.last_step is not None:
                    self.epoch_ends[event.epoch] = self.last_step.step
            elif isinstance(event, EvalEvent):
                self.evals = [e for e in self.evals if e.step < event.step] + [event]
            elif isinstance(event, NoticeEvent):
                self.notices.append(event)
            elif isinstance(event, DoneEvent):
                self.done = event
            elif isinstance(event, ErrorEvent):
                self.error = event
            line = tutorial_line(event)
            if line:
                self.lines += line.splitlines()
        del self.lines[:-MAX_LOG_LINES]

    @property
    def kept(self) -> Kept | None:
        """The kept model so far, with the test figures to show for it.

        Done: the DoneEvent's (the kept model's final test figures), or for a run from before validation (its
        DoneEvent names no metric) its last epoch's. Killed: the epoch its model folder was saved with (its log may
        lack it). Training: the epoch validation keeps so far when it ended an epoch, else the last epoch's figures
        (a model kept mid-epoch has no test figures until the run ends; the kept line says which it is).
        """
        done = self.done
        if done is not None and done.metric is not None and (kept := Kept.saved(done)):
            return kept
        if self.model is not None and (kept := Kept.saved(self.model)):
            return kept
        best = self.best
        if best is not None:
            chosen = next((e for e in self.epochs if self.epoch_ends.get(e.epoch) == best.best_step), None)
            if chosen is not None:
                return Kept(chosen.epoch, chosen.test, chosen.mistakes, best.best_step, best.metric, best.best_value)
        return Kept.of_epoch(self.epochs[-1]) if self.epochs else None

    @property
    def best(self) -> EvalEvent | None:
        """The last evaluation read: it names the kept model so far."""
        return self.evals[-1] if self.evals else None

    @property
    def ended(self) -> bool:
        """Whether the log's last event (done, or an error) has been read."""
        return self.done is not None or self.error is not None


# --- the run selector ---------------------------------------------------------------------------------------------
def run_label(name: str, config: dict, state: str, accuracy: float | None, lang: str) -> str:
    """A run as the selector shows it: time, backbone, data file, state, accuracy (once finished), name's end."""
    created = time.strftime("%m-%d %H:%M", time.localtime(config.get("created", 0)))
    model = "tiny" if config.get("model") == "tiny" else str(config.get("model", "?")).split("/")[-1]
    parts = [created, model, str(config.get("train_file", "")), t(lang, f"state_{state}")]
    if accuracy is not None:
        parts.append(t(lang, "run_label_accuracy", accuracy=accuracy))
    return " · ".join([*parts, name[-6:]])


# --- status and progress ------------------------------------------------------------------------------------------
def status_text(
    name: str,
    model: str | None,
    status: RunStatus,
    follow: Follow,
    owner: bool,
    lang: str,
    queue: tuple[int, float | None] | None = None,
) -> str:
    """Run name, backbone, state, why it is in it (unless done), the queue (jobs ahead, seconds to wait) while
    queued, and whether this visitor may control the run."""
    parts = [f"**{t(lang, 'run')}** `{name}`", f"{t(lang, 'backbone')}: {md_text(model)}"]
    parts.append(f"**{t(lang, 'state')}: {t(lang, 'state_' + status.state)}**")
    text = " · ".join(parts)
    if queue is not None:
        ahead, wait = queue
        text += "\n\n" + t(lang, "queue_line", ahead=ahead, wait=fmt_duration(wait))
    reason = follow.error.text(lang) if follow.error else status.reason(lang)
    if reason and status.state != "done":
        text += f"\n\n⚠️ {md_text(reason)}"
    if not owner:
        text += "\n\n" + t(lang, "read_only")
    return text


def progress_html(follow: Follow, status: RunStatus, lang: str) -> str:
    """A bar with epoch, step, elapsed, ETA and speed."""
    step = follow.last_step
    if status.state == "done":
        share = 1.0
    elif step:
        share = step.step / max(step.total_steps, 1)
    else:
        share = 0.0
    if step:
        epochs = follow.start.total_steps // max(follow.start.steps_per_epoch, 1) if follow.start else "?"
        eta = 0.0 if status.finished else step.eta
        elapsed = follow.done.elapsed if follow.done else step.elapsed
        text = t(
            lang, "progress_line", epoch=step.epoch, epochs=epochs, step=step.step, steps=step.total_steps,
            elapsed=fmt_duration(elapsed), eta=fmt_duration(eta), speed=f"{step.sentences_per_s:.0f}",
        )  # fmt: skip
    elif status.state == "running":
        text = t(lang, "progress_preparing")
    else:
        text = t(lang, f"state_{status.state}")
    return (
        f'<div class="kd-progress" role="progressbar" aria-valuenow="{share * 100:.0f}" aria-valuemin="0" '
        f'aria-valuemax="100"><div class="kd-bar" style="width:{share * 100:.1f}%"></div></div>'
        f'<div class="kd-progress-text">{html.escape(text)}</div>'
    )


# --- plots --------------------------------------------------------------------------------------------------------
def step_frame(follow: Follow, lang: str) -> pd.DataFrame | None:
    """Loss and running train accuracy by step (thinned to MAX_PLOT_POINTS per series), beside validation loss and
    accuracy at each evaluation, and the kept model's step as a vertical line: long format, one row per point.

    None while there is nothing to draw: an empty frame, even a typed one, would lock the plot's colours.
    """
    steps = follow.steps
    if not steps:
        return None
    if len(steps) > MAX_PLOT_POINTS:
        every = len(steps) / MAX_PLOT_POINTS
        steps = [steps[int(i * every)] for i in range(MAX_PLOT_POINTS)] + [steps[-1]]
    points = [(s, v, "series_loss") for s, v, _ in steps] + [(s, a, "series_acc") for s, _, a in steps]
    evals = follow.evals
    if len(evals) > MAX_PLOT_POINTS:  # eval_steps small on a long run
        every = len(evals) / MAX_PLOT_POINTS
        evals = [evals[int(i * every)] for i in range(MAX_PLOT_POINTS)] + [evals[-1]]
    points += [(e.step, e.valid["loss"], "series_valid_loss") for e in evals if e.valid.get("loss") is not None]
    points += [(e.step, e.valid["accuracy"], "series_valid_acc") for e in evals]
    kept = kept_step(follow)
    if kept is not None:  # two points on one step: a vertical line across everything drawn
        top = max(1.0, *(value for _, value, _ in points if math.isfinite(value)))
        points += [(kept, 0.0, "series_kept"), (kept, top, "series_kept")]
    return pd.DataFrame(
        {
            "step": pd.Series([s for s, _, _ in points], dtype="int64"),
            "value": pd.Series([v for _, v, _ in points], dtype="float64"),
            "series": pd.Series([t(lang, key) for _, _, key in points], dtype="str"),
        }
    )


def kept_step(follow: Follow) -> int | None:
    """The step of the model validation keeps (None before the first evaluation, and for runs without one)."""
    if follow.done is not None and follow.done.kept_step is not None:
        return follow.done.kept_step
    return follow.best.best_step if follow.best else None


def epoch_frame(follow: Follow, lang: str) -> pd.DataFrame | None:
    """Train, validation (when logged) and test accuracy per epoch as side-by-side bars (visible with a single
    epoch), the kept epoch's marked with a star; None before any.

    Bars are ordered by name (a `sort` update would freeze the plot's categories), so epochs are zero-padded.
    """
    if not follow.epochs:
        return None
    width = len(str(follow.epochs[-1].epoch))
    kept = follow.kept if kept_step(follow) is not None else None  # marked only where validation chose it
    rows = []
    for event in follow.epochs:
        splits = [("train", event.train_acc)]
        if event.valid:
            splits.append(("valid", event.valid["accuracy"]))
        splits.append(("test", event.test["accuracy"]))
        star = " ★" if kept is not None and kept.epoch == event.epoch else ""
        for split, value in splits:
            name = t(lang, f"split_{split}")
            rows.append({"bar": f"{event.epoch:0{width}d} {name}{star}", "accuracy": value, "split": name})
    return pd.DataFrame(rows, columns=["bar", "accuracy", "split"])


# --- the kept model and what the run says about it ---------------------------------------------------------------
def kept_text(follow: Follow, lang: str) -> str:
    """Which model the run keeps and why: its epoch (and step, when it was kept mid-epoch) and its validation
    value; "" for a run without validation."""
    done, best = follow.done, follow.best
    if done is not None and done.metric is not None and done.kept_epoch is not None:
        epoch, step, metric, value = done.kept_epoch, done.kept_step, done.metric, done.best_value
    elif best is not None:
        epoch, step, metric, value = best.best_epoch, best.best_step, best.metric, best.best_value
    else:
        return ""
    metric_name = t(lang, f"metric_{metric}") if metric in ("accuracy", "macro_f1") else md_text(metric)
    shown = "" if value is None else f"{value:.4f}"
    at_epoch_end = step is None or follow.epoch_ends.get(epoch) == step or _epoch_end(follow, epoch) == step
    key = "kept_line_epoch" if at_epoch_end else "kept_line_step"
    return t(lang, key, epoch=epoch, step=step, metric=metric_name, value=shown)


def _epoch_end(follow: Follow, epoch: int) -> int | None:
    """The last step of epoch (from the run's start: every epoch has the same number of steps)."""
    return epoch * follow.start.steps_per_epoch if follow.start else None


def notices_text(follow: Follow, lang: str) -> str:
    """What the run said that is no failure (an early stop, a model that has not learned, a resume), one line each in
    the visitor's language (Markdown)."""
    lines = [f"ℹ️ {md_text(notice.text(lang))}" for notice in follow.notices]
    done = follow.done
    told = any(notice.key == "notice_early_stopped" for notice in follow.notices)
    if done is not None and done.stop_reason == "early_stopping" and not told:
        lines.append(f"ℹ️ {t(lang, 'early_stopped_line')}")
    return "\n\n".join(lines)


# --- results of the kept model ------------------------------------------------------------------------------------
def metrics_text(follow: Follow, lang: str) -> str:
    """Accuracy, macro-F1 on the test data, the kept epoch and the test size in one line."""
    kept = follow.kept
    test = kept.test
    return t(
        lang, "metrics_line", accuracy=f"{test['accuracy']:.4f}", f1=f"{test['macro_f1']:.4f}",
        epoch=kept.epoch, epochs=len(follow.epochs),
        n=test.get("n", sum(m["support"] for m in test["per_class"].values())),
    )  # fmt: skip


def per_class_frame(test: dict, lang: str) -> pd.DataFrame:
    """Precision, recall, F1 and support per class."""
    rows = [
        [name, round(m["precision"], 4), round(m["recall"], 4), round(m["f1"], 4), m["support"]]
        for name, m in test["per_class"].items()
    ]
    columns = [t(lang, k) for k in ("col_class", "col_precision", "col_recall", "col_f1", "col_support")]
    return pd.DataFrame(rows, columns=columns)


def confusion_html(test: dict, lang: str) -> str:
    """The confusion matrix as a shaded table (rows: true class, columns: predicted), shares by row."""
    labels, matrix = test["labels"], test["confusion_matrix"]
    head = "".join(f"<th scope='col'>{html.escape(name)}</th>" for name in labels)
    body = []
    for name, row in zip(labels, matrix):
        total = max(sum(row), 1)
        cells = []
        for j, count in enumerate(row):
            share = count / total
            tone = "kd-hit" if labels[j] == name else "kd-miss"
            cells.append(f"<td class='{tone}' style='--share:{share:.3f}' title='{share:.1%}'>{count}</td>")
        body.append(f"<tr><th scope='row'>{html.escape(name)}</th>{''.join(cells)}</tr>")
    corner = html.escape(t(lang, "cm_corner"))
    return (
        f"<div class='kd-cm'><div class='kd-cm-title'>{html.escape(t(lang, 'cm_title'))}</div>"
        f"<table><thead><tr><th class='kd-cm-corner'>{corner}</th>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def mistake_of(kept: Kept | None, row: list | None) -> dict | None:
    """The kept model's mistake on a row of the table (its sentence), or None when the row shows none of them."""
    if kept is None or not row:
        return None
    return next((m for m in kept.mistakes[:MAX_MISTAKES] if m["text"] == row[0]), None)


def mistake_line(mistake: dict, probability: float, lang: str) -> str:
    """The true and the predicted class of an explained mistake, and how to read its colours (Markdown)."""
    label, predicted = md_text(mistake["label"]), md_text(mistake["predicted"])
    return t(lang, "mistake_line", label=label, predicted=predicted, probability=probability)


def mistakes_frame(kept: Kept, lang: str) -> pd.DataFrame:
    """The kept model's most confident mistakes on the test data."""
    rows = [[m["text"], m["label"], m["predicted"], round(m["confidence"], 3)] for m in kept.mistakes[:MAX_MISTAKES]]
    columns = [t(lang, k) for k in ("col_text", "col_true", "col_predicted", "col_confidence")]
    return pd.DataFrame(rows, columns=columns)
