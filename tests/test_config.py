"""Tests for basics.config: the tutorial's defaults, JSON round trips, one sentence per bad setting, and the
settings schema that drives the CLI flags, the web form and the API's option checking."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from kobert_demo.basics.config import (
    KOBERT_HUB_ID,
    KOBERT_LR,
    MAX_SEED,
    MODES,
    TINY_LR,
    ConfigError,
    ConfigField,
    Setting,
    TrainConfig,
    config_fields,
    default_lr,
    setting,
)
from kobert_demo.basics.messages import MESSAGES, t

HANGUL = re.compile("[가-힣]")


def test_defaults_are_the_tutorials() -> None:
    config = TrainConfig()
    assert (config.model, config.max_len, config.batch_size, config.epochs) == (KOBERT_HUB_ID, 64, 64, 2)
    assert (config.learning_rate, config.warmup_ratio, config.max_grad_norm, config.dropout) == (5e-5, 0.1, 1.0, 0.5)
    assert TrainConfig(model="tiny").learning_rate == TINY_LR
    config.check()


def test_round_trip(tmp_path: Path) -> None:
    config = TrainConfig(model="tiny", epochs=3, cpu_mode=True, lr=1e-4)
    config.save(tmp_path / "config.json")
    assert TrainConfig.load(tmp_path / "config.json") == config
    assert TrainConfig.from_dict({**config.to_dict(), "removed_setting": 1}) == config


@pytest.mark.parametrize(
    ("change", "english"),
    [
        ({"epochs": 0}, "epochs must be at least 1"),
        ({"batch_size": 0}, "batch size must be at least 1"),
        ({"max_len": 4}, "max length must be between 8 and 512"),
        ({"max_len": 513}, "max length must be between 8 and 512"),
        ({"lr": 0.0}, "learning rate must be positive"),
        ({"warmup_ratio": 1.0}, "warmup ratio must be between 0 and 1"),
        ({"weight_decay": -0.1}, "weight decay must not be negative"),
        ({"dropout": 1.0}, "dropout must be between 0 and 1"),
        ({"max_grad_norm": 0.0}, "max grad norm must be positive"),
        ({"log_interval": 0}, "log interval must be at least 1"),
        ({"test_size": 1.0}, "test size must be between 0 and 1"),
        ({"precision": "int4"}, "precision must be one of auto, bf16, fp16, fp32"),
        ({"tokenizer_mode": "bpe"}, "tokenizer mode must be one of gluonnlp, whole"),
        ({"epochs": 101}, "epochs must be at most 100"),
        ({"batch_size": 1025}, "batch size must be at most 1024"),
        ({"seed": -1}, "seed must be between 0 and 4294967295"),
    ],
)
def test_each_bad_setting_is_one_sentence_in_english_and_korean(change: dict, english: str) -> None:
    with pytest.raises(ConfigError) as caught:
        TrainConfig(**change).check()
    assert str(caught.value) == english
    assert isinstance(caught.value, ValueError)
    assert HANGUL.search(caught.value.text("ko"))


@pytest.mark.parametrize(
    "change",
    [{"max_len": 8}, {"max_len": 512}, {"warmup_ratio": 0.0}, {"dropout": 0.0}, {"seed": 0}, {"test_size": 0.5}],
)
def test_values_on_an_included_bound_pass(change: dict) -> None:
    TrainConfig(**change).check()


@pytest.mark.parametrize("spec", list(config_fields().values()), ids=lambda spec: spec.name)
def test_every_field_has_complete_metadata(spec: ConfigField) -> None:
    """Help (and a form label) in both languages; a sentence for every bound or choice, whose fields the bounds fill."""
    setting = spec.setting
    assert spec.type in (bool, int, float, str)
    for key in (setting.help, setting.label):
        if key is not None:
            english, korean = MESSAGES[key]
            assert "{" not in english + korean  # static labels reach the browser unformatted
    bounded = setting.minimum is not None or setting.maximum is not None or setting.choices
    assert bool(setting.error) == bool(bounded)
    for key in filter(None, (setting.error, setting.error_max)):
        assert HANGUL.search(t("ko", key, **setting.bounds())) and t("en", key, **setting.bounds())
    if setting.slider:
        assert setting.problem(setting.slider[0]) is None and setting.problem(setting.slider[1]) is None
    assert setting.problem(spec.default) is None


def test_bound_sentences_come_from_the_schema() -> None:
    """A field's bounds are written once: change them in a subclass and check() and its sentence follow."""

    @dataclass
    class Narrow(TrainConfig):
        max_len: int = setting(64, Setting("help_max_len", "max_len", minimum=16, maximum=128, error="config_max_len"))

    with pytest.raises(ConfigError) as caught:
        Narrow(max_len=8).check()
    assert str(caught.value) == "max length must be between 16 and 128"
    assert caught.value.text("ko") == "최대 길이는 16에서 128 사이여야 합니다"
    Narrow(max_len=128).check()
    with pytest.raises(ConfigError):
        Narrow(max_len=129).check()


