"""Read any table -> labelled texts, with a report of dropped rows; split them for training."""

from __future__ import annotations

import io
import math
import os
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from kobert_demo.errors import UserFacingError
from kobert_demo.messages import Term
from kobert_demo.settings import Limits
from kobert_demo.settings import limits as current_limits

TEXT_NAMES = frozenset(
    {"document", "text", "sentence", "sentences", "comment", "comments", "review", "content", "utterance"}
    | {"q", "question", "문장", "내용", "텍스트", "리뷰", "질문"}
)
LABEL_NAMES = frozenset(
    {"label", "labels", "class", "category", "target", "hate", "sentiment"} | {"라벨", "레이블", "정답", "분류", "감정"}
)
# Case-sensitive on purpose: "none" is a real class (hate_speech), "None" is a pandas/Python leftover.
EMPTY_LABELS = frozenset({"nan", "NaN", "NAN", "None", "null", "NULL", "N/A", "#N/A"})
SEPARATORS = {"\t": "tab", ",": "comma", ";": "semicolon", "|": "|"}
MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"%PDF", "a PDF document"),
    (b"\xd0\xcf\x11\xe0", "an Excel (.xls) workbook"),
)
HEAD_ROWS = 5
_RAGGED = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")
_OPEN_QUOTE = re.compile(r"EOF inside string starting at row (\d+)")


class DataError(UserFacingError, ValueError):
    """A problem with an input file, as one sentence a user can act on (names the file, row or column)."""


@dataclass(eq=False)
class LabeledData:
    """The labelled rows of one file, plus what was read and dropped."""

    path: str
    texts: list[str] = field(repr=False)
    labels: list[str] = field(repr=False)
    text_col: str
    label_col: str
    columns: list[str]
    rows_read: int
    dropped: dict[str, int]
    head: pd.DataFrame = field(repr=False)
    encoding: str
    separator: str

    @property
    def name(self) -> str:
        """The file's base name, used in messages."""
        return Path(self.path).name

    def class_counts(self) -> dict[str, int]:
        """Label -> rows, in `label_order`."""
        counts = Counter(self.labels)
        return {label: counts[label] for label in label_order(counts)}

    def report(self) -> dict:
        """What was read, as JSON-ready data (`validate --json`, the web API)."""
        return {
            "file": self.path,
            "text_col": self.text_col,
            "label_col": self.label_col,
            "columns": self.columns,
            "encoding": self.encoding,
            "separator": self.separator,
            "rows_read": self.rows_read,
            "rows_kept": len(self.texts),
            "dropped": self.dropped,
            "classes": self.class_counts(),
        }


@dataclass
class Splits:
    """Train and test texts with label ids; `label_names[i]` is the name of id i."""

    train_texts: list[str]
    train_labels: list[int]
    test_texts: list[str]
    test_labels: list[int]
    label_names: list[str]
    test_source: str  # "file" or "split"


def label_order(labels: Iterable[str]) -> list[str]:
    """The distinct labels: numeric order when all are numbers ("2" before "10"), else string order."""
    distinct = set(labels)
    try:
        values = {label: float(label) for label in distinct}
    except ValueError:
        return sorted(distinct)
    if not all(math.isfinite(value) for value in values.values()):
        return sorted(distinct)
    return sorted(distinct, key=lambda label: (values[label], label))


