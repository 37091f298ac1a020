"""`kobert-demo` (or `python -m kobert_demo`): validate, train, evaluate, predict, explain, tokenize, export, models,
bench and app.

Options and sentences may come in any order; `--` ends the options, so that `predict RUN -- "-_- 별로"` works.
User errors exit with status 2 and one line `error: ...` on stderr, in Korean when the locale is Korean
(`KOBERT_DEMO_LANG=en|ko` overrides); argparse's own usage errors stay as argparse writes them.
`main(argv)` returns the exit status and leaves no global state behind (the tests call it in-process).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from kobert_demo.app.launch import add_arguments as add_app_arguments
from kobert_demo.basics.config import MODES, TrainConfig, config_fields
from kobert_demo.basics.errors import UserFacingError
from kobert_demo.basics.messages import t
from kobert_demo.basics.settings import CHUNK_ROWS, runs_home
from kobert_demo.engine.backbones import CATALOGUE, HUB_MODELS, expected_speed

if TYPE_CHECKING:  # torch and accelerate load only when a command needs them: the CLI starts fast
    from accelerate import PartialState

    from kobert_demo.basics.events import Event
    from kobert_demo.serving.predict import Predictor

EXIT_USER_ERROR = 2


class CliError(UserFacingError):
    """A command line the user can fix; printed as one line."""


# --- validate -----------------------------------------------------------------------------------------------------
def cmd_validate(args: argparse.Namespace) -> int:
    from kobert_demo.basics.data import read_table

    data = read_table(args.file, args.text_col, args.label_col)
    counts = data.class_counts()
    if args.json:
        print(json.dumps(data.report(), ensure_ascii=False))
        return 0
    dropped = ", ".join(f"{n} {why}" for why, n in data.dropped_reasons("en").items()) or "none"
    print(f"{data.name}: {data.encoding}, separator {data.separator!r}, columns {', '.join(data.columns)}")
    print(f"text column: {data.text_col}   label column: {data.label_col}")
    print(f"rows: {data.rows_read} read, {len(data.texts)} kept, dropped: {dropped}")
    print(f"classes ({len(counts)}):")
    for label, n in counts.items():
        print(f"  {label}\t{n}")
    return 0


# --- train --------------------------------------------------------------------------------------------------------
def cmd_train(args: argparse.Namespace) -> int:
    from kobert_demo.basics.data import make_splits, read_table
    from kobert_demo.engine.train import train

    config = TrainConfig(**{name: getattr(args, name) for name in config_fields()})
    config.check()
    train_data = read_table(args.file, args.text_col, args.label_col)
    test_data = read_table(args.test, args.text_col, args.label_col) if args.test else None
    valid_data = read_table(args.valid, args.text_col, args.label_col) if args.valid else None
    splits = make_splits(train_data, test_data, config.test_size, config.seed, valid_data, config.validation_size)
    meta = {
        "train_file": train_data.name,
        "test_file": test_data.name if test_data else None,
        "valid_file": valid_data.name if valid_data else None,
    }
    return report_training(train(config, splits, args.out, meta=meta), args.out, args.quiet)


def report_training(events: Iterator[Event], out: str, quiet: bool) -> int:
    """Show a training's events as they come (a progress bar and the tutorial's lines); a failure raised as the
    command's error."""
    from tqdm import tqdm

    from kobert_demo.basics.events import (
        DoneEvent,
        EpochEvent,
        ErrorEvent,
        EvalEvent,
        NoticeEvent,
        StartEvent,
        StepEvent,
        tutorial_line,
    )

    bar = None
    failed: ErrorEvent | None = None
    for event in events:
        if isinstance(event, ErrorEvent):
            failed = event  # reported below, as the command's error
        if not is_main_process():  # under torchrun/accelerate launch only the main process reports
            continue
        line = tutorial_line(event)
        if isinstance(event, StartEvent):
            print(line, file=sys.stderr)
            bar = tqdm(total=event.total_steps, unit="step", dynamic_ncols=True, disable=quiet)
        elif isinstance(event, StepEvent):
            bar.update(1)
            bar.set_postfix(epoch=event.epoch, loss=f"{event.loss:.3f}", acc=f"{event.train_acc:.3f}", refresh=False)
            if line:
                bar.write(line)
        elif isinstance(event, (EpochEvent, EvalEvent, NoticeEvent)):
            (bar.write if bar else print)(line)
        elif bar:  # done or failed
            bar.close()
        if isinstance(event, DoneEvent):
            print(f"{line}; run folder: {out}")
    if failed:
        raise failed.error
    return 0


