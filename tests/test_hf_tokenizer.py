"""tokenizer.json for plain transformers: the very same ids as KoBertTokenizer, or none written."""

from __future__ import annotations

import random
import unicodedata
from pathlib import Path

import pytest
from conftest import DATA, native_kobert_proto

from kobert_demo.basics.data import read_table
from kobert_demo.engine import hf_tokenizer
from kobert_demo.engine.tokenizer import KoBertTokenizer

LONG = 100_000  # no truncation: compare every piece


def data_texts() -> list[str]:
    return [t for f in sorted([*DATA.glob("*/*.tsv"), *DATA.glob("*/*.csv")]) for t in read_table(f).texts]


def random_texts(count: int, seed: int = 0) -> list[str]:
    """Seeded mixes of Hangul, jamo, emoji, CJK, Latin, digits, odd spaces, punctuation, fullwidth and combining."""
    rng = random.Random(seed)
    pools = [
        [chr(c) for c in range(0xAC00, 0xD7A4)],  # syllables
        [chr(c) for c in range(0x3131, 0x318F)],  # compatibility jamo
        [chr(c) for c in range(0x1100, 0x11FF)],  # conjoining jamo
        list("😂👍🏽❤️🇰🇷👨‍👩‍👧🙏✨"),
        [chr(c) for c in range(0x4E00, 0x4F00)],
        list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"),
        list(" \t\u3000\u00a0\u2009\u200b\n"),
        list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~…‥·「」『』〈〉《》【】“”‘’"),
        [chr(c) for c in range(0xFF01, 0xFF5F)] + [chr(c) for c in range(0xFF61, 0xFFDC)],
        ["\u0301", "\u0300", "\u0308", "\u0323", "\u302e", "\u3099"],
        list("㈜①②⑩㍿㎏㏂№™℃Ⅳ㉠㉮ⓐ"),
        ["[CLS]", "[UNK]", "[SEP]", "[MASK]", "[PAD]"],
    ]
    texts = []
    for _ in range(count):
        texts.append("".join(rng.choice(rng.choice(pools)) for _ in range(rng.randint(1, 40))))
    return texts


@pytest.fixture(scope="module")
def tokenizers() -> dict[str, KoBertTokenizer]:
    """The vocab scheme (original files), the native scheme as on the hub, and a tiny trained native one."""
    from kobert_demo.engine.tiny import train_tiny_tokenizer

    train = read_table(DATA / "nsmc" / "train.tsv").texts
    return {
        "vocab": KoBertTokenizer.original("gluonnlp", LONG),
        "native": KoBertTokenizer(native_kobert_proto(), None, "gluonnlp", LONG),
        "tiny": train_tiny_tokenizer(train, "gluonnlp", LONG),
    }


@pytest.fixture(scope="module")
def built(tokenizers):
    return {name: hf_tokenizer.build(tok) for name, tok in tokenizers.items()}


def test_native_kobert_proto_gives_kobert_ids():
    texts = data_texts()[:300]
    native = KoBertTokenizer(native_kobert_proto(), None, "gluonnlp", LONG)
    assert native.encode_batch(texts) == KoBertTokenizer.original("gluonnlp", LONG).encode_batch(texts)


# SP adds piece scores in float32, tokenizers in float64: where two segmentations of a word score the same (the
# tiny model's "ᄏ" + "ᄏ"*8 vs "ᄏ"*8 + "ᄏ"), rounding decides which one SP takes. tiny's scores are rounded so
# that the sums are exact in both (model.TINY_SCORE_STEP); KoBERT's own model shows no such tie on our data.
SCHEMES = ["vocab", "native", "tiny"]


@pytest.mark.slow
@pytest.mark.parametrize("scheme", SCHEMES)
def test_same_ids_on_every_data_sentence(tokenizers, built, scheme):
    texts = data_texts()
    assert len(texts) > 2000
    assert hf_tokenizer.differences(tokenizers[scheme], built[scheme], texts) == []


