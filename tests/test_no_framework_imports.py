"""Core never imports a framework: statically (no import statement) and at run time."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FRAMEWORKS = ("torch", "tensorflow", "tf_keras", "keras", "mxnet", "gluonnlp", "jax", "transformers", "onnxruntime", "onnx")


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


CORE_MODULES = sorted((ROOT / "bertbridge" / "core").rglob("*.py"))


def test_the_walk_reaches_the_sub_packages():
    assert {p.parent.name for p in CORE_MODULES} >= {"core", "tasks", "classification", "qa", "training", "serving", "io"}


@pytest.mark.parametrize("path", CORE_MODULES, ids=lambda p: str(p.relative_to(ROOT / "bertbridge" / "core")))
def test_core_module_has_no_framework_import(path):
    assert not (_imported_roots(path) & set(FRAMEWORKS))


@pytest.mark.parametrize("path", CORE_MODULES, ids=lambda p: str(p.relative_to(ROOT / "bertbridge" / "core")))
def test_smdebug_is_imported_only_inside_the_functions_that_need_it(path):
    """The debugger extra is optional: a core module may import smdebug in a function, never at module level."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    inside = {id(n) for f in functions for n in ast.walk(f)}
    top = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) and id(n) not in inside]
    names = [a.name for n in top if isinstance(n, ast.Import) for a in n.names]
    names += [n.module for n in top if isinstance(n, ast.ImportFrom) and n.module]
    assert not [n for n in names if n.split(".")[0] == "smdebug"]


@pytest.mark.parametrize("backend", ["pytorch", "tensorflow", "mxnet", "onnx"])
def test_backend_plugin_and_declaration_modules_import_no_framework(backend):
    for name in ("__init__.py", "plugin.py", "backend.py"):
        assert not (_imported_roots(ROOT / "bertbridge" / "backends" / backend / name) & set(FRAMEWORKS)), name


def _run(code: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_importing_and_using_core_loads_no_framework(tokenizer_dir, tmp_path):
    data = tmp_path / "d.tsv"
    data.write_text("text\tlabel\nthe film was good\tpositive\nthe film was bad\tnegative\n")
    loaded = _run(f"""
import json, sys
import bertbridge
from bertbridge.core import cli
from bertbridge.core.plugins import registry
from bertbridge.core.spec import TaskSpec
from bertbridge.core.data.readers import read_examples
from bertbridge.core.text.tokenize import TextEncoder
bertbridge.list_backends()
registry.models().aliases()
ex = read_examples({str(data)!r}, TaskSpec().data)
TextEncoder.from_pretrained({str(tokenizer_dir)!r}).encode([e.text for e in ex], max_length=16)
print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {FRAMEWORKS!r})))
""")
    assert loaded == []


def test_pytorch_backend_does_not_import_tensorflow_or_mxnet(tiny_model_dir, tmp_path):
    from conftest import tiny_spec, toy_sentences, write_tsv

    data = {"train": str(write_tsv(tmp_path / "t.tsv", toy_sentences(16)))}
    spec = json.dumps(tiny_spec(tiny_model_dir, data, tmp_path / "out", epochs=1))
    loaded = _run(f"""
import json, sys, bertbridge
clf = bertbridge.train(json.loads({spec!r}), backend="pytorch")
clf.predict(["good film"])
print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ("tensorflow", "mxnet", "gluonnlp", "jax", "keras"))))
""")
    assert loaded == []
