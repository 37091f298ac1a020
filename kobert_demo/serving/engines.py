"""Serving engines, and the ONNX files they read.

A backend is an engine: a callable from one padded batch (the tokenizer's `pad()`: input_ids, attention_mask,
token_type_ids) to class probabilities. `torch` runs the classifier in fp32, `bf16` with bfloat16 weights (CPUs with
AVX512-BF16 or AMX), `onnx` and `int8` run the same graph in ONNX Runtime, in fp32 or with dynamic int8 weights. The
ONNX files are built once in the model folder (choice.ONNX_DIR), under its serving lock and stamped with the weights'
identity; a folder that cannot be written gets them in a temporary folder. Which backend serves is choice.py's.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from kobert_demo.basics import files
from kobert_demo.basics.errors import UserFacingError
from kobert_demo.serving.choice import CHECK_SENTENCES, ONNX_DIR, ServedFolder, build_versions, json_or_none

if TYPE_CHECKING:
    from kobert_demo.engine.classifier import Classifier

ONNX_NAMES = ["input_ids", "attention_mask", "token_type_ids"]
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


FP32_FILE, INT8_FILE = "model.onnx", "model_int8.onnx"
STAMP_FILE = "weights.json"  # beside them: the weights' identity and build_versions() they were built from


def build_onnx(load: Callable[[], Classifier], where: Path, export: bool) -> None:
    """Write where's fp32 graph (exported from load()'s classifier, when `export`) and its int8 version."""
    if export:
        _atomic(where / FP32_FILE, lambda tmp: export_onnx(load(), tmp))
    _atomic(where / INT8_FILE, lambda tmp: quantize_int8(where / FP32_FILE, tmp))


def build_onnx_in_child(source: Path, trusted: bool, where: Path, export: bool) -> None:
    """build_onnx in a fresh interpreter, from the model folder `source`: `python -m kobert_demo.serving.engines`, not
    multiprocessing, whose spawned child re-runs the caller's main module (a user's script without a
    `__name__ == "__main__"` guard would start loading its model again)."""
    command = [
        sys.executable,
        "-m",
        "kobert_demo.serving.engines",
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
        return (where / FP32_FILE).is_file() and json_or_none(where / STAMP_FILE) == self._stamp()

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
                    (where / STAMP_FILE).unlink(missing_ok=True)
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
                    files.write_json(where / STAMP_FILE, self._stamp())
        return where / (INT8_FILE if backend == "int8" else FP32_FILE)


def _atomic(target: Path, write: Callable[[Path], Any]) -> None:
    """write(tmp) then rename over target: a reader (another process serving the same run) never sees half a file."""
    with files.atomic_path(target) as tmp:
        write(tmp)


def release_memory() -> None:
    """Collect what was just dropped and hand the freed heap back to the system (glibc keeps it otherwise).

    Without the trim, auto's selection at KoBERT's shape peaked at 1.5 GB: the fp32 torch model's 370 MB stayed
    resident under the ONNX Runtime session built after it was freed.
    """
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def main(argv: list[str] | None = None) -> int:
    """The child of build_onnx_in_child: SOURCE WHERE EXPORT(0|1) TRUSTED(0|1)."""
    from kobert_demo.engine.loading import load_classifier

    source, where, export, trusted = argv if argv is not None else sys.argv[1:]
    build_onnx(lambda: load_classifier(Path(source), trusted=trusted == "1"), Path(where), export == "1")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
