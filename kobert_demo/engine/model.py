"""Backbones (hub id, local folder, offline `tiny`) -> a classifier and its tokenizer.

For KoBERT and BERT the classifier is the tutorial's: the pooled [CLS] output, dropout (0.5), a linear layer to the
classes, which is exactly `BertForSequenceClassification` with `classifier_dropout`. RoBERTa and ELECTRA keep their
own `*ForSequenceClassification` head (families.py), so plain transformers code loads every run too. KoBERT keeps its
own exact tokenizer (tokenizer.py); other models use their own fast tokenizer (fast_tokenizer.py).
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import math
import re
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sentencepiece as spm
import torch
from safetensors import safe_open
from sentencepiece import sentencepiece_model_pb2 as sp_pb
from torch import nn
from transformers import BertConfig, BertForSequenceClassification, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput
from transformers.utils import logging as transformers_logging

from kobert_demo.basics import files
from kobert_demo.basics.config import KOBERT_HUB_ID, METRICS_FILE, TINY, WEIGHTS_FILE
from kobert_demo.basics.errors import BackboneError
from kobert_demo.basics.settings import limits
from kobert_demo.engine.families import FAMILIES, MODEL_TYPES, family_of, padded_forward_reason
from kobert_demo.engine.fast_tokenizer import MAX_UNKNOWN_SHARE, FastTokenizer, has_fast_tokenizer
from kobert_demo.engine.hf_tokenizer import save_for_transformers
from kobert_demo.engine.tokenizer import CLS, MASK, PAD, SEP, SETTINGS_FILE, UNK, KoBertTokenizer

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# Weights, configs and every kind of tokenizer file: SentencePiece (*.model), tokenizer.json, vocab.txt, merges.txt.
# README.md: the model card, whose front matter names the model's license.
HUB_FILES = ["config.json", "*.safetensors", "pytorch_model.bin", "*.model", "*.json", "*.txt", "README.md"]

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
TOKEN_MULTIPLE = 64  # PaddingFreeClassifier's packed token count is a multiple of this


Tokenizer = KoBertTokenizer | FastTokenizer


@dataclass
class Classifier:
    model: PreTrainedModel  # Bert/Roberta/ElectraForSequenceClassification
    tokenizer: Tokenizer
    label_names: list[str]
    source: str

    def __post_init__(self) -> None:
        skip_unused_last_layer_rows(self.model)


def skip_unused_last_layer_rows(model: PreTrainedModel) -> None:
    """Compute the last layer past its attention for [CLS] alone: the classifier reads nothing else.

    The [CLS] row still attends to every token, and the rest of a layer (attention output, feed-forward, LayerNorm)
    works row by row, so the logits and gradients are unchanged; the last layer's largest matrix products shrink to
    one row (about 6% of a training step on KoBERT, more in CPU mode, where the top layers are all that trains).
    Idempotent: the hook is added once per model. `last_hidden_state` keeps only the [CLS] row.
    """
    attention_output = family_of(model).layers(model)[-1].attention.output
    if getattr(attention_output, "_cls_only", False):
        return
    attention_output.register_forward_pre_hook(lambda _, args: tuple(arg[:, :1] for arg in args))
    attention_output._cls_only = True


class PaddingFreeClassifier(nn.Module):
    """The classifier's forward without padding, for training and evaluation: same weights, same math.

    A random batch of NSMC rows pads to 64 tokens a row for 25 real ones. Here the real tokens of the whole batch
    are packed into one matrix, so every linear layer (nearly all of BERT's work) computes them and nothing else;
    only attention, a small share at these lengths, sees the batch padded, with padded keys masked out. The last
    layer past its attention runs for [CLS] alone, the only row the classifier reads. The optimizer still sees the
    tutorial's random batches whole. Attention is written out (matmul, softmax, matmul) as transformers' eager
    attention is: on CPUs, PyTorch's fused attention kernel was 3x slower in bf16 training at these sizes.
    """

    def __init__(self, model: PreTrainedModel) -> None:
        super().__init__()
        self.model = model
        self.family = family_of(model)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> SequenceClassifierOutput:
        family = self.family
        rows, length = input_ids.shape
        real = attention_mask.bool()
        packed = real.flatten().nonzero().squeeze(1)  # each real token's place in the padded batch
        lengths = real.sum(1)
        cls = lengths.cumsum(0) - lengths  # each row's [CLS] in the packed tokens
        tokens = input_ids[real]
        positions = torch.arange(length, device=input_ids.device).expand(rows, length)[real]
        types = token_type_ids[real] if token_type_ids is not None else torch.zeros_like(positions)
        # Spare rows round the token count up to a multiple of TOKEN_MULTIPLE, so that batches come in a few shapes,
        # not one each (a new shape builds and caches its own kernels: slower steps, and 400 MB more memory over
        # `tiny`'s NSMC epoch). Attention never sees them, nothing reads them, and they get no gradient. `unpack`
        # picks each packed row's attention output (the spare rows take the first row's).
        spare = -len(tokens) % TOKEN_MULTIPLE
        tokens, positions, types, unpack = (
            nn.functional.pad(t, (0, spare)) for t in (tokens, positions, types, packed)
        )
        x = family.embed(self.model, tokens[None], positions[None], types[None])[0]
        # The scores stay in the dtype the matmuls give (bf16 under autocast), as in transformers' eager attention:
        # an fp32 mask promoted every layer's [rows, heads, length, length] scores, their softmax and its dropout to
        # fp32, and their casts back were the largest copies in a profiled KoBERT-shape bf16 step (AMX Xeon).
        device = x.device.type
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else x.dtype
        masked_keys = torch.zeros(real.shape, dtype=dtype, device=x.device).masked_fill(~real, float("-inf"))
        masked_keys = masked_keys[:, None, None, :]

        layers = family.layers(self.model)
        for number, layer in enumerate(layers, start=1):
            attention, last = layer.attention.self, number == len(layers)
            heads = attention.num_attention_heads
            queries = x[cls] if last else x
            q = attention.query(queries) * attention.scaling  # on the packed queries: fewer than the scores
            q = q.view(rows, 1, heads, -1).transpose(1, 2) if last else _padded_heads(q, packed, real.shape, heads)
            k, v = (_padded_heads(t, packed, real.shape, heads) for t in (attention.key(x), attention.value(x)))
            scores = q @ k.transpose(-1, -2) + masked_keys
            context = (attention.dropout(scores.softmax(-1)) @ v).transpose(1, 2).flatten(2).flatten(0, 1)
            if not last:
                context = context[unpack]
            h = _add_and_norm(layer.attention.output, context, queries)
            x = _add_and_norm(layer.output, layer.intermediate(h), h)

        return _classified(family.head(self.model, x), labels)


class PaddedClassifier(nn.Module):
    """transformers' own forward, padding and all, with the loss PaddingFreeClassifier computes: for configs whose
    padding-free forward is not proven (families.padded_forward_reason)."""

    def __init__(self, model: PreTrainedModel) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> SequenceClassifierOutput:
        logits = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits
        return _classified(logits, labels)


def _classified(logits: torch.Tensor, labels: torch.Tensor | None) -> SequenceClassifierOutput:
    """The logits and, given labels, their cross-entropy in fp32: both training forwards' output."""
    loss = nn.functional.cross_entropy(logits.float(), labels) if labels is not None else None
    return SequenceClassifierOutput(loss=loss, logits=logits)


class FastDropout(nn.Dropout):
    """nn.Dropout whose mask, on a CPU, is drawn by NumPy's PCG64 rather than torch's `bernoulli_`.

    Profiling a bf16 training step at KoBERT's shape (batch 64, padding-free; Intel Xeon with AMX, 2 threads) put
    `aten::bernoulli_` at 24% of the step: 38 dropouts a step, about 21 ms each. PCG64 draws the same mask in about
    2 ms. A unit is kept when a 16-bit draw is at or above round(p * 65536), so p is matched within 1/131072. The
    mask is applied by the kernel torch's own dropout uses (`native_dropout_backward`: x * mask * scale, whose
    gradient is the same product), and kept as one byte per unit.
    """

    def __init__(self, p: float, rng: np.random.Generator) -> None:
        super().__init__(p)
        self.rng = rng
        self.threshold = round(p * 65536)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0 or x.device.type != "cpu":
            return super().forward(x)
        keep = torch.from_numpy(self.rng.integers(0, 65536, x.shape, dtype=np.uint16) >= self.threshold)
        return torch.ops.aten.native_dropout_backward(x, keep, 1 / (1 - self.p))


def use_fast_dropout(model: nn.Module) -> None:
    """Swap every nn.Dropout for a FastDropout sharing one generator, seeded from torch's (so a run's seed still
    fixes its masks). Dropout holds no weights: saving and loading the model are unchanged."""
    rng = np.random.default_rng(int(torch.randint(2**62, ())))
    for module in model.modules():
        for name, child in module.named_children():
            if type(child) is nn.Dropout:
                setattr(module, name, FastDropout(child.p, rng))


PADDING_FREE = "padding-free"


def training_forward(model: PreTrainedModel) -> tuple[nn.Module, str]:
    """The forward a model trains and evaluates with, and its name: `padding-free`, or `padded (reason)`."""
    reason = padded_forward_reason(model.config)
    if reason:
        return PaddedClassifier(model), f"padded ({reason})"
    return PaddingFreeClassifier(model), PADDING_FREE


def _padded_heads(t: torch.Tensor, packed: torch.Tensor, shape: tuple[int, int], heads: int) -> torch.Tensor:
    """Packed [tokens, hidden] -> padded [rows, heads, length, head size], zeros where there was padding."""
    rows, length = shape
    padded = t.new_zeros(rows * length, t.shape[-1]).index_copy(0, packed, t[: len(packed)])
    return padded.view(rows, length, heads, -1).transpose(1, 2)


def _add_and_norm(output: nn.Module, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """BertSelfOutput / BertOutput: dense, dropout, residual, LayerNorm."""
    return output.LayerNorm(output.dropout(output.dense(x)) + residual)


def describe_source(source: str) -> str:
    """source as the run and its model card call it."""
    if source == TINY:
        return "tiny (a small randomly initialised BERT trained from scratch, not KoBERT)"
    return source


def resolve_folder(source: str, patterns: list[str] | tuple[str, ...] = HUB_FILES) -> Path:
    """A local folder as is; a hub id downloaded (or taken from the local hub cache) to a folder, with the files
    that match patterns (default: what a model needs)."""
    if not source.strip():
        raise BackboneError("model_none_given", hub_id=KOBERT_HUB_ID, tiny=TINY)
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    if not _HUB_ID.match(source):
        raise BackboneError("model_unknown_source", source=source, hub_id=KOBERT_HUB_ID, tiny=TINY)
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id=source, allow_patterns=list(patterns)))
    except Exception as error:  # network, auth, missing repo: all end the same way for the user
        raise BackboneError("model_hub_failed", source=source, kind=type(error).__name__, tiny=TINY) from None


