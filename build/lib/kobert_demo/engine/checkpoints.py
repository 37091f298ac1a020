"""Finding a model (hub id or folder) and checking its config and weights before any tensor is read: every encoder
weight in the config's shape, nothing random but a new head."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import torch
from safetensors import safe_open
from transformers import PretrainedConfig

from kobert_demo.basics.config import KOBERT_HUB_ID, TINY
from kobert_demo.basics.errors import BackboneError
from kobert_demo.engine.families import FAMILIES, MODEL_TYPES, family_of

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


# Weights, configs and every kind of tokenizer file: SentencePiece (*.model), tokenizer.json, vocab.txt, merges.txt.
# README.md: the model card, whose front matter names the model's license.
HUB_FILES = ["config.json", "*.safetensors", "pytorch_model.bin", "*.model", "*.json", "*.txt", "README.md"]


def describe_source(source: str) -> str:
    """source as the run and its model card call it."""
    if source == TINY:
        return "tiny (a small randomly initialised BERT trained from scratch, not KoBERT)"
    return source


def resolve_folder(source: str, patterns: list[str] | tuple[str, ...] = HUB_FILES) -> Path:
    """A local folder as is; a hub id downloaded (or taken from the local hub cache) to a folder, with the files
    that match patterns (default: what a model needs)."""
    if not source.strip():
        raise BackboneError("model_none_given", hub_id=KOBERT_HUB_ID, tiny=TINY)
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    if not _HUB_ID.match(source):
        raise BackboneError("model_unknown_source", source=source, hub_id=KOBERT_HUB_ID, tiny=TINY)
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id=source, allow_patterns=list(patterns)))
    except Exception as error:  # network, auth, missing repo: all end the same way for the user
        raise BackboneError("model_hub_failed", source=source, kind=type(error).__name__, tiny=TINY) from None


def one_line(error: Exception) -> str:
    """An exception's message on one line (transformers' validation errors span several)."""
    return " ".join(str(error).split())


def load_failure_reason(error: Exception, folder: Path, name: str) -> str:
    """An exception's message on one line, with folder's server path shown as name (the path may be a temp dir)."""
    text = one_line(error)
    for path in sorted({str(folder), str(folder.resolve())}, key=len, reverse=True):
        text = text.replace(path, name)
    return text


# What config.json may ask for: KoBERT is 8002/768/12/12/3072/512/2; BERT-large is 1024/24/16/4096; the largest
# multilingual vocabularies hold about 250,000 pieces. The memory budget (check_memory) bounds their product.
CONFIG_LIMITS = {
    "vocab_size": 250_000,
    "hidden_size": 4096,
    "num_hidden_layers": 48,
    "num_attention_heads": 64,
    "intermediate_size": 16_384,
    "max_position_embeddings": 8192,
    "type_vocab_size": 16,
    "embedding_size": 4096,  # ELECTRA's
}


MAX_CLASSES = 1_000


def read_config(folder: Path, name: str) -> PretrainedConfig:
    """folder's config.json as its family's config (bert, roberta, electra) whose every size is in CONFIG_LIMITS;
    name: how errors call folder."""
    path = folder / "config.json"
    shown = f"{name}/config.json"
    if not path.is_file():
        raise BackboneError("model_no_config", folder=name)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise BackboneError("model_config_not_json", path=shown) from None
    if not isinstance(raw, dict):
        raise BackboneError("model_config_not_object", path=shown)
    model_type = raw.get("model_type", "bert")
    if model_type not in FAMILIES:
        raise BackboneError("model_not_supported", path=shown, model_type=model_type, types=", ".join(MODEL_TYPES))
    config_class = FAMILIES[model_type].config_class
    sizes = {**config_class().to_dict(), **raw}
    for key, high in CONFIG_LIMITS.items():  # before the config class, which divides by num_attention_heads
        if key not in sizes:  # embedding_size, for BERT and RoBERTa
            continue
        value = sizes[key]
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= high:
            raise BackboneError("model_config_out_of_range", path=shown, setting=key, value=value, high=high)
    if sizes["hidden_size"] % sizes["num_attention_heads"]:
        raise BackboneError("model_heads", path=shown)
    try:
        config = config_class.from_dict(raw)
    except Exception as error:
        family = FAMILIES[model_type].name
        raise BackboneError(
            "model_bad_config", path=shown, family=family, reason=load_failure_reason(error, folder, name)
        ) from None
    if config.num_labels > MAX_CLASSES:
        raise BackboneError("model_too_many_classes", path=shown, classes=config.num_labels, limit=MAX_CLASSES)
    return config


# --- strict weights: every weight of the encoder (and BERT's pooler) comes from the checkpoint, in the config's shape
# transformers 5.24 renames these anywhere in a checkpoint key when it loads (conversion_mapping.py, "legacy").
_LEGACY_NAMES = {"LayerNorm.gamma": "LayerNorm.weight", "LayerNorm.beta": "LayerNorm.bias"}


_HEAD = "classifier."  # every family's classification head


_SHOWN_KEYS = 3


def weight_files(folder: Path, trusted: bool, name: str) -> list[Path]:
    """The files from_pretrained reads the weights from, in its order of preference; a pickle only when trusted."""
    if (folder / "model.safetensors").is_file():
        return [folder / "model.safetensors"]
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        except (ValueError, UnicodeDecodeError, KeyError, TypeError, AttributeError):
            raise BackboneError("model_weights_failed", folder=name, reason=f"{index.name} is unreadable") from None
        return [folder / shard for shard in shards]
    if any(folder.glob("model-*.safetensors")):
        reason = "its model-*.safetensors shards have no model.safetensors.index.json"
        raise BackboneError("model_weights_failed", folder=name, reason=reason)
    if trusted and (folder / "pytorch_model.bin").is_file():
        return [folder / "pytorch_model.bin"]
    raise BackboneError("model_no_weights_trusted" if trusted else "model_no_weights", folder=name)


def uses_safetensors(folder: Path, trusted: bool, name: str) -> bool:
    return weight_files(folder, trusted, name)[0].suffix == ".safetensors"


def checkpoint_shapes(folder: Path, trusted: bool, name: str = "") -> dict[str, tuple[int, ...]]:
    """The name and shape of every tensor in folder's checkpoint, from the files' headers: no tensor is read."""
    name = name or str(folder)
    shapes: dict[str, tuple[int, ...]] = {}
    for path in weight_files(folder, trusted, name):
        try:
            if path.suffix == ".safetensors":
                with safe_open(path, "pt") as file:
                    names = file.keys()  # noqa: SIM118 (safe_open is not iterable)
                    shapes.update((key, tuple(file.get_slice(key).get_shape())) for key in names)
                continue
            # On the meta device torch.load unpickles the structure and skips every tensor's bytes.
            state = torch.load(path, map_location="meta", weights_only=True)
        except Exception as error:  # a damaged file, a missing shard, a pickle weights_only refuses: all unusable
            raise BackboneError(
                "model_weights_failed", folder=name, reason=load_failure_reason(error, folder, name)
            ) from None
        if not isinstance(state, dict):
            raise BackboneError("model_weights_failed", folder=name, reason=f"{path.name} holds no state dict")
        shapes.update((key, tuple(value.shape)) for key, value in state.items() if isinstance(value, torch.Tensor))
    return shapes


def expected_shapes(config: PretrainedConfig) -> tuple[dict[str, tuple[int, ...]], set[str]]:
    """The family's *ForSequenceClassification(config)'s weight names and shapes, and its buffer names.

    Built on the meta device, so even the largest config `read_config` allows costs no memory. Buffers
    (position_ids, token_type_ids) are rebuilt from the config, never loaded: a checkpoint may hold them or not.
    """
    with torch.device("meta"):
        model = family_of(config).model_class(config)
    weights = {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}
    return weights, {name for name, _ in model.named_buffers()}


def _model_key(key: str, expected: dict, prefix: str) -> str:
    """A checkpoint key as transformers 5.24 loads it into the family's *ForSequenceClassification.

    As core_model_loading.rename_source_key does: legacy LayerNorm names renamed, then the family's prefix (`bert.`,
    `roberta.`, `electra.`) stripped or added wherever that names a weight of the model (a BertModel checkpoint has
    none, BertForPreTraining has it).
    """
    for old, new in _LEGACY_NAMES.items():
        key = key.replace(old, new)
    if key.startswith(prefix) and key.removeprefix(prefix) in expected:
        return key.removeprefix(prefix)
    return f"{prefix}{key}" if f"{prefix}{key}" in expected else key


def _natural(key: str) -> list:
    """Sort key that puts encoder.layer.2 before encoder.layer.10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", key)]


