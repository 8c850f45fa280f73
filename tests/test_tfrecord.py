"""TFRecord shards: byte format (checked against TensorFlow when installed), export, training from shards and FIFOs, damage."""

import json
import os
import threading

import numpy as np
import pytest
from conftest import tiny_spec

import bertbridge
from bertbridge.core.data import tfrecord
from bertbridge.core.errors import DataError, SpecError

RECORDS = [
    {"input_ids": [2, 7, 3], "attention_mask": [1, 1, 1], "token_type_ids": [0, 0, 0], "label": [1]},
    {"input_ids": [2, 3, 0], "attention_mask": [1, 1, 0], "token_type_ids": [0, 0, 0], "label": []},
    {"input_ids": [5], "attention_mask": [1], "token_type_ids": [0], "label": [-3, 2**40]},
]


def test_crc32c_known_value_and_both_implementations_agree():
    assert tfrecord._crc32c_py(b"123456789") == 0xE3069283  # the standard CRC-32C check value
    data = os.urandom(1000)
    assert tfrecord.crc32c(data) == tfrecord._crc32c_py(data)


def test_example_round_trip(tmp_path):
    path = tmp_path / "a.tfrecord"
    assert tfrecord.write_records(path, [tfrecord.encode_example(r) for r in RECORDS]) == 3
    assert [tfrecord.decode_example(p) for p in tfrecord.iter_records(path)] == RECORDS


def test_tensorflow_reads_ours_and_we_read_tensorflows(tmp_path):
    tf = pytest.importorskip("tensorflow")
    ours = tmp_path / "ours.tfrecord"
    tfrecord.write_records(ours, [tfrecord.encode_example(r) for r in RECORDS])
    spec = {k: tf.io.VarLenFeature(tf.int64) for k in RECORDS[0]}
    parsed = [tf.io.parse_single_example(raw, spec) for raw in tf.data.TFRecordDataset(str(ours))]
    assert [{k: tf.sparse.to_dense(v).numpy().tolist() for k, v in p.items()} for p in parsed] == RECORDS
    theirs = tmp_path / "theirs.tfrecord"
    with tf.io.TFRecordWriter(str(theirs)) as writer:
        for r in RECORDS:
            feature = {k: tf.train.Feature(int64_list=tf.train.Int64List(value=v)) for k, v in r.items()}
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    assert [tfrecord.decode_example(p) for p in tfrecord.iter_records(theirs)] == RECORDS


def test_records_stream_from_a_fifo(tmp_path):
    source = tmp_path / "a.tfrecord"
    tfrecord.write_records(source, [tfrecord.encode_example(r) for r in RECORDS])
    fifo = tmp_path / "train_0"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(source.read_bytes()))
    writer.start()
    assert len(list(tfrecord.iter_records(fifo))) == 3
    writer.join(timeout=10)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda b: b[:-3], r"record 2 \(byte offset \d+\): truncated record"),
        (lambda b: b[:5], r"record 0 \(byte offset 0\): truncated record header"),
        (lambda b: b[:20] + bytes([b[20] ^ 0xFF]) + b[21:], r"record 0 \(byte offset 0\): corrupt data \(CRC mismatch\)"),
        (lambda b: b"this is a csv file, not records\n", r"record 0 \(byte offset 0\): corrupt length"),
    ],
)
def test_damaged_shards_name_shard_record_and_offset(tmp_path, damage, message):
    path = tmp_path / "bad.tfrecord"
    tfrecord.write_records(path, [tfrecord.encode_example(r) for r in RECORDS])
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(DataError, match=r"bad\.tfrecord, " + message):
        list(tfrecord.iter_records(path))


@pytest.fixture()
def exported(tiny_model_dir, toy_data, tmp_path):
    spec = tiny_spec(tiny_model_dir, toy_data, tmp_path / "model")
    return spec, bertbridge.export_tfrecord(spec, tmp_path / "shards", shards=3), tmp_path / "shards"


def test_export_writes_shards_and_a_schema(exported):
    _, paths, folder = exported
    assert [p.name for p in paths] == [f"train-0000{i}-of-00003.tfrecord" for i in range(3)]
    meta = json.loads((folder / tfrecord.METADATA_NAME).read_text())
    assert sum(s["records"] for s in meta["shards"]) == 96
    assert meta["labels"] == ["negative", "positive"] and meta["fixed_length"] is None
    split = tfrecord.read_split(folder, 2, multi_label=False, max_length=32)
    assert len(split.features) == 96 and set(split.targets.tolist()) == {0, 1}
    assert split.features.input_ids[0][0] == 2  # [CLS]; variable length, unpadded


def test_fixed_length_export_pads_and_reads_back_unpadded(tiny_model_dir, toy_data, tmp_path):
    spec = tiny_spec(tiny_model_dir, toy_data, tmp_path / "m")
    bertbridge.export_tfrecord(spec, tmp_path / "fixed", fixed_length=True)
    payload = next(tfrecord.iter_records(next((tmp_path / "fixed").glob("*.tfrecord"))))
    record = tfrecord.decode_example(payload)
    assert len(record["input_ids"]) == 32 and record["attention_mask"][-1] == 0
    split = tfrecord.read_split(tmp_path / "fixed", 2, multi_label=False, max_length=32)
    assert split.features.lengths.max() < 32


