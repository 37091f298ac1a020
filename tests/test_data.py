"""Tests for basics.data: every real data slice in tests/data, every error path, encodings, detection, splits."""

from __future__ import annotations

import zipfile
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from conftest import DATA

from kobert_demo.basics.data import (
    DROP_EMPTY_LABEL,
    DROP_EMPTY_TEXT,
    DataError,
    LabeledData,
    check_model_labels,
    check_test_labels,
    label_order,
    make_splits,
    read_table,
)
from kobert_demo.basics.settings import Limits

TEN = [str(rating) for rating in range(1, 11)]
REAL_FILES = [
    ("nsmc/train.tsv", "document", "label", 1200, {"0": 600, "1": 600}),
    ("nsmc/test.tsv", "document", "label", 300, {"0": 150, "1": 150}),
    ("movie_ratings/train.tsv", "document", "label", 300, {"긍정": 100, "부정": 100, "중립": 100}),
    ("movie_ratings/test.tsv", "document", "label", 150, {"긍정": 50, "부정": 50, "중립": 50}),
    ("movie_ratings/train_10class.tsv", "document", "label", 200, {k: 20 for k in TEN}),
    ("movie_ratings/test_10class.tsv", "document", "label", 100, {k: 10 for k in TEN}),
    ("hate_speech/train.tsv", "comments", "hate", 160, {"hate": 53, "none": 54, "offensive": 53}),
    ("chatbot/ChatbotData.csv", "Q", "label", 301, {"0": 100, "1": 100, "2": 100 + 1}),
]


def write(directory: Path, name: str, content: str | bytes, encoding: str = "utf-8") -> Path:
    """Write `content` to directory/name and return the path."""
    path = directory / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding=encoding)
    return path


def table(rows: list[tuple[str, str]], header: str = "document\tlabel") -> str:
    """A TSV with `header` and one line per (text, label)."""
    return "\n".join([header, *(f"{text}\t{label}" for text, label in rows)]) + "\n"


def read_error(path: Path, **kwargs) -> str:
    """The DataError message read_table raises for `path`; it always names the file."""
    with pytest.raises(DataError) as caught:
        read_table(path, **kwargs)
    message = str(caught.value)
    assert path.name in message
    return message


def labeled(labels: list[str], name: str = "train.tsv") -> LabeledData:
    """A LabeledData with one text per label, for split tests."""
    return LabeledData(
        path=name,
        texts=[f"text {i}" for i in range(len(labels))],
        labels=labels,
        text_col="document",
        label_col="label",
        columns=["document", "label"],
        rows_read=len(labels),
        dropped={},
        head=pd.DataFrame(),
        encoding="utf-8",
        separator="\t",
    )


# Real data


@pytest.mark.parametrize(("relative", "text_col", "label_col", "rows", "counts"), REAL_FILES)
def test_real_files(relative: str, text_col: str, label_col: str, rows: int, counts: dict[str, int]) -> None:
    data = read_table(DATA / relative)
    assert (data.text_col, data.label_col) == (text_col, label_col)
    assert data.rows_read == rows == len(data.texts) == len(data.labels)
    assert data.class_counts() == counts
    assert list(data.class_counts()) == list(counts)  # label_order: "2" before "10"
    assert data.dropped == {}
    assert data.encoding == "utf-8"
    assert data.separator == ("," if relative.endswith(".csv") else "\t")
    assert data.name == Path(relative).name
    assert list(data.head.columns) == data.columns
    assert len(data.head) == 5


def test_real_columns() -> None:
    assert read_table(DATA / "hate_speech/train.tsv").columns == [
        "comments",
        "contain_gender_bias",
        "bias",
        "hate",
    ]
    assert read_table(DATA / "chatbot/ChatbotData.csv").columns == ["Q", "A", "label"]
    assert read_table(DATA / "nsmc/test.tsv").columns == ["id", "document", "label"]


def test_quoted_fields_come_out_unquoted() -> None:
    texts = read_table(DATA / "hate_speech/train.tsv").texts
    expected = (
        '결국 준영과 다솜은 바람을 피게되고 무인도로 떠난다에 한표 ㅋㅋㅋ 자연인이 되어 "나는자연인이다"에 출연하게된다'
    )
    assert expected in texts
    assert sum('"' in text for text in texts) == 10  # the README's 10 quoted rows, now plain
    assert not [text for text in texts if text.startswith('"') and text.endswith('"')]


