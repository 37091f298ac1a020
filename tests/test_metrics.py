"""Tests for basics.metrics: small examples checked by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.utils.class_weight import compute_class_weight

from kobert_demo.basics.events import NoticeEvent
from kobert_demo.basics.messages import t
from kobert_demo.basics.metrics import (
    IMBALANCE_HINT_RATIO,
    balanced_class_weights,
    classification_metrics,
    imbalance_hint,
    imbalance_ratio,
    not_learned,
)

NAMES = ["긍정", "부정", "중립"]
# true:      긍정 긍정 부정 부정 중립 중립
# predicted: 긍정 부정 부정 부정 긍정 중립
TRUE = [0, 0, 1, 1, 2, 2]
PRED = [0, 1, 1, 1, 0, 2]


def test_hand_checked_example() -> None:
    m = classification_metrics(TRUE, PRED, NAMES)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["n"] == 6
    assert m["labels"] == NAMES
    # 긍정: predicted 2x (1 right) -> precision 1/2; 2 true (1 found) -> recall 1/2
    # 부정: predicted 3x (2 right) -> precision 2/3; 2 true (2 found) -> recall 1, F1 0.8
    # 중립: predicted 1x (1 right) -> precision 1;   2 true (1 found) -> recall 1/2, F1 2/3
    expected = {
        "긍정": (1 / 2, 1 / 2, 1 / 2, 2),
        "부정": (2 / 3, 1.0, 0.8, 2),
        "중립": (1.0, 1 / 2, 2 / 3, 2),
    }
    assert list(m["per_class"]) == NAMES
    for name, (precision, recall, f1, support) in expected.items():
        scores = m["per_class"][name]
        assert scores["precision"] == pytest.approx(precision)
        assert scores["recall"] == pytest.approx(recall)
        assert scores["f1"] == pytest.approx(f1)
        assert scores["support"] == support
    assert m["macro_f1"] == pytest.approx((1 / 2 + 0.8 + 2 / 3) / 3)


def test_confusion_matrix_rows_are_true_labels() -> None:
    m = classification_metrics(TRUE, PRED, NAMES)
    assert m["confusion_matrix"] == [
        [1, 1, 0],  # true 긍정: once right, once called 부정
        [0, 2, 0],  # true 부정: both right
        [1, 0, 1],  # true 중립: once called 긍정, once right
    ]
    # Asymmetric on purpose: swapping truth and prediction transposes it.
    assert classification_metrics(PRED, TRUE, NAMES)["confusion_matrix"] == [[1, 0, 1], [1, 2, 0], [0, 0, 1]]


def test_class_never_seen_counts_in_macro_f1() -> None:
    m = classification_metrics([0, 1, 0, 1], [0, 1, 0, 1], ["a", "b", "c"])
    assert m["accuracy"] == 1.0
    assert m["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert m["macro_f1"] == pytest.approx(2 / 3)
    assert m["confusion_matrix"] == [[2, 0, 0], [0, 2, 0], [0, 0, 0]]


def test_json_ready() -> None:
    m = classification_metrics(TRUE, PRED, NAMES)
    assert json.loads(json.dumps(m, ensure_ascii=False)) == m
    assert all(type(v) is float for v in (m["accuracy"], m["macro_f1"]))
    assert all(type(v) is int for row in m["confusion_matrix"] for v in row)


# Class weights, the imbalance hint, the not-learned check (#25)
def test_balanced_class_weights_by_hand() -> None:
    # 4 rows, 2 classes: n / (k * count) = 4 / (2 * 3) and 4 / (2 * 1)
    assert balanced_class_weights([0, 0, 0, 1], 2) == pytest.approx([2 / 3, 2.0])
    # Balanced data: every weight 1, the unweighted loss
    assert balanced_class_weights([0, 1, 2, 2, 1, 0], 3) == pytest.approx([1.0, 1.0, 1.0])


def test_balanced_class_weights_are_scikit_learns() -> None:
    labels = [0] * 30 + [1] * 9 + [2] * 4
    ours = balanced_class_weights(labels, 3)
    assert ours == pytest.approx(compute_class_weight("balanced", classes=np.arange(3), y=labels).tolist())
    assert ours == pytest.approx([43 / 90, 43 / 27, 43 / 12])


def test_a_class_without_rows_weighs_one_and_does_not_count() -> None:
    # k counts the 2 classes present: 3 / (2 * 2), 3 / (2 * 1); class 2 has no row and no say in the loss
    assert balanced_class_weights([0, 0, 1], 3) == pytest.approx([0.75, 1.5, 1.0])


def test_imbalance_ratio_and_hint() -> None:
    assert imbalance_ratio({"긍정": 30, "부정": 10, "중립": 5}) == 6.0
    assert imbalance_ratio({"긍정": 30}) == 1.0
    assert imbalance_ratio({}) == 1.0
    assert imbalance_hint({"긍정": 30, "부정": 10, "중립": 5}) == {"ratio": 6.0, "largest": "긍정", "smallest": "중립"}
    # "Over 3x": exactly 3 gets no hint, just over does
    assert IMBALANCE_HINT_RATIO == 3.0
    assert imbalance_hint({"a": 30, "b": 10}) is None
    assert imbalance_hint({"a": 31, "b": 10}) == {"ratio": 3.1, "largest": "a", "smallest": "b"}
    # Ties name the first class in the counts' order
    assert imbalance_hint({"a": 4, "b": 40, "c": 40, "d": 4}) == {"ratio": 10.0, "largest": "b", "smallest": "a"}


def test_imbalance_hint_reads_in_both_languages() -> None:
    params = imbalance_hint({"긍정": 31, "부정": 10})
    assert t("en", "hint_class_weights", **params).startswith("The largest class, '긍정', has 3.1x the rows")
    assert "'부정'의 3.1배" in t("ko", "hint_class_weights", **params)


def test_the_hidden_walk_is_called_unlearned() -> None:
    """#25's walk: 900 validation rows, 3 classes, one class answered for every row, accuracy 0.307."""
    truth = [0] * 276 + [1] * 312 + [2] * 312
    params = not_learned(truth, [0] * 900, NAMES)
    assert params == {"label": "긍정", "share": 1.0, "accuracy": pytest.approx(276 / 900), "majority": 312 / 900}
    notice = NoticeEvent("notice_not_learned", params)
    assert "'긍정' for 100% of the validation rows" in notice.text("en")
    assert "0.3067" in notice.text("en") and "0.3467" in notice.text("en")
    assert "100%에 '긍정'" in notice.text("ko")


