"""ui/predict_tab.py without a server: its pure renderers, and its handlers (each returns {component: value}) on a
stand-in model."""

from __future__ import annotations

import tempfile
from pathlib import Path

import gradio as gr
import numpy as np
import pytest

from kobert_demo.app.queue import JobQueue
from kobert_demo.app.training_child import SERVING_MARK
from kobert_demo.app.ui import render
from kobert_demo.app.ui.predict_tab import (
    Predictions,
    PredictTab,
    build,
    class_choices,
    confidences,
    explanation_line,
    lines_table,
    marked_pieces,
    serving_line,
)
from kobert_demo.app.ui.shared import highlighted_words
from kobert_demo.app.ui.state import VisitorError
from kobert_demo.basics.csv_out import predictions_head
from kobert_demo.basics.errors import UserFacingError
from kobert_demo.basics.messages import t
from kobert_demo.engine.fast_tokenizer import FastTokenizer
from kobert_demo.engine.tokenizer import KoBertTokenizer
from kobert_demo.serving.choice import Candidate, ServingReport
from kobert_demo.serving.explain import Explanation

KO = gr.Request(headers={"accept-language": "ko-KR"})
EN = gr.Request(headers={"accept-language": "en-US"})
LABELS = ["부정", "긍정"]


class Model:
    """A stand-in classifier: the more 좋 in a text, the more positive; KoBERT's own tokenizer for the pieces."""

    backend = "int8"
    serving = ServingReport(
        "int8",
        [
            Candidate("torch", 38.4, 0.0),
            Candidate("int8", 6.4, 0.0042),
            Candidate("bf16", max_diff=0.02, refused="differs from fp32 by 0.0200"),
        ],
    )
    label_names = LABELS
    tokenizer = KoBertTokenizer.original()

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        positive = np.array([(1 + text.count("좋")) / (2 + text.count("좋")) for text in texts], dtype=np.float32)
        return np.stack([1 - positive, positive], axis=1)

    def pieces(self, text: str):
        return self.tokenizer.encode(text)

    def explain(self, text: str, label: str | None = None) -> Explanation:
        """Each 좋 a word holds counts +1 towards 긍정 (-1 towards 부정)."""
        if label and label not in LABELS:
            raise UserFacingError("err_unknown_label", label=label, labels=", ".join(LABELS))
        probs = self.predict_proba([text])[0]
        target = LABELS.index(label) if label else int(probs.argmax())
        sign = 1.0 if target == 1 else -1.0
        words = text.split()
        return explanation(text, LABELS[target], float(probs[target]), [sign * word.count("좋") for word in words])


def explanation(text: str, label: str, probability: float, word_scores: list[float]) -> Explanation:
    """An Explanation of text's words (the token fields are not what these tests read)."""
    return Explanation(text, label, probability, text.split(), word_scores, [], [], 0.0, 16)


class State:
    """What the tab asks of AppState: a model for a reference ("missing" has none), scratch folders and the job queue
    (which predictions mark as serving)."""

    def __init__(self, work: Path) -> None:
        self.work = work
        (work / "runs").mkdir(parents=True)
        self.queue = JobQueue(work / "runs")

    def predictor(self, ref: str | None) -> Model:
        if ref == "missing":
            raise VisitorError("err_no_model")
        return Model()

    def scratch(self, name: str) -> Path:
        (self.work / name).mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(dir=self.work / name))


@pytest.fixture
def tab(tmp_path: Path) -> PredictTab:
    with gr.Blocks(), gr.Tab("predict") as page:
        return build(State(tmp_path), gr.BrowserState(), page)


@pytest.fixture
def toasts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    shown: list[str] = []
    monkeypatch.setattr(render.gr, "Warning", shown.append)
    return shown


# --- renderers ----------------------------------------------------------------------------------------------------
def test_confidences_are_floats_by_class() -> None:
    shown = confidences(LABELS, np.array([0.25, 0.75], dtype=np.float32))
    assert shown == {"부정": 0.25, "긍정": 0.75}
    assert all(type(value) is float for value in shown.values())  # JSON-ready, not numpy scalars
    with pytest.raises(ValueError):
        confidences(LABELS, np.array([1.0], dtype=np.float32))  # a class without a probability is a bug


def test_marked_pieces_flag_unknown_and_special_pieces() -> None:
    tokenizer = KoBertTokenizer.original()
    encoded = tokenizer.encode("굳 䨻 영화")  # 䨻 is no KoBERT piece
    marked = marked_pieces(encoded, {tokenizer.cls_id, tokenizer.sep_id})
    assert [piece for piece, _ in marked] == encoded.pieces
    assert marked[0] == ("[CLS]", "special") and marked[-1] == ("[SEP]", "special")
    assert [kind for _, kind in marked].count("[UNK]") == sum(encoded.unknown) >= 1
    assert {kind for piece, kind in marked if piece not in ("[CLS]", "[SEP]", "[UNK]")} == {"piece"}


