"""Why this label? Each word's share of a class's score, by Integrated Gradients on the input embeddings.

IG integrates the gradient of the explained class's log-probability along the straight line from a baseline (every
piece replaced by [PAD], the special tokens kept) to the sentence's own embeddings. A piece's score is that path
integral times how far its embedding moved; the scores add up to the change in log-probability between baseline and
sentence (IG's completeness), and whatever they miss is reported as the completeness gap. Pieces are summed into the
words of the text as typed (`text.split()`: Korean eojeol), so a word the tokenizer split into several pieces, or
whose punctuation became pieces of its own, gets one score.

The log-probability, not the raw logit, is explained: a word that raised every class's logit alike would look like
evidence for the class while changing no probability.

Captum's IntegratedGradients runs on `inputs_embeds` instead of LayerIntegratedGradients' hook on the embedding
layer: the model is shared with visitors' predictions, which a hook on it would see and change.
"""

from __future__ import annotations

import math
import threading
from dataclasses import asdict, dataclass

import torch
from transformers import PreTrainedModel

from kobert_demo.basics.errors import UserFacingError
from kobert_demo.basics.settings import limits
from kobert_demo.engine.memory import OVERHEAD_BYTES, OVERHEAD_SHARE, activation_bytes
from kobert_demo.engine.tokenizer import Encoded

# Gauss-Legendre steps tried in turn until the completeness gap is small. Measured on 200 held-out NSMC reviews with
# `tiny` trained on 30k of them: 8 steps met the bound on 99.5% of sentences, 16 on all (4 steps: 87.5%). At KoBERT's
# size (Intel Xeon with AMX, 2 cores, 21 tokens) 8 steps take 0.58 s and 16 take 0.93 s. A tiny ELECTRA run needed
# 64 on one sentence (32 left a gap of 7%).
STEPS = (8, 16, 32, 64)
# The gap allowed, relative to the change it explains (at least MIN_CHANGE, so that a change near 0 is not divided).
MAX_RELATIVE_GAP = 0.05
MIN_CHANGE = 0.1
# Tokens per forward and backward pass (steps x sentence length): bounds the activations kept for the backward pass,
# whatever a visitor sends (a 512-token sentence at 64 steps would otherwise keep about 5 GB at KoBERT's size).
TOKENS_PER_PASS = 1024
# One explanation at a time per process, so that the memory bound of one (explain_rows) is the process's too: three
# concurrent 512-token explanations of a 96.5M-parameter model took a server from 877 MB to 3,124 MB.
EXPLAIN_LOCK = threading.Lock()
MAX_LABEL_CHARS, MAX_LABELS_SHOWN = 40, 20  # what an error repeats of a visitor's label and of the model's classes


@dataclass
class Explanation:
    """One sentence explained for one class: the JSON the API and `explain --json` give."""

    text: str
    label: str
    probability: float
    words: list[str]
    word_scores: list[float]
    tokens: list[str]
    token_scores: list[float]
    completeness_gap: float  # sum of token_scores minus the change in log-probability from baseline to sentence
    steps: int

    def to_json(self) -> dict:
        """What the API and `explain --json` give: every field but `steps` (a diagnostic of how it was computed)."""
        return {key: value for key, value in asdict(self).items() if key != "steps"}


def explain(
    model: PreTrainedModel, encoded: Encoded, text: str, label_names: list[str], label: str | None = None
) -> Explanation:
    """Explain model's log-probability of `label` (default: its predicted class) for one encoded sentence."""
    if label and label not in label_names:
        shown = ", ".join(label_names[:MAX_LABELS_SHOWN]) + (", …" if len(label_names) > MAX_LABELS_SHOWN else "")
        raise UserFacingError("err_unknown_label", label=label[:MAX_LABEL_CHARS], labels=shown)
    model = model.eval()
    rows = explain_rows(model, len(encoded.ids))
    with EXPLAIN_LOCK:
        return _explain(model, encoded, text, label_names, label, rows)


