"""Serving backends, and `auto`: the fastest path on this machine whose probabilities keep to fp32's.

A backend is an engine: a callable from one padded batch (the tokenizer's `pad()`: input_ids, attention_mask,
token_type_ids) to class probabilities. `torch` runs the classifier in fp32, `bf16` with bfloat16 weights (CPUs with
AVX512-BF16 or AMX), `onnx` and `int8` run the same graph in ONNX Runtime, in fp32 or with dynamic int8 weights.
`auto` builds each candidate in turn, checks it against fp32 on CHECK_SENTENCES, times it briefly and keeps the
fastest that passed; the choice is stored in the model folder per machine (SERVING_FILE), and the ONNX files are
built once there (ONNX_DIR). A folder that cannot be written gets them in a temporary folder and stores nothing.

One model, one answer on one machine: the choice is measured once per model folder and machine, under a file lock
(LOCK_FILE), and every process that serves the folder (the app, the CLI, bulk prediction's ranks, explanations) uses
the stored one, whatever its thread count. It is filed under the weights' identity read before the weights were
loaded, and only when they are still the same afterwards, so a run still training never gets epoch k's choice filed
under epoch k+1's weights; the package and quantization-recipe versions are part of the key, so an upgrade measures
and builds again.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from filelock import FileLock

from kobert_demo import __version__
from kobert_demo.basics import files
from kobert_demo.basics.cpu import cpu_flags, cpu_name, has_bf16, speed_flags
from kobert_demo.basics.errors import UserFacingError

if TYPE_CHECKING:
    from kobert_demo.engine.classifier import Classifier

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
LOCK_FILE = "serving.lock"
# The version of what export_onnx and quantize_int8 write and of how auto measures: raise it with any change to
# them, so that stored int8 files and choices made by the old recipe are neither reused nor trusted.
RECIPE_VERSION = 2
# Instruction sets whose presence changes which kernels torch and ONNX Runtime run, beside cpu.SPEED_FLAGS: a VM
# may hide AVX-512 on a CPU whose model name is the same.
KERNEL_FLAGS = ("avx2", "fma", "avx512f", "avx512bw")
ONNX_NAMES = ["input_ids", "attention_mask", "token_type_ids"]
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
Batch = dict[str, torch.Tensor]


# --- engines ----------------------------------------------------------------------------------------------------------
class TorchEngine:
    """The classifier in PyTorch (fp32, or bf16 weights): probabilities of a padded batch."""

    def __init__(self, model: torch.nn.Module, backend: str) -> None:
        self.model, self.backend = model, backend

    @torch.inference_mode()
    def __call__(self, batch: Batch) -> np.ndarray:
        device = next(self.model.parameters()).device
        logits = self.model(**{k: v.to(device) for k, v in batch.items()}).logits
        return logits.float().softmax(-1).cpu().numpy()


class OrtEngine:
    """An ONNX Runtime session of the classifier's graph (probabilities out): probabilities of a padded batch."""

    def __init__(self, path: Path, backend: str) -> None:
        import onnxruntime

        self.session = onnxruntime.InferenceSession(str(path), session_options(), providers=["CPUExecutionProvider"])
        self.backend = backend
        self.model = None
        # An input the graph does not read (RoBERTa's token types, all 0) is dropped by the exporter: feed only its own.
        self.inputs = [node.name for node in self.session.get_inputs()]

    def __call__(self, batch: Batch) -> np.ndarray:
        return self.session.run(None, {name: batch[name].numpy() for name in self.inputs})[0]


Engine = TorchEngine | OrtEngine


def session_options() -> Any:
    """ONNX Runtime's options for serving: torch's thread count, and threads that sleep when idle.

    Spinning threads would take the CPU from a training job on the same server: on a shared 2-core Xeon (AMX), int8
    one-sentence p50 at KoBERT's shape was 16 ms with spinning off and 31 ms with it on, fp32 33 ms against 93 ms.
    """
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


