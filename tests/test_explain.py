"""Tests for serving.explain: completeness, words, labels, faithfulness (deletion check), every family, int8."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from conftest import TrainedRun, sample_rows

from kobert_demo.basics.errors import UserFacingError
from kobert_demo.engine.families import family_of
from kobert_demo.serving.explain import MAX_RELATIVE_GAP, MIN_CHANGE, Explanation
from kobert_demo.serving.faithfulness import deletion_check
from kobert_demo.serving.predict import Predictor

TEXT = "배우들 연기는 좋은데, 스토리가 너무 뻔하다... 그래도 음악은 최고!"


def held_out(n: int, min_words: int = 1) -> list[str]:
    """NSMC test rows (never trained on) with at least min_words words."""
    return [text for text, _ in sample_rows("nsmc/test.tsv", 300) if len(text.split()) >= min_words][:n]


def baseline_log_prob(predictor: Predictor, explanation: Explanation, text: str) -> float:
    """The explained class's log-probability with every piece of text replaced by the padding token, computed apart
    from explain.py: through input_ids, not embeddings. Positions count on through the padding (RoBERTa would give
    padding ids its padding position)."""
    encoded = predictor.tokenizer.encode(text)
    ids = [i if word is None else predictor.tokenizer.pad_id for i, word in zip(encoded.ids, encoded.words)]
    model = predictor.float_model()
    positions = torch.arange(len(ids))[None] + family_of(model).position_offset(model.config)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids]), position_ids=positions).logits
    return float(logits.log_softmax(-1)[0, predictor.label_names.index(explanation.label)])


def assert_complete(predictor: Predictor, explanation: Explanation, text: str) -> None:
    """The token scores add up to the change in log-probability from baseline to sentence, short of the reported
    gap, and the gap is within the bound."""
    change = np.log(explanation.probability) - baseline_log_prob(predictor, explanation, text)
    assert sum(explanation.token_scores) - change == pytest.approx(explanation.completeness_gap, abs=2e-4)
    assert abs(explanation.completeness_gap) <= MAX_RELATIVE_GAP * max(abs(change), MIN_CHANGE) + 2e-4


def test_scores_add_up_to_the_change_in_log_probability(trained_predictor: Predictor) -> None:
    for text in [TEXT, *held_out(8)]:
        assert_complete(trained_predictor, trained_predictor.explain(text), text)


def test_words_are_the_text_split_and_carry_their_pieces(trained_predictor: Predictor) -> None:
    explanation = trained_predictor.explain(TEXT)
    encoded = trained_predictor.pieces(TEXT)
    assert explanation.words == TEXT.split()
    assert explanation.tokens == encoded.pieces and len(explanation.token_scores) == len(encoded.ids)
    assert explanation.token_scores[0] == 0 and explanation.token_scores[-1] == 0  # [CLS]/[SEP] are the baseline's
    for word in range(len(explanation.words)):
        pieces = [s for s, w in zip(explanation.token_scores, encoded.words) if w == word]
        assert explanation.word_scores[word] == pytest.approx(sum(pieces), abs=1e-6)
    assert sum(explanation.word_scores) == pytest.approx(sum(explanation.token_scores), abs=1e-5)


def test_the_predicted_class_by_default_any_class_on_request(trained_predictor: Predictor) -> None:
    probs = trained_predictor.predict_proba([TEXT])[0]
    default = trained_predictor.explain(TEXT)
    assert default.label == trained_predictor.label_names[int(probs.argmax())]
    assert default.probability == pytest.approx(float(probs.max()), abs=1e-5)
    other = next(name for name in trained_predictor.label_names if name != default.label)
    explained = trained_predictor.explain(TEXT, other)
    assert explained.label == other
    assert explained.probability == pytest.approx(1 - default.probability, abs=1e-5)
    # Two classes: what raises one's log-probability lowers the other's, so the words' signs mostly flip.
    flipped = np.sign(explained.word_scores) == -np.sign(default.word_scores)
    assert flipped.mean() >= 0.75, (default.word_scores, explained.word_scores)


def test_an_unknown_class_is_refused_in_one_sentence(trained_predictor: Predictor) -> None:
    with pytest.raises(UserFacingError) as caught:
        trained_predictor.explain(TEXT, "긍정")
    assert caught.value.key == "err_unknown_label"
    assert str(caught.value) == "The model has no class '긍정'; its classes are: 0, 1."
    assert "클래스" in caught.value.text("ko")


def test_a_sentence_longer_than_max_len_explains_the_words_the_model_read(trained_predictor: Predictor) -> None:
    text = " ".join(["정말 재미있는 영화였어요"] * 30)
    explanation = trained_predictor.explain(text)
    assert len(explanation.words) == 90 and len(explanation.word_scores) == 90
    assert len(explanation.tokens) == trained_predictor.tokenizer.max_len
    read = {word for word in trained_predictor.pieces(text).words if word is not None}
    assert 0 < len(read) < 90 and read == set(range(len(read)))
    assert all(explanation.word_scores[word] == 0 for word in range(len(read), 90))  # never read: score 0
    assert sum(explanation.word_scores[word] != 0 for word in read) > len(read) / 2


@pytest.mark.slow
def test_removing_the_top_word_costs_more_than_removing_a_random_word(trained_predictor: Predictor) -> None:
    """The deletion check: on held-out sentences, dropping the word scored highest for the predicted class lowers
    that class's probability far more than dropping a random word."""
    check = deletion_check(trained_predictor, held_out(80), seed=0)
    assert check.sentences >= 40
    # The tiny model, trained for 5 epochs on 1,200 rows, leans on every word it knows (measured: 0.239 against
    # 0.104); scores no better than chance would make the two about equal. The README's 30,000-row run: 5.8x.
    assert check.top_drop > 0.02 and check.top_drop > 2 * max(check.random_drop, 0.0), check


