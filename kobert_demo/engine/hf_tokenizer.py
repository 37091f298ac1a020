"""KoBERT's tokenization as a `tokenizers` tokenizer.json, so that plain `AutoTokenizer` / `pipeline` give our ids.

`build` turns a `KoBertTokenizer` into a `tokenizers.Tokenizer`; `save_for_transformers` checks it against ours on
`CHECK_SENTENCES` and writes tokenizer.json + tokenizer_config.json, or writes nothing and says why.

How SentencePiece's behaviour is reproduced:
- Normalization. SentencePiece rewrites text with its charsmap by greedy longest match (single characters and
  multi-character NFKD sequences such as ㅋ+ㅏ -> 카 or e+U+0301 -> é). tokenizers' `Precompiled` applies a charsmap
  per grapheme cluster and takes the *shortest* matching key of a short cluster, so the SP charsmap cannot be used as
  is. We compile our own charsmap with single-character rules only (each character -> its SP rewrite, punctuation
  and CJK padded with spaces in gluonnlp mode), first cut every grapheme cluster apart (a pass that puts U+0001
  before each grapheme extender, which the main pass deletes), and redo SP's compositions with NFC. U+0002 marks
  fence NFC off where SP does not compose (after a precomposed syllable such as 가 that SP never joins to a final
  jamo, around characters that are no part of a multi-character SP rule) and are removed after it.
- Splitting. gluonnlp splits before normalizing; our charsmap pads each punctuation/CJK character *before* its
  normalization is applied, so "…" -> " ... " stays one word as gluonnlp + SP make it, and "㈜" -> "(주)" stays
  inside its word. Words are then split on spaces only, each gets SP's "▁" (SP pieces never hold an inner "▁",
  checked, so one SP call over a sentence equals one per word).
- Pieces. A Unigram model with the vocabulary in KoBERT id order and SP's scores (user-defined pieces get SP's
  0.1 * (bytes - 1) bonus; both fuse runs of unknown characters into one unknown piece). Pieces SP never matches in
  text ([CLS], [PAD], ...) are fenced by a pre-tokenizer split inside them that no real piece crosses.

Whole mode is refused (see `build`). Known limits in gluonnlp mode, which the self-check and the tests measure
rather than assume: runs of two or more combining marks in non-canonical order (NFC reorders them, SP does not),
and equal-score segmentations inside one word (SP adds scores in float32, tokenizers in float64).
"""

from __future__ import annotations

import functools
import hashlib
import json
import unicodedata
from pathlib import Path

import regex
import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as sp_pb
from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import Unigram

from kobert_demo.engine.tokenizer import _CONTROL, _PUNCT_OR_CJK, CLS, MASK, PAD, SEP, UNK, KoBertTokenizer

TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "tokenizer_config.json"
WRITTEN_FILES = (TOKENIZER_FILE, CONFIG_FILE)

_CUT = "\u0001"  # grapheme cutter: put before every extender, deleted by the main charsmap
_FENCE = "\u0002"  # NFC fence: put where SP does not compose, deleted after NFC
_HANGUL_LV = range(0xAC00, 0xD7A4, 28)  # precomposed syllables without a final: NFC joins a following final jamo
_EXTENDER = regex.compile(r"\p{GCB=Extend}|\p{GCB=ZWJ}|\p{GCB=SpacingMark}")

# Varied on purpose: each line once caught a wrong design (compatibility jamo, … and ㈜ through NFKC, fullwidth
# forms, emoji with ZWJ and skin tones, odd spaces, literal special tokens, decomposed Hangul and Latin).
CHECK_SENTENCES = [
    "이 영화 정말 재밌어요ㅋㅋㅋ 강추!!",
    "ㅠㅠ 너무 슬퍼…… 배우들 연기는 ‥ 그냥 그랬음",
    "㈜한국 ㍿ 株式会社 漢字 섞인 문장 ①②③ ㉠",
    "ＦＵＬＬ ｗｉｄｔｈ！？ ｶﾀｶﾅ ﾞ",
    "emoji 👍🏽 👨‍👩‍👧 ❤️ 🇰🇷 😂😂",
    "tabs\tand\u3000ideographic\u00a0nbsp\u2009thin\u200bzero width",
    "[CLS] 텍스트 [UNK] 와 [SEP] [MASK] [PAD] 그대로",
    "ㅋㅏ ㄱㅏㄴ ㄳ 가ㄳ 각ㄱ \u1100\u1161\u11a8 \u1112\u1161\u11ab",
    "cafe\u0301 re\u0301sume\u0301 naïve Ａ\u0302",
    "숫자 12,345원 3.14 100% $5 <tag> a+b=c ^_^ ~_~ `q`",
    "매우 긴 문장 " * 40,
    "",
    "   ",
]
# Runs of the characters Korean reviews repeat most, alone and beside a word: where two segmentations of a run score
# the same, SentencePiece's float32 sums and tokenizers' float64 ones can pick differently (see TINY_SCORE_STEP in
# loading.py), and these runs are where a vocabulary shows it.
_REPEATED = [*"ㅋㅎㅠㅜㅡㄷㄱㅇ.!?~^;-=_*♥♡★☆", "ㅋㅎ", "ㅠㅜ", "^^", ";;", ".."]
CHECK_SENTENCES += [
    f"{before}{unit * n}{after}"
    for unit in _REPEATED
    for n in range(1, 41)
    for before, after in (("", ""), ("정말", ""), ("", "좋아"))
]


