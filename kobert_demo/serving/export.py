"""Model zips: export a run's model, and open an uploaded zip as untrusted input.

An export holds only safetensors weights and JSON/text/SentencePiece files, so the Predict tab, the CLI and plain
transformers can load it. An import reads nothing else: no pickle, no paths outside its folder, no symlinks, and
a cap on the unpacked size and the number of files (zip bombs); the config is checked before weights are loaded.
"""

from __future__ import annotations

import json
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from kobert_demo.basics import files
from kobert_demo.basics.config import METRICS_FILE
from kobert_demo.basics.errors import BackboneError, UserFacingError
from kobert_demo.basics.runs import Run, RunError
from kobert_demo.engine.classifier import Classifier
from kobert_demo.engine.loading import load_classifier
from kobert_demo.engine.tokenizer import SETTINGS_FILE
from kobert_demo.serving.choice import CHECK_SENTENCES, SERVING_FILE
from kobert_demo.serving.engines import Probabilities, export_onnx

ALLOWED_SUFFIXES = (".safetensors", ".json", ".model", ".md", ".txt")
MAX_FILES = 50
MAX_UNPACKED_BYTES = 2 * 1024**3
MAX_RATIO = 200  # unpacked/packed; real models compress about 1.1x, zip bombs 1000x


class ModelZipError(UserFacingError, ValueError):
    """An uploaded model zip that is refused, as one sentence."""


def export_zip(run: Run, dest: str | Path | None = None) -> Path:
    """`<run name>.zip` with the model folder's files (not serving's cache: its ONNX files and serving.json; nor
    METRICS_FILE, whose mistakes quote the test data) and the run's config. The model card is the one saved with
    the weights (a run from before cards were: the run's).

    Written whole (a temporary name, then renamed). A training that saves a new epoch meanwhile swaps in a new model
    folder: the zip is then made again, so that it never mixes two epochs' files.
    """
    if not run.has_model:
        raise RunError("run_no_model", run=run.name)
    dest = Path(dest) if dest else Path(tempfile.mkdtemp(prefix="kobert-demo-export-"))
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / f"{run.name}.zip"
    for _ in range(SWAPS_TRIED):
        folder = run.model_dir.stat().st_ino  # each save is a new folder
        with files.atomic_path(target) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for file in _model_files(run.model_dir):
                archive.write(file, file.name)
            if not (run.model_dir / "README.md").is_file() and (run.path / "README.md").is_file():
                archive.write(run.path / "README.md", "README.md")
            if (run.path / "config.json").is_file():
                archive.write(run.path / "config.json", "training_config.json")
        if run.model_dir.stat().st_ino == folder:
            return target
    raise RunError("run_model_changing", run=run.name)


SWAPS_TRIED = 3  # an epoch saves in seconds at most; three swaps during one export is a run saving nonstop