# --- resume -------------------------------------------------------------------------------------------------------
def cmd_resume(args: argparse.Namespace) -> int:
    """Go on with an interrupted, stopped or failed run from its checkpoint: on its copy of the data (a web app
    run), or on the files given again (a CLI run keeps none), which must be the data it was training on."""
    from kobert_demo.app.training_child import DATA_DIR, job_splits, read_job
    from kobert_demo.basics.data import make_splits, read_table
    from kobert_demo.basics.runs import check_resumable, open_run
    from kobert_demo.engine.train import train

    run = open_run(args.run)
    check_resumable(run)
    config = TrainConfig.from_dict(run.config())
    job = read_job(run)
    if args.file:
        columns = config.text_col, config.label_col
        train_data = read_table(args.file, *columns)
        test_data = read_table(args.test, *columns) if args.test else None
        valid_data = read_table(args.valid, *columns) if args.valid else None
        splits = make_splits(train_data, test_data, config.test_size, config.seed, valid_data, config.validation_size)
    elif job.get("train") and (run.path / DATA_DIR / job["train"]).is_file():
        splits = job_splits(run, config, job)
    else:
        raise CliError("resume_needs_data", run=run.name)
    return report_training(train(config, splits, run.path, resume=True), args.run, args.quiet)


def is_main_process() -> bool:
    from accelerate import PartialState

    return PartialState().is_main_process


# --- evaluate -----------------------------------------------------------------------------------------------------
def cmd_evaluate(args: argparse.Namespace) -> int:
    from kobert_demo.basics.data import check_model_labels, read_table
    from kobert_demo.basics.metrics import classification_metrics
    from kobert_demo.serving.predict import Predictor

    predictor = Predictor.load(args.run)
    data = read_table(args.file, args.text_col, args.label_col)
    names = predictor.label_names
    check_model_labels(data, names)
    predicted = predictor.predict_proba(data.texts).argmax(1).tolist()
    metrics = classification_metrics([names.index(label) for label in data.labels], predicted, names)
    if args.json:
        print(json.dumps(metrics, ensure_ascii=False))
        return 0
    print(f"{data.name}: {metrics['n']} rows, accuracy {metrics['accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f}")
    width = max(len(n) for n in names)
    print(f"{'class':<{width}}  precision  recall     f1  support")
    for name, m in metrics["per_class"].items():
        print(f"{name:<{width}}  {m['precision']:9.3f}  {m['recall']:6.3f}  {m['f1']:5.3f}  {m['support']:7d}")
    print("confusion matrix (rows: true, columns: predicted):")
    for name, row in zip(names, metrics["confusion_matrix"]):
        print(f"{name:<{width}}  " + " ".join(f"{v:6d}" for v in row))
    return 0


# --- predict ------------------------------------------------------------------------------------------------------
def cmd_predict(args: argparse.Namespace) -> int:
    from kobert_demo.basics.csv_out import DECIMALS
    from kobert_demo.serving.predict import Predictor

    if bool(args.texts) == bool(args.file):
        raise CliError("cli_sentences_or_file")
    if args.file and not args.out:
        raise CliError("cli_file_needs_out")
    if args.file:
        return cmd_predict_file(args)
    predictor = Predictor.load(args.run, backend=args.backend)
    names = predictor.label_names
    probs = predictor.predict_proba(args.texts)
    rows = [
        {"text": t, "label": names[int(p.argmax())], "probabilities": dict(zip(names, p.round(DECIMALS).tolist()))}
        for t, p in zip(args.texts, probs)
    ]
    if args.json:
        print(json.dumps({"labels": names, "predictions": rows}, ensure_ascii=False))
        return 0
    for row in rows:
        ranked = sorted(row["probabilities"].items(), key=lambda kv: -kv[1])
        print(f"{row['label']}\t" + "  ".join(f"{k} {v:.3f}" for k, v in ranked) + f"\t{row['text']}")
    return 0