_BUILT: dict[tuple, str] = {}  # the last tokenizer.json written, by tokenizer


class NotExact(ValueError):
    """This tokenizer cannot be written as a tokenizer.json that gives exactly its ids (the message says why)."""


def _class(chars: list[int]) -> str:
    """An Oniguruma character class of these code points, as explicit ranges (no Unicode tables involved)."""
    ranges, start, prev = [], None, None
    for c in sorted(chars):
        if prev is not None and c == prev + 1:
            prev = c
            continue
        if start is not None:
            ranges.append((start, prev))
        start = prev = c
    if start is not None:
        ranges.append((start, prev))
    return "[" + "".join(f"\\x{{{a:X}}}" if a == b else f"\\x{{{a:X}}}-\\x{{{b:X}}}" for a, b in ranges) + "]"


# The tables below scan one string of every code point in C (regex, filter, translate), not with a Python call per
# code point, and what every tokenizer shares is built once a process (_cleaning): on the 2-core EPYC, a process's
# first save_for_transformers went from 3.5 s to 2.3 s and each later one from 2.1 s to 1.6 s. Every training child
# pays the first at its first save.
@functools.cache
def _codepoints() -> list[int]:
    return [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]


@functools.cache
def _every_character() -> str:
    return "".join(map(chr, _codepoints()))


def _matching(pattern: regex.Pattern) -> list[int]:
    """The code points that a pattern of one character matches."""
    return [ord(m.group()) for m in pattern.finditer(_every_character())]


@functools.cache
def _python_space() -> list[int]:
    """What str.split() splits on."""
    return [ord(c) for c in filter(str.isspace, _every_character())]


@functools.cache
def _control() -> list[int]:
    """What our gluonnlp cleaning removes (tokenizer._CONTROL)."""
    return _matching(_CONTROL)


@functools.cache
def _extenders() -> list[int]:
    return _matching(_EXTENDER)


@functools.cache
def _composition_pairs() -> tuple[frozenset[str], frozenset[str]]:
    """Characters NFC may join to a following one, and characters it may join to a preceding one."""
    first, second = set(), set()
    for c in _codepoints():
        parts = unicodedata.decomposition(chr(c)).split()
        if len(parts) == 2 and not parts[0].startswith("<"):
            x, m = chr(int(parts[0], 16)), chr(int(parts[1], 16))
            if unicodedata.normalize("NFC", x + m) == chr(c):
                first.add(x)
                second.add(m)
    first.update(chr(c) for c in [*range(0x1100, 0x1113), *_HANGUL_LV])
    second.update(chr(c) for c in [*range(0x1161, 0x1176), *range(0x11A8, 0x11C3)])
    return frozenset(first), frozenset(second)


def _escape(text: str) -> str:
    return "".join(f"\\x{{{ord(c):X}}}" for c in text)


def _sp_rules(proto: sp_pb.ModelProto) -> list[tuple[str, str]]:
    spec = sp_pb.NormalizerSpec()
    spec.CopyFrom(proto.normalizer_spec)
    if not spec.precompiled_charsmap:
        return []
    return spm.SentencePieceNormalizer(normalizer_spec=spec.SerializeToString()).Decompile()


def _compile(rules: dict[str, str]) -> bytes:
    """A SentencePiece precompiled charsmap for these single-character rules."""
    # The builder logs "Loading CharsMap ..." lines (and absl's preamble) to stderr at INFO: they would reach the
    # CLI's stderr on every saved model. Errors only while it runs; 0 (INFO) is sentencepiece's default.
    spm.set_min_log_level(2)
    try:
        normalizer = spm.SentencePieceNormalizer(norm_map=sorted(rules.items()))
    finally:
        spm.set_min_log_level(0)
    spec = sp_pb.NormalizerSpec()
    spec.ParseFromString(normalizer.serialized_normalizer_spec())
    return spec.precompiled_charsmap


