"""TrainConfig: the tutorial's hyperparameters in one place, serialisable to JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from .errors import UserFacingError

KOBERT_HUB_ID = "skt/kobert-base-v1"
TINY = "tiny"
PRECISIONS = ("auto", "bf16", "fp16", "fp32")

# A randomly initialised model learns nothing at KoBERT's fine-tuning rate; this is tiny's default instead.
TINY_LR = 1e-3
# The tutorial's optimizer was transformers.AdamW, whose epsilon defaulted to 1e-6 (torch.optim.AdamW's is 1e-8).
ADAM_EPSILON = 1e-6
# CPU mode trains only this many top encoder layers (plus pooler and classifier); the rest run frozen, without
# autograd. See the README's speed section for what it costs and saves.
CPU_MODE_LAYERS = 2
# Bounds that keep one request from asking for endless work (the web form's limits; the API and CLI share them).
# 200,000 steps is NSMC's 150,000 rows in batches of 8 for 10 epochs, far past any run worth queueing.
MAX_EPOCHS = 100
MAX_BATCH_SIZE = 1024
MAX_STEPS = 200_000


class ConfigError(UserFacingError, ValueError):
    """A training setting that cannot work, as one sentence (English and Korean)."""


@dataclass
class TrainConfig:
    """Everything a run needs besides its data; defaults are the KoBERT NSMC tutorial's."""

    model: str = KOBERT_HUB_ID
    text_col: str | None = None
    label_col: str | None = None
    test_size: float = 0.1
    tokenizer_mode: str = "gluonnlp"
    max_len: int = 64
    batch_size: int = 64
    epochs: int = 2
    lr: float | None = None  # None: 5e-5 for KoBERT, TINY_LR for tiny
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    dropout: float = 0.5
    max_grad_norm: float = 1.0
    log_interval: int = 200
    seed: int = 42
    precision: str = "auto"
    cpu_mode: bool = False  # train only the top CPU_MODE_LAYERS layers

    @property
    def learning_rate(self) -> float:
        if self.lr is not None:
            return self.lr
        return TINY_LR if self.model == TINY else 5e-5

    def check(self, train_rows: int | None = None) -> None:
        """Raise ConfigError (a ValueError) with one sentence for a setting that cannot work; with train_rows,
        also when the run would take more than MAX_STEPS steps."""
        problems = {
            "config_epochs": self.epochs < 1,
            "config_epochs_max": self.epochs > MAX_EPOCHS,
            "config_batch_size": self.batch_size < 1,
            "config_batch_size_max": self.batch_size > MAX_BATCH_SIZE,
            "config_max_len": not 8 <= self.max_len <= 512,
            "config_lr": self.lr is not None and self.lr <= 0,
            "config_warmup": not 0 <= self.warmup_ratio < 1,
            "config_weight_decay": self.weight_decay < 0,
            "config_dropout": not 0 <= self.dropout < 1,
            "config_max_grad_norm": self.max_grad_norm <= 0,
            "config_log_interval": self.log_interval < 1,
            "config_test_size": not 0 < self.test_size < 1,
            "config_precision": self.precision not in PRECISIONS,
            "config_tokenizer_mode": self.tokenizer_mode not in ("gluonnlp", "whole"),
        }
        for key, failed in problems.items():
            if failed:
                limit = MAX_EPOCHS if key == "config_epochs_max" else MAX_BATCH_SIZE
                raise ConfigError(key, choices=", ".join(PRECISIONS), limit=limit)
        steps = self.total_steps(train_rows) if train_rows is not None else 0
        if steps > MAX_STEPS:
            raise ConfigError(
                "config_total_steps", rows=train_rows, batch_size=self.batch_size, epochs=self.epochs, steps=steps,
                limit=MAX_STEPS,
            )  # fmt: skip

    def total_steps(self, train_rows: int) -> int:
        """Optimizer steps for train_rows rows (the last, partial batch counts)."""
        return -(-train_rows // self.batch_size) * self.epochs

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> TrainConfig:
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