def cmd_predict_file(args: argparse.Namespace) -> int:
    """Stream a file through the model into the predictions CSV the web app writes too (`bulk`); under accelerate
    launch/torchrun the processes share the chunks."""
    from accelerate import PartialState

    from kobert_demo.serving.bulk import merge_parts, predict_file_to_csv

    state = PartialState(cpu=not _has_gpu())
    device = str(state.device) if state.device.type != "cpu" else None
    predictor = _one_choice_for_every_rank(state, args.run, args.backend, device)
    predict_file_to_csv(
        predictor, args.file, args.out, args.text_col, resume=args.resume, chunk_rows=args.chunk_rows,
        rank=state.process_index, world=state.num_processes, progress=not args.quiet,
    )  # fmt: skip
    state.wait_for_everyone()
    if state.num_processes > 1 and state.is_main_process:
        merge_parts(args.out, state.num_processes, predictor.label_names, args.chunk_rows)
    return 0


def _one_choice_for_every_rank(state: PartialState, run: str, backend: str, device: str | None) -> Predictor:
    """The predictor of this rank, on the backend the main process chose (or read from the model folder): each rank
    measuring `auto` on its own could serve another path, even where no choice can be stored."""
    from accelerate.utils import broadcast_object_list

    from kobert_demo.serving.predict import Predictor

    if state.num_processes == 1:
        return Predictor.load(run, backend=backend, device=device)
    chosen: list[str | None] = [None]
    if state.is_main_process:
        predictor = Predictor.load(run, backend=backend, device=device)
        chosen = [predictor.backend]
    broadcast_object_list(chosen)
    return predictor if state.is_main_process else Predictor.load(run, backend=chosen[0], device=device)


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available() or torch.backends.mps.is_available()


# --- explain ------------------------------------------------------------------------------------------------------
def cmd_explain(args: argparse.Namespace) -> int:
    """Each word's share of a class's log-probability (see explain.py), for each sentence in order."""
    from kobert_demo.serving.predict import Predictor

    # The choice `predict` serves (stored in the model folder), so that the class explained by default is the one
    # `predict` prints; Integrated Gradients itself runs on the fp32 model.
    predictor = Predictor.load(args.run, backend="auto")
    explanations = [predictor.explain(text, args.label) for text in args.texts]
    if args.json:
        print(json.dumps({"explanations": [e.to_json() for e in explanations]}, ensure_ascii=False))
        return 0
    print("score: the word's share of the label's log-probability; positive = towards the label, negative = against")
    for e in explanations:
        print(f"\n{e.label} {e.probability:.3f}\t{e.text}")
        for word, score in zip(e.words, e.word_scores):
            print(f"  {score:+.3f} {word}")
        print(f"  completeness gap {e.completeness_gap:+.4f} (the scores' sum minus the change from [PAD] input)")
    return 0


# --- export -------------------------------------------------------------------------------------------------------
def cmd_export(args: argparse.Namespace) -> int:
    from kobert_demo.basics.runs import open_run
    from kobert_demo.serving.export import export_model

    path, diff = export_model(open_run(args.run), args.out, args.format)
    check = f" (probabilities within {diff:.2e} of PyTorch)" if diff is not None else ""
    print(f"exported {args.format} to {path}{check}")
    if args.format == "transformers" and not (path / "tokenizer.json").is_file():
        from kobert_demo.engine.hf_tokenizer import save_for_transformers
        from kobert_demo.engine.tokenizer import KoBertTokenizer

        reason = save_for_transformers(KoBertTokenizer.from_folder(path), path)
        if reason:
            print(f"no tokenizer.json for plain transformers: {reason}; load the tokenizer with kobert_demo")
    return 0


