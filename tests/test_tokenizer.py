"""Tests for engine.tokenizer: the published KoBERT id vectors, both schemes, padding, truncation, saving."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import KOBERT_FILES, VECTORS, sample_rows

from kobert_demo.engine.tiny import train_tiny_tokenizer
from kobert_demo.engine.tokenizer import SETTINGS_FILE, KoBertTokenizer, basic_split

SENTENCES = [
    "아 더빙.. 진짜 짜증나네요 목소리",
    "흠...포스터보고 초딩영화줄....오버연기조차 가볍지 않구나",
    "한국어 모델을 공유합니다.",
    "굳 ㅋ",
    "",
    "  여러   칸의   공백  ",
]


@pytest.fixture(scope="module")
def native_tokenizer() -> KoBertTokenizer:
    """An SP model whose own ids are KoBERT's ([PAD]=1 [CLS]=2 [SEP]=3), learnt from NSMC rows."""
    texts = [text for text, _ in sample_rows("nsmc/train.tsv", 200)]
    return train_tiny_tokenizer(texts, "gluonnlp", 32)


# Published vectors (vocab scheme)


def test_vectors_cover_both_modes() -> None:
    assert {v["mode"] for v in VECTORS} == {"gluonnlp", "whole"}


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: f"{v['mode']}-{v['text']}")
def test_published_vectors(vector: dict) -> None:
    tokenizer = KoBertTokenizer.from_files(KOBERT_FILES.spm, KOBERT_FILES.vocab, mode=vector["mode"])
    encoded = tokenizer.encode(vector["text"])
    assert encoded.ids == vector["ids"]
    assert tokenizer.encode_batch([vector["text"]]) == [vector["ids"]]
    assert len(encoded.pieces) == len(encoded.ids)
    assert encoded.pieces[0] == "[CLS]" and encoded.pieces[-1] == "[SEP]"
    assert not any(encoded.unknown)


def test_vocab_scheme_ids(kobert_tokenizer: KoBertTokenizer) -> None:
    t = kobert_tokenizer
    assert (t.unk_id, t.pad_id, t.cls_id, t.sep_id) == (0, 1, 2, 3)
    assert t.vocab_size == 8002
    assert t.idx_to_token[:5] == ["[UNK]", "[PAD]", "[CLS]", "[SEP]", "[MASK]"]
    # The SP model's own id of a piece is not its KoBERT id: pieces go through the vocab JSON.
    piece = "▁한국"
    assert t.sp.piece_to_id(piece) != t.idx_to_token.index(piece)
    assert t.encode("한국").ids == [2, t.idx_to_token.index(piece), 3]


def test_modes_differ_on_punctuation(kobert_tokenizer: KoBertTokenizer) -> None:
    whole = KoBertTokenizer.from_files(KOBERT_FILES.spm, KOBERT_FILES.vocab, mode="whole")
    text = "더빙.. 진짜"
    assert kobert_tokenizer.encode(text).pieces.count(".") == 2
    assert kobert_tokenizer.encode(text).ids != whole.encode(text).ids


def test_whole_mode_collapses_whitespace() -> None:
    whole = KoBertTokenizer.from_files(KOBERT_FILES.spm, KOBERT_FILES.vocab, mode="whole")
    assert whole.encode("  한국어   모델을\t공유합니다.  ").ids == whole.encode("한국어 모델을 공유합니다.").ids


def test_unknown_pieces_are_flagged(kobert_tokenizer: KoBertTokenizer) -> None:
    encoded = kobert_tokenizer.encode("☃ 눈사람 ✈")
    assert encoded.ids.count(kobert_tokenizer.unk_id) == 2
    assert encoded.unknown == [i == 0 for i in encoded.ids]
    assert [p for p, u in zip(encoded.pieces, encoded.unknown) if u] == ["[UNK]", "[UNK]"]
    assert not any(kobert_tokenizer.encode("눈사람").unknown)


# Native scheme


