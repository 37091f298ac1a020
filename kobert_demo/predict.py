"""Class probabilities from a trained classifier: loaded once, batched by length, no autograd."""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from .model import Classifier, load_classifier
from .runs import Run
from .tokenizer import Encoded


def model_folder(path: str | Path) -> Path:
    """A run folder's model, or the path itself when it already is a model folder."""
    path = Path(path)
    return Run(path).model_dir if (path / "status.json").is_file() else path


BACKENDS = ("auto", "torch", "int8")
INT8_MAX_DIFF = 0.01
# Sentences of varied length and tone on which `auto` checks that int8 keeps to the fp32 probabilities.
CHECK_SENTENCES = [
    "정말 재미있는 영화였어요, 또 보고 싶네요",
    "시간 낭비. 최악의 영화",
    "그럭저럭 볼만했다",
    "배우들 연기는 좋은데 스토리가 너무 뻔하다...",
    "ㅋㅋㅋ 대박",
    "이 영화를 보고 나서 한참 동안 아무 말도 할 수 없었다. 음악, 연출, 연기 모두 완벽했다.",
    "별로",
    "기대 안 하고 봤는데 생각보다 괜찮네요!!",
]


def quantize_int8(model: torch.nn.Module) -> torch.nn.Module:
    """Dynamic int8 quantization of the linear layers (CPU): a copy, about 3-5x faster on one sentence."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization is deprecated in favour of torchao
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


class Predictor:
    def __init__(
        self, classifier: Classifier, batch_size: int = 64, backend: str = "torch", device: str | None = None
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
        self.classifier = classifier
        self.tokenizer = classifier.tokenizer
        self.batch_size = batch_size
        model = classifier.model.eval()
        if device is not None:
            model.to(device)
        self.model, self.backend = model, "torch"
        on_cpu = next(model.parameters()).device.type == "cpu"
        if backend == "int8" or (backend == "auto" and on_cpu and torch.backends.quantized.engine != "none"):
            self._use_int8(checked=backend == "auto")

    def _use_int8(self, checked: bool) -> None:
        """Switch to int8; when `checked`, only if its probabilities stay within 0.01 of fp32 on sample sentences."""
        quantized = quantize_int8(self.model)
        if checked:
            reference = self.predict_proba(CHECK_SENTENCES)
            self.model = quantized
            if float(np.abs(self.predict_proba(CHECK_SENTENCES) - reference).max()) > INT8_MAX_DIFF:
                self.model = self.classifier.model
                return
        self.model, self.backend = quantized, "int8"

    @classmethod
    def load(
        cls, path: str | Path, trusted: bool = True, backend: str = "torch", device: str | None = None
    ) -> Predictor:
        """From a run folder or a model folder (a run's `model/` or an unpacked export)."""
        return cls(load_classifier(model_folder(path), trusted=trusted), backend=backend, device=device)

    @property
    def label_names(self) -> list[str]:
        return self.classifier.label_names

    @torch.inference_mode()
    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """Probabilities, one row per text and one column per class, in the order given."""
        ids = self.tokenizer.encode_batch(texts)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        probs = np.zeros((len(texts), len(self.label_names)), dtype=np.float32)
        device = next(self.model.parameters()).device
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            batch = {k: v.to(device) for k, v in self.tokenizer.pad([ids[i] for i in chunk]).items()}
            probs[chunk] = self.model(**batch).logits.float().softmax(-1).cpu().numpy()
        return probs

    def predict(self, texts: list[str]) -> list[dict[str, float]]:
        """Label -> probability for each text."""
        return [dict(zip(self.label_names, row.tolist())) for row in self.predict_proba(texts)]

    def pieces(self, text: str) -> Encoded:
        return self.tokenizer.encode(text)


class PredictorCache:
    """Predictors loaded lazily, once, and shared by every visitor; the least recently used are dropped."""

    def __init__(self, size: int = 3) -> None:
        self.size = size
        self._items: OrderedDict[str, Predictor] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str, load) -> Predictor:
        """The predictor cached under key, loading it with `load()` the first time."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            predictor = load()
            self._items[key] = predictor
            while len(self._items) > self.size:
                self._items.popitem(last=False)
            return predictor