# --- models -------------------------------------------------------------------------------------------------------
def cmd_models(args: argparse.Namespace) -> int:
    """The curated backbones: family, size, license, the NSMC accuracy each card reports, expected speed here."""
    from kobert_demo.app.queue import JobQueue

    speeds = JobQueue(args.runs or runs_home()).measured_speeds()
    rows = []
    for model, backbone in CATALOGUE.items():
        speed = expected_speed(model, speeds)
        rows.append({
            "model": model, "family": backbone.family, "parameters": backbone.parameters, "license": backbone.license,
            "tokenizer": t("en", backbone.tokenizer),
            "nsmc_card": None if backbone.nsmc is None else {
                "accuracy": backbone.nsmc.accuracy, "card": backbone.nsmc.card, "url": backbone.nsmc.url,
            },
            "speed": None if speed is None else {
                "sentences_per_s": round(speed.sentences_per_s, 2), "measured": speed.measured,
                "reference": speed.reference,
            },
        })  # fmt: skip
    if args.json:
        print(json.dumps({"default": HUB_MODELS[0], "models": rows}, ensure_ascii=False))
        return 0
    width = max(len(model) for model in CATALOGUE)
    print(f"{'model':<{width}}  family   size    license       NSMC (card)  training speed here")
    for row, backbone in zip(rows, CATALOGUE.values()):
        card = f"{row['nsmc_card']['accuracy']:.2f}" if row["nsmc_card"] else "-"
        print(
            f"{row['model']:<{width}}  {backbone.family_name:<7}  {backbone.millions:>5}   "
            f"{row['license'] or '-':<12}  {card:>11}  {_speed_text(row['speed'])}"
        )
    cards = dict.fromkeys(f"{b.nsmc.card}: {b.nsmc.url}" for b in CATALOGUE.values() if b.nsmc)
    print("NSMC (card): the test accuracy the model's card reports, not measured here; " + "; ".join(cards))
    return 0


def _speed_text(speed: dict | None) -> str:
    """`12.5 sentences/s (measured)`, `... (estimate from tiny)` or `not measured yet`."""
    if speed is None:
        return "not measured yet"
    how = "measured" if speed["measured"] else f"estimate from {speed['reference']}"
    return f"{speed['sentences_per_s']:,.1f} sentences/s ({how})"


# --- tokenize -----------------------------------------------------------------------------------------------------
def cmd_tokenize(args: argparse.Namespace) -> int:
    from kobert_demo.engine.checkpoints import resolve_folder
    from kobert_demo.engine.fast_tokenizer import FastTokenizer
    from kobert_demo.engine.loading import uses_kobert_tokenizer
    from kobert_demo.engine.tokenizer import KoBertTokenizer
    from kobert_demo.serving.predict import model_folder

    if args.model and args.spm:
        raise CliError("cli_model_or_spm")
    if args.spm:
        tokenizer = KoBertTokenizer.from_files(args.spm, args.vocab, args.mode or "gluonnlp", args.max_len or 64)
    elif args.model:  # the model's own tokenizer: KoBERT's for KoBERT-like folders, tokenizer.json otherwise
        folder = model_folder(resolve_folder(args.model))
        if uses_kobert_tokenizer(folder):
            tokenizer = KoBertTokenizer.from_folder(folder, mode=args.mode, max_len=args.max_len)
        else:
            tokenizer = FastTokenizer.from_folder(folder, max_len=args.max_len)
    else:  # KoBERT's own files, carried with the package: works offline
        tokenizer = KoBertTokenizer.original(args.mode or "gluonnlp", args.max_len or 64)
    encoded = [tokenizer.encode(text) for text in args.texts]
    if args.json:
        print(
            json.dumps(
                {
                    "ids": [e.ids for e in encoded],
                    "pieces": [e.pieces for e in encoded],
                    "unknown": [e.unknown for e in encoded],
                    "mode": tokenizer.mode,
                },
                ensure_ascii=False,
            )
        )
        return 0
    for text, e in zip(args.texts, encoded):
        unknown = sum(e.unknown)
        mode = f"mode {tokenizer.mode}, " if tokenizer.mode else ""  # KoBERT's splitting mode; others have none
        print(f"{text}\n  {mode}{len(e.ids)} tokens, {unknown} unknown")
        print("  pieces: " + " ".join(f"{p}<UNK!>" if u else p for p, u in zip(e.pieces, e.unknown)))
        print("  ids:    " + " ".join(map(str, e.ids)))
    return 0