@functools.cache
def _cleaning() -> tuple[str, str, str, bytes]:
    """What is the same for every tokenizer: gluonnlp's cleaning as two character classes (what it removes, what it
    turns into a space), every other character, and the grapheme cutter's charsmap."""
    removed, spaced = _control(), _python_space()
    gone = dict.fromkeys([*removed, *spaced])
    cut = {chr(c): _CUT + chr(c) for c in _extenders() if c not in gone}
    kept = _every_character().translate({**gone, ord(_CUT): None, ord(_FENCE): None})
    return _class(removed), _class(spaced), kept, _compile(cut)


def _normalizer(proto: sp_pb.ModelProto) -> normalizers.Normalizer:
    """gluonnlp mode's cleaning and padding, then SentencePiece's charsmap (see the module's docstring)."""
    spec = proto.normalizer_spec
    if not (spec.add_dummy_prefix and spec.remove_extra_whitespaces and spec.escape_whitespaces):
        raise NotExact("its SentencePiece model does not add a dummy prefix / collapse and escape whitespace")
    if proto.trainer_spec.treat_whitespace_as_suffix:
        raise NotExact("its SentencePiece model treats whitespace as a suffix")
    rules = _sp_rules(proto)
    single = {k: v for k, v in rules if len(k) == 1}
    multi = [k for k, _ in rules if len(k) > 1]
    firsts = {k[0] for k in multi}
    continuations = {c for k in multi for c in k[1:]}
    joins_next, joins_prev = _composition_pairs()
    removed, spaced, kept, cutter = _cleaning()

    main: dict[str, str] = {_CUT: ""}
    for c in kept:
        v = single.get(c, c)
        if any(ch.isspace() and ch != " " for ch in v):
            raise NotExact(f"SentencePiece rewrites U+{ord(c):04X} to a whitespace other than a space")
        out = v
        if v and c not in continuations and (unicodedata.combining(v[0]) or v[0] in joins_prev):
            out = _FENCE + out
        if (
            v
            and c not in firsts
            and (unicodedata.combining(v[-1]) or v[-1] in joins_next or unicodedata.normalize("NFD", v[-1]) != v[-1])
        ):
            out += _FENCE
        if _PUNCT_OR_CJK.match(c):
            out = f" {out} "
        if out != c:
            main[c] = out
    return normalizers.Sequence(
        [
            normalizers.Replace(Regex(removed), ""),
            normalizers.Replace(Regex(spaced), " "),
            normalizers.Prepend(" "),  # a cluster must not start with an extender: the cutter would drop the next one
            normalizers.Precompiled(cutter),
            normalizers.Precompiled(_compile(main)),
            normalizers.NFC(),
            normalizers.Replace(_FENCE, ""),
        ]
    )


def _vocabulary(tok: KoBertTokenizer, proto: sp_pb.ModelProto) -> tuple[list[tuple[str, float]], list[str]]:
    """(piece, score) in KoBERT id order, and the pieces SP never matches in text."""
    if proto.trainer_spec.model_type not in (0, sp_pb.TrainerSpec.UNIGRAM):
        raise NotExact("its SentencePiece model is not a unigram model")
    if proto.trainer_spec.byte_fallback:
        raise NotExact("its SentencePiece model uses byte fallback")
    kinds = sp_pb.ModelProto.SentencePiece
    matched: dict[str, float] = {}
    for p in proto.pieces:
        if p.type == kinds.NORMAL:
            matched[p.piece] = p.score
        elif p.type == kinds.USER_DEFINED:
            matched[p.piece] = 0.1 * (len(p.piece.encode()) - 1)  # SP's bonus that makes them always win
        elif p.type == kinds.BYTE:
            raise NotExact("its SentencePiece model has byte pieces")
    inner = [p for p in matched if "▁" in p[1:]]
    if inner:
        raise NotExact(f"SentencePiece piece {inner[0]!r} holds an inner '▁'")
    known = set(tok.idx_to_token)
    missing = [p for p in matched if p not in known]
    if missing:
        raise NotExact(f"SentencePiece piece {missing[0]!r} has no KoBERT id")
    if len(known) != len(tok.idx_to_token):
        raise NotExact("its vocabulary holds a piece twice")
    # Special pieces score 0.0 so that the unknown penalty (lowest score - 10) stays SP's.
    vocab = [(t, matched.get(t, 0.0)) for t in tok.idx_to_token]
    return vocab, [t for t in tok.idx_to_token if t not in matched]


