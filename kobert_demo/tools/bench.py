"""`python -m kobert_demo bench`: the KoBERT tutorial's loop against ours, on KoBERT's exact shape; or, with
`--family bert|roberta|electra`, that family's plain transformers forward (padded to max_len) against ours.

Random weights (no hub here), the real tokenizer (KoBERT) or one learnt from the rows (the other families), the same
NSMC rows for every path. Each path runs in its own process so that its peak memory is its own. Figures: training
sentences/s, one-sentence latency p50/p95, batch prediction sentences/s, peak RSS (and GPU memory where there is
one), and each one's ratio to the tutorial or to the family's padded forward.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from kobert_demo.basics.config import ADAM_EPSILON, CPU_MODE_LAYERS, KOBERT_LR
from kobert_demo.basics.cpu import SPEED_FLAGS
from kobert_demo.engine.families import MODEL_TYPES
from kobert_demo.tools.driving import clone_file

KOBERT_SHAPE = dict(
    vocab_size=8002, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
    max_position_embeddings=512, type_vocab_size=2, pad_token_id=1,
)  # fmt: skip
TUTORIAL_MAX_LEN = 64
TRAIN_PATHS = ("tutorial_train", "full", "cpu_mode")
# `predict` is what the app and the CLI serve by default (`--backend auto`: the fastest path on this machine that keeps
# within 0.01 of fp32; its JSON has the serving report: every candidate's p50 and difference), `predict_fp32` torch.
PREDICT_PATHS = ("tutorial_predict", "predict", "predict_fp32")
FAMILY_CHOICES = ("kobert", *MODEL_TYPES)
# --family bert/roberta/electra: the family's *ForSequenceClassification as plain transformers runs it, every row
# padded to max_len (`padded_*`), against the same paths of ours.
PADDED = "padded_"
FAMILY_PATHS = ("padded_full", "padded_cpu_mode", "padded_predict", "full", "cpu_mode", "predict")
# ratio name: (our path, the padded path it is set against, figure). Speeds divide ours by the padded forward's,
# latencies the padded forward's by ours: faster is above 1. A ratio is given when both paths ran.
FAMILY_RATIOS = {
    "train_full": ("full", "full", "train_sentences_per_s"),
    "train_cpu_mode": ("cpu_mode", "cpu_mode", "train_sentences_per_s"),
    "train_cpu_mode_vs_padded_full": ("cpu_mode", "full", "train_sentences_per_s"),
    "predict_p50": ("predict", "predict", "predict_p50_ms"),
    "predict_p50_fp32": ("predict_fp32", "predict", "predict_p50_ms"),
    "batch_predict": ("predict", "predict", "batch_predict_sentences_per_s"),
}


# --- the tutorial, as written ---------------------------------------------------------------------------------------
class TutorialClassifier(nn.Module):
    """The tutorial's BERTClassifier: pooled output, dropout, linear; the mask built in a Python loop."""

    def __init__(self, bert: nn.Module, num_classes: int = 2, dr_rate: float = 0.5) -> None:
        super().__init__()
        self.bert = bert
        self.classifier = nn.Linear(bert.config.hidden_size, num_classes)
        self.dropout = nn.Dropout(p=dr_rate)

    def gen_attention_mask(self, token_ids: torch.Tensor, valid_length: torch.Tensor) -> torch.Tensor:
        attention_mask = torch.zeros_like(token_ids)
        for i, v in enumerate(valid_length):
            attention_mask[i][:v] = 1
        return attention_mask.float()

    def forward(self, token_ids: torch.Tensor, valid_length: torch.Tensor, segment_ids: torch.Tensor) -> torch.Tensor:
        attention_mask = self.gen_attention_mask(token_ids, valid_length)
        pooler = self.bert(
            input_ids=token_ids, token_type_ids=segment_ids.long(), attention_mask=attention_mask
        ).pooler_output
        return self.classifier(self.dropout(pooler))


