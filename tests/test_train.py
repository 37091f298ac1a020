"""Tests for engine.train: the event stream, logging cadence, stopping, failures, batching, best-epoch saving."""

from __future__ import annotations

import json
import math
import random
import re
from pathlib import Path

import pytest
import torch
from conftest import TRAINED_EPOCHS, TrainedRun, sample_rows

from kobert_demo.basics.config import TINY_LR, TrainConfig
from kobert_demo.basics.data import Splits
from kobert_demo.basics.metrics import balanced_class_weights, classification_metrics
from kobert_demo.basics.runs import Run, open_run
from kobert_demo.engine import train as train_module
from kobert_demo.engine.checkpoints import describe_source
from kobert_demo.engine.loading import load_backbone
from kobert_demo.engine.train import (
    MISTAKES_KEPT,
    Collator,
    DoneEvent,
    EpochEvent,
    ErrorEvent,
    EvalEvent,
    NoticeEvent,
    StartEvent,
    StepEvent,
    Stepper,
    decay_groups,
    make_batches,
    resolve_precision,
    train,
)
from kobert_demo.serving.predict import Predictor


def quick(**changes) -> TrainConfig:
    """tiny, fp32, batches of 16: 13 steps per epoch on small_splits."""
    settings = dict(model="tiny", epochs=1, batch_size=16, precision="fp32", seed=3, log_interval=4)
    return TrainConfig(**{**settings, **changes})


def stop_after(calls: int):
    """A should_stop that says stop from its (calls + 1)-th call on."""
    count = 0

    def should_stop() -> bool:
        nonlocal count
        count += 1
        return count > calls

    return should_stop


def types(events: list) -> list[str]:
    return [event.type for event in events]


def as_json(events: list) -> list[dict]:
    return json.loads(json.dumps([event.to_json() for event in events]))


# The trained run (tiny, 3 epochs on NSMC samples)


def test_event_sequence(trained_run: TrainedRun) -> None:
    events = trained_run.events
    start, done = events[0], events[-1]
    assert isinstance(start, StartEvent) and isinstance(done, DoneEvent)
    spe = start.steps_per_epoch
    assert spe == math.ceil(1080 / 64)  # 10% of the 1200 training rows validate
    assert start.total_steps == spe * TRAINED_EPOCHS
    expected = ["start"] + (["step"] * spe + ["eval", "epoch"]) * TRAINED_EPOCHS + ["done"]
    assert types(events) == expected
    assert start.model == describe_source("tiny")
    assert (start.precision, start.processes) == ("fp32", 1)
    assert (start.train_rows, start.valid_rows, start.test_rows, start.labels) == (1080, 120, 300, ["0", "1"])
    model = Predictor.load(trained_run.path).model
    assert start.parameters == sum(p.numel() for p in model.parameters())


def test_step_events(trained_run: TrainedRun) -> None:
    steps = [e for e in trained_run.events if isinstance(e, StepEvent)]
    spe = steps[0].steps_per_epoch
    assert [s.step for s in steps] == list(range(1, len(steps) + 1))
    assert [s.batch for s in steps] == list(range(1, spe + 1)) * TRAINED_EPOCHS
    assert [s.epoch for s in steps] == [e for e in range(1, TRAINED_EPOCHS + 1) for _ in range(spe)]
    assert all(s.total_steps == len(steps) and s.steps_per_epoch == spe for s in steps)
    assert all(math.isfinite(s.loss) and s.loss > 0 for s in steps)
    assert all(0 <= s.train_acc <= 1 for s in steps)
    assert all(s.sentences_per_s > 0 for s in steps)
    elapsed = [s.elapsed for s in steps]
    assert elapsed == sorted(elapsed)
    assert steps[-1].eta == 0
    # Warmup (10% of the steps) up to the tiny learning rate, then cosine decay to zero.
    lrs = [s.lr for s in steps]
    warmup = int(len(steps) * 0.1)
    peak = lrs.index(max(lrs))
    assert peak == warmup - 1
    assert max(lrs) == pytest.approx(TINY_LR)
    assert lrs[:peak] == sorted(lrs[:peak])
    assert lrs[peak:] == sorted(lrs[peak:], reverse=True)
    assert lrs[-1] == pytest.approx(0, abs=1e-9)
    # Logged every log_interval (10) batches of each epoch's 19: 1, 11.
    assert [s.batch for s in steps if s.logged] == [1, 11] * TRAINED_EPOCHS


