"""MXNet (GluonNLP) implementation of the core model contract (imported only when used).

Training runs the hybridized :class:`~.bert.BertClassifier` under ``autograd``,
with gradients accumulated in place (``grad_req='add'``) and an AdamW built from MXNet's
fused Adam update and an in-place decay to match ``torch.optim.AdamW`` exactly (decoupled decay, bias
correction, global-norm clipping), so the three backends train the same way.
Dropout is reseeded from ``(seed, micro-batch index)`` before every forward pass,
which makes runs repeatable and lets a checkpoint resume the exact stream.
Data-parallel (:meth:`MXClassifier.distribute`): the workers' gradients are summed through
the ``dist_sync`` kvstore at the start of every :meth:`~MXClassifier.step`.
The head (``sequence`` classifier or ``span`` question answering) is ``setup.head``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from bertbridge.core.backend import Batch, ModelSetup, TrainableModel
from bertbridge.core.errors import NotSupportedError
from bertbridge.core.io.weights import pretrained_classifier, save_state, saved_classifier

from .bert import BertClassifier, mx

BETA1, BETA2, EPS = 0.9, 0.999, 1e-8  # torch.optim.AdamW defaults
nd, autograd = mx.nd, mx.autograd


def valid_length(batch: Batch):
    """GluonNLP masks attention by length: the count of real tokens per row (right padding)."""
    return nd.array(np.asarray(batch["attention_mask"]).sum(axis=1), dtype="float32")


class MXClassifier(TrainableModel):
    """:class:`BertClassifier` fine-tuned with autograd and AdamW on the CPU (or ``mx.gpu()``); its head
    is ``setup.head``."""

    def __init__(self, block: BertClassifier, config: dict, setup: ModelSetup, ctx=None) -> None:
        self.block = block
        self.config = config  # config.json as it is saved (block.config: the canonical view)
        self.setup = setup
        self.ctx = ctx or mx.cpu()
        self.params = block.structural_params()
        self._decay = block.decay_flags()
        self._slots: dict = {}
        self._t = 0
        self._micro = 0  # forward passes in training mode so far (dropout seed stream)
        self._collective = None  # the MXCollective of a data-parallel worker
        self._rank = 0  # its rank: the dropout stream (0: the single-process one)
        self.block.hybridize(static_alloc=False)
        loss = mx.gluon.loss
        if setup.head == "span":
            # logits (B, T, 2), labels (B, 2): softmax over the T positions, the start and end losses
            # averaged per example (transformers' BertForQuestionAnswering loss, no masking)
            self.loss_block = loss.SoftmaxCrossEntropyLoss(axis=1)
        else:
            self.loss_block = loss.SigmoidBinaryCrossEntropyLoss() if setup.multi_label else loss.SoftmaxCrossEntropyLoss()
        self.debug_hook = None  # set by a debugger session (debugger.py) while it records

    # -- construction -----------------------------------------------------
    @classmethod
    def from_pretrained(cls, folder: Path, setup: ModelSetup) -> "MXClassifier":
        if setup.mixed_precision:
            raise NotSupportedError(
                "training.mixed_precision is not implemented on the mxnet backend (MXNet 1.9 has no CPU bf16 "
                "training path); set training.mixed_precision: false or use the pytorch backend."
            )
        mx.random.seed(setup.seed)
        base, state, config = pretrained_classifier(folder, setup)
        block = BertClassifier(base, setup.num_labels, head=setup.head)
        block.load_hf(state, mx.cpu())
        return cls(block, config, setup)

    @classmethod
    def from_artifact(cls, folder: Path, setup: ModelSetup) -> "MXClassifier":
        config, state, written = saved_classifier(folder, setup.num_labels, head=setup.head)
        block = BertClassifier(config, setup.num_labels, head=setup.head)
        block.load_hf(state, mx.cpu())
        return cls(block, written, setup)

    # -- helpers ------------------------------------------------------------
    def _inputs(self, batch: Batch):
        return (
            nd.array(batch["input_ids"], ctx=self.ctx, dtype="float32"),
            nd.array(batch["token_type_ids"], ctx=self.ctx, dtype="float32"),
            valid_length(batch).as_in_context(self.ctx),
        )

    def _loss(self, logits, labels):
        """Mean cross-entropy (softmax, or sigmoid per label; for ``span``, the mean of the start and
        end cross-entropies) through a Gluon loss block, which a debugger hook can watch."""
        return self.loss_block(logits, labels).mean()

    def _ensure_slots(self) -> None:
        if self._slots:
            return
        for name, param in self.params.items():
            param.grad_req = "add"
            zeros = nd.zeros(param.shape, ctx=self.ctx)
            self._slots[name] = (zeros, zeros.copy())
        for param in self.params.values():
            param.zero_grad()

    # -- contract ----------------------------------------------------------
    def logits(self, batch: Batch) -> np.ndarray:
        if self.debug_hook is not None:
            with self.debug_hook.predicting():  # evaluation passes are not training steps of the trial
                return self.block(*self._inputs(batch)).asnumpy()
        return self.block(*self._inputs(batch)).asnumpy()

    def attentions(self, batch: Batch) -> np.ndarray:
        """The self-attention cells' second output, caught by forward hooks on the un-hybridized block."""
        maps: list = []
        cells = [layer.attention_cell for layer in self.block.bert.encoder.transformer_cells]
        hooks = [cell.register_forward_hook(lambda block, inputs, outputs: maps.append(outputs[1])) for cell in cells]
        self.block.hybridize(active=False)
        try:
            self.block(*self._inputs(batch))
        finally:
            for hook in hooks:
                hook.detach()
            self.block.hybridize(static_alloc=False)
        return np.stack([m.asnumpy() for m in maps], axis=1).astype(np.float32)

    def accumulate(self, batch: Batch, loss_scale: float) -> float:
        self._ensure_slots()
        mx.random.seed(self._dropout_seed())
        self._micro += 1
        labels = nd.array(batch["labels"], ctx=self.ctx, dtype="float32")
        with autograd.record(train_mode=True):
            loss = self._loss(self.block(*self._inputs(batch)), labels)
            scaled = loss * loss_scale
        scaled.backward()
        return float(loss.asscalar())

    def _dropout_seed(self) -> int:
        """The seed of this micro-batch's dropout masks: ``(seed, micro-batch)`` on one process and
        on rank 0, a stream of its own (from ``(seed, rank, micro-batch)``) on every other rank."""
        if not self._rank:
            return self.setup.seed * 1_000_003 + self._micro
        return int(np.random.SeedSequence([self.setup.seed % 2**32, self._rank, self._micro]).generate_state(1)[0] >> 1)

    def distribute(self, collective) -> None:
        """Join ``collective`` (a :class:`~.distributed.MXCollective`): take rank 0's weights through the
        kvstore now, and from now on sum every worker's gradients at the start of :meth:`step`."""
        self._collective = collective
        self._rank = collective.rank
        collective.broadcast_arrays("params", [p.data(self.ctx) for p in self.params.values()])

    def step(self, learning_rate: float) -> None:
        self._ensure_slots()
        self.block.drop_padding_grad(self.ctx)
        grads = {name: p.grad(self.ctx) for name, p in self.params.items()}
        if self._collective is not None:  # every worker's gradients become their sum, before clipping
            self._collective.sum_arrays("params", list(grads.values()))
        clip = 1.0
        if self.setup.max_grad_norm > 0:
            arrays = list(grads.values())
            norm = float(nd.multi_sum_sq(*arrays, num_arrays=len(arrays)).sum().sqrt().asscalar())
            clip = min(1.0, self.setup.max_grad_norm / (norm + 1e-6))
        self._t += 1
        c1, c2 = 1.0 - BETA1**self._t, 1.0 - BETA2**self._t
        # MXNet's Adam has no bias correction; folding it into the learning rate and epsilon gives
        # torch's update exactly: lr/c1 * m / (sqrt(v/c2) + eps) == lr*sqrt(c2)/c1 * m / (sqrt(v) + eps*sqrt(c2)).
        lr = learning_rate * c2**0.5 / c1
        eps = EPS * c2**0.5
        decay = 1.0 - learning_rate * self.setup.weight_decay  # torch's decoupled decay: p *= 1 - lr * wd, first
        for name, param in self.params.items():
            weight = param.data(self.ctx)
            m, v = self._slots[name]
            if self._decay[name] and decay != 1.0:
                weight *= decay
            # adam_update with wd=0 is AdamW's moment update; on 2 cores it runs 4x faster than the
            # contrib adamw_update kernel (17 vs 73 ms on the 11.7M-value word embedding)
            nd.adam_update(weight, grads[name], m, v, lr=lr, beta1=BETA1, beta2=BETA2, epsilon=eps, wd=0.0,
                           rescale_grad=clip, lazy_update=False, out=weight)
            param.zero_grad()

    def snapshot(self) -> dict[str, np.ndarray]:
        return self.block.hf_state()

    def restore(self, snapshot: Mapping[str, np.ndarray]) -> None:
        self.block.set_hf_state(snapshot)

    def training_state(self) -> dict[str, np.ndarray]:
        state = {f"model.{k}": v for k, v in self.snapshot().items()}
        for name, (m, v) in self._slots.items():
            hf = self.block.hf_name(name)
            state[f"adamw.{hf}.exp_avg"] = m.asnumpy()
            state[f"adamw.{hf}.exp_avg_sq"] = v.asnumpy()
        if self._slots:
            state["adamw.t"] = np.array([self._t], dtype=np.float32)
        state["rng.mxnet_micro_batches"] = np.array([self._micro], dtype=np.int64)
        return state

    def load_training_state(self, state: Mapping[str, np.ndarray]) -> None:
        self.restore({k[len("model."):]: v for k, v in state.items() if k.startswith("model.")})
        if "adamw.t" in state:
            self._ensure_slots()
            for name, (m, v) in self._slots.items():
                hf = self.block.hf_name(name)
                m[:] = nd.array(state[f"adamw.{hf}.exp_avg"], ctx=self.ctx)
                v[:] = nd.array(state[f"adamw.{hf}.exp_avg_sq"], ctx=self.ctx)
            self._t = int(state["adamw.t"][0])
        self._micro = int(state["rng.mxnet_micro_batches"][0])

    def save(self, directory: Path) -> None:
        save_state(directory, self.config, self.snapshot())
