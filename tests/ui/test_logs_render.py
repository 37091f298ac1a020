"""ui/logs_render.py: what the Logs tab draws from what it has read, without a server."""

from __future__ import annotations

import re

import pytest
from conftest import KEPT_MISTAKES, KEPT_TEST, TEST, early_stopped_run, epoch, evaluation, start, step

from kobert_demo.app.ui.logs_render import (
    MAX_LOG_LINES,
    MAX_PLOT_POINTS,
    Follow,
    confusion_html,
    epoch_frame,
    kept_text,
    metrics_text,
    mistake_line,
    mistake_of,
    mistakes_frame,
    notices_text,
    per_class_frame,
    progress_html,
    run_label,
    status_text,
    step_frame,
)
from kobert_demo.basics.config import TrainConfig
from kobert_demo.basics.errors import UserFacingError
from kobert_demo.basics.events import DoneEvent, ErrorEvent, NoticeEvent, params_to_json
from kobert_demo.basics.runs import STATES, Run, RunStatus

HANGUL = re.compile(r"[\uac00-\ud7a3]")
# Every reason a run's status is stored with (runs.py, jobs.py, train.py), with parameters as they store them.
REASONS = [
    UserFacingError("reason_stopped_queued"),
    UserFacingError("reason_stopped_no_model"),
    UserFacingError("reason_process_gone"),
    UserFacingError("reason_process_gone_kept"),
    UserFacingError("job_time_limit", limit="0:04"),
    UserFacingError("job_server_gone"),
    UserFacingError("job_orphan_stopped"),
    UserFacingError("process_killed"),
    UserFacingError("process_exit", code=1),
    UserFacingError("gpu_out_of_memory"),
    UserFacingError("loss_not_finite_at", value="nan", epoch=1, batch=3),
    UserFacingError("disk_full"),
    UserFacingError("train_unexpected", kind="RuntimeError", detail="boom"),
]


def followed(*events) -> Follow:
    follow = Follow(run="run")
    follow.absorb(list(events))
    return follow


def english_words(text: str) -> list[str]:
    """Latin words in text, leaving out what stays as it is in Korean: the run's and model's names, parameters
    (an exception's name and words), env vars, flags and fp32."""
    kept = {"run", "tiny", "fp", "nan", "out", "RuntimeError", "boom"}
    return [word for word in re.findall(r"[A-Za-z]{2,}", text) if word not in kept and not word.isupper()]


def test_follow_keeps_what_it_read_and_the_logs_last_lines() -> None:
    steps = [step(step=n, batch=n, logged=True) for n in range(1, MAX_LOG_LINES + 11)]
    follow = followed(start(), *steps, epoch(epoch=1), DoneEvent("done", 1, TEST, 9.0, None))
    assert follow.start == start() and follow.last_step == steps[-1] and follow.kept.epoch == 1
    assert [s for s, _, _ in follow.steps] == [s.step for s in steps]
    assert len(follow.lines) == MAX_LOG_LINES and follow.lines[-1] == "done in 9 s, kept epoch 1"
    assert follow.lines[-3:-1] == ["epoch 1 train acc 0.7000", "epoch 1 test acc 0.8125 macro-F1 0.8000"]
    assert follow.ended and not followed(start()).ended
    assert followed(ErrorEvent.of(UserFacingError("disk_full"))).ended


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("reason", [None, *REASONS], ids=lambda r: r.key if r else "none")
def test_a_korean_visitor_reads_every_state_and_reason_in_korean(state: str, reason: UserFacingError | None) -> None:
    status = RunStatus(state, reason.key if reason else None, params_to_json(reason.params) if reason else {})
    shown = status_text("run", "tiny", status, Follow(run="run"), True, "ko", (1, 65.0) if state == "queued" else None)
    assert not english_words(shown), shown
    assert HANGUL.search(progress_html(Follow(run="run"), status, "ko"))
    if reason and state != "done":
        assert reason.text("ko") in shown and reason.text("en") in status_text(
            "run", "tiny", status, Follow(run="run"), True, "en"
        )


