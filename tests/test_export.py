"""Model zips: exports load everywhere; hostile uploads are refused before anything is read."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest
from transformers import BertForSequenceClassification

from kobert_demo.basics.config import METRICS_FILE
from kobert_demo.basics.runs import Run, RunError
from kobert_demo.serving.choice import SERVING_FILE
from kobert_demo.serving.engines import export_onnx
from kobert_demo.serving.export import ModelZipError, export_zip, import_zip, load_zip
from kobert_demo.serving.predict import Predictor

SENTENCES = ["정말 재미있는 영화였어요", "시간 낭비, 최악이다", "그냥 그랬다"]


@pytest.fixture(scope="module")
def exported(trained_run, tmp_path_factory) -> Path:
    run_path, _ = trained_run
    return export_zip(Run(run_path), tmp_path_factory.mktemp("export"))


@pytest.fixture(scope="module")
def onnx_export(trained_run, tmp_path_factory) -> tuple[Path, float | None, list]:
    """`export --format onnx` of the trained run once for the module, after auto served the run (so that serving's
    cache is there to be left out): the folder, its difference from PyTorch, and each call of serving's exporter."""
    from kobert_demo.serving import export

    run = Run(trained_run.path)
    Predictor.load(run.path, backend="auto")
    calls = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(export, "export_onnx", lambda *args: calls.append(args) or export_onnx(*args))
        folder, diff = export.export_model(run, tmp_path_factory.mktemp("export") / "onnx", "onnx")
    return folder, diff, calls


def _zip(path: Path, files: dict[str, bytes], symlinks: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
    return path


def _members(exported: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(exported) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def test_export_holds_only_safe_files(exported):
    names = set(_members(exported))
    assert {"config.json", "model.safetensors", "kobert_tokenizer.json", "README.md"} <= names
    assert all(Path(n).suffix in (".safetensors", ".json", ".model", ".md", ".txt") for n in names)


def test_export_holds_the_card_saved_with_its_weights_and_no_test_sentences(exported, trained_run):
    """The card comes from the model folder (the figures of these weights, #23); metrics.json stays home, since its
    mistakes quote the test data; the zip was written under a temporary name, none of which is left."""
    model = Run(trained_run.path).model_dir
    members = _members(exported)
    assert members["README.md"] == (model / "README.md").read_bytes()
    assert METRICS_FILE not in members and (model / METRICS_FILE).is_file()
    assert [p.name for p in exported.parent.iterdir()] == [exported.name]


def test_export_loads_in_predictor_and_plain_transformers(exported, trained_run, tmp_path):
    run_path, _ = trained_run
    original = Predictor.load(run_path).predict_proba(SENTENCES)
    reloaded = Predictor(load_zip(exported, tmp_path)).predict_proba(SENTENCES)
    np.testing.assert_allclose(reloaded, original, atol=1e-6)

    folder = import_zip(exported, tmp_path)
    model = BertForSequenceClassification.from_pretrained(folder)
    assert model.config.id2label == {0: "0", 1: "1"}


def test_export_refuses_a_run_without_model(tmp_path):
    from kobert_demo.basics.config import TrainConfig

    run = Run.create(tmp_path / "run", TrainConfig(model="tiny"), ["a", "b"], {})
    with pytest.raises(RunError, match="no model"):
        export_zip(run, tmp_path)


@pytest.mark.parametrize(
    ("entry", "message"),
    [("../evil.json", "unsafe path"), ("/etc/evil.json", "unsafe path"), ("C:/evil.json", "unsafe path")],
)
def test_path_traversal_refused(exported, tmp_path, entry, message):
    hostile = _zip(tmp_path / "hostile.zip", {**_members(exported), entry: b"{}"})
    with pytest.raises(ModelZipError, match=message):
        import_zip(hostile, tmp_path / "out")
    assert not (tmp_path / "evil.json").exists()


def test_symlink_refused(exported, tmp_path):
    hostile = _zip(tmp_path / "link.zip", _members(exported), symlinks={"vocab.json": "/etc/passwd"})
    with pytest.raises(ModelZipError, match="symbolic link"):
        import_zip(hostile, tmp_path / "out")


def test_pickle_refused(exported, tmp_path):
    files = {k: v for k, v in _members(exported).items() if k != "model.safetensors"}
    hostile = _zip(tmp_path / "pickle.zip", {**files, "pytorch_model.bin": b"\x80\x04cos\nsystem\n."})
    with pytest.raises(ModelZipError, match="pickle"):
        import_zip(hostile, tmp_path / "out")


def test_zip_bomb_refused(tmp_path):
    bomb = _zip(tmp_path / "bomb.zip", {"config.json": b"{}", "model.safetensors": b"\0" * (50 * 1024 * 1024)})
    with pytest.raises(ModelZipError, match="zip bomb"):
        import_zip(bomb, tmp_path / "out")


def test_too_many_files_refused(tmp_path):
    many = _zip(tmp_path / "many.zip", {f"f{i}.json": b"{}" for i in range(60)})
    with pytest.raises(ModelZipError, match="at most"):
        import_zip(many, tmp_path / "out")


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"not a zip at all", "not a readable zip"), (b"PK\x03\x04broken", "not a readable zip")],
)
def test_broken_zip_refused(tmp_path, content, message):
    path = tmp_path / "broken.zip"
    path.write_bytes(content)
    with pytest.raises(ModelZipError, match=message):
        import_zip(path, tmp_path / "out")


