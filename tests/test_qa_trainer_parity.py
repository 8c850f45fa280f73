"""bertbridge's PyTorch QA fine-tuning is the Hugging Face Trainer's, step for step.

Given the same starting weights, windows and batch order, ``bertbridge.train`` (the core loop plus
the PyTorch backend: span loss, AdamW with its no-decay group, gradient clipping, warmup then
linear decay) must land on the weights that ``transformers.Trainer`` reaches. The tiny BERT has
no dropout, so nothing random is left: any difference in the training maths shows as a weight
difference. This is what lets ``bench/train_qa.py`` read a bertbridge-vs-peer F1 gap as
run-to-run noise (data order, dropout) rather than a bug.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import saved_weights
from test_qa import make_squad

import bertbridge

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")  # the Trainer needs it

SETTINGS = {"epochs": 2, "batch_size": 8, "learning_rate": 2e-3, "warmup_ratio": 0.2, "weight_decay": 0.1,
            "max_grad_norm": 0.5, "max_seq_length": 48, "seed": 7, "group_by_length": True}


def bertbridge_windows(train: Path, model_dir: Path, doc_stride: int):
    """The training windows bertbridge builds (the task's own reader)."""
    from bertbridge.core.tasks.qa.features import build_features
    from bertbridge.core.tasks.qa.squad import read_squad
    from bertbridge.core.text.tokenize import TextEncoder

    return build_features(read_squad(train).examples, TextEncoder.from_pretrained(model_dir),
                          max_seq_length=SETTINGS["max_seq_length"], doc_stride=doc_stride, max_question_length=8,
                          training=True)


def epoch_orders(lengths: np.ndarray) -> list[list[int]]:
    """The window order of each epoch of bertbridge's loop (one numpy stream, seeded once)."""
    from bertbridge.core.text.batching import train_batches

    rng = np.random.default_rng(SETTINGS["seed"])
    return [[int(i) for batch in train_batches(lengths, SETTINGS["batch_size"], rng, SETTINGS["group_by_length"])
             for i in batch] for _ in range(SETTINGS["epochs"])]


def starting_weights(model_dir: Path) -> dict:
    """The weights bertbridge starts from (pretrained body, its freshly initialised span head)."""
    from bertbridge.backends.pytorch.model import TorchClassifier
    from bertbridge.core.tasks.qa.task import QuestionAnsweringTask

    setup = replace(QuestionAnsweringTask().model_setup(None), seed=SETTINGS["seed"])  # type: ignore[arg-type]
    return TorchClassifier.from_pretrained(model_dir, setup).model.state_dict()


class _EpochOrders(torch.utils.data.Sampler):
    """Yields epoch ``k``'s order on the ``k``-th pass (the Trainer iterates once per epoch)."""

    def __init__(self, orders: list[list[int]]) -> None:
        self.orders, self.passes = orders, 0

    def __len__(self) -> int:
        return len(self.orders[0])

    def __iter__(self):
        order = self.orders[min(self.passes, len(self.orders) - 1)]
        self.passes += 1
        return iter(order)


def trainer_weights(model_dir: Path, feats, out: Path) -> dict:
    """Fine-tune with ``transformers.Trainer`` over bertbridge's windows in bertbridge's batch order."""
    sampler = _EpochOrders(epoch_orders(feats.lengths))

    class InOrder(transformers.Trainer):
        def _get_train_sampler(self, train_dataset=None):
            return sampler

    rows = [{"input_ids": [int(t) for t in ids], "token_type_ids": [int(t) for t in types],
             "start_positions": int(s), "end_positions": int(e)}
            for ids, types, s, e in zip(feats.input_ids, feats.token_type_ids, feats.start_positions, feats.end_positions)]
    model = transformers.AutoModelForQuestionAnswering.from_pretrained(str(model_dir))
    model.load_state_dict(starting_weights(model_dir))
    steps = -(-len(rows) // SETTINGS["batch_size"]) * SETTINGS["epochs"]
    args = transformers.TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=SETTINGS["batch_size"], learning_rate=SETTINGS["learning_rate"],
        num_train_epochs=SETTINGS["epochs"], weight_decay=SETTINGS["weight_decay"], max_grad_norm=SETTINGS["max_grad_norm"],
        lr_scheduler_type="linear", warmup_steps=int(round(steps * SETTINGS["warmup_ratio"])), seed=SETTINGS["seed"],
        report_to=[], save_strategy="no", logging_strategy="no", eval_strategy="no", disable_tqdm=True, use_cpu=True,
        dataloader_num_workers=0,
    )
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(model_dir))
    InOrder(model=model, args=args, train_dataset=rows, data_collator=transformers.DataCollatorWithPadding(tokenizer)).train()
    assert sampler.passes == SETTINGS["epochs"]
    return {k: v.detach().numpy() for k, v in model.state_dict().items()}


