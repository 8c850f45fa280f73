"""What a model folder tells its reader: the model card (``README.md``), the run record
(``training_history.json``) and the curves (``training_curves.png``), kept across load and save,
carried by exports, and never a reason for a load to fail."""

import json

import pytest
import yaml

pytest.importorskip("torch")

from conftest import tiny_spec, toy_sentences, write_tsv  # noqa: E402

import bertbridge  # noqa: E402
from bertbridge.core.reports.record import RunRecord  # noqa: E402


@pytest.fixture(scope="module")
def trained(tiny_model_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reports")
    data = {"train": str(write_tsv(tmp / "t.tsv", toy_sentences(64, 1))),
            "validation": str(write_tsv(tmp / "v.tsv", toy_sentences(24, 2)))}
    spec = tiny_spec(tiny_model_dir, data, tmp / "model", epochs=3)
    spec["training"]["log_interval"] = 3
    return bertbridge.train(spec)


def front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def test_the_card_is_a_hub_model_card_with_the_runs_numbers(trained):
    card = (trained.path / "README.md").read_text(encoding="utf-8")
    meta = front_matter(card)
    assert meta["library_name"] == "bertbridge" and meta["pipeline_tag"] == "text-classification"
    assert meta["tags"] == ["bertbridge", "pytorch", "text-classification"] and meta["metrics"] == ["accuracy"]
    assert "base_model" not in meta  # a local folder is no Hub id
    hub = pytest.importorskip("huggingface_hub")
    parsed = hub.ModelCard.load(trained.path / "README.md")
    assert parsed.data.library_name == "bertbridge" and parsed.data.pipeline_tag == "text-classification"
    accuracy = trained.manifest.metrics["accuracy"]
    assert f"| accuracy | {accuracy:.4f} |" in card
    assert "Labels (single-label): `negative`, `positive`." in card
    assert "BertForSequenceClassification.from_pretrained(path)" in card and "`pytorch`" in card
    spec = yaml.safe_load(card.split("```yaml\n")[1].split("```")[0])
    assert spec["training"]["epochs"] == 3 and spec["output_dir"] == str(trained.path)


def test_the_run_record_holds_every_log_line_and_evaluation(trained):
    record = RunRecord.from_json((trained.path / "training_history.json").read_text(encoding="utf-8"))
    result = trained.training_result
    assert [e["step"] for e in record.train] == [3, 6, 9, 12, 15, 18, 21, 24]  # 64 rows / batch 8 x 3 epochs
    assert [e["step"] for e in record.evaluations] == [8, 16, 24] and record.metric == "accuracy"
    assert record.evaluations == result.history and record.train == result.train_history
    assert all(isinstance(e["loss"], float) for e in record.train)
    assert record.evaluations[-1]["accuracy"] == pytest.approx(trained.manifest.metrics["accuracy"])


def test_the_curves_are_a_png_with_both_panels(trained):
    import matplotlib.image

    pixels = matplotlib.image.imread(str(trained.path / "training_curves.png"))
    height, width = pixels.shape[:2]
    assert (width, height) == (1000, 360)  # two panels: loss, and the validation metric
    assert pixels[..., :3].std() > 0.05  # something is drawn


def test_a_loaded_and_resaved_model_keeps_its_record_and_curves(trained, tmp_path):
    again = bertbridge.load(trained.path)
    again.save(tmp_path / "copy")
    assert (tmp_path / "copy" / "training_history.json").read_text() == (trained.path / "training_history.json").read_text()
    assert (tmp_path / "copy" / "training_curves.png").is_file()
    assert front_matter((tmp_path / "copy" / "README.md").read_text())["metrics"] == ["accuracy"]


def test_a_damaged_record_never_stops_a_load_and_the_card_says_what_is_missing(trained, tmp_path):
    import shutil

    folder = tmp_path / "damaged"
    shutil.copytree(trained.path, folder)
    (folder / "training_history.json").write_text('{"version": 1, "spec": [', encoding="utf-8")
    model = bertbridge.load(folder)
    assert model.predict(["good fun"])[0]["label"] in ("negative", "positive")
    model.save(tmp_path / "resaved")
    names = {p.name for p in (tmp_path / "resaved").iterdir()}
    assert "README.md" in names and not names & {"training_history.json", "training_curves.png"}
    assert "The run record (spec, curves) was not saved with this folder." in (tmp_path / "resaved" / "README.md").read_text()


def test_an_alias_base_model_is_named_by_its_hub_id(trained, tmp_path, monkeypatch):
    from bertbridge.core.plugins.registry import models

    models().add("tiny-alias", lambda: trained.path, "a test alias", hub_id="someone/tiny-bert")
    model = bertbridge.load(trained.path)
    model.manifest = type(model.manifest)(**{**model.manifest.__dict__, "base_model": "tiny-alias"})
    model.save(tmp_path / "aliased")
    assert front_matter((tmp_path / "aliased" / "README.md").read_text())["base_model"] == "someone/tiny-bert"


def test_an_export_carries_the_card_and_curves(trained, tmp_path):
    pytest.importorskip("onnxruntime")
    out = bertbridge.export(trained.path, "onnx", tmp_path / "onnx")
    folder = out.parent
    assert (folder / "README.md").read_text() == (trained.path / "README.md").read_text()
    assert (folder / "training_curves.png").is_file()


def test_the_record_is_strict_json_even_with_a_nan_loss():
    record = RunRecord(spec={}, metric="accuracy", train=[{"step": 1, "epoch": 0.1, "loss": float("nan")}])
    data = json.loads(record.to_json(), parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert data["train"][0]["loss"] is None


def test_reports_never_cost_the_model(trained, tmp_path, monkeypatch):
    from bertbridge.core.tasks import saving

    def broken(*args, **kwargs):
        raise ValueError("no font")

    monkeypatch.setattr(saving, "write_curves", broken)
    with pytest.warns(RuntimeWarning, match=r"the training record or curves could not be written \(ValueError: no font\)"):
        bertbridge.load(trained.path).save(tmp_path / "a")
    names = {p.name for p in (tmp_path / "a").iterdir()}
    assert {"model.safetensors", "bertbridge.json", "README.md"} <= names and not names & {"training_curves.png", "training_history.json"}
    monkeypatch.setattr(saving, "render_card", broken)
    with pytest.warns(RuntimeWarning, match=r"the model card could not be rendered"):
        bertbridge.load(trained.path).save(tmp_path / "b")
    assert front_matter((tmp_path / "b" / "README.md").read_text())["library_name"] == "bertbridge"


def test_odd_manifest_numbers_still_give_a_card(trained, tmp_path):
    model = bertbridge.load(trained.path)
    model.save(tmp_path / "odd", metrics={"accuracy": 0.5, "train_seconds": float("nan"), "world_size": None, "a|b": 1.0})
    card = (tmp_path / "odd" / "README.md").read_text()
    assert "| accuracy | 0.5000 |" in card and "| a/b | 1.0000 |" in card and "Training loop" not in card


def test_a_deeply_nested_record_is_ignored_on_load(trained, tmp_path):
    import shutil

    from bertbridge.core.reports.record import read_record

    shutil.copytree(trained.path, tmp_path / "deep")
    (tmp_path / "deep" / "training_history.json").write_text("[" * 200_000)
    assert read_record(tmp_path / "deep") is None
    assert bertbridge.load(tmp_path / "deep").predict(["good fun"])


def test_credentials_in_urls_stay_out_of_the_record():
    from bertbridge.core.reports.record import redact_credentials

    spec = {"tracking": {"mlflow_uri": "https://alice:s3cret@mlflow.example.com/api"}, "data": {"train": "/d/t.tsv"}}
    assert redact_credentials(spec) == {"tracking": {"mlflow_uri": "https://***@mlflow.example.com/api"}, "data": {"train": "/d/t.tsv"}}


def test_the_card_reports_the_cross_framework_check(trained, tmp_path, monkeypatch):
    card = (trained.path / "README.md").read_text()
    assert "## Cross-framework check\n\npassed: on 2 probe inputs, the `pytorch` backend's logits and a framework-free" in card
    from bertbridge.core.io import numpy_bert

    real = numpy_bert.logits
    monkeypatch.setattr(numpy_bert, "logits", lambda *a, **k: real(*a, **k) + 0.5)  # as if a weight were saved wrong
    bertbridge.load(trained.path).save(tmp_path / "bad")
    assert "FAILED: on 2 probe inputs" in (tmp_path / "bad" / "README.md").read_text()


def test_the_check_is_skipped_for_large_weights_and_looser_for_bf16(trained, tmp_path, monkeypatch):
    from bertbridge.core.reports import check

    model = bertbridge.load(trained.path)
    probes = [("good fun", None)]
    loose = check.cross_check(trained.path, model.model, model.encoder, "sequence", probes, 32, mixed_precision=True)
    assert loose["passed"] and loose["tolerance"] == check.MIXED_PRECISION_TOLERANCE
    monkeypatch.setattr(check, "MAX_WEIGHT_BYTES", 1)
    skipped = check.cross_check(trained.path, model.model, model.encoder, "sequence", probes, 32)
    assert skipped["passed"] is None and "over the 0 MB the save-time check reads" in skipped["note"]
