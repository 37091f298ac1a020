"""Read any table -> labelled texts, with a report of dropped rows; split them for training. Read any file of
sentences -> texts to classify, whole or streamed in chunks.

Every reader decides how to read a file the same way, from its head (`sniff`): the encoding, the separator, and
for a file of sentences whether it is a table or one sentence per line. Training, validation (`read_table`), the
web app's predictions (`read_texts`) and bulk prediction (`text_chunks`) therefore agree on every file.
"""

from __future__ import annotations

import codecs
import io
import itertools
import math
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from kobert_demo.basics.errors import UserFacingError
from kobert_demo.basics.messages import Term, t
from kobert_demo.basics.settings import CHUNK_ROWS, Limits
from kobert_demo.basics.settings import limits as current_limits

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
TABLE_SUFFIXES = (".tsv", ".csv")
# Byte order marks, the only sure sign of an encoding: UTF-8's (Excel's "CSV UTF-8") and UTF-16's (Excel's
# "Unicode Text", tab-separated). Without one, UTF-8 is tried first: CP949 text is almost never valid UTF-8.
BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
ENCODINGS = ("utf-8", "cp949")
# The head every reader decides from: bulk prediction cannot read a 10 GB file twice to choose its encoding.
SNIFF_BYTES = 1 << 20
# Why a row was dropped: message keys (messages.py), shown in the reader's language.
DROP_EMPTY_TEXT = "drop_empty_text"
DROP_EMPTY_LABEL = "drop_empty_label"
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
    dropped: dict[str, int]  # reason (a message key: DROP_EMPTY_TEXT, DROP_EMPTY_LABEL) -> rows
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

    def dropped_reasons(self, lang: str = "en") -> dict[str, int]:
        """Why rows were dropped, in words of lang -> rows."""
        return {t(lang, reason): rows for reason, rows in self.dropped.items()}

    def report(self) -> dict:
        """What was read, as JSON-ready data (`validate --json`, the web API); reasons in English."""
        return {
            "file": self.path,
            "text_col": self.text_col,
            "label_col": self.label_col,
            "columns": self.columns,
            "encoding": self.encoding,
            "separator": self.separator,
            "rows_read": self.rows_read,
            "rows_kept": len(self.texts),
            "dropped": self.dropped_reasons("en"),
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
    valid_texts: list[str] = field(default_factory=list)  # the validation data, which chooses the kept model
    valid_labels: list[int] = field(default_factory=list)
    valid_source: str = "split"  # "file" or "split"


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
    """Read a TSV/CSV file (UTF-8, UTF-16 or CP949) into labelled texts, dropping rows without a text or label.

    A labelled file is always a table, whatever its name: its first line must hold a separator.
    """
    limits = current_limits() if limits is None else limits
    path = os.fspath(path)
    name = Path(path).name
    _check_size(Path(path), limits)
    layout = sniff(path)
    if layout.separator is None:
        raise DataError("data_no_separator", name=name)
    text = _decode(Path(path).read_bytes(), layout.encoding, name)
    separator = layout.separator
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
        reason: int(mask.sum())
        for reason, mask in ((DROP_EMPTY_TEXT, no_text), (DROP_EMPTY_LABEL, no_label))
        if mask.any()
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
        encoding=layout.encoding,
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
    valid: LabeledData | None = None,
    validation_size: float = 0.1,
) -> Splits:
    """Map labels to ids; the test data: the test file if given, else a stratified `test_size` of train; then the
    validation data (which chooses the kept model): the validation file if given, else a stratified
    `validation_size` of what train has left. Both held-out shares are seeded, so a run can be repeated."""
    label_names = label_order(train.labels)
    ids = {label: i for i, label in enumerate(label_names)}
    texts, labels = train.texts, [ids[label] for label in train.labels]
    if test is not None:
        check_test_labels(train, test)
        test_texts, test_labels, test_source = test.texts, [ids[label] for label in test.labels], "file"
    else:
        texts, test_texts, labels, test_labels = _hold_out(
            texts, labels, test_size, seed, train.name, label_names, "test_size"
        )
        test_source = "split"
    if valid is not None:
        check_valid_labels(train, valid)
        valid_texts, valid_labels, valid_source = valid.texts, [ids[label] for label in valid.labels], "file"
    else:
        texts, valid_texts, labels, valid_labels = _hold_out(
            texts, labels, validation_size, seed, train.name, label_names, "validation_size"
        )
        valid_source = "split"
    return Splits(
        texts, labels, test_texts, test_labels, label_names, test_source, valid_texts, valid_labels, valid_source
    )


