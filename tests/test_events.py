"""kobert_demo.basics.events: events to JSON and back, stored failures in any language, the run summary, the tutorial's
log lines."""

from __future__ import annotations

import json
import re

import pytest
from conftest import TEST, epoch, start, step

from kobert_demo.basics.data import DataError
from kobert_demo.basics.errors import BackboneError, UserFacingError
from kobert_demo.basics.events import (
    DoneEvent,
    ErrorEvent,
    EvalEvent,
    EventError,
    NoticeEvent,
    Summary,
    event_from_json,
    params_from_json,
    params_to_json,
    tutorial_line,
)
from kobert_demo.basics.messages import Term

HANGUL = re.compile(r"[\uac00-\ud7a3]")
EVENTS = [
    start(),
    step(),
    epoch(),
    DoneEvent("done", 1, TEST, 8.2, "runs/x"),
    DoneEvent("done", 2, TEST, 8.2, "runs/x", 40, "macro_f1", 0.71, "early_stopping", TEST, [{"text": "a"}]),
    EvalEvent(2, 40, {**TEST, "loss": 0.5}, "accuracy", 0.75, True, 2, 40, 0.75, 8.0),
    NoticeEvent("notice_early_stopped", {"patience": 2, "metric": "accuracy", "best_epoch": 1, "best_value": 0.8}),
    ErrorEvent.of(DataError("data_no_rows", name="a.tsv")),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda event: event.type)
def test_every_event_comes_back_from_a_log_line(event) -> None:
    line = json.dumps(event.to_json(), ensure_ascii=False)  # what Run.append writes
    back = event_from_json(json.loads(line))
    assert type(back) is type(event) and back == event


def test_log_lines_keep_the_fields_api_clients_read() -> None:
    """The /logs endpoint returns these dicts: the fields written before events became classes are all there."""
    assert list(start().to_json()) == [
        "model", "device", "precision", "processes", "train_rows", "test_rows", "labels", "steps_per_epoch",
        "total_steps", "parameters", "forward", "valid_rows", "type",
    ]  # fmt: skip
    assert step().to_json()["type"] == "step" and step(eta=3.0).to_json()["eta"] == 3.0
    assert {"epoch", "train_loss", "train_acc", "test", "elapsed", "mistakes", "type"} <= set(epoch().to_json())
    assert {"state", "kept_epoch", "test", "elapsed", "run", "type"} <= set(
        DoneEvent("stopped", None, None, 1.0, None).to_json()
    )
    error = ErrorEvent.of(DataError("data_no_rows", name="a.tsv")).to_json()
    assert error["type"] == "error" and error["message"] == "a.tsv has a header but no data rows."


def test_a_stored_failure_reads_in_both_languages_with_nested_errors_and_terms() -> None:
    from kobert_demo.serving.export import ModelZipError

    inner = BackboneError("model_no_head", folder="/m", keys="classifier.weight")
    failure = ModelZipError("zip_bad_model", name="m.zip", error=inner)
    stored = json.loads(json.dumps(ErrorEvent.of(failure).to_json()))
    back = event_from_json(stored)
    assert back.text("en") == str(failure) and back.message == str(failure)
    assert back.text("ko") == failure.text("ko") and HANGUL.search(back.text("ko"))
    assert back.error.key == "zip_bad_model" and back.error.params["error"].key == "model_no_head"
    binary = ErrorEvent.of(DataError("data_binary", name="p.csv", kind=Term("a PNG image")))
    assert "PNG 이미지" in event_from_json(json.loads(json.dumps(binary.to_json()))).text("ko")


def test_parameters_become_json_safe() -> None:
    from pathlib import Path

    params = {"path": Path("/runs/x"), "value": float("nan"), "n": 3, "share": 0.5, "none": None}
    stored = json.loads(json.dumps(params_to_json(params), allow_nan=False))  # strict JSON: no NaN
    assert stored == {"path": "/runs/x", "value": "nan", "n": 3, "share": 0.5, "none": None}
    assert params_from_json(stored) == stored
    error = UserFacingError("loss_not_finite", value=float("inf"))
    assert ErrorEvent.of(error).message == "the loss became inf"


def test_unknown_or_incomplete_lines_are_clear_errors() -> None:
    with pytest.raises(EventError, match="unknown type 'checkpoint'") as caught:
        event_from_json({"type": "checkpoint", "step": 3})
    assert HANGUL.search(caught.value.text("ko"))
    with pytest.raises(EventError, match="unknown type 'None'"):
        event_from_json({"step": 3})
    with pytest.raises(EventError, match="a 'step' event without .*eta"):
        event_from_json({k: v for k, v in step().to_json().items() if k != "eta"})
    newer = {**step().to_json(), "grad_norm": 1.5}  # a field a later version adds is skipped, not fatal
    assert event_from_json(newer) == step()


def test_an_error_line_from_before_keys_still_reads() -> None:
    old = {"message": "the loss became nan at epoch 1 batch 3: lower the learning rate or use fp32.", "type": "error"}
    back = event_from_json(old)
    assert back.message == old["message"]
    assert old["message"] in back.text("ko") and HANGUL.search(back.text("ko"))


