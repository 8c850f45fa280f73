"""Question answering end to end on PyTorch: train, save/load, predict, evaluate, CLI, serving.

The data is made here: contexts of filler words holding one "positive" word, and the
question asks for it, so a tiny random BERT learns the span in a few seconds.
"""

from __future__ import annotations

import json
import random

import pytest
from conftest import FILLER, NEGATIVE, POSITIVE

import bertbridge
from bertbridge.core.serving import handlers

pytest.importorskip("torch")


def make_squad(path, n: int, seed: int, *, v2: bool = False, long_every: int = 0) -> dict:
    """SQuAD JSON: the answer is the one positive word of the context (v2: some have none)."""
    rng = random.Random(seed)
    paragraphs = []
    for i in range(n):
        words = [rng.choice(FILLER + NEGATIVE) for _ in range(rng.randint(6, 14))]
        if long_every and i % long_every == 0:
            words = [rng.choice(FILLER + NEGATIVE) for _ in range(120)]  # longer than one window
        impossible = v2 and i % 4 == 3
        answer = None
        if not impossible:
            pos = rng.randrange(len(words) + 1)
            answer = rng.choice(POSITIVE)
            words.insert(pos, answer)
        context = " ".join(words) + " ."
        qa = {"id": f"q{i}", "question": "what is good ?", "answers": [], **({"is_impossible": impossible} if v2 else {})}
        if answer is not None:
            start = len(" ".join(words[: words.index(answer)])) + (1 if words.index(answer) else 0)
            assert context[start : start + len(answer)] == answer
            qa["answers"] = [{"text": answer, "answer_start": start}]
        paragraphs.append({"context": context, "qas": [qa]})
    data = {"version": "v2.0" if v2 else "1.1", "data": [{"title": "toy", "paragraphs": paragraphs}]}
    path.write_text(json.dumps(data))
    return data


