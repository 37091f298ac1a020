"""The curated backbones: KoBERT (the default), the Korean encoders people pick today, and `tiny`.

For each: its family, its shape (the hub's config.json), its size, its license and the NSMC test accuracy its model
card reports (the card's figure, never ours). The expected training speed on this machine comes from the speeds
measured here (`jobs.JobQueue.measured_speeds`), scaled by per-token compute when a model has not run yet. No torch:
the CLI's `models` command and the web form read this before any model loads.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kobert_demo.basics.config import KOBERT_HUB_ID, TINY

FAMILY_NAMES = {"bert": "BERT", "roberta": "RoBERTa", "electra": "ELECTRA"}
KOELECTRA_TABLE = "KoELECTRA's benchmark table"
KOELECTRA_TABLE_URL = "https://github.com/monologg/KoELECTRA/blob/master/finetune/README.md"

KOELECTRA_LICENSE = "apache-2.0 on the hub card; CC BY-NC-SA 4.0 in its GitHub repository"


@dataclass(frozen=True)
class CardFigure:
    """An NSMC test accuracy (%) as a model card reports it, and which card."""

    accuracy: float
    card: str
    url: str


@dataclass(frozen=True)
class Backbone:
    """One curated backbone. parameters: the classifier's weights for 2 classes (model.parameter_count on a config of
    this shape, checked in tests/test_backbones.py); compute_parameters: the same without the embedding tables, the
    weights every token goes through (the proxy for training cost per token)."""

    model: str  # the hub id, or `tiny`
    family: str  # config.json's model_type
    shape: Mapping[str, int] = field(repr=False)
    parameters: int
    compute_parameters: int
    license: str | None  # SPDX-style, as the model card's front matter says; None: nothing downloaded (tiny)
    tokenizer: str  # message key: the tokenizer it trains with
    nsmc: CardFigure | None  # None: its card reports none

    @property
    def family_name(self) -> str:
        return FAMILY_NAMES[self.family]

    @property
    def millions(self) -> str:
        """The size as people say it: `92M`, `337M`, `1.5M`."""
        value = self.parameters / 1e6
        return f"{value:.0f}M" if value >= 10 else f"{value:.1f}M"


# The shapes are the hub's config.json files (KoBERT's as the KOBERT tests use it; klue/roberta-* after the
# hub's "model_max_length to 514" fix); tiny's is model.TINY_SHAPE with its largest vocabulary (TINY_VOCAB).
_BASE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)
CATALOGUE: dict[str, Backbone] = {
    backbone.model: backbone
    for backbone in (
        Backbone(
            KOBERT_HUB_ID, "bert",
            dict(vocab_size=8002, max_position_embeddings=512, type_vocab_size=2, pad_token_id=1, **_BASE),
            92_188_418, 85_646_594, "apache-2.0", "tok_kobert", CardFigure(89.59, KOELECTRA_TABLE, KOELECTRA_TABLE_URL),
        ),
        Backbone(
            "klue/bert-base", "bert",
            dict(vocab_size=32000, max_position_embeddings=512, type_vocab_size=2, pad_token_id=0, **_BASE),
            110_618_882, 85_646_594, "cc-by-sa-4.0", "tok_wordpiece", None,
        ),
        Backbone(
            "klue/roberta-base", "roberta",
            dict(vocab_size=32000, max_position_embeddings=514, type_vocab_size=1, pad_token_id=1, **_BASE),
            110_619_650, 85_646_594, "cc-by-sa-4.0", "tok_wordpiece", None,
        ),
        Backbone(
            "klue/roberta-large", "roberta",
            dict(
                vocab_size=32000, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                intermediate_size=4096, max_position_embeddings=514, type_vocab_size=1, pad_token_id=1,
            ),
            336_658_434, 303_361_026, "cc-by-sa-4.0", "tok_wordpiece", None,
        ),
        Backbone(
            "beomi/KcELECTRA-base-v2022", "electra",
            dict(
                vocab_size=54343, embedding_size=768, max_position_embeddings=512, type_vocab_size=2, pad_token_id=0,
                **_BASE,
            ),
            127_778_306, 85_646_594, "mit", "tok_wordpiece",
            CardFigure(91.97, "KcELECTRA's README", "https://github.com/Beomi/KcELECTRA"),
        ),
        Backbone(
            "monologg/koelectra-base-v3-discriminator", "electra",
            dict(
                vocab_size=35000, embedding_size=768, max_position_embeddings=512, type_vocab_size=2, pad_token_id=0,
                **_BASE,
            ),
            # The hub card says apache-2.0; the GitHub repository's LICENSE file says CC BY-NC-SA 4.0 (non-commercial).
            112_922_882, 85_646_594, KOELECTRA_LICENSE, "tok_wordpiece",
            CardFigure(90.63, KOELECTRA_TABLE, KOELECTRA_TABLE_URL),
        ),
        Backbone(
            TINY, "bert",
            dict(
                vocab_size=8000, hidden_size=128, num_hidden_layers=2, num_attention_heads=2, intermediate_size=512,
                max_position_embeddings=512, type_vocab_size=2, pad_token_id=1,
            ),
            1_503_362, 413_314, None, "tok_tiny", None,
        ),
    )
}  # fmt: skip
HUB_MODELS = tuple(model for model in CATALOGUE if model != TINY)  # KoBERT first


def is_curated(model: str | None) -> bool:
    """Whether model names a curated backbone: a known model, allowed even where custom models are off."""
    return (model or "").strip() in CATALOGUE


# --- expected speed -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Speed:
    """Training sentences per second on this machine: measured for the model itself, or scaled from reference's."""

    sentences_per_s: float
    reference: str | None = None  # None: measured for this model

    @property
    def measured(self) -> bool:
        return self.reference is None


