"""Bulk prediction of large files: streamed in chunks (flat memory), resumable, split across processes.

The file is read by `data.text_chunks` and the output written with `csv_out`'s predictions table, as the web app
does, so the same file gives the same CSV here and there. Each chunk is written in one piece and flushed, so an
interrupted run resumes after its last complete chunk. Under `accelerate launch`/`torchrun`, process r of N
predicts chunks r, r+N, ... into its own part file and the main process merges the parts in order at the end.
"""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from kobert_demo.basics.csv_out import predictions_body, predictions_head
from kobert_demo.basics.data import DataError, sniff, text_chunks
from kobert_demo.basics.settings import CHUNK_ROWS

if TYPE_CHECKING:
    from kobert_demo.serving.predict import Predictor


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


def predict_file_to_csv(
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
    part = out if world == 1 else out.with_name(f"{out.name}.part{rank}of{world}")
    if out.exists() and world == 1 and not resume:
        raise DataError("data_out_exists", out=out)
    layout = sniff(path, text_col)
    chunks = text_chunks(path, text_col, chunk_rows, layout)
    first = next(chunks, None)  # reads the header: a wrong column fails here, before any output
    if first is None:
        raise DataError("data_no_sentences", name=Path(path).name)
    rows = count_lines(path) - layout.table  # less the header
    bar = tqdm(total=rows, unit="row", disable=not progress or rank != 0, dynamic_ncols=True)
    done_rows = _complete_rows(part, chunk_rows, header=world == 1) if resume else 0
    if not resume or not part.exists() or part.stat().st_size == 0:
        part.write_bytes(predictions_head(names) if world == 1 else b"")
    done_chunks = done_rows // chunk_rows  # whole chunks of this process already written
    predicted, mine = 0, 0
    start = time.time()
    with part.open("ab") as output:
        for index, texts in enumerate(itertools.chain([first], chunks)):
            bar.update(len(texts) * world if index % world == rank else 0)
            if index % world != rank:
                continue
            mine += 1
            if mine <= done_chunks:
                continue
            output.write(predictions_body(texts, predictor.predict_proba(texts), names))
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
    files = [p.open("rb") for p in parts]
    try:
        with out.open("wb") as merged:
            merged.write(predictions_head(label_names))
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
