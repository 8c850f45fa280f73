"""MXNet's question-answering ("span") head against transformers' ``BertForQuestionAnswering``,
driven from the main environment (MXNet runs in its own, as in tests/test_mxnet_parity.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_mxnet_parity import _in_mxnet

from bertbridge.core.plugins.registry import models
from bertbridge.core.text.batching import collate
from bertbridge.core.text.tokenize import TextEncoder

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

QUESTIONS = ["is the film good ?", "was the food awful ?", "what was dull ?", "who was charming ?"]
CONTEXTS = [
    "the film was good and the actors were charming",
    "the food was awful",
    "a very dull plot and a sad story",
    " ".join(["happy and charming actors and a lovely story, but the plot was quite boring."] * 5),
]
POSITIONS = [[10, 10], [10, 10], [8, 9], [9, 10]]
NO_DECAY = ("bias", "LayerNorm.weight", "LayerNorm.bias")  # the pytorch backend's rule (MXNet: bias/beta/gamma)
TOLERANCE = 1e-4

MX_SPAN = """
import json, sys
from pathlib import Path
import numpy as np
from bertbridge.core.plugins.registry import backends
from bertbridge.core.backend import ModelSetup
from bertbridge.core.text.batching import collate
from bertbridge.core.text.tokenize import TextEncoder
a = json.loads(sys.argv[1])
setup = ModelSetup(num_labels=2, multi_label=False, id2label={0: "LABEL_0", 1: "LABEL_1"}, seed=3, head="span",
                   weight_decay=a.get("weight_decay", 0.0), max_grad_norm=a.get("max_grad_norm", 1.0))
backend = backends().get("mxnet")
model = backend.create_model(a["base"], setup) if a.get("base") else backend.load_model(a["model"], setup)
feats = TextEncoder.from_pretrained(a.get("base") or a["model"]).encode(a["questions"], a["contexts"], max_length=a["max_length"])
batch = collate(feats, np.arange(len(a["questions"])), labels=np.array(a["labels"], dtype=np.int64))
losses = []
for lr in a.get("steps", []):
    losses.append(model.accumulate(batch, 1.0))
    model.step(lr)
if a.get("save"):
    Path(a["save"]).mkdir()
    model.save(Path(a["save"]))
