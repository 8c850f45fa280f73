"""The TensorFlow backend's extractive question-answering (``span``) head: the same numbers as
transformers' ``BertForQuestionAnswering`` (logits, loss, AdamW steps) and the same artifact."""

import json

import numpy as np
import pytest

pytest.importorskip("tensorflow")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from conftest import TINY_CONFIG  # noqa: E402

from bertbridge.backends.tensorflow.model import TFClassifier  # noqa: E402
from bertbridge.core.backend import ModelSetup  # noqa: E402
from bertbridge.core.errors import ArtifactError  # noqa: E402
from bertbridge.core.text.batching import collate  # noqa: E402
from bertbridge.core.text.tokenize import TextEncoder  # noqa: E402

INPUTS = ("input_ids", "attention_mask", "token_type_ids")
QUESTIONS = ["was the film good ?", "is the food bad ?", "what was dull ?", "who was happy ?", "was it not lovely ?"]
CONTEXTS = [
    "the film was really good and the actors were charming .",
    "the food is awful , really dreadful .",
    "a very dull plot",
    "the actors and the story",
    "it was not lovely , it was quite ugly and sad , the book was better and the music was fine .",
]


def span_setup(**kw) -> ModelSetup:
    return ModelSetup(num_labels=2, multi_label=False, id2label={0: "LABEL_0", 1: "LABEL_1"}, seed=1, head="span", **kw)


