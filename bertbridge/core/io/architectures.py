"""The encoder architectures bertbridge reads and writes, one table entry each.

BERT, DistilBERT, RoBERTa and XLM-RoBERTa are the same post-LayerNorm Transformer encoder; they
differ in a handful of facts: weight names, config keys, whether tokens carry a segment (token
type), how positions are numbered, and the layers of the classification head. Those facts live
here and nowhere else. A backend without ``transformers`` computes one encoder in *canonical*
form (BERT's weight names and config keys, from :meth:`Architecture.encoder_config`) and reads
the differences from the table; :mod:`.weights` renames a folder's weights to canonical names on
read and back on write, so every backend reads and writes the folders transformers does.

Canonical names are ``BertForSequenceClassification``'s: ``bert.embeddings.*``,
``bert.encoder.layer.{i}.*``, ``bert.pooler.dense`` (the head's first dense layer: BERT's pooler,
DistilBERT's ``pre_classifier``, RoBERTa's ``classifier.dense``), ``classifier`` (the last one)
and ``qa_outputs`` (the span head).

Example::

    >>> from bertbridge.core.io.architectures import architecture
    >>> arch = architecture("distilbert")
    >>> arch.to_canonical("distilbert.transformer.layer.3.ffn.lin1.weight")
    'bert.encoder.layer.3.intermediate.dense.weight'
    >>> arch.from_canonical("bert.pooler.dense.bias")
    'pre_classifier.bias'
    >>> architecture("roberta").classes["span"]
    'RobertaForQuestionAnswering'
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Mapping, Optional

from bertbridge.core.errors import NotSupportedError

_LAYER = "bert.encoder.layer.{i}."
_BERT_LAYER = (
    "attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
    "attention.output.LayerNorm", "intermediate.dense", "output.dense", "output.LayerNorm",
)
_CANONICAL_CONFIG = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "hidden_act",
                     "hidden_dropout_prob", "attention_probs_dropout_prob", "max_position_embeddings", "vocab_size",
                     "initializer_range", "layer_norm_eps", "type_vocab_size", "pad_token_id")


_BERT_DEFAULTS = {"hidden_act": "gelu", "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "layer_norm_eps": 1e-12,
                  "type_vocab_size": 2, "pad_token_id": 0, "initializer_range": 0.02}


@dataclass(frozen=True)
class Architecture:
    """What one encoder family looks like in a Hugging Face folder, and how it computes."""

    name: str
    """``model_type`` in ``config.json``."""
    prefix: str
    """The encoder's attribute in transformers' task models (``bert``, ``distilbert``, ``roberta``)."""
    classes: Mapping[str, str]
    """Head (``sequence``, ``span``) -> the transformers class written to ``config.json``'s ``architectures``."""
    modules: tuple[tuple[str, str], ...]
    """(this architecture's module name, canonical module name) pairs; ``{i}`` stands for a layer index.
    Weights are ``<module>.weight`` / ``<module>.bias``; a name no pair matches is not part of the model."""
    defaults: Mapping[str, Any] = field(default_factory=lambda: dict(_BERT_DEFAULTS))
    """transformers' config-class defaults, under this architecture's keys, for keys a ``config.json`` leaves out."""
    config_keys: Mapping[str, str] = field(default_factory=dict)
    """Canonical (BERT) config key -> this architecture's key, where they differ."""
    fixed_config: Mapping[str, Any] = field(default_factory=dict)
    """Canonical config values the architecture fixes (DistilBERT: no token types, LayerNorm eps 1e-12)."""
    positions_from_padding: bool = False
    """True: position ids count real tokens from ``pad_token_id + 1``, padding gets ``pad_token_id``
    (fairseq's numbering, RoBERTa); False: position ids are 0, 1, 2, ... for every token."""
    pooler_activation: str = "tanh"
    """Activation after the sequence head's first dense layer (``tanh``, or ``relu`` for DistilBERT)."""
    dropout_before_pooler: bool = False
    """RoBERTa's head applies dropout to the first token's state before its dense layer, too."""
    attention_output_dropout: bool = True
    """Dropout after the attention output projection (DistilBERT has none). Training only."""
    classifier_dropout_key: str = "classifier_dropout"
    """Config key of the sequence head's dropout rate (None or absent: ``hidden_dropout_prob``)."""
    span_dropout_key: Optional[str] = None
    """Config key of a dropout before ``qa_outputs`` (DistilBERT's ``qa_dropout``); None: no dropout there."""

    # -- weight names -------------------------------------------------------------------------
    @cached_property
    def _patterns(self) -> tuple[tuple[re.Pattern, str, re.Pattern, str], ...]:
        """(own regex, canonical template, canonical regex, own template) per module pair."""
        return tuple((_compile(own), canonical, _compile(canonical), own) for own, canonical in self.modules)

    @cached_property
    def bare_parts(self) -> tuple[str, ...]:
        """First name parts of a bare encoder checkpoint (``BertModel``: ``embeddings.``, ``encoder.``, ...)."""
        parts = {own.split(".")[1] + "." for own, _ in self.modules if own.startswith(self.prefix + ".")}
        return tuple(sorted(parts))

    def to_canonical(self, name: str) -> Optional[str]:
        """The canonical name of a checkpoint tensor, or None when the tensor is not part of the model
        (pre-training heads, buffers, RoBERTa's unused pooler). A bare encoder's names (no prefix) are read too."""
        if name.startswith(self.bare_parts):
            name = f"{self.prefix}.{name}"
        name = _LEGACY_NORM.sub(lambda m: m.group(1) + (".weight" if m.group(2) == "gamma" else ".bias"), name)
        for own, canonical, _, _ in self._patterns:
            match = own.match(name)
            if match:
                return _rename(match, canonical)
        return None

    def from_canonical(self, name: str) -> str:
        """The checkpoint name of a canonical tensor name (the inverse of :meth:`to_canonical`)."""
        for _, _, canonical, own in self._patterns:
            match = canonical.match(name)
            if match:
                return _rename(match, own)
        raise ValueError(f"{name!r} is not a canonical weight name of a {self.name} model")

    # -- config ------------------------------------------------------------------------------
    def encoder_config(self, config: Mapping) -> dict:
        """The canonical view of ``config.json`` that backends build the encoder from: BERT's keys
        plus ``token_types`` (whether segments are embedded), ``position_offset`` (None, or the id of
        the first real position), the head's ``pooler_activation``, ``dropout_before_pooler``,
        ``attention_output_dropout``, ``classifier_dropout`` and ``span_dropout`` (rates)."""
        # a null pad_token_id means "no padding row" (nn.Embedding(padding_idx=None)); other nulls take the default
        config = {**self.defaults, **{k: v for k, v in config.items() if v is not None or k == "pad_token_id"}}
        out = {key: config[self.config_keys.get(key, key)] for key in _CANONICAL_CONFIG if self.config_keys.get(key, key) in config}
        out.update(self.fixed_config)
        classifier_dropout = config.get(self.classifier_dropout_key)
        pad = out.get("pad_token_id")
        if self.positions_from_padding and not isinstance(pad, int):
            raise NotSupportedError(f"a {self.name} config.json needs an integer pad_token_id (positions are numbered from it), "
                                    f"got {pad!r}; set the tokenizer's padding id.")
        out.update(
            model_type=self.name,
            token_types=int(out["type_vocab_size"]) > 0,
            position_offset=pad + 1 if self.positions_from_padding else None,
            pooler_activation=self.pooler_activation,
            dropout_before_pooler=self.dropout_before_pooler,
            attention_output_dropout=self.attention_output_dropout,
            classifier_dropout=float(out["hidden_dropout_prob"] if classifier_dropout is None else classifier_dropout),
            span_dropout=float(config[self.span_dropout_key]) if self.span_dropout_key else 0.0,
        )
        return out


