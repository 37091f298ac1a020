"""Tests for engine.loading and engine.checkpoints: backbone sources (folder, tiny, hub), every refusal, saving and
loading classifiers."""

from __future__ import annotations

import json
import math
import resource
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import (
    KOBERT_FILES,
    REPO,
    TOY_KOBERT_SHAPE,
    VECTORS,
    call_cli,
    native_kobert_proto,
    run_cli,
    sample_rows,
    write_tsv,
)
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import BertConfig, BertForPreTraining, BertForSequenceClassification, BertModel

from kobert_demo.basics.config import KOBERT_HUB_ID, TINY
from kobert_demo.basics.errors import BackboneError
from kobert_demo.engine import checkpoints, loading, memory
from kobert_demo.engine.checkpoints import _model_key, describe_source, expected_shapes
from kobert_demo.engine.classifier import (
    Classifier,
    FastDropout,
    PaddedClassifier,
    PaddingFreeClassifier,
    skip_unused_last_layer_rows,
    training_forward,
    use_fast_dropout,
)
from kobert_demo.engine.families import FAMILIES, family_of
from kobert_demo.engine.loading import load_backbone, load_classifier, save_classifier
from kobert_demo.engine.tiny import TINY_SHAPE
from kobert_demo.engine.tokenizer import KoBertTokenizer
from kobert_demo.tools import bench

LABELS = ["긍정", "부정", "중립"]
SENTENCES = ["아 더빙.. 진짜 짜증나네요 목소리", "굳 ㅋ", "한국어 모델을 공유합니다.", "정말 최고의 영화였다!!"]


def backbone_error(source: str | Path, **kwargs) -> str:
    """The one-line BackboneError message load_backbone raises for source."""
    with pytest.raises(BackboneError) as caught:
        load_backbone(str(source), ["0", "1"], 0.1, **kwargs)
    message = str(caught.value)
    assert "\n" not in message
    return message


def edit_config(folder: Path, **changes) -> None:
    path = folder / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text(encoding="utf-8")), **changes}), encoding="utf-8")


def logits(classifier: Classifier, texts: list[str]) -> torch.Tensor:
    classifier.model.eval()
    with torch.no_grad():
        return classifier.model(**classifier.tokenizer(texts)).logits


# Local folders


def test_load_backbone_from_folder(tiny_kobert_folder: Path) -> None:
    classifier = load_backbone(str(tiny_kobert_folder), LABELS, dropout=0.3)
    model = classifier.model
    assert model.config.num_labels == 3
    assert model.classifier.out_features == 3
    assert model.dropout.p == 0.3 == model.config.classifier_dropout
    assert model.config.id2label == {0: "긍정", 1: "부정", 2: "중립"}
    assert model.config.label2id == {"긍정": 0, "부정": 1, "중립": 2}
    assert classifier.label_names == LABELS
    assert classifier.source == str(tiny_kobert_folder)
    # The backbone's weights are the folder's, not a fresh initialisation.
    saved = load_file(tiny_kobert_folder / "model.safetensors")
    for name in ("embeddings.word_embeddings.weight", "encoder.layer.1.output.dense.weight"):
        assert torch.equal(model.bert.state_dict()[name], saved[name])
    # Its tokenizer is the original KoBERT one (vocab scheme), in the mode asked for.
    assert classifier.tokenizer.vocab_size == 8002
    whole = load_backbone(str(tiny_kobert_folder), LABELS, 0.3, tokenizer_mode="whole", max_len=16).tokenizer
    assert (whole.mode, whole.max_len) == ("whole", 16)
    for vector in VECTORS:
        tokenizer = classifier.tokenizer if vector["mode"] == "gluonnlp" else whole
        assert tokenizer.encode(vector["text"]).ids == vector["ids"]


def test_load_backbone_head_follows_seed(tiny_kobert_folder: Path) -> None:
    a = load_backbone(str(tiny_kobert_folder), LABELS, 0.1, seed=1).model.classifier.weight
    b = load_backbone(str(tiny_kobert_folder), LABELS, 0.1, seed=1).model.classifier.weight
    c = load_backbone(str(tiny_kobert_folder), LABELS, 0.1, seed=2).model.classifier.weight
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_folder_without_config(model_folder_copy: Path) -> None:
    (model_folder_copy / "config.json").unlink()
    assert "has no config.json, so it is not a model folder" in backbone_error(model_folder_copy)


def test_folder_with_broken_config(model_folder_copy: Path) -> None:
    (model_folder_copy / "config.json").write_text('{"model_type": "bert",', encoding="utf-8")
    assert backbone_error(model_folder_copy).endswith("config.json is not valid JSON.")
    (model_folder_copy / "config.json").write_text("[1, 2]", encoding="utf-8")
    assert backbone_error(model_folder_copy).endswith("config.json holds no JSON object, so it is not a model config.")


def test_folder_with_other_model_type(model_folder_copy: Path) -> None:
    edit_config(model_folder_copy, model_type="gpt2")
    assert "describes a 'gpt2' model; KoBERT Demo trains these kinds: bert, roberta, electra." in backbone_error(
        model_folder_copy
    )


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"hidden_size": 10**6}, "hidden_size=1000000; expected a whole number from 1 to 4096"),
        ({"num_hidden_layers": 1000}, "num_hidden_layers=1000; expected a whole number from 1 to 48"),
        ({"vocab_size": 0}, "vocab_size=0; expected a whole number from 1 to 250000"),
        ({"max_position_embeddings": 10**7}, "max_position_embeddings=10000000"),
        ({"hidden_size": "big"}, "hidden_size='big'; expected a whole number from 1 to 4096"),
        ({"num_attention_heads": 3}, "hidden_size must be a multiple of num_attention_heads"),
        ({"num_attention_heads": 0}, "num_attention_heads=0; expected a whole number from 1 to 64"),
        ({"intermediate_size": 10**6}, "intermediate_size=1000000; expected a whole number from 1 to 16384"),
        ({"type_vocab_size": 10**6}, "type_vocab_size=1000000; expected a whole number from 1 to 16"),
        ({"num_hidden_layers": True}, "num_hidden_layers=True; expected a whole number"),
        ({"layer_norm_eps": "x"}, "config.json is not a usable BERT config: "),
    ],
)
def test_folder_with_absurd_sizes(model_folder_copy: Path, changes: dict, expected: str) -> None:
    edit_config(model_folder_copy, **changes)
    assert expected in backbone_error(model_folder_copy)


