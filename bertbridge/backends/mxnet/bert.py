"""BERT-family encoders (BERT, DistilBERT, RoBERTa, XLM-R) on GluonNLP 0.10's model classes,
built from a Hugging Face config, with weights converted name for name.

GluonNLP's model zoo downloads its weights, so the encoder is assembled here from ``BERTEncoder``
and GluonNLP's own model class with the sizes of ``config.json`` (its canonical view,
:mod:`bertbridge.core.io.architectures`), and the checkpoint's tensors are copied in under their
GluonNLP names. The layouts agree (Dense weights are ``[out, in]`` in both), so conversion is a
renaming with no transposes, and :meth:`BertClassifier.hf_state` is its exact inverse: an
MXNet-trained model is saved as the ``model.safetensors`` transformers, PyTorch and TensorFlow open.

Which GluonNLP class, per architecture:

* BERT: ``BERTModel`` (token types, its tanh pooler for the sequence head).
* DistilBERT: ``DistilBERTModel`` (no token types, no pooler; the head's relu ``pre_classifier``
  is a Dense here).
* RoBERTa / XLM-R: ``BERTModel`` with a one-row token-type table and no pooler, not GluonNLP's
  ``RoBERTaModel``: that class has no token-type embedding and numbers positions 0, 1, ... (its
  fairseq converter drops the first two rows of the position table), while Hugging Face folders
  carry a trained one-row token-type embedding and number positions from ``pad_token_id + 1``.
  :class:`_Encoder` numbers them that way, so the whole 514-row table and every logit match.

Differences from the Hugging Face models, none of which changes inference: GluonNLP applies
embedding dropout before the embedding LayerNorm, uses one dropout rate (``hidden_dropout_prob``)
for attention probabilities as well, and drops out the attention output projection (DistilBERT
does not).

Two heads, as ``ModelSetup.head`` names them: ``sequence`` (a dense layer on the first token,
dropout, ``classifier``) and ``span`` (no pooler; ``qa_outputs`` on every token, giving start and
end logits).
"""

from __future__ import annotations

import re
import warnings
from typing import Mapping, Optional

import numpy as np

from bertbridge.core.backend import HEADS
from bertbridge.core.errors import ArtifactError
from bertbridge.core.io.architectures import encoder_weights

from ._mx import mxnet_module

mx = mxnet_module()
from gluonnlp.model import BERTEncoder, BERTModel, DistilBERTModel  # noqa: E402
from mxnet.gluon import HybridBlock, nn  # noqa: E402

_ACTIVATIONS = {"gelu": "gelu", "gelu_new": "approx_gelu", "gelu_pytorch_tanh": "approx_gelu", "relu": "relu"}

