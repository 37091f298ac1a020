"""Model zips: export a run's model, and open an uploaded zip as untrusted input.

An export holds only safetensors weights and JSON/text/SentencePiece files, so the Predict tab, the CLI and plain
transformers can load it. An import reads nothing else: no pickle, no paths outside its folder, no symlinks, and
a cap on the unpacked size and the number of files (zip bombs); the config is checked before weights are loaded.
"""

from __future__ import annotations

import shutil
import stat
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from .errors import BackboneError, UserFacingError
from .model import Classifier, load_classifier
from .predict import CHECK_SENTENCES
from .runs import Run, RunError

ALLOWED_SUFFIXES = (".safetensors", ".json", ".model", ".md", ".txt")
MAX_FILES = 50
MAX_UNPACKED_BYTES = 2 * 1024**3
MAX_RATIO = 200  # unpacked/packed; real models compress about 1.1x, zip bombs 1000x


class ModelZipError(UserFacingError, ValueError):
    """An uploaded model zip that is refused, as one sentence."""


def export_zip(run: Run, dest: str | Path | None = None) -> Path:
    """`<run name>.zip` with the model folder's files and the run's model card and config."""
    if not run.has_model:
        raise RunError("run_no_model", run=run.name)
    dest = Path(dest) if dest else Path(tempfile.mkdtemp(prefix="kobert-demo-export-"))
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / f"{run.name}.zip"
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(run.model_dir.iterdir()):
            if file.is_file() and file.suffix in ALLOWED_SUFFIXES:
                archive.write(file, file.name)
        for name, arcname in (("README.md", "README.md"), ("config.json", "training_config.json")):
            if (run.path / name).is_file():
                archive.write(run.path / name, arcname)
    return target


FORMATS = ("zip", "transformers", "onnx")
ONNX_MAX_DIFF = 0.01


def export_model(run: Run, out: str | Path, fmt: str) -> tuple[Path, float | None]:
    """Export a run as a zip, a plain transformers folder or an ONNX folder; returns (path, ONNX max prob. diff).

    The ONNX graph takes input_ids, attention_mask and token_type_ids and returns probabilities; it is checked
    against PyTorch on sample sentences and refused if any probability differs by more than 0.01.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if not run.has_model:
        raise RunError("run_no_model", run=run.name)
    out = Path(out)
    if fmt == "zip":
        return export_zip(run, out), None
    if out.exists() and any(out.iterdir()):
        raise RunError("export_out_not_empty", out=out)
    out.mkdir(parents=True, exist_ok=True)
    for file in run.model_dir.iterdir():
        if file.is_file() and (fmt == "transformers" or file.suffix != ".safetensors"):
            shutil.copy(file, out / file.name)
    if fmt == "transformers":
        return out, None
    return out, _export_onnx(load_classifier(run.model_dir), out / "model.onnx")


def _export_onnx(classifier: Classifier, target: Path) -> float:
    import warnings

    import numpy as np
    import onnxruntime
    import torch

    class Probabilities(torch.nn.Module):
        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).logits.softmax(-1)

    wrapper = Probabilities(classifier.model.eval()).eval()
    sample = classifier.tokenizer(CHECK_SENTENCES[:2])
    names = ["input_ids", "attention_mask", "token_type_ids"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper, tuple(sample[n] for n in names), target, input_names=names, output_names=["probabilities"],
            dynamic_axes={**{n: {0: "batch", 1: "sequence"} for n in names}, "probabilities": {0: "batch"}},
            opset_version=17, dynamo=False,
        )  # fmt: skip
    batch = classifier.tokenizer(CHECK_SENTENCES)
    session = onnxruntime.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    got = session.run(None, {n: batch[n].numpy() for n in names})[0]
    with torch.inference_mode():
        want = wrapper(*(batch[n] for n in names)).numpy()
    diff = float(np.abs(got - want).max())
    if diff > ONNX_MAX_DIFF:
        target.unlink()
        raise RunError("export_onnx_diff", diff=diff)
    return diff


def _checked_members(archive: zipfile.ZipFile, name: str) -> list[tuple[zipfile.ZipInfo, str]]:
    """(entry, flat file name) for every file, after refusing anything unsafe; folders inside are flattened."""
    entries = [info for info in archive.infolist() if not info.is_dir()]
    if not entries:
        raise ModelZipError("zip_empty", name=name)
    if len(entries) > MAX_FILES:
        raise ModelZipError("zip_too_many_files", name=name, files=len(entries), limit=MAX_FILES)
    total = sum(info.file_size for info in entries)
    packed = max(1, sum(info.compress_size for info in entries))
    if total > MAX_UNPACKED_BYTES or total / packed > MAX_RATIO:
        raise ModelZipError("zip_bomb", name=name, unpacked_mb=total / 2**20, packed_mb=packed / 2**20)
    checked, seen = [], set()
    for info in entries:
        path = PurePosixPath(info.filename.replace("\\", "/"))
        if path.is_absolute() or ".." in path.parts or (info.filename[1:2] == ":"):
            raise ModelZipError("zip_unsafe_path", name=name, entry=info.filename)
        if stat.S_ISLNK(info.external_attr >> 16):
            raise ModelZipError("zip_symlink", name=name, entry=info.filename)
        if path.suffix in (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"):
            raise ModelZipError("zip_pickle", name=name, file=path.name)
        if path.suffix not in ALLOWED_SUFFIXES:
            continue  # neither read nor unpacked
        if path.name in seen:
            raise ModelZipError("zip_duplicate", name=name, file=path.name)
        seen.add(path.name)
        checked.append((info, path.name))
    return checked


def import_zip(zip_path: str | Path, dest_root: str | Path | None = None) -> Path:
    """Unpack an untrusted model zip into a fresh folder and return it; ModelZipError for anything refused."""
    zip_path = Path(zip_path)
    name = zip_path.name
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError):
        raise ModelZipError("zip_unreadable", name=name) from None
    with archive:
        members = _checked_members(archive, name)
        names = {flat for _, flat in members}
        if "config.json" not in names or "model.safetensors" not in names:
            raise ModelZipError("zip_not_model", name=name)
        root = Path(dest_root) if dest_root else Path(tempfile.gettempdir())
        root.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix="model-", dir=root))
        try:
            for info, flat in members:
                with archive.open(info) as source, (folder / flat).open("wb") as target:
                    shutil.copyfileobj(source, target, 1024 * 1024)
        except (zipfile.BadZipFile, OSError, EOFError) as error:
            shutil.rmtree(folder, ignore_errors=True)
            raise ModelZipError("zip_damaged", name=name, reason=str(error)) from None
    return folder


def load_zip(zip_path: str | Path, dest_root: str | Path | None = None) -> Classifier:
    """An uploaded model zip as a classifier, read as untrusted input."""
    folder = import_zip(zip_path, dest_root)
    try:
        return load_classifier(folder, trusted=False)
    except BackboneError as error:
        shutil.rmtree(folder, ignore_errors=True)
        raise ModelZipError("zip_bad_model", name=Path(zip_path).name, error=error) from None