def test_epoch_and_done_events(trained_run: TrainedRun) -> None:
    events = trained_run.events
    epochs = [e for e in events if isinstance(e, EpochEvent)]
    assert [e.epoch for e in epochs] == list(range(1, TRAINED_EPOCHS + 1))
    for epoch in epochs:
        last_step = [e for e in events if isinstance(e, StepEvent) and e.epoch == epoch.epoch][-1]
        assert epoch.train_acc == last_step.train_acc
        assert math.isfinite(epoch.train_loss)
        test = epoch.test
        assert test["n"] == 300 and test["labels"] == ["0", "1"]
        assert sum(map(sum, test["confusion_matrix"])) == 300
        wrong = 300 - sum(test["confusion_matrix"][i][i] for i in range(2))
        assert len(epoch.mistakes) == min(MISTAKES_KEPT, wrong)
        confidences = [m["confidence"] for m in epoch.mistakes]
        assert confidences == sorted(confidences, reverse=True)
        for mistake in epoch.mistakes:
            assert mistake["label"] != mistake["predicted"]
            assert {mistake["label"], mistake["predicted"]} == {"0", "1"}
            assert 0.5 <= mistake["confidence"] <= 1
    done = events[-1]
    evaluations = [e for e in events if isinstance(e, EvalEvent)]
    best = max(evaluations, key=lambda e: e.valid["accuracy"])  # the first of the best: later ties do not improve
    assert (done.state, done.kept_epoch, done.kept_step, done.stop_reason) == ("done", best.epoch, best.step, None)
    assert (done.metric, done.best_value, done.valid) == ("accuracy", best.value, best.valid)
    # The kept weights' test figures, the same as its epoch's: the test data was measured, it chose nothing.
    assert done.test == epochs[best.epoch - 1].test
    assert done.mistakes == epochs[best.epoch - 1].mistakes
    assert [e.valid for e in epochs] == [e.valid for e in evaluations]
    assert done.run == str(trained_run.path)


def test_run_folder_of_trained_run(trained_run: TrainedRun) -> None:
    run = open_run(trained_run.path)
    assert run.events() == trained_run.events  # the log reads back as the events train() yielded
    status = run.status()
    assert (status.state, status.reason("en")) == ("done", None)
    assert run.labels() == ["0", "1"]
    config = run.config()
    assert (config["model"], config["epochs"], config["processes"]) == ("tiny", TRAINED_EPOCHS, 1)
    assert config["train_file"] == "train.tsv"
    assert run.has_model
    done = trained_run.events[-1]
    assert run.final_metrics() == json.loads(json.dumps(done.test))
    summary = run.summary()
    steps = [e for e in trained_run.events if isinstance(e, StepEvent)]
    assert (summary.start, summary.last_step) == (trained_run.events[0], steps[-1])
    assert (summary.kept_epoch, summary.state, summary.elapsed) == (done.kept_epoch, "done", done.elapsed)
    card = (run.path / "README.md").read_text(encoding="utf-8")
    assert f"Test accuracy: {done.test['accuracy']:.4f}" in card
    assert f"model kept: epoch {done.kept_epoch}, step {done.kept_step}, chosen by validation accuracy" in card
    assert f"({done.best_value:.4f}; validation loss {done.valid['loss']:.4f})" in card
    assert "Training rows: 1080; validation rows: 120 (split); test rows: 300 (file)" in card
    assert (run.model_dir / "README.md").read_text(encoding="utf-8") == card
    figures = json.loads((run.model_dir / "metrics.json").read_text(encoding="utf-8"))
    assert (figures["kept_epoch"], figures["test"], figures["state"]) == (done.kept_epoch, done.test, "done")
    assert 'pipeline("text-classification"' in card and "truncation=True" in card  # its tokenizer.json was written
    assert (run.model_dir / "tokenizer.json").is_file()


def test_tiny_learns_nsmc(trained_run: TrainedRun) -> None:
    """End to end: clearly better than the majority class (0.5 on the balanced nsmc/test.tsv)."""
    done = trained_run.events[-1]
    assert done.test["accuracy"] >= 0.6
    assert done.test["macro_f1"] >= 0.55


# Logging and stopping


@pytest.mark.slow
def test_logged_every_interval(small_splits: Splits) -> None:
    events = list(train(quick(epochs=2), small_splits))
    steps = [e for e in events if isinstance(e, StepEvent)]
    assert steps[0].steps_per_epoch == 13
    assert [(s.epoch, s.batch) for s in steps if s.logged] == [(e, b) for e in (1, 2) for b in (1, 5, 9, 13)]
    assert events[-1].run is None  # no run folder asked for


@pytest.mark.slow
def test_stop_before_first_epoch_ends(small_splits: Splits, tmp_path: Path) -> None:
    events = list(train(quick(epochs=2), small_splits, tmp_path / "run", should_stop=stop_after(5)))
    assert types(events) == ["start"] + ["step"] * 5 + ["done"]
    done = events[-1]
    assert (done.state, done.kept_epoch, done.test) == ("stopped", None, None)
    run = open_run(tmp_path / "run")
    assert not run.has_model
    assert not run.model_dir.exists()
    status = run.status()
    assert (status.state, status.reason_key) == ("stopped", "reason_stopped_no_model")
    assert status.reason("en") == "stopped before the first epoch ended; no model was kept"
    assert "모델" in status.reason("ko")
    assert run.events() == events
    assert run.summary().state == "stopped" and run.summary().last_step == events[-2]