def _one_line(error: Exception) -> str:
    """An exception's message on one line (transformers' validation errors span several)."""
    return " ".join(str(error).split())


def _reason(error: Exception, folder: Path, name: str) -> str:
    """An exception's message on one line, with folder's server path shown as name (the path may be a temp dir)."""
    text = _one_line(error)
    for path in sorted({str(folder), str(folder.resolve())}, key=len, reverse=True):
        text = text.replace(path, name)
    return text


# What config.json may ask for: KoBERT is 8002/768/12/12/3072/512/2; BERT-large is 1024/24/16/4096; the largest
# multilingual vocabularies hold about 250,000 pieces. The memory budget (check_memory) bounds their product.
CONFIG_LIMITS = {
    "vocab_size": 250_000,
    "hidden_size": 4096,
    "num_hidden_layers": 48,
    "num_attention_heads": 64,
    "intermediate_size": 16_384,
    "max_position_embeddings": 8192,
    "type_vocab_size": 16,
    "embedding_size": 4096,  # ELECTRA's
}
MAX_CLASSES = 1_000


def _read_config(folder: Path, name: str) -> PretrainedConfig:
    """folder's config.json as its family's config (bert, roberta, electra) whose every size is in CONFIG_LIMITS;
    name: how errors call folder."""
    path = folder / "config.json"
    shown = f"{name}/config.json"
    if not path.is_file():
        raise BackboneError("model_no_config", folder=name)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise BackboneError("model_config_not_json", path=shown) from None
    if not isinstance(raw, dict):
        raise BackboneError("model_config_not_object", path=shown)
    model_type = raw.get("model_type", "bert")
    if model_type not in FAMILIES:
        raise BackboneError("model_not_supported", path=shown, model_type=model_type, types=", ".join(MODEL_TYPES))
    config_class = FAMILIES[model_type].config_class
    sizes = {**config_class().to_dict(), **raw}
    for key, high in CONFIG_LIMITS.items():  # before the config class, which divides by num_attention_heads
        if key not in sizes:  # embedding_size, for BERT and RoBERTa
            continue
        value = sizes[key]
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= high:
            raise BackboneError("model_config_out_of_range", path=shown, setting=key, value=value, high=high)
    if sizes["hidden_size"] % sizes["num_attention_heads"]:
        raise BackboneError("model_heads", path=shown)
    try:
        config = config_class.from_dict(raw)
    except Exception as error:
        family = FAMILIES[model_type].name
        raise BackboneError(
            "model_bad_config", path=shown, family=family, reason=_reason(error, folder, name)
        ) from None
    if config.num_labels > MAX_CLASSES:
        raise BackboneError("model_too_many_classes", path=shown, classes=config.num_labels, limit=MAX_CLASSES)
    return config


