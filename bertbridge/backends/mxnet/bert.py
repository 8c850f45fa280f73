"""GluonNLP 0.10 BERT built from a Hugging Face config, with weights converted name for name.

GluonNLP's model zoo downloads its weights, so the encoder is assembled here from
``BERTEncoder`` + ``BERTModel`` with the sizes of ``config.json``, and the
checkpoint's tensors are copied in under their GluonNLP names. The layouts agree
(Dense weights are ``[out, in]`` in both), so conversion is a renaming with no
transposes, and :func:`to_hf` is its exact inverse: an MXNet-trained model is saved
as ``model.safetensors`` that PyTorch and TensorFlow open.

Differences from the Hugging Face model, none of which changes inference:
GluonNLP applies embedding dropout before the embedding LayerNorm, and uses one
dropout rate (``hidden_dropout_prob``) for attention probabilities as well.

Two heads, as ``ModelSetup.head`` names them: ``sequence`` (``BertForSequenceClassification``:
pooler, dropout, ``classifier``) and ``span`` (``BertForQuestionAnswering``: no pooler,
``qa_outputs`` on every token, giving start and end logits).
"""

from __future__ import annotations

import functools
import re
from typing import Mapping

import numpy as np

from bertbridge.core.backend import HEADS
from bertbridge.core.errors import ArtifactError

from ._mx import mxnet_module

mx = mxnet_module()
from gluonnlp.model import BERTEncoder, BERTModel  # noqa: E402
from mxnet.gluon import HybridBlock, nn  # noqa: E402

_ACTIVATIONS = {"gelu": "gelu", "gelu_new": "approx_gelu", "gelu_pytorch_tanh": "approx_gelu", "relu": "relu"}

# Hugging Face name (after the ``bert.`` prefix) -> GluonNLP structural name (after ``bert.``).
_FIXED = {
    "embeddings.word_embeddings.weight": "word_embed.0.weight",
    "embeddings.token_type_embeddings.weight": "token_type_embed.0.weight",
    "embeddings.position_embeddings.weight": "encoder.position_weight",
    "embeddings.LayerNorm.weight": "encoder.layer_norm.gamma",
    "embeddings.LayerNorm.bias": "encoder.layer_norm.beta",
    "pooler.dense.weight": "pooler.weight",
    "pooler.dense.bias": "pooler.bias",
}
_LAYER = {
    "attention.self.query": "attention_cell.proj_query",
    "attention.self.key": "attention_cell.proj_key",
    "attention.self.value": "attention_cell.proj_value",
    "attention.output.dense": "proj",
    "attention.output.LayerNorm": "layer_norm",
    "intermediate.dense": "ffn.ffn_1",
    "output.dense": "ffn.ffn_2",
    "output.LayerNorm": "ffn.layer_norm",
}
_LAYER_RE = re.compile(r"encoder\.layer\.(\d+)\.(.+)\.(weight|bias)$")
_HEAD_LAYERS = ("classifier.", "qa_outputs.")  # the heads' Dense blocks carry these names in both worlds


def hf_to_gluon(name: str) -> str:
    """``bert.encoder.layer.0.attention.self.query.weight`` ->
    ``bert.encoder.transformer_cells.0.attention_cell.proj_query.weight`` (classifier.* and qa_outputs.* unchanged)."""
    if name.startswith(_HEAD_LAYERS):
        return name
    if not name.startswith("bert."):
        raise ArtifactError(f"weight {name!r} is not part of a BERT model (expected bert.*, classifier.* or qa_outputs.*).")
    rest = name[len("bert."):]
    if rest in _FIXED:
        return "bert." + _FIXED[rest]
    match = _LAYER_RE.match(rest)
    if match and match.group(2) in _LAYER:
        index, part, kind = match.groups()
        gluon = _LAYER[part]
        if gluon.endswith("layer_norm"):
            kind = "gamma" if kind == "weight" else "beta"
        return f"bert.encoder.transformer_cells.{index}.{gluon}.{kind}"
    raise ArtifactError(f"weight {name!r} has no GluonNLP counterpart; this checkpoint is not a plain BERT encoder.")


@functools.lru_cache(maxsize=8)
def _inverse(num_layers: int) -> dict[str, str]:
    names = [f"bert.{k}" for k in _FIXED] + [f"{head}{kind}" for head in _HEAD_LAYERS for kind in ("weight", "bias")]
    for i in range(num_layers):
        names += [f"bert.encoder.layer.{i}.{part}.{kind}" for part in _LAYER for kind in ("weight", "bias")]
    return {hf_to_gluon(n): n for n in names}


def gluon_to_hf(name: str, num_layers: int) -> str:
    """Inverse of :func:`hf_to_gluon`."""
    try:
        return _inverse(num_layers)[name]
    except KeyError:
        raise ArtifactError(f"GluonNLP parameter {name!r} has no Hugging Face counterpart.") from None


class _KeepPadding:
    """``F`` (``mx.nd`` or ``mx.sym``) with ``SequenceMask`` as the identity, for :class:`_SpanEncoder`."""

    def __init__(self, F) -> None:  # noqa: N803 (Gluon's name)
        self._F = F

    def __getattr__(self, name: str):
        return getattr(self._F, name)

    @staticmethod
    def SequenceMask(data, **_):  # noqa: N802 (the operator's name)
        return data