def test_a_model_that_learned_is_not_called_unlearned() -> None:
    truth = [0] * 300 + [1] * 300 + [2] * 300
    predicted = [0] * 250 + [1] * 50 + [1] * 250 + [2] * 50 + [2] * 300  # 800 right
    assert not_learned(truth, predicted, NAMES) is None


def test_nearly_one_answer() -> None:
    truth = [0] * 50 + [1] * 50
    # 95 of 100 rows answered 긍정, yet 55 right (above the majority's 50): nearly one answer is enough
    predicted = [0] * 50 + [0] * 45 + [1] * 5
    assert not_learned(truth, predicted, NAMES[:2]) == {
        "label": "긍정",
        "share": 0.95,
        "accuracy": 0.55,
        "majority": 0.5,
    }
    # 94 of 100: below "nearly every row", and 56 right
    assert not_learned(truth, [0] * 50 + [0] * 44 + [1] * 6, NAMES[:2]) is None


def test_answering_the_class_that_nearly_every_row_has_is_no_failure() -> None:
    """Truth 94% 긍정: answering 긍정 for 95% of the rows, 99 right, is what a model that learned does."""
    truth = [0] * 94 + [1] * 6
    predicted = [0] * 94 + [0] + [1] * 5
    assert not_learned(truth, predicted, NAMES[:2]) is None
    # Answering it for every row scores the majority exactly: that is no better
    assert not_learned(truth, [0] * 100, NAMES[:2]) == {
        "label": "긍정",
        "share": 1.0,
        "accuracy": 0.94,
        "majority": 0.94,
    }


def test_no_better_than_the_majority_includes_a_tie() -> None:
    # 2 of 4 right, as always answering either class; the predictions tie too: the first class is named
    assert not_learned([0, 0, 1, 1], [1, 0, 0, 1], NAMES[:2]) == {
        "label": "긍정", "share": 0.5, "accuracy": 0.5, "majority": 0.5,
    }  # fmt: skip
    assert not_learned([0, 0, 1, 1], [1, 0, 1, 1], NAMES[:2]) is None  # 3 of 4


def test_truth_of_one_class_or_no_rows_cannot_be_judged() -> None:
    assert not_learned([1] * 20, [1] * 20, NAMES) is None
    assert not_learned([1] * 20, [0] * 20, NAMES) is None
    assert not_learned([], [], NAMES) is None
