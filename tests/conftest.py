"""Shared fixtures: KoBERT's tokenizer files (package data), data slices (tests/data), tiny models, one trained run.

Everything here works offline: the hub is switched off before anything imports huggingface_hub.
"""

from __future__ import annotations

import os
from collections import Counter

os.environ["HF_HUB_OFFLINE"] = "1"

import json
import pickle
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace
from typing import NamedTuple

import pytest
import torch
from filelock import FileLock
from sentencepiece import sentencepiece_model_pb2 as sp_pb

from kobert_demo.basics.events import (
    DoneEvent,
    EpochEvent,
    EvalEvent,
    NoticeEvent,
    StartEvent,
    StepEvent,
    params_to_json,
)
from kobert_demo.engine.tokenizer import CLS, MASK, ORIGINAL_SPM, ORIGINAL_VECTORS, ORIGINAL_VOCAB, PAD, SEP, UNK
from kobert_demo.tools.driving import free_port

# One intra-op thread: on a shared 2-core machine two spinning threads per process make the tiny trainings several
# times slower (and their timings erratic); results are the same.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"  # small slices of the public datasets (tests/data/README.md)

# Fixtures that start a server, a job queue's child processes, a training or a build of seconds, the benchmark or a
# venv: every test that uses one is `slow`, so that `pytest -m "not slow"` stays a loop of under a minute on two
# cores. Other slow tests carry @pytest.mark.slow themselves (each took half a second or more in the quick loop's
# --durations). The `cli` fixture calls the CLI in-process, in milliseconds; run_cli starts a real process.
SLOW_FIXTURES = frozenset(
    {"app", "server", "cli_run", "queue", "report", "installed", "wheel", "trained_run", "trained_predictor"}
    | {"family_run", "kobert_shape_folder", "onnx_built_model", "onnx_export", "small_model", "tokenizers"}
    | {"saved_folder"}
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())) or item.get_closest_marker("extra"):
            item.add_marker(pytest.mark.slow)  # so that -m "not slow" (which replaces addopts' -m) leaves extra out
    # Files with more slow tests first: pytest-xdist gives a free worker the next file, so starting the longest ones
    # first leaves no long file running alone at the end. A stable sort: each file's tests keep their order.
    slow = Counter(item.path for item in items if item.get_closest_marker("slow"))
    items.sort(key=lambda item: -slow[item.path])


class KobertFiles(NamedTuple):
    spm: Path
    vocab: Path
    vectors: Path


KOBERT_FILES = KobertFiles(spm=ORIGINAL_SPM, vocab=ORIGINAL_VOCAB, vectors=ORIGINAL_VECTORS)
# The published (text, mode, ids) vectors; a KoBERT tokenizer is right when it reproduces all of them.
VECTORS: list[dict] = json.loads(KOBERT_FILES.vectors.read_text(encoding="utf-8"))["vectors"]

# A toy KoBERT: KoBERT's vocabulary and padding id at hidden size 32, for the model folders tests make on the fly.
# Not model.TINY_SHAPE, the shape of the `tiny` backbone that the app trains.
TOY_KOBERT_SHAPE = dict(
    vocab_size=8002, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
    max_position_embeddings=128, pad_token_id=1,
)  # fmt: skip
KOBERT_SHAPE = dict(
    vocab_size=8002, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
    max_position_embeddings=512, type_vocab_size=2, pad_token_id=1,
)  # fmt: skip

# The trained run every predict/evaluate/CLI test reuses. fp32 so that the accuracy measured during training
# (under autocast when the precision is bf16) is exactly what a later fp32 prediction measures. Five epochs: after
# three, whether tiny had left chance (0.50-0.65 test accuracy) hung on the seed and the dropout masks, and the
# explanation tests need a model that has learnt something (five: 0.69, train loss 0.09).
TRAINED_SEED = 7
TRAINED_EPOCHS = 5


