"""Class probabilities from a trained classifier: loaded once, batched by length, no autograd."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from .cpu import has_vnni
from .families import family_of
from .model import Classifier, load_classifier
from .runs import Run
from .settings import limits
from .tokenizer import Encoded

if TYPE_CHECKING:
    from .explain import Explanation


def model_folder(path: str | Path) -> Path:
    """A run folder's model, or the path itself when it already is a model folder."""
    path = Path(path)
    return Run(path).model_dir if (path / "status.json").is_file() else path


BACKENDS = ("auto", "torch", "int8")
INT8_MAX_DIFF = 0.01
# Sentences of varied length, register and topic on which `auto` checks that int8 keeps to the fp32 probabilities.
CHECK_SENTENCES = [
    "정말 재미있는 영화였어요, 또 보고 싶네요",
    "시간 낭비. 최악의 영화",
    "그럭저럭 볼만했다",
    "배우들 연기는 좋은데 스토리가 너무 뻔하다...",
    "ㅋㅋㅋ 대박",
    "이 영화를 보고 나서 한참 동안 아무 말도 할 수 없었다. 음악, 연출, 연기 모두 완벽했다.",
    "별로",
    "기대 안 하고 봤는데 생각보다 괜찮네요!!",
    "배송이 빨라서 좋았어요",
    "환불 요청했는데 일주일째 답이 없습니다. 다시는 이용 안 합니다.",
    "오늘 날씨 어때?",
    "내일 오전 9시에 회의실 예약해 줘",
    "요즘 너무 우울하고 아무것도 하기 싫어",
    "정부는 다음 달부터 전기 요금을 인상한다고 밝혔다.",
    "한국은행이 기준금리를 동결했다",
    "너 같은 사람은 인터넷 하지 마라",
    "댓글 보니까 다들 생각이 비슷하네",
    "이 가격에 이 품질이면 만족합니다 ^^",
    "음... 잘 모르겠어요",
    "1점도 아깝다",
    "10점 만점에 10점!",
    "OST가 너무 좋아서 계속 듣고 있어요 ㅠㅠ",
    "The acting was great, 근데 결말이 아쉬움",
    "주인공이 왜 그런 선택을 했는지 끝까지 이해가 안 됐다. 감독의 의도가 뭔지 궁금하다.",
    "아이들과 함께 보기 좋은 가족 영화입니다",
    "졸려서 중간에 나왔음",
    "국내 연구진이 새로운 배터리 소재를 개발했다고 발표했다",
    "고객센터 연결이 너무 오래 걸려요",
    "ㅎㅎ 감사합니다~",
    "이걸 돈 주고 봤다니 내 자신이 한심하다",
    "원작 소설을 먼저 읽었는데, 영화는 원작의 분위기를 잘 살리지 못한 것 같아 아쉽다. 그래도 배우들의 연기만큼은"
    " 인상적이었고 특히 마지막 장면의 여운이 오래 남았다.",
    "?",
]


def quantize_int8(model: torch.nn.Module, inplace: bool) -> torch.nn.Module:
    """Dynamic int8 quantization of the encoder's linear layers (CPU), about 3-5x faster on one sentence.

    Weights per output channel; on CPUs with VNNI, inputs over the full 8 bits rather than torch's default 7: on
    KoBERT's shape that halves the error. Only the encoder's layers are quantized: the head (BERT's pooler and
    classifier, RoBERTa's and ELECTRA's two-layer head) and ELECTRA's embedding projection stay in float (they
    cost nothing).
    In place, the float weights are freed as each layer is swapped; otherwise a quantized copy is made.
    """
    import warnings

    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    in_layers = {id(module) for module in family_of(model).layers(model).modules()}
    encoder_linears = {
        name: per_channel_dynamic_qconfig
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and id(module) in in_layers
    }
    mapping = {torch.nn.Linear: FullRangeDynamicLinear} if has_vnni() else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization is deprecated in favour of torchao
        return quantize_dynamic(model, encoder_linears, dtype=torch.qint8, mapping=mapping, inplace=inplace)


