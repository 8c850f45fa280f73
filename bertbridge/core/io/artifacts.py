"""The artifact layout: a Hugging Face model folder plus a ``bertbridge.json`` manifest.

::

    model/
      config.json            # HF config, with id2label/label2id
      model.safetensors      # weights, HF PyTorch names (every backend reads them)
      tokenizer.json, vocab.txt, tokenizer_config.json, special_tokens_map.json
      README.md              # the model card; training_curves.png + training_history.json after training
      bertbridge.json        # the manifest, written last

The whole folder is written next to its destination and renamed into place,
so a crash never leaves a half-written model where a model used to be.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime as _dt
import importlib.metadata
import json
import os
import shutil
import tempfile
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from bertbridge.core.errors import ArtifactError

MANIFEST_NAME = "bertbridge.json"
FORMAT_VERSION = 1
LONG_TEXT_FORMAT_VERSION = 2
"""The manifest version of a ``task.long_text`` model: a bertbridge that only reads version 1 refuses
it ("Upgrade bertbridge") instead of cutting each text to its first window."""
READABLE_VERSIONS = (FORMAT_VERSION, LONG_TEXT_FORMAT_VERSION)
WEIGHTS_NAME = "model.safetensors"


@dataclass(frozen=True)
class Manifest:
    """What a saved model is and how to feed it."""

    task: str
    labels: tuple[str, ...]
    backend: str
    max_seq_length: int
    lowercase: bool
    multi_label: bool = False
    threshold: float = 0.5
    text_pair: bool = False
    base_model: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)
    """How training rows were read (columns, header, format): the defaults for ``evaluate``."""
    metrics: Mapping[str, float] = field(default_factory=dict)
    qa: Mapping[str, Any] = field(default_factory=dict)
    """Question answering: window and answer settings (doc_stride, max_question_length,
    max_answer_length, n_best, null_threshold, v2)."""
    long_text: Mapping[str, Any] = field(default_factory=dict)
    """Text classification with ``task.long_text``: ``stride``, ``max_windows``, ``aggregate``
    (empty: texts longer than ``max_seq_length`` are cut)."""
    export: Mapping[str, Any] = field(default_factory=dict)
    """In an export folder: ``format``, ``file`` (the exported model, relative to the folder) and what
    was done to it (``optimized``, ``quantized``, ``validation``); empty in a model folder."""
    versions: Mapping[str, str] = field(default_factory=dict)
    created: str = ""
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        data = asdict(self)
        data["labels"] = list(self.labels)
        data["format_version"] = LONG_TEXT_FORMAT_VERSION if self.long_text else FORMAT_VERSION
        return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    @classmethod
    def read(cls, folder: Path) -> "Manifest":
        path = Path(folder) / MANIFEST_NAME
        if not Path(folder).is_dir():
            raise ArtifactError(f"{folder}: no such model folder. Pass the output_dir of a training run.")
        if not path.is_file():
            raise ArtifactError(
                f"{folder}: no {MANIFEST_NAME}, so this is not a bertbridge model folder "
                "(train one with 'bertbridge train SPEC'; a plain Hugging Face folder is a model.name for training)."
            )
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ArtifactError(f"{path}: unreadable manifest ({exc}). The folder is damaged; retrain or restore it.") from None
        if not isinstance(data, dict):
            raise ArtifactError(f"{path}: the manifest must be a JSON object.")
        version = data.get("format_version")
        if version not in READABLE_VERSIONS:
            raise ArtifactError(
                f"{path}: manifest format_version {version!r}; this bertbridge reads versions {READABLE_VERSIONS[0]}-{READABLE_VERSIONS[-1]}. "
                "Upgrade bertbridge, or retrain the model."
            )
        known = set(cls.__dataclass_fields__)
        missing = [k for k in ("task", "labels", "backend", "max_seq_length", "lowercase") if k not in data]
        if missing:
            raise ArtifactError(f"{path}: the manifest lacks {', '.join(missing)}. The folder is damaged; retrain or restore it.")
        types = {"task": str, "labels": list, "backend": str, "max_seq_length": int, "lowercase": bool,
                 "multi_label": bool, "threshold": (int, float), "text_pair": bool, "data": dict, "metrics": dict,
                 "qa": dict, "long_text": dict, "export": dict}
        for key, expected in types.items():
            if key in data and (not isinstance(data[key], expected) or (expected is int and isinstance(data[key], bool))):
                raise ArtifactError(f"{path}: manifest field {key!r} has the wrong type ({type(data[key]).__name__}). The folder is damaged; retrain or restore it.")
        _check_long_text(path, data.get("long_text") or {})
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["labels"] = tuple(str(x) for x in kwargs["labels"])
        dupes = sorted(label for label, n in collections.Counter(kwargs["labels"]).items() if n > 1)
        if dupes:
            raise ArtifactError(f"{path}: the manifest lists label(s) {', '.join(map(repr, dupes))} more than once, so "
                                "their classes cannot be told apart. The folder is damaged; retrain or restore it.")
        return cls(**kwargs)


def record_export(folder: Path, fmt: str, file: str, **details: Any) -> Manifest:
    """Mark the model folder copy at ``folder`` (an export being staged) as an ``fmt`` export whose
    model is ``file``; ``details`` make up the rest of the manifest's ``export`` section (any earlier
    section is replaced). Returns the manifest."""
    updated = dataclasses.replace(Manifest.read(folder), export={"format": fmt, "file": file, **details})
    write_manifest(Path(folder), updated)
    return updated


def library_versions(distributions: Sequence[str]) -> dict[str, str]:
    """Installed versions of bertbridge and ``distributions`` (without importing them)."""
    versions = {}
    for name in ("bertbridge", "numpy", "tokenizers", *distributions):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def _finalize_tree(folder: Path) -> None:
    """fsync every file and give the tree the permissions the umask allows
    (mkdtemp/mkstemp create 0700/0600, which a serving user could not read)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(folder, 0o777 & ~umask)
    for path in folder.rglob("*"):
        if path.is_dir():
            os.chmod(path, 0o777 & ~umask)
        elif path.is_file():
            os.chmod(path, 0o666 & ~umask)
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())


