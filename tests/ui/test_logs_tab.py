"""ui/logs_tab.py: polling a run folder and the tab's handlers, read by component, without a server."""

from __future__ import annotations

import shutil
import typing
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pytest
from conftest import ALICE, BOB, TEST, early_stopped_run, epoch, start, step
from gradio.utils import get_type_hints

from kobert_demo.app.queue import JobQueue, owner_id
from kobert_demo.app.ui import logs_tab, render
from kobert_demo.app.ui.logs_tab import Follow, poll
from kobert_demo.app.ui.shared import highlighted_words
from kobert_demo.app.ui.state import AppState
from kobert_demo.basics.config import TrainConfig
from kobert_demo.basics.events import DoneEvent
from kobert_demo.basics.runs import POSITION_FILE, Run

HANDLERS = ("on_tick", "on_select", "on_focus", "on_stop", "on_resume", "on_export", "on_delete", "on_mistake")


@pytest.fixture
def app(tmp_path: Path) -> SimpleNamespace:
    """The Logs tab's components (built, never served) over a runs home with a queue that is not started."""
    home = tmp_path / "runs"
    state = AppState(home, JobQueue(home), work=tmp_path / "work", private=tmp_path / "private")
    with gr.Blocks() as blocks:
        tab = logs_tab.build(state, gr.BrowserState())
    handlers = {block.fn.__name__: block.fn for block in blocks.fns.values() if block.fn}
    return SimpleNamespace(home=home, state=state, tab=tab, handlers=handlers)