@pytest.mark.parametrize("scheme", SCHEMES)
def test_same_ids_on_generated_sentences(tokenizers, built, scheme):
    texts = random_texts(3000, seed=11)
    assert hf_tokenizer.differences(tokenizers[scheme], built[scheme], texts) == []


@pytest.mark.slow
@pytest.mark.parametrize("scheme", ["vocab", "tiny"])
def test_same_ids_on_every_assigned_bmp_character(tokenizers, built, scheme):
    chars = [chr(c) for c in range(0x10000) if unicodedata.category(chr(c)) not in ("Cn", "Cs")]
    texts = [f"한국어{c}문장 {c}" for c in chars]
    assert len(texts) > 50_000
    assert hf_tokenizer.differences(tokenizers[scheme], built[scheme], texts) == []


def test_whole_mode_is_refused_and_nothing_written(tmp_path):
    reason = hf_tokenizer.save_for_transformers(KoBertTokenizer.original("whole"), tmp_path)
    assert "whole mode" in reason
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_self_check_catches_a_broken_builder(tmp_path, monkeypatch):
    real_build = hf_tokenizer.build

    def broken(tok):
        hf = real_build(tok)
        hf.normalizer = None  # no compatibility jamo / NFKC rewriting any more
        return hf

    monkeypatch.setattr(hf_tokenizer, "build", broken)
    monkeypatch.setattr(hf_tokenizer, "_BUILT", {})
    reason = hf_tokenizer.save_for_transformers(KoBertTokenizer.original("gluonnlp", 40), tmp_path)
    assert reason and "other ids" in reason
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def saved_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("hf")
    tok = KoBertTokenizer.original("gluonnlp", 24)
    tok.save(folder)
    assert hf_tokenizer.save_for_transformers(tok, folder) is None
    return folder


def test_files_do_not_confuse_our_loader(saved_folder):
    assert (saved_folder / "tokenizer.json").stat().st_size < 4_000_000
    (saved_folder / "kobert_tokenizer.json").rename(saved_folder / "settings.bak")
    try:
        tok = KoBertTokenizer.from_folder(saved_folder)  # the *.json glob must still find the gluonnlp vocab
    finally:
        (saved_folder / "settings.bak").rename(saved_folder / "kobert_tokenizer.json")
    assert tok.vocab is not None and tok.encode("안녕 ㅋㅋ").ids == KoBertTokenizer.original().encode("안녕 ㅋㅋ").ids


def test_auto_tokenizer_pads_and_truncates_like_ours(saved_folder):
    import torch
    from transformers import AutoTokenizer

    auto = AutoTokenizer.from_pretrained(saved_folder)
    ours = KoBertTokenizer.from_folder(saved_folder)
    texts = ["[CLS] 리뷰에 [UNK] 라고 씀 ㅋㅋ", "짧다", "아주 긴 리뷰 " * 30, "ㅠㅠ…… ㈜회사"]
    got = auto(texts, padding=True, truncation=True, return_tensors="pt")
    want = ours(texts)
    assert auto.model_max_length == 24
    for key in ("input_ids", "attention_mask", "token_type_ids"):
        assert torch.equal(got[key], want[key]), key


@pytest.mark.slow
def test_pipeline_probabilities_match_ours(trained_run, nsmc_test):
    from transformers import pipeline

    from kobert_demo.serving.predict import Predictor

    folder = trained_run.path / "model"
    assert (folder / "tokenizer.json").is_file()
    texts = list(nsmc_test.texts)
    # plain pipeline() does not truncate (see README): truncation=True makes it cut at model_max_length like ours.
    classify = pipeline("text-classification", model=str(folder), top_k=None, truncation=True)
    got = [{r["label"]: r["score"] for r in row} for row in classify(texts, batch_size=32)]
    predictor = Predictor.load(folder, backend="torch")
    want = predictor.predict_proba(texts)
    names = predictor.label_names
    worst = max(abs(g[n] - float(w[i])) for g, w in zip(got, want) for i, n in enumerate(names))
    assert worst < 0.01
