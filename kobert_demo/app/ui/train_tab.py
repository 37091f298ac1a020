"""The Train tab: upload data, check it (columns, classes, dropped rows), pick a backbone and settings, queue a run.

The settings widgets come from TrainConfig's schema (config.py): `widgets()` derives them, `form_config()` reads them
back by field name. Handlers return `{component: value}` dicts; the renderers they use are plain functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import gradio as gr
import pandas as pd

from kobert_demo.app.queue import owner_id
from kobert_demo.basics.config import KOBERT_HUB_ID, TINY, TrainConfig, config_fields, default_lr
from kobert_demo.basics.messages import fmt_duration
from kobert_demo.basics.metrics import imbalance_hint
from kobert_demo.basics.runs import Run
from kobert_demo.basics.settings import custom_models_allowed
from kobert_demo.engine.backbones import CATALOGUE, HUB_MODELS, expected_speed

from .i18n import I18N, lang_of, t
from .render import md_text
from .state import AppState, VisitorError, check_model_allowed, check_visitor, message

CUSTOM = "custom"
SEPARATOR_KEYS = {"\t": "sep_tab", ",": "sep_comma", ";": "sep_semicolon", "|": "sep_pipe"}
ADVANCED_ROW = 5  # widgets per row in the "Advanced settings" accordion
NOTE_KEYS = {KOBERT_HUB_ID: "note_kobert", TINY: "note_tiny"}  # other curated backbones: note_hub

Component = gr.components.Component


@dataclass
class TrainTab:
    """The tab's components: its handlers and the app's wiring (Start opens the Logs tab) name them."""

    train_file: gr.File
    test_file: gr.File
    text_col: gr.Dropdown
    label_col: gr.Dropdown
    summary: gr.Markdown
    error: gr.Markdown
    preview: gr.Dataframe
    classes: gr.BarPlot
    backbone: gr.Radio
    custom_model: gr.Textbox
    backbone_note: gr.Markdown
    settings: dict[str, Component]  # the settings widgets, by TrainConfig field name
    start: gr.Button
    message: gr.Markdown
    limits: gr.Markdown
    valid_file: gr.File
    init_from: gr.State  # "Continue training": the run whose model this run starts from, or None
    continue_note: gr.Markdown  # says so while init_from is set
    continue_cancel: gr.Button  # clears it

    @property
    def checked(self) -> list[Component]:
        """What a file check updates."""
        return [self.text_col, self.label_col, self.summary, self.error, self.preview, self.classes]

    @property
    def form(self) -> list[Component]:
        """What Start reads."""
        files = [self.train_file, self.test_file, self.valid_file, self.text_col, self.label_col]
        return [*files, self.backbone, self.custom_model, self.init_from, *self.settings.values()]


# --- checking files -----------------------------------------------------------------------------------------------
def _path(file: Any) -> str | None:
    """A gr.File value (a path, or None) as a path string."""
    return str(file) if file else None


def check_files(
    tab: TrainTab,
    train_file: str | None,
    test_file: str | None,
    text_col: str | None,
    label_col: str | None,
    lang: str,
    valid_file: str | None = None,
) -> dict[Component, Any]:
    """Read the files with the chosen (or detected) columns: dropdowns, summary (each file, where validation and
    test data come from, a hint for imbalanced classes), error, preview and class plot."""
    from kobert_demo.basics.data import DataError, check_test_labels, read_table

    no_preview = gr.update(value=None, visible=False)  # not an empty grid with placeholder headers
    cleared = {tab.text_col: gr.update(choices=[], value=None), tab.label_col: gr.update(choices=[], value=None)}
    if not train_file:
        return {**cleared, tab.summary: "", tab.error: error_note(""), tab.preview: no_preview, tab.classes: None}
    if text_col and text_col == label_col:
        return {tab.error: error_note(md_text(t(lang, "err_same_columns")))}
    try:
        train = read_table(train_file, text_col, label_col)
        test = read_table(test_file, train.text_col, train.label_col) if test_file else None
        valid = read_table(valid_file, train.text_col, train.label_col) if valid_file else None
    except Exception as error:
        note = error_note(md_text(message(error, lang)))
        shown = {tab.summary: "", tab.error: note, tab.preview: no_preview, tab.classes: None}
        return shown if text_col or label_col else {**cleared, **shown}  # keep the user's column choice on screen
    counts = train.class_counts()
    lines = [_file_line(train, lang), t(lang, "classes_line", n=len(counts))]
    hint = imbalance_hint(counts)
    if hint:
        names = {"largest": md_text(hint["largest"]), "smallest": md_text(hint["smallest"])}
        lines.append(f"💡 {t(lang, 'hint_class_weights', **{**hint, **names})}")
    problems = []
    for data, absent in ((valid, "no_valid_file"), (test, "no_test_file")):
        if data is None:
            lines.append(t(lang, absent))
            continue
        lines.append(_file_line(data, lang) + (f"\n\n{t(lang, 'valid_file_used')}" if data is valid else ""))
        try:
            check_test_labels(train, data)  # a class training never sees can be neither validated nor tested
        except DataError as problem:
            problems.append(md_text(problem.text(lang)))
    error = "\n\n".join(problems)
    return {
        tab.text_col: gr.update(choices=train.columns, value=train.text_col),
        tab.label_col: gr.update(choices=train.columns, value=train.label_col),
        tab.summary: "\n\n".join(lines),
        tab.error: error_note(error),
        tab.preview: gr.update(value=preview(train), visible=True),
        tab.classes: class_frame(counts),
    }


def error_note(markdown: str) -> dict:
    """The error box: shown with a warning sign when there is something to say, hidden otherwise."""
    return gr.update(value=f"⚠️ {markdown}" if markdown else "", visible=bool(markdown))


def class_frame(counts: Mapping[str, int]) -> pd.DataFrame:
    """The class plot's data: rows per class."""
    return pd.DataFrame({"class": list(counts), "rows": list(counts.values())})


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


