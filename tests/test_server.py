"""bertbridge serve: /ping + /invocations, micro-batching, limits, 4xx errors, graceful shutdown."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")

from starlette.testclient import TestClient  # noqa: E402

from bertbridge.core.serving.server import ServerConfig, create_app  # noqa: E402


class FakeModel:
    """Upper-cases texts; records the size of every predict call."""

    def __init__(self, delay=0.0):
        self.calls = []
        self.delay = delay

    def predict(self, inputs):
        self.calls.append(len(inputs))
        time.sleep(self.delay)
        return [{"label": "x", "score": 1.0, "probabilities": {"x": 1.0}, "echo": t.upper()} for t in inputs]


@pytest.fixture()
def client():
    model = FakeModel()
    with TestClient(create_app(model.predict, text_pair=False, config=ServerConfig(max_body_bytes=1000))) as c:
        c.model = model
        yield c


def test_ping_and_invocations(client):
    assert client.get("/ping").json() == {"status": "ok"}
    r = client.post("/invocations", content=b'{"inputs": ["a", "b"]}', headers={"content-type": "application/json; charset=utf-8"})
    assert r.status_code == 200 and [p["echo"] for p in r.json()["predictions"]] == ["A", "B"]
    r = client.post("/invocations", content=b"a\nb\n", headers={"content-type": "text/csv", "accept": "application/jsonlines"})
    assert r.headers["content-type"].startswith("application/jsonlines") and len(r.text.splitlines()) == 2


@pytest.mark.parametrize(
    "body, headers, status",
    [
        (b"{bad json", {"content-type": "application/json"}, 400),
        (b'"x"', {"content-type": "application/xml"}, 415),
        (b'{"inputs": "  "}', {"content-type": "application/json"}, 400),
        (b"\xff\xfe\xfa", {"content-type": "application/json"}, 400),
        (b'"x"', {"content-type": "application/json", "accept": "text/html"}, 406),
        (b'["' + b"x" * 2000 + b'"]', {"content-type": "application/json"}, 413),
        (b'[["a", "b"]]', {"content-type": "application/json"}, 400),
        # lone UTF-16 surrogates: the tokenizer raised TypeError on them (a 500) before they were refused
        (b'["\\ud800"]', {"content-type": "application/json"}, 400),
        (b'{"inputs": ["fine", "half \\udfff"]}', {"content-type": "application/json"}, 400),
        (b'{"text": "\\ud83d"}\n', {"content-type": "application/jsonlines"}, 400),
    ],
)
def test_client_mistakes_get_4xx_and_the_server_keeps_answering(client, body, headers, status):
    r = client.post("/invocations", content=body, headers=headers)
    assert r.status_code == status
    assert r.json()["error"]["status"] == status
    assert client.get("/ping").status_code == 200
    assert client.model.calls == []  # nothing malformed reached the model


def test_a_lone_surrogate_error_names_the_input_and_the_fix(client):
    r = client.post("/invocations", content=b'["ok", "emoji \\ud83d"]', headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert "input 1: character 6 is a lone UTF-16 surrogate (\\ud83d)" in r.json()["error"]["message"]
    r = client.post("/invocations", content=b'["ok \\ud83d\\ude00"]', headers={"content-type": "application/json"})
    assert r.status_code == 200 and r.json()["predictions"][0]["echo"] == "OK \U0001F600"  # a proper pair is text


@pytest.mark.parametrize("method, path, status", [("GET", "/nowhere", 404), ("GET", "/invocations", 405),
                                                  ("DELETE", "/ping", 405)])
def test_unknown_paths_and_methods_get_the_json_error_shape(client, method, path, status):
    r = client.request(method, path)
    assert r.status_code == status and r.headers["content-type"].startswith("application/json")
    error = r.json()["error"]
    assert error["status"] == status and f"{method} {path}" in error["message"] and "POST /invocations" in error["message"]
    if status == 405:
        assert "allow" in r.headers  # still says which methods the path takes


def test_concurrent_requests_are_micro_batched():
    model = FakeModel(delay=0.05)
    with TestClient(create_app(model.predict, text_pair=False, config=ServerConfig(max_batch=64, max_wait_ms=30))) as c:
        results = {}

        def call(i):
            results[i] = c.post("/invocations", json={"inputs": [f"t{i}"]}).json()["predictions"][0]["echo"]

        threads = [threading.Thread(target=call, args=(i,)) for i in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert results == {i: f"T{i}" for i in range(12)}  # every request got its own answer back
    assert sum(model.calls) == 12 and len(model.calls) < 12


def test_model_failure_is_a_500_for_that_request_only():
    def predict(inputs):
        if "boom" in inputs:
            raise RuntimeError("kaput")
        return [{"label": "x"} for _ in inputs]

    with TestClient(create_app(predict, text_pair=False, config=ServerConfig(max_wait_ms=0))) as c:
        assert c.post("/invocations", json="boom").status_code == 500
        assert c.post("/invocations", json="fine").status_code == 200


def test_sagemaker_serving_functions(tiny_model_dir, toy_data, tmp_path):
    pytest.importorskip("torch")
    from conftest import tiny_spec

    import bertbridge
    from bertbridge.core.serving import handlers
    from bertbridge.core.serving.protocol import RequestError

    path = bertbridge.train(tiny_spec(tiny_model_dir, toy_data, tmp_path / "m", epochs=1)).path
    model = handlers.model_fn(str(path))
    data = handlers.input_fn(b'{"inputs": ["the film was good", "dull"]}', "application/json")
    body, ctype = handlers.output_fn(handlers.predict_fn(data, model), "application/json")
    assert ctype == "application/json"
    assert [p["label"] for p in json.loads(body)["predictions"]] == [p["label"] for p in model.predict(["the film was good", "dull"])]
    with pytest.raises(RequestError):
        handlers.input_fn(b"", "application/json")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_real_server_answers_and_shuts_down_gracefully(tiny_model_dir, toy_data, tmp_path):
    pytest.importorskip("torch")
    from conftest import tiny_spec

    import bertbridge

    path = bertbridge.train(tiny_spec(tiny_model_dir, toy_data, tmp_path / "m", epochs=1)).path
    port = _free_port()
    exe = os.path.join(os.path.dirname(sys.executable), "bertbridge")
    proc = subprocess.Popen([exe, "serve", str(path), "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(base + "/ping", timeout=2) as r:
                    assert r.status == 200
                    break
            except (urllib.error.URLError, ConnectionError):
                assert proc.poll() is None, proc.stderr.read()
                assert time.time() < deadline, "server did not come up"
                time.sleep(0.2)
        req = urllib.request.Request(base + "/invocations", data=b'["the film was good"]', headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            assert json.loads(r.read())["predictions"][0]["label"] in ("negative", "positive")
        bad = urllib.request.Request(base + "/invocations", data=b"\xff", headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(bad, timeout=10)
        assert info.value.code == 400
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode in (0, -signal.SIGTERM), err
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert [line["event"] for line in lines] == ["serving", "stopped"]  # the graceful path ran: batcher drained, then exit
    assert (lines[0]["backend"], lines[0]["trained_backend"]) == ("pytorch", "pytorch")


def _start_server(path, *flags: str) -> tuple[subprocess.Popen, int]:
    """``bertbridge serve`` of ``path`` on a free port, once it answers /ping."""
    port = _free_port()
    exe = os.path.join(os.path.dirname(sys.executable), "bertbridge")
    proc = subprocess.Popen([exe, "serve", str(path), "--port", str(port), *flags], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2).close()
            return proc, port
        except (urllib.error.URLError, ConnectionError):
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                raise AssertionError(f"the server did not come up: {proc.communicate()[1][-2000:]}") from None
            time.sleep(0.2)


def _rss_mb(pid: int) -> int:
    return int(Path(f"/proc/{pid}/status").read_text().split("VmRSS:")[1].split()[0]) // 1024


def test_multi_megabyte_texts_cost_little_time_and_no_lasting_memory(tiny_model_dir, toy_data, tmp_path):
    """Only a text's usable start is tokenized: before, one 4.9 MB text took seconds of CPU, and a
    3,000-request corpus with twenty of them did not finish in 15 minutes (now about 100 s)."""
    pytest.importorskip("torch")
    from conftest import tiny_spec

    import bertbridge

    path = bertbridge.train(tiny_spec(tiny_model_dir, toy_data, tmp_path / "m", epochs=1)).path
    proc, port = _start_server(path)
    words = ["good", "film", "the", "plot", "dull", "lovely", "unknownword", "."]
    huge = json.dumps([" ".join(words[i % len(words)] if i % 11 else "x" * 150 for i in range(800_000))[:4_900_000]]).encode()
    try:
        def post(body):
            req = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=60) as r:
                return json.loads(r.read())["predictions"]
        for _ in range(50):
            post(b'["the film was good"]')
        before = _rss_mb(proc.pid)
        for _ in range(4):  # each within post's 60 s timeout (uncut, one took minutes)
            assert post(huge)[0]["label"] in ("negative", "positive")
        assert _rss_mb(proc.pid) - before < 150
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)


def _raw(port: int, data: bytes) -> socket.socket:
    conn = socket.create_connection(("127.0.0.1", port), timeout=10)
    conn.sendall(data)
    return conn


def _read_until_closed(conn: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (the socket's 10 s timeout
    raises if it never does: the server's own timeouts here are 1 s)."""
    chunks = []
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def test_slow_and_unfinished_requests_are_cut_off_while_good_ones_are_answered(tiny_model_dir, toy_data, tmp_path):
    """Slow headers, a chunked body that never ends and a short Content-Length each get a closed
    connection (headers) or a 408 JSON error (bodies) within the configured timeouts."""
    pytest.importorskip("torch")
    from conftest import tiny_spec

    import bertbridge

    path = bertbridge.train(tiny_spec(tiny_model_dir, toy_data, tmp_path / "m", epochs=1)).path
    proc, port = _start_server(path, "--header-timeout", "1", "--body-timeout", "1")
    base = f"http://127.0.0.1:{port}"
    try:
        slow = _raw(port, b"POST /invocations HTTP/1.1\r\nHost: x\r\n")  # and the rest never comes
        chunked = _raw(port, b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                             b"Transfer-Encoding: chunked\r\n\r\n5\r\n[\"ok\"\r\n")
        short = _raw(port, b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                           b"Content-Length: 100\r\n\r\n[\"the film\"")
        req = urllib.request.Request(base + "/invocations", data=b'["the film was good"]', headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:  # answered while the three hang
            assert r.status == 200
        assert _read_until_closed(slow) == b""  # closed without an answer
        for conn in (chunked, short):
            sent = _read_until_closed(conn)
            head, _, body = sent.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 408"), sent[:200]
            assert json.loads(body)["error"]["status"] == 408
        surrogate = urllib.request.Request(base + "/invocations", data=b'["half \\ud83d"]', headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as info:  # the real tokenizer used to raise TypeError: a 500
            urllib.request.urlopen(surrogate, timeout=10)
        assert info.value.code == 400 and "lone UTF-16 surrogate" in json.loads(info.value.read())["error"]["message"]
        with urllib.request.urlopen(base + "/ping", timeout=5) as r:
            assert r.status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)


def test_one_bad_request_does_not_fail_its_batch_neighbours():
    from bertbridge.core.errors import DataError

    def predict(inputs):
        if "bad one" in inputs:
            raise DataError("input 'bad one' is not acceptable")
        time.sleep(0.05)
        return [{"label": t} for t in inputs]

    with TestClient(create_app(predict, text_pair=False, config=ServerConfig(max_wait_ms=50))) as c:
        results = {}

        def call(text):
            results[text] = c.post("/invocations", json=[text])

        threads = [threading.Thread(target=call, args=(t,)) for t in ("good one", "bad one", "also good")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert results["good one"].status_code == 200 and results["also good"].status_code == 200
    assert results["bad one"].status_code == 400 and "bad one" in results["bad one"].json()["error"]["message"]
    assert "bad one" not in results["good one"].text
