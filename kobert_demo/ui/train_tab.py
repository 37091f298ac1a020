"""The Train tab: upload data, check it (columns, classes, dropped rows), pick a backbone and settings, queue a run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr
import pandas as pd

from kobert_demo.config import KOBERT_HUB_ID, PRECISIONS, TINY, TINY_LR, TrainConfig
from kobert_demo.jobs import owner_id
from kobert_demo.messages import fmt_duration
from kobert_demo.runs import Run
from kobert_demo.settings import custom_models_allowed

from .i18n import I18N, lang_of, t
from .render import md_text
from .state import AppState, UserError, check_visitor, message

CUSTOM = "custom"
KOBERT_LR = 5e-5
SEPARATOR_KEYS = {"\t": "sep_tab", ",": "sep_comma", ";": "sep_semicolon", "|": "sep_pipe"}
INT_SETTINGS = ("epochs", "batch_size", "max_len", "log_interval", "seed")
FLOAT_SETTINGS = ("lr", "warmup_ratio", "weight_decay", "dropout", "max_grad_norm", "test_size")
BOOL_SETTINGS = ("cpu_mode",)


@dataclass
class TrainTab:
    """The tab's components that other tabs and the app wiring use."""

    train_file: gr.File
    test_file: gr.File
    text_col: gr.Dropdown
    label_col: gr.Dropdown
    settings: list[gr.components.Component]
    start: gr.Button
    message: gr.Markdown
    limits: gr.Markdown


# --- checking files -----------------------------------------------------------------------------------------------
def _path(file: Any) -> str | None:
    """A gr.File value (a path, or None) as a path string."""
    return str(file) if file else None


def check_files(
    train_file: str | None, test_file: str | None, text_col: str | None, label_col: str | None, lang: str
) -> tuple[Any, ...]:
    """Read both files with the chosen (or detected) columns: dropdowns, summary, error, preview and class plot."""
    from kobert_demo.data import DataError, check_test_labels, read_table

    no_preview = gr.update(value=None, visible=False)  # not an empty grid with placeholder headers
    if not train_file:
        hidden = gr.update(choices=[], value=None)
        return hidden, hidden, "", gr.update(value="", visible=False), no_preview, None
    if text_col and text_col == label_col:
        error = md_text(t(lang, "err_same_columns"))
        return gr.skip(), gr.skip(), gr.skip(), gr.update(value=f"⚠️ {error}", visible=True), gr.skip(), gr.skip()
    try:
        train = read_table(train_file, text_col, label_col)
        test = read_table(test_file, train.text_col, train.label_col) if test_file else None
    except Exception as error:
        note = gr.update(value=f"⚠️ {md_text(message(error, lang))}", visible=True)
        if text_col or label_col:  # keep the user's column choice on screen
            return gr.skip(), gr.skip(), "", note, no_preview, None
        hidden = gr.update(choices=[], value=None)
        return hidden, hidden, "", note, no_preview, None
    counts = train.class_counts()
    lines = [_file_line(train, lang), t(lang, "classes_line", n=len(counts))]
    error = ""
    if test:
        lines.append(_file_line(test, lang))
        try:
            check_test_labels(train, test)
        except DataError as problem:
            error = md_text(problem.text(lang))
    else:
        lines.append(t(lang, "no_test_file"))
    plot = pd.DataFrame({"class": list(counts), "rows": list(counts.values())})
    return (
        gr.update(choices=train.columns, value=train.text_col),
        gr.update(choices=train.columns, value=train.label_col),
        "\n\n".join(lines),
        gr.update(value=f"⚠️ {error}" if error else "", visible=bool(error)),
        gr.update(value=preview(train), visible=True),
        plot,
    )


def preview(data: Any) -> pd.DataFrame:
    """The first rows, label and text columns first (long texts cut)."""
    columns = [data.label_col, data.text_col, *(c for c in data.columns if c not in (data.text_col, data.label_col))]
    head = data.head[columns].copy()
    head[data.text_col] = head[data.text_col].map(lambda text: text if len(text) <= 60 else text[:59] + "…")
    return head


def _file_line(data: Any, lang: str) -> str:
    """One file's summary: name, encoding, separator, rows read, kept and dropped."""
    dropped = ", ".join(f"{t(lang, why)} {n:,}" for why, n in data.dropped.items())
    return t(
        lang,
        "file_line",
        name=md_text(data.name),
        encoding=data.encoding.upper().replace("-SIG", " (BOM)"),
        separator=t(lang, SEPARATOR_KEYS.get(data.separator, "sep_other")),
        read=data.rows_read,
        kept=len(data.texts),
        dropped=dropped or t(lang, "none"),
    )


