"""TrainConfig: the tutorial's hyperparameters in one place, serialisable to JSON, and the one schema of settings.

Each field carries a `Setting` (its help, bounds, choices and form hints) as dataclass metadata. From it come the
CLI's `train` flags (cli.py), `TrainConfig.check()`, the Train tab's widgets (ui/train_tab.py) and the checking of
the web form's and the API's options (`TrainConfig.from_options`). Adding a setting is one field here, its
catalogue keys in messages.py, and its test.
"""

from __future__ import annotations

import json
import math
import typing
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from kobert_demo.basics import files
from kobert_demo.basics.errors import UserFacingError

KOBERT_HUB_ID = "skt/kobert-base-v1"
TINY = "tiny"
# A trained model folder's weights, and the figures saved with them (model.save_classifier); here so that runs.py
# reads them without torch.
WEIGHTS_FILE = "model.safetensors"
METRICS_FILE = "metrics.json"
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
MODES = ("gluonnlp", "whole")  # KoBERT's tokenizer splitting modes (tokenizer.py); here so the CLI needs no torch
BEST_METRICS = ("accuracy", "macro_f1")  # what chooses the kept model on the validation data
CLASS_WEIGHTS = ("none", "balanced")  # balanced: each class's loss weighted by the inverse of its frequency

# The KoBERT NSMC tutorial's fine-tuning rate, for every pretrained backbone: KoELECTRA's own NSMC config uses it
# too (finetune/config/nsmc/koelectra-base-v3.json), and no other curated model's card recommends a rate.
KOBERT_LR = 5e-5
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
# numpy's seeds (accelerate's set_seed seeds it too) are 0 to 2**32 - 1; anything else fails the run at its start.
MAX_SEED = 2**32 - 1

SETTING = "setting"  # the dataclass metadata key that holds a field's Setting


class ConfigError(UserFacingError, ValueError):
    """A training setting that cannot work, as one sentence (English and Korean)."""


@dataclass(frozen=True)
class Setting:
    """How one TrainConfig field is explained, bounded and offered: the CLI, the web form and the API read this.

    Messages are catalogue keys (messages.py). A bound message may use the fields {minimum}, {maximum} and
    {choices}, filled from the bounds here, so a number is written once.
    """

    help: str  # the CLI's help (English) and the form's info line
    label: str | None = None  # the form's label; None: no generated widget (the backbone and columns have their own)
    minimum: float | None = None
    maximum: float | None = None
    above_minimum: bool = False  # the minimum itself is out of bounds
    below_maximum: bool = False  # the maximum itself is out of bounds
    choices: tuple[str, ...] = ()
    error: str | None = None  # the sentence for a value out of bounds or not among the choices
    error_max: str | None = None  # a sentence of its own for a value above the maximum (default: error)
    flag: str | None = None  # the CLI flag when it is not --field-name
    cli_default: str | None = None  # what `--help` gives as the default when the field's default is None
    advanced: bool = False  # in the form's "Advanced settings" accordion
    step: float | None = None  # the form's step for a number
    slider: tuple[float, float] | None = None  # the form shows a slider over this range (inside the bounds)

    def problem(self, value: Any) -> str | None:
        """The message key for a value this setting refuses, or None when it is fine (None always is)."""
        if value is None:
            return None
        if self.choices and value not in self.choices:
            return self.error
        if self.minimum is not None and (value < self.minimum or (self.above_minimum and value == self.minimum)):
            return self.error
        if self.maximum is not None and (value > self.maximum or (self.below_maximum and value == self.maximum)):
            return self.error_max or self.error
        return None

    def bounds(self) -> dict[str, str]:
        """The fields a bound message may use, as shown to people (1, not 1.0)."""
        return {"minimum": _shown(self.minimum), "maximum": _shown(self.maximum), "choices": ", ".join(self.choices)}


def _shown(number: float | None) -> str:
    """A bound as a sentence shows it: `1`, `0.5`, `1024`."""
    return "" if number is None else f"{number:g}" if isinstance(number, float) else str(number)


def setting(default: Any, spec: Setting) -> Any:
    """A dataclass field with its default and its Setting."""
    return field(default=default, metadata={SETTING: spec})