def test_the_status_line_says_state_queue_reason_and_ownership() -> None:
    queued = status_text("r1", "tiny", RunStatus("queued"), Follow(run="r1"), True, "en", (2, 125.0))
    assert "**state: queued**" in queued and "2 job(s) ahead, about 2:05 to wait" in queued
    assert "read-only" not in queued
    stopped = RunStatus("stopped", "reason_stopped_queued")
    shown = status_text("r1", "tiny", stopped, Follow(run="r1"), False, "ko")
    assert "**상태: 중지됨**" in shown and "⚠️ 시작하기 전에 중지되었습니다" in shown and "읽기 전용" in shown
    done = RunStatus("done", "reason_process_gone")
    assert "⚠️" not in status_text("r1", "tiny", done, Follow(run="r1"), True, "en")  # a finished run needs none
    # The log's error is the freshest word on a failure; in Korean too.
    failure = ErrorEvent.of(UserFacingError("gpu_out_of_memory"))
    shown = status_text("r1", "tiny", RunStatus("failed"), followed(failure), True, "ko")
    assert failure.text("ko") in shown and "GPU 메모리" in shown


def test_markup_in_a_model_name_is_shown_as_text() -> None:
    model = "[click](http://evil.example) <img src=x onerror=alert(1)> **bold**"
    status = status_text("r1", model, RunStatus("queued"), Follow(run="r1"), False, "en")
    assert "**bold**" not in status and not re.search(r"(?<!\\)[<\]]", status)
    assert r"\[click\](http\://evil.example)" in status and r"\<img" in status


def test_a_failed_run_shows_its_stored_reason_in_the_visitors_language(small_splits, tmp_path) -> None:
    """A backbone error during training reaches the Logs tab in Korean; English visitors read the English."""
    from kobert_demo.engine.train import train

    list(train(TrainConfig(model="nonsense", epochs=1), small_splits, tmp_path / "run"))
    run = Run(tmp_path / "run")
    status = run.status()
    follow = followed(*run.events())
    korean = status_text(run.name, "nonsense", status, follow, True, "ko")
    assert status.reason("ko") in korean and "'nonsense'" in korean and "is neither" not in korean
    english = status_text(run.name, "nonsense", status, follow, True, "en")
    assert status.reason("en") in english and status.reason("en").startswith("model 'nonsense' is neither a folder")


def test_progress_shows_the_last_step_and_no_eta_once_finished() -> None:
    follow = followed(start(), step(epoch=2, step=12, total_steps=16, elapsed=30.0, eta=10.0, sentences_per_s=64.4))
    running = progress_html(follow, RunStatus("running"), "en")
    assert 'aria-valuenow="75"' in running and "width:75.0%" in running
    assert "epoch 2/2 · step 12/16 · elapsed 0:30 · ETA 0:10 · 64 sentences/s" in running
    assert "ETA 0:00" in progress_html(follow, RunStatus("stopped"), "en")
    assert 'aria-valuenow="100"' in progress_html(follow, RunStatus("done"), "en")
    assert "준비하는 중" in progress_html(Follow(run="r"), RunStatus("running"), "ko")
    assert "대기 중" in progress_html(Follow(run="r"), RunStatus("queued"), "ko")


def test_the_step_plot_is_thinned_and_keeps_the_last_step() -> None:
    follow = followed(*(step(step=n, loss=1 / n, train_acc=n / 5000) for n in range(1, 5001)))
    frame = step_frame(follow, "ko")
    per_series = frame[frame["series"] == "손실"]
    assert len(per_series) == MAX_PLOT_POINTS + 1 and per_series["step"].iloc[-1] == 5000
    assert set(frame["series"]) == {"손실", "학습 정확도"}
    assert frame[frame["series"] == "학습 정확도"]["value"].iloc[-1] == 1.0
    assert step_frame(Follow(run="r"), "en") is None  # nothing to draw yet


def test_epoch_bars_sort_by_epoch_beyond_nine() -> None:
    follow = followed(*(epoch(epoch=n, train_acc=n / 20) for n in range(1, 12)))
    frame = epoch_frame(follow, "en")
    assert sorted(frame["bar"])[:4] == ["01 test", "01 train", "02 test", "02 train"]
    assert sorted(frame["bar"])[-1] == "11 train"
    assert epoch_frame(Follow(run="r"), "en") is None


def test_results_of_the_kept_epoch() -> None:
    follow = followed(epoch(epoch=1, test={**TEST, "accuracy": 0.9}), epoch(epoch=2))
    assert metrics_text(follow, "en") == (
        "**Accuracy 0.8125** · **macro-F1 0.8000** · model of epoch 2/2 · 16 test sentences"
    )
    table = per_class_frame(TEST, "ko")
    assert list(table.columns) == ["클래스", "정밀도", "재현율", "F1", "문장 수"]
    assert table.iloc[0].tolist() == ["긍정", 0.9, 0.7, 0.79, 8]
    mistakes = mistakes_frame(follow.kept, "en")
    assert mistakes.iloc[0].tolist() == ["지루한 영화", "부정", "긍정", 0.91]


