"""TrainConfig: the tutorial's hyperparameters in one place, serialisable to JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

KOBERT_HUB_ID = "skt/kobert-base-v1"
TINY = "tiny"
PRECISIONS = ("auto", "bf16", "fp16", "fp32")

# A randomly initialised model learns nothing at KoBERT's fine-tuning rate; this is tiny's default instead.
TINY_LR = 1e-3
# CPU mode trains only this many top encoder layers (plus pooler and classifier); the rest run frozen, without
# autograd. See the README's speed section for what it costs and saves.
CPU_MODE_LAYERS = 2


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

    def check(self) -> None:
        """Raise ValueError with one sentence for a setting that cannot work."""
        problems = {
            "epochs must be at least 1": self.epochs < 1,
            "batch size must be at least 1": self.batch_size < 1,
            "max length must be between 8 and 512": not 8 <= self.max_len <= 512,
            "learning rate must be positive": self.lr is not None and self.lr <= 0,
            "warmup ratio must be between 0 and 1": not 0 <= self.warmup_ratio < 1,
            "weight decay must not be negative": self.weight_decay < 0,
            "dropout must be between 0 and 1": not 0 <= self.dropout < 1,
            "max grad norm must be positive": self.max_grad_norm <= 0,
            "log interval must be at least 1": self.log_interval < 1,
            "test size must be between 0 and 1": not 0 < self.test_size < 1,
            f"precision must be one of {', '.join(PRECISIONS)}": self.precision not in PRECISIONS,
            "tokenizer mode must be gluonnlp or whole": self.tokenizer_mode not in ("gluonnlp", "whole"),
        }
        for message, failed in problems.items():
            if failed:
                raise ValueError(message)

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
