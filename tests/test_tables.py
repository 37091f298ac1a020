"""One reader, one writer: the same awkward files read the same way by training/validation (read_table), the web
app (read_texts) and bulk prediction (text_chunks); the same predictions CSV from the web app, the CLI and bulk."""

from __future__ import annotations

import codecs
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import call_cli

from kobert_demo.app.queue import JobQueue
from kobert_demo.app.ui.predict_tab import predict_file_for_visitor
from kobert_demo.app.ui.state import AppState
from kobert_demo.basics.csv_out import prediction_columns, prediction_records, predictions_head, write_predictions
from kobert_demo.basics.data import SNIFF_BYTES, DataError, read_table, read_texts, sniff, sniff_head, text_chunks
from kobert_demo.engine.loading import load_backbone, save_classifier
from kobert_demo.serving.bulk import predict_file_to_csv

ROWS = [
    ("정말 재밌어요, 또 볼래요", "긍정"),
    ("시간 낭비; 별로", "부정"),
    ("그냥 그래요 | 보통", "중립"),
    ("최고", "긍정"),
]


def tsv(rows: list[tuple[str, str]], separator: str = "\t", header: str = "document") -> str:
    return f"{header}{separator}label\n" + "".join(f"{text}{separator}{label}\n" for text, label in rows)


def quoted_csv(rows: list[tuple[str, str]]) -> str:
    """A CSV as Excel writes it: every text quoted, quotes doubled."""
    return "text,label\r\n" + "".join('"{}",{}\r\n'.format(text.replace('"', '""'), label) for text, label in rows)


# name -> (file content, the sentences every reader must find, the encoding and separator they must agree on)
AWKWARD = {
    "cp949.tsv": (tsv(ROWS).encode("cp949"), [t for t, _ in ROWS], "cp949", "\t"),
    "bom.csv": (quoted_csv(ROWS).encode("utf-8-sig"), [t for t, _ in ROWS], "utf-8-sig", ","),
    "unicode_text.txt": (tsv(ROWS).encode("utf-16"), [t for t, _ in ROWS], "utf-16", "\t"),
    "semicolon.csv": (
        tsv([("좋다, 정말", "a"), ("나쁘다", "b")], ";").encode(),
        ["좋다, 정말", "나쁘다"],
        "utf-8",
        ";",
    ),
    "quoted.csv": (
        quoted_csv([('배우가 "최고", 정말', "1"), ("여러\n줄의 리뷰", "0"), ("=1+1 수식", "1")]).encode(),
        ['배우가 "최고", 정말', "여러\n줄의 리뷰", "=1+1 수식"],
        "utf-8",
        ",",
    ),
}
# Files of sentences only: one per line (commas and all), a header line naming the text column is skipped.
LINES = {
    "lines.txt": (
        "문장\n최고의 영화, 또 보고 싶다\n\n지루했다\n".encode(),
        ["최고의 영화, 또 보고 싶다", "지루했다"],
        "utf-8",
    ),
    "lines_cp949.txt": ("그럭저럭\r\n별로다, 진짜\r\n".encode("cp949"), ["그럭저럭", "별로다, 진짜"], "cp949"),
    "one_column.csv": ("text\n좋다\n나쁘다\n".encode("utf-8-sig"), ["좋다", "나쁘다"], "utf-8-sig"),
}


def write(directory: Path, name: str, content: bytes) -> Path:
    path = directory / name
    path.write_bytes(content)
    return path


def streamed(path: Path, chunk_rows: int = 2) -> list[str]:
    return [text for chunk in text_chunks(path, chunk_rows=chunk_rows) for text in chunk]


@pytest.mark.parametrize("name", sorted(AWKWARD))
def test_a_table_reads_the_same_for_training_the_web_and_bulk(tmp_path: Path, name: str) -> None:
    content, texts, encoding, separator = AWKWARD[name]
    path = write(tmp_path, name, content)
    layout = sniff(path)
    assert (layout.encoding, layout.separator, layout.table) == (encoding, separator, True)
    labelled = read_table(path)
    assert (labelled.encoding, labelled.separator) == (encoding, separator)
    assert labelled.texts == [text.strip() for text in texts]
    assert read_texts(path) == streamed(path) == labelled.texts


@pytest.mark.parametrize("name", sorted(LINES))
def test_a_file_of_lines_reads_the_same_for_the_web_and_bulk(tmp_path: Path, name: str) -> None:
    content, texts, encoding = LINES[name]
    path = write(tmp_path, name, content)
    layout = sniff(path)
    assert (layout.encoding, layout.table) == (encoding, False)
    assert read_texts(path) == streamed(path) == streamed(path, chunk_rows=1) == texts


def test_a_named_text_column_makes_a_txt_a_table(tmp_path: Path) -> None:
    path = write(tmp_path, "reviews.txt", "리뷰,점수\n좋다,5\n별로,1\n".encode())
    assert streamed(path) == ["리뷰,점수", "좋다,5", "별로,1"]  # a .txt with commas: sentences
    assert sniff(path, text_col="리뷰").table
    assert read_texts(path, text_col="리뷰") == [t for c in text_chunks(path, "리뷰") for t in c] == ["좋다", "별로"]