def test_native_scheme_special_ids(native_tokenizer: KoBertTokenizer) -> None:
    t = native_tokenizer
    assert t._sp_to_kobert is None  # ids are the SP model's own
    assert (t.unk_id, t.pad_id, t.cls_id, t.sep_id) == (0, 1, 2, 3)
    assert t.idx_to_token[:5] == ["[UNK]", "[PAD]", "[CLS]", "[SEP]", "[MASK]"]
    assert t.vocab_size == t.sp.get_piece_size()
    for text in SENTENCES:
        ids = t.encode(text).ids
        assert ids[0] == 2 and ids[-1] == 3
        assert 1 not in ids
        assert ids[1:-1] == [i for w in basic_split(text) for i in t.sp.encode(w)][:30]


def test_native_scheme_unknown(native_tokenizer: KoBertTokenizer) -> None:
    encoded = native_tokenizer.encode("영화 ✈")
    assert encoded.unknown[-2] and encoded.ids[-2] == 0
    assert sum(encoded.unknown) == 1


def test_native_whole_mode(native_tokenizer: KoBertTokenizer) -> None:
    texts = [text for text, _ in sample_rows("nsmc/train.tsv", 50)]
    whole = train_tiny_tokenizer(texts, "whole", 16)
    assert whole.mode == "whole" and whole.max_len == 16
    ids = whole.encode("정말 재미있는 영화... 최고").ids
    assert ids[0] == 2 and ids[-1] == 3 and len(ids) <= 16
    assert ids[1:-1] == whole.sp.encode("정말 재미있는 영화... 최고")[:14]


def test_sp_model_without_special_pieces_needs_vocab() -> None:
    with pytest.raises(ValueError, match=r"no \[PAD\], \[CLS\], \[SEP\] pieces.*vocab JSON"):
        KoBertTokenizer.from_files(KOBERT_FILES.spm)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="tokenizer mode"):
        KoBertTokenizer.from_files(KOBERT_FILES.spm, KOBERT_FILES.vocab, mode="bpe")
    with pytest.raises(ValueError, match="max_len must be at least 3"):
        KoBertTokenizer.from_files(KOBERT_FILES.spm, KOBERT_FILES.vocab, max_len=2)


# Padding and truncation


def test_pad_to_longest_in_batch(kobert_tokenizer: KoBertTokenizer) -> None:
    batch = [[2, 10, 11, 3], [2, 10, 3], [2, 10, 11, 12, 13, 3]]
    out = kobert_tokenizer.pad(batch)
    assert set(out) == {"input_ids", "attention_mask", "token_type_ids"}
    assert out["input_ids"].shape == (3, 6)  # the longest row, not max_len (64)
    assert out["input_ids"].tolist() == [
        [2, 10, 11, 3, 1, 1],
        [2, 10, 3, 1, 1, 1],
        [2, 10, 11, 12, 13, 3],
    ]
    assert out["attention_mask"].tolist() == [[1, 1, 1, 1, 0, 0], [1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1]]
    assert out["token_type_ids"].tolist() == [[0] * 6] * 3
    assert all(t.dtype == torch.long for t in out.values())


def test_pad_to_a_multiple(kobert_tokenizer: KoBertTokenizer) -> None:
    batch = [[2, 10, 11, 3], [2, 10, 3]]
    out = kobert_tokenizer.pad(batch, multiple=8)
    assert out["input_ids"].tolist() == [[2, 10, 11, 3] + [1] * 4, [2, 10, 3] + [1] * 5]
    assert out["attention_mask"].sum(1).tolist() == [4, 3]
    assert kobert_tokenizer.pad([[2] * 16], multiple=8)["input_ids"].shape == (1, 16)  # already a multiple


def test_call_pads_encoded_texts(kobert_tokenizer: KoBertTokenizer) -> None:
    texts = ["굳 ㅋ", "아 더빙.. 진짜 짜증나네요 목소리"]
    out = kobert_tokenizer(texts)
    ids = kobert_tokenizer.encode_batch(texts)
    assert out["input_ids"].shape == (2, max(map(len, ids)))
    for row, real in zip(out["input_ids"].tolist(), ids):
        assert row[: len(real)] == real
        assert set(row[len(real) :]) <= {kobert_tokenizer.pad_id}
    assert out["attention_mask"].sum(1).tolist() == [len(i) for i in ids]