def encoder_weights(config: Mapping) -> list[str]:
    """Canonical names of the encoder tensors every folder of the canonical ``config`` holds."""
    names = ["bert.embeddings.word_embeddings", "bert.embeddings.position_embeddings", "bert.embeddings.LayerNorm"]
    if config["token_types"]:
        names.append("bert.embeddings.token_type_embeddings")
    for i in range(int(config["num_hidden_layers"])):
        names += [_LAYER.format(i=i) + part for part in _BERT_LAYER]
    return [n + ".weight" for n in names] + [n + ".bias" for n in names if "_embeddings" not in n]


_LEGACY_NORM = re.compile(r"(LayerNorm)\.(gamma|beta)$")  # TF-converted checkpoints' names, renamed as transformers renames them


def _compile(template: str) -> re.Pattern:
    pattern = re.escape(template).replace(r"\{i\}", r"(?P<i>\d+)")
    return re.compile(rf"^{pattern}(?P<rest>\.(?:weight|bias))$")


def _rename(match: re.Match, template: str) -> str:
    """``template`` (``{i}`` filled with the matched layer index) + the matched ``.weight``/``.bias``."""
    groups = match.groupdict()
    return (template.format(i=groups["i"]) if "i" in groups else template) + groups["rest"]


def _bert_like(prefix: str, *, type_embeddings: bool = True) -> tuple[tuple[str, str], ...]:
    embeddings = ["word_embeddings", "position_embeddings", "LayerNorm"] + (["token_type_embeddings"] if type_embeddings else [])
    pairs = [(f"{prefix}.embeddings.{e}", f"bert.embeddings.{e}") for e in embeddings]
    pairs += [(f"{prefix}.encoder.layer.{{i}}.{part}", _LAYER + part) for part in _BERT_LAYER]
    return tuple(pairs)


