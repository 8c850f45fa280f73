"""TensorFlow implementation of the core model contract (imported only when used)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TF's C++ start-up chatter out of training logs

import tensorflow as tf  # noqa: E402

from bertbridge.core.backend import Batch, ModelSetup, TrainableModel  # noqa: E402
from bertbridge.core.io.weights import pretrained_classifier, save_state, saved_classifier  # noqa: E402

from .bert import BertClassifier  # noqa: E402

_IDS = tf.TensorSpec([None, None], tf.int64)
BETA1, BETA2, EPS = 0.9, 0.999, 1e-8  # torch.optim.AdamW defaults


class TFClassifier(TrainableModel):
    """:class:`BertClassifier` trained with compiled (``tf.function``) steps and AdamW; its head
    (``sequence`` classifier or ``span`` question answering) is ``setup.head``."""

    def __init__(self, module: BertClassifier, config: dict, setup: ModelSetup) -> None:
        self.module = module
        self.config = config  # config.json as it is saved
        self.setup = setup
        self.variables = list(module.weights.values())
        self._decay = module.decay_mask
        self._ready = False
        self._collective = None  # the TFCollective of a data-parallel worker
        if setup.head == "span":  # start and end token positions
            label_spec = tf.TensorSpec([None, 2], tf.int64)
        elif setup.multi_label:
            label_spec = tf.TensorSpec([None, setup.num_labels], tf.float32)
        else:
            label_spec = tf.TensorSpec([None], tf.int64)
        self._label_dtype = label_spec.dtype.as_numpy_dtype
        self._logits_fn = tf.function(lambda i, a, t: module(i, a, t, training=False), input_signature=[_IDS] * 3, reduce_retracing=True)
        self._accumulate_fn = tf.function(self._accumulate_graph, input_signature=[_IDS] * 3 + [label_spec, tf.TensorSpec([], tf.float32)])
        self._step_fn = tf.function(self._step_graph, input_signature=[tf.TensorSpec([], tf.float32)])

    # -- construction -----------------------------------------------------
    @classmethod
    def from_pretrained(cls, folder: Path, setup: ModelSetup) -> "TFClassifier":
        tf.random.set_seed(setup.seed)
        base, state, config = pretrained_classifier(folder, setup)
        return cls(BertClassifier(base, state, seed=setup.seed, bf16=setup.mixed_precision, head=setup.head), config, setup)

    @classmethod
    def from_artifact(cls, folder: Path, setup: ModelSetup) -> "TFClassifier":
        config, state, written = saved_classifier(folder, setup.num_labels, head=setup.head)
        return cls(BertClassifier(config, state, head=setup.head), written, setup)

    # -- graphs -------------------------------------------------------------
    def _build_slots(self) -> None:
        zeros = lambda v: tf.Variable(tf.zeros_like(v), trainable=False)  # noqa: E731
        self._grads = [zeros(v) for v in self.variables]
        self._m = [zeros(v) for v in self.variables]
        self._v = [zeros(v) for v in self.variables]
        self._t = tf.Variable(0.0, trainable=False)
        self._ready = True

    def _loss(self, logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        if self.setup.head == "span":  # transformers' BertForQuestionAnswering: mean of start and end CE over all T
            start = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels[:, 0], logits=logits[..., 0])
            end = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels[:, 1], logits=logits[..., 1])
            return (tf.reduce_mean(start) + tf.reduce_mean(end)) / 2.0
        if self.setup.multi_label:
            return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))
        return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))

    def _accumulate_graph(self, input_ids, attention_mask, token_type_ids, labels, scale):
        with tf.GradientTape() as tape:
            loss = self._loss(self.module(input_ids, attention_mask, token_type_ids, training=True), labels)
            scaled = loss * scale
        for acc, grad in zip(self._grads, tape.gradient(scaled, self.variables)):
            if grad is not None:  # a variable the loss does not reach gets no update
                acc.assign_add(tf.convert_to_tensor(grad))
        return loss

    def _step_graph(self, learning_rate):
        grads = self._grads
        if self._collective is not None:  # data-parallel: every worker gets the sum over all (one packed all-reduce)
            grads = self._collective.reduce_tensors([acc.read_value() for acc in self._grads])
        clip = 1.0
        if self.setup.max_grad_norm > 0:
            norm = tf.linalg.global_norm(grads)
            clip = tf.minimum(1.0, self.setup.max_grad_norm / (norm + 1e-6))
        self._t.assign_add(1.0)
        correction1 = 1.0 - tf.pow(BETA1, self._t)
        correction2 = 1.0 - tf.pow(BETA2, self._t)
        for var, acc, summed, m, v, decay in zip(self.variables, self._grads, grads, self._m, self._v, self._decay):
            grad = summed * clip
            if decay and self.setup.weight_decay:
                var.assign(var * (1.0 - learning_rate * self.setup.weight_decay))
            m.assign(BETA1 * m + (1.0 - BETA1) * grad)
            v.assign(BETA2 * v + (1.0 - BETA2) * tf.square(grad))
            var.assign_sub((learning_rate / correction1) * m / (tf.sqrt(v / correction2) + EPS))
            acc.assign(tf.zeros_like(acc))
        return self._t

    # -- contract ----------------------------------------------------------
    def logits(self, batch: Batch) -> np.ndarray:
        return self._logits_fn(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]).numpy()

    def word_embeddings(self, input_ids: np.ndarray) -> np.ndarray:
        return tf.gather(self.module.weights["bert.embeddings.word_embeddings.weight"], input_ids).numpy().astype(np.float32)

    def embedding_gradients(self, batch: Batch, embeddings: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        embeds = tf.constant(embeddings, dtype=tf.float32)
        with tf.GradientTape() as tape:
            tape.watch(embeds)
            logits = self.module(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"], training=False,
                                 word_embeddings=embeds)
            scores = tf.reduce_sum(tf.reshape(tf.cast(logits, tf.float32) * weights, [tf.shape(embeds)[0], -1]), axis=1)
        return scores.numpy(), tape.gradient(scores, embeds).numpy()

    def attentions(self, batch: Batch) -> np.ndarray:
        probes: list = []
        self.module(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"], training=False, probes=probes)
        return np.stack([p.numpy() for p in probes], axis=1).astype(np.float32)

    def accumulate(self, batch: Batch, loss_scale: float) -> float:
        if not self._ready:
            self._build_slots()
        labels = batch["labels"].astype(self._label_dtype)
        loss = self._accumulate_fn(
            batch["input_ids"], batch["attention_mask"], batch["token_type_ids"], labels, np.float32(loss_scale)
        )
        return float(loss)

    def step(self, learning_rate: float) -> None:
        if self._collective is not None:
            if not self._ready:  # a worker with nothing to add still joins the all-reduce
                self._build_slots()
            self._collective.run(self._step_fn, np.float32(learning_rate))
        else:
            self._step_fn(np.float32(learning_rate))

    def distribute(self, collective) -> None:
        """Join ``collective`` (a :class:`~.distributed.TFCollective`): rank 0's weights are
        broadcast to every worker now, and :meth:`step` sums the accumulated gradients over the
        workers (before clipping) from now on. Ranks other than 0 draw dropout from a stream of
        their own."""
        self._collective = collective
        self._step_fn = tf.function(self._step_graph, input_signature=[tf.TensorSpec([], tf.float32)])  # traced with the all-reduce
        collective.broadcast_variables(self.variables)
        self._reseed_dropout()

    def _reseed_dropout(self, base: int | None = None) -> None:
        rank = self._collective.rank if self._collective is not None else 0
        if rank:  # rank 0 keeps the single-process stream
            seed = (self.setup.seed if base is None else base) + 1_000_003 * rank
            self.module.seed_dropout(seed % (2**63))

    def snapshot(self) -> dict[str, np.ndarray]:
        return self.module.state()

    def restore(self, snapshot) -> None:
        self.module.assign(snapshot)

    def training_state(self) -> dict[str, np.ndarray]:
        state = {f"model.{k}": v for k, v in self.module.state().items()}
        if self._ready:
            for name, m, v in zip(self.module.weights, self._m, self._v):
                state[f"adamw.{name}.exp_avg"] = m.numpy()
                state[f"adamw.{name}.exp_avg_sq"] = v.numpy()
            state["adamw.t"] = np.array([self._t.numpy()], dtype=np.float32)
        state["rng.tf"] = self.module._rng.state.numpy()
        return state

    def load_training_state(self, state) -> None:
        self.restore({k[len("model."):]: v for k, v in state.items() if k.startswith("model.")})
        if "adamw.t" in state:
            if not self._ready:
                self._build_slots()
            for name, m, v in zip(self.module.weights, self._m, self._v):
                m.assign(state[f"adamw.{name}.exp_avg"])
                v.assign(state[f"adamw.{name}.exp_avg_sq"])
            self._t.assign(float(state["adamw.t"][0]))
        self.module._rng.state.assign(state["rng.tf"])
        if self._collective is not None and self._collective.rank:  # rank 0's saved stream, made this rank's own
            self._reseed_dropout(int(np.asarray(state["rng.tf"]).astype(np.uint64).sum(dtype=np.uint64) % (2**62)))

    def save(self, directory: Path) -> None:
        save_state(directory, self.config, self.module.state())
