"""The one CSV writer for every predictions file (web and CLI): cells a spreadsheet would run are made text.

Spreadsheets run a cell that starts with `=`, `+`, `-` or `@` (and, in some, tab or carriage return) as a
formula: `=HYPERLINK(...)` in a sentence, a class name of a shared run or an uploaded model would act in the
reader's spreadsheet. Such cells get a leading `'` (OWASP's "CSV injection" advice), headers included; numbers
are written as they are.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from pathlib import Path
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


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


def write_csv(path: str | Path, rows: Iterable[Iterable[Any]], encoding: str = "utf-8") -> Path:
    """Write rows to path as a safe CSV (utf-8-sig for a file Excel opens with its Korean intact)."""
    path = Path(path)
    path.write_text(csv_text(rows), encoding=encoding)
    return path