@pytest.mark.slow
def test_stop_after_first_epoch_keeps_it(small_splits: Splits, tmp_path: Path) -> None:
    events = list(train(quick(epochs=3), small_splits, tmp_path / "run", should_stop=stop_after(13 + 4)))
    assert types(events) == ["start"] + ["step"] * 13 + ["epoch"] + ["step"] * 4 + ["done"]
    done = events[-1]
    assert (done.state, done.kept_epoch) == ("stopped", 1)
    assert done.test == events[14].test
    run = open_run(tmp_path / "run")
    assert run.has_model
    assert (run.status().state, run.status().reason("en")) == ("stopped", None)
    assert Predictor.load(run.path).label_names == ["0", "1"]


def test_stop_at_once(small_splits: Splits) -> None:
    events = list(train(quick(), small_splits, should_stop=lambda: True))
    assert types(events) == ["start", "done"]
    assert events[-1].state == "stopped"


# Failures become error events


@pytest.mark.slow
def test_nan_loss_fails_the_run(small_splits: Splits, tmp_path: Path) -> None:
    config = quick(lr=1e30, warmup_ratio=0.0)
    events = list(train(config, small_splits, tmp_path / "run"))
    assert types(events)[0] == "start"
    assert types(events)[-1] == "error"
    assert "done" not in types(events)
    message = events[-1].message
    assert re.fullmatch(
        r"the loss became (nan|inf|-inf) at epoch 1 batch \d+: lower the learning rate or use fp32\.", message
    )
    run = open_run(tmp_path / "run")
    status = run.status()
    assert (status.state, status.reason_key, status.reason("en")) == ("failed", "loss_not_finite_at", message)
    assert "fp32" in status.reason("ko") and "learning rate" not in status.reason("ko")
    assert run.events()[-1] == events[-1]
    logged = json.loads(run.log_path.read_text(encoding="utf-8").splitlines()[-1])
    assert (logged["type"], logged["message"], logged["key"]) == ("error", message, "loss_not_finite_at")
    assert run.summary().state == "failed"


def test_bad_model_source_is_an_error_event(small_splits: Splits, tmp_path: Path) -> None:
    events = list(train(quick(model="nonsense"), small_splits, tmp_path / "run"))
    assert len(events) == 1 and isinstance(events[0], ErrorEvent)
    assert "model 'nonsense' is neither a folder" in events[0].message
    status = open_run(tmp_path / "run").status()
    assert (status.state, status.reason("en")) == ("failed", events[0].message)
    assert status.reason("ko") == events[0].text("ko") != events[0].message


def test_bad_config_is_an_error_event_and_makes_no_run(small_splits: Splits, tmp_path: Path) -> None:
    events = list(train(quick(epochs=0), small_splits, tmp_path / "run"))
    assert types(events) == ["error"] and events[0].key == "config_epochs"
    assert as_json(events)[0]["message"] == "epochs must be at least 1"
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_unexpected_exception_keeps_traceback(small_splits: Splits, tmp_path: Path, monkeypatch) -> None:
    def broken(*args):
        raise RuntimeError("boom")

    monkeypatch.setattr(train_module, "classification_metrics", broken)
    events = list(train(quick(), small_splits, tmp_path / "run"))
    assert isinstance(events[-1], ErrorEvent)
    assert events[-1].message == "training failed unexpectedly (RuntimeError: boom)"
    traceback = (tmp_path / "run" / "error.txt").read_text(encoding="utf-8")
    assert traceback.startswith("Traceback") and "RuntimeError: boom" in traceback
    status = open_run(tmp_path / "run").status()
    assert status.state == "failed" and "RuntimeError: boom" in status.reason("ko")


def test_existing_run_is_not_overwritten(small_splits: Splits, tmp_path: Path) -> None:
    path = tmp_path / "run"
    Run.create(path, quick(), ["0", "1"], {})
    Run(path).set_status("done")
    before = {p.name: p.read_bytes() for p in path.iterdir()}
    events = list(train(quick(), small_splits, path))
    assert len(events) == 1 and isinstance(events[0], ErrorEvent)
    assert "already holds a run" in events[0].message
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before


# Without validation data (a Splits built by hand) the last completed epoch is kept: the test data never chooses