def tutorial_batch(tokenizer, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """BERTSentenceTransform(max_len=64, pad=True): every row padded to 64."""
    ids = tokenizer.encode_batch(texts, TUTORIAL_MAX_LEN)
    token_ids = np.full((len(ids), TUTORIAL_MAX_LEN), tokenizer.pad_id, dtype=np.int32)
    for row, seq in enumerate(ids):
        token_ids[row, : len(seq)] = seq
    valid = np.array([len(seq) for seq in ids], dtype=np.int32)
    return torch.tensor(token_ids).long(), torch.tensor(valid), torch.zeros(token_ids.shape, dtype=torch.int32)


def tutorial_model(folder: Path, num_classes: int = 2) -> TutorialClassifier:
    from transformers import BertModel

    return TutorialClassifier(BertModel.from_pretrained(folder, dtype=torch.float32), num_classes)


def tutorial_train_steps(model: TutorialClassifier, tokenizer, texts, labels, batch_size: int, lr: float = KOBERT_LR):
    """The tutorial's training loop (fp32, padded to 64), yielding after every step."""
    from transformers import get_cosine_schedule_with_warmup

    no_decay = ["bias", "LayerNorm.weight"]
    groups = [
        {
            "params": [p for n, p in model.named_parameters() if not any(nd in n for nd in no_decay)],
            "weight_decay": 0.01,
        },
        {"params": [p for n, p in model.named_parameters() if any(nd in n for nd in no_decay)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=lr, eps=ADAM_EPSILON)
    loss_fn = nn.CrossEntropyLoss()
    total = (len(texts) + batch_size - 1) // batch_size
    scheduler = get_cosine_schedule_with_warmup(optimizer, int(total * 0.1), total)
    model.train()
    for start in range(0, len(texts), batch_size):
        optimizer.zero_grad()
        token_ids, valid_length, segment_ids = tutorial_batch(tokenizer, texts[start : start + batch_size])
        label = torch.tensor(labels[start : start + batch_size])
        out = model(token_ids, valid_length, segment_ids)
        loss = loss_fn(out, label)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1)
        optimizer.step()
        scheduler.step()
        yield len(label)


# --- workers: one path per process ----------------------------------------------------------------------------------
def _peak_rss_mb() -> float:
    """This process's peak resident memory: VmHWM, which starts afresh at exec, where /proc has it.

    getrusage's ru_maxrss keeps the peak of the process that started this one, across its exec: every worker
    reported at least the driver's peak (measured: 813 MB in a child of an 813 MB parent, whose VmHWM was 14 MB;
    the family bench's driver peaks at 1.4 GB building a base-size folder).
    """
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        status = ""
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _gpu_peak_mb() -> float | None:
    return torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None


def _timed_train(step_sizes) -> float:
    """Sentences per second over the steps after the warm-up, which ends where the steps yield None."""
    done, start = 0, None
    for n in step_sizes:
        if n is None:
            start = time.perf_counter()
        elif start is not None:
            done += n
    return done / (time.perf_counter() - start)


def _tutorial_train_timed(model, tokenizer, texts, labels, batch_size: int):
    """The tutorial's loop over one warm-up batch, then the whole pass that is timed (its batches share one shape)."""
    steps = tutorial_train_steps(model, tokenizer, texts[:batch_size] + texts, labels[:batch_size] + labels, batch_size)
    yield next(steps)
    yield None
    yield from steps


def _ours_training(folder: Path, texts, labels, warmup: tuple[list, list], batch_size: int, cpu_mode: bool):
    """Our model and loaders: a warm-up pass of other rows, then the pass that is timed; and what forward it uses.

    Batch shapes vary (a batch's token count), and a shape's first step pays for building its kernels; over an NSMC
    epoch (2,273 batches) that cost is spread thin. The warm-up pays the one-off costs; it uses rows of its own, so
    that the timed batches are new shapes about as often as in a real epoch.
    """
    from kobert_demo.engine.loading import load_backbone
    from kobert_demo.engine.train import Collator, make_loader, training_model

    classifier = load_backbone(str(folder), ["0", "1"], 0.5, "gluonnlp", TUTORIAL_MAX_LEN)
    model, frozen, forward = training_model(classifier, cpu_mode)
    loaders = [
        make_loader(
            classifier.tokenizer.encode_batch(x, TUTORIAL_MAX_LEN), y, batch_size, 0, True, Collator(classifier)
        )
        for x, y in (warmup, (texts, labels))
    ]
    return model, frozen, loaders, {"forward": forward, "model_class": type(classifier.model).__name__}


def _padded_training(folder: Path, texts, labels, batch_size: int, cpu_mode: bool):
    """The family's *ForSequenceClassification as a plain transformers loop trains it: its own forward and loss, on
    the same batches as ours but every row padded to max_len; one warm-up batch, as every batch has that one shape."""
    from kobert_demo.engine.classifier import freeze_lower_layers
    from kobert_demo.engine.fast_tokenizer import FastTokenizer
    from kobert_demo.engine.train import make_loader

    model = _plain_model(folder, num_labels=2)
    frozen = freeze_lower_layers(model, CPU_MODE_LAYERS) if cpu_mode else []
    tokenizer = FastTokenizer.from_folder(folder, TUTORIAL_MAX_LEN)

    def pad_to_max_len(rows: list[tuple[list[int], int, int]]) -> dict:
        batch = tokenizer.pad([ids for ids, _, _ in rows], multiple=TUTORIAL_MAX_LEN)
        batch["labels"] = torch.tensor([label for _, label, _ in rows])
        return batch

    ids = tokenizer.encode_batch(texts, TUTORIAL_MAX_LEN)
    loaders = [
        make_loader(x, y, batch_size, 0, True, pad_to_max_len)
        for x, y in ((ids[:batch_size], labels[:batch_size]), (ids, labels))
    ]
    return model, frozen, loaders, {"model_class": type(model).__name__}


def _plain_model(folder: Path, num_labels: int | None = None) -> nn.Module:
    """folder's model in its family's *ForSequenceClassification, loaded as plain transformers loads it."""
    from transformers import AutoConfig

    from kobert_demo.engine.families import family_of
    from kobert_demo.engine.loading import quiet_transformers

    extra = {"num_labels": num_labels} if num_labels else {}
    with quiet_transformers():
        model_class = family_of(AutoConfig.from_pretrained(folder)).model_class
        return model_class.from_pretrained(folder, dtype=torch.float32, **extra)  # as engine/loading.py loads: fp32


def _timed_steps(model: nn.Module, frozen: list[nn.Module], loaders: list):
    """train.py's optimizer, schedule, precision and clipping over every loader; None where the last (timed) starts."""
    from transformers import get_cosine_schedule_with_warmup

    from kobert_demo.engine.train import Stepper, decay_groups, make_accelerator, resolve_precision, train_mode

    accelerator = make_accelerator()
    device = accelerator.device
    optimizer = torch.optim.AdamW(
        decay_groups(model, 0.01), lr=KOBERT_LR, eps=ADAM_EPSILON, fused=device.type in ("cpu", "cuda")
    )
    model, optimizer, *loaders = accelerator.prepare(model, optimizer, *loaders)
    steps = sum(len(loader) for loader in loaders)
    scheduler = get_cosine_schedule_with_warmup(optimizer, int(steps * 0.1), steps)
    optimize = Stepper(model, optimizer, scheduler, accelerator, resolve_precision("auto", device), 1.0)
    train_mode(model, frozen)
    for timed, loader in enumerate(loaders):
        if timed:
            yield None
        for batch in loader:
            batch.pop("index", None)
            optimize(batch)
            yield len(batch["labels"])


def _latencies(predict_one, sentences: list[str]) -> tuple[float, float]:
    """p50 and p95 in ms of one sentence at a time, after a warm-up pass over the same sentences."""
    from kobert_demo.serving.choice import one_sentence_times

    times = one_sentence_times(predict_one, sentences, warmup=sentences)
    return float(np.percentile(times, 50)), float(np.percentile(times, 95))


def _batch_rate(predict_all, rows: int) -> float:
    """Sentences per second of one call over all rows, after a warm-up call."""
    predict_all()
    start = time.perf_counter()
    predict_all()
    return rows / (time.perf_counter() - start)


def _padded_predict_figures(predict_batch, texts: list[str], args: argparse.Namespace) -> dict:
    """Latency of one sentence and the rate over batches of 64, for a forward that pads every row to max_len."""
    one = texts[-args.latency_sentences :]
    result: dict = {}
    result["predict_p50_ms"], result["predict_p95_ms"] = _latencies(lambda s: predict_batch([s]), one)
    batch = texts[-args.predict_rows :]
    result["batch_predict_sentences_per_s"] = _batch_rate(
        lambda: [predict_batch(batch[i : i + 64]) for i in range(0, len(batch), 64)], len(batch)
    )
    return result


def run_worker(path: str, folder: Path, texts: list[str], labels: list[int], args: argparse.Namespace) -> dict:
    """Measure one path in this process."""
    torch.manual_seed(0)
    kobert = args.family == "kobert"
    max_len = None if kobert else TUTORIAL_MAX_LEN  # KoBERT's tokenizer cuts at 64 unless told otherwise
    train_texts, train_labels = texts[: args.train_rows], labels[: args.train_rows]
    result: dict = {}
    if path == "tutorial_train":
        from kobert_demo.engine.tokenizer import KoBertTokenizer

        model = tutorial_model(folder)
        steps = _tutorial_train_timed(
            model, KoBertTokenizer.from_folder(folder), train_texts, train_labels, args.batch_size
        )
        result["train_sentences_per_s"] = _timed_train(steps)
    elif path in ("full", "cpu_mode", "padded_full", "padded_cpu_mode"):
        cpu_mode = path.endswith("cpu_mode")
        warmup = texts[args.train_rows : 2 * args.train_rows], labels[args.train_rows : 2 * args.train_rows]
        model, frozen, loaders, info = (
            _padded_training(folder, train_texts, train_labels, args.batch_size, cpu_mode)
            if path.startswith(PADDED)
            else _ours_training(folder, train_texts, train_labels, warmup, args.batch_size, cpu_mode)
        )
        result["train_sentences_per_s"] = _timed_train(_timed_steps(model, frozen, loaders))
        if not kobert:
            result.update(info)
    elif path == "tutorial_predict":
        from kobert_demo.engine.tokenizer import KoBertTokenizer

        tokenizer = KoBertTokenizer.from_folder(folder)
        model = tutorial_model(folder).eval()

        def predict_tutorial(batch_texts):  # the tutorial's evaluation: padded to 64, autograd on
            return model(*tutorial_batch(tokenizer, batch_texts)).softmax(-1)

        result.update(_padded_predict_figures(predict_tutorial, texts, args))
    elif path == "padded_predict":
        from kobert_demo.engine.fast_tokenizer import FastTokenizer

        classifier = _classifier_folder(folder, max_len)
        tokenizer = FastTokenizer.from_folder(classifier, TUTORIAL_MAX_LEN)
        model = _plain_model(classifier).eval()

        @torch.no_grad()
        def predict_padded(batch_texts):  # plain transformers in fp32: padding="max_length", no autograd
            batch = tokenizer.pad(tokenizer.encode_batch(batch_texts), multiple=TUTORIAL_MAX_LEN)
            return model(**batch).logits.softmax(-1)

        result.update(_padded_predict_figures(predict_padded, texts, args))
        result["model_class"] = type(model).__name__
    else:
        from kobert_demo.serving.predict import Predictor

        backend = {"predict": "auto", "predict_fp32": "torch"}[path]
        predictor = Predictor.load(_classifier_folder(folder, max_len), backend=backend)
        result["backend"] = predictor.backend
        if backend == "auto":
            result["serving"] = predictor.serving.to_json()
        one = texts[-args.latency_sentences :]
        result["predict_p50_ms"], result["predict_p95_ms"] = _latencies(lambda s: predictor.predict_proba([s]), one)
        batch = texts[-args.predict_rows :]
        result["batch_predict_sentences_per_s"] = _batch_rate(lambda: predictor.predict_proba(batch), len(batch))
        result["peak_rss_mb"] = _peak_rss_mb()  # what serving this model costs, auto's selection included
        if predictor.backend != "torch":
            reference = Predictor.load(_classifier_folder(folder, max_len), backend="torch").predict_proba(batch)
            result["max_prob_diff_vs_fp32"] = float(np.abs(reference - predictor.predict_proba(batch)).max())
        if not kobert:
            result["model_class"] = predictor.model_class
    result.setdefault("peak_rss_mb", _peak_rss_mb())
    if (gpu := _gpu_peak_mb()) is not None:
        result["peak_gpu_mb"] = gpu
    return result


def _classifier_folder(folder: Path, max_len: int | None = None) -> Path:
    """A 2-class classifier on the backbone, saved once beside it (what the app would serve)."""
    target = folder.parent / "classifier"
    if not (target / "model.safetensors").is_file():
        from kobert_demo.engine.loading import load_backbone, save_classifier

        save_classifier(load_backbone(str(folder), ["부정", "긍정"], 0.5, max_len=max_len), target)
    return target


# --- accuracy: the fast path must learn as well as the tutorial's loop --------------------------------------------
def accuracy_check(args: argparse.Namespace) -> dict:
    """Train `tiny` for one epoch with the tutorial's loop and with ours on the same rows, once per seed.

    Test accuracy of each run, and each loop's mean and standard deviation over the seeds: the noise to compare with.
    """
    from kobert_demo.basics.data import Splits, read_table

    train_table, test_table = read_table(args.data), read_table(args.accuracy_test)
    n, m = args.accuracy_rows, args.accuracy_rows // 4
    names = sorted(set(train_table.labels))
    splits = Splits(
        train_table.texts[:n], [names.index(x) for x in train_table.labels[:n]],
        test_table.texts[:m], [names.index(x) for x in test_table.labels[:m]], names, "file",
    )  # fmt: skip
    runs = [_accuracy_once(splits, int(seed)) for seed in args.seeds.split(",")]
    result: dict = {"train_rows": n, "test_rows": m, "epochs": 1, "runs": runs}
    for loop in ("ours", "tutorial"):
        scores = [run[f"{loop}_accuracy"] for run in runs]
        result[f"{loop}_mean"] = round(float(np.mean(scores)), 4)
        result[f"{loop}_std"] = round(float(np.std(scores)), 4)
    result["difference"] = round(result["ours_mean"] - result["tutorial_mean"], 4)
    return result


def _accuracy_once(splits, seed: int) -> dict:
    from transformers import BertConfig, BertModel

    from kobert_demo.basics.config import TINY_LR, TrainConfig
    from kobert_demo.engine.tiny import TINY_SHAPE, train_tiny_tokenizer
    from kobert_demo.engine.train import train

    result: dict = {"seed": seed}
    start = time.perf_counter()
    done = [e for e in train(TrainConfig(model="tiny", epochs=1, seed=seed), splits) if e.type == "done"]
    result["ours_accuracy"] = done[0].test["accuracy"]
    result["ours_seconds"] = time.perf_counter() - start

    start = time.perf_counter()
    torch.manual_seed(seed)
    tokenizer = train_tiny_tokenizer(splits.train_texts, "gluonnlp", TUTORIAL_MAX_LEN, seed)
    bert = BertModel(BertConfig(vocab_size=tokenizer.vocab_size, pad_token_id=tokenizer.pad_id, **TINY_SHAPE))
    model = TutorialClassifier(bert, len(splits.label_names))
    for _ in tutorial_train_steps(model, tokenizer, splits.train_texts, splits.train_labels, 64, lr=TINY_LR):
        pass
    model.eval()
    correct, m = 0, len(splits.test_texts)
    for i in range(0, m, 256):
        out = model(*tutorial_batch(tokenizer, splits.test_texts[i : i + 256]))
        correct += int((out.argmax(-1) == torch.tensor(splits.test_labels[i : i + 256])).sum())
    result["tutorial_accuracy"] = correct / m
    result["tutorial_seconds"] = time.perf_counter() - start
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}


# --- explanations: time at the family's real size, faithfulness of a trained run --------------------------------------
def explain_check(args: argparse.Namespace, folder: Path) -> dict:
    """Time Integrated Gradients explanations one sentence at a time with the family's base-size classifier (random
    weights: the same work as trained ones), served in fp32; with --run, that run's deletion check on held-out rows."""
    from kobert_demo.basics.data import read_table
    from kobert_demo.serving.faithfulness import deletion_check
    from kobert_demo.serving.predict import Predictor

    texts = read_table(Path(args.data)).texts[: args.latency_sentences]
    predictor = Predictor.load(_classifier_folder(folder), backend="torch")
    explained = []
    p50, p95 = _latencies(lambda text: explained.append(predictor.explain(text)), texts)
    explanations = explained[len(texts) :]  # the timed pass (the first one warms up)
    steps = [explanation.steps for explanation in explanations]
    tokens = [len(explanation.tokens) for explanation in explanations]
    gaps = [abs(explanation.completeness_gap) for explanation in explanations]
    report: dict = {
        "sentences": len(texts),
        "tokens_mean": round(float(np.mean(tokens)), 1),
        "explain_p50_ms": round(p50, 1),
        "explain_p95_ms": round(p95, 1),
        "steps_mean": round(float(np.mean(steps)), 1),
        "completeness_gap_max": round(float(np.max(gaps)), 5),
    }
    if args.run:
        held_out = read_table(Path(args.accuracy_test)).texts[: args.explain_rows]
        check = deletion_check(Predictor.load(args.run, backend="torch"), held_out, seed=0)
        report["deletion_check"] = {"run": Path(args.run).name, **check.to_json()}
    return report


# --- the driver -----------------------------------------------------------------------------------------------------
def build_backbone(folder: Path, size: str = "base") -> Path:
    """KoBERT's exact shape (size base; tiny: TINY_SHAPE, a quick check of every path) with random weights, and
    KoBERT's original tokenizer (carried with the package)."""
    import transformers
    from transformers import BertConfig, BertModel

    from kobert_demo.engine.tiny import TINY_SHAPE
    from kobert_demo.engine.tokenizer import KoBertTokenizer

    transformers.utils.logging.disable_progress_bar()  # no "Writing model shards" bar on stderr
    torch.manual_seed(0)
    shape = KOBERT_SHAPE if size == "base" else {**KOBERT_SHAPE, **TINY_SHAPE}
    BertModel(BertConfig(**shape)).save_pretrained(folder)
    KoBertTokenizer.original().save(folder)
    return folder


def build_family_backbone(folder: Path, family: str, texts: list[str], size: str) -> Path:
    """A hub-like folder of the family (hublike.py): the real models' shape at base size, random weights, and a
    tokenizer learnt from texts (WordPiece, or byte-level BPE for RoBERTa)."""
    import transformers

    from kobert_demo.tools.hublike import build_folder

    transformers.utils.logging.disable_progress_bar()
    return build_folder(folder, family, texts, size=size)


def describe_backbone(folder: Path, size: str, tokenizer_rows: int) -> dict:
    """What was measured, as the built folder's config.json and tokenizer.json say it (so: the family's own)."""
    from transformers import AutoConfig

    from kobert_demo.engine.memory import parameter_count

    config = AutoConfig.from_pretrained(folder)
    tokenizer = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    keys = ["hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size"]
    keys += ["embedding_size"] if config.model_type == "electra" else []
    return {
        "model_type": config.model_type,
        "checkpoint": config.architectures[0],
        "size": size,
        **{key: getattr(config, key) for key in keys},
        "parameters": parameter_count(config, 2),
        "tokenizer": tokenizer["model"]["type"],
        "tokenizer_rows": tokenizer_rows,
        "weights": "random",
    }


def read_rows(data: Path, n: int) -> tuple[list[str], list[int]]:
    from kobert_demo.basics.data import read_table

    table = read_table(data)
    return table.texts[:n], [int(label) for label in table.labels[:n]]


def machine() -> dict:
    """The CPU (its model name and the speed flags it has), cores, threads and versions every report records."""
    from kobert_demo.basics.cpu import cpu_name, has_bf16, has_vnni, speed_flags

    info = {
        "cpu": cpu_name(),
        "cpu_flags": speed_flags(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "bf16_cpu": has_bf16(),
        "vnni_cpu": has_vnni(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def ratios(tutorial: dict, ours: dict) -> dict:
    out = {
        "train_full": ours["full"]["train_sentences_per_s"] / tutorial["train_sentences_per_s"],
        "train_cpu_mode": ours["cpu_mode"]["train_sentences_per_s"] / tutorial["train_sentences_per_s"],
        "predict_p50": tutorial["predict_p50_ms"] / ours["predict"]["predict_p50_ms"],
        "predict_p50_fp32": tutorial["predict_p50_ms"] / ours["predict_fp32"]["predict_p50_ms"],
        "batch_predict": ours["predict"]["batch_predict_sentences_per_s"] / tutorial["batch_predict_sentences_per_s"],
        "batch_predict_fp32": ours["predict_fp32"]["batch_predict_sentences_per_s"]
        / tutorial["batch_predict_sentences_per_s"],
    }
    return {k: round(v, 2) for k, v in out.items()}


def family_ratios(padded: dict, ours: dict) -> dict:
    """FAMILY_RATIOS for the paths that ran: how many times faster ours is than the family's padded forward."""
    out = {}
    for name, (mine, theirs, figure) in FAMILY_RATIOS.items():
        if figure in ours.get(mine, {}) and figure in padded.get(theirs, {}):
            a, b = ours[mine][figure], padded[theirs][figure]
            out[name] = round(b / a if figure.endswith("_ms") else a / b, 2)
    return out


def family_report(family: str, backbone: dict, results: dict[str, dict]) -> dict:
    """The family's JSON: the backbone measured, the forward ours trained with, both sides' figures, the ratios."""
    padded = {p.removeprefix(PADDED): r for p, r in results.items() if p.startswith(PADDED)}
    ours = {p: r for p, r in results.items() if not p.startswith(PADDED)}
    return {
        "family": family,
        "backbone": backbone,
        "forward": next((r["forward"] for r in ours.values() if "forward" in r), None),
        "padded": padded,
        "ours": ours,
        "ratios": family_ratios(padded, ours),
        "machine": machine(),
    }


def _table_lines(rows: list[tuple[str, dict]]) -> list[str]:
    header = "| path | train sent/s | predict p50 ms | p95 ms | batch predict sent/s | peak RSS MB |"
    lines = [header, "|---|---:|---:|---:|---:|---:|"]

    def cell(value: float | None, digits: int = 1) -> str:
        return "" if value is None else f"{value:.{digits}f}"

    for name, r in rows:
        if "backend" in r:
            name = f"{name} ({r['backend']})"
        elif "forward" in r:
            name = f"{name} ({r['forward']})"
        lines.append(
            f"| {name} | {cell(r.get('train_sentences_per_s'))} | {cell(r.get('predict_p50_ms'))} | "
            f"{cell(r.get('predict_p95_ms'))} | {cell(r.get('batch_predict_sentences_per_s'))} | "
            f"{cell(r.get('peak_rss_mb'), 0)} |"
        )
    return lines


def table(report: dict) -> str:
    if "family" in report:
        return family_table(report)
    rows = [("tutorial (train + predict)", {**report["tutorial"]})] + list(report["ours"].items())
    lines = _table_lines(rows)
    lines.append("")
    lines.append("ratios to the tutorial: " + ", ".join(f"{k} {v}x" for k, v in report["ratios"].items()))
    shape = (
        "KoBERT's shape" if report["size"] == "base" else "KoBERT's tokenizer on the tiny shape (a check, not a speed)"
    )
    lines.append(f"backbone: {shape}, random weights")
    lines.append(machine_line(report["machine"]))
    return "\n".join(lines)


def family_table(report: dict) -> str:
    rows = [(f"{PADDED}{p} (transformers)", r) for p, r in report["padded"].items()] + list(report["ours"].items())
    lines = _table_lines(rows)
    b, m = report["backbone"], report["machine"]
    lines.append("")
    lines.append("ratios to the padded forward: " + ", ".join(f"{k} {v}x" for k, v in report["ratios"].items()))
    lines.append(
        f"backbone: {b['model_type']} {b['size']}, {b['num_hidden_layers']} layers, hidden {b['hidden_size']}, "
        f"{b['parameters'] / 1e6:.1f}M parameters, {b['vocab_size']}-token {b['tokenizer']} tokenizer learnt from "
        f"{b['tokenizer_rows']} rows, {b['weights']} weights; our forward: {report['forward']}"
    )
    lines.append(machine_line(m))
    return "\n".join(lines)


def machine_line(m: dict) -> str:
    flags = " ".join(m["cpu_flags"]) or "none of " + " ".join(SPEED_FLAGS)
    return f"machine: {m['cpu']}, {m['cores']} cores, flags {flags}, torch {m['torch']}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kobert_demo bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--family",
        choices=FAMILY_CHOICES,
        default="kobert",
        help="kobert: the tutorial's loop against ours on KoBERT's shape; bert, roberta, electra: the family's padded "
        "transformers forward against ours, on a hub-like folder built here (random weights, a tokenizer learnt "
        "from --data)",
    )
    parser.add_argument(
        "--size",
        choices=("base", "tiny"),
        default="base",
        help="base: the family's real shape; tiny: the same tokenizer on a 2-layer, 128-wide model (a quick check)",
    )
    parser.add_argument("--data", help="labelled rows to use (default, in a clone: tests/data/nsmc/train.tsv)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--train-rows", type=int, default=512, help="rows per training path: a warm-up, then one timed pass"
    )
    parser.add_argument("--latency-sentences", type=int, default=30)
    parser.add_argument("--predict-rows", type=int, default=256)
    parser.add_argument("--paths", help="comma-separated; default: every path of the family")
    parser.add_argument(
        "--accuracy",
        action="store_true",
        help="instead: train tiny one epoch with the tutorial's loop and with ours, and compare test accuracy",
    )
    parser.add_argument(
        "--explain",
        action="store_true",
        help="instead: time explanations (Integrated Gradients) one sentence at a time at the family's base size; "
        "with --run, also that run's deletion check on --accuracy-test rows",
    )
    parser.add_argument("--run", help="with --explain: a trained run whose explanations to check by deletion")
    parser.add_argument("--explain-rows", type=int, default=500, help="with --explain --run: held-out rows to check")
    parser.add_argument("--accuracy-test", help="held-out rows (default, in a clone: tests/data/nsmc/test.tsv)")
    parser.add_argument("--accuracy-rows", type=int, default=40_000)
    parser.add_argument("--seeds", default="42,43,44", help="with --accuracy: one run of each loop per seed")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.data = args.data or clone_file("train.tsv")
    args.accuracy_test = args.accuracy_test or clone_file("test.tsv")
    if args.data is None or (args.accuracy_test is None and (args.accuracy or args.run)):
        flag = "--data" if args.data is None else "--accuracy-test"
        parser.error(f"{flag} is needed: name a TSV or CSV of labelled rows (an installed package has no tests/data)")
    kobert = args.family == "kobert"
    if args.accuracy and not kobert:
        parser.error("--accuracy compares the tutorial's loop with ours on tiny; it takes no --family")

    if args.accuracy:
        report = accuracy_check(args)
        print(json.dumps(report, indent=2 if not args.json else None))
        return 0
    if args.run and not args.explain:
        parser.error("--run goes with --explain")
    n_rows = max(args.train_rows, args.predict_rows, args.latency_sentences) * 2
    texts, labels = read_rows(Path(args.data), n_rows)
    if args.worker:
        print(json.dumps(run_worker(args.worker, Path(args.folder), texts, labels, args)))
        return 0

    paths = args.paths.split(",") if args.paths else list(TRAIN_PATHS + PREDICT_PATHS if kobert else FAMILY_PATHS)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="kobert-bench-") as tmp:
        if kobert:
            folder = build_backbone(Path(tmp) / "backbone", args.size)
        else:
            from kobert_demo.basics.data import read_table

            every_text = read_table(Path(args.data)).texts
            folder = build_family_backbone(Path(tmp) / "backbone", args.family, every_text, args.size)
            backbone = describe_backbone(folder, args.size, len(every_text))
        if args.explain:
            report = {"family": args.family, "explain": explain_check(args, folder), "machine": machine()}
            print(json.dumps(report, indent=2 if not args.json else None))
            return 0
        for path in paths:
            print(f"bench: {path} ...", file=sys.stderr, flush=True)
            command = [sys.executable, "-m", "kobert_demo", "bench", "--worker", path, "--folder", str(folder)]
            command += [f"--{k.replace('_', '-')}={getattr(args, k)}" for k in ("data", "batch_size", "train_rows")]
            command += [f"--latency-sentences={args.latency_sentences}", f"--predict-rows={args.predict_rows}"]
            command += [f"--family={args.family}"]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode:
                print(done.stderr, file=sys.stderr)
                raise SystemExit(f"error: bench path {path} failed")
            results[path] = json.loads(done.stdout.strip().splitlines()[-1])
    report = kobert_report(results, args.size) if kobert else family_report(args.family, backbone, results)
    print(json.dumps(report, indent=2) if args.json else table(report))
    return 0


def kobert_report(results: dict[str, dict], size: str) -> dict:
    """The tutorial's two halves joined into one row, against ours; size: KoBERT's shape (base) or tiny."""
    halves = [results.pop(p) for p in ("tutorial_train", "tutorial_predict") if p in results]
    tutorial = {k: v for half in halves for k, v in half.items()}
    if halves:
        tutorial["peak_rss_mb"] = max(half["peak_rss_mb"] for half in halves)
    report = {"size": size, "tutorial": tutorial, "ours": results, "machine": machine()}
    try:
        report["ratios"] = ratios(tutorial, results)
    except KeyError:
        report["ratios"] = {}
    return report