def make_model_folder(folder: Path, shape: dict, seed: int = 0) -> Path:
    """A folder like the hub's KoBERT: a random BertModel (safetensors) plus the real SP model and vocab JSON."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    BertModel(BertConfig(**shape)).save_pretrained(folder)
    shutil.copy(KOBERT_FILES.spm, folder)
    shutil.copy(KOBERT_FILES.vocab, folder)
    return folder


def native_kobert_proto() -> bytes:
    """The hub's spiece.model: the original SP model with its pieces in KoBERT id order, [UNK]..[MASK] first."""
    proto = sp_pb.ModelProto()
    proto.ParseFromString(KOBERT_FILES.spm.read_bytes())
    vocab = json.loads(KOBERT_FILES.vocab.read_text(encoding="utf-8"))
    kinds = sp_pb.ModelProto.SentencePiece
    scores = {p.piece: p.score for p in proto.pieces if p.type == kinds.NORMAL}
    special = {UNK: kinds.UNKNOWN, PAD: kinds.CONTROL, CLS: kinds.CONTROL, SEP: kinds.CONTROL, MASK: kinds.CONTROL}
    del proto.pieces[:]
    for token in vocab["idx_to_token"]:
        proto.pieces.add(piece=token, score=scores.get(token, 0.0), type=special.get(token, kinds.NORMAL))
    proto.trainer_spec.unk_id, proto.trainer_spec.pad_id = 0, 1
    proto.trainer_spec.bos_id, proto.trainer_spec.eos_id = 2, 3
    return proto.SerializeToString()


# A guard against a hang, never a check of speed: every wait for a state, process or page in the tests uses it, so
# that no CPU, however slow or busy (a 2-core AVX2 EPYC ran one bench fixture for 11 minutes), fails a test by time.
HANG_S = 1800
HANG_MS = HANG_S * 1000  # Playwright counts milliseconds


def wait_until(predicate, timeout: float = HANG_S, every: float = 0.2):
    """predicate()'s first truthy value, polled every `every` seconds; AssertionError after timeout."""
    end = time.time() + timeout
    while time.time() < end:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("timed out waiting")


def reap_when_it_ends(process: subprocess.Popen) -> subprocess.Popen:
    """Reap process as soon as it ends, as the init that adopts a dead server's job does. Left a zombie child of the
    test process, it counts as running (runs.pid_alive), and a server taking up its run waited ORPHAN_STOP_S (30 s)
    for it to end."""
    threading.Thread(target=process.wait, daemon=True).start()
    return process


def run_cli(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    """`python -m kobert_demo ARGS` as a real process in cwd, offline, with the repo importable."""
    env = {**os.environ, **CLI_ENV}
    env.setdefault("KOBERT_DEMO_LANG", "en")  # English error lines whatever the machine's locale ("": the locale)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "kobert_demo", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=HANG_S,
    )


# What run_cli's process gets besides the caller's environment; call_cli sets the same for its call.
CLI_ENV = {"HF_HUB_OFFLINE": "1", "PYTHONIOENCODING": "utf-8", "OMP_NUM_THREADS": "1"}


