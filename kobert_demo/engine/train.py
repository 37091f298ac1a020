"""Fine-tuning as a generator of typed events (start, step, epoch, done, error: see events.py), cancellable between
steps.

No UI code here: the CLI, the web app's background jobs and the tests all consume `train()`. When given a run
folder it also writes the event log (with its summary), the status and the model there; a failure is stored as its
message key and parameters, never as a finished sentence.

The model kept is the best evaluation on the validation data by `config.best_metric` (each epoch's end, and every
`eval_steps` steps if set), and early stopping counts evaluations without improvement. The test data never chooses
anything (choosing the best epoch by its test accuracy would overstate it): each epoch's test figures are logged as
the tutorial does, and the run's test figures are the kept model's, measured once at the end. Data without
validation rows (a `Splits` built by hand) keeps the last completed epoch, as the tutorial did.
"""

from __future__ import annotations

import errno
import json
import random
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import NamedTuple

import torch
from accelerate import Accelerator
from accelerate.utils import gather_object, set_seed
from transformers import get_cosine_schedule_with_warmup

from kobert_demo.basics import files
from kobert_demo.basics.config import ADAM_EPSILON, CPU_MODE_LAYERS, METRICS_FILE, WEIGHTS_FILE, TrainConfig
from kobert_demo.basics.cpu import has_bf16
from kobert_demo.basics.data import Splits
from kobert_demo.basics.errors import UserFacingError
from kobert_demo.basics.events import (
    DoneEvent,
    EpochEvent,
    ErrorEvent,
    EvalEvent,
    Event,
    NoticeEvent,
    StartEvent,
    StepEvent,
    params_to_json,
)
from kobert_demo.basics.messages import Term
from kobert_demo.basics.metrics import balanced_class_weights, classification_metrics, not_learned
from kobert_demo.basics.runs import CHECKPOINT_DIR, Run
from kobert_demo.engine.checkpoints import describe_source
from kobert_demo.engine.classifier import Classifier, freeze_lower_layers, training_forward, use_fast_dropout
from kobert_demo.engine.loading import save_classifier
from kobert_demo.engine.resume import (
    Position,
    continued_config,
    data_fingerprint,
    initial_classifier,
    resume_at,
    save_at,
)

MISTAKES_KEPT = 20


class TrainingError(UserFacingError, RuntimeError):
    """Training cannot go on (NaN loss, out of memory, a full disk), as one sentence for the user."""


