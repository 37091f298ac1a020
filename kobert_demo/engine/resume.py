"""Resumable training state: the run folder's `checkpoint/`, written at each validation evaluation.

```
RUN/checkpoint/
  model.safetensors   the training model's weights (head included)
  state.pt            optimizer, scheduler, grad scaler, RNG states (torch CPU and CUDA, Python's `random`, the NumPy
                      generator behind FastDropout's masks)
  position.json       where training was: epoch, batch within it, global step, best so far, patience count, ... (the
                      loop's own dict, stored as given) and the data's fingerprint
```
A resumed run loads all of it and goes on from the next batch: the batch order is the same every epoch
(train.make_batches, seeded), so a position in an epoch is the number of batches to skip, and with every random
state restored the resumed steps are the ones an uninterrupted run takes. The folder is written whole or not at all
(files.atomic_folder): a kill while it is written leaves the previous checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model, save_model

from kobert_demo.basics import files
from kobert_demo.basics.config import TrainConfig
from kobert_demo.basics.data import Splits
from kobert_demo.basics.errors import UserFacingError
from kobert_demo.basics.runs import POSITION_FILE, Run, check_same_classes, init_source
from kobert_demo.engine.classifier import Classifier, dropout_generator
from kobert_demo.engine.loading import load_backbone, load_classifier

WEIGHTS = "model.safetensors"
STATE = "state.pt"
POSITION = POSITION_FILE


class ResumeError(UserFacingError, ValueError):
    """A checkpoint that cannot resume this run (missing, damaged, or for other data)."""


def rng_state(model: torch.nn.Module) -> dict[str, Any]:
    """Every random state training draws from: torch's (CPU and each GPU), Python's, and FastDropout's generator."""
    generator = dropout_generator(model)
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": random.getstate(),
        "numpy": generator.bit_generator.state if generator is not None else None,
    }


def set_rng_state(model: torch.nn.Module, state: dict[str, Any]) -> None:
    """Put back what rng_state took (a GPU state only where this machine has as many GPUs)."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    random.setstate(state["python"])
    generator = dropout_generator(model)
    if generator is not None and state["numpy"] is not None:
        generator.bit_generator.state = state["numpy"]


def save_checkpoint(
    folder: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler | None,
    position: dict[str, Any],
) -> None:
    """Write the training state into folder, replacing what was there whole; model: the unwrapped training model."""
    state = {
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
        "rng": rng_state(model),
    }
    with files.atomic_folder(folder) as tmp:
        save_model(model, str(tmp / WEIGHTS))  # save_model, not save_file: it handles tied weights
        torch.save(state, tmp / STATE)
        files.write_json(tmp / POSITION, position)


def load_checkpoint(
    folder: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler | None,
) -> dict[str, Any]:
    """Load the training state saved by save_checkpoint into these objects (the RNG states last, so that nothing
    built here draws from them after) and return the position."""
    folder = Path(folder)
    position = read_position(folder)
    try:
        state = torch.load(folder / STATE, weights_only=True)
        load_model(model, str(folder / WEIGHTS))
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and state["scaler"] is not None:
            scaler.load_state_dict(state["scaler"])
    except (OSError, RuntimeError, KeyError, ValueError) as error:
        raise ResumeError("resume_checkpoint_damaged", reason=type(error).__name__) from None
    set_rng_state(model, state["rng"])
    return position


def read_position(folder: str | Path) -> dict[str, Any]:
    """The position a checkpoint was saved at; ResumeError when there is none or it cannot be read."""
    files.recover_folder(Path(folder))  # a swap killed between its two renames (where renameat2 is missing)
    try:
        position = files.read_json(Path(folder) / POSITION)
    except FileNotFoundError:
        raise ResumeError("resume_no_checkpoint", run=Path(folder).parent.name) from None
    except ValueError:
        raise ResumeError("resume_checkpoint_damaged", reason="position.json") from None
    if not isinstance(position, dict):
        raise ResumeError("resume_checkpoint_damaged", reason="position.json")
    return position


def data_fingerprint(*columns: list) -> str:
    """A digest of the training data (texts and labels of each split, in order): a resumed run must train on the
    same rows in the same order, or its batches would not be the interrupted run's."""
    digest = hashlib.sha256()
    for column in columns:
        digest.update(json.dumps(column, ensure_ascii=False).encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


@dataclass
class Position:
    """Where training is, as a checkpoint keeps it: the loop goes on from the batch after `batch` of `epoch`, with
    the best evaluation so far, the early-stopping count and what is known of the kept model."""

    epoch: int = 1
    batch: int = 0  # batches of epoch done; steps_per_epoch: the epoch is complete
    step: int = 0
    elapsed: float = 0.0  # training seconds so far (a resumed run's clock goes on from here)
    sums: tuple[float, int, int] = (0.0, 0, 0)  # the epoch's training loss sum, rows right and rows seen so far
    keeper: dict[str, Any] = field(default_factory=dict)  # train.Keeper's best so far and evaluations since
    kept: dict[str, Any] = field(default_factory=dict)  # train.Kept's evaluation (its weights: the run's model/)
    plain_transformers: str | None = None  # why the kept model folder has no tokenizer.json, if it has none
    data: str = ""  # data_fingerprint of the splits
    steps_per_epoch: int = 0
    log_bytes: int = 0  # the run log's length when the checkpoint was saved (runs.Run.reopen cuts it back to it)

    @property
    def next_epoch(self) -> int:
        """The epoch the loop goes on with."""
        return self.epoch + (self.batch > 0 and self.batch >= self.steps_per_epoch)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Position:
        data = {**data, "sums": tuple(data.get("sums", (0.0, 0, 0)))}
        return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})


