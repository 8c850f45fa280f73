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



# -- the rest of the BERT family: real tokenizer kinds, built here from a small multilingual corpus --------

MULTILINGUAL = [
    "Der Film war großartig und die Schauspieler waren wunderbar.",
    "Le film était très ennuyeux, mais la musique était belle.",
    "La película fue maravillosa; el guion, aburrido.",
    "Il libro è bellissimo e la storia è triste.",
    "Фильм был очень хороший.",
    "映画はとても良かった。",
    "O filme foi ótimo, não é?",
]
"""Sentences in several scripts and with accents, so a cased vocabulary keeps case and diacritics."""

FAMILY_SPECIALS = {
    "wordpiece": ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
    "bpe": ["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
    "unigram": ["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
}


def _corpus() -> list[str]:
    words = POSITIVE + NEGATIVE + FILLER + ["not", "sports", "music", "news", "?", ".", ",", "what", "who", "were", "but"]
    english = [" ".join(words[i:i + 7]) for i in range(0, len(words), 3)]
    capitalised = [s.capitalize() for s in english]
    return english + capitalised + MULTILINGUAL * 3


def write_family_tokenizer(folder: PathLike, kind: str, model_max_length: int = 64) -> tuple[Path, dict]:
    """A real tokenizer of ``kind`` in ``folder`` (``tokenizer.json`` + ``tokenizer_config.json``) and
    the special-token ids a config needs (``pad_token_id``, ``bos_token_id``, ``eos_token_id``):

    * ``wordpiece``: cased multilingual WordPiece (``[CLS] A [SEP] B [SEP]``, segments 0 and 1), as
      ``distilbert-base-multilingual-cased`` has;
    * ``bpe``: byte-level BPE (``<s> A </s></s> B </s>``, one segment), as RoBERTa has;
    * ``unigram``: SentencePiece Unigram with the same template, as XLM-RoBERTa has.

    Trained on a small fixed corpus, so the same files come out every time; nothing is downloaded."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    specials = FAMILY_SPECIALS[kind]
    if kind == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(lowercase=False, strip_accents=False, clean_text=True, handle_chinese_chars=True)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(vocab_size=400, special_tokens=specials, min_frequency=1)
    elif kind == "bpe":
        tok = Tokenizer(models.BPE(unk_token=None))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    elif kind == "unigram":
        tok = Tokenizer(models.Unigram())
        tok.normalizer = normalizers.NFKC()
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        trainer = trainers.UnigramTrainer(vocab_size=300, special_tokens=specials, unk_token="<unk>")
    else:
        raise ValueError(f"kind must be one of {', '.join(FAMILY_SPECIALS)}, got {kind!r}")
    tok.train_from_iterator(_corpus(), trainer)
    ids = {t: tok.token_to_id(t) for t in specials}
    if kind == "wordpiece":
        cls, sep, pad = "[CLS]", "[SEP]", "[PAD]"
        tok.post_processor = processors.TemplateProcessing(
            single=f"{cls}:0 $A:0 {sep}:0", pair=f"{cls}:0 $A:0 {sep}:0 $B:1 {sep}:1", special_tokens=[(cls, ids[cls]), (sep, ids[sep])])
    else:
        cls, sep, pad = "<s>", "</s>", "<pad>"
        if kind == "bpe":
            tok.post_processor = processors.RobertaProcessing((sep, ids[sep]), (cls, ids[cls]), trim_offsets=True, add_prefix_space=False)
        else:
            tok.post_processor = processors.TemplateProcessing(
                single=f"{cls} $A {sep}", pair=f"{cls} $A {sep} {sep} $B {sep}", special_tokens=[(cls, ids[cls]), (sep, ids[sep])])
    tok.save(str(folder / "tokenizer.json"))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": model_max_length, "pad_token": pad,
              "cls_token": cls, "sep_token": sep, "unk_token": specials[3] if kind != "wordpiece" else "[UNK]",
              "mask_token": specials[4], **({"bos_token": cls, "eos_token": sep} if kind != "wordpiece" else {}),
              "do_lower_case": False}
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    return folder, {"pad_token_id": ids[pad], "bos_token_id": ids[cls], "eos_token_id": ids[sep],
                    "vocab_size": tok.get_vocab_size()}


FAMILY = {
    "distilbert": ("wordpiece", {
        "model_type": "distilbert", "dim": 32, "n_layers": 2, "n_heads": 2, "hidden_dim": 64, "activation": "gelu",
        "dropout": 0.0, "attention_dropout": 0.0, "qa_dropout": 0.0, "seq_classif_dropout": 0.0,
        "max_position_embeddings": 64, "sinusoidal_pos_embds": False, "initializer_range": 0.02}),
    "roberta": ("bpe", {
        "model_type": "roberta", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
        "hidden_act": "gelu", "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
        "max_position_embeddings": 66, "type_vocab_size": 1, "initializer_range": 0.02, "layer_norm_eps": 1e-5}),
    "xlm-roberta": ("unigram", {
        "model_type": "xlm-roberta", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
        "hidden_act": "gelu", "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
        "max_position_embeddings": 66, "type_vocab_size": 1, "initializer_range": 0.02, "layer_norm_eps": 1e-5}),
}
"""Tiny configs (hidden 32, 2 layers, no dropout) of the other built-in architectures, and their tokenizer kinds."""


def family_config(folder: PathLike, model_type: str) -> Path:
    """A tokenizer of the architecture's kind and a tiny ``config.json`` in ``folder`` (no weights:
    write them with transformers' ``save_pretrained``, or :func:`write_random_family`)."""
    kind, config = FAMILY[model_type]
    folder, ids = write_family_tokenizer(folder, kind)
    (folder / "config.json").write_text(json.dumps({**config, **ids}, indent=2), encoding="utf-8")
    return folder


def write_random_family(folder: PathLike, model_type: str, seed: int = 0) -> Path:
    """:func:`family_config` plus random weights written with numpy only (for environments without
    torch): the bare encoder under the architecture's own names, normal(0, 0.02), LayerNorm at identity."""
    import numpy as np
    from safetensors.numpy import save_file

    from bertbridge.core.io.architectures import architecture
    from bertbridge.testing.reference import expected_shapes

    folder = family_config(folder, model_type)
    arch = architecture(model_type)
    config = arch.encoder_config(json.loads((folder / "config.json").read_text(encoding="utf-8")))
    rng = np.random.default_rng(seed)
    state = {}
    for name, shape in expected_shapes(config, "span", 2).items():
        if name.startswith("qa_outputs."):
            continue  # the encoder only
        if "LayerNorm" in name:
            value = np.ones(shape) if name.endswith(".weight") else np.zeros(shape)
        else:
            value = rng.normal(0, 0.02, shape) if name.endswith(".weight") else np.zeros(shape)
        state[arch.from_canonical(name)[len(arch.prefix) + 1:]] = np.asarray(value, np.float32)  # bare: no prefix
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder
