"""Rebuild the data slices in this folder from the full datasets (`python tests/data/make_slices.py ../shared/data`).

Each slice is whole lines copied byte for byte from its source file (quoting and all), header first, taking the first
rows of each class in file order. The sources, their licenses and provenance are in README.md beside this file.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from kobert_demo.basics import files

HERE = Path(__file__).resolve().parent

# (source, target, label column index, rows per class, separator, extra rows: lines containing this text)
SLICES = [
    ("nsmc/sample_train.tsv", "nsmc/train.tsv", 2, 600, "\t", None),
    ("nsmc/sample_test.tsv", "nsmc/test.tsv", 2, 150, "\t", None),
    ("movie_ratings/sample_train.tsv", "movie_ratings/train.tsv", 1, 100, "\t", None),
    ("movie_ratings/sample_test.tsv", "movie_ratings/test.tsv", 1, 50, "\t", None),
    ("movie_ratings/sample_train_10class.tsv", "movie_ratings/train_10class.tsv", 1, 20, "\t", None),
    ("movie_ratings/sample_test_10class.tsv", "movie_ratings/test_10class.tsv", 1, 10, "\t", None),
    ("hate_speech/train.tsv", "hate_speech/train.tsv", 3, 50, "\t", '"'),  # plus every quoted row
    ("chatbot/ChatbotData.csv", "chatbot/ChatbotData.csv", 2, 100, ",", "2   "),  # plus the label with spaces
]


def take(lines: list[str], label_index: int, per_class: int, separator: str, extra: str | None) -> list[str]:
    """The header, then the first `per_class` lines of each class and every line containing `extra`, in order."""
    taken: dict[str, int] = {}
    kept = [lines[0]]
    for line in lines[1:]:
        label = next(csv.reader([line], delimiter=separator))[label_index]
        if (extra and extra in line) or taken.get(label, 0) < per_class:
            taken[label] = taken.get(label, 0) + 1
            kept.append(line)
    return kept


def main(source_root: Path) -> None:
    missing = [source for source, *_ in SLICES if not (source_root / source).is_file()]
    if missing:
        raise SystemExit(f"{source_root} has no {missing[0]}: name the folder of the full datasets.")
    for source, target, label_index, per_class, separator, extra in SLICES:
        lines = (source_root / source).read_text(encoding="utf-8").splitlines(keepends=True)
        path = HERE / target
        path.parent.mkdir(parents=True, exist_ok=True)
        files.write_text(path, "".join(take(lines, label_index, per_class, separator, extra)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source_root", type=Path, help="the folder of the full datasets (README.md beside this file)")
    main(parser.parse_args().source_root)
