"""A BERT-family encoder (BERT, DistilBERT, RoBERTa, XLM-R) for sequence classification or
extractive question answering in plain TensorFlow (a ``tf.Module``, no Keras, no transformers).

Variables keep canonical (BERT) Hugging Face PyTorch names and layouts (Linear weights
``[out, in]``, applied with ``transpose_b``); :mod:`bertbridge.core.io.weights` renames them to
and from the architecture's own names, and the canonical config
(:mod:`bertbridge.core.io.architectures`) says where the architectures differ: token types or
none, position numbering, the head's activation and dropouts. The numbers match transformers'.
"""

from __future__ import annotations

import math
from typing import Mapping, Optional

import numpy as np
import tensorflow as tf

from bertbridge.core.backend import HEADS

_ACTIVATIONS = {
    "gelu": lambda x: tf.nn.gelu(x, approximate=False),
    "gelu_new": lambda x: tf.nn.gelu(x, approximate=True),
    "gelu_pytorch_tanh": lambda x: tf.nn.gelu(x, approximate=True),
    "relu": tf.nn.relu,
}


class BertClassifier(tf.Module):
    """Embeddings, ``num_hidden_layers`` post-LayerNorm encoder blocks, then the head:
    ``sequence``: a dense layer on the first token (BERT's tanh pooler, DistilBERT's relu
    ``pre_classifier``, RoBERTa's tanh ``classifier.dense``) and a linear classifier, logits
    (B, num_labels); ``span``: ``qa_outputs`` on every token (no pooler), logits (B, T, 2) = start
    and end. ``config`` is the canonical one (:meth:`~bertbridge.core.io.architectures.Architecture.encoder_config`)."""

    def __init__(
        self, config: Mapping, state: Mapping[str, np.ndarray], *, seed: int = 0, bf16: bool = False, head: str = "sequence"
    ) -> None:
        super().__init__(name="bert_classifier")
        if head not in HEADS:
            raise ValueError(f"head must be one of {', '.join(HEADS)}, got {head!r}")
        self.head = head
        if head == "span":  # question answering has no pooler; keep only the variables the model uses
            state = {k: v for k, v in state.items() if not k.startswith(("bert.pooler.", "classifier."))}
        self.num_layers = int(config["num_hidden_layers"])
        self.num_heads = int(config["num_attention_heads"])
        self.hidden = int(config["hidden_size"])
        self.eps = float(config["layer_norm_eps"])
        self.hidden_dropout = float(config.get("hidden_dropout_prob", 0.1))
        self.attention_dropout = float(config.get("attention_probs_dropout_prob", 0.1))
        self.output_dropout = self.hidden_dropout if config["attention_output_dropout"] else 0.0
        self.classifier_dropout = float(config["classifier_dropout"])
        self.span_dropout = float(config["span_dropout"])
        self.act = _ACTIVATIONS[config["hidden_act"]]
        self.pooler_act = tf.tanh if config["pooler_activation"] == "tanh" else tf.nn.relu
        self.dropout_before_pooler = bool(config["dropout_before_pooler"])
        self.token_types = bool(config["token_types"])
        self.position_offset = config["position_offset"]
        pad = config.get("pad_token_id", 0)
        self.pad_token_id = None if pad is None else int(pad)
        self.compute_dtype = tf.bfloat16 if bf16 else tf.float32
        # One variable per checkpoint tensor, keyed by its PyTorch name.
        self.weights = {name: tf.Variable(value, name=name.replace(".", "/"), trainable=True) for name, value in state.items()}
        self._rng = tf.random.Generator.from_seed(seed)

    # -- building blocks --------------------------------------------------
    def _w(self, name: str) -> tf.Variable:
        return self.weights[name]

    def _dense(self, x: tf.Tensor, prefix: str) -> tf.Tensor:
        w, b = self._w(prefix + ".weight"), self._w(prefix + ".bias")
        shape = tf.shape(x)
        flat = tf.reshape(x, [-1, shape[-1]])
        if self.compute_dtype != tf.float32:
            y = tf.cast(tf.matmul(tf.cast(flat, self.compute_dtype), tf.cast(w, self.compute_dtype), transpose_b=True), tf.float32)
        else:
            y = tf.matmul(flat, w, transpose_b=True)
        return tf.reshape(y + b, tf.concat([shape[:-1], [tf.shape(w)[0]]], axis=0))

    def _layer_norm(self, x: tf.Tensor, prefix: str) -> tf.Tensor:
        mean, var = tf.nn.moments(x, axes=[-1], keepdims=True)
        return (x - mean) * tf.math.rsqrt(var + self.eps) * self._w(prefix + ".weight") + self._w(prefix + ".bias")

    def _dropout(self, x: tf.Tensor, rate: float, training: bool) -> tf.Tensor:
        if not training or rate == 0.0:
            return x
        return tf.nn.experimental.stateless_dropout(x, rate=rate, seed=self._rng.make_seeds(1)[:, 0])

    def _attention(self, h: tf.Tensor, mask_add: tf.Tensor, prefix: str, training: bool, probes: Optional[list] = None) -> tf.Tensor:
        batch, length = tf.shape(h)[0], tf.shape(h)[1]
        head_dim = self.hidden // self.num_heads

        def heads(x: tf.Tensor) -> tf.Tensor:
            return tf.transpose(tf.reshape(x, [batch, length, self.num_heads, head_dim]), [0, 2, 1, 3])

        q = heads(self._dense(h, prefix + ".self.query"))
        k = heads(self._dense(h, prefix + ".self.key"))
        v = heads(self._dense(h, prefix + ".self.value"))
        scores = tf.matmul(q, k, transpose_b=True) * (1.0 / math.sqrt(head_dim)) + mask_add
        probs = self._dropout(tf.nn.softmax(scores, axis=-1), self.attention_dropout, training)
        if probes is not None:
            probes.append(probs)
        context = tf.reshape(tf.transpose(tf.matmul(probs, v), [0, 2, 1, 3]), [batch, length, self.hidden])
        out = self._dropout(self._dense(context, prefix + ".output.dense"), self.output_dropout, training)
        return self._layer_norm(out + h, prefix + ".output.LayerNorm")

    def _word_embeddings(self, input_ids: tf.Tensor) -> tf.Tensor:
        """Like ``nn.Embedding(padding_idx=pad_token_id)``: the padding row gets no gradient (the
        span head's loss reaches padded positions; a classifier's never does, so it is unchanged)."""
        emb = tf.gather(self._w("bert.embeddings.word_embeddings.weight"), input_ids)
        if self.pad_token_id is None:
            return emb
        return tf.where((input_ids == self.pad_token_id)[..., None], tf.stop_gradient(emb), emb)

    def _position_embeddings(self, attention_mask: tf.Tensor) -> tf.Tensor:
        """(1, T, H) for positions 0..T-1; or (B, T, H) numbered from ``pad_token_id + 1`` with padding
        at ``pad_token_id`` (RoBERTa's numbering of a right-padded batch), where, like
        ``nn.Embedding(padding_idx=pad_token_id)``, the padding row gets no gradient."""
        table = self._w("bert.embeddings.position_embeddings.weight")
        steps = tf.range(tf.shape(attention_mask)[1], dtype=tf.int64)
        if self.position_offset is None:
            return tf.gather(table, steps)[None]
        real = attention_mask > 0
        ids = tf.where(real, steps[None] + self.position_offset, tf.cast(self.position_offset - 1, tf.int64))
        emb = tf.gather(table, ids)
        return tf.where(real[..., None], emb, tf.stop_gradient(emb))

    # -- the model ----------------------------------------------------------
    def __call__(
        self,
        input_ids: tf.Tensor,
        attention_mask: tf.Tensor,
        token_type_ids: tf.Tensor,
        training: bool = False,
        probes: Optional[list] = None,
        word_embeddings: Optional[tf.Tensor] = None,
    ) -> tf.Tensor:
        """Logits; with ``probes`` (a list, eager mode) each layer's attention weights (B, heads, T, T)
        are appended to it; ``word_embeddings`` (B, T, hidden) replaces the lookup of ``input_ids``."""
        e = "bert.embeddings."
        h = (self._word_embeddings(input_ids) if word_embeddings is None else word_embeddings) + self._position_embeddings(attention_mask)
        if self.token_types:
            h = h + tf.gather(self._w(e + "token_type_embeddings.weight"), token_type_ids)
        h = self._dropout(self._layer_norm(h, e + "LayerNorm"), self.hidden_dropout, training)
        mask_add = (1.0 - tf.cast(attention_mask, tf.float32))[:, None, None, :] * -1e9
        for i in range(self.num_layers):
            p = f"bert.encoder.layer.{i}."
            h = self._attention(h, mask_add, p + "attention", training, probes)
            inter = self.act(self._dense(h, p + "intermediate.dense"))
            out = self._dropout(self._dense(inter, p + "output.dense"), self.hidden_dropout, training)
            h = self._layer_norm(out + h, p + "output.LayerNorm")
        if self.head == "span":  # (B, T, 2) start/end logits, float32 (as _dense returns)
            return self._dense(self._dropout(h, self.span_dropout, training), "qa_outputs")
        first = h[:, 0]
        if self.dropout_before_pooler:
            first = self._dropout(first, self.classifier_dropout, training)
        pooled = self.pooler_act(self._dense(first, "bert.pooler.dense"))
        pooled = self._dropout(pooled, self.classifier_dropout, training)
        return self._dense(pooled, "classifier")

    def state(self) -> dict[str, np.ndarray]:
        return {name: var.numpy() for name, var in self.weights.items()}

    def assign(self, state: Mapping[str, np.ndarray]) -> None:
        for name, var in self.weights.items():
            var.assign(state[name])

    @property
    def decay_mask(self) -> list[bool]:
        """Which trainable variables get weight decay (not biases, not LayerNorm)."""
        return [not (n.endswith(".bias") or "LayerNorm" in n) for n in self.weights]

    def seed_dropout(self, seed: Optional[int]) -> None:
        if seed is not None:
            self._rng.reset_from_seed(seed)