@pytest.fixture
def toasts(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    shown: list[tuple[str, str]] = []
    monkeypatch.setattr(render.gr, "Warning", lambda text: shown.append(("warning", text)))
    monkeypatch.setattr(render.gr, "Info", lambda text: shown.append(("info", text)))
    return shown


def alice_run(home: Path, name: str = "finished", events: tuple = (), state: str = "done", model: bool = True) -> Run:
    """A run of Alice's that logged events and ended in state (with a model file unless model is False)."""
    Run.queue(home / name, TrainConfig(model="tiny"), {"owner": owner_id(ALICE), "train_file": "train.tsv"})
    run = Run.create(home / name, TrainConfig(model="tiny"), ["긍정", "부정"], {})
    for event in events:
        run.append(event)
    if model:
        run.model_dir.mkdir()
        (run.model_dir / "model.safetensors").write_bytes(b"weights")
    if state != "running":
        run.set_status(state)
    return run


def a_whole_run() -> tuple:
    steps = [step(epoch=e, batch=b, step=(e - 1) * 8 + b, logged=b in (1, 5)) for e in (1, 2) for b in range(1, 9)]
    return (
        start(), *steps[:8], epoch(epoch=1), *steps[8:], epoch(epoch=2), DoneEvent("done", 2, TEST, 12.0, None)
    )  # fmt: skip


def request(lang: str) -> gr.Request:
    return gr.Request(headers={"accept-language": lang}, query_params={})


def test_a_finished_run_is_redrawn_at_once(app: SimpleNamespace) -> None:
    """A fresh page (reload, second tab) reattaches: everything logged so far comes back in one poll."""
    tab = app.tab
    run = alice_run(app.home, events=a_whole_run())
    out = poll(app.state, tab, Follow(run=run.name), ALICE, "en", refresh=True)
    follow = out[tab.follow]
    assert "**state: done**" in out[tab.status] and 'aria-valuenow="100"' in out[tab.progress]
    assert set(out[tab.step_plot]["series"]) == {"loss", "train accuracy"} and out[tab.step_plot]["step"].max() == 16
    assert sorted(out[tab.epoch_plot]["bar"]) == ["1 test", "1 train", "2 test", "2 train"]
    log = out[tab.log].splitlines()
    assert log[1] == "epoch 1 batch id 1 loss 0.693 train acc 0.500" and log[-1] == "done in 12 s, kept epoch 2"
    assert out[tab.results]["visible"] is True and "Accuracy 0.8125" in out[tab.metrics]
    assert list(out[tab.per_class].columns) == ["class", "precision", "recall", "F1", "sentences"]
    assert "kd-cm" in out[tab.confusion] and len(out[tab.mistakes]) == 1
    assert out[tab.stop]["interactive"] is False and out[tab.export]["interactive"] is True
    assert out[tab.delete]["interactive"] is True and out[tab.timer].active is False  # nothing more to come
    again = poll(app.state, tab, follow, ALICE, "en")
    assert set(again) <= {tab.follow, tab.timer}  # nothing new: nothing redrawn


def test_a_shared_run_is_read_only_and_korean(app: SimpleNamespace) -> None:
    tab = app.tab
    run = alice_run(app.home, events=a_whole_run())
    out = poll(app.state, tab, Follow(run=run.name), BOB, "ko", refresh=True)
    assert "읽기 전용" in out[tab.status] and "**상태: 완료**" in out[tab.status]
    assert all(out[button]["interactive"] is False for button in (tab.stop, tab.export, tab.delete))
    assert "정확도 0.8125" in out[tab.metrics] and list(out[tab.per_class].columns)[0] == "클래스"
    assert out[tab.run_select]["choices"][0][0].startswith("🔗 ")  # Bob's list holds only the shared run


def test_a_running_run_is_drawn_as_it_grows(app: SimpleNamespace) -> None:
    tab = app.tab
    run = alice_run(app.home, events=(start(),), state="running", model=False)
    out = poll(app.state, tab, Follow(run=run.name), ALICE, "en", refresh=True)
    follow = out[tab.follow]
    assert "**state: training**" in out[tab.status] and out[tab.timer].active is True
    assert out[tab.stop]["interactive"] is True and out[tab.export]["interactive"] is False
    assert out[tab.results]["visible"] is False and out[tab.step_plot] is None

    run.append(step(step=1))
    out = poll(app.state, tab, follow, ALICE, "en")
    assert set(out) == {tab.follow, tab.progress, tab.step_plot, tab.log}  # only what the step changed
    assert "epoch 1 batch id 1" in out[tab.log]

    run.append(epoch(epoch=1))
    out = poll(app.state, tab, follow, ALICE, "en")
    assert out[tab.results]["visible"] is True and "model of epoch 1/1" in out[tab.metrics]

    run.append(DoneEvent("stopped", 1, TEST, 3.0, None))
    run.set_status("stopped")
    out = poll(app.state, tab, follow, ALICE, "en")
    assert "**state: stopped**" in out[tab.status] and out[tab.timer].active is False
    assert out[tab.export]["interactive"] is False  # no model file in this folder
    assert out[tab.log].endswith("stopped in 3 s, kept epoch 1")


def test_a_queued_run_shows_its_place_in_the_visitors_language(app: SimpleNamespace) -> None:
    ahead = Run.queue(app.home / "a-first", TrainConfig(model="tiny"), {"owner": owner_id(BOB)})
    mine = Run.queue(app.home / "b-second", TrainConfig(model="tiny"), {"owner": owner_id(ALICE)})
    assert app.state.queue.position(ahead) == 1
    out = poll(app.state, app.tab, Follow(run=mine.name), ALICE, "ko", refresh=True)
    assert "**상태: 대기 중**" in out[app.tab.status] and "앞에 작업 1개" in out[app.tab.status]
    assert out[app.tab.stop]["interactive"] is True


def test_nothing_followed_or_a_run_gone(app: SimpleNamespace) -> None:
    tab = app.tab
    out = poll(app.state, tab, None, ALICE, "ko", refresh=True)
    assert out[tab.status].startswith("아직 따라갈 실행이 없습니다") and out[tab.timer].active is False
    assert out[tab.results]["visible"] is False and out[tab.export]["interactive"] is False
    assert set(poll(app.state, tab, Follow(), ALICE, "ko")) == {tab.follow, tab.timer}
    gone = poll(app.state, tab, Follow(run="deleted-run"), ALICE, "en", refresh=True)
    assert gone[tab.status] == "⚠️ There is no run 'deleted-run'." and gone[tab.timer].active is False
    assert "실행이 없습니다" in poll(app.state, tab, Follow(run="deleted-run"), ALICE, "ko")[tab.status]


def test_every_handler_gets_the_visitors_request(app: SimpleNamespace) -> None:
    """Gradio passes gr.Request by the type hint; the error decorator must not hide it."""
    for name in HANDLERS:
        hints = get_type_hints(app.handlers[name])
        assert hints.get("request") is gr.Request, name
        assert typing.get_type_hints(app.handlers[name])["request"] is gr.Request


def test_delete_is_the_owners_and_says_so(app: SimpleNamespace, toasts: list) -> None:
    tab, on_delete = app.tab, app.handlers["on_delete"]
    run = alice_run(app.home, events=a_whole_run())
    refused = on_delete(Follow(run=run.name), BOB, request("ko"))
    assert set(refused) == {tab.confirm_row} and refused[tab.confirm_row]["visible"] is False
    assert toasts[-1][0] == "warning" and "다른 방문자" in toasts[-1][1] and run.path.is_dir()
    deleted = on_delete(Follow(run=run.name), ALICE, request("en"))
    assert deleted[tab.run_select]["value"] is None and deleted[tab.run_select]["choices"] == []
    assert toasts[-1] == ("info", f"Run {run.name} deleted.") and not run.path.exists()


def test_stop_and_export_toast_in_the_visitors_language(app: SimpleNamespace, toasts: list) -> None:
    tab = app.tab
    queued = Run.queue(app.home / "waiting", TrainConfig(model="tiny"), {"owner": owner_id(ALICE)})
    assert app.handlers["on_stop"](Follow(run=queued.name), ALICE, request("ko")) is None
    assert toasts[-1][0] == "info" and "중지를 요청했습니다" in toasts[-1][1]
    assert queued.status().state == "stopped"
    refused = app.handlers["on_export"](Follow(run=queued.name), ALICE, request("en"))
    assert refused == {tab.export_file: {"__type__": "update", "value": None, "visible": False}}
    assert toasts[-1] == ("warning", "Run waiting has no model yet (no epoch has completed).")


def test_a_page_load_follows_the_newest_run_or_the_shared_one(tmp_path: Path, toasts: list) -> None:
    from kobert_demo.app.ui import build_app

    home = tmp_path / "runs"
    run = alice_run(home, events=a_whole_run())
    demo = build_app(home, queue=JobQueue(home))
    on_load = next(block.fn for block in demo.fns.values() if block.fn and block.fn.__name__ == "on_load")
    mine = on_load(ALICE, gr.Request(headers={"accept-language": "ko"}, query_params={}))
    visitor = next(component for component in mine if isinstance(component, gr.BrowserState))
    assert mine[visitor] == ALICE
    assert [value for value in mine.values() if isinstance(value, Follow)] == [Follow(run=run.name)]
    assert not any(isinstance(component, gr.Tabs) for component in mine)  # stays on the Train tab
    shared = on_load(None, gr.Request(headers={"accept-language": "ko"}, query_params={"run": run.name}))
    assert len(shared[visitor]) >= 16 and shared[visitor] != ALICE  # a first visit gets a token of its own
    assert [value for value in shared.values() if isinstance(value, Follow)] == [Follow(run=run.name)]
    assert any(isinstance(component, gr.Tabs) for component in shared)  # a shared link opens the Logs tab
    assert not toasts
    on_load(ALICE, gr.Request(headers={"accept-language": "ko"}, query_params={"run": "no-such-run"}))
    assert toasts == [("warning", "&#x27;no-such-run&#x27; 실행이 없습니다.")]


def test_a_clicked_mistake_is_explained_for_the_class_the_model_predicted(
    app: SimpleNamespace, trained_run, trained_predictor, toasts: list
) -> None:
    """The followed run's model explains the clicked sentence for its wrong class; only the table's sentences are."""
    tab, on_mistake = app.tab, app.handlers["on_mistake"]
    shutil.copytree(trained_run.path, app.home / "nsmc-tiny")
    shown = poll(app.state, tab, Follow(run="nsmc-tiny"), ALICE, "en", refresh=True)
    assert shown[tab.mistake_explanation]["visible"] is False and shown[tab.mistake_line] == ""
    follow, table = shown[tab.follow], shown[tab.mistakes]
    row = table.iloc[0].tolist()
    text, label, predicted = row[:3]
    assert label != predicted

    out = on_mistake(follow, gr.SelectData(None, {"index": [0, 1], "value": label, "row_value": row}), request("en"))
    words = out[tab.mistake_explanation]["value"]
    assert out[tab.mistake_explanation]["visible"] is True and "".join(word for word, _ in words) == text
    expected = highlighted_words(trained_predictor.explain(text, predicted))
    assert [word for word, _ in words] == [word for word, _ in expected]
    assert [score for _, score in words] == pytest.approx([score for _, score in expected], abs=0.02)
    assert out[tab.mistake_line].startswith(f"True class **{label}**, predicted **{predicted}** (probability ")
    assert not toasts

    edited = gr.SelectData(None, {"index": [0, 0], "value": "아무 문장", "row_value": ["아무 문장", label, predicted]})
    refused = on_mistake(follow, edited, request("ko"))
    assert refused == {tab.mistake_explanation: gr.update(value=None, visible=False), tab.mistake_line: ""}
    assert toasts == [("warning", "위의 잘못 분류된 문장 표에서 문장을 누르세요.")]


# --- validation, early stopping, Resume and Continue (#25) ------------------------------------------------------
def test_a_korean_visitor_sees_validation_the_kept_model_and_the_early_stop(app: SimpleNamespace) -> None:
    tab = app.tab
    run = alice_run(app.home, events=tuple(early_stopped_run()))
    out = poll(app.state, tab, Follow(run=run.name), ALICE, "ko", refresh=True)
    assert {"검증 손실", "검증 정확도", "남긴 모델"} <= set(out[tab.step_plot]["series"])
    assert "2 검증 ★" in set(out[tab.epoch_plot]["bar"])
    assert out[tab.notes].startswith("**남긴 모델: 2 에폭** (검증 정확도 0.8100)") and "ℹ️ 조기 종료" in out[tab.notes]
    assert "정확도 0.8750" in out[tab.metrics] and out[tab.mistakes].iloc[0, 0] == "남긴 모델의 실수"
    assert out[tab.continue_]["visible"] is True and out[tab.resume]["visible"] is False  # done: nothing to resume
    shared = poll(app.state, tab, Follow(run=run.name), BOB, "ko", refresh=True)
    assert shared[tab.continue_]["visible"] is False and shared[tab.resume]["visible"] is False


def test_notes_are_redrawn_only_when_they_change(app: SimpleNamespace) -> None:
    tab = app.tab
    events = early_stopped_run(done=False)
    run = alice_run(app.home, events=tuple(events[:9]), state="running", model=False)  # start and epoch 1's steps
    follow = poll(app.state, tab, Follow(run=run.name), ALICE, "en", refresh=True)[tab.follow]
    run.append(events[9])  # epoch 1's evaluation
    assert poll(app.state, tab, follow, ALICE, "en")[tab.notes].startswith("**Kept model: epoch 1** ")
    run.append(events[11])  # a step: the same notes
    assert tab.notes not in poll(app.state, tab, follow, ALICE, "en")


def whole_checkpoint(run: Run) -> None:
    """A checkpoint as resume.py leaves one, as far as the tab reads it: the folder with its position file (written
    last; an empty folder is no checkpoint)."""
    (run.checkpoint_dir).mkdir()
    (run.checkpoint_dir / POSITION_FILE).write_text("{}", encoding="utf-8")


@pytest.mark.parametrize(
    ("state", "checkpoint", "visitor", "shown"),
    [
        ("interrupted", True, ALICE, True),
        ("stopped", True, ALICE, True),
        ("failed", True, ALICE, True),
        ("stopped", True, BOB, False),  # another visitor's
        ("stopped", False, ALICE, False),  # nothing to resume from
        ("done", True, ALICE, False),  # finished: continue, not resume
    ],
)
def test_resume_appears_for_the_owners_resumable_run(
    app: SimpleNamespace, state: str, checkpoint: bool, visitor: str, shown: bool
) -> None:
    run = alice_run(app.home, events=(start(), step()), state=state, model=False)
    if checkpoint:
        whole_checkpoint(run)
    out = poll(app.state, app.tab, Follow(run=run.name), visitor, "en", refresh=True)
    assert out[app.tab.resume]["visible"] is shown
    assert out[app.tab.continue_]["visible"] is False  # no model


def test_resume_queues_the_owners_run_and_refuses_others(
    app: SimpleNamespace, toasts: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    resumed: list[tuple] = []
    monkeypatch.setattr(app.state.queue, "resume", lambda name, **kw: resumed.append((name, kw)), raising=False)
    on_resume = app.handlers["on_resume"]
    run = alice_run(app.home, events=(start(), step()), state="stopped", model=False)
    whole_checkpoint(run)
    refused = on_resume(Follow(run=run.name), BOB, request("ko"))
    assert refused == {app.tab.follow: gr.skip()} and not resumed and "다른 방문자" in toasts[-1][1]
    out = on_resume(Follow(run=run.name), ALICE, request("en"))
    assert resumed == [(run.name, {"owner": owner_id(ALICE), "address": ""})]
    assert toasts[-1] == ("info", f"Run {run.name} will resume from its last checkpoint.")
    assert out[app.tab.follow].run == run.name and out[app.tab.follow].offset > 0  # followed from its beginning
    done = alice_run(app.home, "done-run", events=tuple(early_stopped_run()))
    on_resume(Follow(run=done.name), ALICE, request("ko"))
    assert toasts[-1][0] == "warning" and "이어서 학습할 수 없습니다" in toasts[-1][1] and len(resumed) == 1


def test_a_log_cut_back_by_a_resume_is_read_again_from_its_start(app: SimpleNamespace) -> None:
    """Resuming replaces the log whole, cut back to its checkpoint: a follower's offset into the old one means
    nothing in the new one, so the tab starts over."""
    tab = app.tab
    run = alice_run(app.home, events=(start(), *(step(step=n) for n in range(1, 6))), state="running", model=False)
    follow = poll(app.state, tab, Follow(run=run.name), ALICE, "en", refresh=True)[tab.follow]
    assert len(follow.steps) == 5
    cut = run.log_path.with_name("cut.jsonl")
    cut.write_bytes(b"".join(run.log_path.read_bytes().splitlines(keepends=True)[:3]))  # start, steps 1-2
    cut.replace(run.log_path)
    run.append(step(step=3, loss=0.1))
    out = poll(app.state, tab, follow, ALICE, "en")
    assert [s for s, _, _ in out[tab.follow].steps] == [1, 2, 3] and out[tab.follow].steps[-1][1] == 0.1
    assert out[tab.step_plot]["step"].max() == 3 and tab.status in out  # everything redrawn


def test_a_killed_runs_results_are_its_model_folders(app: SimpleNamespace) -> None:
    """A killed run's log may lack the end: the kept model's figures saved with its weights are shown (Run.kept:
    a DoneEvent since #25, an EpochEvent in folders from before)."""
    from kobert_demo.app.ui.logs_render import Kept

    saved = DoneEvent("running", 2, {**TEST, "accuracy": 0.9}, 5.0, None, kept_step=16, metric="accuracy")
    assert Kept.saved(saved) == Kept(2, saved.test, [], 16, "accuracy", None)
    assert Kept.saved(epoch(epoch=3)).epoch == 3
    assert Kept.saved(DoneEvent("running", 2, None, 5.0, None)) is None  # kept mid-epoch: no test figures yet
    follow = Follow(run="r", model=saved)
    follow.absorb([start(), epoch(epoch=1)])
    assert follow.kept.epoch == 2 and follow.kept.test["accuracy"] == 0.9
