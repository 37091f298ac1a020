"""Fine-tuning as a generator of typed events (start, step, epoch, done, error: see events.py), cancellable between
steps.

No UI code here: the CLI, the web app's background jobs and the tests all consume `train()`. When given a run
folder it also writes the event log (with its summary), the status and the model there; a failure is stored as its
message key and parameters, never as a finished sentence.

The model kept, and the test figures reported for the run, are the last completed epoch's, as in the tutorial: the
test file never chooses which model is kept (choosing the best epoch by its test accuracy would overstate it).
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

import torch
from accelerate import Accelerator
from accelerate.utils import gather_object, set_seed
from transformers import get_cosine_schedule_with_warmup

from kobert_demo.basics import files
from kobert_demo.basics.config import ADAM_EPSILON, CPU_MODE_LAYERS, TrainConfig
from kobert_demo.basics.cpu import has_bf16
from kobert_demo.basics.data import Splits
from kobert_demo.basics.errors import UserFacingError
from kobert_demo.basics.events import DoneEvent, EpochEvent, ErrorEvent, Event, StartEvent, StepEvent
from kobert_demo.basics.metrics import balanced_class_weights, classification_metrics
from kobert_demo.basics.runs import Run
from kobert_demo.engine.checkpoints import describe_source
from kobert_demo.engine.classifier import Classifier, freeze_lower_layers, training_forward, use_fast_dropout
from kobert_demo.engine.loading import load_backbone, save_classifier

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
@torch.inference_mode()
def evaluate(
    model: torch.nn.Module, loader, accelerator: Accelerator
) -> tuple[list[int], list[int], list[int], list[float]]:
    """(indices, true labels, predicted labels, confidence) over the whole loader, gathered across processes.

    In fp32 whatever the training precision, so that `evaluate` on the saved model later gives the same numbers.
    """
    model.eval()
    rows: dict[int, tuple[int, int, float]] = {}
    for batch in loader:
        index, labels = batch.pop("index"), batch.pop("labels")
        top, pred = model(**batch).logits.float().softmax(-1).max(-1)
        rows.update(zip(index.tolist(), zip(labels.tolist(), pred.tolist(), top.tolist())))
    if accelerator.num_processes > 1:
        # Shards differ in size and some rows repeat to even them out: gather as objects, keep each row once.
        rows = {i: row for shard in gather_object([rows]) for i, row in shard.items()}
    indices = sorted(rows)
    truth, predicted, confidence = (list(column) for column in zip(*(rows[i] for i in indices)))
    return indices, truth, predicted, confidence


def _mistakes(splits: Splits, indices, truth, predicted, confidence) -> list[dict]:
    wrong = [(c, i, t, p) for i, t, p, c in zip(indices, truth, predicted, confidence) if t != p]
    wrong.sort(reverse=True)  # the most confident mistakes first: the most telling ones
    names = splits.label_names
    return [
        {"text": splits.test_texts[i], "label": names[t], "predicted": names[p], "confidence": round(c, 4)}
        for c, i, t, p in wrong[:MISTAKES_KEPT]
    ]


# --- training -----------------------------------------------------------------------------------------------------
def train(
    config: TrainConfig,
    splits: Splits,
    out: str | Path | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    meta: dict | None = None,
) -> Iterator[Event]:
    """Fine-tune and yield events; with `out`, the main process also keeps the run folder there."""
    run: Run | None = None
    accelerator = make_accelerator()
    try:
        config.check()
        if out is not None and accelerator.is_main_process:
            meta = {**(meta or {}), "processes": accelerator.num_processes}
            run = Run.create(out, config, splits.label_names, meta)
        for event in _train(config, splits, run, should_stop, accelerator):
            if run:
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
) -> Iterator[Event]:
    set_seed(config.seed)
    device = accelerator.device
    precision = resolve_precision(config.precision, device)

    # The batch size is the global one, as in the tutorial: N processes take batch_size / N rows each.
    per_process = max(1, config.batch_size // accelerator.num_processes)
    # Load the backbone (refused if training it at this batch size and max_len is over the memory budget), tokenize
    classifier = load_backbone(
        config.model, splits.label_names, config.dropout, config.tokenizer_mode, config.max_len,
        train_texts=splits.train_texts, seed=config.seed, batch_size=per_process,
    )  # fmt: skip
    # The tokenizer's own max_len: config.max_len, or less where the model has fewer positions (a RoBERTa with 512
    # position embeddings takes 510 tokens).
    tokenizer = classifier.tokenizer
    train_ids = tokenizer.encode_batch(splits.train_texts)
    test_ids = tokenizer.encode_batch(splits.test_texts)

    # Dataloaders, optimizer, schedule
    train_loader = make_loader(train_ids, splits.train_labels, per_process, config.seed, True, Collator(classifier))
    test_loader = make_loader(
        test_ids, splits.test_labels, config.batch_size * 2, config.seed, False, Collator(classifier)
    )
    model, frozen, forward = training_model(
        classifier,
        config.cpu_mode,
        balanced_class_weights(splits.train_labels, len(splits.label_names))
        if config.class_weights == "balanced"
        else None,
    )
    optimizer = torch.optim.AdamW(
        decay_groups(model, config.weight_decay),
        lr=config.learning_rate,
        eps=ADAM_EPSILON,
        fused=device.type in ("cpu", "cuda"),
    )
    model, optimizer, train_loader, test_loader = accelerator.prepare(model, optimizer, train_loader, test_loader)
    steps_per_epoch = len(train_loader)
    total_steps = steps_per_epoch * config.epochs
    scheduler = get_cosine_schedule_with_warmup(optimizer, int(total_steps * config.warmup_ratio), total_steps)
    optimize = Stepper(model, optimizer, scheduler, accelerator, precision, config.max_grad_norm)

    yield StartEvent(
        model=describe_source(config.model), device=str(device), precision=precision,
        processes=accelerator.num_processes, train_rows=len(train_ids), test_rows=len(test_ids),
        labels=splits.label_names, steps_per_epoch=steps_per_epoch, total_steps=total_steps,
        parameters=sum(p.numel() for p in model.parameters()), forward=forward,
    )  # fmt: skip

    # Train
    start, step, kept_epoch, kept_test = time.time(), 0, None, None
    plain_transformers: str | None = None  # why the model folder has no tokenizer.json, if it has none
    stopped = False
    for epoch in range(1, config.epochs + 1):
        train_mode(model, frozen)
        loss_sum, correct, seen = 0.0, 0, 0
        for batch_no, batch in enumerate(train_loader, start=1):
            if should_stop():
                stopped = True
                break
            batch.pop("index")
            try:
                loss, logits = optimize(batch)
            except TrainingError as error:
                raise TrainingError(
                    "loss_not_finite_at", value=error.params["value"], epoch=epoch, batch=batch_no
                ) from None

            step += 1
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
        if stopped:
            break

        # Evaluate; keep this epoch's model (the last completed one, as the tutorial does)
        loss_sum, correct, seen = accelerator.reduce(
            torch.tensor([loss_sum, correct, seen], dtype=torch.float64, device=device), "sum"
        ).tolist()
        indices, truth, predicted, confidence = evaluate(model, test_loader, accelerator)
        test = classification_metrics(truth, predicted, splits.label_names)
        kept_epoch, kept_test = epoch, test
        kept = EpochEvent(
            epoch=epoch, train_loss=round(loss_sum / max(seen, 1), 6), train_acc=round(correct / max(seen, 1), 6),
            test=test, elapsed=round(time.time() - start, 3),
            mistakes=_mistakes(splits, indices, truth, predicted, confidence),
        )  # fmt: skip
        if run:
            # The model folder, its card and its figures go in whole before the epoch is logged: a kill between
            # the two leaves a log one epoch behind the model, and readers take the model's figures (runs.py).
            trained = Classifier(accelerator.unwrap_model(model).model, tokenizer, splits.label_names, config.model)
            so_far = DoneEvent("running", epoch, test, kept.elapsed, str(run.path))
            card = partial(model_card, config, splits, so_far, precision, accelerator.num_processes)
            plain_transformers = save_classifier(trained, run.model_dir, card=card, metrics=kept.to_json())
        yield kept

    state = "stopped" if stopped else "done"
    elapsed = round(time.time() - start, 3)
    done = DoneEvent(state, kept_epoch, kept_test, elapsed, str(run.path) if run else None)
    if run:
        card = model_card(config, splits, done, precision, accelerator.num_processes, plain_transformers)
        run.write_card(card)
        if kept_epoch:  # the same weights, now with how the run ended (one file, replaced whole)
            files.write_text(run.model_dir / "README.md", card)
        no_model = stopped and not kept_epoch
        run.set_status(state, UserFacingError("reason_stopped_no_model") if no_model else None)
    yield done


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
    finished = "not yet" if done.state == "running" else done.state  # a card saved with an epoch's model
    lines = [
        "# KoBERT Demo classifier",
        "",
        f"- Backbone: {describe_source(config.model)}",
        f"- Family: {family}; tokenizer: {tokenizer}; backbone license: {license_}",
        f"- Classes ({len(splits.label_names)}): {', '.join(splits.label_names)}",
        f"- Training rows: {len(splits.train_texts)}; test rows: {len(splits.test_texts)} ({splits.test_source})",
        f"- Finished: {finished}; model kept: epoch {done.kept_epoch} (the last completed one; the test data "
        f"never chose it); time: {done.elapsed:.0f} s; "
        f"precision: {precision}; processes: {processes}",
    ]
    if done.test:
        lines += [
            f"- Test accuracy: {done.test['accuracy']:.4f}; macro-F1: {done.test['macro_f1']:.4f}",
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
