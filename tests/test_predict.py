"""Tests for serving.predict: probabilities, order under length batching, loading, agreement with the run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TrainedRun, stamp_onnx_files

from kobert_demo.basics.data import LabeledData
from kobert_demo.basics.errors import BackboneError
from kobert_demo.basics.metrics import classification_metrics
from kobert_demo.engine.loading import load_classifier
from kobert_demo.serving.choice import MAX_DIFF, SERVING_FILE
from kobert_demo.serving.predict import Predictor, PredictorCache, model_folder

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


@pytest.mark.slow
def test_backends(trained_run: TrainedRun, trained_predictor: Predictor) -> None:
    """torch by default; int8 (ONNX Runtime) close to fp32, not equal; every backend in test_serving.py."""
    assert trained_predictor.backend == "torch" and trained_predictor.serving.backend == "torch"
    int8 = Predictor.load(trained_run.path, backend="int8")
    assert int8.backend == "int8"
    quantized = int8.predict_proba(TEXTS)
    np.testing.assert_allclose(quantized.sum(1), 1, atol=1e-5)
    np.testing.assert_allclose(quantized, trained_predictor.predict_proba(TEXTS), atol=0.01)
    assert not np.array_equal(quantized, trained_predictor.predict_proba(TEXTS))


@pytest.mark.slow
def test_auto_backend_keeps_to_fp32(trained_run: TrainedRun, trained_predictor: Predictor) -> None:
    """On a CPU, auto serves a path within 0.01 of fp32 on the check sentences (exactly fp32 when it is torch)."""
    from kobert_demo.serving.choice import CHECK_SENTENCES, MAX_DIFF

    auto = Predictor.load(trained_run.path, backend="auto")
    diff = np.abs(auto.predict_proba(CHECK_SENTENCES) - trained_predictor.predict_proba(CHECK_SENTENCES)).max()
    assert diff <= MAX_DIFF if auto.backend != "torch" else diff == 0
    assert auto.serving.backend == auto.backend


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


@pytest.mark.slow
@pytest.mark.parametrize("weights", ["pytorch_model.bin", "sharded"])
def test_load_and_serve_other_weight_files(onnx_built_model: Path, tmp_path: Path, weights: str) -> None:
    """A trusted folder whose weights are a pytorch_model.bin or sharded safetensors (an index and its shards), as
    load_classifier reads them: loaded, served on auto (its choice stored under their identity), same probabilities.
    An untrusted pytorch_model.bin is still refused (a pickle). The ONNX files are the same weights' (built once for
    the session: building is test_serving.py's), stamped for these files."""
    from safetensors.torch import load_file, save_file

    left = shutil.ignore_patterns("model.safetensors", SERVING_FILE)
    folder = Path(shutil.copytree(onnx_built_model, tmp_path / "model", ignore=left))
    tensors = load_file(onnx_built_model / "model.safetensors")
    if weights == "pytorch_model.bin":
        torch.save(tensors, folder / "pytorch_model.bin")
    else:
        names = sorted(tensors)
        shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
        for shard, keys in shards.items():
            save_file({key: tensors[key] for key in keys}, folder / shard, metadata={"format": "pt"})
        weight_map = {key: shard for shard, keys in shards.items() for key in keys}
        (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    stamp_onnx_files(folder)
    expected = Predictor.load(onnx_built_model, backend="torch").predict_proba(TEXTS)
    np.testing.assert_array_equal(Predictor.load(folder, backend="torch").predict_proba(TEXTS), expected)
    auto = Predictor.load(folder, backend="auto")
    assert np.abs(auto.predict_proba(TEXTS) - expected).max() <= MAX_DIFF
    assert Predictor.load(folder, backend="auto").serving.cached
    if weights == "pytorch_model.bin":
        with pytest.raises(BackboneError):
            Predictor.load(folder, trusted=False)
