"""Class probabilities from a trained classifier: loaded once, batched by length, no autograd."""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from kobert_demo.basics.runs import Run
from kobert_demo.basics.settings import limits
from kobert_demo.engine.classifier import Classifier
from kobert_demo.engine.loading import load_classifier
from kobert_demo.engine.memory import BUILD_IN_CHILD_BYTES
from kobert_demo.engine.tokenizer import Encoded
from kobert_demo.serving.choice import BACKENDS, ServedFolder, ServingReport, choose
from kobert_demo.serving.engines import Engine, OnnxFiles, OrtEngine, TorchEngine, release_memory

if TYPE_CHECKING:
    from kobert_demo.serving.explain import Explanation


def model_folder(path: str | Path) -> Path:
    """A run folder's model, or the path itself when it already is a model folder."""
    path = Path(path)
    return Run(path).model_dir if (path / "status.json").is_file() else path


class Predictor:
    """Serves one classifier on the backend asked for (choice.BACKENDS); `auto` picks the fastest exact one (choice.py).

    reload: reads the fp32 classifier from disk again (explanations of a non-fp32 backend, `auto` dropping and
    rebuilding its candidates); served: the model folder where `auto` stores its choice and the ONNX files, with the
    identity of the weights the classifier was read from (ServedFolder.read before loading them), None for one that
    must not be written (nothing is then kept on disk); build_from: (model folder, trusted) that a child
    process can read to build a big model's ONNX files, None to build them in this process.
    """

    def __init__(
        self,
        classifier: Classifier,
        batch_size: int = 64,
        backend: str = "torch",
        device: str | None = None,
        reload: Callable[[], Classifier] | None = None,
        served: ServedFolder | None = None,
        build_from: tuple[Path, bool] | None = None,
    ) -> None:
        self.classifier: Classifier | None = classifier
        self.reload = reload
        self.tokenizer = classifier.tokenizer
        self.label_names = classifier.label_names
        self.source = classifier.source
        self.model_class = type(classifier.model).__name__
        self._weight_bytes = sum(p.numel() * p.element_size() for p in classifier.model.parameters())
        self.batch_size = batch_size
        self.engine: Engine | None = TorchEngine(classifier.model.eval().to(device), "torch")
        self._float_model: torch.nn.Module | None = None
        self._float_lock = threading.Lock()
        self.served = served
        self._onnx = OnnxFiles(served)
        self._build_from = build_from
        self.serving = ServingReport("torch")
        if backend != "torch":
            self.use(backend)

    def use(self, backend: str) -> None:
        """Serve on backend from now on (choice.BACKENDS); `auto` measures or reads its stored choice.

        The fp32 model is freed while other backends are built only when nothing else holds it: the caller of
        `Predictor(classifier, backend=...)` still does until the constructor returns, so build with the default
        backend and then call `use`, as `load` does, to keep serving's peak memory to one model at a time.
        """
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
        if backend == "auto" and self.model is not None and self.model.device.type != "cpu":
            backend = "torch"  # on a GPU, auto is torch
        if backend == "auto":
            self.serving = choose(self)
            return
        if backend != self.backend:
            self.serve(backend)
        self.serving = ServingReport(backend)

    @property
    def backend(self) -> str:
        """The path in use: torch (fp32), bf16, onnx (ONNX Runtime fp32) or int8 (ONNX Runtime dynamic int8)."""
        return self.engine.backend

    @property
    def model(self) -> torch.nn.Module | None:
        """The torch model served (fp32 or bf16); None when ONNX Runtime serves."""
        return self.engine.model

    def _fp32(self) -> Classifier:
        """The fp32 classifier: the one served, else read again from disk."""
        if self.classifier is not None and self.backend == "torch":
            return self.classifier
        if self.reload is None:
            raise ValueError("this predictor cannot reload its fp32 model")
        return self.reload()

    def serve(self, backend: str) -> None:
        """Serve on backend, built from the fp32 model, leaving `serving` (the report) as it is: auto's measuring
        (choice.py) serves each candidate in turn; callers use `use`. bf16 converts the fp32 model in place; for ONNX
        Runtime the torch model is freed before the session is built, so that serving never holds both."""
        if backend in ("torch", "bf16"):
            if self.classifier is None:  # an ONNX Runtime session is served: freed before the fp32 model is read
                self.engine = None
                release_memory()
            self.classifier = self._fp32()
            model = self.classifier.model.eval()
            self.engine = TorchEngine(model.to(torch.bfloat16) if backend == "bf16" else model, backend)
            return
        big = self._build_from is not None and self._weight_bytes > BUILD_IN_CHILD_BYTES
        path = self._onnx.path(backend, self._fp32, self._build_from if big else None)
        self.classifier = self.engine = None
        release_memory()
        self.engine = OrtEngine(path, backend)

    @classmethod
    def load(
        cls, path: str | Path, trusted: bool = True, backend: str = "torch", device: str | None = None, name: str = ""
    ) -> Predictor:
        """From a run folder or a model folder (a run's `model/` or an unpacked export); name: how errors call it.

        Only a trusted folder stores `auto`'s choice and ONNX files in itself: an untrusted one (a hub or local model
        a visitor named) is never written to. Weights: model.safetensors, sharded safetensors, or (trusted only)
        pytorch_model.bin, as load_classifier reads them; their identity is read before they are loaded.
        """
        folder = model_folder(path)
        reload = functools.partial(load_classifier, folder, trusted=trusted, name=name)
        served = ServedFolder.read(folder, name=name) if trusted else None
        predictor = cls(reload(), device=device, reload=reload, served=served, build_from=(folder, trusted))
        predictor.use(backend)
        return predictor

    @torch.inference_mode()
    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """Probabilities, one row per text and one column per class, in the order given.

        A text is cut at max_text_chars characters before it is tokenized: only its first max_len pieces count, and
        KoBERT's tokenizer takes 0.34 s per MB of Korean (5 ms for 5,000 characters), so one 100 MB line uploaded
        to the web app would otherwise hold it for half a minute. Texts are sorted by length and padded per batch,
        whatever the backend.
        """
        most = limits().max_text_chars
        ids = self.tokenizer.encode_batch([text[:most] for text in texts])
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        probs = np.zeros((len(texts), len(self.label_names)), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            probs[chunk] = self.engine(self.tokenizer.pad([ids[i] for i in chunk]))
        return probs

    def predict(self, texts: list[str]) -> list[dict[str, float]]:
        """Label -> probability for each text."""
        return [dict(zip(self.label_names, row.tolist())) for row in self.predict_proba(texts)]

    def pieces(self, text: str) -> Encoded:
        return self.tokenizer.encode(text)

    def explain(self, text: str, label: str | None = None) -> Explanation:
        """Each word's and piece's share of `label`'s log-probability (default: the predicted class); see explain.py.

        Integrated Gradients needs fp32 gradients: a predictor on another backend reads the fp32 model from disk the
        first time it explains, and keeps it. The class explained by default is the one this predictor serves (its
        backend's prediction), so that an explanation never explains another label than the one shown beside it.
        """
        from kobert_demo.serving.explain import explain

        text = text[: limits().max_text_chars]
        if not label and self.backend != "torch":
            label = self.label_names[int(self.predict_proba([text])[0].argmax())]
        return explain(self.float_model(), self.tokenizer.encode(text), text, self.label_names, label)

    def float_model(self) -> torch.nn.Module:
        """The model in fp32: the served one, or for another backend an fp32 copy read once from disk."""
        if self.backend == "torch":
            return self.model
        with self._float_lock:
            if self._float_model is None:
                if self.reload is None:
                    raise ValueError(f"this {self.backend} predictor cannot reload its fp32 model to explain")
                self._float_model = self.reload().model.eval()
            return self._float_model


class PredictorCache:
    """Predictors loaded lazily, once, and shared by every visitor; the least recently used are dropped.

    Each model loads under its own lock, outside the cache's: a slow load (KoBERT from disk takes seconds, an int8
    check more) holds back only the requests for that model, never a prediction with one already loaded.
    """

    def __init__(self, size: int = 3) -> None:
        self.size = size
        self._items: OrderedDict[str, Predictor] = OrderedDict()
        self._loading: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def _cached(self, key: str) -> Predictor | None:
        """The predictor under key, marked as just used; None if not loaded. Call with self._lock held."""
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        return None

    def get(self, key: str, load: Callable[[], Predictor]) -> Predictor:
        """The predictor cached under key, loading it with `load()` the first time."""
        with self._lock:
            if (predictor := self._cached(key)) is not None:
                return predictor
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:  # a second request for the same model waits for the first load rather than loading again
            with self._lock:
                if (predictor := self._cached(key)) is not None:
                    return predictor
            try:
                predictor = load()
            except BaseException:
                with self._lock:
                    self._done_loading(key, loading)
                raise
            with self._lock:  # cached and no longer loading at once: a new request finds one or the other
                self._items[key] = predictor
                while len(self._items) > self.size:
                    self._items.popitem(last=False)
                self._done_loading(key, loading)
            return predictor

    def _done_loading(self, key: str, loading: threading.Lock) -> None:
        """Forget key's load lock, unless a later load already replaced it. Call with self._lock held."""
        if self._loading.get(key) is loading:
            del self._loading[key]
