"""The one CSV writer, and the one predictions table: the web app, the CLI and bulk prediction all write it here.

Spreadsheets run a cell that starts with `=`, `+`, `-` or `@` (and, in some, tab or carriage return) as a
formula: `=HYPERLINK(...)` in a sentence, a class name of a shared run or an uploaded model would act in the
reader's spreadsheet. Such cells get a leading `'` (OWASP's "CSV injection" advice), headers included; numbers
are written as they are.

A predictions file has the columns `text, label, confidence, p_<class>...`, one row per input sentence in input
order: the text on one line (whitespace runs, newlines included, become one space, so that one row is one line and
bulk prediction can resume and merge by lines), the predicted label, its probability, then every class's
probability, all with DECIMALS decimals. It is UTF-8 with a byte order mark: Excel on Korean Windows reads a CSV
without one as CP949 and garbles every Hangul syllable; pandas and Python's csv (encoding="utf-8-sig") read it
as plain UTF-8.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# Probabilities are float32 (about 7 significant digits): 6 decimals keep what they hold near 1 and still tell
# 0.00004 from 0, where 4 decimals write every probability under 0.00005 as 0.0000.
DECIMALS = 6
BOM = codecs.BOM_UTF8


def safe_cell(value: Any) -> Any:
    """A string a spreadsheet would read as a formula, prefixed with `'`; anything else as it is."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_text(rows: Iterable[Iterable[Any]]) -> str:
    """Rows as CSV lines (`\\n` ends), every cell passed through safe_cell."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerows([safe_cell(cell) for cell in row] for row in rows)
    return out.getvalue()


# --- predictions ----------------------------------------------------------------------------------------------
def prediction_columns(label_names: Sequence[str]) -> list[str]:
    """The header of a predictions table."""
    return ["text", "label", "confidence", *(f"p_{name}" for name in label_names)]


def prediction_rows(texts: Sequence[str], probs: np.ndarray, label_names: Sequence[str]) -> list[list[str]]:
    """One row of strings per text, as the CSV holds it (before formula escaping)."""
    rows = []
    for text, row in zip(texts, probs, strict=True):
        top = int(row.argmax())
        numbers = [f"{float(p):.{DECIMALS}f}" for p in (row[top], *row)]
        rows.append([" ".join(text.split()), label_names[top], *numbers])
    return rows


def prediction_records(texts: Sequence[str], probs: np.ndarray, label_names: Sequence[str]) -> list[dict[str, Any]]:
    """The rows as {column: value} with numbers as floats (the JSON API, the web app's table): the CSV's values."""
    columns = prediction_columns(label_names)
    return [
        dict(zip(columns, [text, label, *map(float, numbers)], strict=True))
        for text, label, *numbers in prediction_rows(texts, probs, label_names)
    ]


def predictions_head(label_names: Sequence[str]) -> bytes:
    """The first bytes of a predictions file: the byte order mark and the header line."""
    return BOM + csv_text([prediction_columns(label_names)]).encode("utf-8")


def predictions_body(texts: Sequence[str], probs: np.ndarray, label_names: Sequence[str]) -> bytes:
    """The lines of a predictions file for these texts (appended after the head, chunk after chunk)."""
    return csv_text(prediction_rows(texts, probs, label_names)).encode("utf-8")


def write_predictions(path: str | Path, texts: Sequence[str], probs: np.ndarray, label_names: Sequence[str]) -> Path:
    """A whole predictions file at once."""
    path = Path(path)
    path.write_bytes(predictions_head(label_names) + predictions_body(texts, probs, label_names))
    return path
