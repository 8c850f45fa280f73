"""The serving contract: request shapes, response shapes, client errors (core, no framework)."""

import json

import numpy as np
import pytest

from bertbridge.core.serving.protocol import (
    RequestError,
    format_response,
    parse_content_type,
    parse_request,
    prediction,
    probabilities,
)


@pytest.mark.parametrize(
    "body, content_type, expected",
    [
        ('"great film"', "application/json", ["great film"]),
        ('["a", "b"]', "application/json; charset=utf-8", ["a", "b"]),
        ('{"inputs": "a"}', "application/json", ["a"]),
        ('{"instances": ["a", "b"]}', None, ["a", "b"]),
        ('{"text": "a"}', "application/json", ["a"]),
        ('[{"text": "a"}, "b"]', "application/json", ["a", "b"]),
        ('"a"\n\n{"text": "b"}\n', "application/jsonlines", ["a", "b"]),
        ("a\n\"b, with a comma\"\n", "text/csv", ["a", "b, with a comma"]),
    ],
)
def test_single_text_request_shapes(body, content_type, expected):
    assert parse_request(body.encode("utf-8"), content_type) == expected


@pytest.mark.parametrize(
    "body, content_type",
    [
        ('["premise", "hypothesis"]', "application/json"),
        ('{"text": "premise", "text_pair": "hypothesis"}', "application/json"),
        ('{"inputs": [["premise", "hypothesis"]]}', "application/json"),
        ("premise,hypothesis\n", "text/csv"),
    ],
)
def test_pair_request_shapes(body, content_type):
    assert parse_request(body, content_type, text_pair=True) == [("premise", "hypothesis")]


@pytest.mark.parametrize(
    "body, content_type, status, message",
    [
        (b"{not json", "application/json", 400, "invalid JSON at line 1"),
        (b"caf\xe9", "application/json", 400, "not valid utf-8"),
        (b'"x"', "application/xml", 415, "unsupported Content-Type 'application/xml'"),
        (b'"x"', "application/json; charset=klingon", 415, "unknown charset"),
        (b"   ", "application/json", 400, "the request body is empty"),
        (b'[]', "application/json", 400, "no inputs"),
        (b'["ok", "  "]', "application/json", 400, "input 1: the text is empty"),
        (b'[1, 2]', "application/json", 400, "input 0: expected a string, got int"),
        (b'{"txt": "a"}', "application/json", 400, "needs a 'text' field"),
        (b'[["a", "b"]]', "application/json", 400, "this model classifies single texts"),
        (json.dumps(["x"] * 1025).encode(), "application/json", 413, "at most 1024"),
    ],
)
def test_client_mistakes_are_4xx_with_a_json_body(body, content_type, status, message):
    with pytest.raises(RequestError) as info:
        parse_request(body, content_type)
    assert info.value.status == status and message in info.value.message
    assert json.loads(info.value.body()) == {"error": {"status": status, "message": info.value.message}}


def test_pair_model_refuses_single_texts():
    with pytest.raises(RequestError, match="classifies sentence pairs"):
        parse_request('"just one"', "application/json", text_pair=True)


def test_responses_and_accept():
    preds = [prediction(np.array([0.2, 0.8]), ["neg", "pos"], False)]
    assert preds == [{"label": "pos", "score": pytest.approx(0.8), "probabilities": {"neg": pytest.approx(0.2), "pos": pytest.approx(0.8)}}]
    body, ctype = format_response(preds, None)
    assert ctype == "application/json" and json.loads(body)["predictions"][0]["label"] == "pos"
    body, ctype = format_response(preds * 2, "application/jsonlines")
    assert ctype == "application/jsonlines" and len(body.splitlines()) == 2
    with pytest.raises(RequestError) as info:
        format_response(preds, "text/html")
    assert info.value.status == 406
    assert format_response(preds, "application/json, text/plain, */*")[1] == "application/json"  # what browsers send
    assert format_response(preds, "text/html, application/jsonlines;q=0.9")[1] == "application/jsonlines"
    assert format_response(preds, "application/json;q=0, application/jsonlines")[1] == "application/jsonlines"


def test_deeply_nested_json_is_a_400():
    with pytest.raises(RequestError) as info:
        parse_request(("[" * 200000 + "]" * 200000).encode(), "application/json")
    assert info.value.status == 400 and "nested too deeply" in info.value.message


def test_multi_label_prediction_and_probabilities():
    probs = probabilities(np.array([[2.0, -2.0, 0.0]]), multi_label=True)
    assert probs[0].tolist() == pytest.approx([0.8808, 0.1192, 0.5], abs=1e-4)
    assert prediction(probs[0], ["a", "b", "c"], True, 0.5)["labels"] == ["a", "c"]
    assert probabilities(np.array([[1.0, 1.0]]), multi_label=False)[0].tolist() == pytest.approx([0.5, 0.5])


def test_content_type_parameters():
    assert parse_content_type('text/csv; charset="UTF-8"; header=present') == ("text/csv", {"charset": "UTF-8", "header": "present"})
    assert parse_content_type(None) == ("application/json", {})
