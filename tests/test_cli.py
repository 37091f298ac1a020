"""Tests for app.cli: every sub-command through main() in-process (conftest.call_cli, the `cli` fixture: what
the CLI does), and one real `python -m kobert_demo` process per sub-command (conftest.run_cli: the entry point,
its exit status and stderr, the environment reaching it); every user error as exit status 2 with one `error: `
line (English here unless a test asks for Korean); the train command's flags, made from TrainConfig's schema."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import DATA, KOBERT_FILES, VECTORS, CliRun, TrainedRun, call_cli, run_cli, sample_rows, write_tsv

from kobert_demo.app.cli import EXIT_USER_ERROR, build_parser, main, parse_args, user_lang
from kobert_demo.basics.config import TrainConfig, config_fields
from kobert_demo.basics.runs import open_run
from kobert_demo.serving.choice import BACKENDS
from kobert_demo.serving.predict import Predictor

LOCALE_VARIABLES = ("KOBERT_DEMO_LANG", "LC_ALL", "LC_MESSAGES", "LANG")


@pytest.fixture(autouse=True)
def english(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's sentences in English whatever this machine's locale (the language tests set their own)."""
    monkeypatch.setenv("KOBERT_DEMO_LANG", "en")


def user_error(result: subprocess.CompletedProcess) -> str:
    """The one `error: ...` line of a failed call (exit 2, no traceback, nothing on stdout)."""
    assert result.returncode == EXIT_USER_ERROR == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert result.stdout == ""
    return lines[0]


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


# validate

VALIDATE = [
    ("nsmc/train.tsv", "document", "label", "\t", ["id", "document", "label"], {"0": 600, "1": 600}),
    (
        "hate_speech/train.tsv",
        "comments",
        "hate",
        "\t",
        ["comments", "contain_gender_bias", "bias", "hate"],
        {"hate": 53, "none": 54, "offensive": 53},
    ),
    ("chatbot/ChatbotData.csv", "Q", "label", ",", ["Q", "A", "label"], {"0": 100, "1": 100, "2": 101}),
]


@pytest.mark.parametrize(("relative", "text_col", "label_col", "separator", "columns", "classes"), VALIDATE)
def test_validate(cli, relative, text_col, label_col, separator, columns, classes) -> None:
    path = DATA / relative
    rows = sum(classes.values())
    report = json.loads(ok(cli("validate", path, "--json")))
    assert report == {
        "file": str(path),
        "text_col": text_col,
        "label_col": label_col,
        "columns": columns,
        "encoding": "utf-8",
        "separator": separator,
        "rows_read": rows,
        "rows_kept": rows,
        "dropped": {},
        "classes": classes,
    }
    lines = ok(cli("validate", path)).splitlines()
    assert lines[0] == f"{path.name}: utf-8, separator {separator!r}, columns {', '.join(columns)}"
    assert lines[1] == f"text column: {text_col}   label column: {label_col}"
    assert lines[2] == f"rows: {rows} read, {rows} kept, dropped: none"
    assert lines[3] == f"classes ({len(classes)}):"
    assert lines[4:] == [f"  {label}\t{n}" for label, n in classes.items()]


# tokenize


@pytest.mark.parametrize("mode", ["gluonnlp", "whole"])
def test_tokenize_reproduces_vectors(cli, kobert_tokenizer, mode: str) -> None:
    vectors = [v for v in VECTORS if v["mode"] == mode]
    texts = [v["text"] for v in vectors]
    args = ["--spm", KOBERT_FILES.spm, "--vocab", KOBERT_FILES.vocab, "--mode", mode, "--json"]
    out = json.loads(ok(cli("tokenize", *texts, *args)))
    assert out["ids"] == [v["ids"] for v in vectors]
    assert out["mode"] == mode
    assert [len(p) for p in out["pieces"]] == [len(v["ids"]) for v in vectors]
    assert all(p[0] == "[CLS]" and p[-1] == "[SEP]" for p in out["pieces"])
    assert out["pieces"] == [[kobert_tokenizer.idx_to_token[i] for i in v["ids"]] for v in vectors]
    assert out["unknown"] == [[False] * len(v["ids"]) for v in vectors]


def test_tokenize_with_run_model(cli, trained_run: TrainedRun, trained_predictor: Predictor) -> None:
    text = "영화 ✈ 최고"
    expected = trained_predictor.tokenizer.encode(text)
    assert any(expected.unknown)
    lines = ok(cli("tokenize", text, "--model", trained_run.path)).splitlines()
    assert lines[0] == text
    assert lines[1] == f"  mode gluonnlp, {len(expected.ids)} tokens, {sum(expected.unknown)} unknown"
    assert lines[2].startswith("  pieces: [CLS] ") and "[UNK]<UNK!>" in lines[2]
    assert lines[3] == "  ids:    " + " ".join(map(str, expected.ids))


# User errors: exit 2, one line


def test_error_missing_file(cli) -> None:
    assert user_error(cli("validate", "missing.tsv")) == "error: missing.tsv does not exist or is not a file."


