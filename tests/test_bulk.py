"""Bulk prediction: streamed in chunks, in input order, resumable, flat memory, split across processes."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import DATA, HANG_S, REPO, call_cli

from kobert_demo.basics.data import DataError, text_chunks
from kobert_demo.engine.loading import load_backbone, save_classifier
from kobert_demo.serving.bulk import merge_parts, predict_file_to_csv
from kobert_demo.serving.predict import Predictor


@pytest.fixture(scope="module")
def small_model(tiny_kobert_folder, tmp_path_factory) -> Path:
    """A 3-class classifier on the 32-wide KoBERT-shaped backbone: fast enough for 100,000 rows."""
    folder = tmp_path_factory.mktemp("bulk-model")
    save_classifier(load_backbone(str(tiny_kobert_folder), ["부정", "중립", "긍정"], 0.1), folder)
    return folder


@pytest.fixture(scope="module")
def reviews() -> list[str]:
    """100,000 distinct reviews: the 1,200 of tests/data/nsmc/train.tsv, then numbered repeats of them."""
    real = pd.read_csv(DATA / "nsmc/train.tsv", sep="\t", dtype=str, keep_default_na=False)["document"].tolist()
    return real + [f"{real[i % len(real)]} {i}" for i in range(len(real), 100_000)]


def write_table(path: Path, texts: list[str]) -> Path:
    pd.DataFrame({"id": range(len(texts)), "document": texts}).to_csv(path, sep="\t", index=False)
    return path


def read_output(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"text": str, "label": str}, keep_default_na=False)


def cli_process(*args, launcher: list[str]) -> subprocess.CompletedProcess:
    """The CLI as real processes started by launcher (torchrun)."""
    # One thread: tiny matrices gain nothing from two, and lose much when other processes hold the cores.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [*launcher, "-m", "kobert_demo", *map(str, args)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=HANG_S)


def test_matches_in_memory_prediction_in_input_order(small_model, reviews, tmp_path):
    texts = reviews[:1000]
    source = write_table(tmp_path / "in.tsv", texts)
    predictor = Predictor.load(small_model)
    assert predict_file_to_csv(predictor, source, tmp_path / "out.csv", chunk_rows=128, progress=False) == 1000
    out = read_output(tmp_path / "out.csv")
    assert out["text"].tolist() == [" ".join(t.split()) for t in texts]
    expected = predictor.predict_proba(texts)
    np.testing.assert_allclose(out[["p_부정", "p_중립", "p_긍정"]].to_numpy(), expected, atol=2e-6)
    assert out["label"].tolist() == [predictor.label_names[i] for i in expected.argmax(1)]


def test_plain_text_cp949_and_blank_lines(small_model, tmp_path):
    source = tmp_path / "lines.txt"
    source.write_bytes("최고의 영화, 또 보고 싶다\n\n지루했다\n그럭저럭\n".encode("cp949"))
    assert [t for chunk in text_chunks(source, chunk_rows=2) for t in chunk] == [
        "최고의 영화, 또 보고 싶다",
        "지루했다",
        "그럭저럭",
    ]
    predict_file_to_csv(Predictor.load(small_model), source, tmp_path / "out.csv", progress=False)
    assert len(read_output(tmp_path / "out.csv")) == 3


def test_existing_output_is_never_overwritten(small_model, reviews, tmp_path):
    source = write_table(tmp_path / "in.tsv", reviews[:10])
    (tmp_path / "out.csv").write_text("precious\n", encoding="utf-8")
    with pytest.raises(DataError, match="--resume"):
        predict_file_to_csv(Predictor.load(small_model), source, tmp_path / "out.csv", progress=False)
    assert (tmp_path / "out.csv").read_text(encoding="utf-8") == "precious\n"


def test_resume_redoes_nothing_finished(small_model, reviews, tmp_path):
    source = write_table(tmp_path / "in.tsv", reviews[:1000])
    predictor = Predictor.load(small_model)
    predict_file_to_csv(predictor, source, tmp_path / "full.csv", chunk_rows=100, progress=False)
    full = (tmp_path / "full.csv").read_text(encoding="utf-8")

    # An interrupted run: 3 whole chunks and half a line of the fourth.
    lines = full.splitlines(keepends=True)
    (tmp_path / "cut.csv").write_text("".join(lines[:351]) + lines[351][:7], encoding="utf-8")
    redone = predict_file_to_csv(predictor, source, tmp_path / "cut.csv", chunk_rows=100, resume=True, progress=False)
    assert redone == 700
    assert (tmp_path / "cut.csv").read_text(encoding="utf-8") == full


@pytest.mark.slow
def test_cli_100k_rows_flat_memory(small_model, reviews, tmp_path):
    """10,000 and then 100,000 rows through the CLI in one process: its peak memory does not grow with the second,
    every row is predicted once, in order. One process, not one per size: the first peak holds the imports, the model
    and 10,000 rows; memory that grew with rows (or was kept from the first file) would raise the second (and a
    process of imports is about 7 s of a loaded 2-core machine)."""
    sizes = (10_000, 100_000)
    runs = []
    for n in sizes:
        source = write_table(tmp_path / f"in{n}.tsv", reviews[:n])
        args = ["predict", small_model, "--file", source, "--out", tmp_path / f"out{n}.csv", "--quiet"]
        runs.append([*map(str, args), "--backend", "torch"])
    probe = (
        "import json, resource, sys; from kobert_demo.app.cli import main; peaks = []\n"
        "for argv in json.loads(sys.argv[1]):\n"
        "    assert main(argv) == 0, argv\n"
        "    peaks.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
        "print(json.dumps(peaks))"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-c", probe, json.dumps(runs)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=HANG_S)
    assert done.returncode == 0, done.stderr[-2000:]
    peaks = dict(zip(sizes, json.loads(done.stdout.splitlines()[-1])))
    for n in sizes:
        with (tmp_path / f"out{n}.csv").open(encoding="utf-8") as file:
            rows = list(csv.reader(file))
        assert len(rows) == n + 1
        assert rows[1][0] == " ".join(reviews[0].split()) and rows[-1][0] == " ".join(reviews[n - 1].split())
    assert peaks[100_000] < peaks[10_000] + 60, peaks  # MB: growing 10x in rows adds no more than noise


def test_ranks_split_the_work_and_merge_into_the_one_process_bytes(small_model, reviews, tmp_path):
    """Each of N ranks predicts chunks r, r+N, ... into its part file; merge_parts interleaves them into the bytes one
    process writes and removes the parts (ranks run in turn here; torchrun runs them at once, below, in -m extra)."""
    predictor = Predictor.load(small_model)
    source = write_table(tmp_path / "in.tsv", reviews[:1000])
    predict_file_to_csv(predictor, source, tmp_path / "one.csv", chunk_rows=64, progress=False)
    done = [
        predict_file_to_csv(predictor, source, tmp_path / "three.csv", chunk_rows=64, rank=r, world=3, progress=False)
        for r in range(3)
    ]
    assert sum(done) == 1000 and min(done) > 0, done
    merge_parts(tmp_path / "three.csv", 3, predictor.label_names, chunk_rows=64)
    assert (tmp_path / "three.csv").read_bytes() == (tmp_path / "one.csv").read_bytes()
    assert not list(tmp_path.glob("three.csv.part*"))


@pytest.mark.extra  # torchrun
def test_two_processes_split_the_work(small_model, reviews, tmp_path):
    """torchrun's two processes write the bytes one process writes (here, in-process)."""
    source = write_table(tmp_path / "in.tsv", reviews[:3000])
    single = call_cli(
        "predict", small_model, "--file", source, "--out", tmp_path / "one.csv", "--quiet", "--chunk-rows", "256",
        cwd=tmp_path,
    )  # fmt: skip
    assert single.returncode == 0, single.stderr[-2000:]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29547"]
    args = ["predict", small_model, "--file", source, "--out", tmp_path / "two.csv", "--quiet", "--chunk-rows", "256"]
    double = cli_process(*args, launcher=torchrun)
    assert double.returncode == 0, double.stderr[-2000:]
    assert (tmp_path / "two.csv").read_text(encoding="utf-8") == (tmp_path / "one.csv").read_text(encoding="utf-8")
    assert not list(tmp_path.glob("two.csv.part*"))


