"""The Logs tab: follow one run by polling its `log.jsonl` (plots, log lines, progress, status, results), stop it,
export it, delete it, share it.

Layout and event wiring live here; what is drawn comes from `logs_render.py`. Every handler returns a
`{component: value}` dict: the components it leaves out keep what they show.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from kobert_demo.app.queue import is_owner, owner_id
from kobert_demo.basics.runs import RESUMABLE, Run, RunStatus

from .i18n import I18N, lang_of, t
from .logs_render import (
    Follow,
    confusion_html,
    epoch_frame,
    kept_text,
    metrics_text,
    mistake_line,
    mistake_of,
    mistakes_frame,
    notices_text,
    per_class_frame,
    progress_html,
    status_text,
    step_frame,
)
from .render import info, md_text
from .shared import explain_one, highlighted_words, run_choices
from .state import AppState, VisitorError, client_address, message, shown_errors

__all__ = ["Follow", "LogsTab", "build", "export_run", "poll", "resumable", "resume_run", "share_link"]

POLL_S = 1.0
SCROLL_LOG_JS = (
    "() => { const log = document.querySelector('#run-log textarea'); if (log) log.scrollTop = log.scrollHeight; }"
)
SETTLE_POLLS = 5


@dataclass
class LogsTab:
    """The tab's components, by name: what its handlers return values for."""

    follow: gr.State
    timer: gr.Timer
    run_select: gr.Dropdown
    share: gr.Textbox
    status: gr.Markdown
    progress: gr.HTML
    step_plot: gr.LinePlot
    epoch_plot: gr.BarPlot
    log: gr.Textbox
    stop: gr.Button
    export: gr.Button
    delete: gr.Button
    confirm_row: gr.Row
    export_file: gr.File
    results: gr.Column
    metrics: gr.Markdown
    per_class: gr.Dataframe
    confusion: gr.HTML
    mistakes: gr.Dataframe
    mistake_explanation: gr.HighlightedText
    mistake_line: gr.Markdown
    notes: gr.Markdown  # the kept model, and what the run said that is no failure (early stop, not learned, resumed)
    resume: gr.Button
    continue_: gr.Button  # "Continue training": the app's wiring opens the Train tab set to start from this run

    @property
    def outputs(self) -> list[Any]:
        """Every component `poll` may redraw."""
        return [
            self.follow, self.timer, self.run_select, self.status, self.progress, self.step_plot, self.epoch_plot,
            self.log, self.stop, self.export, self.delete, self.results, self.metrics, self.per_class, self.confusion,
            self.mistakes, self.mistake_explanation, self.mistake_line, self.notes, self.resume, self.continue_,
        ]  # fmt: skip