# --- the settings form ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Widget:
    """One setting's form widget, derived from its Setting: the Gradio class and its arguments."""

    name: str  # the TrainConfig field
    kind: type[Component]
    kwargs: dict[str, Any]
    advanced: bool


def widgets(config: type[TrainConfig] = TrainConfig) -> list[Widget]:
    """The form's settings widgets in field order (fields with a form label): label, help, bounds, step, default
    and element id from the schema. The learning rate shows the default backbone's."""
    defaults = config()
    values = {**defaults.to_dict(), "lr": defaults.learning_rate}
    made = []
    for spec in config_fields(config).values():
        setting = spec.setting
        if setting.label is None:
            continue
        kwargs: dict[str, Any] = {
            "value": values[spec.name], "label": I18N(setting.label), "info": I18N(setting.help),
            "elem_id": spec.elem_id,
        }  # fmt: skip
        if setting.step is not None:
            kwargs["step"] = setting.step
        if spec.type is bool:
            kind = gr.Checkbox
        elif setting.choices:
            kind = gr.Dropdown
            kwargs["choices"] = list(setting.choices)
        elif setting.slider:
            kind = gr.Slider
            kwargs["minimum"], kwargs["maximum"] = setting.slider
        else:  # no minimum/maximum: Gradio would refuse an out-of-bounds value in English; check() speaks Korean
            kind = gr.Number
            kwargs["precision"] = 0 if spec.type is int else None
        made.append(Widget(spec.name, kind, kwargs, setting.advanced))
    return made


def form_config(tab: TrainTab, values: Mapping[Component, Any]) -> TrainConfig:
    """The checked TrainConfig the form describes (values: the form's components and what they hold)."""
    options = {name: values[component] for name, component in tab.settings.items()}
    options.update(text_col=values[tab.text_col] or None, label_col=values[tab.label_col] or None)
    options["init_from"] = values.get(tab.init_from) or None
    return make_config(values[tab.backbone], values[tab.custom_model], options)