def uses_kobert_tokenizer(folder: Path) -> bool:
    """KoBERT's own tokenizer for our saved KoBERT runs and for a folder with a SentencePiece model and no other
    tokenizer (KoBERT's hub folder, whose declared XLNetTokenizer would be wrong); every other folder's own."""
    if (folder / SETTINGS_FILE).is_file():
        return True
    return any(folder.glob("*.model")) and not has_fast_tokenizer(folder)


def _tokenizer(folder: Path, config: PretrainedConfig, mode: str | None, max_len: int | None, name: str) -> Tokenizer:
    """folder's tokenizer (KoBERT's or the model's own fast one), its max_len clamped to the positions the model has.

    Refused: a tokenizer with more tokens than the model's embeddings, one that turns most Korean into its unknown
    token, and (RoBERTa, whose positions count from it) one whose padding id is not the model's.
    """
    kobert = uses_kobert_tokenizer(folder)
    if not kobert and not has_fast_tokenizer(folder):  # AutoTokenizer would build a near-empty one and say nothing
        raise BackboneError("model_no_tokenizer", folder=name)
    try:
        if kobert:
            tokenizer = KoBertTokenizer.from_folder(folder, mode=mode, max_len=max_len)
        else:
            with quiet_transformers():
                tokenizer = FastTokenizer.from_folder(folder, max_len=max_len)
    except Exception as error:  # a broken or foreign tokenizer file fails in many ways; all mean the same here
        reason = _reason(error, folder, name)
        if kobert:
            raise BackboneError("model_tokenizer_failed", folder=name, reason=reason) from None
        raise BackboneError("model_fast_tokenizer_failed", folder=name, reason=reason) from None
    if tokenizer.vocab_size > config.vocab_size:
        raise BackboneError(
            "model_tokenizer_mismatch", folder=name, tokens=tokenizer.vocab_size, model_tokens=config.vocab_size
        )
    family = family_of(config)
    if not kobert:
        if family.model_type == "roberta" and tokenizer.pad_id != config.pad_token_id:
            raise BackboneError("model_tokenizer_pad", folder=name, pad=tokenizer.pad_id, model_pad=config.pad_token_id)
        share = tokenizer.unknown_share()
        if share > MAX_UNKNOWN_SHARE:
            raise BackboneError("model_tokenizer_not_korean", folder=name, share=f"{share:.0%}")
    # Longer inputs would index past the position embeddings; a shorter max_len only truncates sooner.
    tokenizer.max_len = min(tokenizer.max_len, family.max_tokens(config))
    return tokenizer