def test_truncation_keeps_cls_and_sep(kobert_tokenizer: KoBertTokenizer) -> None:
    text = "흠...포스터보고 초딩영화줄....오버연기조차 가볍지 않구나 " * 5
    full = kobert_tokenizer.encode_batch([text], max_len=512)[0]
    assert len(full) > 20
    for max_len in (8, 20):
        ids = kobert_tokenizer.encode(text, max_len=max_len).ids
        assert len(ids) == max_len
        assert ids == [2, *full[1 : max_len - 1], 3]
    short = KoBertTokenizer.from_files(KOBERT_FILES.spm, KOBERT_FILES.vocab, max_len=10)
    assert short.encode(text).ids == [2, *full[1:9], 3]
    assert short.encode("굳 ㅋ").ids == [2, 517, 5515, 517, 492, 3]  # short texts are not padded


def test_basic_split() -> None:
    assert basic_split("안녕,하세요!  반가워요...") == ["안녕", ",", "하세요", "!", "반가워요", ".", ".", "."]
    assert basic_split("$5+3=8 a|b~c") == ["$", "5", "+", "3", "=", "8", "a", "|", "b", "~", "c"]
    assert basic_split("好吃 영화") == ["好", "吃", "영화"]  # CJK ideographs are words of their own
    assert basic_split("탭\t줄\n바꿈\r\n") == ["탭", "줄", "바꿈"]
    assert basic_split("제\x00어\ufffd문자") == ["제어문자"]
    assert basic_split("「따옴표」 “인용”") == ["「", "따옴표", "」", "“", "인용", "”"]
    assert basic_split("   ") == []


# Saving and loading


def test_save_and_from_folder_round_trip(kobert_tokenizer: KoBertTokenizer, tmp_path: Path) -> None:
    whole = KoBertTokenizer.from_files(KOBERT_FILES.spm, KOBERT_FILES.vocab, mode="whole", max_len=32)
    whole.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [SETTINGS_FILE, KOBERT_FILES.spm.name, KOBERT_FILES.vocab.name]
    )
    loaded = KoBertTokenizer.from_folder(tmp_path)
    assert (loaded.mode, loaded.max_len, loaded.vocab_size) == ("whole", 32, 8002)
    assert loaded.encode_batch(SENTENCES) == whole.encode_batch(SENTENCES)
    assert loaded.encode_batch(SENTENCES) != kobert_tokenizer.encode_batch(SENTENCES)
    # Arguments override the saved settings.
    gluon = KoBertTokenizer.from_folder(tmp_path, mode="gluonnlp", max_len=64)
    assert gluon.encode_batch(SENTENCES) == kobert_tokenizer.encode_batch(SENTENCES)


def test_native_round_trip(native_tokenizer: KoBertTokenizer, tmp_path: Path) -> None:
    native_tokenizer.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([SETTINGS_FILE, "tiny_spm.model"])
    loaded = KoBertTokenizer.from_folder(tmp_path)
    assert loaded.vocab is None
    assert loaded.encode_batch(SENTENCES) == native_tokenizer.encode_batch(SENTENCES)
    assert (loaded.mode, loaded.max_len) == ("gluonnlp", 32)