def poll(
    state: AppState, tab: LogsTab, follow: Follow | None, visitor: str | None, lang: str, refresh: bool = False
) -> dict[Any, Any]:
    """Read what the run logged since last time and redraw what changed (everything, with refresh)."""
    follow = follow or Follow()
    drawn: dict[Any, Any] = {tab.follow: follow}
    if not follow.run:
        drawn[tab.timer] = gr.Timer(active=False)
        if refresh:
            drawn |= cleared(tab, lang)
        return drawn
    try:
        run = state.run(follow.run)
        log_id = log_file_id(run)
        if follow.log_id is not None and log_id != follow.log_id:  # resumed: its log was cut back to a checkpoint
            follow, refresh = Follow(run=follow.run), True
            drawn[tab.follow] = follow
        follow.log_id = log_id
        events, follow.offset = run.read_events(follow.offset)
        status = run.status()
    except Exception as error:
        return drawn | {tab.status: f"⚠️ {md_text(message(error, lang))}", tab.timer: gr.Timer(active=False)}
    epochs_before, kept_before, notes_before = len(follow.epochs), follow.kept, notes_text(follow, lang)
    follow.absorb(events)
    position = state.queue.position(run) if status.state == "queued" else None
    situation = (status.state, status.reason_key, status.reason_params, position)
    changed = refresh or situation != follow.drawn
    follow.drawn = situation
    if status.finished:
        follow.settling += 1
    settled = status.finished and (follow.ended or follow.settling > SETTLE_POLLS)
    owner = is_owner(run, visitor or "")
    if changed and status.finished and not follow.ended:
        follow.model = run.kept()  # killed: its log may be an epoch behind the model it saved
    if changed:
        config = run.config()
        queue = None
        if position is not None:
            ahead = position - 1 + (1 if state.queue.running() else 0)
            queue = (ahead, state.queue.wait_estimate(run))
        drawn |= {
            tab.status: status_text(run.name, config.get("model"), status, follow, owner, lang, queue),
            tab.stop: gr.update(interactive=owner and not status.finished),
            tab.export: gr.update(interactive=owner and run.has_model and status.finished),
            tab.delete: gr.update(interactive=owner and status.finished),
            tab.resume: gr.update(visible=owner and resumable(run, status)),
            tab.continue_: gr.update(visible=owner and status.finished and run.has_model),
            tab.run_select: gr.update(choices=run_choices(state, visitor, lang, extra=run.name)),
        }
    if changed or settled:
        drawn[tab.timer] = gr.Timer(active=not settled)
    if refresh or events or changed:
        drawn[tab.progress] = progress_html(follow, status, lang)
    if refresh or events:
        drawn |= {tab.step_plot: step_frame(follow, lang), tab.log: "\n".join(follow.lines)}
    notes = notes_text(follow, lang)
    if refresh or notes != notes_before:
        drawn[tab.notes] = notes
    if refresh or len(follow.epochs) != epochs_before or follow.kept != kept_before:
        drawn |= results(tab, follow, lang)
    return drawn


def log_file_id(run: Run) -> int | None:
    """Which file the run's log is (its inode): resuming replaces it whole, cut back to the checkpoint, so that a
    follower's offset into the old one means nothing in the new one."""
    try:
        return run.log_path.stat().st_ino
    except FileNotFoundError:
        return None


def notes_text(follow: Follow, lang: str) -> str:
    """The kept model's line, then the run's notices (Markdown)."""
    return "\n\n".join(part for part in (kept_text(follow, lang), notices_text(follow, lang)) if part)


def resumable(run: Run, status: RunStatus) -> bool:
    """runs.is_resumable from the status a refresh has already read: interrupted, stopped or failed, with a whole
    checkpoint (its position file) to resume from."""
    return status.state in RESUMABLE and run.has_checkpoint


def resume_run(state: AppState, name: str | None, visitor: str | None, address: str = "") -> str:
    """Queue the visitor's run again from its last checkpoint, from this network address (VisitorError when it is
    not theirs or cannot be resumed; the queue checks its limits as for a new run); its name."""
    run = state.owned_run(name, visitor)
    if not resumable(run, run.status()):
        raise VisitorError("err_not_resumable", run=run.name)
    state.queue.resume(run.name, owner=owner_id(visitor), address=address)
    return run.name


def results(tab: LogsTab, follow: Follow, lang: str) -> dict[Any, Any]:
    """The epoch plot and the kept model's results (hidden before any epoch completed), no mistake explained."""
    kept = follow.kept
    return {
        tab.epoch_plot: epoch_frame(follow, lang),
        tab.results: gr.update(visible=kept is not None),
        tab.metrics: metrics_text(follow, lang) if kept else "",
        tab.per_class: per_class_frame(kept.test, lang) if kept else None,
        tab.confusion: confusion_html(kept.test, lang) if kept else "",
        tab.mistakes: mistakes_frame(kept, lang) if kept else None,
        **unexplained(tab),
    }


def unexplained(tab: LogsTab) -> dict[Any, Any]:
    """No mistake explained."""
    return {tab.mistake_explanation: gr.update(value=None, visible=False), tab.mistake_line: ""}


