"""Tests for tools.bench: a small real run of every path through the CLI, and the JSON the issue asks for;
the same for each family's bench (--family, at tiny size) against its padded transformers forward.

Only the shape of the report and its arithmetic are checked here; the figures themselves are measured by hand
(README, Speed) because timings do not belong in assertions.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import DATA, REPO, run_cli, sample_rows, write_tsv

from kobert_demo.basics.cpu import cpu_flags
from kobert_demo.basics.data import read_table
from kobert_demo.engine.families import FAMILIES
from kobert_demo.engine.tiny import TINY_SHAPE
from kobert_demo.serving.choice import MAX_DIFF
from kobert_demo.serving.explain import STEPS
from kobert_demo.tools import driving
from kobert_demo.tools.bench import (
    FAMILY_PATHS,
    FAMILY_RATIOS,
    PREDICT_PATHS,
    SPEED_FLAGS,
    TRAIN_PATHS,
    build_backbone,
    build_family_backbone,
    describe_backbone,
    family_ratios,
    family_report,
    kobert_report,
    main,
    ratios,
    read_rows,
    run_worker,
    table,
)
from kobert_demo.tools.hublike import TINY_EMBEDDING_SIZE

SIZES = {"train_rows": 8, "batch_size": 4, "latency_sentences": 3, "predict_rows": 8}  # a few rows a path
SMALL = tuple(part for name, value in SIZES.items() for part in (f"--{name.replace('_', '-')}", str(value)))


# Every path at the tiny shape in the README's test command, in this process (run_worker: the code each worker process
# runs; kobert_report joins them); at KoBERT's shape as the CLI runs it (a driver and seven worker processes, two
# minutes on two cores) with -m extra.
@pytest.fixture(scope="module", params=["in-process", pytest.param("cli", marks=pytest.mark.extra)])
def report(request, tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp(f"bench-{request.param}")
    if request.param == "cli":
        done = run_cli("bench", "--json", "--data", DATA / "nsmc" / "train.tsv", *SMALL, cwd=tmp)
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads(done.stdout)
    with in_this_process():
        folder = build_backbone(tmp / "backbone", "tiny")
        return kobert_report(run_paths(folder, "kobert", TRAIN_PATHS + PREDICT_PATHS), "tiny")


@contextlib.contextmanager
def in_this_process() -> Iterator[None]:
    """The bench's own process turns transformers' progress bars off for good; in this one they stay as they were."""
    import transformers

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(transformers.utils.logging, "disable_progress_bar", lambda: None)
        yield


def run_paths(folder: Path, family: str, paths: tuple[str, ...]) -> dict[str, dict]:
    """Each path's figures as its worker process measures them (run_worker), here, at SIZES."""
    args = argparse.Namespace(family=family, **SIZES)
    texts, labels = read_rows(DATA / "nsmc" / "train.tsv", 16)
    return {path: run_worker(path, folder, texts, labels, args) for path in paths}


# extra (21 s): the `report` and `family_report` fixtures' "cli" params run the same driver and workers as processes
# there, at every path; the README's command runs every path in-process.
@pytest.mark.extra
def test_the_cli_bench_runs_its_workers_as_processes(tmp_path) -> None:
    """The driver as the CLI runs it, on a data file the user names: one worker process per path, its JSON line
    read back into the report (one path here; every path runs in `report`)."""
    data = write_tsv(tmp_path / "rows.tsv", sample_rows("nsmc/train.tsv", 8))
    done = run_cli("bench", "--json", "--size", "tiny", "--paths", "predict_fp32", "--data", data,
                   *SMALL, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout)
    assert found["size"] == "tiny" and list(found["ours"]) == ["predict_fp32"]
    assert found["ours"]["predict_fp32"]["backend"] == "torch" and found["ours"]["predict_fp32"]["predict_p50_ms"] > 0
    assert "bench: predict_fp32 ..." in done.stderr