# --- ONNX files -------------------------------------------------------------------------------------------------------
class Probabilities(torch.nn.Module):
    """The classifier with its softmax, as the ONNX graph computes it."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor):
        return self.model(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).logits.softmax(-1)


def export_onnx(classifier: Classifier, target: Path) -> None:
    """The classifier as an ONNX graph: input_ids, attention_mask, token_type_ids in (batch and length dynamic),
    probabilities out. The one exporter: serving's `onnx`/`int8` and `export --format onnx` both use it."""
    import warnings

    wrapper = Probabilities(classifier.model.eval()).eval()
    sample = classifier.tokenizer(CHECK_SENTENCES[:2])
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper, tuple(sample[n] for n in ONNX_NAMES), target, input_names=ONNX_NAMES,
            output_names=["probabilities"], opset_version=17, dynamo=False,
            dynamic_axes={**{n: {0: "batch", 1: "sequence"} for n in ONNX_NAMES}, "probabilities": {0: "batch"}},
        )  # fmt: skip


def quantize_int8(source: Path, target: Path) -> None:
    """Dynamic int8 of an ONNX graph's matrix products: QInt8 weights, activations quantized as they come.

    On a 2-core Xeon (AMX), KoBERT's shape, one sentence: 16 ms against 33 ms for the fp32 graph. The transformer
    optimizer (onnxruntime.transformers, model_type "bert") was tried before quantizing: it fused no attention in
    this graph, took 17 s, and was no faster (16.0 against 16.2 ms), so it is not used.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # Only the encoder's layers, with a scale per output channel: the head (BERT's pooler and classifier, RoBERTa's
    # and ELECTRA's two-layer head) and ELECTRA's embedding projection stay in fp32 (they cost nothing). Per tensor,
    # a tiny trained ELECTRA ended 0.029-0.033 away from fp32 (0.01 allowed), per channel within it; at KoBERT's
    # shape per channel is as fast (8.7-11.3 against 8.9-11.1 ms, shared 2-core Xeon) and closer (0.0058 to 0.0077).
    layers = [node.name for node in onnx.load(str(source)).graph.node if "/encoder/layer." in node.name]
    with _quiet_root_logger():  # "Please consider to run pre-processing before quantization": not for dynamic int8
        quantize_dynamic(source, target, weight_type=QuantType.QInt8, nodes_to_quantize=layers, per_channel=True)


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """Warnings that onnxruntime.quantization logs on the root logger are dropped while it runs, and the handler
    its `logging.warning` gives a root without one (logging.basicConfig, on the stderr of the moment) is taken off
    again: it would print every later warning of the process (the CLI's, the web app's) in its own format."""
    root = logging.getLogger()
    level, handlers = root.level, root.handlers[:]
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)
        root.handlers[:] = handlers


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
        return FileLock(self.folder / ONNX_DIR / LOCK_FILE, is_singleton=True)


FP32_FILE, INT8_FILE = "model.onnx", "model_int8.onnx"


def build_onnx(load: Callable[[], Classifier], where: Path, export: bool) -> None:
    """Write where's fp32 graph (exported from load()'s classifier, when `export`) and its int8 version."""
    if export:
        _atomic(where / FP32_FILE, lambda tmp: export_onnx(load(), tmp))
    _atomic(where / INT8_FILE, lambda tmp: quantize_int8(where / FP32_FILE, tmp))


def build_onnx_in_child(source: Path, trusted: bool, where: Path, export: bool) -> None:
    """build_onnx in a fresh interpreter, from the model folder `source`: `python -m kobert_demo.serving.choice`, not
    multiprocessing, whose spawned child re-runs the caller's main module (a user's script without a
    `__name__ == "__main__"` guard would start loading its model again)."""
    command = [
        sys.executable,
        "-m",
        "kobert_demo.serving.choice",
        str(source),
        str(where),
        str(int(export)),
        str(int(trusted)),
    ]
    done = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise RuntimeError(f"building the ONNX files failed: {last}")


class OnnxFiles:
    """The fp32 and int8 ONNX files of one model, built together on first use: in the model folder's ONNX_DIR when
    it can be written (rebuilt when the weights or build_versions() change), else in a temporary folder that lives as
    long as this object."""

    def __init__(self, served: ServedFolder | None) -> None:
        self._temporary: tempfile.TemporaryDirectory | None = None
        self.served = served
        self.folder = served.folder / ONNX_DIR if served is not None else None

    def _where(self) -> Path:
        if self.folder is not None:
            return self.folder
        if self._temporary is None:
            self._temporary = tempfile.TemporaryDirectory(prefix="kobert-demo-onnx-")
        return Path(self._temporary.name)

    def _stamp(self) -> dict:
        return {"weights": self.served.identity, **build_versions()}

    def _exported(self, where: Path) -> bool:
        """Whether where's fp32 graph is there and, in a model folder, from the weights there now by this build."""
        if self.folder is None:
            return (where / FP32_FILE).is_file()
        return (where / FP32_FILE).is_file() and _json_or_none(where / "weights.json") == self._stamp()

    def path(self, backend: str, load: Callable[[], Classifier], child: tuple[Path, bool] | None) -> Path:
        """The file of `onnx` or `int8`, both built when missing or stale: from load()'s fp32 classifier in this
        process, or in a child process from the model folder when `child` (folder, trusted) is given (see
        BUILD_IN_CHILD_BYTES). In a model folder, built under its lock and stamped only when the weights did not
        change while building."""
        with self.served.lock() if self.served is not None else contextlib.nullcontext():
            where = self._where()
            export = not self._exported(where)
            if export or not (where / INT8_FILE).is_file():
                try:
                    where.mkdir(exist_ok=True)
                    (where / "weights.json").unlink(missing_ok=True)
                    if child is not None:
                        build_onnx_in_child(*child, where, export)
                    else:
                        build_onnx(load, where, export)
                except OSError:
                    # a run still training swapped in its next epoch's model folder (and this build's onnx/ with
                    # the old one): say so, rather than an unexpected error
                    if self.served is not None and not self.served.unchanged():
                        raise UserFacingError("serving_model_changed") from None
                    raise
                if self.served is not None and self.served.unchanged():
                    files.write_json(where / "weights.json", self._stamp())
        return where / (INT8_FILE if backend == "int8" else FP32_FILE)