def parameter_count(config: PretrainedConfig, num_labels: int | None = None) -> int:
    """The classifier's weights (its family's *ForSequenceClassification), counted on the meta device (no memory)."""
    if num_labels is not None and num_labels != config.num_labels:
        config = copy.deepcopy(config)
        config.num_labels = num_labels
    weights, _ = expected_shapes(config)
    return sum(math.prod(shape) for shape in weights.values())


SERVING_BATCH = 64  # Predictor's batch size
PAD_MULTIPLE = 16  # train.Collator pads every batch to a multiple of this many tokens

# What one encoder layer keeps for the backward pass, per token, in fp32 units (4 bytes) of hidden_size, of
# intermediate_size and of heads x padded length; measured rather than counted, since autograd keeps more than the
# tensors PaddingFreeClassifier names (casts, copies, masks). A KoBERT-shaped classifier trained on full 64-token
# rows at batch 64 (AMD EPYC, 2 threads, torch 2.13) peaked 6,184 MB over its interpreter in fp32 (4,129 MB in
# bf16): 16 bytes a parameter and about 24,000 units per token and layer, which these coefficients give
# (16 x 768 + 3 x 3072 + 4 x 12 x 64 = 24,576). They bound every case of tests/test_memory.py's grid.
ACTIVATION_HIDDEN, ACTIVATION_INTERMEDIATE, ACTIVATION_SCORES = 16, 3, 4
# Inference keeps nothing for backward: one layer's input, q, k, v, context and outputs (8 x hidden), the
# feed-forward's output and GELU's (2 x intermediate), the scores and their softmax (2 x heads x length) are alive
# at once at most. Counted, not measured.
INFERENCE_HIDDEN, INFERENCE_INTERMEDIATE, INFERENCE_SCORES = 8, 2, 2
# The embeddings' outputs per token (word, position, type, their sum, LayerNorm, dropout), in units of their width.
ACTIVATION_EMBEDDING = 6
# What the allocator and the kernels add beyond the tensors counted: fragmentation, oneDNN's scratch buffers, and
# the backward pass's gradients of one layer's activations in flight.
OVERHEAD_SHARE, OVERHEAD_BYTES = 0.15, 64 * 2**20
# The ONNX export and int8 quantization `auto` runs, per byte of fp32 weights, on top of the model: KoBERT's 370 MB
# peaked at 1.9 GB (export) and 2.1 GB (quantizing) of VmHWM with the model loaded and the interpreter's 0.4 GB.
ONNX_BUILD_FACTOR = 4
# Exporting peaks at about 5x the weights (KoBERT's 370 MB: 1.9 GB of VmHWM, quantizing 2.1 GB, on top of the
# model already loaded): a model bigger than this is built in a child process (serving.OnnxFiles), so that
# serving's own peak stays one model's. Smaller ones (tiny: a few MB) build in process, without a child's seconds
# of start-up, and their build counts in the serving estimate.
BUILD_IN_CHILD_BYTES = 64 * 2**20