def test_header_only_is_refused_by_every_reader(tmp_path: Path) -> None:
    path = write(tmp_path, "header.tsv", b"document\tlabel\n")
    with pytest.raises(DataError, match="header but no data rows"):
        read_table(path)
    with pytest.raises(DataError, match="no sentences to classify"):
        read_texts(path)
    assert streamed(path) == []


def test_a_character_split_by_the_sniffed_head_is_forgiven(tmp_path: Path) -> None:
    """A file bigger than the head sniffed: its last character may be cut; the file is still UTF-8 everywhere."""
    rows = [(f"가나다라 {i}", str(i % 2)) for i in range(SNIFF_BYTES // 14 + 100)]
    path = write(tmp_path, "big.tsv", tsv(rows).encode())
    head = path.read_bytes()[:SNIFF_BYTES]
    with pytest.raises(UnicodeDecodeError):
        head.decode("utf-8")  # the head does end inside a character
    assert sniff_head(head, "big.tsv", ".tsv", complete=False).encoding == "utf-8"
    labelled = read_table(path)
    assert labelled.encoding == sniff(path).encoding == "utf-8"
    assert streamed(path, chunk_rows=4096) == labelled.texts


def test_undecodable_text_past_the_head_is_one_sentence(tmp_path: Path) -> None:
    content = tsv([("좋다", "1")] * (SNIFF_BYTES // 8)).encode() + "나쁘다\t0\n".encode("cp949")
    path = write(tmp_path, "mixed.tsv", content)
    for read in (read_table, read_texts, streamed):
        with pytest.raises(DataError, match="neither UTF-8 nor CP949"):
            read(path)


@pytest.mark.parametrize(
    ("content", "expected"),
    [(b"", "is empty"), (b"\xef\xbb\xbf\r\n", "is empty"), (b"%PDF-1.7\n", "looks like a PDF document")],
)
def test_files_refused_the_same_way_everywhere(tmp_path: Path, content: bytes, expected: str) -> None:
    path = write(tmp_path, "bad.csv", content)
    for read in (read_table, read_texts, streamed):
        with pytest.raises(DataError, match=expected):
            read(path)


# --- the one predictions writer -----------------------------------------------------------------------------------
def test_predictions_csv_columns_numbers_and_encoding(tmp_path: Path) -> None:
    probs = np.array([[0.1, 0.7, 0.2], [0.5, 0.25, 0.25]], dtype=np.float32)
    path = write_predictions(tmp_path / "p.csv", ["좋다\n 정말", "-_- 별로"], probs, ["부정", "긍정", "=중립"])
    data = path.read_bytes()
    assert data.startswith(codecs.BOM_UTF8) and data.startswith(predictions_head(["부정", "긍정", "=중립"]))
    assert data.decode("utf-8-sig").splitlines() == [
        "text,label,confidence,p_부정,p_긍정,p_=중립",
        "좋다 정말,긍정,0.700000,0.100000,0.700000,0.200000",  # one line per row
        "'-_- 별로,부정,0.500000,0.500000,0.250000,0.250000",  # a formula-like cell is made text
    ]
    records = prediction_records(["좋다"], probs[:1], ["부정", "긍정", "=중립"])
    assert records == [
        {"text": "좋다", "label": "긍정", "confidence": 0.7, "p_부정": 0.1, "p_긍정": 0.7, "p_=중립": 0.2}
    ]
    assert list(records[0]) == prediction_columns(["부정", "긍정", "=중립"])


@pytest.fixture(scope="module")
def model(tiny_kobert_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-class classifier on the tiny KoBERT-shaped backbone (random head): quick, and unsure enough that the
    probabilities use every decimal."""
    folder = tmp_path_factory.mktemp("tables-model")
    save_classifier(load_backbone(str(tiny_kobert_folder), ["긍정", "부정", "중립"], 0.1), folder)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("name", ["quoted.csv", "lines_cp949.txt"])
def test_the_same_file_gives_the_same_csv_bytes_in_the_web_app_the_cli_and_bulk(
    model: Path, tmp_path: Path, name: str
) -> None:
    content = AWKWARD[name][0] if name in AWKWARD else LINES[name][0]
    path = write(tmp_path, name, content)
    home = tmp_path / "runs"
    state = AppState(home, JobQueue(home), work=tmp_path / "work", private=tmp_path / "private")
    web = Path(predict_file_for_visitor(state, str(model), str(path))).read_bytes()

    # The CLI (in-process) on the backend the web app serves: `auto` picks by timing, and two processes may pick two
    # paths that agree within 0.01 but not to the last digit.
    served = state.predictor(str(model)).backend
    out = tmp_path / "cli.csv"
    done = call_cli("predict", model, "--file", path, "--out", out, "--backend", served, "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "cli.csv").read_bytes() == web

    predict_file_to_csv(state.predictor(str(model)), path, tmp_path / "bulk.csv", progress=False)
    assert (tmp_path / "bulk.csv").read_bytes() == web

    table = pd.read_csv(tmp_path / "cli.csv", keep_default_na=False)
    assert len(table) == len(read_texts(path)) and list(table.columns)[:3] == ["text", "label", "confidence"]