def backbone_changed(tab: TrainTab, choice: str, speeds: Mapping[str, float], lang: str) -> dict[Component, Any]:
    """A backbone chosen: the custom model box, the backbone's learning rate and its note (speeds: the measured
    training speed of each model, JobQueue.measured_speeds)."""
    return {
        tab.custom_model: gr.update(visible=choice == CUSTOM),
        tab.settings["lr"]: default_lr(choice),
        tab.backbone_note: backbone_note(choice, speeds, lang),
    }


def backbone_choices(custom: bool) -> list[tuple[Any, str]]:
    """The backbone radio's (label, value) pairs: KoBERT first (the default), the other curated models with their
    size, the custom model box when custom models are allowed, tiny last."""
    hub = [(f"{model} · {CATALOGUE[model].millions}", model) for model in HUB_MODELS[1:]]
    custom_choice = [(I18N("backbone_custom"), CUSTOM)] if custom else []
    return [(I18N("backbone_kobert"), KOBERT_HUB_ID), *hub, *custom_choice, (I18N("backbone_tiny"), TINY)]


def backbone_note(choice: str, speeds: Mapping[str, float], lang: str) -> str:
    """What the form says under the chosen backbone: what it is, then its size, its expected training speed here and
    the NSMC accuracy its model card reports (marked as the card's). A custom model has only its note."""
    backbone = CATALOGUE.get(choice)
    if backbone is None:
        return t(lang, "note_custom")
    key = NOTE_KEYS.get(choice, "note_hub")
    license_ = backbone.license or t(lang, "license_tiny")
    note = t(
        lang, key, model=choice, family=backbone.family_name, tokenizer=t(lang, backbone.tokenizer), license=license_
    )
    return f"{note}\n\n{backbone_facts(choice, speeds, lang)}"


def backbone_facts(choice: str, speeds: Mapping[str, float], lang: str) -> str:
    """One line: size · expected training speed here · the card's NSMC figure (tiny has no card)."""
    backbone = CATALOGUE[choice]
    facts = [t(lang, "facts_size", size=backbone.millions)]
    speed = expected_speed(choice, speeds)
    if speed is None:
        facts.append(t(lang, "facts_speed_none"))
    elif speed.measured:
        facts.append(t(lang, "facts_speed_measured", speed=f"{speed.sentences_per_s:,.1f}"))
    else:
        facts.append(t(lang, "facts_speed_estimate", speed=f"{speed.sentences_per_s:,.1f}", reference=speed.reference))
    if backbone.nsmc:
        facts.append(t(lang, "facts_card", accuracy=f"{backbone.nsmc.accuracy:.2f}", card=backbone.nsmc.card))
    elif choice != TINY:
        facts.append(t(lang, "facts_card_none"))
    return " · ".join(facts)


# --- starting a run -----------------------------------------------------------------------------------------------
def make_config(backbone: str, custom_model: str | None, options: Mapping[str, Any]) -> TrainConfig:
    """A checked TrainConfig from the backbone choice and the form's (or the API's) options. A curated backbone is
    always allowed; other folders and hub ids only with custom models on."""
    model = (custom_model or "").strip() if backbone == CUSTOM else backbone or KOBERT_HUB_ID
    check_model_allowed(model)
    if not model:
        raise VisitorError("err_custom_model_empty")
    return TrainConfig.from_options(options, model=model)


def submit(
    state: AppState,
    config: TrainConfig,
    train_file: str | None,
    test_file: str | None,
    visitor: str,
    address: str = "",
    valid_file: str | None = None,
) -> Run:
    """Queue a run for this visitor from this network address (the engine validates the data first). A run to
    continue from (config.init_from) is named, never a path, and must be one of the visitor's finished runs with a
    model: a visitor starts from their own runs, not from any folder on the server."""
    visitor = check_visitor(visitor)
    if not train_file:
        raise VisitorError("err_no_train_file")
    if config.init_from:
        continuable(state, config.init_from, visitor)
    return state.queue.submit(
        config, train_file, test_file, valid_file=valid_file, owner=owner_id(visitor), address=address
    )