def test_unknown_text_column(small_model, reviews, tmp_path):
    source = write_table(tmp_path / "in.tsv", reviews[:5])
    args = ["predict", small_model, "--file", source, "--out", "o.csv", "--text-col", "nope"]
    done = call_cli(*args, "--backend", "torch", cwd=tmp_path)  # torch: `auto` would measure first (3 s)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert done.stderr.startswith("error: in.tsv has no column 'nope'")


@pytest.mark.slow
def test_every_family_predicts_a_file_as_in_memory(family_run, tmp_path):
    texts = pd.read_csv(DATA / "nsmc/test.tsv", sep="\t", dtype=str, keep_default_na=False)["document"].tolist()
    source = write_table(tmp_path / "in.tsv", texts)
    predictor = Predictor.load(family_run.path, backend="torch")
    assert predict_file_to_csv(predictor, source, tmp_path / "out.csv", chunk_rows=64, progress=False) == len(texts)
    out = read_output(tmp_path / "out.csv")
    expected = predictor.predict_proba(texts)
    np.testing.assert_allclose(out[[f"p_{name}" for name in predictor.label_names]].to_numpy(), expected, atol=2e-6)
    assert out["label"].tolist() == [predictor.label_names[i] for i in expected.argmax(1)]


@pytest.mark.slow
def test_every_rank_serves_the_main_process_choice(small_model, monkeypatch):
    """Under accelerate launch/torchrun the main process chooses (or reads the stored choice) and the other ranks
    serve what it broadcast, measuring nothing, even where no choice can be stored."""
    from types import SimpleNamespace

    import accelerate.utils

    from kobert_demo.app.cli import _one_choice_for_every_rank

    sent = []
    monkeypatch.setattr(accelerate.utils, "broadcast_object_list", lambda objects: sent.append(list(objects)))
    main_rank, other_rank = (SimpleNamespace(num_processes=2, is_main_process=main) for main in (True, False))
    main = _one_choice_for_every_rank(main_rank, small_model, "auto", None)
    assert sent == [[main.backend]] and main.serving.candidates  # measured (or read) by the main process

    def from_main(objects: list) -> list:
        objects[0] = "onnx"  # what the main process chose
        return objects

    monkeypatch.setattr(accelerate.utils, "broadcast_object_list", from_main)
    monkeypatch.setattr("kobert_demo.serving.choice.measure", lambda predictor: pytest.fail("a rank measured"))
    other = _one_choice_for_every_rank(other_rank, small_model, "auto", None)
    assert other.backend == "onnx"


