"""The padding-free forward of every family (BERT, RoBERTa, ELECTRA with and without its embedding projection)
computes what transformers' own *ForSequenceClassification computes: the same logits, loss and gradient for every
weight, at several lengths and paddings; configs it does not cover train padded, and the run says so."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import FAMILY_TYPES

from kobert_demo.basics.config import TrainConfig
from kobert_demo.engine.classifier import (
    PADDING_FREE,
    Classifier,
    PaddedClassifier,
    PaddingFreeClassifier,
    training_forward,
)
from kobert_demo.engine.families import FAMILIES, family_of, padded_forward_reason
from kobert_demo.engine.loading import load_backbone
from kobert_demo.engine.train import train

LABELS = ["a", "b", "c"]
SHORT = ["별로", "ㅋㅋ 최고"]
LONG = [
    "정말 재미있는 영화였어요, 또 보고 싶네요. 배우들 연기는 좋은데 스토리가 너무 뻔하다",
    "원작 소설을 먼저 읽었는데, 영화는 원작의 분위기를 잘 살리지 못한 것 같아 아쉽다. 그래도 배우들의 연기만큼은 "
    "인상적이었고 특히 마지막 장면의 여운이 오래 남았다.",
]
VARIANTS = (*FAMILY_TYPES, "electra-unprojected")


def electra_unprojected(electra: Path, folder: Path) -> Path:
    """tiny ELECTRA with embedding_size == hidden_size (no embeddings_project), random weights, the same tokenizer."""
    from transformers import ElectraConfig, ElectraForPreTraining

    shutil.copytree(electra, folder)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    config["embedding_size"] = config["hidden_size"]
    torch.manual_seed(1)
    ElectraForPreTraining(ElectraConfig(**config)).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def variant_folders(family_folders, tmp_path_factory) -> dict[str, Path]:
    folders = dict(family_folders)
    folders["electra-unprojected"] = electra_unprojected(
        family_folders["electra"], tmp_path_factory.mktemp("electra") / "unprojected"
    )
    return folders


@pytest.fixture(scope="module", params=VARIANTS)
def classifier(request, variant_folders) -> Classifier:
    """A fresh 3-class classifier of each variant (its weights are not changed by the tests)."""
    classifier = load_backbone(str(variant_folders[request.param]), LABELS, 0.5)
    encoder = family_of(classifier.model).encoder(classifier.model)
    assert (getattr(encoder, "embeddings_project", None) is not None) == (request.param == "electra")
    return classifier


def plain_copy(model: torch.nn.Module) -> torch.nn.Module:
    """transformers' own model with the same weights: a deepcopy in eval mode, without our [CLS]-only hook."""
    reference = copy.deepcopy(model).eval()
    output = family_of(reference).layers(reference)[-1].attention.output
    output._forward_pre_hooks.clear()
    del output._cls_only
    return reference


def batches(classifier: Classifier) -> dict[str, dict[str, torch.Tensor]]:
    """Padded batches of several lengths and paddings, as the tokenizer makes them."""
    tokenizer = classifier.tokenizer
    limit = family_of(classifier.model).max_tokens(classifier.model.config)
    pad = tokenizer.pad
    widened = pad(tokenizer.encode_batch([*SHORT, *LONG]))
    widened = {key: torch.nn.functional.pad(value, (0, 7)) for key, value in widened.items()}
    widened["input_ids"][:, -7:] = tokenizer.pad_id
    return {
        "short and long": pad(tokenizer.encode_batch([*SHORT, *LONG])),
        "truncated at max_len": pad(tokenizer.encode_batch([*LONG, SHORT[0]], 12)),
        "one row": pad(tokenizer.encode_batch(LONG[:1])),
        "extra right padding": widened,
        "at the position limit": pad(tokenizer.encode_batch([LONG[1] * 20, SHORT[1]], limit)),
    }


CASES = ("short and long", "truncated at max_len", "one row", "extra right padding", "at the position limit")


@pytest.mark.parametrize("case", CASES)
def test_padding_free_forward_equals_transformers(classifier: Classifier, case: str) -> None:
    """The same logits, loss and gradient for every weight as the family's own *ForSequenceClassification (fp32)."""
    model = copy.deepcopy(classifier.model).eval()
    reference = plain_copy(model)
    batch = batches(classifier)[case]
    labels = torch.arange(len(batch["input_ids"])) % len(LABELS)
    if case != "one row":
        assert batch["attention_mask"].eq(0).any()  # some rows are padded
    if case == "at the position limit":  # the longest row fills every position the model has
        assert batch["attention_mask"].sum(1).max() == family_of(model).max_tokens(model.config)

    ours = PaddingFreeClassifier(model).eval()(**batch, labels=labels)
    theirs = reference(**batch, labels=labels)
    torch.testing.assert_close(ours.logits, theirs.logits)
    torch.testing.assert_close(ours.loss, theirs.loss)
    ours.loss.backward()
    theirs.loss.backward()
    compared = 0
    for (name, p), (their_name, q) in zip(model.named_parameters(), reference.named_parameters(), strict=True):
        assert name == their_name
        if q.grad is None or not q.grad.any():  # token type rows beyond 0 (BERT, ELECTRA), never used
            assert p.grad is None or not p.grad.any(), name
            continue
        assert p.grad is not None and p.grad.any(), name
        torch.testing.assert_close(p.grad, q.grad, msg=name)
        compared += 1
    assert compared == sum(1 for _ in model.parameters())  # every weight, not a few