def test_error_single_class(capsys, tmp_path: Path) -> None:
    write_tsv(tmp_path / "one.tsv", [("좋아요", "1"), ("최고", "1"), ("재밌다", "1")])
    line = in_process_error(capsys, ["train", tmp_path / "one.tsv", "--out", tmp_path / "run", "--model", "tiny"])
    assert line.startswith("error: one.tsv has only one class ('1') in column 'label'")
    assert not (tmp_path / "run").exists()


def test_error_unknown_text_column(cli) -> None:
    line = user_error(cli("validate", DATA / "hate_speech/train.tsv", "--text-col", "document"))
    assert line == (
        "error: train.tsv has no column 'document'; its columns are 'comments', 'contain_gender_bias', 'bias', 'hate'."
    )


def test_error_bad_epochs(capsys, tmp_path: Path) -> None:
    argv = ["train", DATA / "nsmc/test.tsv", "--out", tmp_path / "run", "--model", "tiny", "--epochs", "0"]
    line = in_process_error(capsys, argv)
    assert line == "error: epochs must be at least 1"
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_error_nonsense_model(tmp_path: Path) -> None:
    """`train`'s real process: the cheapest one that runs the command (it fails on the model, after the run folder
    is made), its exit status and its one line on stderr."""
    line = user_error(run_cli("train", DATA / "nsmc/test.tsv", "--out", "run", "--model", "nonsense", cwd=tmp_path))
    assert line.startswith("error: model 'nonsense' is neither a folder on this machine")
    assert open_run(tmp_path / "run").status().state == "failed"


def test_error_predict_without_input(capsys, trained_run: TrainedRun) -> None:
    line = in_process_error(capsys, ["predict", trained_run.path])
    assert line == "error: give either sentences or --file FILE (with --out CSV), not both or neither."


# train, evaluate, predict


def test_train_writes_a_run(cli_run: CliRun) -> None:
    run = open_run(cli_run.run)
    names = {p.name for p in run.path.iterdir()}
    assert {"config.json", "labels.json", "status.json", "log.jsonl", "README.md", "model"} <= names
    assert (run.model_dir / "model.safetensors").is_file()
    assert run.status().state == "done"
    assert run.labels() == ["긍정", "부정", "중립"]
    config = run.config()
    assert (config["model"], config["epochs"], config["train_file"], config["test_file"]) == (
        "tiny",
        1,
        "ratings_train.tsv",
        "ratings_test.tsv",
    )
    events = run.events()
    # (tiny after one epoch may also be told it has not learned: a notice)
    assert [e.type for e in events if e.type not in ("step", "notice")] == ["start", "eval", "epoch", "done"]
    start = events[0]
    # 12 of the 120 training rows (10%, stratified) validate: they choose the kept model
    assert (start.train_rows, start.valid_rows, start.test_rows, start.steps_per_epoch) == (108, 12, 60, 7)

    stdout = cli_run.result.stdout.splitlines()
    logged = [line for line in stdout if line.startswith("epoch 1 batch id")]
    assert [line.split()[4] for line in logged] == ["1", "4", "7"]
    assert re.fullmatch(r"epoch 1 batch id 1 loss \d+\.\d{3} train acc [01]\.\d{3}", logged[0])
    done = events[-1]
    accuracy = done.test["accuracy"]
    test_line = f"epoch 1 test acc {accuracy:.4f} macro-F1 {done.test['macro_f1']:.4f} (not used to choose the model)"
    assert test_line in stdout
    valid_line = r"epoch 1 step 7 valid acc [01]\.\d{4} macro-F1 [01]\.\d{4} loss \d\.\d{4} \(best so far: kept\)"
    valid_at = next(i for i, line in enumerate(stdout) if line.startswith("epoch 1 step 7 valid"))
    assert re.fullmatch(valid_line, stdout[valid_at])
    assert stdout[valid_at + 1].startswith("epoch 1 train acc") and stdout[valid_at + 2] == test_line  # then the epoch
    assert stdout[-1] == (
        f"done in {done.elapsed:.0f} s, kept epoch 1 step 7 (validation accuracy {done.best_value:.4f}), "
        f"its test acc {accuracy:.4f}; run folder: run"
    )
    assert "model tiny (a small randomly initialised BERT" in cli_run.result.stderr