def save_at(run: Run, model: torch.nn.Module, trainer: Any, position: Position) -> None:
    """Save the run's checkpoint at position (after the events up to it are logged: the log's length goes in).
    trainer: what holds the optimizer, scheduler and scaler (train.Stepper)."""
    position.log_bytes = run.log_path.stat().st_size
    save_checkpoint(run.checkpoint_dir, model, trainer.optimizer, trainer.scheduler, trainer.scaler, asdict(position))


def resume_at(folder: Path, model: torch.nn.Module, trainer: Any, data: str, steps_per_epoch: int) -> Position:
    """Load the checkpoint in folder into the model and trainer's optimizer, scheduler and scaler (train.Stepper);
    its position. Refused when the data is not the data it was saved with (a resumed run must take the same
    batches)."""
    position = Position.from_json(read_position(folder))
    if position.data != data or position.steps_per_epoch != steps_per_epoch:
        raise ResumeError("resume_data_changed", run=folder.parent.name)
    load_checkpoint(folder, model, trainer.optimizer, trainer.scheduler, trainer.scaler)
    return position


def continued_config(config: TrainConfig, home: Path | None) -> TrainConfig:
    """config with the backbone of the run it continues (config.init_from), so that its card, its memory estimate
    and its default learning rate are that backbone's and not the form's or the CLI's default (KoBERT)."""
    if not config.init_from:
        return config
    return replace(config, model=init_source(config.init_from, home).config()["model"])


def initial_classifier(config: TrainConfig, splits: Splits, home: Path | None, batch_size: int) -> Classifier:
    """The classifier a run starts from: a fresh head on config.model's backbone, or, to continue training
    (config.init_from), a finished run's whole model, refused unless its classes are the data's. home: the runs
    home of the new run, where a bare run name is looked for first."""
    if not config.init_from:
        return load_backbone(
            config.model, splits.label_names, config.dropout, config.tokenizer_mode, config.max_len,
            train_texts=splits.train_texts, seed=config.seed, batch_size=batch_size,
        )  # fmt: skip
    source = init_source(config.init_from, home)
    check_same_classes(source, splits.label_names)
    # The same classes come in the same order (data.label_order), so the head's ids are the data's.
    return load_classifier(source.model_dir)