# --- devices and precision ----------------------------------------------------------------------------------------
def resolve_precision(precision: str, device: torch.device) -> str:
    """`auto` -> bf16 on GPUs and CPUs that have it, fp16 on older GPUs, else fp32."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "cpu" and has_bf16():
        return "bf16"
    return "fp32"


def autocast(device: torch.device, precision: str):
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


def make_accelerator() -> Accelerator:
    """One Accelerator per process (its state is global); CPU processes join a gloo group under torchrun."""
    has_gpu = torch.cuda.is_available() or torch.backends.mps.is_available()
    return Accelerator(cpu=not has_gpu)


# --- batches ------------------------------------------------------------------------------------------------------
def make_batches(lengths: list[int], batch_size: int, seed: int, shuffle: bool) -> list[list[int]]:
    """Training: batches of rows in a seeded random order, the same every epoch. Evaluation: rows sorted by length.

    The tutorial's DataLoader did not shuffle: it read NSMC's rows in file order, which is itself random. A seeded
    order gives the same mix whatever order a user's file is in (sorted by label, say).
    """
    order = list(range(len(lengths)))
    if shuffle:
        random.Random(seed).shuffle(order)
    else:
        order.sort(key=lambda i: lengths[i])
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


class Collator:
    """Pads a batch of (ids, label, index) rows to its longest row, rounded up to a multiple of 16.

    The model drops the padding again but for attention, where it is masked; rounding leaves attention four shapes
    instead of one per length, and each shape builds and caches its own kernels (0.6 GB on `tiny`'s NSMC epoch).
    """

    def __init__(self, classifier: Classifier) -> None:
        self.tokenizer = classifier.tokenizer

    def __call__(self, rows: list[tuple[list[int], int, int]]) -> dict:
        batch = self.tokenizer.pad([ids for ids, _, _ in rows], multiple=16)
        batch["labels"] = torch.tensor([label for _, label, _ in rows])
        batch["index"] = torch.tensor([index for _, _, index in rows])
        return batch


def make_loader(
    ids: list[list[int]], labels: list[int], batch_size: int, seed: int, shuffle: bool, collate: Collator
) -> torch.utils.data.DataLoader:
    rows = [(row, label, index) for index, (row, label) in enumerate(zip(ids, labels))]
    batches = make_batches([len(r) for r in ids], batch_size, seed, shuffle)
    return torch.utils.data.DataLoader(rows, batch_sampler=batches, collate_fn=collate)


def decay_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on weights, none on biases and LayerNorm (the tutorial's groups)."""
    no_decay = ("bias", "LayerNorm.weight")
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return [
        {"params": [p for n, p in params if not any(k in n for k in no_decay)], "weight_decay": weight_decay},
        {"params": [p for n, p in params if any(k in n for k in no_decay)], "weight_decay": 0.0},
    ]


def training_model(
    classifier: Classifier, cpu_mode: bool, class_weights: list[float] | None = None
) -> tuple[torch.nn.Module, list[torch.nn.Module], str]:
    """The classifier as it trains: padding-free where that is proven for its config (else padded, and the third
    value says why), in CPU mode with all but its top layers frozen, and its loss weighted by class_weights (one
    per class, for class_weights=balanced) if given."""
    frozen = freeze_lower_layers(classifier.model, CPU_MODE_LAYERS) if cpu_mode else []
    use_fast_dropout(classifier.model)
    model, forward = training_forward(classifier.model, class_weights)
    return model, frozen, forward


def train_mode(model: torch.nn.Module, frozen: list[torch.nn.Module]) -> None:
    """Training mode, except frozen layers: they run as fixed feature extractors (no dropout)."""
    model.train()
    for module in frozen:
        module.eval()


@dataclass
class Stepper:
    """One optimisation step: forward under autocast, backward (scaled for fp16), clip, step, schedule."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    accelerator: Accelerator
    precision: str
    max_grad_norm: float

    def __post_init__(self) -> None:
        self.scaler = torch.amp.GradScaler(self.accelerator.device.type, enabled=self.precision == "fp16")

    def __call__(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss, logits) of the batch, after the update."""
        with autocast(self.accelerator.device, self.precision):
            out = self.model(**batch)
        if not torch.isfinite(out.loss):
            raise TrainingError("loss_not_finite", value=out.loss.item())
        if self.scaler.is_enabled():
            self.scaler.scale(out.loss).backward()
        else:
            self.accelerator.backward(out.loss)
        if self.scaler.is_enabled():
            self.scaler.unscale_(self.optimizer)
        self.accelerator.clip_grad_norm_(self.model.parameters(), self.max_grad_norm)
        if self.scaler.is_enabled():
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return out.loss.detach(), out.logits.detach()


# --- evaluation ---------------------------------------------------------------------------------------------------
class Predictions(NamedTuple):
    """A model's answers on one data set, in row order (gathered across processes)."""

    indices: list[int]
    truth: list[int]
    predicted: list[int]
    confidence: list[float]
    loss: float  # mean cross-entropy of the true labels, unweighted (whatever weights the training loss has)


@torch.inference_mode()
def evaluate(model: torch.nn.Module, loader, accelerator: Accelerator) -> Predictions:
    """The model's predictions over the whole loader, gathered across processes.

    In fp32 whatever the training precision, so that `evaluate` on the saved model later gives the same numbers.
    """
    model.eval()
    rows: dict[int, tuple[int, int, float, float]] = {}
    for batch in loader:
        index, labels = batch.pop("index"), batch.pop("labels")
        logits = model(**batch).logits.float()
        top, pred = logits.softmax(-1).max(-1)
        nll = torch.nn.functional.cross_entropy(logits, labels.to(logits.device), reduction="none")
        rows.update(zip(index.tolist(), zip(labels.tolist(), pred.tolist(), top.tolist(), nll.tolist())))
    if accelerator.num_processes > 1:
        # Shards differ in size and some rows repeat to even them out: gather as objects, keep each row once.
        rows = {i: row for shard in gather_object([rows]) for i, row in shard.items()}
    indices = sorted(rows)
    truth, predicted, confidence, nll = (list(column) for column in zip(*(rows[i] for i in indices)))
    return Predictions(indices, truth, predicted, confidence, sum(nll) / len(nll))


def _mistakes(splits: Splits, answers: Predictions) -> list[dict]:
    """The most confident mistakes on the test data: the most telling ones."""
    wrong = [(c, i, t, p) for i, t, p, c in zip(*answers[:4]) if t != p]
    wrong.sort(reverse=True)
    names = splits.label_names
    return [
        {"text": splits.test_texts[i], "label": names[t], "predicted": names[p], "confidence": round(c, 4)}
        for c, i, t, p in wrong[:MISTAKES_KEPT]
    ]


def valid_metrics(answers: Predictions, label_names: list[str]) -> dict:
    """classification_metrics of the validation data, with its loss."""
    return {**classification_metrics(answers.truth, answers.predicted, label_names), "loss": round(answers.loss, 6)}


@dataclass
class Keeper:
    """Which evaluation on the validation data is kept: the first, then any that beats the best by more than
    min_delta; and how many evaluations in a row have not (early stopping stops at `patience`, 0: never)."""

    metric: str
    min_delta: float = 0.0
    patience: int = 0
    best_value: float | None = None
    best_epoch: int | None = None
    best_step: int | None = None
    since_best: int = 0

    def judge(self, value: float, epoch: int, step: int) -> bool:
        """Take in one evaluation's value; whether it is the new kept one."""
        improved = self.best_value is None or value > self.best_value + self.min_delta
        if improved:
            self.best_value, self.best_epoch, self.best_step, self.since_best = value, epoch, step, 0
        else:
            self.since_best += 1
        return improved

    @property
    def exhausted(self) -> bool:
        """Whether early stopping ends the run now."""
        return self.patience > 0 and self.since_best >= self.patience


# --- training -----------------------------------------------------------------------------------------------------
def train(
    config: TrainConfig,
    splits: Splits,
    out: str | Path | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    meta: dict | None = None,
    resume: bool = False,
) -> Iterator[Event]:
    """Fine-tune and yield events; with `out`, the main process also keeps the run folder there. resume: go on from
    the checkpoint of the run folder out (an interrupted, stopped or failed run, or one queued to resume), whose log
    goes back to that checkpoint and then reads as if the run had never stopped, but for a notice."""
    run: Run | None = None
    accelerator = make_accelerator()
    try:
        config.check()
        config = continued_config(config, Path(out).parent if out is not None else None)
        if resume and out is None:
            raise ValueError("resume needs the run folder (out)")
        if out is not None and accelerator.is_main_process:
            if resume:
                run, _ = Run.reopen(out)
            else:
                meta = {**(meta or {}), "processes": accelerator.num_processes}
                run = Run.create(out, config, splits.label_names, meta)
        checkpoint = Path(out) / CHECKPOINT_DIR if resume else None
        for event in _train(config, splits, run, should_stop, accelerator, checkpoint):
            if run and not (resume and isinstance(event, StartEvent)):  # a resumed log has its start already
                run.append(event)
            yield event
    except torch.OutOfMemoryError:
        yield _fail(run, TrainingError("gpu_out_of_memory"))
    except OSError as error:
        yield _fail(run, describe_os_error(error))
    except UserFacingError as error:  # a setting, the data, the backbone, a NaN loss, a run folder taken
        yield _fail(run, error)
    except ValueError as error:  # a library's sentence, in English only
        yield _fail(run, TrainingError("train_failed_detail", detail=str(error)))
    except Exception as error:  # a bug: keep the traceback beside the run, tell the user in one line
        if run:
            files.write_text(run.path / "error.txt", traceback.format_exc())
        yield _fail(run, TrainingError("train_unexpected", kind=type(error).__name__, detail=str(error)))
    finally:
        accelerator.free_memory()


def describe_os_error(error: OSError) -> TrainingError:
    """One sentence for a file-system failure; a full disk named as such."""
    full = error.errno == errno.ENOSPC
    if error.filename:
        return TrainingError(
            "disk_full_writing" if full else "os_error_writing",
            file=error.filename,
            reason=error.strerror or str(error),
        )
    return TrainingError("disk_full") if full else TrainingError("os_error", reason=error.strerror or str(error))


def _fail(run: Run | None, error: UserFacingError) -> ErrorEvent:
    """The error event, also logged, and the error stored as the failed run's reason."""
    event = ErrorEvent.of(error)
    if run:
        try:
            run.append(event)
            run.set_status("failed", error)
        except OSError:  # the disk that failed the run may refuse these too; the event still reaches the user
            pass
    return event


def _train(
    config: TrainConfig,
    splits: Splits,
    run: Run | None,
    should_stop: Callable[[], bool],
    accelerator: Accelerator,
    checkpoint: Path | None = None,
) -> Iterator[Event]:
    """The loop; checkpoint: the folder of the checkpoint to resume from."""
    set_seed(config.seed)
    device = accelerator.device
    precision = resolve_precision(config.precision, device)

    # The batch size is the global one, as in the tutorial: N processes take batch_size / N rows each.
    per_process = max(1, config.batch_size // accelerator.num_processes)
    # Load the backbone (refused if training it at this batch size and max_len is over the memory budget), tokenize
    classifier = initial_classifier(config, splits, run.path.parent if run else None, per_process)
    # The tokenizer's own max_len: config.max_len, or less where the model has fewer positions (a RoBERTa with 512
    # position embeddings takes 510 tokens).
    tokenizer = classifier.tokenizer
    train_ids = tokenizer.encode_batch(splits.train_texts)
    test_ids = tokenizer.encode_batch(splits.test_texts)
    valid_ids = tokenizer.encode_batch(splits.valid_texts) if splits.valid_texts else []  # (fast tokenizers fail on [])

    # Dataloaders, optimizer, schedule
    collate = Collator(classifier)
    train_loader = make_loader(train_ids, splits.train_labels, per_process, config.seed, True, collate)
    test_loader = make_loader(test_ids, splits.test_labels, config.batch_size * 2, config.seed, False, collate)
    valid_loader = make_loader(valid_ids, splits.valid_labels, config.batch_size * 2, config.seed, False, collate)
    weights = balanced_class_weights(splits.train_labels, len(splits.label_names))
    model, frozen, forward = training_model(
        classifier, config.cpu_mode, weights if config.class_weights == "balanced" else None
    )
    optimizer = torch.optim.AdamW(
        decay_groups(model, config.weight_decay),
        lr=config.learning_rate,
        eps=ADAM_EPSILON,
        fused=device.type in ("cpu", "cuda"),
    )
    model, optimizer, train_loader, test_loader, valid_loader = accelerator.prepare(
        model, optimizer, train_loader, test_loader, valid_loader
    )
    steps_per_epoch = len(train_loader)
    total_steps = steps_per_epoch * config.epochs
    scheduler = get_cosine_schedule_with_warmup(optimizer, int(total_steps * config.warmup_ratio), total_steps)
    optimize = Stepper(model, optimizer, scheduler, accelerator, precision, config.max_grad_norm)
    data = data_fingerprint(
        splits.train_texts, splits.train_labels, splits.valid_texts, splits.valid_labels, splits.test_texts,
        splits.test_labels,
    )  # fmt: skip
    # Where training is: saved with each checkpoint, and where a resumed run goes on
    at = Position(data=data, steps_per_epoch=steps_per_epoch)
    if checkpoint is not None:
        at = resume_at(checkpoint, accelerator.unwrap_model(model), optimize, data, steps_per_epoch)

    yield StartEvent(
        model=describe_source(config.model), device=str(device), precision=precision,
        processes=accelerator.num_processes, train_rows=len(train_ids), test_rows=len(test_ids),
        labels=splits.label_names, steps_per_epoch=steps_per_epoch, total_steps=total_steps,
        parameters=sum(p.numel() for p in model.parameters()), forward=forward, valid_rows=len(valid_ids),
    )  # fmt: skip
    if checkpoint is not None:
        yield NoticeEvent("notice_resumed", {"epoch": at.epoch, "step": at.step})

    # Train, evaluating on the validation data at each epoch's end (and every eval_steps steps)
    validating = bool(valid_ids)  # without validation rows, the last completed epoch is the kept one
    keeper = Keeper(config.best_metric, config.early_stopping_min_delta, config.early_stopping_patience)
    kept = Kept()
    hf_model = accelerator.unwrap_model(model).model  # what is saved: the classifier inside the training forward
    start, step = time.time() - at.elapsed, at.step
    plain_transformers = at.plain_transformers  # why the model folder has no tokenizer.json, if it has none
    restore_position(at, keeper, kept)
    stop_reason: str | None = None

    def keep(epoch: int, valid: dict | None, test: Predictions | None, valid_answers: Predictions | None) -> None:
        """Make the current weights the kept model: in the run folder (whole, with its card and figures), else a
        copy in memory; and remember what is known of them (their validation and, at an epoch's end, test
        answers), so that the end measures nothing twice."""
        nonlocal plain_transformers
        kept.epoch, kept.step, kept.valid, kept.valid_answers, kept.test_answers = (
            epoch, step, valid, valid_answers, test
        )  # fmt: skip
        kept.current = True
        if run is None:
            kept.weights = {name: value.detach().to("cpu", copy=True) for name, value in hf_model.state_dict().items()}
            return
        trained = Classifier(hf_model, tokenizer, splits.label_names, config.model)
        so_far = kept.done("running", config, splits, keeper, time.time() - start, run, None)
        card = partial(model_card, config, splits, so_far, precision, accelerator.num_processes)
        plain_transformers = save_classifier(trained, run.model_dir, card=card, metrics=so_far.to_json())

    def validate(epoch: int, test: Predictions | None) -> EvalEvent:
        """One evaluation on the validation data (test: this epoch's test answers, at its end): the model kept when
        it improves, then its event. The one place a run judges its model."""
        answers = evaluate(model, valid_loader, accelerator)
        valid = valid_metrics(answers, splits.label_names)
        improved = keeper.judge(valid[config.best_metric], epoch, step)
        if improved:
            keep(epoch, valid, test, answers)
        return EvalEvent(
            epoch=epoch, step=step, valid=valid, metric=config.best_metric, value=valid[config.best_metric],
            improved=improved, best_epoch=keeper.best_epoch, best_step=keeper.best_step,
            best_value=keeper.best_value, elapsed=round(time.time() - start, 3),
        )  # fmt: skip

    def save_checkpoint(epoch: int, batch_no: int, sums: tuple[float, int, int]) -> None:
        """Keep the training state of this evaluation, once its events are logged (the checkpoint's log ends with
        them): the run folder's checkpoint/, from which an interrupted run resumes."""
        if run:
            position = Position(
                epoch, batch_no, step, round(time.time() - start, 3), sums,
                {name: getattr(keeper, name) for name in KEEPER_FIELDS}, kept.position(), plain_transformers, data,
                steps_per_epoch,
            )  # fmt: skip
            save_at(run, accelerator.unwrap_model(model), optimize, position)

    for epoch in range(at.next_epoch, config.epochs + 1):
        train_mode(model, frozen)
        loss_sum, correct, seen = at.sums if epoch == at.epoch else (0.0, 0, 0)
        for batch_no, batch in enumerate(train_loader, start=1):
            if epoch == at.epoch and batch_no <= at.batch:  # done before the checkpoint: the same batches each epoch
                continue
            if should_stop():
                stop_reason = "stopped"
                break
            batch.pop("index")
            try:
                loss, logits = optimize(batch)
            except TrainingError as error:
                raise TrainingError(
                    "loss_not_finite_at", value=error.params["value"], epoch=epoch, batch=batch_no
                ) from None

            step += 1
            kept.current = False
            n = len(batch["labels"])
            loss_sum += loss.item() * n
            correct += int((logits.argmax(-1) == batch["labels"]).sum())
            seen += n
            elapsed = time.time() - start
            yield StepEvent(
                epoch=epoch, batch=batch_no, step=step, steps_per_epoch=steps_per_epoch, total_steps=total_steps,
                loss=round(loss.item(), 6), train_acc=round(correct / seen, 6), lr=scheduler.get_last_lr()[0],
                elapsed=round(elapsed, 3), eta=round(elapsed / step * (total_steps - step), 1),
                sentences_per_s=round(step * per_process * accelerator.num_processes / elapsed, 2),
                logged=(batch_no - 1) % config.log_interval == 0,
            )  # fmt: skip
            if validating and config.eval_steps and step % config.eval_steps == 0 and batch_no < steps_per_epoch:
                yield validate(epoch, None)
                save_checkpoint(epoch, batch_no, (loss_sum, correct, seen))
                if keeper.exhausted:
                    stop_reason = "early_stopping"
                    break
                train_mode(model, frozen)
        if stop_reason:
            break

        # The epoch's end: validation (which may keep this model), and the test figures of these weights, reported
        # as the tutorial does and never used to choose
        loss_sum, correct, seen = accelerator.reduce(
            torch.tensor([loss_sum, correct, seen], dtype=torch.float64, device=device), "sum"
        ).tolist()
        test_answers = evaluate(model, test_loader, accelerator)
        evaluation = validate(epoch, test_answers) if validating else None
        if evaluation:
            yield evaluation
        else:
            keep(epoch, None, test_answers, None)
        yield EpochEvent(
            epoch=epoch, train_loss=round(loss_sum / max(seen, 1), 6), train_acc=round(correct / max(seen, 1), 6),
            test=classification_metrics(test_answers.truth, test_answers.predicted, splits.label_names),
            elapsed=round(time.time() - start, 3), mistakes=_mistakes(splits, test_answers),
            valid=evaluation.valid if evaluation else None,
        )  # fmt: skip
        save_checkpoint(epoch, steps_per_epoch, (0.0, 0, 0))
        if keeper.exhausted:
            stop_reason = "early_stopping"
            break

    # The end: the kept model measured on the test data, once
    if stop_reason == "early_stopping":
        notice = {"metric": Term(config.best_metric), "patience": config.early_stopping_patience}
        notice |= {"best_epoch": keeper.best_epoch, "best_value": keeper.best_value}
        yield NoticeEvent("notice_early_stopped", params_to_json(notice))
    if kept.valid_answers is not None:  # say so when the kept model answers one class, or no better than it
        unlearned = not_learned(kept.valid_answers.truth, kept.valid_answers.predicted, splits.label_names)
        if unlearned:
            yield NoticeEvent("notice_not_learned", params_to_json(unlearned))
    if kept.epoch is not None and kept.test_answers is None:
        if not kept.current:
            restore(hf_model, kept, run, device)
        kept.test_answers = evaluate(model, test_loader, accelerator)
    state = "stopped" if stop_reason == "stopped" else "done"
    done = kept.done(state, config, splits, keeper, time.time() - start, run, stop_reason)
    if run:
        card = model_card(config, splits, done, precision, accelerator.num_processes, plain_transformers)
        run.write_card(card)
        if kept.epoch is not None:
            # The same weights, now with the run's end and the kept model's test figures (each file replaced whole)
            files.write_text(run.model_dir / "README.md", card)
            figures = {
                **done.to_json(),
                "weights_sha256": files.read_json(run.model_dir / METRICS_FILE)["weights_sha256"],
            }
            files.write_json(run.model_dir / METRICS_FILE, figures)
        if kept.epoch is None and stop_reason == "stopped":
            reason = UserFacingError("reason_stopped_no_model")
        elif stop_reason == "early_stopping":
            reason = UserFacingError("notice_early_stopped", **notice)
        else:
            reason = None
        run.set_status(state, reason)
    yield done


@dataclass
class Kept:
    """The kept model so far: where it was evaluated, what it answered, and its weights when no run folder has
    them."""

    epoch: int | None = None
    step: int | None = None
    valid: dict | None = None
    valid_answers: Predictions | None = None
    test_answers: Predictions | None = None  # known when it was kept at an epoch's end, else measured at the end
    weights: dict[str, torch.Tensor] | None = None  # on the CPU; only without a run folder
    current: bool = False  # whether the weights training holds are these (no step since)

    def position(self) -> dict:
        """What a checkpoint keeps of the kept model (its weights are the run's model folder; its test answers are
        measured again at the end)."""
        answers = self.valid_answers
        return {
            "epoch": self.epoch, "step": self.step, "valid": self.valid,
            "valid_answers": list(answers) if answers is not None else None,
        }  # fmt: skip

    def done(
        self,
        state: str,
        config: TrainConfig,
        splits: Splits,
        keeper: Keeper,
        elapsed: float,
        run: Run | None,
        stop_reason: str | None,
    ) -> DoneEvent:
        """The run's end as the kept model's figures (state "running": the figures saved with it meanwhile)."""
        answers = self.test_answers
        test = classification_metrics(answers.truth, answers.predicted, splits.label_names) if answers else None
        return DoneEvent(
            state, self.epoch, test, round(elapsed, 3), str(run.path) if run else None, kept_step=self.step,
            metric=config.best_metric if self.valid else None, best_value=keeper.best_value, stop_reason=stop_reason,
            valid=self.valid, mistakes=_mistakes(splits, answers) if answers else [],
        )  # fmt: skip


KEEPER_FIELDS = ("best_value", "best_epoch", "best_step", "since_best")  # what a checkpoint keeps of the Keeper


def restore_position(at: Position, keeper: Keeper, kept: Kept) -> None:
    """Put a checkpoint's best so far and kept model's evaluation back into the loop's keeper and kept."""
    for name, value in at.keeper.items():
        setattr(keeper, name, value)
    if at.kept:
        answers = at.kept["valid_answers"]
        kept.epoch, kept.step, kept.valid = at.kept["epoch"], at.kept["step"], at.kept["valid"]
        kept.valid_answers = Predictions(*answers) if answers is not None else None


def restore(hf_model: torch.nn.Module, kept: Kept, run: Run | None, device: torch.device) -> None:
    """Load the kept weights back into the model training holds: from the run's model folder, or from memory."""
    if kept.weights is not None:
        hf_model.load_state_dict(kept.weights)
        return
    from safetensors.torch import load_file

    saved = load_file(run.model_dir / WEIGHTS_FILE, device=str(device))
    missing, unexpected = hf_model.load_state_dict(saved, strict=False)
    # save_pretrained leaves out what the model rebuilds itself (buffers such as position_ids), nothing more
    buffers = {name for name, _ in hf_model.named_buffers()}
    if unexpected or set(missing) - buffers:
        raise RuntimeError(f"the kept weights do not fit the model: {sorted(unexpected) + sorted(missing)}")


def model_card(
    config: TrainConfig,
    splits: Splits,
    done: DoneEvent,
    precision: str,
    processes: int,
    no_tokenizer_json: str | None = None,
) -> str:
    """A short README for the run folder, its model folder and its export; no_tokenizer_json: why plain transformers
    cannot tokenize; done.state "running" for the card saved with an epoch's model while training goes on.

    It names the backbone, its family, its tokenizer and its license: a curated backbone's from the catalogue,
    another's from its folder (config.json, its tokenizer files, its README.md front matter's `license:`).
    """
    from kobert_demo.basics.messages import t
    from kobert_demo.engine.backbones import CATALOGUE, FAMILY_NAMES, card_license, folder_family, local_folder
    from kobert_demo.engine.loading import uses_kobert_tokenizer

    curated = CATALOGUE.get(config.model)
    if curated:
        family, tokenizer = curated.family_name, t("en", curated.tokenizer)
        license_ = curated.license or t("en", "license_tiny")
    else:
        folder = local_folder(config.model)
        family = FAMILY_NAMES.get(folder_family(folder) or "", "unknown") if folder else "unknown"
        tokenizer = t("en", "tok_kobert" if folder and uses_kobert_tokenizer(folder) else "tok_fast")
        license_ = (card_license(folder) if folder else None) or t("en", "license_unknown")
    finished = "not yet" if done.state == "running" else done.state  # a card saved with the kept model meanwhile
    if done.stop_reason == "early_stopping":
        finished += f" (stopped early: no improvement in {config.early_stopping_patience} evaluations)"
    if done.metric and done.valid:
        chosen = (
            f"epoch {done.kept_epoch}, step {done.kept_step}, chosen by validation {done.metric} "
            f"({done.best_value:.4f}; validation loss {done.valid['loss']:.4f}); the test data never chose it"
        )
    else:
        chosen = (
            f"epoch {done.kept_epoch} (the last completed one, without validation data; the test data never chose it)"
        )
    lines = [
        "# KoBERT Demo classifier",
        "",
        f"- Backbone: {describe_source(config.model)}"
        + (f"; continued from run {Path(config.init_from).name}" if config.init_from else ""),
        f"- Family: {family}; tokenizer: {tokenizer}; backbone license: {license_}",
        f"- Classes ({len(splits.label_names)}): {', '.join(splits.label_names)}",
        f"- Training rows: {len(splits.train_texts)}; validation rows: {len(splits.valid_texts)} "
        f"({splits.valid_source}); test rows: {len(splits.test_texts)} ({splits.test_source})",
        f"- Finished: {finished}; model kept: {chosen}; time: {done.elapsed:.0f} s; "
        f"precision: {precision}; processes: {processes}",
    ]
    if done.test:
        lines += [
            f"- Test accuracy: {done.test['accuracy']:.4f}; macro-F1: {done.test['macro_f1']:.4f} (the kept model's)",
            "",
            "| class | precision | recall | F1 | support |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, m in done.test["per_class"].items():
            lines.append(f"| {name} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['support']} |")
    if done.kept_epoch:
        lines += ["", "## Use it with plain transformers", ""]
        if no_tokenizer_json:
            lines.append(f"No tokenizer.json ({no_tokenizer_json}): tokenize with `kobert_demo` (`Predictor.load`).")
        else:
            lines += [
                "The model folder (or the unpacked export) loads without kobert_demo. `truncation=True` cuts sentences "
                f"at {config.max_len} tokens, as in training; the pipeline does not truncate by default.",
                "",
                "```python",
                "from transformers import pipeline",
                "",
                'classify = pipeline("text-classification", model="PATH/TO/THIS/MODEL", top_k=None, truncation=True)',
                'print(classify("이 영화 정말 재밌어요"))',
                "```",
            ]
    lines += [
        "",
        "## Hyperparameters",
        "",
        "```json",
        json.dumps(config.to_dict(), indent=2, ensure_ascii=False),
        "```",
        "",
    ]
    return "\n".join(lines)
