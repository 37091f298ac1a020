"""ui/train_tab.py without a server: the settings form made from TrainConfig's schema and read back by name, the
file check and the renderers, each handler's answer read by component."""

from __future__ import annotations

import re
from pathlib import Path

import gradio as gr
import pytest
from conftest import DATA

from kobert_demo.app.queue import JobQueue, owner_id
from kobert_demo.app.ui.state import AppState, VisitorError
from kobert_demo.app.ui.train_tab import (
    CUSTOM,
    TrainTab,
    backbone_changed,
    backbone_choices,
    backbone_facts,
    backbone_note,
    build,
    check_files,
    class_frame,
    continue_from,
    error_note,
    form_config,
    make_config,
    queued_message,
    queued_text,
    start_from_form,
    widgets,
)
from kobert_demo.basics.config import KOBERT_HUB_ID, KOBERT_LR, TINY, TINY_LR, ConfigError, TrainConfig, config_fields
from kobert_demo.basics.data import read_table
from kobert_demo.basics.runs import Run
from kobert_demo.engine.backbones import CATALOGUE, HUB_MODELS

HANGUL = re.compile("[가-힣]")
RATINGS = DATA / "movie_ratings"
VISITOR = "train-tab-visitor-0123456789"


@pytest.fixture(scope="module")
def tab() -> TrainTab:
    """The tab's components, laid out in a Blocks that is never launched."""
    with gr.Blocks():
        return build(None, None)  # the tab itself uses neither the app's state nor the visitor


def form_values(tab: TrainTab, **changes) -> dict:
    """What Start would read: the form as built (the tiny backbone, the ratings file), with changes by field name."""
    values = {component: component.value for component in tab.form}
    values.update({tab.train_file: str(RATINGS / "train.tsv"), tab.test_file: None, tab.backbone: TINY})
    values.update({tab.settings[name]: value for name, value in changes.items()})
    return values


# --- the settings form -------------------------------------------------------------------------------------------


def test_every_setting_with_a_label_has_a_widget_from_its_schema(tab: TrainTab) -> None:
    fields = config_fields()
    assert list(tab.settings) == [name for name, spec in fields.items() if spec.setting.label]
    for name, component in tab.settings.items():
        setting = fields[name].setting
        assert component.label.key == setting.label and component.info.key == setting.help
        assert component.elem_id == name.replace("_", "-")
        if isinstance(component, gr.Number):
            # Gradio's own bound check answers in English; the form leaves bounds to check(), which speaks Korean
            assert (component.minimum, component.maximum) == (None, None)
            assert component.precision == (0 if fields[name].type is int else None)
        if isinstance(component, gr.Dropdown):
            assert [value for _, value in component.choices] == list(setting.choices)


def test_widgets_show_the_defaults_and_keep_their_element_ids(tab: TrainTab) -> None:
    defaults = TrainConfig()
    for name, component in tab.settings.items():
        assert component.value == (defaults.learning_rate if name == "lr" else getattr(defaults, name)), name
    assert tab.settings["lr"].value == KOBERT_LR
    ids = {name: tab.settings[name].elem_id for name in ("epochs", "batch_size", "lr", "cpu_mode", "log_interval")}
    assert ids == {
        "epochs": "epochs",
        "batch_size": "batch-size",
        "lr": "lr",
        "cpu_mode": "cpu-mode",
        "log_interval": "log-interval",
    }  # fmt: skip  (the browser test and the screenshots find them by these)
    kinds = {spec.name: spec.kind for spec in widgets()}
    assert (kinds["cpu_mode"], kinds["precision"], kinds["test_size"]) == (gr.Checkbox, gr.Dropdown, gr.Slider)
    advanced = {spec.name for spec in widgets() if spec.advanced}
    assert not advanced & {"epochs", "batch_size", "max_len", "lr", "cpu_mode"} and "seed" in advanced


def test_the_form_is_read_back_by_field_name(tab: TrainTab) -> None:
    changes = {
        "epochs": 3, "batch_size": 16, "max_len": 128, "lr": 0.002, "cpu_mode": True, "warmup_ratio": 0.2,
        "weight_decay": 0.0, "dropout": 0.1, "max_grad_norm": 2.0, "log_interval": 5, "seed": 7, "precision": "fp32",
        "tokenizer_mode": "whole", "test_size": 0.25, "validation_size": 0.2, "eval_steps": 20,
        "best_metric": "macro_f1", "early_stopping_patience": 2, "early_stopping_min_delta": 0.01,
        "class_weights": "balanced",
    }  # fmt: skip
    assert set(changes) == set(tab.settings)  # a new setting belongs here too
    values = form_values(tab, **changes)
    values.update({tab.text_col: "document", tab.label_col: ""})
    config = form_config(tab, values)
    assert config == TrainConfig(model=TINY, text_col="document", label_col=None, **changes)