@pytest.mark.slow
def test_last_epoch_is_the_saved_model_whatever_its_test_accuracy(
    small_splits: Splits, tmp_path: Path, monkeypatch
) -> None:
    """Epochs after the first are reported far worse than the first; the last one is still the model kept."""
    measured: list[dict] = []

    def first_epoch_looks_best(truth, predicted, names):
        metrics = classification_metrics(truth, predicted, names)
        measured.append(metrics)
        return metrics if len(measured) == 1 else {**metrics, "accuracy": metrics["accuracy"] - 1}

    monkeypatch.setattr(train_module, "classification_metrics", first_epoch_looks_best)
    events = list(train(quick(epochs=3), small_splits, tmp_path / "run"))
    epochs = [e for e in events if isinstance(e, EpochEvent)]
    assert events[-1].kept_epoch == 3 and events[-1].test == epochs[-1].test

    predictor = Predictor.load(tmp_path / "run")
    probs = predictor.predict_proba(small_splits.test_texts)
    metrics = classification_metrics(small_splits.test_labels, probs.argmax(1).tolist(), ["0", "1"])
    assert metrics["confusion_matrix"] == measured[-1]["confusion_matrix"]

    # The most confident mistakes of epoch 3 are exactly what the saved model says; those of epoch 1 are not.
    def matches(mistakes: list[dict]) -> bool:
        p = predictor.predict([m["text"] for m in mistakes])
        return all(
            abs(max(row.values()) - m["confidence"]) < 1e-3 and max(row, key=row.get) == m["predicted"]
            for row, m in zip(p, mistakes)
        )

    assert epochs[0].mistakes and epochs[-1].mistakes
    assert matches(epochs[-1].mistakes)
    assert not matches(epochs[0].mistakes)


# The kept model: the best evaluation on the validation data (#25)


def valid_splits(test_labels: list[int] | None = None) -> Splits:
    """small_splits' sizes with 40 validation rows: NSMC's first 100 training rows of each class train, the next 20
    validate; 50 test rows of each class (their labels replaced by test_labels when given)."""
    from conftest import sample_rows

    rows = sample_rows("nsmc/train.tsv", 120)
    nth = {label: [row for row in rows if row[1] == label] for label in ("0", "1")}
    train_rows = nth["0"][:100] + nth["1"][:100]
    valid_rows = nth["0"][100:] + nth["1"][100:]
    test = sample_rows("nsmc/test.tsv", 50)
    return Splits(
        [t for t, _ in train_rows], [int(y) for _, y in train_rows],
        [t for t, _ in test], test_labels or [int(y) for _, y in test],
        ["0", "1"], "file",
        [t for t, _ in valid_rows], [int(y) for _, y in valid_rows], "split",
    )  # fmt: skip


@pytest.fixture(scope="module")
def early_run(tmp_path_factory) -> TrainedRun:
    """tiny for up to 8 epochs with patience 1 and a minimum improvement of 0.05 (two of the 40 validation rows):
    a small, noisy set that stops early, its kept model an earlier evaluation than the last."""
    config = quick(epochs=8, lr=1e-3, early_stopping_patience=1, early_stopping_min_delta=0.05)
    path = tmp_path_factory.mktemp("early") / "run"
    return TrainedRun(path, list(train(config, valid_splits(), path)))


@pytest.mark.slow
def test_patience_stops_early_with_a_notice_and_keeps_the_best_evaluation(early_run: TrainedRun) -> None:
    events, done = early_run.events, early_run.events[-1]
    assert isinstance(done, DoneEvent) and (done.state, done.stop_reason) == ("done", "early_stopping")
    evaluations = [e for e in events if isinstance(e, EvalEvent)]
    assert len(evaluations) < 8 and [e.step for e in evaluations] == [13 * e.epoch for e in evaluations]
    # The kept epoch is the best validation evaluation in the run's own log; the last one did not improve on it.
    logged = open_run(early_run.path).events()
    best = max((e for e in logged if isinstance(e, EvalEvent)), key=lambda e: e.value)
    assert (done.kept_epoch, done.kept_step, done.best_value) == (best.epoch, best.step, best.value)
    assert best.improved and not evaluations[-1].improved and evaluations[-1].value <= best.value + 0.05
    assert [e.improved for e in evaluations] == [e.value > max(x.value for x in evaluations[:i]) + 0.05 if i else True
                                                 for i, e in enumerate(evaluations)]  # fmt: skip
    (notice,) = [e for e in events if isinstance(e, NoticeEvent) and e.key == "notice_early_stopped"]
    assert types(events)[-2:] == ["notice", "done"] and events.index(notice) > events.index(evaluations[-1])
    assert notice.text("en").startswith("Stopped early: accuracy on the validation data did not improve for 1")
    assert f"epoch {best.epoch}'s" in notice.text("en") and "조기 종료" in notice.text("ko")
    status = open_run(early_run.path).status()
    assert (status.state, status.reason("ko")) == ("done", notice.text("ko"))
    summary = open_run(early_run.path).summary()
    assert (summary.kept_epoch, summary.kept_step, summary.stop_reason) == (best.epoch, best.step, "early_stopping")
    assert summary.evaluations == [[e.epoch, e.step, e.valid["accuracy"], e.valid["loss"]] for e in evaluations]
    assert summary.notices == [e for e in events if isinstance(e, NoticeEvent)] and notice in summary.notices
    assert summary.test == done.test