@dataclass
class Extended(TrainConfig):
    """TrainConfig plus one throwaway setting, as a maintainer would add it: one field with its Setting."""

    label_smoothing: float = setting(
        0.0,
        Setting(
            "help_dropout", "dropout", minimum=0.0, maximum=1.0, below_maximum=True, error="config_dropout",
            advanced=True, step=0.05,
        ),
    )  # fmt: skip


def test_a_new_setting_reaches_the_cli_the_form_and_the_api() -> None:
    import argparse

    import gradio as gr

    from kobert_demo.app.cli import add_config_flags
    from kobert_demo.app.ui.train_tab import widgets

    parser = argparse.ArgumentParser()
    add_config_flags(parser, Extended)
    assert parser.parse_args([]).label_smoothing == 0.0
    args = parser.parse_args(["--label-smoothing", "0.25", "--epochs", "3"])
    assert (args.label_smoothing, args.epochs) == (0.25, 3)
    assert "--label-smoothing" in parser.format_help()

    shown = {widget.name: widget for widget in widgets(Extended)}
    assert list(shown)[-1] == "label_smoothing"  # field order
    widget = shown["label_smoothing"]
    assert widget.kind is gr.Number and widget.advanced
    assert {k: widget.kwargs[k] for k in ("value", "step", "elem_id")} == {
        "value": 0.0, "step": 0.05, "elem_id": "label-smoothing"
    }  # fmt: skip
    assert "minimum" not in widget.kwargs  # bounds are check()'s, in the visitor's language

    assert Extended.from_options({"label_smoothing": "0.3"}, model="tiny").label_smoothing == 0.3
    with pytest.raises(ConfigError, match="dropout must be between 0 and 1"):
        Extended.from_options({"label_smoothing": 1.0}, model="tiny")
    with pytest.raises(ConfigError, match="Setting label_smoothing must be a number, not 'lots'"):
        Extended.from_options({"label_smoothing": "lots"}, model="tiny")
    with pytest.raises(ConfigError, match="Unknown settings: label_smoothing"):
        TrainConfig.from_options({"label_smoothing": 0.1}, model="tiny")


def test_options_are_typed_checked_and_named() -> None:
    """The web form's and the API's options: strings and numbers become the field's type; empty keeps the default."""
    config = TrainConfig.from_options(
        {"epochs": "3", "lr": 2e-5, "cpu_mode": "true", "precision": "fp32", "seed": "", "text_col": None}, model="tiny"
    )
    assert (config.model, config.epochs, config.lr, config.cpu_mode) == ("tiny", 3, 2e-5, True)
    assert config.precision == "fp32"
    assert (config.seed, config.text_col) == (TrainConfig().seed, None)
    assert TrainConfig.from_options({"cpu_mode": False}).cpu_mode is False
    with pytest.raises(ConfigError) as caught:
        TrainConfig.from_options({"model": "x", "colour": "red", "size": 1}, model="tiny")
    assert str(caught.value) == "Unknown settings: colour, model, size."
    with pytest.raises(ConfigError) as caught:
        TrainConfig.from_options({"cpu_mode": "maybe"})
    assert str(caught.value) == "Setting cpu_mode must be true or false, not 'maybe'."
    assert HANGUL.search(caught.value.text("ko"))
    with pytest.raises(ConfigError) as caught:
        TrainConfig.from_options({"dropout": 1})
    assert caught.value.text("ko") == "드롭아웃은 0 이상 1 미만이어야 합니다"


FLOATS = [spec.name for spec in config_fields().values() if spec.type is float]
INTS = [spec.name for spec in config_fields().values() if spec.type is int]
NOT_FINITE = ["NaN", "nan", "inf", "-inf", " Infinity ", math.nan, math.inf, -math.inf]
NOT_WHOLE = [2.9, "2.9", -0.5, "1e-3", math.nan, math.inf, "inf", "NaN"]


def ways_in(cls: type[TrainConfig], name: str, value: object) -> list[Callable[[], object]]:
    """Every way a setting reaches a TrainConfig: the form's and the API's options, a stored config.json, Python."""
    return [
        lambda: cls.from_options({name: value}, model="tiny"),
        lambda: cls.from_dict({"model": "tiny", name: value}),
        lambda: cls(**{name: value}),
    ]


