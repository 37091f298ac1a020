"""Tests for serving.choice and serving.engines: every backend keeps to fp32, `auto` refuses a wrong path,
caches its choice per model and machine, keeps its ONNX files in the model folder (or nowhere on disk for a folder
it must not write)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import HANG_S, REPO, TrainedRun, copy_with_onnx

from kobert_demo.serving import choice as serving
from kobert_demo.serving import engines
from kobert_demo.serving.choice import BACKENDS, CHECK_SENTENCES, MAX_DIFF, ONNX_DIR, SERVING_FILE
from kobert_demo.serving.predict import Predictor

TEXTS = ["정말 재미있게 봤습니다", "최악", "", "굳 ㅋ", "감동적인 스토리, 훌륭한 음악, 완벽한 연출! " * 5]
FIXED = [backend for backend in BACKENDS if backend != "auto"]


@pytest.fixture
def model_copy(trained_run: TrainedRun, tmp_path: Path) -> Path:
    """A private copy of the trained run's model folder, for auto to write its cache into (without the cache and
    ONNX files that other tests' loads of the shared run left there): for tests that see the ONNX files built."""
    left = shutil.ignore_patterns(SERVING_FILE, ONNX_DIR)
    return Path(shutil.copytree(trained_run.path / "model", tmp_path / "model", ignore=left))


