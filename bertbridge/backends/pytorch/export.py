"""``torch.export`` (``.pt2``), ONNX and TorchScript exports of a model, each checked against the original.

An export folder is the model folder (so it stays loadable and servable) plus
``model.pt2``, ``model.onnx`` or ``model.torchscript.pt``, and its manifest's ``export``
section names the format and file (so ``bertbridge.load`` and ``bertbridge serve`` run the
export, not the weights). Inputs ``input_ids``, ``attention_mask``,
``token_type_ids`` (int64, [batch, sequence], both axes dynamic). Outputs follow the
model's head: ``logits`` (float32, [batch, num_labels]) for a classifier;
``start_logits`` and ``end_logits`` (float32, [batch, sequence]) for question answering
(the answer span is picked from them by the same windowing and post-processing as
every other path: :mod:`bertbridge.core.tasks.qa`). The export is verified on inputs of
other batch sizes and lengths than it was traced with; a difference over 1e-4 fails the export.

``pt2`` is an ExportedProgram (``torch.export``), TorchScript's successor; it is written without
example inputs and with every weight as raw bytes, and :func:`check_pt2_archive` refuses, before
loading, any archive with an entry bertbridge does not write (``torch.export.load`` would unpickle a
pickled weight, constant or example input, or load an AOTInductor library). ``torchscript`` is kept
for existing TorchServe / C++ users only: it is deprecated upstream, bertbridge never serves it
(loading a TorchScript archive unpickles its ``data.pkl``; only the export's own check reads the file
it has just written), and writing it warns.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import torch

from bertbridge.core.backend import EXPORT_OUTPUTS, Batch, InferenceModel, ModelSetup
from bertbridge.core.errors import ArtifactError, BackendUnavailableError, NotSupportedError
from bertbridge.core.io.artifacts import atomic_directory, copy_files, record_export
from bertbridge.core.text.tokenize import TextEncoder

from .model import TorchClassifier, _quiet_transformers, model_inputs

FILES = {"pt2": "model.pt2", "torchscript": "model.torchscript.pt", "onnx": "model.onnx"}
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
TOLERANCE = 1e-4


class _Logits(torch.nn.Module):
    """The model with plain tensor inputs and the head's outputs (a tuple for ``span``)."""

    def __init__(self, model: torch.nn.Module, outputs: tuple[str, ...]) -> None:
        super().__init__()
        self.model = model
        self.outputs = outputs
        self.token_types = "token_type_ids" in model_inputs(model)

    def forward(self, input_ids, attention_mask, token_type_ids):
        """Every export takes the three arrays; an architecture without token types (DistilBERT) ignores the third."""
        types = {"token_type_ids": token_type_ids} if self.token_types else {}
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, **types)
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
    if fmt == "torchscript":
        warnings.warn("the torchscript export format is deprecated (TorchScript is deprecated in PyTorch); "
                      "use --format pt2 (torch.export) or onnx. It is kept for TorchServe / C++ users and "
                      "bertbridge does not load it.", FutureWarning, stacklevel=3)
    outputs = EXPORT_OUTPUTS[setup.head]
    # eager attention traces into plain operators for TorchScript and ONNX; torch.export keeps SDPA
    clf = TorchClassifier.from_artifact(artifact_dir, setup, attention="sdpa" if fmt == "pt2" else "eager")
    module = _Logits(clf.model.eval(), outputs).eval()
    vocab = int(clf.model.config.vocab_size)
    max_length = TextEncoder.from_pretrained(Path(artifact_dir)).model_max_length  # RoBERTa: its table less the skipped rows
    example = _sample(2, min(16, max_length), vocab, 0)
    with atomic_directory(Path(out_dir)) as staging:
        copy_files(Path(artifact_dir), staging)
        path = staging / FILES[fmt]
        args = tuple(torch.from_numpy(example[k]) for k in INPUTS)
        with torch.no_grad(), warnings.catch_warnings():
            _WRITERS[fmt](module, args, path, outputs, max_length)
        _verify(fmt, path, module, vocab)
        record_export(staging, fmt, FILES[fmt])
    target = Path(out_dir).resolve()
    return target / FILES[fmt]


def _dynamic_shapes(max_length: int) -> dict:
    """Batch and sequence axes of every input, dynamic (torch.export's form; the outputs' follow)."""
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence", max=max_length)
    return {k: {0: batch, 1: sequence} for k in INPUTS}


def _write_torchscript(module, args, path: Path, outputs, max_length: int) -> None:
    # transformers 5 no longer tests TorchScript (nor does it guarantee it): _verify is what vouches
    # for the file. Its notices while tracing are known to be harmless: the mask helper's "padding
    # length > 0" test (always False for an encoder without a cache), and the deprecated or unused
    # properties (is_gradient_checkpointing, loss_function) that the tracer reads while walking the module.
    warnings.filterwarnings("ignore", category=torch.jit.TracerWarning, module=r"transformers\.masking_utils")
    warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning)
    with _quiet_transformers():
        torch.jit.trace(module, args, strict=False).save(str(path))


