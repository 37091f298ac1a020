"""Backbones (hub id, local folder, offline `tiny`) -> a classifier and its tokenizer, and trained classifiers
loaded and saved whole.

For KoBERT and BERT the classifier is the tutorial's: the pooled [CLS] output, dropout (0.5), a linear layer to the
classes, which is exactly `BertForSequenceClassification` with `classifier_dropout`. RoBERTa and ELECTRA keep their
own `*ForSequenceClassification` head (families.py), so plain transformers code loads every run too. KoBERT keeps its
own exact tokenizer (tokenizer.py); other models use their own fast tokenizer (fast_tokenizer.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from transformers import BertForSequenceClassification, PretrainedConfig, PreTrainedModel
from transformers.utils import logging as transformers_logging

from kobert_demo.basics import files
from kobert_demo.basics.config import METRICS_FILE, TINY, WEIGHTS_FILE
from kobert_demo.basics.errors import BackboneError
from kobert_demo.engine.checkpoints import (
    check_loaded,
    check_weights,
    file_sha256,
    load_failure_reason,
    read_config,
    resolve_folder,
    uses_safetensors,
)
from kobert_demo.engine.classifier import Classifier, Tokenizer
from kobert_demo.engine.families import family_of
from kobert_demo.engine.fast_tokenizer import MAX_UNKNOWN_SHARE, FastTokenizer, has_fast_tokenizer
from kobert_demo.engine.hf_tokenizer import save_for_transformers
from kobert_demo.engine.memory import SERVING_BATCH, check_memory
from kobert_demo.engine.tiny import tiny_config, train_tiny_tokenizer
from kobert_demo.engine.tokenizer import SETTINGS_FILE, KoBertTokenizer


def uses_kobert_tokenizer(folder: Path) -> bool:
    """KoBERT's own tokenizer for our saved KoBERT runs and for a folder with a SentencePiece model and no other
    tokenizer (KoBERT's hub folder, whose declared XLNetTokenizer would be wrong); every other folder's own."""
    if (folder / SETTINGS_FILE).is_file():
        return True
    return any(folder.glob("*.model")) and not has_fast_tokenizer(folder)


def load_tokenizer(
    folder: Path, config: PretrainedConfig, mode: str | None, max_len: int | None, name: str
) -> Tokenizer:
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
        reason = load_failure_reason(error, folder, name)
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
    config = read_config(folder, name)
    tokenizer = load_tokenizer(folder, config, tokenizer_mode, max_len, name)
    check_memory(
        folder, config, tokenizer.max_len, name, training=True, trusted=True, num_labels=len(label_names),
        batch_size=batch_size,
    )  # fmt: skip
    check_weights(folder, config, need_head=False, name=name)
    use_safetensors = uses_safetensors(folder, True, name)
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
        raise BackboneError(
            "model_weights_failed", folder=name, reason=load_failure_reason(error, folder, name)
        ) from None
    if check_loaded(
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
    config = read_config(folder, name)
    if not config.id2label or len(config.id2label) < 2:
        raise BackboneError("model_no_classes", folder=name)
    tokenizer = load_tokenizer(folder, config, None, None, name)
    check_memory(folder, config, tokenizer.max_len, name, training=False, trusted=trusted)
    # A plain backbone (BertModel) would load too, with a random head and BertConfig's default LABEL_0/LABEL_1.
    check_weights(folder, config, need_head=True, trusted=trusted, name=name)
    use_safetensors = uses_safetensors(folder, trusted, name)
    try:
        with quiet_transformers():
            model, info = family_of(config).model_class.from_pretrained(
                folder,
                output_loading_info=True,
                use_safetensors=use_safetensors,
                dtype=torch.float32,  # not a config's bf16/fp16: the fp32 reference serving compares against
            )
    except Exception as error:
        raise BackboneError(
            "model_weights_failed", folder=name, reason=load_failure_reason(error, folder, name)
        ) from None
    check_loaded(info, need_head=True, name=name, family=family_of(config).name)
    model.eval()
    label_names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    source = getattr(model.config, "kobert_demo_source", str(folder))
    return Classifier(model, tokenizer, label_names, source)


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
    with files.atomic_folder(folder) as tmp:
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
    return reason