def test_tokenizer_larger_than_vocab(model_folder_copy: Path) -> None:
    edit_config(model_folder_copy, vocab_size=100)
    message = backbone_error(model_folder_copy)
    assert "has 8002 tokens but the model only 100" in message


def test_folder_without_tokenizer(model_folder_copy: Path) -> None:
    (model_folder_copy / KOBERT_FILES.spm.name).unlink()
    assert "has no tokenizer: neither KoBERT's SentencePiece model" in backbone_error(model_folder_copy)
    (model_folder_copy / "a.model").write_bytes(KOBERT_FILES.spm.read_bytes())
    (model_folder_copy / KOBERT_FILES.vocab.name).unlink()  # the SP model alone has no [PAD]/[CLS]/[SEP]
    assert "needs the gluonnlp vocab JSON" in backbone_error(model_folder_copy)


def test_folder_without_weights(model_folder_copy: Path) -> None:
    (model_folder_copy / "model.safetensors").unlink()
    message = backbone_error(model_folder_copy)
    assert message.endswith("has no weights (model.safetensors or pytorch_model.bin).")


def test_folder_with_corrupt_weights(model_folder_copy: Path) -> None:
    (model_folder_copy / "model.safetensors").write_bytes(b"not a safetensors file at all")
    assert "cannot load the weights in" in backbone_error(model_folder_copy)


# tiny, hub ids, nonsense


def test_tiny_needs_train_texts() -> None:
    message = backbone_error(TINY)
    assert "needs the training texts" in message
    with pytest.raises(BackboneError):
        load_backbone(TINY, ["0", "1"], 0.1, train_texts=[])


def test_tiny_backbone() -> None:
    texts = [text for text, _ in sample_rows("nsmc/train.tsv", 100)]
    classifier = load_backbone(TINY, ["0", "1"], 0.2, tokenizer_mode="whole", max_len=32, train_texts=texts)
    config = classifier.model.config
    assert classifier.source == "tiny"
    assert classifier.tokenizer._sp_to_kobert is None  # native scheme
    assert (classifier.tokenizer.mode, classifier.tokenizer.max_len) == ("whole", 32)
    assert config.vocab_size == classifier.tokenizer.vocab_size
    assert config.pad_token_id == classifier.tokenizer.pad_id == 1
    assert {k: getattr(config, k) for k in TINY_SHAPE} == TINY_SHAPE
    assert classifier.model.dropout.p == 0.2
    assert config.id2label == {0: "0", 1: "1"}
    assert logits(classifier, texts[:3]).shape == (3, 2)
    assert describe_source(TINY).startswith("tiny (")
    assert describe_source(KOBERT_HUB_ID) == KOBERT_HUB_ID


def test_hub_id_not_cached_offline() -> None:
    message = backbone_error("nobody-here/not-a-kobert-model")
    assert message.startswith("could not get 'nobody-here/not-a-kobert-model' from the Hugging Face hub")
    assert "pass that folder" in message
    assert "--model tiny" in message


@pytest.mark.parametrize("source", ["nonsense", "???", "no/such/folder/here"])
def test_nonsense_source(source: str) -> None:
    message = backbone_error(source)
    assert f"model '{source}' is neither a folder on this machine" in message
    assert KOBERT_HUB_ID in message and "'tiny'" in message


# Trained classifiers