@pytest.mark.parametrize("family", ["bert", "roberta", "electra"])
def test_marked_pieces_work_for_every_family(family_folders: dict[str, Path], family: str) -> None:
    """WordPiece (`##` pieces, [UNK]) and byte-level BPE (<s> </s>, pieces shown as the text they cover) alike."""
    tokenizer = FastTokenizer.from_folder(family_folders[family])
    text = "정말 재밌어요 䨻䨻"  # 䨻 is in no vocabulary learnt from NSMC's slice
    encoded = tokenizer.encode(text)
    marked = marked_pieces(encoded, {tokenizer.cls_id, tokenizer.sep_id})
    first, last = ("<s>", "</s>") if family == "roberta" else ("[CLS]", "[SEP]")
    assert marked[0] == (first, "special") and marked[-1] == (last, "special")
    inner = marked[1:-1]
    assert all(kind != "special" for _, kind in inner)
    if family == "roberta":  # byte-level BPE has no unknown piece; each piece reads as the text it covers
        assert all(piece in text for piece, _ in inner)  # no byte symbols (Ġ, ì...)
        assert "".join(piece for piece, _ in inner).startswith("정말재밌어요")  # trim_offsets drops spaces
    else:
        assert [kind for _, kind in inner].count("[UNK]") >= 1
        assert "정말" in "".join(piece.removeprefix("##") for piece, _ in inner)


def test_highlighted_words_scale_to_the_strongest_and_keep_the_spaces() -> None:
    shown = highlighted_words(explanation("정말 좋은 영화, 별로 아님", "긍정", 0.8, [0.5, 2.0, 0.0, -1.0, -0.25]))
    assert "".join(word for word, _ in shown) == "정말 좋은 영화, 별로 아님"
    words = [(word, score) for word, score in shown if word != " "]
    assert words == [("정말", 0.25), ("좋은", 1.0), ("영화,", 0.0), ("별로", -0.5), ("아님", -0.125)]
    assert [score for word, score in shown if word == " "] == [None] * 4  # spaces take no colour
    assert all(type(score) is float for _, score in words)  # gradio's scores mode, JSON-ready
    strongest_against = highlighted_words(explanation("별로 좋다", "긍정", 0.4, [-3.0, 1.5]))
    assert strongest_against == [("별로", -1.0), (" ", None), ("좋다", 0.5)]
    assert highlighted_words(explanation("그냥", "긍정", 0.5, [0.0])) == [("그냥", 0.0)]  # nothing to scale by


def test_explanation_line_names_the_class_and_its_probability_in_both_languages() -> None:
    explained = explanation("좋다", "긍정", 0.8734, [1.0])
    english, korean = explanation_line(explained, "en"), explanation_line(explained, "ko")
    assert english.startswith("Explaining **긍정** (probability 87.3%)") and "red words" in english
    assert korean.startswith("**긍정** 설명 (확률 87.3%)") and "빨간" in korean and "보라색" in korean
    hostile = explanation_line(explanation("좋다", "[x](http://a.b)", 0.5, [1.0]), "en")
    assert "**\\[x\\](http\\://a.b)**" in hostile  # a class name stays text, never a link


def test_class_choices_put_the_predicted_class_first() -> None:
    assert class_choices(LABELS, "en") == [("The predicted class", ""), ("부정", "부정"), ("긍정", "긍정")]
    assert class_choices([], "ko") == [("예측된 클래스", "")]


def test_lines_table_names_columns_in_the_visitors_language() -> None:
    predictions = Predictions(["좋다", "별로"], Model().predict_proba(["좋다", "별로"]), LABELS)
    korean, english = lines_table(predictions, "ko"), lines_table(predictions, "en")
    assert list(korean.columns) == ["문장", "예측", "확신도", "p_부정", "p_긍정"]
    assert list(english.columns) == ["sentence", "predicted", "confidence", "p_부정", "p_긍정"]
    assert korean["예측"].tolist() == ["긍정", "부정"]
    assert korean["확신도"].tolist() == pytest.approx([2 / 3, 1 / 2], abs=1e-6)
    assert korean.to_numpy().tolist() == english.to_numpy().tolist()


# --- handlers -----------------------------------------------------------------------------------------------------
def test_source_shows_only_its_chooser(tab: PredictTab) -> None:
    shown = tab.on_source("zip")
    assert {component: update["visible"] for component, update in shown.items()} == {
        tab.run_select: False,
        tab.zip_file: True,
        tab.path_row: False,
    }


def test_sentence_gives_probabilities_and_pieces(tab: PredictTab) -> None:
    out = tab.on_sentence("run", "좋다 좋아", KO)
    assert set(out) == {tab.label, tab.tokens}
    assert out[tab.label] == pytest.approx({"부정": 0.25, "긍정": 0.75})
    assert out[tab.tokens][0] == ("[CLS]", "special")
    assert tab.on_sentence("run", "   ", KO) == {tab.label: None, tab.tokens: None}


def test_a_prediction_marks_the_runs_home_as_serving(tab: PredictTab) -> None:
    mark = tab.state.queue.home / SERVING_MARK
    tab.on_sentence("run", "   ", KO)
    assert not mark.exists()  # nothing predicted: a training job keeps every core
    tab.on_sentence("run", "좋다", KO)
    assert mark.exists()  # a training job leaves a core to the visitors


