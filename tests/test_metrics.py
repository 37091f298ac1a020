"""Tests for basics.metrics: a small example checked by hand."""

from __future__ import annotations

import json

import pytest

from kobert_demo.basics.metrics import classification_metrics

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