def _hold_out(
    texts: list[str],
    labels: list[int],
    share: float,
    seed: int,
    name: str,
    label_names: list[str],
    setting: str,
) -> tuple[list[str], list[str], list[int], list[int]]:
    """(kept texts, held-out texts, kept labels, held-out labels): a stratified, seeded `share` (the setting
    test_size or validation_size) of the rows held out; one DataError sentence naming the smallest class when a
    class cannot be in both parts."""
    if not 0 < share < 1:
        raise ValueError(f"{setting} must be between 0 and 1 (exclusive), not {share}.")
    counts = Counter(labels)
    smallest = min(counts, key=lambda label: (counts[label], label))
    n_out = math.ceil(share * len(labels))
    if counts[smallest] < 2 or min(n_out, len(labels) - n_out) < len(counts):
        raise DataError(
            "data_too_small_to_split" if setting == "test_size" else "data_too_small_to_validate",
            name=name,
            share=share,
            classes=len(counts),
            smallest=label_names[smallest],
            count=counts[smallest],
        )
    from sklearn.model_selection import train_test_split  # here, not at the top: the web app starts ~1 s sooner

    return train_test_split(texts, labels, test_size=share, stratify=labels, random_state=seed)


def check_test_labels(train: LabeledData, test: LabeledData) -> None:
    """DataError when the test file has labels the training file lacks: the model could never predict them."""
    unknown = _unknown(test.labels, train.labels)
    if unknown:
        raise DataError("data_unknown_test_labels", name=test.name, labels=unknown)


def check_valid_labels(train: LabeledData, valid: LabeledData) -> None:
    """DataError when the validation file has labels the training file lacks: they would choose the kept model on
    classes it cannot predict."""
    unknown = _unknown(valid.labels, train.labels)
    if unknown:
        raise DataError("data_unknown_valid_labels", name=valid.name, labels=unknown)


def check_model_labels(data: LabeledData, label_names: list[str]) -> None:
    """DataError when a labelled file has labels a model was not trained on (`evaluate`)."""
    unknown = _unknown(data.labels, label_names)
    if unknown:
        raise DataError("data_unknown_model_labels", name=data.name, labels=unknown, known=_quoted(label_names))


def _unknown(labels: Iterable[str], known: Iterable[str], most: int = 10) -> str:
    """The labels not in known, quoted in label order (the first `most`, then "(+N)"); "" when there are none."""
    unknown = label_order(set(labels) - set(known))
    return _quoted(unknown[:most]) + (f" (+{len(unknown) - most})" if len(unknown) > most else "")


# --- sniffing: one decision for every reader ------------------------------------------------------------------
@dataclass(frozen=True)
class Layout:
    """How a file is read, decided from its head by `sniff`."""

    encoding: str  # utf-8-sig, utf-16, utf-8 or cp949: a Python codec that reads the whole file
    separator: str | None  # the first of SEPARATORS in the first non-blank line; None when it has none
    table: bool  # a file of sentences: a table with a header row (else one sentence per line)