def _model_files(folder: Path, weights: bool = True) -> list[Path]:
    """The files an export takes from a model folder: not serving's cache of this machine (serving.json, the ONNX
    subfolder) nor METRICS_FILE (its mistakes quote the test data; the card holds the figures)."""
    return [
        file
        for file in sorted(folder.iterdir())
        if file.is_file()
        and file.suffix in ALLOWED_SUFFIXES
        and file.name not in (SERVING_FILE, METRICS_FILE)
        and (weights or file.suffix != ".safetensors")
    ]


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
    # Built in a temporary sibling and swapped in whole: a kill, or an ONNX graph refused, leaves out as it was.
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = files.temp_name(out)
    try:
        tmp.mkdir()
        for file in _model_files(run.model_dir, weights=fmt == "transformers"):
            shutil.copy(file, tmp / file.name)
        diff = None if fmt == "transformers" else _export_onnx(load_classifier(run.model_dir), tmp / "model.onnx")
        files.replace_folder(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out, diff


def _export_onnx(classifier: Classifier, target: Path) -> float:
    """serving's ONNX graph of the classifier (the one exporter), checked against PyTorch on CHECK_SENTENCES."""
    import numpy as np
    import onnxruntime
    import torch

    export_onnx(classifier, target)
    batch = classifier.tokenizer(CHECK_SENTENCES)
    session = onnxruntime.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    got = session.run(None, {node.name: batch[node.name].numpy() for node in session.get_inputs()})[0]
    with torch.inference_mode():
        want = Probabilities(classifier.model.eval())(**batch).numpy()
    diff = float(np.abs(got - want).max())
    if diff > ONNX_MAX_DIFF:
        raise RunError("export_onnx_diff", diff=diff)
    return diff


# The files a model folder is read from (loading.py, tokenizer.py) plus its card; anything else in a zip is skipped
# unread: the training config, notes, an unused 1 GiB member.
MODEL_FILES = {
    "config.json", "model.safetensors", "kobert_tokenizer.json", "tokenizer.json", "tokenizer_config.json", "README.md",
}  # fmt: skip
MAX_SETTINGS_BYTES = 64 * 1024  # kobert_tokenizer.json, read before unpacking to learn its file names; ours is 100 B
RATIO_FLOOR_BYTES = 1024 * 1024  # smaller files may compress as they like (a 4 KB JSON of spaces: 100x)


def _needed(archive: zipfile.ZipFile, flat: dict[str, zipfile.ZipInfo]) -> set[str]:
    """The flat names a model folder reads: MODEL_FILES, the SentencePiece *.model, the vocab JSON."""
    needed = {name for name in flat if name in MODEL_FILES or name.endswith(".model")}
    needed |= {name for name in flat if name.endswith(".json") and "vocab" in name.lower()}
    settings = flat.get(SETTINGS_FILE)
    if settings is not None and settings.file_size <= MAX_SETTINGS_BYTES:
        try:
            named = json.loads(archive.read(settings))
        except (ValueError, UnicodeDecodeError, zipfile.BadZipFile, OSError):
            named = None  # the tokenizer refuses it with its own sentence once unpacked
        if isinstance(named, dict):
            needed |= {Path(value).name for value in named.values() if isinstance(value, str)} & set(flat)
    return needed


def _checked_members(archive: zipfile.ZipFile, name: str) -> list[tuple[zipfile.ZipInfo, str]]:
    """(entry, flat file name) for every file a model needs, after refusing anything unsafe; folders are flattened.

    Every entry is checked for unsafe paths, links and pickles; only the needed files are then checked for size and
    compression ratio, each on its own (a bomb hidden beside real weights is caught), and unpacked.
    """
    entries = [info for info in archive.infolist() if not info.is_dir()]
    if not entries:
        raise ModelZipError("zip_empty", name=name)
    if len(entries) > MAX_FILES:
        raise ModelZipError("zip_too_many_files", name=name, files=len(entries), limit=MAX_FILES)
    flat: dict[str, zipfile.ZipInfo] = {}
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
        if path.name in flat:
            raise ModelZipError("zip_duplicate", name=name, file=path.name)
        flat[path.name] = info
    checked = [(flat[file], file) for file in sorted(_needed(archive, flat))]
    for info, file in checked:
        if info.file_size > RATIO_FLOOR_BYTES and info.file_size / max(1, info.compress_size) > MAX_RATIO:
            raise ModelZipError(
                "zip_bomb_file", name=name, file=file, unpacked_mb=info.file_size / 2**20,
                packed_mb=info.compress_size / 2**20,
            )  # fmt: skip
    total = sum(info.file_size for info, _ in checked)
    packed = max(1, sum(info.compress_size for info, _ in checked))
    if total > MAX_UNPACKED_BYTES or total / packed > MAX_RATIO:
        raise ModelZipError("zip_bomb", name=name, unpacked_mb=total / 2**20, packed_mb=packed / 2**20)
    return checked


def import_zip(zip_path: str | Path, dest_root: str | Path | None = None, name: str = "") -> Path:
    """Unpack an untrusted model zip into a fresh folder and return it; ModelZipError for anything refused.

    name: how errors call the zip (default: its file name), e.g. the name a visitor uploaded it as.
    """
    zip_path = Path(zip_path)
    name = name or zip_path.name
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
            reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)  # no server path
            raise ModelZipError("zip_damaged", name=name, reason=reason) from None
    return folder


def load_zip(zip_path: str | Path, dest_root: str | Path | None = None, name: str = "") -> Classifier:
    """An uploaded model zip as a classifier, read as untrusted input; name: how errors call it (see import_zip)."""
    name = name or Path(zip_path).name
    return load_unpacked(import_zip(zip_path, dest_root, name), name)


def load_unpacked(folder: Path, name: str) -> Classifier:
    """An unpacked model zip's folder (import_zip) as a classifier, read as untrusted input; removed if refused."""
    try:
        return load_classifier(folder, trusted=False, name=name)
    except BackboneError as error:
        shutil.rmtree(folder, ignore_errors=True)
        raise ModelZipError("zip_bad_model", name=name, error=error) from None
