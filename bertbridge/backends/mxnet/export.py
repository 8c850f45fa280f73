"""MXNet serving export: the hybridized classifier as ``model-symbol.json`` + ``model-0000.params``.

This is the pair the SageMaker MXNet inference container (and ``mx.gluon.SymbolBlock.imports``)
loads. The export folder is the model folder plus that pair, so it stays loadable and
servable by bertbridge too. Symbol inputs: ``data0`` input ids, ``data1`` token type ids
(float32, [batch, sequence]) and ``data2`` valid length (float32, [batch]: the count of real
tokens, padding on the right); output: logits (float32, [batch, num_labels]; for question
answering [batch, sequence, 2]: start and end logits, last axis). The export is
checked against the model on other shapes than it was traced with (≤ 1e-4) before it is kept.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from bertbridge.core.backend import ModelSetup
from bertbridge.core.errors import ArtifactError
from bertbridge.core.io.artifacts import atomic_directory, copy_files

from .model import MXClassifier, mx

PREFIX = "model"
SYMBOL, PARAMS = f"{PREFIX}-symbol.json", f"{PREFIX}-0000.params"
TOLERANCE = 1e-4


def _sample(batch: int, length: int, vocab: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = rng.integers(1000 if vocab > 1000 else 5, vocab, size=(batch, length)).astype(np.int64)
    mask = np.ones_like(ids)
    mask[0, length // 2:] = 0
    ids[0, length // 2:] = 0
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}


def load_symbol(folder: Path):
    """The exported network as a ``SymbolBlock`` (what MXNet Model Server would run)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mx.gluon.SymbolBlock.imports(str(folder / SYMBOL), ["data0", "data1", "data2"], str(folder / PARAMS))


def export_symbol(artifact_dir: Path, out_dir: Path, setup: ModelSetup) -> Path:
    clf = MXClassifier.from_artifact(Path(artifact_dir), setup)
    vocab = int(clf.block.config["vocab_size"])
    clf.logits(_sample(2, 16, vocab, 0))  # builds the cached graph that export writes
    with atomic_directory(Path(out_dir)) as staging:
        copy_files(Path(artifact_dir), staging)
        clf.block.export(str(staging / PREFIX), epoch=0)
        (staging / "mxnet-signature.json").write_text(json.dumps({
            "symbol": SYMBOL, "params": PARAMS,
            "inputs": {"data0": "input_ids", "data1": "token_type_ids", "data2": "valid_length (real tokens per row)"},
            "outputs": ["logits"] if setup.head == "sequence" else ["start_end_logits (last axis: start, end)"],
            "dtype": "float32",
        }, indent=2) + "\n", encoding="utf-8")
        net = load_symbol(staging)
        for batch, length, seed in ((1, 7, 1), (5, 40, 2)):
            sample = _sample(batch, length, vocab, seed)
            got = net(*clf._inputs(sample)).asnumpy()
            diff = float(np.abs(got - clf.logits(sample)).max())
            if diff > TOLERANCE:
                raise ArtifactError(f"the MXNet symbol export differs from the model by {diff:.2e} (> {TOLERANCE}); it was not saved.")
    return Path(out_dir).resolve() / SYMBOL