@pytest.mark.slow
def test_reported_test_figures_are_the_saved_kept_models(early_run: TrainedRun) -> None:
    """Kept before the last evaluation: its weights come back from the model folder, and what the run reports on
    the test data is what the saved model scores there, measured afresh."""
    done, splits = early_run.events[-1], valid_splits()
    predictor = Predictor.load(early_run.path)
    predicted = predictor.predict_proba(splits.test_texts).argmax(1).tolist()
    assert done.test == classification_metrics(splits.test_labels, predicted, ["0", "1"])
    last = [e for e in early_run.events if isinstance(e, EpochEvent)][-1]
    assert last.epoch > done.kept_epoch  # the last weights were not the kept ones
    card = (early_run.path / "README.md").read_text(encoding="utf-8")
    assert f"Test accuracy: {done.test['accuracy']:.4f}" in card and "stopped early" in card
    assert "validation rows: 40 (split)" in card
    saved = Run(early_run.path).kept()
    assert (saved.kept_epoch, saved.test, saved.state) == (done.kept_epoch, done.test, "done")
    # The validation loss: the mean cross-entropy of the validation rows, recomputed from the saved model.
    probs = predictor.predict_proba(splits.valid_texts)
    loss = -sum(math.log(probs[i][y]) for i, y in enumerate(splits.valid_labels)) / len(splits.valid_labels)
    assert done.valid["loss"] == pytest.approx(loss, abs=1e-4)


@pytest.mark.slow
def test_the_test_data_never_chooses() -> None:
    """The same run with every test label flipped keeps the same evaluation (in memory, without a run folder), and
    reports the kept model's test figures flipped; evaluations every 4 steps as well as at each epoch's end."""
    splits = valid_splits()
    config = quick(epochs=2, lr=1e-3, eval_steps=4)
    runs = [list(train(config, splits)), list(train(config, valid_splits([1 - y for y in splits.test_labels])))]
    evaluations = [[(e.step, e.valid, e.improved) for e in run if isinstance(e, EvalEvent)] for run in runs]
    assert [step for step, _, _ in evaluations[0]] == [4, 8, 12, 13, 16, 20, 24, 26]  # every 4 steps of the run
    assert evaluations[0] == evaluations[1]
    done, flipped = runs[0][-1], runs[1][-1]
    assert (done.kept_epoch, done.kept_step) == (flipped.kept_epoch, flipped.kept_step)
    assert done.test["accuracy"] == pytest.approx(1 - flipped.test["accuracy"])
    assert done.test["confusion_matrix"] == flipped.test["confusion_matrix"][::-1]  # true classes swapped
    epochs = [[e.test["accuracy"] for e in run if isinstance(e, EpochEvent)] for run in runs]
    assert epochs[0] == pytest.approx([1 - a for a in epochs[1]])


@pytest.mark.slow
def test_a_stop_keeps_the_best_evaluation_so_far(tmp_path: Path) -> None:
    splits = valid_splits()
    events = list(train(quick(epochs=2, eval_steps=3), splits, tmp_path / "run", should_stop=stop_after(7)))
    done = events[-1]
    evaluations = [e for e in events if isinstance(e, EvalEvent)]
    assert [e.step for e in evaluations] == [3, 6] and "epoch" not in types(events)
    assert (done.state, done.stop_reason, done.kept_epoch) == ("stopped", "stopped", 1)
    assert done.kept_step == evaluations[-1].best_step
    predicted = Predictor.load(tmp_path / "run").predict_proba(splits.test_texts).argmax(1).tolist()
    assert done.test == classification_metrics(splits.test_labels, predicted, ["0", "1"])
    assert open_run(tmp_path / "run").status().state == "stopped"


@pytest.mark.slow
def test_the_kept_models_validation_answers_are_judged_for_not_having_learned(tmp_path: Path, monkeypatch) -> None:
    """not_learned (metrics.py) sees the kept model's validation answers, once; what it finds becomes a notice."""
    judged: list[tuple[list[int], list[int]]] = []
    found = {"label": "1", "share": 1.0, "accuracy": 0.5, "majority": 0.5}

    def recording(truth: list[int], predicted: list[int], names: list[str]) -> dict:
        judged.append((truth, predicted))
        return found

    monkeypatch.setattr(train_module, "not_learned", recording)
    splits = valid_splits()
    events = list(train(quick(epochs=2, eval_steps=5), splits, tmp_path / "run"))
    predicted = Predictor.load(tmp_path / "run").predict_proba(splits.valid_texts).argmax(1).tolist()
    assert judged == [(splits.valid_labels, predicted)]
    notice = events[-2]
    assert isinstance(notice, NoticeEvent) and (notice.key, notice.params) == ("notice_not_learned", found)
    assert "'1'" in notice.text("ko") and open_run(tmp_path / "run").summary().notices == [notice]


