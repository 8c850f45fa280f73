"""Shared fixtures: a tiny random BERT folder and small toy data sets, all made at test time.

Nothing here reads ../shared or downloads anything.
"""

from __future__ import annotations

import importlib.util
import json
import random
from pathlib import Path

import pytest

from bertbridge.core.plugins import registry

# tests/mxnet_env runs in the MXNet environment (make mxnet-env; make test runs both suites)
collect_ignore = [] if importlib.util.find_spec("mxnet") else ["mxnet_env"]

POSITIVE = ["good", "great", "lovely", "superb", "fine", "happy", "brilliant", "charming"]
NEGATIVE = ["bad", "awful", "poor", "boring", "ugly", "sad", "dreadful", "dull"]
FILLER = ["the", "film", "was", "a", "very", "quite", "plot", "and", "actors", "story", "it", "really", "book", "food", "is"]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
VOCAB = SPECIALS + sorted(set(POSITIVE + NEGATIVE + FILLER + ["not", "sports", "music", "news", "?", ".", ","]))

TINY_CONFIG = {
    "architectures": ["BertModel"],
    "model_type": "bert",
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0,
    "max_position_embeddings": 64,
    "type_vocab_size": 2,
    "initializer_range": 0.02,
    "layer_norm_eps": 1e-12,
    "pad_token_id": 0,
}


def write_tokenizer_folder(folder: Path, with_tokenizer_json: bool = True) -> Path:
    """vocab.txt + tokenizer_config.json (+ tokenizer.json built from them) + config.json."""
    from tokenizers.implementations import BertWordPieceTokenizer
    from tokenizers.models import WordPiece

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"do_lower_case": True, "model_max_length": 64, "tokenizer_class": "BertTokenizer"}), encoding="utf-8"
    )
    (folder / "config.json").write_text(json.dumps({**TINY_CONFIG, "vocab_size": len(VOCAB)}), encoding="utf-8")
    if with_tokenizer_json:
        BertWordPieceTokenizer(WordPiece.read_file(str(folder / "vocab.txt")), lowercase=True).save(str(folder / "tokenizer.json"))
    return folder


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory) -> Path:
    """A model folder with tokenizer files and config only (no weights): enough for core."""
    return write_tokenizer_folder(tmp_path_factory.mktemp("tok"))


def write_random_bert(folder: Path, seed: int = 0) -> Path:
    """A random BERT checkpoint written with numpy only (for environments without torch):
    BertModel names, normal(0, 0.02) weights, LayerNorm at identity."""
    import numpy as np
    from safetensors.numpy import save_file

    write_tokenizer_folder(folder)
    rng = np.random.default_rng(seed)
    h, inter, vocab = TINY_CONFIG["hidden_size"], TINY_CONFIG["intermediate_size"], len(VOCAB)
    state = {}

    def dense(name, out, inp):
        state[name + ".weight"] = rng.normal(0, 0.02, (out, inp)).astype(np.float32)
        state[name + ".bias"] = np.zeros(out, np.float32)

    def norm(name):
        state[name + ".weight"], state[name + ".bias"] = np.ones(h, np.float32), np.zeros(h, np.float32)

    state["embeddings.word_embeddings.weight"] = rng.normal(0, 0.02, (vocab, h)).astype(np.float32)
    state["embeddings.position_embeddings.weight"] = rng.normal(0, 0.02, (TINY_CONFIG["max_position_embeddings"], h)).astype(np.float32)
    state["embeddings.token_type_embeddings.weight"] = rng.normal(0, 0.02, (2, h)).astype(np.float32)
    norm("embeddings.LayerNorm")
    for i in range(TINY_CONFIG["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        for part in ("query", "key", "value"):
            dense(p + "attention.self." + part, h, h)
        dense(p + "attention.output.dense", h, h)
        norm(p + "attention.output.LayerNorm")
        dense(p + "intermediate.dense", inter, h)
        dense(p + "output.dense", h, inter)
        norm(p + "output.LayerNorm")
    dense("pooler.dense", h, h)
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder


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


def toy_sentences(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """(text, label) pairs: a sentence is positive iff its sentiment word is positive."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = "positive" if i % 2 == 0 else "negative"
        word = rng.choice(POSITIVE if label == "positive" else NEGATIVE)
        filler = rng.sample(FILLER, rng.randint(2, 10))
        filler.insert(rng.randint(0, len(filler)), word)
        rows.append((" ".join(filler), label))
    rng.shuffle(rows)
    return rows


def write_tsv(path: Path, rows, header=("text", "label")) -> Path:
    lines = ["\t".join(header)] + ["\t".join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture()
def toy_data(tmp_path) -> dict:
    """train.tsv (96 rows) and dev.tsv (32 rows) of keyword sentiment."""
    return {
        "train": str(write_tsv(tmp_path / "train.tsv", toy_sentences(96, seed=1))),
        "validation": str(write_tsv(tmp_path / "dev.tsv", toy_sentences(32, seed=2))),
    }


def tiny_spec(model_dir: Path, data: dict, out: Path, **training) -> dict:
    """A spec dict that trains the tiny model fast (a few seconds on 2 cores)."""
    return {
        "data": {**data, "labels": ["negative", "positive"]},
        "model": {"name": str(model_dir)},
        "training": {
            "epochs": 12, "batch_size": 8, "learning_rate": 2e-3, "warmup_ratio": 0.1,
            "max_seq_length": 32, "log_interval": 5, "seed": 7, **training,
        },
        "output_dir": str(out),
    }


def saved_weights(folder: Path) -> dict:
    """A saved model folder's ``model.safetensors`` as numpy arrays."""
    from safetensors.numpy import load_file

    return load_file(str(Path(folder) / "model.safetensors"))


def saved_metrics(folder: Path) -> dict:
    """The metrics recorded in a saved model folder's ``bertbridge.json``."""
    return json.loads((Path(folder) / "bertbridge.json").read_text())["metrics"]


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
