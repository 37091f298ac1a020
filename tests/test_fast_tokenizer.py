"""A hub model's own fast tokenizer (fast_tokenizer.py): special tokens, truncation, padding, unknown and byte-level
pieces, saving; and the tokenizers model.py refuses, each in one sentence without a server path."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import KOBERT_FILES, native_kobert_proto

from kobert_demo.basics.errors import BackboneError
from kobert_demo.engine.fast_tokenizer import FastTokenizer
from kobert_demo.engine.loading import load_backbone
from kobert_demo.engine.tokenizer import KoBertTokenizer
from kobert_demo.tools.hublike import train_tokenizer

LONG = "원작 소설을 먼저 읽었는데, 영화는 원작의 분위기를 잘 살리지 못한 것 같아 아쉽다. 그래도 배우들의 연기만큼은"
SHORT = "별로"


@pytest.fixture
def tokenizer(family_folder: Path) -> FastTokenizer:
    return FastTokenizer.from_folder(family_folder, max_len=12)


def test_first_and_last_tokens_survive_truncation(tokenizer: FastTokenizer) -> None:
    long, short = tokenizer.encode_batch([LONG, SHORT])
    assert len(long) == 12 and len(short) < 12
    for ids in (long, short):
        assert ids[0] == tokenizer.cls_id and ids[-1] == tokenizer.sep_id
        assert tokenizer.cls_id not in ids[1:-1] and tokenizer.sep_id not in ids[1:-1]
    assert len(tokenizer.encode_batch([LONG], 8)[0]) == 8  # a max_len given for the call wins
    assert tokenizer.encode(LONG).ids == long


def test_first_and_last_are_the_familys_own(family_folder: Path, tokenizer: FastTokenizer) -> None:
    first, last = tokenizer.encode(SHORT).pieces[0], tokenizer.encode(SHORT).pieces[-1]
    assert (first, last) == (("<s>", "</s>") if family_folder.name == "roberta" else ("[CLS]", "[SEP]"))


def test_padding_is_on_the_right(tokenizer: FastTokenizer) -> None:
    batch = tokenizer([LONG, SHORT])
    short = len(tokenizer.encode_batch([SHORT])[0])
    assert batch["input_ids"].shape == (2, 12)
    assert batch["attention_mask"][1].tolist() == [1] * short + [0] * (12 - short)
    assert batch["input_ids"][1, short:].eq(tokenizer.pad_id).all()
    assert batch["attention_mask"][0].all() and not batch["token_type_ids"].any()
    assert tokenizer.pad([[5, 6, 7]], multiple=16)["input_ids"].shape == (1, 16)


def test_unknown_pieces_are_flagged(family_folders) -> None:
    """WordPiece turns a character it never learnt into [UNK]; byte-level BPE has no unknown pieces."""
    text = "영화 ☃ 최고"
    wordpiece = FastTokenizer.from_folder(family_folders["bert"]).encode(text)
    assert wordpiece.unknown == [piece == "[UNK]" for piece in wordpiece.pieces]
    assert wordpiece.pieces.count("[UNK]") == 1
    byte_level = FastTokenizer.from_folder(family_folders["roberta"])
    assert byte_level.unk_id is not None and not any(byte_level.encode(text).unknown)


def test_byte_level_pieces_show_the_text_they_cover(family_folders) -> None:
    tokenizer = FastTokenizer.from_folder(family_folders["roberta"])
    text = "정말 재미있는 영화였어요 ㅋㅋ"
    encoded = tokenizer.encode(text)
    raw = tokenizer.hf.convert_ids_to_tokens(encoded.ids)
    assert any("Ġ" in piece or not piece.isprintable() or piece not in text for piece in raw[1:-1])  # byte symbols
    pieces = encoded.pieces[1:-1]
    assert all(piece and piece in text for piece in pieces)
    assert "".join(pieces) == text.replace(" ", "")


def test_saved_and_reloaded_keeps_max_len_and_ids(tokenizer: FastTokenizer, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer.save(tmp_path)
    again = FastTokenizer.from_folder(tmp_path)
    texts = [LONG, SHORT, LONG * 3]
    assert again.max_len == 12
    assert again.encode_batch(texts) == tokenizer.encode_batch(texts)
    plain = AutoTokenizer.from_pretrained(tmp_path)
    assert plain(texts, truncation=True)["input_ids"] == tokenizer.encode_batch(texts)


def test_unknown_share_measures_korean(family_folders) -> None:
    assert FastTokenizer.from_folder(family_folders["bert"]).unknown_share() < 0.1
    english = train_tokenizer("bert", ["the movie was great", "what a waste of time"] * 50, 200)
    assert FastTokenizer(english, 64).unknown_share() > 0.5


# Refusals: each one sentence naming the folder, not its path on this machine


def refusal(folder: Path, tmp_path: Path) -> str:
    with pytest.raises(BackboneError) as caught:
        load_backbone(str(folder), ["0", "1"], 0.1)
    message = str(caught.value)
    assert "\n" not in message and str(tmp_path) not in message and "Traceback" not in message
    assert caught.value.params["folder"] == folder.name and str(tmp_path) not in caught.value.text("ko")
    return message


def edit_config(folder: Path, **changes) -> None:
    path = folder / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text(encoding="utf-8")), **changes}), encoding="utf-8")


def copy_of(family_folders, family: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(family_folders[family], tmp_path / f"my-{family}"))


def test_no_tokenizer_refused(family_folders, tmp_path: Path) -> None:
    folder = copy_of(family_folders, "electra", tmp_path)
    (folder / "tokenizer.json").unlink()
    assert "has no tokenizer" in refusal(folder, tmp_path)


def test_an_english_wordpiece_is_not_korean(family_folders, tmp_path: Path) -> None:
    folder = copy_of(family_folders, "bert", tmp_path)
    train_tokenizer("bert", ["the movie was great", "what a waste of time"] * 50, 200).save_pretrained(str(folder))
    message = refusal(folder, tmp_path)
    assert "of everyday Korean into its unknown token" in message and "100%" in message


def test_a_roberta_tokenizer_padding_with_another_id_is_refused(family_folders, tmp_path: Path) -> None:
    folder = copy_of(family_folders, "roberta", tmp_path)
    edit_config(folder, pad_token_id=0)
    assert "pads with id 1 but the model's config says pad_token_id 0" in refusal(folder, tmp_path)


def test_more_tokens_than_the_model_refused(family_folders, tmp_path: Path) -> None:
    folder = copy_of(family_folders, "roberta", tmp_path)
    edit_config(folder, vocab_size=100)
    assert "tokens but the model only 100" in refusal(folder, tmp_path)


def test_a_corrupt_tokenizer_json_refused(family_folders, tmp_path: Path) -> None:
    folder = copy_of(family_folders, "bert", tmp_path)
    (folder / "tokenizer.json").write_text('{"version": "1.0", "model": {"type": "Nonsense"', encoding="utf-8")
    message = refusal(folder, tmp_path)
    assert message.startswith(f"cannot build the model's own tokenizer (tokenizer.json) from {folder.name}: ")


def test_a_kobert_style_hub_folder_keeps_kobert_s_tokenizer(tiny_kobert_folder: Path, tmp_path: Path) -> None:
    """skt/kobert-base-v1: spiece.model and a tokenizer_config.json declaring XLNetTokenizer, no tokenizer.json."""
    folder = Path(shutil.copytree(tiny_kobert_folder, tmp_path / "kobert-base-v1"))
    (folder / KOBERT_FILES.spm.name).unlink()
    (folder / KOBERT_FILES.vocab.name).unlink()
    (folder / "spiece.model").write_bytes(native_kobert_proto())
    config = {"tokenizer_class": "XLNetTokenizer", "bos_token": "[CLS]", "eos_token": "[SEP]", "pad_token": "[PAD]"}
    (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    tokenizer = load_backbone(str(folder), ["0", "1"], 0.1).tokenizer
    assert isinstance(tokenizer, KoBertTokenizer) and tokenizer.vocab_size == 8002
    original = KoBertTokenizer.original(max_len=tokenizer.max_len)
    assert tokenizer.encode_batch([LONG, SHORT]) == original.encode_batch([LONG, SHORT])


def test_a_batch_is_tensors(tokenizer: FastTokenizer) -> None:
    batch = tokenizer([SHORT])
    assert {key: value.dtype for key, value in batch.items()} == dict.fromkeys(batch, torch.long)


def test_each_token_belongs_to_the_word_it_came_from(family_folder: Path) -> None:
    tokenizer = FastTokenizer.from_folder(family_folder, max_len=512)
    for text in (LONG, SHORT, "  배우들 연기는  좋은데,스토리가... 뻔하다 ^^ 😀"):
        encoded = tokenizer.encode(text)
        assert encoded.words[0] is None and encoded.words[-1] is None
        words = encoded.words[1:-1]
        assert words == sorted(words) and set(words) == set(range(len(text.split()))), text
    encoded = tokenizer.encode("좋은데,스토리가 뻔하다")  # every piece of the first word, the comma's too, is word 0
    assert encoded.words.count(0) > 2 and encoded.words[1:-1] == sorted(encoded.words[1:-1])