@pytest.mark.slow
def test_optimizer_is_the_tutorials(small_splits: Splits, monkeypatch) -> None:
    """transformers.AdamW's epsilon (1e-6), decay on weights only, the learning rate asked for."""
    made: list[torch.optim.Optimizer] = []
    real = torch.optim.AdamW

    def recording(*args, **kwargs):
        made.append(real(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(torch.optim, "AdamW", recording)
    list(train(quick(epochs=1, lr=3e-4, weight_decay=0.02), small_splits))
    (optimizer,) = made
    assert [g["eps"] for g in optimizer.param_groups] == [1e-6, 1e-6]
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.02, 0.0]
    assert optimizer.defaults["lr"] == 3e-4


# Local backbone folders


@pytest.mark.slow
def test_local_folder_trains(tiny_kobert_folder: Path, small_splits: Splits, tmp_path: Path) -> None:
    config = quick(model=str(tiny_kobert_folder), lr=1e-3)
    events = list(train(config, small_splits, tmp_path / "run"))
    assert types(events)[-1] == "done", as_json(events[-1:])
    assert events[0].model == str(tiny_kobert_folder)
    assert (events[0].train_rows, events[0].test_rows) == (200, 100)
    assert events[-1].kept_epoch == 1
    predictor = Predictor.load(tmp_path / "run")
    assert predictor.classifier.source == str(tiny_kobert_folder)
    assert predictor.tokenizer.vocab_size == 8002  # the folder's KoBERT tokenizer, not a tiny one
    assert predictor.predict_proba(small_splits.test_texts).shape == (100, 2)


@pytest.mark.slow
def test_cpu_mode_trains_only_the_top_layers(small_splits: Splits, tmp_path: Path) -> None:
    """The saved model keeps the backbone's embeddings and lower layers bit for bit; the top layers and head learn."""
    from conftest import TOY_KOBERT_SHAPE, make_model_folder
    from safetensors.torch import load_file

    from kobert_demo.basics.config import CPU_MODE_LAYERS

    folder = make_model_folder(tmp_path / "backbone", {**TOY_KOBERT_SHAPE, "num_hidden_layers": 4})
    events = list(train(quick(model=str(folder), lr=1e-3, cpu_mode=True), small_splits, tmp_path / "run"))
    assert types(events)[-1] == "done", as_json(events[-1:])
    before, after = load_file(folder / "model.safetensors"), load_file(tmp_path / "run" / "model" / "model.safetensors")
    frozen_layers = [f"encoder.layer.{i}." for i in range(4 - CPU_MODE_LAYERS)]
    for name, weight in before.items():
        if "position_ids" in name or "token_type_ids" in name:
            continue
        frozen = name.startswith("embeddings.") or any(name.startswith(layer) for layer in frozen_layers)
        assert torch.equal(after[f"bert.{name}"], weight) == frozen, name


# Batching and optimizer groups


@pytest.mark.parametrize(("n", "batch_size"), [(1, 4), (37, 4), (1000, 3), (250, 64)])
def test_batches_cover_every_index_once(n: int, batch_size: int) -> None:
    rng = random.Random(n)
    lengths = [rng.randint(3, 64) for _ in range(n)]
    for shuffle in (True, False):
        batches = make_batches(lengths, batch_size, seed=1, shuffle=shuffle)
        assert sorted(i for batch in batches for i in batch) == list(range(n))
        assert [len(batch) for batch in batches[:-1]] == [batch_size] * (len(batches) - 1)


def test_training_batches_are_random_and_evaluation_batches_sorted() -> None:
    rng = random.Random(0)
    lengths = [rng.randint(3, 64) for _ in range(120)]
    ordered = make_batches(lengths, 8, seed=1, shuffle=False)
    assert [lengths[i] for b in ordered for i in b] == sorted(lengths)
    shuffled = make_batches(lengths, 8, seed=1, shuffle=True)
    assert make_batches(lengths, 8, seed=1, shuffle=True) == shuffled
    assert make_batches(lengths, 8, seed=2, shuffle=True) != shuffled
    # Not grouped by length: the rows of a batch are as spread as the data (grouping cost accuracy, see bench).
    spread = [max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in shuffled]
    assert sum(spread) / len(spread) > 30


def test_collator_pads_the_batch_to_its_longest_row_in_order(tiny_kobert_folder: Path) -> None:
    """To the longest row rounded up to a multiple of 16 (few shapes for attention), rows in the sampler's order."""
    classifier = load_backbone(str(tiny_kobert_folder), ["0", "1"], 0.1)
    ids = classifier.tokenizer.encode_batch(["아주 긴 문장입니다 " * 5, "짧다", "중간 길이의 문장", "별로"], 64)
    rows = [(row, label, index) for index, (row, label) in enumerate(zip(ids, [1, 0, 1, 0]))]
    batch = Collator(classifier)(rows)
    longest = max(map(len, ids))
    assert batch["input_ids"].shape[0] == 4 and batch["input_ids"].shape[1] % 16 == 0
    assert longest <= batch["input_ids"].shape[1] < longest + 16
    assert batch["attention_mask"].sum(1).tolist() == [len(row) for row in ids]
    assert batch["index"].tolist() == [0, 1, 2, 3] and batch["labels"].tolist() == [1, 0, 1, 0]


def test_a_step_updates_the_wrapped_models_weights(tiny_kobert_folder: Path) -> None:
    """The Stepper trains the BertForSequenceClassification inside the padding-free wrapper (what gets saved)."""
    from accelerate import Accelerator

    classifier = load_backbone(str(tiny_kobert_folder), ["0", "1"], 0.1)
    model, frozen, _ = train_module.training_model(classifier, cpu_mode=False)
    assert model.model is classifier.model and frozen == []
    before = {n: p.detach().clone() for n, p in classifier.model.named_parameters()}
    optimizer = torch.optim.AdamW(decay_groups(model, 0.01), lr=1e-3)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    texts = ["정말 재미있는 영화였어요, 또 보고 싶네요", "별로", "배우들 연기는 좋은데 스토리가 너무 뻔하다", "ㅋㅋ"]
    rows = [(row, i % 2, i) for i, row in enumerate(classifier.tokenizer.encode_batch(texts, 64))]
    batch = Collator(classifier)(rows)
    batch.pop("index")
    loss, logits = Stepper(model.train(), optimizer, schedule, Accelerator(cpu=True), "fp32", 1.0)(batch)
    assert logits.shape == (4, 2) and loss.item() > 0
    changed = {n for n, p in classifier.model.named_parameters() if not torch.equal(p, before[n])}
    assert changed == set(before)


def test_decay_groups(tiny_kobert_folder: Path) -> None:
    model = load_backbone(str(tiny_kobert_folder), ["0", "1"], 0.1).model
    model.bert.embeddings.word_embeddings.weight.requires_grad_(False)
    decay, no_decay = decay_groups(model, 0.01)
    assert (decay["weight_decay"], no_decay["weight_decay"]) == (0.01, 0.0)
    names = {id(p): n for n, p in model.named_parameters()}
    decay_names = {names[id(p)] for p in decay["params"]}
    no_decay_names = {names[id(p)] for p in no_decay["params"]}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert decay_names | no_decay_names == trainable
    assert not decay_names & no_decay_names
    assert "bert.embeddings.word_embeddings.weight" not in trainable
    assert no_decay_names == {n for n in trainable if n.endswith(".bias") or "LayerNorm.weight" in n}
    assert "bert.embeddings.LayerNorm.weight" in no_decay_names
    assert "bert.encoder.layer.0.output.LayerNorm.weight" in no_decay_names
    assert "classifier.bias" in no_decay_names
    assert {"classifier.weight", "bert.encoder.layer.1.attention.self.query.weight"} <= decay_names


@pytest.mark.parametrize(
    ("device", "bf16", "expected"),
    [("cpu", True, "bf16"), ("cpu", False, "fp32"), ("cuda", True, "bf16"), ("cuda", False, "fp16"),
     ("mps", True, "fp32")],
)  # fmt: skip
def test_auto_precision_follows_the_hardware(monkeypatch, device: str, bf16: bool, expected: str) -> None:
    """auto: bf16 where the CPU or GPU has it, fp16 on a GPU without it, fp32 elsewhere; a precision asked for
    is kept whatever the hardware."""
    monkeypatch.setattr(train_module, "has_bf16", lambda: bf16)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: bf16)
    assert resolve_precision("auto", torch.device(device)) == expected
    for asked in ("bf16", "fp16", "fp32"):
        assert resolve_precision(asked, torch.device(device)) == asked


