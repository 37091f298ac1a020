"""The Predict tab: pick a model (a run, an uploaded zip, a folder or hub id), then classify as you type, several
lines at once, or a whole file (CSV download).

Three layers: what the tab computes (`predict_one`, `predict_lines`, `predict_file_for_visitor`, also the API's
endpoints; `explain_one`, which the Logs tab uses too, is in `shared.py`), pure renderers that turn results into
component values (`confidences`, `marked_pieces`, `explanation_line`, `lines_table`; `shared.highlighted_words`), and
`PredictTab`, whose handlers return {component: value}; `build` lays the tab out and wires the handlers.
Every predictions CSV comes from `csv_out`'s one writer: a file goes through `bulk.predict_file_to_csv`, as on the
command line, so the same file gives the same bytes in the browser, through the API and from `kobert-demo predict`.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr
import pandas as pd
from gradio.blocks import Block

from kobert_demo.basics.csv_out import prediction_records, write_predictions
from kobert_demo.basics.settings import custom_models_allowed, limits
from kobert_demo.serving.batching import MAX_SENTENCES, batcher_for

from .i18n import I18N, lang_of, t
from .render import info, md_text
from .shared import checked_text, explain_one, highlighted_words, on_gpu, run_choices, to_gpu
from .state import AppState, VisitorError, shown_errors

if TYPE_CHECKING:
    import numpy as np

    from kobert_demo.engine.tokenizer import Encoded
    from kobert_demo.serving.choice import ServingReport
    from kobert_demo.serving.explain import Explanation
    from kobert_demo.serving.predict import Predictor

Outputs = dict[Block, Any]  # a handler's return: the value of each component it sets (gradio reads these hints)

SOURCES = ("run", "zip", "path")
EXAMPLES = [
    "이 영화 정말 재밌어요. 배우들 연기가 최고!",
    "시간 낭비였다. 스토리가 너무 지루함",
    "그냥 그랬어요. 나쁘진 않은데 다시 보진 않을 듯",
    "아 더빙.. 진짜 짜증나네요 목소리",
    "인생 영화입니다 ㅠㅠ 몇 번을 봐도 감동",
    "별점 1점도 아깝다",
]


# --- predicting ---------------------------------------------------------------------------------------------------
# How many prediction requests run at once (the `predict` queue): as many as one batched forward takes, since those
# arriving while a forward runs join the next one (batching.py) rather than each running its own.
PREDICT_CONCURRENCY = MAX_SENTENCES


@on_gpu
def _forward(predictor: Predictor, texts: list[str]) -> np.ndarray:
    """predictor.predict_proba, on the GPU when there is one."""
    to_gpu(predictor)
    return predictor.predict_proba(texts)


def probabilities(state: AppState, predictor: Predictor, texts: list[str]) -> np.ndarray:
    """Class probabilities for texts, on the GPU when there is one. Concurrent calls for one predictor run as one
    batched forward (batching.py), and the runs home is marked as serving, so that a training job leaves a core to
    the visitors (jobs.py)."""
    state.queue.mark_serving()
    return batcher_for(predictor, _forward).predict_proba(texts)


@on_gpu
def _predict_file_to(predictor: Predictor, path: str, out: Path) -> None:
    """The predictions CSV of a file of sentences, written by bulk prediction (as the CLI does), on the GPU when
    there is one."""
    from kobert_demo.serving.bulk import predict_file_to_csv

    to_gpu(predictor)
    predict_file_to_csv(predictor, path, out, progress=False)


@dataclass
class Predictions:
    """Sentences, their class probabilities (one row per sentence) and the class names."""

    texts: list[str]
    probs: np.ndarray
    label_names: list[str]

    def records(self) -> list[dict[str, Any]]:
        """One {"text", "label", "confidence", "p_<class>"...} per sentence: the CSV's columns and values."""
        return prediction_records(self.texts, self.probs, self.label_names)


def checked_lines(texts: list[str]) -> list[str]:
    """Sentences to predict at once; VisitorError when all are blank or there are more than max_predict_lines."""
    if not any(text.strip() for text in texts):
        raise VisitorError("err_no_text")
    most = limits().max_predict_lines
    if len(texts) > most:
        raise VisitorError("err_too_many_lines", n=len(texts), limit=most)
    return texts


