"""The Predict tab: pick a model (a run, an uploaded zip, a folder or hub id), then classify as you type, several
lines at once, or a whole file (CSV download)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr
import pandas as pd

from kobert_demo.csv_out import write_csv
from kobert_demo.settings import custom_models_allowed, limits

from .i18n import I18N, lang_of, t
from .render import info, warn
from .state import AppState, UserError, message

if TYPE_CHECKING:
    import numpy as np

    from kobert_demo.predict import Predictor

SOURCES = ("run", "zip", "path")
EXAMPLES = [
    "이 영화 정말 재밌어요. 배우들 연기가 최고!",
    "시간 낭비였다. 스토리가 너무 지루함",
    "그냥 그랬어요. 나쁘진 않은데 다시 보진 않을 듯",
    "아 더빙.. 진짜 짜증나네요 목소리",
    "인생 영화입니다 ㅠㅠ 몇 번을 봐도 감동",
    "별점 1점도 아깝다",
]


@dataclass
class PredictTab:
    """The tab's components that the app wiring uses."""

    model: gr.Textbox
    run_select: gr.Dropdown
    source: gr.Radio


def _gpu(fn: Any) -> Any:
    """On a ZeroGPU Space (the `spaces` package imports), run fn on the GPU it lends; elsewhere fn itself."""
    try:
        import spaces
    except ImportError:
        return fn
    return spaces.GPU(fn)


@_gpu
def probabilities(predictor: Predictor, texts: list[str]) -> np.ndarray:
    """Class probabilities for texts, on the GPU when there is one."""
    import torch

    if torch.cuda.is_available() and predictor.backend == "torch":  # int8 models stay on the CPU
        predictor.model.to("cuda")
    return predictor.predict_proba(texts)


def checked_text(text: str | None) -> str:
    """One sentence to predict or split into pieces, stripped; UserError when empty or over max_text_chars."""
    text = (text or "").strip()
    if not text:
        raise UserError("err_no_text")
    limit = limits().max_text_chars
    if len(text) > limit:
        raise UserError("err_text_too_long", limit=limit)
    return text


def predict_one(state: AppState, ref: str | None, text: str) -> dict[str, float]:
    """Label -> probability for one sentence."""
    text = checked_text(text)
    predictor = state.predictor(ref)
    return dict(zip(predictor.label_names, probabilities(predictor, [text])[0].tolist()))


def predict_table(state: AppState, ref: str | None, texts: list[str]) -> pd.DataFrame:
    """text, label, then one probability column per class."""
    lim = limits()
    if not any(text.strip() for text in texts):
        raise UserError("err_no_text")
    if len(texts) > lim.max_predict_lines:
        raise UserError("err_too_many_lines", n=len(texts), limit=lim.max_predict_lines)
    predictor = state.predictor(ref)
    names = predictor.label_names
    texts = [text[: lim.max_text_chars] for text in texts]
    probs = probabilities(predictor, texts)
    table = pd.DataFrame({"text": texts, "label": [names[i] for i in probs.argmax(1)]})
    for j, name in enumerate(names):
        table[f"p_{name}"] = probs[:, j].astype(float).round(4)
    return table


def predict_file(state: AppState, ref: str | None, path: str | None) -> str:
    """A CSV of predictions for an uploaded file of sentences (a table's text column, or one per line)."""
    from kobert_demo.data import read_texts

    if not path:
        raise UserError("err_no_predict_file")
    table = predict_table(state, ref, read_texts(path))
    out = state.scratch("predictions") / f"{Path(path).stem}_predictions.csv"
    write_csv(out, [table.columns, *table.itertuples(index=False)], encoding="utf-8-sig")
    return str(out)


def pieces(predictor: Predictor, text: str) -> list[tuple[str, str]]:
    """KoBERT pieces of text for gr.HighlightedText, [UNK] and special tokens marked."""
    encoded = predictor.pieces(text)
    marks = []
    for piece, unknown in zip(encoded.pieces, encoded.unknown):
        kind = "[UNK]" if unknown else ("special" if piece in ("[CLS]", "[SEP]") else "piece")
        marks.append((piece, kind))
    return marks