def test_chatbot_label_with_trailing_spaces_is_stripped() -> None:
    data = read_table(DATA / "chatbot/ChatbotData.csv")
    assert "2   " not in data.labels
    assert set(data.labels) == {"0", "1", "2"}


def test_explicit_columns_override_detection() -> None:
    data = read_table(DATA / "hate_speech/train.tsv", text_col="COMMENTS", label_col="bias")
    assert (data.text_col, data.label_col) == ("comments", "bias")
    assert set(data.class_counts()) == {"gender", "none", "others"}
    assert read_table(DATA / "hate_speech/train.tsv", label_col="contain_gender_bias").text_col == "comments"


def test_real_test_file_and_unknown_labels() -> None:
    train = read_table(DATA / "movie_ratings/train.tsv")
    splits = make_splits(train, read_table(DATA / "movie_ratings/test.tsv"))
    assert splits.test_source == "file"
    assert splits.label_names == ["긍정", "부정", "중립"]
    assert Counter(splits.test_labels) == {0: 50, 1: 50, 2: 50}
    # Without a validation file a stratified 10% of the training file is held out for validation.
    assert (len(splits.train_texts), splits.valid_source) == (270, "split")
    assert Counter(splits.valid_labels) == {0: 10, 1: 10, 2: 10}
    with pytest.raises(DataError, match=r"test_10class\.tsv has labels the training file lacks: '1', '2'"):
        make_splits(train, read_table(DATA / "movie_ratings/test_10class.tsv"))


def test_stratified_split_keeps_proportions_and_is_reproducible() -> None:
    train = read_table(DATA / "movie_ratings/train_10class.tsv")
    splits = make_splits(train, test_size=0.1, seed=7)
    assert splits.test_source == "split"
    assert splits.label_names == [str(rating) for rating in range(1, 11)]
    assert Counter(splits.test_labels) == {i: 2 for i in range(10)}
    # Validation: 10% of the 180 rows left (18), stratified, so no class has more than 2 and every class one.
    assert len(splits.valid_labels) == 18 and set(splits.valid_labels) == set(range(10))
    assert max(Counter(splits.valid_labels).values()) == 2
    assert len(splits.train_labels) == 162
    assert sorted(splits.train_texts + splits.valid_texts + splits.test_texts) == sorted(train.texts)
    assert make_splits(train, test_size=0.1, seed=7) == splits
    assert make_splits(train, test_size=0.1, seed=8).test_texts != splits.test_texts


# label_order


def test_label_order_numeric() -> None:
    assert label_order(["10", "2", "1", "2", "9"]) == ["1", "2", "9", "10"]
    assert label_order(["-1", "0", "1.5", "1"]) == ["-1", "0", "1", "1.5"]


def test_label_order_strings() -> None:
    assert label_order(["중립", "긍정", "부정", "긍정"]) == ["긍정", "부정", "중립"]
    assert label_order(["10", "2", "b"]) == ["10", "2", "b"]
    assert label_order(["nan", "1"]) == ["1", "nan"]


# Formats, encodings and column detection


def test_cp949_file(tmp_path: Path) -> None:
    rows = [
        ("이 영화 정말 최고예요", "긍정"),
        ("시간 낭비, 별로", "부정"),
        ("그냥 그래요", "중립"),
        ("감동적", "긍정"),
    ]
    path = write(tmp_path, "excel.tsv", table(rows), encoding="cp949")
    with pytest.raises(UnicodeDecodeError):
        path.read_bytes().decode("utf-8")
    data = read_table(path)
    assert data.encoding == "cp949"
    assert list(zip(data.texts, data.labels, strict=True)) == rows


def test_utf8_bom_file(tmp_path: Path) -> None:
    rows = [("좋아요", "1"), ("싫어요", "0"), ("최고", "1")]
    data = read_table(write(tmp_path, "bom.tsv", table(rows), encoding="utf-8-sig"))
    assert data.encoding == "utf-8-sig"
    assert data.columns == ["document", "label"]
    assert data.texts == ["좋아요", "싫어요", "최고"]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be"])