def read_table(
    path: str | os.PathLike,
    text_col: str | None = None,
    label_col: str | None = None,
    limits: Limits | None = None,
) -> LabeledData:
    """Read a TSV/CSV file (UTF-8 or CP949) into labelled texts, dropping rows without a text or label."""
    limits = current_limits() if limits is None else limits
    path = os.fspath(path)
    name = Path(path).name
    data = _read_bytes(Path(path), name, limits)
    text, encoding = _decode(data, name)
    separator = _separator(text, name)
    raw = _parse(text, separator, name)
    header = [str(cell) for cell in raw.iloc[0]]
    body = raw.iloc[1:]
    if body.empty:
        raise DataError("data_no_rows", name=name)
    if len(body) > limits.max_rows:
        raise DataError("data_too_many_rows", name=name, rows=len(body), limit=limits.max_rows)

    columns = _column_names(header)
    generic = [f"column {i + 1}" for i in range(len(columns))]
    if text_col is not None or label_col is not None:
        headerless, text_col, label_col = _explicit(columns, generic, text_col, label_col, name)
    else:
        text_col, label_col = _by_name(columns, TEXT_NAMES), _by_name(columns, LABEL_NAMES)
        headerless = text_col is None and label_col is None and _looks_like_data(header, body)
    if headerless:
        body, columns = raw, generic
    body = body.set_axis(columns, axis=1).reset_index(drop=True)
    text_col, label_col = _detect(body, text_col, label_col, name)

    texts = body[text_col].str.strip()
    labels = body[label_col].str.strip()
    lengths = texts.str.len()
    too_long = lengths > limits.max_text_chars
    if too_long.any():
        row = int(too_long.to_numpy().argmax())
        line = row + (1 if headerless else 2)
        raise DataError(
            "data_text_too_long",
            name=name,
            line=line,
            chars=int(lengths.iloc[row]),
            column=text_col,
            limit=limits.max_text_chars,
        )
    no_text = texts == ""
    no_label = ~no_text & ((labels == "") | labels.isin(EMPTY_LABELS))
    dropped = {
        reason: int(mask.sum()) for reason, mask in (("empty text", no_text), ("empty label", no_label)) if mask.any()
    }
    keep = ~(no_text | no_label)
    if not keep.any():
        raise DataError("data_no_labeled_rows", name=name, text_col=text_col, label_col=label_col)
    result = LabeledData(
        path=path,
        texts=texts[keep].tolist(),
        labels=labels[keep].tolist(),
        text_col=text_col,
        label_col=label_col,
        columns=list(columns),
        rows_read=len(body),
        dropped=dropped,
        head=body.head(HEAD_ROWS).copy(),
        encoding=encoding,
        separator=separator,
    )
    classes = result.class_counts()
    if len(classes) < 2:
        raise DataError("data_one_class", name=name, label=next(iter(classes)), label_col=label_col)
    return result


def make_splits(
    train: LabeledData,
    test: LabeledData | None = None,
    test_size: float = 0.1,
    seed: int = 42,
) -> Splits:
    """Map labels to ids; use the test file if given, else hold out a stratified `test_size` of train."""
    label_names = label_order(train.labels)
    ids = {label: i for i, label in enumerate(label_names)}
    train_ids = [ids[label] for label in train.labels]
    if test is not None:
        unknown = label_order(set(test.labels) - ids.keys())
        if unknown:
            raise DataError("data_unknown_test_labels", name=test.name, labels=_quoted(unknown))
        return Splits(
            train.texts,
            train_ids,
            test.texts,
            [ids[label] for label in test.labels],
            label_names,
            "file",
        )

    if not 0 < test_size < 1:
        raise ValueError(f"test_size must be between 0 and 1 (exclusive), not {test_size}.")
    counts = train.class_counts()
    smallest = min(counts, key=counts.__getitem__)
    n_test = math.ceil(test_size * len(train_ids))
    n_train = len(train_ids) - n_test
    if counts[smallest] < 2 or min(n_test, n_train) < len(counts):
        raise DataError(
            "data_too_small_to_split",
            name=train.name,
            share=test_size,
            classes=len(counts),
            smallest=smallest,
            count=counts[smallest],
        )
    from sklearn.model_selection import train_test_split  # here, not at the top: the web app starts ~1 s sooner

    train_texts, test_texts, train_labels, test_labels = train_test_split(
        train.texts,
        train_ids,
        test_size=test_size,
        stratify=train_ids,
        random_state=seed,
    )
    return Splits(train_texts, train_labels, test_texts, test_labels, label_names, "split")


