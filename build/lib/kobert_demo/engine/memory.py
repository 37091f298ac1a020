"""What a model costs in memory, from its config and checkpoint size alone, and the budget checks that refuse it
before anything big is allocated."""

from __future__ import annotations

import copy
import math
from pathlib import Path

from transformers import PretrainedConfig

from kobert_demo.basics.config import TINY
from kobert_demo.basics.errors import BackboneError
from kobert_demo.basics.settings import limits
from kobert_demo.engine.checkpoints import expected_shapes, read_config, resolve_folder, weight_files
from kobert_demo.engine.families import family_of
from kobert_demo.engine.tiny import TINY_VOCAB, tiny_config


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


def weights_bytes(folder: Path, trusted: bool, name: str) -> int:
    return sum(path.stat().st_size for path in weight_files(folder, trusted, name))


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
    checkpoint = weights_bytes(folder, trusted, name) if checkpoint_bytes is None else checkpoint_bytes
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
        config = read_config(folder, source)
        length = min(max_len, family_of(config).max_tokens(config))
        try:
            checkpoint = weights_bytes(folder, True, source)
        except BackboneError:
            checkpoint = 4 * parameter_count(config, len(label_names))
    except BackboneError:
        return None
    return check_memory(
        folder, config, length, source, training=True, trusted=True, num_labels=len(label_names),
        batch_size=batch_size, checkpoint_bytes=checkpoint,
    )  # fmt: skip