def _write_onnx(module, args, path: Path, outputs, max_length: int) -> None:
    torch.onnx.export(module, args, str(path), input_names=list(INPUTS), output_names=list(outputs),
                      dynamic_shapes=_dynamic_shapes(max_length), opset_version=18, dynamo=True, verbose=False)


def _write_pt2(module, args, path: Path, outputs, max_length: int) -> None:
    with _quiet_transformers():
        program = torch.export.export(module, args, dynamic_shapes=tuple(_dynamic_shapes(max_length).values()))
    program.example_inputs = None  # saved as a pickle otherwise
    torch.export.save(program, str(path))


_WRITERS = {"torchscript": _write_torchscript, "onnx": _write_onnx, "pt2": _write_pt2}


def run_export(fmt: str, path: Path):
    """A callable numpy batch -> logits (the inference contract's shape, see :func:`as_logits`) for an exported file."""
    if fmt == "pt2":
        program = load_pt2(path)

        def run_program(batch):
            with torch.no_grad():
                return as_logits(program(*(torch.from_numpy(np.ascontiguousarray(batch[k], dtype=np.int64)) for k in INPUTS)))

        return run_program
    if fmt == "torchscript":
        scripted = torch.jit.load(str(path)).eval()

        def run(batch):
            with torch.no_grad():
                return as_logits(scripted(*(torch.from_numpy(batch[k]) for k in INPUTS)))

        return run
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]  # ONNX drops an input the model never reads (DistilBERT's token types)
    return lambda batch: as_logits(session.run(None, {k: batch[k] for k in names}))


def _verify(fmt: str, path: Path, module: torch.nn.Module, vocab: int) -> None:
    run = run_export(fmt, path)
    for batch, length, seed in ((1, 7, 1), (5, 40, 2)):  # not the traced shape
        sample = _sample(batch, length, vocab, seed)
        with torch.no_grad():
            want = as_logits(module(*(torch.from_numpy(sample[k]) for k in INPUTS)))
        diff = float(np.abs(run(sample) - want).max())
        if diff > TOLERANCE:
            raise ArtifactError(f"{path}: the {fmt} export differs from the model by {diff:.2e} (> {TOLERANCE}); it was not saved.")


_RAW_PREFIXES = ("weight_", "tensor_")


_PT2_LAYOUT = re.compile(
    r"(archive_format|archive_version|byteorder|\.data/version|\.data/serialization_id|models/model\.json"
    r"|data/weights/(weight_\d+|model_weights_config\.json)|data/constants/(tensor_\d+|model_constants_config\.json)"
    r"|data/sample_inputs/model\.pt)"
)
"""Every entry of a ``.pt2`` as bertbridge writes it (after the archive's top folder). Anything else (a pickled
constant or custom object, a legacy ``.pt`` weights file, an AOTInductor library) is refused."""


def check_pt2_archive(path: Path) -> None:
    """Refuse a ``.pt2`` that ``torch.export.load`` would unpickle (or run native code) from: only the
    entries bertbridge writes are allowed (:data:`_PT2_LAYOUT`), each name once, with empty example
    inputs and every weight and constant stored as raw bytes (no ``use_pickle``)."""
    import json
    import zipfile

    def refuse(why: str) -> None:
        raise ArtifactError(f"{path}: {why}, which loading could unpickle or run; bertbridge loads only .pt2 files "
                            "laid out as 'bertbridge export MODEL --format pt2' writes them. Export the model again.")

    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise ArtifactError(f"{path}: not a readable .pt2 archive ({exc}). Export the model again.") from None
    with archive:
        infos = archive.infolist()
        names = [info.filename for info in infos]
        if len(set(names)) != len(names):
            refuse("it holds an entry name twice (readers may take different copies)")
        for info in infos:
            top, _, inner = info.filename.partition("/")
            if not _PT2_LAYOUT.fullmatch(inner):
                refuse(f"it holds {info.filename}")
            if inner.startswith("data/sample_inputs/") and info.file_size:
                refuse(f"{info.filename} holds pickled example inputs")
            if inner.endswith("_config.json"):
                try:
                    config = json.loads(archive.read(info)).get("config", {})
                except ValueError:
                    refuse(f"{info.filename} is not JSON")
                for key, payload in config.items():
                    if payload.get("use_pickle") or not str(payload.get("path_name", "")).startswith(_RAW_PREFIXES):
                        refuse(f"{key!r} is stored as a pickled object")


def load_pt2(path: Path):
    """The callable module of a checked ``.pt2`` (inputs ``input_ids``, ``attention_mask``, ``token_type_ids``)."""
    check_pt2_archive(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.export.load(str(path)).module()


class ExportedProgramModel(InferenceModel):
    """A ``model.pt2`` export served by the inference contract."""

    def __init__(self, path: Path) -> None:
        self.run = run_export("pt2", path)

    def logits(self, batch: Batch) -> np.ndarray:
        return self.run(batch)

    def save(self, directory: Path) -> None:
        raise NotSupportedError("a .pt2 export is written by bertbridge export; it cannot be re-saved as weights.")