def save_span(source, folder, dropout: float = 0.0, **setup):
    """A fresh TF span model from ``source`` saved (with tokenizer files) in ``folder``; dropout
    probabilities in its config.json set to ``dropout``."""
    folder.mkdir()
    TFClassifier.from_pretrained(source, span_setup(**setup)).save(folder)
    TextEncoder.from_pretrained(source).save(folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.fixture(scope="module")
def span_dir(tiny_model_dir, tmp_path_factory):
    return save_span(tiny_model_dir, tmp_path_factory.mktemp("qa") / "span")


def qa_batch(folder) -> dict:
    """A padded batch of (question, context) pairs with start/end positions inside each pair
    (one at [CLS], as unanswerable questions are labelled)."""
    feats = TextEncoder.from_pretrained(folder).encode(QUESTIONS, CONTEXTS, max_length=64)
    lengths = feats.lengths
    starts = np.array([0, *(lengths[1:] // 2)])
    ends = np.array([0, *(lengths[1:] - 2)])
    batch = collate(feats, np.arange(len(QUESTIONS)), labels=np.stack([starts, ends], axis=1).astype(np.int64))
    assert (batch["attention_mask"] == 0).any()  # padded
    return batch


def torch_qa(folder):
    model, info = transformers.AutoModelForQuestionAnswering.from_pretrained(folder, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    return model.eval()


def torch_logits(model, batch) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        out = model(**{k: torch.from_numpy(batch[k]) for k in INPUTS})
    return np.stack([out.start_logits.numpy(), out.end_logits.numpy()], axis=-1)


def torch_loss(model, batch):
    labels = torch.from_numpy(batch["labels"])
    return model(**{k: torch.from_numpy(batch[k]) for k in INPUTS}, start_positions=labels[:, 0], end_positions=labels[:, 1]).loss


def test_span_logits_match_transformers_and_the_artifact_reopens(tiny_model_dir, tmp_path):
    model = TFClassifier.from_pretrained(tiny_model_dir, span_setup())
    assert not any(name.startswith(("bert.pooler.", "classifier.")) for name in model.module.weights)
    folder = tmp_path / "span"
    folder.mkdir()
    model.save(folder)
    TextEncoder.from_pretrained(tiny_model_dir).save(folder)
    assert json.loads((folder / "config.json").read_text())["architectures"] == ["BertForQuestionAnswering"]
    batch = qa_batch(folder)
    got = model.logits(batch)
    assert got.dtype == np.float32 and got.shape == (*batch["input_ids"].shape, 2)
    assert np.abs(got - torch_logits(torch_qa(folder), batch)).max() <= 1e-4
    np.testing.assert_array_equal(TFClassifier.from_artifact(folder, span_setup()).logits(batch), got)


def test_span_loss_matches_transformers(span_dir):
    batch = qa_batch(span_dir)
    loss = TFClassifier.from_artifact(span_dir, span_setup()).accumulate(batch, 1.0)
    assert isinstance(loss, float)
    assert loss == pytest.approx(float(torch_loss(torch_qa(span_dir), batch)), abs=1e-5)


def centered(logits: np.ndarray) -> np.ndarray:
    """Start/end logits less their mean over the T positions: what the softmax (so the loss and
    every prediction) sees."""
    return logits - logits.mean(axis=1, keepdims=True)


# Weights that shift every position's start (or end) logit alike, so the loss is flat along them:
# their true gradient is 0, the computed one float noise (~1e-8), which Adam scales up to steps of
# about lr with a noise-picked sign. They move differently on every framework, harmlessly.
SHIFT_ONLY = ("qa_outputs.bias", f"bert.encoder.layer.{TINY_CONFIG['num_hidden_layers'] - 1}.output.LayerNorm.bias")


def test_two_adamw_steps_match_pytorch(span_dir):
    """Same start, same batch, same AdamW steps (decay groups, clipping): same model after them."""
    setup = span_setup(weight_decay=0.01, max_grad_norm=0.5)
    batch = qa_batch(span_dir)
    tf_model = TFClassifier.from_artifact(span_dir, setup)
    pt_model = torch_qa(span_dir)
    decay, no_decay = [], []
    for name, param in pt_model.named_parameters():
        (no_decay if name.endswith("bias") or "LayerNorm" in name else decay).append(param)
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": setup.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=0.0)
    for lr in (1e-3, 5e-4):
        tf_loss = tf_model.accumulate(batch, 1.0)
        tf_model.step(lr)
        pt_model.train()
        loss = torch_loss(pt_model, batch)
        loss.backward()
        assert tf_loss == pytest.approx(float(loss), abs=1e-5)
        torch.nn.utils.clip_grad_norm_(pt_model.parameters(), setup.max_grad_norm)
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    after, want = tf_model.logits(batch), torch_logits(pt_model, batch)
    assert np.abs(centered(after) - centered(want)).max() <= 1e-4
    assert np.abs(after - want).max() <= 2 * (1e-3 + 5e-4)  # the shift-only weights: at most ~lr per step each
    weights = tf_model.snapshot()
    for name, param in pt_model.named_parameters():
        if not name.endswith(SHIFT_ONLY):
            np.testing.assert_allclose(weights[name], param.detach().numpy(), atol=1e-5, err_msg=name)
    start = TFClassifier.from_artifact(span_dir, setup).logits(batch)
    assert np.abs(centered(after) - centered(start)).max() > 1e-2  # it did learn


def test_span_training_state_round_trip_continues_identically(tiny_model_dir, tmp_path):
    folder = save_span(tiny_model_dir, tmp_path / "dropout", dropout=0.1)  # dropout on: the RNG is part of the state
    setup = span_setup(weight_decay=0.01)
    batch = qa_batch(folder)
    a = TFClassifier.from_artifact(folder, setup)
    a.accumulate(batch, 0.5)
    a.accumulate(batch, 0.5)
    a.step(1e-3)
    state = a.training_state()
    assert "adamw.qa_outputs.weight.exp_avg" in state and "model.qa_outputs.bias" in state
    a.accumulate(batch, 1.0)
    a.step(5e-4)

    b = TFClassifier.from_artifact(folder, setup)
    b.load_training_state(state)
    b.accumulate(batch, 1.0)
    b.step(5e-4)
    np.testing.assert_array_equal(a.logits(batch), b.logits(batch))
    assert a.snapshot().keys() == b.snapshot().keys()
    for name, value in a.snapshot().items():
        np.testing.assert_array_equal(value, b.snapshot()[name], err_msg=name)


def test_span_mixed_precision(tiny_model_dir):
    batch = qa_batch(tiny_model_dir)
    full = TFClassifier.from_pretrained(tiny_model_dir, span_setup())
    bf16 = TFClassifier.from_pretrained(tiny_model_dir, span_setup(mixed_precision=True))
    logits = bf16.logits(batch)
    assert logits.dtype == np.float32 and logits.shape == full.logits(batch).shape
    assert np.abs(logits - full.logits(batch)).max() < 0.05
    loss = bf16.accumulate(batch, 1.0)
    bf16.step(1e-3)
    assert np.isfinite(loss) and np.isfinite(bf16.logits(batch)).all()


def test_head_mismatch_is_refused_clearly(tiny_model_dir, span_dir, tmp_path):
    classifier = tmp_path / "classifier"
    classifier.mkdir()
    sequence = ModelSetup(num_labels=2, multi_label=False, id2label={0: "LABEL_0", 1: "LABEL_1"}, seed=1)
    TFClassifier.from_pretrained(tiny_model_dir, sequence).save(classifier)
    with pytest.raises(ArtifactError, match=r"no question-answering head \(qa_outputs, 2 outputs\)"):
        TFClassifier.from_artifact(classifier, span_setup())
    with pytest.raises(ArtifactError, match="model.safetensors has no classifier, but bertbridge.json lists 2 labels"):
        TFClassifier.from_artifact(span_dir, sequence)