def test_training_from_shards_matches_training_from_text(exported, tmp_path):
    pytest.importorskip("torch")
    spec, _, folder = exported
    spec = {**spec, "training": {**spec["training"], "epochs": 1}}
    from_text = bertbridge.train({**spec, "output_dir": str(tmp_path / "text")})
    from_shards = bertbridge.train({**spec, "data": {**spec["data"], "train": str(folder)}, "output_dir": str(tmp_path / "rec")})
    texts = ["the film was good", "dull plot"]
    np.testing.assert_allclose(from_text.predict_proba(texts), from_shards.predict_proba(texts), atol=1e-6)


@pytest.mark.parametrize("backend", ["pytorch", "tensorflow"])
def test_pipe_mode_channel_trains(exported, tmp_path, backend):
    pytest.importorskip({"pytorch": "torch", "tensorflow": "tensorflow"}[backend])
    spec, paths, _ = exported
    channel = tmp_path / "channel"
    channel.mkdir()
    fifo = channel / "train_0"
    os.mkfifo(fifo)
    payload = b"".join(p.read_bytes() for p in paths)

    def feed():
        with open(fifo, "wb") as fh:
            fh.write(payload)

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    pipe_spec = {**spec, "data": {**spec["data"], "train": str(fifo), "format": "tfrecord"},
                 "training": {**spec["training"], "epochs": 1}, "output_dir": str(tmp_path / f"pipe-{backend}")}
    pipe_spec["data"]["validation"] = spec["data"]["validation"]
    clf = bertbridge.train(pipe_spec, backend=backend)
    writer.join(timeout=10)
    assert clf.training_result.train_examples == 96
    assert "accuracy" in clf.metrics


def test_shards_from_another_vocabulary_or_label_set_are_refused(exported, tiny_model_dir, tmp_path):
    spec, _, folder = exported
    meta_path = folder / tfrecord.METADATA_NAME
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "labels": ["bad", "good"]}))
    with pytest.raises(DataError, match=r"the shards' labels \(bad, good\) differ from the task's \(negative, positive\)"):
        bertbridge.train({**spec, "data": {**spec["data"], "train": str(folder)}})
    meta_path.write_text(json.dumps({**meta, "tokenizer": "0123456789abcdef"}))
    with pytest.raises(DataError, match="tokenized with another vocabulary"):
        bertbridge.train({**spec, "data": {**spec["data"], "train": str(folder)}})


def test_export_refuses_mixing_splits_and_missing_splits(exported, tmp_path):
    spec, _, folder = exported
    with pytest.raises(SpecError, match="already holds shards of train; use one folder per split"):
        bertbridge.export_tfrecord(spec, folder, split="validation")
    with pytest.raises(SpecError, match="data.test is not set"):
        bertbridge.export_tfrecord(spec, tmp_path / "t", split="test")
    # re-exporting the same split replaces its shards instead of mixing old and new
    bertbridge.export_tfrecord(spec, folder, shards=1)
    assert [p.name for p in folder.glob("*.tfrecord")] == ["train-00000-of-00001.tfrecord"]


def test_cli_export(tiny_model_dir, toy_data, tmp_path, capsys):
    import yaml

    from bertbridge.core.cli import main

    spec_file = tmp_path / "s.yaml"
    spec_file.write_text(yaml.safe_dump(tiny_spec(tiny_model_dir, toy_data, tmp_path / "m")))
    assert main(["export-tfrecord", str(spec_file), "--split", "validation", "--out", str(tmp_path / "v"), "--shards", "2"]) == 0
    printed = capsys.readouterr().out.split()
    assert [os.path.basename(p) for p in printed] == ["validation-00000-of-00002.tfrecord", "validation-00001-of-00002.tfrecord"]


def test_text_readers_refuse_tfrecord_files(tmp_path):
    from bertbridge.core.data.readers import read_examples
    from bertbridge.core.spec import DataConfig

    path = tmp_path / "x.tfrecord"
    path.write_bytes(b"")
    with pytest.raises(DataError, match="tfrecord files hold tokenized features, not text"):
        read_examples(path, DataConfig())


def test_non_int64_features_are_reported_not_read_as_empty(tmp_path):
    # a hand-built Example whose 'label' is a float_list (Feature field 2 -> FloatList field 1, packed floats)
    float_list = tfrecord._field(2, tfrecord._field(1, b"\x00\x00\x80\x3f"))
    entry = tfrecord._field(1, tfrecord._field(1, b"label") + tfrecord._field(2, float_list))
    with pytest.raises(ValueError, match="feature 'label' is a float_list"):
        tfrecord.decode_example(tfrecord._field(1, entry))


def test_shards_with_ids_outside_the_vocabulary_are_refused(exported, tmp_path):
    spec, _, _ = exported
    bad = tmp_path / "bad"
    bad.mkdir()
    record = {"input_ids": [2, 99999, 3], "attention_mask": [1, 1, 1], "token_type_ids": [0, 0, 0], "label": [1]}
    tfrecord.write_records(bad / "train-00000-of-00001.tfrecord", [tfrecord.encode_example(record)] * 2)
    with pytest.raises(DataError, match="token id 99999, outside this model's vocabulary"):
        bertbridge.train({**spec, "data": {**spec["data"], "train": str(bad)}})


def test_pipe_mode_without_listed_labels(tiny_model_dir, toy_data, tmp_path):
    pytest.importorskip("torch")
    spec = tiny_spec(tiny_model_dir, toy_data, tmp_path / "u", epochs=1)
    del spec["data"]["labels"]
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    run = bertbridge.run_local(tmp_path / "spec.json", base_dir=tmp_path / "job", input_mode="Pipe", stream_output=False)
    assert run.returncode == 0, run.failure
    assert json.loads((run.model_dir / "bertbridge.json").read_text())["labels"] == ["negative", "positive"]
