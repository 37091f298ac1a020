"""The web app: `build_app(home, queue)` -> a Gradio Blocks with the Train, Logs and Predict tabs and the API.

No training happens here: the app submits jobs to `kobert_demo.app.queue` and reads run folders.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import gradio as gr

from kobert_demo.app.queue import JobQueue
from kobert_demo.app.ui import api, logs_tab, predict_tab, train_tab
from kobert_demo.basics.config import KOBERT_HUB_ID
from kobert_demo.basics.settings import limits, runs_home

from .i18n import I18N, lang_of, t
from .logs_tab import Follow, poll, share_link
from .predict_tab import model_choices
from .render import info, warn
from .shared import run_choices
from .state import MIN_VISITOR_CHARS, AppState, VisitorError, client_address, shown_errors

__all__ = ["KoBertApp", "build_app"]

CSS = """
.kd-error { border-left: 4px solid #dc2626; background: rgba(220, 38, 38, 0.08); padding: 6px 12px;
  border-radius: 6px; }
.kd-help, .kd-help p { font-size: 0.86em !important; color: var(--body-text-color-subdued); }
.kd-progress { height: 12px; background: var(--neutral-200); border-radius: 6px; overflow: hidden; }
.kd-bar { height: 100%; background: var(--color-accent); transition: width 0.6s ease; }
.kd-progress-text { font-size: 0.9em; margin-top: 6px; font-variant-numeric: tabular-nums; }
.kd-cm { overflow-x: auto; }
.kd-cm-title { font-size: 0.9em; margin-bottom: 6px; color: var(--body-text-color-subdued); }
.kd-cm table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
.kd-cm th, .kd-cm td { border: 1px solid var(--border-color-primary); padding: 6px 10px; text-align: center; }
.kd-cm td.kd-hit { background: rgba(37, 99, 235, calc(var(--share) * 0.85)); }
.kd-cm td.kd-miss { background: rgba(220, 38, 38, calc(var(--share) * 0.85)); }
.kd-cm-corner { font-weight: normal; font-size: 0.8em; color: var(--body-text-color-subdued); }
"""

FONTS = ["Pretendard", "Noto Sans KR", "NanumGothic", "Apple SD Gothic Neo", "Malgun Gothic", "sans-serif"]


class KoBertApp(gr.Blocks):
    """gr.Blocks whose launch() brings the app's translations, theme, CSS and file rules, and whose close() also
    stops the job queue it started."""

    state: AppState
    owns_queue: bool

    def launch(self, **kwargs: Any) -> Any:
        """gr.Blocks.launch with the app's defaults: only the work folder (exports, predictions) may be served, never
        the runs or the uploaded zips, and no upload may exceed the larger of the file and zip limits (settings)."""
        kwargs.setdefault("i18n", I18N)
        kwargs.setdefault("css", CSS)
        kwargs.setdefault("theme", gr.themes.Soft(primary_hue="blue", font=FONTS))
        kwargs.setdefault("allowed_paths", [str(self.state.work)])
        kwargs.setdefault("blocked_paths", [str(self.state.home.resolve()), str(self.state.private.resolve())])
        kwargs.setdefault("max_file_size", limits().max_upload_bytes)
        # Every running request holds one of gradio's worker threads (40 by default): the `predict` queue alone runs
        # up to PREDICT_CONCURRENCY requests at once, most of them waiting for their batched forward.
        kwargs.setdefault("max_threads", 2 * predict_tab.PREDICT_CONCURRENCY)
        return super().launch(**kwargs)

    def close(self, verbose: bool = True) -> None:
        """Close the server, and the job queue when build_app started it."""
        super().close(verbose)
        if self.owns_queue:
            self.state.queue.close()


def build_app(home: str | Path | None = None, queue: JobQueue | None = None) -> KoBertApp:
    """The app for the runs under home (default: settings.runs_home()); starts a JobQueue unless one is given."""
    home = Path(home) if home else runs_home()
    state = AppState(home, queue or JobQueue(home).start())
    with KoBertApp(title="KoBERT Demo", delete_cache=(3600, 3600)) as demo:
        demo.state, demo.owns_queue = state, queue is None
        visitor = gr.BrowserState(None, storage_key="kobert-demo-visitor", secret=state.browser_secret())
        gr.Markdown(I18N("title"))
        gr.Markdown(I18N("intro"), elem_classes=["kd-help"])
        with gr.Tabs() as tabs:
            with gr.Tab(I18N("tab_train"), id="train", elem_id="tab-train"):
                train = train_tab.build(state, visitor)
            with gr.Tab(I18N("tab_logs"), id="logs", elem_id="tab-logs"):
                logs = logs_tab.build(state, visitor)
            with gr.Tab(I18N("tab_predict"), id="predict", elem_id="tab-predict") as tab:
                predict = predict_tab.build(state, visitor, tab)
        gr.Markdown(I18N("footer"), elem_classes=["kd-help"])
        api.build(state)
        _wire(state, demo, visitor, tabs, train, logs, predict)
    demo.queue(default_concurrency_limit=2, max_size=256)
    return demo


def _wire(
    state: AppState,
    demo: gr.Blocks,
    visitor: gr.BrowserState,
    tabs: gr.Tabs,
    train: train_tab.TrainTab,
    logs: logs_tab.LogsTab,
    predict: predict_tab.PredictTab,
) -> None:
    """The events that span tabs: page load (visitor token, shared link, reattaching) and Start (opens Logs)."""
    private = {"api_visibility": "private", "show_progress": "hidden"}

    def on_load(token: str | None, request: gr.Request) -> dict[Any, Any]:
        """A page opens: its visitor token (made on the first visit), limits, the default backbone's note with the
        speed measured so far, the run to follow, the model to use."""
        lang = lang_of(request)
        token = token if isinstance(token, str) and len(token) >= MIN_VISITOR_CHARS else secrets.token_urlsafe(24)
        shared = request.query_params.get("run") or None
        try:
            shared = state.run(shared).name if shared else None
        except VisitorError as error:
            warn(error.text(lang))
            shared = None
        runs = run_choices(state, token, lang, extra=shared)
        follow = shared or (runs[0][1] if runs else None)
        models = model_choices(state, token, lang, extra=shared)
        model = shared if shared in {name for _, name in models} else (models[0][1] if models else None)
        lim = limits()
        limit_text = t(
            lang, "limits", mb=lim.max_file_mb, rows=lim.max_rows, chars=lim.max_text_chars,
            lines=lim.max_predict_lines,
        )  # fmt: skip
        if state.queue.read_only:  # another server holds the runs home: say so before the visitor tries
            warn(t(lang, "job_home_taken"))
            limit_text = f"**{t(lang, 'job_home_taken')}**\n\n{limit_text}"
        shown = {
            visitor: token,
            train.limits: limit_text,
            train.backbone_note: train_tab.backbone_note(KOBERT_HUB_ID, state.queue.measured_speeds(), lang),
            logs.follow: Follow(run=follow),
            logs.run_select: gr.update(choices=runs, value=follow),
            logs.share: share_link(follow, request) if follow else "",
            predict.run_select: gr.update(choices=models, value=model),
            predict.model: model or "",
        }
        if shared:
            shown[tabs] = gr.Tabs(selected="logs")
        return shown

    def refresh(current: Follow, token: str | None, request: gr.Request) -> dict[Any, Any]:
        """Draw everything the followed run has logged so far."""
        return poll(state, logs, current, token, lang_of(request), refresh=True)

    demo.load(
        on_load,
        [visitor],
        [
            visitor,
            train.limits,
            train.backbone_note,
            logs.follow,
            logs.run_select,
            logs.share,
            predict.run_select,
            predict.model,
            tabs,
        ],
        **private,
    ).then(refresh, [logs.follow, visitor], logs.outputs, **private)

    @shown_errors(fallback=lambda: {train.message: ""})
    def on_start(values: dict, request: gr.Request) -> dict:
        """Queue a run from the form and follow it in the Logs tab; a refusal is a toast in the visitor's language."""
        lang = lang_of(request)
        token = values[visitor]
        run = train_tab.start_from_form(state, token or "", train, values, client_address(request))
        return {
            train.message: train_tab.queued_message(state, run, lang),
            logs.follow: Follow(run=run.name),
            logs.run_select: gr.update(choices=run_choices(state, token, lang), value=run.name),
            logs.share: share_link(run.name, request),
            tabs: gr.Tabs(selected="logs"),
        }

    train.start.click(
        on_start,
        {visitor, *train.form},
        [train.message, logs.follow, logs.run_select, logs.share, tabs],
        concurrency_limit=2,
        api_visibility="private",
        show_progress="minimal",
    ).success(refresh, [logs.follow, visitor], logs.outputs, **private)

    continuing = [train.init_from, train.continue_note, train.continue_cancel]

    @shown_errors(fallback=lambda: {tabs: gr.skip()})
    def on_continue(current: Follow, token: str | None, request: gr.Request) -> dict:
        """ "Continue training": the Train tab, set to start from the followed run's model."""
        lang = lang_of(request)
        run = train_tab.continuable(state, current.run, token)
        info(t(lang, "continue_chosen", run=run.name))
        return {**train_tab.continue_from(train, run.name, lang), tabs: gr.Tabs(selected="train")}

    logs.continue_.click(on_continue, [logs.follow, visitor], [*continuing, tabs], **private)
