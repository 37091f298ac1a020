"""The Logs tab: follow one run by polling its `log.jsonl` (plots, log lines, progress, status, results), stop it,
export it, delete it, share it."""

from __future__ import annotations

import html
import time
from dataclasses import dataclass, field
from typing import Any

import gradio as gr
import pandas as pd

from kobert_demo.jobs import is_owner, request_stop
from kobert_demo.messages import fmt_duration
from kobert_demo.runs import FINISHED, Run, delete_run

from .i18n import I18N, lang_of, t
from .render import info, md_text, warn
from .state import AppState, UserError, message

MAX_LOG_LINES = 500
MAX_PLOT_POINTS = 600
MAX_MISTAKES = 20
POLL_S = 1.0
SCROLL_LOG_JS = (
    "() => { const log = document.querySelector('#run-log textarea'); if (log) log.scrollTop = log.scrollHeight; }"
)
SETTLE_POLLS = 5


@dataclass
class Follow:
    """What one browser tab has read of the run it follows (kept in gr.State, so reloads start from zero)."""

    run: str | None = None
    offset: int = 0
    start: dict | None = None
    steps: list[tuple[int, float, float]] = field(default_factory=list)  # (step, loss, running train acc)
    last_step: dict | None = None
    epochs: list[dict] = field(default_factory=list)
    done: dict | None = None
    error: str | None = None
    lines: list[str] = field(default_factory=list)
    drawn: tuple = ()  # the situation on screen: (state, reason, queue position)
    settling: int = 0  # polls since the run finished (its last events may land just after its status)

    def absorb(self, events: list[dict]) -> None:
        """Add newly read events, with the tutorial's log lines."""
        for event in events:
            kind = event.get("type")
            if kind == "start":
                self.start = event
                self.lines.append(
                    f"model {event['model']} | {event['device']} {event['precision']} | train {event['train_rows']} "
                    f"test {event['test_rows']} | classes {len(event['labels'])} | "
                    f"{event['parameters'] / 1e6:.2f}M parameters"
                )
            elif kind == "step":
                self.last_step = event
                self.steps.append((event["step"], event["loss"], event["train_acc"]))
                if event.get("logged"):
                    self.lines.append(
                        f"epoch {event['epoch']} batch id {event['batch']} loss {event['loss']:.3f} "
                        f"train acc {event['train_acc']:.3f}"
                    )
            elif kind == "epoch":
                self.epochs.append(event)
                test = event["test"]
                self.lines.append(f"epoch {event['epoch']} train acc {event['train_acc']:.4f}")
                self.lines.append(
                    f"epoch {event['epoch']} test acc {test['accuracy']:.4f} macro-F1 {test['macro_f1']:.4f}"
                )
            elif kind == "done":
                self.done = event
                kept = f"kept epoch {event['kept_epoch']}" if event.get("kept_epoch") else "no completed epoch"
                self.lines.append(f"{event['state']} in {event['elapsed']:.0f} s, {kept}")
            elif kind == "error":
                self.error = event["message"]
                self.lines.append(f"error: {event['message']}")
        del self.lines[:-MAX_LOG_LINES]

    @property
    def kept(self) -> dict | None:
        """The kept epoch so far: the last completed one."""
        return self.epochs[-1] if self.epochs else None


@dataclass
class LogsTab:
    """The tab's components that the app wiring uses."""

    follow: gr.State
    run_select: gr.Dropdown
    share: gr.Textbox
    outputs: list[Any]  # what `poll` returns, in order


# --- text and tables ----------------------------------------------------------------------------------------------
def run_label(run: Run, lang: str) -> str:
    """A run as the selector shows it: time, backbone, state, accuracy."""
    config = run.config()
    created = time.strftime("%m-%d %H:%M", time.localtime(config.get("created", 0)))
    model = "tiny" if config.get("model") == "tiny" else str(config.get("model", "?")).split("/")[-1]
    state = run.status()["state"]
    metrics = run.final_metrics() if state in FINISHED else None
    accuracy = f" · acc {metrics['accuracy']:.3f}" if metrics else ""
    shown = t(lang, f"state_{state}")
    return f"{created} · {model} · {config.get('train_file', '')} · {shown}{accuracy} · {run.name[-6:]}"


def run_choices(state: AppState, visitor: str | None, lang: str, extra: str | None = None) -> list[tuple[str, str]]:
    """The selector's choices: this visitor's runs, plus a shared run opened by link."""
    runs = state.visitor_runs(visitor)
    names = {run.name for run in runs}
    choices = [(run_label(run, lang), run.name) for run in runs]
    if extra and extra not in names:
        try:
            shared = state.run(extra)
        except UserError:  # deleted since
            return choices
        choices.insert(0, (f"🔗 {run_label(shared, lang)}", shared.name))
    return choices