def test_a_bad_form_value_is_one_sentence_in_either_language(tab: TrainTab) -> None:
    with pytest.raises(ConfigError) as caught:
        form_config(tab, form_values(tab, epochs=0))
    assert str(caught.value) == "epochs must be at least 1"
    assert caught.value.text("ko") == "에폭 수는 1 이상이어야 합니다"
    with pytest.raises(ConfigError, match="warmup ratio must be between 0 and 1"):
        form_config(tab, form_values(tab, warmup_ratio=1.0))  # the form allows 1; check() does not


def test_an_empty_custom_model_is_refused(tab: TrainTab) -> None:
    values = {**form_values(tab), tab.backbone: CUSTOM, tab.custom_model: "  "}
    with pytest.raises(Exception, match="Enter a model folder or hub id"):
        form_config(tab, values)


@pytest.mark.parametrize(
    ("choice", "lr", "custom_box", "note"),
    [(KOBERT_HUB_ID, KOBERT_LR, False, "SKT Brain's KoBERT"), (TINY, TINY_LR, False, "tiny is not KoBERT"),
     ("klue/roberta-large", KOBERT_LR, False, "klue/roberta-large: a RoBERTa encoder from the Hugging Face hub"),
     (CUSTOM, KOBERT_LR, True, "A BERT, RoBERTa or ELECTRA model")],
)  # fmt: skip
def test_a_backbone_sets_its_learning_rate_and_note(tab: TrainTab, choice, lr, custom_box, note) -> None:
    shown = backbone_changed(tab, choice, {}, "en")
    assert set(shown) == {tab.custom_model, tab.settings["lr"], tab.backbone_note}
    assert shown[tab.settings["lr"]] == lr
    assert shown[tab.custom_model]["visible"] is custom_box
    assert note in shown[tab.backbone_note]
    assert HANGUL.search(backbone_changed(tab, choice, {}, "ko")[tab.backbone_note])


def test_the_backbones_offered_kobert_first() -> None:
    values = [value for _, value in backbone_choices(custom=True)]
    assert values == [*HUB_MODELS, CUSTOM, TINY]
    assert [value for _, value in backbone_choices(custom=False)] == [*HUB_MODELS, TINY]
    labels = dict((value, label) for label, value in backbone_choices(custom=False))
    assert labels["klue/roberta-large"] == "klue/roberta-large · 337M"  # the size next to each choice


def test_the_note_gives_size_speed_and_the_cards_figure() -> None:
    """Measured speed as measured, another model's scaled as an estimate, none as unknown; the card's figure as the
    card's, with which card."""
    kobert = backbone_facts(KOBERT_HUB_ID, {KOBERT_HUB_ID: 31.25}, "en")
    assert kobert == (
        "Size: 92M parameters · Training speed here: 31.2 sentences/s (measured) · NSMC test accuracy 89.59%: the "
        "figure in KoELECTRA's benchmark table, not measured here"
    )
    large = backbone_facts("klue/roberta-large", {KOBERT_HUB_ID: 30.0}, "en")
    scaled = 30.0 * CATALOGUE[KOBERT_HUB_ID].compute_parameters / CATALOGUE["klue/roberta-large"].compute_parameters
    assert f"about {scaled:.1f} sentences/s (an estimate: {KOBERT_HUB_ID}'s measured speed" in large
    assert "NSMC accuracy: its model card reports none" in large
    assert "not known yet" in backbone_facts("beomi/KcELECTRA-base-v2022", {}, "en")
    assert "91.97%" in backbone_facts("beomi/KcELECTRA-base-v2022", {}, "en")
    assert "NSMC" not in backbone_facts(TINY, {}, "en")  # tiny has no card
    korean = backbone_note("monologg/koelectra-base-v3-discriminator", {TINY: 400.0}, "ko")
    assert "추정값" in korean and "90.63%" in korean and "apache-2.0" in korean
    assert backbone_note("./my-model", {}, "en") == backbone_note(CUSTOM, {}, "en")  # no facts for custom models