def test_utf16_file_excel_unicode_text(tmp_path: Path, encoding: str) -> None:
    """Excel's "Unicode Text" export: UTF-16 with a byte order mark, tab-separated."""
    rows = [("좋아요", "1"), ("싫어요", "0"), ("최고", "1")]
    content = table(rows).encode(encoding)
    if encoding == "utf-16-be":  # Python writes the BOM only for plain "utf-16"
        content = b"\xfe\xff" + content
    data = read_table(write(tmp_path, "unicode.txt", content))
    assert (data.encoding, data.separator) == ("utf-16", "\t")
    assert list(zip(data.texts, data.labels, strict=True)) == rows


def test_other_column_names_and_string_labels(tmp_path: Path) -> None:
    content = '리뷰,점수\n연기가 훌륭하다,좋음\n지루했다,나쁨\n"배우가 ""최고"", 정말",좋음\n별로다,나쁨\n'
    data = read_table(write(tmp_path, "reviews.csv", content))
    assert (data.text_col, data.label_col, data.separator) == ("리뷰", "점수", ",")
    assert data.texts[2] == '배우가 "최고", 정말'
    assert data.class_counts() == {"나쁨": 2, "좋음": 2}


def test_columns_found_by_content(tmp_path: Path) -> None:
    rows = "\n".join(f"{i}\t{'긴 문장 ' * (i % 3 + 1)}{i}\t{'ab'[i % 2]}\t{i % 3}" for i in range(12))
    data = read_table(write(tmp_path, "odd.tsv", f"번호\t글\t메모\t등급\n{rows}\n"))
    assert (data.text_col, data.label_col) == ("글", "등급")


def test_headerless_tsv(tmp_path: Path) -> None:
    rows = [("재미있어요", "1"), ("지루해요", "0"), ("또 보고 싶다", "1"), ("최악", "0")]
    data = read_table(write(tmp_path, "plain.tsv", table(rows[1:], header="재미있어요\t1")))
    assert data.columns == ["column 1", "column 2"]
    assert (data.text_col, data.label_col) == ("column 1", "column 2")
    assert data.rows_read == 4
    assert list(zip(data.texts, data.labels, strict=True)) == rows
    assert data.head.iloc[0].tolist() == ["재미있어요", "1"]


def test_headerless_tsv_with_string_labels_and_explicit_generic_names(tmp_path: Path) -> None:
    rows = [("좋은 영화", "긍정"), ("나쁜 영화", "부정"), ("멋진 배우", "긍정"), ("엉성한 각본", "부정")]
    path = write(tmp_path, "plain.tsv", table(rows[1:], header="좋은 영화\t긍정"))
    assert read_table(path).class_counts() == {"긍정": 2, "부정": 2}
    data = read_table(path, text_col="column 1", label_col="Column 2")
    assert (data.text_col, data.label_col, data.rows_read) == ("column 1", "column 2", 4)


def test_txt_with_tabs(tmp_path: Path) -> None:
    content = "id\tdocument\tlabel\n1\t좋다\t1\n2\t나쁘다\t0\n3\t괜찮다\t1\n"
    data = read_table(write(tmp_path, "reviews.txt", content))
    assert (data.text_col, data.label_col, data.separator) == ("document", "label", "\t")
    assert data.texts == ["좋다", "나쁘다", "괜찮다"]


@pytest.mark.parametrize("separator", [";", "|"])
def test_semicolon_and_pipe(tmp_path: Path, separator: str) -> None:
    content = f"text{separator}label\r\n좋다{separator}a\r\n나쁘다{separator}b\r\n"
    data = read_table(write(tmp_path, "data.csv", content))
    assert data.separator == separator
    assert data.class_counts() == {"a": 1, "b": 1}


