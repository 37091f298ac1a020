"""Classification metrics (scikit-learn): accuracy, macro-F1, per-class scores and the confusion matrix."""

from __future__ import annotations

import math
from collections.abc import Sequence

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
# Stand-in for the `balance` branch's functions (same names and text), so that the Train tab's hint runs here.
IMBALANCE_HINT_RATIO = 3.0  # over this largest/smallest ratio the Train tab suggests class_weights=balanced


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