def test_curated_backbones_are_allowed_with_custom_models_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOBERT_DEMO_CUSTOM_MODELS", "0")
    assert make_config("klue/bert-base", None, {}).model == "klue/bert-base"
    assert make_config(CUSTOM, " monologg/koelectra-base-v3-discriminator ", {}).model.startswith("monologg/")
    for custom in ("someone/bert", "./model", ""):
        with pytest.raises(VisitorError) as refused:
            make_config(CUSTOM, custom, {})
        assert refused.value.key == "err_custom_models_off"
    monkeypatch.setenv("KOBERT_DEMO_CUSTOM_MODELS", "1")
    assert make_config(CUSTOM, "someone/bert", {}).model == "someone/bert"


# --- starting a run ----------------------------------------------------------------------------------------------


def test_start_queues_the_form_and_says_where_it_stands(tab: TrainTab, tmp_path: Path) -> None:
    state = AppState(tmp_path / "runs", JobQueue(tmp_path / "runs"))  # never started: the runs stay queued
    first = start_from_form(state, VISITOR, tab, form_values(tab, epochs=1, seed=3))
    assert (first.config()["epochs"], first.config()["seed"], first.config()["model"]) == (1, 3, TINY)
    assert queued_message(state, first, "en") == f"Run `{first.name}` is starting. Follow it in the Logs tab."
    second = start_from_form(state, VISITOR, tab, form_values(tab))
    assert queued_message(state, second, "en").startswith(f"Run `{second.name}` is queued: 1 job(s) ahead, about ")
    assert HANGUL.search(queued_message(state, second, "ko"))