def expected_speed(model: str, measured: Mapping[str, float]) -> Speed | None:
    """model's training speed here: its own latest measured speed, else a curated model's scaled by the ratio of
    their per-token compute (compute_parameters); None when nothing usable has been measured.

    The reference is the measured curated model nearest in compute: a 2-layer tiny spends much of its step on what
    does not grow with the model, so the nearer the sizes, the better the scaling holds.
    """
    if measured.get(model):
        return Speed(measured[model])
    target = CATALOGUE.get(model)
    references = [(name, speed) for name, speed in measured.items() if name in CATALOGUE and speed]
    if target is None or not references:
        return None
    name, speed = min(
        references, key=lambda r: abs(math.log(CATALOGUE[r[0]].compute_parameters / target.compute_parameters))
    )
    return Speed(speed * CATALOGUE[name].compute_parameters / target.compute_parameters, reference=name)


# --- what a model card says about a backbone that is not in the catalogue ------------------------------------------
def card_license(folder: Path) -> str | None:
    """The `license:` of folder's README.md front matter (a hub model card's), or None."""
    from huggingface_hub.repocard import metadata_load
    from yaml import YAMLError

    try:
        metadata = metadata_load(folder / "README.md")
    except (OSError, UnicodeDecodeError, YAMLError):
        return None
    license_ = metadata.get("license") if isinstance(metadata, dict) else None
    if isinstance(license_, list):  # a card may list several
        license_ = ", ".join(map(str, license_))
    return str(license_).strip() if license_ else None


def local_folder(source: str) -> Path | None:
    """The folder a backbone was read from: a local folder as is, a hub id's copy in the local hub cache (nothing is
    downloaded), or None."""
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(source, "config.json")
    except ValueError:  # not a hub id either (huggingface_hub's HFValidationError is a ValueError)
        return None
    return Path(found).parent if isinstance(found, str) else None


def folder_family(folder: Path) -> str | None:
    """folder's config.json model_type (BERT when it names none, as read_config reads it), or None when unreadable."""
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return config.get("model_type", "bert") if isinstance(config, dict) else None
