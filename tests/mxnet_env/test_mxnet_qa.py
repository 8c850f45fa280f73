"""The MXNet (GluonNLP) backend's question-answering ("span") head, run in the MXNet environment.

Cross-framework checks (the same span checkpoint giving the same start/end logits on PyTorch and
MXNet, AdamW steps, MXNet-trained folders opening in transformers) are in tests/test_mxnet_qa_parity.py.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

mxnet_model = pytest.importorskip("bertbridge.backends.mxnet.model")

from bertbridge.backends.mxnet.bert import BertClassifier  # noqa: E402
from bertbridge.core.backend import ModelSetup  # noqa: E402
from bertbridge.core.errors import ArtifactError  # noqa: E402
from bertbridge.core.io.weights import init_head, load_state, read_config  # noqa: E402
from bertbridge.core.plugins.registry import backends  # noqa: E402
from bertbridge.core.text.batching import collate  # noqa: E402
from bertbridge.core.text.tokenize import TextEncoder  # noqa: E402

QUESTIONS = ["is the film good ?", "was the food awful ?", "what was dull ?"]
CONTEXTS = ["the film was good and the actors were charming", "the food was awful", "a very dull plot and a sad story"]
POSITIONS = [[10, 10], [10, 10], [8, 9]]  # start and end token of the answer ("good", "awful", "dull plot")


def _setup(head="span", seed=3, **kw):
    return ModelSetup(num_labels=2, multi_label=False, id2label={0: "LABEL_0", 1: "LABEL_1"}, seed=seed, head=head, **kw)


def _batch(folder) -> dict:
    """Question/context pairs, right-padded to the longest row, with start/end labels."""
    feats = TextEncoder.from_pretrained(folder).encode(QUESTIONS, CONTEXTS, max_length=32)
    batch = collate(feats, np.arange(len(QUESTIONS)), labels=np.array(POSITIONS, dtype=np.int64))
    assert (batch["attention_mask"] == 0).any()  # padding is part of what is checked
    return batch


def _dropout_folder(numpy_model_dir, tmp_path):
    folder = tmp_path / "dropout"
    shutil.copytree(numpy_model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "hidden_dropout_prob": 0.1}))
    return folder


def test_every_qa_weight_maps_name_for_name_and_back(numpy_model_dir):
    config, _ = read_config(numpy_model_dir)
    state = init_head(load_state(numpy_model_dir), config, 2, 0, head="span")
    assert "qa_outputs.weight" in state and not any(k.startswith(("bert.pooler.", "classifier.")) for k in state)
    net = BertClassifier(config, 2, head="span")
    assert set(net.structural_params()) == {net.gluon_name(k) for k in state}
    assert all(net.hf_name(net.gluon_name(k)) == k for k in state)
    net.load_hf(state, mxnet_model.mx.cpu())
    back = net.hf_state()
    assert back.keys() == state.keys() and all(np.array_equal(back[k], state[k]) for k in state)


def test_logits_are_start_and_end_for_every_position_and_save_reopens_identically(numpy_model_dir, tmp_path):
    backend = backends().get("mxnet")
    model = backend.create_model(numpy_model_dir, _setup(weight_decay=0.01))
    batch = _batch(numpy_model_dir)
    model.accumulate(batch, 1.0)
    model.step(1e-3)
    logits = model.logits(batch)
    assert logits.dtype == np.float32 and logits.shape == batch["input_ids"].shape + (2,)
    padded = batch["attention_mask"] == 0
    assert np.abs(np.diff(logits[padded], axis=0)).max() > 0  # padding has hidden states, not zeros
    out = tmp_path / "saved"
    out.mkdir()
    model.save(out)
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["BertForQuestionAnswering"]
    saved = load_state(out)
    assert saved["qa_outputs.weight"].shape == (2, 32) and not any(k.startswith(("bert.pooler.", "classifier.")) for k in saved)
    again = backend.load_model(out, _setup())
    np.testing.assert_array_equal(again.logits(batch), logits)


def test_training_state_round_trip_continues_identically(numpy_model_dir, tmp_path):
    folder = _dropout_folder(numpy_model_dir, tmp_path)  # dropout on, so the RNG stream matters
    backend, batch = backends().get("mxnet"), _batch(numpy_model_dir)
    setup = _setup(weight_decay=0.01, max_grad_norm=0.5)

    def steps(model, lrs):
        for lr in lrs:
            model.accumulate(batch, 0.5)
            model.accumulate(batch, 0.5)
            model.step(lr)

    straight = backend.create_model(folder, setup)
    steps(straight, [1e-3, 8e-4])
    state = straight.training_state()
    assert "adamw.qa_outputs.weight.exp_avg" in state and "model.qa_outputs.bias" in state
    steps(straight, [6e-4, 4e-4])
    resumed = backend.create_model(folder, setup)
    resumed.load_training_state(state)
    steps(resumed, [6e-4, 4e-4])
    np.testing.assert_array_equal(resumed.logits(batch), straight.logits(batch))
    snap = resumed.snapshot()
    resumed.step(1e-3)  # no gradients: only decay moves the weights; restore puts them back
    resumed.restore(snap)
    np.testing.assert_array_equal(resumed.logits(batch), straight.logits(batch))


def test_loss_falls_on_a_tiny_batch_and_padding_embedding_stays(numpy_model_dir):
    model = backends().get("mxnet").create_model(numpy_model_dir, _setup())
    batch = _batch(numpy_model_dir)
    pad_row = model.snapshot()["bert.embeddings.word_embeddings.weight"][0]
    losses = []
    for _ in range(20):
        losses.append(model.accumulate(batch, 1.0))
        model.step(3e-3)
    assert losses[-1] < 0.3 * losses[0], losses
    logits = model.logits(batch)
    assert logits.argmax(axis=1).tolist() == POSITIONS
    # padding positions reach the loss, but (as nn.Embedding(padding_idx=pad_token_id)) the [PAD] row gets no gradient
    np.testing.assert_array_equal(model.snapshot()["bert.embeddings.word_embeddings.weight"][0], pad_row)


def test_loss_is_the_mean_of_start_and_end_cross_entropy_over_all_positions(numpy_model_dir):
    model = backends().get("mxnet").create_model(numpy_model_dir, _setup())
    batch = _batch(numpy_model_dir)
    logits = model.logits(batch).astype(np.float64)  # no dropout in this folder: training mode gives the same logits
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    rows = np.arange(len(POSITIONS))
    labels = np.array(POSITIONS)
    want = -(log_p[rows, labels[:, 0], 0] + log_p[rows, labels[:, 1], 1]).mean() / 2
    assert model.accumulate(batch, 1.0) == pytest.approx(want, abs=1e-5)


def test_a_folder_with_the_other_head_is_refused(numpy_model_dir, tmp_path):
    backend = backends().get("mxnet")
    for made, opened in (("sequence", "span"), ("span", "sequence")):
        out = tmp_path / made
        out.mkdir()
        backend.create_model(numpy_model_dir, _setup(head=made)).save(out)
        with pytest.raises(ArtifactError):
            backend.load_model(out, _setup(head=opened))


def test_symbol_export_of_a_question_answerer_gives_its_start_and_end_logits(numpy_model_dir, tmp_path):
    """The exported symbol (what MXNet Model Server runs) reproduces the model's start/end logits,
    and its signature file says which axis holds them."""
    import bertbridge
    from bertbridge.backends.mxnet.export import load_symbol
    from bertbridge.testing import tiny

    train = tmp_path / "train.json"
    tiny.toy_squad(train, 16, seed=1)
    qa = bertbridge.train(tiny.qa_spec(numpy_model_dir, {"train": str(train)}, tmp_path / "qa", epochs=1), backend="mxnet")
    out = bertbridge.export(qa.path, "mxnet-symbol", tmp_path / "sym")
    signature = json.loads((out.parent / "mxnet-signature.json").read_text())
    assert signature["outputs"] == ["start_end_logits (last axis: start, end)"]
    batch = _batch(qa.path)
    mx = mxnet_model.mx
    net = load_symbol(out.parent)
    got = net(mx.nd.array(batch["input_ids"]), mx.nd.array(batch["token_type_ids"]),
              mx.nd.array(batch["attention_mask"].sum(1))).asnumpy()
    want = qa.model.logits(batch)
    assert got.shape == want.shape == batch["input_ids"].shape + (2,)
    real = batch["attention_mask"].astype(bool)  # padded positions are masked differently; answers never come from them
    np.testing.assert_allclose(got[real], want[real], atol=1e-4)
