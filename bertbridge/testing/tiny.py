"""A tiny random BERT and toy data sets, made at test time with numpy, safetensors and tokenizers only.

Nothing here imports pytest or a deep-learning framework, and nothing is downloaded: the model
folder is written from a fixed vocabulary and seeded normal weights, the data from word lists.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Mapping, Union

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

PathLike = Union[str, Path]


def write_tokenizer_folder(folder: PathLike, with_tokenizer_json: bool = True) -> Path:
    """vocab.txt + tokenizer_config.json (+ tokenizer.json built from them) + config.json."""
    from tokenizers.implementations import BertWordPieceTokenizer
    from tokenizers.models import WordPiece

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"do_lower_case": True, "model_max_length": 64, "tokenizer_class": "BertTokenizer"}), encoding="utf-8"
    )
    (folder / "config.json").write_text(json.dumps({**TINY_CONFIG, "vocab_size": len(VOCAB)}), encoding="utf-8")
    if with_tokenizer_json:
        BertWordPieceTokenizer(WordPiece.read_file(str(folder / "vocab.txt")), lowercase=True).save(str(folder / "tokenizer.json"))
    return folder


def write_random_bert(folder: PathLike, seed: int = 0) -> Path:
    """A random BERT checkpoint written with numpy only (for environments without torch):
    BertModel names, normal(0, 0.02) weights, LayerNorm at identity."""
    import numpy as np
    from safetensors.numpy import save_file

    folder = write_tokenizer_folder(folder)
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


def write_tsv(path: PathLike, rows, header=("text", "label")) -> Path:
    path = Path(path)
    lines = ["\t".join(header)] + ["\t".join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def toy_data(folder: PathLike) -> dict:
    """train.tsv (96 rows) and dev.tsv (32 rows) of keyword sentiment in ``folder``."""
    folder = Path(folder)
    return {
        "train": str(write_tsv(folder / "train.tsv", toy_sentences(96, seed=1))),
        "validation": str(write_tsv(folder / "dev.tsv", toy_sentences(32, seed=2))),
    }


def tiny_spec(model_dir: PathLike, data: Mapping[str, Any], out: PathLike, **training) -> dict:
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


def toy_squad(path: PathLike, n: int, seed: int) -> dict:
    """A SQuAD v1.1 file whose answer is the one positive word of each context ("what is good ?")."""
    rng = random.Random(seed)
    paragraphs = []
    for i in range(n):
        words = [rng.choice(FILLER + NEGATIVE) for _ in range(rng.randint(6, 14))]
        pos = rng.randrange(len(words) + 1)
        answer = rng.choice(POSITIVE)
        words.insert(pos, answer)
        context = " ".join(words) + " ."
        start = len(" ".join(words[:pos])) + (1 if pos else 0)
        assert context[start:start + len(answer)] == answer
        qa = {"id": f"q{i}", "question": "what is good ?", "answers": [{"text": answer, "answer_start": start}]}
        paragraphs.append({"context": context, "qas": [qa]})
    data = {"version": "1.1", "data": [{"title": "toy", "paragraphs": paragraphs}]}
    Path(path).write_text(json.dumps(data), encoding="utf-8")
    return data


def qa_spec(model_dir: PathLike, data: Mapping[str, Any], out: PathLike, **training) -> dict:
    """A question-answering spec for the tiny model and :func:`toy_squad` data."""
    return {
        "task": {"type": "question_answering", "doc_stride": 16, "max_question_length": 8},
        "data": dict(data),
        "model": {"name": str(model_dir)},
        "training": {"epochs": 2, "batch_size": 8, "learning_rate": 3e-3, "max_seq_length": 48, "log_interval": 50,
                     "seed": 3, **training},
        "output_dir": str(out),
    }