def padded_length(max_len: int) -> int:
    """The longest a batch's rows are padded to."""
    return -(-max_len // PAD_MULTIPLE) * PAD_MULTIPLE


def layer_bytes(config: PretrainedConfig, tokens: int, length: int, training: bool = True) -> int:
    """The activations of one encoder layer for tokens tokens in rows padded to length: kept for backward when
    training, alive at once during inference otherwise."""
    hidden, intermediate, scores = (
        (ACTIVATION_HIDDEN, ACTIVATION_INTERMEDIATE, ACTIVATION_SCORES)
        if training
        else (INFERENCE_HIDDEN, INFERENCE_INTERMEDIATE, INFERENCE_SCORES)
    )
    units = hidden * config.hidden_size + intermediate * config.intermediate_size
    return math.ceil(4 * tokens * (units + scores * config.num_attention_heads * length))


def activation_bytes(config: PretrainedConfig, batch_size: int, max_len: int, training: bool) -> int:
    """The activations at the peak of a step for batch_size rows of max_len tokens: for training, every layer's
    kept for backward and the embeddings' (or evaluation's, if larger: a batch of 2 x batch_size without
    autograd); for inference, the embeddings' and one layer's (its input, its scores and what it computes)."""
    length = padded_length(max_len)
    tokens = batch_size * length
    width = max(config.hidden_size, getattr(config, "embedding_size", None) or 0)
    embedding = 4 * tokens * ACTIVATION_EMBEDDING * width
    inference = embedding + layer_bytes(config, tokens, length, training=False)
    if not training:
        return inference
    kept = embedding + config.num_hidden_layers * layer_bytes(config, tokens, length)
    return max(kept, 2 * inference)


def memory_estimate(
    params: int,
    config: PretrainedConfig,
    max_len: int,
    checkpoint_bytes: int,
    training: bool,
    batch_size: int = SERVING_BATCH,
) -> int:
    """The bytes a model adds to its process at its peak, from its config and checkpoint size alone: an upper bound.

    Loading: the fp32 weights and the checkpoint as read (from_pretrained copies it into the model). Training: fp32
    weights, gradients and AdamW's two moments (16 bytes a parameter), autocast's bf16 copy of the weights (2), and
    every layer's activations for batch_size rows of max_len tokens (activation_bytes), or loading's peak if higher.
    Serving: loading's peak, SERVING_BATCH rows' activations, and the ONNX build's own peak where `auto` builds in
    this process (fp32 weights up to BUILD_IN_CHILD_BYTES; bigger models build in a child process). Each plus the
    allocator's overhead. Calibrated against measured VmHWM by tests/test_memory.py.
    """
    loading = 4 * params + checkpoint_bytes
    if training:
        tensors = max(loading, 18 * params + activation_bytes(config, batch_size, max_len, True))
    else:
        build = ONNX_BUILD_FACTOR * 4 * params if 4 * params <= BUILD_IN_CHILD_BYTES else 0
        tensors = loading + activation_bytes(config, SERVING_BATCH, max_len, False) + build
    return math.ceil(tensors * (1 + OVERHEAD_SHARE)) + OVERHEAD_BYTES


def _checkpoint_bytes(folder: Path, trusted: bool, name: str) -> int:
    return sum(path.stat().st_size for path in _weight_files(folder, trusted, name))


def check_memory(
    folder: Path | None,
    config: PretrainedConfig,
    max_len: int,
    name: str,
    *,
    training: bool,
    trusted: bool,
    num_labels: int | None = None,
    batch_size: int = SERVING_BATCH,
    checkpoint_bytes: int | None = None,
) -> int:
    """Refuse a model whose memory_estimate is over its budget (training: KOBERT_DEMO_MAX_TRAIN_MB; serving:
    KOBERT_DEMO_MAX_MODEL_MB); returns the estimate. checkpoint_bytes: the weights' size when folder has none yet
    (tiny: 0), else read from folder's weight files."""
    params = parameter_count(config, num_labels)
    checkpoint = _checkpoint_bytes(folder, trusted, name) if checkpoint_bytes is None else checkpoint_bytes
    need = memory_estimate(params, config, max_len, checkpoint, training, batch_size)
    budget = limits().max_train_bytes if training else limits().max_model_bytes
    if need > budget:
        mb = {"need_mb": math.ceil(need / 2**20), "limit_mb": budget // 2**20}
        if training:
            raise BackboneError(
                "model_too_big_to_train", name=name, params=params, batch_size=batch_size, max_len=max_len, **mb
            )
        raise BackboneError("model_too_big", name=name, params=params, **mb)
    return need


def tiny_config(vocab_size: int, label_names: list[str], dropout: float) -> BertConfig:
    """tiny's config for a tokenizer of vocab_size pieces (TINY_VOCAB at most) and these classes."""
    return BertConfig(
        vocab_size=vocab_size, classifier_dropout=dropout, num_labels=len(label_names), **TINY_SHAPE,
        id2label=dict(enumerate(label_names)), label2id={n: i for i, n in enumerate(label_names)},
    )  # fmt: skip


def check_training_memory(source: str, label_names: list[str], batch_size: int, max_len: int) -> int | None:
    """The training estimate checked before a job is queued, with its batch size and max_len: BackboneError
    `model_too_big_to_train` when over the budget. None when the model's config cannot be read here (a hub model
    not reachable now, a folder without weights): the job's own load then says what is wrong.

    A hub model's config.json is read from the hub cache or fetched alone; without its weights on disk the
    checkpoint is counted as fp32 (4 bytes a parameter), the most a checkpoint of these weights holds.
    """
    if source == TINY:
        config = tiny_config(TINY_VOCAB, label_names, 0.1)
        return check_memory(
            None, config, max_len, TINY, training=True, trusted=True, batch_size=batch_size, checkpoint_bytes=0
        )
    try:
        folder = resolve_folder(source, patterns=["config.json"])  # the config alone: weights are the job's
        config = _read_config(folder, source)
        length = min(max_len, family_of(config).max_tokens(config))
        try:
            checkpoint = _checkpoint_bytes(folder, True, source)
        except BackboneError:
            checkpoint = 4 * parameter_count(config, len(label_names))
    except BackboneError:
        return None
    return check_memory(
        folder, config, length, source, training=True, trusted=True, num_labels=len(label_names),
        batch_size=batch_size, checkpoint_bytes=checkpoint,
    )  # fmt: skip


# How many of our loads and saves are quietening transformers now (the web app's threads may overlap), and the
# settings the first of them found, which the last one puts back.
_quiet = {"depth": 0, "saved": (transformers_logging.WARNING, True)}
_quiet_lock = threading.Lock()


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """transformers' warnings and progress bars off for one of our loads or saves, then back as they were.

    `check_weights` has already refused what transformers' load report would warn about, and the report would list
    what we mean to ignore (a hub checkpoint's pre-training heads); the bars would clutter the CLI's stderr.
    """
    with _quiet_lock:
        if not _quiet["depth"]:
            _quiet["saved"] = transformers_logging.get_verbosity(), transformers_logging.is_progress_bar_enabled()
            transformers_logging.set_verbosity_error()
            transformers_logging.disable_progress_bar()
        _quiet["depth"] += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet["depth"] -= 1
            if not _quiet["depth"]:
                verbosity, bars = _quiet["saved"]
                transformers_logging.set_verbosity(verbosity)
                if bars:
                    transformers_logging.enable_progress_bar()


# --- strict weights: every weight of the encoder (and BERT's pooler) comes from the checkpoint, in the config's shape
# transformers 5.24 renames these anywhere in a checkpoint key when it loads (conversion_mapping.py, "legacy").
_LEGACY_NAMES = {"LayerNorm.gamma": "LayerNorm.weight", "LayerNorm.beta": "LayerNorm.bias"}
_HEAD = "classifier."  # every family's classification head
_SHOWN_KEYS = 3


def _weight_files(folder: Path, trusted: bool, name: str) -> list[Path]:
    """The files from_pretrained reads the weights from, in its order of preference; a pickle only when trusted."""
    if (folder / "model.safetensors").is_file():
        return [folder / "model.safetensors"]
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        except (ValueError, UnicodeDecodeError, KeyError, TypeError, AttributeError):
            raise BackboneError("model_weights_failed", folder=name, reason=f"{index.name} is unreadable") from None
        return [folder / shard for shard in shards]
    if any(folder.glob("model-*.safetensors")):
        reason = "its model-*.safetensors shards have no model.safetensors.index.json"
        raise BackboneError("model_weights_failed", folder=name, reason=reason)
    if trusted and (folder / "pytorch_model.bin").is_file():
        return [folder / "pytorch_model.bin"]
    raise BackboneError("model_no_weights_trusted" if trusted else "model_no_weights", folder=name)


def _uses_safetensors(folder: Path, trusted: bool, name: str) -> bool:
    return _weight_files(folder, trusted, name)[0].suffix == ".safetensors"


def checkpoint_shapes(folder: Path, trusted: bool, name: str = "") -> dict[str, tuple[int, ...]]:
    """The name and shape of every tensor in folder's checkpoint, from the files' headers: no tensor is read."""
    name = name or str(folder)
    shapes: dict[str, tuple[int, ...]] = {}
    for path in _weight_files(folder, trusted, name):
        try:
            if path.suffix == ".safetensors":
                with safe_open(path, "pt") as file:
                    names = file.keys()  # noqa: SIM118 (safe_open is not iterable)
                    shapes.update((key, tuple(file.get_slice(key).get_shape())) for key in names)
                continue
            # On the meta device torch.load unpickles the structure and skips every tensor's bytes.
            state = torch.load(path, map_location="meta", weights_only=True)
        except Exception as error:  # a damaged file, a missing shard, a pickle weights_only refuses: all unusable
            raise BackboneError("model_weights_failed", folder=name, reason=_reason(error, folder, name)) from None
        if not isinstance(state, dict):
            raise BackboneError("model_weights_failed", folder=name, reason=f"{path.name} holds no state dict")
        shapes.update((key, tuple(value.shape)) for key, value in state.items() if isinstance(value, torch.Tensor))
    return shapes


def expected_shapes(config: PretrainedConfig) -> tuple[dict[str, tuple[int, ...]], set[str]]:
    """The family's *ForSequenceClassification(config)'s weight names and shapes, and its buffer names.

    Built on the meta device, so even the largest config `_read_config` allows costs no memory. Buffers
    (position_ids, token_type_ids) are rebuilt from the config, never loaded: a checkpoint may hold them or not.
    """
    with torch.device("meta"):
        model = family_of(config).model_class(config)
    weights = {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}
    return weights, {name for name, _ in model.named_buffers()}


def _model_key(key: str, expected: dict, prefix: str) -> str:
    """A checkpoint key as transformers 5.24 loads it into the family's *ForSequenceClassification.

    As core_model_loading.rename_source_key does: legacy LayerNorm names renamed, then the family's prefix (`bert.`,
    `roberta.`, `electra.`) stripped or added wherever that names a weight of the model (a BertModel checkpoint has
    none, BertForPreTraining has it).
    """
    for old, new in _LEGACY_NAMES.items():
        key = key.replace(old, new)
    if key.startswith(prefix) and key.removeprefix(prefix) in expected:
        return key.removeprefix(prefix)
    return f"{prefix}{key}" if f"{prefix}{key}" in expected else key


def _natural(key: str) -> list:
    """Sort key that puts encoder.layer.2 before encoder.layer.10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", key)]


def _first(keys: list[str]) -> str:
    return ", ".join(keys[:_SHOWN_KEYS])


def _shape(shape: tuple[int, ...]) -> str:
    return str(list(shape))


def check_weights(
    folder: Path, config: PretrainedConfig, *, need_head: bool, trusted: bool = True, name: str = ""
) -> None:
    """Refuse, before any tensor is read, a checkpoint that would leave a weight of the encoder or pooler random.

    From config.json and the checkpoint's names and shapes alone: every weight of the encoder (BertModel,
    RobertaModel, ElectraModel) must be there in the shape the config implies, and the checkpoint may hold no
    encoder weight the config lacks (a 13th layer, say). Only the classification head may be absent or sized for
    other classes, unless need_head (a trained model). Pre-training heads (cls.*, lm_head.*,
    discriminator_predictions.*) and buffers are ignored, as transformers ignores them. name: how errors call folder.
    """
    name = name or folder.name
    family = family_of(config)
    prefix = f"{family.base}."
    shapes = checkpoint_shapes(folder, trusted, name)
    expected, buffers = expected_shapes(config)
    buffers = {buffer.removeprefix(prefix) for buffer in buffers}
    found: dict[str, str] = {}  # model key -> checkpoint key
    unplaced, extra = [], []
    for key in sorted(shapes, key=_natural):
        target = _model_key(key, expected, prefix)
        if target in expected:
            found[target] = key
        elif target.removeprefix(prefix) not in buffers:
            unplaced.append(key)
            if target.removeprefix(prefix).startswith(family.backbone_parts):
                extra.append(key)
    checked = [key for key in expected if need_head or not key.startswith(_HEAD)]
    missing = [key for key in checked if key not in found and not key.startswith(_HEAD)]
    if missing and unplaced:  # the keys it has but cannot place usually show why (another prefix, another model)
        raise BackboneError(
            "model_weights_missing_unplaced", name=name, family=family.name, count=len(missing), keys=_first(missing),
            unplaced_count=len(unplaced), unplaced=_first(unplaced), encoder=family.encoder_class_name, prefix=prefix,
        )  # fmt: skip
    if missing:
        raise BackboneError(
            "model_weights_missing", name=name, family=family.name, count=len(missing), keys=_first(missing)
        )
    wrong = [key for key in checked if key in found and shapes[found[key]] != expected[key]]
    if wrong:
        first = found[wrong[0]]
        raise BackboneError(
            "model_weights_shape", name=name, count=len(wrong), keys=_first([found[key] for key in wrong]),
            first=first, shape=_shape(shapes[first]), expected=_shape(expected[wrong[0]]),
        )  # fmt: skip
    if extra:
        raise BackboneError("model_weights_extra", name=name, count=len(extra), keys=_first(extra))
    head = [key for key in checked if key.startswith(_HEAD) and key not in found]
    if head:
        raise BackboneError("model_no_head", folder=name, keys=_first(head))


def _check_loaded(info: dict, need_head: bool, name: str, family: str) -> list[str]:
    """transformers' own account of the load, checked again: nothing but a new head may start random.

    check_weights has refused such a folder already, so this only fires if the two ever disagree (a transformers
    upgrade that loads differently). Returns the head's keys that start random. family: as sentences call it.
    """
    fresh = sorted([*info["missing_keys"], *(key for key, *_ in info["mismatched_keys"])], key=_natural)
    random = [key for key in fresh if need_head or not key.startswith(_HEAD)]
    if random:
        raise BackboneError("model_weights_missing", name=name, family=family, count=len(random), keys=_first(random))
    return fresh


def load_backbone(
    source: str,
    label_names: list[str],
    dropout: float,
    tokenizer_mode: str | None = None,
    max_len: int | None = None,
    train_texts: list[str] | None = None,
    seed: int = 42,
    batch_size: int = SERVING_BATCH,
) -> Classifier:
    """A fresh classifier for these classes on top of the backbone named by source; refused before its weights are
    allocated when training it at batch_size rows of max_len tokens is over the memory budget."""
    torch.manual_seed(seed)
    labels = {"id2label": dict(enumerate(label_names)), "label2id": {n: i for i, n in enumerate(label_names)}}
    if source == TINY:
        if not train_texts:
            raise BackboneError("model_tiny_needs_texts")
        tokenizer = train_tiny_tokenizer(train_texts, tokenizer_mode or "gluonnlp", max_len or 64, seed)
        config = tiny_config(tokenizer.vocab_size, label_names, dropout)
        config.pad_token_id = tokenizer.pad_id
        check_memory(
            None, config, tokenizer.max_len, TINY, training=True, trusted=True, batch_size=batch_size,
            checkpoint_bytes=0,
        )  # fmt: skip
        return Classifier(_tutorial_head(BertForSequenceClassification(config)), tokenizer, label_names, source)
    folder = resolve_folder(source)
    name = folder.name if folder == Path(source).expanduser() else source  # a hub id rather than a cache folder
    config = _read_config(folder, name)
    tokenizer = _tokenizer(folder, config, tokenizer_mode, max_len, name)
    check_memory(
        folder, config, tokenizer.max_len, name, training=True, trusted=True, num_labels=len(label_names),
        batch_size=batch_size,
    )  # fmt: skip
    check_weights(folder, config, need_head=False, name=name)
    use_safetensors = _uses_safetensors(folder, True, name)
    family = family_of(config)
    try:
        with quiet_transformers():
            model, info = family.model_class.from_pretrained(
                folder,
                num_labels=len(label_names),
                classifier_dropout=dropout,
                ignore_mismatched_sizes=True,
                output_loading_info=True,
                use_safetensors=use_safetensors,
                dtype=torch.float32,  # transformers 5's "auto" takes a config's bf16/fp16: AdamW's steps round away
                **labels,
            )
    except Exception as error:
        raise BackboneError("model_weights_failed", folder=name, reason=_reason(error, folder, name)) from None
    if _check_loaded(
        info, need_head=False, name=name, family=family.name
    ):  # a head from the folder, with these classes, stays
        _tutorial_head(model)
    return Classifier(model, tokenizer, label_names, source)


def _tutorial_head(model: PreTrainedModel) -> PreTrainedModel:
    """A new classifier layer initialised as the tutorial's `nn.Linear` was (PyTorch's default), not N(0, 0.02).

    Measured with `bench --accuracy` (tiny, NSMC, 6 seeds): BERT's initialisation cost about 0.7 points against
    the tutorial's loop; with this one the two loops agree. RoBERTa and ELECTRA keep their own head's
    initialisation: the tutorial never had their head.
    """
    if family_of(model).model_type == "bert":
        model.classifier.reset_parameters()
    return model


def load_classifier(folder: str | Path, trusted: bool = True, name: str = "") -> Classifier:
    """A trained classifier saved by `save_classifier` (a run's model folder or an unpacked export).

    Nothing big is allocated before the config, the tokenizer, the memory budget and the checkpoint's header have
    been checked. name: how errors call the folder (default: its path), e.g. the zip a visitor uploaded.
    """
    folder = Path(folder)
    name = name or str(folder)
    config = _read_config(folder, name)
    if not config.id2label or len(config.id2label) < 2:
        raise BackboneError("model_no_classes", folder=name)
    tokenizer = _tokenizer(folder, config, None, None, name)
    check_memory(folder, config, tokenizer.max_len, name, training=False, trusted=trusted)
    # A plain backbone (BertModel) would load too, with a random head and BertConfig's default LABEL_0/LABEL_1.
    check_weights(folder, config, need_head=True, trusted=trusted, name=name)
    use_safetensors = _uses_safetensors(folder, trusted, name)
    try:
        with quiet_transformers():
            model, info = family_of(config).model_class.from_pretrained(
                folder,
                output_loading_info=True,
                use_safetensors=use_safetensors,
                dtype=torch.float32,  # not a config's bf16/fp16: the fp32 reference serving compares against
            )
    except Exception as error:
        raise BackboneError("model_weights_failed", folder=name, reason=_reason(error, folder, name)) from None
    _check_loaded(info, need_head=True, name=name, family=family_of(config).name)
    model.eval()
    label_names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    source = getattr(model.config, "kobert_demo_source", str(folder))
    return Classifier(model, tokenizer, label_names, source)


def freeze_lower_layers(model: PreTrainedModel, trainable: int) -> list[torch.nn.Module]:
    """Freeze the embeddings and all but the top `trainable` encoder layers; returns the frozen modules."""
    family = family_of(model)
    layers = family.layers(model)
    frozen = [*family.embedding_modules(model), *layers[: max(0, len(layers) - trainable)]]
    for module in frozen:
        module.requires_grad_(False)
    return frozen


def save_classifier(
    classifier: Classifier,
    folder: str | Path,
    card: Callable[[str | None], str] | None = None,
    metrics: dict | None = None,
) -> str | None:
    """Write the classifier's model folder whole: a kill at any moment leaves the previous complete folder or the new
    one, never a mix (and nothing else that was in the folder, such as serving's cache of the old weights).

    Weights as safetensors, config with the class names, and the tokenizer files. KoBERT's: ours, and
    tokenizer.json + tokenizer_config.json for plain transformers when they reproduce ours exactly (else None of
    those and the reason is returned). Other models': their own tokenizer.json, which plain transformers reads.
    card(reason) gives README.md; metrics go to METRICS_FILE with the weights' SHA-256 (one file: transformers shards
    from 50 GB): the figures that describe these very weights. All of it goes into a temporary sibling folder, is
    synced, then swapped into place.
    """
    folder = Path(folder)
    files.recover_folder(folder)
    files.remove_temps(folder)  # what earlier killed saves left; this is the folder's one writer
    tmp = files.temp_name(folder)
    try:
        tmp.mkdir(parents=True)
        classifier.model.config.kobert_demo_source = classifier.source
        with quiet_transformers():  # no "Writing model shards" bar
            classifier.model.save_pretrained(tmp, safe_serialization=True)
            classifier.tokenizer.save(tmp)
        reason = None
        if not isinstance(classifier.tokenizer, FastTokenizer):
            reason = save_for_transformers(classifier.tokenizer, tmp)
        if card is not None:
            files.write_text(tmp / "README.md", card(reason))
        if metrics is not None:
            files.write_json(tmp / METRICS_FILE, {**metrics, "weights_sha256": file_sha256(tmp / WEIGHTS_FILE)})
        files.sync_folder(tmp)
        files.replace_folder(tmp, folder)
        files.sync_directory(folder.parent)
    except OSError as error:  # name the model folder, not its temporary
        if error.filename:
            error.filename = str(error.filename).replace(str(tmp), str(folder))
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return reason


def file_sha256(path: Path) -> str:
    """The file's SHA-256 in hex (0.3 s for KoBERT's 370 MB on a 2-core EPYC with SHA-NI)."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(4 * 2**20):
            digest.update(chunk)
    return digest.hexdigest()


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