@pytest.mark.slow
def test_train_takes_a_validation_file_as_given(cli: Callable, tmp_path: Path) -> None:
    """--valid: its rows validate, none of the training file's are held out; the last line names the kept model,
    the metric, the early stop and the kept model's test accuracy."""
    write_tsv(tmp_path / "train.tsv", sample_rows("movie_ratings/train.tsv", 16))
    write_tsv(tmp_path / "test.tsv", sample_rows("movie_ratings/test.tsv", 4))
    write_tsv(tmp_path / "valid.tsv", sample_rows("movie_ratings/test.tsv", 6)[-9:])
    result = cli(
        "train", "train.tsv", "--test", "test.tsv", "--valid", "valid.tsv", "--out", "run", "--model", "tiny",
        "--epochs", "4", "--batch-size", "16", "--precision", "fp32", "--early-stopping-patience", "1",
        "--early-stopping-min-delta", "0.5", "--quiet",
    )  # fmt: skip
    stdout = ok(result).splitlines()
    run = open_run(tmp_path / "run")
    events = run.events()
    assert (events[0].train_rows, events[0].valid_rows, events[0].test_rows) == (48, 9, 12)
    assert run.config()["valid_file"] == "valid.tsv"
    done = events[-1]
    assert (done.kept_epoch, done.stop_reason) == (1, "early_stopping")  # no rise of 0.5 follows the first
    stopped = next(e for e in events if e.type == "notice" and e.key == "notice_early_stopped")
    assert stopped.text("en") in stdout[:-1]
    assert stdout[-1] == (
        f"done in {done.elapsed:.0f} s, kept epoch 1 step 3 (validation accuracy {done.best_value:.4f}), stopped "
        f"early, its test acc {done.test['accuracy']:.4f}; run folder: run"
    )


def test_train_refuses_a_validation_file_with_an_unknown_class(cli: Callable, tmp_path: Path) -> None:
    write_tsv(tmp_path / "train.tsv", sample_rows("movie_ratings/train.tsv", 20))
    write_tsv(tmp_path / "valid.tsv", [("그저 그래요", "중립"), ("별로", "최악")])
    line = user_error(cli("train", "train.tsv", "--valid", "valid.tsv", "--out", "run", "--model", "tiny"))
    assert line == (
        "error: valid.tsv has labels the training file lacks: '최악'; the validation data may only hold the training "
        "classes."
    )
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_resume_goes_on_with_a_stopped_run_on_its_data_and_refuses_a_done_one(cli_run: CliRun, tmp_path: Path) -> None:
    import shutil

    from kobert_demo.basics.events import NoticeEvent, StepEvent
    from kobert_demo.basics.runs import Run

    done = user_error(call_cli("resume", cli_run.run, cwd=tmp_path))
    assert "cannot be resumed" in done and "done" in done
    ko = call_cli("resume", cli_run.run, cwd=tmp_path, KOBERT_DEMO_LANG="ko").stderr
    assert "이어서 학습할 수 없습니다" in ko and "완료" in ko
    shutil.copytree(cli_run.run, tmp_path / "run")
    Run(tmp_path / "run").set_status("stopped")  # as a stop after its last evaluation leaves it
    assert "give its training file again" in user_error(call_cli("resume", "run", cwd=tmp_path))
    other = write_tsv(tmp_path / "other.tsv", sample_rows("movie_ratings/train.tsv", 30))
    changed = user_error(call_cli("resume", "run", other, "--test", cli_run.test_file, cwd=tmp_path))
    assert "not the data the run was training on" in changed
    lines = ok(call_cli("resume", "run", cli_run.train_file, "--test", cli_run.test_file, cwd=tmp_path))
    assert lines.splitlines()[-1].startswith("done") and "run folder: run" in lines
    run = open_run(tmp_path / "run")
    assert run.status().state == "done"
    steps = [e.step for e in run.events() if isinstance(e, StepEvent)]
    assert steps == list(range(1, len(steps) + 1))
    assert [e.key for e in run.events() if isinstance(e, NoticeEvent)].count("notice_resumed") == 1


def test_evaluate_matches_the_run(cli_run: CliRun) -> None:
    result = call_cli("evaluate", "run", cli_run.test_file.name, "--json", cwd=cli_run.folder)
    metrics = json.loads(ok(result))
    assert {"accuracy", "macro_f1", "per_class", "confusion_matrix", "labels"} <= set(metrics)
    assert metrics["labels"] == ["긍정", "부정", "중립"]
    assert list(metrics["per_class"]) == ["긍정", "부정", "중립"]
    assert metrics["n"] == 60
    best = open_run(cli_run.run).final_metrics()
    assert metrics["accuracy"] == best["accuracy"]
    assert metrics["confusion_matrix"] == best["confusion_matrix"]


def test_predict_sentences_json(cli_run: CliRun) -> None:
    """`predict`'s real process: Korean sentences and classes through its stdout."""
    texts = ["정말 재미있는 영화였다", "시간 낭비, 최악"]
    out = json.loads(ok(run_cli("predict", "run", *texts, "--json", cwd=cli_run.folder)))
    assert out["labels"] == ["긍정", "부정", "중립"]
    auto = Predictor.load(cli_run.run, backend="auto")  # the CLI's default backend
    assert auto.serving.cached  # the choice the CLI's process measured, read back: the same backend
    expected = auto.predict(texts)
    assert [row["text"] for row in out["predictions"]] == texts
    for row, probs in zip(out["predictions"], expected):
        assert list(row["probabilities"]) == out["labels"]
        assert row["probabilities"] == pytest.approx(probs, abs=1e-5)
        assert row["label"] == max(probs, key=probs.get)