# --- starting a run -----------------------------------------------------------------------------------------------
def make_config(backbone: str, custom_model: str | None, options: dict[str, Any]) -> TrainConfig:
    """A TrainConfig from the backbone choice and the form's (or the API's) options."""
    if backbone == CUSTOM:
        if not custom_models_allowed():
            raise UserError("err_custom_models_off")
        model = (custom_model or "").strip()
        if not model:
            raise UserError("err_custom_model_empty")
    else:
        model = backbone or KOBERT_HUB_ID
    known = set(TrainConfig.__dataclass_fields__) - {"model"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise UserError("err_unknown_options", names=", ".join(unknown))
    values = {name: _setting(name, value) for name, value in options.items() if value not in ("", None)}
    return TrainConfig(model=model, **values)


def _setting(name: str, value: Any) -> Any:
    """One option as the type TrainConfig wants; UserError naming it when it is not a number where one is due."""
    if name in BOOL_SETTINGS:
        if isinstance(value, bool) or str(value).strip().lower() in ("true", "false", "1", "0"):
            return value if isinstance(value, bool) else str(value).strip().lower() in ("true", "1")
        raise UserError("err_not_a_number", name=name, value=str(value)[:40])
    try:
        if name in INT_SETTINGS:
            return int(value)
        if name in FLOAT_SETTINGS:
            return float(value)
    except (TypeError, ValueError):
        raise UserError("err_not_a_number", name=name, value=str(value)[:40]) from None
    return str(value)


def submit(state: AppState, config: TrainConfig, train_file: str | None, test_file: str | None, visitor: str) -> Run:
    """Queue a run for this visitor (the engine validates the data first)."""
    visitor = check_visitor(visitor)
    if not train_file:
        raise UserError("err_no_train_file")
    return state.queue.submit(config, train_file, test_file, owner=owner_id(visitor))


def queued_message(state: AppState, run: Run, lang: str) -> str:
    """`Run X is queued: 2 jobs ahead, about 3:10` (or starting now)."""
    position = state.queue.position(run)
    if position is None or (position == 1 and state.queue.running() is None):
        return t(lang, "run_starting", run=run.name)
    ahead = position - 1 + (1 if state.queue.running() else 0)
    return t(lang, "run_queued", run=run.name, ahead=ahead, wait=fmt_duration(state.queue.wait_estimate(run)))


# --- the tab ------------------------------------------------------------------------------------------------------
def build(state: AppState, visitor: gr.BrowserState) -> TrainTab:
    """Lay out the Train tab and wire its own events; the Start event is wired by the app (it opens Logs)."""
    d = TrainConfig()
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=320):
            train_file = gr.File(
                label=I18N("train_file"), file_types=[".tsv", ".csv", ".txt"], height=120, elem_id="train-file"
            )
            test_file = gr.File(
                label=I18N("test_file"), file_types=[".tsv", ".csv", ".txt"], height=120, elem_id="test-file"
            )
            gr.Markdown(I18N("file_help"), elem_classes=["kd-help"])
            limits_md = gr.Markdown(elem_classes=["kd-help"])
            with gr.Row():
                text_col = gr.Dropdown(label=I18N("text_col"), choices=[], interactive=True, allow_custom_value=False)
                label_col = gr.Dropdown(label=I18N("label_col"), choices=[], interactive=True, allow_custom_value=False)
        with gr.Column(scale=3, min_width=360):
            error = gr.Markdown(visible=False, elem_classes=["kd-error"], elem_id="train-error")
            summary = gr.Markdown(elem_id="train-summary")
            preview = gr.Dataframe(
                label=I18N("preview"), interactive=False, max_height=260, visible=False, elem_id="train-preview"
            )
            classes = gr.BarPlot(
                None, x="class", y="rows", label=I18N("classes_plot"), height=220, y_lim=[0, None], sort="-y",
                x_title=" ", y_title=" ", elem_id="class-plot",
            )  # fmt: skip

    gr.Markdown(I18N("backbone_title"))
    with gr.Row(equal_height=True):
        backbone = gr.Radio(
            choices=[
                (I18N("backbone_kobert"), KOBERT_HUB_ID),
                *([(I18N("backbone_custom"), CUSTOM)] if custom_models_allowed() else []),
                (I18N("backbone_tiny"), TINY),
            ],
            value=KOBERT_HUB_ID,
            show_label=False,
            scale=3,
            elem_id="backbone",
        )
        custom_model = gr.Textbox(
            label=I18N("model_path"), placeholder="./kobert-base-v1", visible=False, scale=2, max_lines=1
        )
    backbone_note = gr.Markdown(I18N("note_kobert"), elem_classes=["kd-help"])
    with gr.Row():
        epochs = gr.Number(d.epochs, label=I18N("epochs"), precision=0, minimum=1, maximum=100, elem_id="epochs")
        batch_size = gr.Number(
            d.batch_size, label=I18N("batch_size"), precision=0, minimum=1, maximum=1024, elem_id="batch-size"
        )
        max_len = gr.Number(d.max_len, label=I18N("max_len"), precision=0, minimum=8, maximum=512)
        lr = gr.Number(KOBERT_LR, label=I18N("lr"), minimum=0, step=1e-5, elem_id="lr")
    cpu_mode = gr.Checkbox(d.cpu_mode, label=I18N("cpu_mode"), info=I18N("cpu_mode_help"), elem_id="cpu-mode")
    with gr.Accordion(I18N("advanced"), open=False, elem_id="advanced"):
        with gr.Row():
            warmup = gr.Number(d.warmup_ratio, label=I18N("warmup"), minimum=0, maximum=0.99, step=0.01)
            weight_decay = gr.Number(d.weight_decay, label=I18N("weight_decay"), minimum=0, step=0.01)
            dropout = gr.Number(d.dropout, label=I18N("dropout"), minimum=0, maximum=0.99, step=0.05)
            grad_clip = gr.Number(d.max_grad_norm, label=I18N("grad_clip"), minimum=0, step=0.1)
        with gr.Row():
            log_interval = gr.Number(
                d.log_interval, label=I18N("log_interval"), precision=0, minimum=1, elem_id="log-interval"
            )
            seed = gr.Number(d.seed, label=I18N("seed"), precision=0)
            precision = gr.Dropdown(list(PRECISIONS), value=d.precision, label=I18N("precision"))
            mode = gr.Dropdown(["gluonnlp", "whole"], value=d.tokenizer_mode, label=I18N("tokenizer_mode"))
            test_size = gr.Slider(0.05, 0.5, value=d.test_size, step=0.05, label=I18N("test_size"))
        gr.Markdown(I18N("advanced_help"), elem_classes=["kd-help"])
    start = gr.Button(I18N("start"), variant="primary", elem_id="start")
    message_md = gr.Markdown(elem_id="train-message")

    check_outputs = [text_col, label_col, summary, error, preview, classes]

    def on_upload(train: Any, test: Any, request: gr.Request) -> tuple[Any, ...]:
        """A new training file: detect its columns and check it."""
        return check_files(_path(train), _path(test), None, None, lang_of(request))

    def on_columns(train: Any, test: Any, text: str | None, label: str | None, request: gr.Request) -> tuple[Any, ...]:
        """Columns chosen or a test file added: check both files again."""
        return check_files(_path(train), _path(test), text, label, lang_of(request))

    private = {"api_visibility": "private", "show_progress": "minimal"}
    train_file.change(on_upload, [train_file, test_file], check_outputs, **private)
    columns = [train_file, test_file, text_col, label_col]
    gr.on([test_file.change, text_col.input, label_col.input], on_columns, columns, check_outputs, **private)

    def on_backbone(choice: str) -> tuple[Any, ...]:
        """The custom model box, the backbone's learning rate and its note."""
        note = {TINY: "note_tiny", CUSTOM: "note_custom"}.get(choice, "note_kobert")
        return gr.update(visible=choice == CUSTOM), TINY_LR if choice == TINY else KOBERT_LR, I18N(note)

    backbone.input(on_backbone, backbone, [custom_model, lr, backbone_note], api_visibility="private", queue=False)

    settings = [
        backbone, custom_model, epochs, batch_size, max_len, lr, warmup, weight_decay, dropout, grad_clip,
        log_interval, seed, precision, mode, test_size, cpu_mode,
    ]  # fmt: skip
    return TrainTab(train_file, test_file, text_col, label_col, settings, start, message_md, limits_md)


SETTING_NAMES = (
    "epochs", "batch_size", "max_len", "lr", "warmup_ratio", "weight_decay", "dropout", "max_grad_norm",
    "log_interval", "seed", "precision", "tokenizer_mode", "test_size", "cpu_mode",
)  # fmt: skip


def start_from_form(
    state: AppState, visitor: str, train: Any, test: Any, text_col: str | None, label_col: str | None, *settings: Any
) -> Run:
    """Queue a run from the form: backbone, custom model, then SETTING_NAMES in order."""
    backbone, custom_model, *values = settings
    options = dict(zip(SETTING_NAMES, values), text_col=text_col or None, label_col=label_col or None)
    config = make_config(backbone, custom_model, options)
    return submit(state, config, _path(train), _path(test), visitor)
