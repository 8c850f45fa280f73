"""TorchScript and ONNX exports of a PyTorch-format model, each checked against the original.

An export folder is the model folder (so it stays loadable and servable) plus
``model.torchscript.pt`` or ``model.onnx``: inputs ``input_ids``, ``attention_mask``,
``token_type_ids`` (int64, [batch, sequence], both axes dynamic). Outputs follow the
model's head: ``logits`` (float32, [batch, num_labels]) for a classifier;
``start_logits`` and ``end_logits`` (float32, [batch, sequence]) for question answering
(the answer span is picked from them by the same windowing and post-processing as
every other path: :mod:`bertbridge.core.tasks.qa`). The export is verified on inputs of
other batch sizes and lengths than it was traced with; a difference over 1e-4 fails the export.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from bertbridge.core.backend import EXPORT_OUTPUTS, ModelSetup
from bertbridge.core.errors import ArtifactError, BackendUnavailableError
from bertbridge.core.io.artifacts import atomic_directory, copy_files

from .model import TorchClassifier, _quiet_transformers

FILES = {"torchscript": "model.torchscript.pt", "onnx": "model.onnx"}
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
TOLERANCE = 1e-4


class _Logits(torch.nn.Module):
    """The model with plain tensor inputs and the head's outputs (a tuple for ``span``)."""

    def __init__(self, model: torch.nn.Module, outputs: tuple[str, ...]) -> None:
        super().__init__()
        self.model = model
        self.outputs = outputs

    def forward(self, input_ids, attention_mask, token_type_ids):
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        if len(self.outputs) == 1:
            return getattr(out, self.outputs[0])
        return tuple(getattr(out, name) for name in self.outputs)


def as_logits(outputs) -> np.ndarray:
    """One output array as the inference contract's logits: ``(B, L)``, or ``(B, T, 2)`` from start and end."""
    if isinstance(outputs, (list, tuple)):
        arrays = [o.numpy() if isinstance(o, torch.Tensor) else np.asarray(o) for o in outputs]
        return arrays[0] if len(arrays) == 1 else np.stack(arrays, axis=-1)
    return outputs.numpy() if isinstance(outputs, torch.Tensor) else np.asarray(outputs)


def _sample(batch: int, length: int, vocab: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = rng.integers(1000 if vocab > 1000 else 5, vocab, size=(batch, length)).astype(np.int64)
    mask = np.ones_like(ids)
    mask[0, length // 2:] = 0  # padding in one row
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}


def export(artifact_dir: Path, fmt: str, out_dir: Path, setup: ModelSetup) -> Path:
    if fmt == "onnx":
        import importlib.util

        missing = [m for m in ("onnx", "onnxscript", "onnxruntime") if importlib.util.find_spec(m) is None]
        if missing:
            raise BackendUnavailableError(f"ONNX export needs {', '.join(missing)}: pip install 'bertbridge[onnx]'")
    outputs = EXPORT_OUTPUTS[setup.head]
    clf = TorchClassifier.from_artifact(artifact_dir, setup, attention="eager")  # traceable attention
    module = _Logits(clf.model.eval(), outputs).eval()
    vocab = int(clf.model.config.vocab_size)
    example = _sample(2, 16, vocab, 0)
    with atomic_directory(Path(out_dir)) as staging:
        copy_files(Path(artifact_dir), staging)
        path = staging / FILES[fmt]
        args = tuple(torch.from_numpy(example[k]) for k in INPUTS)
        with torch.no_grad(), warnings.catch_warnings():
            if fmt == "torchscript":
                # transformers 5 no longer tests TorchScript (nor does it guarantee it): _verify below is
                # what vouches for the file. Its notices while tracing are known to be harmless: the mask
                # helper's "padding length > 0" test (always False for an encoder without a cache), and
                # the deprecated or unused properties (is_gradient_checkpointing, loss_function) that the
                # tracer reads while walking the module.
                warnings.filterwarnings("ignore", category=torch.jit.TracerWarning, module=r"transformers\.masking_utils")
                warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning)
                with _quiet_transformers():
                    torch.jit.trace(module, args, strict=False).save(str(path))
            else:
                # dynamic_shapes (torch.export's form; dynamic_axes is only translated to it, with warnings);
                # the logits' batch axis follows from the inputs'.
                batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
                torch.onnx.export(
                    module, args, str(path), input_names=list(INPUTS), output_names=list(outputs),
                    dynamic_shapes={k: {0: batch, 1: sequence} for k in INPUTS},
                    opset_version=18, dynamo=True, verbose=False,
                )
        _verify(fmt, path, module, vocab)
    target = Path(out_dir).resolve()
    return target / FILES[fmt]


def run_export(fmt: str, path: Path):
    """A callable numpy batch -> logits (the inference contract's shape, see :func:`as_logits`) for an exported file."""
    if fmt == "torchscript":
        scripted = torch.jit.load(str(path)).eval()

        def run(batch):
            with torch.no_grad():
                return as_logits(scripted(*(torch.from_numpy(batch[k]) for k in INPUTS)))

        return run
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda batch: as_logits(session.run(None, {k: batch[k] for k in INPUTS}))


def _verify(fmt: str, path: Path, module: torch.nn.Module, vocab: int) -> None:
    run = run_export(fmt, path)
    for batch, length, seed in ((1, 7, 1), (5, 40, 2)):  # not the traced shape
        sample = _sample(batch, length, vocab, seed)
        with torch.no_grad():
            want = as_logits(module(*(torch.from_numpy(sample[k]) for k in INPUTS)))
        diff = float(np.abs(run(sample) - want).max())
        if diff > TOLERANCE:
            raise ArtifactError(f"{path}: the {fmt} export differs from the model by {diff:.2e} (> {TOLERANCE}); it was not saved.")