def test_predict_takes_options_and_sentences_in_any_order(cli_run: CliRun, capsys) -> None:
    """Options before, between or after the sentences; `--` ends the options for sentences that start with -."""
    texts = ["-_- 별로", "--최고--", "정말 좋다"]
    expected = Predictor.load(cli_run.run, backend="torch").predict(texts)
    out = json.loads(ok(in_folder(cli_run, "predict", "--json", "run", "--backend", "torch", "--", *texts)))
    assert [row["text"] for row in out["predictions"]] == texts
    for row, probs in zip(out["predictions"], expected):
        assert row["probabilities"] == pytest.approx(probs, abs=1e-5)

    def predicted(*argv: str) -> list[str]:
        assert main(["predict", *argv]) == 0
        return [row["text"] for row in json.loads(capsys.readouterr().out)["predictions"]]

    run = str(cli_run.run)
    assert predicted(run, "--backend", "torch", "--json", "--", *texts) == texts
    assert predicted(run, "--backend", "int8", "--json", "--", *texts) == texts  # ONNX Runtime, int8 weights
    assert build_parser()[1]["predict"].parse_args(["run"]).backend == "auto"
    backend = next(action for action in build_parser()[1]["predict"]._actions if action.dest == "backend")
    assert tuple(backend.choices) == BACKENDS
    assert predicted(run, "--json", "--", "좋다", "--json") == ["좋다", "--json"]
    assert predicted(run, "정말 좋다", "--json", "별로", "--backend", "torch") == ["정말 좋다", "별로"]


def test_predict_file_to_csv(cli_run: CliRun) -> None:
    result = in_folder(
        cli_run, "predict", "run", "--file", cli_run.test_file.name, "--out", "out.csv", "--backend", "torch"
    )
    ok(result)
    table = pd.read_csv(cli_run.folder / "out.csv", keep_default_na=False)
    assert list(table.columns) == ["text", "label", "confidence", "p_긍정", "p_부정", "p_중립"]
    texts = pd.read_csv(cli_run.test_file, sep="\t", keep_default_na=False)["document"].tolist()
    assert len(table) == len(texts) == 60
    assert table["text"].tolist() == texts
    predictor = Predictor.load(cli_run.run)
    probs = predictor.predict_proba(texts)
    np.testing.assert_allclose(table[["p_긍정", "p_부정", "p_중립"]].to_numpy(), probs, atol=1e-5)
    assert table["label"].tolist() == [predictor.label_names[i] for i in probs.argmax(1)]
    np.testing.assert_allclose(table["confidence"], probs.max(1), atol=1e-5)


EXPLANATION_KEYS = {
    "text", "label", "probability", "words", "word_scores", "tokens", "token_scores", "completeness_gap"
}  # fmt: skip


def test_explain_json_through_the_cli(cli_run: CliRun) -> None:
    """`explain`'s real process: several sentences around the options, a class to explain; each word of
    text.split() scored, and the class's probability is the float model's (what `predict --backend torch` gives).
    A process, because its stderr stays empty: warnings print once a process, and a logging handler made before a
    call in-process writes where the call does not look."""
    texts = ["정말 재미있는 영화였다!", "시간 낭비,  최악...", "-_- 그럭저럭"]
    args = ["explain", "run", texts[0], "--label", "부정", "--json", "--", *texts[1:]]
    result = run_cli(*args, cwd=cli_run.folder)
    entries = json.loads(ok(result))["explanations"]
    assert result.stderr == ""  # transformers and captum kept quiet
    expected = Predictor.load(cli_run.run, backend="torch").predict(texts)
    assert [entry["text"] for entry in entries] == texts
    for entry, probs in zip(entries, expected):
        assert set(entry) == EXPLANATION_KEYS
        assert entry["words"] == entry["text"].split()
        assert len(entry["word_scores"]) == len(entry["words"])
        assert len(entry["token_scores"]) == len(entry["tokens"]) and entry["tokens"][0] == "[CLS]"
        assert entry["label"] == "부정"
        assert entry["probability"] == pytest.approx(probs["부정"], abs=1e-4)
        assert sum(entry["word_scores"]) == pytest.approx(sum(entry["token_scores"]), abs=1e-5)


def in_folder(cli_run: CliRun, *args: str) -> subprocess.CompletedProcess:
    """A CLI call (in-process) in the folder of the CLI-trained run."""
    return call_cli(*args, cwd=cli_run.folder)


@pytest.mark.slow
def test_export_zip(cli_run: CliRun, tmp_path: Path) -> None:
    """`export` on its cheapest format: the run zipped, with its model."""
    import zipfile

    lines = ok(call_cli("export", cli_run.run, "--format", "zip", "--out", tmp_path, cwd=tmp_path)).splitlines()
    (zipped,) = tmp_path.glob("*.zip")
    assert lines == [f"exported zip to {zipped}"]
    assert any(name.endswith("model.safetensors") for name in zipfile.ZipFile(zipped).namelist())


# More error paths, in process


def in_process_error(capsys, argv: list) -> str:
    assert main([str(a) for a in argv]) == EXIT_USER_ERROR
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    return lines[0]