def _first(keys: list[str]) -> str:
    return ", ".join(keys[:_SHOWN_KEYS])


def _shape(shape: tuple[int, ...]) -> str:
    return str(list(shape))


def check_weights(
    folder: Path, config: PretrainedConfig, *, need_head: bool, trusted: bool = True, name: str = ""
) -> None:
    """Refuse, before any tensor is read, a checkpoint that would leave a weight of the encoder or pooler random.

    From config.json and the checkpoint's names and shapes alone: every weight of the encoder (BertModel,
    RobertaModel, ElectraModel) must be there in the shape the config implies, and the checkpoint may hold no
    encoder weight the config lacks (a 13th layer, say). Only the classification head may be absent or sized for
    other classes, unless need_head (a trained model). Pre-training heads (cls.*, lm_head.*,
    discriminator_predictions.*) and buffers are ignored, as transformers ignores them. name: how errors call folder.
    """
    name = name or folder.name
    family = family_of(config)
    prefix = f"{family.base}."
    shapes = checkpoint_shapes(folder, trusted, name)
    expected, buffers = expected_shapes(config)
    buffers = {buffer.removeprefix(prefix) for buffer in buffers}
    found: dict[str, str] = {}  # model key -> checkpoint key
    unplaced, extra = [], []
    for key in sorted(shapes, key=_natural):
        target = _model_key(key, expected, prefix)
        if target in expected:
            found[target] = key
        elif target.removeprefix(prefix) not in buffers:
            unplaced.append(key)
            if target.removeprefix(prefix).startswith(family.backbone_parts):
                extra.append(key)
    checked = [key for key in expected if need_head or not key.startswith(_HEAD)]
    missing = [key for key in checked if key not in found and not key.startswith(_HEAD)]
    if missing and unplaced:  # the keys it has but cannot place usually show why (another prefix, another model)
        raise BackboneError(
            "model_weights_missing_unplaced", name=name, family=family.name, count=len(missing), keys=_first(missing),
            unplaced_count=len(unplaced), unplaced=_first(unplaced), encoder=family.encoder_class_name, prefix=prefix,
        )  # fmt: skip
    if missing:
        raise BackboneError(
            "model_weights_missing", name=name, family=family.name, count=len(missing), keys=_first(missing)
        )
    wrong = [key for key in checked if key in found and shapes[found[key]] != expected[key]]
    if wrong:
        first = found[wrong[0]]
        raise BackboneError(
            "model_weights_shape", name=name, count=len(wrong), keys=_first([found[key] for key in wrong]),
            first=first, shape=_shape(shapes[first]), expected=_shape(expected[wrong[0]]),
        )  # fmt: skip
    if extra:
        raise BackboneError("model_weights_extra", name=name, count=len(extra), keys=_first(extra))
    head = [key for key in checked if key.startswith(_HEAD) and key not in found]
    if head:
        raise BackboneError("model_no_head", folder=name, keys=_first(head))


def check_loaded(info: dict, need_head: bool, name: str, family: str) -> list[str]:
    """transformers' own account of the load, checked again: nothing but a new head may start random.

    check_weights has refused such a folder already, so this only fires if the two ever disagree (a transformers
    upgrade that loads differently). Returns the head's keys that start random. family: as sentences call it.
    """
    fresh = sorted([*info["missing_keys"], *(key for key, *_ in info["mismatched_keys"])], key=_natural)
    random = [key for key in fresh if need_head or not key.startswith(_HEAD)]
    if random:
        raise BackboneError("model_weights_missing", name=name, family=family, count=len(random), keys=_first(random))
    return fresh


def file_sha256(path: Path) -> str:
    """The file's SHA-256 in hex (0.3 s for KoBERT's 370 MB on a 2-core EPYC with SHA-NI)."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(4 * 2**20):
            digest.update(chunk)
    return digest.hexdigest()
