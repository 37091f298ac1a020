"""`auto`: the fastest path on this machine whose probabilities keep to fp32's, chosen once and stored.

`auto` builds each candidate backend (engines.py) in turn, checks it against fp32 on CHECK_SENTENCES, times it
briefly and keeps the fastest that passed; the choice is stored in the model folder per machine (SERVING_FILE),
beside the ONNX files (ONNX_DIR). A folder that cannot be written stores nothing.

One model, one answer on one machine: the choice is measured once per model folder and machine, under a file lock
(SERVING_LOCK), and every process that serves the folder (the app, the CLI, bulk prediction's ranks, explanations) uses
the stored one, whatever its thread count. It is filed under the weights' identity read before the weights were
loaded, and only when they are still the same afterwards, so a run still training never gets epoch k's choice filed
under epoch k+1's weights; the package and quantization-recipe versions are part of the key, so an upgrade measures
and builds again.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from filelock import FileLock

from kobert_demo import __version__
from kobert_demo.basics import files
from kobert_demo.basics.cpu import cpu_flags, cpu_name, has_bf16, speed_flags
from kobert_demo.basics.errors import UserFacingError

BACKENDS = ("auto", "torch", "bf16", "onnx", "int8")
# What each backend is, in words (the same in English and Korean: names of formats and libraries).
BACKEND_NAMES = {
    "torch": "fp32 (PyTorch)",
    "bf16": "bf16 (PyTorch)",
    "onnx": "fp32 (ONNX Runtime)",
    "int8": "int8 (ONNX Runtime)",
}
MAX_DIFF = 0.01  # the most any probability of a served path may differ from fp32's on CHECK_SENTENCES
SERVING_FILE = "serving.json"  # auto's choice, per machine, for the weights there, in the model folder
ONNX_DIR = "onnx"  # the ONNX files built from the weights, in the model folder
# Held while a process measures or builds ONNX files in a model folder. In ONNX_DIR, not beside the weights: exports
# copy the model folder's own files, never its subfolders.
SERVING_LOCK = "serving.lock"
# The version of what export_onnx and quantize_int8 write and of how auto measures: raise it with any change to
# them, so that stored int8 files and choices made by the old recipe are neither reused nor trusted.
RECIPE_VERSION = 2
# Instruction sets whose presence changes which kernels torch and ONNX Runtime run, beside cpu.SPEED_FLAGS: a VM
# may hide AVX-512 on a CPU whose model name is the same.
KERNEL_FLAGS = ("avx2", "fma", "avx512f", "avx512bw")
# Sentences of varied length, register and topic on which `auto` checks each path against fp32 and times it.
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
# `auto` times one sentence at a time over every other check sentence, after a few warm-up calls (the first calls
# build kernels and caches): about 1 s for fp32 at KoBERT's shape on 2 cores, 0.3 s for int8.
TIMED_SENTENCES = CHECK_SENTENCES[::2]
WARMUP_SENTENCES = 4


def weights_identity(folder: Path, trusted: bool = True, name: str = "") -> list[list]:
    """Name, size, modification time and inode of config.json and of each weights file (model.safetensors, its
    shards, or a trusted pytorch_model.bin, as load_classifier reads them): a new training, a copy over them or a
    folder swapped into place changes it. Size and times rather than a hash: 0.06 ms per load, against 0.44 s to
    hash KoBERT's 370 MB at sha256's 840 MB/s (2-core AMD EPYC), twice per load (before and after).
    name: how an error calls the folder (never a server path to a visitor)."""
    from kobert_demo.engine.checkpoints import weight_files

    paths = [folder / "config.json", *weight_files(folder, trusted, name or str(folder))]
    return [[path.name, (stat := path.stat()).st_size, stat.st_mtime_ns, stat.st_ino] for path in paths]


def build_versions() -> dict:
    """What the ONNX files depend on besides the weights: the exporter, the quantizer, and our recipe."""
    import onnxruntime

    return {
        "package": __version__,
        "recipe": RECIPE_VERSION,
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
    }


def machine_key() -> dict:
    """What a stored choice holds for besides the weights: this CPU and its instruction sets, and build_versions().
    Not the thread count: a process with other threads (the CLI beside the app, a bulk rank) serves the same choice,
    so that the same file gives the same bytes."""
    import platform

    flags = [flag for flag in KERNEL_FLAGS if flag in cpu_flags()]
    return {"cpu": cpu_name(), "arch": platform.machine(), "flags": [*flags, *speed_flags()], **build_versions()}


@dataclass
class ServedFolder:
    """A model folder that serving may write (its choice, ONNX files and lock), with the weights' identity read
    before they were loaded: whatever is measured or built from them is filed under it, and only while the weights
    on disk are still those."""

    folder: Path
    identity: list[list]
    trusted: bool = True

    @classmethod
    def read(cls, folder: Path, trusted: bool = True, name: str = "") -> ServedFolder | None:
        """The folder with its weights' identity now; None when it cannot be written or its files cannot be named
        (load_classifier then says what is wrong with them, in its order of checks)."""
        if not is_writable(folder):
            return None
        try:
            return cls(folder, weights_identity(folder, trusted, name), trusted)
        except (OSError, UserFacingError):
            return None

    def unchanged(self) -> bool:
        """Whether the weights on disk are still the ones identified."""
        try:
            return weights_identity(self.folder, self.trusted) == self.identity
        except (OSError, UserFacingError):
            return False

    def lock(self) -> FileLock:
        """The folder's serving lock: one process (and thread) measures or builds at a time; re-entrant in one thread
        (auto's measuring builds the ONNX files under it)."""
        (self.folder / ONNX_DIR).mkdir(exist_ok=True)
        return FileLock(self.folder / ONNX_DIR / SERVING_LOCK, is_singleton=True)


def json_or_none(path: Path) -> Any:
    """The JSON in path; None when it is missing or not whole (a hand edit, a torn copy): measured or built again."""
    try:
        return files.read_json(path)
    except (OSError, ValueError):
        return None


# --- the choice and its report ----------------------------------------------------------------------------------------
@dataclass
class Candidate:
    """One backend as `auto` tried it: one-sentence p50 (ms), its largest probability difference from fp32, and why
    it was refused (None when it passed)."""

    backend: str
    p50_ms: float | None = None
    max_diff: float | None = None
    refused: str | None = None


@dataclass
class ServingReport:
    """What serves a model and why: the chosen backend, every candidate tried, and whether the choice was measured
    now or read from the model folder's cache."""

    backend: str
    candidates: list[Candidate] = field(default_factory=list)
    cached: bool = False

    def candidate(self, backend: str) -> Candidate | None:
        return next((c for c in self.candidates if c.backend == backend), None)

    @property
    def speedup(self) -> float | None:
        """fp32's p50 over the chosen backend's, when both were timed."""
        chosen, fp32 = self.candidate(self.backend), self.candidate("torch")
        if chosen is None or fp32 is None or not chosen.p50_ms or not fp32.p50_ms:
            return None
        return fp32.p50_ms / chosen.p50_ms

    def to_json(self) -> dict:
        return {"backend": self.backend, "cached": self.cached, "candidates": [asdict(c) for c in self.candidates]}

    @classmethod
    def from_json(cls, data: dict) -> ServingReport:
        return cls(data["backend"], [Candidate(**c) for c in data["candidates"]], bool(data.get("cached")))


def stored_choice(served: ServedFolder) -> ServingReport | None:
    """The choice stored in the folder for this machine and these weights; None when there is none or it is stale."""
    data = json_or_none(served.folder / SERVING_FILE)
    try:
        if data["weights"] != served.identity:
            return None
        stored = next((c["report"] for c in data["choices"] if c["machine"] == machine_key()), None)
        report = ServingReport.from_json(stored) if stored is not None else None
    except (KeyError, TypeError, ValueError):
        return None
    if report is None or report.backend not in candidates_here():
        return None
    report.cached = True
    return report


def store_choice(served: ServedFolder, report: ServingReport) -> bool:
    """File report under served's identity and this machine, beside other machines' choices for the same weights;
    nothing when the weights changed since they were identified (the report measured others). True when stored."""
    if not served.unchanged():
        return False
    data = json_or_none(served.folder / SERVING_FILE)
    kept = []
    if isinstance(data, dict) and data.get("weights") == served.identity and isinstance(data.get("choices"), list):
        kept = [c for c in data["choices"] if isinstance(c, dict) and c.get("machine") != machine_key()]
    choice = {"machine": machine_key(), "report": report.to_json()}
    files.write_json(served.folder / SERVING_FILE, {"weights": served.identity, "choices": [*kept, choice]})
    return True


def candidates_here() -> list[str]:
    """The backends `auto` tries on this CPU, in order: fp32 first (the reference, and the ONNX export's source
    while it is held), bf16 last (from the fp32 weights read again) and only with native bf16 instructions."""
    return ["torch", "onnx", "int8", *(["bf16"] if has_bf16() else [])]


def one_sentence_times(predict_one: Callable[[str], object], sentences: list[str], warmup: list[str]) -> np.ndarray:
    """ms of predict_one on each of sentences, one at a time, after a call on each warm-up sentence."""
    for sentence in warmup:
        predict_one(sentence)
    times = []
    for sentence in sentences:
        start = time.perf_counter()
        predict_one(sentence)
        times.append((time.perf_counter() - start) * 1000)
    return np.array(times)


def one_sentence_p50(predict_one: Callable[[str], object], sentences: list[str]) -> float:
    """p50 in ms of predict_one over sentences, after WARMUP_SENTENCES warm-up calls."""
    return float(np.percentile(one_sentence_times(predict_one, sentences, sentences[:WARMUP_SENTENCES]), 50))


def is_writable(folder: Path) -> bool:
    return os.access(folder, os.W_OK)


# --- auto -------------------------------------------------------------------------------------------------------------
class Servable(Protocol):
    """What `auto` needs of a predictor (predict.Predictor): the backend and engine in use, the model folder it may
    write, whether it can read its fp32 model again, serving another backend, and probabilities as served."""

    engine: object | None
    reload: Callable[[], object] | None
    served: ServedFolder | None

    @property
    def backend(self) -> str: ...

    def serve(self, backend: str) -> None: ...

    def predict_proba(self, texts: list[str]) -> np.ndarray: ...


def choose(predictor: Servable) -> ServingReport:
    """`auto` on a CPU: the choice stored for this machine and these weights, else measured under the folder's lock
    (a second process waits, then serves the first one's choice) and stored. The predictor serves the choice."""
    if predictor.served is None:
        return measure(predictor)
    with predictor.served.lock():
        if (stored := stored_choice(predictor.served)) is not None:
            if stored.backend != predictor.backend:
                predictor.serve(stored.backend)
            return stored
        report = measure(predictor)
        store_choice(predictor.served, report)
        return report


def measure(predictor: Servable) -> ServingReport:
    """Each candidate served in turn, checked against fp32 on CHECK_SENTENCES (refused past MAX_DIFF), timed one
    sentence at a time, and freed before the next; the fastest that passed serves. Without `reload`, fp32 is the
    only choice."""
    reference = predictor.predict_proba(CHECK_SENTENCES)
    candidates = [Candidate("torch", served_p50(predictor), 0.0)]
    for backend in candidates_here()[1:] if predictor.reload is not None else []:
        try:
            predictor.serve(backend)
        except Exception as error:  # a graph the exporter or ONNX Runtime cannot take: the others still serve
            candidates.append(Candidate(backend, refused=f"{type(error).__name__}: {error}"[:200]))
            continue
        diff = float(np.abs(predictor.predict_proba(CHECK_SENTENCES) - reference).max())
        if diff > MAX_DIFF:
            candidates.append(Candidate(backend, max_diff=diff, refused=f"differs from fp32 by {diff:.4f}"))
        else:
            candidates.append(Candidate(backend, served_p50(predictor), diff))
    best = min((c for c in candidates if c.refused is None), key=lambda c: c.p50_ms)
    if predictor.engine is None or best.backend != predictor.backend:
        predictor.serve(best.backend)
    return ServingReport(best.backend, candidates)


def served_p50(predictor: Servable) -> float:
    """One-sentence p50 (ms) of the predictor's probabilities as served now, tokenizing included."""
    return one_sentence_p50(lambda text: predictor.predict_proba([text]), TIMED_SENTENCES)
