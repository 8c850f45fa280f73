"""DistilBERT, RoBERTa and XLM-RoBERTa on every backend, from folders transformers itself wrote.

Each architecture's tiny random model (hidden 32, 2 layers) is written by transformers'
``save_pretrained``, with a real tokenizer of its kind built here (cased multilingual WordPiece,
byte-level BPE, SentencePiece Unigram). The checks: the same artifact gives the same logits in
transformers, on every backend and in the numpy reference (classification and span heads, padded
pairs); two AdamW steps from the same start give the same model everywhere; a folder trains on
each backend and the result opens in plain transformers with identical predictions. MXNet is
reached in its own environment (``BERTBRIDGE_MXNET_PYTHON`` or ``.venv-mxnet``), as users reach it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("tensorflow")

import bertbridge  # noqa: E402
from conftest import mx_python  # noqa: E402
from bertbridge.core.backend import ModelSetup  # noqa: E402
from bertbridge.core.errors import NotSupportedError  # noqa: E402
from bertbridge.core.io.architectures import ARCHITECTURES  # noqa: E402
from bertbridge.core.plugins.registry import backends  # noqa: E402
from bertbridge.testing import reference, tiny  # noqa: E402
from bertbridge.testing.conformance import CONTEXTS, QUESTIONS, SPAN_LABELS  # noqa: E402
from bertbridge.testing.readers import BackendReader, ForwardedReader, ReferenceReader  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FAMILY = tuple(tiny.FAMILY)
ATOL = 1e-4
TEXTS = ["the film was good", "Der Film war großartig", "a dull and boring plot", "la película fue maravillosa"]


@pytest.fixture(scope="module")
def bases(tmp_path_factory) -> dict[str, Path]:
    """model_type -> a bare encoder folder written by transformers' save_pretrained (weights normal(0, 0.1),
    LayerNorm scales 1 + normal(0, 0.1), so every tensor matters) with its tokenizer."""
    out = {}
    for model_type in FAMILY:
        folder = tiny.family_config(tmp_path_factory.mktemp(model_type), model_type)
        torch.manual_seed(0)
        model = transformers.AutoModel.from_config(transformers.AutoConfig.from_pretrained(folder))
        with torch.no_grad():
            for name, param in model.named_parameters():
                param.normal_(0.0, 0.1)
                if param.ndim == 1 and "norm" in name.lower() and name.endswith("weight"):
                    param.add_(1.0)
        model.save_pretrained(folder)
        out[model_type] = folder
    return out


def _setup(head: str, n: int = 3, **kw) -> ModelSetup:
    if head == "span":
        return ModelSetup(num_labels=2, multi_label=False, id2label=SPAN_LABELS, seed=3, head="span", **kw)
    return ModelSetup(num_labels=n, multi_label=False, id2label={i: str(i) for i in range(n)}, seed=3, **kw)


def _transformers_logits(folder: Path, head: str, batch) -> np.ndarray:
    """What plain transformers computes from the folder (its own classes, eager attention)."""
    auto = transformers.AutoModelForQuestionAnswering if head == "span" else transformers.AutoModelForSequenceClassification
    model = auto.from_pretrained(folder, attn_implementation="eager").eval()
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if "token_type_ids" in model.forward.__code__.co_varnames else [])
    with torch.no_grad():
        out = model(**{k: torch.from_numpy(batch[k]) for k in names})
    if head == "span":
        return torch.stack([out.start_logits, out.end_logits], -1).numpy()
    return out.logits.numpy()


def _readers():
    return [ReferenceReader(), BackendReader("pytorch"), BackendReader("tensorflow"), ForwardedReader("mxnet", mx_python())]


@pytest.mark.parametrize("head", ["sequence", "span"])
@pytest.mark.parametrize("model_type", FAMILY)
def test_same_logits_in_transformers_every_backend_and_the_reference(bases, model_type, head, tmp_path):
    folder = reference.write_artifact(bases[model_type], tmp_path / "model", head=head, labels=("a", "b", "c"))
    reference.check_layout(folder, head)  # the architecture's own names, as transformers writes them
    batch = reference.encode(folder, QUESTIONS, CONTEXTS)
    assert (batch["attention_mask"] == 0).any()  # padded rows: position numbering and masks matter
    want = _transformers_logits(folder, head, batch)
    assert np.ptp(want, axis=0).max() > 1e-2  # not a degenerate model: inputs give different logits
    diffs = {repr(r): float(np.abs(r.logits(folder, _setup(head), batch) - want).max()) for r in _readers()}
    print(f"{model_type} {head}: max |logits - transformers| by reader: {diffs}")
    assert all(d <= ATOL for d in diffs.values()), diffs


@pytest.mark.parametrize("head", ["sequence", "span"])
@pytest.mark.parametrize("model_type", FAMILY)
def test_two_adamw_steps_from_the_same_start_agree(bases, model_type, head, tmp_path):
    folder = reference.write_artifact(bases[model_type], tmp_path / "start", head=head, labels=("n", "p"), std=0.02)
    if head == "span":
        batch = reference.encode(folder, QUESTIONS, CONTEXTS, max_length=32)
        lengths = batch["attention_mask"].sum(1)
        batch["labels"] = np.stack([lengths - 3, lengths - 2], axis=1).astype(np.int64)  # tokens of the context
    else:
        batch = reference.encode(folder, TEXTS * 2, max_length=32, labels=np.array([0, 1] * 4))
    setup = _setup(head, n=2, weight_decay=0.01, max_grad_norm=0.5)
    steps = (1e-3, 5e-4)
    want = _free_offset(BackendReader("pytorch").logits(folder, setup, batch, steps=steps), head)
    assert np.abs(want - _free_offset(reference.logits(folder, batch, head), head)).max() > 1e-3  # the steps moved the model
    for reader in (BackendReader("tensorflow"), ForwardedReader("mxnet", mx_python())):
        diff = float(np.abs(_free_offset(reader.logits(folder, setup, batch, steps=steps), head) - want).max())
        print(f"{model_type} {head}: after two AdamW steps, max |{reader} - pytorch| = {diff:.2e}")
        assert diff <= ATOL, f"{reader}: {diff}"


def _free_offset(logits: np.ndarray, head: str) -> np.ndarray:
    """Span logits less their mean over the positions (per row, start and end). A softmax over the
    positions ignores that offset, so the loss gives ``qa_outputs.bias`` (and the last LayerNorm bias,
    in part) a zero gradient, which each framework computes as different rounding noise and AdamW
    (eps 1e-8) turns into steps of up to ``lr``. Everything the loss and the answers depend on must agree."""
    return logits - logits.mean(axis=1, keepdims=True) if head == "span" else logits


def _train(spec: dict, backend: str, tmp_path: Path) -> Path:
    if backend != "mxnet":
        bertbridge.train(spec, backend=backend)
        return Path(spec["output_dir"])
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec), encoding="utf-8")
    env = {**os.environ, "BERTBRIDGE_MXNET_PYTHON": mx_python()}
    run = subprocess.run([sys.executable, "-m", "bertbridge.core.cli", "train", str(path), "--backend", "mxnet"],
                         capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return Path(spec["output_dir"])


@pytest.mark.parametrize("backend", ["pytorch", "tensorflow", "mxnet"])
@pytest.mark.parametrize("model_type", FAMILY)
def test_a_save_pretrained_folder_trains_and_opens_in_transformers(bases, model_type, backend, toy_data, tmp_path):
    spec = tiny.tiny_spec(bases[model_type], toy_data, tmp_path / "out", epochs=2)
    out = _train(spec, backend, tmp_path)
    assert json.loads((out / "config.json").read_text())["architectures"] == [ARCHITECTURES[model_type].classes["sequence"]]
    reference.check_layout(out, "sequence")
    batch = reference.encode(out, TEXTS)
    logits = _transformers_logits(out, "sequence", batch)
    theirs = torch.softmax(torch.from_numpy(logits), -1).numpy()
    ours = bertbridge.load(out, backend="pytorch" if backend == "mxnet" else backend).predict_proba(TEXTS)
    assert np.abs(ours - theirs).max() <= ATOL
    trained = reference.logits(out, batch)
    assert np.abs(trained - logits).max() <= ATOL


@pytest.mark.parametrize("model_type", FAMILY)
def test_question_answering_trains_from_a_save_pretrained_folder(bases, model_type, tmp_path):
    data = {"train": str(tmp_path / "train.json"), "validation": str(tmp_path / "dev.json")}
    tiny.toy_squad(data["train"], 48, seed=1)
    tiny.toy_squad(data["validation"], 12, seed=2)
    out = Path(tmp_path / "qa")
    bertbridge.train(tiny.qa_spec(bases[model_type], data, out), backend="tensorflow")
    assert json.loads((out / "config.json").read_text())["architectures"] == [ARCHITECTURES[model_type].classes["span"]]
    answers = bertbridge.load(out, backend="pytorch").predict([{"question": "what is good ?", "context": "the film was very good ."}])
    assert answers[0]["answer"] in "the film was very good ."
    batch = reference.encode(out, ["what is good ?"], ["the film was very good ."])
    theirs = _transformers_logits(out, "span", batch)
    assert np.abs(theirs - reference.logits(out, batch, "span")).max() <= ATOL * max(1.0, np.abs(theirs).max())  # float32 rounding grows with the logits
    # explain finds the context by the tokenizer's sequence ids (RoBERTa gives both texts token type 0)
    from bertbridge.core.debugger.explain import explain

    result = explain(bertbridge.load(out, backend="pytorch"), "what is good ?", "the film was very good .", steps=16)
    start, end = (int(x) for x in result["target"].rsplit(" ", 1)[1].split("-"))
    specials = [i for i, token in enumerate(result["tokens"]) if token in {"[CLS]", "[SEP]", "<s>", "</s>"}]
    assert specials[-2] < start <= end < specials[-1], result  # inside the context: after the separator(s), before the last


def test_the_issue_repro_a_distilbert_folder_with_the_minilm_tokenizer_trains_from_the_cli(tmp_path):
    """DistilBERT weights from save_pretrained plus the packaged MiniLM's tokenizer files, trained with
    the README's example spec on the pytorch backend (with transformers 4.x it failed on token_type_ids;
    test_pytorch_gives_distilbert_no_token_type_ids checks the cause on any version)."""
    from bertbridge.core.plugins.registry import models

    try:
        minilm = models().resolve("minilm")
    except bertbridge.BertbridgeError as exc:
        pytest.skip(f"the packaged MiniLM is not installed: {exc}")
    folder = tmp_path / "distil"
    folder.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        if (minilm / name).is_file():
            (folder / name).write_bytes((minilm / name).read_bytes())
    config = transformers.DistilBertConfig(vocab_size=30522, dim=32, n_layers=2, n_heads=2, hidden_dim=64, max_position_embeddings=128)
    torch.manual_seed(0)
    transformers.DistilBertModel(config).save_pretrained(folder)
    run = subprocess.run([sys.executable, "-m", "bertbridge.core.cli", "train", str(REPO / "examples/sentiment/spec.yaml"),
                          "--backend", "pytorch", "--set", f"model.name={folder}", "--set", "training.epochs=1",
                          "--set", f"output_dir={tmp_path / 'out'}"], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    saved = json.loads((tmp_path / "out" / "config.json").read_text())
    assert saved["model_type"] == "distilbert" and saved["architectures"] == ["DistilBertForSequenceClassification"]


def test_an_unsupported_model_type_is_refused_with_the_list(bases, tmp_path):
    folder = tmp_path / "electra"
    folder.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json", "model.safetensors"):
        (folder / name).write_bytes((bases["roberta"] / name).read_bytes())
    config = json.loads((bases["roberta"] / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "electra"}))
    for name in ("pytorch", "tensorflow"):
        with pytest.raises(NotSupportedError) as err:
            backends().get(name).create_model(folder, _setup("sequence"))
        message = str(err.value)
        assert "'electra'" in message and f"the {name} backend" in message
        assert all(arch in message for arch in ("bert", "distilbert", "roberta", "xlm-roberta"))


def test_backends_json_lists_the_architectures_of_each_backend():
    run = subprocess.run([sys.executable, "-m", "bertbridge.core.cli", "backends", "--json"], capture_output=True, text=True,
                         env={**os.environ, "BERTBRIDGE_MXNET_PYTHON": mx_python()}, timeout=300)
    assert run.returncode == 0, run.stderr
    listed = {e["name"]: e["architectures"] for e in json.loads(run.stdout)}
    for name in ("pytorch", "tensorflow", "mxnet"):
        assert listed[name] == ["bert", "distilbert", "roberta", "xlm-roberta"], listed
    assert listed["onnx"] == []  # runs exports only: no architectures of its own


@pytest.fixture(scope="module")
def classifiers(bases, tmp_path_factory) -> dict[str, Path]:
    """model_type -> a 3-label classifier folder (random head with biases, the base's varied encoder)."""
    from bertbridge.core.io.artifacts import Manifest, write_manifest

    out = {}
    for model_type in FAMILY:
        folder = reference.write_artifact(bases[model_type], tmp_path_factory.mktemp(f"clf-{model_type}") / "model")
        write_manifest(folder, Manifest(task="text_classification", labels=("a", "b", "c"), backend="pytorch",
                                        max_seq_length=64, lowercase=False))
        out[model_type] = folder
    return out


@pytest.mark.parametrize("fmt", ["onnx", "pt2", "savedmodel"])
@pytest.mark.parametrize("model_type", FAMILY)
def test_exports_give_the_model_s_logits(classifiers, model_type, fmt, tmp_path):
    """Every export keeps the three-input signature; DistilBERT's ignores token_type_ids (ONNX drops the input)."""
    folder = classifiers[model_type]
    exported = bertbridge.export(folder, fmt, tmp_path / fmt)
    batch = reference.encode(folder, QUESTIONS, CONTEXTS)
    want = _transformers_logits(folder, "sequence", batch)
    assert np.ptp(want, axis=0).max() > 1e-2  # inputs give different logits
    if fmt == "savedmodel":  # TF Serving's signature, called as TF Serving calls it
        import tensorflow as tf

        signature = tf.saved_model.load(str(exported)).signatures["serving_default"]
        got = signature(**{k: tf.constant(v) for k, v in batch.items()})["logits"].numpy()
    else:
        got = bertbridge.load(tmp_path / fmt).model.logits(batch)
    assert np.abs(got - want).max() <= ATOL


def test_pytorch_gives_distilbert_no_token_type_ids(bases, tmp_path):
    """transformers 4.x's DistilBERT classes take no ``token_type_ids`` (a TypeError, the issue's traceback,
    on the SageMaker image's transformers<5); 5.x swallows it. Either way it is not passed."""
    folder = reference.write_artifact(bases["distilbert"], tmp_path / "model")
    model = backends().get("pytorch").load_model(folder, _setup("sequence"))
    seen = []
    model.model.register_forward_pre_hook(lambda module, args, kwargs: seen.append(sorted(kwargs)), with_kwargs=True)
    model.logits(reference.encode(folder, TEXTS))
    assert seen == [["attention_mask", "input_ids"]]


def test_roberta_s_usable_length_leaves_out_the_skipped_position_rows(bases, tmp_path):
    """RoBERTa numbers positions from pad_token_id + 1: a 66-row table holds 64 tokens."""
    from bertbridge.core.errors import SpecError
    from bertbridge.core.text.tokenize import TextEncoder

    folder = tmp_path / "roberta"
    folder.mkdir()
    for name in ("tokenizer.json", "config.json"):
        (folder / name).write_bytes((bases["roberta"] / name).read_bytes())
    config = json.loads((bases["roberta"] / "tokenizer_config.json").read_text())
    config.pop("model_max_length")
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    encoder = TextEncoder.from_pretrained(folder)
    assert encoder.model_max_length == 64
    with pytest.raises(SpecError, match="handles at most 64 tokens"):
        encoder.check_max_length(65)


@pytest.mark.parametrize("model_type", FAMILY)
def test_question_answering_windows_use_the_architecture_s_template_and_clean_offsets(bases, model_type):
    """RoBERTa-style pairs (<s> question </s></s> context </s>) and SentencePiece's ``▁film``: a token's
    character span starts at its text, not at the space the piece stands for, so answers carry no space."""
    from bertbridge.core.tasks.qa.features import build_features
    from bertbridge.core.tasks.qa.squad import examples_from_pairs
    from bertbridge.core.text.tokenize import TextEncoder

    encoder = TextEncoder.from_pretrained(bases[model_type])
    context = "the film was very good .  Der Film war großartig"
    feats = build_features(examples_from_pairs(["what is good ?"], [context]), encoder, max_seq_length=64, doc_stride=16,
                           max_question_length=16)
    ids, offsets = feats.input_ids[0], feats.offsets[0]
    inside = offsets[:, 0] >= 0
    tokens = encoder.id_tokens(ids)
    if model_type == "distilbert":
        assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]" and tokens.count("[SEP]") == 2
    else:
        assert tokens[0] == "<s>" and tokens[-1] == "</s>" and "</s></s>" in "".join(tokens[:-1])  # <s> q </s></s> c </s>
    spans = [context[a:b] for a, b in offsets[inside]]
    covered = {i for a, b in offsets[inside] for i in range(a, b)}
    assert covered == {i for i, ch in enumerate(context) if not ch.isspace()}  # every character, no space
    assert not any(s[:1].isspace() for s in spans), spans