def read_texts(path: str | os.PathLike, text_col: str | None = None, limits: Limits | None = None) -> list[str]:
    """Sentences to classify: a table's text column (.tsv/.csv, or tabs in the first line), else one per line.

    Blank texts are kept as empty strings so that outputs line up with the input rows.
    """
    limits = current_limits() if limits is None else limits
    path = Path(path)
    name = path.name
    text, _ = _decode(_read_bytes(path, name, limits), name)
    first = next(line for line in io.StringIO(text) if line.strip())
    has_separator = any(separator in first for separator in SEPARATORS)
    is_table = has_separator and (path.suffix.lower() in (".tsv", ".csv") or "\t" in first or text_col is not None)
    if not is_table:
        texts = [line.strip() for line in text.splitlines() if line.strip()]
        if texts and texts[0].lower() in TEXT_NAMES:
            texts = texts[1:]
    else:
        raw = _parse(text, _separator(text, name), name, min_columns=1)
        columns = _column_names([str(cell) for cell in raw.iloc[0]])
        body = raw.iloc[1:].set_axis(columns, axis=1).reset_index(drop=True)
        texts = body[text_column(body, text_col, name)].str.strip().tolist()
    if not texts:
        raise DataError("data_no_sentences", name=name)
    if len(texts) > limits.max_rows:
        raise DataError("data_too_many_sentences", name=name, n=len(texts), limit=limits.max_rows)
    return texts


def text_column(body: pd.DataFrame, text_col: str | None, name: str) -> str:
    """The column of sentences to classify: the one named (case-insensitive), else found by name or content."""
    columns = [str(c) for c in body.columns]
    if text_col is not None:
        chosen = _match(columns, text_col)
        if chosen is None:
            raise DataError("data_no_column", name=name, column=text_col, columns=_quoted(columns))
        return chosen
    chosen = _by_name(columns, TEXT_NAMES) or _text_by_content(body)
    if chosen is None:
        raise DataError("data_no_text_column", name=name, columns=_quoted(columns))
    return chosen


def _read_bytes(path: Path, name: str, limits: Limits) -> bytes:
    """The file's bytes, after checking it exists, fits the size limit and is a text table."""
    if not path.is_file():
        raise DataError("data_not_a_file", path=path)
    size = path.stat().st_size
    if size > limits.max_file_bytes:
        raise DataError("data_file_too_big", name=name, size_mb=size / 2**20, limit_mb=limits.max_file_mb)
    data = path.read_bytes()
    if not data.strip():
        raise DataError("data_empty", name=name)
    kind = _binary_kind(data)
    if kind:
        raise DataError("data_binary", name=name, kind=Term(kind))
    return data