_DISTILBERT_LAYER = {
    "attention.q_lin": "attention.self.query", "attention.k_lin": "attention.self.key",
    "attention.v_lin": "attention.self.value", "attention.out_lin": "attention.output.dense",
    "sa_layer_norm": "attention.output.LayerNorm", "ffn.lin1": "intermediate.dense",
    "ffn.lin2": "output.dense", "output_layer_norm": "output.LayerNorm",
}

BERT = Architecture(
    name="bert",
    prefix="bert",
    classes={"sequence": "BertForSequenceClassification", "span": "BertForQuestionAnswering"},
    modules=_bert_like("bert") + (("bert.pooler.dense", "bert.pooler.dense"), ("classifier", "classifier"),
                                  ("qa_outputs", "qa_outputs")),
)

DISTILBERT = Architecture(
    name="distilbert",
    prefix="distilbert",
    classes={"sequence": "DistilBertForSequenceClassification", "span": "DistilBertForQuestionAnswering"},
    modules=tuple((f"distilbert.embeddings.{e}", f"bert.embeddings.{e}") for e in ("word_embeddings", "position_embeddings", "LayerNorm"))
    + tuple((f"distilbert.transformer.layer.{{i}}.{own}", _LAYER + canonical) for own, canonical in _DISTILBERT_LAYER.items())
    + (("pre_classifier", "bert.pooler.dense"), ("classifier", "classifier"), ("qa_outputs", "qa_outputs")),
    config_keys={"hidden_size": "dim", "num_hidden_layers": "n_layers", "num_attention_heads": "n_heads",
                 "intermediate_size": "hidden_dim", "hidden_act": "activation", "hidden_dropout_prob": "dropout",
                 "attention_probs_dropout_prob": "attention_dropout"},
    fixed_config={"type_vocab_size": 0, "layer_norm_eps": 1e-12},
    defaults={"activation": "gelu", "dropout": 0.1, "attention_dropout": 0.1, "seq_classif_dropout": 0.2, "qa_dropout": 0.1,
              "pad_token_id": 0, "initializer_range": 0.02},
    pooler_activation="relu",
    attention_output_dropout=False,
    classifier_dropout_key="seq_classif_dropout",
    span_dropout_key="qa_dropout",
)

_ROBERTA_MODULES = _bert_like("roberta") + (("classifier.dense", "bert.pooler.dense"), ("classifier.out_proj", "classifier"),
                                            ("qa_outputs", "qa_outputs"))

ROBERTA = Architecture(
    name="roberta",
    prefix="roberta",
    classes={"sequence": "RobertaForSequenceClassification", "span": "RobertaForQuestionAnswering"},
    modules=_ROBERTA_MODULES,
    defaults={**_BERT_DEFAULTS, "pad_token_id": 1},
    positions_from_padding=True,
    dropout_before_pooler=True,
)

XLM_ROBERTA = replace(ROBERTA, name="xlm-roberta",  # RoBERTa's encoder with a SentencePiece vocabulary
                      classes={"sequence": "XLMRobertaForSequenceClassification", "span": "XLMRobertaForQuestionAnswering"})

ARCHITECTURES: dict[str, Architecture] = {a.name: a for a in (BERT, DISTILBERT, ROBERTA, XLM_ROBERTA)}
"""Every architecture bertbridge implements, by ``model_type``."""


def architecture(model_type: Any, *, supported: Optional[tuple[str, ...]] = None, where: str = "config.json",
                 backend: Optional[str] = None) -> Architecture:
    """The table entry of ``model_type``; a clear NotSupportedError listing what is supported (by
    ``backend``, when ``supported`` narrows the list) otherwise."""
    names = tuple(ARCHITECTURES) if supported is None else supported
    if model_type in names:
        return ARCHITECTURES[model_type]
    on = f"the {backend} backend" if backend else "bertbridge"
    raise NotSupportedError(
        f"{where}: model_type {model_type!r} is not supported by {on}; it supports {', '.join(names)}. "
        "Start from a model folder of one of these architectures (config.json's model_type says which)."
    )