# --- app ----------------------------------------------------------------------------------------------------------
def cmd_app(args: argparse.Namespace) -> int:
    from kobert_demo.app.launch import serve

    return serve(args)


# --- job (the web app's child process) ---------------------------------------------------------------------------
def cmd_job(args: argparse.Namespace) -> int:
    from kobert_demo.app.training_child import run_job

    return run_job(args.run)


# --- parser -------------------------------------------------------------------------------------------------------
def add_config_flags(parser: argparse.ArgumentParser, config: type[TrainConfig] = TrainConfig) -> None:
    """One flag per field of config, from its Setting: name, type, default, choices and (English) help."""
    for spec in config_fields(config).values():
        setting = spec.setting
        text = t("en", setting.help).replace("%", "%%")  # argparse formats help with %
        if spec.name == "model":
            text = f"{text} Curated: {', '.join(CATALOGUE)}."
        default = setting.cli_default or ("%(default)s" if spec.default is not None else None)
        if default and spec.type is not bool:
            text = f"{text.rstrip('.')} (default: {default})."
        kind = {"action": argparse.BooleanOptionalAction} if spec.type is bool else {"type": spec.type}
        parser.add_argument(
            spec.flag, dest=spec.name, default=spec.default, choices=setting.choices or None, help=text, **kind
        )


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The top-level parser and each sub-command's own parser, by name."""
    parser = argparse.ArgumentParser(
        prog="kobert-demo",
        description="Fine-tune KoBERT for Korean text classification (also: python -m kobert_demo).",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def model_source(p: argparse.ArgumentParser) -> None:
        p.add_argument("run", help="a run folder or model folder")

    def columns(p: argparse.ArgumentParser) -> None:
        p.add_argument("--text-col", help="the text column (default: detected)")
        p.add_argument("--label-col", help="the label column (default: detected)")

    p = sub.add_parser("validate", help="check a data file: columns, rows kept and dropped, classes")
    p.add_argument("file")
    columns(p)
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("train", help="fine-tune a classifier; writes a run folder")
    p.add_argument("file", help="training data (.tsv, .csv or .txt)")
    p.add_argument("--test", help="test data; default: a stratified split of the training data")
    p.add_argument(
        "--valid",
        help="validation data, which chooses the kept model; default: a stratified split of the training data",
    )
    p.add_argument("--out", required=True, help="the run folder to create")
    add_config_flags(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("resume", help="go on with an interrupted, stopped or failed run from its last checkpoint")
    p.add_argument("run", help="the run folder")
    p.add_argument("file", nargs="?", help="its training data again (a run of the web app kept a copy)")
    p.add_argument("--test", help="its test data again, if it had a test file")
    p.add_argument("--valid", help="its validation data again, if it had a validation file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_resume)

    p = sub.add_parser("evaluate", help="score a run on a labelled file")
    model_source(p)
    p.add_argument("file")
    columns(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="class probabilities for sentences or a file")
    model_source(p)
    p.add_argument("texts", nargs="*", metavar="TEXT")
    p.add_argument("--file", help="a file of sentences (a table with a text column, or one sentence per line)")
    p.add_argument("--text-col", help="the text column of --file (default: detected)")
    p.add_argument("--out", help="the CSV to write for --file")
    p.add_argument("--resume", action="store_true", help="continue an interrupted --file run into the same --out")
    p.add_argument("--chunk-rows", type=int, default=CHUNK_ROWS, help="rows read, predicted and written at a time")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--backend",
        default="auto",
        choices=("auto", "torch", "bf16", "onnx", "int8"),  # serving.BACKENDS, which imports torch: not at start-up
        help="auto (default): on a CPU, the fastest of torch (fp32), bf16 (CPUs with AMX or AVX512-BF16), onnx "
        "(ONNX Runtime fp32) and int8 (ONNX Runtime, int8 weights) whose probabilities stay within 0.01 of fp32, "
        "measured once per model and machine and cached in the model folder; torch on a GPU",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("explain", help="why this label: each word's share of a class's probability")
    model_source(p)
    p.add_argument("texts", nargs="+", metavar="TEXT")
    p.add_argument("--label", help="the class to explain for every sentence (default: each one's predicted class)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("export", help="export a run: zip, plain transformers folder, or ONNX (checked)")
    p.add_argument("run", help="a run folder")
    p.add_argument("--format", default="transformers", choices=("zip", "transformers", "onnx"))
    p.add_argument("--out", required=True, help="the folder to create (for zip: the folder to put it in)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("tokenize", help="show a tokenizer's pieces and ids, with unknown pieces flagged")
    p.add_argument("texts", nargs="+", metavar="TEXT")
    p.add_argument("--model", help="a model folder, run folder or hub id (default: KoBERT's original tokenizer)")
    p.add_argument("--spm", help="a SentencePiece model file")
    p.add_argument("--vocab", help="the gluonnlp vocab JSON that goes with --spm")
    p.add_argument("--mode", choices=MODES, help=f"KoBERT's splitting mode; default: the model's, else {MODES[0]}")
    p.add_argument("--max-len", type=int)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_tokenize)

    p = sub.add_parser("models", help="the curated backbones: size, license, NSMC figure from each card, speed here")
    p.add_argument("--runs", help="the runs home whose measured speeds to use (default: KOBERT_DEMO_RUNS or ./runs)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(func=cmd_models)

    sub.add_parser("bench", help="speed: the tutorial's or a family's padded loop against ours (see bench --help)")

    p = sub.add_parser("app", help="serve the web app (like python app.py)")
    add_app_arguments(p)
    p.set_defaults(func=cmd_app)

    p = sub.add_parser("job", help="(internal) run a queued web-app job in its run folder")
    p.add_argument("run")
    p.set_defaults(func=cmd_job)
    return parser, dict(sub.choices)


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Options and positionals intermixed within a sub-command (argparse cannot intermix across sub-parsers)."""
    parser, commands = build_parser()
    if argv and argv[0] in commands:
        return commands[argv[0]].parse_intermixed_args(argv[1:])
    return parser.parse_args(argv)  # --help, no command or an unknown one: argparse's own answer


def main(argv: list[str] | None = None) -> int:
    """Run one sub-command and return its exit status, argparse's usage errors and --help included: only the edges
    (`python -m kobert_demo`, the console script) exit, so that main can run in-process, again and again."""
    try:
        return dispatch(sys.argv[1:] if argv is None else argv)
    except SystemExit as done:  # argparse's usage errors and --help, the app's SIGTERM
        return exit_status(done.code)


def exit_status(code: object) -> int:
    """The status a process would exit with for SystemExit(code): None is 0; anything else not an int is printed
    to stderr and is 1, as the interpreter does."""
    if code is None or isinstance(code, int):
        return code or 0
    print(code, file=sys.stderr)
    return 1


def dispatch(argv: list[str]) -> int:
    """The sub-command argv names, run; user errors become one `error: ...` line and status 2."""
    if argv[:1] == ["bench"]:  # the benchmark has its own options (python -m kobert_demo bench --help)
        from kobert_demo.tools.bench import main as bench

        return bench(argv[1:])
    args = parse_args(argv)
    lang = user_lang(os.environ)
    try:
        return args.func(args)
    except UserFacingError as error:
        print(f"error: {error.text(lang)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except FileNotFoundError as error:
        print(f"error: {t(lang, 'cli_no_such_file', path=error.filename or error)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"error: {t(lang, 'cli_interrupted')}", file=sys.stderr)
        return 130


def user_lang(environ: Mapping[str, str]) -> str:
    """ "ko" or "en" for the CLI's sentences: KOBERT_DEMO_LANG when it is one of them, else Korean when the locale's
    first set variable (LC_ALL, LC_MESSAGES, LANG, as gettext reads them) starts with "ko"."""
    chosen = environ.get("KOBERT_DEMO_LANG", "").strip().lower()
    if chosen in ("en", "ko"):
        return chosen
    locale = next((environ[name] for name in ("LC_ALL", "LC_MESSAGES", "LANG") if environ.get(name)), "")
    return "ko" if locale.lower().startswith("ko") else "en"