def explanation_bytes(model: PreTrainedModel, rows: int, length: int) -> int:
    """What one pass of rows sentences of length tokens adds: every layer's activations kept for the backward pass
    (model.activation_bytes, as training counts them) and captum's scaled inputs and their gradients for the most
    steps, with the allocator's overhead."""
    width = model.get_input_embeddings().embedding_dim
    inputs = 2 * 4 * max(STEPS) * length * width
    tensors = activation_bytes(model.config, rows, length, training=True) + inputs
    return math.ceil(tensors * (1 + OVERHEAD_SHARE)) + OVERHEAD_BYTES


def explain_rows(model: PreTrainedModel, length: int) -> int:
    """Sentences per forward and backward pass for a sentence of length tokens: at most TOKENS_PER_PASS tokens, and
    fewer while the pass's memory (explanation_bytes) is more than the model budget leaves beside the model's
    weights. UserFacingError `err_explain_too_big` when even one sentence's is."""
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    allowance = limits().max_model_bytes - weights
    rows = max(1, TOKENS_PER_PASS // length)
    while rows > 1 and explanation_bytes(model, rows, length) > allowance:
        rows //= 2
    need = explanation_bytes(model, rows, length)
    if need > allowance:
        raise UserFacingError(
            "err_explain_too_big", tokens=length, need_mb=math.ceil(need / 2**20), limit_mb=max(0, allowance) // 2**20
        )
    return rows


def _explain(
    model: PreTrainedModel, encoded: Encoded, text: str, label_names: list[str], label: str | None, rows: int
) -> Explanation:
    device = next(model.parameters()).device
    ids = torch.tensor([encoded.ids], device=device)
    special = torch.tensor([[word is None for word in encoded.words]], device=device)
    embeddings = model.get_input_embeddings()
    pad_id = model.config.pad_token_id if model.config.pad_token_id is not None else 0
    with torch.no_grad():
        sentence = embeddings(ids)
        baseline = embeddings(torch.where(special, ids, pad_id))
        log_probs = _log_probs(model, sentence)[0]
    target = label_names.index(label) if label else int(log_probs.argmax())
    scores, gap, steps = _integrated_gradients(model, sentence, baseline, target, rows)
    return Explanation(
        text=text,
        label=label_names[target],
        probability=math.exp(float(log_probs[target])),
        words=text.split(),
        word_scores=word_scores(scores, encoded.words, len(text.split())),
        tokens=list(encoded.pieces),
        token_scores=scores,
        completeness_gap=gap,
        steps=steps,
    )


def _log_probs(model: PreTrainedModel, embeds: torch.Tensor) -> torch.Tensor:
    """Log-probabilities of every class for a batch of unpadded embedded sentences."""
    mask = torch.ones(embeds.shape[:2], dtype=torch.long, device=embeds.device)
    logits = model(inputs_embeds=embeds, attention_mask=mask, token_type_ids=torch.zeros_like(mask)).logits
    return logits.float().log_softmax(-1)


def _integrated_gradients(
    model: PreTrainedModel, sentence: torch.Tensor, baseline: torch.Tensor, target: int, rows: int
) -> tuple[list[float], float, int]:
    """Each token's IG score, the completeness gap, and the steps taken: the fewest of STEPS whose gap is small;
    rows: the scaled sentences per forward and backward pass (explain_rows)."""
    from captum.attr import IntegratedGradients

    def forward(embeds: torch.Tensor) -> torch.Tensor:
        return _log_probs(model, embeds)[:, target]

    ig = IntegratedGradients(forward)
    for steps in STEPS:
        attributions, delta = ig.attribute(
            sentence, baselines=baseline, n_steps=steps, method="gausslegendre", return_convergence_delta=True,
            internal_batch_size=rows,
        )  # fmt: skip
        scores = attributions.sum(-1)[0]
        gap = float(delta[0])
        change = float(scores.sum()) - gap
        if abs(gap) <= MAX_RELATIVE_GAP * max(abs(change), MIN_CHANGE):
            break
    return scores.tolist(), gap, steps


def word_scores(token_scores: list[float], token_words: list[int | None], n_words: int) -> list[float]:
    """The scores of each word's tokens summed (0 for a word cut off by max_len); special tokens belong to none."""
    scores = [0.0] * n_words
    for score, word in zip(token_scores, token_words, strict=True):
        if word is not None:
            scores[word] += score
    return scores