def test_the_deletion_check_removes_the_words_it_says() -> None:
    """deletion_check itself: with a model whose only evidence is one word, that word is the top one and its removal
    costs everything, while a random removal costs a share of it."""

    class OneWord:
        label_names = ["no", "yes"]

        def explain(self, text: str) -> Explanation:
            words = text.split()
            scores = [1.0 if word == "최고" else 0.0 for word in words]
            return Explanation(text, "yes", self.predict_proba([text])[0, 1], words, scores, [], [], 0.0, 16)

        def predict_proba(self, texts: list[str]) -> np.ndarray:
            yes = np.array([0.9 if "최고" in text.split() else 0.1 for text in texts])
            return np.stack([1 - yes, yes], axis=1)

    texts = [f"이 영화 정말 최고 {i}" for i in range(40)]
    check = deletion_check(OneWord(), texts, seed=0)
    assert check.sentences == 40 and check.top_drop == pytest.approx(0.8)
    assert 0.05 < check.random_drop < 0.4  # one word in five is the top one


@pytest.mark.slow
def test_every_family_explains_its_own_tokens(family_run: TrainedRun) -> None:
    predictor = Predictor.load(family_run.path)
    for text in [TEXT, *held_out(4)]:
        explanation = predictor.explain(text)
        assert explanation.words == text.split() and len(explanation.word_scores) == len(explanation.words)
        assert explanation.tokens == predictor.pieces(text).pieces
        assert_complete(predictor, explanation, text)


@pytest.mark.slow
def test_an_int8_predictor_explains_its_float_model(trained_run: TrainedRun) -> None:
    float_predictor = Predictor.load(trained_run.path)
    int8 = Predictor.load(trained_run.path, backend="int8")
    assert int8.backend == "int8" and int8.float_model() is not int8.model
    assert int8.float_model() is int8.float_model()  # read once
    expected, got = float_predictor.explain(TEXT), int8.explain(TEXT)
    np.testing.assert_allclose(got.token_scores, expected.token_scores, atol=1e-5)
    assert got.label == expected.label


@pytest.mark.slow
def test_predictions_made_while_explaining_are_unchanged(trained_run: TrainedRun) -> None:
    """Explaining touches no shared state of the model: visitors' predictions at the same time stay exact."""
    predictor = Predictor.load(trained_run.path)
    texts = held_out(16)
    expected = predictor.predict_proba(texts)
    done = threading.Event()

    def explain_repeatedly() -> None:
        while not done.is_set():
            predictor.explain(TEXT)

    worker = threading.Thread(target=explain_repeatedly)
    worker.start()
    try:
        during = [predictor.predict_proba(texts) for _ in range(20)]
    finally:
        done.set()
        worker.join()
    for probs in during:
        np.testing.assert_allclose(probs, expected, atol=1e-6)