def test_report_has_every_path_and_the_required_figures(report: dict) -> None:
    assert set(report) == {"size", "tutorial", "ours", "ratios", "machine"}
    ours_paths = [p for p in TRAIN_PATHS + PREDICT_PATHS if not p.startswith("tutorial")]
    assert list(report["ours"]) == ours_paths
    tutorial = report["tutorial"]
    for key in ("train_sentences_per_s", "predict_p50_ms", "predict_p95_ms", "batch_predict_sentences_per_s"):
        assert tutorial[key] > 0
    for path in ("full", "cpu_mode"):
        assert report["ours"][path]["train_sentences_per_s"] > 0
    for path in ("predict", "predict_fp32"):
        figures = report["ours"][path]
        assert figures["predict_p95_ms"] >= figures["predict_p50_ms"] > 0
        assert figures["peak_rss_mb"] > 0
    assert report["ours"]["predict_fp32"]["backend"] == "torch"
    auto = report["ours"]["predict"]
    served = auto["serving"]  # auto's report: every candidate's p50 and difference from fp32, and the one chosen
    assert auto["backend"] == served["backend"] and not served["cached"]
    chosen = next(c for c in served["candidates"] if c["backend"] == auto["backend"])
    assert chosen["refused"] is None and chosen["p50_ms"] > 0
    if auto["backend"] != "torch":  # also checked on NSMC rows the selection never saw
        assert 0 <= auto["max_prob_diff_vs_fp32"] <= MAX_DIFF
    assert report["machine"]["cores"] >= 1 and "torch" in report["machine"]
    assert report["machine"]["cpu_flags"] == [flag for flag in SPEED_FLAGS if flag in cpu_flags()]


def test_ratios_say_how_many_times_faster_we_are() -> None:
    """Speeds divide ours by the tutorial's, latencies the tutorial's by ours: faster is always above 1."""
    tutorial = {"train_sentences_per_s": 100.0, "predict_p50_ms": 61.2, "batch_predict_sentences_per_s": 50.0}
    path = {"train_sentences_per_s": 483.0, "predict_p50_ms": 14.3, "batch_predict_sentences_per_s": 25.0}
    ours = {name: dict(path) for name in ("full", "cpu_mode", "predict", "predict_fp32")}
    ours["cpu_mode"]["train_sentences_per_s"] = 1495.0
    ours["predict_fp32"]["predict_p50_ms"] = 122.4  # twice as slow as the tutorial
    found = ratios(tutorial, ours)
    assert found["train_full"] == 4.83 and found["train_cpu_mode"] == 14.95
    assert found["predict_p50"] == 4.28
    assert found["predict_p50_fp32"] == 0.5 and found["batch_predict"] == 0.5


def test_report_ratios_match_its_figures(report: dict) -> None:
    assert report["ratios"] == ratios(report["tutorial"], report["ours"])


def test_table_names_each_path_its_backend_and_the_machine(report: dict) -> None:
    text = table(report)
    assert text.splitlines()[0].startswith("| path | train sent/s |")
    assert f"| predict ({report['ours']['predict']['backend']}) |" in text
    assert f"train_full {report['ratios']['train_full']}x" in text
    assert f"{report['machine']['cores']} cores" in text
    assert ("backbone: KoBERT's shape" in text) == (report["size"] == "base")


@pytest.mark.slow
def test_peak_memory_is_the_workers_own_not_its_parents(tmp_path) -> None:
    """A worker's peak RSS must not include the driver's: a child of a process that held 1 GB reports less."""
    parent = (
        "import subprocess, sys\n"
        "held = bytearray(2**30)\n"
        "for i in range(0, len(held), 4096):\n"
        "    held[i] = 1\n"
        "child = 'from kobert_demo.tools.bench import _peak_rss_mb; print(_peak_rss_mb())'\n"
        "print(subprocess.run([sys.executable, '-c', child], capture_output=True, text=True, check=True).stdout)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", parent], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert 0 < float(done.stdout) < 1024