def _json_or_none(path: Path) -> Any:
    """The JSON in path; None when it is missing or not whole (a hand edit, a torn copy): measured or built again."""
    try:
        return files.read_json(path)
    except (OSError, ValueError):
        return None


def _atomic(target: Path, write: Callable[[Path], Any]) -> None:
    """write(tmp) then rename over target: a reader (another process serving the same run) never sees half a file."""
    with files.atomic_path(target) as tmp:
        write(tmp)


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
    data = _json_or_none(served.folder / SERVING_FILE)
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
    data = _json_or_none(served.folder / SERVING_FILE)
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


def release_memory() -> None:
    """Collect what was just dropped and hand the freed heap back to the system (glibc keeps it otherwise).

    Without the trim, auto's selection at KoBERT's shape peaked at 1.5 GB: the fp32 torch model's 370 MB stayed
    resident under the ONNX Runtime session built after it was freed.
    """
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def is_writable(folder: Path) -> bool:
    return os.access(folder, os.W_OK)


def main(argv: list[str] | None = None) -> int:
    """The child of build_onnx_in_child: SOURCE WHERE EXPORT(0|1) TRUSTED(0|1)."""
    from kobert_demo.engine.loading import load_classifier

    source, where, export, trusted = argv if argv is not None else sys.argv[1:]
    build_onnx(lambda: load_classifier(Path(source), trusted=trusted == "1"), Path(where), export == "1")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