print(json.dumps({"logits": model.logits(batch).tolist(), "losses": losses}))
"""


def _quiet():
    transformers.logging.set_verbosity_error()


def _span_folder(base: Path, tmp_path: Path) -> Path:
    """``AutoModelForQuestionAnswering`` on ``base`` with a seeded ``qa_outputs`` (non-zero bias, so the
    bias is checked too), dropout off, saved with the tokenizer files."""
    _quiet()
    out = tmp_path / f"span-{base.name}"
    config = transformers.AutoConfig.from_pretrained(base, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model = transformers.AutoModelForQuestionAnswering.from_pretrained(base, config=config)
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        model.qa_outputs.weight.normal_(0.0, 0.2, generator=generator)
        model.qa_outputs.bias.normal_(0.0, 0.2, generator=generator)
    model.save_pretrained(out, safe_serialization=True)
    TextEncoder.from_pretrained(base).save(out)
    return out


def _batch(folder: Path, max_length: int) -> dict:
    feats = TextEncoder.from_pretrained(folder).encode(QUESTIONS, CONTEXTS, max_length=max_length)
    batch = collate(feats, np.arange(len(QUESTIONS)), labels=np.array(POSITIONS, dtype=np.int64))
    assert (batch["attention_mask"] == 0).any()
    return batch


def _torch_run(folder: Path, batch: dict, steps=(), weight_decay=0.0, max_grad_norm=1.0):
    """transformers' own forward and loss, torch.optim.AdamW with the backends' decay groups."""
    _quiet()
    model = transformers.AutoModelForQuestionAnswering.from_pretrained(folder)
    inputs = {k: torch.from_numpy(batch[k]) for k in ("input_ids", "attention_mask", "token_type_ids")}
    named = list(model.named_parameters())
    groups = [{"params": [p for n, p in named if not n.endswith(NO_DECAY)], "weight_decay": weight_decay},
              {"params": [p for n, p in named if n.endswith(NO_DECAY)], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=0.0)
    labels = torch.from_numpy(batch["labels"])
    losses = []
    model.train()
    for lr in steps:
        loss = model(**inputs, start_positions=labels[:, 0], end_positions=labels[:, 1]).loss
        loss.backward()
        losses.append(float(loss.detach()))
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    with torch.no_grad():
        out = model(**inputs)
    return torch.stack([out.start_logits, out.end_logits], dim=-1).numpy(), losses


def _mx_args(batch_max_length: int, **kw) -> dict:
    return dict(questions=QUESTIONS, contexts=CONTEXTS, labels=POSITIONS, max_length=batch_max_length, **kw)


@pytest.mark.parametrize("which", ["tiny", "minilm"])
def test_same_span_checkpoint_same_start_and_end_logits(which, tiny_model_dir, tmp_path):
    base = tiny_model_dir if which == "tiny" else models().resolve("minilm")
    folder = _span_folder(base, tmp_path)
    max_length = 64
    batch = _batch(folder, max_length)
    want, _ = _torch_run(folder, batch)
    got = np.array(_in_mxnet(MX_SPAN, **_mx_args(max_length, model=str(folder)))["logits"])
    assert got.shape == want.shape == batch["input_ids"].shape + (2,)
    diff = np.abs(got - want).max()
    print(f"{which}: max |mxnet - torch| start/end logits = {diff:.2e}")
    assert diff <= TOLERANCE


def _centered(logits: np.ndarray) -> np.ndarray:
    return logits - logits.mean(axis=1, keepdims=True)


def test_two_adamw_steps_match_pytorch(tiny_model_dir, tmp_path):
    """Same start, same padded batch, same AdamW steps (decay, clipping, bias correction), transformers' QA loss.

    The logits are compared up to one offset per row and start/end: a softmax over the positions ignores it,
    so the loss gives ``qa_outputs.bias`` and the last LayerNorm bias a zero gradient, which both frameworks
    compute as rounding noise (~1e-8) and AdamW (eps 1e-8) turns into steps of up to ``lr``, different on each.
    Everything the loss and the predicted spans depend on must agree."""
    folder = _span_folder(tiny_model_dir, tmp_path)
    batch = _batch(folder, 64)
    common = dict(steps=[1e-3, 1e-3], weight_decay=0.01, max_grad_norm=0.5)
    want, want_losses = _torch_run(folder, batch, **common)
    got = _in_mxnet(MX_SPAN, **_mx_args(64, model=str(folder), **common))
    np.testing.assert_allclose(got["losses"], want_losses, atol=1e-5)
    logits = np.array(got["logits"])
    diff = np.abs(_centered(logits) - _centered(want)).max()
    print(f"after two AdamW steps: max |mxnet - torch| = {diff:.2e} (raw, with the free offset: {np.abs(logits - want).max():.2e})")
    assert diff <= TOLERANCE


def test_mxnet_trained_span_folder_opens_in_transformers(tiny_model_dir, tmp_path):
    out = tmp_path / "mx-span"
    got = _in_mxnet(MX_SPAN, **_mx_args(64, base=str(tiny_model_dir), steps=[1e-3, 1e-3], save=str(out), weight_decay=0.01))
    assert json.loads((out / "config.json").read_text())["architectures"] == ["BertForQuestionAnswering"]
    _quiet()
    model, info = transformers.AutoModelForQuestionAnswering.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    batch = _batch(tiny_model_dir, 64)
    model.eval()
    with torch.no_grad():
        res = model(**{k: torch.from_numpy(batch[k]) for k in ("input_ids", "attention_mask", "token_type_ids")})
    want = torch.stack([res.start_logits, res.end_logits], dim=-1).numpy()
    diff = np.abs(np.array(got["logits"]) - want).max()
    print(f"MXNet-trained folder in transformers: max diff = {diff:.2e}")
    assert diff <= TOLERANCE
