"""A hub model's own fast tokenizer (its `tokenizer.json`, or a `vocab.txt` transformers converts), through
`AutoTokenizer`, with the interface the rest of the app uses for KoBERT's tokenizer.

Special tokens (`[CLS] ... [SEP]` or `<s> ... </s>`) come from the tokenizer's own post-processor, truncation keeps
them, and padding is on the right, as BERT, RoBERTa and ELECTRA expect.
"""

from __future__ import annotations

from pathlib import Path

from kobert_demo.engine.tokenizer import Encoded, PadsOnTheRight, words_of_spans

# A few everyday sentences: a tokenizer that knows no Korean turns most of their pieces into its unknown token.
KOREAN_SAMPLE = [
    "정말 재미있는 영화였어요, 또 보고 싶네요",
    "배송이 빨라서 좋았어요",
    "내일 오전 9시에 회의실 예약해 줘",
    "정부는 다음 달부터 전기 요금을 인상한다고 밝혔다.",
]
MAX_UNKNOWN_SHARE = 0.5
# transformers' stand-in for "no limit" in model_max_length; such a tokenizer gets this length instead.
DEFAULT_MAX_LEN = 512


class FastTokenizer(PadsOnTheRight):
    """ids, pieces, padding and saving for a transformers fast tokenizer, as KoBertTokenizer offers them."""

    mode = None  # KoBERT's splitting modes (gluonnlp, whole) do not apply to other tokenizers

    def __init__(self, hf, max_len: int) -> None:
        if max_len < 3:
            raise ValueError(f"max_len must be at least 3 (a first token, one piece, a last token), not {max_len}")
        self.hf = hf
        self.max_len = max_len
        self.pad_id = hf.pad_token_id
        self.unk_id = hf.unk_token_id  # None for byte-level BPE, which has no unknown pieces
        self.cls_id = hf.cls_token_id if hf.cls_token_id is not None else hf.bos_token_id
        self.sep_id = hf.sep_token_id if hf.sep_token_id is not None else hf.eos_token_id
        self._special = set(hf.all_special_ids)
        decoder = hf.backend_tokenizer.decoder
        self._byte_level = type(decoder).__name__ == "ByteLevel"

    @classmethod
    def from_folder(cls, folder: str | Path, max_len: int | None = None) -> FastTokenizer:
        """folder's tokenizer; max_len default: the folder's model_max_length (ours: the length trained with)."""
        from transformers import AutoTokenizer

        hf = AutoTokenizer.from_pretrained(str(folder), use_fast=True)
        if not getattr(hf, "is_fast", False):
            raise ValueError("it has no fast tokenizer (tokenizer.json)")
        for name in ("pad", "cls/bos", "sep/eos"):
            ids = [getattr(hf, f"{part}_token_id") for part in name.split("/")]
            if all(i is None for i in ids):
                raise ValueError(f"its tokenizer has no {name} token")
        saved = hf.model_max_length if isinstance(hf.model_max_length, int) else DEFAULT_MAX_LEN
        return cls(hf, max_len or (saved if 3 <= saved <= 1_000_000 else DEFAULT_MAX_LEN))

    @property
    def vocab_size(self) -> int:
        return len(self.hf)

    def unknown_share(self, texts: list[str] = KOREAN_SAMPLE) -> float:
        """The share of the texts' pieces that are the unknown token (itself one of the special tokens)."""
        pieces = [
            i
            for ids in self.encode_batch(texts, self.max_len)
            for i in ids
            if i not in self._special or i == self.unk_id
        ]
        unknown = sum(i == self.unk_id for i in pieces) if self.unk_id is not None else 0
        return unknown / max(len(pieces), 1)

    def encode_batch(self, texts: list[str], max_len: int | None = None) -> list[list[int]]:
        """ids of each text with the tokenizer's special tokens, truncated to max_len. No padding."""
        return self.hf(
            texts, truncation=True, max_length=max_len or self.max_len, return_attention_mask=False,
            return_token_type_ids=False,
        )["input_ids"]  # fmt: skip

    def encode(self, text: str, max_len: int | None = None) -> Encoded:
        """ids and readable pieces: a byte-level piece is shown as the text it covers, not as its byte symbols."""
        encoding = self.hf(
            text, truncation=True, max_length=max_len or self.max_len, return_offsets_mapping=True,
            return_attention_mask=False, return_token_type_ids=False,
        )  # fmt: skip
        ids, offsets = encoding["input_ids"], encoding["offset_mapping"]
        pieces = self.hf.convert_ids_to_tokens(ids)
        if self._byte_level:
            pieces = [
                piece if i in self._special else text[start:end] for i, piece, (start, end) in zip(ids, pieces, offsets)
            ]
        spans = [None if i in self._special and i != self.unk_id else span for i, span in zip(ids, offsets)]
        words = words_of_spans(text, spans)
        return Encoded(ids=ids, pieces=pieces, unknown=[i == self.unk_id for i in ids], words=words)

    def save(self, folder: str | Path) -> None:
        """tokenizer.json + tokenizer_config.json, with model_max_length the length trained with, so that
        `pipeline(..., truncation=True)` cuts where training did."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.hf.model_max_length = self.max_len
        self.hf.save_pretrained(str(folder))


def has_fast_tokenizer(folder: Path) -> bool:
    """Whether folder holds a tokenizer AutoTokenizer builds a fast one from (tokenizer.json, a WordPiece vocab.txt,
    or a BPE vocab.json with merges.txt), rather than only a SentencePiece model (KoBERT's hub folder)."""
    if (folder / "tokenizer.json").is_file() or (folder / "vocab.txt").is_file():
        return True
    return (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file()