# Every family (#14): the same training, CPU mode and bf16 through the engine


@pytest.mark.slow
def test_every_family_trains_padding_free_and_learns(family_run: TrainedRun) -> None:
    """Full fine-tuning of each family's tiny model beats chance on NSMC's test slice, and the saved model predicts
    what the run measured."""
    from conftest import DATA

    from kobert_demo.basics.data import read_table

    run = Run(family_run.path)
    start = family_run.events[0]
    assert start.forward == "padding-free" and start.precision == "fp32"
    accuracy = run.final_metrics()["accuracy"]
    # Chance is 0.5; 0.57 is 2.4 standard deviations of a coin above it on the slice's 300 rows. Each family's kept
    # model measured 0.64 to 0.71 across seeds and thread counts (conftest.FAMILY_TRAINING).
    assert accuracy > 0.57, accuracy
    assert {"tokenizer.json", "tokenizer_config.json", "model.safetensors"} <= {p.name for p in run.model_dir.iterdir()}
    test = read_table(DATA / "nsmc" / "test.tsv")
    predictor = Predictor.load(run.path, backend="torch")
    predicted = predictor.predict_proba(test.texts).argmax(1)
    labels = [predictor.label_names.index(label) for label in test.labels]
    assert abs((predicted == labels).mean() - accuracy) <= 1 / len(labels)  # the same model, the same forward math


