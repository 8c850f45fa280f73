"""``bertbridge attention MODEL``: attention of any model folder on one input, on the backend that opens
it, rendered as the Debugger path renders a trial (HTML head view, PNG grid); the backends agree."""

import shutil
import subprocess

import numpy as np
import pytest

pytest.importorskip("torch")

from conftest import tiny_spec, toy_sentences, write_tsv  # noqa: E402

import bertbridge  # noqa: E402
from bertbridge.core.cli import main  # noqa: E402
from bertbridge.core.debugger import attention_view  # noqa: E402
from bertbridge.core.errors import NotSupportedError  # noqa: E402

TEXT = "a dull and boring plot , really"


@pytest.fixture(scope="module")
def trained(tiny_model_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("attention")
    data = {"train": str(write_tsv(tmp / "t.tsv", toy_sentences(32, 1)))}
    return bertbridge.train(tiny_spec(tiny_model_dir, data, tmp / "model", epochs=1))


def test_attention_is_transformers_output_attentions(trained):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    data = attention_view.from_model(bertbridge.load(trained.path), TEXT)
    tok = AutoTokenizer.from_pretrained(trained.path)
    ref = AutoModelForSequenceClassification.from_pretrained(trained.path, attn_implementation="eager").eval()
    with torch.no_grad():
        want = torch.stack(ref(**tok(TEXT, return_tensors="pt"), output_attentions=True).attentions, dim=1)[0].numpy()
    assert data.tokens == tok.convert_ids_to_tokens(tok(TEXT)["input_ids"])
    np.testing.assert_allclose(data.attention, want, atol=1e-6)
    np.testing.assert_allclose(data.attention.sum(-1), 1.0, atol=1e-5)  # each query's row is a softmax


def test_tensorflow_gives_the_same_attention_as_pytorch(trained):
    pytest.importorskip("tensorflow")
    torch_view = attention_view.from_model(bertbridge.load(trained.path), TEXT, "good good good fun")
    tf_view = attention_view.from_model(bertbridge.load(trained.path, backend="tensorflow"), TEXT, "good good good fun")
    assert tf_view.tokens == torch_view.tokens and tf_view.attention.shape == torch_view.attention.shape
    np.testing.assert_allclose(tf_view.attention, torch_view.attention, atol=1e-5)


def test_cli_writes_the_head_view_and_grid_and_says_what_it_drew(trained, tmp_path, capsys):
    out, png = tmp_path / "v.html", tmp_path / "g.png"
    assert main(["attention", str(trained.path), "--text", TEXT, "--out", str(out), "--png", str(png)]) == 0
    page = out.read_text(encoding="utf-8")
    assert "Attention head view, model model" in page and "a dull and boring plot" in page
    assert '"tokens": ["[CLS]", "a", "dull"' in page
    summary = capsys.readouterr().out
    assert '"tokens": 9' in summary and '"layers": 2' in summary  # [CLS] + 7 words + [SEP]
    import matplotlib.image

    assert matplotlib.image.imread(str(png)).std() > 0.02


def test_cli_mistakes_name_the_fix(trained, tmp_path, capfd):
    assert main(["attention", str(trained.path), "--out", str(tmp_path / "v.html")]) == 2
    assert "bertbridge attention runs a text_classification model on one --text" in capfd.readouterr().err
    assert main(["attention", str(trained.path), "--text", "x", "--step", "3", "--out", str(tmp_path / "v.html")]) == 2
    assert "is a model folder: --step is for debugger trials" in capfd.readouterr().err
    # not a model folder: read as a trial (forwarded to the MXNet environment when smdebug is not here: capfd)
    assert main(["attention", str(tmp_path), "--out", str(tmp_path / "v.html")]) == 2
    assert "so it is read as a debugger trial: give --step N" in capfd.readouterr().err
    assert not (tmp_path / "v.html").exists()


def test_an_export_refuses_with_the_way_out(trained, tmp_path):
    pytest.importorskip("onnxruntime")
    export = bertbridge.export(trained.path, "onnx", tmp_path / "onnx").parent
    with pytest.raises(NotSupportedError, match=r"does not expose attention weights; open the model folder \(not an export\)"):
        attention_view.from_model(bertbridge.load(export), TEXT)


def test_question_answering_takes_question_and_context(tiny_model_dir, tmp_path, capsys):
    from bertbridge.testing import tiny

    tiny.toy_squad(tmp_path / "train.json", 8, seed=1)
    qa = bertbridge.train(tiny.qa_spec(tiny_model_dir, {"train": str(tmp_path / "train.json")}, tmp_path / "qa", epochs=1),
                          backend="pytorch")
    out = tmp_path / "qa.html"
    assert main(["attention", str(qa.path), "--question", "Who wrote it?", "--context", "Ada Lovelace wrote it in 1843.",
                 "--out", str(out)]) == 0
    assert "Who wrote it? / Ada Lovelace wrote it in 1843." in out.read_text(encoding="utf-8")
    assert main(["attention", str(qa.path), "--text", "Who?", "--out", str(out)]) == 2
    assert "bertbridge attention runs it on one --question Q and one --context C" in capsys.readouterr().err


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


@pytest.mark.skipif(CHROMIUM is None, reason="no headless browser: install Debian's chromium package (.ci/run does)")
def test_the_model_head_view_renders_in_headless_chromium(trained, tmp_path):
    view = tmp_path / "view.html"
    data = attention_view.write_data(attention_view.from_model(bertbridge.load(trained.path), TEXT), view)
    dom = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'p1'}", "--dump-dom", view.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    assert f'data-rendered="{len(data.tokens)}"' in dom  # the script ran and drew every token
    body = dom[dom.index("<body"):dom.index(">", dom.index("<body"))]
    assert "data-error" not in body
    assert dom.count('class="token') == 2 * len(data.tokens)


def _page_payload(page: str) -> dict:
    import json

    start = page.index('<script id="data" type="application/json">') + len('<script id="data" type="application/json">')
    return json.loads(page[start:page.index("</script>", start)].replace("<\\/", "</"))


def test_an_mxnet_run_draws_what_pytorch_draws(trained, tmp_path, monkeypatch):
    """The command forwards to the MXNet environment (BERTBRIDGE_MXNET_PYTHON, as make test sets it)."""
    import os
    from pathlib import Path

    python = os.environ.get("BERTBRIDGE_MXNET_PYTHON") or str(Path(__file__).resolve().parents[1] / ".venv-mxnet" / "bin" / "python")
    if not Path(python).is_file():
        pytest.skip("no MXNet environment: run make mxnet-env (make test builds it)")
    monkeypatch.setenv("BERTBRIDGE_MXNET_PYTHON", python)
    out = tmp_path / "mx.html"
    assert main(["attention", str(trained.path), "--backend", "mxnet", "--text", TEXT, "--out", str(out)]) == 0
    drawn = _page_payload(out.read_text(encoding="utf-8"))
    want = attention_view.from_model(bertbridge.load(trained.path), TEXT)
    assert drawn["tokens"] == want.tokens
    np.testing.assert_allclose(np.array(drawn["attention"]), want.attention, atol=2e-4)  # the page rounds to 4 digits