def test_summary_keeps_the_last_step_the_kept_epoch_and_the_end() -> None:
    summary = Summary()
    assert (summary.start, summary.last_step, summary.kept_epoch, summary.test, summary.state) == (None,) * 5
    events = [start(), step(step=1), step(step=2, eta=3.0), epoch(epoch=1, test={**TEST, "accuracy": 0.9})]
    events += [step(step=3, epoch=2), epoch(epoch=2), step(step=4, epoch=3), DoneEvent("stopped", 2, TEST, 9.5, None)]
    summary = Summary.of(events)
    assert summary.start == start() and summary.last_step.step == 4
    assert (summary.kept_epoch, summary.test, summary.state, summary.elapsed) == (2, TEST, "stopped", 9.5)
    assert Summary.from_json(json.loads(json.dumps(summary.to_json()))) == summary
    failed = Summary.of([start(), step(), ErrorEvent.of(UserFacingError("gpu_out_of_memory"))])
    assert (failed.state, failed.kept_epoch, failed.test) == ("failed", None, None)


def test_tutorial_lines_are_the_tutorials_format() -> None:
    """The tutorial printed `epoch 1 batch id 1 loss 0.6931 train acc 0.5`-like lines; ours keep that shape."""
    assert tutorial_line(step(epoch=2, batch=11, loss=0.69314, train_acc=0.5)) == (
        "epoch 2 batch id 11 loss 0.693 train acc 0.500"
    )
    assert tutorial_line(step(logged=False)) is None
    assert tutorial_line(epoch(epoch=3, train_acc=0.71234)).splitlines() == [
        "epoch 3 train acc 0.7123",
        "epoch 3 test acc 0.8125 macro-F1 0.8000",
    ]
    assert tutorial_line(DoneEvent("done", 3, TEST, 61.6, None)) == "done in 62 s, kept epoch 3"
    assert tutorial_line(DoneEvent("stopped", None, None, 2.0, None)) == (
        "stopped in 2 s, no completed epoch, no model kept"
    )
    line = tutorial_line(start(processes=2, parameters=92_186_880))
    assert line == (
        "model tiny | cpu fp32 | 2 process(es) | train 120 test 16 | classes 2 | 92.19M parameters | "
        "padding-free forward"
    )
    failure = ErrorEvent.of(UserFacingError("gpu_out_of_memory"))
    assert tutorial_line(failure) == f"error: {failure.message}"
    assert not any(HANGUL.search(tutorial_line(event)) for event in EVENTS)  # English on purpose


def evaluation(epoch: int, step: int, accuracy: float, improved: bool, best: tuple[int, int, float]) -> EvalEvent:
    valid = {**TEST, "accuracy": accuracy, "loss": round(1 - accuracy, 3)}
    return EvalEvent(epoch, step, valid, "accuracy", accuracy, improved, *best, float(step))


def test_summary_keeps_the_kept_model_chosen_by_validation() -> None:
    """The kept epoch and step follow the best evaluation, the test figures are the kept weights' (an epoch's when it
    was kept at that epoch's end, the end's otherwise), and the curve and notices are there for a refresh."""
    notice = NoticeEvent(
        "notice_early_stopped", {"patience": 1, "metric": "accuracy", "best_epoch": 1, "best_value": 0.7}
    )
    first_test, second_test = {**TEST, "accuracy": 0.6}, {**TEST, "accuracy": 0.99}
    events = [start(valid_rows=20), step(step=1), step(step=2), evaluation(1, 2, 0.7, True, (1, 2, 0.7))]
    events += [epoch(epoch=1, test=first_test), step(step=3, epoch=2), step(step=4, epoch=2)]
    summary = Summary.of(events)
    assert (summary.kept_epoch, summary.kept_step, summary.test, summary.best_value) == (1, 2, first_test, 0.7)
    events += [evaluation(2, 4, 0.65, False, (1, 2, 0.7)), epoch(epoch=2, test=second_test)]
    summary = Summary.of(events)  # a better test accuracy of a later epoch chooses nothing
    assert (summary.kept_epoch, summary.kept_step, summary.test, summary.metric) == (1, 2, first_test, "accuracy")
    assert summary.evaluations == [[1, 2, 0.7, 0.3], [2, 4, 0.65, 0.35]]
    kept_test = {**TEST, "accuracy": 0.61}
    events += [notice, DoneEvent("done", 1, kept_test, 9.0, None, 2, "accuracy", 0.7, "early_stopping", TEST)]
    summary = Summary.of(events)
    assert (summary.state, summary.stop_reason, summary.test, summary.notices) == (
        "done", "early_stopping", kept_test, [notice]
    )  # fmt: skip
    assert Summary.from_json(json.loads(json.dumps(summary.to_json()))) == summary
    assert {"start", "last_step", "kept_epoch", "test", "state", "elapsed"} <= set(summary.to_json())
    # Kept between two epoch ends (eval_steps): the epoch's test figures are of later weights, so none yet
    mid = [start(valid_rows=20), step(step=1), evaluation(1, 1, 0.7, True, (1, 1, 0.7)), step(step=2)]
    summary = Summary.of([*mid, epoch(epoch=1, test=second_test)])
    assert (summary.kept_epoch, summary.kept_step, summary.test) == (1, 1, None)


def test_tutorial_lines_of_validation() -> None:
    kept = evaluation(2, 40, 0.75, True, (2, 40, 0.75))
    assert tutorial_line(kept) == "epoch 2 step 40 valid acc 0.7500 macro-F1 0.8000 loss 0.2500 (best so far: kept)"
    assert tutorial_line(epoch(epoch=2, valid=kept.valid)).splitlines()[1] == (
        "epoch 2 test acc 0.8125 macro-F1 0.8000 (not used to choose the model)"
    )
    done = DoneEvent("done", 2, TEST, 9.4, None, 40, "macro_f1", 0.71234, "early_stopping", TEST)
    assert tutorial_line(done) == (
        "done in 9 s, kept epoch 2 step 40 (validation macro_f1 0.7123), stopped early, its test acc 0.8125"
    )
    assert "train 120 valid 14 test 16 |" in tutorial_line(start(valid_rows=14))