@pytest.mark.slow
def test_the_web_app_and_the_cli_write_the_same_bytes(trained_run, tmp_path):
    """The README's promise: the web app's predictions CSV is the very bytes `kobert-demo predict --file` writes, on
    the default `auto`, though the CLI runs with another thread count: it serves the choice the app stored. The CLI
    in-process, on two threads as a process started with OMP_NUM_THREADS=2 has them (torch reads it at start)."""
    import shutil

    import torch

    from kobert_demo.app.queue import JobQueue
    from kobert_demo.app.ui.predict_tab import predict_file_for_visitor
    from kobert_demo.app.ui.state import AppState
    from kobert_demo.serving.choice import ONNX_DIR, SERVING_FILE

    home = tmp_path / "runs"
    shutil.copytree(trained_run.path, home / "nsmc-tiny", ignore=shutil.ignore_patterns(SERVING_FILE, ONNX_DIR))
    state = AppState(home, JobQueue(home), work=tmp_path / "work", private=tmp_path / "private")
    source = DATA / "nsmc" / "test.tsv"
    web = Path(predict_file_for_visitor(state, "nsmc-tiny", str(source))).read_bytes()
    stored = (home / "nsmc-tiny" / "model" / SERVING_FILE).read_bytes()
    out = tmp_path / "cli.csv"
    args = ["predict", home / "nsmc-tiny", "--file", source, "--out", out, "--quiet"]
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        done = call_cli(*args, cwd=tmp_path)
    finally:
        torch.set_num_threads(threads)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (home / "nsmc-tiny" / "model" / SERVING_FILE).read_bytes() == stored  # nothing measured again
    assert out.read_bytes() == web