def test_the_position_limit_is_transformers_own(classifier: Classifier) -> None:
    """max_tokens is the longest input transformers' forward takes: one token more indexes past the positions.
    RoBERTa counts positions from pad_token_id + 1, so it takes max_position_embeddings - pad_token_id - 1."""
    model, config = classifier.model, classifier.model.config
    family = family_of(model)
    limit = family.max_tokens(config)
    if family.model_type == "roberta":
        assert limit == config.max_position_embeddings - config.pad_token_id - 1
    else:
        assert limit == config.max_position_embeddings
    assert classifier.tokenizer.max_len <= limit
    ids = torch.full((1, limit + 1), classifier.tokenizer.cls_id)
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids)}
    with torch.no_grad(), pytest.raises((IndexError, RuntimeError)):  # an index or a size past the positions
        plain_copy(model)(**batch)
    with torch.no_grad():
        plain_copy(model)(**{key: value[:, :limit] for key, value in batch.items()})


def test_the_cls_only_last_layer_leaves_transformers_forward_unchanged(classifier: Classifier) -> None:
    """Our hook (skip_unused_last_layer_rows) on transformers' own padded forward: same logits and gradients."""
    model = copy.deepcopy(classifier.model).eval()
    reference = plain_copy(model)
    batch = batches(classifier)["short and long"]
    ours, theirs = model(**batch).logits, reference(**batch).logits
    torch.testing.assert_close(ours, theirs)
    ours.sum().backward()
    theirs.sum().backward()
    for (name, p), q in zip(model.named_parameters(), reference.parameters(), strict=True):
        if q.grad is not None:
            torch.testing.assert_close(p.grad, q.grad, msg=name)
    encoder = family_of(model).encoder(model)
    assert encoder(**batch).last_hidden_state.shape[1] == 1  # only the first token is left after the last layer


def test_bf16_autocast_stays_close(classifier: Classifier) -> None:
    """Under bf16 autocast (the CPU training path) the logits stay near transformers' own bf16 forward."""
    model = classifier.model.eval()
    batch = batches(classifier)["short and long"]
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        ours = PaddingFreeClassifier(model)(**batch).logits.float()
        theirs = plain_copy(model)(**batch).logits.float()
    torch.testing.assert_close(ours, theirs, atol=0.05, rtol=0.05)


def test_dropout_applies_in_training_mode(classifier: Classifier) -> None:
    model = PaddingFreeClassifier(classifier.model)
    batch = batches(classifier)["short and long"]
    try:
        model.train()
        with torch.no_grad():
            assert not torch.equal(model(**batch).logits, model(**batch).logits)
        model.eval()
        with torch.no_grad():
            torch.testing.assert_close(model(**batch).logits, model(**batch).logits)
    finally:
        classifier.model.eval()


# Configs without a proven padding-free forward train padded, and say so


def decoder_folder(folder: Path, family_folder: Path) -> Path:
    """A copy of family_folder whose config asks for a decoder (causal attention)."""
    shutil.copytree(family_folder, folder)
    path = folder / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text(encoding="utf-8")), "is_decoder": True}), "utf-8")
    return folder


def test_every_family_is_padding_free_unless_a_decoder(family_folder: Path, tmp_path: Path) -> None:
    encoder = load_backbone(str(family_folder), LABELS, 0.5).model
    assert padded_forward_reason(encoder.config) is None
    assert training_forward(encoder)[1] == PADDING_FREE
    decoder = load_backbone(str(decoder_folder(tmp_path / "decoder", family_folder)), LABELS, 0.5)
    model, forward = training_forward(decoder.model)
    assert isinstance(model, PaddedClassifier) and forward == "padded (is_decoder)"

    batch = batches(decoder)["short and long"]
    labels = torch.tensor([0, 1, 2, 0])
    ours = model.eval()(**batch, labels=labels)
    theirs = plain_copy(decoder.model)(**batch, labels=labels)
    torch.testing.assert_close(ours.logits, theirs.logits)
    torch.testing.assert_close(ours.loss, theirs.loss)
    # and the padding-free forward would not compute it: causal attention is not what it does
    assert not torch.allclose(PaddingFreeClassifier(decoder.model).eval()(**batch).logits, theirs.logits)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["roberta"])
def test_a_decoder_config_trains_padded_and_the_run_says_so(family_folders, small_splits, tmp_path, family) -> None:
    folder = decoder_folder(tmp_path / "decoder", family_folders[family])
    config = TrainConfig(model=str(folder), epochs=1, batch_size=32, precision="fp32", lr=1e-3)
    events = list(train(config, small_splits, tmp_path / "run"))
    assert events[-1].type == "done", events[-1]
    assert events[0].forward == "padded (is_decoder)"
    assert (tmp_path / "run" / "model" / "config.json").is_file()


def test_families_are_the_three_model_types() -> None:
    assert sorted(FAMILIES) == sorted(FAMILY_TYPES)
    assert [FAMILIES[t].encoder_class_name for t in FAMILY_TYPES] == ["BertModel", "RobertaModel", "ElectraModel"]
