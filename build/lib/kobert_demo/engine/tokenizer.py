"""KoBERT's own tokenization on plain sentencepiece: `[CLS] pieces [SEP]`, right padding, token types 0.

The hub repo declares XLNetTokenizer, which builds `X [SEP] [CLS]`, pads on the left and (in transformers 5)
turns Hangul into [UNK]. KoBERT was trained with the gluonnlp pipeline reproduced here instead.
"""

from __future__ import annotations

import json
import re
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from pathlib import Path

import regex
import sentencepiece as spm
import torch

from kobert_demo.basics.config import MODES

UNK, PAD, CLS, SEP, MASK = "[UNK]", "[PAD]", "[CLS]", "[SEP]", "[MASK]"
SETTINGS_FILE = "kobert_tokenizer.json"
# KoBERT's original SentencePiece model, gluonnlp vocabulary and published id vectors, carried with the package
# (Apache-2.0; provenance and sha256 in kobert_files/README.md).
ORIGINAL_FILES = Path(__file__).resolve().parents[1] / "kobert_files"
ORIGINAL_SPM = ORIGINAL_FILES / "tokenizer_78b3253a26.model"
ORIGINAL_VOCAB = ORIGINAL_FILES / "kobertvocab_f38b8a4d6d.json"
ORIGINAL_VECTORS = ORIGINAL_FILES / "test_vectors.json"

# BERT's basic tokenizer (gluonnlp BERTBasicTokenizer, lower=False): every punctuation character is a word of
# its own, CJK ideographs too; ASCII symbols such as $ + < = > ^ ` | ~ count as punctuation.
_PUNCT_OR_CJK = regex.compile(
    r"([\p{P}!-/:-@\[-`{-~]|[\u4E00-\u9FFF\u3400-\u4DBF\U00020000-\U0002A6DF\U0002A700-\U0002B73F"
    r"\U0002B740-\U0002B81F\U0002B820-\U0002CEAF\uF900-\uFAFF\U0002F800-\U0002FA1F])"
)
_CONTROL = regex.compile(r"[\x00\uFFFD]|[^\P{C}\t\n\r]")
_SPACE = regex.compile(r"\s+")
_WORD = re.compile(r"\S+")  # the words of str.split(): re's \s is str.isspace(), character for character


def basic_split(text: str) -> list[str]:
    """Split like gluonnlp's BERTBasicTokenizer(lower=False): clean, then whitespace and each punctuation mark."""
    text = _CONTROL.sub("", text)
    return _PUNCT_OR_CJK.sub(r" \1 ", text).split()


def words_of_spans(text: str, spans: list[tuple[int, int] | None]) -> list[int | None]:
    """For each token's character span in text, the index of the word of `text.split()` it lies in: the word of its
    first non-space character; a span of spaces alone (a byte-level or SentencePiece space) goes with the next word.
    None where a token has no span (special tokens)."""
    starts = [m.start() for m in _WORD.finditer(text)]
    words: list[int | None] = []
    for span in spans:
        if span is None or not starts:
            words.append(None)
            continue
        start, end = span
        first = next((i for i in range(start, end) if not text[i].isspace()), None)
        if first is None:
            words.append(min(bisect_left(starts, end), len(starts) - 1))
        else:
            words.append(max(bisect_right(starts, first) - 1, 0))
    return words