def test_start_queues_the_model_folder_typed_in_the_custom_box(
    tab: TrainTab, tmp_path: Path, family_folders: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page's Start sends the custom model box with the rest of the form, and a folder typed there is the queued
    run's model: what the browser's family test types, which the API's /train (the same make_config and submit)
    trains to done (tests/ui/test_api.py)."""
    from kobert_demo.app.ui import build_app

    monkeypatch.setenv("KOBERT_DEMO_CUSTOM_MODELS", "1")
    home = tmp_path / "runs"
    demo = build_app(home, queue=JobQueue(home))  # never started: the run stays queued
    on_start = next(block for block in demo.fns.values() if block.fn and block.fn.__name__ == "on_start")
    assert {"train-file", "test-file", "backbone", "custom-model"} <= {c.elem_id for c in on_start.inputs}
    folder = str(family_folders["roberta"])
    run = start_from_form(
        demo.state, VISITOR, tab, {**form_values(tab), tab.backbone: CUSTOM, tab.custom_model: folder}
    )
    assert run.config()["model"] == folder and run.status().state == "queued"


def test_queued_text() -> None:
    assert queued_text("r1", 0, None, "en") == "Run `r1` is starting. Follow it in the Logs tab."
    assert queued_text("r1", 2, 190, "en") == "Run `r1` is queued: 2 job(s) ahead, about 3:10 to wait."
    assert queued_text("r1", 2, None, "ko") == "실행 `r1` 이(가) 대기열에 들어갔습니다: 앞에 작업 2개, 예상 대기 -."


# --- checking files ----------------------------------------------------------------------------------------------


def test_a_good_file_fills_the_tab(tab: TrainTab) -> None:
    path = RATINGS / "train.tsv"
    shown = check_files(tab, str(path), str(RATINGS / "test.tsv"), None, None, "en")
    assert set(shown) == set(tab.checked)
    data = read_table(path)
    assert shown[tab.text_col] == {"__type__": "update", "choices": data.columns, "value": data.text_col}
    assert shown[tab.label_col]["value"] == data.label_col
    assert "**train.tsv**" in shown[tab.summary] and "**test.tsv**" in shown[tab.summary]
    assert f"{len(data.class_counts())} classes" in shown[tab.summary]
    assert shown[tab.error] == {"__type__": "update", "value": "", "visible": False}
    assert shown[tab.preview]["visible"] is True and len(shown[tab.preview]["value"]) == len(data.head)
    assert dict(zip(shown[tab.classes]["class"], shown[tab.classes]["rows"])) == data.class_counts()
    korean = check_files(tab, str(path), None, None, None, "ko")[tab.summary]
    assert "행 읽음" in korean and "rows read" not in korean


def test_no_file_clears_the_tab(tab: TrainTab) -> None:
    shown = check_files(tab, None, None, None, None, "en")
    assert shown[tab.preview] == {"__type__": "update", "value": None, "visible": False}
    assert shown[tab.text_col] == {"__type__": "update", "choices": [], "value": None}
    assert shown[tab.summary] == "" and shown[tab.classes] is None


def test_the_same_column_twice_only_shows_an_error(tab: TrainTab) -> None:
    shown = check_files(tab, str(RATINGS / "train.tsv"), None, "document", "document", "ko")
    assert list(shown) == [tab.error]
    assert shown[tab.error]["visible"] is True and HANGUL.search(shown[tab.error]["value"])


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "looks like a PNG image"),
        ("문장 하나뿐\n두 번째 문장\n".encode(), "single column"),
        (b"text\tlabel\n", "no data rows"),
    ],
)
def test_a_bad_file_is_one_sentence_in_the_visitors_language(
    tab: TrainTab, tmp_path: Path, content: bytes, expected: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    shown = check_files(tab, str(path), None, None, None, "en")
    assert shown[tab.error]["visible"] is True and expected in shown[tab.error]["value"]
    assert shown[tab.preview] == {"__type__": "update", "value": None, "visible": False}  # no empty grid
    assert shown[tab.text_col]["choices"] == []
    korean = check_files(tab, str(path), None, None, None, "ko")[tab.error]["value"]
    assert "bad.csv" in korean and HANGUL.search(korean) and expected not in korean
    kept = check_files(tab, str(path), None, "text", "label", "en")
    assert tab.text_col not in kept and tab.label_col not in kept  # the visitor's column choice stays on screen


def test_engine_errors_are_korean_in_the_tab(tab: TrainTab, tmp_path: Path) -> None:
    path = tmp_path / "one_class.tsv"
    path.write_text("text\tlabel\n좋아요\tpos\n최고예요\tpos\n", encoding="utf-8")
    note = check_files(tab, str(path), None, None, None, "ko")[tab.error]
    assert "one_class.tsv" in note["value"] and "클래스가 하나('pos')뿐입니다" in note["value"]
    assert "classification needs" not in note["value"]
    english = check_files(tab, str(path), None, None, None, "en")[tab.error]
    assert "one_class.tsv has only one class ('pos') in column 'label'" in english["value"]


def test_renderers() -> None:
    assert error_note("") == {"__type__": "update", "value": "", "visible": False}
    assert error_note("bad \\*") == {"__type__": "update", "value": "⚠️ bad \\*", "visible": True}
    frame = class_frame({"긍정": 3, "부정": 1})
    assert list(frame.columns) == ["class", "rows"] and frame.to_dict("list") == {
        "class": ["긍정", "부정"],
        "rows": [3, 1],
    }


# --- validation file, class weights hint, continuing a run (#25) -------------------------------------------------
def lines(path: Path, rows: list[tuple[str, str]]) -> str:
    path.write_text("text\tlabel\n" + "".join(f"{text}\t{label}\n" for text, label in rows), encoding="utf-8")
    return str(path)


def test_the_summary_says_where_validation_comes_from(tab: TrainTab) -> None:
    train, other = str(RATINGS / "train.tsv"), str(RATINGS / "test.tsv")
    split = check_files(tab, train, None, None, None, "en")[tab.summary]
    assert "a stratified share of the training data (the validation split) is held out" in split
    given = check_files(tab, train, None, None, None, "en", valid_file=other)[tab.summary]
    assert "**test.tsv**" in given and "The validation file chooses the kept model" in given
    assert "validation split" not in given
    korean = check_files(tab, train, other, None, None, "ko", valid_file=other)[tab.summary]
    assert "남길 모델은 검증 파일로 고르며" in korean and korean.count("**test.tsv**") == 2


def test_a_validation_file_with_an_unknown_class_is_refused(tab: TrainTab, tmp_path: Path) -> None:
    train = lines(tmp_path / "train.tsv", [("좋아요", "pos"), ("별로예요", "neg")] * 5)
    valid = lines(tmp_path / "valid.tsv", [("좋아요", "pos"), ("그저 그래요", "meh")])
    shown = check_files(tab, train, None, None, None, "en", valid_file=valid)
    assert shown[tab.error]["visible"] is True and "valid.tsv" in shown[tab.error]["value"]
    assert "meh" in shown[tab.error]["value"]


def test_imbalanced_classes_get_a_class_weights_hint(tab: TrainTab, tmp_path: Path) -> None:
    imbalanced = lines(tmp_path / "skewed.tsv", [("좋아요", "pos")] * 13 + [("별로예요", "neg")] * 4)
    english = check_files(tab, imbalanced, None, None, None, "en")[tab.summary]
    assert "💡 The largest class, 'pos', has 3.2x the rows of the smallest, 'neg'" in english
    assert "'balanced'" in english
    korean = check_files(tab, imbalanced, None, None, None, "ko")[tab.summary]
    assert "💡 가장 큰 클래스 'pos'의 행 수가 가장 작은 클래스 'neg'의 3.2배입니다" in korean
    even = lines(tmp_path / "even.tsv", [("좋아요", "pos")] * 12 + [("별로예요", "neg")] * 4)  # 3x: no hint
    assert "💡" not in check_files(tab, even, None, None, None, "en")[tab.summary]


def test_the_new_settings_are_choices_in_the_advanced_form(tab: TrainTab) -> None:
    assert isinstance(tab.settings["best_metric"], gr.Dropdown)
    assert [value for _, value in tab.settings["best_metric"].choices] == ["accuracy", "macro_f1"]
    assert [value for _, value in tab.settings["class_weights"].choices] == ["none", "balanced"]
    assert isinstance(tab.settings["validation_size"], gr.Slider) and "init_from" not in tab.settings


def finished_run(home: Path, name: str, owner: str = VISITOR, state: str = "done", model: bool = True) -> Run:
    Run.queue(home / name, TrainConfig(model=TINY), {"owner": owner_id(owner), "train_file": "train.tsv"})
    run = Run.create(home / name, TrainConfig(model=TINY), ["0", "1"], {})
    if model:
        run.model_dir.mkdir()
        (run.model_dir / "model.safetensors").write_bytes(b"weights")
    run.set_status(state)
    return run


def test_start_passes_the_validation_file_and_the_run_to_continue_from(
    tab: TrainTab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = AppState(tmp_path / "runs", JobQueue(tmp_path / "runs"))
    source = finished_run(state.home, "source-run")
    submitted: list[tuple] = []
    monkeypatch.setattr(state.queue, "submit", lambda *args, **kw: submitted.append((args, kw)))
    valid = str(RATINGS / "test.tsv")
    start_from_form(state, VISITOR, tab, {**form_values(tab), tab.valid_file: valid, tab.init_from: source.name})
    (config, train, test), options = submitted[0]
    assert config.init_from == source.name and train.endswith("train.tsv") and test is None
    assert options == {"valid_file": valid, "owner": owner_id(VISITOR), "address": ""}


@pytest.mark.parametrize(
    ("init_from", "expected"),
    [
        ("someone-elses", "belongs to another visitor"),
        ("no-model", "cannot be continued"),
        ("still-running", "cannot be continued"),
        ("/etc", "There is no run '/etc'"),  # a name, never a path on the server
    ],
)
def test_continuing_takes_only_the_visitors_finished_run_with_a_model(
    tab: TrainTab, tmp_path: Path, init_from: str, expected: str
) -> None:
    state = AppState(tmp_path / "runs", JobQueue(tmp_path / "runs"))
    finished_run(state.home, "someone-elses", owner="another-visitor-0123456789")
    finished_run(state.home, "no-model", model=False)
    finished_run(state.home, "still-running", state="running")
    with pytest.raises(VisitorError, match=expected):
        start_from_form(state, VISITOR, tab, {**form_values(tab), tab.init_from: init_from})
    assert not [run for run in state.home.iterdir() if run.name.startswith("2")]  # nothing queued


def test_continue_from_shows_the_run_and_a_way_back(tab: TrainTab) -> None:
    shown = continue_from(tab, "r1", "ko")
    assert shown[tab.init_from] == "r1" and shown[tab.continue_cancel]["visible"] is True
    assert shown[tab.continue_note]["value"].startswith("**실행 `r1` 에서 계속 학습**")
    cleared = continue_from(tab, None, "en")
    assert cleared[tab.init_from] is None and cleared[tab.continue_note]["visible"] is False


def test_the_logs_tabs_continue_button_opens_the_train_tab_set_to_the_run(tmp_path: Path) -> None:
    from kobert_demo.app.ui import build_app
    from kobert_demo.app.ui.logs_render import Follow

    home = tmp_path / "runs"
    demo = build_app(home, queue=JobQueue(home))  # never started
    fns = {block.fn.__name__: block for block in demo.fns.values() if block.fn}
    assert {"train-file", "test-file", "valid-file"} <= {c.elem_id for c in fns["on_start"].inputs}
    run = finished_run(home, "finished-run")
    request = gr.Request(headers={"accept-language": "en"}, query_params={})
    shown = fns["on_continue"].fn(Follow(run=run.name), VISITOR, request)
    by_id = {getattr(component, "elem_id", None): value for component, value in shown.items()}
    assert by_id["continue-from"]["value"].startswith(f"**Continue from run `{run.name}`**")
    tabs = next(value for component, value in shown.items() if isinstance(component, gr.Tabs))
    assert run.name in shown.values() and tabs.selected == "train"
