"""SavedModel export for TensorFlow Serving, with SageMaker's ``code/inference.py`` handlers.

Layout (what the SageMaker TensorFlow Serving container expects inside model.tar.gz)::

    out/
      1/saved_model.pb, 1/variables/      # one numbered version per export
      code/inference.py                   # input_handler / output_handler
      code/bertbridge_serving.py          # the request/response contract (a copy of bertbridge.core.serving.protocol)
      code/requirements.txt               # numpy, tokenizers
      code/tokenizer.json, code/bertbridge.json

Serving signature ``serving_default``: inputs ``input_ids``, ``attention_mask``,
``token_type_ids`` (int64, [batch, length]); outputs, for a classifier, ``logits`` and
``probabilities`` (float32, [batch, num_labels]; softmax, or sigmoid for
multi-label models); for question answering ``start_logits`` and ``end_logits``
(float32, [batch, length]).

A question-answering export's ``code/`` holds ``inference.py`` with the container's
single ``handler`` (it windows each context, sends the windows to TF Serving's REST API and
picks the answers with bertbridge's own post-processing, so a context longer than one
window is answered, not cut) and the bertbridge package it runs on (pure Python; its
``requirements.txt`` lists numpy and tokenizers among the rest). So does the export of a
classifier trained with ``task.long_text``: its handler cuts each text into the model's
windows and combines their ``logits`` as the model does.
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
from bertbridge.core.io.vendor import CORE_REQUIREMENTS, vendor_package
from bertbridge.core.serving import protocol as serving
from bertbridge.core.text.tokenize import TOKENIZER_FILES

from .model import TFClassifier


_SIGNATURE = [
    tf.TensorSpec([None, None], tf.int64, name="input_ids"),
    tf.TensorSpec([None, None], tf.int64, name="attention_mask"),
    tf.TensorSpec([None, None], tf.int64, name="token_type_ids"),
]


class _Servable(tf.Module):
    """A classifier's ``serving_default``: logits and probabilities."""

    def __init__(self, classifier: TFClassifier, setup: ModelSetup) -> None:
        super().__init__()
        self.bert = classifier.module
        self.multi_label = setup.multi_label

    @tf.function(input_signature=_SIGNATURE)
    def serve(self, input_ids, attention_mask, token_type_ids):
        logits = self.bert(input_ids, attention_mask, token_type_ids, training=False)
        probs = tf.sigmoid(logits) if self.multi_label else tf.nn.softmax(logits, axis=-1)
        return {"logits": logits, "probabilities": probs}


class _SpanServable(tf.Module):
    """A question-answering model's ``serving_default``: start and end logits of every token."""

    def __init__(self, classifier: TFClassifier, setup: ModelSetup) -> None:
        super().__init__()
        self.bert = classifier.module

    @tf.function(input_signature=_SIGNATURE)
    def serve(self, input_ids, attention_mask, token_type_ids):
        logits = self.bert(input_ids, attention_mask, token_type_ids, training=False)
        return {"start_logits": logits[..., 0], "end_logits": logits[..., 1]}


_SERVABLES = {"sequence": (_Servable, "inference.py"), "span": (_SpanServable, "predictor_inference.py")}


def export_savedmodel(artifact_dir: Path, out_dir: Path, setup: ModelSetup, *, version: int = 1) -> Path:
    """Write ``out_dir/<version>`` (refusing to overwrite an existing version) and ``out_dir/code``."""
    if version < 1:
        raise ArtifactError(f"version must be a positive integer (TF Serving numbers versions), got {version}.")
    out_dir = Path(out_dir)
    target = out_dir / str(version)
    if target.exists():
        raise ArtifactError(f"{target}: version {version} already exists; TF Serving versions are immutable. Pass another --version.")
    servable_type, handler = _SERVABLES[setup.head]
    if Manifest.read(Path(artifact_dir)).long_text:  # each text's windows are cut and combined around the model
        handler = "predictor_inference.py"
    servable = servable_type(TFClassifier.from_artifact(artifact_dir, setup), setup)
    out_dir.mkdir(parents=True, exist_ok=True)
    version_tmp = Path(tempfile.mkdtemp(prefix=f".{version}.tmp-", dir=out_dir))
    code_tmp = Path(tempfile.mkdtemp(prefix=".code.tmp-", dir=out_dir))
    try:
        tf.saved_model.save(servable, str(version_tmp), signatures={"serving_default": servable.serve})
        _write_code(code_tmp, Path(artifact_dir), handler)
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


def _write_code(code: Path, artifact_dir: Path, handler: str) -> None:
    shutil.copyfile(Path(__file__).parent / "serving_code" / handler, code / "inference.py")
    for name in (MANIFEST_NAME, "config.json", *TOKENIZER_FILES):
        if (artifact_dir / name).is_file():
            shutil.copyfile(artifact_dir / name, code / name)
    if handler == "inference.py":  # the classifier's handlers need the contract module only
        shutil.copyfile(serving.__file__, code / "bertbridge_serving.py")
        (code / "requirements.txt").write_text("numpy\ntokenizers>=0.19\n", encoding="utf-8")
        return
    vendor_package(code)  # question answering runs bertbridge's windowing and post-processing
    (code / "requirements.txt").write_text("\n".join(CORE_REQUIREMENTS) + "\n", encoding="utf-8")