def test_save_and_load_classifier(tiny_kobert_folder: Path, tmp_path: Path) -> None:
    classifier = load_backbone(str(tiny_kobert_folder), LABELS, 0.3, tokenizer_mode="whole", max_len=24)
    torch.nn.init.normal_(classifier.model.classifier.weight)
    save_classifier(classifier, tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    loaded = load_classifier(tmp_path)
    assert loaded.label_names == LABELS
    assert loaded.source == str(tiny_kobert_folder)
    assert not loaded.model.training
    assert (loaded.tokenizer.mode, loaded.tokenizer.max_len) == ("whole", 24)
    assert loaded.tokenizer.encode_batch(SENTENCES) == classifier.tokenizer.encode_batch(SENTENCES)
    assert torch.allclose(logits(loaded, SENTENCES), logits(classifier, SENTENCES), atol=1e-6)


@pytest.mark.slow
def test_half_precision_checkpoints_load_as_fp32(tmp_path: Path) -> None:
    """transformers 5 loads in the dtype a config declares (dtype="auto"): bf16 master weights would round AdamW's
    5e-5 updates away and make the "fp32" serving reference bf16. Every loader of a model (ours, bench's) keeps fp32."""
    torch.manual_seed(0)
    backbone = tmp_path / "bf16-backbone"
    BertModel(BertConfig(**TOY_KOBERT_SHAPE)).to(torch.bfloat16).save_pretrained(backbone)
    shutil.copy(KOBERT_FILES.spm, backbone)
    shutil.copy(KOBERT_FILES.vocab, backbone)
    assert json.loads((backbone / "config.json").read_text(encoding="utf-8"))["dtype"] == "bfloat16"
    assert {t.dtype for t in load_file(backbone / "model.safetensors").values()} == {torch.bfloat16}
    classifier = load_backbone(str(backbone), LABELS, 0.1)
    assert {p.dtype for p in classifier.model.parameters()} == {torch.float32}
    for bench_model in (bench.tutorial_model(backbone), bench._plain_model(backbone, num_labels=2)):
        assert {p.dtype for p in bench_model.parameters()} == {torch.float32}

    classifier.model.to(torch.bfloat16)  # a classifier saved in bf16, with a config that says so
    save_classifier(classifier, tmp_path / "bf16-classifier")
    assert json.loads((tmp_path / "bf16-classifier" / "config.json").read_text(encoding="utf-8"))["dtype"] == "bfloat16"
    loaded = load_classifier(tmp_path / "bf16-classifier")
    assert {p.dtype for p in loaded.model.parameters()} == {torch.float32}


@pytest.mark.slow
def test_untrusted_pickle_weights_refused(tiny_kobert_folder: Path, tmp_path: Path) -> None:
    classifier = load_backbone(str(tiny_kobert_folder), ["0", "1"], 0.1)
    save_classifier(classifier, tmp_path)
    (tmp_path / "model.safetensors").unlink()
    torch.save(classifier.model.state_dict(), tmp_path / "pytorch_model.bin")
    with pytest.raises(BackboneError, match=r"has no weights \(model\.safetensors\)\.$"):
        load_classifier(tmp_path, trusted=False)
    trusted = load_classifier(tmp_path, trusted=True)
    assert torch.allclose(logits(trusted, SENTENCES), logits(classifier, SENTENCES), atol=1e-6)


def test_backbone_folder_is_not_a_classifier(tiny_kobert_folder: Path) -> None:
    with pytest.raises(BackboneError, match="is not a trained classifier"):
        load_classifier(tiny_kobert_folder)


@pytest.mark.slow
def test_classifier_with_one_class_refused(tiny_kobert_folder: Path, tmp_path: Path) -> None:
    save_classifier(load_backbone(str(tiny_kobert_folder), ["a", "b"], 0.1), tmp_path)
    edit_config(tmp_path, id2label={"0": "a"}, label2id={"a": 0})
    with pytest.raises(BackboneError, match="config names no classes"):
        load_classifier(tmp_path)


def test_load_classifier_errors(tmp_path: Path) -> None:
    with pytest.raises(BackboneError, match="has no config.json"):
        load_classifier(tmp_path)


# KoBERT's real shape


@pytest.mark.slow
def test_kobert_shape_trains(kobert_shape_folder: Path) -> None:
    classifier = load_backbone(str(kobert_shape_folder), ["0", "1"], dropout=0.5)
    model = classifier.model
    backbone = sum(p.numel() for p in model.bert.parameters())
    assert round(backbone / 1e6, 2) == 92.19
    assert sum(p.numel() for p in model.classifier.parameters()) == 768 * 2 + 2
    texts = [text for text, _ in sample_rows("nsmc/train.tsv", 2)]
    assert len(texts) == 4
    batch = classifier.tokenizer(texts)
    assert isinstance(classifier.tokenizer, KoBertTokenizer)
    model.train()
    out = model(**batch, labels=torch.tensor([0, 0, 1, 1]))
    assert out.logits.shape == (4, 2)
    assert math.isfinite(out.loss.item())
    out.loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert model.classifier.weight.grad.abs().sum() > 0


def test_last_layer_computes_cls_alone_without_changing_logits_or_gradients(tiny_kobert_folder: Path) -> None:
    """The classifier reads only [CLS]: the last layer past attention runs for that row alone, with identical math."""
    from transformers import BertForSequenceClassification

    classifier = load_backbone(str(tiny_kobert_folder), ["a", "b", "c"], 0.5)
    model = classifier.model.eval()
    plain = BertForSequenceClassification(model.config).eval()
    plain.load_state_dict(model.state_dict())
    batch = classifier.tokenizer(["정말 재미있는 영화였어요", "별로", "배우들 연기는 좋은데 스토리가 너무 뻔하다"])
    assert batch["attention_mask"].eq(0).any()  # padding is masked in the rows that need it

    ours, reference = model(**batch).logits, plain(**batch).logits
    torch.testing.assert_close(ours, reference)
    ours.sum().backward()
    reference.sum().backward()
    for (name, p), q in zip(model.named_parameters(), plain.parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=name)
    assert model.bert(**batch).last_hidden_state.shape[1] == 1  # only [CLS] left after the last layer
    assert plain.bert(**batch).last_hidden_state.shape[1] == batch["input_ids"].shape[1]

    skip_unused_last_layer_rows(model)  # a second call adds nothing
    assert len(model.bert.encoder.layer[-1].attention.output._forward_pre_hooks) == 1


def test_new_head_is_initialised_like_the_tutorials_linear_layer(tiny_kobert_folder: Path) -> None:
    """PyTorch's default uniform(+-1/sqrt(fan_in)) with a non-zero bias, as the tutorial's nn.Linear; not N(0, 0.02)."""
    head = load_backbone(str(tiny_kobert_folder), ["a", "b"], 0.5).model.classifier
    bound = 1 / math.sqrt(head.in_features)
    assert head.weight.abs().max() <= bound and head.bias.abs().max() <= bound
    assert head.weight.std() > 0.8 * bound / math.sqrt(3)  # a uniform's spread; N(0, 0.02) is far narrower here
    assert head.bias.abs().min() > 0


def test_a_trained_head_with_the_same_classes_is_kept(trained_run, tiny_kobert_folder: Path) -> None:
    """Training on from a trained classifier keeps its head; only a missing or resized head starts afresh."""
    folder = trained_run.path / "model"
    trained = load_classifier(folder)
    again = load_backbone(str(folder), trained.label_names, 0.5)
    torch.testing.assert_close(again.model.classifier.weight, trained.model.classifier.weight)
    resized = load_backbone(str(folder), [*trained.label_names, "extra"], 0.5)
    assert resized.model.classifier.weight.shape[0] == len(trained.label_names) + 1
    assert resized.model.classifier.bias.abs().min() > 0  # PyTorch's default init, not zeros


def _plain_copy(model):
    """The same weights in a plain BertForSequenceClassification (no [CLS]-only hook), for reference."""
    from transformers import BertForSequenceClassification

    plain = BertForSequenceClassification(model.config).eval()
    plain.load_state_dict(model.state_dict())
    return plain


TEXTS = ["정말 재미있는 영화였어요, 또 보고 싶네요", "별로", "배우들 연기는 좋은데 스토리가 너무 뻔하다", "ㅋㅋ 최고"]


def test_padding_free_forward_equals_bert_for_sequence_classification(tiny_kobert_folder: Path) -> None:
    """Same loss, logits and gradient for every weight as transformers' own padded forward (fp32, no dropout)."""
    classifier = load_backbone(str(tiny_kobert_folder), ["a", "b", "c"], 0.5)
    model, reference = classifier.model.eval(), _plain_copy(classifier.model)
    batch = classifier.tokenizer(TEXTS)
    assert batch["attention_mask"].eq(0).any()
    labels = torch.tensor([0, 2, 1, 2])

    ours = PaddingFreeClassifier(model).eval()(**batch, labels=labels)
    theirs = reference(**batch, labels=labels)
    torch.testing.assert_close(ours.logits, theirs.logits)
    torch.testing.assert_close(ours.loss, theirs.loss)
    ours.loss.backward()
    theirs.loss.backward()
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        if q.grad is None:  # token type embeddings beyond type 0, never used
            continue
        assert p.grad.abs().sum() > 0, name
        torch.testing.assert_close(p.grad, q.grad, msg=name)


def test_padding_free_forward_ignores_padding(tiny_kobert_folder: Path) -> None:
    """More padding (a longer batch), or a row alone without any, gives the same logits: the padding is never seen."""
    classifier = load_backbone(str(tiny_kobert_folder), ["a", "b"], 0.5)
    model = PaddingFreeClassifier(classifier.model).eval()
    batch = classifier.tokenizer(TEXTS)
    wider = {key: torch.nn.functional.pad(value, (0, 7)) for key, value in batch.items()}
    wider["input_ids"][:, -7:] = classifier.tokenizer.pad_id
    with torch.inference_mode():
        logits = model(**batch).logits
        torch.testing.assert_close(model(**wider).logits, logits)
        alone = model(**classifier.tokenizer(TEXTS[1:2])).logits
    torch.testing.assert_close(alone, logits[1:2])


@pytest.mark.slow
def test_padding_free_forward_in_bf16_stays_close(kobert_shape_folder: Path) -> None:
    """Under bf16 autocast (the CPU training path) the logits stay near transformers' own bf16 forward."""
    classifier = load_backbone(str(kobert_shape_folder), ["a", "b"], 0.5)
    model, reference = classifier.model.eval(), _plain_copy(classifier.model)
    batch = classifier.tokenizer(TEXTS)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        ours = PaddingFreeClassifier(model)(**batch).logits.float()
        theirs = reference(**batch).logits.float()
    torch.testing.assert_close(ours, theirs, atol=0.05, rtol=0.05)


def test_padding_free_forward_applies_dropout_in_training(tiny_kobert_folder: Path) -> None:
    classifier = load_backbone(str(tiny_kobert_folder), ["a", "b"], 0.5)
    model = PaddingFreeClassifier(classifier.model).train()
    batch = classifier.tokenizer(TEXTS)
    assert not torch.equal(model(**batch).logits, model(**batch).logits)
    model.eval()
    torch.testing.assert_close(model(**batch).logits, model(**batch).logits)


# Class weights in the training loss (#25)
@pytest.mark.parametrize("forward", [PaddingFreeClassifier, PaddedClassifier])
def test_class_weights_give_torchs_weighted_cross_entropy(tiny_kobert_folder: Path, forward: type) -> None:
    """Both training forwards: the weighted loss is torch's cross_entropy(weight=...) of their own logits, weights
    of 1 give the plain loss, and the weights stay out of the state dict (the saved model is the same)."""
    classifier = load_backbone(str(tiny_kobert_folder), ["a", "b", "c"], 0.5)
    batch = classifier.tokenizer(TEXTS)
    labels = torch.tensor([0, 2, 1, 2])
    weights = [0.5, 2.0, 1.25]
    plain = forward(classifier.model).eval()(**batch, labels=labels)
    weighted = forward(classifier.model, weights).eval()(**batch, labels=labels)
    ones = forward(classifier.model, [1.0, 1.0, 1.0]).eval()(**batch, labels=labels)

    torch.testing.assert_close(weighted.logits, plain.logits)
    expected = nn.functional.cross_entropy(plain.logits, labels, weight=torch.tensor(weights))
    torch.testing.assert_close(weighted.loss, expected)
    # (0.5 l0 + 1.25 l1 + 2 l2 + 1.25 l3) / 5, each row weighed by its class: not the plain mean
    rows = nn.functional.cross_entropy(plain.logits, labels, reduction="none")
    torch.testing.assert_close(weighted.loss, (rows * torch.tensor([0.5, 1.25, 2.0, 1.25])).sum() / 5)
    assert not torch.allclose(weighted.loss, plain.loss)
    torch.testing.assert_close(ones.loss, plain.loss)
    assert forward(classifier.model, weights).state_dict().keys() == plain_keys(classifier.model)


def plain_keys(model: nn.Module) -> set[str]:
    """The wrapped model's state dict keys as the training forward names them."""
    return {f"model.{key}" for key in model.state_dict()}


def test_training_forward_passes_class_weights(tiny_kobert_folder: Path) -> None:
    classifier = load_backbone(str(tiny_kobert_folder), ["a", "b"], 0.5)
    model, _ = training_forward(classifier.model, [0.75, 1.5])
    torch.testing.assert_close(model.class_weights, torch.tensor([0.75, 1.5]))
    assert training_forward(classifier.model)[0].class_weights is None


# Strict weights (#11): hub-like layouts load exactly; anything that would leave the encoder or pooler random is refused

# The hub's skt/kobert-base-v1 ships this beside its native spiece.model; KoBertTokenizer ignores it.
XLNET_TOKENIZER_CONFIG = {
    "tokenizer_class": "XLNetTokenizer", "do_lower_case": False, "remove_space": True, "keep_accents": False,
    "bos_token": "[CLS]", "eos_token": "[SEP]", "unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]",
    "cls_token": "[CLS]", "mask_token": "[MASK]", "sp_model_kwargs": {},
}  # fmt: skip


def bert_state(shape: dict = TOY_KOBERT_SHAPE, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random BertModel's weights under its own names (no `bert.` prefix), as a BertModel checkpoint holds them."""
    torch.manual_seed(seed)
    return BertModel(BertConfig(**shape)).state_dict()


def hub_folder(folder: Path, state: dict, pickled: bool = False, shape: dict = TOY_KOBERT_SHAPE) -> Path:
    """A folder laid out like the hub's KoBERT: config.json, the weights (pytorch_model.bin or model.safetensors),
    KoBERT's SP model and vocab JSON, and an XLNet tokenizer_config.json."""
    folder.mkdir(parents=True)
    BertConfig(**shape).save_pretrained(folder)
    if pickled:
        torch.save(state, folder / "pytorch_model.bin")
    else:  # safetensors wants each tensor on its own, dense storage (no tied or expanded ones)
        save_file({key: value.clone().contiguous() for key, value in state.items()}, folder / "model.safetensors")
    shutil.copy(KOBERT_FILES.spm, folder)
    shutil.copy(KOBERT_FILES.vocab, folder)
    (folder / "tokenizer_config.json").write_text(json.dumps(XLNET_TOKENIZER_CONFIG), encoding="utf-8")
    return folder


def with_pretraining_heads(state: dict) -> dict:
    """A BertForPreTraining checkpoint: `bert.` before every key, and the MLM / NSP heads (cls.*) beside."""
    heads = BertForPreTraining(BertConfig(**TOY_KOBERT_SHAPE)).state_dict()
    return {
        **{f"bert.{key}": value for key, value in state.items()},
        **{k: v for k, v in heads.items() if k[:4] == "cls."},
    }


def legacy_names(state: dict) -> dict:
    """An old TF-converted checkpoint: `bert.` prefix, LayerNorm.gamma/beta, and the position_ids buffer."""
    renamed = {
        "bert." + key.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): value
        for key, value in state.items()
    }
    return {**renamed, "bert.embeddings.position_ids": torch.arange(TOY_KOBERT_SHAPE["max_position_embeddings"])[None]}


LAYOUTS = {
    "BertModel pytorch_model.bin": (lambda state: state, True),
    "BertForPreTraining pytorch_model.bin": (with_pretraining_heads, True),
    "gamma/beta and position_ids, pytorch_model.bin": (legacy_names, True),
    "gamma/beta and position_ids, model.safetensors": (legacy_names, False),
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_hub_like_layouts_load_their_weights_exactly(tmp_path: Path, layout: str) -> None:
    transform, pickled = LAYOUTS[layout]
    state = bert_state()
    classifier = load_backbone(str(hub_folder(tmp_path / "kobert", transform(state), pickled)), LABELS, 0.1)
    loaded = classifier.model.bert.state_dict()
    assert loaded.keys() == state.keys()
    for key, value in state.items():
        assert torch.equal(loaded[key], value), key
    assert classifier.tokenizer.vocab_size == 8002  # the XLNet tokenizer_config.json is ignored


def test_sharded_safetensors_load_their_weights_exactly(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = BertModel(BertConfig(**TOY_KOBERT_SHAPE))
    model.save_pretrained(tmp_path, max_shard_size="100KB")
    assert len(list(tmp_path.glob("model-*.safetensors"))) > 1
    shutil.copy(KOBERT_FILES.spm, tmp_path)
    shutil.copy(KOBERT_FILES.vocab, tmp_path)
    loaded = load_backbone(str(tmp_path), LABELS, 0.1).model.bert.state_dict()
    for key, value in model.state_dict().items():
        assert torch.equal(loaded[key], value), key


def test_key_names_are_read_as_transformers_loads_them() -> None:
    """Our reading of checkpoint keys is transformers 5.24's own (core_model_loading.rename_source_key)."""
    from transformers.conversion_mapping import get_model_conversion_mapping
    from transformers.core_model_loading import WeightConverter, WeightRenaming, rename_source_key

    config = BertConfig(**TOY_KOBERT_SHAPE)
    with torch.device("meta"):
        model = BertForSequenceClassification(config)
    expected, _ = expected_shapes(config)
    mapping = get_model_conversion_mapping(model)
    renamings = [m for m in mapping if isinstance(m, WeightRenaming)]
    converters = [m for m in mapping if isinstance(m, WeightConverter)]
    state = bert_state()
    keys = {*state, *with_pretraining_heads(state), *legacy_names(state), "classifier.weight", "bert.classifier.bias"}
    keys |= {f"model.{key}" for key in state} | {"encoder.layer.2.output.dense.weight", "embeddings.position_ids"}
    for key in sorted(keys):
        theirs, _ = rename_source_key(key, renamings, converters, model.base_model_prefix, model.state_dict())
        assert _model_key(key, expected, "bert.") == theirs, key


@pytest.mark.slow
def test_a_hub_like_folder_trains_through_the_cli(tmp_path: Path) -> None:
    folder = hub_folder(tmp_path / "kobert", legacy_names(bert_state()), pickled=True)
    train_file = write_tsv(tmp_path / "train.tsv", sample_rows("nsmc/train.tsv", 40))
    result = run_cli(
        "train", train_file.name, "--model", folder.name, "--epochs", "1", "--batch-size", "16", "--out", "run",
        "--precision", "fp32", "--quiet", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "\ndone in " in result.stdout
    assert [line.split(" | ")[0] for line in result.stderr.splitlines()] == ["model kobert"]  # no warnings
    assert load_classifier(tmp_path / "run" / "model").label_names == ["0", "1"]


@pytest.mark.slow
def test_the_hubs_layout_trains_and_its_export_reads_right_in_plain_transformers(tmp_path: Path) -> None:
    """skt/kobert-base-v1's layout: a BertModel pytorch_model.bin, the native 8002-piece spiece.model and an XLNet
    tokenizer_config.json. It trains through the CLI; the export tokenizes like KoBERT and classifies like us in
    plain transformers, sentences longer than max_len and sentences starting with - included."""
    from transformers import AutoTokenizer, pipeline

    from kobert_demo.serving.predict import Predictor

    folder = hub_folder(tmp_path / "kobert-base-v1", bert_state(), pickled=True)
    (folder / KOBERT_FILES.spm.name).unlink()
    (folder / KOBERT_FILES.vocab.name).unlink()
    (folder / "spiece.model").write_bytes(native_kobert_proto())
    train_file = write_tsv(tmp_path / "train.tsv", sample_rows("nsmc/train.tsv", 40))
    trained = call_cli(
        "train", train_file.name, "--model", folder.name, "--epochs", "1", "--batch-size", "16", "--max-len", "32",
        "--out", "run", "--quiet", cwd=tmp_path,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    exported = call_cli("export", "run", "--format", "transformers", "--out", "hf", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    assert "no tokenizer.json" not in exported.stdout

    texts = [text for text, _ in sample_rows("nsmc/test.tsv", 30)]
    texts += ["-_- 별로", "ㅋㅋㅋㅋㅋㅋ 굳…… ㈜", "아주 긴 리뷰 " * 30, "[CLS] 그대로"]
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "hf")
    assert tokenizer(texts, truncation=True)["input_ids"] == KoBertTokenizer.original(max_len=32).encode_batch(texts)
    classify = pipeline("text-classification", model=str(tmp_path / "hf"), top_k=None, truncation=True)
    ours = Predictor.load(tmp_path / "run", backend="torch").predict(texts)
    for theirs, mine in zip(classify(texts), ours):
        assert {row["label"]: row["score"] for row in theirs} == pytest.approx(mine, abs=0.01)


def renamed(prefix: str) -> Callable[[dict], dict]:
    return lambda state: {prefix + key: value for key, value in state.items()}


def without(prefix: str) -> Callable[[dict], dict]:
    return lambda state: {key: value for key, value in state.items() if not key.startswith(prefix)}


# (weights, config.json's shape, what the sentence says, a key it names)
REFUSALS = {
    "every key under model.": (
        renamed("model.")(bert_state()), TOY_KOBERT_SHAPE,
        "lacks 39 weight(s) of the BERT encoder its config.json", "holds 39 it cannot place (model.embeddings.",
    ),
    "no pooler": (without("pooler.")(bert_state()), TOY_KOBERT_SHAPE, "lacks 2 weight(s)", "bert.pooler.dense.weight"),
    "a layer missing": (
        without("encoder.layer.1.")(bert_state()), TOY_KOBERT_SHAPE,
        "lacks 16 weight(s)", "bert.encoder.layer.1.attention.self.query.weight",
    ),
    "another hidden size": (
        bert_state(), {**TOY_KOBERT_SHAPE, "hidden_size": 64},
        "weight(s) do not have the shape its config.json implies",
        "embeddings.word_embeddings.weight is [8002, 32] where the config needs [8002, 64]",
    ),
    "more layers than the config": (
        bert_state({**TOY_KOBERT_SHAPE, "num_hidden_layers": 3}), TOY_KOBERT_SHAPE,
        "holds 16 encoder weight(s) its config.json does not describe", "(encoder.layer.2.attention.",
    ),
}  # fmt: skip


def refused_folder(tmp_path: Path, case: str) -> Path:
    state, shape, _, _ = REFUSALS[case]
    return hub_folder(tmp_path / "kobert", state, shape=shape)


def one_error_line(result) -> str:
    """The CLI's one `error: ` line for a refusal (exit status 2, no traceback)."""
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.mark.parametrize("case", REFUSALS)
def test_weights_that_would_start_random_are_refused(tmp_path: Path, case: str) -> None:
    _, _, sentence, key = REFUSALS[case]
    message = backbone_error(refused_folder(tmp_path, case))
    assert message.startswith("kobert")  # the folder's name, not its path on this machine
    assert sentence in message and key in message
    assert str(tmp_path) not in message


@pytest.mark.parametrize("case", ["every key under model.", "another hidden size"])
def test_pickled_weights_are_checked_alike(tmp_path: Path, case: str) -> None:
    state, shape, sentence, key = REFUSALS[case]
    message = backbone_error(hub_folder(tmp_path / "kobert", state, pickled=True, shape=shape))
    assert sentence in message and key in message


@pytest.mark.slow
@pytest.mark.parametrize("case", REFUSALS)
def test_the_cli_refuses_them_in_one_line(tmp_path: Path, case: str) -> None:
    _, _, sentence, key = REFUSALS[case]
    folder = refused_folder(tmp_path, case)
    train_file = write_tsv(tmp_path / "train.tsv", sample_rows("nsmc/train.tsv", 10))
    line = one_error_line(call_cli("train", train_file.name, "--model", folder.name, "--out", "run", cwd=tmp_path))
    assert sentence in line and key in line


@pytest.mark.slow
def test_a_refusal_costs_no_memory(tiny_kobert_folder: Path, tmp_path: Path, monkeypatch) -> None:
    """A config.json for a BERT of 10 billion parameters beside a tiny checkpoint is refused from names and shapes."""
    folder = Path(shutil.copytree(tiny_kobert_folder, tmp_path / "huge"))
    edit_config(
        folder, vocab_size=250_000, hidden_size=4096, num_hidden_layers=48, num_attention_heads=64,
        intermediate_size=16384, max_position_embeddings=8192,
    )  # fmt: skip

    def never(*args, **kwargs):
        raise AssertionError("from_pretrained was called")

    monkeypatch.setattr(BertForSequenceClassification, "from_pretrained", never)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    monkeypatch.setenv("KOBERT_DEMO_MAX_TRAIN_MB", "100000")
    message = backbone_error(folder)
    assert "Training huge at batch size 64 and max_len 64 would take about " in message
    assert "MB of memory (10,740,592,642 parameters)" in message
    monkeypatch.setenv("KOBERT_DEMO_MAX_TRAIN_MB", "10000000")  # budgets that admit it: the weights are missing
    monkeypatch.setenv("KOBERT_DEMO_MAX_MODEL_MB", "10000000")
    message = backbone_error(folder)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100 * 1024
    assert "lacks 736 weight(s)" in message and "bert.encoder.layer.2." in message
    with pytest.raises(BackboneError, match="lacks 736 weight"):
        load_classifier(folder)


def test_transformers_loading_info_is_checked_too(tmp_path: Path, monkeypatch) -> None:
    """Belt and braces: were check_weights ever to let a gap through, transformers' own account still refuses it."""
    monkeypatch.setattr(loading, "check_weights", lambda *args, **kwargs: None)
    message = backbone_error(refused_folder(tmp_path, "no pooler"))
    assert "lacks 2 weight(s)" in message and "bert.pooler.dense.weight" in message


def headless_classifier(tiny_kobert_folder: Path, folder: Path) -> Path:
    """A trained model's folder whose weights lost the classification head."""
    save_classifier(load_backbone(str(tiny_kobert_folder), ["a", "b"], 0.1), folder)
    weights = load_file(folder / "model.safetensors")
    save_file({k: v for k, v in weights.items() if not k.startswith("classifier.")}, folder / "model.safetensors")
    return folder


@pytest.mark.slow
def test_a_trained_model_without_its_head_is_refused(tiny_kobert_folder: Path, tmp_path: Path) -> None:
    folder = headless_classifier(tiny_kobert_folder, tmp_path / "model")
    with pytest.raises(BackboneError, match=r"no classification head \(classifier\.weight, classifier\.bias\)"):
        load_classifier(folder, trusted=False)
    line = one_error_line(call_cli("predict", "model", "정말 재미있어요", cwd=tmp_path))
    assert "is not a trained classifier" in line and "classifier.weight" in line


def test_a_trained_model_needs_a_head_for_its_classes(tiny_kobert_folder: Path, tmp_path: Path) -> None:
    save_classifier(load_backbone(str(tiny_kobert_folder), ["a", "b"], 0.1), tmp_path)
    edit_config(tmp_path, id2label={"0": "a", "1": "b", "2": "c"}, label2id={"a": 0, "b": 1, "c": 2})
    with pytest.raises(BackboneError, match=r"classifier.weight is \[2, 32\] where the config needs \[3, 32\]"):
        load_classifier(tmp_path)


@pytest.mark.slow
def test_transformers_logging_is_ours_only_while_we_load(tiny_kobert_folder: Path, tmp_path: Path) -> None:
    """Importing model.py changes nothing (#13); a load or save quietens transformers and puts it back."""
    from transformers.utils import logging

    code = "from transformers.utils import logging as l; import kobert_demo.engine.loading; "
    code += "print(l.get_verbosity(), l.is_progress_bar_enabled())"
    imported = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert imported.stdout.split() == [str(logging.WARNING), "True"]
    verbosity = logging.get_verbosity()
    logging.set_verbosity_info()
    try:
        save_classifier(load_backbone(str(tiny_kobert_folder), ["a", "b"], 0.1), tmp_path)
        load_classifier(tmp_path)
        assert logging.get_verbosity() == logging.INFO and logging.is_progress_bar_enabled()
        with loading.quiet_transformers():  # overlapping loads (the web app's threads): the last one restores
            with loading.quiet_transformers():
                pass
            assert logging.get_verbosity() == logging.ERROR and not logging.is_progress_bar_enabled()
        assert logging.get_verbosity() == logging.INFO and logging.is_progress_bar_enabled()
    finally:
        logging.set_verbosity(verbosity)


# Strict weights and the memory budget for every family (#14)


def family_copy(family_folders: dict, family: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(family_folders[family], tmp_path / f"my-{family}"))


def rewrite_weights(folder: Path, change: Callable[[dict], dict]) -> dict[str, torch.Tensor]:
    """Apply change to folder's model.safetensors; returns the weights as they were."""
    state = load_file(folder / "model.safetensors")
    save_file(change(dict(state)), folder / "model.safetensors")
    return state


def assert_encoder_loaded(classifier: Classifier, state: dict[str, torch.Tensor]) -> None:
    """Every weight of the classifier's encoder is the checkpoint's, whatever prefix the checkpoint used."""
    family = family_of(classifier.model)
    loaded = family.encoder(classifier.model).state_dict()
    buffers = {name for name, _ in family.encoder(classifier.model).named_buffers()}
    prefix = f"{family.base}."
    for key, value in loaded.items():
        if key in buffers:
            continue
        stored = state[prefix + key] if prefix + key in state else state[key]
        assert torch.equal(value, stored), key


@pytest.mark.parametrize(
    ("family", "key", "count"),
    [
        ("roberta", "roberta.encoder.layer.1.output.dense.weight", 1),
        ("electra", "electra.encoder.layer.0.attention.self.key.bias", 1),
        ("electra", "electra.embeddings_project.", 2),  # embedding_size 64 != hidden_size 128: it is needed
    ],
)
def test_a_missing_encoder_weight_is_refused_in_every_family(family_folders, tmp_path, family, key, count) -> None:
    folder = family_copy(family_folders, family, tmp_path)
    rewrite_weights(folder, lambda state: {k: v for k, v in state.items() if not k.startswith(key)})
    message = backbone_error(folder)
    name = FAMILIES[family].name
    assert message.startswith(f"my-{family} lacks {count} weight(s) of the {name} encoder"), message
    assert key in message and str(tmp_path) not in message


def test_pretraining_heads_and_a_roberta_pooler_are_ignored(family_folders, tmp_path) -> None:
    """The hub's pre-training heads (cls.*, lm_head.*, discriminator_predictions.*) and a RoBERTa pooler, which
    RobertaForSequenceClassification does not have, are ignored, as transformers ignores them."""
    heads = {"bert": "cls.", "roberta": "lm_head.", "electra": "discriminator_predictions."}
    for family, head in heads.items():
        state = load_file(family_folders[family] / "model.safetensors")
        assert any(key.startswith(head) for key in state)
        assert_encoder_loaded(load_backbone(str(family_folders[family]), LABELS, 0.1), state)
    folder = family_copy(family_folders, "roberta", tmp_path)
    hidden = json.loads((folder / "config.json").read_text(encoding="utf-8"))["hidden_size"]
    pooler = {
        "roberta.pooler.dense.weight": torch.ones(hidden, hidden),
        "roberta.pooler.dense.bias": torch.ones(hidden),
    }
    state = rewrite_weights(folder, lambda state: {**state, **pooler})
    assert_encoder_loaded(load_backbone(str(folder), LABELS, 0.1), state)


@pytest.mark.parametrize("family", ["bert", "roberta", "electra"])
def test_a_checkpoint_without_the_prefix_loads(family_folders, tmp_path, family) -> None:
    """AutoModel.save_pretrained's layout: the encoder's own names, no `roberta.`/`electra.` before them."""
    from transformers import AutoModel

    folder = family_copy(family_folders, family, tmp_path)
    (folder / "model.safetensors").unlink()
    with loading.quiet_transformers():
        AutoModel.from_pretrained(family_folders[family]).save_pretrained(folder)
    state = load_file(folder / "model.safetensors")
    assert not any(key.startswith(f"{FAMILIES[family].base}.") for key in state)
    assert_encoder_loaded(load_backbone(str(folder), LABELS, 0.1), state)


@pytest.mark.parametrize("family", ["roberta", "electra"])
def test_the_memory_budget_refuses_a_family_model_before_allocating_it(family_folders, tmp_path, family, monkeypatch):
    folder = family_copy(family_folders, family, tmp_path)
    huge = dict(hidden_size=4096, num_hidden_layers=48, num_attention_heads=64, intermediate_size=16384)
    edit_config(folder, **huge, **({"embedding_size": 4096} if family == "electra" else {}))

    def never(*args, **kwargs):
        raise AssertionError("from_pretrained was called")

    monkeypatch.setattr(FAMILIES[family].model_class, "from_pretrained", never)
    monkeypatch.setenv("KOBERT_DEMO_MAX_TRAIN_MB", "100000")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    message = backbone_error(folder)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100 * 1024
    params = memory.parameter_count(checkpoints.read_config(folder, folder.name), 2)
    assert params > 9e9 and f"({params:,} parameters); this server allows 100,000 MB for training" in message
    assert message.startswith(f"Training my-{family} at batch size ")


# --- FastDropout: torch's dropout, with the mask drawn by NumPy ------------------------------------------------------
@pytest.mark.parametrize("p", [0.1, 0.5])
def test_fast_dropout_drops_p_of_the_units_and_scales_the_rest(p: float) -> None:
    torch.manual_seed(0)
    dropout = FastDropout(p, np.random.default_rng(0)).train()
    x = torch.rand(400, 500) + 1  # no zeros of its own
    y = dropout(x)
    kept = y != 0
    assert abs(1 - kept.float().mean().item() - p) < 0.005
    assert torch.allclose(y[kept], x[kept] / (1 - p))


def test_fast_dropout_gradient_is_its_mask_times_the_scale() -> None:
    dropout = FastDropout(0.1, np.random.default_rng(1)).train()
    x = (torch.rand(64, 768) + 1).to(torch.bfloat16).requires_grad_()
    y = dropout(x)
    y.float().sum().backward()
    assert x.grad.dtype == torch.bfloat16
    want = (y != 0).to(torch.bfloat16) * (1 / 0.9)
    assert torch.equal(x.grad, want)


def test_fast_dropout_is_the_identity_in_eval_mode() -> None:
    x = torch.randn(8, 16)
    assert torch.equal(FastDropout(0.5, np.random.default_rng(0)).eval()(x), x)


def test_fast_dropout_replaces_every_dropout_and_follows_torchs_seed(tiny_kobert_folder: Path) -> None:
    def masks() -> torch.Tensor:
        classifier = load_backbone(str(tiny_kobert_folder), ["a", "b"], 0.5)
        before = {k: v.clone() for k, v in classifier.model.state_dict().items()}
        torch.manual_seed(3)
        use_fast_dropout(classifier.model)
        dropouts = [m for m in classifier.model.modules() if isinstance(m, nn.Dropout)]
        assert dropouts and all(type(m) is FastDropout for m in dropouts)
        assert {m.p for m in dropouts} == {0.1, 0.5}  # the encoder's and the tutorial's pooler dropout
        after = classifier.model.state_dict()
        assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
        return dropouts[0].train()(torch.ones(32, 32))

    assert torch.equal(masks(), masks())