def continuable(state: AppState, name: str, visitor: str | None) -> Run:
    """The visitor's run to continue training from: finished, with a model (VisitorError otherwise)."""
    run = state.owned_run(name, visitor)
    if not (run.status().finished and run.has_model):
        raise VisitorError("err_cannot_continue", run=run.name)
    return run


def continue_from(tab: TrainTab, name: str | None, lang: str) -> dict[Component, Any]:
    """The Train tab set to start from run name's model (None: from the backbone, as usual)."""
    note = t(lang, "continue_from", run=md_text(name)) if name else ""
    return {
        tab.init_from: name,
        tab.continue_note: gr.update(value=note, visible=bool(name)),
        tab.continue_cancel: gr.update(visible=bool(name)),
    }


def start_from_form(
    state: AppState, visitor: str, tab: TrainTab, values: Mapping[Component, Any], address: str = ""
) -> Run:
    """Queue a run from the form (values: the form's components and what they hold)."""
    config = form_config(tab, values)
    files = _path(values[tab.train_file]), _path(values[tab.test_file])
    return submit(state, config, *files, visitor, address, valid_file=_path(values.get(tab.valid_file)))


def queued_message(state: AppState, run: Run, lang: str) -> str:
    """The message under Start for a run just queued, from the queue's state."""
    position = state.queue.position(run)
    ahead = 0 if position is None else position - 1 + (1 if state.queue.running() else 0)
    return queued_text(run.name, ahead, state.queue.wait_estimate(run) if ahead else None, lang)


def queued_text(run: str, ahead: int, wait_s: float | None, lang: str) -> str:
    """`Run X is queued: 2 jobs ahead, about 3:10` (or starting now, with no job ahead)."""
    if not ahead:
        return t(lang, "run_starting", run=run)
    return t(lang, "run_queued", run=run, ahead=ahead, wait=fmt_duration(wait_s))


