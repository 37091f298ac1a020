"""Tests for kobert_demo.predict: probabilities, order under length batching, loading, agreement with the run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TrainedRun

from kobert_demo.data import LabeledData
from kobert_demo.metrics import classification_metrics
from kobert_demo.model import BackboneError, load_classifier
from kobert_demo.predict import Predictor, PredictorCache, model_folder

TEXTS = [
    "정말 재미있게 봤습니다. 배우들의 연기가 최고였고 다시 보고 싶어요",
    "최악",
    "",
    "시간 아까운 영화... 돈 주고 볼 필요 없음",
    "굳 ㅋ",
    "그냥 그랬다",
    "감동적인 스토리, 훌륭한 음악, 완벽한 연출! 올해 최고의 영화입니다 " * 3,
]


def test_probabilities(trained_predictor: Predictor) -> None:
    probs = trained_predictor.predict_proba(TEXTS)
    assert probs.shape == (len(TEXTS), 2)
    assert probs.dtype == np.float32
    assert np.all((probs >= 0) & (probs <= 1))
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-6)
    assert trained_predictor.label_names == ["0", "1"]
    assert trained_predictor.predict_proba([]).shape == (0, 2)


def test_order_kept_although_batched_by_length(trained_run: TrainedRun) -> None:
    predictor = Predictor.load(trained_run.path)
    predictor.batch_size = 3  # several batches, each sorted by length, none in input order
    lengths = [len(ids) for ids in predictor.tokenizer.encode_batch(TEXTS)]
    assert lengths != sorted(lengths)
    together = predictor.predict_proba(TEXTS)
    one_by_one = np.concatenate([predictor.predict_proba([text]) for text in TEXTS])
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)
    assert len({tuple(row.round(4)) for row in together}) > 1  # the texts do get different answers


def test_predict_gives_label_dicts(trained_predictor: Predictor) -> None:
    rows = trained_predictor.predict(TEXTS[:2])
    probs = trained_predictor.predict_proba(TEXTS[:2])
    assert [list(row) for row in rows] == [["0", "1"]] * 2
    np.testing.assert_allclose([list(row.values()) for row in rows], probs, atol=1e-7)


def test_load_from_run_or_model_folder(trained_run: TrainedRun, trained_predictor: Predictor) -> None:
    assert model_folder(trained_run.path) == trained_run.path / "model"
    assert model_folder(trained_run.path / "model") == trained_run.path / "model"
    from_model = Predictor.load(trained_run.path / "model")
    np.testing.assert_array_equal(from_model.predict_proba(TEXTS), trained_predictor.predict_proba(TEXTS))
    direct = Predictor(load_classifier(trained_run.path / "model"))
    np.testing.assert_array_equal(direct.predict_proba(TEXTS), trained_predictor.predict_proba(TEXTS))


def test_load_errors(tmp_path: Path, tiny_kobert_folder: Path) -> None:
    with pytest.raises(BackboneError, match="has no config.json"):
        Predictor.load(tmp_path)
    with pytest.raises(BackboneError, match="is not a trained classifier"):
        Predictor.load(tiny_kobert_folder)


def test_pieces(trained_predictor: Predictor) -> None:
    """The model's own pieces: they spell the sentence (less spaces), [UNK] only where a character is unknown, and
    at most max_len of them, as the model reads it."""
    text = TEXTS[0]  # a training-like sentence: every character is in tiny's vocabulary
    encoded = trained_predictor.pieces(text)
    assert encoded.pieces[0] == "[CLS]" and encoded.pieces[-1] == "[SEP]"
    assert "".join(encoded.pieces[1:-1]).replace("▁", "") == text.replace(" ", "")
    assert not any(encoded.unknown) and len(set(encoded.ids)) > 5
    odd = trained_predictor.pieces("䨻 최악")  # 䨻 is in no training text
    assert odd.unknown[odd.pieces.index("[UNK]")] and sum(odd.unknown) == odd.pieces.count("[UNK]") == 1
    assert len(trained_predictor.pieces(TEXTS[-1] * 20).ids) == trained_predictor.tokenizer.max_len


def test_predictions_match_the_run(trained_run: TrainedRun, trained_predictor: Predictor, nsmc_test: LabeledData):
    """Evaluating the saved model on nsmc/test.tsv gives exactly the kept (last) epoch's reported metrics."""
    best = trained_run.events[-1].test
    names = trained_predictor.label_names
    predicted = trained_predictor.predict_proba(nsmc_test.texts).argmax(1).tolist()
    metrics = classification_metrics([names.index(y) for y in nsmc_test.labels], predicted, names)
    assert metrics["accuracy"] == best["accuracy"]
    assert metrics["confusion_matrix"] == best["confusion_matrix"]
    assert metrics["macro_f1"] == pytest.approx(best["macro_f1"])


def test_backends(trained_run: TrainedRun, trained_predictor: Predictor) -> None:
    with pytest.raises(ValueError, match="backend must be one of"):
        Predictor.load(trained_run.path, backend="onnx")
    assert trained_predictor.backend == "torch"
    int8 = Predictor.load(trained_run.path, backend="int8")
    assert int8.backend == "int8"
    quantized = int8.predict_proba(TEXTS)
    np.testing.assert_allclose(quantized.sum(1), 1, atol=1e-5)
    # Close to the float model, not equal (on this small model: within a few hundredths).
    np.testing.assert_allclose(quantized, trained_predictor.predict_proba(TEXTS), atol=0.05)
    assert not np.array_equal(quantized, trained_predictor.predict_proba(TEXTS))