@pytest.mark.extra  # 15 s: bench's --accuracy mode, two trainings per seed; the README's Speed section quotes it
def test_accuracy_mode_trains_both_loops_per_seed(tmp_path) -> None:
    done = run_cli(
        "bench", "--accuracy", "--json", "--data", DATA / "nsmc" / "train.tsv",
        "--accuracy-test", DATA / "nsmc" / "test.tsv", "--accuracy-rows", "400", "--seeds", "1,2",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert (result["train_rows"], result["test_rows"]) == (400, 100)
    assert [run["seed"] for run in result["runs"]] == [1, 2]
    for loop in ("ours", "tutorial"):
        scores = [run[f"{loop}_accuracy"] for run in result["runs"]]
        assert all(0 <= s <= 1 for s in scores)
        assert result[f"{loop}_mean"] == pytest.approx(sum(scores) / 2, abs=1e-4)
    assert result["difference"] == pytest.approx(result["ours_mean"] - result["tutorial_mean"], abs=2e-4)


# --- --family bert/roberta/electra -----------------------------------------------------------------------------------
# One family (ELECTRA, whose tiny folder exercises the embedding projection): the bench's code is the same for every
# family, and each family's model, tokenizer and forward are proven in tests/test_families.py and run through the CLI
# in tests/test_cli.py. In the README's test command every family path runs in this process (run_worker, the code
# each worker process runs) and family_report joins them; with -m extra the whole bench runs as the CLI runs it (a
# driver and six worker processes, about a minute on two cores).
@pytest.fixture(scope="module", params=["in-process", pytest.param("cli", marks=pytest.mark.extra)])
def family_run(request, tmp_path_factory) -> dict:
    """bench --family electra --size tiny --json, every path, a few rows each."""
    family, tmp = "electra", tmp_path_factory.mktemp(f"bench-{request.param}")
    if request.param == "cli":
        done = run_cli(
            "bench", "--family", family, "--size", "tiny", "--json", "--data", DATA / "nsmc" / "train.tsv", *SMALL,
            cwd=tmp,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads(done.stdout)
    every_text = read_table(DATA / "nsmc" / "train.tsv").texts
    with in_this_process():
        folder = build_family_backbone(tmp / "backbone", family, every_text, "tiny")
        results = run_paths(folder, family, FAMILY_PATHS)
    return family_report(family, describe_backbone(folder, "tiny", len(every_text)), results)


@pytest.mark.slow
def test_family_report_has_both_sides_of_every_path(family_run: dict) -> None:
    assert set(family_run) == {"family", "backbone", "forward", "padded", "ours", "ratios", "machine"}
    assert list(family_run["padded"]) == ["full", "cpu_mode", "predict"]
    assert list(family_run["ours"]) == ["full", "cpu_mode", "predict"]
    for side in ("padded", "ours"):
        for path in ("full", "cpu_mode"):
            assert family_run[side][path]["train_sentences_per_s"] > 0
        figures = family_run[side]["predict"]
        assert figures["predict_p95_ms"] >= figures["predict_p50_ms"] > 0
        assert figures["batch_predict_sentences_per_s"] > 0
    assert family_run["forward"] == "padding-free"
    assert {family_run["ours"][p]["forward"] for p in ("full", "cpu_mode")} == {"padding-free"}
    assert family_run["ours"]["predict"]["backend"] == family_run["ours"]["predict"]["serving"]["backend"]
    assert set(family_run["machine"]["cpu_flags"]) <= set(SPEED_FLAGS)
    assert family_run["machine"]["cores"] >= 1


@pytest.mark.slow
def test_family_bench_measures_the_familys_own_folder(family_run: dict) -> None:
    """The built folder is the family's hub-like checkpoint, and every path ran the family's classifier class."""
    family = family_run["family"]
    backbone = family_run["backbone"]
    checkpoint = {"bert": "BertForPreTraining", "roberta": "RobertaForMaskedLM", "electra": "ElectraForPreTraining"}
    assert (backbone["model_type"], backbone["checkpoint"]) == (family, checkpoint[family])
    assert backbone["tokenizer"] == ("BPE" if family == "roberta" else "WordPiece")
    assert (backbone["size"], backbone["hidden_size"]) == ("tiny", TINY_SHAPE["hidden_size"])
    if family == "electra":
        assert backbone["embedding_size"] == TINY_EMBEDDING_SIZE
    classes = {r["model_class"] for side in ("padded", "ours") for r in family_run[side].values()}
    assert classes == {FAMILIES[family].model_class.__name__}


@pytest.mark.slow
def test_family_ratios_are_computed_from_its_figures(family_run: dict) -> None:
    padded, ours = family_run["padded"], family_run["ours"]
    assert family_run["ratios"] == family_ratios(padded, ours)
    names = {"train_full", "train_cpu_mode", "train_cpu_mode_vs_padded_full", "predict_p50", "batch_predict"}
    assert set(family_run["ratios"]) == names
    expected = ours["full"]["train_sentences_per_s"] / padded["full"]["train_sentences_per_s"]
    assert family_run["ratios"]["train_full"] == round(expected, 2)


@pytest.mark.slow
def test_family_table_names_both_sides_and_the_backbone(family_run: dict) -> None:
    text = table(family_run)
    assert text.splitlines()[0].startswith("| path | train sent/s |")
    assert "| padded_full (transformers) |" in text and "| full (padding-free) |" in text
    assert f"| predict ({family_run['ours']['predict']['backend']}) |" in text
    assert f"train_full {family_run['ratios']['train_full']}x" in text
    assert f"backbone: {family_run['family']} tiny" in text


def test_family_ratios_set_ours_against_the_padded_forward() -> None:
    """Speeds divide ours by the padded forward's, latencies the padded forward's by ours; absent paths, no ratio."""
    padded = {
        "full": {"train_sentences_per_s": 10.0},
        "cpu_mode": {"train_sentences_per_s": 20.0},
        "predict": {"predict_p50_ms": 90.0, "batch_predict_sentences_per_s": 40.0},
    }
    ours = {
        "full": {"train_sentences_per_s": 25.0},
        "cpu_mode": {"train_sentences_per_s": 70.0},
        "predict": {"predict_p50_ms": 20.0, "batch_predict_sentences_per_s": 30.0},
    }
    found = family_ratios(padded, ours)
    assert found == {
        "train_full": 2.5, "train_cpu_mode": 3.5, "train_cpu_mode_vs_padded_full": 7.0, "predict_p50": 4.5,
        "batch_predict": 0.75,
    }  # fmt: skip
    del padded["cpu_mode"]
    assert "train_cpu_mode" not in family_ratios(padded, ours)
    assert set(FAMILY_RATIOS) > set(found)  # predict_fp32 only when that path ran


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--family", "roberta", "--accuracy"], "--accuracy"),
        (["--run", "runs/x"], "--explain"),
    ],
)
def test_family_options_that_do_not_go_together_are_refused(argv: list[str], said: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert said in capsys.readouterr().err


@pytest.mark.slow
def test_explain_mode_times_explanations_and_checks_a_runs_deletion(trained_run, capsys, monkeypatch) -> None:
    """bench --explain at tiny size (the README's figures are at base size): explanation times, the steps IG took,
    and with --run that run's deletion check on held-out rows."""
    import transformers

    # In process here: bench's own process turns transformers' progress bars off for good, this one must not.
    monkeypatch.setattr(transformers.utils.logging, "disable_progress_bar", lambda: None)
    argv = ["--explain", "--family", "bert", "--size", "tiny", "--json", "--data", str(DATA / "nsmc" / "train.tsv")]
    argv += ["--latency-sentences", "3", "--run", str(trained_run.path), "--explain-rows", "40"]
    argv += ["--accuracy-test", str(DATA / "nsmc" / "test.tsv")]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    explain = report["explain"]
    assert explain["sentences"] == 3 and explain["explain_p50_ms"] > 0 and explain["steps_mean"] >= STEPS[0]
    check = explain["deletion_check"]
    assert check["run"] == trained_run.path.name and 0 < check["sentences"] <= 40
    assert check["top_drop"] > check["random_drop"]
    assert report["family"] == "bert" and "bf16_cpu" in report["machine"]


@pytest.mark.parametrize("argv", [[], ["--accuracy", "--data", str(DATA / "nsmc" / "train.tsv")]])
def test_an_installed_bench_asks_for_the_data_it_has_no_clone_for(argv, monkeypatch, capsys) -> None:
    """A non-editable install has no tests/data: bench names the flag to give rather than failing on a missing path."""

    monkeypatch.setattr(driving, "CLONE_NSMC", REPO / "no-such-folder")
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert ("--accuracy-test" if argv else "--data") + " is needed" in error and "Traceback" not in error