def test_blank_and_nan_labels_are_dropped_and_counted(tmp_path: Path) -> None:
    rows = [("a", "1"), ("b", "   "), ("c", "nan"), ("d", "NaN"), ("e", "None"), ("  ", "1"), ("f", "null")]
    rows += [("g", "0"), ("h", " 0 ")]
    data = read_table(write(tmp_path, "gaps.tsv", table(rows)))
    assert data.rows_read == 9
    assert data.dropped == {DROP_EMPTY_TEXT: 1, DROP_EMPTY_LABEL: 5}
    assert data.dropped_reasons("en") == {"empty text": 1, "empty label": 5} == data.report()["dropped"]
    assert data.dropped_reasons("ko") == {"빈 텍스트": 1, "빈 라벨": 5}
    assert data.texts == ["a", "g", "h"]
    assert data.class_counts() == {"0": 2, "1": 1}


def test_lowercase_none_is_a_real_class(tmp_path: Path) -> None:
    data = read_table(write(tmp_path, "hate.tsv", table([("a", "none"), ("b", "hate"), ("c", "none")])))
    assert data.class_counts() == {"hate": 1, "none": 2}
    assert data.dropped == {}


# Error paths


@pytest.mark.parametrize("content", [b"", b"  \n\n\t\n", b"\xef\xbb\xbf\n"])
def test_empty_file(tmp_path: Path, content: bytes) -> None:
    assert "is empty" in read_error(write(tmp_path, "train.tsv", content))


def test_header_only(tmp_path: Path) -> None:
    message = read_error(write(tmp_path, "train.tsv", "document\tlabel\n"))
    assert message == "train.tsv has a header but no data rows."


@pytest.mark.parametrize(
    ("content", "kind"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(40), "a PNG image"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "a JPEG image"),
        (b"GIF89a\x01\x00", "a GIF image"),
        (b"%PDF-1.7\n", "a PDF document"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(100), "an Excel (.xls) workbook"),
        (b"document\tlabel\n\x00\x01\x02\tx\n", "a binary file"),
        ("document\tlabel\n좋다\t1\n".encode("utf-16-le"), "a binary file"),  # UTF-16 without its BOM
    ],
)
def test_binary_files(tmp_path: Path, content: bytes, kind: str) -> None:
    message = read_error(write(tmp_path, "train.tsv", content))
    assert f"looks like {kind}" in message
    assert "not a text table" in message


