"""The shape of the package, checked statically: imports flow one way, with no cycles (function-level
imports included), nothing below the facade reaches for it, tasks are dispatched by the registry only,
and every module of core (sub-packages included) imports with no framework and no smdebug."""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "bertbridge" / "core"

# Lower layers first; a module may import its own layer or a lower one. Longest prefix wins.
LAYERS = [
    ("bertbridge.core.errors", "bertbridge.core.spec"),
    ("bertbridge.core.io", "bertbridge.core.serving.protocol"),
    ("bertbridge.core.text",),
    ("bertbridge.core.reports",),
    ("bertbridge.core.data",),
    ("bertbridge.core.hookspecs", "bertbridge.core.task", "bertbridge.core.backend"),
    ("bertbridge.core.plugins",),
    ("bertbridge.core.distributed",),
    ("bertbridge.core.training", "bertbridge.core.debugger"),
    ("bertbridge.core.tasks",),
    ("bertbridge.core.api",),
    ("bertbridge.core.cli", "bertbridge.core.forwarding", "bertbridge.core.sagemaker",
     "bertbridge.core.serving.server", "bertbridge.core.serving.handlers", "bertbridge.core.serving.timeouts",
     "bertbridge.core.tuning"),
]
FACADE = "bertbridge.core.api"
ENTRY_POINTS = LAYERS[-1]


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def _imports(path: Path) -> set[str]:
    """Modules of bertbridge.core that ``path`` imports anywhere (functions included; TYPE_CHECKING blocks excluded)."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _type_checking_lines(tree)
    found = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            for alias in node.names:  # "from pkg import module" names a module
                candidate = f"{base}.{alias.name}"
                found.add(candidate if _exists(candidate) else base)
    return {m for m in found if m.startswith("bertbridge.core")}


def _exists(module: str) -> bool:
    path = ROOT / module.replace(".", "/")
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _layer(module: str) -> int:
    best, rank = -1, None
    for i, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), i
    return rank if rank is not None else -1  # package __init__ files (docstrings only) sit at the bottom


MODULES = {_module_name(p): p for p in sorted(CORE.rglob("*.py"))}
GRAPH = {name: {m for m in _imports(path) if m in MODULES and m != name} for name, path in MODULES.items()}


def test_every_core_module_has_a_layer():
    assert [m for m in MODULES if _layer(m) < 0 and not MODULES[m].name == "__init__.py"] == []


def test_every_core_folder_is_a_package():
    assert [str(d) for d in CORE.rglob("*") if d.is_dir() and d.name != "__pycache__" and not (d / "__init__.py").exists()] == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_flow_down_the_layers(module):
    upward = sorted(m for m in GRAPH[module] if _layer(m) > _layer(module))
    assert upward == [], f"{module} (layer {_layer(module)}) imports a higher layer: {upward}"


def test_no_import_cycles_not_even_lazy_ones():
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in GRAPH:
        if v not in index:
            visit(v)
    assert cycles == []


def test_only_entry_points_reach_for_the_facade():
    callers = sorted(m for m, deps in GRAPH.items() if FACADE in deps)
    assert callers and all(any(m == p or m.startswith(p + ".") for p in ENTRY_POINTS) for m in callers), callers


def test_tasks_are_dispatched_by_the_registry_only():
    pattern = re.compile(r"""task(\.type|_type)?\s*[!=]=\s*["'](text_classification|question_answering)["']""")
    offenders = [f"{p.relative_to(ROOT)}:{n}" for p in (ROOT / "bertbridge").rglob("*.py")
                 for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]
    assert offenders == []


def test_backends_never_reach_into_another_backend():
    backends = ROOT / "bertbridge" / "backends"
    for folder in (d for d in backends.iterdir() if (d / "__init__.py").exists()):
        for path in folder.rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            others = [d.name for d in backends.iterdir() if d.is_dir() and d != folder and f"bertbridge.backends.{d.name}" in text]
            assert others == [], f"{path.relative_to(ROOT)} reaches into {others}"


def test_every_core_module_imports_without_a_framework_or_smdebug():
    """Each module in its own fresh interpreter would be slow: one interpreter imports all of them and
    reports which frameworks ended up loaded (none may be)."""
    code = (
        "import importlib, json, pkgutil, sys\n"
        "import bertbridge.core as core\n"
        "names = [m.name for m in pkgutil.walk_packages(core.__path__, 'bertbridge.core.')]\n"
        "failed = {}\n"
        "for n in names:\n"
        "    try:\n"
        "        importlib.import_module(n)\n"
        "    except Exception as exc:\n"
        "        failed[n] = repr(exc)\n"
        "heavy = ('torch', 'tensorflow', 'mxnet', 'gluonnlp', 'transformers', 'smdebug', 'onnxruntime', 'keras', 'jax')\n"
        "print(json.dumps({'count': len(names), 'failed': failed,\n"
        "                  'loaded': sorted(m for m in sys.modules if m.split('.')[0] in heavy)}))\n"
    )
    import json

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["failed"] == {} and report["loaded"] == []
    assert report["count"] == len(MODULES) - 1  # every module but core/__init__ itself