def test_only_a_row_of_the_kept_epochs_mistakes_is_one() -> None:
    wrong = [
        {"text": f"문장 {i}", "label": "부정", "predicted": "긍정", "confidence": 0.9 - i / 100} for i in range(25)
    ]
    follow = followed(epoch(epoch=1, mistakes=[{**wrong[0], "text": "지난 에폭"}]), epoch(epoch=2, mistakes=wrong))
    table = mistakes_frame(follow.kept, "en")
    assert mistake_of(follow.kept, table.iloc[3].tolist()) == wrong[3]
    assert mistake_of(follow.kept, ["문장 3"]) == wrong[3]
    assert mistake_of(follow.kept, ["문장 22"]) is None  # kept, but not in the table
    assert mistake_of(follow.kept, ["지난 에폭"]) is None  # an earlier epoch's
    assert mistake_of(follow.kept, ["아무 문장"]) is None and mistake_of(follow.kept, None) is None
    assert mistake_of(None, ["문장 3"]) is None


def test_a_mistakes_line_names_both_classes_in_the_visitors_language() -> None:
    mistake = {"text": "지루한 영화", "label": "부정", "predicted": "<b>긍정</b>", "confidence": 0.91}
    english, korean = mistake_line(mistake, 0.9134, "en"), mistake_line(mistake, 0.9134, "ko")
    assert english.startswith("True class **부정**, predicted **\\<b\\>긍정\\</b\\>** (probability 91.3%)")
    assert korean.startswith("정답 **부정**, 예측 **\\<b\\>긍정\\</b\\>** (확률 91.3%)")
    assert not english_words(korean)


def test_the_confusion_matrix_shades_by_row_and_escapes_names() -> None:
    test = {**TEST, "labels": ["<b>x</b>", "y"], "confusion_matrix": [[3, 1], [0, 4]]}
    shown = confusion_html(test, "en")
    assert "<b>x</b>" not in shown and "&lt;b&gt;x&lt;/b&gt;" in shown
    assert "--share:0.750" in shown and "--share:0.250" in shown and "--share:1.000" in shown
    assert shown.count("kd-hit") == 2 and shown.count("kd-miss") == 2


def test_run_labels_show_accuracy_only_when_given() -> None:
    config = {"created": 0, "model": "skt/kobert-base-v1", "train_file": "reviews.tsv"}
    label = run_label("20250101-000000-abcdefghijkl", config, "done", 0.8125, "ko")
    assert label.endswith(" · kobert-base-v1 · reviews.tsv · 완료 · 정확도 0.812 · ghijkl")
    assert "acc" not in label
    assert run_label("x-123456", config, "running", None, "en").endswith(" · training · 123456")


# --- validation, the kept model, notices (#25) -------------------------------------------------------------------
def test_the_step_plot_draws_validation_beside_training_and_marks_the_kept_step() -> None:
    frame = step_frame(followed(*early_stopped_run()), "en")
    series = {name: part for name, part in frame.groupby("series")}
    assert set(series) == {"loss", "train accuracy", "validation loss", "validation accuracy", "kept model"}
    assert series["validation accuracy"]["step"].tolist() == [8, 16, 24]
    assert series["validation accuracy"]["value"].tolist() == [0.7, 0.81, 0.78]
    assert series["validation loss"]["value"].tolist() == [0.62, 0.48, 0.55]
    kept = series["kept model"]  # a vertical line at the kept step, across everything drawn
    assert kept["step"].tolist() == [16, 16] and kept["value"].min() == 0.0 and kept["value"].max() >= 1.0
    korean = step_frame(followed(*early_stopped_run()), "ko")
    assert {"검증 손실", "검증 정확도", "남긴 모델"} <= set(korean["series"])


def test_a_run_without_validation_draws_no_validation_and_no_marker() -> None:
    frame = step_frame(followed(start(), step(step=1), step(step=2)), "en")
    assert set(frame["series"]) == {"loss", "train accuracy"}


def test_epoch_bars_show_validation_and_star_the_kept_epoch() -> None:
    frame = epoch_frame(followed(*early_stopped_run()), "ko")
    assert sorted(frame["bar"]) == [
        "1 검증", "1 테스트", "1 학습", "2 검증 ★", "2 테스트 ★", "2 학습 ★", "3 검증", "3 테스트", "3 학습",
    ]  # fmt: skip
    assert frame[frame["bar"] == "2 검증 ★"]["accuracy"].item() == 0.81