def test_padding_comes_from_the_folder_when_the_tokenizer_config_names_none(bases, tmp_path):
    """Hub RoBERTa folders can lack pad_token in tokenizer_config.json, and their vocabulary has no [PAD]:
    the padding id then comes from config.json (1, not 0 = <s>); a config.json without one gets transformers' default."""
    from bertbridge.core.text.tokenize import TextEncoder

    folder = tmp_path / "roberta"
    folder.mkdir()
    (folder / "tokenizer.json").write_bytes((bases["roberta"] / "tokenizer.json").read_bytes())
    config = json.loads((bases["roberta"] / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(config))
    assert TextEncoder.from_pretrained(folder).pad_id == 1 == config["pad_token_id"]
    del config["pad_token_id"]
    (folder / "config.json").write_text(json.dumps(config))
    assert TextEncoder.from_pretrained(folder).pad_id == 1  # <pad> in the vocabulary
    assert ARCHITECTURES["roberta"].encoder_config(config)["position_offset"] == 2  # RobertaConfig's pad_token_id 1
    config["pad_token_id"] = "x"
    with pytest.raises(NotSupportedError, match="needs an integer pad_token_id"):
        ARCHITECTURES["roberta"].encoder_config(config)


def test_legacy_layer_norm_names_are_read_as_transformers_reads_them(bases, tmp_path):
    """TF-converted checkpoints name LayerNorm parameters gamma/beta; transformers renames them on load."""
    from safetensors.numpy import load_file, save_file

    folder = tmp_path / "legacy"
    folder.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json", "config.json"):
        (folder / name).write_bytes((bases["roberta"] / name).read_bytes())
    state = load_file(str(bases["roberta"] / "model.safetensors"))
    renamed = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v for k, v in state.items()}
    assert renamed.keys() != state.keys()
    save_file(renamed, str(folder / "model.safetensors"), metadata={"format": "pt"})
    a = reference.write_artifact(bases["roberta"], tmp_path / "a")
    b = reference.write_artifact(folder, tmp_path / "b")
    batch = reference.encode(a, TEXTS)
    assert np.array_equal(reference.logits(a, batch), reference.logits(b, batch))
    got = backends().get("tensorflow").create_model(folder, _setup("sequence")).snapshot()
    assert np.array_equal(got["bert.embeddings.LayerNorm.weight"], state["embeddings.LayerNorm.weight"])


def test_distilbert_with_sinusoidal_positions_reads_the_table_transformers_wrote(tmp_path):
    """``sinusoidal_pos_embds: true`` only changes how transformers initialises the position table; the
    table is in the checkpoint, and every reader uses it as written."""
    folder = tiny.family_config(tmp_path / "sin", "distilbert")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "sinusoidal_pos_embds": True}))
    torch.manual_seed(0)
    model = transformers.AutoModel.from_config(transformers.AutoConfig.from_pretrained(folder))
    model.save_pretrained(folder)
    table = model.embeddings.position_embeddings.weight.detach().numpy()
    assert np.allclose(table[1, 1::2], np.cos(1 / 10000 ** (2 * (np.arange(1, 32, 2) // 2) / 32)), atol=1e-6)  # sinusoidal
    artifact = reference.write_artifact(folder, tmp_path / "model", head="span")
    batch = reference.encode(artifact, QUESTIONS, CONTEXTS)
    want = _transformers_logits(artifact, "span", batch)
    for reader in (BackendReader("tensorflow"), ReferenceReader()):
        assert np.abs(reader.logits(artifact, _setup("span"), batch) - want).max() <= ATOL