def status_text(state: AppState, run: Run, status: dict, follow: Follow, owner: bool, lang: str) -> str:
    """Run name, backbone, state (with queue position or reason) and whether this visitor may control it."""
    config = run.config()
    parts = [f"**{t(lang, 'run')}** `{run.name}`", f"{t(lang, 'backbone')}: {md_text(config.get('model'))}"]
    parts.append(f"**{t(lang, 'state')}: {t(lang, 'state_' + status['state'])}**")
    text = " · ".join(parts)
    if status["state"] == "queued":
        position = state.queue.position(run)
        if position is not None:
            ahead = position - 1 + (1 if state.queue.running() else 0)
            wait = fmt_duration(state.queue.wait_estimate(run))
            text += "\n\n" + t(lang, "queue_line", ahead=ahead, wait=wait)
    reason = follow.error or status.get("reason")
    if lang == "ko" and status.get("reason_ko"):  # an engine error stored with its Korean sentence
        reason = status["reason_ko"]
    if reason and status["state"] != "done":
        text += f"\n\n⚠️ {md_text(reason)}"
    if not owner:
        text += "\n\n" + t(lang, "read_only")
    return text


def progress_html(follow: Follow, status: dict, lang: str) -> str:
    """A bar with epoch, step, elapsed, ETA and speed."""
    step = follow.last_step
    if status["state"] == "done":
        share = 1.0
    elif step:
        share = step["step"] / max(step["total_steps"], 1)
    else:
        share = 0.0
    if step:
        epochs = follow.start["total_steps"] // max(follow.start["steps_per_epoch"], 1) if follow.start else "?"
        eta = 0.0 if status["state"] in FINISHED else step["eta"]
        elapsed = follow.done["elapsed"] if follow.done else step["elapsed"]
        text = t(
            lang, "progress_line", epoch=step["epoch"], epochs=epochs, step=step["step"], steps=step["total_steps"],
            elapsed=fmt_duration(elapsed), eta=fmt_duration(eta), speed=f"{step['sentences_per_s']:.0f}",
        )  # fmt: skip
    elif status["state"] == "running":
        text = t(lang, "progress_preparing")
    else:
        text = t(lang, f"state_{status['state']}")
    return (
        f'<div class="kd-progress" role="progressbar" aria-valuenow="{share * 100:.0f}" aria-valuemin="0" '
        f'aria-valuemax="100"><div class="kd-bar" style="width:{share * 100:.1f}%"></div></div>'
        f'<div class="kd-progress-text">{html.escape(text)}</div>'
    )


def step_frame(follow: Follow, lang: str) -> pd.DataFrame | None:
    """Loss and running train accuracy by step (long format, thinned to MAX_PLOT_POINTS per series).

    None while there is nothing to draw: an empty frame, even a typed one, would lock the plot's colours.
    """
    steps = follow.steps
    if not steps:
        return None
    if len(steps) > MAX_PLOT_POINTS:
        every = len(steps) / MAX_PLOT_POINTS
        steps = [steps[int(i * every)] for i in range(MAX_PLOT_POINTS)] + [steps[-1]]
    loss, acc = t(lang, "series_loss"), t(lang, "series_acc")
    return pd.DataFrame(
        {
            "step": pd.Series([s for s, _, _ in steps] * 2, dtype="int64"),
            "value": pd.Series([v for _, v, _ in steps] + [a for _, _, a in steps], dtype="float64"),
            "series": pd.Series([loss] * len(steps) + [acc] * len(steps), dtype="str"),
        }
    )


def epoch_frame(follow: Follow, lang: str) -> pd.DataFrame | None:
    """Train and test accuracy per epoch as side-by-side bars (visible with a single epoch); None before any.

    Bars are ordered by name (a `sort` update would freeze the plot's categories), so epochs are zero-padded.
    """
    if not follow.epochs:
        return None
    width = len(str(follow.epochs[-1]["epoch"]))
    rows = []
    for event in follow.epochs:
        for split, value in (("train", event["train_acc"]), ("test", event["test"]["accuracy"])):
            name = t(lang, f"split_{split}")
            rows.append({"bar": f"{event['epoch']:0{width}d} {name}", "accuracy": value, "split": name})
    return pd.DataFrame(rows, columns=["bar", "accuracy", "split"])


