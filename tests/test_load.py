"""The bounded load test: 50 concurrent gradio_client visitors predicting while a job trains, none failing."""

from __future__ import annotations

import pytest
from conftest import DATA

from kobert_demo.tools.loadtest import run

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning"),  # raised inside gradio's queue
]


def test_fifty_visitors_predict_while_a_job_trains(tmp_path, capsys):
    result = run(DATA / "nsmc" / "train.tsv", visitors=50, requests_each=2, home=tmp_path / "runs", before_s=0)
    with capsys.disabled():
        print(f"\nload test: {result}")
    assert result["failed"] == 0, result["failures"]
    assert result["ok"] == 100
    assert result["job_state_after"] == "running"  # the load really ran beside a training job
    assert result["train_sentences_per_s_during"], "the job made no step during the load: it yields, not stops"
