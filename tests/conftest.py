"""Shared fixtures: a tiny random BERT folder and small toy data sets, all made at test time
(the builders live in bertbridge.testing, where third-party backends' tests find them too).

Nothing here reads ../shared or downloads anything.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from bertbridge.core.plugins import registry
# tests import these from conftest too
from bertbridge.testing import (  # noqa: F401
    FILLER, NEGATIVE, POSITIVE, SPECIALS, TINY_CONFIG, VOCAB, tiny_spec, toy_sentences, write_random_bert,
    write_tokenizer_folder, write_tsv,
)
from bertbridge.testing import toy_data as write_toy_data

# tests/mxnet_env runs in the MXNet environment (make mxnet-env; make test runs both suites)
collect_ignore = [] if importlib.util.find_spec("mxnet") else ["mxnet_env"]


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory) -> Path:
    """A model folder with tokenizer files and config only (no weights): enough for core."""
    return write_tokenizer_folder(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="session")
def numpy_model_dir(tmp_path_factory) -> Path:
    """A random 2-layer BERT (hidden 32) made without torch (the mxnet environment has none)."""
    return write_random_bert(tmp_path_factory.mktemp("numpy_bert"))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A random-initialised 2-layer BERT (hidden 32) as a Hugging Face folder."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    folder = write_tokenizer_folder(tmp_path_factory.mktemp("tiny_bert"))
    torch.manual_seed(0)
    config = transformers.BertConfig(**{**TINY_CONFIG, "vocab_size": len(VOCAB)})
    transformers.BertModel(config).save_pretrained(folder, safe_serialization=True)
    return folder


@pytest.fixture(scope="session")
def tiny_classifier(tmp_path_factory):
    """The tiny random BERT fine-tuned for 2 epochs on the toy sentences with PyTorch (a TextClassifier)."""
    pytest.importorskip("torch")
    import bertbridge

    folder = tmp_path_factory.mktemp("tiny_classifier")
    data = write_toy_data(folder)
    return bertbridge.train(tiny_spec(write_random_bert(folder / "base"), data, folder / "model", epochs=2), backend="pytorch")


@pytest.fixture()
def toy_data(tmp_path) -> dict:
    """train.tsv (96 rows) and dev.tsv (32 rows) of keyword sentiment."""
    return write_toy_data(tmp_path)


def saved_weights(folder: Path) -> dict:
    """A saved model folder's ``model.safetensors`` as numpy arrays."""
    from safetensors.numpy import load_file

    return load_file(str(Path(folder) / "model.safetensors"))


def saved_metrics(folder: Path) -> dict:
    """The metrics recorded in a saved model folder's ``bertbridge.json``."""
    return json.loads((Path(folder) / "bertbridge.json").read_text())["metrics"]


def mx_python() -> str:
    """The MXNet environment's Python (BERTBRIDGE_MXNET_PYTHON, else .venv-mxnet); skips the test without one."""
    import os

    path = os.environ.get("BERTBRIDGE_MXNET_PYTHON") or str(Path(__file__).resolve().parents[1] / ".venv-mxnet" / "bin" / "python")
    if not Path(path).is_file():
        pytest.skip("no MXNet environment: run make mxnet-env (make test builds it)")
    return path


def process_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie not yet reaped by its parent counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


@pytest.fixture(autouse=True)
def _fresh_registry(monkeypatch):
    """Each test sees freshly built registries and no backend from the environment."""
    monkeypatch.delenv("BERTBRIDGE_BACKEND", raising=False)
    monkeypatch.setenv("BERTBRIDGE_PROGRESS", "0")
    registry.reset()
    yield
    registry.reset()
