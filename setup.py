"""bertbridge: fine-tune and serve BERT-family models on PyTorch, TensorFlow and MXNet from one spec."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent

setup(
    name="bertbridge",
    version="0.1.0",
    description="One task spec to fine-tune and serve BERT-family models on PyTorch, TensorFlow and MXNet.",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["bertbridge", "bertbridge.*"]),
    # Not a package (no __init__): a script copied into TF Serving model.tar.gz code/ folders;
    # it imports the container-only top-level module bertbridge_serving, so it ships as data.
    package_data={"bertbridge.backends.tensorflow": ["serving_code/*.py"]},
    install_requires=[
        # core is framework-neutral: numpy, the Rust fast tokenizers, config and plugins
        "numpy>=1.24",
        "safetensors>=0.4",
        "google-crc32c>=1.5",  # fast CRC32C for TFRecord shards (core has a pure-Python fallback)
        "tokenizers>=0.19",
        "pluggy>=1.3",
        "PyYAML>=6.0",
        "tqdm>=4.60",
        # bertbridge serve: the SageMaker /ping + /invocations contract
        "starlette>=0.37",
        "uvicorn>=0.30",
        # training_curves.png in every model folder (headless Agg backend)
        "matplotlib>=3.7",
    ],
    extras_require={
        # install torch first (pip install torch==X) to choose its CPU/CUDA build
        "pytorch": ["torch>=2.6", "transformers>=4.57"],
        "tensorflow": ["tensorflow>=2.16"],
        # MXNet 1.9 needs numpy<2: a separate environment (make mxnet-env), see README
        "mxnet": ["mxnet==1.9.1", "gluonnlp==0.10.0", "numpy<2"],
        # SageMaker Debugger capture + rules + attention views; smdebug 1.0.34 pins protobuf<=3.20.3 (not with TF 2.21)
        "debugger": ["smdebug==1.0.34", "protobuf<=3.20.3", "pandas<3", "psutil", "matplotlib<3.11"],
        "onnx": ["onnx>=1.15", "onnxruntime>=1.17", "onnxscript>=0.2"],
        "sagemaker": ["sagemaker>=3", "boto3"],  # bertbridge sagemaker train (SDK v3 ModelTrainer)
        # the spec's tracking section: TensorBoard event files without TensorFlow, MLflow runs
        "tracking": ["tensorboardX>=2.6", "mlflow>=2.10"],
        # bertbridge tune: hyperparameter search with pruning (the spec's tuning section)
        "tune": ["optuna>=3.6"],
        "dev": ["pytest>=7", "tensorboard>=2.16", "accelerate>=0.26", "httpx>=0.27", "moto>=5", "build>=1"],
    },
    entry_points={
        "console_scripts": ["bertbridge = bertbridge.core.cli:main"],
        "bertbridge.backends": [
            "pytorch = bertbridge.backends.pytorch.plugin",
            "tensorflow = bertbridge.backends.tensorflow.plugin",
            "mxnet = bertbridge.backends.mxnet.plugin",
            "onnx = bertbridge.backends.onnx.plugin",
        ],
        "bertbridge.tasks": [
            "text_classification = bertbridge.core.tasks.classification.plugin",
            "question_answering = bertbridge.core.tasks.qa.plugin",
        ],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