@pytest.fixture(scope="module")
def qa_run(tiny_model_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("qa")
    train, dev = tmp / "train.json", tmp / "dev.json"
    make_squad(train, 96, seed=1)
    make_squad(dev, 24, seed=2, long_every=6)
    spec = {"task": {"type": "question_answering", "doc_stride": 16, "max_question_length": 8},
            "data": {"train": str(train), "validation": str(dev)}, "model": {"name": str(tiny_model_dir)},
            "training": {"epochs": 8, "batch_size": 8, "learning_rate": 3e-3, "max_seq_length": 48, "log_interval": 10,
                         "seed": 3},
            "backend": "pytorch", "output_dir": str(tmp / "model")}
    qa = bertbridge.train(spec)
    return qa, tmp, dev


def test_training_learns_the_span_and_saves_a_question_answerer(qa_run):
    qa, tmp, dev = qa_run
    assert qa.metrics["exact"] >= 80.0 and qa.metrics["f1"] >= qa.metrics["exact"]
    history = qa.training_result.history
    assert history[-1]["loss"] < history[0]["loss"]
    manifest = json.loads((tmp / "model" / "bertbridge.json").read_text())
    assert manifest["task"] == "question_answering" and manifest["qa"]["doc_stride"] == 16
    assert manifest["qa"]["v2"] is False
    config = json.loads((tmp / "model" / "config.json").read_text())
    assert config["architectures"] == ["BertForQuestionAnswering"]


def test_the_model_card_names_the_qa_pipeline_and_its_f1(qa_run):
    import yaml

    qa, _, _ = qa_run
    card = (qa.path / "README.md").read_text(encoding="utf-8")
    meta = yaml.safe_load(card.split("---\n")[1])
    assert meta["pipeline_tag"] == "question-answering" and meta["metrics"] == ["f1"]
    assert f"| f1 | {qa.manifest.metrics['f1']:.4f} |" in card
    assert "model.predict({'question': 'Who wrote it?', 'context': 'It was written by Ada Lovelace in 1843.'})" in card
    assert "BertForQuestionAnswering.from_pretrained(path)" in card and (qa.path / "training_curves.png").is_file()
    assert "## Cross-framework check\n\npassed: on 2 probe inputs" in card  # start/end logits, padding left out


def test_load_predict_and_long_contexts(qa_run):
    qa, tmp, dev = qa_run
    loaded = bertbridge.load(tmp / "model")
    context = "the food was dull and " * 40 + "the plot was lovely ."  # many windows; the answer is in the last
    out = loaded.predict([{"question": "what is good ?", "context": context}, ("what is good ?", "a very happy film .")])
    assert [r["answer"] for r in out] == ["lovely", "happy"]
    for r, ctx in zip(out, (context, "a very happy film .")):
        assert ctx[r["start"]:r["end"]] == r["answer"] and 0 < r["score"] <= 1
    assert loaded.evaluate(dev)["exact"] == pytest.approx(qa.metrics["exact"])
    with pytest.raises(bertbridge.BertbridgeError, match="input 0: the question is empty"):
        loaded.predict({"question": " ", "context": "x"})


def test_cli_predict_and_evaluate_write_official_predictions(qa_run, tmp_path, capsys):
    from bertbridge.core.cli import main

    qa, tmp, dev = qa_run
    assert main(["predict", str(tmp / "model"), "--question", "what is good ?", "--context", "the book was superb ."]) == 0
    row = json.loads(capsys.readouterr().out.strip())
    assert row["answer"] == "superb" and row["question"] == "what is good ?"
    preds = tmp_path / "predictions.json"
    assert main(["evaluate", str(tmp / "model"), str(dev), "--json", "--predictions-out", str(preds)]) == 0
    metrics = json.loads(capsys.readouterr().out.strip())
    assert metrics["exact"] == pytest.approx(qa.metrics["exact"]) and metrics["total"] == 24
    written = json.loads(preds.read_text())
    gold = json.loads(dev.read_text())
    ids = [q["id"] for p in gold["data"][0]["paragraphs"] for q in p["qas"]]
    assert sorted(written) == sorted(ids) and all(isinstance(v, str) for v in written.values())
    # the official scoring of that file gives the printed numbers
    from bertbridge.core.tasks.qa.metrics import evaluate
    from bertbridge.core.tasks.qa.squad import read_squad

    assert evaluate(read_squad(dev).examples, written)["f1"] == pytest.approx(metrics["f1"])
    assert main(["predict", str(tmp / "model"), "--question", "a", "--question", "b", "--context", "c"]) == 2
    assert "give one --context per --question" in capsys.readouterr().err


def test_serving_functions_and_http_server_answer_questions(qa_run):
    from starlette.testclient import TestClient

    from bertbridge.core.serving.server import create_app

    qa, tmp, dev = qa_run
    model = handlers.model_fn(str(tmp / "model"))
    one = {"question": "what is good ?", "context": "the film was great ."}
    for body, ctype in ((json.dumps(one), "application/json; charset=utf-8"),
                        (json.dumps([one, one]), "application/json"),
                        (json.dumps(one) + "\n" + json.dumps(one), "application/jsonlines"),
                        ('"what is good ?","the film was great ."', "text/csv")):
        out, _ = handlers.output_fn(handlers.predict_fn(handlers.input_fn(body, ctype), model), "application/json")
        answers = json.loads(out)["predictions"]
        assert {a["answer"] for a in answers} == {"great"} and set(answers[0]) == {"answer", "score", "start", "end"}
    with TestClient(create_app(model.predict, normalize=model.normalize_request)) as client:
        ok = client.post("/invocations", json=one)
        assert ok.status_code == 200 and ok.json()["predictions"][0]["answer"] == "great"
        for bad in ({"question": "what?"}, {"question": "", "context": "x"}, "just a text", [{"question": 1, "context": "x"}]):
            response = client.post("/invocations", json=bad)
            assert response.status_code == 400, bad
            assert "input 0" in response.json()["error"]["message"]
        assert client.get("/ping").status_code == 200


def test_v2_data_predicts_no_answer_and_reports_has_ans_split(tiny_model_dir, tmp_path):
    train, dev = tmp_path / "train.json", tmp_path / "dev.json"
    make_squad(train, 96, seed=4, v2=True)
    make_squad(dev, 24, seed=5, v2=True)
    spec = {"task": {"type": "question_answering", "doc_stride": 16, "max_question_length": 8},
            "data": {"train": str(train), "validation": str(dev)}, "model": {"name": str(tiny_model_dir)},
            "training": {"epochs": 8, "batch_size": 8, "learning_rate": 3e-3, "max_seq_length": 48, "log_interval": 50},
            "backend": "pytorch", "output_dir": str(tmp_path / "model")}
    qa = bertbridge.train(spec)
    m = qa.metrics
    assert m["HasAns_total"] == 18 and m["NoAns_total"] == 6 and m["NoAns_exact"] >= 50
    assert qa.manifest.qa["v2"] is True
    impossible = qa.predict({"question": "what is good ?", "context": "the film was bad and dull ."})[0]
    assert impossible == {"answer": "", "score": impossible["score"], "start": -1, "end": -1}


def test_qa_spec_mistakes_are_caught_before_training(tiny_model_dir, tmp_path):
    data = tmp_path / "train.json"
    make_squad(data, 4, seed=1)
    base = {"task": {"type": "question_answering", "doc_stride": 16, "max_question_length": 8}, "data": {"train": str(data)}, "model": {"name": str(tiny_model_dir)},
            "backend": "pytorch", "output_dir": str(tmp_path / "m")}
    with pytest.raises(bertbridge.BertbridgeError, match="task.doc_stride"):
        bertbridge.train({**base, "training": {"max_seq_length": 48}, "task": {"type": "question_answering", "doc_stride": 40}})
    with pytest.raises(bertbridge.BertbridgeError, match="early_stopping.metric is 'accuracy'"):
        bertbridge.train({**base, "training": {"max_seq_length": 48, "early_stopping": {"metric": "accuracy"}}})
    broken = json.loads(data.read_text())
    broken["data"][0]["paragraphs"][1]["qas"][0]["answers"][0]["answer_start"] += 1
    data.write_text(json.dumps(broken))
    with pytest.raises(bertbridge.BertbridgeError, match="q1"):
        bertbridge.train({**base, "training": {"max_seq_length": 48}})
    assert not (tmp_path / "m").exists()

