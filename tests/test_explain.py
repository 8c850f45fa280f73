"""``bertbridge explain``: integrated-gradients token attributions, complete (they add up to the score's
change from the baseline), the same on PyTorch and TensorFlow, for classification and QA."""

import json

import numpy as np
import pytest

pytest.importorskip("torch")

from conftest import tiny_spec, toy_sentences, write_tsv  # noqa: E402

import bertbridge  # noqa: E402
from bertbridge.core.cli import main  # noqa: E402
from bertbridge.core.debugger import explain  # noqa: E402
from bertbridge.core.errors import NotSupportedError  # noqa: E402

TEXT = "the film was very charming and the actors"


@pytest.fixture(scope="module")
def trained(tiny_model_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("explain")
    data = {"train": str(write_tsv(tmp / "t.tsv", toy_sentences(64, 1)))}
    return bertbridge.train(tiny_spec(tiny_model_dir, data, tmp / "model"))  # learns the keyword task


def test_attributions_add_up_to_the_score_change(trained):
    result = explain.explain(bertbridge.load(trained.path), TEXT)
    change = result["score"] - result["baseline_score"]
    assert abs(sum(result["attributions"]) - change) <= explain.TOLERANCE * max(1.0, abs(change))
    assert result["completeness_gap"] <= explain.TOLERANCE and abs(change) > 1e-3
    label = trained.predict([TEXT])[0]["label"]
    assert result["target"] == f"label {label}"
    probs = trained.predict_proba([TEXT])[0]
    assert result["score"] == pytest.approx(float(bertbridge.load(trained.path).model.logits(
        _batch(trained, TEXT))[0].max()), abs=1e-4) and probs.max() == pytest.approx(max(probs))
    assert result["tokens"][0] == "[CLS]" and result["attributions"][0] == 0.0 == result["attributions"][-1]  # kept in the baseline
    top = int(np.argmax(result["attributions"]))
    assert result["tokens"][top] == "charming"  # the one word the toy task's label depends on


def _batch(model, text):
    from bertbridge.core.text.batching import collate

    feats = model.encoder.encode([text], max_length=model.manifest.max_seq_length)
    return collate(feats, np.arange(1), pad_id=model.encoder.pad_id)


def test_pytorch_and_tensorflow_agree_on_the_top_tokens(trained):
    pytest.importorskip("tensorflow")
    torch_result = explain.explain(bertbridge.load(trained.path), TEXT)
    tf_result = explain.explain(bertbridge.load(trained.path, backend="tensorflow"), TEXT)
    top = lambda r: sorted(np.argsort(np.abs(r["attributions"]))[-3:].tolist())  # noqa: E731
    assert top(torch_result) == top(tf_result)
    np.testing.assert_allclose(tf_result["attributions"], torch_result["attributions"], atol=1e-4)
    assert tf_result["backend"] == "tensorflow" and torch_result["backend"] == "pytorch"


def test_steps_double_until_complete(trained, monkeypatch):
    monkeypatch.setattr(explain, "TOLERANCE", 1e-7)
    result = explain.explain(bertbridge.load(trained.path), TEXT, steps=4)
    assert result["steps"] == explain.MAX_STEPS  # never complete enough at 1e-7: doubled to the cap, gap reported
    monkeypatch.setattr(explain, "TOLERANCE", 0.05)
    coarse = explain.explain(bertbridge.load(trained.path), TEXT, steps=4)  # 4 points are too few here: doubled
    assert 4 < coarse["steps"] < explain.MAX_STEPS and coarse["completeness_gap"] <= 0.05


def test_cli_prints_json_and_writes_the_shaded_page(trained, tmp_path, capsys):
    out = tmp_path / "e.html"
    assert main(["explain", str(trained.path), "--text", TEXT, "--out", str(out)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) >= {"target", "tokens", "attributions", "score", "baseline_score", "completeness_gap", "tolerance", "steps"}
    page = out.read_text(encoding="utf-8")
    assert page.count('class="token"') == len(result["tokens"]) and "Token attributions for label" in page
    assert main(["explain", str(trained.path), "--text", TEXT, "--steps", "0"]) == 2
    assert "--steps must be between 1 and 256" in capsys.readouterr().err


def test_token_text_is_escaped_in_the_page():
    page = explain.render_html({"target": "label <b>", "tokens": ["<script>", "x"], "attributions": [0.5, -0.2],
                                "text": "<script>alert(1)</script>", "completeness_gap": 0.0, "tolerance": 0.05, "steps": 32})
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_an_export_refuses_with_the_way_out(trained, tmp_path):
    pytest.importorskip("onnxruntime")
    export = bertbridge.export(trained.path, "onnx", tmp_path / "onnx").parent
    with pytest.raises(NotSupportedError, match=r"does not give gradients for token attributions: pass --backend with one that does"):
        explain.explain(bertbridge.load(export), TEXT)


def test_question_answering_explains_the_answer_span(tiny_model_dir, tmp_path, capsys):
    from bertbridge.testing import tiny

    tiny.toy_squad(tmp_path / "train.json", 8, seed=1)
    qa = bertbridge.train(tiny.qa_spec(tiny_model_dir, {"train": str(tmp_path / "train.json")}, tmp_path / "qa", epochs=1),
                          backend="pytorch")
    capsys.readouterr()  # the training log
    assert main(["explain", str(qa.path), "--question", "Who wrote it?", "--context", "Ada Lovelace wrote it in 1843."]) == 0
    result = json.loads(capsys.readouterr().out)
    start, end = (int(x) for x in result["target"].rsplit(" ", 1)[1].split("-"))
    first_context = result["tokens"].index("[SEP]") + 1
    assert first_context <= start <= end < len(result["tokens"]) - 1  # inside the context, not the final [SEP]
    assert result["completeness_gap"] <= explain.TOLERANCE


def test_steps_never_pass_the_cap(trained, monkeypatch):
    monkeypatch.setattr(explain, "TOLERANCE", 1e-9)
    assert explain.explain(bertbridge.load(trained.path), TEXT, steps=200)["steps"] == explain.MAX_STEPS


def test_a_window_without_context_is_a_clear_error():
    from bertbridge.core.errors import DataError
    from bertbridge.core.tasks.qa.task import best_window_span

    logits = np.zeros((4, 2))
    with pytest.raises(DataError, match="the window holds no context tokens"):
        best_window_span(logits, np.zeros(4, bool), 30)  # [CLS] question [SEP] [SEP]: no context token
    assert best_window_span(np.array([[0, 0], [0, 0], [5, 0], [0, 9], [9, 9]]), np.array([0, 0, 1, 1, 0], bool), 30) == (2, 3)