def sniff(path: str | os.PathLike, text_col: str | None = None) -> Layout:
    """How to read the file, from its first SNIFF_BYTES; DataError when it is missing, empty, binary or undecodable.

    A file of sentences is a table when its first line has a separator and the file is a .tsv or .csv, the separator
    is a tab, or a text column is named; otherwise it holds one sentence per line (a .txt of sentences with commas).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("data_not_a_file", path=path)
    with path.open("rb") as file:
        head = file.read(SNIFF_BYTES + 1)
    return sniff_head(head[:SNIFF_BYTES], path.name, path.suffix, text_col, complete=len(head) <= SNIFF_BYTES)


def sniff_head(head: bytes, name: str, suffix: str = "", text_col: str | None = None, complete: bool = True) -> Layout:
    """`sniff` on a file's first bytes; `complete` when they are the whole file (else a split last character is
    forgiven)."""
    if not head.strip():
        raise DataError("data_empty", name=name)
    encoding = next((encoding for bom, encoding in BOMS if head.startswith(bom)), None)
    if encoding is None:
        kind = _binary_kind(head)
        if kind:
            raise DataError("data_binary", name=name, kind=Term(kind))
        encoding = next((encoding for encoding in ENCODINGS if _decodes(head, encoding, complete)), None)
        if encoding is None:
            raise DataError("data_bad_encoding", name=name)
    text = codecs.getincrementaldecoder(encoding)().decode(head, final=complete)
    first = next((line for line in io.StringIO(text, newline="") if line.strip()), None)
    if first is None:
        raise DataError("data_empty", name=name)
    separator = next((separator for separator in SEPARATORS if separator in first), None)
    named = suffix.lower() in TABLE_SUFFIXES or separator == "\t" or text_col is not None
    return Layout(encoding, separator, table=separator is not None and named)


def _decodes(head: bytes, encoding: str, complete: bool) -> bool:
    try:
        codecs.getincrementaldecoder(encoding)().decode(head, final=complete)
    except UnicodeDecodeError:
        return False
    return True


def _binary_kind(head: bytes) -> str | None:
    """What a non-text file looks like, or None for text."""
    if head.startswith(b"PK\x03\x04"):
        return "an Excel workbook" if b"xl/" in head else "a ZIP archive"
    for magic, kind in MAGIC:
        if head.startswith(magic):
            return kind
    return "a binary file" if b"\x00" in head[:8192] else None


def _check_size(path: Path, limits: Limits) -> None:
    """DataError unless path is a file within the size limit (read whole, by read_table and read_texts)."""
    if not path.is_file():
        raise DataError("data_not_a_file", path=path)
    size = path.stat().st_size
    if size > limits.max_file_bytes:
        raise DataError("data_file_too_big", name=path.name, size_mb=size / 2**20, limit_mb=limits.max_file_mb)


def _decode(data: bytes, encoding: str, name: str) -> str:
    """The whole file as text, in the encoding its head was sniffed in."""
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        raise DataError("data_bad_encoding", name=name) from None


# --- files of sentences -------------------------------------------------------------------------------------------
def read_texts(path: str | os.PathLike, text_col: str | None = None, limits: Limits | None = None) -> list[str]:
    """All sentences of a file (as `text_chunks` reads them), after checking the file and row limits."""
    limits = current_limits() if limits is None else limits
    path = Path(path)
    _check_size(path, limits)
    texts = [text for chunk in text_chunks(path, text_col) for text in chunk]
    if not texts:
        raise DataError("data_no_sentences", name=path.name)
    if len(texts) > limits.max_rows:
        raise DataError("data_too_many_sentences", name=path.name, n=len(texts), limit=limits.max_rows)
    return texts


def text_chunks(
    path: str | os.PathLike, text_col: str | None = None, chunk_rows: int = CHUNK_ROWS, layout: Layout | None = None
) -> Iterator[list[str]]:
    """The sentences of a file, streamed `chunk_rows` at a time (only the last chunk is shorter), stripped.

    A table (see `sniff`) gives its text column, found as `text_column` finds it in the first CHUNK_ROWS rows; its
    blank texts stay as "" so that outputs line up with the input rows. Otherwise each non-blank line is a sentence,
    and a first line that names a text column ("text", "문장", or text_col) is a header, not a sentence.
    """
    path = Path(path)
    layout = sniff(path, text_col) if layout is None else layout
    texts = _table_texts(path, layout, text_col) if layout.table else _line_texts(path, layout, text_col)
    while chunk := list(itertools.islice(texts, chunk_rows)):
        yield chunk


def _line_texts(path: Path, layout: Layout, text_col: str | None) -> Iterator[str]:
    """One sentence per non-blank line, less a header line."""
    with path.open(encoding=layout.encoding, newline="") as file:
        try:
            lines = (line.strip() for line in file)
            lines = (line for line in lines if line)
            first = next(lines, None)
            header = first is not None and (
                first.lower() in TEXT_NAMES or (text_col is not None and _match([first], text_col) is not None)
            )
            if first is not None and not header:
                yield first
            yield from lines
        except UnicodeDecodeError:
            raise DataError("data_bad_encoding", name=path.name) from None


def _table_texts(path: Path, layout: Layout, text_col: str | None) -> Iterator[str]:
    """The text column of a table, row by row, read CHUNK_ROWS rows at a time."""
    with path.open(encoding=layout.encoding, newline="") as file:
        position = None
        try:
            reader = pd.read_csv(
                file, sep=layout.separator, header=None, dtype=str, keep_default_na=False, chunksize=CHUNK_ROWS
            )
            for frame in reader:
                frame = frame.fillna("")
                if position is None:
                    columns = _column_names([str(cell) for cell in frame.iloc[0]])
                    frame = frame.iloc[1:].set_axis(columns, axis=1)
                    position = columns.index(text_column(frame, text_col, path.name))
                yield from frame.iloc[:, position].str.strip()
        except pd.errors.ParserError as error:
            raise _parse_error(error, layout.separator, path.name) from None
        except UnicodeDecodeError:
            raise DataError("data_bad_encoding", name=path.name) from None


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


# --- tables -------------------------------------------------------------------------------------------------------
def _parse(text: str, separator: str, name: str) -> pd.DataFrame:
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
        raise _parse_error(error, separator, name) from None
    if raw.shape[1] < 2:
        raise DataError("data_single_column", name=name)
    return raw.fillna("")


def _parse_error(error: pd.errors.ParserError, separator: str, name: str) -> DataError:
    """pandas' parser error as one sentence: a ragged row, an open quote, or pandas' own words."""
    message = str(error)
    if ragged := _RAGGED.search(message):
        expected, line, saw = ragged.groups()
        return DataError(
            "data_ragged", name=name, line=line, saw=saw, expected=expected, separator=Term(SEPARATORS[separator])
        )
    if quote := _OPEN_QUOTE.search(message):
        return DataError("data_open_quote", name=name, line=int(quote[1]) + 1)
    return DataError("data_unreadable", name=name, reason=message.split("C error: ")[-1])


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