def test_settings_file_cannot_point_outside_its_folder(kobert_tokenizer: KoBertTokenizer, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    kobert_tokenizer.save(folder)
    settings = json.loads((folder / SETTINGS_FILE).read_text(encoding="utf-8"))
    settings["spm_file"] = str(KOBERT_FILES.spm)  # exists, but outside the folder
    settings["vocab_file"] = str(KOBERT_FILES.vocab)
    (folder / SETTINGS_FILE).write_text(json.dumps(settings), encoding="utf-8")
    assert KoBertTokenizer.from_folder(folder).encode_batch(SENTENCES) == kobert_tokenizer.encode_batch(SENTENCES)
    (folder / KOBERT_FILES.spm.name).unlink()
    with pytest.raises(FileNotFoundError):
        KoBertTokenizer.from_folder(folder)


def test_from_folder_without_settings_finds_model_and_vocab(tmp_path: Path) -> None:
    shutil.copy(KOBERT_FILES.spm, tmp_path)
    shutil.copy(KOBERT_FILES.vocab, tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "bert"}', encoding="utf-8")
    (tmp_path / "broken.json").write_text("{not json", encoding="utf-8")
    tokenizer = KoBertTokenizer.from_folder(tmp_path, mode="whole")
    for vector in VECTORS:
        if vector["mode"] == "whole":
            assert tokenizer.encode(vector["text"]).ids == vector["ids"]


def test_from_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no SentencePiece model \(\*\.model file\)"):
        KoBertTokenizer.from_folder(tmp_path)
    shutil.copy(KOBERT_FILES.spm, tmp_path / "a.model")
    shutil.copy(KOBERT_FILES.spm, tmp_path / "b.model")
    with pytest.raises(FileNotFoundError, match=r"several SentencePiece models \(a\.model, b\.model\)"):
        KoBertTokenizer.from_folder(tmp_path)


def test_real_data_has_few_unknowns(kobert_tokenizer: KoBertTokenizer) -> None:
    texts = [text for text, _ in sample_rows("nsmc/test.tsv", 50)]
    ids = kobert_tokenizer.encode_batch(texts, max_len=512)
    tokens = sum(len(i) - 2 for i in ids)
    unknown = sum(i.count(0) for i in ids)
    assert unknown < 0.02 * tokens


# Which word of the text each piece came from (explanations sum pieces into words)


def _pieces_by_word(encoded, text: str) -> dict[str, str]:
    """Each word of text.split() -> its pieces joined, "▁" dropped."""
    joined: dict[int, str] = {}
    for piece, word in zip(encoded.pieces, encoded.words, strict=True):
        if word is not None:
            joined[word] = joined.get(word, "") + piece.replace("▁", "")
    return {text.split()[word]: pieces for word, pieces in joined.items()}


@pytest.mark.parametrize("mode", ["gluonnlp", "whole"])
def test_each_piece_belongs_to_the_word_it_came_from(mode: str) -> None:
    tokenizer = KoBertTokenizer.from_files(KOBERT_FILES.spm, KOBERT_FILES.vocab, mode=mode)
    text = "  배우들 연기는  좋은데,스토리가... 뻔하다 ^^"
    encoded = tokenizer.encode(text)
    assert encoded.words[0] is None and encoded.words[-1] is None  # [CLS] and [SEP] belong to no word
    assert _pieces_by_word(encoded, text) == {word: word for word in text.split()}


@pytest.mark.parametrize("mode", ["gluonnlp", "whole"])
def test_every_word_of_real_sentences_gets_its_pieces_in_order(mode: str) -> None:
    tokenizer = KoBertTokenizer.from_files(KOBERT_FILES.spm, KOBERT_FILES.vocab, mode=mode, max_len=512)
    for text, _ in sample_rows("nsmc/test.tsv", 300) + sample_rows("hate_speech/train.tsv", 100):
        encoded = tokenizer.encode(text)
        assert encoded.ids == tokenizer.encode_batch([text])[0], text  # one pass gives the ids encode_batch gives
        words = encoded.words[1:-1]
        assert words == sorted(words), text  # pieces come word after word
        assert set(words) == set(range(len(text.split()))), text  # every word has a piece, no other word does


def test_a_truncated_sentence_keeps_the_words_of_its_pieces() -> None:
    tokenizer = KoBertTokenizer.from_files(KOBERT_FILES.spm, KOBERT_FILES.vocab, max_len=6)
    encoded = tokenizer.encode("정말 재미있게 봤습니다 배우들의 연기가 최고")
    assert len(encoded.ids) == len(encoded.words) == 6
    assert encoded.words[1] == 0 and encoded.words[-2] >= 1 and encoded.words[-1] is None


def test_control_characters_join_what_they_separate_as_the_model_reads_it() -> None:
    # \x0b is whitespace to str.split() but a control character the basic split removes: "a\x0bb" is one chunk,
    # whose pieces go with the first word; the other word gets none.
    tokenizer = KoBertTokenizer.from_files(KOBERT_FILES.spm, KOBERT_FILES.vocab)
    encoded = tokenizer.encode("영화\x0b최고 좋다")
    assert encoded.ids == tokenizer.encode_batch(["영화\x0b최고 좋다"])[0]
    assert set(encoded.words[1:-1]) == {0, 2}