@pytest.mark.slow
def test_cpu_mode_freezes_every_familys_embeddings(family_folder: Path, small_splits: Splits, tmp_path: Path) -> None:
    """CPU mode trains only the top layers: the embeddings (ELECTRA's projection too) stay as the checkpoint has
    them, in bf16 where the CPU has it."""
    from kobert_demo.basics.cpu import has_bf16
    from kobert_demo.engine.families import family_of
    from kobert_demo.engine.loading import load_classifier

    config = TrainConfig(model=str(family_folder), epochs=1, batch_size=32, lr=1e-3, cpu_mode=True, seed=1)
    events = list(train(config, small_splits, tmp_path / "run"))
    assert events[-1].type == "done", events[-1]
    assert events[0].precision == ("bf16" if has_bf16() else "fp32") and events[0].forward == "padding-free"
    before = load_backbone(str(family_folder), small_splits.label_names, 0.1).model
    after = load_classifier(tmp_path / "run" / "model").model
    family = family_of(after)
    frozen = family.embedding_modules(before)
    assert len(frozen) == (2 if family.model_type == "electra" else 1)  # ELECTRA's embeddings_project is frozen too
    for old, new in zip(frozen, family.embedding_modules(after), strict=True):
        for (name, p), q in zip(old.named_parameters(), new.parameters(), strict=True):
            assert torch.equal(p, q), name
    top = lambda model: family.layers(model)[-1].output.dense.weight  # noqa: E731
    assert not torch.equal(top(before), top(after))


@pytest.mark.slow
def test_inputs_at_a_robertas_position_limit_train(family_folders, tmp_path: Path) -> None:
    """max_len 512 on a RoBERTa with 512 position embeddings: its tokenizer stops at the 510 positions it has."""
    long = "원작 소설을 먼저 읽었는데, 영화는 원작의 분위기를 잘 살리지 못한 것 같아 아쉽다. " * 40
    splits = Splits([long, "별로"] * 4, [0, 1] * 4, [long, "최고"], [0, 1], ["0", "1"], "file")
    config = TrainConfig(model=str(family_folders["roberta"]), epochs=1, batch_size=4, max_len=512, precision="fp32")
    events = list(train(config, splits))
    assert events[-1].type == "done", events[-1]


# Class weights (#25)
@pytest.mark.slow
def test_balanced_class_weights_make_the_minority_class_answered() -> None:
    """7:1 data where the best answer is known: 20 "mixed" texts, each 6 times as class 0 and twice as class 1, and
    20 "plain" texts, 8 times as class 0. The plain mean loss is lowest answering 0 for a mixed text (6 against 2);
    balanced weights (class 1 weighs 7x class 0: 280 rows against 40) make 1 the better answer (2 x 7 against 6).
    Labels set on tests/data's texts, not NSMC's own: on real reviews `tiny` either answers 0 everywhere or, given
    the epochs to learn, memorises its rows, and neither shows what the weights change."""
    texts = [text for text, _ in sample_rows("nsmc/train.tsv", 20)]
    mixed, plain = texts[:20], texts[20:]
    rows = [(t, 0) for t in mixed for _ in range(6)] + [(t, 1) for t in mixed for _ in range(2)]
    rows += [(t, 0) for t in plain for _ in range(8)]
    splits = Splits([t for t, _ in rows], [y for _, y in rows], mixed + plain, [1] * 20 + [0] * 20, ["0", "1"], "file")

    def answered_1(class_weights: str) -> int:
        done = list(train(quick(epochs=4, dropout=0.1, class_weights=class_weights), splits))[-1]
        assert done.type == "done", done
        return sum(row[1] for row in done.test["confusion_matrix"])

    assert balanced_class_weights(splits.train_labels, 2) == [320 / 560, 320 / 80]
    none, balanced = answered_1("none"), answered_1("balanced")
    assert none == 0  # the majority everywhere, as the plain loss asks
    assert balanced >= 10, balanced  # most mixed texts (19 of 20 at this seed)


def test_the_card_records_the_class_weights() -> None:
    """#25: the card says whether the loss was weighted (its hyperparameters are the whole config)."""
    splits = Splits(["a", "b"], [0, 1], ["c"], [1], ["neg", "pos"], "file")
    done = DoneEvent(state="done", kept_epoch=None, test=None, elapsed=1.0, run=None)
    card = train_module.model_card(quick(class_weights="balanced"), splits, done, "fp32", 1)
    assert '"class_weights": "balanced"' in card