def predict_one(state: AppState, ref: str | None, text: str) -> dict[str, float]:
    """Label -> probability for one sentence."""
    text = checked_text(text)
    predictor = state.predictor(ref)
    return confidences(predictor.label_names, probabilities(state, predictor, [text])[0])


def predict_lines(state: AppState, ref: str | None, texts: list[str]) -> Predictions:
    """Class probabilities for several sentences (blank ones included, so rows match lines)."""
    texts = checked_lines(texts)
    predictor = state.predictor(ref)
    return Predictions(texts, probabilities(state, predictor, texts), predictor.label_names)


def predict_file_for_visitor(state: AppState, ref: str | None, path: str | None) -> str:
    """The predictions CSV of an uploaded file of sentences (a table's text column, or one per line)."""
    from kobert_demo.basics.data import read_texts

    if not path:
        raise VisitorError("err_no_predict_file")
    checked_lines(read_texts(path))  # the file's size, rows and sentences, before any model loads
    predictor = state.predictor(ref)
    out = state.scratch("predictions") / f"{Path(path).stem}_predictions.csv"
    _predict_file_to(predictor, path, out)
    return str(out)


def lines_csv(state: AppState, predictions: Predictions) -> str:
    """The predictions of typed lines as a CSV to download (the same writer as a file's)."""
    out = state.scratch("predictions") / "lines_predictions.csv"
    return str(write_predictions(out, predictions.texts, predictions.probs, predictions.label_names))


# --- rendering ----------------------------------------------------------------------------------------------------
def confidences(label_names: list[str], probs: np.ndarray) -> dict[str, float]:
    """One sentence's probabilities as gr.Label's {class: confidence}."""
    return {name: float(p) for name, p in zip(label_names, probs, strict=True)}


def marked_pieces(encoded: Encoded, special_ids: Collection[int]) -> list[tuple[str, str]]:
    """The model's pieces for gr.HighlightedText: each piece with its kind, "[UNK]", "special" or "piece".

    Special tokens are known by id (special_ids: the tokenizer's first and last tokens), not by their text: they
    are [CLS]/[SEP] for KoBERT and BERT, <s>/</s> for RoBERTa.
    """
    kinds = (
        "[UNK]" if unknown else "special" if i in special_ids else "piece"
        for i, unknown in zip(encoded.ids, encoded.unknown, strict=True)
    )
    return list(zip(encoded.pieces, kinds))


def explanation_line(explanation: Explanation, lang: str) -> str:
    """How to read the colours, naming the explained class and its probability (Markdown)."""
    return t(lang, "explain_line", label=md_text(explanation.label), probability=explanation.probability)


def serving_line(report: ServingReport, lang: str) -> str:
    """What serves the model and, when auto measured it, how fast and how close to fp32 (Markdown)."""
    from kobert_demo.serving.choice import BACKEND_NAMES

    backend = BACKEND_NAMES.get(report.backend, report.backend)
    chosen = report.candidate(report.backend)
    if chosen is None or chosen.p50_ms is None:
        line = t(lang, "serving_fixed", backend=backend)
    elif report.backend == "torch":
        line = t(lang, "serving_fp32", backend=backend, ms=chosen.p50_ms)
    else:
        line = t(lang, "serving_measured", backend=backend, ms=chosen.p50_ms, speedup=report.speedup or 1.0,
                 diff=chosen.max_diff or 0.0)  # fmt: skip
    refused = [BACKEND_NAMES.get(c.backend, c.backend) for c in report.candidates if c.refused]
    return f"{line} {t(lang, 'serving_refused', backends=', '.join(refused))}" if refused else line


def class_choices(label_names: list[str], lang: str) -> list[tuple[str, str]]:
    """The class picker's choices: the predicted class (value "") first, then the model's classes."""
    return [(t(lang, "explain_predicted"), ""), *((name, name) for name in label_names)]


def special_ids(predictor: Predictor) -> set[int]:
    """The ids marked_pieces shows as special: the tokenizer's first and last tokens."""
    return {predictor.tokenizer.cls_id, predictor.tokenizer.sep_id}


def lines_table(predictions: Predictions, lang: str) -> pd.DataFrame:
    """The predictions as a table, its text, label and confidence columns named in lang (p_<class> as they are)."""
    table = pd.DataFrame(predictions.records())
    names = {"text": t(lang, "col_text"), "label": t(lang, "col_predicted"), "confidence": t(lang, "col_confidence")}
    return table.rename(columns=names)