def _fences(unmatched: list[str], pieces: list[str]) -> pre_tokenizers.PreTokenizer | None:
    """A split inside each piece SP never matches, at a place no real piece crosses, so Unigram cannot match it."""
    pairs = {p[i : i + 2] for p in pieces for i in range(len(p) - 1)}
    alternatives = []
    for token in unmatched:
        cut = next((i for i in range(1, len(token)) if token[i - 1 : i + 1] not in pairs), None)
        if cut is None:
            raise NotExact(f"piece {token!r} could be matched inside a word, where SentencePiece never matches it")
        alternatives.append(f"{_escape(token[:cut])}(?={_escape(token[cut:])})")
    if not alternatives:
        return None
    return pre_tokenizers.Split(Regex("|".join(alternatives)), "merged_with_previous")


def build(tok: KoBertTokenizer) -> Tokenizer:
    """A tokenizers.Tokenizer giving tok's ids; NotExact if a part of tok cannot be reproduced."""
    if tok.mode == "whole":
        # Measured on tests/data: 6 of 2711 sentences differ, all on equal-score segmentations such as "다...." ->
        # "..." + "." (SP) or "." + "..." (tokenizers): SP adds scores in float32 along the whole sentence,
        # tokenizers in float64 word by word, so which of two equal paths wins cannot be reproduced.
        raise NotExact("whole mode ties between equal-score segmentations cannot be reproduced (float32 in SP)")
    proto = sp_pb.ModelProto()
    proto.ParseFromString(tok.spm_proto)
    vocab, unmatched = _vocabulary(tok, proto)
    pieces = [p for p, _ in vocab if p not in unmatched]
    hf = Tokenizer(Unigram(vocab, unk_id=tok.unk_id, byte_fallback=False))
    hf.normalizer = _normalizer(proto)
    steps = [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace("▁", prepend_scheme="always", split=False)]
    fence = _fences(unmatched, pieces)
    hf.pre_tokenizer = pre_tokenizers.Sequence(steps + ([fence] if fence else []))
    cls, sep = tok.idx_to_token[tok.cls_id], tok.idx_to_token[tok.sep_id]
    hf.post_processor = processors.TemplateProcessing(
        single=f"{cls}:0 $A:0 {sep}:0",
        pair=f"{cls}:0 $A:0 {sep}:0 $B:0 {sep}:0",
        special_tokens=[(cls, tok.cls_id), (sep, tok.sep_id)],
    )
    hf.decoder = decoders.Metaspace("▁", prepend_scheme="always", split=True)
    return hf


def differences(tok: KoBertTokenizer, hf: Tokenizer, texts: list[str]) -> list[str]:
    """The texts on which hf's ids (truncated to tok.max_len) differ from tok's."""
    hf.enable_truncation(tok.max_len)
    try:
        got = [e.ids for e in hf.encode_batch(texts)]
    finally:
        hf.no_truncation()
    want = tok.encode_batch(texts)
    return [t for t, g, w in zip(texts, got, want) if g != w]


def config(tok: KoBertTokenizer) -> dict:
    """tokenizer_config.json: load tokenizer.json as is, take literal "[CLS]" in text as text, KoBERT's length."""
    names = {"unk_token": UNK, "pad_token": PAD, "cls_token": CLS, "sep_token": SEP, "mask_token": MASK}
    present = set(tok.idx_to_token)
    return {
        "tokenizer_class": "TokenizersBackend",
        "model_max_length": tok.max_len,
        "padding_side": "right",
        "truncation_side": "right",
        "split_special_tokens": True,
        "model_input_names": ["input_ids", "token_type_ids", "attention_mask"],
        **{key: token for key, token in names.items() if token in present},
    }


def _checked(tok: KoBertTokenizer) -> str:
    """tok's tokenizer.json after the self-check. Cached: a training run saves its model after every epoch, and a
    build and check take about 1.6 s (2-core EPYC)."""
    key = (hashlib.sha256(tok.spm_proto).digest(), tuple(tok.idx_to_token), tok.unk_id, tok.mode, tok.max_len)
    if key not in _BUILT:
        hf = build(tok)
        wrong = differences(tok, hf, CHECK_SENTENCES)
        if wrong:
            raise NotExact(f"its tokenizer.json would give other ids than ours for {wrong[0][:60]!r}")
        _BUILT.clear()
        _BUILT[key] = hf.to_str()
    return _BUILT[key]


def save_for_transformers(tok: KoBertTokenizer, folder: str | Path) -> str | None:
    """Write tokenizer.json + tokenizer_config.json if they reproduce tok on CHECK_SENTENCES; else the reason."""
    folder = Path(folder)
    try:
        text = _checked(tok)
    except NotExact as error:
        return str(error)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / TOKENIZER_FILE).write_text(text, encoding="utf-8")
    (folder / CONFIG_FILE).write_text(json.dumps(config(tok), indent=2) + "\n", encoding="utf-8")
    return None