def explain_mistake(state: AppState, tab: LogsTab, follow: Follow, row: list | None, lang: str) -> dict[Any, Any]:
    """Why the followed run's model got a sentence of the mistakes table wrong: each word's share of the class it
    predicted. Only the kept epoch's mistakes are explained (this is no endpoint for any text)."""
    mistake = mistake_of(follow.kept, row)
    if mistake is None:
        raise VisitorError("err_not_a_mistake")
    explanation = explain_one(state, follow.run, mistake["text"], mistake["predicted"])
    return {
        tab.mistake_explanation: gr.update(value=highlighted_words(explanation), visible=True),
        tab.mistake_line: mistake_line(mistake, explanation.probability, lang),
    }


def cleared(tab: LogsTab, lang: str) -> dict[Any, Any]:
    """Nothing followed: the hint, cleared plots, log and results, and no run to control."""
    return {
        tab.status: t(lang, "no_run_yet"),
        tab.progress: "",
        tab.step_plot: None,
        tab.log: "",
        tab.stop: gr.update(interactive=False),
        tab.export: gr.update(interactive=False),
        tab.delete: gr.update(interactive=False),
        tab.notes: "",
        tab.resume: gr.update(visible=False),
        tab.continue_: gr.update(visible=False),
        **results(tab, Follow(), lang),
    }


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
    notes = gr.Markdown(elem_id="run-notes")
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
        resume = gr.Button(I18N("resume"), variant="primary", visible=False, elem_id="resume")
        continue_ = gr.Button(I18N("continue_training"), visible=False, elem_id="continue-training")
    with gr.Row(visible=False) as confirm_row:
        gr.Markdown(I18N("delete_confirm"))
        confirm = gr.Button(I18N("delete_yes"), variant="stop", size="sm")
        cancel = gr.Button(I18N("delete_no"), size="sm")
    export_file = gr.File(label=I18N("export_file"), visible=False, interactive=False, elem_id="export-file")
    with gr.Column(visible=False) as results_column:
        gr.Markdown(I18N("results_title"))
        metrics = gr.Markdown(elem_id="run-metrics")
        with gr.Row():
            per_class = gr.Dataframe(label=I18N("per_class"), interactive=False, scale=3, elem_id="per-class")
            confusion = gr.HTML(elem_id="confusion")
        gr.Markdown(I18N("mistakes_hint"), elem_classes=["kd-help"])
        mistakes = gr.Dataframe(
            label=I18N("mistakes"),
            interactive=False,
            wrap=True,
            max_height=320,
            elem_id="mistakes",
            column_widths=["64%", "12%", "12%", "12%"],
        )
        mistake_explanation = gr.HighlightedText(
            label=I18N("mistake_explanation"), show_legend=True, show_inline_category=False, visible=False,
            elem_id="mistake-explanation",
        )  # fmt: skip
        mistake_md = gr.Markdown(elem_classes=["kd-help"], elem_id="mistake-line")
    tab = LogsTab(
        follow=follow, timer=timer, run_select=run_select, share=share, status=status, progress=progress,
        step_plot=step_plot, epoch_plot=epoch_plot, log=log_box, stop=stop, export=export, delete=delete,
        confirm_row=confirm_row, export_file=export_file, results=results_column, metrics=metrics,
        per_class=per_class, confusion=confusion, mistakes=mistakes, mistake_explanation=mistake_explanation,
        mistake_line=mistake_md, notes=notes, resume=resume, continue_=continue_,
    )  # fmt: skip

    # Gradio 6.31's Textbox autoscroll does not scroll: keep the newest log line in view from the browser.
    log_box.change(None, None, None, js=SCROLL_LOG_JS, queue=False, api_visibility="private")
    private = {"api_visibility": "private", "show_progress": "hidden"}

    def on_tick(current: Follow, token: str | None, request: gr.Request) -> dict[Any, Any]:
        """Every second while a run is followed: whatever it logged since."""
        return poll(state, tab, current, token, lang_of(request))

    timer.tick(on_tick, [follow, visitor], tab.outputs, concurrency_limit=None, **private)

    def on_select(name: str | None, token: str | None, request: gr.Request) -> dict[Any, Any]:
        """Follow another run, drawn from its beginning."""
        return poll(state, tab, Follow(run=name or None), token, lang_of(request), refresh=True)

    run_select.input(on_select, [run_select, visitor], tab.outputs, **private).then(
        share_link, [run_select], [share], **private
    )

    def on_focus(name: str | None, token: str | None, request: gr.Request) -> dict[Any, Any]:
        """Fresh choices when the selector opens."""
        return {run_select: gr.update(choices=run_choices(state, token, lang_of(request), extra=name))}

    run_select.focus(on_focus, [run_select, visitor], [run_select], **private)

    @shown_errors(fallback=lambda: None)
    def on_stop(current: Follow, token: str | None, request: gr.Request) -> None:
        """Ask the visitor's run to stop."""
        state.queue.stop(state.owned_run(current.run, token))
        info(t(lang_of(request), "stop_requested"))

    stop.click(on_stop, [follow, visitor], None, **private)

    @shown_errors(fallback=lambda: {follow: gr.skip()})
    def on_resume(current: Follow, token: str | None, request: gr.Request) -> dict[Any, Any]:
        """Queue the visitor's run again from its checkpoint, and follow it from its beginning."""
        lang = lang_of(request)
        name = resume_run(state, current.run, token, client_address(request))
        info(t(lang, "resume_requested", run=name))
        return poll(state, tab, Follow(run=name), token, lang, refresh=True)

    resume.click(on_resume, [follow, visitor], tab.outputs, **private)

    @shown_errors(fallback=lambda: {export_file: gr.update(value=None, visible=False)})
    def on_export(current: Follow, token: str | None, request: gr.Request) -> dict[Any, Any]:
        """The visitor's run as a model zip to download."""
        return {export_file: gr.update(value=export_run(state, current.run, token), visible=True)}

    export.click(on_export, [follow, visitor], [export_file], concurrency_limit=1, **private)

    @shown_errors(fallback=lambda: unexplained(tab))
    def on_mistake(current: Follow, selected: gr.SelectData, request: gr.Request) -> dict[Any, Any]:
        """A sentence of the mistakes table clicked: why the model predicted the class it did."""
        return explain_mistake(state, tab, current, selected.row_value, lang_of(request))

    mistakes.select(
        on_mistake, [follow], [mistake_explanation, mistake_md], show_progress="minimal", concurrency_limit=1,
        concurrency_id="explain", api_visibility="private",
    )  # fmt: skip

    delete.click(lambda: gr.update(visible=True), None, [confirm_row], queue=False, **private)
    cancel.click(lambda: gr.update(visible=False), None, [confirm_row], queue=False, **private)

    @shown_errors(fallback=lambda: {confirm_row: gr.update(visible=False)})
    def on_delete(current: Follow, token: str | None, request: gr.Request) -> dict[Any, Any]:
        """Delete the visitor's finished run and clear the selection."""
        lang = lang_of(request)
        state.queue.delete(state.owned_run(current.run, token))
        info(t(lang, "deleted", run=current.run))
        choices = run_choices(state, token, lang)
        return {run_select: gr.update(choices=choices, value=None), confirm_row: gr.update(visible=False)}

    confirm.click(on_delete, [follow, visitor], [run_select, confirm_row], **private).then(
        on_select, [run_select, visitor], tab.outputs, **private
    )
    return tab


def share_link(name: str | None, request: gr.Request) -> str:
    """The page's address with `?run=<name>`: whoever has it can follow the run and predict with it, read-only."""
    if not name:
        return ""
    page = (request.headers.get("referer") or "").split("?")[0].split("#")[0]
    return f"{page}?run={name}"


def export_run(state: AppState, name: str | None, visitor: str | None) -> str:
    """Zip the visitor's finished run for download (the Predict tab, the CLI and transformers load it)."""
    return str(state.export(state.owned_run(name, visitor)))