def test_a_failed_sentence_clears_the_prediction_and_says_why(tab: PredictTab, toasts: list[str]) -> None:
    assert tab.on_sentence("missing", "좋다", EN) == {tab.label: None, tab.tokens: None}
    assert tab.on_sentence("missing", "좋다", KO) == {tab.label: None, tab.tokens: None}
    assert toasts == [
        "Choose a model first: one of your runs, a model zip, or a folder/hub id.",
        "먼저 모델을 고르세요: 내 실행, 모델 zip, 또는 폴더/허브 id.",
    ]


def test_a_new_model_lists_its_classes_and_says_what_serves_it(tab: PredictTab, toasts: list[str]) -> None:
    out = tab.on_model("run", KO)
    assert out == {
        tab.explain_class: gr.update(choices=class_choices(LABELS, "ko"), value=""),
        tab.serving: serving_line(Model.serving, "ko"),
    }
    assert out[tab.serving].startswith("int8 (ONNX Runtime)로 예측합니다: 문장당 6.4 ms")
    for ref in ("missing", ""):
        assert tab.on_model(ref, EN) == {
            tab.explain_class: gr.update(choices=[("The predicted class", "")], value=""),
            tab.serving: "",
        }
    assert not toasts  # on_sentence, fired by the same change, says what is wrong with the model


def test_serving_line_says_the_backend_its_speed_and_its_distance_from_fp32() -> None:
    assert serving_line(Model.serving, "en") == (
        "Served with int8 (ONNX Runtime): 6.4 ms a sentence, 6.0x fp32; within 0.004 of fp32's probabilities. "
        "Not used: bf16 (PyTorch) (more than 0.01 from fp32's probabilities, or not buildable for this model)."
    )
    fp32 = ServingReport("torch", [Candidate("torch", 38.6, 0.0), Candidate("int8", max_diff=0.3, refused="far")])
    assert serving_line(fp32, "en").startswith("Served with fp32 (PyTorch): 38.6 ms a sentence, the fastest path")
    assert serving_line(ServingReport("onnx"), "ko") == "fp32 (ONNX Runtime)로 예측합니다."  # asked for, not measured


def test_sentence_explained_for_the_predicted_or_the_picked_class(tab: PredictTab, toasts: list[str]) -> None:
    out = tab.on_explain("run", "좋다 그냥 좋아좋아", "", EN)
    assert set(out) == {tab.explanation, tab.explain_line}
    assert out[tab.explanation] == [("좋다", 0.5), (" ", None), ("그냥", 0.0), (" ", None), ("좋아좋아", 1.0)]
    assert out[tab.explain_line].startswith("Explaining **긍정** (probability 80.0%)")  # 3 of 좋: 4/5
    against = tab.on_explain("run", "좋다 그냥 좋아좋아", "부정", KO)
    assert [score for _, score in against[tab.explanation]] == [-0.5, None, 0.0, None, -1.0]
    assert against[tab.explain_line].startswith("**부정** 설명 (확률 20.0%)")
    assert not toasts


def test_a_failed_explanation_is_cleared_and_said_once(tab: PredictTab, toasts: list[str]) -> None:
    cleared = {tab.explanation: None, tab.explain_line: t("en", "explain_help")}
    assert tab.on_explain("run", "  ", "", EN) == cleared
    assert tab.on_explain("missing", "좋다", "", EN) == cleared
    assert not toasts  # on_sentence says these
    stale = tab.on_explain("run", "좋다", "중립", EN)  # a class of the model before, while the picker resets
    assert stale == tab.on_explain("run", "좋다", "", EN) and not toasts  # the predicted class instead


def test_lines_give_a_table_and_the_same_csv_as_a_file(tab: PredictTab, tmp_path: Path) -> None:
    out = tab.on_lines("run", "좋다\n별로\n=1+1", EN)
    assert set(out) == {tab.table, tab.csv}
    table = out[tab.table]["value"]
    assert out[tab.table]["visible"] is True and table["sentence"].tolist() == ["좋다", "별로", "=1+1"]
    lines_csv = Path(out[tab.csv]["value"]).read_bytes()
    assert lines_csv.startswith(predictions_head(LABELS)) and b"\n'=1+1," in lines_csv

    sentences = tmp_path / "sentences.txt"
    sentences.write_text("좋다\n별로\n=1+1\n", encoding="utf-8")
    file_csv = tab.on_file("run", str(sentences), KO)[tab.csv]["value"]
    assert Path(file_csv).read_bytes() == lines_csv


def test_lines_and_file_failures_keep_the_page_and_say_why(tab: PredictTab, toasts: list[str]) -> None:
    assert tab.on_lines("run", "\n  \n", KO) == gr.skip()
    assert tab.on_file("run", None, EN) == gr.skip()
    assert toasts == ["예측할 문장을 입력하세요.", "Upload a file of sentences to classify."]
