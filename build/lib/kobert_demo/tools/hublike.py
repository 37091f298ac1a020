"""Hub-like model folders of each family with random weights and a tokenizer trained here, for tests and `bench`.

No hub is needed: the tokenizer is learnt from the given texts by the `tokenizers` library (WordPiece for BERT and
ELECTRA, byte-level BPE for RoBERTa, as their Korean models on the hub use) and saved as `tokenizer.json` +
`tokenizer_config.json`; the weights are a pre-training checkpoint (BertForPreTraining, RobertaForMaskedLM,
ElectraForPreTraining), as hub repos hold them, with the heads a classifier does not use.
"""

from __future__ import annotations

from pathlib import Path

import torch

from kobert_demo.engine.loading import quiet_transformers
from kobert_demo.engine.tiny import TINY_SHAPE

# The curated models' shapes at base size (their config.json on the hub).
BASE_SHAPE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)
FAMILY_SHAPES = {
    "bert": dict(vocab_size=32000, max_position_embeddings=512, type_vocab_size=2, pad_token_id=0),  # klue/bert-base
    "roberta": dict(vocab_size=32000, max_position_embeddings=514, type_vocab_size=1, pad_token_id=1),  # klue/roberta
    "electra": dict(  # monologg/koelectra-base-v3-discriminator
        vocab_size=35000, max_position_embeddings=512, type_vocab_size=2, pad_token_id=0, embedding_size=768
    ),
}
# tiny ELECTRA projects a smaller embedding up to its hidden size, as ELECTRA-small does, so that path is exercised.
TINY_EMBEDDING_SIZE = 64
WORDPIECE_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
BPE_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # RoBERTa's: <pad> is 1, its pad_token_id


def train_tokenizer(family: str, texts: list[str], vocab_size: int):
    """A transformers fast tokenizer learnt from texts: WordPiece ([CLS] x [SEP]) or byte-level BPE (<s> x </s>)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if family == "roberta":
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=BPE_SPECIALS,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tokenizer.train_from_iterator(texts, trainer)
        tokenizer.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0), trim_offsets=True)
        specials = dict(bos_token="<s>", eos_token="</s>", cls_token="<s>", sep_token="</s>")
        return PreTrainedTokenizerFast(
            tokenizer_object=tokenizer, unk_token="<unk>", pad_token="<pad>", mask_token="<mask>", **specials
        )
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=False, strip_accents=False)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    tokenizer.train_from_iterator(
        texts, trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=WORDPIECE_SPECIALS, show_progress=False)
    )
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]",
    )  # fmt: skip


def build_folder(
    folder: str | Path, family: str, texts: list[str], size: str = "tiny", vocab_size: int = 4000, seed: int = 0
) -> Path:
    """A hub-like folder of family ("bert", "roberta", "electra") at size "tiny" (TINY_SHAPE) or "base"."""
    from transformers import (
        BertConfig,
        BertForPreTraining,
        ElectraConfig,
        ElectraForPreTraining,
        RobertaConfig,
        RobertaForMaskedLM,
    )

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(family, texts, vocab_size if size == "tiny" else FAMILY_SHAPES[family]["vocab_size"])
    tokenizer.model_max_length = 512
    shape = {**FAMILY_SHAPES[family], **(TINY_SHAPE if size == "tiny" else BASE_SHAPE), "vocab_size": len(tokenizer)}
    shape["pad_token_id"] = tokenizer.pad_token_id
    if family == "electra":
        shape["embedding_size"] = TINY_EMBEDDING_SIZE if size == "tiny" else shape["hidden_size"]
    else:
        shape.pop("embedding_size", None)
    config_class, model_class = {
        "bert": (BertConfig, BertForPreTraining),
        "roberta": (RobertaConfig, RobertaForMaskedLM),
        "electra": (ElectraConfig, ElectraForPreTraining),
    }[family]
    torch.manual_seed(seed)
    with quiet_transformers():
        model_class(config_class(**shape)).save_pretrained(folder)
        tokenizer.save_pretrained(str(folder))
    return folder
