"""Tests for kobert_demo.config: the tutorial's defaults, JSON round trips, and one sentence per bad setting."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kobert_demo.config import KOBERT_HUB_ID, TINY_LR, ConfigError, TrainConfig

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
        ({"tokenizer_mode": "bpe"}, "tokenizer mode must be gluonnlp or whole"),
    ],
)
def test_each_bad_setting_is_one_sentence_in_english_and_korean(change: dict, english: str) -> None:
    with pytest.raises(ConfigError) as caught:
        TrainConfig(**change).check()
    assert str(caught.value) == english
    assert isinstance(caught.value, ValueError)
    assert HANGUL.search(caught.value.text("ko"))