@pytest.mark.parametrize("value", NOT_FINITE, ids=repr)
@pytest.mark.parametrize("name", FLOATS)
def test_float_settings_refuse_nan_and_infinities(name: str, value: object) -> None:
    """lr "NaN", warmup_ratio "nan", max_grad_norm "nan", test_size "nan" and lr "inf" were stored: NaN passes every
    bound check (each comparison with it is False)."""
    for way_in in ways_in(TrainConfig, name, value):
        with pytest.raises(ConfigError) as caught:
            way_in()
        assert str(caught.value) == f"Setting {name} must be a finite number, not '{value}'."
        assert HANGUL.search(caught.value.text("ko")) and name in caught.value.text("ko")


@pytest.mark.parametrize("value", NOT_WHOLE, ids=repr)
@pytest.mark.parametrize("name", INTS)
def test_int_settings_refuse_fractions(name: str, value: object) -> None:
    """epochs 2.9 was stored as 2 (int() truncates); a whole number must be one."""
    for way_in in ways_in(TrainConfig, name, value):
        with pytest.raises(ConfigError) as caught:
            way_in()
        assert str(caught.value) == f"Setting {name} must be a whole number, not '{value}'."
        assert HANGUL.search(caught.value.text("ko")) and name in caught.value.text("ko")


@pytest.mark.parametrize("value", ["abc", "", True, [3], {"n": 3}], ids=repr)
@pytest.mark.parametrize("name", INTS + FLOATS)
def test_numbers_refuse_what_is_no_number(name: str, value: object) -> None:
    """A bool is no number either: JSON's true used to become 1 epoch."""
    if value == "":  # the form's and the API's empty value keeps the default
        assert getattr(TrainConfig.from_options({name: value}), name) == getattr(TrainConfig(), name)
        ways = ways_in(TrainConfig, name, value)[1:]
    else:
        ways = ways_in(TrainConfig, name, value)
    for way_in in ways:
        with pytest.raises(ConfigError, match=f"^Setting {name} must be a number, not "):
            way_in()


@pytest.mark.parametrize("name", INTS)
def test_whole_numbers_written_as_floats_are_ints(name: str) -> None:
    """2.0 and "2.0" (a JSON client's or the form's number) are 2, as an int: range() and the bounds take it."""
    default = getattr(TrainConfig(), name)
    for value in (float(default), f"{default}.0", str(default)):
        for way_in in ways_in(TrainConfig, name, value):
            got = getattr(way_in(), name)
            assert got == default and type(got) is int


def test_a_big_int_keeps_every_digit() -> None:
    assert TrainConfig.from_options({"seed": str(MAX_SEED)}).seed == MAX_SEED == TrainConfig(seed=float(MAX_SEED)).seed


def test_float_settings_take_ints_and_numbers_written_as_text() -> None:
    config = TrainConfig.from_options({"lr": "1e-4", "max_grad_norm": 2, "weight_decay": " 0 "})
    assert (config.lr, config.max_grad_norm, config.weight_decay) == (1e-4, 2.0, 0.0)
    assert type(config.max_grad_norm) is float


def test_the_cli_refuses_them_in_one_sentence(tmp_path: Path, capsys) -> None:
    """The train command's flags build the same TrainConfig: argparse's float() reads "nan", the schema refuses it
    (and quotes it as float() writes it)."""
    from kobert_demo.app.cli import EXIT_USER_ERROR, main

    for flag, value in (("--lr", "nan"), ("--max-grad-norm", "inf"), ("--test-size", "nan")):
        assert main(["train", str(tmp_path / "unread.tsv"), "--out", str(tmp_path / "run"), flag, value]) == 2
        name = flag[2:].replace("-", "_")
        assert capsys.readouterr().err == f"error: Setting {name} must be a finite number, not '{value}'.\n"
    assert EXIT_USER_ERROR == 2 and not (tmp_path / "run").exists()


def test_learning_rate_follows_the_backbone() -> None:
    assert default_lr("tiny") == TINY_LR == TrainConfig(model="tiny").learning_rate
    assert default_lr(KOBERT_HUB_ID) == KOBERT_LR == TrainConfig().learning_rate == default_lr("./my-bert")
    assert TrainConfig(model="tiny", lr=0.5).learning_rate == 0.5


def test_every_pretrained_backbone_fine_tunes_at_the_tutorials_rate() -> None:
    """5e-5: KoBERT's tutorial and KoELECTRA's own NSMC config; no other curated model's card recommends one."""
    from kobert_demo.engine.backbones import HUB_MODELS

    assert {default_lr(model) for model in HUB_MODELS} == {KOBERT_LR} == {5e-5}


def test_tokenizer_modes_are_one_constant() -> None:
    from kobert_demo.engine import tokenizer

    assert tokenizer.MODES is MODES
    assert config_fields()["tokenizer_mode"].setting.choices == MODES
