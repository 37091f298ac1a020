"""`tiny`: the offline backbone the app trains without a hub (a small BERT and a SentencePiece vocabulary learnt
from the training texts)."""

from __future__ import annotations

import io

import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as sp_pb
from transformers import BertConfig

from kobert_demo.engine.tokenizer import CLS, MASK, PAD, SEP, UNK, KoBertTokenizer

# Small enough to train an NSMC epoch on two CPU cores in minutes; big enough to learn it.
TINY_SHAPE = dict(
    hidden_size=128,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=512,
    max_position_embeddings=512,
)


TINY_VOCAB = 8000


# tiny's piece scores are rounded to multiples of this, so that every sum of them along a word is exact in float32
# (SentencePiece) and float64 (tokenizers' Unigram) alike: where two segmentations tie, both then pick the same one.
# Unrounded, the exported tokenizer.json gave other ids on runs such as "ㅋ" * 9 (106-119 of 1,500 runs of repeated
# characters, 0-3 of the 2,711 sentences in tests/data); rounded, on none. Scores stay below 2**13: 23 bits hold them.
TINY_SCORE_STEP = 2**-10


def tiny_config(vocab_size: int, label_names: list[str], dropout: float) -> BertConfig:
    """tiny's config for a tokenizer of vocab_size pieces (TINY_VOCAB at most) and these classes."""
    return BertConfig(
        vocab_size=vocab_size, classifier_dropout=dropout, num_labels=len(label_names), **TINY_SHAPE,
        id2label=dict(enumerate(label_names)), label2id={n: i for i, n in enumerate(label_names)},
    )  # fmt: skip


def train_tiny_tokenizer(texts: list[str], mode: str, max_len: int, seed: int = 42) -> KoBertTokenizer:
    """A SentencePiece model learnt from the training texts, with KoBERT's special ids ([PAD]=1 [CLS]=2 [SEP]=3).

    Seeded, so that every process of a multi-process run learns the very same vocabulary.
    """
    proto = io.BytesIO()
    spm.set_random_generator_seed(seed)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts),
        model_writer=proto,
        vocab_size=TINY_VOCAB,
        hard_vocab_limit=False,
        model_type="unigram",
        character_coverage=0.9995,
        normalization_rule_name="nmt_nfkc",
        unk_id=0, pad_id=1, bos_id=2, eos_id=3,
        unk_piece=UNK, pad_piece=PAD, bos_piece=CLS, eos_piece=SEP,
        user_defined_symbols=[MASK],
        input_sentence_size=100_000,
        shuffle_input_sentence=True,
        num_threads=2,
        minloglevel=2,
    )  # fmt: skip
    model = sp_pb.ModelProto()
    model.ParseFromString(proto.getvalue())
    for piece in model.pieces:
        piece.score = round(piece.score / TINY_SCORE_STEP) * TINY_SCORE_STEP
    return KoBertTokenizer(model.SerializeToString(), None, mode, max_len, spm_name="tiny_spm.model")
