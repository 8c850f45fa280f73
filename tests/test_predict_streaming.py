"""bertbridge predict over large files: inputs read and predicted a chunk at a time, rows written as they
come, and --resume continuing an output that a killed run left behind."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import bertbridge
from bertbridge.core.cli import main
from bertbridge.core.data import streaming
from bertbridge.core.data.readers import iter_examples
from bertbridge.core.errors import DataError
from bertbridge.core.plugins.registry import tasks
from bertbridge.core.spec import DataConfig
from bertbridge.testing import tiny

pytest.importorskip("torch")

WORDS = ["good", "lovely", "great", "dull", "awful", "boring", "the", "film", "plot", "was"]


@pytest.fixture(scope="module")
def classifier(tiny_classifier):
    return tiny_classifier.path


def _texts(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(2, 12)))) for _ in range(n)]


def _jsonl(path, texts):
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    return path


def _rows(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _assert_same_rows(got: list[dict], want: list[dict]) -> None:
    assert [r["line"] for r in got] == [r["line"] for r in want]
    assert [r["label"] for r in got] == [r["label"] for r in want]
    np.testing.assert_allclose([r["score"] for r in got], [r["score"] for r in want], atol=1e-5)


def test_examples_are_read_one_line_at_a_time(tmp_path):
    """Rows before a bad line come out before the bad line is reached; csv with lone-CR line ends and
    UTF-16 files are read as before."""
    path = tmp_path / "big.jsonl"
    path.write_text('{"text": "a"}\n{"text": "b"}\n{"text": "c"}\n{oops\n', encoding="utf-8")
    rows = iter_examples(path, DataConfig(), require_labels=False)
    assert [next(rows).text for _ in range(3)] == ["a", "b", "c"]
    with pytest.raises(DataError, match=r"big\.jsonl, line 4: invalid JSON"):
        next(rows)

    mac = tmp_path / "mac.csv"
    mac.write_bytes(b"text,label\rgood film,positive\r\"two\rlines\",negative\r")
    got = [(e.text, e.labels, e.line) for e in iter_examples(mac, DataConfig(format="csv"))]
    assert got == [("good film", ("positive",), 2), ("two\rlines", ("negative",), 3)]

    wide = tmp_path / "wide.tsv"
    wide.write_text("text\tlabel\nnaïve film\tpositive\n", encoding="utf-16")
    assert [e.text for e in iter_examples(wide, DataConfig(encoding="utf-16"))] == ["naïve film"]

    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"text": "ok"}\n{"text": "\xff"}\n')
    with pytest.raises(DataError, match=r"bad\.jsonl, line 2: bytes that are not valid utf-8 \(byte offset 25"):
        list(iter_examples(bad, DataConfig(), require_labels=False))


def test_predict_input_goes_a_chunk_at_a_time(classifier, tmp_path, monkeypatch, capsys):
    texts = _texts(250)
    path = _jsonl(tmp_path / "in.jsonl", texts)
    model = bertbridge.load(classifier)
    want = model.predict(texts)
    sizes = []
    original = type(model).predict

    def counting(self, inputs):
        sizes.append(len(inputs))
        return original(self, inputs)

    monkeypatch.setattr(streaming, "PREDICT_CHUNK", 100)
    monkeypatch.setattr(type(model), "predict", counting)
    assert main(["predict", str(classifier), "--input", str(path)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sizes == [100, 100, 50]
    _assert_same_rows(rows, [{"line": i + 1, **w} for i, w in enumerate(want)])


def test_resume_drops_a_cut_line_and_appends_the_rest(classifier, tmp_path):
    path = _jsonl(tmp_path / "in.jsonl", _texts(40, seed=1))
    full = tmp_path / "full.jsonl"
    assert main(["predict", str(classifier), "--input", str(path), "--output", str(full)]) == 0
    lines = full.read_text(encoding="utf-8").splitlines(keepends=True)
    partial = tmp_path / "partial.jsonl"
    partial.write_text("".join(lines[:17]) + lines[17][:25], encoding="utf-8")  # killed while writing row 18
    assert main(["predict", str(classifier), "--input", str(path), "--output", str(partial), "--resume"]) == 0
    _assert_same_rows(_rows(partial), _rows(full))
    assert partial.read_text(encoding="utf-8").splitlines()[:17] == [line.rstrip("\n") for line in lines[:17]]

    before = partial.read_bytes()  # a finished output: resuming adds nothing
    assert main(["predict", str(classifier), "--input", str(path), "--output", str(partial), "--resume"]) == 0
    assert partial.read_bytes() == before


def test_rows_are_written_before_the_rest_of_the_input_is_read(classifier, tmp_path, monkeypatch):
    """Bad bytes near the end of the file: rows before them are already in the output when the error
    names the line (the file is decoded as it is read, not whole first)."""
    path = _jsonl(tmp_path / "in.jsonl", _texts(3000, seed=3))
    with path.open("ab") as fh:
        fh.write(b'{"text": "\xff"}\n')
    monkeypatch.setattr(streaming, "PREDICT_CHUNK", 100)
    out = tmp_path / "out.jsonl"
    with pytest.raises(DataError, match=r"in\.jsonl, line 3001: bytes that are not valid utf-8"):
        main(["--debug", "predict", str(classifier), "--input", str(path), "--output", str(out)])
    lines = [r["line"] for r in _rows(out)]
    assert len(lines) >= 100 and lines == list(range(1, len(lines) + 1))


def test_resume_refuses_the_output_of_another_input(classifier, tmp_path, capsys):
    path = _jsonl(tmp_path / "in.jsonl", _texts(5, seed=4))
    other = tmp_path / "other.jsonl"
    other.write_text("\n".join(json.dumps({"text": t}) for t in _texts(8, seed=5)) + "\n\n\n", encoding="utf-8")
    longer = tmp_path / "longer.jsonl"
    assert main(["predict", str(classifier), "--input", str(other), "--output", str(longer)]) == 0
    before = longer.read_bytes()
    assert main(["predict", str(classifier), "--input", str(path), "--output", str(longer), "--resume"]) == 2
    assert "holds 8 rows" in capsys.readouterr().err and longer.read_bytes() == before  # more rows than the input has

    shifted = tmp_path / "shifted.jsonl"  # 3 rows, the last for line 4 (a blank line in the other input), not line 3
    shifted.write_text("".join(json.dumps({"line": n, "label": "positive"}) + "\n" for n in (1, 2, 4)), encoding="utf-8")
    assert main(["predict", str(classifier), "--input", str(path), "--output", str(shifted), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "shifted.jsonl: holds 3 rows, the last with line 4" in err and "Run again without --resume" in err


def test_a_refused_resume_leaves_the_file_as_it_was(classifier, tmp_path, capsys):
    path = _jsonl(tmp_path / "in.jsonl", _texts(5, seed=6))
    for content, message in ((b"[1, 2, 3]", "--resume continues only an output"),  # not an output of bertbridge predict
                             (b"some notes\nwithout an ending", "--resume continues only an output"),
                             (b'{"line": 9, "label": "x"}\n{"line": 1', "holds 1 rows, the last with line 9")):  # another input's
        target = tmp_path / "notes.json"
        target.write_bytes(content)
        assert main(["predict", str(classifier), "--input", str(path), "--output", str(target), "--resume"]) == 2
        assert message in capsys.readouterr().err
        assert target.read_bytes() == content


def test_with_a_progress_bar_a_missing_input_is_still_a_clear_error(classifier, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BERTBRIDGE_PROGRESS", "1")
    assert main(["predict", str(classifier), "--input", str(tmp_path / "missing.jsonl")]) == 2
    assert "missing.jsonl: file not found" in capsys.readouterr().err


def test_resume_after_a_kill_neither_loses_nor_repeats_a_line(classifier, tmp_path):
    path = _jsonl(tmp_path / "in.jsonl", _texts(12000, seed=2))
    out = tmp_path / "out.jsonl"
    argv = [sys.executable, "-m", "bertbridge", "predict", str(classifier), "--input", str(path), "--output", str(out)]
    env = {**os.environ, "BERTBRIDGE_PROGRESS": "0"}
    job = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while (not out.exists() or out.stat().st_size == 0) and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    job.send_signal(signal.SIGKILL)
    job.wait(timeout=30)
    written = out.read_bytes()
    assert 0 < written.count(b"\n") < 12000, "the run was not killed part-way; make the input longer"
    done = subprocess.run(argv + ["--resume"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = _rows(out)
    assert [r["line"] for r in rows] == list(range(1, 12001))
    full = tmp_path / "full.jsonl"
    assert main(["predict", str(classifier), "--input", str(path), "--output", str(full)]) == 0
    _assert_same_rows(rows, _rows(full))


def test_resume_needs_an_input_and_an_output(classifier, tmp_path, capsys):
    assert main(["predict", str(classifier), "--text", "good", "--resume"]) == 2
    assert "--resume continues the --output file of a run over an --input file" in capsys.readouterr().err


def test_question_answering_jsonl_resumes_too(tmp_path):
    base = tiny.write_random_bert(tmp_path / "base")
    train, dev = tmp_path / "train.json", tmp_path / "dev.json"
    tiny.toy_squad(train, 32, seed=1)
    tiny.toy_squad(dev, 8, seed=2)
    qa = bertbridge.train(tiny.qa_spec(base, {"train": str(train), "validation": str(dev)}, tmp_path / "qa", epochs=1),
                          backend="pytorch")
    pairs = [{"question": q["question"], "context": p["context"]}
             for a in json.loads(dev.read_text())["data"] for p in a["paragraphs"] for q in p["qas"]]
    path = tmp_path / "q.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in pairs), encoding="utf-8")
    full, partial = tmp_path / "full.jsonl", tmp_path / "partial.jsonl"
    assert main(["predict", str(qa.path), "--input", str(path), "--output", str(full)]) == 0
    lines = full.read_text(encoding="utf-8").splitlines(keepends=True)
    partial.write_text("".join(lines[:3]) + lines[3][:10], encoding="utf-8")
    assert main(["predict", str(qa.path), "--input", str(path), "--output", str(partial), "--resume"]) == 0
    got, want = _rows(partial), _rows(full)
    assert [(r["line"], r["answer"]) for r in got] == [(r["line"], r["answer"]) for r in want] and len(got) == len(pairs)

    gaps = tmp_path / "gaps.jsonl"  # "line" is the file's line number; a bad object is named by its line
    gaps.write_text(json.dumps(pairs[0]) + "\n\n" + json.dumps(pairs[1]) + "\n" + json.dumps({"question": "q"}) + "\n")
    with pytest.raises(DataError, match=r"gaps\.jsonl, line 4: needs string fields 'question' and 'context'"):
        list(tasks().get("question_answering").cli_predict(qa, _Args(gaps)))
    rows = list(tasks().get("question_answering").cli_predict(qa, _Args(gaps, keep=3)))
    assert [r["line"] for r in rows] == [1, 3]
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(DataError, match=r"empty\.jsonl: no questions found"):
        list(tasks().get("question_answering").cli_predict(qa, _Args(empty)))


class _Args:
    """``bertbridge predict``'s arguments for an --input file (the first ``keep`` lines of it, when given)."""

    def __init__(self, path, keep=None):
        if keep is not None:
            kept = path.with_suffix(".kept.jsonl")
            kept.write_text("".join(path.read_text().splitlines(keepends=True)[:keep]))
            path = kept
        self.input, self.output, self.skip, self.last_row = str(path), None, 0, None
        self.text = self.text_pair = self.question = self.context = None