@dataclass(frozen=True)
class ConfigField:
    """A TrainConfig field as the CLI, the form and the API see it: name, plain type, default and Setting."""

    name: str
    type: type  # bool, int, float or str (without the None of an optional field)
    default: Any
    setting: Setting

    @property
    def flag(self) -> str:
        """The CLI flag (`--batch-size`)."""
        return f"--{self.setting.flag or self.name.replace('_', '-')}"

    @property
    def elem_id(self) -> str:
        """The form widget's element id (`batch-size`)."""
        return self.name.replace("_", "-")

    def parse(self, value: Any) -> Any:
        """A loosely typed value (the web form's, a JSON request's) as this field's type; ConfigError otherwise."""
        if self.type is bool:
            if isinstance(value, bool):
                return value
            word = str(value).strip().lower()
            if word not in ("true", "false", "1", "0"):
                raise ConfigError("config_not_a_boolean", name=self.name, value=str(value)[:40])
            return word in ("true", "1")
        if self.type in (int, float):
            return self._number(_read_number(value) if isinstance(value, str) else value, shown=str(value)[:40])
        return str(value)

    def _number(self, value: Any, shown: str) -> int | float:
        """value as this field's number: a bool, NaN, an infinity or (for an int field) a fraction raises
        ConfigError; an int field takes 2.0 as 2. shown: the value as the sentence quotes it."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError("err_not_a_number", name=self.name, value=shown)
        if self.type is float:
            if not math.isfinite(value):
                raise ConfigError("config_not_finite", name=self.name, value=shown)
            return float(value)
        if isinstance(value, float) and not value.is_integer():  # is_integer() is False for NaN and infinities too
            raise ConfigError("config_not_whole", name=self.name, value=shown)
        return int(value)


def _read_number(text: str) -> int | float | str:
    """text's number: an int when it is written as one (every digit kept: 4294967295), else a float ("2.9", "nan",
    "1e3"); text itself when it is no number, for _number to refuse."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


Config = TypeVar("Config", bound="TrainConfig")


