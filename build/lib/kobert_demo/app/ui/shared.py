"""What the Logs and Predict tabs both use: a visitor's runs for a selector, one sentence checked and explained (on
the GPU when there is one), and the explanation as gr.HighlightedText's words. Neither tab imports the other."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kobert_demo.basics.runs import Run
from kobert_demo.basics.settings import limits

from .logs_render import run_label
from .state import AppState, VisitorError

if TYPE_CHECKING:
    from kobert_demo.serving.explain import Explanation
    from kobert_demo.serving.predict import Predictor


def run_choices(state: AppState, visitor: str | None, lang: str, extra: str | None = None) -> list[tuple[str, str]]:
    """The selector's choices: this visitor's runs, plus a shared run opened by link."""

    def label(run: Run) -> str:
        status = run.status()
        metrics = run.summary().test if status.finished else None
        return run_label(run.name, run.config(), status.state, metrics["accuracy"] if metrics else None, lang)

    runs = state.visitor_runs(visitor)
    choices = [(label(run), run.name) for run in runs]
    if extra and extra not in {run.name for run in runs}:
        try:
            shared = state.run(extra)
        except VisitorError:  # deleted since
            return choices
        choices.insert(0, (f"🔗 {label(shared)}", shared.name))
    return choices


def on_gpu(fn: Any) -> Any:
    """On a ZeroGPU Space (the `spaces` package imports), run fn on the GPU it lends; elsewhere fn itself."""
    try:
        import spaces
    except ImportError:
        return fn
    return spaces.GPU(fn)


def to_gpu(predictor: Predictor) -> None:
    """Move the model to the GPU when there is one (int8 models stay on the CPU)."""
    import torch

    if torch.cuda.is_available() and predictor.backend == "torch":
        predictor.model.to("cuda")


def checked_text(text: str | None) -> str:
    """One sentence to predict or split into pieces, stripped; VisitorError when empty or over max_text_chars."""
    text = (text or "").strip()
    if not text:
        raise VisitorError("err_no_text")
    limit = limits().max_text_chars
    if len(text) > limit:
        raise VisitorError("err_text_too_long", limit=limit)
    return text


@on_gpu
def _explained(predictor: Predictor, text: str, label: str | None) -> Explanation:
    """predictor.explain, on the GPU when there is one (its model is where predict_tab.probabilities put it)."""
    to_gpu(predictor)
    return predictor.explain(text, label)


def explain_one(state: AppState, ref: str | None, text: str, label: str | None = None) -> Explanation:
    """Each word's share of `label`'s probability for one sentence (label None or "": the predicted class)."""
    text = checked_text(text)
    return _explained(state.predictor(ref), text, label or None)


def highlighted_words(explanation: Explanation) -> list[tuple[str, float | None]]:
    """The sentence for gr.HighlightedText's scores mode: each word with its score scaled so that the strongest is
    ±1 (red towards the class, purple against it), the words joined by unscored spaces as typed."""
    scores = explanation.word_scores
    strongest = max((abs(score) for score in scores), default=0.0) or 1.0
    shown: list[tuple[str, float | None]] = []
    for i, (word, score) in enumerate(zip(explanation.words, scores, strict=True)):
        if i:
            shown.append((" ", None))
        shown.append((word, round(score / strongest, 3)))
    return shown