def test_pytorch_qa_training_lands_on_the_trainers_weights(tiny_model_dir, tmp_path):
    train = tmp_path / "train.json"
    make_squad(train, 44, seed=5, long_every=5)  # some contexts span several windows (labels outside: CLS)
    feats = bertbridge_windows(train, tiny_model_dir, doc_stride=16)
    assert len(feats) > 44 and (feats.start_positions == 0).any()  # windows without the answer are in the mix

    spec = {"task": {"type": "question_answering", "doc_stride": 16, "max_question_length": 8},
            "data": {"train": str(train)}, "model": {"name": str(tiny_model_dir)},
            "training": SETTINGS, "backend": "pytorch", "output_dir": str(tmp_path / "ours")}
    bertbridge.train(spec)
    ours = saved_weights(tmp_path / "ours")
    theirs = trainer_weights(tiny_model_dir, feats, tmp_path / "trainer")
    start = {k: v.numpy() for k, v in starting_weights(tiny_model_dir).items()}

    assert set(ours) <= set(theirs)
    moved = max(float(np.abs(theirs[k] - start[k]).max()) for k in ours)
    assert moved > 1e-2  # training changed the weights, so agreeing means something
    # Compared as span distributions: a few parameters (the span head's bias, the last LayerNorm's
    # bias, attention key biases) shift every position's score alike, so their true gradient is 0
    # and Adam turns round-off into steps of either sign there. The answers they give are the same.
    ours_lp, theirs_lp = span_log_probs(tiny_model_dir, ours, feats), span_log_probs(tiny_model_dir, theirs, feats)
    gap = float(np.abs(ours_lp - theirs_lp).max())
    assert gap < 1e-4, f"bertbridge's and the Trainer's span log-probabilities differ by up to {gap:.2e}"
    assert float(np.abs(span_log_probs(tiny_model_dir, start, feats) - theirs_lp).max()) > 100 * max(gap, 1e-6)


def span_log_probs(model_dir: Path, weights: dict, feats) -> np.ndarray:
    """Start and end log-probabilities over each window's tokens, (N, 2, T) with -inf past the end."""
    model = transformers.AutoModelForQuestionAnswering.from_pretrained(str(model_dir))
    model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in weights.items()}, strict=False)
    model.eval()
    width = int(feats.lengths.max())
    ids = torch.zeros((len(feats), width), dtype=torch.long)
    types, mask = torch.zeros_like(ids), torch.zeros_like(ids)
    for row, (i, t) in enumerate(zip(feats.input_ids, feats.token_type_ids)):
        ids[row, : len(i)], types[row, : len(t)], mask[row, : len(i)] = torch.as_tensor(i), torch.as_tensor(t), 1
    with torch.no_grad():
        out = model(input_ids=ids, token_type_ids=types, attention_mask=mask)
    logits = torch.stack([out.start_logits, out.end_logits], dim=1).masked_fill(~mask.bool()[:, None], -1e9)
    return torch.log_softmax(logits, dim=-1).masked_fill(~mask.bool()[:, None], 0.0).numpy()
