"""How faithful the explanations are: does removing the word an explanation scores highest cost its class more
than removing a random word? An evaluation tool over a `Predictor` (bench's `explain` check, the tests), kept apart
from explain.py so that explain.py, which `Predictor.explain` imports, never imports predict.py."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass

from kobert_demo.serving.predict import Predictor


@dataclass
class DeletionCheck:
    """How faithful the explanations are: the mean fall in the explained class's probability when a sentence loses
    its top-scored word, against when it loses a random word."""

    sentences: int
    top_drop: float
    random_drop: float

    def to_json(self) -> dict:
        return asdict(self)


def deletion_check(predictor: Predictor, texts: list[str], seed: int = 0, min_words: int = 3) -> DeletionCheck:
    """Explain each text of at least min_words words for its predicted class, then predict it again without its
    top-scored word and without a random word (seeded)."""
    rng = random.Random(seed)
    top_drops, random_drops = [], []
    for text in (text for text in texts if len(text.split()) >= min_words):
        explanation = predictor.explain(text)
        words, column = explanation.words, predictor.label_names.index(explanation.label)
        removed = (max(range(len(words)), key=explanation.word_scores.__getitem__), rng.randrange(len(words)))
        without = [" ".join(words[:i] + words[i + 1 :]) for i in removed]
        p_top, p_random = predictor.predict_proba(without)[:, column]
        top_drops.append(explanation.probability - float(p_top))
        random_drops.append(explanation.probability - float(p_random))
    n = len(top_drops)
    return DeletionCheck(n, sum(top_drops) / max(n, 1), sum(random_drops) / max(n, 1))