class _SpanEncoder(BERTEncoder):
    """``BERTEncoder`` that keeps the hidden states of padding positions. GluonNLP zeroes them after
    the last layer; transformers computes them (padding queries attend to the real tokens, as they
    do here in every layer), and ``BertForQuestionAnswering``'s logits and loss cover every position."""

    def hybrid_forward(self, F, inputs, states=None, valid_length=None, position_weight=None):  # noqa: N803
        return super().hybrid_forward(_KeepPadding(F), inputs, states, valid_length, position_weight)


class BertClassifier(HybridBlock):
    """GluonNLP ``BERTModel`` with a head: ``sequence`` (tanh pooler, dropout, linear ``classifier``:
    logits (B, num_labels)) or ``span`` (no pooler; linear ``qa_outputs`` on every token: (B, T, 2)
    start and end logits).

    Call it with ``(input_ids, token_type_ids, valid_length)``; it returns logits.
    """

    def __init__(self, config: Mapping, num_labels: int, prefix: str = "bertclassifier_", head: str = "sequence", **kwargs) -> None:
        if head not in HEADS:
            raise ValueError(f"head must be one of {', '.join(HEADS)}, got {head!r}")
        super().__init__(prefix=prefix, **kwargs)
        self.head = head
        hidden = int(config["hidden_size"])
        dropout = float(config.get("hidden_dropout_prob", 0.1))
        head_dropout = config.get("classifier_dropout")
        self.num_layers = int(config["num_hidden_layers"])
        self.num_heads = int(config["num_attention_heads"])
        pad = config.get("pad_token_id", 0)
        self.pad_token_id = None if pad is None else int(pad)
        with self.name_scope():
            encoder = (_SpanEncoder if head == "span" else BERTEncoder)(
                num_layers=self.num_layers,
                units=hidden,
                hidden_size=int(config["intermediate_size"]),
                max_length=int(config["max_position_embeddings"]),
                num_heads=self.num_heads,
                dropout=dropout,
                output_attention=False,
                activation=_ACTIVATIONS[config.get("hidden_act", "gelu")],
                layer_norm_eps=float(config.get("layer_norm_eps", 1e-12)),
            )
            self.bert = BERTModel(
                encoder,
                vocab_size=int(config["vocab_size"]),
                token_type_vocab_size=int(config.get("type_vocab_size", 2)),
                units=hidden,
                embed_size=hidden,
                use_pooler=head == "sequence",
                use_decoder=False,
                use_classifier=False,
            )
            if head == "span":  # structural names qa_outputs.weight / .bias, as in transformers
                self.qa_outputs = nn.Dense(2, in_units=hidden, flatten=False)
            else:
                self.dropout = nn.Dropout(dropout if head_dropout is None else float(head_dropout))
                self.classifier = nn.Dense(num_labels, in_units=hidden, flatten=False)

    def hybrid_forward(self, F, input_ids, token_type_ids, valid_length):  # noqa: N803 (Gluon's signature)
        if self.head == "span":  # BertForQuestionAnswering: no dropout before qa_outputs
            return self.qa_outputs(self.bert(input_ids, token_type_ids, valid_length))
        _, pooled = self.bert(input_ids, token_type_ids, valid_length)
        return self.classifier(self.dropout(pooled))

    # -- weights as Hugging Face numpy arrays ------------------------------
    def structural_params(self) -> dict:
        return self._collect_params_with_prefix()

    def load_hf(self, state: Mapping[str, np.ndarray], ctx) -> None:
        """Set every parameter from a Hugging Face state dict (all must be present, shapes must agree)."""
        params = self.structural_params()
        wanted = {hf_to_gluon(k): k for k in state}
        missing = sorted(set(params) - set(wanted))
        if missing:
            raise ArtifactError(f"checkpoint lacks {len(missing)} weight(s) the model needs, e.g. {gluon_to_hf(missing[0], self.num_layers)}.")
        for gname, param in params.items():
            value = np.asarray(state[wanted[gname]], dtype=np.float32)
            if param.shape and all(param.shape) and tuple(param.shape) != value.shape:
                raise ArtifactError(f"weight {wanted[gname]}: shape {value.shape} does not match the config's {tuple(param.shape)}.")
            param._load_init(mx.nd.array(value, ctx=ctx), ctx)

    def hf_state(self) -> dict[str, np.ndarray]:
        return {gluon_to_hf(name, self.num_layers): p.data().asnumpy() for name, p in self.structural_params().items()}

    def set_hf_state(self, state: Mapping[str, np.ndarray]) -> None:
        for name, param in self.structural_params().items():
            param.set_data(mx.nd.array(state[gluon_to_hf(name, self.num_layers)], dtype="float32"))

    def drop_padding_grad(self, ctx) -> None:
        """Like transformers' ``nn.Embedding(padding_idx=pad_token_id)``: the padding row of the word
        embedding gets no gradient (it has one here when padding positions reach the loss, as in ``span``)."""
        if self.pad_token_id is not None:
            self.bert.word_embed[0].weight.grad(ctx)[self.pad_token_id] = 0

    def decay_flags(self) -> dict[str, bool]:
        """Structural name -> whether AdamW decays it (not biases, not LayerNorm)."""
        return {n: not (n.endswith((".bias", ".beta", ".gamma"))) for n in self.structural_params()}
