"""The micro-batcher: concurrent calls share forwards, each caller gets exactly its own rows, errors stay with
their forward, and an idle call runs at once."""

from __future__ import annotations

import gc
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from kobert_demo.serving.batching import MicroBatcher, batcher_for


class StandIn:
    """A predictor whose rows depend only on each text; counts its forwards and can hold one until released."""

    def __init__(self) -> None:
        self.forwards: list[list[str]] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        self.forwards.append(list(texts))
        self.entered.set()
        self.release.wait(10)
        if any(text.startswith("bad") for text in texts):
            raise ValueError("a bad sentence")
        return np.array([[len(text), sum(map(ord, text)) % 97] for text in texts], dtype=np.float32)


def held_then_queued(model: StandIn, batcher: MicroBatcher, first: list[str], later: list[list[str]]) -> list:
    """Start a forward for `first` and hold it; queue the `later` calls behind it; release; each call's outcome."""
    model.release.clear()
    with ThreadPoolExecutor(len(later) + 1) as pool:
        leading = pool.submit(batcher.predict_proba, first)
        assert model.entered.wait(10)
        queued = [pool.submit(batcher.predict_proba, texts) for texts in later]
        while len(batcher._waiting) < len(later):  # every later call is queued behind the held forward
            threading.Event().wait(0.01)
        model.release.set()
        return [future.exception() or future.result() for future in (leading, *queued)]


def test_concurrent_callers_get_exactly_their_own_rows():
    model = StandIn()
    batcher = MicroBatcher(model.predict_proba, max_sentences=16)
    calls = [[f"문장 {n} {'가' * (n % 7)}", f"둘째 {n}"][: 1 + n % 2] for n in range(40)]
    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(batcher.predict_proba, calls))
    for texts, rows in zip(calls, results, strict=True):
        np.testing.assert_array_equal(rows, StandIn().predict_proba(texts))  # as if predicted alone
    assert sum(len(forward) for forward in model.forwards) == sum(map(len, calls))


def test_callers_waiting_on_a_forward_share_the_next_one():
    model = StandIn()
    batcher = MicroBatcher(model.predict_proba, max_sentences=5)
    later = [["a"], ["bb", "ccc"], ["dddd"], ["e"], ["ff", "g"]]
    results = held_then_queued(model, batcher, ["first"], later)
    # the held forward, then the queued calls in order, up to 5 sentences a forward: 4 of them, then the last one
    assert model.forwards == [["first"], ["a", "bb", "ccc", "dddd", "e"], ["ff", "g"]]
    for texts, rows in zip([["first"], *later], results, strict=True):
        np.testing.assert_array_equal(rows, StandIn().predict_proba(texts))


def test_an_error_reaches_only_the_callers_of_its_forward():
    model = StandIn()
    batcher = MicroBatcher(model.predict_proba, max_sentences=3)
    later = [["ok 1"], ["bad 2"], ["ok 3"], ["ok 4"]]
    results = held_then_queued(model, batcher, ["ok 0"], later)
    assert model.forwards == [["ok 0"], ["ok 1", "bad 2", "ok 3"], ["ok 4"]]
    assert [isinstance(result, ValueError) for result in results] == [False, True, True, True, False]
    np.testing.assert_array_equal(results[-1], StandIn().predict_proba(["ok 4"]))
    np.testing.assert_array_equal(batcher.predict_proba(["again"]), StandIn().predict_proba(["again"]))


def test_an_idle_call_runs_at_once_in_the_callers_thread():
    threads = []
    batcher = MicroBatcher(lambda texts: threads.append(threading.current_thread()) or np.zeros((len(texts), 2)))
    assert batcher.predict_proba(["혼자"]).shape == (1, 2)
    assert threads == [threading.current_thread()]
    assert not batcher._busy and not batcher._waiting


def test_a_call_larger_than_a_forward_runs_beside_the_batched_ones():
    release = threading.Event()
    forwards: list[list[str]] = []

    def forward(texts: list[str]) -> np.ndarray:
        forwards.append(texts)
        if texts == ["held"]:
            release.wait(10)
        return StandIn().predict_proba(texts)

    batcher = MicroBatcher(forward, max_sentences=2)
    many = ["하나", "둘", "셋"]
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(batcher.predict_proba, ["held"])
        while not forwards:
            threading.Event().wait(0.01)
        rows = batcher.predict_proba(many)  # answered while the held forward still runs
        assert not held.done()
        release.set()
        held.result()
    np.testing.assert_array_equal(rows, StandIn().predict_proba(many))


def test_a_predictors_batcher_is_shared_and_goes_with_it():
    model = StandIn()
    assert batcher_for(model) is batcher_for(model)
    assert batcher_for(model) is not batcher_for(StandIn())
    np.testing.assert_array_equal(batcher_for(model).predict_proba(["가"]), StandIn().predict_proba(["가"]))
    from kobert_demo.serving import batching

    count = len(batching._batchers)
    del model
    gc.collect()
    assert len(batching._batchers) == count - 1


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_real_predictor_batched_matches_alone(trained_predictor):
    texts = ["정말 재미있어요", "최악의 영화, 시간 아깝다", "그냥 그랬어요", "배우 연기가 좋았다"]
    alone = [trained_predictor.predict_proba([text])[0] for text in texts]
    batcher = batcher_for(trained_predictor)
    with ThreadPoolExecutor(len(texts)) as pool:
        together = list(pool.map(lambda text: batcher.predict_proba([text])[0], texts))
    np.testing.assert_allclose(together, alone, atol=0.01)  # padding and int8 scales may move the last digits