@pytest.fixture
def built_copy(onnx_built_model: Path, tmp_path: Path) -> Path:
    """model_copy with the ONNX files built once for the session (no stored choice): for tests of what is served
    and measured, which need not build them again."""
    return copy_with_onnx(onnx_built_model, tmp_path / "model")


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How many times auto timed a candidate and built ONNX files (exported or only quantized)."""
    counts = {"timed": 0, "exported": 0, "built": 0}
    timed, build = serving.one_sentence_p50, engines.build_onnx

    def count_timed(*args, **kwargs):
        counts["timed"] += 1
        return timed(*args, **kwargs)

    def count_build(load, where, export):
        counts["built"] += 1
        counts["exported"] += export
        return build(load, where, export)

    monkeypatch.setattr(serving, "one_sentence_p50", count_timed)
    monkeypatch.setattr(engines, "build_onnx", count_build)
    return counts


def assert_close_to_fp32(path: Path, texts: list[str]) -> None:
    """Each fixed backend's probabilities within MAX_DIFF of fp32's (ONNX Runtime fp32: equal to float precision)."""
    reference = Predictor.load(path, backend="torch").predict_proba(texts)
    for backend in FIXED:
        predictor = Predictor.load(path, backend=backend)
        assert predictor.backend == backend
        probs = predictor.predict_proba(texts)
        np.testing.assert_allclose(probs.sum(1), 1, atol=1e-3)
        assert np.abs(probs - reference).max() <= (1e-5 if backend in ("torch", "onnx") else MAX_DIFF), backend


@pytest.mark.slow
def test_every_backend_keeps_to_fp32(built_copy: Path) -> None:
    assert_close_to_fp32(built_copy, TEXTS + CHECK_SENTENCES)
    assert Predictor.load(built_copy, backend="int8").model is None  # ONNX Runtime serves: no torch model held
    with pytest.raises(ValueError, match="backend must be one of"):
        Predictor.load(built_copy, backend="int4")


@pytest.mark.slow
def test_every_backend_in_every_family(family_run: TrainedRun, tmp_path: Path) -> None:
    """bert, roberta (its graph may drop token_type_ids) and electra: ONNX inputs are what pad() gives; the exact
    backends equal fp32, and auto serves within MAX_DIFF, refusing exactly the candidates past it (a fixed `int8` or
    `bf16` is the user's own choice, unchecked)."""
    left = shutil.ignore_patterns(SERVING_FILE, ONNX_DIR)
    folder = Path(shutil.copytree(family_run.path / "model", tmp_path / "model", ignore=left))
    reference = Predictor.load(folder, backend="torch").predict_proba(TEXTS + CHECK_SENTENCES)
    for backend in ("onnx", "int8", "bf16"):
        probs = Predictor.load(folder, backend=backend).predict_proba(TEXTS + CHECK_SENTENCES)
        np.testing.assert_allclose(probs.sum(1), 1, atol=1e-3)
        assert np.abs(probs - reference).max() <= (1e-5 if backend == "onnx" else 0.05), backend
    auto = Predictor.load(folder, backend="auto")
    assert np.abs(auto.predict_proba(CHECK_SENTENCES) - reference[len(TEXTS) :]).max() <= MAX_DIFF
    for candidate in auto.serving.candidates:
        assert (candidate.refused is None) == (candidate.max_diff <= MAX_DIFF), candidate


@pytest.mark.slow
def test_auto_measures_every_candidate_and_keeps_the_fastest_that_passed(model_copy: Path, counted) -> None:
    auto = Predictor.load(model_copy, backend="auto")
    report = auto.serving
    assert not report.cached and auto.backend == report.backend
    assert sorted(path.name for path in (model_copy / ONNX_DIR).glob("*.onnx")) == ["model.onnx", "model_int8.onnx"]
    assert [c.backend for c in report.candidates] == serving.candidates_here()
    passed = [c for c in report.candidates if c.refused is None]
    assert report.backend == min(passed, key=lambda c: c.p50_ms).backend
    assert all(c.max_diff <= MAX_DIFF for c in passed)
    assert counted["timed"] == len(passed) and counted["exported"] == 1
    reference = Predictor.load(model_copy, backend="torch").predict_proba(CHECK_SENTENCES)
    diff = np.abs(auto.predict_proba(CHECK_SENTENCES) - reference).max()
    assert diff == pytest.approx(report.candidate(auto.backend).max_diff, abs=1e-6)


@pytest.mark.slow
def test_auto_refuses_a_fast_wrong_path(built_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """int8 made instant and wrong (every sentence the first class): measured, refused, never served."""
    served = engines.OrtEngine.__call__

    def wrong_int8(self, batch):
        if self.backend != "int8":
            return served(self, batch)
        return np.tile(np.array([1, 0], dtype=np.float32), (len(batch["input_ids"]), 1))  # the run's 2 classes

    monkeypatch.setattr(engines.OrtEngine, "__call__", wrong_int8)
    auto = Predictor.load(built_copy, backend="auto")
    int8 = auto.serving.candidate("int8")
    assert int8.refused and int8.max_diff > MAX_DIFF and int8.p50_ms is None
    assert auto.backend != "int8"


@pytest.mark.slow
def test_the_choice_is_cached_per_weights_and_machine(built_copy: Path, counted, monkeypatch) -> None:
    first = Predictor.load(built_copy, backend="auto")
    assert (built_copy / SERVING_FILE).is_file() and counted["built"] == 0  # measured on the files copied with it
    assert sorted(path.name for path in (built_copy / ONNX_DIR).glob("*.onnx")) == ["model.onnx", "model_int8.onnx"]
    before = dict(counted)

    again = Predictor.load(built_copy, backend="auto")  # same machine, same weights: nothing measured or built
    assert again.serving.cached and again.backend == first.backend
    assert counted == before
    assert again.serving.candidates == first.serving.candidates

    monkeypatch.setattr(serving, "cpu_name", lambda: "another CPU")  # another machine: measured, files kept
    assert not Predictor.load(built_copy, backend="auto").serving.cached
    assert counted["timed"] > before["timed"] and counted["built"] == before["built"]

    stat = (built_copy / "model.safetensors").stat()
    os.utime(built_copy / "model.safetensors", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # new weights
    assert not Predictor.load(built_copy, backend="auto").serving.cached
    assert counted["exported"] == before["exported"] + 1  # the ONNX files were rebuilt from them


@pytest.mark.slow
def test_a_folder_that_must_not_be_written_stays_as_it_was(model_copy: Path, counted) -> None:
    """An untrusted folder (a hub or local model a visitor named): ONNX files in a temporary folder, no cache."""
    before = sorted(path.name for path in model_copy.rglob("*"))
    untrusted = Predictor.load(model_copy, trusted=False, backend="auto")
    onnx = Predictor.load(model_copy, trusted=False, backend="onnx")
    assert sorted(path.name for path in model_copy.rglob("*")) == before
    assert not untrusted.serving.cached and counted["exported"] == 2  # nothing cached: each load builds its own
    reference = Predictor.load(model_copy, backend="torch").predict_proba(TEXTS)
    np.testing.assert_allclose(onnx.predict_proba(TEXTS), reference, atol=1e-5)


@pytest.mark.slow
def test_an_onnx_runtime_predictor_explains_with_its_fp32_model(built_copy: Path) -> None:
    int8 = Predictor.load(built_copy, backend="int8")
    text = TEXTS[0]
    expected = Predictor.load(built_copy, backend="torch").explain(text)
    got = int8.explain(text)
    assert int8.model is None and int8.float_model() is int8.float_model()  # read from disk once
    assert got.words == expected.words
    np.testing.assert_allclose(got.word_scores, expected.word_scores, atol=1e-5)


def test_report_json_round_trip_and_speedup() -> None:
    report = serving.ServingReport(
        "int8",
        [
            serving.Candidate("torch", 40.0, 0.0),
            serving.Candidate("onnx", 25.0, 1e-7),
            serving.Candidate("int8", 8.0, 0.004),
            serving.Candidate("bf16", max_diff=0.02, refused="differs from fp32 by 0.0200"),
        ],
    )
    assert report.speedup == 5.0
    assert serving.ServingReport.from_json(report.to_json()) == report
    assert serving.ServingReport("torch").speedup is None


@pytest.mark.slow
def test_a_big_model_builds_its_onnx_files_in_a_child_even_from_an_unguarded_script(model_copy: Path) -> None:
    """Models past BUILD_IN_CHILD_BYTES build in a child interpreter (build_onnx_in_child); a user's script that loads
    at top level (no `__name__ == "__main__"` guard) must not be run again by that child, as multiprocessing's spawn
    would."""
    script = model_copy.parent / "serve.py"
    script.write_text(
        "from kobert_demo.serving import predict\n"
        "from kobert_demo.serving.predict import Predictor\n"
        "predict.BUILD_IN_CHILD_BYTES = 0  # the tiny model counts as big\n"
        f"predictor = Predictor.load({str(model_copy)!r}, backend='int8')\n"
        "print('served', predictor.backend, predictor.predict_proba(['정말 재미있어요']).round(4).tolist())\n",
        encoding="utf-8",
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # this checkout's package, as run_cli gives it
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=HANG_S)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("served int8") == 1  # the script ran once: the child did not run it again
    assert (model_copy / ONNX_DIR / engines.INT8_FILE).is_file()
    served = np.array(json.loads(done.stdout.split("served int8", 1)[1]))
    reference = Predictor.load(model_copy, backend="torch").predict_proba(["정말 재미있어요"])
    assert np.abs(served - reference).max() <= MAX_DIFF


@pytest.mark.slow
def test_another_thread_count_serves_the_stored_choice(built_copy: Path, counted) -> None:
    """The CLI beside the app, a bulk rank: a process with other torch threads serves the choice stored by the first,
    and gives the very same probabilities (so the same file gives the same CSV bytes)."""
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        first = Predictor.load(built_copy, backend="auto")
        first_probs = first.predict_proba(TEXTS + CHECK_SENTENCES)
        timed = counted["timed"]
        torch.set_num_threads(2)
        second = Predictor.load(built_copy, backend="auto")
        assert second.serving.cached and second.backend == first.backend and counted["timed"] == timed
        np.testing.assert_array_equal(second.predict_proba(TEXTS + CHECK_SENTENCES), first_probs)
    finally:
        torch.set_num_threads(threads)


@pytest.mark.slow
# The package's version and the ONNX recipe's are two triggers of one mechanism: the recipe's runs in -m extra (8 s).
@pytest.mark.parametrize("version", ["__version__", pytest.param("RECIPE_VERSION", marks=pytest.mark.extra)])
def test_a_new_package_or_recipe_measures_and_builds_again(
    built_copy: Path, counted, monkeypatch: pytest.MonkeyPatch, version: str
) -> None:
    """An upgrade (the package, or how the int8 files are made) neither reuses the old int8 files nor the choice
    made with them."""
    Predictor.load(built_copy, backend="auto")
    before = dict(counted)
    assert before["built"] == 0  # measured on the files copied with it
    monkeypatch.setattr(serving, version, getattr(serving, version) + (".1" if version == "__version__" else 1))
    again = Predictor.load(built_copy, backend="auto")
    assert not again.serving.cached
    assert counted["exported"] == before["exported"] + 1 and counted["timed"] > before["timed"]
    assert Predictor.load(built_copy, backend="auto").serving.cached  # stored again, for the new version


@pytest.mark.slow
def test_weights_replaced_while_measuring_get_no_choice_of_the_old(model_copy: Path, monkeypatch) -> None:
    """A run still training saves epoch k+1 while epoch k's weights are measured: what was measured is not filed
    under the new weights, neither the choice nor the ONNX files."""
    timed = serving.one_sentence_p50

    def save_during_measuring(*args, **kwargs):
        weights = model_copy / "model.safetensors"
        stat = weights.stat()
        os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # the next epoch's save
        return timed(*args, **kwargs)

    monkeypatch.setattr(serving, "one_sentence_p50", save_during_measuring)
    Predictor.load(model_copy, backend="auto")
    monkeypatch.setattr(serving, "one_sentence_p50", timed)
    served = serving.ServedFolder.read(model_copy)
    assert not engines.OnnxFiles(served)._exported(model_copy / ONNX_DIR)
    assert not Predictor.load(model_copy, backend="auto").serving.cached  # measured for these weights, now stored
    assert Predictor.load(model_copy, backend="auto").serving.cached


@pytest.mark.slow
def test_two_loads_at_once_measure_once(model_copy: Path, counted) -> None:
    """Two loads of one folder at once (the app's two model references, the app and the CLI): the second waits on
    the folder's lock and serves the first one's choice."""
    with ThreadPoolExecutor(2) as pool:
        loaded = list(pool.map(lambda _: Predictor.load(model_copy, backend="auto"), range(2)))
    assert sorted(p.serving.cached for p in loaded) == [False, True]
    assert loaded[0].backend == loaded[1].backend
    measured = next(p for p in loaded if not p.serving.cached)
    assert counted["timed"] == sum(c.refused is None for c in measured.serving.candidates)
    assert counted["exported"] == 1


@pytest.mark.slow
def test_an_explanation_explains_the_class_served(built_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The class explained by default is the one the served backend predicts (shown beside the explanation), not
    fp32's: here int8 made to predict the other class."""
    served = engines.OrtEngine.__call__
    monkeypatch.setattr(engines.OrtEngine, "__call__", lambda self, batch: served(self, batch)[:, ::-1].copy())
    int8 = Predictor.load(built_copy, backend="int8")
    text = TEXTS[0]
    shown = int8.label_names[int(int8.predict_proba([text])[0].argmax())]
    fp32 = Predictor.load(built_copy, backend="torch")
    assert fp32.explain(text).label != shown  # the two backends disagree here
    explained = int8.explain(text)
    assert explained.label == shown
    np.testing.assert_allclose(explained.word_scores, fp32.explain(text, shown).word_scores, atol=1e-5)


def test_a_model_folder_swapped_during_its_onnx_build_is_one_sentence(model_copy: Path, monkeypatch) -> None:
    """A run still training swaps in its next epoch's model folder, and this build's onnx/ goes with the old one."""
    from kobert_demo.basics.errors import UserFacingError

    def swapped_while_building(load, where: Path, export: bool) -> None:
        weights = model_copy / "model.safetensors"
        stat = weights.stat()
        os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # the next epoch's weights
        shutil.rmtree(where)
        raise FileNotFoundError(2, "No such file or directory", str(where / "model.onnx"))

    monkeypatch.setattr(engines, "build_onnx", swapped_while_building)
    with pytest.raises(UserFacingError, match="the model changed while it was being prepared") as caught:
        Predictor.load(model_copy, backend="onnx")
    assert "다시 시도하세요" in caught.value.text("ko")
