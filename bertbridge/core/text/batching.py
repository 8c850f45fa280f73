"""Batches of numpy arrays with dynamic padding.

Training batches are length-grouped: examples are shuffled, cut into pools of
50 batches, each pool is sorted by length and split into batches, and the
batch order is shuffled again. Every example is still seen once per epoch,
batches stay random, and a batch is padded only to its own longest example,
so short sentences do not pay for long ones. Evaluation batches are taken
in length order and the outputs put back in input order; where they are cut is
chosen to spend the fewest padded tokens plus a fixed cost per forward call
(:data:`CALL_COST_TOKENS`), so one long outlier gets a batch of its own instead
of padding 31 short sentences to its length.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from bertbridge.core.text.tokenize import Encoded

POOL_BATCHES = 50
CALL_COST_TOKENS = 64
"""What one more forward call costs, in tokens of work (framework dispatch, thread wake-up). On the
2-core CPU the docs' benchmarks ran on, a MiniLM forward costs about the same per padded token at
batch 1 and at batch 32, and the per-call cost is a handful of tokens; padding a batch of 32 SST-2
sentences to its longest (mean 25, longest 48 tokens) nearly doubles the work."""


def train_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator, group_by_length: bool = True) -> list[np.ndarray]:
    """Index arrays for one epoch of training batches (the last one may be smaller)."""
    order = rng.permutation(len(lengths))
    if group_by_length:
        pool = batch_size * POOL_BATCHES
        chunks = [order[i : i + pool] for i in range(0, len(order), pool)]
        order = np.concatenate([c[np.argsort(-lengths[c], kind="stable")] for c in chunks])
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if group_by_length:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def eval_batches(lengths: np.ndarray, batch_size: int, call_cost: int = CALL_COST_TOKENS) -> list[np.ndarray]:
    """Index arrays in length order, at most ``batch_size`` each, cut where the padded tokens plus
    ``call_cost`` per batch add up to the least (``call_cost=0``: equal cuts of ``batch_size``).
    Outputs must be scattered back by index."""
    order = np.argsort(lengths, kind="stable")
    if call_cost <= 0 or len(order) <= 1:
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    return [order[a:b] for a, b in _cheapest_cuts(np.asarray(lengths)[order], batch_size, call_cost)]


def _cheapest_cuts(sorted_lengths: np.ndarray, batch_size: int, call_cost: int) -> list[tuple[int, int]]:
    """Optimal contiguous cuts of ascending lengths: a batch [i, j) costs call_cost + (j - i) * length[j - 1]."""
    n = len(sorted_lengths)
    best = np.zeros(n + 1)
    start = np.zeros(n + 1, dtype=np.int64)
    for j in range(1, n + 1):
        i = np.arange(max(0, j - batch_size), j)
        costs = best[i] + call_cost + (j - i) * float(sorted_lengths[j - 1])
        k = int(np.argmin(costs))
        best[j], start[j] = costs[k], i[k]
    cuts, j = [], n
    while j > 0:
        cuts.append((int(start[j]), j))
        j = int(start[j])
    return cuts[::-1]


def collate(features: Encoded, index: np.ndarray, labels: Optional[np.ndarray] = None, pad_id: int = 0,
            width: Optional[int] = None) -> dict[str, np.ndarray]:
    """Pad the selected sequences to their longest one (or to ``width``): ``input_ids``,
    ``token_type_ids``, ``attention_mask`` as int64 (B, T), plus ``labels`` when given and
    ``sequence_ids`` (-1 on special tokens and padding) when the features carry them."""
    width = max(int(features.lengths[index].max()), width or 0)
    size = len(index)
    input_ids = np.full((size, width), pad_id, dtype=np.int64)
    token_type_ids = np.zeros((size, width), dtype=np.int64)
    attention_mask = np.zeros((size, width), dtype=np.int64)
    for row, i in enumerate(index):
        n = features.lengths[i]
        input_ids[row, :n] = features.input_ids[i]
        token_type_ids[row, :n] = features.token_type_ids[i]
        attention_mask[row, :n] = 1
    batch = {"input_ids": input_ids, "token_type_ids": token_type_ids, "attention_mask": attention_mask}
    if features.sequence_ids is not None:
        batch["sequence_ids"] = np.full((size, width), -1, dtype=np.int64)
        for row, i in enumerate(index):
            batch["sequence_ids"][row, : features.lengths[i]] = features.sequence_ids[i]
    if labels is not None:
        batch["labels"] = labels[index]
    return batch


def encode_batch(encoder, inputs: Sequence[tuple[str, Optional[str]]], max_length: int) -> tuple[Encoded, dict[str, np.ndarray]]:
    """Tokenize a few ``(text, text_pair)`` inputs (``text_pair`` None for single texts) with ``encoder``
    and collate them into one padded batch; returns the features and the batch."""
    texts = [text for text, _ in inputs]
    pairs = [pair for _, pair in inputs] if any(pair is not None for _, pair in inputs) else None
    features = encoder.encode(texts, pairs, max_length=max_length, sequence_ids=True)
    return features, collate(features, np.arange(len(texts)), pad_id=encoder.pad_id)