def test_tokenize_takes_one_source(capsys) -> None:
    argv = ["tokenize", "x", "--model", "tiny", "--spm", KOBERT_FILES.spm]
    assert "not both" in in_process_error(capsys, argv)


@pytest.mark.slow
def test_tokenize_without_a_source_is_kobert_offline(tmp_path: Path) -> None:
    """`tokenize`'s real process: no --model and no --spm, KoBERT's original tokenizer, from the files the package
    carries."""
    vectors = [v for v in VECTORS if v["mode"] == "gluonnlp"]
    out = json.loads(ok(run_cli("tokenize", "--json", "--", *(v["text"] for v in vectors), cwd=tmp_path)))
    assert out["ids"] == [v["ids"] for v in vectors]


def test_tokenize_missing_spm(capsys, tmp_path: Path) -> None:
    missing = tmp_path / "nope.model"
    assert in_process_error(capsys, ["tokenize", "x", "--spm", missing]) == f"error: {missing} does not exist."


def test_tokenize_nonsense_model(capsys) -> None:
    assert "is neither a folder" in in_process_error(capsys, ["tokenize", "x", "--model", "???"])


def test_predict_argument_errors(capsys, trained_run: TrainedRun, tmp_path: Path) -> None:
    both = ["predict", trained_run.path, "좋다", "--file", tmp_path / "f.txt", "--out", tmp_path / "o.csv"]
    assert "not both or neither" in in_process_error(capsys, both)
    no_out = ["predict", trained_run.path, "--file", tmp_path / "f.txt"]
    assert in_process_error(capsys, no_out) == "error: --file needs --out CSV: where to write the probabilities."
    assert "has no config.json" in in_process_error(capsys, ["predict", tmp_path, "좋다"])


