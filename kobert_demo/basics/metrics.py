"""Classification metrics (scikit-learn): accuracy, macro-F1, per-class scores and the confusion matrix; class
weights for imbalanced data and the check that a model has learned something (#25)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], label_names: list[str]) -> dict:
    """A JSON-ready report; `per_class` and the matrix rows/columns follow `label_names` (rows are true labels)."""
    ids = list(range(len(label_names)))
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=ids, zero_division=0)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=ids, average="macro", zero_division=0)),
        "labels": list(label_names),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(label_names)
        },
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=ids).tolist(),
        "n": len(y_true),
    }


# --- imbalanced classes (#25) -------------------------------------------------------------------------------------
IMBALANCE_HINT_RATIO = 3.0  # over this largest/smallest ratio the Train tab suggests class_weights=balanced


def balanced_class_weights(labels: Sequence[int], n_classes: int) -> list[float]:
    """Each class's loss weight, inverse to its frequency: scikit-learn's "balanced", n / (k * count).

    k counts the classes present, so with every class present this is `compute_class_weight("balanced")`. A class
    with no row weighs 1.0: no training row carries it, so its weight never enters the loss.
    """
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=n_classes)
    present = int((counts > 0).sum())
    return [len(labels) / (present * int(count)) if count else 1.0 for count in counts]


def imbalance_ratio(counts: dict[str, int]) -> float:
    """The largest class's row count over the smallest's (1.0 for fewer than two classes)."""
    if len(counts) < 2:
        return 1.0
    smallest = min(counts.values())
    return max(counts.values()) / smallest if smallest else math.inf


def imbalance_hint(counts: dict[str, int]) -> dict | None:
    """The parameters of the "hint_class_weights" sentence (ratio, largest, smallest: class names) when the classes
    are over IMBALANCE_HINT_RATIO apart, else None. Ties name the first class in `counts`' order."""
    ratio = imbalance_ratio(counts)
    if ratio <= IMBALANCE_HINT_RATIO:
        return None
    return {"ratio": ratio, "largest": max(counts, key=counts.get), "smallest": min(counts, key=counts.get)}


# --- a model that has not learned (#25) ---------------------------------------------------------------------------
# "Nearly every row": a model that gives one class for 95% of the rows or more answers the same thing whatever the
# text says; below that it distinguishes something. Answering a class that often is no failure where the truth holds
# it nearly as often (within the same 5-point slack): see not_learned.
NEARLY_ALL = 0.95


def not_learned(truth: Sequence[int], predicted: Sequence[int], label_names: list[str]) -> dict | None:
    """The parameters of NoticeEvent("notice_not_learned") (label, share, accuracy, majority) when the model
    answers one class for nearly every row, or its accuracy is no better than always answering the most frequent
    class of `truth`; else None.

    - One answer: the most frequent prediction is at least NEARLY_ALL of the rows and more than NEARLY_ALL's slack
      above that class's own share of the truth, so that on data with a 94% class a model answering it for 95% of
      the rows is not called unlearned for answering what is there (the accuracy test still judges it).
    - No better than the majority: ties count (a constant answer scores exactly the majority's share).
    - Truth of one class, or no rows: None. Nothing can tell learning from always answering that class there.
    Ties between the most frequent predictions name the first class in `label_names`' order.
    """
    n = len(truth)
    truth_counts = np.bincount(np.asarray(truth, dtype=np.int64), minlength=len(label_names))
    if n == 0 or (truth_counts > 0).sum() < 2:
        return None
    predicted_counts = np.bincount(np.asarray(predicted, dtype=np.int64), minlength=len(label_names))
    top = int(predicted_counts.argmax())  # argmax: the first class on a tie
    share = predicted_counts[top] / n
    correct = int(sum(t == p for t, p in zip(truth, predicted)))
    majority = int(truth_counts.max())
    one_answer = share >= NEARLY_ALL and share > truth_counts[top] / n + (1 - NEARLY_ALL)
    if not one_answer and correct > majority:
        return None
    return {"label": label_names[top], "share": float(share), "accuracy": correct / n, "majority": majority / n}
