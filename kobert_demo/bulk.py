"""Bulk prediction of large files: streamed in chunks (flat memory), resumable, split across processes.

The output CSV has the columns text, label, p_<class>..., one row per input row, in input order. Each chunk is
written in one piece and flushed, so an interrupted run resumes after its last complete chunk. Under
`accelerate launch`/`torchrun`, process r of N predicts chunks r, r+N, ... into its own part file and the main
process merges the parts in order at the end.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from .csv_out import csv_text
from .data import SEPARATORS, DataError, text_column
from .predict import Predictor

CHUNK_ROWS = 4096


def _encoding(path: Path) -> str:
    """utf-8-sig, utf-8 or cp949, judged from the first 1 MB (a split character at the end is forgiven)."""
    with path.open("rb") as file:
        head = file.read(1 << 20)
    if head.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    for encoding in ("utf-8", "cp949"):
        try:
            head.decode(encoding)
            return encoding
        except UnicodeDecodeError as error:
            if error.start >= len(head) - 3:
                return encoding
    raise DataError("data_bad_encoding", name=path.name)


def _first_line(path: Path, encoding: str) -> str:
    with path.open(encoding=encoding, errors="replace") as file:
        return next((line for line in file if line.strip()), "")


def text_chunks(path: str | Path, text_col: str | None = None, chunk_rows: int = CHUNK_ROWS) -> Iterator[list[str]]:
    """The file's texts, chunk by chunk: a table's text column, or one sentence per line for plain text."""
    path = Path(path)
    if not path.is_file():
        raise DataError("data_not_a_file", path=path)
    encoding = _encoding(path)
    first = _first_line(path, encoding)
    separator = next((s for s in SEPARATORS if s in first), None)
    if separator is None or (path.suffix.lower() == ".txt" and separator != "\t" and text_col is None):
        with path.open(encoding=encoding, newline="") as file:
            lines = (line.strip() for line in file if line.strip())
            while chunk := list(itertools.islice(lines, chunk_rows)):
                yield chunk
        return
    reader = pd.read_csv(path, sep=separator, dtype=str, keep_default_na=False, encoding=encoding, chunksize=chunk_rows)
    column = None
    try:
        for frame in reader:
            if column is None:
                column = text_column(frame, text_col, path.name)
            yield frame[column].str.strip().tolist()
    except pd.errors.ParserError as error:
        raise DataError("data_unreadable", name=path.name, reason=str(error).split("C error: ")[-1]) from None


def count_lines(path: str | Path) -> int:
    """How many lines the file holds (a last line without a newline counts too), for the progress bar."""
    lines, last = 0, b"\n"
    with Path(path).open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    return lines + (last != b"\n")


def _complete_rows(part: Path, chunk_rows: int, header: bool) -> int:
    """Rows of whole chunks already in a part file; anything after the last whole chunk is cut off."""
    if not part.exists():
        return 0
    with part.open("rb") as file:
        data = file.read()
    lines = data.split(b"\n")[:-1]  # a last line without newline is incomplete
    body = lines[1:] if header and lines else lines
    keep = len(body) // chunk_rows * chunk_rows
    kept = (lines[:1] if header and lines else []) + body[:keep]
    with part.open("wb") as file:
        file.write(b"".join(line + b"\n" for line in kept))
    return keep


def _header(names: list[str]) -> str:
    return csv_text([["text", "label", *(f"p_{n}" for n in names)]])


def _rows_csv(texts: list[str], probs, names: list[str]) -> str:
    rows = (
        [" ".join(text.split()), names[int(row.argmax())], *(f"{p:.6f}" for p in row)]  # one line per row, always
        for text, row in zip(texts, probs)
    )
    return csv_text(rows)


def predict_file(
    predictor: Predictor,
    path: str | Path,
    out: str | Path,
    text_col: str | None = None,
    resume: bool = False,
    chunk_rows: int = CHUNK_ROWS,
    rank: int = 0,
    world: int = 1,
    progress: bool = True,
) -> int:
    """Predict every row of path into out (CSV); returns the rows this process predicted in this call."""
    from tqdm import tqdm

    out = Path(out)
    names = predictor.label_names
    header = _header(names)
    part = out if world == 1 else out.with_name(f"{out.name}.part{rank}of{world}")
    if out.exists() and world == 1 and not resume:
        raise DataError("data_out_exists", out=out)
    chunks = text_chunks(path, text_col, chunk_rows)
    first = next(chunks, None)  # reads the header: a wrong column fails here, before any output
    if first is None:
        raise DataError("data_no_sentences", name=Path(path).name)
    rows = count_lines(path) - (Path(path).suffix.lower() in (".tsv", ".csv"))  # less the header
    bar = tqdm(total=rows, unit="row", disable=not progress or rank != 0, dynamic_ncols=True)
    done_rows = _complete_rows(part, chunk_rows, header=world == 1) if resume else 0
    if not resume or not part.exists() or part.stat().st_size == 0:
        part.write_text(header if world == 1 else "", encoding="utf-8")
    done_chunks = done_rows // chunk_rows  # whole chunks of this process already written
    predicted, mine = 0, 0
    start = time.time()
    with part.open("a", encoding="utf-8") as output:
        for index, texts in enumerate(itertools.chain([first], chunks)):
            bar.update(len(texts) * world if index % world == rank else 0)
            if index % world != rank:
                continue
            mine += 1
            if mine <= done_chunks:
                continue
            output.write(_rows_csv(texts, predictor.predict_proba(texts), names))
            output.flush()
            os.fsync(output.fileno())
            predicted += len(texts)
    bar.close()
    if progress and rank == 0:
        speed = predicted / max(time.time() - start, 1e-9)
        print(f"predicted {predicted} rows ({done_rows} resumed) at {speed:.0f} rows/s", flush=True)
    return predicted


def merge_parts(out: str | Path, world: int, label_names: list[str], chunk_rows: int = CHUNK_ROWS) -> None:
    """Interleave the processes' part files chunk by chunk into out, in input order, then remove them."""
    out = Path(out)
    parts = [out.with_name(f"{out.name}.part{r}of{world}") for r in range(world)]
    files = [p.open(encoding="utf-8") for p in parts]
    try:
        with out.open("w", encoding="utf-8") as merged:
            merged.write(_header(label_names))
            for index in itertools.count():
                lines = list(itertools.islice(files[index % world], chunk_rows))
                if not lines:
                    break
                merged.writelines(lines)
    finally:
        for file in files:
            file.close()
    for part in parts:
        part.unlink()