def pad_ids(batch: list[list[int]], pad_id: int, multiple: int = 1) -> dict[str, torch.Tensor]:
    """Pad id lists on the right to the longest one in the batch (rounded up to a multiple); token types 0; mask 1 for
    real tokens. Every family's model expects right padding."""
    lengths = torch.tensor([len(ids) for ids in batch])
    width = -(-int(lengths.max()) // multiple) * multiple
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    for row, ids in enumerate(batch):
        input_ids[row, : len(ids)] = torch.tensor(ids)
    attention_mask = (torch.arange(input_ids.shape[1]) < lengths[:, None]).long()
    return {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": torch.zeros_like(input_ids)}


class PadsOnTheRight:
    """pad and __call__ for a tokenizer with `pad_id` and `encode_batch`: KoBERT's and every family's fast one."""

    pad_id: int

    def encode_batch(self, texts: list[str], max_len: int | None = None) -> list[list[int]]:
        raise NotImplementedError

    def pad(self, batch: list[list[int]], multiple: int = 1) -> dict[str, torch.Tensor]:
        return pad_ids(batch, self.pad_id, multiple)

    def __call__(self, texts: list[str], max_len: int | None = None) -> dict[str, torch.Tensor]:
        return self.pad(self.encode_batch(texts, max_len))


@dataclass
class Encoded:
    """One sentence: its ids (with [CLS]/[SEP] or <s>/</s>, truncated) and pieces; `words`: for each token, the index
    of the word of `text.split()` it came from (None for the special tokens)."""

    ids: list[int]
    pieces: list[str]
    unknown: list[bool]
    words: list[int | None] = field(default_factory=list)


class KoBertTokenizer(PadsOnTheRight):
    """KoBERT tokenizer on sentencepiece, with both splitting modes and both piece-to-id schemes.

    Schemes: `vocab` (the original 8000-piece SP model plus the gluonnlp vocab JSON, pieces mapped through
    `token_to_idx`) or `native` (an SP model whose own ids are KoBERT's, with [PAD]/[CLS]/[SEP] pieces).
    """

    def __init__(
        self,
        spm_proto: bytes,
        vocab: dict | None = None,
        mode: str = "gluonnlp",
        max_len: int = 64,
        spm_name: str = "spiece.model",
        vocab_name: str = "vocab.json",
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"tokenizer mode must be one of {', '.join(MODES)}, not {mode!r}")
        if max_len < 3:
            raise ValueError(f"max_len must be at least 3 ([CLS], one piece, [SEP]), not {max_len}")
        self.spm_proto, self.vocab = spm_proto, vocab
        self.spm_name, self.vocab_name = spm_name, vocab_name
        self.mode = mode
        self.max_len = max_len
        self.sp = spm.SentencePieceProcessor(model_proto=spm_proto)
        if vocab:
            self.idx_to_token: list[str] = list(vocab["idx_to_token"])
            token_to_idx: dict[str, int] = vocab["token_to_idx"]
            unk = token_to_idx[UNK]
            sp_pieces = (self.sp.id_to_piece(i) for i in range(self.sp.get_piece_size()))
            self._sp_to_kobert: list[int] | None = [token_to_idx.get(p, unk) for p in sp_pieces]
            self.unk_id, self.pad_id = unk, token_to_idx[PAD]
            self.cls_id, self.sep_id = token_to_idx[CLS], token_to_idx[SEP]
        else:
            self.idx_to_token = [self.sp.id_to_piece(i) for i in range(self.sp.get_piece_size())]
            ids = {piece: i for i, piece in enumerate(self.idx_to_token)}
            missing = [t for t in (PAD, CLS, SEP) if t not in ids]
            if missing:
                raise ValueError(
                    f"{spm_name} has no {', '.join(missing)} pieces, so it needs the gluonnlp vocab JSON "
                    "that maps its pieces to KoBERT ids"
                )
            self._sp_to_kobert = None
            self.unk_id = self.sp.unk_id()
            self.pad_id, self.cls_id, self.sep_id = ids[PAD], ids[CLS], ids[SEP]

    @classmethod
    def from_files(
        cls,
        spm_file: str | Path,
        vocab_file: str | Path | None = None,
        mode: str = "gluonnlp",
        max_len: int = 64,
    ) -> KoBertTokenizer:
        """From a SentencePiece model file and, for the original 8000-piece model, its gluonnlp vocab JSON."""
        spm_file = Path(spm_file)
        vocab = json.loads(Path(vocab_file).read_text(encoding="utf-8")) if vocab_file else None
        vocab_name = Path(vocab_file).name if vocab_file else "vocab.json"
        return cls(spm_file.read_bytes(), vocab, mode, max_len, spm_file.name, vocab_name)

    @classmethod
    def original(cls, mode: str = "gluonnlp", max_len: int = 64) -> KoBertTokenizer:
        """KoBERT's original tokenizer, from the files carried with the package."""
        return cls.from_files(ORIGINAL_SPM, ORIGINAL_VOCAB, mode, max_len)

    @property
    def vocab_size(self) -> int:
        return len(self.idx_to_token)

    def _piece_ids(self, chunks: list[str]) -> list[list[int]]:
        """SentencePiece ids of each chunk, mapped to KoBERT ids."""
        sp_ids = self.sp.encode(chunks, out_type=int)
        if self._sp_to_kobert is None:
            return sp_ids
        table = self._sp_to_kobert
        return [[table[i] for i in ids] for ids in sp_ids]

    def encode_batch(self, texts: list[str], max_len: int | None = None) -> list[list[int]]:
        """KoBERT ids of each text: `[CLS] pieces [SEP]`, pieces truncated to max_len - 2. No padding."""
        keep = (max_len or self.max_len) - 2
        if self.mode == "whole":
            per_text = self._piece_ids([" ".join(t.split()) for t in texts])
        else:
            # Words repeat a lot in real text: encode each distinct word once.
            words = [basic_split(t) for t in texts]
            distinct = list(dict.fromkeys(w for ws in words for w in ws))
            word_ids = dict(zip(distinct, self._piece_ids(distinct)))
            per_text = [[i for w in ws for i in word_ids[w]] for ws in words]
        return [[self.cls_id, *ids[:keep], self.sep_id] for ids in per_text]

    def encode(self, text: str, max_len: int | None = None) -> Encoded:
        """ids as encode_batch gives them, with pieces and each piece's word, from one pass of the splitter."""
        piece_ids, piece_words = self._pieces_and_words(text)
        keep = (max_len or self.max_len) - 2
        ids = [self.cls_id, *piece_ids[:keep], self.sep_id]
        pieces = [self.idx_to_token[i] for i in ids]
        words = [None, *piece_words[:keep], None]
        return Encoded(ids=ids, pieces=pieces, unknown=[i == self.unk_id for i in ids], words=words)

    def _pieces_and_words(self, text: str) -> tuple[list[int], list[int | None]]:
        """The KoBERT ids of text's pieces (before truncation) and, for each, the word of `text.split()` it came from.

        gluonnlp: the basic split's chunks (a word, or one punctuation mark of it) are found in the cleaned text in
        order, and each chunk's pieces go with the word its first character is in. whole: the text is encoded as
        its words joined by single spaces, and a piece that starts with "▁" starts the next word.
        """
        if self.mode == "whole":
            pieces = self.sp.encode(" ".join(text.split()), out_type=str)
            sp_ids = [self.sp.piece_to_id(piece) for piece in pieces]
            ids = sp_ids if self._sp_to_kobert is None else [self._sp_to_kobert[i] for i in sp_ids]
            word, words = -1, []
            for piece in pieces:
                word += piece.startswith("▁")
                words.append(max(word, 0))
            return ids, words
        removed = {m.start() for m in _CONTROL.finditer(text)}
        kept = [i for i in range(len(text)) if i not in removed]  # cleaned text's characters -> text's
        cleaned = "".join(text[i] for i in kept)
        chunks, spans, at = basic_split(text), [], 0
        for chunk in chunks:
            at = cleaned.find(chunk, at)
            spans.append((kept[at], kept[at + len(chunk) - 1] + 1))
            at += len(chunk)
        chunk_ids = self._piece_ids(chunks)
        pairs = [(i, word) for word, ids in zip(words_of_spans(text, spans), chunk_ids) for i in ids]
        return [i for i, _ in pairs], [word for _, word in pairs]

    # --- saving with a model folder -------------------------------------------------------------------------
    def save(self, folder: str | Path) -> None:
        """Write the SP model (and vocab JSON) into folder with the settings that rebuild this tokenizer."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        settings = {"spm_file": self.spm_name, "mode": self.mode, "max_len": self.max_len}
        (folder / self.spm_name).write_bytes(self.spm_proto)
        if self.vocab:
            (folder / self.vocab_name).write_text(json.dumps(self.vocab, ensure_ascii=False), encoding="utf-8")
            settings["vocab_file"] = self.vocab_name
        (folder / SETTINGS_FILE).write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def from_folder(cls, folder: str | Path, mode: str | None = None, max_len: int | None = None) -> KoBertTokenizer:
        """Build from a model folder: our settings file, else the one `*.model` and an optional vocab JSON."""
        folder = Path(folder)
        settings_path = folder / SETTINGS_FILE
        if settings_path.is_file():
            s = json.loads(settings_path.read_text(encoding="utf-8"))
            if not isinstance(s, dict) or not isinstance(s.get("spm_file"), str):
                raise ValueError(f"{SETTINGS_FILE} is not a JSON object naming its spm_file")
            if not isinstance(s.get("max_len", 64), int) or not isinstance(s.get("vocab_file") or "", str):
                raise ValueError(f"{SETTINGS_FILE} has a max_len that is not a whole number or a vocab_file not a name")
            # Only plain file names in this folder: a settings file from an uploaded zip must not point elsewhere.
            vocab = folder / Path(s["vocab_file"]).name if s.get("vocab_file") else None
            spm_file = folder / Path(s["spm_file"]).name
            return cls.from_files(spm_file, vocab, mode or s["mode"], max_len or s["max_len"])
        models = sorted(folder.glob("*.model"))
        if not models:
            raise FileNotFoundError(f"{folder} has no SentencePiece model (*.model file)")
        if len(models) > 1:
            names = ", ".join(m.name for m in models)
            raise FileNotFoundError(f"{folder} has several SentencePiece models ({names}); keep one")
        vocab = next((p for p in sorted(folder.glob("*.json")) if _is_gluonnlp_vocab(p)), None)
        return cls.from_files(models[0], vocab, mode or "gluonnlp", max_len or 64)


def _is_gluonnlp_vocab(path: Path) -> bool:
    if path.stat().st_size > 50_000_000:
        return False
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(data, dict) and "idx_to_token" in data and "token_to_idx" in data
