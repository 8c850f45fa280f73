"""Data readers and label maps: formats, column mapping, and errors that name file, line and fix."""

import json

import numpy as np
import pytest

from bertbridge.core.data.labels import LabelMap
from bertbridge.core.data.readers import read_examples
from bertbridge.core.errors import DataError
from bertbridge.core.spec import DataConfig


def _write(path, text, mode="w"):
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_csv_with_quotes_commas_and_blank_lines(tmp_path):
    f = _write(tmp_path / "d.csv", 'text,label\n"Good, really good",pos\n\n"He said ""no""",neg\n')
    ex = read_examples(f, DataConfig())
    assert [(e.text, e.labels, e.line) for e in ex] == [("Good, really good", ("pos",), 2), ('He said "no"', ("neg",), 4)]


def test_tsv_is_not_quote_aware_like_glue(tmp_path):
    f = _write(tmp_path / "d.tsv", 'sentence\tlabel\n"quoted" start\t1\nit \'s fine\t0\n')
    ex = read_examples(f, DataConfig(text_column="sentence"))
    assert [e.text for e in ex] == ['"quoted" start', "it 's fine"]
    assert [e.labels for e in ex] == [("1",), ("0",)]


def test_headerless_file_uses_column_indices(tmp_path):
    # CoLA layout: source, label, original notation, sentence
    f = _write(tmp_path / "cola.tsv", "gj04\t1\t\tOur friends won't buy this analysis.\ngj04\t0\t*\tThey drank the pub.\n")
    ex = read_examples(f, DataConfig(header=False, text_column=3, label_column=1))
    assert [(e.text, e.labels) for e in ex] == [("Our friends won't buy this analysis.", ("1",)), ("They drank the pub.", ("0",))]


