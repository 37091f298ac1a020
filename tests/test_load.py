"""The bounded load test: 50 concurrent gradio_client visitors predicting while a job trains, none failing."""

from __future__ import annotations

import json

import pytest
from conftest import DATA, own_run, sample_rows, write_tsv
from stub_job import stub_command

from kobert_demo.app.queue import JobQueue
from kobert_demo.tools import loadtest
from kobert_demo.tools.loadtest import load, run, sentences_per_s

# test_fifty_visitors... is extra: 34 s on the README's 2-core machine (39 s on this session's), the largest of the
# server tests, and none of it shareable: loadtest.run serves its own app, trains its own model and keeps a second job
# training under the load, two child processes of its own. CI's -m extra run keeps it; the tests before it cover the
# tool's parts (load, the speeds, --idle-training) in the README's command.
pytestmark = pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning")  # raised inside gradio's queue


def test_training_speed_between_two_logged_steps():
    assert sentences_per_s((10, 2.0), (30, 6.0), batch_size=8) == 40.0
    assert sentences_per_s((10, 2.0), (10, 2.0), batch_size=8) is None  # no step between them: no speed


@pytest.mark.slow
def test_visitors_on_the_shared_server_each_get_every_answer(server, trained_run, visitor):
    """load() on the session's server: each visitor its own gradio_client, none failing, the latencies counted. The
    whole tool (its own server, a job training under the load) runs in -m extra, below."""
    model = own_run(server.home, trained_run.path, visitor, "load-visitors")
    result = load(server.url, model, visitors=4, requests_each=2, deadline_s=3600)
    assert result["failed"] == 0, result["failures"]
    assert result["ok"] == result["requests"] == 8
    assert 0 < result["p50_ms"] <= result["p95_ms"]


@pytest.mark.slow
def test_idle_training_times_jobs_of_both_kinds_and_prints_them(tmp_path, monkeypatch, capsys):
    """--idle-training's report: each kind's speeds read from its jobs' logged steps. The jobs are the stub child's
    (tests/stub_job.py), whose steps are logged as a real job's are; whether yielding costs speed is bench's figure."""

    def stub_queue(home, poll_s, yield_cpu):
        return JobQueue(home, poll_s=poll_s, yield_cpu=False, child_command=stub_command(step_s=0.01))

    monkeypatch.setattr(loadtest, "JobQueue", stub_queue)
    rows = write_tsv(tmp_path / "train.tsv", sample_rows("nsmc/train.tsv", 40))  # 10 steps of 8 rows a job
    args = ["--idle-training", "--rounds", "1", "--epochs", "1", "--train-file", str(rows)]
    assert loadtest.main(args) == 0
    report = json.loads(capsys.readouterr().out)
    for kind in ("yielding", "not_yielding"):
        assert len(report[f"{kind}_sentences_per_s"]) == 1
        assert report[f"{kind}_median"] > 0, report
    assert "yielding_cost_pct" in report


@pytest.mark.slow
@pytest.mark.extra
def test_fifty_visitors_predict_while_a_job_trains(tmp_path, capsys):
    result = run(DATA / "nsmc" / "train.tsv", visitors=50, requests_each=2, home=tmp_path / "runs", before_s=0)
    with capsys.disabled():
        print(f"\nload test: {result}")
    assert result["failed"] == 0, result["failures"]
    assert result["ok"] == 100
    assert result["job_state_after"] == "running"  # the load really ran beside a training job
    assert result["train_sentences_per_s_during"], "the job made no step during the load: it yields, not stops"
