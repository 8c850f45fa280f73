"""A framework-free reference for the artifact format: BERT's forward pass in numpy (float64),
a writer of classifier and question-answering artifacts, and a batch builder.

Every backend saves ``config.json`` + ``model.safetensors`` under Hugging Face names
(``BertForSequenceClassification`` / ``BertForQuestionAnswering``) and must read any other
backend's; this module is a second, independent reader and writer of that format, so that a
backend can be checked in an environment where no other framework is installed. It computes
what transformers' ``BertForSequenceClassification`` / ``BertForQuestionAnswering`` compute in
evaluation mode (absolute positions, erf GELU, LayerNorm, masked softmax attention).

Only numpy, safetensors and tokenizers are imported.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

import numpy as np

PathLike = Union[str, Path]

from bertbridge.core.io.architectures import architecture  # noqa: E402
from bertbridge.core.io.numpy_bert import _ACTIVATIONS, _BUFFERS, _activation, _dense, _erf, _layer_norm, encoder, logits, read_artifact  # noqa: F401 (re-exported)


def check_layout(folder: PathLike, head: str) -> None:
    """Raise AssertionError unless the folder holds exactly the tensors of a Hugging Face
    ``...ForSequenceClassification`` (``head="sequence"``) or ``...ForQuestionAnswering``
    (``head="span"``: no pooler) of its architecture and config, as float32 arrays of the right shapes."""
    from safetensors.numpy import load_file

    folder = Path(folder)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    arch = architecture(config.get("model_type"))
    raw = {k: v for k, v in load_file(str(folder / "model.safetensors")).items() if not k.endswith(_BUFFERS)}
    n = len(config.get("id2label") or {}) or int(config.get("num_labels", 2))
    want = {arch.from_canonical(k): v for k, v in expected_shapes(arch.encoder_config(config), head, n).items()}
    got = {k: tuple(v.shape) for k, v in raw.items()}
    assert got.keys() == want.keys(), (
        f"{folder}: tensors differ from Hugging Face's layout; missing {sorted(want.keys() - got.keys())}, "
        f"unexpected {sorted(got.keys() - want.keys())}")
    wrong = {k: (got[k], want[k]) for k in want if got[k] != want[k]}
    assert not wrong, f"{folder}: tensor shapes (got, want): {wrong}"
    not_f32 = sorted(k for k, v in raw.items() if v.dtype != np.float32)
    assert not not_f32, f"{folder}: tensors not stored as float32: {not_f32}"
    cls = arch.classes[head]
    assert config.get("architectures") == [cls], f"{folder}: config.json architectures {config.get('architectures')}, want [{cls!r}]"


def expected_shapes(config: Mapping, head: str, num_labels: int) -> dict[str, tuple[int, ...]]:
    """Canonical tensor names and shapes of a classifier or span model (``config``: the canonical one)."""
    h, inter = int(config["hidden_size"]), int(config["intermediate_size"])
    shapes: dict[str, tuple[int, ...]] = {
        "bert.embeddings.word_embeddings.weight": (int(config["vocab_size"]), h),
        "bert.embeddings.position_embeddings.weight": (int(config["max_position_embeddings"]), h),
        "bert.embeddings.LayerNorm.weight": (h,), "bert.embeddings.LayerNorm.bias": (h,),
    }
    if config["token_types"]:
        shapes["bert.embeddings.token_type_embeddings.weight"] = (int(config["type_vocab_size"]), h)
    for i in range(int(config["num_hidden_layers"])):
        p = f"bert.encoder.layer.{i}."
        for name, out, inp in (("attention.self.query", h, h), ("attention.self.key", h, h), ("attention.self.value", h, h),
                               ("attention.output.dense", h, h), ("intermediate.dense", inter, h), ("output.dense", h, inter)):
            shapes[p + name + ".weight"], shapes[p + name + ".bias"] = (out, inp), (out,)
        for name in ("attention.output.LayerNorm", "output.LayerNorm"):
            shapes[p + name + ".weight"], shapes[p + name + ".bias"] = (h,), (h,)
    if head == "span":
        shapes["qa_outputs.weight"], shapes["qa_outputs.bias"] = (2, h), (2,)
    else:
        shapes["bert.pooler.dense.weight"], shapes["bert.pooler.dense.bias"] = (h, h), (h,)
        shapes["classifier.weight"], shapes["classifier.bias"] = (num_labels, h), (num_labels,)
    return shapes


def write_artifact(base: PathLike, out: PathLike, *, head: str = "sequence", labels: Sequence[str] = ("a", "b", "c"),
                   seed: int = 11, std: float = 0.2) -> Path:
    """A model folder as any backend saves one (``config.json``, ``model.safetensors`` with
    ``BertFor...`` names, float32, plus the tokenizer files), written with numpy: ``base``'s
    encoder and a random head (normal(0, ``std``) weights *and* biases, so biases are checked too)."""
    from safetensors.numpy import save_file

    base, out = Path(base), Path(out)
    out.mkdir(parents=True)
    canonical, full = read_artifact(base)
    config = json.loads((base / "config.json").read_text(encoding="utf-8"))
    arch = architecture(config.get("model_type"))
    rng = np.random.default_rng(seed)
    h = int(canonical["hidden_size"])
    state = {k: v for k, v in full.items() if k.startswith("bert.") and not k.startswith("bert.pooler.")}
    if head == "span":
        state["qa_outputs.weight"], state["qa_outputs.bias"] = rng.normal(0, std, (2, h)), rng.normal(0, std, 2)
        config.update(architectures=[arch.classes["span"]])
    else:
        pooler = ("bert.pooler.dense.weight", "bert.pooler.dense.bias")
        state[pooler[0]] = full.get(pooler[0], rng.normal(0, std, (h, h)))  # a fresh first layer (not BERT: no pooler in the base)
        state[pooler[1]] = full.get(pooler[1], np.zeros(h))
        n = len(labels)
        state["classifier.weight"], state["classifier.bias"] = rng.normal(0, std, (n, h)), rng.normal(0, std, n)
        config.update(architectures=[arch.classes["sequence"]], id2label={str(i): l for i, l in enumerate(labels)},
                      label2id={l: i for i, l in enumerate(labels)})
    config.update({arch.config_keys.get(k, k): 0.0 for k in ("hidden_dropout_prob", "attention_probs_dropout_prob")})
    save_file({arch.from_canonical(k): np.ascontiguousarray(v, dtype=np.float32) for k, v in state.items()}, str(out / "model.safetensors"),
              metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        if (base / name).is_file():
            shutil.copyfile(base / name, out / name)
    return out


def encode(folder: PathLike, texts: Sequence[str], pairs: Optional[Sequence[str]] = None, *,
           max_length: int = 64, labels: Optional[np.ndarray] = None) -> dict[str, np.ndarray]:
    """A right-padded batch (``input_ids``, ``attention_mask``, ``token_type_ids``: int64 (B, T);
    ``labels`` when given) made with the folder's ``tokenizer.json`` (or ``vocab.txt``), the way
    :class:`bertbridge.core.backend.Batch` describes it. Independent of core's own batching, so a
    test feeds exactly the same arrays to every implementation."""
    from tokenizers import Tokenizer

    folder = Path(folder)
    if (folder / "tokenizer.json").is_file():
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    else:
        from tokenizers.implementations import BertWordPieceTokenizer

        tokenizer = BertWordPieceTokenizer(str(folder / "vocab.txt"), lowercase=True)
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length)
    inputs = list(zip(texts, pairs)) if pairs is not None else list(texts)
    encodings = tokenizer.encode_batch(inputs)
    t = max(len(e.ids) for e in encodings)
    batch = {k: np.zeros((len(encodings), t), np.int64) for k in ("input_ids", "attention_mask", "token_type_ids")}
    batch["input_ids"][:] = pad_id(folder, tokenizer)
    for row, e in enumerate(encodings):
        n = len(e.ids)
        batch["input_ids"][row, :n] = e.ids
        batch["attention_mask"][row, :n] = 1
        batch["token_type_ids"][row, :n] = e.type_ids
    if labels is not None:
        batch["labels"] = np.asarray(labels)
    return batch


def pad_id(folder: Path, tokenizer) -> int:
    """The padding id: ``tokenizer_config.json``'s ``pad_token``, else ``[PAD]`` or ``<pad>``, else 0."""
    names = ["[PAD]", "<pad>"]
    config_path = folder / "tokenizer_config.json"
    if config_path.is_file():
        token = json.loads(config_path.read_text(encoding="utf-8")).get("pad_token")
        token = token.get("content") if isinstance(token, dict) else token
        if isinstance(token, str):
            names.insert(0, token)
    for name in names:
        if tokenizer.token_to_id(name) is not None:
            return tokenizer.token_to_id(name)
    return 0
