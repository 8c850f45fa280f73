"""Fine-tuning for ``task.type: question_answering``: SQuAD files in, a :class:`QuestionAnswerer` out.

Same loop (:func:`bertbridge.core.training.loop.fit`), schedule, checkpoints and manifest as
classification; the backend builds its ``span`` head. Each training window is one
example (a long context gives several), labelled with the answer's start and end
token, or [CLS] when the answer is not inside it (or the question has none).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from bertbridge.core.backend import ModelSetup
from bertbridge.core.errors import NotSupportedError, SpecError
from bertbridge.core.io.artifacts import Manifest, check_weights
from bertbridge.core.plugins.registry import models
from bertbridge.core.spec import TaskSpec
from bertbridge.core.tasks.qa.features import check_window_settings
from bertbridge.core.tasks.qa.predictor import QuestionAnswerer
from bertbridge.core.text.tokenize import TextEncoder
from bertbridge.core.training.loop import fit, monitor_metric

TASK = "question_answering"


def train_question_answering(spec: TaskSpec, chosen, target: Path, role: str = "single") -> Optional[QuestionAnswerer]:
    """Check everything, read and window every split, fine-tune, evaluate and save to ``target``.
    ``role``: see :func:`bertbridge.core.distributed.data_parallel.role` (a data-parallel worker other than
    rank 0 returns None)."""
    from bertbridge.core.api import _log, _run_fingerprint
    from bertbridge.core.distributed import data_parallel

    if spec.debugger.attention:
        raise NotSupportedError("debugger.attention records text_classification runs only; set debugger.attention: false.")
    if spec.data.train is None:
        raise SpecError("data.train is not set: give the path of a SQuAD-format JSON file (v1.1 or v2.0).")
    monitor_metric(spec.training, False, spec.data.validation is not None, TASK)
    task = spec.task
    check_window_settings(spec.training.max_seq_length, task.doc_stride, task.max_question_length)
    model_dir = models().resolve(spec.model.name)
    check_weights(model_dir)
    encoder = TextEncoder.from_pretrained(model_dir)
    encoder.check_max_length(spec.training.max_seq_length)

    manifest = Manifest(task=TASK, labels=(), backend=chosen.name, max_seq_length=spec.training.max_seq_length,
                        lowercase=encoder.lowercase, base_model=spec.model.name, data={"format": "squad"},
                        qa={"doc_stride": task.doc_stride, "max_question_length": task.max_question_length,
                            "max_answer_length": task.max_answer_length, "n_best": task.n_best,
                            "null_threshold": task.null_threshold, "v2": False})
    probe = QuestionAnswerer(None, encoder, manifest, batch_size=spec.training.eval_batch_size)  # type: ignore[arg-type]
    # Read every split before building the model, so a bad question fails in seconds.
    train_split = probe.read_split(spec.data.train)
    validation = probe.read_split(spec.data.validation) if spec.data.validation else None
    test = probe.read_split(spec.data.test) if spec.data.test else None
    v2 = any(s.squad.v2 for s in (train_split, validation, test) if s is not None)
    manifest = Manifest(**{**manifest.__dict__, "qa": {**manifest.qa, "v2": v2}})

    setup = ModelSetup(num_labels=2, multi_label=False, id2label={0: "start", 1: "end"}, seed=spec.training.seed,
                       mixed_precision=spec.training.mixed_precision, weight_decay=spec.training.weight_decay,
                       max_grad_norm=spec.training.max_grad_norm, head="span")
    model, collective = data_parallel.create_model(chosen, model_dir, setup, spec, role)
    qa = QuestionAnswerer(model, encoder, manifest, batch_size=spec.training.eval_batch_size)
    evaluate = (lambda: qa.evaluate_split(validation, show_progress=False)) if validation is not None else None
    result = fit(
        model, train_split.features, train_split.targets, spec.training, multi_label=False, evaluate=evaluate, log=_log,
        pad_id=encoder.pad_id, fingerprint=_run_fingerprint(spec, chosen.name, train_split, validation), task=TASK,
        collective=collective,
    )
    if collective is not None and not collective.is_main:
        collective.close()
        return None
    metrics = dict(result.final_metrics)
    metrics["train_samples_per_s"] = result.train_samples_per_s
    metrics["train_seconds"] = result.train_seconds
    metrics["train_windows"] = float(len(train_split.features))
    if test is not None:
        test_metrics = qa.evaluate_split(test)
        _log({f"test_{k}": v for k, v in test_metrics.items()}, "test", result.steps, result.epochs)
        metrics.update({f"test_{k}": v for k, v in test_metrics.items()})
    metrics.update(data_parallel.worker_summary(collective))
    qa.save(target, metrics=metrics)
    if collective is not None:
        collective.close()
    qa.training_result = result  # type: ignore[attr-defined]
    return qa


def load_question_answering(folder: Path, manifest: Manifest, chosen, batch_size: int) -> QuestionAnswerer:
    setup = ModelSetup(num_labels=2, multi_label=False, id2label={0: "start", 1: "end"}, seed=0, head="span")
    qa = QuestionAnswerer(chosen.load_model(folder, setup), TextEncoder.from_pretrained(folder), manifest, batch_size=batch_size)
    qa.path = folder.resolve()
    return qa