# --- the tab ------------------------------------------------------------------------------------------------------
@dataclass(eq=False)
class PredictTab:
    """The tab's components, and its event handlers: each returns {component: value} for the components it sets."""

    state: AppState
    source: gr.Radio
    run_select: gr.Dropdown
    zip_file: gr.File
    path_row: gr.Row
    model: gr.Textbox
    serving: gr.Markdown
    label: gr.Label
    tokens: gr.HighlightedText
    explain_class: gr.Dropdown
    explanation: gr.HighlightedText
    explain_line: gr.Markdown
    table: gr.Dataframe
    csv: gr.File

    def on_source(self, choice: str) -> Outputs:
        """Show the chooser for the picked model source."""
        shown = zip((self.run_select, self.zip_file, self.path_row), SOURCES)
        return {component: gr.update(visible=choice == name) for component, name in shown}

    def on_run(self, name: str | None) -> Outputs:
        """A run picked from the list is the model."""
        return {self.model: name or ""}

    @shown_errors()
    def on_focus(self, name: str | None, token: str | None, request: gr.Request) -> Outputs:
        """Fresh choices when the selector opens."""
        return {self.run_select: gr.update(choices=model_choices(self.state, token, lang_of(request), extra=name))}

    @shown_errors()
    def on_open(self, ref: str, token: str | None, request: gr.Request) -> Outputs:
        """Entering the tab: fresh choices, and the newest trained run when no model is chosen yet."""
        choices = model_choices(self.state, token, lang_of(request))
        if ref or not choices:
            return {self.run_select: gr.update(choices=choices)}
        newest = choices[0][1]
        return {self.run_select: gr.update(choices=choices, value=newest), self.model: newest}

    @shown_errors()
    def on_zip(self, upload: str | None, request: gr.Request) -> Outputs:
        """An uploaded model zip: checked, kept, and chosen."""
        if not upload:
            return {self.model: gr.skip()}
        ref = self.state.save_zip(upload)
        info(t(lang_of(request), "zip_loaded"))
        return {self.model: ref}

    @shown_errors()
    def on_load_path(self, ref: str, request: gr.Request) -> Outputs:
        """Load a local folder or hub id, and choose it once it loads."""
        self.state.predictor(ref)
        return {self.model: ref.strip()}

    def on_sentence(self, ref: str, text: str, request: gr.Request) -> Outputs:
        """As the visitor types: class probabilities and the model's pieces. Both are cleared for an empty sentence and
        on a failure (a toast says why), so that no earlier prediction stays beside the new text."""
        cleared = {self.label: None, self.tokens: None}

        @shown_errors(fallback=lambda: cleared)
        def predict(text: str, request: gr.Request) -> Outputs:
            if not (text or "").strip():
                return cleared
            probs = predict_one(self.state, ref, text)
            predictor = self.state.predictor(ref)
            encoded = predictor.pieces(checked_text(text))
            return {self.label: probs, self.tokens: marked_pieces(encoded, special_ids(predictor))}

        return predict(text, request)

    def on_model(self, ref: str, request: gr.Request) -> Outputs:
        """A new model: the class picker lists its classes and is back on the predicted class, and a line says what
        serves it. A model that does not load lists none and no line, silently: on_sentence, fired by the same
        change, says why."""
        lang = lang_of(request)
        try:
            predictor = self.state.predictor(ref) if (ref or "").strip() else None
        except Exception:
            predictor = None
        names = predictor.label_names if predictor is not None else []
        return {
            self.explain_class: gr.update(choices=class_choices(names, lang), value=""),
            self.serving: serving_line(predictor.serving, lang) if predictor is not None else "",
        }

    def on_explain(self, ref: str, text: str, label: str | None, request: gr.Request) -> Outputs:
        """After the probabilities: each word's share of the picked class (default: the predicted one). Cleared, like
        the prediction, for an empty sentence and on a failure; a toast says why unless on_sentence, fired by the same
        change, already does (no sentence, too long, no model). A picked class the model does not have is the
        previous model's, left while on_model resets the picker: the predicted class is explained instead."""
        lang = lang_of(request)
        cleared = {self.explanation: None, self.explain_line: t(lang, "explain_help")}
        try:
            text = checked_text(text)
            names = self.state.predictor(ref).label_names
        except Exception:
            return cleared
        label = label if label in names else ""

        @shown_errors(fallback=lambda: cleared)
        def explained(request: gr.Request) -> Outputs:
            explanation = explain_one(self.state, ref, text, label)
            return {
                self.explanation: highlighted_words(explanation),
                self.explain_line: explanation_line(explanation, lang),
            }

        return explained(request)

    @shown_errors()
    def on_lines(self, ref: str, text: str, request: gr.Request) -> Outputs:
        """Several sentences, one per line -> a table (column names in the visitor's language) and its CSV."""
        predictions = predict_lines(self.state, ref, (text or "").splitlines())
        return {
            self.table: gr.update(value=lines_table(predictions, lang_of(request)), visible=True),
            self.csv: gr.update(value=lines_csv(self.state, predictions), visible=True),
        }

    @shown_errors()
    def on_file(self, ref: str, file: str | None, request: gr.Request) -> Outputs:
        """A file of sentences -> a CSV of predictions."""
        return {self.csv: gr.update(value=predict_file_for_visitor(self.state, ref, file), visible=True)}


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
            serving = gr.Markdown("", elem_classes=["kd-help"], elem_id="serving-line")
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
            explain_class = gr.Dropdown(
                label=I18N("explain_class"), choices=[], interactive=True, elem_id="explain-class"
            )
            explanation = gr.HighlightedText(
                label=I18N("explanation"), show_legend=True, show_inline_category=False, elem_id="explanation"
            )
            explain_line = gr.Markdown(I18N("explain_help"), elem_classes=["kd-help"], elem_id="explain-line")
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
    ui = PredictTab(
        state, source, run_select, zip_file, path_row, model, serving, label, tokens, explain_class, explanation,
        explain_line, table, csv,
    )  # fmt: skip

    private = {"api_visibility": "private"}
    source.input(ui.on_source, source, [run_select, zip_file, path_row], queue=False, **private)
    run_select.input(ui.on_run, run_select, [model], queue=False, **private)
    run_select.focus(ui.on_focus, [run_select, visitor], [run_select], **private)
    tab.select(ui.on_open, [model, visitor], [run_select, model], **private)
    zip_file.upload(ui.on_zip, zip_file, [model], show_progress="minimal", **private)
    gr.on([load.click, path.submit], ui.on_load_path, path, [model], show_progress="minimal", **private)
    # Explaining runs 8 to 64 forward and backward passes (0.55 s p50 at KoBERT's size on 2 cores, where predicting
    # takes 15 ms): it follows the probabilities as an event of its own, so they never wait for it, one at a time in
    # the queue /explain shares. A new model first resets the class picker.
    predicting = dict(
        trigger_mode="always_last", concurrency_limit=PREDICT_CONCURRENCY, concurrency_id="predict", **private
    )
    explaining = dict(trigger_mode="always_last", concurrency_limit=1, concurrency_id="explain", **private)
    predicted = ([model, sentence], [label, tokens])
    explained = ([model, sentence, explain_class], [explanation, explain_line])
    # One event for both triggers, so that with always_last a stale prediction (an empty sentence's, fired by the
    # model's change) can never land after a newer one: two events could finish in either order.
    gr.on([sentence.change, model.change], ui.on_sentence, *predicted, show_progress="hidden", **predicting).then(
        ui.on_explain, *explained, show_progress="minimal", **explaining
    )
    model.change(ui.on_model, model, [explain_class, serving], show_progress="hidden", **private)
    explain_class.input(ui.on_explain, *explained, show_progress="minimal", **explaining)
    # gradio gives a group its lowest limit: every `predict` event names the same one. A file (bulk prediction, not
    # batched with the visitors' sentences) runs in a group of its own, two at a time as before.
    many.click(
        ui.on_lines, [model, lines], [table, csv], concurrency_id="predict", concurrency_limit=PREDICT_CONCURRENCY,
        **private,
    )  # fmt: skip
    run_file.click(ui.on_file, [model, upload], [csv], concurrency_id="predict_file", concurrency_limit=2, **private)
    return ui


def model_choices(state: AppState, visitor: str | None, lang: str, extra: str | None = None) -> list[tuple[str, str]]:
    """This visitor's runs that have a model (plus a run shared by link)."""
    return [(label, name) for label, name in run_choices(state, visitor, lang, extra) if state.run(name).has_model]