def test_predict_file_of_lines(capsys, trained_predictor: Predictor, trained_run: TrainedRun, tmp_path: Path) -> None:
    lines = ["정말 좋았다", "별로였다", "그럭저럭"]
    (tmp_path / "sentences.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out.csv"
    argv = ["predict", trained_run.path, "--file", tmp_path / "sentences.txt", "--out", out, "--backend", "torch"]
    assert main([str(a) for a in argv]) == 0
    table = pd.read_csv(out)
    assert table["text"].tolist() == lines
    np.testing.assert_allclose(table[["p_0", "p_1"]].to_numpy(), trained_predictor.predict_proba(lines), atol=1e-5)


@pytest.mark.slow
def test_explain_predicted_classes_and_text_view(capsys, trained_run: TrainedRun, trained_predictor: Predictor) -> None:
    """Without --label each sentence's predicted class is explained; the text view shows the same scores, a word a
    line in the sentence's order."""
    texts = ["정말 재밌어요 최고", "별로였다. 시간 아까움", "그냥 그래요"]
    assert main(["explain", str(trained_run.path), "--json", *texts]) == 0
    entries = json.loads(capsys.readouterr().out)["explanations"]
    for entry, probs in zip(entries, trained_predictor.predict(texts), strict=True):
        assert entry["label"] == max(probs, key=probs.get)
        assert entry["probability"] == pytest.approx(probs[entry["label"]], abs=1e-4)
        assert entry["words"] == entry["text"].split() and len(entry["word_scores"]) == len(entry["words"])
    assert main(["explain", str(trained_run.path), *texts]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "positive = towards the label" in lines[0]
    expected = []
    for entry in entries:
        expected += ["", f"{entry['label']} {entry['probability']:.3f}\t{entry['text']}"]
        expected += [f"  {score:+.3f} {word}" for word, score in zip(entry["words"], entry["word_scores"])]
        expected.append(f"  completeness gap {entry['completeness_gap']:+.4f}")
    gap = "  completeness gap"  # then what the gap is, in brackets
    assert [line.split(" (")[0] if line.startswith(gap) else line for line in lines[1:]] == expected


@pytest.mark.slow
def test_explain_unknown_label(capsys, trained_run: TrainedRun) -> None:
    assert main(["explain", str(trained_run.path), "좋다", "별로", "--label", "긍정"]) == EXIT_USER_ERROR
    captured = capsys.readouterr()
    assert captured.err.splitlines() == ["error: The model has no class '긍정'; its classes are: 0, 1."]
    assert captured.out == ""


def test_evaluate_unknown_labels(capsys, trained_run: TrainedRun, tmp_path: Path) -> None:
    write_tsv(tmp_path / "other.tsv", [("좋다", "1"), ("나쁘다", "0"), ("그냥", "2")])
    line = in_process_error(capsys, ["evaluate", trained_run.path, tmp_path / "other.tsv"])
    assert line == "error: other.tsv has labels the model was not trained on: '2' (it knows '0', '1')."


def test_evaluate_text_report(capsys, trained_run: TrainedRun, nsmc_test) -> None:
    assert main(["evaluate", str(trained_run.path), str(DATA / "nsmc/test.tsv")]) == 0
    out = capsys.readouterr().out.splitlines()
    best = trained_run.events[-1].test
    assert out[0] == f"test.tsv: 300 rows, accuracy {best['accuracy']:.4f}, macro-F1 {best['macro_f1']:.4f}"
    assert out[-3] == "confusion matrix (rows: true, columns: predicted):"
    assert out[-2:] == [
        f"{name}  " + " ".join(f"{v:6d}" for v in row) for name, row in zip("01", best["confusion_matrix"])
    ]


# The train command's flags: one per TrainConfig field, today's names kept

# flag, the field it sets, a value that is not the default (as typed, as parsed)
FLAGS = [
    ("--model", "model", "tiny", "tiny"),
    ("--text-col", "text_col", "document", "document"),
    ("--label-col", "label_col", "label", "label"),
    ("--epochs", "epochs", "3", 3),
    ("--batch-size", "batch_size", "16", 16),
    ("--max-len", "max_len", "128", 128),
    ("--lr", "lr", "3e-5", 3e-5),
    ("--warmup-ratio", "warmup_ratio", "0.2", 0.2),
    ("--weight-decay", "weight_decay", "0", 0.0),
    ("--dropout", "dropout", "0.1", 0.1),
    ("--max-grad-norm", "max_grad_norm", "2", 2.0),
    ("--log-interval", "log_interval", "10", 10),
    ("--seed", "seed", "7", 7),
    ("--precision", "precision", "fp32", "fp32"),
    ("--mode", "tokenizer_mode", "whole", "whole"),
    ("--test-size", "test_size", "0.2", 0.2),
    ("--validation-size", "validation_size", "0.2", 0.2),
    ("--eval-steps", "eval_steps", "50", 50),
    ("--best-metric", "best_metric", "macro_f1", "macro_f1"),
    ("--early-stopping-patience", "early_stopping_patience", "3", 3),
    ("--early-stopping-min-delta", "early_stopping_min_delta", "0.01", 0.01),
    ("--class-weights", "class_weights", "balanced", "balanced"),
    ("--init-from", "init_from", "runs/first", "runs/first"),
]


def test_train_flags_default_to_the_config() -> None:
    args = parse_args(["train", "data.tsv", "--out", "run"])
    assert {name: getattr(args, name) for name in config_fields()} == TrainConfig().to_dict()


def test_train_flags_keep_their_names_and_types() -> None:
    argv = [part for flag, _, typed, _ in FLAGS for part in (flag, typed)]
    args = parse_args(["train", "data.tsv", *argv, "--cpu-mode", "--out", "run"])
    for _, name, _, parsed in FLAGS:
        assert getattr(args, name) == parsed and type(getattr(args, name)) is type(parsed), name
    assert args.cpu_mode is True
    assert {name for _, name, _, _ in FLAGS} | {"cpu_mode"} == set(config_fields())


def test_train_flag_choices_come_from_the_schema(capsys) -> None:
    with pytest.raises(SystemExit):
        parse_args(["train", "data.tsv", "--out", "run", "--mode", "bpe"])
    err = capsys.readouterr().err
    assert "invalid choice: 'bpe'" in err and "gluonnlp" in err and "whole" in err


def test_train_builds_its_config_from_the_flags(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """cmd_train hands train() the config the flags describe, field by field."""
    import kobert_demo.engine.train

    seen = []

    def fake_train(config: TrainConfig, splits, out, meta=None):
        seen.append(config)
        return iter(())

    monkeypatch.setattr(kobert_demo.engine.train, "train", fake_train)
    argv = [part for flag, _, typed, _ in FLAGS for part in (flag, typed)]
    assert main(["train", str(DATA / "nsmc/test.tsv"), "--out", str(tmp_path / "run"), *argv, "--cpu-mode"]) == 0
    assert seen == [TrainConfig(**{name: parsed for _, name, _, parsed in FLAGS}, cpu_mode=True)]


# The user's language


@pytest.mark.parametrize(
    ("environ", "lang"),
    [
        ({}, "en"),
        ({"LANG": "C.UTF-8"}, "en"),
        ({"LANG": "ko_KR.UTF-8"}, "ko"),
        ({"LANG": "ko"}, "ko"),
        ({"LC_ALL": "en_US.UTF-8", "LANG": "ko_KR.UTF-8"}, "en"),
        ({"LC_ALL": "", "LC_MESSAGES": "ko_KR.UTF-8", "LANG": "en_US.UTF-8"}, "ko"),
        ({"KOBERT_DEMO_LANG": "en", "LC_ALL": "ko_KR.UTF-8"}, "en"),
        ({"KOBERT_DEMO_LANG": "KO", "LANG": "C"}, "ko"),
        ({"KOBERT_DEMO_LANG": "fr", "LANG": "ko_KR.UTF-8"}, "ko"),
    ],
)
def test_user_lang(environ: dict, lang: str) -> None:
    assert user_lang(environ) == lang


def test_errors_in_korean_for_a_korean_locale(capsys, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in LOCALE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LANG", "ko_KR.UTF-8")
    bad_epochs = ["train", DATA / "nsmc/test.tsv", "--out", tmp_path / "run", "--epochs", "0"]
    assert in_process_error(capsys, bad_epochs) == "error: 에폭 수는 1 이상이어야 합니다"
    missing = tmp_path / "nope.model"
    assert in_process_error(capsys, ["tokenize", "x", "--spm", missing]) == f"error: {missing} 이(가) 없습니다."
    # argparse's own usage errors stay as argparse writes them, with its status
    assert main(["train", "data.tsv", "--out", "run", "--epochs", "many"]) == 2
    assert "invalid int value: 'many'" in capsys.readouterr().err

    monkeypatch.setenv("KOBERT_DEMO_LANG", "en")
    assert in_process_error(capsys, bad_epochs) == "error: epochs must be at least 1"


@pytest.mark.slow
def test_a_korean_locale_reaches_the_process(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`validate`'s real process: the locale reaches it, and its Korean line comes out whole on stderr."""
    monkeypatch.setenv("KOBERT_DEMO_LANG", "")  # no override: the locale decides
    monkeypatch.setenv("LC_ALL", "ko_KR.UTF-8")
    line = user_error(run_cli("validate", DATA / "hate_speech/train.tsv", "--text-col", "document", cwd=tmp_path))
    assert line.startswith("error: train.tsv 에 'document' 열이 없습니다"), line


# models: the curated backbones


def test_models_lists_the_catalogue_with_speeds_from_the_runs_home(capsys, tmp_path: Path) -> None:
    from conftest import step

    from kobert_demo.basics.runs import Run
    from kobert_demo.engine.backbones import CATALOGUE

    Run.create(tmp_path / "r1", TrainConfig(model="skt/kobert-base-v1"), ["0", "1"], {}).append(
        step(sentences_per_s=20.0)
    )
    assert main(["models", "--json", "--runs", str(tmp_path)]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["default"] == "skt/kobert-base-v1"
    rows = {row["model"]: row for row in listed["models"]}
    assert list(rows) == list(CATALOGUE)
    assert rows["skt/kobert-base-v1"]["speed"] == {"sentences_per_s": 20.0, "measured": True, "reference": None}
    assert rows["klue/roberta-base"]["speed"]["reference"] == "skt/kobert-base-v1"  # an estimate, and from which
    assert rows["klue/roberta-large"]["speed"]["sentences_per_s"] < 20.0
    assert rows["beomi/KcELECTRA-base-v2022"]["nsmc_card"]["accuracy"] == 91.97
    assert rows["klue/bert-base"]["nsmc_card"] is None and rows["klue/bert-base"]["license"] == "cc-by-sa-4.0"

    assert main(["models", "--runs", str(tmp_path / "empty")]) == 0
    text = capsys.readouterr().out
    assert "klue/roberta-large" in text and "337M" in text and "not measured yet" in text
    assert "not measured here" in text  # the NSMC figures are the cards'


@pytest.mark.slow
def test_models_through_a_process(tmp_path: Path) -> None:
    """`models`' real process: the catalogue as JSON, no runs home needed."""
    listed = json.loads(ok(run_cli("models", "--json", "--runs", tmp_path / "runs", cwd=tmp_path)))
    assert listed["default"] == "skt/kobert-base-v1" and len(listed["models"]) > 1


@pytest.mark.slow
def test_app_help_through_a_process(tmp_path: Path) -> None:
    """`app`'s real process, its cheapest invocation: the flags it serves with (serving it is test_package's and
    the server tests')."""
    out = ok(run_cli("app", "--help", cwd=tmp_path))
    assert out.startswith("usage: kobert-demo app") and "--port" in out and "--share" in out


def test_train_help_names_the_curated_backbones(capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "1000")  # argparse would wrap the ids at their hyphens
    assert main(["train", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "klue/roberta-large," in help_text and "monologg/koelectra-base-v3-discriminator" in help_text


@pytest.mark.parametrize("family", ["bert", "roberta", "electra"])
def test_tokenize_uses_the_models_own_tokenizer(capsys, family_folders: dict[str, Path], family: str) -> None:
    assert main(["tokenize", "--json", "--model", str(family_folders[family]), "정말 재밌어요"]) == 0
    pieces = json.loads(capsys.readouterr().out)["pieces"][0]
    assert (pieces[0], pieces[-1]) == (("<s>", "</s>") if family == "roberta" else ("[CLS]", "[SEP]"))
    assert main(["tokenize", "--model", str(family_folders[family]), "정말 재밌어요"]) == 0
    assert "mode" not in capsys.readouterr().out  # KoBERT's splitting modes are KoBERT's


@pytest.mark.slow
def test_every_family_predicts_and_exports_through_the_cli(family_run: TrainedRun, tmp_path: Path) -> None:
    """A hub-like folder of each family, trained (padding-free) as `train` trains it (conftest.family_run, shared
    with the engine's and serving's tests; `train` prints its start line to stderr, test_train_writes_a_run), then
    through the CLI: predict, export for plain transformers, and the export read back by transformers' own pipeline
    gives the same probabilities."""
    from transformers import pipeline

    from kobert_demo.basics.events import tutorial_line

    assert "padding-free forward" in tutorial_line(family_run.events[0])  # what `train` says on stderr
    card = (family_run.path / "README.md").read_text(encoding="utf-8")
    model_type = json.loads((family_run.path / "model" / "config.json").read_text(encoding="utf-8"))["model_type"]
    family = {"bert": "BERT", "roberta": "RoBERTa", "electra": "ELECTRA"}[model_type]
    assert f"- Family: {family}; tokenizer: its own tokenizer" in card

    sentences = ["정말 재밌어요 최고", "시간 낭비, 별로였다"]
    run = family_run.path
    predicted = json.loads(ok(call_cli("predict", run, "--json", "--backend", "torch", *sentences, cwd=tmp_path)))
    assert predicted["labels"] == ["0", "1"]
    ok(call_cli("export", run, "--format", "transformers", "--out", "exported", cwd=tmp_path))
    classify = pipeline("text-classification", model=str(tmp_path / "exported"), top_k=None, truncation=True)
    for row, scores in zip(predicted["predictions"], classify(sentences)):
        plain = {score["label"]: score["score"] for score in scores}
        assert plain == pytest.approx(row["probabilities"], abs=1e-3)


# main() in-process, again and again


def global_state() -> dict:
    """What a sub-command could leave changed in this process: the environment, the working directory, torch's
    threads and modes, warnings filters, every existing logger's level and handlers, transformers' verbosity and
    bars, signal handlers, sys.stdout/stderr. (Random generators are not here: every command that draws seeds
    them first; call_cli restores them for the next test.)"""
    import logging
    import os
    import signal
    import sys
    import warnings

    import torch
    from transformers.utils import logging as transformers_logging

    loggers = [logging.getLogger(), *(v for v in logging.Logger.manager.loggerDict.values() if hasattr(v, "handlers"))]
    return {
        "env": dict(os.environ), "cwd": os.getcwd(), "warnings": list(warnings.filters),
        "torch": (torch.get_num_threads(), torch.is_grad_enabled(), torch.get_default_dtype()),
        "loggers": {lg.name: (lg.level, lg.disabled, lg.propagate, list(lg.handlers)) for lg in loggers},
        "transformers": (transformers_logging.get_verbosity(), transformers_logging.is_progress_bar_enabled()),
        "signals": (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)),
        "streams": (sys.stdout, sys.stderr),
    }  # fmt: skip


@pytest.mark.slow
def test_main_leaves_no_global_state_behind(cli_run: CliRun, tmp_path: Path, capsys) -> None:
    """Each sub-command in-process, its successes and its errors, changes nothing for the next call (the loggers
    that a first import creates aside). onnxruntime's quantizer used to leave a handler on the root logger."""
    import logging
    import shutil

    # What the commands import lazily, imported first: what an import does to warnings or loggers is done once a
    # process, not by a call.
    import captum.attr  # noqa: F401
    import onnxruntime.quantization  # noqa: F401

    import kobert_demo.serving.bulk  # noqa: F401
    import kobert_demo.serving.explain  # noqa: F401
    import kobert_demo.serving.export  # noqa: F401
    from kobert_demo.serving.choice import ONNX_DIR, SERVING_FILE

    run = shutil.copytree(cli_run.run, tmp_path / "run", ignore=shutil.ignore_patterns(ONNX_DIR, SERVING_FILE))
    train_file = write_tsv(tmp_path / "train.tsv", sample_rows("movie_ratings/train.tsv", 8))
    calls = {
        ("validate", cli_run.test_file): 0,
        ("tokenize", "좋다", "--model", run): 0,
        ("train", train_file, "--out", tmp_path / "new", "--model", "tiny", "--epochs", "1", "--quiet"): 0,
        ("evaluate", run, cli_run.test_file, "--json"): 0,
        ("predict", run, "좋다", "--backend", "int8"): 0,  # builds the ONNX graphs: quantizes
        ("predict", run, "--file", cli_run.test_file, "--out", tmp_path / "out.csv", "--quiet"): 0,
        ("explain", run, "좋다", "--json"): 0,
        ("export", run, "--format", "onnx", "--out", tmp_path / "onnx"): 0,
        ("models", "--runs", tmp_path / "runs"): 0,
        ("train", "--help"): 0,
        ("train", "x.tsv", "--out", "run", "--epochs", "many"): 2,
        ("validate", tmp_path / "missing.tsv"): EXIT_USER_ERROR,
    }
    root = logging.getLogger()
    pytest_handlers = root.handlers[:]
    root.handlers.clear()  # as in a process, where logging.warning() gives a root without handlers one of its own
    try:
        for argv, status in calls.items():
            before = global_state()
            assert main([str(arg) for arg in argv]) == status, capsys.readouterr().err
            after = global_state()
            after["loggers"] = {name: after["loggers"][name] for name in before["loggers"]}  # new ones: imports'
            changed = {key: (before[key], after[key]) for key in before if after[key] != before[key]}
            assert not changed, (argv, changed)
    finally:
        root.handlers[:] = pytest_handlers
    capsys.readouterr()