def test_xlsx_renamed_csv(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    with zipfile.ZipFile(path, "w") as workbook:
        workbook.writestr("[Content_Types].xml", "<Types/>")
        workbook.writestr("xl/workbook.xml", "<workbook/>")
    assert path.read_bytes().startswith(b"PK\x03\x04")
    message = read_error(path)
    assert message.startswith("train.csv looks like an Excel workbook, not a text table")
    assert "CSV (UTF-8)" in message


def test_undecodable_bytes(tmp_path: Path) -> None:
    content = "text,label\ncafé crème,1\nüber,0\n".encode("latin-1") + b"\xff\xfe\x80\n"
    message = read_error(write(tmp_path, "latin.csv", content))
    assert "neither UTF-8 nor CP949/EUC-KR" in message


def test_single_column(tmp_path: Path) -> None:
    assert "single column" in read_error(write(tmp_path, "one.tsv", "document\n좋다\n나쁘다\n"))


def test_ragged_row(tmp_path: Path) -> None:
    content = "id\tdocument\tlabel\n1\t좋다\t1\n2\t나쁘다\t0\n3\t그냥\t\t1\n"
    message = read_error(write(tmp_path, "train.tsv", content))
    assert message == (
        "train.tsv line 4 has 4 fields but the header has 3: check for stray tab characters in that row."
    )


def test_unclosed_quote(tmp_path: Path) -> None:
    content = 'document,label\n좋다,1\n"나쁘다,0\n그냥,1\n'
    assert "double quote that is never closed" in read_error(write(tmp_path, "train.csv", content))


def test_single_class(tmp_path: Path) -> None:
    message = read_error(write(tmp_path, "train.tsv", table([("a", "1"), ("b", "1 "), ("c", "")])))
    assert "only one class ('1')" in message
    assert "'label'" in message


def test_all_labels_empty(tmp_path: Path) -> None:
    message = read_error(write(tmp_path, "train.tsv", table([("a", ""), ("b", "nan"), ("c", " ")])))
    assert "no rows with both a text" in message
    assert "'label'" in message


def test_unknown_explicit_column(tmp_path: Path) -> None:
    path = write(tmp_path, "train.tsv", table([("a", "1"), ("b", "0")]))
    message = read_error(path, label_col="score")
    assert message == "train.tsv has no column 'score'; its columns are 'document', 'label'."
    assert "'text'" in read_error(path, text_col="text")


def test_undetectable_columns(tmp_path: Path) -> None:
    content = "a\tb\n" + "".join(f"{i}\t{i * 2}\n" for i in range(10))
    message = read_error(write(tmp_path, "numbers.tsv", content))
    assert "no column that looks like the text column" in message
    assert "'a', 'b'" in message


def test_file_over_size_limit(tmp_path: Path) -> None:
    path = write(tmp_path, "big.tsv", "document\tlabel\n" + "가나다라마바사\t1\n" * 48_000)
    message = read_error(path, limits=Limits(max_file_mb=1))
    assert "1.1 MB" in message
    assert "1 MB limit" in message
    assert "KOBERT_DEMO_MAX_FILE_MB" in message


def test_too_many_rows(tmp_path: Path) -> None:
    path = write(tmp_path, "train.tsv", table([(f"text {i}", str(i % 2)) for i in range(5)]))
    message = read_error(path, limits=Limits(max_rows=3))
    assert "5 data rows" in message
    assert "limit of 3" in message
    assert "KOBERT_DEMO_MAX_ROWS" in message
    assert read_table(path, limits=Limits(max_rows=5)).rows_read == 5


def test_overlong_text(tmp_path: Path) -> None:
    path = write(tmp_path, "train.tsv", table([("short", "1"), ("short", "0"), ("x" * 11, "1")]))
    message = read_error(path, limits=Limits(max_text_chars=10))
    assert "line 4" in message
    assert "11 characters" in message
    assert "limit of 10" in message
    assert "'document'" in message


# Splits


def test_split_rejects_class_with_one_row() -> None:
    train = labeled(["a"] * 5 + ["b"] * 5 + ["c"])
    with pytest.raises(DataError, match=r"train\.tsv .*smallest class 'c' has 1 rows.*test file"):
        make_splits(train)


def test_split_rejects_fewer_test_rows_than_classes() -> None:
    train = labeled([str(i) for i in range(5)] * 2)
    with pytest.raises(DataError, match=r"train\.tsv .*5 classes"):
        make_splits(train, test_size=0.1)
    assert len(make_splits(train, test_size=0.5, valid=labeled(["0", "1"], name="valid.tsv")).test_texts) == 5


def test_split_test_size_range() -> None:
    train = labeled(["a", "b"] * 10)
    for test_size in (0, 1, 1.5, -0.1):
        with pytest.raises(ValueError, match="test_size"):
            make_splits(train, test_size=test_size)


def test_test_file_with_unknown_labels() -> None:
    train, test = labeled(["긍정", "부정"] * 3), labeled(["긍정", "중립", "7"], name="test.tsv")
    with pytest.raises(DataError) as caught:
        make_splits(train, test)
    assert str(caught.value) == "test.tsv has labels the training file lacks: '7', '중립'."


def test_test_file_ids_follow_training_label_order() -> None:
    splits = make_splits(
        labeled(["10", "2", "1", "2"]), labeled(["2", "10"], name="test.tsv"), valid=labeled(["1"], name="v.tsv")
    )
    assert splits.label_names == ["1", "2", "10"]
    assert splits.train_labels == [2, 1, 0, 1]
    assert splits.test_labels == [1, 2]
    assert splits.test_source == "file"
    assert (splits.valid_labels, splits.valid_source) == ([0], "file")


def test_label_checks_name_every_unknown_label_up_to_ten() -> None:
    train = labeled(["긍정", "부정"] * 3)
    check_test_labels(train, labeled(["부정", "긍정"], name="test.tsv"))  # all known: nothing raised
    many = labeled([str(i) for i in range(12)], name="test.tsv")
    with pytest.raises(DataError) as caught:
        check_test_labels(train, many)
    assert str(caught.value) == (
        "test.tsv has labels the training file lacks: '0', '1', '2', '3', '4', '5', '6', '7', '8', '9' (+2)."
    )
    with pytest.raises(DataError) as caught:
        check_model_labels(labeled(["긍정", "중립"], name="eval.tsv"), ["긍정", "부정"])
    assert str(caught.value) == "eval.tsv has labels the model was not trained on: '중립' (it knows '긍정', '부정')."
    assert "학습 파일에 없는 라벨" in DataError("data_unknown_test_labels", name="t", labels="'x'").text("ko")


# Validation data (#25)


def test_validation_file_is_used_as_given_and_test_data_split_as_before() -> None:
    train = read_table(DATA / "movie_ratings/train_10class.tsv")
    valid = labeled(["3", "10", "1"], name="valid.tsv")
    splits = make_splits(train, test_size=0.1, seed=7, valid=valid)
    assert (splits.valid_texts, splits.valid_source) == (valid.texts, "file")
    assert splits.valid_labels == [2, 9, 0]
    # The test split and the training rows are what they were before validation existed: all of the rest trains.
    before = make_splits(train, test_size=0.1, seed=7)
    assert splits.test_texts == before.test_texts
    assert sorted(splits.train_texts) == sorted(before.train_texts + before.valid_texts)


def test_validation_split_is_stratified_seeded_and_apart_from_test() -> None:
    train = labeled(["a"] * 40 + ["b"] * 20, name="train.tsv")
    splits = make_splits(train, test_size=0.1, seed=1, validation_size=0.2)
    assert Counter(splits.test_labels) == {0: 4, 1: 2}
    assert Counter(splits.valid_labels) == {0: 8, 1: 3} or Counter(splits.valid_labels) == {0: 7, 1: 4}
    assert len(splits.train_texts) + len(splits.valid_texts) + len(splits.test_texts) == 60
    assert make_splits(train, test_size=0.1, seed=1, validation_size=0.2) == splits
    assert make_splits(train, test_size=0.1, seed=2, validation_size=0.2).valid_texts != splits.valid_texts
    # A test file leaves the whole training file to split for validation.
    with_test = make_splits(train, labeled(["a", "b"], name="test.tsv"), validation_size=0.25)
    assert Counter(with_test.valid_labels) == {0: 10, 1: 5} and len(with_test.train_texts) == 45


def test_validation_file_with_an_unknown_class_is_refused() -> None:
    train = labeled(["긍정", "부정"] * 3)
    with pytest.raises(DataError) as caught:
        make_splits(train, labeled(["긍정"], name="test.tsv"), valid=labeled(["긍정", "중립"], name="valid.tsv"))
    assert str(caught.value) == (
        "valid.tsv has labels the training file lacks: '중립'; the validation data may only hold the training classes."
    )
    assert "valid.tsv" in caught.value.text("ko") and "'중립'" in caught.value.text("ko")


def test_a_class_too_small_for_the_validation_split_is_named() -> None:
    """One row of 'c' cannot be both validated and trained on; after a test share, what is left counts."""
    train = labeled(["a"] * 20 + ["b"] * 20 + ["c"])
    with pytest.raises(DataError) as caught:
        make_splits(train, labeled(["a", "b"], name="test.tsv"))
    message = str(caught.value)
    assert message == (
        "train.tsv is too small to hold out a stratified 0.1 validation share for 3 classes (class 'c' has only 1 "
        "rows for training and validation): add rows or give a validation file."
    )
    assert make_splits(train, labeled(["a", "b"], name="test.tsv"), valid=labeled(["c"], name="v.tsv")).valid_texts
    # Four rows of 'c' where the test share takes three of them (half of the file) leave one: named too.
    halves = labeled(["a"] * 4 + ["b"] * 4 + ["c"] * 6)
    splits = make_splits(halves, test_size=0.5, valid=labeled(["c"], name="v.tsv"))
    assert Counter(splits.train_labels)[2] == 3
    with pytest.raises(DataError, match="validation share"):
        make_splits(labeled(["a"] * 4 + ["b"] * 4 + ["c"] * 3), test_size=0.5)
    assert "'c'" in caught.value.text("ko")
    with pytest.raises(ValueError, match="validation_size"):
        make_splits(labeled(["a", "b"] * 10), validation_size=0)
