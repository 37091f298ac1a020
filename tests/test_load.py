"""The bounded load test: 50 concurrent gradio_client visitors predicting while a job trains, none failing."""

from __future__ import annotations

import pytest
from conftest import DATA

from kobert_demo.tools.loadtest import run

# extra: 34 s on the README's 2-core machine (39 s on this session's), the largest of the server tests, and none of it
# shareable: loadtest.run serves its own app, trains its own model and keeps a second job training under the load,
# two child processes of its own. It is the only test of tools/loadtest.py: CI's -m extra run keeps it.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.extra,
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