def test_jsonl_with_pairs_and_numeric_labels(tmp_path):
    rows = [{"q": "a b", "p": "c", "y": 1}, {"q": "d", "p": "e f", "y": 0}]
    f = _write(tmp_path / "d.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    ex = read_examples(f, DataConfig(text_column="q", text_pair_column="p", label_column="y"))
    assert [(e.text, e.text_pair, e.labels) for e in ex] == [("a b", "c", ("1",)), ("d", "e f", ("0",))]


def test_multi_label_from_separator_and_lists(tmp_path):
    f = _write(tmp_path / "m.csv", "text,label\nsports and music,sports|music\nnothing,\n")
    ex = read_examples(f, DataConfig(label_separator="|"), multi_label=True)
    assert [e.labels for e in ex] == [("sports", "music"), ()]
    g = _write(tmp_path / "m.jsonl", '{"text": "x", "label": ["a", "b", "a"]}\n')
    assert read_examples(g, DataConfig(), multi_label=True)[0].labels == ("a", "b")
    lm = LabelMap(("music", "news", "sports"))
    assert lm.encode(ex, "m.csv", multi_label=True).tolist() == [[1, 0, 1], [0, 0, 0]]


def test_prediction_input_may_lack_labels(tmp_path):
    f = _write(tmp_path / "p.jsonl", '{"text": "hello"}\n')
    assert read_examples(f, DataConfig(), require_labels=False)[0].labels == ()
    g = _write(tmp_path / "p.csv", "text,label\ngood film,pos\nbad film,\nno label field\n")
    assert [e.labels for e in read_examples(g, DataConfig(), require_labels=False)] == [(), (), ()]
    with pytest.raises(DataError, match=r"p\.jsonl, line 1: no key 'label'"):
        read_examples(f, DataConfig())


@pytest.mark.parametrize(
    "name, content, cfg, message",
    [
        ("d.tsv", "sentence\tlabel\nhi\t1\n", {}, r"d\.tsv, line 1 \(header\): no column 'text'; the header has 'sentence', 'label'\. Set data\.text_column"),
        ("d.tsv", "text\tlabel\nfine\t1\n   \t0\n", {}, r"d\.tsv, line 3: column 'text' \(data\.text_column\) is empty\. Fill in the text or remove the row"),
        ("d.tsv", "text\tlabel\nfine\t1\nmissing tab\n", {}, r"d\.tsv, line 3: has 1 field\(s\) but data\.label_column is field 2"),
        ("d.tsv", "x\t1\nfine\t1\t\n", {"header": False, "text_column": 0, "label_column": 1}, r"line 2: 3 field\(s\), but the first row has 2"),
        ("d.tsv", "text\tlabel\nfine\t\n", {}, r"d\.tsv, line 2: label column 'label' is empty"),
        ("d.jsonl", '{"text": "a", "label": 1}\n[1, 2]\n', {}, r"d\.jsonl, line 2: expected a JSON object"),
        ("d.jsonl", '{"text": "a", "label": 1}\n{"text": \n', {}, r"d\.jsonl, line 2: invalid JSON"),
        ("d.jsonl", '{"text": ["a"], "label": 1}\n', {}, r"d\.jsonl, line 1: column 'text' \(data\.text_column\) must be text"),
        ("d.jsonl", '{"text": "a", "label": ["x", "y"]}\n', {}, r"holds a list, but the task is single-label\. Set task\.multi_label: true"),
        ("d.txt", "text\n", {}, r"d\.txt: cannot tell the format from the extension '\.txt'\. Rename it to \.csv, \.tsv, \.jsonl or \.tfrecord, or set data\.format"),
        ("d.tsv", "text\tlabel\n", {}, r"d\.tsv: no examples found"),
        ("d.csv", 'text,label\n"unclosed,1\n', {}, r"d\.csv.*(malformed|no examples|field)"),
    ],
)
def test_bad_rows_name_file_line_and_fix(tmp_path, name, content, cfg, message):
    f = _write(tmp_path / name, content)
    with pytest.raises(DataError, match=message):
        read_examples(f, DataConfig(**cfg))


def test_a_stray_tab_is_an_error_not_a_new_label(tmp_path):
    # a tab inside the text used to shift the label: the model trained with a class 'film , really'
    f = _write(tmp_path / "d.tsv", "sentence\tlabel\ngood\t1\na fine\tfilm , really\t1\n")
    with pytest.raises(DataError, match=r"d\.tsv, line 3: 3 field\(s\), but the header has 2, so its fields would shift: .*replace tabs inside the text"):
        read_examples(f, DataConfig(text_column="sentence"))
    g = _write(tmp_path / "d.csv", "text,label\ngood,1\na fine,film, really,1\n")
    with pytest.raises(DataError, match=r"d\.csv, line 3: 4 field\(s\), but the header has 2, so its fields would shift: quote a field"):
        read_examples(g, DataConfig())


@pytest.mark.parametrize("fmt, sep", [("tsv", "\t"), ("csv", ",")])
def test_fields_longer_than_the_csv_modules_default_limit_are_read(tmp_path, fmt, sep):
    import csv

    long_text = "word " * 60_000  # 300,000 characters: the csv module refuses fields over 131,072 by default
    f = _write(tmp_path / f"d.{fmt}", f"text{sep}label\n{long_text}{sep}1\nshort{sep}0\n")
    limit = csv.field_size_limit()
    assert [len(e.text) for e in read_examples(f, DataConfig())] == [len(long_text.strip()), 5]
    assert csv.field_size_limit() == limit  # the process-wide limit is put back


def test_undecodable_bytes_name_the_line_and_encoding_fix(tmp_path):
    f = _write(tmp_path / "d.tsv", "text\tlabel\nok\t1\ncaf\xe9\t0\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"d\.tsv, line 3: bytes that are not valid utf-8 .* set data\.encoding"):
        read_examples(f, DataConfig())
    assert read_examples(f, DataConfig(encoding="latin-1"))[1].text == "café"


def test_csv_errors_point_at_the_start_of_a_multiline_record(tmp_path):
    f = _write(tmp_path / "d.csv", 'text,label\n"first line\nsecond line\nthird",\nok,1\n')
    with pytest.raises(DataError, match=r"d\.csv, line 2: label column 'label' is empty"):
        read_examples(f, DataConfig())


def test_jsonl_keeps_unicode_line_separators_inside_strings(tmp_path):
    f = _write(tmp_path / "u.jsonl", '{"text": "good film\u2028really\u0085yes", "label": 1}\r\n{"text": "b", "label": 0}\n')
    ex = read_examples(f, DataConfig())
    assert ex[0].text == "good film\u2028really\u0085yes" and [e.line for e in ex] == [1, 2]


def test_utf8_bom_is_ignored(tmp_path):
    f = _write(tmp_path / "d.csv", "\ufefftext,label\nhi,1\n")
    assert read_examples(f, DataConfig())[0].text == "hi"


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_examples(tmp_path / "nope.tsv", DataConfig())
    (tmp_path / "dir.tsv").mkdir()
    with pytest.raises(DataError, match="tfrecord files hold tokenized features, not text"):
        read_examples(tmp_path / "dir.tsv", DataConfig())  # a folder is a set of shards


def test_declared_format_applies_to_unknown_extensions_only(tmp_path):
    f = _write(tmp_path / "d.txt", "text\tlabel\nhi\t1\n")
    assert read_examples(f, DataConfig(format="tsv"))[0].text == "hi"
    g = _write(tmp_path / "d.csv", "text,label\nhi,1\n")
    assert read_examples(g, DataConfig(format="tsv"))[0].labels == ("1",)  # the extension wins


def test_label_map_sources_and_unknown_label(tmp_path):
    f = _write(tmp_path / "d.tsv", "text\tlabel\na\t10\nb\t2\nc\t2\n")
    ex = read_examples(f, DataConfig())
    assert LabelMap.from_config(DataConfig(), ex).labels == ("2", "10")  # numeric order
    assert LabelMap.from_config(DataConfig(labels=("x", "y"))).labels == ("x", "y")
    lf = _write(tmp_path / "labels.txt", "\ufeffneg\npos\n\n")  # a BOM, as Notepad writes it
    assert LabelMap.from_config(DataConfig(labels_file=str(lf))).labels == ("neg", "pos")
    with pytest.raises(DataError, match=r"d\.tsv, line 2: label '10' is not one of the task's labels \(2, 3\)\. Fix the row, or add it to data\.labels"):
        LabelMap(("2", "3")).encode(ex, str(f), multi_label=False)
    assert LabelMap(("2", "10")).encode(ex, str(f), multi_label=False).tolist() == [1, 0, 0]
    assert LabelMap(("2", "10")).encode(ex, str(f), multi_label=False).dtype == np.int64


def test_label_map_needs_two_labels(tmp_path):
    f = _write(tmp_path / "d.tsv", "text\tlabel\na\tx\nb\tx\n")
    with pytest.raises(DataError, match="1 distinct label"):
        LabelMap.from_config(DataConfig(), read_examples(f, DataConfig()))
    dup = _write(tmp_path / "l.txt", "a\na\n")
    with pytest.raises(DataError, match=r"l\.txt: label\(s\) a appear more than once"):
        LabelMap.from_config(DataConfig(labels_file=str(dup)))