# Canonical Hugging Face name (after the ``bert.`` prefix) -> GluonNLP structural name (after ``bert.``).
_FIXED = {
    "embeddings.word_embeddings.weight": "word_embed.0.weight",
    "embeddings.token_type_embeddings.weight": "token_type_embed.0.weight",
    "embeddings.position_embeddings.weight": "encoder.position_weight",
    "embeddings.LayerNorm.weight": "encoder.layer_norm.gamma",
    "embeddings.LayerNorm.bias": "encoder.layer_norm.beta",
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
_LAYER_RE = re.compile(r"bert\.encoder\.layer\.(\d+)\.(.+)\.(weight|bias)$")
_HEAD_LAYERS = ("classifier.", "qa_outputs.")  # the heads' Dense blocks carry these names in both worlds
_POOLER = ("bert.pooler.dense.weight", "bert.pooler.dense.bias")


def hf_to_gluon(name: str, own_pooler: bool = False) -> str:
    """``bert.encoder.layer.0.attention.self.query.weight`` ->
    ``bert.encoder.transformer_cells.0.attention_cell.proj_query.weight`` (classifier.* and qa_outputs.*
    unchanged; the pooler is ``bert.pooler.*`` inside ``BERTModel``, or ``pooler.*`` when the head has
    its own, ``own_pooler``)."""
    if name.startswith(_HEAD_LAYERS):
        return name
    if name in _POOLER:
        kind = name.rsplit(".", 1)[1]
        return f"pooler.{kind}" if own_pooler else f"bert.pooler.{kind}"
    rest = name[len("bert."):] if name.startswith("bert.") else name
    if rest in _FIXED:
        return "bert." + _FIXED[rest]
    match = _LAYER_RE.match(name)
    if match and match.group(2) in _LAYER:
        index, part, kind = match.groups()
        gluon = _LAYER[part]
        if gluon.endswith("layer_norm"):
            kind = "gamma" if kind == "weight" else "beta"
        return f"bert.encoder.transformer_cells.{index}.{gluon}.{kind}"
    raise ArtifactError(f"weight {name!r} has no GluonNLP counterpart; this checkpoint is not an encoder bertbridge builds.")


def _canonical_names(config: Mapping, head: str) -> list[str]:
    names = encoder_weights(config)
    heads = ["qa_outputs"] if head == "span" else ["bert.pooler.dense", "classifier"]
    return names + [f"{h}.{kind}" for h in heads for kind in ("weight", "bias")]


class _KeepPadding:
    """``F`` (``mx.nd`` or ``mx.sym``) with ``SequenceMask`` as the identity, for :class:`_Encoder`."""

    def __init__(self, F) -> None:  # noqa: N803 (Gluon's name)
        self._F = F

    def __getattr__(self, name: str):
        return getattr(self._F, name)

    @staticmethod
    def SequenceMask(data, **_):  # noqa: N802 (the operator's name)
        return data


class _Encoder(BERTEncoder):
    """``BERTEncoder`` with two options.

    ``keep_padding``: keep the hidden states of padding positions. GluonNLP zeroes them after the
    last layer; transformers computes them (padding queries attend to the real tokens, as they do
    here in every layer), and the question-answering logits and loss cover every position.

    ``position_offset`` (RoBERTa, XLM-R): real tokens take positions ``offset, offset + 1, ...`` and
    padding ``offset - 1`` (the padding id), as transformers numbers them. ``BERTEncoder`` adds
    rows ``0..T-1`` of the table itself; the difference to the wanted rows is added first, so the
    sum is the wanted embedding and so are the gradients."""

    def __init__(self, *, keep_padding: bool = False, position_offset: Optional[int] = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self._keep_padding = keep_padding
        self._position_offset = position_offset

    def hybrid_forward(self, F, inputs, states=None, valid_length=None, position_weight=None):  # noqa: N803
        if self._position_offset is not None:  # inputs: (T, B, C)
            inputs = inputs + self._position_shift(F, inputs, valid_length, position_weight)
        return super().hybrid_forward(_KeepPadding(F) if self._keep_padding else F, inputs, states, valid_length, position_weight)

    def _position_shift(self, F, inputs, valid_length, position_weight):  # noqa: N803
        offset = self._position_offset
        steps = F.contrib.arange_like(inputs, axis=0)  # (T,)
        real = F.broadcast_lesser(F.reshape(steps, shape=(-1, 1)), F.reshape(valid_length, shape=(1, -1)))  # (T, B)
        wanted = F.broadcast_add(F.broadcast_mul(real, F.reshape(steps + 1, shape=(-1, 1))), F.ones_like(real) * (offset - 1))
        embed = lambda ids: F.Embedding(ids, position_weight, self._max_length, self._units)  # noqa: E731
        return F.broadcast_sub(embed(wanted), F.expand_dims(embed(steps), axis=1))


class BertClassifier(HybridBlock):
    """A GluonNLP encoder with a head: ``sequence`` (a dense layer on the first token, dropout,
    linear ``classifier``: logits (B, num_labels)) or ``span`` (no pooler; linear ``qa_outputs`` on
    every token: (B, T, 2) start and end logits). ``config`` is the canonical one.

    Call it with ``(input_ids, token_type_ids, valid_length)``; it returns logits.
    """

    def __init__(self, config: Mapping, num_labels: int, prefix: str = "bertclassifier_", head: str = "sequence", **kwargs) -> None:
        if head not in HEADS:
            raise ValueError(f"head must be one of {', '.join(HEADS)}, got {head!r}")
        super().__init__(prefix=prefix, **kwargs)
        self.head = head
        self.config = dict(config)
        hidden = int(config["hidden_size"])
        dropout = float(config.get("hidden_dropout_prob", 0.1))
        self.num_layers = int(config["num_hidden_layers"])
        self.num_heads = int(config["num_attention_heads"])
        self.token_types = bool(config["token_types"])
        self.position_offset = config["position_offset"]
        pad = config.get("pad_token_id", 0)
        self.pad_token_id = None if pad is None else int(pad)
        # BERTModel's own pooler is BERT's: tanh, no dropout before it; any other head has its own Dense.
        model_pooler = head == "sequence" and config["pooler_activation"] == "tanh" and not config["dropout_before_pooler"]
        self.own_pooler = head == "sequence" and not model_pooler
        with self.name_scope():
            encoder = _Encoder(
                keep_padding=head == "span",
                position_offset=self.position_offset,
                num_layers=self.num_layers,
                units=hidden,
                hidden_size=int(config["intermediate_size"]),
                max_length=int(config["max_position_embeddings"]),
                num_heads=self.num_heads,
                dropout=dropout,
                output_attention=False,
                activation=_ACTIVATIONS[config["hidden_act"]],
                layer_norm_eps=float(config["layer_norm_eps"]),
            )
            sizes = dict(vocab_size=int(config["vocab_size"]), units=hidden, embed_size=hidden)
            if self.token_types:
                self.bert = BERTModel(encoder, token_type_vocab_size=int(config["type_vocab_size"]), use_pooler=model_pooler,
                                      use_decoder=False, use_classifier=False, **sizes)
            else:
                self.bert = DistilBERTModel(encoder, **sizes)
                # the contract's three inputs stay (exports and the debugger keep one signature); Gluon would
                # warn on every new graph that token_type_ids goes unused
                warnings.filterwarnings("ignore", message="The 1-th input to HybridBlock is not used", category=UserWarning)
            if head == "span":  # structural names qa_outputs.weight / .bias, as in transformers
                self.span_dropout = nn.Dropout(float(config["span_dropout"]))
                self.qa_outputs = nn.Dense(2, in_units=hidden, flatten=False)
            else:
                head_dropout = float(config["classifier_dropout"])
                if self.own_pooler:
                    self.pooler_dropout = nn.Dropout(head_dropout if config["dropout_before_pooler"] else 0.0)
                    self.pooler = nn.Dense(hidden, in_units=hidden, flatten=False, activation=config["pooler_activation"])
                self.dropout = nn.Dropout(head_dropout)
                self.classifier = nn.Dense(num_labels, in_units=hidden, flatten=False)
        self._to_hf = {self.gluon_name(n): n for n in _canonical_names(config, head)}

    def _encode(self, input_ids, token_type_ids, valid_length):
        if self.token_types:
            return self.bert(input_ids, token_type_ids, valid_length)
        return self.bert(input_ids, valid_length)

    def hybrid_forward(self, F, input_ids, token_type_ids, valid_length):  # noqa: N803 (Gluon's signature)
        if self.head == "span":  # no dropout before qa_outputs, except DistilBERT's qa_dropout
            return self.qa_outputs(self.span_dropout(self._encode(input_ids, token_type_ids, valid_length)))
        if self.own_pooler:
            sequence = self._encode(input_ids, token_type_ids, valid_length)
            first = F.reshape(F.slice_axis(sequence, axis=1, begin=0, end=1), shape=(0, -1))
            pooled = self.pooler(self.pooler_dropout(first))
        else:
            _, pooled = self._encode(input_ids, token_type_ids, valid_length)
        return self.classifier(self.dropout(pooled))

    # -- weights as Hugging Face numpy arrays ------------------------------
    def gluon_name(self, name: str) -> str:
        """The structural GluonNLP name of a canonical Hugging Face weight name."""
        return hf_to_gluon(name, self.own_pooler)

    def hf_name(self, name: str) -> str:
        """Inverse of :meth:`gluon_name`."""
        try:
            return self._to_hf[name]
        except KeyError:
            raise ArtifactError(f"GluonNLP parameter {name!r} has no Hugging Face counterpart.") from None

    def structural_params(self) -> dict:
        return self._collect_params_with_prefix()

    def load_hf(self, state: Mapping[str, np.ndarray], ctx) -> None:
        """Set every parameter from a canonical state dict (all must be present, shapes must agree)."""
        params = self.structural_params()
        wanted = {self.gluon_name(k): k for k in state}
        missing = sorted(set(params) - set(wanted))
        if missing:
            raise ArtifactError(f"checkpoint lacks {len(missing)} weight(s) the model needs, e.g. {self.hf_name(missing[0])}.")
        for gname, param in params.items():
            value = np.asarray(state[wanted[gname]], dtype=np.float32)
            if param.shape and all(param.shape) and tuple(param.shape) != value.shape:
                raise ArtifactError(f"weight {wanted[gname]}: shape {value.shape} does not match the config's {tuple(param.shape)}.")
            param._load_init(mx.nd.array(value, ctx=ctx), ctx)

    def hf_state(self) -> dict[str, np.ndarray]:
        return {self.hf_name(name): p.data().asnumpy() for name, p in self.structural_params().items()}

    def set_hf_state(self, state: Mapping[str, np.ndarray]) -> None:
        for name, param in self.structural_params().items():
            param.set_data(mx.nd.array(state[self.hf_name(name)], dtype="float32"))

    def drop_padding_grad(self, ctx) -> None:
        """Like transformers' ``nn.Embedding(padding_idx=pad_token_id)``: the padding row of the word
        embedding (and of RoBERTa's position embedding, whose padding row is the padding positions')
        gets no gradient (it has one here when padding positions reach the loss, as in ``span``)."""
        if self.pad_token_id is not None:
            self.bert.word_embed[0].weight.grad(ctx)[self.pad_token_id] = 0
        if self.position_offset is not None:
            self.bert.encoder.position_weight.grad(ctx)[self.position_offset - 1] = 0

    def decay_flags(self) -> dict[str, bool]:
        """Structural name -> whether AdamW decays it (not biases, not LayerNorm)."""
        return {n: not (n.endswith((".bias", ".beta", ".gamma"))) for n in self.structural_params()}