# --- the tab ------------------------------------------------------------------------------------------------------
def build(state: AppState, visitor: gr.BrowserState) -> TrainTab:
    """Lay out the Train tab and wire its own events; the Start event is wired by the app (it opens Logs)."""
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=320):
            train_file = gr.File(
                label=I18N("train_file"), file_types=[".tsv", ".csv", ".txt"], height=120, elem_id="train-file"
            )
            with gr.Row():
                test_file = gr.File(
                    label=I18N("test_file"), file_types=[".tsv", ".csv", ".txt"], height=120, elem_id="test-file"
                )
                valid_file = gr.File(
                    label=I18N("valid_file"), file_types=[".tsv", ".csv", ".txt"], height=120, elem_id="valid-file"
                )
            gr.Markdown(I18N("file_help"), elem_classes=["kd-help"])
            limits_md = gr.Markdown(elem_classes=["kd-help"])
            with gr.Row():
                text_col = gr.Dropdown(label=I18N("text_col"), choices=[], interactive=True, allow_custom_value=False)
                label_col = gr.Dropdown(label=I18N("label_col"), choices=[], interactive=True, allow_custom_value=False)
        with gr.Column(scale=3, min_width=360):
            error = gr.Markdown(visible=False, elem_classes=["kd-error"], elem_id="train-error")
            summary = gr.Markdown(elem_id="train-summary")
            preview_grid = gr.Dataframe(
                label=I18N("preview"), interactive=False, max_height=260, visible=False, elem_id="train-preview"
            )
            classes = gr.BarPlot(
                None, x="class", y="rows", label=I18N("classes_plot"), height=220, y_lim=[0, None], sort="-y",
                x_title=" ", y_title=" ", elem_id="class-plot",
            )  # fmt: skip

    gr.Markdown(I18N("backbone_title"))
    with gr.Row(equal_height=True):
        backbone = gr.Radio(
            choices=backbone_choices(custom_models_allowed()),
            value=KOBERT_HUB_ID,
            show_label=False,
            scale=3,
            elem_id="backbone",
        )
        custom_model = gr.Textbox(
            label=I18N("model_path"), placeholder="./kobert-base-v1", visible=False, scale=2, max_lines=1,
            elem_id="custom-model",
        )  # fmt: skip
    backbone_note = gr.Markdown(I18N("note_kobert"), elem_classes=["kd-help"], elem_id="backbone-note")
    settings = _settings_form(widgets())
    init_from = gr.State(None)
    with gr.Row(equal_height=True):
        continue_note = gr.Markdown(visible=False, elem_id="continue-from")
        continue_cancel = gr.Button(I18N("continue_cancel"), size="sm", visible=False, elem_id="continue-cancel")
    start = gr.Button(I18N("start"), variant="primary", elem_id="start")
    message_md = gr.Markdown(elem_id="train-message")
    tab = TrainTab(
        train_file, test_file, text_col, label_col, summary, error, preview_grid, classes, backbone, custom_model,
        backbone_note, settings, start, message_md, limits_md, valid_file, init_from, continue_note, continue_cancel,
    )  # fmt: skip

    def on_upload(train: Any, test: Any, valid: Any, request: gr.Request) -> dict[Component, Any]:
        """A new training file: detect its columns and check it."""
        return check_files(tab, _path(train), _path(test), None, None, lang_of(request), _path(valid))

    def on_columns(
        train: Any, test: Any, valid: Any, text: str | None, label: str | None, request: gr.Request
    ) -> dict[Component, Any]:
        """Columns chosen or a test or validation file added: check the files again."""
        return check_files(tab, _path(train), _path(test), text, label, lang_of(request), _path(valid))

    def on_cancel_continue(request: gr.Request) -> dict[Component, Any]:
        """Train from the backbone again."""
        return continue_from(tab, None, lang_of(request))

    def on_backbone(choice: str, request: gr.Request) -> dict[Component, Any]:
        """The custom model box, the backbone's learning rate and its note with the speed measured so far."""
        return backbone_changed(tab, choice, state.queue.measured_speeds(), lang_of(request))

    private = {"api_visibility": "private", "show_progress": "minimal"}
    train_file.change(on_upload, [train_file, test_file, valid_file], tab.checked, **private)
    columns = [train_file, test_file, valid_file, text_col, label_col]
    changes = [test_file.change, valid_file.change, text_col.input, label_col.input]
    gr.on(changes, on_columns, columns, tab.checked, **private)
    continuing = [init_from, continue_note, continue_cancel]
    continue_cancel.click(on_cancel_continue, None, continuing, api_visibility="private", queue=False)
    backbone_outputs = [custom_model, settings["lr"], backbone_note]
    backbone.input(on_backbone, backbone, backbone_outputs, api_visibility="private", queue=False)
    return tab


def _settings_form(specs: list[Widget]) -> dict[str, Component]:
    """Render the settings widgets: numbers in a row, checkboxes under it, the advanced ones in an accordion."""
    made: dict[str, Component] = {}

    def render(group: list[Widget]) -> None:
        for spec in group:
            made[spec.name] = spec.kind(**spec.kwargs)

    main = [spec for spec in specs if not spec.advanced]
    with gr.Row():
        render([spec for spec in main if spec.kind is not gr.Checkbox])
    render([spec for spec in main if spec.kind is gr.Checkbox])
    with gr.Accordion(I18N("advanced"), open=False, elem_id="advanced"):
        advanced = [spec for spec in specs if spec.advanced]
        for first in range(0, len(advanced), ADVANCED_ROW):
            with gr.Row():
                render(advanced[first : first + ADVANCED_ROW])
        gr.Markdown(I18N("advanced_help"), elem_classes=["kd-help"])
    return made