def _binary_kind(data: bytes) -> str | None:
    """What a non-text file looks like, or None for text."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "UTF-16 text (Excel's 'Unicode Text')"
    if data.startswith(b"PK\x03\x04"):
        return "an Excel workbook" if b"xl/" in data else "a ZIP archive"
    for magic, kind in MAGIC:
        if data.startswith(magic):
            return kind
    return "a binary file" if b"\x00" in data[:8192] else None


def _decode(data: bytes, name: str) -> tuple[str, str]:
    """The decoded text and its encoding: UTF-8 with BOM, UTF-8, else CP949 (EUC-KR)."""
    encodings = ("utf-8-sig",) if data.startswith(b"\xef\xbb\xbf") else ("utf-8", "cp949")
    for encoding in encodings:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if not text.strip():
            raise DataError("data_empty", name=name)
        return text, encoding
    raise DataError("data_bad_encoding", name=name)


def _separator(text: str, name: str) -> str:
    """Tab, comma, ';' or '|', whichever the first non-blank line has first in that order."""
    first = next(line for line in io.StringIO(text) if line.strip())
    for separator in SEPARATORS:
        if separator in first:
            return separator
    raise DataError("data_no_separator", name=name)


def _parse(text: str, separator: str, name: str, min_columns: int = 2) -> pd.DataFrame:
    """All rows, header included, as strings with standard CSV quoting."""
    try:
        raw = pd.read_csv(
            io.StringIO(text),
            sep=separator,
            header=None,
            dtype=str,
            keep_default_na=False,
        )
    except pd.errors.ParserError as error:
        message = str(error)
        if ragged := _RAGGED.search(message):
            expected, line, saw = ragged.groups()
            raise DataError(
                "data_ragged", name=name, line=line, saw=saw, expected=expected, separator=Term(SEPARATORS[separator])
            ) from None
        if quote := _OPEN_QUOTE.search(message):
            raise DataError("data_open_quote", name=name, line=int(quote[1]) + 1) from None
        raise DataError("data_unreadable", name=name, reason=message.split("C error: ")[-1]) from None
    if raw.shape[1] < min_columns:
        raise DataError("data_single_column", name=name)
    return raw.fillna("")


def _column_names(header: list[str]) -> list[str]:
    """Header cells stripped, blanks named "column N", repeats suffixed " (2)", " (3)", ..."""
    names: list[str] = []
    for i, cell in enumerate(header):
        base = cell.strip() or f"column {i + 1}"
        name, k = base, 1
        while name in names:
            k += 1
            name = f"{base} ({k})"
        names.append(name)
    return names


def _match(columns: list[str], wanted: str) -> str | None:
    """The column called `wanted`: exactly, else ignoring case and surrounding spaces."""
    if wanted in columns:
        return wanted
    key = wanted.strip().casefold()
    return next((column for column in columns if column.strip().casefold() == key), None)


def _explicit(
    columns: list[str], generic: list[str], text_col: str | None, label_col: str | None, name: str
) -> tuple[bool, str | None, str | None]:
    """Whether the file is read headerless ("column N" names given), and the given columns as named there."""
    given = [wanted for wanted in (text_col, label_col) if wanted is not None]
    headerless = False
    if not all(_match(columns, wanted) for wanted in given):
        headerless = all(_match(generic, wanted) for wanted in given)
        if not headerless:
            missing = next(wanted for wanted in given if _match(columns, wanted) is None)
            raise DataError("data_no_column", name=name, column=missing, columns=_quoted(columns))
    names = generic if headerless else columns
    return headerless, *(None if wanted is None else _match(names, wanted) for wanted in (text_col, label_col))


def _by_name(columns: list[str], names: frozenset[str]) -> str | None:
    """The first column whose name (case-insensitive, stripped) is one of `names`."""
    return next((column for column in columns if column.strip().lower() in names), None)


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _looks_like_data(header: list[str], body: pd.DataFrame) -> bool:
    """Whether the first row is data: a cell is a number or a value found again in its column."""
    for position, cell in enumerate(header):
        cell = cell.strip()
        if cell and (_is_number(cell) or (body.iloc[:, position].str.strip() == cell).any()):
            return True
    return False


def _detect(body: pd.DataFrame, text_col: str | None, label_col: str | None, name: str) -> tuple[str, str]:
    """Fill in the text and label columns not named: text = longest mostly non-numeric, mostly distinct column
    (leftmost on ties); label = rightmost other column with 2 to min(1000, rows/2) distinct values."""
    if text_col is not None and text_col == label_col:
        raise DataError("data_same_columns", name=name, column=text_col)
    rows = len(body)
    if text_col is None:
        text_col = _text_by_content(body, exclude=label_col)
    if label_col is None:
        most = min(1000, max(2, rows // 2))
        label_col = next(
            (
                column
                for column in reversed(body.columns)
                if column != text_col and 2 <= _distinct(body[column]) <= most
            ),
            None,
        )
    if text_col is None or label_col is None:
        missing = "text" if text_col is None else "label"
        raise DataError("data_no_detected_column", name=name, role=Term(missing), columns=_quoted(list(body.columns)))
    return text_col, label_col


def _text_by_content(body: pd.DataFrame, exclude: str | None = None) -> str | None:
    """The longest mostly non-numeric, mostly distinct column (leftmost on ties)."""
    text_col, best = None, 0.0
    for column in body.columns:
        if column == exclude:
            continue
        values = body[column].str.strip()
        values = values[values != ""]
        if values.empty or values.nunique() <= 0.5 * len(values):
            continue
        if pd.to_numeric(values, errors="coerce").notna().mean() >= 0.5:
            continue
        mean_length = float(values.str.len().mean())
        if mean_length > best:
            text_col, best = column, mean_length
    return text_col


def _distinct(values: pd.Series) -> int:
    """How many different non-blank values a column holds."""
    values = values.str.strip()
    return values[values != ""].nunique()


def _quoted(items: Iterable[str]) -> str:
    return ", ".join(f"'{item}'" for item in items)
