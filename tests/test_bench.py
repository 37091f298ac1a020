"""Tests for kobert_demo.bench: a small real run of every path through the CLI, and the JSON the issue asks for.

Only the shape of the report and its arithmetic are checked here; the figures themselves are measured by hand
(README, Speed) because timings do not belong in assertions.
"""

from __future__ import annotations

import json

import pytest
from conftest import DATA, run_cli

from kobert_demo.bench import PREDICT_PATHS, TRAIN_PATHS, ratios, table


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    done = run_cli(
        "bench", "--json", "--data", DATA / "nsmc" / "train.tsv",
        "--train-rows", "8", "--batch-size", "4", "--latency-sentences", "3", "--predict-rows", "8",
        cwd=tmp_path_factory.mktemp("bench"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_report_has_every_path_and_the_required_figures(report: dict) -> None:
    assert set(report) == {"tutorial", "ours", "ratios", "machine"}
    ours_paths = [p for p in TRAIN_PATHS + PREDICT_PATHS if not p.startswith("tutorial")]
    assert list(report["ours"]) == ours_paths
    tutorial = report["tutorial"]
    for key in ("train_sentences_per_s", "predict_p50_ms", "predict_p95_ms", "batch_predict_sentences_per_s"):
        assert tutorial[key] > 0
    for path in ("full", "cpu_mode"):
        assert report["ours"][path]["train_sentences_per_s"] > 0
    for path in ("predict", "predict_fp32", "predict_int8"):
        figures = report["ours"][path]
        assert figures["predict_p95_ms"] >= figures["predict_p50_ms"] > 0
        assert figures["peak_rss_mb"] > 0
    assert report["ours"]["predict_fp32"]["backend"] == "torch"
    assert report["ours"]["predict_int8"]["backend"] == "int8"
    assert 0 <= report["ours"]["predict_int8"]["max_prob_diff_vs_fp32"] < 0.1
    assert report["ours"]["predict"]["backend"] in ("torch", "int8")  # auto: whichever passed its check
    assert report["machine"]["cores"] >= 1 and "torch" in report["machine"]


def test_ratios_say_how_many_times_faster_we_are() -> None:
    """Speeds divide ours by the tutorial's, latencies the tutorial's by ours: faster is always above 1."""
    tutorial = {"train_sentences_per_s": 100.0, "predict_p50_ms": 61.2, "batch_predict_sentences_per_s": 50.0}
    path = {"train_sentences_per_s": 483.0, "predict_p50_ms": 14.3, "batch_predict_sentences_per_s": 25.0}
    ours = {name: dict(path) for name in ("full", "cpu_mode", "predict", "predict_fp32", "predict_int8")}
    ours["cpu_mode"]["train_sentences_per_s"] = 1495.0
    ours["predict_fp32"]["predict_p50_ms"] = 122.4  # twice as slow as the tutorial
    found = ratios(tutorial, ours)
    assert found["train_full"] == 4.83 and found["train_cpu_mode"] == 14.95
    assert found["predict_p50"] == found["predict_p50_int8"] == 4.28
    assert found["predict_p50_fp32"] == 0.5 and found["batch_predict"] == 0.5


def test_report_ratios_match_its_figures(report: dict) -> None:
    assert report["ratios"] == ratios(report["tutorial"], report["ours"])


def test_table_names_each_path_its_backend_and_the_machine(report: dict) -> None:
    text = table(report)
    assert text.splitlines()[0].startswith("| path | train sent/s |")
    assert f"| predict ({report['ours']['predict']['backend']}) |" in text
    assert f"train_full {report['ratios']['train_full']}x" in text
    assert f"{report['machine']['cores']} cores" in text


@pytest.mark.slow
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
