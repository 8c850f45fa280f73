"""bertbridge: fine-tune and serve BERT-family models on PyTorch, TensorFlow and
MXNet from one framework-neutral task spec.

Example::

    import bertbridge

    clf = bertbridge.train("examples/sentiment/spec.yaml")   # backend from the spec, env or 'pytorch'
    bertbridge.load(clf.path).predict(["A warm, funny and clever film."])

Importing bertbridge never imports a deep-learning framework.
"""

from .core.api import evaluate, export, export_tfrecord, list_backends, list_tasks, load, load_spec, train
from .core.errors import BertbridgeError
from .core.sagemaker.local import run_local
from .core.spec import TaskSpec
from .core.tasks.classification.predictor import TextClassifier
from .core.tasks.qa.predictor import QuestionAnswerer
from .core.tuning.search import TuningResult, tune

__version__ = "0.1.0"

__all__ = [
    "BertbridgeError",
    "QuestionAnswerer",
    "TaskSpec",
    "TextClassifier",
    "TuningResult",
    "evaluate",
    "export",
    "export_tfrecord",
    "list_backends",
    "list_tasks",
    "load",
    "load_spec",
    "run_local",
    "train",
    "tune",
    "__version__",
]
