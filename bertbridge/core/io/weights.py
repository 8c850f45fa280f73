"""Encoder checkpoints as numpy, in canonical (BERT) naming and Hugging Face layout.

Every backend's artifact is the same ``config.json`` + ``model.safetensors`` that transformers
writes for the architecture (``BertForSequenceClassification``, ``DistilBertForQuestionAnswering``,
``RobertaForSequenceClassification``, ...; Linear weights as ``[out, in]``), so an artifact trained
on one framework opens on any other and in transformers. Backends that do not use
``transformers`` (TensorFlow, MXNet) read and write it through here: on read, weights are renamed
to canonical names and the config gets its canonical view (:mod:`.architectures`); on write, the
names go back to the architecture's own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Optional

import numpy as np

from bertbridge.core.errors import ArtifactError, NotSupportedError
from bertbridge.core.io.architectures import Architecture, architecture, encoder_weights
from bertbridge.core.io.artifacts import WEIGHTS_NAME, check_weights

if TYPE_CHECKING:  # pragma: no cover
    from bertbridge.core.backend import ModelSetup

SUPPORTED_ACTIVATIONS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "relu")
_HEADS = ("classifier.", "qa_outputs.")  # canonical names of the layers a fresh head replaces


def read_raw_config(folder: Path) -> dict:
    """``config.json`` of a model folder, as written."""
    path = Path(folder) / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactError(f"{folder}: no config.json; a model folder needs its Hugging Face config.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path}: not valid JSON ({exc}).") from None
    if not isinstance(config, dict):
        raise ArtifactError(f"{path}: not a JSON object; a model folder needs its Hugging Face config.")
    return config


def folder_architecture(folder: Path, supported: Optional[tuple[str, ...]] = None, backend: Optional[str] = None) -> Architecture:
    """The :class:`~.architectures.Architecture` of a model folder (NotSupportedError naming what
    ``backend`` supports otherwise)."""
    return architecture(read_raw_config(folder).get("model_type"), supported=supported,
                        where=str(Path(folder) / "config.json"), backend=backend)


def read_config(folder: Path, supported: Optional[tuple[str, ...]] = None, backend: Optional[str] = None) -> tuple[dict, dict]:
    """``(canonical encoder config, config.json as written)`` of a model folder, checked for what the
    built-in encoders implement."""
    path = Path(folder) / "config.json"
    raw = read_raw_config(folder)
    arch = architecture(raw.get("model_type"), supported=supported, where=str(path), backend=backend)
    config = arch.encoder_config(raw)
    missing = [k for k in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                           "max_position_embeddings", "vocab_size") if k not in config]
    if missing:
        own = [arch.config_keys.get(k, k) for k in missing]
        raise ArtifactError(f"{path}: missing {', '.join(own)}; the folder's config.json is incomplete.")
    if config["hidden_act"] not in SUPPORTED_ACTIVATIONS:
        raise NotSupportedError(f"{path}: hidden_act {config['hidden_act']!r} is not one of {', '.join(SUPPORTED_ACTIVATIONS)}.")
    if raw.get("position_embedding_type", "absolute") != "absolute":
        raise NotSupportedError(f"{path}: position_embedding_type {raw['position_embedding_type']!r}; only 'absolute' is implemented.")
    return config, raw


def classification_config(base: Mapping, setup: ModelSetup) -> dict:
    """The ``config.json`` of a sequence classifier (or, for the span head, a question-answering
    model) built on ``base`` (``config.json`` as written; what transformers writes)."""
    classes = architecture(base.get("model_type")).classes
    config = {k: v for k, v in base.items() if k not in ("id2label", "label2id", "num_labels", "_name_or_path", "problem_type")}
    if setup.head == "span":
        config.update(architectures=[classes["span"]], id2label={"0": "LABEL_0", "1": "LABEL_1"},
                      label2id={"LABEL_0": 0, "LABEL_1": 1})
        return config
    config.update(
        architectures=[classes["sequence"]],
        id2label={str(i): label for i, label in setup.id2label.items()},
        label2id={label: int(i) for i, label in setup.id2label.items()},
        problem_type="multi_label_classification" if setup.multi_label else "single_label_classification",
    )
    return config


def load_state(folder: Path, config: Optional[Mapping] = None) -> dict[str, np.ndarray]:
    """Weights of a folder as float32 numpy arrays under canonical names (a bare encoder
    checkpoint's too). Only the encoder and the task heads are kept: pre-training heads (``cls.*``,
    ``vocab_*``), buffers and RoBERTa's unused pooler are dropped. ``config`` (the canonical one,
    read from the folder when None) says which encoder tensors must be there."""
    from safetensors.numpy import load_file

    if config is None:
        config, _ = read_config(folder)
    arch = architecture(config["model_type"])
    path = check_weights(folder)
    try:
        raw = load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types
        raise ArtifactError(f"{path}: unreadable safetensors file ({exc}). The folder is damaged; retrain or restore it.") from None
    state = {}
    for name, value in raw.items():
        canonical = arch.to_canonical(name)
        if canonical is not None:
            state[canonical] = np.asarray(value, dtype=np.float32)
    missing = [n for n in encoder_weights(config) if n not in state]
    if missing:
        raise ArtifactError(
            f"{path}: {len(missing)} {arch.name} encoder weight(s) missing, e.g. {arch.from_canonical(missing[0])} "
            f"(config.json says model_type {arch.name!r} with {config['num_hidden_layers']} layers). "
            "This is not a complete checkpoint of that architecture; retrain or restore the folder."
        )
    return state


def save_state(directory: Path, config: Mapping, state: Mapping[str, np.ndarray]) -> None:
    """Write ``config.json`` (as written: ``config``) and ``model.safetensors`` under the
    architecture's own names (PyTorch format marker, so transformers reads it)."""
    from safetensors.numpy import save_file

    arch = architecture(config.get("model_type"))
    (Path(directory) / "config.json").write_text(json.dumps(dict(config), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    arrays = {arch.from_canonical(k): np.ascontiguousarray(v, dtype=np.float32) for k, v in state.items()}
    save_file(arrays, str(Path(directory) / WEIGHTS_NAME), metadata={"format": "pt"})


def init_head(state: dict[str, np.ndarray], config: Mapping, num_labels: int, seed: int, head: str = "sequence") -> dict[str, np.ndarray]:
    """``state`` with a fresh head (:func:`fresh_head`) in place of any it had."""
    out = {k: v for k, v in state.items() if not k.startswith(_HEADS)}
    if head == "span":  # question answering does not use a pooler
        out = {k: v for k, v in out.items() if not k.startswith("bert.pooler.")}
    return {**out, **fresh_head(config, num_labels, seed, head, has_pooler="bert.pooler.dense.weight" in out)}


def fresh_head(config: Mapping, num_labels: int, seed: int, head: str = "sequence", *, has_pooler: bool = True) -> dict[str, np.ndarray]:
    """The head every backend starts fine-tuning from, so that one spec and seed start from the same
    weights on every backend: normal(0, ``initializer_range``) weights and zero biases, drawn from
    numpy's generator seeded with ``seed``, under canonical names. ``sequence``: ``classifier``
    (``num_labels`` outputs), after the first dense layer (``bert.pooler.dense``) when the
    checkpoint has none (``has_pooler`` False); ``span``: ``qa_outputs`` (2 outputs)."""
    rng = np.random.default_rng(seed)
    hidden = int(config["hidden_size"])
    std = float(config.get("initializer_range", 0.02))
    if head == "span":
        return {"qa_outputs.weight": rng.normal(0.0, std, (2, hidden)).astype(np.float32),
                "qa_outputs.bias": np.zeros(2, np.float32)}
    out = {}
    if not has_pooler:
        out["bert.pooler.dense.weight"] = rng.normal(0.0, std, (hidden, hidden)).astype(np.float32)
        out["bert.pooler.dense.bias"] = np.zeros(hidden, np.float32)
    out["classifier.weight"] = rng.normal(0.0, std, (num_labels, hidden)).astype(np.float32)
    out["classifier.bias"] = np.zeros(num_labels, np.float32)
    return out


def checkpoint_has_pooler(folder: Path, config: Mapping) -> bool:
    """Whether a folder's weights hold the first dense layer of a sequence head (canonical
    ``bert.pooler.dense``: BERT's pooler, DistilBERT's ``pre_classifier``, RoBERTa's
    ``classifier.dense``), read from the file's tensor names alone."""
    from safetensors import safe_open

    arch = architecture(config["model_type"])
    path = check_weights(folder)
    try:
        with safe_open(str(path), framework="numpy") as f:
            names = list(f.keys())
    except Exception as exc:  # safetensors raises its own error types
        raise ArtifactError(f"{path}: unreadable safetensors file ({exc}). The folder is damaged; retrain or restore it.") from None
    return any(arch.to_canonical(n) == "bert.pooler.dense.weight" for n in names)


def pretrained_classifier(folder: Path, setup: ModelSetup, supported: Optional[tuple[str, ...]] = None,
                          backend: Optional[str] = None) -> tuple[dict, dict[str, np.ndarray], dict]:
    """``(canonical config, weights with a fresh head, classifier config.json)`` of a pretrained
    folder: what a backend without ``transformers`` starts fine-tuning from."""
    config, raw = read_config(folder, supported, backend)
    state = init_head(load_state(folder, config), config, setup.num_labels, setup.seed, setup.head)
    return config, state, classification_config(raw, setup)


def saved_classifier(folder: Path, num_labels: int, head: str = "sequence", supported: Optional[tuple[str, ...]] = None,
                     backend: Optional[str] = None) -> tuple[dict, dict[str, np.ndarray], dict]:
    """``(canonical config, weights, config.json as written)`` of a saved model folder, its head
    checked against the label count (``sequence``) or for ``qa_outputs`` (``span``)."""
    config, raw = read_config(folder, supported, backend)
    state = load_state(folder, config)
    check_head(state, num_labels, folder, head)
    return config, state, raw


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
    if "bert.pooler.dense.weight" not in state:
        raise ArtifactError(f"{folder}: model.safetensors has no first dense layer of a classification head (pooler, "
                            "pre_classifier or classifier.dense), but bertbridge.json says it is a classifier. "
                            "The folder is inconsistent; retrain or restore it.")
