"""A framework-free reader of the model-folder format: the encoder's forward pass in numpy (float64).

Every backend saves ``config.json`` + ``model.safetensors`` under Hugging Face names
(``BertForSequenceClassification``, ``DistilBertForQuestionAnswering``, ``RobertaFor...``, see
:mod:`.architectures`); this computes what transformers' models compute from such a folder in
evaluation mode (absolute positions, numbered from the padding id for RoBERTa; erf GELU,
LayerNorm, masked softmax attention), with numpy and safetensors only. It is the second,
independent opinion on a saved folder: the conformance suite (:mod:`bertbridge.testing.reference`)
and the cross-framework check every training run records in its model card
(:mod:`bertbridge.core.reports.check`) compare a backend's logits with it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Optional, Union

import numpy as np

from bertbridge.core.io.architectures import architecture

PathLike = Union[str, Path]

_ACTIVATIONS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "relu")
_BUFFERS = ("position_ids", "rotary_emb.inv_freq")


def _erf(x: np.ndarray) -> np.ndarray:
    """erf to ~1e-7 (Abramowitz and Stegun 7.1.26; numpy has none and scipy is not required)."""
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-a * a))


def _activation(name: str, x: np.ndarray) -> np.ndarray:
    if name == "gelu":
        return 0.5 * x * (1.0 + _erf(x / np.sqrt(2.0)))
    if name in ("gelu_new", "gelu_pytorch_tanh"):
        return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))
    if name == "relu":
        return np.maximum(x, 0.0)
    raise ValueError(f"reference BERT: hidden_act {name!r} is not implemented ({', '.join(_ACTIVATIONS)} are)")


def read_artifact(folder: PathLike) -> tuple[dict, dict[str, np.ndarray]]:
    """The canonical config (:meth:`~.architectures.Architecture.encoder_config`) and the weights of
    a model folder as float64 arrays under canonical (``BertFor...``) names."""
    from safetensors.numpy import load_file

    folder = Path(folder)
    raw = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    arch = architecture(raw.get("model_type"), where=str(folder / "config.json"))
    state = {}
    for name, value in load_file(str(folder / "model.safetensors")).items():
        canonical = arch.to_canonical(name)
        if canonical is not None:
            state[canonical] = value.astype(np.float64)
    return arch.encoder_config(raw), state


def position_ids(mask: np.ndarray, offset: Optional[int]) -> np.ndarray:
    """Position ids of a right-padded batch: 0..T-1, or (``offset`` = pad id + 1, RoBERTa) real tokens
    from ``offset`` and padding at ``offset - 1``."""
    b, t = mask.shape
    steps = np.broadcast_to(np.arange(t), (b, t))
    return steps if offset is None else np.where(mask > 0, steps + offset, offset - 1)


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


def _dense(x: np.ndarray, s: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    return x @ s[name + ".weight"].T + s[name + ".bias"]


def encoder(config: Mapping, state: Mapping[str, np.ndarray], batch: Mapping[str, np.ndarray]) -> np.ndarray:
    """The encoder's last hidden states (B, T, H), float64, evaluation mode; ``config`` is the
    canonical one :func:`read_artifact` returns."""
    ids, types, mask = (np.asarray(batch[k]) for k in ("input_ids", "token_type_ids", "attention_mask"))
    eps = float(config["layer_norm_eps"])
    heads = int(config["num_attention_heads"])
    b, t = ids.shape
    e = "bert.embeddings."
    x = state[e + "word_embeddings.weight"][ids] + state[e + "position_embeddings.weight"][position_ids(mask, config["position_offset"])]
    if config["token_types"]:
        x = x + state[e + "token_type_embeddings.weight"][types]
    x = _layer_norm(x, state[e + "LayerNorm.weight"], state[e + "LayerNorm.bias"], eps)
    blocked = np.where(mask[:, None, None, :] > 0, 0.0, -np.inf)  # (B, 1, 1, T): padding keys get no attention
    for i in range(int(config["num_hidden_layers"])):
        p = f"bert.encoder.layer.{i}."

        def split(y):
            return y.reshape(b, t, heads, -1).transpose(0, 2, 1, 3)

        q, k, v = (split(_dense(x, state, p + "attention.self." + n)) for n in ("query", "key", "value"))
        scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(q.shape[-1]) + blocked
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        context = (scores / scores.sum(-1, keepdims=True)) @ v
        context = context.transpose(0, 2, 1, 3).reshape(b, t, -1)
        x = _layer_norm(_dense(context, state, p + "attention.output.dense") + x,
                        state[p + "attention.output.LayerNorm.weight"], state[p + "attention.output.LayerNorm.bias"], eps)
        inner = _activation(config["hidden_act"], _dense(x, state, p + "intermediate.dense"))
        x = _layer_norm(_dense(inner, state, p + "output.dense") + x,
                        state[p + "output.LayerNorm.weight"], state[p + "output.LayerNorm.bias"], eps)
    return x


def logits(folder: PathLike, batch: Mapping[str, np.ndarray], head: str = "sequence") -> np.ndarray:
    """What transformers' ``...ForSequenceClassification`` (``head="sequence"``: (B, num_labels)) or
    ``...ForQuestionAnswering`` (``head="span"``: (B, T, 2), start and end) gives for ``batch``
    with the artifact in ``folder``, computed in float64."""
    config, state = read_artifact(folder)
    hidden = encoder(config, state, batch)
    if head == "span":
        return _dense(hidden, state, "qa_outputs")
    first = _dense(hidden[:, 0], state, "bert.pooler.dense")  # BERT's pooler, DistilBERT's pre_classifier, RoBERTa's classifier.dense
    pooled = np.tanh(first) if config["pooler_activation"] == "tanh" else np.maximum(first, 0.0)
    return _dense(pooled, state, "classifier")
