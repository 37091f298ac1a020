"""Backbone families: the three places where KoBERT/BERT, RoBERTa and ELECTRA differ, behind one small interface.

They differ in the tokenizer (KoBERT's SentencePiece or the model's own `tokenizer.json`, chosen in loading.py), in the
embeddings (RoBERTa's position ids start after its padding index; ELECTRA may project a smaller embedding up to the
hidden size) and in the head (BERT's pooler, dropout and linear layer; RoBERTa's and ELECTRA's own two-layer head
on the first token, with no pooler). Everything else (the encoder layers, the padding-free forward, training,
prediction, export) is the same code for all of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    ElectraConfig,
    ElectraForSequenceClassification,
    PretrainedConfig,
    PreTrainedModel,
    RobertaConfig,
    RobertaForSequenceClassification,
)


@dataclass(frozen=True)
class Family:
    """One `model_type` of config.json: its classes, where its encoder sits, and its embeddings' and head's ways."""

    model_type: str
    name: str  # as sentences call it: BERT, RoBERTa, ELECTRA
    config_class: type[PretrainedConfig]
    model_class: type[PreTrainedModel]
    base: str  # the classifier's attribute holding the encoder, and its weights' prefix in checkpoints
    backbone_parts: tuple[str, ...]  # the encoder's weights after that prefix (all must come from the checkpoint)

    @property
    def encoder_class_name(self) -> str:
        """BertModel, RobertaModel, ElectraModel: the encoder whose weight names checkpoints use."""
        return self.model_class.__name__.replace("ForSequenceClassification", "Model")

    def encoder(self, model: nn.Module) -> nn.Module:
        """BertModel / RobertaModel / ElectraModel inside the classifier."""
        return getattr(model, self.base)

    def layers(self, model: nn.Module) -> nn.ModuleList:
        return self.encoder(model).encoder.layer

    def position_offset(self, config: PretrainedConfig) -> int:
        """The first position id: RoBERTa counts positions from its padding index + 1, the others from 0."""
        return config.pad_token_id + 1 if self.model_type == "roberta" else 0

    def max_tokens(self, config: PretrainedConfig) -> int:
        """The longest input the position embeddings cover."""
        return config.max_position_embeddings - self.position_offset(config)

    def embed(
        self, model: nn.Module, tokens: torch.Tensor, positions: torch.Tensor, types: torch.Tensor
    ) -> torch.Tensor:
        """Token + position + type embeddings of packed tokens ([1, n] each), as the encoder's first layer sees them.

        positions count from 0 in every family; the family's offset is added here.
        """
        encoder = self.encoder(model)
        offset = self.position_offset(model.config)
        x = encoder.embeddings(input_ids=tokens, position_ids=positions + offset, token_type_ids=types)
        project = getattr(encoder, "embeddings_project", None)  # ELECTRA whose embedding_size != hidden_size
        return project(x) if project is not None else x

    def head(self, model: nn.Module, first: torch.Tensor) -> torch.Tensor:
        """Logits from each row's first token ([rows, hidden]): BERT's pooler and classifier, or the family's head."""
        if self.model_type == "bert":
            pooler = self.encoder(model).pooler
            return model.classifier(model.dropout(pooler.activation(pooler.dense(first))))
        return model.classifier(first[:, None])  # RobertaClassificationHead / ElectraClassificationHead read [:, 0]

    def new_head_layer(self, model: nn.Module) -> nn.Linear:
        """The head's last linear layer, the one sized by the number of classes."""
        return model.classifier if self.model_type == "bert" else model.classifier.out_proj

    def embedding_modules(self, model: nn.Module) -> list[nn.Module]:
        """Everything below the first encoder layer (frozen in CPU mode)."""
        encoder = self.encoder(model)
        project = getattr(encoder, "embeddings_project", None)
        return [encoder.embeddings, *([project] if project is not None else [])]


FAMILIES = {
    family.model_type: family
    for family in (
        Family(
            "bert", "BERT", BertConfig, BertForSequenceClassification, "bert", ("embeddings.", "encoder.", "pooler."),
        ),
        # RobertaForSequenceClassification has no pooler: a checkpoint's pooler weights are ignored, as transformers
        # ignores them.
        Family(
            "roberta", "RoBERTa", RobertaConfig, RobertaForSequenceClassification, "roberta",
            ("embeddings.", "encoder."),
        ),
        Family(
            "electra", "ELECTRA", ElectraConfig, ElectraForSequenceClassification, "electra",
            ("embeddings.", "embeddings_project.", "encoder."),
        ),
    )
}  # fmt: skip
MODEL_TYPES = tuple(FAMILIES)


def family_of(model: nn.Module | PretrainedConfig) -> Family:
    """The family of a classifier or a config (a KeyError for a model_type we do not handle)."""
    config = model if isinstance(model, PretrainedConfig) else model.config
    return FAMILIES[config.model_type]


def padded_forward_reason(config: PretrainedConfig) -> str | None:
    """Why the padding-free forward cannot compute what transformers computes for this config; None when it can.

    It is proven (tests/test_families.py) for bidirectional encoders of the three families; a decoder's causal
    attention is not what it computes.
    """
    if getattr(config, "is_decoder", False) or getattr(config, "add_cross_attention", False):
        return "is_decoder"
    return None