# --- the tab ------------------------------------------------------------------------------------------------------
def build(state: AppState, visitor: gr.BrowserState, tab: gr.Tab) -> PredictTab:
    """Lay out the Predict tab and wire its events."""
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=320):
            sources = [(I18N("source_run"), "run"), (I18N("source_zip"), "zip"), (I18N("source_path"), "path")]
            source = gr.Radio(
                sources if custom_models_allowed() else sources[:2],
                value="run",
                label=I18N("model_source"),
                elem_id="model-source",
            )
            run_select = gr.Dropdown(label=I18N("my_models"), choices=[], interactive=True, elem_id="predict-run")
            zip_file = gr.File(label=I18N("model_zip"), file_types=[".zip"], visible=False, height=110)
            with gr.Row(visible=False, equal_height=True) as path_row:
                path = gr.Textbox(label=I18N("model_path"), placeholder="./runs/<run>/model", scale=4, max_lines=1)
                load = gr.Button(I18N("load"), scale=1)
            model = gr.Textbox(label=I18N("model_ref"), interactive=False, max_lines=1, elem_id="model-ref")
        with gr.Column(scale=3, min_width=360):
            sentence = gr.Textbox(
                label=I18N("sentence"), placeholder=EXAMPLES[0], lines=2, max_lines=4, elem_id="sentence"
            )
            label = gr.Label(label=I18N("prediction"), num_top_classes=5, elem_id="prediction")
            tokens = gr.HighlightedText(
                label=I18N("pieces"), color_map={"[UNK]": "#ef4444", "special": "#9ca3af", "piece": "#bfdbfe"},
                show_legend=False, show_inline_category=False, elem_id="pieces",
            )  # fmt: skip
            gr.Markdown(I18N("pieces_help"), elem_classes=["kd-help"])
    gr.Examples([[text] for text in EXAMPLES], inputs=[sentence], label=I18N("examples"), examples_per_page=6)
    with gr.Row(equal_height=False):
        with gr.Column():
            lines = gr.Textbox(
                label=I18N("many_lines"), lines=5, placeholder="\n".join(EXAMPLES[:3]), elem_id="many-lines"
            )
            many = gr.Button(I18N("predict_lines"), elem_id="predict-lines")
        with gr.Column():
            upload = gr.File(label=I18N("predict_file"), file_types=[".tsv", ".csv", ".txt"], height=110)
            run_file = gr.Button(I18N("predict_file_button"))
            csv = gr.File(label=I18N("predictions_csv"), interactive=False, visible=False)
    table = gr.Dataframe(
        label=I18N("predictions"), interactive=False, wrap=True, max_height=360, visible=False, elem_id="predictions"
    )

    private = {"api_visibility": "private"}

    def on_source(choice: str) -> tuple[Any, ...]:
        """Show the chooser for the picked model source."""
        return tuple(gr.update(visible=choice == name) for name in SOURCES)

    source.input(on_source, source, [run_select, zip_file, path_row], queue=False, **private)
    run_select.input(lambda name: name or "", run_select, model, queue=False, **private)

    def on_focus(name: str | None, token: str | None, request: gr.Request) -> Any:
        """Fresh choices when the selector opens."""
        return gr.update(choices=model_choices(state, token, lang_of(request), extra=name))

    run_select.focus(on_focus, [run_select, visitor], [run_select], **private)

    def on_open(ref: str, token: str | None, request: gr.Request) -> tuple[Any, Any]:
        """Entering the tab: fresh choices, and the newest trained run when no model is chosen yet."""
        choices = model_choices(state, token, lang_of(request))
        if ref or not choices:
            return gr.update(choices=choices), gr.skip()
        return gr.update(choices=choices, value=choices[0][1]), choices[0][1]

    tab.select(on_open, [model, visitor], [run_select, model], **private)

    def on_zip(upload_path: Any, request: gr.Request) -> Any:
        """An uploaded model zip: checked, kept, and chosen."""
        if not upload_path:
            return gr.skip()
        try:
            ref = state.save_zip(upload_path)
        except Exception as error:
            warn(message(error, lang_of(request)))
            return gr.skip()
        info(t(lang_of(request), "zip_loaded"))
        return ref

    zip_file.upload(on_zip, zip_file, model, show_progress="minimal", **private)

    def on_load_path(ref: str, request: gr.Request) -> Any:
        """Load a local folder or hub id, and choose it once it loads."""
        try:
            state.predictor(ref)
        except Exception as error:
            warn(message(error, lang_of(request)))
            return gr.skip()
        return ref.strip()

    gr.on([load.click, path.submit], on_load_path, path, model, show_progress="minimal", **private)

    def on_sentence(ref: str, text: str, request: gr.Request) -> tuple[Any, Any]:
        """As the visitor types: class probabilities and KoBERT pieces."""
        if not (text or "").strip():
            return None, None
        try:
            probs = predict_one(state, ref, text)
            return probs, pieces(state.predictor(ref), text)
        except Exception as error:
            warn(message(error, lang_of(request)))
            return None, None

    gr.on(
        [sentence.change, model.change], on_sentence, [model, sentence], [label, tokens],
        show_progress="hidden", trigger_mode="always_last", concurrency_limit=4, concurrency_id="predict", **private,
    )  # fmt: skip

    def on_lines(ref: str, text: str, request: gr.Request) -> Any:
        """Several sentences, one per line -> a table (column names in the visitor's language)."""
        lang = lang_of(request)
        try:
            table = predict_table(state, ref, (text or "").splitlines())
            names = {"text": t(lang, "col_text"), "label": t(lang, "col_predicted")}
            return gr.update(value=table.rename(columns=names), visible=True)
        except Exception as error:
            warn(message(error, lang))
            return gr.skip()

    gr.on([many.click], on_lines, [model, lines], table, concurrency_id="predict", **private)

    def on_file(ref: str, file: Any, request: gr.Request) -> Any:
        """A file of sentences -> a CSV of predictions."""
        try:
            return gr.update(value=predict_file(state, ref, file), visible=True)
        except Exception as error:
            warn(message(error, lang_of(request)))
            return gr.skip()

    run_file.click(on_file, [model, upload], csv, concurrency_id="predict", **private)
    return PredictTab(model, run_select, source)


def model_choices(state: AppState, visitor: str | None, lang: str, extra: str | None = None) -> list[tuple[str, str]]:
    """This visitor's runs that have a model (plus a run shared by link)."""
    from .logs_tab import run_choices

    return [(label, name) for label, name in run_choices(state, visitor, lang, extra) if state.run(name).has_model]