def test_zip_without_model_refused(tmp_path):
    path = _zip(tmp_path / "notes.zip", {"README.md": b"# hi"})
    with pytest.raises(ModelZipError, match="needs config.json and model.safetensors"):
        import_zip(path, tmp_path / "out")


@pytest.mark.parametrize(
    ("member", "content", "message"),
    [
        # the config is checked before any weights are read
        ("config.json", b'{"model_type": "bert", "vocab_size": 10000000000, "num_labels": 2}', "vocab_size"),
        # tokenizer settings cannot point outside the unpacked folder
        ("kobert_tokenizer.json", b'{"spm_file": "../../../etc/passwd", "mode": "gluonnlp", "max_len": 64}', None),
    ],
)
def test_hostile_member_refused(exported, tmp_path, member, content, message):
    path = _zip(tmp_path / "hostile.zip", {**_members(exported), member: content})
    with pytest.raises(ModelZipError, match=message):
        load_zip(path, tmp_path / "out")


def test_export_transformers_folder_loads_with_plain_transformers(trained_run, tmp_path):
    import torch

    from kobert_demo.serving.export import export_model

    run_path, _ = trained_run
    folder, diff = export_model(Run(run_path), tmp_path / "hf", "transformers")
    assert diff is None
    model = BertForSequenceClassification.from_pretrained(folder).eval()
    predictor = Predictor.load(run_path)
    batch = predictor.tokenizer(SENTENCES)
    with torch.inference_mode():
        probs = model(**batch).logits.softmax(-1).numpy()
    np.testing.assert_allclose(probs, predictor.predict_proba(SENTENCES), atol=1e-6)


def test_export_onnx_matches_pytorch(trained_run, onnx_export):
    import onnxruntime

    run_path, _ = trained_run
    folder, diff, _ = onnx_export
    assert diff is not None and diff < 0.01
    predictor = Predictor.load(run_path)
    batch = predictor.tokenizer(SENTENCES)
    session = onnxruntime.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {k: v.numpy() for k, v in batch.items()})[0]
    np.testing.assert_allclose(got, predictor.predict_proba(SENTENCES), atol=0.01)
    assert not (folder / "model.safetensors").exists()