def test_the_kept_line_names_the_epoch_and_its_validation_value() -> None:
    follow = followed(*early_stopped_run())
    assert kept_text(follow, "en").startswith("**Kept model: epoch 2** (validation accuracy 0.8100)")
    korean = kept_text(follow, "ko")
    assert korean.startswith("**남긴 모델: 2 에폭** (검증 정확도 0.8100)") and "참고용" in korean
    assert kept_text(followed(*early_stopped_run(done=False)), "en").startswith("**Kept model: epoch 2** ")
    assert kept_text(followed(epoch(epoch=1)), "en") == ""  # a run from before validation


def test_a_model_kept_mid_epoch_is_named_by_its_step() -> None:
    best = (1, 4, 0.75)
    follow = followed(start(), *(step(step=n) for n in range(1, 5)), evaluation(1, 4, 0.75, best))
    assert kept_text(follow, "en").startswith("**Kept model: epoch 1, step 4** (validation accuracy 0.7500)")
    assert "1 에폭 4 스텝" in kept_text(follow, "ko")


def test_the_early_stop_is_said_in_the_visitors_language() -> None:
    follow = followed(*early_stopped_run())
    korean = notices_text(follow, "ko")
    assert korean.startswith("ℹ️ 조기 종료") and "2 에폭" in korean and HANGUL.search(korean)
    assert notices_text(follow, "en").startswith("ℹ️ Stopped early")
    # a stop reason without its notice still says why the run ended
    bare = followed(*[e for e in early_stopped_run() if not isinstance(e, NoticeEvent)])
    assert notices_text(bare, "ko") == "ℹ️ 조기 종료: 검증 성능이 더 나아지지 않아 학습을 멈췄습니다."
    assert notices_text(followed(*early_stopped_run(done=False)), "en") == ""


def test_a_done_run_shows_the_kept_models_final_test_figures() -> None:
    follow = followed(*early_stopped_run())
    assert (follow.kept.epoch, follow.kept.test, follow.kept.mistakes) == (2, KEPT_TEST, KEPT_MISTAKES)
    assert metrics_text(follow, "en").startswith("**Accuracy 0.8750** · **macro-F1 0.8700** · model of epoch 2/3")
    assert mistakes_frame(follow.kept, "en").iloc[0, 0] == "남긴 모델의 실수"
    assert mistake_of(follow.kept, ["남긴 모델의 실수"]) == KEPT_MISTAKES[0]


def test_while_training_the_results_are_the_best_validated_epochs() -> None:
    follow = followed(*early_stopped_run(done=False))
    assert follow.kept.epoch == 2 and follow.kept.test["accuracy"] == 0.62  # epoch 2's, not the last (3)


def test_an_old_run_falls_back_to_its_last_epoch() -> None:
    """A run from before validation: its DoneEvent names no metric, and its last epoch is the kept one."""
    follow = followed(
        epoch(epoch=1), epoch(epoch=2, test={**TEST, "accuracy": 0.7}), DoneEvent("done", 2, TEST, 3.0, None)
    )
    assert follow.kept.epoch == 2 and follow.kept.test["accuracy"] == 0.7 and follow.kept.step is None


def test_a_resumed_run_draws_each_step_once_and_forgets_its_earlier_end() -> None:
    """Resumed from its checkpoint at step 8: it logs a new start and does steps 9-10 again."""
    first = [start(), *(step(step=n) for n in range(1, 11)), evaluation(1, 8, 0.7, (1, 8, 0.7))]
    first.append(DoneEvent("stopped", 1, TEST, 5.0, None, kept_step=8, metric="accuracy", best_value=0.7))
    follow = followed(*first)
    assert follow.done is not None
    follow.absorb([start(), NoticeEvent("notice_resumed", {"epoch": 1, "step": 8})])
    follow.absorb([step(step=n, loss=0.1) for n in range(9, 13)] + [evaluation(1, 8, 0.72, (1, 8, 0.72))])
    assert follow.done is None and [s for s, _, _ in follow.steps] == list(range(1, 13))
    assert follow.steps[8][1] == 0.1 and len(follow.evals) == 1 and follow.evals[0].value == 0.72
    assert "8 스텝의 체크포인트에서 이어서" in notices_text(follow, "ko")