def metrics_text(follow: Follow, lang: str) -> str:
    """Accuracy, macro-F1, the kept epoch and the test size in one line."""
    kept = follow.kept
    test = kept["test"]
    epochs = len(follow.epochs)
    return t(
        lang, "metrics_line", accuracy=f"{test['accuracy']:.4f}", f1=f"{test['macro_f1']:.4f}",
        epoch=kept["epoch"], epochs=epochs, n=test.get("n", sum(m["support"] for m in test["per_class"].values())),
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


def mistakes_frame(kept: dict, lang: str) -> pd.DataFrame:
    """The kept epoch's most confident mistakes on the test data."""
    rows = [[m["text"], m["label"], m["predicted"], round(m["confidence"], 3)] for m in kept["mistakes"][:MAX_MISTAKES]]
    columns = [t(lang, k) for k in ("col_text", "col_true", "col_predicted", "col_confidence")]
    return pd.DataFrame(rows, columns=columns)


# --- polling ------------------------------------------------------------------------------------------------------
def poll(state: AppState, follow: Follow | None, visitor: str | None, lang: str, refresh: bool = False) -> tuple:
    """Read what the run logged since last time and redraw only what changed (gr.skip() for the rest).

    Returns, in order: follow, status, progress, step plot, epoch plot, log, results (visibility), metrics,
    per-class table, confusion matrix, mistakes, stop, export, delete, timer, run selector.
    """
    follow = follow or Follow()
    skip = gr.skip()
    if not follow.run:
        if not refresh:
            return (follow, *[skip] * 13, gr.Timer(active=False), skip)
        return (follow, t(lang, "no_run_yet"), "", *empty_results(), gr.Timer(active=False), skip)
    try:
        run = state.run(follow.run)
        events, follow.offset = run.read_events(follow.offset)
        status = run.status()
    except Exception as error:
        return (follow, f"⚠️ {md_text(message(error, lang))}", *[skip] * 12, gr.Timer(active=False), skip)
    epochs_before = len(follow.epochs)
    follow.absorb(events)
    position = state.queue.position(run) if status["state"] == "queued" else None
    situation = (status["state"], status.get("reason"), position)
    changed = refresh or situation != follow.drawn
    follow.drawn = situation
    finished = status["state"] in FINISHED
    if finished:
        follow.settling += 1
    settled = finished and (follow.done is not None or follow.error is not None or follow.settling > SETTLE_POLLS)
    logged = refresh or bool(events)
    results = refresh or len(follow.epochs) != epochs_before
    owner = is_owner(run, visitor or "")
    kept = follow.kept
    return (
        follow,
        status_text(state, run, status, follow, owner, lang) if changed else skip,
        progress_html(follow, status, lang) if logged or changed else skip,
        step_frame(follow, lang) if logged else skip,
        epoch_frame(follow, lang) if results else skip,
        "\n".join(follow.lines) if logged else skip,
        gr.update(visible=kept is not None) if results else skip,
        (metrics_text(follow, lang) if kept else "") if results else skip,
        (per_class_frame(kept["test"], lang) if kept else None) if results else skip,
        (confusion_html(kept["test"], lang) if kept else "") if results else skip,
        (mistakes_frame(kept, lang) if kept else None) if results else skip,
        gr.update(interactive=owner and not finished) if changed else skip,
        gr.update(interactive=owner and run.has_model and finished) if changed else skip,
        gr.update(interactive=owner and finished) if changed else skip,
        gr.Timer(active=not settled) if changed or settled else skip,
        gr.update(choices=run_choices(state, visitor, lang, extra=run.name)) if changed else skip,
    )


def empty_results() -> list[Any]:
    """Cleared plots, log and results."""
    return [
        None,
        None,
        "",
        gr.update(visible=False),
        "",
        None,
        "",
        None,
        gr.update(interactive=False),
        gr.update(interactive=False),
        gr.update(interactive=False),
    ]


# --- the tab ------------------------------------------------------------------------------------------------------
def build(state: AppState, visitor: gr.BrowserState) -> LogsTab:
    """Lay out the Logs tab and wire its events."""
    follow = gr.State(Follow())
    timer = gr.Timer(POLL_S, active=False)
    with gr.Row(equal_height=True):
        run_select = gr.Dropdown(
            label=I18N("my_runs"), choices=[], interactive=True, scale=4, elem_id="run-select", allow_custom_value=True
        )
        share = gr.Textbox(label=I18N("share_link"), interactive=False, buttons=["copy"], scale=3, max_lines=1)
    status = gr.Markdown(I18N("no_run_yet"), elem_id="run-status")
    progress = gr.HTML(elem_id="run-progress")
    with gr.Row():
        step_plot = gr.LinePlot(
            None, x="step", y="value", color="series", label=I18N("plot_steps"), elem_id="step-plot",
            x_title=" ", y_title=" ", color_title=" ",
        )  # fmt: skip
        epoch_plot = gr.BarPlot(
            None, x="bar", y="accuracy", color="split", label=I18N("plot_epochs"), y_lim=[0, 1],
            elem_id="epoch-plot", x_title=" ", y_title=" ", color_title=" ",
        )  # fmt: skip
    log_box = gr.Textbox(
        label=I18N("log"), lines=10, max_lines=10, autoscroll=True, interactive=False, elem_id="run-log",
        buttons=["copy"],
    )  # fmt: skip
    with gr.Row():
        stop = gr.Button(I18N("stop"), variant="stop", interactive=False, elem_id="stop")
        export = gr.Button(I18N("export"), interactive=False, elem_id="export")
        delete = gr.Button(I18N("delete"), interactive=False, elem_id="delete")
    with gr.Row(visible=False) as confirm_row:
        gr.Markdown(I18N("delete_confirm"))
        confirm = gr.Button(I18N("delete_yes"), variant="stop", size="sm")
        cancel = gr.Button(I18N("delete_no"), size="sm")
    export_file = gr.File(label=I18N("export_file"), visible=False, interactive=False, elem_id="export-file")
    with gr.Column(visible=False) as results:
        gr.Markdown(I18N("results_title"))
        metrics = gr.Markdown(elem_id="run-metrics")
        with gr.Row():
            per_class = gr.Dataframe(label=I18N("per_class"), interactive=False, scale=3)
            confusion = gr.HTML(elem_id="confusion")
        mistakes = gr.Dataframe(
            label=I18N("mistakes"),
            interactive=False,
            wrap=True,
            max_height=320,
            elem_id="mistakes",
            column_widths=["64%", "12%", "12%", "12%"],
        )

    # Gradio 6.31's Textbox autoscroll does not scroll: keep the newest log line in view from the browser.
    log_box.change(None, None, None, js=SCROLL_LOG_JS, queue=False, api_visibility="private")

    outputs = [
        follow, status, progress, step_plot, epoch_plot, log_box, results, metrics, per_class, confusion, mistakes,
        stop, export, delete, timer, run_select,
    ]  # fmt: skip
    private = {"api_visibility": "private", "show_progress": "hidden"}

    def on_tick(current: Follow, token: str | None, request: gr.Request) -> tuple:
        """Every second while a run is followed: whatever it logged since."""
        return poll(state, current, token, lang_of(request))

    timer.tick(on_tick, [follow, visitor], outputs, concurrency_limit=None, **private)

    def on_select(name: str | None, token: str | None, request: gr.Request) -> tuple:
        """Follow another run, drawn from its beginning."""
        return poll(state, Follow(run=name or None), token, lang_of(request), refresh=True)

    run_select.input(on_select, [run_select, visitor], outputs, **private).then(
        share_link, [run_select], [share], **private
    )

    def on_focus(name: str | None, token: str | None, request: gr.Request) -> Any:
        """Fresh choices when the selector opens."""
        return gr.update(choices=run_choices(state, token, lang_of(request), extra=name))

    run_select.focus(on_focus, [run_select, visitor], [run_select], **private)

    def on_stop(current: Follow, token: str | None, request: gr.Request) -> None:
        """Ask the visitor's run to stop."""
        lang = lang_of(request)
        try:
            request_stop(state.owned_run(current.run, token))
            info(t(lang, "stop_requested"))
        except Exception as error:
            warn(message(error, lang))

    stop.click(on_stop, [follow, visitor], None, **private)

    def on_export(current: Follow, token: str | None, request: gr.Request) -> Any:
        """The visitor's run as a model zip to download."""
        lang = lang_of(request)
        try:
            return gr.update(value=export_run(state, current.run, token), visible=True)
        except Exception as error:
            warn(message(error, lang))
            return gr.update(value=None, visible=False)

    export.click(on_export, [follow, visitor], [export_file], concurrency_limit=1, **private)

    delete.click(lambda: gr.update(visible=True), None, [confirm_row], queue=False, **private)
    cancel.click(lambda: gr.update(visible=False), None, [confirm_row], queue=False, **private)

    def on_delete(current: Follow, token: str | None, request: gr.Request) -> tuple:
        """Delete the visitor's finished run and clear the selection."""
        lang = lang_of(request)
        try:
            delete_run(state.owned_run(current.run, token))
            info(t(lang, "deleted", run=current.run))
        except Exception as error:
            warn(message(error, lang))
            return gr.skip(), gr.update(visible=False)
        choices = run_choices(state, token, lang)
        return gr.update(choices=choices, value=None), gr.update(visible=False)

    confirm.click(on_delete, [follow, visitor], [run_select, confirm_row], **private).then(
        on_select, [run_select, visitor], outputs, **private
    )
    return LogsTab(follow, run_select, share, outputs)


def share_link(name: str | None, request: gr.Request) -> str:
    """The page's address with `?run=<name>`: whoever has it can follow the run and predict with it, read-only."""
    if not name:
        return ""
    page = (request.headers.get("referer") or "").split("?")[0].split("#")[0]
    return f"{page}?run={name}"


def export_run(state: AppState, name: str | None, visitor: str | None) -> str:
    """Zip the visitor's finished run for download (the Predict tab, the CLI and transformers load it)."""
    return str(state.export(state.owned_run(name, visitor)))
