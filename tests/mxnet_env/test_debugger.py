"""SageMaker Debugger capture (smdebug trial), the rules, and the attention views."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest

pytest.importorskip("bertbridge.backends.mxnet.debugger")

from conftest import tiny_spec  # noqa: E402
from smdebug.core.modes import ModeKeys  # noqa: E402
from smdebug.trials import create_trial  # noqa: E402

import bertbridge  # noqa: E402
from bertbridge.core.cli import main  # noqa: E402
from bertbridge.core.debugger.capture import Report  # noqa: E402
from bertbridge.core.errors import DataError  # noqa: E402


@pytest.fixture(scope="module")
def debug_run(numpy_model_dir, tmp_path_factory):
    from conftest import toy_sentences, write_tsv

    base = tmp_path_factory.mktemp("debug")
    data = {"train": str(write_tsv(base / "train.tsv", toy_sentences(96, 1))),
            "validation": str(write_tsv(base / "dev.tsv", toy_sentences(32, 2)))}
    spec = tiny_spec(numpy_model_dir, data, base / "model", epochs=4)
    spec["debugger"] = {"attention": True, "steps": [0, 5], "examples": 3}
    clf = bertbridge.train(spec, backend="mxnet")
    return clf, base / "model-debug"


def test_the_trial_is_a_standard_smdebug_trial_with_attention_at_the_chosen_steps(debug_run):
    clf, trial_dir = debug_run
    report = Report.read(trial_dir)
    steps = [r.train_step for r in report.records]
    assert steps[:2] == [0, 5] and steps[2:] == [12, 24, 36, 48]  # chosen steps, then every evaluation
    assert [r.validation_loss is not None for r in report.records] == [False, False, True, True, True, True]
    trial = create_trial(str(trial_dir))
    names = report.tensors
    assert trial.steps(mode=ModeKeys.EVAL) == [r.trial_step for r in report.records]
    assert len(trial.steps(mode=ModeKeys.TRAIN)) == 48  # one per micro-batch, loss saved at each
    for layer in range(2):
        att = trial.tensor(names["attention"][layer]).value(report.records[1].trial_step, mode=ModeKeys.EVAL)
        assert att.shape[:2] == (3, 2) and att.shape[2] == att.shape[3]
        np.testing.assert_allclose(att.sum(-1)[0, :, : len(report.tokens[0])], 1.0, atol=1e-5)
        q = trial.tensor(names["query"][layer]).value(0, mode=ModeKeys.EVAL)
        x = trial.tensor(names["cell_input"][layer]).value(0, mode=ModeKeys.EVAL)
        assert q.shape == x.shape == (att.shape[2], 3, 32)
    ids = trial.tensor(names["token_ids"]).value(0, mode=ModeKeys.EVAL)
    assert clf.encoder.id_tokens(ids[0][: len(report.tokens[0])]) == report.tokens[0]
    assert report.tokens[0][0] == "[CLS]" and report.tokens[0][-1] == "[SEP]"


def test_query_and_key_are_the_projections_the_attention_was_computed_from(debug_run):
    """softmax(q k^T / sqrt(d)) per head reproduces the recorded attention: what a neuron view shows."""
    _, trial_dir = debug_run
    report = Report.read(trial_dir)
    trial = create_trial(str(trial_dir))
    step, n = report.records[-1].trial_step, len(report.tokens[0])
    q = trial.tensor(report.tensors["query"][1]).value(step, mode=ModeKeys.EVAL)[:n, 0]
    k = trial.tensor(report.tensors["key"][1]).value(step, mode=ModeKeys.EVAL)[:n, 0]
    att = trial.tensor(report.tensors["attention"][1]).value(step, mode=ModeKeys.EVAL)[0, :, :n, :n]
    heads, d = report.num_heads, q.shape[1] // report.num_heads
    for h in range(heads):
        scores = q[:, h * d:(h + 1) * d] @ k[:, h * d:(h + 1) * d].T / np.sqrt(d)
        want = np.exp(scores - scores.max(1, keepdims=True))
        np.testing.assert_allclose(want / want.sum(1, keepdims=True), att[h], atol=1e-4)


def test_rule_verdicts_are_reported_and_saved(debug_run):
    clf, trial_dir = debug_run
    rules = Report.read(trial_dir).rules
    assert set(rules) == {"loss_not_decreasing", "overfit"}
    assert rules["loss_not_decreasing"]["triggered"] is False  # the toy task is learnt
    assert clf.debug_report.rules == rules


def test_loss_not_decreasing_fires_when_nothing_is_learnt(numpy_model_dir, toy_data, tmp_path):
    spec = tiny_spec(numpy_model_dir, toy_data, tmp_path / "m", epochs=8, learning_rate=1e-9)
    spec["debugger"] = {"attention": True, "rules": ["loss_not_decreasing"]}
    clf = bertbridge.train(spec, backend="mxnet")
    verdict = clf.debug_report.rules["loss_not_decreasing"]
    assert verdict["triggered"] is True and "did not decrease" in verdict["detail"]


def test_overfit_fires_when_validation_loss_runs_away(numpy_model_dir, tmp_path):
    from conftest import toy_sentences, write_tsv

    rows = toy_sentences(96, 4)
    flipped = [(t, "negative" if l == "positive" else "positive") for t, l in rows]  # the opposite labels
    spec = tiny_spec(numpy_model_dir, {"train": str(write_tsv(tmp_path / "t.tsv", rows)),
                                       "validation": str(write_tsv(tmp_path / "v.tsv", flipped))}, tmp_path / "m", epochs=8)
    spec["debugger"] = {"attention": True, "rules": ["overfit"]}
    spec["training"]["restore_best"] = False
    clf = bertbridge.train(spec, backend="mxnet")
    assert clf.debug_report.rules["overfit"]["triggered"] is True


def test_cli_prints_the_verdicts_in_the_training_summary(numpy_model_dir, toy_data, tmp_path, capsys):
    spec = tiny_spec(numpy_model_dir, toy_data, tmp_path / "m", epochs=2)
    spec["debugger"] = {"attention": True, "out_dir": str(tmp_path / "trial")}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    assert main(["train", str(tmp_path / "spec.json"), "--backend", "mxnet"]) == 0
    out = capsys.readouterr().out
    assert f"debugger_trial={tmp_path / 'trial'}" in out
    assert "debugger_rule_loss_not_decreasing=" in out and "debugger_rule_overfit=" in out


def test_a_foreign_out_dir_is_refused_before_training(numpy_model_dir, toy_data, tmp_path):
    from bertbridge.core.errors import SpecError

    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs" / "notes.txt").write_text("keep me")
    spec = tiny_spec(numpy_model_dir, toy_data, tmp_path / "m")
    spec["debugger"] = {"attention": True, "out_dir": str(tmp_path / "theirs")}
    with pytest.raises(SpecError, match="not a bertbridge trial"):
        bertbridge.train(spec, backend="mxnet")
    assert (tmp_path / "theirs" / "notes.txt").read_text() == "keep me"


def test_html_head_view_and_png_grid(debug_run, tmp_path):
    _, trial_dir = debug_run
    assert main(["attention", str(trial_dir), "--step", "5", "--out", str(tmp_path / "v.html"), "--png", str(tmp_path / "g.png")]) == 0
    page = (tmp_path / "v.html").read_text(encoding="utf-8")
    assert "<script src" not in page and "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    assert '"tokens": ["[CLS]"' in page
    import matplotlib.image

    image = matplotlib.image.imread(str(tmp_path / "g.png"))
    assert image.shape[0] > 100 and image.std() > 0.01  # something was drawn


def test_unknown_step_names_the_recorded_ones(debug_run, tmp_path):
    _, trial_dir = debug_run
    with pytest.raises(DataError, match=r"recorded optimizer steps: 0, 5, 12"):
        bertbridge.core.debugger.attention_view.write(str(trial_dir), 7, tmp_path / "v.html")


def test_token_text_cannot_break_out_of_the_page(debug_run, tmp_path):
    from bertbridge.core.debugger import attention_view

    data = attention_view.load(str(debug_run[1]), 0)
    data.tokens = ["</script><script>alert(1)</script>"] + data.tokens[1:]
    page = attention_view.render_html(data)
    assert "</script><script>alert" not in page


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


@pytest.mark.skipif(CHROMIUM is None, reason="no headless browser: install Debian's chromium package (.ci/run does)")
def test_head_view_renders_in_headless_chromium(debug_run, tmp_path):
    _, trial_dir = debug_run
    view = tmp_path / "view.html"
    assert main(["attention", str(trial_dir), "--step", "48", "--out", str(view)]) == 0
    report = Report.read(trial_dir)
    dom = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'p1'}", "--dump-dom", view.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    assert f'data-rendered="{len(report.tokens[0])}"' in dom  # the script ran and drew every token
    body = dom[dom.index("<body"):dom.index(">", dom.index("<body"))]
    assert "data-error" not in body  # window.onerror would have put it there
    assert dom.count('class="token') == 2 * len(report.tokens[0])
    shot = tmp_path / "view.png"
    subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'p2'}", "--window-size=900,700", f"--screenshot={shot}", view.as_uri()],
                   capture_output=True, timeout=120, check=True)
    import matplotlib.image

    pixels = matplotlib.image.imread(str(shot))
    assert pixels.std() > 0.02  # not a blank page
