"""SavedModel export for TensorFlow Serving, with SageMaker's ``code/inference.py`` handlers.

Layout (what the SageMaker TensorFlow Serving container expects inside model.tar.gz)::

    out/
      1/saved_model.pb, 1/variables/      # one numbered version per export
      code/inference.py                   # input_handler / output_handler
      code/bertbridge_serving.py          # the request/response contract (a copy of bertbridge.core.serving.protocol)
      code/requirements.txt               # numpy, tokenizers
      code/tokenizer.json, code/bertbridge.json

Serving signature ``serving_default``: inputs ``input_ids``, ``attention_mask``,
``token_type_ids`` (int64, [batch, length]); outputs ``logits`` and
``probabilities`` (float32, [batch, num_labels]; softmax, or sigmoid for
multi-label models).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import tensorflow as tf

from bertbridge.core.backend import ModelSetup
from bertbridge.core.errors import ArtifactError
from bertbridge.core.io.artifacts import MANIFEST_NAME, Manifest
from bertbridge.core.serving import protocol as serving

from .model import TFClassifier


class _Servable(tf.Module):
    def __init__(self, classifier: TFClassifier, multi_label: bool) -> None:
        super().__init__()
        self.bert = classifier.module
        self.multi_label = multi_label

    @tf.function(input_signature=[
        tf.TensorSpec([None, None], tf.int64, name="input_ids"),
        tf.TensorSpec([None, None], tf.int64, name="attention_mask"),
        tf.TensorSpec([None, None], tf.int64, name="token_type_ids"),
    ])
    def serve(self, input_ids, attention_mask, token_type_ids):
        logits = self.bert(input_ids, attention_mask, token_type_ids, training=False)
        probs = tf.sigmoid(logits) if self.multi_label else tf.nn.softmax(logits, axis=-1)
        return {"logits": logits, "probabilities": probs}


def export_savedmodel(artifact_dir: Path, out_dir: Path, *, version: int = 1) -> Path:
    """Write ``out_dir/<version>`` (refusing to overwrite an existing version) and ``out_dir/code``."""
    if version < 1:
        raise ArtifactError(f"version must be a positive integer (TF Serving numbers versions), got {version}.")
    manifest = Manifest.read(artifact_dir)
    out_dir = Path(out_dir)
    target = out_dir / str(version)
    if target.exists():
        raise ArtifactError(f"{target}: version {version} already exists; TF Serving versions are immutable. Pass another --version.")
    setup = ModelSetup(len(manifest.labels), manifest.multi_label, dict(enumerate(manifest.labels)), seed=0)
    servable = _Servable(TFClassifier.from_artifact(artifact_dir, setup), manifest.multi_label)
    out_dir.mkdir(parents=True, exist_ok=True)
    version_tmp = Path(tempfile.mkdtemp(prefix=f".{version}.tmp-", dir=out_dir))
    code_tmp = Path(tempfile.mkdtemp(prefix=".code.tmp-", dir=out_dir))
    try:
        tf.saved_model.save(servable, str(version_tmp), signatures={"serving_default": servable.serve})
        _write_code(code_tmp, Path(artifact_dir))
        os.replace(version_tmp, target)
        old_code = out_dir / f".code.old-{code_tmp.name}"
        if (out_dir / "code").exists():
            os.replace(out_dir / "code", old_code)
        os.replace(code_tmp, out_dir / "code")
        shutil.rmtree(old_code, ignore_errors=True)
    finally:
        shutil.rmtree(version_tmp, ignore_errors=True)
        shutil.rmtree(code_tmp, ignore_errors=True)
    return target


def _write_code(code: Path, artifact_dir: Path) -> None:
    shutil.copyfile(Path(__file__).parent / "serving_code" / "inference.py", code / "inference.py")
    shutil.copyfile(serving.__file__, code / "bertbridge_serving.py")
    shutil.copyfile(artifact_dir / "tokenizer.json", code / "tokenizer.json")
    shutil.copyfile(artifact_dir / MANIFEST_NAME, code / MANIFEST_NAME)
    (code / "requirements.txt").write_text("numpy\ntokenizers>=0.19\n", encoding="utf-8")