def call_cli(*args: str | Path, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """`kobert_demo.app.cli.main(ARGS)` in this process, as run_cli runs it in a process (about 6 s of imports saved
    a call): in cwd, offline, in English unless KOBERT_DEMO_LANG is set, with env's variables added; its exit status
    and what it printed, as text. The working directory, the environment and the random generators are restored
    after (`train` seeds them), so that a call changes nothing for the next one or the next test."""
    import contextlib
    import io
    import random

    import numpy as np

    from kobert_demo.app.cli import main

    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    saved_random = random.getstate(), np.random.get_state(), torch.get_rng_state()
    out, err = io.StringIO(), io.StringIO()
    try:
        os.environ.update({**CLI_ENV, **env})
        os.environ.setdefault("KOBERT_DEMO_LANG", "en")
        os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main([str(arg) for arg in args])
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        random.setstate(saved_random[0])
        np.random.set_state(saved_random[1])
        torch.set_rng_state(saved_random[2])
    return subprocess.CompletedProcess(["kobert-demo", *map(str, args)], status, out.getvalue(), err.getvalue())


def sample_rows(relative: str, per_class: int) -> list[tuple[str, str]]:
    """The first `per_class` (text, label) rows of each class of a shared data file, in file order."""
    from kobert_demo.basics.data import read_table

    data = read_table(DATA / relative)
    taken: dict[str, int] = {}
    rows = []
    for text, label in zip(data.texts, data.labels):
        if taken.get(label, 0) < per_class:
            taken[label] = taken.get(label, 0) + 1
            rows.append((text, label))
    return rows


def write_tsv(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("document\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in rows), encoding="utf-8")
    return path


class TrainedRun(NamedTuple):
    path: Path
    events: list


class CliRun(NamedTuple):
    folder: Path  # the working directory of the CLI calls
    run: Path
    train_file: Path
    test_file: Path
    result: subprocess.CompletedProcess


def built_once(factory: pytest.TempPathFactory, name: str, build: Callable[[Path], object]) -> tuple[Path, object]:
    """The folder and result of build(folder), done once for the whole test session by whichever pytest-xdist worker
    asks first; the others wait for it and read its result back (pickled beside the folder). Each worker used to
    build its own: the trained runs twice on two workers. The folder is shared: read it, or copy it to change it."""
    from kobert_demo.basics import files

    base = factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the session's temporary folder, shared by the workers (each has its own below it)
    folder, result = base / name, base / f"{name}.pickle"
    with FileLock(base / f"{name}.lock"):
        if not result.is_file():
            files.write_bytes(result, pickle.dumps(build(folder)))
    return folder, pickle.loads(result.read_bytes())


def trained(folder: Path, model: str, **settings) -> list:
    """The events of `model` trained on nsmc/train.tsv and tested on nsmc/test.tsv into folder, ending done."""
    from kobert_demo.basics.config import TrainConfig
    from kobert_demo.basics.data import make_splits, read_table
    from kobert_demo.engine.train import train

    splits = make_splits(read_table(DATA / "nsmc" / "train.tsv"), read_table(DATA / "nsmc" / "test.tsv"))
    events = list(train(TrainConfig(model=model, **settings), splits, folder, meta={"train_file": "train.tsv"}))
    assert events[-1].type == "done", asdict(events[-1])
    return events


@pytest.fixture(scope="session")
def kobert_tokenizer():
    """The original KoBERT tokenizer (vocab scheme, gluonnlp mode)."""
    from kobert_demo.engine.tokenizer import KoBertTokenizer

    return KoBertTokenizer.from_files(KOBERT_FILES.spm, KOBERT_FILES.vocab)


@pytest.fixture(scope="session")
def tiny_kobert_folder(tmp_path_factory) -> Path:
    """A local model folder shaped like the hub's KoBERT, but tiny (random weights)."""
    return make_model_folder(tmp_path_factory.mktemp("tiny_kobert"), TOY_KOBERT_SHAPE)


@pytest.fixture
def model_folder_copy(tiny_kobert_folder, tmp_path) -> Path:
    """A private copy of tiny_kobert_folder to break in one test."""
    return Path(shutil.copytree(tiny_kobert_folder, tmp_path / "model"))


FAMILY_TYPES = ("bert", "roberta", "electra")


@pytest.fixture(scope="session")
def family_folders(tmp_path_factory) -> dict[str, Path]:
    """A tiny hub-like folder of each family (random weights; WordPiece or byte-level BPE learnt from NSMC's training
    slice by `tokenizers`), keyed by model_type. Session-wide: do not change them, copy them."""

    def build(home: Path) -> dict[str, Path]:
        from kobert_demo.basics.data import read_table
        from kobert_demo.tools.hublike import build_folder

        texts = read_table(DATA / "nsmc" / "train.tsv").texts
        return {family: build_folder(home / family, family, texts) for family in FAMILY_TYPES}

    _, folders = built_once(tmp_path_factory, "families", build)
    return folders


@pytest.fixture(params=FAMILY_TYPES)
def family_folder(request, family_folders) -> Path:
    """Each family's tiny hub-like folder in turn."""
    return family_folders[request.param]


# Each family's tiny model trained as family_run does; its kept model measured on nsmc/test.tsv (fp32, batches of 32,
# dropout 0.1, 4 epochs, chance 0.50). At lr 2e-3 a random-weight ELECTRA sat at chance for 2-3 epochs and then
# left it or not by the thread count and the seed (kept model 0.54 to 0.64 at seed 2; 0.51 at lr 4e-3). At lr 1e-3,
# seed 2: BERT 0.71, RoBERTa 0.69 (1 or 2 threads), ELECTRA 0.66 (1 thread) and 0.69 (2); seed 4: ELECTRA 0.64 and
# 0.66.
FAMILY_TRAINING = dict(epochs=4, lr=1e-3, seed=2, batch_size=32, dropout=0.1, precision="fp32", log_interval=20)


class FamilyRuns:
    """Each family's tiny folder fine-tuned (every layer) on nsmc/train.tsv and tested on nsmc/test.tsv, trained on its
    first use, once for the session (built_once). Not a parametrized session fixture: pytest keeps only the latest
    parameter of one, so each of the six modules reading these trained all three again (18 trainings of about 6.5 s
    each on the 2-core EPYC, where 3 do)."""

    def __init__(self, folders: dict[str, Path], factory: pytest.TempPathFactory) -> None:
        self.folders, self.factory, self.runs = folders, factory, {}

    def __getitem__(self, family: str) -> TrainedRun:
        if family not in self.runs:
            folder, events = built_once(
                self.factory,
                f"nsmc-{family}",
                lambda folder: trained(folder, str(self.folders[family]), **FAMILY_TRAINING),
            )
            self.runs[family] = TrainedRun(folder, events)
        return self.runs[family]


@pytest.fixture(scope="session")
def family_runs(family_folders, tmp_path_factory) -> FamilyRuns:
    return FamilyRuns(family_folders, tmp_path_factory)


@pytest.fixture(params=FAMILY_TYPES)
def family_run(request, family_runs) -> TrainedRun:
    """Each family's trained run in turn (FamilyRuns): its run folder and events. Session-wide: copy to change."""
    return family_runs[request.param]


@pytest.fixture(scope="session")
def kobert_shape_folder(tmp_path_factory) -> Path:
    """A local model folder with KoBERT's real shape (about 92M parameters, random weights)."""
    return make_model_folder(tmp_path_factory.mktemp("kobert_shape"), KOBERT_SHAPE)


@pytest.fixture(scope="session")
def nsmc_test():
    """nsmc/test.tsv, 500 balanced rows."""
    from kobert_demo.basics.data import read_table

    return read_table(DATA / "nsmc" / "test.tsv")


@pytest.fixture(scope="session")
def small_splits():
    """200 training rows and 100 test rows of NSMC (balanced), for quick training runs."""
    from kobert_demo.basics.data import Splits

    train = sample_rows("nsmc/train.tsv", 100)
    test = sample_rows("nsmc/test.tsv", 50)
    return Splits(
        train_texts=[t for t, _ in train],
        train_labels=[int(y) for _, y in train],
        test_texts=[t for t, _ in test],
        test_labels=[int(y) for _, y in test],
        label_names=["0", "1"],
        test_source="file",
    )


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> TrainedRun:
    """`tiny` trained for TRAINED_EPOCHS epochs on nsmc/train.tsv, tested on nsmc/test.tsv, once for the session
    (built_once): its run folder and events."""
    settings = dict(epochs=TRAINED_EPOCHS, seed=TRAINED_SEED, precision="fp32", log_interval=10)
    return TrainedRun(*built_once(tmp_path_factory, "nsmc-tiny", lambda folder: trained(folder, "tiny", **settings)))


@pytest.fixture(scope="session")
def trained_predictor(trained_run):
    from kobert_demo.serving.predict import Predictor

    return Predictor.load(trained_run.path)


@pytest.fixture(scope="session")
def onnx_built_model(trained_run) -> Path:
    """The trained run's model folder with its ONNX files (fp32 and int8) built in it once for the session: the
    build that every later onnx, int8 or auto load of the run reuses, and the source of copy_with_onnx."""
    from kobert_demo.serving.predict import Predictor

    Predictor.load(trained_run.path, backend="int8")
    return trained_run.path / "model"


def copy_with_onnx(source: Path, target: Path) -> Path:
    """A copy of a model folder with its built ONNX files (not its stored choice), which serving uses as if built
    there. For tests of what is served or measured; a test of a build keeps a copy without them (an export and an
    int8 quantization each)."""
    from kobert_demo.serving.choice import SERVING_FILE

    copied = Path(shutil.copytree(source, target, ignore=shutil.ignore_patterns(SERVING_FILE)))
    stamp_onnx_files(copied)
    return copied


def stamp_onnx_files(folder: Path) -> None:
    """The stamp of a model folder's copied ONNX files, rewritten for the weights there now (after a copy, or other
    files of the same weights written into it): a copy's weights have new inodes, which their identity holds, so
    serving would otherwise build the same files again."""
    from kobert_demo.basics import files
    from kobert_demo.serving.choice import ONNX_DIR, weights_identity
    from kobert_demo.serving.engines import STAMP_FILE

    stamp = folder / ONNX_DIR / STAMP_FILE
    files.write_json(stamp, {**files.read_json(stamp), "weights": weights_identity(folder)})


@pytest.fixture
def cli(tmp_path):
    """`cli(*args)`: the CLI in-process (call_cli) in tmp_path."""
    return lambda *args: call_cli(*args, cwd=tmp_path)


@pytest.fixture(scope="session")
def cli_run(tmp_path_factory) -> CliRun:
    """`kobert-demo train --model tiny --epochs 1` (in-process) on three Korean string classes (movie_ratings
    rows)."""
    folder = tmp_path_factory.mktemp("cli")
    train_file = write_tsv(folder / "ratings_train.tsv", sample_rows("movie_ratings/train.tsv", 40))
    test_file = write_tsv(folder / "ratings_test.tsv", sample_rows("movie_ratings/test.tsv", 20))
    result = call_cli(
        "train", train_file.name, "--test", test_file.name, "--out", "run", "--model", "tiny", "--epochs", "1",
        "--batch-size", "16", "--log-interval", "3", "--precision", "fp32", cwd=folder,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return CliRun(folder, folder / "run", train_file, test_file, result)


# --- training events, for tests of their readers (runs, the Logs tab's renderers and handlers) -----------------
TEST = {
    "accuracy": 0.8125, "macro_f1": 0.8, "labels": ["긍정", "부정"],
    "per_class": {"긍정": {"precision": 0.9, "recall": 0.7, "f1": 0.79, "support": 8},
                  "부정": {"precision": 0.75, "recall": 0.92, "f1": 0.83, "support": 8}},
    "confusion_matrix": [[6, 2], [1, 7]], "n": 16,
}  # fmt: skip


def start(**changes) -> StartEvent:
    fields = dict(
        model="tiny", device="cpu", precision="fp32", processes=1, train_rows=120, test_rows=16,
        labels=["긍정", "부정"], steps_per_epoch=8, total_steps=16, parameters=580_000,
    )  # fmt: skip
    return StartEvent(**{**fields, **changes})


def step(**changes) -> StepEvent:
    fields = dict(
        epoch=1, batch=1, step=1, steps_per_epoch=8, total_steps=16, loss=0.6931, train_acc=0.5, lr=1e-3,
        elapsed=0.5, eta=7.5, sentences_per_s=32.0, logged=True,
    )  # fmt: skip
    return StepEvent(**{**fields, **changes})


def epoch(**changes) -> EpochEvent:
    mistakes = [{"text": "지루한 영화", "label": "부정", "predicted": "긍정", "confidence": 0.91}]
    return EpochEvent(**{**dict(epoch=1, train_loss=0.6, train_acc=0.7, test=TEST, elapsed=4.0, mistakes=mistakes),
                         **changes})  # fmt: skip


# a run validated at each epoch's end that stopped early (#25), for the Logs tab's renderers and handlers
KEPT_TEST = {**TEST, "accuracy": 0.875, "macro_f1": 0.87}
KEPT_MISTAKES = [{"text": "남긴 모델의 실수", "label": "긍정", "predicted": "부정", "confidence": 0.8}]


def valid_metrics(accuracy: float, loss: float) -> dict:
    return {**TEST, "accuracy": accuracy, "macro_f1": accuracy - 0.01, "loss": loss}


def evaluation(epoch: int, step: int, accuracy: float, best: tuple[int, int, float], loss: float = 0.5) -> EvalEvent:
    """One validation evaluation; best: the kept (epoch, step, value) after it."""
    metrics = valid_metrics(accuracy, loss)
    return EvalEvent(epoch, step, metrics, "accuracy", accuracy, best[1] == step, *best, elapsed=step / 2)


def early_stopped_run(done: bool = True) -> list:
    """3 epochs of 8 steps, validated at each epoch's end: epoch 2 is best, epoch 3 does not improve, patience 1."""
    events: list = [start(total_steps=24)]
    best = {1: (1, 8, 0.7), 2: (2, 16, 0.81), 3: (2, 16, 0.81)}
    for e, accuracy, loss in ((1, 0.7, 0.62), (2, 0.81, 0.48), (3, 0.78, 0.55)):
        events += [step(epoch=e, batch=b, step=(e - 1) * 8 + b, total_steps=24) for b in range(1, 9)]
        events.append(evaluation(e, e * 8, accuracy, best[e], loss))
        events.append(epoch(epoch=e, test={**TEST, "accuracy": 0.6 + e / 100}, valid=valid_metrics(accuracy, loss)))
    if done:
        params = params_to_json({"metric": "accuracy", "patience": 1, "best_epoch": 2, "best_value": 0.81})
        events.append(NoticeEvent("notice_early_stopped", params))
        events.append(
            DoneEvent(
                "done", 2, KEPT_TEST, 12.0, None, kept_step=16, metric="accuracy", best_value=0.81,
                stop_reason="early_stopping", valid=valid_metrics(0.81, 0.48), mistakes=KEPT_MISTAKES,
            )
        )  # fmt: skip
    return events


# --- the web app's API, as two visitors -----------------------------------------------------------------------
ALICE = "alice-visitor-token-0123456789"
BOB = "bob-visitor-token-9876543210ab"


def new_visitor() -> str:
    """A visitor token nobody else holds, as a first visit's page mints one: on a shared server, a test that uses its
    own sees none of the other tests' runs, and no other test sees its runs."""
    return f"visitor-{secrets.token_hex(16)}"


@pytest.fixture
def visitor() -> str:
    """A fresh visitor token for this test."""
    return new_visitor()


def own_run(home: Path, source: Path, visitor: str, name: str) -> str:
    """A copy of a finished run folder in an app's runs home, owned by visitor as if they had trained it there; its
    name. For tests of predicting, exporting or showing a run, which read the folder the same whoever trained it."""
    from kobert_demo.app.queue import owner_id

    target = Path(shutil.copytree(source, home / name))
    config = json.loads((target / "config.json").read_text(encoding="utf-8"))
    (target / "config.json").write_text(json.dumps({**config, "owner": owner_id(visitor)}), encoding="utf-8")
    return name


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """The app (build_app + launch, its own job queue) on a temporary runs home, started once per session and shared
    by the API and browser tests, and a gradio_client for it. Each test is a fresh visitor (`visitor`, new_visitor(),
    or a new browser context, whose page mints its own token), so none sees another's runs; each test's jobs end
    before it does, so every test finds the queue idle. A test that needs other settings at launch (upload limits)
    starts a server of its own."""
    from gradio_client import Client

    from kobert_demo.app.ui import build_app

    home = tmp_path_factory.mktemp("runs")
    demo = build_app(home)
    _, url, _ = demo.launch(server_port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        yield SimpleNamespace(demo=demo, url=url, home=home, state=demo.state, client=Client(url, verbose=False))
    finally:
        demo.close()
