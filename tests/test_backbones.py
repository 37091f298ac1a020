"""The curated backbones (backbones.py): sizes counted from their shapes, licenses and card figures as recorded,
the expected speed from measured ones, and what a model card says about a backbone outside the catalogue."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
from conftest import KOBERT_SHAPE

from kobert_demo.basics.config import KOBERT_HUB_ID, TINY
from kobert_demo.basics.data import Splits
from kobert_demo.basics.events import DoneEvent
from kobert_demo.basics.messages import MESSAGES
from kobert_demo.engine.backbones import (
    CATALOGUE,
    HUB_MODELS,
    card_license,
    expected_speed,
    folder_family,
    is_curated,
    local_folder,
)
from kobert_demo.engine.checkpoints import expected_shapes
from kobert_demo.engine.families import FAMILIES
from kobert_demo.engine.memory import parameter_count
from kobert_demo.engine.tiny import TINY_SHAPE, TINY_VOCAB
from kobert_demo.tools.hublike import BASE_SHAPE, FAMILY_SHAPES

LICENSES = {
    KOBERT_HUB_ID: "apache-2.0",
    "klue/bert-base": "cc-by-sa-4.0",
    "klue/roberta-base": "cc-by-sa-4.0",
    "klue/roberta-large": "cc-by-sa-4.0",
    "beomi/KcELECTRA-base-v2022": "mit",
    # The hub card says apache-2.0, the GitHub repository's LICENSE CC BY-NC-SA 4.0: both are named.
    "monologg/koelectra-base-v3-discriminator": "apache-2.0 on the hub card; CC BY-NC-SA 4.0 in its GitHub repository",
    TINY: None,
}
# The NSMC test accuracies the cards report (KoELECTRA's finetune/README.md table; KcELECTRA's README table);
# KLUE's cards report none.
CARD_FIGURES = {
    KOBERT_HUB_ID: 89.59,
    "monologg/koelectra-base-v3-discriminator": 90.63,
    "beomi/KcELECTRA-base-v2022": 91.97,
}


def config_of(model: str):
    backbone = CATALOGUE[model]
    return FAMILIES[backbone.family].config_class(**backbone.shape, num_labels=2)


@pytest.mark.parametrize("model", list(CATALOGUE))
def test_sizes_are_counted_from_the_shape(model: str) -> None:
    """The table's numbers are what model.parameter_count and the model's own weights say for that shape."""
    config = config_of(model)
    backbone = CATALOGUE[model]
    assert parameter_count(config, 2) == backbone.parameters
    weights, _ = expected_shapes(config)
    embeddings = sum(math.prod(shape) for name, shape in weights.items() if ".embeddings." in name)
    assert backbone.parameters - embeddings == backbone.compute_parameters
    assert backbone.family == config.model_type


def test_shapes_agree_with_the_rest_of_the_repo() -> None:
    """KoBERT's as the tests use it, tiny's as model.py builds it, the hub-like base folders' as bench builds them."""
    assert {**CATALOGUE[KOBERT_HUB_ID].shape} == KOBERT_SHAPE
    assert CATALOGUE[TINY].shape == {**CATALOGUE[TINY].shape, **TINY_SHAPE, "vocab_size": TINY_VOCAB}
    for model, family in (
        ("klue/bert-base", "bert"), ("klue/roberta-base", "roberta"),
        ("monologg/koelectra-base-v3-discriminator", "electra"),
    ):  # fmt: skip
        shape = {**FAMILY_SHAPES[family], **BASE_SHAPE}
        assert {key: CATALOGUE[model].shape[key] for key in shape} == shape, model


def test_kobert_comes_first_and_every_family_is_offered() -> None:
    assert HUB_MODELS[0] == KOBERT_HUB_ID == next(iter(CATALOGUE)) and TINY not in HUB_MODELS
    assert {CATALOGUE[model].family for model in HUB_MODELS} == set(FAMILIES)
    assert all(is_curated(model) for model in CATALOGUE) and is_curated(f" {KOBERT_HUB_ID} ")
    assert not is_curated("klue/bert-small") and not is_curated("./klue/bert-base") and not is_curated(None)


def test_licenses_and_card_figures_are_the_recorded_ones() -> None:
    assert {model: backbone.license for model, backbone in CATALOGUE.items()} == LICENSES
    figures = {model: backbone.nsmc.accuracy for model, backbone in CATALOGUE.items() if backbone.nsmc}
    assert figures == CARD_FIGURES
    for backbone in CATALOGUE.values():
        assert backbone.tokenizer in MESSAGES
        if backbone.nsmc:
            assert backbone.nsmc.card and backbone.nsmc.url.startswith("https://")