def check_output_dir(target: Path) -> Path:
    """Refuse, before any work, a destination that a save would refuse. Returns it resolved.

    ``target`` may not exist, be empty, or be an earlier bertbridge model folder
    (it is then replaced). A file, or a folder holding anything else, is refused
    so that a mistyped ``output_dir`` cannot wipe unrelated files."""
    target = Path(target).expanduser().resolve()
    if target.exists():
        if not target.is_dir():
            raise ArtifactError(f"{target}: exists and is a file; output_dir must be a folder path.")
        if any(target.iterdir()) and not (target / MANIFEST_NAME).is_file():
            raise ArtifactError(
                f"{target}: exists and is not a bertbridge model folder, so it will not be overwritten. "
                "Choose another output_dir, or empty that folder."
            )
    return target


def _remove_leftovers(target: Path) -> None:
    """Staging and retired folders of an earlier save that was killed mid-way.
    If the target itself is missing but a retired copy exists, that copy is put back."""
    retired = sorted(target.parent.glob(f".{target.name}.old-*"))
    if retired and not target.exists():
        os.replace(retired.pop(), target)
    for path in retired + list(target.parent.glob(f".{target.name}.tmp-*")):
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """Yield an empty staging folder beside ``target``; on success it replaces ``target``.

    The previous folder is renamed aside, the staging folder renamed into place,
    and only then is the previous one deleted; if the second rename fails the
    previous folder is renamed back. On any error ``target`` is left as it was.
    """
    target = check_output_dir(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(target)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield staging
        _finalize_tree(staging)
        if os.path.ismount(target):
            _fill_mount_point(staging, target)
        elif target.exists():
            old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(target, old)
            try:
                os.replace(staging, target)
            except BaseException:
                os.replace(old, target)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _fill_mount_point(staging: Path, target: Path) -> None:
    """A mount point (a container's /opt/ml/model, say) cannot be renamed over: replace its
    entries one by one, the manifest last, so a reader never sees a manifest without weights."""
    for old in target.iterdir():
        if old.name not in {p.name for p in staging.iterdir()}:
            shutil.rmtree(old) if old.is_dir() and not old.is_symlink() else old.unlink()
    entries = sorted(staging.iterdir(), key=lambda p: p.name == MANIFEST_NAME)
    for entry in entries:
        dest = target / entry.name
        if dest.is_dir() and not dest.is_symlink():
            shutil.rmtree(dest)
        os.replace(entry, dest)
    staging.rmdir()


def write_text_atomic(path: Path, text: str) -> None:
    """Write a file through a temporary sibling and an atomic rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def copy_files(src: Path, dest: Path) -> None:
    """Copy the files of folder ``src`` (or the file ``src`` itself) into the folder ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    src = Path(src)
    for item in [src] if src.is_file() else sorted(src.iterdir()):
        if item.is_file():
            shutil.copy2(item, dest / item.name)


def check_weights(folder: Path) -> Path:
    """The safetensors weights of a model folder; pickled weights are refused, never loaded."""
    weights = Path(folder) / WEIGHTS_NAME
    if weights.is_file():
        return weights
    pickled = [p.name for p in Path(folder).glob("*.bin")] + [p.name for p in Path(folder).glob("*.pt")]
    hint = (
        f" It has {', '.join(pickled)}: bertbridge never unpickles weights; convert them to safetensors first."
        if pickled
        else ""
    )
    raise ArtifactError(f"{folder}: no {WEIGHTS_NAME}.{hint}")


def _check_long_text(path: Path, settings: Mapping[str, Any]) -> None:
    """A manifest's ``long_text`` settings are what a model saved (or nothing)."""
    if not settings:
        return
    from bertbridge.core.spec import LONG_TEXT_AGGREGATES

    ok = (isinstance(settings.get("stride"), int) and settings["stride"] >= 0 and isinstance(settings.get("max_windows"), int)
          and settings["max_windows"] >= 1 and settings.get("aggregate") in LONG_TEXT_AGGREGATES)
    if not ok:
        raise ArtifactError(f"{path}: manifest field 'long_text' must hold stride (>= 0), max_windows (>= 1) and aggregate "
                            f"({', '.join(LONG_TEXT_AGGREGATES)}); it holds {dict(settings)}. The folder is damaged; retrain or restore it.")


def write_manifest(folder: Path, manifest: Manifest) -> None:
    write_text_atomic(Path(folder) / MANIFEST_NAME, manifest.to_json())


