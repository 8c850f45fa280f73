"""DistilBERT, RoBERTa and XLM-R in the MXNet environment itself (no torch here: folders written with numpy).

Cross-framework parity (logits, AdamW steps, transformers reading what MXNet trained) is driven from the
main environment in tests/test_model_families.py; here: each architecture trains on MXNet for both heads,
its folder keeps the architecture's own names, the numpy reference reads it with the same logits, and the
MXNet symbol export reproduces the model.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("bertbridge.backends.mxnet.model")

import bertbridge  # noqa: E402
from bertbridge.core.io.architectures import ARCHITECTURES  # noqa: E402
from bertbridge.testing import reference, tiny  # noqa: E402
from bertbridge.testing.conformance import CONTEXTS, QUESTIONS  # noqa: E402

TEXTS = ["the film was good", "Der Film war großartig", "a dull and boring plot"]


@pytest.mark.parametrize("model_type", tuple(tiny.FAMILY))
def test_trains_saves_the_architecture_s_folder_and_exports(model_type, toy_data, tmp_path):
    base = tiny.write_random_family(tmp_path / "base", model_type)
    out = tmp_path / "model"
    bertbridge.train(tiny.tiny_spec(base, toy_data, out, epochs=2), backend="mxnet")
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == model_type and config["architectures"] == [ARCHITECTURES[model_type].classes["sequence"]]
    reference.check_layout(out, "sequence")
    model = bertbridge.load(out)
    batch = reference.encode(out, TEXTS)
    assert np.abs(model.model.logits(batch) - reference.logits(out, batch)).max() <= 1e-4
    symbol = bertbridge.export(out, "mxnet-symbol", tmp_path / "symbol")  # checked against the model on unseen shapes
    assert symbol.is_file()


@pytest.mark.parametrize("model_type", tuple(tiny.FAMILY))
def test_question_answering_trains_and_matches_the_reference(model_type, tmp_path):
    base = tiny.write_random_family(tmp_path / "base", model_type)
    data = {"train": str(tmp_path / "train.json"), "validation": str(tmp_path / "dev.json")}
    tiny.toy_squad(data["train"], 32, seed=1)
    tiny.toy_squad(data["validation"], 8, seed=2)
    out = tmp_path / "qa"
    bertbridge.train(tiny.qa_spec(base, data, out), backend="mxnet")
    reference.check_layout(out, "span")
    batch = reference.encode(out, QUESTIONS, CONTEXTS)
    got = bertbridge.load(out).model.logits(batch)
    assert np.abs(got - reference.logits(out, batch, "span")).max() <= 1e-4