def test_sizes_read_as_people_say_them() -> None:
    assert [CATALOGUE[m].millions for m in (KOBERT_HUB_ID, "klue/roberta-large", TINY)] == ["92M", "337M", "1.5M"]


# --- expected speed ---------------------------------------------------------------------------------------------
def test_a_measured_speed_is_the_models_own() -> None:
    speed = expected_speed("klue/bert-base", {"klue/bert-base": 12.0, TINY: 400.0})
    assert speed.measured and speed.sentences_per_s == 12.0 and speed.reference is None
    custom = expected_speed("./my-model", {"./my-model": 3.5})
    assert custom.measured and custom.sentences_per_s == 3.5


def test_an_unmeasured_model_scales_the_nearest_measured_one_by_compute() -> None:
    large = CATALOGUE["klue/roberta-large"].compute_parameters
    base = CATALOGUE[KOBERT_HUB_ID].compute_parameters
    speed = expected_speed("klue/roberta-large", {KOBERT_HUB_ID: 30.0, TINY: 900.0, "./mine": 5.0})
    assert not speed.measured and speed.reference == KOBERT_HUB_ID  # the nearest in compute, not tiny
    assert speed.sentences_per_s == pytest.approx(30.0 * base / large)
    # the same per-token compute: the same expected speed
    assert expected_speed("klue/roberta-base", {KOBERT_HUB_ID: 30.0}).sentences_per_s == pytest.approx(30.0)
    tiny_only = expected_speed(KOBERT_HUB_ID, {TINY: 900.0})
    assert tiny_only.reference == TINY and tiny_only.sentences_per_s < 900.0


def test_no_speed_without_a_usable_measurement() -> None:
    assert expected_speed(KOBERT_HUB_ID, {}) is None
    assert expected_speed(KOBERT_HUB_ID, {"./mine": 5.0}) is None  # a custom model's size is unknown here
    assert expected_speed("./other", {KOBERT_HUB_ID: 30.0}) is None


# --- backbones outside the catalogue ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("readme", "license_"),
    [
        ("---\nlanguage: ko\nlicense: mit\n---\n# A model\n", "mit"),
        ('---\nlicense: "cc-by-sa-4.0"\ntags:\n- korean\n---\n', "cc-by-sa-4.0"),
        ("---\ntags:\n- korean\n---\nlicense: mit\n", None),  # only the front matter counts
        ("# No front matter\nlicense: mit\n", None),
        ("---\nlicense:\n- mit\n- apache-2.0\n---\n", "mit, apache-2.0"),
        ("---\nlicense: [mit\n---\n", None),  # front matter that is not YAML
        (None, None),
    ],
)
def test_card_license_reads_the_front_matter(tmp_path: Path, readme: str | None, license_: str | None) -> None:
    if readme is not None:
        (tmp_path / "README.md").write_text(readme, encoding="utf-8")
    assert card_license(tmp_path) == license_


def test_folder_family_and_local_folder(family_folders: dict[str, Path], tmp_path: Path) -> None:
    for family, folder in family_folders.items():
        assert folder_family(folder) == family
        assert local_folder(str(folder)) == folder
    assert folder_family(tmp_path) is None
    assert local_folder("nobody/not-in-the-cache") is None  # offline and not cached: nothing is downloaded
    assert local_folder("not a hub id!") is None


def card_for(model: str) -> str:
    from kobert_demo.basics.config import TrainConfig
    from kobert_demo.engine.train import model_card

    splits = Splits(["a", "b"], [0, 1], ["c"], [1], ["neg", "pos"], "file")
    done = DoneEvent(state="done", kept_epoch=None, test=None, elapsed=1.0, run=None)
    return model_card(TrainConfig(model=model), splits, done, "fp32", 1)


def test_the_model_card_names_backbone_family_tokenizer_and_license(
    family_folders: dict[str, Path], tmp_path: Path
) -> None:
    assert "- Family: RoBERTa; tokenizer: its own WordPiece tokenizer" in card_for("klue/roberta-large")
    assert "backbone license: cc-by-sa-4.0" in card_for("klue/roberta-large")
    kobert = card_for(KOBERT_HUB_ID)
    assert "Family: BERT; tokenizer: KoBERT's own SentencePiece tokenizer; backbone license: apache-2.0" in kobert
    assert "backbone license: none: trained from scratch here" in card_for(TINY)

    folder = Path(shutil.copytree(family_folders["electra"], tmp_path / "electra"))
    card = card_for(str(folder))
    assert "- Family: ELECTRA; tokenizer: its own tokenizer (tokenizer.json" in card
    assert "backbone license: unknown: see the model's own card" in card
    (folder / "README.md").write_text("---\nlicense: apache-2.0\n---\n# ELECTRA\n", encoding="utf-8")
    assert "backbone license: apache-2.0" in card_for(str(folder))