def test_exports_leave_out_the_serving_cache(trained_run, tmp_path, onnx_export):
    """auto's serving.json and ONNX files stay on this machine; `--format onnx` exports with serving's exporter."""
    from kobert_demo.serving import export
    from kobert_demo.serving.choice import ONNX_DIR

    run = Run(trained_run.path)
    assert (run.model_dir / SERVING_FILE).is_file() and (run.model_dir / ONNX_DIR / "model.onnx").is_file()
    zipped = set(_members(export_zip(run, tmp_path / "zip")))
    copied = {p.name for p in export.export_model(run, tmp_path / "hf", "transformers")[0].iterdir()}
    folder, _, exported = onnx_export
    onnx = {p.name for p in folder.iterdir()}
    for names in (zipped, copied, onnx):
        assert not {SERVING_FILE, ONNX_DIR, "model_int8.onnx"} & names
    assert len(exported) == 1 and "model.onnx" in onnx


def test_export_refuses_a_non_empty_folder(trained_run, tmp_path):
    from kobert_demo.serving.export import export_model

    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(RunError, match="not empty"):
        export_model(Run(trained_run[0]), tmp_path / "busy", "transformers")
    assert (tmp_path / "busy" / "keep.txt").read_text(encoding="utf-8") == "mine"


# Every family (#14): zip, transformers and ONNX exports, read back by us and by plain transformers


def held_out() -> list[str]:
    """nsmc/test.tsv's rows (never trained on), and a sentence longer than max_len."""
    from conftest import DATA

    from kobert_demo.basics.data import read_table

    return [*read_table(DATA / "nsmc" / "test.tsv").texts[:120], "정말 재미있는 영화였어요, 또 보고 싶네요 " * 40]


@pytest.mark.slow
def test_every_family_exports_read_back_in_plain_transformers(family_run, tmp_path):
    """`pipeline("text-classification")` on the transformers export gives our probabilities on held-out sentences,
    and AutoTokenizer our ids."""
    from transformers import AutoTokenizer, pipeline

    from kobert_demo.serving.export import export_model

    run = Run(family_run.path)
    out, _ = export_model(run, tmp_path / "hf", "transformers")
    texts = held_out()
    ours = Predictor.load(run.path, backend="torch")
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer(texts, truncation=True)["input_ids"] == ours.tokenizer.encode_batch(texts)
    assert max(map(len, ours.tokenizer.encode_batch(texts))) == ours.tokenizer.max_len == 64  # the long one is cut
    classify = pipeline("text-classification", model=str(out), top_k=None, truncation=True)
    expected = ours.predict(texts)
    for theirs, mine in zip(classify(texts), expected, strict=True):
        assert {row["label"]: row["score"] for row in theirs} == pytest.approx(mine, abs=1e-5)


@pytest.mark.slow
def test_every_family_zip_holds_its_tokenizer_and_imports_back(family_run, tmp_path):
    run = Run(family_run.path)
    exported = export_zip(run, tmp_path)
    # what save_pretrained wrote for the model and tokenizer (not serving's cache, when a test served it on auto)
    # (nor metrics.json, whose mistakes quote the test data)
    saved = {p.name for p in run.model_dir.iterdir() if p.is_file() and p.name not in (SERVING_FILE, METRICS_FILE)}
    assert saved <= set(_members(exported)) and "tokenizer.json" in saved
    assert saved <= {p.name for p in import_zip(exported, tmp_path / "unpacked").iterdir()}
    texts = held_out()
    original = Predictor.load(run.path, backend="torch").predict_proba(texts)
    np.testing.assert_allclose(Predictor(load_zip(exported, tmp_path)).predict_proba(texts), original, atol=1e-6)


@pytest.mark.slow
def test_every_family_exports_to_onnx(family_run, tmp_path):
    import onnxruntime

    from kobert_demo.serving.export import ONNX_MAX_DIFF, export_model

    run = Run(family_run.path)
    out, diff = export_model(run, tmp_path / "onnx", "onnx")
    assert diff <= ONNX_MAX_DIFF
    predictor = Predictor.load(run.path, backend="torch")
    texts = held_out()[:40]
    batch = predictor.tokenizer(texts)
    session = onnxruntime.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {name: value.numpy() for name, value in batch.items()})[0]
    np.testing.assert_allclose(got, predictor.predict_proba(texts), atol=1e-4)