class FullRangeDynamicLinear(torch.ao.nn.quantized.dynamic.Linear):
    """torch's dynamic int8 linear with its input quantized to 0..255 instead of 0..127 (safe only with VNNI)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        packed = self._packed_params._packed_params
        return torch.ops.quantized.linear_dynamic(x, packed, reduce_range=False).to(x.dtype)


class Predictor:
    """Serves one classifier. `reload` rebuilds it from disk, so that int8 can be tried in place (see `_use_int8`)."""

    def __init__(
        self,
        classifier: Classifier,
        batch_size: int = 64,
        backend: str = "torch",
        device: str | None = None,
        reload: Callable[[], Classifier] | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
        self.classifier = classifier
        self.reload = reload
        self.tokenizer = classifier.tokenizer
        self.batch_size = batch_size
        model = classifier.model.eval()
        if device is not None:
            model.to(device)
        self.model, self.backend = model, "torch"
        self._float_model: torch.nn.Module | None = None
        self._float_lock = threading.Lock()
        on_cpu = next(model.parameters()).device.type == "cpu"
        if backend == "int8" or (backend == "auto" and on_cpu and torch.backends.quantized.engine != "none"):
            self._use_int8(checked=backend == "auto")

    def _use_int8(self, checked: bool) -> None:
        """Switch to int8; when `checked`, only if its probabilities stay within 0.01 of fp32 on sample sentences.

        The model is quantized in place, so serving never holds a float and an int8 model together, unless it is
        checked and cannot be reloaded; a checked model that fails is reloaded from disk in float.
        """
        reference = self.predict_proba(CHECK_SENTENCES) if checked else None
        inplace = not checked or self.reload is not None
        float_model, self.model = self.model, quantize_int8(self.model, inplace)
        if reference is not None and np.abs(self.predict_proba(CHECK_SENTENCES) - reference).max() > INT8_MAX_DIFF:
            if inplace:  # the float weights are gone: read them again
                self.classifier = self.reload()
                float_model = self.classifier.model.eval()
            self.model = float_model
            return
        self.backend = "int8"

    @classmethod
    def load(
        cls, path: str | Path, trusted: bool = True, backend: str = "torch", device: str | None = None, name: str = ""
    ) -> Predictor:
        """From a run folder or a model folder (a run's `model/` or an unpacked export); name: how errors call it."""
        folder = model_folder(path)
        return cls(
            load_classifier(folder, trusted=trusted, name=name),
            backend=backend,
            device=device,
            reload=lambda: load_classifier(folder, trusted=trusted, name=name),
        )

    @property
    def label_names(self) -> list[str]:
        return self.classifier.label_names

    @torch.inference_mode()
    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """Probabilities, one row per text and one column per class, in the order given.

        A text is cut at max_text_chars characters before it is tokenized: only its first max_len pieces count, and
        KoBERT's tokenizer takes 0.34 s per MB of Korean (5 ms for 5,000 characters), so one 100 MB line uploaded
        to the web app would otherwise hold it for half a minute.
        """
        most = limits().max_text_chars
        ids = self.tokenizer.encode_batch([text[:most] for text in texts])
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

    def explain(self, text: str, label: str | None = None) -> Explanation:
        """Each word's and piece's share of `label`'s log-probability (default: the predicted class); see explain.py.

        Integrated Gradients needs gradients, which the int8 model has none of: an int8 predictor reads the float
        model from disk the first time it explains, and keeps it.
        """
        from .explain import explain

        text = text[: limits().max_text_chars]
        return explain(self.float_model(), self.tokenizer.encode(text), text, self.label_names, label)

    def float_model(self) -> torch.nn.Module:
        """The model in float: the served one, or for int8 a float copy read once from disk."""
        if self.backend == "torch":
            return self.model
        with self._float_lock:
            if self._float_model is None:
                if self.reload is None:
                    raise ValueError("this int8 predictor cannot reload its float model to explain")
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