@dataclass
class TrainConfig:
    """Everything a run needs besides its data; defaults are the KoBERT NSMC tutorial's.

    Fields are in the web form's order. Each carries its Setting (see the module's docstring).
    """

    model: str = setting(KOBERT_HUB_ID, Setting("help_model"))
    text_col: str | None = setting(None, Setting("help_text_col"))  # None: detected
    label_col: str | None = setting(None, Setting("help_label_col"))
    epochs: int = setting(
        2,
        Setting(
            "help_epochs", "epochs", minimum=1, maximum=MAX_EPOCHS, error="config_epochs",
            error_max="config_epochs_max",
        ),
    )  # fmt: skip
    batch_size: int = setting(
        64,
        Setting(
            "help_batch_size", "batch_size", minimum=1, maximum=MAX_BATCH_SIZE, error="config_batch_size",
            error_max="config_batch_size_max",
        ),
    )  # fmt: skip
    max_len: int = setting(64, Setting("help_max_len", "max_len", minimum=8, maximum=512, error="config_max_len"))
    lr: float | None = setting(
        None,  # the backbone's: default_lr(model)
        Setting(
            "help_lr", "lr", minimum=0.0, above_minimum=True, error="config_lr", step=1e-5,
            cli_default=f"{KOBERT_LR:g}; {TINY_LR:g} for {TINY}",
        ),
    )  # fmt: skip
    cpu_mode: bool = setting(False, Setting("cpu_mode_help", "cpu_mode"))  # train only the top CPU_MODE_LAYERS
    warmup_ratio: float = setting(
        0.1,
        Setting(
            "help_warmup_ratio", "warmup", minimum=0.0, maximum=1.0, below_maximum=True, error="config_warmup",
            advanced=True, step=0.01,
        ),
    )  # fmt: skip
    weight_decay: float = setting(
        0.01,
        Setting(
            "help_weight_decay", "weight_decay", minimum=0.0, error="config_weight_decay", advanced=True, step=0.01
        ),
    )
    dropout: float = setting(
        0.5,
        Setting(
            "help_dropout", "dropout", minimum=0.0, maximum=1.0, below_maximum=True, error="config_dropout",
            advanced=True, step=0.05,
        ),
    )  # fmt: skip
    max_grad_norm: float = setting(
        1.0,
        Setting(
            "help_max_grad_norm", "grad_clip", minimum=0.0, above_minimum=True, error="config_max_grad_norm",
            advanced=True, step=0.1,
        ),
    )  # fmt: skip
    log_interval: int = setting(
        200, Setting("help_log_interval", "log_interval", minimum=1, error="config_log_interval", advanced=True)
    )
    seed: int = setting(
        42, Setting("help_seed", "seed", minimum=0, maximum=MAX_SEED, error="config_seed", advanced=True)
    )
    precision: str = setting(
        "auto", Setting("help_precision", "precision", choices=PRECISIONS, error="config_precision", advanced=True)
    )
    tokenizer_mode: str = setting(
        MODES[0],
        Setting(
            "help_tokenizer_mode", "tokenizer_mode", choices=MODES, error="config_tokenizer_mode", flag="mode",
            advanced=True,
        ),
    )  # fmt: skip
    test_size: float = setting(
        0.1,
        Setting(
            "help_test_size", "test_size", minimum=0.0, maximum=1.0, above_minimum=True, below_maximum=True,
            error="config_test_size", advanced=True, step=0.05, slider=(0.05, 0.5),
        ),
    )  # fmt: skip
    validation_size: float = setting(
        0.1,
        Setting(
            "help_validation_size", "validation_size", minimum=0.0, maximum=0.5, above_minimum=True,
            error="config_validation_size", advanced=True, step=0.05, slider=(0.05, 0.5),
        ),
    )  # fmt: skip
    eval_steps: int = setting(
        0, Setting("help_eval_steps", "eval_steps", minimum=0, error="config_eval_steps", advanced=True)
    )  # 0: validation at each epoch's end only
    best_metric: str = setting(
        BEST_METRICS[0],
        Setting("help_best_metric", "best_metric", choices=BEST_METRICS, error="config_best_metric", advanced=True),
    )
    early_stopping_patience: int = setting(
        0,
        Setting(
            "help_early_stopping_patience", "early_stopping_patience", minimum=0, maximum=MAX_EPOCHS,
            error="config_early_stopping_patience", advanced=True,
        ),
    )  # fmt: skip  # 0: off, the tutorial's recipe
    early_stopping_min_delta: float = setting(
        0.0,
        Setting(
            "help_early_stopping_min_delta", "early_stopping_min_delta", minimum=0.0, maximum=1.0,
            error="config_early_stopping_min_delta", advanced=True, step=0.001,
        ),
    )  # fmt: skip
    class_weights: str = setting(
        CLASS_WEIGHTS[0],
        Setting(
            "help_class_weights", "class_weights", choices=CLASS_WEIGHTS, error="config_class_weights", advanced=True
        ),
    )
    init_from: str | None = setting(None, Setting("help_init_from"))  # "Continue training": no generated widget

    def __post_init__(self) -> None:
        """Every way in (the CLI's flags, the form, the API, a stored config.json, Python) gets each setting as its
        field's type, or ConfigError: "NaN" or 2.9 epochs never reach a run. Bounds are check()'s."""
        for spec in config_fields(type(self)).values():
            value = getattr(self, spec.name)
            if value is not None:
                setattr(self, spec.name, spec.parse(value))

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else default_lr(self.model)

    def check(self, train_rows: int | None = None) -> None:
        """Raise ConfigError (a ValueError) with one sentence for a setting out of its Setting's bounds; with
        train_rows, also when the run would take more than MAX_STEPS steps."""
        for spec in config_fields(type(self)).values():
            key = spec.setting.problem(getattr(self, spec.name))
            if key:
                raise ConfigError(key, **spec.setting.bounds())
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
    def from_dict(cls: type[Config], data: dict) -> Config:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def from_options(cls: type[Config], options: Mapping[str, Any], **fixed: Any) -> Config:
        """A checked config from the web form's or an API request's options, on top of the fixed values (the
        model): unknown names, values of the wrong type and values out of bounds each raise ConfigError.
        An empty value ("" or None) keeps the default."""
        specs = config_fields(cls)
        unknown = sorted(str(name) for name in options if name not in specs or name in fixed)
        if unknown:
            raise ConfigError("err_unknown_options", names=", ".join(unknown))
        config = cls(**fixed, **{name: value for name, value in options.items() if value not in ("", None)})
        config.check()
        return config

    def save(self, path: Path) -> None:
        files.write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: Path) -> TrainConfig:
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))


def default_lr(model: str) -> float:
    """The learning rate a backbone trains at unless told otherwise."""
    return TINY_LR if model == TINY else KOBERT_LR


@cache
def config_fields(config: type[TrainConfig] = TrainConfig) -> dict[str, ConfigField]:
    """Every field of config (TrainConfig or a subclass) with its plain type and Setting, in field order (one dict
    per class, shared: read it, do not change it)."""
    hints = typing.get_type_hints(config)
    return {f.name: ConfigField(f.name, _plain(hints[f.name]), f.default, f.metadata[SETTING]) for f in fields(config)}


def _plain(hint: Any) -> type:
    """`int` for `int`, `float` for `float | None`."""
    args = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    return args[0] if args else hint
