"""The classifier: a trained model with its tokenizer and classes, and the training forward (padding-free packing,
FastDropout) that train.py runs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

from kobert_demo.engine.families import family_of, padded_forward_reason
from kobert_demo.engine.fast_tokenizer import FastTokenizer
from kobert_demo.engine.tokenizer import KoBertTokenizer

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


def _weights_buffer(module: nn.Module, class_weights: Sequence[float] | None) -> None:
    """The loss's class weights as a buffer, so that they follow the model to its device; not persistent: the
    saved model, its state dict and serving are the same with or without them."""
    weights = torch.tensor(class_weights, dtype=torch.float32) if class_weights is not None else None
    module.register_buffer("class_weights", weights, persistent=False)


class PaddingFreeClassifier(nn.Module):
    """The classifier's forward without padding, for training and evaluation: same weights, same math.

    A random batch of NSMC rows pads to 64 tokens a row for 25 real ones. Here the real tokens of the whole batch
    are packed into one matrix, so every linear layer (nearly all of BERT's work) computes them and nothing else;
    only attention, a small share at these lengths, sees the batch padded, with padded keys masked out. The last
    layer past its attention runs for [CLS] alone, the only row the classifier reads. The optimizer still sees the
    tutorial's random batches whole. Attention is written out (matmul, softmax, matmul) as transformers' eager
    attention is: on CPUs, PyTorch's fused attention kernel was 3x slower in bf16 training at these sizes.
    class_weights: one loss weight per class (class_weights=balanced), else the plain mean cross-entropy.
    """

    def __init__(self, model: PreTrainedModel, class_weights: Sequence[float] | None = None) -> None:
        super().__init__()
        self.model = model
        self.family = family_of(model)
        _weights_buffer(self, class_weights)

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

        return _classified(family.head(self.model, x), labels, self.class_weights)


class PaddedClassifier(nn.Module):
    """transformers' own forward, padding and all, with the loss PaddingFreeClassifier computes: for configs whose
    padding-free forward is not proven (families.padded_forward_reason)."""

    def __init__(self, model: PreTrainedModel, class_weights: Sequence[float] | None = None) -> None:
        super().__init__()
        self.model = model
        _weights_buffer(self, class_weights)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> SequenceClassifierOutput:
        logits = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits
        return _classified(logits, labels, self.class_weights)


def _classified(
    logits: torch.Tensor, labels: torch.Tensor | None, weight: torch.Tensor | None = None
) -> SequenceClassifierOutput:
    """The logits and, given labels, their cross-entropy in fp32: both training forwards' output. With class
    weights, torch's weighted mean: each row's loss times its class's weight, over the sum of those weights."""
    loss = nn.functional.cross_entropy(logits.float(), labels, weight=weight) if labels is not None else None
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


def dropout_generator(model: nn.Module) -> np.random.Generator | None:
    """The one NumPy generator use_fast_dropout gave model's FastDropouts (None without any): its
    `bit_generator.state` is what a checkpoint keeps of the dropout masks to come."""
    return next((module.rng for module in model.modules() if isinstance(module, FastDropout)), None)


PADDING_FREE = "padding-free"


def training_forward(model: PreTrainedModel, class_weights: Sequence[float] | None = None) -> tuple[nn.Module, str]:
    """The forward a model trains and evaluates with, and its name: `padding-free`, or `padded (reason)`;
    class_weights, if given, weigh its loss (one per class)."""
    reason = padded_forward_reason(model.config)
    if reason:
        return PaddedClassifier(model, class_weights), f"padded ({reason})"
    return PaddingFreeClassifier(model, class_weights), PADDING_FREE


def _padded_heads(t: torch.Tensor, packed: torch.Tensor, shape: tuple[int, int], heads: int) -> torch.Tensor:
    """Packed [tokens, hidden] -> padded [rows, heads, length, head size], zeros where there was padding."""
    rows, length = shape
    padded = t.new_zeros(rows * length, t.shape[-1]).index_copy(0, packed, t[: len(packed)])
    return padded.view(rows, length, heads, -1).transpose(1, 2)


def _add_and_norm(output: nn.Module, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """BertSelfOutput / BertOutput: dense, dropout, residual, LayerNorm."""
    return output.LayerNorm(output.dropout(output.dense(x)) + residual)


def freeze_lower_layers(model: PreTrainedModel, trainable: int) -> list[torch.nn.Module]:
    """Freeze the embeddings and all but the top `trainable` encoder layers; returns the frozen modules."""
    family = family_of(model)
    layers = family.layers(model)
    frozen = [*family.embedding_modules(model), *layers[: max(0, len(layers) - trainable)]]
    for module in frozen:
        module.requires_grad_(False)
    return frozen