def test_auto_backend_keeps_int8_only_within_0_01(trained_run: TrainedRun, trained_predictor: Predictor) -> None:
    """On a CPU, auto takes int8 only when it stays within 0.01 of fp32 on the check sentences."""
    from kobert_demo.predict import CHECK_SENTENCES, INT8_MAX_DIFF

    auto = Predictor.load(trained_run.path, backend="auto")
    diff = np.abs(
        Predictor.load(trained_run.path, backend="int8").predict_proba(CHECK_SENTENCES)
        - trained_predictor.predict_proba(CHECK_SENTENCES)
    ).max()
    assert auto.backend == ("int8" if diff <= INT8_MAX_DIFF else "torch")
    if auto.backend == "torch":
        np.testing.assert_array_equal(auto.predict_proba(TEXTS), trained_predictor.predict_proba(TEXTS))


def test_predictor_cache() -> None:
    cache = PredictorCache(size=2)
    loads: list[str] = []

    def loader(key: str):
        def load():
            loads.append(key)
            return f"predictor {key}"

        return load

    assert cache.get("a", loader("a")) == "predictor a"
    assert cache.get("a", loader("a")) == "predictor a"
    cache.get("b", loader("b"))
    cache.get("a", loader("a"))  # a is now the most recently used
    cache.get("c", loader("c"))  # drops b
    cache.get("a", loader("a"))
    cache.get("b", loader("b"))
    assert loads == ["a", "b", "c", "b"]


@pytest.mark.parametrize("max_diff", [-1.0, 1.0])
def test_auto_backend_quantizes_in_place_and_reloads_float_when_int8_fails(
    trained_run: TrainedRun, trained_predictor: Predictor, monkeypatch: pytest.MonkeyPatch, max_diff: float
) -> None:
    """With a check that int8 cannot pass, auto reloads the float model; with one it always passes, it keeps int8."""
    monkeypatch.setattr("kobert_demo.predict.INT8_MAX_DIFF", max_diff)
    reloads: list[int] = []
    folder = trained_run.path / "model"

    def reload():
        reloads.append(1)
        return load_classifier(folder)

    auto = Predictor(load_classifier(folder), backend="auto", reload=reload)
    float_linears = [m for m in auto.model.modules() if isinstance(m, torch.nn.Linear)]
    if max_diff < 0:
        assert (auto.backend, len(reloads)) == ("torch", 1)
        assert len(float_linears) == 2 * 6 + 2  # tiny: 2 layers of 6 linear layers, the pooler and the classifier
        np.testing.assert_array_equal(auto.predict_proba(TEXTS), trained_predictor.predict_proba(TEXTS))
    else:
        assert (auto.backend, len(reloads)) == ("int8", 0)
        # Every encoder linear layer swapped for its int8 version, in place; the pooler and classifier stay float.
        assert float_linears == [auto.model.bert.pooler.dense, auto.model.classifier]
        assert auto.model is auto.classifier.model


def test_int8_quantizes_encoder_linears_with_full_range_inputs_on_vnni() -> None:
    """On VNNI CPUs the int8 layers take 8-bit inputs (torch's default keeps 7): closer to float, no overflow."""
    import torch.ao.nn.quantized.dynamic as dynamic
    from transformers import BertConfig, BertForSequenceClassification

    from kobert_demo.cpu import has_vnni
    from kobert_demo.predict import FullRangeDynamicLinear, quantize_int8

    torch.manual_seed(0)
    config = BertConfig(vocab_size=100, hidden_size=768, num_hidden_layers=1, num_attention_heads=12)
    model = BertForSequenceClassification(config).eval()
    x = torch.randn(64, 768)
    query = lambda m: m.bert.encoder.layer[0].attention.self.query  # noqa: E731
    reference = query(model)(x)
    default = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    quantized = quantize_int8(model, inplace=False)
    head = (quantized.bert.pooler.dense, quantized.classifier)
    assert all(type(layer) is torch.nn.Linear for layer in head)  # only the encoder is quantized
    assert isinstance(query(quantized), FullRangeDynamicLinear if has_vnni() else dynamic.Linear)
    error = (query(quantized)(x) - reference).abs().mean()
    assert error < 0.02 * reference.abs().mean()
    if has_vnni():
        assert error < 0.7 * (query(default)(x) - reference).abs().mean()


# Every family (#14): int8 quantizes the encoder's layers only, and `auto` keeps its 0.01 check


@pytest.mark.slow
def test_int8_and_auto_in_every_family(family_run: TrainedRun) -> None:
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    from kobert_demo.families import family_of
    from kobert_demo.predict import CHECK_SENTENCES, INT8_MAX_DIFF

    reference = Predictor.load(family_run.path, backend="torch").predict_proba(CHECK_SENTENCES)
    int8 = Predictor.load(family_run.path, backend="int8")
    assert int8.backend == "int8"
    model = int8.model
    family = family_of(model)
    layers = list(family.layers(model).modules())
    assert sum(isinstance(m, DynamicLinear) for m in layers) == 6 * len(family.layers(model))  # q k v o, ffn in, out
    outside = [m for m in model.modules() if not any(m is layer for layer in layers)]
    assert not any(isinstance(m, DynamicLinear) for m in outside)  # the head and ELECTRA's projection stay float
    head = family.new_head_layer(model)
    assert type(head) is torch.nn.Linear
    if family.model_type == "electra":
        assert type(family.encoder(model).embeddings_project) is torch.nn.Linear
    assert np.abs(int8.predict_proba(CHECK_SENTENCES) - reference).max() < 0.1  # unchecked, but not far off

    auto = Predictor.load(family_run.path, backend="auto")
    diff = np.abs(auto.predict_proba(CHECK_SENTENCES) - reference).max()
    assert auto.backend in ("int8", "torch")
    assert diff <= INT8_MAX_DIFF if auto.backend == "int8" else diff < 1e-5
