"""BERT checkpoints as numpy, in Hugging Face PyTorch naming and layout.

Every backend's artifact is the same ``config.json`` + ``model.safetensors``
(``BertForSequenceClassification`` names, or ``BertForQuestionAnswering``'s for the
``span`` head: ``bert.*`` without a pooler + ``qa_outputs.*``; Linear weights as ``[out, in]``), so
an artifact trained on one framework opens on any other. Backends that do not
use ``transformers`` (TensorFlow, MXNet) read and write it through here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

import numpy as np

from bertbridge.core.errors import ArtifactError, NotSupportedError
from bertbridge.core.io.artifacts import WEIGHTS_NAME, check_weights

if TYPE_CHECKING:  # pragma: no cover
    from bertbridge.core.backend import ModelSetup

SUPPORTED_ACTIVATIONS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "relu")
_IGNORED_SUFFIXES = ("position_ids",)  # buffers some checkpoints carry
_ENCODER_PARTS = ("embeddings.", "encoder.", "pooler.")
_HEADS = ("classifier.", "qa_outputs.")


def read_config(folder: Path) -> dict:
    """``config.json`` of a BERT folder, checked for what the built-in encoders implement."""
    path = Path(folder) / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactError(f"{folder}: no config.json; a model folder needs its Hugging Face config.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path}: not valid JSON ({exc}).") from None
    model_type = config.get("model_type")
    if model_type != "bert":
        raise NotSupportedError(
            f"{path}: model_type {model_type!r}; this backend implements BERT encoders (model_type 'bert') only. "
            "Use the pytorch backend for other architectures."
        )
    if config.get("hidden_act", "gelu") not in SUPPORTED_ACTIVATIONS:
        raise NotSupportedError(f"{path}: hidden_act {config.get('hidden_act')!r} is not one of {', '.join(SUPPORTED_ACTIVATIONS)}.")
    if config.get("position_embedding_type", "absolute") != "absolute":
        raise NotSupportedError(f"{path}: position_embedding_type {config['position_embedding_type']!r}; only 'absolute' is implemented.")
    return config


def classification_config(base: Mapping, setup: ModelSetup) -> dict:
    """The ``config.json`` of a sequence classifier (or, for the span head, a question-answering
    model) built on ``base`` (what transformers writes)."""
    config = {k: v for k, v in base.items() if k not in ("id2label", "label2id", "num_labels", "_name_or_path", "problem_type")}
    if setup.head == "span":
        config.update(architectures=["BertForQuestionAnswering"], id2label={"0": "LABEL_0", "1": "LABEL_1"},
                      label2id={"LABEL_0": 0, "LABEL_1": 1})
        return config
    config.update(
        architectures=["BertForSequenceClassification"],
        id2label={str(i): label for i, label in setup.id2label.items()},
        label2id={label: int(i) for i, label in setup.id2label.items()},
        problem_type="multi_label_classification" if setup.multi_label else "single_label_classification",
    )
    return config


def load_state(folder: Path) -> dict[str, np.ndarray]:
    """Weights of a folder as float32 numpy arrays under ``BertForSequenceClassification`` names
    (a bare ``BertModel`` checkpoint gets the ``bert.`` prefix). Only the encoder, pooler and
    classifier are kept: pre-training heads (``cls.*``) and buffers are dropped."""
    from safetensors.numpy import load_file

    path = check_weights(folder)
    try:
        raw = load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types
        raise ArtifactError(f"{path}: unreadable safetensors file ({exc}). The folder is damaged; retrain or restore it.") from None
    state = {}
    for name, value in raw.items():
        if name.endswith(_IGNORED_SUFFIXES):
            continue
        if name.startswith(_ENCODER_PARTS):
            name = "bert." + name
        if name.startswith(_HEADS) or (name.startswith("bert.") and name[5:].startswith(_ENCODER_PARTS)):
            state[name] = np.asarray(value, dtype=np.float32)
    if not any(k.startswith("bert.encoder.") for k in state):
        raise ArtifactError(f"{path}: no BERT encoder weights (bert.encoder.* or encoder.*); this is not a BERT checkpoint.")
    return state


def save_state(directory: Path, config: Mapping, state: Mapping[str, np.ndarray]) -> None:
    """Write ``config.json`` and ``model.safetensors`` (PyTorch format marker, so transformers reads it)."""
    from safetensors.numpy import save_file

    (Path(directory) / "config.json").write_text(json.dumps(dict(config), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    arrays = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in state.items()}
    save_file(arrays, str(Path(directory) / WEIGHTS_NAME), metadata={"format": "pt"})


def init_head(state: dict[str, np.ndarray], config: Mapping, num_labels: int, seed: int, head: str = "sequence") -> dict[str, np.ndarray]:
    """Add a fresh head: normal(0, initializer_range) weights and zero biases, from numpy's
    generator seeded with ``seed``. ``sequence``: a classifier (and a pooler, when the checkpoint
    has none); ``span``: ``qa_outputs`` (2 outputs), and no pooler (question answering does not use one)."""
    rng = np.random.default_rng(seed)
    hidden = int(config["hidden_size"])
    std = float(config.get("initializer_range", 0.02))
    out = {k: v for k, v in state.items() if not k.startswith(_HEADS)}
    if head == "span":
        out = {k: v for k, v in out.items() if not k.startswith("bert.pooler.")}
        out["qa_outputs.weight"] = rng.normal(0.0, std, (2, hidden)).astype(np.float32)
        out["qa_outputs.bias"] = np.zeros(2, np.float32)
        return out
    if "bert.pooler.dense.weight" not in out:
        out["bert.pooler.dense.weight"] = rng.normal(0.0, std, (hidden, hidden)).astype(np.float32)
        out["bert.pooler.dense.bias"] = np.zeros(hidden, np.float32)
    out["classifier.weight"] = rng.normal(0.0, std, (num_labels, hidden)).astype(np.float32)
    out["classifier.bias"] = np.zeros(num_labels, np.float32)
    return out


def pretrained_classifier(folder: Path, setup: ModelSetup) -> tuple[dict, dict[str, np.ndarray], dict]:
    """``(base config, weights with a fresh head, classifier config.json)`` of a pretrained folder:
    what a backend without ``transformers`` starts fine-tuning from."""
    base = read_config(folder)
    state = init_head(load_state(folder), base, setup.num_labels, setup.seed, setup.head)
    return base, state, classification_config(base, setup)


def saved_classifier(folder: Path, num_labels: int, head: str = "sequence") -> tuple[dict, dict[str, np.ndarray]]:
    """``(config, weights)`` of a saved model folder, its head checked against the label count
    (``sequence``) or for ``qa_outputs`` (``span``)."""
    config = read_config(folder)
    state = load_state(folder)
    check_head(state, num_labels, folder, head)
    return config, state


def check_head(state: Mapping[str, np.ndarray], num_labels: int, folder: Path, head: str = "sequence") -> None:
    if head == "span":
        weight = state.get("qa_outputs.weight")
        if weight is None or weight.shape[0] != 2:
            raise ArtifactError(f"{folder}: model.safetensors has no question-answering head (qa_outputs, 2 outputs), "
                                "but bertbridge.json says question_answering. The folder is inconsistent; retrain or restore it.")
        return
    weight = state.get("classifier.weight")
    if weight is None or weight.shape[0] != num_labels:
        found = "no classifier" if weight is None else f"a classifier for {weight.shape[0]} labels"
        raise ArtifactError(
            f"{folder}: model.safetensors has {found}, but bertbridge.json lists {num_labels} labels. "
            "The folder is inconsistent; retrain or restore it."
        )
