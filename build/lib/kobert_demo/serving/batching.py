"""Micro-batching: concurrent prediction calls for one model run as one batched forward.

A caller that finds the model idle runs its forward at once (no added delay). Callers that arrive while a forward
runs queue up; when it ends, the first of them leads the next forward, which takes every queued call up to
`max_sentences` sentences. Each caller gets its own rows back, and a forward's failure reaches only the callers in
it. A call of more than `max_sentences` sentences (a visitor's many lines) runs at once, beside the batched
forwards, so that single sentences never wait behind it. There is no background thread: every forward runs in the
thread of one of its callers, so nothing outlives the model it serves.
"""

from __future__ import annotations

import threading
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

# Predictor's own batch size: one forward of up to 64 padded sentences.
MAX_SENTENCES = 64


class _Call:
    """One caller's sentences, and what it gets back: its rows or the forward's error (or the turn to lead)."""

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.rows: np.ndarray | None = None
        self.error: BaseException | None = None
        self.lead = False
        self.ready = threading.Event()


class MicroBatcher:
    """Runs `forward(texts) -> np.ndarray` (one row per text) for many threads, one forward at a time, each forward
    taking the calls that queued while the previous one ran."""

    def __init__(self, forward: Callable[[list[str]], np.ndarray], max_sentences: int = MAX_SENTENCES) -> None:
        self.forward = forward
        self.max_sentences = max_sentences
        self._lock = threading.Lock()
        self._waiting: deque[_Call] = deque()
        self._busy = False

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """forward(texts)'s rows, computed alone or in one forward with other callers' sentences."""
        if len(texts) > self.max_sentences:  # a batch by itself: beside the batched forwards, never holding them up
            return self.forward(list(texts))
        call = _Call(list(texts))
        with self._lock:
            self._waiting.append(call)
            call.lead = not self._busy
            self._busy = True
        if not call.lead:
            call.ready.wait()
        if call.lead:
            self._run_batch()
        if call.error is not None:
            raise call.error
        assert call.rows is not None
        return call.rows

    def _run_batch(self) -> None:
        """Lead one forward: take the queued calls (this thread's first), answer them, and hand the lead on."""
        with self._lock:
            batch = [self._waiting.popleft()]
            size = len(batch[0].texts)
            while self._waiting and size + len(self._waiting[0].texts) <= self.max_sentences:
                size += len(self._waiting[0].texts)
                batch.append(self._waiting.popleft())
        try:
            rows = self.forward([text for call in batch for text in call.texts])
            start = 0
            for call in batch:
                call.rows = rows[start : start + len(call.texts)].copy()
                start += len(call.texts)
        except BaseException as error:  # the callers of this forward get it; later ones are not affected
            for call in batch:
                call.error = error
        finally:
            with self._lock:
                following = self._waiting[0] if self._waiting else None
                self._busy = following is not None
                if following is not None:
                    following.lead = True
            for call in batch[1:]:
                call.ready.set()
            if following is not None:
                following.ready.set()


_batchers: dict[int, MicroBatcher] = {}
_batchers_lock = threading.Lock()


def batcher_for(target: Any, forward: Callable[[Any, list[str]], np.ndarray] | None = None) -> MicroBatcher:
    """The one MicroBatcher of target (e.g. a Predictor), made on first use and dropped when target is.

    Each forward calls forward(target, texts), by default target.predict_proba(texts). The batcher holds target
    only weakly: a predictor dropped from the cache is freed with its batcher. While a call runs, its caller holds
    target.
    """
    key = id(target)
    with _batchers_lock:
        batcher = _batchers.get(key)
        if batcher is None:
            ref = weakref.ref(target)
            run = forward or (lambda model, texts: model.predict_proba(texts))
            batcher = _batchers[key] = MicroBatcher(lambda texts: run(ref(), texts))
            weakref.finalize(target, _forget, key)
        return batcher


def _forget(key: int) -> None:
    with _batchers_lock:
        _batchers.pop(key, None)
